//! The commands that talk to the server ↔ `org.apache.zookeeper.cli.*Command`:
//! each parses its words as the Java class does and prints what it prints,
//! to the same stream. Shell-level commands (history, redo, connect, ...)
//! are in `shell`.

use client::{Client, Error};
use engine::op::{MultiResult, WriteOp};
use engine::types::{Acl, AddWatchMode, CreateMode, ErrorCode, WatcherType};

use super::format;
use super::options::{parse, Parsed, Spec};
use super::{err, out};

/// A command's failure, printed to stderr by the shell (`CliException`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub message: String,
    pub exit_code: i32,
    /// An exception zkCli does not catch: it ends the whole shell, with
    /// Java's "Exception in thread" line.
    pub fatal: bool,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            exit_code: 1,
            fatal: false,
        }
    }

    /// What the JVM prints for an uncaught exception (first line only).
    fn uncaught(class: &str, message: &str) -> CliError {
        CliError {
            message: format!("Exception in thread \"main\" {class}: {message}"),
            exit_code: 1,
            fatal: true,
        }
    }

    /// `CliWrapperException` around a KeeperException for `path`.
    fn keeper(code: ErrorCode, path: Option<&str>) -> CliError {
        CliError::new(format::cli_message(code, path))
    }

    /// A client call's error: server codes wrapped, refused paths as
    /// `MalformedPathException`.
    fn call(e: Error, path: Option<&str>) -> CliError {
        match e {
            Error::Keeper(code) => CliError::keeper(code, path),
            Error::BadPath(m) => CliError::new(m),
        }
    }
}

pub type CmdResult = Result<(), CliError>;

/// The commands this module runs, with their option strings
/// (`CliCommand.getOptionStr`), as zkCli's usage lists them.
pub const COMMANDS: &[(&str, &str)] = &[
    (
        "addWatch",
        "[-m mode] path # optional mode is one of [PERSISTENT, PERSISTENT_RECURSIVE] - default is PERSISTENT_RECURSIVE",
    ),
    ("addauth", "scheme auth"),
    ("close", ""),
    ("config", "[-c] [-w] [-s]"),
    ("create", "[-s] [-e] [-c] [-t ttl] path [data] [acl]"),
    ("delete", "[-v version] path"),
    ("deleteall", "path [-b batch size]"),
    ("get", "[-s] [-w] path"),
    ("getAcl", "[-s] path"),
    ("getAllChildrenNumber", "path"),
    ("getEphemerals", "path"),
    ("ls", "[-s] [-w] [-R] path"),
    ("removewatches", "path [-c|-d|-a] [-l]"),
    ("set", "[-s] [-v version] path data"),
    ("setAcl", "[-s] [-v version] [-R] path acl"),
    ("stat", "[-w] path"),
    ("sync", "path"),
    ("version", ""),
    ("whoami", ""),
];

pub fn is_command(name: &str) -> bool {
    COMMANDS.iter().any(|(c, _)| *c == name)
}

fn usage(name: &str) -> String {
    let opts = COMMANDS
        .iter()
        .find(|(c, _)| *c == name)
        .map(|(_, o)| *o)
        .unwrap_or("");
    format!("{name} {opts}")
}

/// `Integer.parseInt`, failing as the uncaught exception it is in zkCli.
fn parse_int(s: &str) -> Result<i32, CliError> {
    s.parse::<i32>().map_err(|_| {
        CliError::uncaught(
            "java.lang.NumberFormatException",
            &format!("For input string: \"{s}\""),
        )
    })
}

fn parse_or_usage(spec: &[Spec], argv: &[String]) -> Result<Parsed, CliError> {
    parse(spec, argv).map_err(CliError::new)
}

/// ls, get and stat accept a trailing word meaning "watch" (3.4 syntax):
/// the third original word becomes `-w` and the line is parsed again,
/// with the warning zkCli prints (`retainCompatibility`).
fn retain_compatibility(
    spec: &[Spec],
    argv: &[String],
    parsed: Parsed,
    warning: &str,
) -> Result<Parsed, CliError> {
    if parsed.args.len() <= 2 {
        return Ok(parsed);
    }
    let mut rewritten = argv.to_vec();
    rewritten[2] = "-w".to_string();
    err(&format!("{warning}\n"));
    parse_or_usage(spec, &rewritten)
}

/// Runs one command. `argv[0]` is the command's name.
pub async fn exec(zk: &Client, argv: &[String]) -> CmdResult {
    match argv[0].as_str() {
        "ls" => ls(zk, argv).await,
        "get" => get(zk, argv).await,
        "set" => set(zk, argv).await,
        "create" => create(zk, argv).await,
        "delete" => delete(zk, argv).await,
        "deleteall" => deleteall(zk, argv).await,
        "stat" => stat(zk, argv).await,
        "getAcl" => get_acl(zk, argv).await,
        "setAcl" => set_acl(zk, argv).await,
        "addauth" => addauth(zk, argv),
        "sync" => sync(zk, argv).await,
        "addWatch" => add_watch(zk, argv).await,
        "removewatches" => remove_watches(zk, argv).await,
        "getEphemerals" => get_ephemerals(zk, argv).await,
        "getAllChildrenNumber" => get_all_children_number(zk, argv).await,
        "whoami" => whoami(zk).await,
        "config" => config(zk, argv).await,
        "close" => {
            zk.close().await;
            Ok(())
        }
        "version" => version(argv),
        other => unreachable!("not a server command: {other}"),
    }
}

async fn ls(zk: &Client, argv: &[String]) -> CmdResult {
    let spec = [
        Spec('?', false),
        Spec('s', false),
        Spec('w', false),
        Spec('R', false),
    ];
    let p = parse_or_usage(&spec, argv)?;
    if p.has('?') {
        out("usage: ls [options] path\n -?   help\n -R   recurse\n -s   stat\n -w   watch\n");
    }
    let p = retain_compatibility(
        &spec,
        argv,
        p,
        "'ls path [watch]' has been deprecated. Please use 'ls [-w] path' instead.",
    )?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage("ls")));
    }
    let path = p.args[1].as_str();
    let watch = p.has('w');
    if p.has('R') {
        return visit_subtree(zk, path, watch, |p| {
            out(&format!("{p}\n"));
            std::future::ready(())
        })
        .await;
    }
    let (mut children, stat) = zk
        .get_children(path, watch, p.has('s'))
        .await
        .map_err(|e| CliError::call(e, Some(path)))?;
    children.sort();
    out(&format!("[{}]\n", children.join(", ")));
    if let Some(s) = stat {
        out(&format::stat(&s));
    }
    Ok(())
}

/// `ZKUtil.visitSubTreeDFS`: the root (which must exist), then each
/// level's sorted children before their own subtrees; nodes that vanish
/// meanwhile are skipped.
async fn visit_subtree<F, Fut>(zk: &Client, root: &str, watch: bool, mut visit: F) -> CmdResult
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    client::connect_string::validate_path(root).map_err(CliError::new)?;
    zk.get_data(root, watch)
        .await
        .map_err(|e| CliError::call(e, Some(root)))?;
    visit(root.to_string()).await;
    // An explicit stack instead of recursion: the tree's depth is not ours
    // to bound.
    let mut stack = vec![root.to_string()];
    while let Some(path) = stack.pop() {
        let children = match zk.get_children(&path, watch, false).await {
            Ok((mut c, _)) => {
                c.sort();
                c
            }
            Err(Error::Keeper(ErrorCode::NoNode)) => continue,
            Err(e) => return Err(CliError::call(e, Some(&path))),
        };
        let full: Vec<String> = children
            .iter()
            .map(|c| engine::path::join(&path, c))
            .collect();
        for f in &full {
            visit(f.clone()).await;
        }
        stack.extend(full.into_iter().rev());
    }
    Ok(())
}

async fn get(zk: &Client, argv: &[String]) -> CmdResult {
    let spec = [Spec('s', false), Spec('w', false)];
    let p = parse_or_usage(&spec, argv)?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage("get")));
    }
    let p = retain_compatibility(
        &spec,
        argv,
        p,
        "'get path [watch]' has been deprecated. Please use 'get [-s] [-w] path' instead.",
    )?;
    let path = p.args[1].as_str();
    let (data, stat) = zk
        .get_data(path, p.has('w'))
        .await
        .map_err(|e| CliError::call(e, Some(path)))?;
    match data {
        None => out("null\n"),
        Some(d) => out(&format!("{}\n", String::from_utf8_lossy(&d))),
    }
    if p.has('s') {
        out(&format::stat(&stat));
    }
    Ok(())
}

async fn set(zk: &Client, argv: &[String]) -> CmdResult {
    let p = parse_or_usage(&[Spec('s', false), Spec('v', true)], argv)?;
    if p.args.len() < 3 {
        return Err(CliError::new(usage("set")));
    }
    let path = p.args[1].as_str();
    let version = match p.value('v') {
        Some(v) => parse_int(v)?,
        None => -1,
    };
    let stat = zk
        .set_data(path, Some(p.args[2].as_bytes()), version)
        .await
        .map_err(|e| CliError::call(e, Some(path)))?;
    if p.has('s') {
        out(&format::stat(&stat));
    }
    Ok(())
}

async fn create(zk: &Client, argv: &[String]) -> CmdResult {
    let spec = [
        Spec('e', false),
        Spec('s', false),
        Spec('c', false),
        Spec('t', true),
    ];
    let p = parse_or_usage(&spec, argv)?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage("create")));
    }
    let (e, s, c, t) = (p.has('e'), p.has('s'), p.has('c'), p.has('t'));
    if c && (e || s) {
        return Err(CliError::new(
            "-c cannot be combined with -s or -e. Containers cannot be ephemeral or sequential.",
        ));
    }
    let ttl = match p.value('t') {
        Some(v) if t => Some(
            v.parse::<i64>()
                .map_err(|_| CliError::new("-t argument must be a long value"))?,
        ),
        _ => None,
    };
    if t && e {
        return Err(CliError::new("TTLs cannot be used with Ephemeral znodes"));
    }
    if t && c {
        return Err(CliError::new("TTLs cannot be used with Container znodes"));
    }
    let mode = match (e, s, c, t) {
        (true, true, _, _) => CreateMode::EphemeralSequential,
        (true, false, _, _) => CreateMode::Ephemeral,
        (false, true, _, true) => CreateMode::PersistentSequentialWithTtl,
        (false, true, _, false) => CreateMode::PersistentSequential,
        (false, false, true, _) => CreateMode::Container,
        (false, false, false, true) => CreateMode::PersistentWithTtl,
        (false, false, false, false) => CreateMode::Persistent,
    };
    if let Some(ttl) = ttl {
        if ttl <= 0 || ttl > engine::constants::TTL_MS_MAX {
            return Err(CliError::new(format!(
                "ttl must be positive and cannot be larger than: {}",
                engine::constants::TTL_MS_MAX
            )));
        }
    }
    let path = p.args[1].as_str();
    client::connect_string::validate_create_path(path, mode.is_sequential())
        .map_err(CliError::new)?;
    let data = p.args.get(2).map(|d| d.as_bytes());
    let acl = match p.args.get(3) {
        Some(a) => parse_acl(a),
        None => vec![Acl::world_all()],
    };
    if acl.is_empty() {
        // ZooKeeper.validateACL refuses it before sending, without a path.
        err(&format!(
            "{}\n",
            format::keeper_message(ErrorCode::InvalidAcl, None)
        ));
        return Err(CliError::keeper(ErrorCode::InvalidAcl, None));
    }
    match zk.create(path, data, acl, mode, ttl).await {
        Ok(created) => {
            err(&format!("Created {created}\n"));
            Ok(())
        }
        Err(Error::Keeper(ErrorCode::EphemeralOnLocalSession)) => {
            err("Unable to create ephemeral node on a local session\n");
            Err(CliError::keeper(
                ErrorCode::EphemeralOnLocalSession,
                Some(path),
            ))
        }
        Err(Error::Keeper(ErrorCode::InvalidAcl)) => {
            err(&format!(
                "{}\n",
                format::keeper_message(ErrorCode::InvalidAcl, Some(path))
            ));
            Err(CliError::keeper(ErrorCode::InvalidAcl, Some(path)))
        }
        Err(e) => Err(CliError::call(e, Some(path))),
    }
}

/// `AclParser.parse`, its complaints printed to stderr.
fn parse_acl(s: &str) -> Vec<Acl> {
    let (acl, complaints) = format::parse_acl(s);
    for c in complaints {
        err(&format!("{c}\n"));
    }
    acl
}

async fn delete(zk: &Client, argv: &[String]) -> CmdResult {
    let spec = [Spec('v', true)];
    let p = parse_or_usage(&spec, argv)?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage("delete")));
    }
    if p.args.len() > 2 {
        // The old `delete path version` form: warned about, version ignored.
        err("'delete path [version]' has been deprecated. Please use 'delete [-v version] path' instead.\n");
    }
    let path = p.args[1].as_str();
    let version = match p.value('v') {
        Some(v) => parse_int(v)?,
        None => -1,
    };
    zk.delete(path, version)
        .await
        .map_err(|e| CliError::call(e, Some(path)))
}

/// Deletes in multis of this many nodes unless `-b` says otherwise.
const DELETEALL_BATCH_DEFAULT: usize = 1000;

async fn deleteall(zk: &Client, argv: &[String]) -> CmdResult {
    let p = parse_or_usage(&[Spec('b', true)], argv)?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage("deleteall")));
    }
    let batch = match p.value('b') {
        Some(b) => b
            .parse::<i32>()
            .map_err(|_| CliError::new("-b argument must be an int value"))?,
        None => DELETEALL_BATCH_DEFAULT as i32,
    };
    let root = p.args[1].as_str();
    client::connect_string::validate_path(root).map_err(CliError::new)?;
    // ZKUtil.listSubTreeBFS: breadth first, unsorted.
    let mut tree = vec![root.to_string()];
    let mut i = 0;
    while i < tree.len() {
        let node = tree[i].clone();
        let (children, _) = zk
            .get_children(&node, false, false)
            .await
            .map_err(|e| CliError::call(e, Some(&node)))?;
        tree.extend(children.iter().map(|c| engine::path::join(&node, c)));
        i += 1;
    }
    // ZKUtil.deleteInBatch: leaves first, one multi per batch, stop at the
    // first failed batch. A batch of 0 or less never fills, as in Java.
    let mut ok = true;
    let mut ops = Vec::new();
    for (i, path) in tree.iter().enumerate().rev() {
        ops.push(WriteOp::Delete {
            path: path.clone(),
            version: -1,
        });
        if ops.len() as i64 == batch as i64 || i == 0 {
            let results = zk.multi(std::mem::take(&mut ops)).await;
            let failed = match results {
                Ok(r) => r.iter().any(|x| matches!(x, MultiResult::Error(_))),
                Err(_) => true,
            };
            if failed {
                ok = false;
                break;
            }
        }
    }
    if !ok {
        err("Failed to delete some node(s) in the subtree!\n");
    }
    Ok(())
}

async fn stat(zk: &Client, argv: &[String]) -> CmdResult {
    let spec = [Spec('w', false)];
    let p = parse_or_usage(&spec, argv)?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage("stat")));
    }
    let p = retain_compatibility(
        &spec,
        argv,
        p,
        "'stat path [watch]' has been deprecated. Please use 'stat [-w] path' instead.",
    )?;
    let path = p.args[1].as_str();
    match zk.exists(path, p.has('w')).await {
        Ok(Some(s)) => {
            out(&format::stat(&s));
            Ok(())
        }
        Ok(None) => Err(CliError::keeper(ErrorCode::NoNode, Some(path))),
        Err(e) => Err(CliError::call(e, Some(path))),
    }
}

async fn get_acl(zk: &Client, argv: &[String]) -> CmdResult {
    let p = parse_or_usage(&[Spec('s', false)], argv)?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage("getAcl")));
    }
    let path = p.args[1].as_str();
    let (acl, stat) = zk
        .get_acl(path)
        .await
        .map_err(|e| CliError::call(e, Some(path)))?;
    for a in &acl {
        out(&format::acl_line(a));
    }
    if p.has('s') {
        out(&format::stat(&stat));
    }
    Ok(())
}

async fn set_acl(zk: &Client, argv: &[String]) -> CmdResult {
    let p = parse_or_usage(&[Spec('s', false), Spec('v', true), Spec('R', false)], argv)?;
    if p.args.len() < 3 {
        return Err(CliError::new(usage("setAcl")));
    }
    let path = p.args[1].as_str();
    let acl = parse_acl(&p.args[2]);
    let version = match p.value('v') {
        Some(v) => parse_int(v)?,
        None => -1,
    };
    if p.has('R') {
        // Failures below the root are printed without a newline and do
        // not fail the command, as in zkCli.
        let acl = &acl;
        return visit_subtree(zk, path, false, |node| async move {
            if let Err(e) = zk.set_acl(&node, acl.clone(), version).await {
                match e {
                    // An empty ACL is refused by the client, without a path.
                    Error::Keeper(code) => {
                        let path = (!acl.is_empty()).then_some(node.as_str());
                        out(&format::keeper_message(code, path));
                    }
                    Error::BadPath(m) => out(&m),
                }
            }
        })
        .await;
    }
    if acl.is_empty() {
        return Err(CliError::keeper(ErrorCode::InvalidAcl, None));
    }
    let stat = zk
        .set_acl(path, acl, version)
        .await
        .map_err(|e| CliError::call(e, Some(path)))?;
    if p.has('s') {
        out(&format::stat(&stat));
    }
    Ok(())
}

fn addauth(zk: &Client, argv: &[String]) -> CmdResult {
    let p = parse_or_usage(&[], argv)?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage("addauth")));
    }
    let auth = p.args.get(2).map(|a| a.as_bytes()).unwrap_or(&[]);
    zk.add_auth(&p.args[1], auth);
    Ok(())
}

async fn sync(zk: &Client, argv: &[String]) -> CmdResult {
    let p = parse_or_usage(&[], argv)?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage("sync")));
    }
    let path = p.args[1].as_str();
    match zk.sync(path).await {
        Ok(()) => out("Sync is OK\n"),
        Err(Error::Keeper(code)) => out(&format!("Sync has failed. rc={}\n", code.code())),
        Err(Error::BadPath(m)) => return Err(CliError::new(m)),
    }
    Ok(())
}

async fn add_watch(zk: &Client, argv: &[String]) -> CmdResult {
    let p = parse_or_usage(&[Spec('m', true)], argv)?;
    if p.args.len() != 2 {
        return Err(CliError::new(usage("addWatch")));
    }
    let mode = match p.value('m').map(|m| m.to_uppercase()) {
        None => AddWatchMode::PersistentRecursive,
        Some(m) if m == "PERSISTENT" => AddWatchMode::Persistent,
        Some(m) if m == "PERSISTENT_RECURSIVE" => AddWatchMode::PersistentRecursive,
        Some(_) => return Err(CliError::new(usage("addWatch"))),
    };
    let path = p.args[1].as_str();
    match zk.add_watch(path, mode).await {
        Ok(()) => Ok(()),
        // AddWatchCommand does not catch IllegalArgumentException.
        Err(Error::BadPath(m)) => Err(CliError::uncaught("java.lang.IllegalArgumentException", &m)),
        Err(e) => Err(CliError::call(e, Some(path))),
    }
}

async fn remove_watches(zk: &Client, argv: &[String]) -> CmdResult {
    let spec = [
        Spec('c', false),
        Spec('d', false),
        Spec('a', false),
        Spec('l', false),
    ];
    let p = parse_or_usage(&spec, argv)?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage("removewatches")));
    }
    let kind = if p.has('c') {
        WatcherType::Children
    } else if p.has('d') {
        WatcherType::Data
    } else {
        WatcherType::Any
    };
    let path = p.args[1].as_str();
    zk.remove_all_watches(path, kind, p.has('l'))
        .await
        .map_err(|e| CliError::call(e, Some(path)))
}

async fn get_ephemerals(zk: &Client, argv: &[String]) -> CmdResult {
    let p = parse_or_usage(&[], argv)?;
    let prefix = p.args.get(1).map(String::as_str).unwrap_or("/");
    let list = zk
        .get_ephemerals(prefix)
        .await
        .map_err(|e| CliError::call(e, None))?;
    out(&format!("[{}]\n", list.join(", ")));
    Ok(())
}

async fn get_all_children_number(zk: &Client, argv: &[String]) -> CmdResult {
    let p = parse_or_usage(&[], argv)?;
    if p.args.len() < 2 {
        return Err(CliError::new(usage("getAllChildrenNumber")));
    }
    let path = p.args[1].as_str();
    let n = zk
        .get_all_children_number(path)
        .await
        .map_err(|e| CliError::call(e, Some(path)))?;
    out(&format!("{n}\n"));
    Ok(())
}

async fn whoami(zk: &Client) -> CmdResult {
    // ZooKeeper.whoAmI ignores the reply's error: a failure prints the
    // header alone.
    let ids = zk.who_am_i().await.unwrap_or_default();
    out("Auth scheme: User\n");
    for (scheme, user) in ids {
        out(&format!("{scheme}: {user}\n"));
    }
    Ok(())
}

async fn config(zk: &Client, argv: &[String]) -> CmdResult {
    let p = parse_or_usage(
        &[Spec('s', false), Spec('w', false), Spec('c', false)],
        argv,
    )?;
    let (data, stat) = zk
        .get_config(p.has('w'))
        .await
        .map_err(|e| CliError::call(e, Some("/zookeeper/config")))?;
    let text = match data {
        None => "null".to_string(),
        Some(d) => String::from_utf8_lossy(&d).into_owned(),
    };
    if p.has('c') {
        out(&format!("{}\n", client_config(&text)));
    } else {
        out(&format!("{text}\n"));
    }
    if p.has('s') {
        out(&format::stat(&stat));
    }
    Ok(())
}

/// `ConfigUtils.getClientConfigStr`: "version host:port,host:port" from a
/// dynamic configuration (in file order; Java's follows a hash map's).
fn client_config(config: &str) -> String {
    let mut version = "";
    let mut clients = Vec::new();
    for line in config.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k == "version" {
            version = v;
        }
        if !k.starts_with("server.") {
            continue;
        }
        if let Some((_, client)) = v.split_once(';') {
            clients.push(match client.rsplit_once(':') {
                Some((host, port)) => format!("{host}:{port}"),
                None => format!("0.0.0.0:{client}"),
            });
        }
    }
    format!("{version} {}", clients.join(","))
}

fn version(argv: &[String]) -> CmdResult {
    let p = parse_or_usage(&[], argv)?;
    if p.args.len() > 1 {
        return Err(CliError::new(usage("version")));
    }
    out(&format!(
        "ZooKeeper CLI version: corral {}\n",
        env!("CARGO_PKG_VERSION")
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_config_lists_client_addresses() {
        let c = "server.1=a:2888:3888:participant;0.0.0.0:2181\nserver.2=b:2888:3888;2182\nversion=100000000";
        assert_eq!(client_config(c), "100000000 0.0.0.0:2181,0.0.0.0:2182");
        assert_eq!(client_config(""), " ");
    }

    #[test]
    fn bad_numbers_are_javas_uncaught_exception() {
        let e = parse_int("abc").unwrap_err();
        assert!(e.fatal);
        assert_eq!(
            e.message,
            "Exception in thread \"main\" java.lang.NumberFormatException: For input string: \"abc\""
        );
    }
}
