//! How zkCli turns a line into a command: `ZooKeeperMain`'s regular
//! expression splits the line, and Apache Commons CLI's `DefaultParser`
//! (1.5, Debian's) finds each command's options. Both are reproduced
//! quirk for quirk, because the quirks decide what a script's line means:
//! a word starting with a quote that never closes, `-sw` as `-s -w`,
//! `-v3`, `--` ending the options, options after the path.

/// Words in one command line.
pub const WORDS_MAX: usize = 4096;

fn is_java_space(c: char) -> bool {
    // Java's \s: [ \t\n\x0B\f\r].
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// `MyCommandOptions.parseCommand`: the words of a line, as
/// `\s*([^"']\S*|"[^"]*"|'[^']*')\s*` finds them, each stripped of one
/// pair of surrounding quotes.
pub fn split_line(line: &str) -> Vec<String> {
    let c: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut from = 0;
    while from < c.len() && words.len() < WORDS_MAX {
        match find(&c, from) {
            Some((word, next)) => {
                words.push(unquote(&word));
                from = next;
            }
            None => break,
        }
    }
    words
}

/// `Matcher.find` from `from`: the first match's group and where the
/// match (trailing blanks included) ends.
fn find(c: &[char], from: usize) -> Option<(String, usize)> {
    for start in from..c.len() {
        let mut ws_end = start;
        while ws_end < c.len() && is_java_space(c[ws_end]) {
            ws_end += 1;
        }
        // \s* is greedy and gives characters back when the group cannot
        // match where it stopped.
        for k in (start..=ws_end).rev() {
            if let Some(end) = group_at(c, k) {
                let mut next = end;
                while next < c.len() && is_java_space(c[next]) {
                    next += 1;
                }
                return Some((c[k..end].iter().collect(), next));
            }
        }
    }
    None
}

/// The end of the group `[^"']\S*|"[^"]*"|'[^']*'` starting at `k`.
fn group_at(c: &[char], k: usize) -> Option<usize> {
    let first = *c.get(k)?;
    if first == '"' || first == '\'' {
        let close = c[k + 1..].iter().position(|&x| x == first)?;
        return Some(k + 1 + close + 1);
    }
    let mut end = k + 1;
    while end < c.len() && !is_java_space(c[end]) {
        end += 1;
    }
    Some(end)
}

/// `QUOTED_PATTERN` `^(['"])(.*)(\1)$`: one pair of matching quotes off.
fn unquote(w: &str) -> String {
    let b = w.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        w[1..w.len() - 1].to_string()
    } else {
        w.to_string()
    }
}

/// One option a command accepts: its letter and whether it takes a value.
#[derive(Clone, Copy, Debug)]
pub struct Spec(pub char, pub bool);

/// The result of parsing: the plain words (the command itself first) and
/// the options, in order, with their values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub args: Vec<String>,
    opts: Vec<(char, Option<String>)>,
}

impl Parsed {
    pub fn has(&self, c: char) -> bool {
        self.opts.iter().any(|(o, _)| *o == c)
    }

    /// The first value given to `c` (`CommandLine.getOptionValue`).
    pub fn value(&self, c: char) -> Option<&str> {
        self.opts
            .iter()
            .find(|(o, v)| *o == c && v.is_some())
            .and_then(|(_, v)| v.as_deref())
    }
}

fn unrecognized(token: &str) -> String {
    format!("org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: {token}")
}

fn missing(c: char) -> String {
    format!("org.apache.commons.cli.MissingArgumentException: Missing argument for option: {c}")
}

/// `Util.stripLeadingAndTrailingQuotes`.
fn strip_quotes(s: &str) -> String {
    if s.len() > 1 && s.starts_with('"') && s.ends_with('"') && !s[1..s.len() - 1].contains('"') {
        s[1..s.len() - 1].to_string()
    } else {
        s.to_string()
    }
}

struct Parser<'a> {
    spec: &'a [Spec],
    out: Parsed,
    /// The option waiting for its value.
    current: Option<usize>,
}

impl Parser<'_> {
    fn find(&self, c: char) -> Option<Spec> {
        self.spec.iter().copied().find(|s| s.0 == c)
    }

    /// `DefaultParser.isShortOption` (there are no long options).
    fn is_option(&self, token: &str) -> bool {
        if !token.starts_with('-') || token.len() == 1 {
            return false;
        }
        let name = match token.find('=') {
            Some(p) => &token[1..p],
            None => &token[1..],
        };
        let mut chars = name.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => self.find(c).is_some(),
            (Some(c), Some(_)) => self.find(c).is_some(),
            _ => false,
        }
    }

    fn check_required(&self) -> Result<(), String> {
        match self.current {
            Some(i) if self.out.opts[i].1.is_none() => Err(missing(self.out.opts[i].0)),
            _ => Ok(()),
        }
    }

    fn handle_option(&mut self, s: Spec) -> Result<(), String> {
        self.check_required()?;
        self.out.opts.push((s.0, None));
        self.current = s.1.then_some(self.out.opts.len() - 1);
        Ok(())
    }

    fn set_value(&mut self, v: String) {
        if let Some(i) = self.current.take() {
            self.out.opts[i].1 = Some(v);
        }
    }

    fn unknown(&mut self, token: &str) -> Result<(), String> {
        if token.starts_with('-') && token.len() > 1 {
            return Err(unrecognized(token));
        }
        self.out.args.push(token.to_string());
        Ok(())
    }

    fn short(&mut self, token: &str) -> Result<(), String> {
        let t = &token[1..];
        if let Some(pos) = t.find('=') {
            let (opt, value) = (&t[..pos], &t[pos + 1..]);
            let mut chars = opt.chars();
            return match (chars.next(), chars.next()) {
                (Some(c), None) => match self.find(c) {
                    Some(s) if s.1 => {
                        self.handle_option(s)?;
                        self.set_value(value.to_string());
                        Ok(())
                    }
                    _ => self.unknown(token),
                },
                _ => self.unknown(token),
            };
        }
        let mut chars = t.chars();
        if let (Some(c), None) = (chars.next(), chars.clone().next()) {
            return match self.find(c) {
                Some(s) => self.handle_option(s),
                None => self.unknown(token),
            };
        }
        // -S1S2S3 or -S1S2V
        for (i, c) in t.char_indices() {
            match self.find(c) {
                Some(s) => {
                    self.handle_option(s)?;
                    let rest = &t[i + c.len_utf8()..];
                    if self.current.is_some() && !rest.is_empty() {
                        self.set_value(rest.to_string());
                        break;
                    }
                }
                None => return self.unknown(token),
            }
        }
        Ok(())
    }
}

/// `DefaultParser.parse(options, tokens)` for options that are single
/// letters, each with at most one value. Errors are the exception's
/// `toString()`, which is what zkCli prints.
pub fn parse(spec: &[Spec], tokens: &[String]) -> Result<Parsed, String> {
    let mut p = Parser {
        spec,
        out: Parsed::default(),
        current: None,
    };
    let mut skip = false;
    for token in tokens {
        if skip {
            p.out.args.push(token.clone());
        } else if p.current.is_some() && !p.is_option(token) {
            p.set_value(strip_quotes(token));
        } else if token == "--" {
            skip = true;
        } else if token == "-" {
            p.out.args.push(token.clone());
        } else if token.starts_with("--") {
            // No command has long options.
            return Err(unrecognized(token));
        } else if token.starts_with('-') {
            p.short(token)?;
        } else {
            p.unknown(token)?;
        }
    }
    p.check_required()?;
    Ok(p.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        split_line(s)
    }

    fn toks(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn lines_split_as_zkcli_splits_them() {
        assert_eq!(words("  ls   -s /a "), ["ls", "-s", "/a"]);
        assert_eq!(
            words("set /a \"hello world\""),
            ["set", "/a", "hello world"]
        );
        assert_eq!(words("set /a 'it''s'"), ["set", "/a", "it", "s"]);
        assert_eq!(words("set /a x\"y z\""), ["set", "/a", "x\"y", "z\""]);
        // An unclosed quote is skipped, unless spaces precede it at the
        // start of the line: then the regex backs off into the last one.
        assert_eq!(words("get \"abc def"), ["get", "abc", "def"]);
        assert_eq!(words("  \"abc"), [" \"abc"]);
        assert_eq!(words("\"abc"), ["abc"]);
        // Blanks alone are a word of one blank (then an unknown command).
        assert_eq!(words("   "), [" "]);
        assert!(words("\"").is_empty());
    }

    #[test]
    fn options_parse_as_commons_cli_does() {
        let spec = [Spec('s', false), Spec('v', true)];
        let p = parse(&spec, &toks("set -s -v 3 /a x")).unwrap();
        assert_eq!(p.args, ["set", "/a", "x"]);
        assert!(p.has('s'));
        assert_eq!(p.value('v'), Some("3"));
        let p = parse(&spec, &toks("set /a x -sv7")).unwrap();
        assert_eq!(p.value('v'), Some("7"));
        assert_eq!(
            parse(&spec, &toks("set -v=9 /a x")).unwrap().value('v'),
            Some("9")
        );
        assert_eq!(
            parse(&spec, &toks("set -v -1 /a x")).unwrap().value('v'),
            Some("-1")
        );
        assert_eq!(
            parse(&spec, &toks("set /a -1")).unwrap_err(),
            "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: -1"
        );
        assert_eq!(
            parse(&spec, &toks("set -sx /a")).unwrap_err(),
            "org.apache.commons.cli.UnrecognizedOptionException: Unrecognized option: -sx"
        );
        assert_eq!(
            parse(&spec, &toks("set /a x -v")).unwrap_err(),
            "org.apache.commons.cli.MissingArgumentException: Missing argument for option: v"
        );
        assert_eq!(
            parse(&spec, &toks("set -v -s /a")).unwrap_err(),
            "org.apache.commons.cli.MissingArgumentException: Missing argument for option: v"
        );
        let p = parse(&spec, &toks("create /n -- -s")).unwrap();
        assert_eq!(p.args, ["create", "/n", "-s"]);
        assert!(!p.has('s'));
        assert_eq!(
            parse(&spec, &toks("get - /a")).unwrap().args,
            ["get", "-", "/a"]
        );
    }
}
