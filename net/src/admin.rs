//! The admin HTTP server (ZooKeeper's `AdminServer`): ZooKeeper's admin
//! commands as JSON under `admin.commandURL` (default `/commands`), plus
//! `/metrics` (Prometheus text), `/health` and `/ready`.
//!
//! # Why a thread of its own, not a task on core 0
//! - It must answer during recovery, which runs before any executor starts
//!   and can take minutes on a large log: `/health` says the process is up
//!   while `/ready` says 503. An executor task could not exist yet.
//! - Rendering a large `dump` or `watches_by_path` and talking to a slow or
//!   hostile HTTP client must never take time from core 0, which runs the
//!   write pipeline and the group commit.
//! - Admin traffic is a few requests a minute, so plain blocking sockets with
//!   timeouts are the simplest correct server: one accept thread and at most
//!   `ADMIN_CONNECTIONS_MAX` short-lived connection threads.
//!
//! # How it reads a core's state
//! Connections, watches and the tree version live in each core's `Shard`,
//! which is not `Send`. The admin thread puts a question (`Ask`) in each
//! core's `Inbox` (in its `CoreStats`) and waits on a channel; a task on
//! every core polls its inbox every `INBOX_POLL` and answers from its own
//! state, with the same `stats` functions the four-letter words use. Counters
//! kept as atomics (`metrics`) are read directly. The four-letter words that
//! list or reset every core's connections and watches ask the same inboxes
//! from the core they run on (`gather_from_core`, which sleeps instead of
//! blocking so that core's own inbox task can answer).
//!
//! # HTTP
//! HTTP/1.1 (and 1.0), `GET` and `HEAD`, one request per connection
//! (`Connection: close`). The request head must arrive within
//! `ADMIN_REQUEST_TIMEOUT` and fit in `ADMIN_REQUEST_BYTES_MAX`; request
//! bodies are not read. Malformed requests get 400, unknown paths 404, other
//! methods 405, oversized heads 431, slow ones 408.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use engine::types::SessionId;
use serde_json::{json, Map, Value};
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::metrics;
use crate::server::{Clock, CoreStats, Shard};
use crate::stats::{self, ConnectionInfo, Dump, Figures, PipelineFigures, TreeFigures, VERSION};

/// Largest request head (request line and headers) we read.
pub const ADMIN_REQUEST_BYTES_MAX: usize = 8 * 1024;
/// Time a client has to send its whole request head.
pub const ADMIN_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to take our response.
pub const ADMIN_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are answered 503 and closed.
pub const ADMIN_CONNECTIONS_MAX: usize = 16;
/// How long a command waits for every core to answer.
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
/// How often each core looks at its inbox.
pub const INBOX_POLL: Duration = Duration::from_millis(10);
/// Questions an inbox may hold: one per admin connection, and room for the
/// four-letter words that list every core's connections or watches
/// (`gather_from_core`), which each hold one for about `INBOX_POLL`.
pub const INBOX_QUESTIONS_MAX: usize = 4 * ADMIN_CONNECTIONS_MAX;

const _: () = assert!(INBOX_QUESTIONS_MAX >= ADMIN_CONNECTIONS_MAX);

/// ZooKeeper's answer while the server is not serving (status 200, as
/// there).
const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// A question for one core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    /// Publish the figures that cost a walk; the tree's figures; the
    /// pipeline's on the pipeline core.
    Figures,
    Connections,
    Watches,
    Dump,
    ResetConnectionStats,
    ResetServerStats,
    /// `csnp`, asked of core 0 only.
    Snapshot,
    /// `lgif`, asked of core 0 only.
    LogInfo,
    /// `ydld` / `rqld`, asked of core 0 only.
    Handover(crate::replica::HandoverKind),
}

/// A core's answer.
#[derive(Debug)]
pub enum Answer {
    Figures(TreeFigures, Option<PipelineFigures>),
    Connections(Vec<ConnectionInfo>),
    Watches(Vec<(String, Vec<SessionId>)>),
    Dump(Dump),
    Snapshot(Result<i64, &'static str>),
    LogInfo(crate::server::LogInfo),
    Handover(Result<engine::zab::ServerId, engine::zab::HandoverRefused>),
    Done,
}

struct Question {
    ask: Ask,
    reply: mpsc::Sender<(u16, Answer)>,
}

/// A core's mailbox for the admin thread. `pending` lets the core's poll
/// skip the lock when there is nothing (the usual case).
#[derive(Default)]
pub struct Inbox {
    pending: AtomicBool,
    questions: Mutex<Vec<Question>>,
}

impl Inbox {
    fn post(&self, q: Question) -> bool {
        let mut qs = self
            .questions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if qs.len() >= INBOX_QUESTIONS_MAX {
            return false;
        }
        qs.push(q);
        self.pending.store(true, Ordering::Release);
        true
    }

    fn take(&self) -> Vec<Question> {
        if !self.pending.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(
            &mut *self
                .questions
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

fn answer(shard: &Shard, ask: Ask) -> Answer {
    match ask {
        Ask::Figures => {
            shard.publish_slow_stats();
            let tree = stats::tree_figures(&shard.state.borrow().view);
            Answer::Figures(tree, stats::pipeline_figures(shard))
        }
        Ask::Connections => Answer::Connections(stats::connections(shard)),
        Ask::Watches => Answer::Watches(stats::data_watches_by_path(shard)),
        Ask::Dump => Answer::Dump(stats::dump(shard)),
        Ask::ResetConnectionStats => {
            stats::reset_connection_stats(shard);
            Answer::Done
        }
        Ask::ResetServerStats => {
            stats::reset_server_stats(shard);
            Answer::Done
        }
        Ask::Snapshot => match crate::server::snapshot_now(shard) {
            Some(r) => Answer::Snapshot(r),
            None => Answer::Done,
        },
        Ask::LogInfo => match crate::server::log_info(shard) {
            Some(i) => Answer::LogInfo(i),
            None => Answer::Done,
        },
        Ask::Handover(kind) => match crate::server::handover(shard, kind) {
            Some(r) => Answer::Handover(r),
            None => Answer::Done,
        },
    }
}

/// Answers the admin thread's questions on this core.
pub fn spawn_inbox_task(shard: Rc<Shard>) {
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(INBOX_POLL).await;
            for q in shard.stats[shard.core as usize].inbox.take() {
                // The asker may have given up; that is fine.
                let _ = q.reply.send((shard.core, answer(&shard, q.ask)));
            }
        }
    })
    .detach();
}

/// Puts `ask` in the given cores' inboxes; the answers arrive on the
/// receiver. None if an inbox is full.
fn post(stats: &[CoreStats], cores: &[usize], ask: Ask) -> Option<mpsc::Receiver<(u16, Answer)>> {
    let (tx, rx) = mpsc::channel();
    for &core in cores {
        let posted = stats[core].inbox.post(Question {
            ask,
            reply: tx.clone(),
        });
        if !posted {
            warn!(core, "a core's inbox is full; is the core stuck?");
            return None;
        }
    }
    Some(rx)
}

fn in_core_order(mut answers: Vec<(u16, Answer)>) -> Vec<Answer> {
    answers.sort_by_key(|(core, _)| *core);
    answers.into_iter().map(|(_, a)| a).collect()
}

/// Asks the given cores and waits for all of them; None on timeout. Blocks:
/// for the admin thread, never for a core's executor (`gather_from_core`).
fn gather(stats: &[CoreStats], cores: &[usize], ask: Ask) -> Option<Vec<Answer>> {
    let rx = post(stats, cores, ask)?;
    let deadline = Instant::now() + GATHER_TIMEOUT;
    let mut answers = Vec::with_capacity(cores.len());
    while answers.len() < cores.len() {
        let left = deadline.checked_duration_since(Instant::now())?;
        answers.push(rx.recv_timeout(left).ok()?);
    }
    Some(in_core_order(answers))
}

/// Asks every core, from a task on one of them (a four-letter word), and
/// waits without blocking the executor: the asking core's own inbox task
/// answers while this one sleeps. None if not every core answered within
/// `GATHER_TIMEOUT`.
pub async fn gather_from_core(stats: &[CoreStats], ask: Ask) -> Option<Vec<Answer>> {
    let cores: Vec<usize> = (0..stats.len()).collect();
    gather_from_cores(stats, &cores, ask).await
}

/// Asks core 0 alone (it owns the peer, the log and the snapshots), from a
/// task on any core.
pub async fn ask_core_zero(stats: &[CoreStats], ask: Ask) -> Option<Answer> {
    gather_from_cores(stats, &[0], ask).await?.pop()
}

async fn gather_from_cores(stats: &[CoreStats], cores: &[usize], ask: Ask) -> Option<Vec<Answer>> {
    let rx = post(stats, cores, ask)?;
    let deadline = Instant::now() + GATHER_TIMEOUT;
    let mut answers = Vec::with_capacity(cores.len());
    while answers.len() < cores.len() {
        match rx.try_recv() {
            Ok(a) => answers.push(a),
            Err(mpsc::TryRecvError::Disconnected) => return None,
            Err(mpsc::TryRecvError::Empty) => {
                if Instant::now() >= deadline {
                    return None;
                }
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    Some(in_core_order(answers))
}

/// Every core's connections, from their answers to `Ask::Connections`, in
/// the order they were accepted.
pub fn connections_of(answers: Vec<Answer>) -> Vec<ConnectionInfo> {
    let mut v: Vec<ConnectionInfo> = answers
        .into_iter()
        .flat_map(|a| match a {
            Answer::Connections(v) => v,
            other => panic!("a core answered Connections with {other:?}"),
        })
        .collect();
    v.sort_by_key(|c| (c.established_ms, c.peer));
    v
}

/// Every core's data watches, from their answers to `Ask::Watches`: path
/// -> sorted distinct sessions.
pub fn watches_of(answers: Vec<Answer>) -> BTreeMap<String, Vec<SessionId>> {
    stats::merge_watches(answers.into_iter().map(|a| match a {
        Answer::Watches(v) => v,
        other => panic!("a core answered Watches with {other:?}"),
    }))
}

struct Admin {
    config: Arc<Config>,
    stats: Arc<Vec<CoreStats>>,
    clock: Clock,
    started: Instant,
    active: AtomicUsize,
}

impl Admin {
    fn all_cores(&self) -> Vec<usize> {
        (0..self.stats.len()).collect()
    }

    /// The tree's and the pipeline's figures, from the pipeline core (whose
    /// view is the newest), after every core published its own.
    fn figures(&self) -> Option<Figures> {
        let answers = gather(&self.stats, &self.all_cores(), Ask::Figures)?;
        match answers.into_iter().next()? {
            Answer::Figures(tree, Some(pipeline)) => Some(Figures { tree, pipeline }),
            other => panic!("core 0 answered Figures with {other:?}"),
        }
    }

    fn uptime_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }
}

/// Starts the admin server on its own thread, unless disabled. A port that
/// cannot be bound is logged and the server goes on serving clients
/// without it, as a ZooKeeper ensemble member does (a standalone ZooKeeper
/// exits instead; we prefer serving clients to refusing over a monitoring
/// port).
pub fn start(config: Arc<Config>, stats: Arc<Vec<CoreStats>>, clock: Clock) {
    if !config.admin_enable_server {
        info!("admin server disabled (admin.enableServer=false)");
        return;
    }
    let addr = config.admin_addr();
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            error!(
                %addr,
                "cannot start the admin server: {e}. Serving clients without it; \
                 set admin.serverPort (--admin-port) to a free port or admin.enableServer=false"
            );
            return;
        }
    };
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let admin = Arc::new(Admin {
        config,
        stats,
        clock,
        started: Instant::now(),
        active: AtomicUsize::new(0),
    });
    let url = admin.config.admin_command_url.clone();
    let spawned = std::thread::Builder::new()
        .name("corral-admin".into())
        .spawn(move || accept_loop(listener, admin));
    match spawned {
        Ok(_) => info!(addr = %local, command_url = %url, "admin server listening"),
        Err(e) => error!("cannot start the admin server thread: {e}; serving clients without it"),
    }
}

fn accept_loop(listener: TcpListener, admin: Arc<Admin>) {
    for stream in listener.incoming() {
        let mut stream = match stream {
            Ok(s) => s,
            Err(e) => {
                warn!("admin: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let Some(slot) = Slot::take(&admin) else {
            let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
            let _ = stream.write_all(&encode(&text(503, "too many admin connections\n"), false));
            continue;
        };
        let a = admin.clone();
        let spawned = std::thread::Builder::new()
            .name("corral-admin-conn".into())
            .spawn(move || {
                let _slot = slot;
                serve(&a, stream);
            });
        if let Err(e) = spawned {
            warn!("admin: cannot start a connection thread: {e}");
        }
    }
}

/// One of the `ADMIN_CONNECTIONS_MAX` connection slots, given back when
/// dropped, also if a connection thread panics.
struct Slot(Arc<Admin>);

impl Slot {
    fn take(admin: &Arc<Admin>) -> Option<Slot> {
        if admin.active.fetch_add(1, Ordering::AcqRel) >= ADMIN_CONNECTIONS_MAX {
            admin.active.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(admin.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An HTTP response: always `Connection: close`.
#[derive(Debug)]
struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

fn text(status: u16, body: &str) -> Response {
    Response {
        status,
        content_type: "text/plain; charset=utf-8",
        body: body.as_bytes().to_vec(),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

fn encode(r: &Response, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    if r.status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(&r.body);
    }
    out
}

#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    /// The peer closed before sending anything.
    Closed,
    /// The peer closed mid-request.
    Truncated,
    TooLarge,
    Timeout,
}

/// Reads up to the blank line that ends the request head.
fn read_head(s: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, HeadError> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = head_end(&buf) {
            buf.truncate(end);
            return Ok(buf);
        }
        if buf.len() > ADMIN_REQUEST_BYTES_MAX {
            return Err(HeadError::TooLarge);
        }
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or(HeadError::Timeout)?;
        let _ = s.set_read_timeout(Some(left));
        match s.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err(HeadError::Closed),
            Ok(0) => return Err(HeadError::Truncated),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Err(HeadError::Timeout)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(HeadError::Truncated),
        }
    }
}

/// Where the head ends (before `\r\n\r\n`, or a bare `\n\n`), if it has.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Request {
    head_only: bool,
    /// The path without its query string.
    path: String,
}

/// Parses a request head; an error is the response to send.
fn parse(head: &[u8]) -> Result<Request, Response> {
    let bad = |why: &str| text(400, &format!("bad request: {why}\n"));
    let head = std::str::from_utf8(head).map_err(|_| bad("not UTF-8"))?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected METHOD TARGET HTTP/1.1"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(bad("malformed method"));
    }
    if !version.starts_with("HTTP/") {
        return Err(bad("malformed version"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(text(505, "only HTTP/1.0 and HTTP/1.1\n"));
    }
    if !target.starts_with('/') || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(bad("malformed target"));
    }
    for line in lines {
        let Some((name, _)) = line.split_once(':') else {
            return Err(bad("malformed header"));
        };
        if name.is_empty() || name.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(bad("malformed header name"));
        }
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err(text(405, "only GET and HEAD\n")),
    };
    let path = target.split('?').next().unwrap_or_default().to_string();
    Ok(Request { head_only, path })
}

fn serve(admin: &Admin, mut s: TcpStream) {
    let _ = s.set_write_timeout(Some(ADMIN_WRITE_TIMEOUT));
    let peer = s.peer_addr().ok();
    let deadline = Instant::now() + ADMIN_REQUEST_TIMEOUT;
    let (response, head_only) = match read_head(&mut s, deadline) {
        Err(HeadError::Closed) => return,
        Err(HeadError::Truncated) => (text(400, "bad request: incomplete\n"), false),
        Err(HeadError::TooLarge) => (
            text(
                431,
                &format!("request head over {ADMIN_REQUEST_BYTES_MAX} bytes\n"),
            ),
            false,
        ),
        Err(HeadError::Timeout) => (text(408, "request timeout\n"), false),
        Ok(head) => match parse(&head) {
            Err(r) => (r, false),
            Ok(req) => (route(admin, &req.path), req.head_only),
        },
    };
    if response.status >= 400 && response.status != 404 {
        debug!(?peer, status = response.status, "admin: refused a request");
    }
    if s.write_all(&encode(&response, head_only)).is_err() {
        return;
    }
    // Closing a socket with unread input sends a reset, which can destroy
    // the response before the client reads it: stop writing, then drain a
    // little of what the client still sends.
    let _ = s.shutdown(Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < 256 * 1024 {
        match s.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

fn route(admin: &Admin, path: &str) -> Response {
    let base = admin.config.admin_command_url.as_str();
    match path {
        "/health" => text(200, "ok\n"),
        "/ready" => {
            if metrics::SERVER.ready() {
                text(200, "ready\n")
            } else {
                text(503, "not ready\n")
            }
        }
        "/metrics" => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: prometheus(admin).into_bytes(),
        },
        p if p == base || p.strip_prefix(base) == Some("/") => Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: command_links(base).into_bytes(),
        },
        p => match p.strip_prefix(base).and_then(|r| r.strip_prefix('/')) {
            Some(name) => {
                let (status, v) = command(admin, name);
                let mut body = serde_json::to_vec_pretty(&v).expect("a JSON value serializes");
                body.push(b'\n');
                Response {
                    status,
                    content_type: "application/json",
                    body,
                }
            }
            None => text(404, "not found\n"),
        },
    }
}

/// Commands: primary name (the one in responses), aliases (four-letter
/// words among them), and whether it needs a serving server.
const COMMANDS: &[(&str, &[&str], bool)] = &[
    ("configuration", &["conf", "config"], true),
    ("connection_stat_reset", &["crst"], true),
    ("connections", &["cons"], true),
    // ClickHouse Keeper's csnp and lgif (not in ZooKeeper).
    ("create_snapshot", &["csnp"], true),
    ("dirs", &[], true),
    ("dump", &[], true),
    ("environment", &["env", "envi"], false),
    ("is_read_only", &["isro"], true),
    ("last_snapshot", &["lsnp"], true),
    ("leader", &["lead"], true),
    ("log_info", &["lgif"], true),
    // ClickHouse Keeper's rqld and ydld: leadership handover.
    ("request_leadership", &["rqld"], true),
    // ZooKeeper answers monitor while not serving, from whatever it has;
    // ours needs the cores for the tree's figures.
    ("monitor", &["mntr"], true),
    ("observer_connection_stat_reset", &["orst"], true),
    ("observers", &["obsr"], true),
    ("ruok", &[], true),
    ("server_stats", &["srvr"], true),
    ("stat_reset", &["srst"], true),
    ("stats", &["stat"], true),
    ("voting_view", &[], true),
    ("watch_summary", &["wchs"], true),
    ("watches", &["wchc"], true),
    ("watches_by_path", &["wchp"], true),
    ("yield_leadership", &["ydld"], true),
    ("zabstate", &[], false),
];

/// The names a command answers to, primary first; None if unknown.
pub fn command_names(name: &str) -> Option<(&'static str, bool)> {
    COMMANDS
        .iter()
        .find(|(primary, aliases, _)| *primary == name || aliases.contains(&name))
        .map(|(primary, _, serving)| (*primary, *serving))
}

/// As ZooKeeper's `/commands`: a link per primary name, sorted.
fn command_links(base: &str) -> String {
    let mut names: Vec<&str> = COMMANDS.iter().map(|(p, _, _)| *p).collect();
    names.sort_unstable();
    names
        .iter()
        .map(|n| format!("<a href=\"{base}/{n}\">{n}</a>\n<br/>\n"))
        .collect()
}

/// ZooKeeper rounds averages to 4 decimals.
fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

/// Runs a command: (HTTP status, JSON). As ZooKeeper, every answer carries
/// `command` (the primary name, or the name asked if unknown) and `error`
/// (null on success), and an unknown command or a server that is not
/// serving is still status 200.
fn command(admin: &Admin, name: &str) -> (u16, Value) {
    // A command's own `error` (leader's) wins, as in ZooKeeper's toMap.
    let finish = |command: &str, mut m: Map<String, Value>, error: Option<String>| {
        m.insert("command".into(), json!(command));
        match error {
            Some(e) => {
                m.insert("error".into(), json!(e));
            }
            None => {
                m.entry("error").or_insert(Value::Null);
            }
        }
        Value::Object(m)
    };
    let Some((primary, needs_serving)) = command_names(name) else {
        return (
            200,
            finish(name, Map::new(), Some(format!("Unknown command: {name}"))),
        );
    };
    if needs_serving && !metrics::SERVER.ready() {
        return (200, finish(name, Map::new(), Some(NOT_SERVING.into())));
    }
    match run_command(admin, primary) {
        Some(Value::Object(m)) => (200, finish(primary, m, None)),
        Some(_) => unreachable!("commands answer objects"),
        None => (
            503,
            finish(
                primary,
                Map::new(),
                Some(format!(
                    "the server's cores did not answer within {} ms",
                    GATHER_TIMEOUT.as_millis()
                )),
            ),
        ),
    }
}

/// `ydld` / `rqld` as admin commands: starts the handover on core 0 and
/// waits (at most `HANDOVER_REPORT_WAIT`, on this admin thread) for the
/// outcome. `moved` says whether leadership moved as asked; `message` is
/// the four-letter word's text; `leader` the leader seen at the end.
fn handover_json(admin: &Admin, kind: crate::replica::HandoverKind) -> Option<Value> {
    use crate::replica::{handover_outcome, handover_refused_text};
    let answers = gather(&admin.stats, &[0], Ask::Handover(kind))?;
    let asked = match answers.into_iter().next() {
        Some(Answer::Handover(Ok(asked))) => asked,
        Some(Answer::Handover(Err(why))) => {
            return Some(json!({
                "moved": false,
                "leader": crate::replica::leader_id(),
                "message": handover_refused_text(kind, why),
            }));
        }
        other => panic!("core 0 answered Handover with {other:?}"),
    };
    let me = admin.config.my_id.unwrap_or(0);
    let started = Instant::now();
    let (moved, message) = loop {
        if let Some(outcome) = handover_outcome(kind, me, asked, started) {
            break outcome;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Some(json!({
        "moved": moved,
        "leader": crate::replica::leader_id(),
        "message": message,
    }))
}

/// `lgif` as ClickHouse Keeper names it: indexes are zxids, terms are
/// epochs (a zxid's upper 32 bits); the zxids also in hex.
pub fn log_info_fields(i: &crate::server::LogInfo) -> Vec<(&'static str, i64)> {
    let epoch = |z: i64| if z > 0 { z >> 32 } else { 0 };
    vec![
        ("first_log_idx", i.first_log_zxid),
        ("first_log_term", epoch(i.first_log_zxid)),
        ("last_log_idx", i.last_log_zxid),
        ("last_log_term", epoch(i.last_log_zxid)),
        ("last_committed_log_idx", i.last_committed_zxid),
        ("last_snapshot_idx", i.last_snapshot_zxid.max(0)),
    ]
}

fn log_info_json(i: &crate::server::LogInfo) -> Value {
    let mut m = Map::new();
    for (k, v) in log_info_fields(i) {
        m.insert(k.into(), json!(v));
    }
    Value::Object(m)
}

fn object(v: Value) -> Option<Value> {
    assert!(v.is_object());
    Some(v)
}

/// A command's own fields; None if the cores did not answer in time.
fn run_command(admin: &Admin, primary: &str) -> Option<Value> {
    match primary {
        "ruok" | "connection_stat_reset" | "observer_connection_stat_reset" | "stat_reset" => {
            let ask = match primary {
                "connection_stat_reset" => Some(Ask::ResetConnectionStats),
                "stat_reset" => Some(Ask::ResetServerStats),
                _ => None,
            };
            if let Some(ask) = ask {
                gather(&admin.stats, &admin.all_cores(), ask)?;
            }
            object(json!({}))
        }
        "configuration" => {
            let c = stats::conf(&admin.config);
            object(json!({
                "client_port": c.client_port,
                "data_dir": c.data_dir,
                "data_log_dir": c.data_log_dir,
                "tick_time": c.tick_time_ms,
                "max_client_cnxns": c.max_client_cnxns,
                "min_session_timeout": c.min_session_timeout_ms,
                "max_session_timeout": c.max_session_timeout_ms,
                "server_id": c.server_id,
                "client_port_listen_backlog": -1,
            }))
        }
        "connections" => {
            let conns = connections(admin)?;
            let v: Vec<Value> = conns.iter().map(connection_full).collect();
            object(json!({ "connections": v, "secure_connections": [] }))
        }
        "dirs" => {
            let d = stats::dirs(&admin.config);
            object(json!({ "datadir_size": d.datadir_size, "logdir_size": d.logdir_size }))
        }
        "create_snapshot" => {
            let answers = gather(&admin.stats, &[0], Ask::Snapshot)?;
            match answers.into_iter().next() {
                Some(Answer::Snapshot(Ok(zxid))) => object(json!({
                    "scheduled": true,
                    "zxid": format!("{zxid:x}"),
                })),
                Some(Answer::Snapshot(Err(why))) => object(json!({
                    "scheduled": false,
                    "reason": why,
                })),
                other => panic!("core 0 answered Snapshot with {other:?}"),
            }
        }
        "request_leadership" | "yield_leadership" => {
            let kind = if primary == "yield_leadership" {
                crate::replica::HandoverKind::Yield
            } else {
                crate::replica::HandoverKind::Request
            };
            object(handover_json(admin, kind)?)
        }
        "log_info" => {
            let answers = gather(&admin.stats, &[0], Ask::LogInfo)?;
            let Some(Answer::LogInfo(i)) = answers.into_iter().next() else {
                panic!("core 0 answered LogInfo with something else");
            };
            object(log_info_json(&i))
        }
        "dump" => {
            let answers = gather(&admin.stats, &[0], Ask::Dump)?;
            let Some(Answer::Dump(d)) = answers.into_iter().next() else {
                panic!("core 0 answered Dump with something else");
            };
            let expiry: Map<String, Value> = d
                .expiry
                .iter()
                .map(|(t, ids)| (t.to_string(), json!(ids)))
                .collect();
            let ephemerals: Map<String, Value> = d
                .ephemerals
                .iter()
                .map(|(s, paths)| (s.to_string(), json!(paths)))
                .collect();
            object(json!({
                "expiry_time_to_session_ids": expiry,
                "session_id_to_ephemeral_paths": ephemerals,
            }))
        }
        "environment" => {
            let m: Map<String, Value> = stats::environment(admin.stats.len())
                .into_iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            Some(Value::Object(m))
        }
        "is_read_only" => object(json!({
            "read_only": crate::replica::server_state() == "read-only"
        })),
        "last_snapshot" => {
            // As ZooKeeper: the zxid in hex (Long.toHexString, so -1 when
            // there is none is ffffffffffffffff) and seconds since the epoch.
            let zxid = metrics::SERVER.snapshot_last_zxid.load(Ordering::Relaxed);
            let ms = metrics::SERVER
                .snapshot_last_time_ms
                .load(Ordering::Relaxed);
            object(json!({
                "zxid": format!("{:x}", zxid),
                "timestamp": if ms < 0 { -1 } else { ms / 1000 },
            }))
        }
        // A standalone ZooKeeper 3.8 answers exactly these (measured); an
        // ensemble member names its leader and the voting members.
        "leader" => match crate::replica::leader_id() {
            Some(id) if !admin.config.servers.is_empty() => {
                let ip = admin
                    .config
                    .servers
                    .iter()
                    .find(|s| s.id == id)
                    .map(|s| s.host.clone());
                object(json!({
                    "is_leader": crate::replica::server_state() == "leader",
                    "leader_id": id,
                    "leader_ip": ip,
                }))
            }
            _ => object(json!({ "error": "server is not initialized" })),
        },
        "observers" => object(json!({ "synced_observers": 0, "observers": [] })),
        "voting_view" => {
            let view: Map<String, Value> = admin
                .config
                .servers
                .iter()
                .filter(|s| !s.observer)
                .map(|s| {
                    let client = s.client.clone().unwrap_or_default();
                    let addr = format!(
                        "{}:{}:{}:participant{}",
                        s.host,
                        s.quorum_port,
                        s.election_port,
                        if client.is_empty() {
                            String::new()
                        } else {
                            format!(";{client}")
                        }
                    );
                    (s.id.to_string(), json!([addr]))
                })
                .collect();
            object(json!({ "current_config": view }))
        }
        "zabstate" => object(json!({ "voting": false, "zabstate": "" })),
        "monitor" => monitor(admin),
        "server_stats" => server_stats(admin),
        "stats" => {
            let Some(Value::Object(mut m)) = server_stats(admin) else {
                return None;
            };
            let conns = connections(admin)?;
            let brief: Vec<Value> = conns.iter().map(connection_brief).collect();
            m.insert("connections".into(), json!(brief));
            m.insert("secure_connections".into(), json!([]));
            Some(Value::Object(m))
        }
        // As ZooKeeper's: data watches only (its `dataWatches` table),
        // like wchs, wchc and wchp on the client port.
        "watch_summary" => {
            let summary = stats::watch_summary(&watches(admin)?);
            object(json!({
                "num_connections": summary.connections,
                "num_paths": summary.paths,
                "num_total_watches": summary.watches,
            }))
        }
        "watches" => {
            let m: Map<String, Value> = stats::watches_by_session(&watches(admin)?)
                .into_iter()
                .map(|(s, paths)| (s.to_string(), json!(paths)))
                .collect();
            object(json!({ "session_id_to_watched_paths": m }))
        }
        "watches_by_path" => {
            let m: Map<String, Value> = watches(admin)?
                .into_iter()
                .map(|(p, s)| (p, json!(s)))
                .collect();
            object(json!({ "path_to_session_ids": m }))
        }
        other => unreachable!("command {other} is listed but not implemented"),
    }
}

/// Every core's connections.
fn connections(admin: &Admin) -> Option<Vec<ConnectionInfo>> {
    gather(&admin.stats, &admin.all_cores(), Ask::Connections).map(connections_of)
}

/// Every core's data watches, path -> sorted distinct sessions.
fn watches(admin: &Admin) -> Option<BTreeMap<String, Vec<SessionId>>> {
    gather(&admin.stats, &admin.all_cores(), Ask::Watches).map(watches_of)
}

/// ZooKeeper's `ServerCnxn.getConnectionInfo(brief=true)`.
fn connection_brief(c: &ConnectionInfo) -> Value {
    json!({
        "remote_socket_address": c.peer.to_string(),
        "interest_ops": 1,
        "outstanding_requests": c.queued,
        "packets_received": c.received,
        "packets_sent": c.sent,
    })
}

/// ZooKeeper's `ServerCnxn.getConnectionInfo(brief=false)`. corral does
/// not track per connection the last operation, cxid, response time or
/// latency: those carry ZooKeeper's values for "none yet".
fn connection_full(c: &ConnectionInfo) -> Value {
    let mut v = connection_brief(c);
    let m = v.as_object_mut().expect("an object");
    for (k, val) in [
        ("session_id", json!(c.session)),
        ("last_operation", json!("NA")),
        ("established", json!(c.established_ms)),
        ("session_timeout", json!(c.timeout_ms)),
        ("last_cxid", json!(-1)),
        ("last_zxid", json!(c.last_zxid)),
        ("last_response_time", json!(0)),
        ("last_latency", json!(0)),
        ("min_latency", json!(0)),
        ("avg_latency", json!(0)),
        ("max_latency", json!(0)),
    ] {
        m.insert(k.into(), val);
    }
    v
}

/// `srvr`: ZooKeeper's `server_stats` (a `ServerStats` in snake case) and
/// friends.
fn server_stats(admin: &Admin) -> Option<Value> {
    let f = admin.figures()?;
    let t = stats::totals(&admin.stats);
    let l = stats::latency(&admin.stats);
    let d = stats::dirs(&admin.config);
    let auth_failed: u64 = admin
        .stats
        .iter()
        .map(|c| c.metrics.auth_failures.load(Ordering::Relaxed))
        .sum();
    // corral does not record reply sizes; -1 is ZooKeeper's "none yet".
    let buffers = json!({ "last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1 });
    object(json!({
        "version": format!("{VERSION}, built on corral"),
        "read_only": false,
        "server_stats": {
            "packets_sent": t.sent,
            "packets_received": t.received,
            "fsync_threshold_exceed_count":
                metrics::SERVER.fsync_threshold_exceeded.load(Ordering::Relaxed),
            "client_response_stats": buffers.clone(),
            "data_dir_size": d.datadir_size,
            "log_dir_size": d.logdir_size,
            "provider_null": false,
            "server_state": crate::replica::server_state(),
            "last_processed_zxid": f.tree.last_zxid,
            "outstanding_requests": t.outstanding,
            "avg_latency": round4(l.avg_ms),
            "max_latency": l.max_ms,
            "min_latency": l.min_ms,
            "num_alive_client_connections": t.connections,
            "auth_failed_count": auth_failed,
            "non_mtlsremote_conn_count": 0,
            "non_mtlslocal_conn_count": 0,
            "uptime": admin.uptime_ms(),
        },
        "client_response": buffers,
        "node_count": f.tree.node_count,
    }))
}

/// `mntr`: ZooKeeper's key names (without the `zk_` of the text form)
/// for what corral measures, summaries as ZooKeeper's `avg_/min_/max_/
/// cnt_/sum_` in ms, and corral's own figures with a `corral_` prefix.
fn monitor(admin: &Admin) -> Option<Value> {
    let f = admin.figures()?;
    let t = stats::totals(&admin.stats);
    let l = stats::latency(&admin.stats);
    let (open_fds, max_fds) = stats::file_descriptors();
    let auth_failed: u64 = admin
        .stats
        .iter()
        .map(|c| c.metrics.auth_failures.load(Ordering::Relaxed))
        .sum();
    let mut m = Map::new();
    for (k, v) in [
        ("version", json!(format!("{VERSION}, built on corral"))),
        ("server_state", json!(crate::replica::server_state())),
        ("ephemerals_count", json!(f.tree.ephemerals_count)),
        ("num_alive_connections", json!(t.connections)),
        ("avg_latency", json!(round4(l.avg_ms))),
        ("outstanding_requests", json!(t.outstanding)),
        ("znode_count", json!(f.tree.node_count)),
        ("global_sessions", json!(f.pipeline.sessions)),
        ("local_sessions", json!(0)),
        ("packets_sent", json!(t.sent)),
        ("packets_received", json!(t.received)),
        ("watch_count", json!(t.watches)),
        ("auth_failed_count", json!(auth_failed)),
        ("min_latency", json!(l.min_ms)),
        ("max_latency", json!(l.max_ms)),
        ("approximate_data_size", json!(f.tree.approximate_data_size)),
        ("open_file_descriptor_count", json!(open_fds)),
        ("max_file_descriptor_count", json!(max_fds)),
        ("uptime", json!(admin.uptime_ms())),
        ("corral_cores", json!(admin.stats.len())),
        (
            "corral_last_zxid",
            json!(format!("0x{:x}", f.tree.last_zxid)),
        ),
        ("corral_pipeline_outstanding", json!(f.pipeline.outstanding)),
        (
            "corral_sessions_expired",
            json!(metrics::SERVER.sessions_expired.load(Ordering::Relaxed)),
        ),
    ] {
        m.insert(k.into(), v);
    }
    for (k, v) in crate::replica::leader_figures().into_iter().flatten() {
        m.insert(k.into(), json!(v));
    }
    let s = &metrics::SERVER;
    for (name, h, unit) in [
        ("fsynctime", s.log_sync_us.snapshot(), 1000.0),
        ("snapshottime", s.snapshot_us.snapshot(), 1000.0),
        ("sync_processor_batch_size", s.batch_records.snapshot(), 1.0),
        ("election_time", s.election_ms.snapshot(), 1.0),
    ] {
        let n = h.count();
        let (min, max) = if n == 0 {
            (0.0, 0.0)
        } else {
            (h.min as f64 / unit, h.max as f64 / unit)
        };
        let sum = h.sum as f64 / unit;
        let avg = if n == 0 { 0.0 } else { sum / n as f64 };
        m.insert(format!("avg_{name}"), json!(round4(avg)));
        m.insert(format!("min_{name}"), json!(round4(min)));
        m.insert(format!("max_{name}"), json!(round4(max)));
        m.insert(format!("cnt_{name}"), json!(n));
        m.insert(format!("sum_{name}"), json!(round4(sum)));
    }
    Some(Value::Object(m))
}

/// `/metrics`. Figures that need the cores are left out while the server
/// is not serving or if the cores do not answer in time.
fn prometheus(admin: &Admin) -> String {
    let figures = if metrics::SERVER.ready() {
        admin.figures()
    } else {
        None
    };
    metrics::render(&metrics::Render {
        stats: &admin.stats,
        figures,
        uptime_ms: admin.uptime_ms(),
        file_descriptors: stats::file_descriptors(),
        wall_ms: admin.clock.now_ms(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Result<Request, u16> {
        parse(s.as_bytes()).map_err(|r| r.status)
    }

    #[test]
    fn request_lines() {
        assert_eq!(
            req("GET /commands/ruok?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*"),
            Ok(Request {
                head_only: false,
                path: "/commands/ruok".into()
            })
        );
        assert_eq!(req("HEAD /metrics HTTP/1.0").map(|r| r.head_only), Ok(true));
        assert_eq!(req("POST /metrics HTTP/1.1"), Err(405));
        assert_eq!(req("GET /metrics HTTP/2.0"), Err(505));
        assert_eq!(req("GET /metrics"), Err(400));
        assert_eq!(req("GET  /metrics HTTP/1.1"), Err(400));
        assert_eq!(req("get /metrics HTTP/1.1"), Err(400));
        assert_eq!(req("GET metrics HTTP/1.1"), Err(400));
        assert_eq!(req("GET /metrics HTTP/1.1\r\nno colon"), Err(400));
        assert_eq!(req("\u{0}\u{ff}garbage"), Err(400));
        assert_eq!(parse(&[0xff, 0xfe, b' ']).unwrap_err().status, 400);
    }

    #[test]
    fn head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn every_four_letter_word_with_a_command_resolves() {
        for w in [
            "ruok", "srvr", "stat", "mntr", "conf", "cons", "crst", "srst", "envi", "wchs", "wchc",
            "wchp", "dump", "dirs", "isro", "csnp", "lgif", "rqld", "ydld",
        ] {
            assert!(command_names(w).is_some(), "{w}");
        }
        assert_eq!(command_names("srvr"), Some(("server_stats", true)));
        assert_eq!(command_names("stat"), Some(("stats", true)));
        assert_eq!(command_names("nope"), None);
    }

    #[test]
    fn responses_close_and_state_their_length() {
        let r = encode(&text(404, "not found\n"), false);
        let s = String::from_utf8(r).unwrap();
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"), "{s}");
        assert!(s.contains("Content-Length: 10\r\n"));
        assert!(s.contains("Connection: close\r\n"));
        assert!(s.ends_with("\r\n\r\nnot found\n"));
        let h = String::from_utf8(encode(&text(200, "ok\n"), true)).unwrap();
        assert!(h.ends_with("\r\n\r\n"), "{h}");
    }
}
