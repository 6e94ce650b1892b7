//! Connect strings (`host1:port1,host2:port2/chroot`) and client-side path
//! rules, as ZooKeeper's `ConnectStringParser` and `PathUtils` apply them
//! before anything is sent.

/// ZooKeeper's default client port.
pub const DEFAULT_PORT: u16 = 2181;

/// Hosts in one connect string.
pub const HOSTS_MAX: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectString {
    /// `host:port` strings ready for `TcpStream::connect` (IPv6 hosts keep
    /// their brackets).
    pub hosts: Vec<String>,
    /// The chroot, None for none (a chroot of "/" is none, as in ZooKeeper).
    pub chroot: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnectStringError {
    #[error("no host in connect string {0:?}")]
    NoHost(String),
    #[error("more than {HOSTS_MAX} hosts in the connect string")]
    TooManyHosts,
    #[error("bad port in {0:?}")]
    BadPort(String),
    #[error("bad chroot: {0}")]
    BadChroot(String),
}

impl ConnectString {
    /// Parses as `ConnectStringParser`: everything from the first '/' is
    /// the chroot; hosts are comma separated; a missing port is 2181.
    pub fn parse(s: &str) -> Result<ConnectString, ConnectStringError> {
        let (hosts_part, chroot) = match s.find('/') {
            Some(i) if s.len() - i == 1 => (&s[..i], None),
            Some(i) => {
                let chroot = &s[i..];
                validate_path(chroot).map_err(ConnectStringError::BadChroot)?;
                (&s[..i], Some(chroot.to_string()))
            }
            None => (s, None),
        };
        let mut hosts = Vec::new();
        for h in hosts_part
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
        {
            if hosts.len() == HOSTS_MAX {
                return Err(ConnectStringError::TooManyHosts);
            }
            hosts.push(host_and_port(h)?);
        }
        if hosts.is_empty() {
            return Err(ConnectStringError::NoHost(s.to_string()));
        }
        Ok(ConnectString { hosts, chroot })
    }

    /// The path the server knows for a client path.
    pub fn server_path(&self, client_path: &str) -> String {
        match &self.chroot {
            None => client_path.to_string(),
            Some(c) if client_path == "/" => c.clone(),
            Some(c) => format!("{c}{client_path}"),
        }
    }

    /// The client path of a server path (`ClientCnxn`'s event conversion):
    /// the chroot itself is "/", and a path outside it is left alone.
    pub fn client_path(&self, server_path: &str) -> String {
        match &self.chroot {
            Some(c) if server_path == c => "/".to_string(),
            Some(c) if server_path.len() > c.len() && server_path.starts_with(c.as_str()) => {
                server_path[c.len()..].to_string()
            }
            _ => server_path.to_string(),
        }
    }
}

fn host_and_port(h: &str) -> Result<String, ConnectStringError> {
    let bad = || ConnectStringError::BadPort(h.to_string());
    // [v6]:port or [v6]
    if let Some(rest) = h.strip_prefix('[') {
        let end = rest.find(']').ok_or_else(bad)?;
        let host = &rest[..end];
        let port = match &rest[end + 1..] {
            "" => DEFAULT_PORT,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(bad)?,
        };
        return Ok(format!("[{host}]:{port}"));
    }
    match h.rfind(':') {
        // "host:" means the default port, as in ZooKeeper.
        Some(i) if i == h.len() - 1 => Ok(format!("{}:{DEFAULT_PORT}", &h[..i])),
        Some(i) => {
            let port: u16 = h[i + 1..].parse().map_err(|_| bad())?;
            Ok(format!("{}:{port}", &h[..i]))
        }
        None => Ok(format!("{h}:{DEFAULT_PORT}")),
    }
}

/// `PathUtils.validatePath(path, isSequential)`: a sequential path is
/// checked with a digit appended, since the server will append some.
pub fn validate_create_path(path: &str, sequential: bool) -> Result<(), String> {
    if sequential {
        validate_path(&format!("{path}1"))
    } else {
        validate_path(path)
    }
}

/// `PathUtils.validatePath` with ZooKeeper's exact messages (which the CLI
/// prints). Positions count UTF-16 units, as Java's do. The verdicts agree
/// with `engine::path::validate`, which the server applies.
pub fn validate_path(path: &str) -> Result<(), String> {
    let chars: Vec<u16> = path.encode_utf16().collect();
    if chars.is_empty() {
        return Err("Path length must be > 0".into());
    }
    if chars[0] != b'/' as u16 {
        return Err("Path must start with / character".into());
    }
    if chars.len() == 1 {
        return Ok(());
    }
    if chars[chars.len() - 1] == b'/' as u16 {
        return Err("Path must not end with / character".into());
    }
    let (slash, dot) = (b'/' as u16, b'.' as u16);
    let mut reason = None;
    let mut last = slash;
    for i in 1..chars.len() {
        let c = chars[i];
        if c == 0 {
            reason = Some(format!("null character not allowed @{i}"));
        } else if c == slash && last == slash {
            reason = Some(format!("empty node name specified @{i}"));
        } else if c == dot && last == dot {
            if chars[i - 2] == slash && (i + 1 == chars.len() || chars[i + 1] == slash) {
                reason = Some(format!("relative paths not allowed @{i}"));
            }
        } else if c == dot {
            if chars[i - 1] == slash && (i + 1 == chars.len() || chars[i + 1] == slash) {
                reason = Some(format!("relative paths not allowed @{i}"));
            }
        } else if (0x01..=0x1f).contains(&c)
            || (0x7f..=0x9f).contains(&c)
            || (0xd800..=0xf8ff).contains(&c)
            || (0xfff0..=0xffff).contains(&c)
        {
            reason = Some(format!("invalid character @{i}"));
        }
        if reason.is_some() {
            break;
        }
        last = c;
    }
    match reason {
        None => Ok(()),
        Some(r) => Err(format!("Invalid path string \"{path}\" caused by {r}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_ports_and_chroot() {
        let c = ConnectString::parse("a:1,b,[::1]:3,c:/app/x").unwrap();
        assert_eq!(c.hosts, ["a:1", "b:2181", "[::1]:3", "c:2181"]);
        assert_eq!(c.chroot.as_deref(), Some("/app/x"));
        assert_eq!(ConnectString::parse("h:5/").unwrap().chroot, None);
        assert!(ConnectString::parse("h:x").is_err());
        assert!(ConnectString::parse("/chroot").is_err());
        assert!(ConnectString::parse("h/bad/").is_err());
    }

    #[test]
    fn chroot_maps_paths_both_ways() {
        let c = ConnectString::parse("h/app").unwrap();
        assert_eq!(c.server_path("/"), "/app");
        assert_eq!(c.server_path("/x"), "/app/x");
        assert_eq!(c.client_path("/app"), "/");
        assert_eq!(c.client_path("/app/x"), "/x");
        assert_eq!(c.client_path("/other"), "/other");
        let none = ConnectString::parse("h").unwrap();
        assert_eq!(none.server_path("/x"), "/x");
        assert_eq!(none.client_path("/x"), "/x");
    }

    #[test]
    fn path_messages_are_zookeepers() {
        assert_eq!(
            validate_path("a").unwrap_err(),
            "Path must start with / character"
        );
        assert_eq!(
            validate_path("/a/").unwrap_err(),
            "Path must not end with / character"
        );
        assert_eq!(
            validate_path("/a//b").unwrap_err(),
            "Invalid path string \"/a//b\" caused by empty node name specified @3"
        );
        assert_eq!(
            validate_path("/a/../b").unwrap_err(),
            "Invalid path string \"/a/../b\" caused by relative paths not allowed @4"
        );
        assert_eq!(validate_path("").unwrap_err(), "Path length must be > 0");
        assert!(validate_create_path("/a/", true).is_ok());
        assert!(validate_path("/a.b/..c").is_ok());
    }

    #[test]
    fn verdicts_agree_with_the_servers_validation() {
        let cases = [
            "/",
            "/a",
            "a",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/..",
            "/a/.",
            "/a/..",
            "/.a",
            "/a..",
            "/a\u{0}b",
            "/a\u{1}",
            "/a\u{7f}",
            "/a\u{9f}",
            "/a\u{a0}",
            "/a\u{e000}",
            "/a\u{f8ff}",
            "/a\u{f900}",
            "/a\u{fff0}",
            "/a\u{1f600}",
            "/zookeeper/quota",
        ];
        for p in cases {
            assert_eq!(
                validate_path(p).is_ok(),
                engine::path::validate(p).is_ok(),
                "{p:?}"
            );
        }
    }
}
