//! What zkCli prints, as pure functions: Stat blocks, dates, ACL lines and
//! the sentences its errors become. Every string here is copied from
//! Apache ZooKeeper 3.8 (`StatPrinter`, jute's `ToStringOutputArchive`,
//! `ZKUtil.getPermString`, `AclParser`, `CliWrapperException`,
//! `KeeperException.getCodeMessage`), so that scripts that read zkCli's
//! output read ours.

use engine::types::{perms, Acl, ErrorCode, Id, Stat};

/// `StatPrinter.print`: eleven lines, each ending in a newline.
pub fn stat(s: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\n\
         cversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\n\
         dataLength = {}\nnumChildren = {}\n",
        s.czxid,
        java_date(s.ctime),
        s.mzxid,
        java_date(s.mtime),
        s.pzxid,
        s.cversion,
        s.version,
        s.aversion,
        s.ephemeral_owner,
        s.data_length,
        s.num_children,
    )
}

/// `new Date(ms).toString()`: `EEE MMM dd HH:mm:ss zzz yyyy` in the local
/// time zone (TZ, else /etc/localtime, as the JVM reads them), English
/// names whatever the locale, as Java's `Date.toString` always is.
pub fn java_date(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = ms.div_euclid(1000) as libc::time_t;
    // SAFETY: localtime_r only writes the `tm` we own (glibc reads the
    // time zone once, on first use; nothing of ours changes TZ).
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return ms.to_string();
        }
        tm
    };
    let zone = if tm.tm_zone.is_null() {
        "GMT".to_string()
    } else {
        // SAFETY: tm_zone points to a NUL-terminated string owned by libc's
        // time zone data, alive for the process.
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} {} {}",
        DAYS[tm.tm_wday.rem_euclid(7) as usize],
        MONTHS[tm.tm_mon.rem_euclid(12) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        zone,
        tm.tm_year as i64 + 1900
    )
}

/// jute's `ToStringOutputArchive.escapeString`: a quote, then the string
/// with `\0 \n \r , } %` percent-escaped.
fn jute_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\0' => out.push_str("%00"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            ',' => out.push_str("%2C"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

/// `Id.toString()` as jute generates it: `'scheme,'id` and a newline.
pub fn id(id: &Id) -> String {
    format!("{},{}\n", jute_string(&id.scheme), jute_string(&id.id))
}

/// `ZKUtil.getPermString`: the letters in the order c d r w a.
pub fn perm_string(p: i32) -> String {
    let mut s = String::new();
    for (bit, c) in [
        (perms::CREATE, 'c'),
        (perms::DELETE, 'd'),
        (perms::READ, 'r'),
        (perms::WRITE, 'w'),
        (perms::ADMIN, 'a'),
    ] {
        if p & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// One line of getAcl: `'world,'anyone\n: cdrwa\n`.
pub fn acl_line(a: &Acl) -> String {
    format!("{}: {}\n", id(&a.id), perm_string(a.perms))
}

/// `AclParser.parse`: comma separated `scheme:id:perms`; malformed parts
/// and unknown permission letters are reported (the returned messages go
/// to stderr) and skipped.
pub fn parse_acl(s: &str) -> (Vec<Acl>, Vec<String>) {
    let mut acl = Vec::new();
    let mut complaints = Vec::new();
    // Java's String.split drops trailing empty parts.
    let mut parts: Vec<&str> = s.split(',').collect();
    while parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    for a in parts {
        let (Some(first), Some(last)) = (a.find(':'), a.rfind(':')) else {
            complaints.push(format!("{a} does not have the form scheme:id:perm"));
            continue;
        };
        if first == last {
            complaints.push(format!("{a} does not have the form scheme:id:perm"));
            continue;
        }
        let mut p = 0;
        for c in a[last + 1..].chars() {
            match c {
                'r' => p |= perms::READ,
                'w' => p |= perms::WRITE,
                'c' => p |= perms::CREATE,
                'd' => p |= perms::DELETE,
                'a' => p |= perms::ADMIN,
                other => complaints.push(format!("Unknown perm type: {other}")),
            }
        }
        acl.push(Acl {
            perms: p,
            id: Id::new(&a[..first], &a[first + 1..last]),
        });
    }
    (acl, complaints)
}

/// `KeeperException.getCodeMessage`.
pub fn code_message(code: ErrorCode) -> String {
    use ErrorCode::*;
    let s = match code {
        Ok => "ok",
        SystemError => "SystemError",
        RuntimeInconsistency => "RuntimeInconsistency",
        DataInconsistency => "DataInconsistency",
        ConnectionLoss => "ConnectionLoss",
        MarshallingError => "MarshallingError",
        NewConfigNoQuorum => "NewConfigNoQuorum",
        ReconfigInProgress => "ReconfigInProgress",
        Unimplemented => "Unimplemented",
        OperationTimeout => "OperationTimeout",
        BadArguments => "BadArguments",
        ApiError => "APIError",
        NoNode => "NoNode",
        NoAuth => "NoAuth",
        BadVersion => "BadVersion",
        NoChildrenForEphemerals => "NoChildrenForEphemerals",
        NodeExists => "NodeExists",
        InvalidAcl => "InvalidACL",
        AuthFailed => "AuthFailed",
        NotEmpty => "Directory not empty",
        SessionExpired => "Session expired",
        InvalidCallback => "Invalid callback",
        SessionMoved => "Session moved",
        NotReadOnly => "Not a read-only call",
        EphemeralOnLocalSession => "Ephemeral node on local session",
        NoWatcher => "No such watcher",
        ReconfigDisabled => "Reconfig is disabled",
        SessionClosedRequireSasl => "Session closed because client failed to authenticate",
        QuotaExceeded => "Quota has exceeded",
        Throttled => "Op throttled due to high load",
        // Codes the switch does not name print as the enum constant.
        UnknownSession | RequestTimeout => return format!("Unknown error {}", code.name()),
    };
    s.to_string()
}

/// `KeeperException.getMessage`.
pub fn keeper_message(code: ErrorCode, path: Option<&str>) -> String {
    match path {
        Some(p) if !p.is_empty() => format!("KeeperErrorCode = {} for {p}", code_message(code)),
        _ => format!("KeeperErrorCode = {}", code_message(code)),
    }
}

/// `CliWrapperException.getMessage` for a KeeperException: the sentences
/// zkCli prints instead of the code for the common errors.
pub fn cli_message(code: ErrorCode, path: Option<&str>) -> String {
    let p = path.unwrap_or("null");
    use ErrorCode::*;
    match code {
        NoNode => format!("Node does not exist: {p}"),
        NoChildrenForEphemerals => format!("Ephemerals cannot have children: {p}"),
        NodeExists => format!("Node already exists: {p}"),
        NotEmpty => format!("Node not empty: {p}"),
        NotReadOnly => format!("Not a read-only call: {p}"),
        InvalidAcl => format!("Acl is not valid : {p}"),
        NoAuth => format!("Insufficient permission : {p}"),
        BadArguments => format!("Arguments are not valid : {p}"),
        BadVersion => format!("version No is not valid : {p}"),
        ReconfigInProgress => {
            "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)"
                .to_string()
        }
        NewConfigNoQuorum => "No quorum of new config is connected and up-to-date with the \
                              leader of last commmitted config - try invoking reconfiguration \
                              after new servers are connected and synced"
            .to_string(),
        QuotaExceeded => format!("Quota has exceeded : {p}"),
        _ => keeper_message(code, path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_lines_match_zkcli() {
        assert_eq!(acl_line(&Acl::world_all()), "'world,'anyone\n: cdrwa\n");
        let a = Acl {
            perms: perms::READ | perms::ADMIN,
            id: Id::new("digest", "u:x,y%"),
        };
        assert_eq!(acl_line(&a), "'digest,'u:x%2Cy%25\n: ra\n");
    }

    #[test]
    fn acl_parser_keeps_the_good_parts() {
        let (acl, complaints) = parse_acl("world:anyone:cdrwa,bad,digest:u:x:rq,");
        assert_eq!(acl.len(), 2);
        assert_eq!(acl[1].id, Id::new("digest", "u:x"));
        assert_eq!(acl[1].perms, perms::READ);
        assert_eq!(
            complaints,
            [
                "bad does not have the form scheme:id:perm",
                "Unknown perm type: q"
            ]
        );
    }

    #[test]
    fn stat_block_has_zkclis_eleven_lines() {
        let s = stat(&Stat {
            czxid: 0x1f,
            ephemeral_owner: 0x100000abc,
            num_children: 2,
            ..Stat::default()
        });
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 11);
        assert_eq!(lines[0], "cZxid = 0x1f");
        assert_eq!(lines[8], "ephemeralOwner = 0x100000abc");
        assert_eq!(lines[10], "numChildren = 2");
    }

    #[test]
    fn negative_owner_prints_as_javas_unsigned_hex() {
        let s = stat(&Stat {
            ephemeral_owner: i64::MIN,
            ..Stat::default()
        });
        assert!(s.contains("ephemeralOwner = 0x8000000000000000\n"));
    }

    #[test]
    fn epoch_prints_in_javas_date_format() {
        let d = java_date(0);
        // "Thu Jan 01 00:00:00 UTC 1970" in UTC; other zones shift it.
        let parts: Vec<&str> = d.split(' ').collect();
        assert_eq!(parts.len(), 6, "{d}");
        assert!(["Wed", "Thu", "Fri"].contains(&parts[0]), "{d}");
        assert!(parts[5] == "1970" || parts[5] == "1969", "{d}");
    }

    #[test]
    fn error_sentences() {
        assert_eq!(
            cli_message(ErrorCode::NoNode, Some("/x")),
            "Node does not exist: /x"
        );
        assert_eq!(
            cli_message(ErrorCode::ConnectionLoss, Some("/x")),
            "KeeperErrorCode = ConnectionLoss for /x"
        );
        assert_eq!(
            cli_message(ErrorCode::NoWatcher, Some("/a")),
            "KeeperErrorCode = No such watcher for /a"
        );
        assert_eq!(
            cli_message(ErrorCode::InvalidAcl, None),
            "Acl is not valid : null"
        );
        assert_eq!(
            keeper_message(ErrorCode::InvalidAcl, None),
            "KeeperErrorCode = InvalidACL"
        );
    }
}
