//! Path validation, as ZooKeeper's `PathUtils.validatePath`.

/// Why a path is invalid; ZooKeeper reports all of these as BadArguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    Empty,
    NotAbsolute,
    TrailingSlash,
    NullChar,
    EmptyNodeName,
    Relative,
    InvalidChar,
}

/// Validates a znode path exactly as `PathUtils.validatePath` does,
/// including its rejection of control characters and of the UTF-16
/// surrogate / private-use ranges.
pub fn validate(path: &str) -> Result<(), PathError> {
    let b: Vec<char> = path.chars().collect();
    if b.is_empty() {
        return Err(PathError::Empty);
    }
    if b[0] != '/' {
        return Err(PathError::NotAbsolute);
    }
    if b.len() == 1 {
        return Ok(());
    }
    if b[b.len() - 1] == '/' {
        return Err(PathError::TrailingSlash);
    }
    let mut last = '/';
    for i in 1..b.len() {
        let c = b[i];
        if c == '\0' {
            return Err(PathError::NullChar);
        } else if c == '/' && last == '/' {
            return Err(PathError::EmptyNodeName);
        } else if c == '.' && last == '.' {
            if b[i - 2] == '/' && (i + 1 == b.len() || b[i + 1] == '/') {
                return Err(PathError::Relative);
            }
        } else if c == '.' {
            if b[i - 1] == '/' && (i + 1 == b.len() || b[i + 1] == '/') {
                return Err(PathError::Relative);
            }
        } else if ('\u{1}'..='\u{1f}').contains(&c)
            || ('\u{7f}'..='\u{9f}').contains(&c)
            || ('\u{e000}'..='\u{f8ff}').contains(&c)
            || ('\u{fff0}'..='\u{ffff}').contains(&c)
            || (c as u32) > 0xffff
        {
            // Java strings are UTF-16: characters beyond the BMP are surrogate
            // pairs, which ZooKeeper rejects as the range d800-f8ff.
            return Err(PathError::InvalidChar);
        }
        last = c;
    }
    Ok(())
}

/// The parent of a valid non-root path ("/a/b" -> "/a", "/a" -> "/").
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of a valid non-root path.
pub fn name(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_zookeeper_accepts() {
        for p in ["/", "/a", "/a/b", "/a.b", "/..a", "/a..", "/a/.b", "/é"] {
            assert_eq!(validate(p), Ok(()), "{p}");
        }
    }

    #[test]
    fn rejects_what_zookeeper_rejects() {
        assert_eq!(validate(""), Err(PathError::Empty));
        assert_eq!(validate("a"), Err(PathError::NotAbsolute));
        assert_eq!(validate("/a/"), Err(PathError::TrailingSlash));
        assert_eq!(validate("/a//b"), Err(PathError::EmptyNodeName));
        assert_eq!(validate("/a/./b"), Err(PathError::Relative));
        assert_eq!(validate("/a/.."), Err(PathError::Relative));
        assert_eq!(validate("/."), Err(PathError::Relative));
        assert_eq!(validate("/a\u{0}b"), Err(PathError::NullChar));
        assert_eq!(validate("/a\u{1}b"), Err(PathError::InvalidChar));
        assert_eq!(validate("/a\u{1F600}"), Err(PathError::InvalidChar));
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(name("/a/b/c"), "c");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}
