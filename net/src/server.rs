//! The per-core runtime: one glommio executor pinned per core, each
//! accepting on the client port (SO_REUSEPORT) and owning the connections it
//! accepted. Core 0 also runs the write pipeline and the log.
//!
//! Data flow (see docs/ARCHITECTURE.md for why the ordering holds):
//! - A read is answered on the connection's core from that core's view of
//!   the tree, unless an earlier write of the same session is still in
//!   flight, in which case it waits behind it in the session's queue.
//! - A write is sent (batched per core turn) to the pipeline core, prepared,
//!   logged with group commit, applied once durable and published to every
//!   core as one `CommittedBatch`. Each core, in zxid order: fires its own
//!   watches, replies to its own sessions' writes, switches its view to the
//!   batch's tree version, then answers the reads that were waiting.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use engine::acl::{self, AuthInfo};
use engine::apply::{self, ReadContext};
use engine::op::{ReadOp, WriteOp};
use engine::pipeline::{CommittedBatch, Origin, Outcome, Submission};
use engine::tree::DataTree;
use engine::types::{keeper_state, ErrorCode, Id, SessionId};
use engine::watch::WatchManager;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::channels::shared_channel::{self, ConnectedSender};
use glommio::net::{TcpListener, TcpStream};
use glommio::{LocalExecutorBuilder, Placement};
use storage::Wal;

use crate::replica::{Ensemble, PeerCore, ToShard};
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::fourlw;
use crate::metrics::{self, bump, RequestKind};
use crate::proto::{self, Request, XID_PING};

/// Requests a session may have queued on its core before we stop reading
/// from its socket (ZooKeeper's per-connection throttle).
pub const SESSION_OUTSTANDING_MAX: usize = 1000;
/// Reply bytes buffered for a connection before we stop reading from it.
pub const CONN_OUT_BYTES_HIGH: usize = 4 * 1024 * 1024;
/// Reply and event bytes buffered for a connection that does not read them
/// before we close it.
pub const CONN_OUT_BYTES_MAX: usize = 64 * 1024 * 1024;
/// How long a connect request waits for a leader before it is refused.
pub const CONNECT_WAIT_FOR_LEADER: Duration = Duration::from_secs(1);
/// Capacity of the cross-core channels (messages, each a batch).
pub const CROSS_CORE_CHANNEL_CAPACITY: usize = 1024;
/// glommio's registered I/O memory per executor: 3 rings x this x cores
/// must stay under the 8 MiB RLIMIT_MEMLOCK of unprivileged users.
pub const IO_MEMORY_BYTES: usize = 512 * 1024;
/// The nice value of the thread writing a background snapshot (0 is
/// normal, 19 the lowest priority): the cores serving clients come first.
pub const SNAPSHOT_NICE: libc::c_int = 10;

const _: () = assert!(CONN_OUT_BYTES_HIGH < CONN_OUT_BYTES_MAX);

/// Milliseconds since the epoch, monotonic: the wall clock read once at
/// start plus a monotonic clock since.
#[derive(Clone, Copy)]
pub struct Clock {
    wall_at_start_ms: u64,
    start: Instant,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            wall_at_start_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            start: Instant::now(),
        }
    }
    pub fn now_ms(&self) -> u64 {
        self.wall_at_start_ms + self.start.elapsed().as_millis() as u64
    }
}

/// What core 0 publishes, shared by every core.
type Published = Arc<ToShard>;

enum ToPipeline {
    Submit(Vec<(Submission, u64)>),
    Touch(Vec<SessionId>),
}

/// Set by SIGTERM/SIGINT; the pipeline core notices and stops cleanly.
static SHUTDOWN_REQUESTED: AtomicBool = AtomicBool::new(false);
/// Set once shutdown has begun: cores refuse new connections.
static STOPPING: AtomicBool = AtomicBool::new(false);

extern "C" fn on_terminate(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    SHUTDOWN_REQUESTED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    let handler = on_terminate as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGINT, handler);
    }
}

/// One core's figures, published by that core as they change so that a
/// four-letter word answered on any core reports the whole server.
/// Aligned to two cache lines (the adjacent-line prefetcher pairs them) so
/// that cores writing their own figures never share a line.
#[derive(Default)]
#[repr(align(128))]
pub struct CoreStats {
    pub connections: AtomicU64,
    pub watches: AtomicU64,
    pub outstanding: AtomicU64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    /// Request counts and latency (`metrics`).
    pub metrics: crate::metrics::CoreMetrics,
    /// Questions from the admin server for this core (`admin`).
    pub inbox: crate::admin::Inbox,
}

/// This core's counters read by the four-letter words.
#[derive(Default)]
pub struct Counters {
    pub received: Cell<u64>,
    pub sent: Cell<u64>,
}

#[derive(Debug)]
enum Queued {
    Read {
        xid: i32,
        op: ReadOp,
        started: Instant,
        opcode: i32,
    },
    Write {
        xid: i32,
        started: Instant,
        /// For the slow-request log.
        opcode: i32,
        path: Box<str>,
    },
    Ping,
    Error {
        xid: i32,
        code: ErrorCode,
    },
}

/// The path a write names, for the slow-request log (a multi: its first).
fn write_path(op: &WriteOp) -> &str {
    match op {
        WriteOp::Multi(ops) => ops.first().map(write_path).unwrap_or(""),
        op => op.path().unwrap_or(""),
    }
}

/// The path a read names, for the slow-request log.
fn read_path(op: &ReadOp) -> &str {
    match op {
        ReadOp::GetEphemerals { prefix } => prefix,
        ReadOp::MultiRead(ops) => ops.first().map(read_path).unwrap_or(""),
        op => op.path().unwrap_or(""),
    }
}

/// At most this many slow requests are logged per core and second; the
/// rest are counted and summed up in the next line.
const SLOW_LOG_LINES_PER_SECOND: u32 = 10;

/// The slow-request log's rate limit, per core.
#[derive(Default)]
struct SlowLog {
    second: Cell<u64>,
    lines: Cell<u32>,
    suppressed: Cell<u64>,
}

pub struct Conn {
    pub id: u64,
    pub peer: SocketAddr,
    pub session: Cell<SessionId>,
    pub timeout_ms: Cell<i32>,
    auth: RefCell<Arc<AuthInfo>>,
    out: RefCell<Vec<u8>>,
    wake_writer: LocalSender<()>,
    queue: RefCell<VecDeque<Queued>>,
    closing: Cell<bool>,
    handshake: RefCell<Option<LocalSender<bool>>>,
    fd: i32,
    pub received: Cell<u64>,
    pub sent: Cell<u64>,
    pub last_zxid: Cell<i64>,
    pub established: Instant,
    /// A session of read-only mode: local to this server, never logged.
    read_only: Cell<bool>,
    /// A four-letter word's connection: it has no session, and it gets its
    /// answer even when serving stops meanwhile (`ydld` waits through the
    /// step-down it causes).
    four_letter_word: Cell<bool>,
}

impl Conn {
    fn wake(&self) {
        let _ = self.wake_writer.try_send(());
    }

    fn push_out(&self, f: impl FnOnce(&mut Vec<u8>)) {
        let mut out = self.out.borrow_mut();
        f(&mut out);
        let too_big = out.len() > CONN_OUT_BYTES_MAX;
        drop(out);
        self.sent.set(self.sent.get() + 1);
        if too_big && !self.closing.get() {
            warn!(
                conn = self.id,
                peer = %self.peer,
                session = format_args!("0x{:x}", self.session.get()),
                "closing connection: client does not read its replies (over {CONN_OUT_BYTES_MAX} bytes buffered)"
            );
            self.close();
        }
        self.wake();
    }

    /// Closes after what is buffered has been written.
    pub fn close(&self) {
        self.closing.set(true);
        if let Some(h) = self.handshake.borrow_mut().take() {
            let _ = h.try_send(false);
        }
        self.wake();
    }

    pub fn queued(&self) -> usize {
        self.queue.borrow().len()
    }
}

enum PipelineLink {
    Local(Rc<PeerCore>),
    Remote,
}

pub struct ShardState {
    pub view: DataTree,
    pub watches: WatchManager,
    pub conns: HashMap<u64, Rc<Conn>>,
    session_conn: HashMap<SessionId, u64>,
    touched: HashSet<SessionId>,
    submissions: Vec<(Submission, u64)>,
    /// Connections whose next read waits for this core to catch up.
    catching_up: Vec<Rc<Conn>>,
}

pub struct Shard {
    pub core: u16,
    pub cores: usize,
    pub config: Arc<Config>,
    pub clock: Clock,
    pub state: RefCell<ShardState>,
    pub counters: Counters,
    link: PipelineLink,
    flush_wake: LocalSender<()>,
    next_conn: Cell<u64>,
    /// The zxid of the last batch the pipeline core made durable, stored
    /// before the batch is sent to the cores. A read waits while its core's
    /// view is behind it, so a read never misses a write that was already
    /// acknowledged to any client (as a standalone ZooKeeper guarantees).
    committed_zxid: Arc<AtomicI64>,
    /// Every core's figures, for four-letter words answered on any core.
    pub stats: Arc<Vec<CoreStats>>,
    /// Whether the server has a leader with a quorum; while not, client
    /// connections are closed after the four-letter-word check.
    serving: Cell<bool>,
    /// Not serving, and read-only clients are welcome (`readonlymode`).
    read_only: Cell<bool>,
    next_local_session: Cell<u64>,
    slow_log: SlowLog,
}

impl Shard {
    /// Logs a request that took longer than `slowRequestThresholdMs` from
    /// its arrival to its reply, with its opcode, path and latency.
    fn note_latency(&self, conn: &Conn, opcode: i32, path: &str, started: Instant) {
        let threshold = self.config.slow_request_ms;
        if threshold == 0 {
            return;
        }
        let took = started.elapsed();
        if took < Duration::from_millis(threshold) {
            return;
        }
        metrics::SERVER
            .slow_requests
            .fetch_add(1, Ordering::Relaxed);
        let second = self.clock.now_ms() / 1000;
        let log = &self.slow_log;
        if log.second.get() != second {
            log.second.set(second);
            log.lines.set(0);
        }
        if log.lines.get() >= SLOW_LOG_LINES_PER_SECOND {
            log.suppressed.set(log.suppressed.get() + 1);
            return;
        }
        log.lines.set(log.lines.get() + 1);
        let suppressed = log.suppressed.replace(0);
        warn!(
            session = format_args!("0x{:x}", conn.session.get()),
            peer = %conn.peer,
            op = %proto::opcode_name(opcode),
            path = %path,
            latency_ms = format_args!("{:.1}", took.as_secs_f64() * 1e3),
            threshold_ms = threshold,
            suppressed_before = suppressed,
            "slow request"
        );
    }

    /// enforce.auth: whether this connection has authenticated with one of
    /// the schemes the server requires (always, when none are required).
    fn authenticated_enough(&self, conn: &Conn) -> bool {
        let schemes = &self.config.enforce_auth_schemes;
        schemes.is_empty()
            || conn
                .auth
                .borrow()
                .ids
                .iter()
                .any(|id| schemes.contains(&id.scheme))
    }

    fn submit(&self, s: Submission) {
        let now = self.clock.now_ms();
        let mut st = self.state.borrow_mut();
        st.submissions.push((s, now));
        drop(st);
        let _ = self.flush_wake.try_send(());
    }

    fn origin(&self, conn: &Conn, xid: i32) -> Origin {
        // Anything queued that is not a write is a read waiting behind a
        // write in flight: see `Origin::reads_ahead`.
        let reads_ahead = conn
            .queue
            .borrow()
            .iter()
            .any(|q| !matches!(q, Queued::Write { .. }));
        Origin {
            core: self.core,
            conn: conn.id,
            xid,
            reads_ahead,
        }
    }

    fn touch(&self, session: SessionId) {
        if session != 0 {
            self.state.borrow_mut().touched.insert(session);
        }
    }

    /// Handles one decoded request of an established session.
    fn handle(&self, conn: &Rc<Conn>, frame: proto::RequestFrame) {
        let session = conn.session.get();
        conn.received.set(conn.received.get() + 1);
        self.counters.received.set(self.counters.received.get() + 1);
        self.touch(session);
        let xid = frame.xid;
        self.core_metrics().count_request(match &frame.request {
            Request::Read(_) => RequestKind::Read,
            Request::Write(_)
            | Request::Sync(_)
            | Request::Reconfig
            | Request::Malformed { write: true, .. } => RequestKind::Write,
            Request::Ping => RequestKind::Ping,
            _ => RequestKind::Other,
        });
        // As ZooKeeper's AuthenticationHelper: with enforce.auth on, any
        // request but auth and SASL from a session that has not
        // authenticated with a required scheme is answered
        // SessionClosedRequireSasl and the connection closes.
        if !matches!(frame.request, Request::Auth { .. } | Request::Sasl)
            && !self.authenticated_enough(conn)
        {
            let schemes: Vec<String> = conn
                .auth
                .borrow()
                .ids
                .iter()
                .map(|i| i.scheme.clone())
                .collect();
            error!(
                session = format_args!("0x{session:x}"),
                peer = %conn.peer,
                "client authentication schemes {schemes:?} match none of the required {:?} (enforce.auth); closing the connection",
                self.config.enforce_auth_schemes
            );
            metrics::SERVER
                .enforce_auth_refusals
                .fetch_add(1, Ordering::Relaxed);
            conn.push_out(|o| {
                proto::encode_reply(
                    o,
                    xid,
                    0,
                    &Err(ErrorCode::SessionClosedRequireSasl),
                    usize::MAX,
                )
            });
            conn.close();
            return;
        }
        if conn.read_only.get() {
            match &frame.request {
                // A read-only session is local: closing it is answered here.
                Request::Write(WriteOp::CloseSession) => {
                    let zxid = self.state.borrow().view.last_zxid;
                    conn.push_out(|o| {
                        proto::encode_reply(
                            o,
                            xid,
                            zxid,
                            &Ok(engine::op::Response::Empty),
                            usize::MAX,
                        )
                    });
                    conn.close();
                    return;
                }
                // As ZooKeeper's ReadOnlyRequestProcessor: every state
                // change, and sync, is answered NotReadOnly, in order.
                Request::Write(_)
                | Request::Sync(_)
                | Request::Reconfig
                | Request::Malformed { write: true, .. } => {
                    self.enqueue(
                        conn,
                        Queued::Error {
                            xid,
                            code: ErrorCode::NotReadOnly,
                        },
                    );
                    return;
                }
                _ => {}
            }
        }
        let opcode = frame.opcode;
        match frame.request {
            Request::Ping => self.enqueue(conn, Queued::Ping),
            Request::Read(op) => self.enqueue(
                conn,
                Queued::Read {
                    xid,
                    op,
                    started: Instant::now(),
                    opcode,
                },
            ),
            Request::Write(op) => {
                if op == WriteOp::CloseSession {
                    info!(
                        session = format_args!("0x{session:x}"),
                        peer = %conn.peer,
                        "session close requested by client"
                    );
                }
                self.submit_write(conn, xid, opcode, op);
            }
            Request::Sync(path) => {
                let logged_path = path.as_str().into();
                self.submit(Submission::Sync {
                    origin: self.origin(conn, xid),
                    session,
                    path,
                });
                conn.queue.borrow_mut().push_back(Queued::Write {
                    xid,
                    started: Instant::now(),
                    opcode,
                    path: logged_path,
                });
            }
            Request::Auth { scheme, auth } => {
                // Matches ZooKeeper: auth is handled on arrival, its reply
                // carries the request's xid (-4 from the Java client) and is
                // not ordered with the others, and a failure closes the
                // connection.
                let ip = conn.peer.ip().to_string();
                match acl::authenticate(
                    &scheme,
                    &auth,
                    Some(&ip),
                    self.config.super_digest.as_deref(),
                ) {
                    Ok(ids) => {
                        let mut a = (**conn.auth.borrow()).clone();
                        for id in ids {
                            a.add(id);
                        }
                        *conn.auth.borrow_mut() = Arc::new(a);
                        conn.push_out(|o| {
                            proto::encode_reply(
                                o,
                                xid,
                                0,
                                &Ok(engine::op::Response::Empty),
                                usize::MAX,
                            )
                        });
                    }
                    Err(code) => {
                        bump(&self.core_metrics().auth_failures, 1);
                        warn!(peer = %conn.peer, scheme, "authentication failed; closing connection");
                        conn.push_out(|o| proto::encode_reply(o, xid, 0, &Err(code), usize::MAX));
                        conn.close();
                    }
                }
            }
            Request::Sasl => {
                // Without SASL configured Apache ZooKeeper 3.8 answers at
                // once with zxid 0, no error and a null token
                // (`SetSASLResponse`), and the session stays usable
                // (measured). A null buffer is the same four bytes as the
                // i32 -1. A request without its token body is malformed and
                // closes the connection in the decoder, as there.
                warn!(peer = %conn.peer, "SASL requested but not configured; answering with a null token");
                conn.push_out(|o| {
                    proto::encode_reply(
                        o,
                        xid,
                        0,
                        &Ok(engine::op::Response::Number(-1)),
                        usize::MAX,
                    )
                });
            }
            // Matches ZooKeeper with reconfig disabled (its default, and
            // corral's only mode): PrepRequestProcessor refuses it with
            // ReconfigDisabled as an error transaction, which takes a zxid
            // like every other refused write (measured).
            Request::Reconfig => self.submit_write(
                conn,
                xid,
                opcode,
                WriteOp::Invalid(ErrorCode::ReconfigDisabled),
            ),
            // Matches ZooKeeper (measured): a request whose body does not
            // decode is answered MarshallingError and the connection stays.
            // A write becomes an error transaction with a zxid of its own;
            // anything else is answered in order with the last zxid.
            Request::Malformed { write, error } => {
                warn!(
                    peer = %conn.peer,
                    session = format_args!("0x{session:x}"),
                    opcode = frame.opcode,
                    "malformed request body ({error}); answering MarshallingError"
                );
                if write {
                    self.submit_write(
                        conn,
                        xid,
                        opcode,
                        WriteOp::Invalid(ErrorCode::MarshallingError),
                    );
                } else {
                    self.enqueue(
                        conn,
                        Queued::Error {
                            xid,
                            code: ErrorCode::MarshallingError,
                        },
                    );
                }
            }
            Request::Unknown => {
                warn!(peer = %conn.peer, opcode = frame.opcode, "unknown opcode; answering Unimplemented and closing");
                // Matches ZooKeeper's UnimplementedRequestProcessor: the
                // reply leaves at once, ahead of anything still queued,
                // with zxid -1 (the request never got one), and then the
                // connection closes; the session lives on.
                conn.push_out(|o| {
                    proto::encode_reply(o, xid, -1, &Err(ErrorCode::Unimplemented), usize::MAX)
                });
                conn.close();
            }
        }
    }

    /// Sends a write to the pipeline and queues the wait for its reply.
    fn submit_write(&self, conn: &Rc<Conn>, xid: i32, opcode: i32, op: WriteOp) {
        let auth = conn.auth.borrow().clone();
        let path = write_path(&op).into();
        self.submit(Submission::Write {
            origin: self.origin(conn, xid),
            session: conn.session.get(),
            op,
            auth,
        });
        conn.queue.borrow_mut().push_back(Queued::Write {
            xid,
            started: Instant::now(),
            opcode,
            path,
        });
    }

    fn enqueue(&self, conn: &Rc<Conn>, q: Queued) {
        conn.queue.borrow_mut().push_back(q);
        self.drain(conn, true);
        self.publish_stats();
    }

    /// Answers the requests at the front of a session's queue up to the
    /// first write still in flight.
    ///
    /// With `fresh`, a read waits while this core's view is behind the last
    /// durable batch (`committed_zxid`). Without it (a read queued between
    /// two writes of one batch, answered from the tree before the second),
    /// the view given is exactly the one the read must see.
    fn drain(&self, conn: &Rc<Conn>, fresh: bool) {
        loop {
            let item = {
                let mut q = conn.queue.borrow_mut();
                match q.front() {
                    None | Some(Queued::Write { .. }) => return,
                    Some(Queued::Read { .. })
                        if fresh
                            && self.state.borrow().view.last_zxid
                                < self.committed_zxid.load(Ordering::Acquire) =>
                    {
                        let mut st = self.state.borrow_mut();
                        if !st.catching_up.iter().any(|c| Rc::ptr_eq(c, conn)) {
                            st.catching_up.push(conn.clone());
                        }
                        return;
                    }
                    _ => q.pop_front().expect("front exists"),
                }
            };
            let mut st = self.state.borrow_mut();
            let st = &mut *st;
            let zxid = st.view.last_zxid;
            let max = self.config.jute_max_buffer;
            match item {
                Queued::Ping => conn.push_out(|o| {
                    proto::encode_reply(o, XID_PING, zxid, &Ok(engine::op::Response::Empty), max)
                }),
                Queued::Error { xid, code } => {
                    conn.push_out(|o| proto::encode_reply(o, xid, zxid, &Err(code), max))
                }
                Queued::Read {
                    xid,
                    op,
                    started,
                    opcode,
                } => {
                    let auth = conn.auth.borrow().clone();
                    let ctx = ReadContext {
                        session: conn.session.get(),
                        auth: &auth,
                    };
                    let out = apply::read(&st.view, &mut st.watches, &ctx, &op);
                    conn.push_out(|o| {
                        for e in &out.events {
                            proto::encode_event(o, e.event, keeper_state::SYNC_CONNECTED, &e.path);
                        }
                        proto::encode_reply(o, xid, zxid, &out.reply, max)
                    });
                    conn.last_zxid.set(zxid);
                    self.note_latency(conn, opcode, read_path(&op), started);
                }
                Queued::Write { .. } => unreachable!("stopped above"),
            }
        }
    }

    /// Consumes one committed batch, entry by entry in zxid order. For each
    /// entry the core fires its watches, then replies to it if the entry is
    /// its own. Reads a session queued behind its writes are answered after
    /// the batch, from the batch's tree, once all its watches have fired —
    /// except reads queued between two writes of the batch: they are
    /// answered just before the later write's reply, from the tree as it was
    /// before that write (`Origin::reads_ahead`), so they see the earlier
    /// write and not the later one. Every reply is thus computed from a view
    /// whose changes' events were already queued.
    pub fn on_committed(&self, batch: &CommittedBatch) {
        let mut to_drain: Vec<Rc<Conn>> = Vec::new();
        let mut events = Vec::new();
        for entry in &batch.entries {
            {
                let mut st = self.state.borrow_mut();
                for t in &entry.triggers {
                    st.watches.trigger(&t.path, t.event, &mut events);
                    for (session, ev) in events.drain(..) {
                        let Some(conn) =
                            st.session_conn.get(&session).and_then(|c| st.conns.get(c))
                        else {
                            continue;
                        };
                        // Matches Apache ZooKeeper 3.8 (measured): the watch is
                        // consumed, but the event reaches the session only if
                        // it may READ the node the event names.
                        if acl::check(&t.acl, engine::perms::READ, &conn.auth.borrow()).is_err() {
                            continue;
                        }
                        conn.push_out(|o| {
                            proto::encode_event(o, ev.event, keeper_state::SYNC_CONNECTED, &ev.path)
                        });
                    }
                }
            }
            // Sessions that moved to a new connection end the old one.
            if let Outcome::Reattached {
                session,
                timeout_ms: Some(_),
            } = &entry.outcome
            {
                let mut st = self.state.borrow_mut();
                let origin_conn = entry.origin.map(|o| o.conn);
                if let Some(old) = st.session_conn.get(session).copied() {
                    if Some(old) != origin_conn {
                        if let Some(c) = st.conns.get(&old) {
                            info!(
                                session = format_args!("0x{session:x}"),
                                "session moved to another connection; closing the old one"
                            );
                            c.close();
                        }
                        st.session_conn.remove(session);
                        st.watches.remove_session(*session);
                    }
                }
            }
            // The reply, on the core that owns the connection.
            let mine = entry.origin.filter(|o| o.core == self.core);
            let conn = mine.and_then(|o| self.state.borrow().conns.get(&o.conn).cloned());
            if let (Some(origin), Some(conn)) = (mine, conn) {
                match &entry.outcome {
                    Outcome::Reply(reply) => {
                        let reads_first =
                            !matches!(conn.queue.borrow().front(), Some(Queued::Write { .. }));
                        if reads_first {
                            let view = entry.view_before.clone().expect(
                                "an entry with reads queued ahead carries the tree before it",
                            );
                            self.state.borrow_mut().view = view;
                            self.drain(&conn, false);
                        }
                        let front = conn.queue.borrow_mut().pop_front();
                        match front {
                            Some(Queued::Write {
                                xid,
                                started,
                                opcode,
                                path,
                            }) => {
                                assert_eq!(xid, origin.xid, "replies leave in request order");
                                self.record_latency(started);
                                self.note_latency(&conn, opcode, &path, started);
                            }
                            other => panic!(
                                "committed reply for xid {} but queue front is {other:?}",
                                origin.xid
                            ),
                        }
                        if *reply == Err(ErrorCode::SessionMoved) {
                            // Matches ZooKeeper's FinalRequestProcessor: the
                            // session moved to another server and this came
                            // on the connection it left; no reply, the
                            // connection closes after the earlier replies.
                            info!(
                                session = format_args!("0x{:x}", entry.session),
                                "session moved to another server; closing the stale connection"
                            );
                            conn.close();
                            continue;
                        }
                        let max = self.config.jute_max_buffer;
                        conn.push_out(|o| {
                            proto::encode_reply(o, origin.xid, entry.zxid, reply, max)
                        });
                        conn.last_zxid.set(entry.zxid);
                        to_drain.push(conn.clone());
                    }
                    Outcome::SessionCreated {
                        session,
                        timeout_ms,
                        password,
                    } => self.finish_handshake(&conn, *session, Some(*timeout_ms), password),
                    Outcome::Reattached {
                        session,
                        timeout_ms,
                    } => {
                        let pw = engine::session::password(*session);
                        self.finish_handshake(&conn, *session, *timeout_ms, &pw)
                    }
                    Outcome::Internal => {}
                }
            }
            // A session that ended: its connection closes everywhere.
            if let Some(s) = entry.closed_session {
                // Every core sees the entry; the pipeline core counts it.
                if entry.origin.is_none() && self.core == 0 {
                    bump(&metrics::SERVER.sessions_expired, 1);
                }
                let mut st = self.state.borrow_mut();
                st.watches.remove_session(s);
                if let Some(c) = st.session_conn.remove(&s) {
                    if let Some(conn) = st.conns.get(&c) {
                        if entry.origin.is_none() {
                            info!(session = format_args!("0x{s:x}"), peer = %conn.peer, "session expired");
                        } else {
                            info!(session = format_args!("0x{s:x}"), peer = %conn.peer, "session closed");
                        }
                        conn.close();
                    }
                }
            }
        }
        // The view moves to the batch's version; the reads that were
        // waiting behind this batch's writes go now.
        let waiting = {
            let mut st = self.state.borrow_mut();
            st.view = batch.tree.clone();
            std::mem::take(&mut st.catching_up)
        };
        for conn in to_drain.into_iter().chain(waiting) {
            self.drain(&conn, true);
        }
        self.publish_stats();
    }

    fn record_latency(&self, started: Instant) {
        self.core_metrics()
            .record_write_latency(started.elapsed().as_micros() as u64);
    }

    fn core_metrics(&self) -> &crate::metrics::CoreMetrics {
        &self.stats[self.core as usize].metrics
    }

    /// Runs `f` on the ZAB peer when this is core 0 (which owns it and,
    /// on the leader, the session table); None elsewhere.
    pub(crate) fn with_peer<R>(&self, f: impl FnOnce(&engine::zab::Peer) -> R) -> Option<R> {
        match &self.link {
            PipelineLink::Local(p) => Some(f(&p.peer())),
            PipelineLink::Remote => None,
        }
    }

    /// Handles what core 0 publishes, in order.
    pub fn on_published(&self, item: &ToShard) {
        match item {
            ToShard::Committed(batch) => self.on_committed(batch),
            ToShard::Serving(serving) => self.set_serving(*serving),
            ToShard::ReadOnly => {
                self.read_only.set(true);
                info!(core = self.core, "accepting read-only clients");
            }
        }
    }

    /// A session of read-only mode: created here, never logged, gone with
    /// its connection (ZooKeeper's read-only server keeps such sessions
    /// local too; a client re-attaches elsewhere with a new session).
    fn open_read_only_session(&self, conn: &Rc<Conn>, requested_timeout_ms: i32) {
        let (min, max) = self.config.session_timeout_bounds();
        let timeout = requested_timeout_ms.clamp(min, max);
        let n = self.next_local_session.get() + 1;
        self.next_local_session.set(n);
        // Server id in the top byte as every session id; then the clock and
        // the core, so ids differ across restarts and cores.
        let me = self.config.my_id.unwrap_or(0) & 0xff;
        let id = ((me << 56)
            | ((self.clock.now_ms() & 0xff_ffff_ffff) << 16)
            | ((self.core as u64 & 0xf) << 12)
            | (n & 0xfff)) as SessionId;
        conn.session.set(id);
        conn.timeout_ms.set(timeout);
        conn.read_only.set(true);
        self.state.borrow_mut().session_conn.insert(id, conn.id);
        info!(
            session = format_args!("0x{id:x}"),
            peer = %conn.peer,
            timeout_ms = timeout,
            "read-only session established"
        );
        let password = engine::session::password(id);
        conn.push_out(|o| proto::encode_connect_response(o, timeout, id, &password, true));
    }

    fn set_serving(&self, serving: bool) {
        let was_read_only = self.read_only.replace(false);
        let changed = self.serving.replace(serving) != serving;
        // Leaving read-only mode ends its sessions too, as ZooKeeper's
        // read-only server closes every connection when it shuts down.
        let stopped = changed && !serving;
        let left_read_only = serving && was_read_only;
        if !stopped && !left_read_only {
            return;
        }
        // As a ZooKeeper server that lost its leader: every client sees
        // connection loss and fails over; what it had in flight was not
        // acknowledged.
        let conns: Vec<Rc<Conn>> = {
            let mut st = self.state.borrow_mut();
            st.catching_up.clear();
            st.submissions.clear();
            st.conns
                .values()
                .filter(|c| !c.four_letter_word.get())
                .cloned()
                .collect()
        };
        if !conns.is_empty() {
            let why = if stopped {
                "not serving: closing client connections"
            } else {
                "a leader is back: closing the read-only sessions"
            };
            info!(core = self.core, connections = conns.len(), "{why}");
        }
        for c in conns {
            c.close();
        }
    }

    fn finish_handshake(
        &self,
        conn: &Rc<Conn>,
        session: SessionId,
        timeout_ms: Option<i32>,
        password: &[u8],
    ) {
        match timeout_ms {
            Some(t) => {
                conn.session.set(session);
                conn.timeout_ms.set(t);
                {
                    let mut st = self.state.borrow_mut();
                    st.session_conn.insert(session, conn.id);
                }
                info!(
                    session = format_args!("0x{session:x}"),
                    peer = %conn.peer,
                    timeout_ms = t,
                    core = self.core,
                    "session established"
                );
                conn.push_out(|o| proto::encode_connect_response(o, t, session, password, false));
                if let Some(h) = conn.handshake.borrow_mut().take() {
                    let _ = h.try_send(true);
                }
            }
            None => {
                info!(session = format_args!("0x{session:x}"), peer = %conn.peer, "re-attach refused: session expired or bad password");
                conn.push_out(|o| proto::encode_connect_response(o, 0, 0, &[0u8; 16], false));
                conn.close();
            }
        }
    }

    /// Publishes this core's connection and watch figures.
    pub fn publish_stats(&self) {
        let st = self.state.borrow();
        let mine = &self.stats[self.core as usize];
        mine.connections
            .store(st.conns.len() as u64, Ordering::Relaxed);
        mine.watches
            .store(st.watches.count() as u64, Ordering::Relaxed);
        mine.received
            .store(self.counters.received.get(), Ordering::Relaxed);
    }

    /// Publishes the figures that cost a walk over the connections.
    pub fn publish_slow_stats(&self) {
        self.publish_stats();
        let st = self.state.borrow();
        let mine = &self.stats[self.core as usize];
        mine.outstanding.store(
            st.conns.values().map(|c| c.queued() as u64).sum(),
            Ordering::Relaxed,
        );
        mine.sent.store(
            st.conns.values().map(|c| c.sent.get()).sum(),
            Ordering::Relaxed,
        );
    }

    fn remove_conn(&self, conn: &Rc<Conn>) {
        let mut st = self.state.borrow_mut();
        st.conns.remove(&conn.id);
        let s = conn.session.get();
        if st.session_conn.get(&s) == Some(&conn.id) {
            st.session_conn.remove(&s);
            // Matches ZooKeeper: a connection's watches go with it; the
            // client re-registers them with setWatches when it reconnects.
            st.watches.remove_session(s);
        }
        drop(st);
        self.publish_stats();
    }

    pub fn connection_count(&self) -> usize {
        self.state.borrow().conns.len()
    }
}

/// Bytes read from a socket per read call.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// A connection's input: a reusable read buffer (zeroed once) and the bytes
/// received but not yet parsed.
struct Input {
    chunk: Box<[u8]>,
    pending: Vec<u8>,
    /// Bytes of `pending` already parsed; dropped in one move per read.
    consumed: usize,
}

impl Input {
    fn new() -> Input {
        Input {
            chunk: vec![0u8; READ_CHUNK_BYTES].into_boxed_slice(),
            pending: Vec::with_capacity(READ_CHUNK_BYTES),
            consumed: 0,
        }
    }

    fn unparsed(&self) -> &[u8] {
        &self.pending[self.consumed..]
    }

    /// Reads more bytes; false at EOF.
    async fn read_more<R: futures_lite::AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
    ) -> std::io::Result<bool> {
        if self.consumed > 0 {
            self.pending.drain(..self.consumed);
            self.consumed = 0;
        }
        let n = match r.read(&mut self.chunk).await {
            Ok(n) => n,
            // A TLS client that closes its socket without close_notify (as
            // the Java client does) has simply gone, like a plain EOF.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(false);
        }
        self.pending.extend_from_slice(&self.chunk[..n]);
        Ok(true)
    }

    /// The next whole frame's body, if there is one.
    fn next_frame(&mut self, max: usize) -> Result<Option<Bytes>, proto::CodecError> {
        match proto::split_frame(self.unparsed(), max)? {
            None => Ok(None),
            Some((start, end)) => {
                let base = self.consumed;
                let body = Bytes::copy_from_slice(&self.pending[base + start..base + end]);
                self.consumed += end;
                Ok(Some(body))
            }
        }
    }
}

/// A client connection's byte stream: plain TCP, or TLS over it.
trait ClientStream: AsyncRead + AsyncWrite + Unpin + 'static {}
impl<S: AsyncRead + AsyncWrite + Unpin + 'static> ClientStream for S {}

async fn writer_task<S: ClientStream>(
    conn: Rc<Conn>,
    mut w: futures_lite::io::WriteHalf<S>,
    wake: LocalReceiver<()>,
) {
    // Two buffers swap roles so neither is re-grown from empty per write.
    let mut chunk: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        chunk.clear();
        std::mem::swap(&mut chunk, &mut *conn.out.borrow_mut());
        if !chunk.is_empty() {
            if let Err(e) = w.write_all(&chunk).await {
                debug!(conn = conn.id, "write failed: {e}");
                conn.closing.set(true);
                break;
            }
            let _ = w.flush().await;
            // Do not hold on to a huge buffer after a burst.
            if chunk.capacity() > 1 << 20 {
                chunk = Vec::with_capacity(16 * 1024);
            }
            continue;
        }
        if conn.closing.get() {
            break;
        }
        if wake.recv().await.is_none() {
            break;
        }
    }
    // Wakes the reader, which may be blocked in read().
    unsafe {
        libc::shutdown(conn.fd, libc::SHUT_RDWR);
    }
}

/// Completes the TLS handshake of a connection to `secureClientPort`, then
/// serves it like any other. A failed or too slow handshake closes the
/// connection with a log line naming the client and the reason.
async fn serve_tls_conn(
    shard: Rc<Shard>,
    stream: TcpStream,
    acceptor: futures_rustls::TlsAcceptor,
    timeout: Duration,
) {
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    // A refused handshake hands the socket back so the log line is written
    // before the client sees the connection close.
    let handshake = glommio::timer::timeout(timeout, async {
        Ok(acceptor.accept(stream).into_fallible().await)
    })
    .await;
    let tls = match handshake {
        Ok(Ok(tls)) => tls,
        Ok(Err((e, stream))) => {
            metrics::SERVER
                .tls_handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            warn!(%peer, "TLS handshake failed: {e}; closing connection");
            drop(stream);
            return;
        }
        Err(e) => {
            metrics::SERVER
                .tls_handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            warn!(%peer, "TLS handshake not finished within {timeout:?} ({e}); closing connection");
            return;
        }
    };
    // As ZooKeeper's X509AuthenticationProvider: a verified client
    // certificate authenticates the session as x509:<subject DN>.
    let x509 = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| crate::tls::subject_rfc2253(leaf))
        .map(|subject| Id::new("x509", &subject));
    debug!(%peer, x509 = ?x509, "TLS handshake done");
    serve_conn(shard, tls, peer, fd, x509).await;
}

async fn serve_conn<S: ClientStream>(
    shard: Rc<Shard>,
    stream: S,
    peer: SocketAddr,
    fd: i32,
    x509: Option<Id>,
) {
    let (mut r, w) = futures_lite::io::split(stream);
    let mut ids = vec![Id::new("ip", &peer.ip().to_string())];
    ids.extend(x509);
    let (wake_tx, wake_rx) = local_channel::new_bounded(1);
    let (hs_tx, hs_rx) = local_channel::new_bounded(1);
    let id = ((shard.core as u64) << 48) | shard.next_conn.get();
    shard.next_conn.set(shard.next_conn.get() + 1);
    let conn = Rc::new(Conn {
        id,
        peer,
        session: Cell::new(0),
        timeout_ms: Cell::new(0),
        auth: RefCell::new(Arc::new(AuthInfo { ids })),
        out: RefCell::new(Vec::new()),
        wake_writer: wake_tx,
        queue: RefCell::new(VecDeque::new()),
        closing: Cell::new(false),
        handshake: RefCell::new(Some(hs_tx)),
        fd,
        received: Cell::new(0),
        sent: Cell::new(0),
        last_zxid: Cell::new(0),
        established: Instant::now(),
        read_only: Cell::new(false),
        four_letter_word: Cell::new(false),
    });
    shard.state.borrow_mut().conns.insert(id, conn.clone());
    shard.publish_stats();
    let writer = glommio::spawn_local(writer_task(conn.clone(), w, wake_rx));
    let result = read_loop(&shard, &conn, &mut r, hs_rx).await;
    if let Err(why) = result {
        if conn.session.get() != 0 {
            info!(peer = %peer, session = format_args!("0x{:x}", conn.session.get()), "closing connection: {why}");
        } else {
            info!(peer = %peer, "closing connection: {why}");
        }
    }
    conn.close();
    writer.await;
    shard.remove_conn(&conn);
}

async fn read_loop<S: ClientStream>(
    shard: &Rc<Shard>,
    conn: &Rc<Conn>,
    r: &mut futures_lite::io::ReadHalf<S>,
    hs_rx: LocalReceiver<bool>,
) -> Result<(), String> {
    let max = shard.config.jute_max_buffer;
    let mut input = Input::new();
    // The first four bytes: a four-letter word or a connect frame.
    while input.unparsed().len() < 4 {
        if !input.read_more(r).await.map_err(|e| e.to_string())? {
            return Ok(());
        }
    }
    if let Some(word) = proto::four_letter_word(input.unparsed()) {
        // As ZooKeeper counts it: the word is the connection's one packet
        // received (`cons` shows it as `recved=1`).
        conn.received.set(1);
        conn.four_letter_word.set(true);
        let text = fourlw::run(shard, word).await;
        conn.push_out(|o| o.extend_from_slice(text.as_bytes()));
        return Ok(());
    }
    let connect = loop {
        match input.next_frame(max) {
            Err(e) => return Err(format!("bad connect frame: {e}")),
            Ok(Some(body)) => {
                break proto::decode_connect(body)
                    .map_err(|e| format!("malformed connect request: {e}"))?;
            }
            Ok(None) => {
                if !input.read_more(r).await.map_err(|e| e.to_string())? {
                    return Ok(());
                }
            }
        }
    };
    // A server that is starting up or electing a leader (typically a few
    // hundred milliseconds) holds a new session briefly rather than refusing
    // it at once: the client is served instead of having to fail over.
    let wait_until = Instant::now() + CONNECT_WAIT_FOR_LEADER;
    while !shard.serving.get() && !shard.read_only.get() && Instant::now() < wait_until {
        glommio::timer::sleep(Duration::from_millis(10)).await;
        if conn.closing.get() {
            return Ok(());
        }
    }
    if !shard.serving.get() {
        if !shard.read_only.get() {
            return Err("not serving clients: no leader with a quorum".into());
        }
        // As ZooKeeper's read-only server: only clients that allow it, and
        // only new sessions (a global session cannot be renewed here).
        if !connect.read_only {
            return Err("not a read-only client, and in read-only mode".into());
        }
        if connect.session_id != 0 {
            return Err("refusing a session re-attach in read-only mode".into());
        }
        shard.open_read_only_session(conn, connect.timeout_ms);
    } else if !open_session(shard, conn, &connect, hs_rx).await? {
        return Ok(());
    }
    request_loop(shard, conn, r, input).await
}

/// Asks core 0 for a new session or a re-attach and waits for the answer.
async fn open_session(
    shard: &Rc<Shard>,
    conn: &Rc<Conn>,
    connect: &engine::op::ConnectRequest,
    hs_rx: LocalReceiver<bool>,
) -> Result<bool, String> {
    let view_zxid = shard.state.borrow().view.last_zxid;
    if connect.last_zxid_seen > view_zxid {
        return Err(format!(
            "refusing session: client has seen zxid 0x{:x}, our last zxid is 0x{:x}",
            connect.last_zxid_seen, view_zxid
        ));
    }
    let (min, max_t) = shard.config.session_timeout_bounds();
    let timeout = connect.timeout_ms.clamp(min, max_t);
    let origin = shard.origin(conn, 0);
    if connect.session_id == 0 {
        shard.submit(Submission::CreateSession {
            origin,
            timeout_ms: timeout,
        });
    } else {
        shard.submit(Submission::Reattach {
            origin,
            session: connect.session_id,
            password: connect.password.to_vec(),
        });
    }
    Ok(hs_rx.recv().await == Some(true))
}

/// Reads and handles the requests of an established session.
async fn request_loop<S: ClientStream>(
    shard: &Rc<Shard>,
    conn: &Rc<Conn>,
    r: &mut futures_lite::io::ReadHalf<S>,
    mut input: Input,
) -> Result<(), String> {
    let max = shard.config.jute_max_buffer;
    // Backpressure: stop taking requests while this session has too much
    // queued.
    let throttled = || {
        conn.queued() >= SESSION_OUTSTANDING_MAX || conn.out.borrow().len() >= CONN_OUT_BYTES_HIGH
    };
    loop {
        // Parse the whole frames we have, as long as the session may take
        // more: one read can hold tens of thousands of small requests
        // (getData of a 64 KiB node: 25 bytes asked, 64 KiB answered).
        let mut whole_frames_left = false;
        loop {
            if conn.closing.get() {
                return Ok(());
            }
            if throttled() {
                whole_frames_left = true;
                break;
            }
            match input.next_frame(max) {
                Err(e) => return Err(format!("{e}")),
                Ok(None) => break,
                Ok(Some(body)) => {
                    let frame = proto::decode_request(body)
                        .map_err(|e| format!("malformed request: {e}"))?;
                    shard.handle(conn, frame);
                }
            }
        }
        if throttled() {
            metrics::SERVER
                .connections_throttled
                .fetch_add(1, Ordering::Relaxed);
        }
        while throttled() {
            if conn.closing.get() {
                return Ok(());
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        // Requests already read come first: the client may be waiting for
        // their replies before it sends anything more.
        if whole_frames_left {
            continue;
        }
        if !input.read_more(r).await.map_err(|e| e.to_string())? {
            return Ok(());
        }
    }
}

/// Takes snapshots in the background every `snapCount`-ish transactions and
/// purges what the retained snapshots no longer need.
struct Snapshotter {
    threshold: u64,
    since_last: u64,
    in_progress: Rc<Cell<bool>>,
    /// The newest committed tree: what a snapshot taken now would hold.
    latest: DataTree,
    snap_dir: std::path::PathBuf,
    log_dir: std::path::PathBuf,
    retain: usize,
}

impl Snapshotter {
    fn new(
        config: &Config,
        snap_dir: std::path::PathBuf,
        log_dir: std::path::PathBuf,
        latest: DataTree,
    ) -> Snapshotter {
        // As ZooKeeper: a random point in [snapCount/2, snapCount), so the
        // servers of an ensemble do not all snapshot at once.
        let half = (config.snap_count / 2).max(1);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
        Snapshotter {
            threshold: half + nanos % half,
            since_last: 0,
            in_progress: Rc::new(Cell::new(false)),
            latest,
            snap_dir,
            log_dir,
            retain: config.snap_retain_count.max(3),
        }
    }

    fn after_commit(
        &mut self,
        records: u64,
        tree: &DataTree,
        sessions: impl FnOnce() -> Vec<(SessionId, i32)>,
    ) {
        self.since_last += records;
        self.latest = tree.clone();
        if self.since_last < self.threshold || self.in_progress.get() {
            return;
        }
        let _ = self.start(sessions);
    }

    /// Starts writing a snapshot of the newest committed tree in the
    /// background (`csnp`, or the snapCount threshold); its zxid, or why
    /// not.
    fn start(
        &mut self,
        sessions: impl FnOnce() -> Vec<(SessionId, i32)>,
    ) -> Result<i64, &'static str> {
        if self.in_progress.get() {
            return Err("a snapshot is being written already");
        }
        self.since_last = 0;
        self.in_progress.set(true);
        // One immutable version of the tree: consistent at one zxid, and the
        // pipeline goes on committing while it is written.
        let tree = self.latest.clone();
        let snapshot_zxid = tree.last_zxid;
        // The sessions of the peer's latest commit, possibly a little newer
        // than `tree`: replaying the log from the snapshot's zxid creates and
        // closes sessions idempotently.
        let sessions = sessions();
        let (snap_dir, log_dir, retain) =
            (self.snap_dir.clone(), self.log_dir.clone(), self.retain);
        let in_progress = self.in_progress.clone();
        glommio::spawn_local(async move {
            let started = Instant::now();
            let work = move || {
                // Seconds of CPU on a machine whose cores serve clients:
                // at a lower priority, a core that has requests to serve
                // gets them served first, and the snapshot takes the rest.
                // SAFETY: plain syscalls on this thread.
                unsafe {
                    libc::setpriority(
                        libc::PRIO_PROCESS,
                        libc::gettid() as libc::id_t,
                        SNAPSHOT_NICE,
                    );
                }
                let zxid = tree.last_zxid;
                let nodes = tree.node_count();
                let written = crate::snap::write_tree(&snap_dir, &tree, sessions, true);
                drop(tree);
                let purged = if written.is_ok() {
                    storage::snapshot::purge(&snap_dir, &log_dir, retain)
                } else {
                    Vec::new()
                };
                (zxid, nodes, written, purged)
            };
            // Its own thread: glommio's blocking pool also runs what must
            // not wait (a follower installing the leader's snapshot).
            let result = glommio::executor()
                .spawn_blocking(move || {
                    std::thread::Builder::new()
                        .name("corral-snapshot".into())
                        .spawn(work)
                        .map(|t| t.join().expect("the snapshot thread does not panic"))
                })
                .await;
            let result = match result {
                Ok(r) => r,
                Err(e) => (
                    snapshot_zxid,
                    0,
                    Err(storage::snapshot::SnapshotError::Io {
                        file: "(snapshot thread)".into(),
                        source: e,
                    }),
                    Vec::new(),
                ),
            };
            let elapsed_us = started.elapsed().as_micros() as u64;
            match result {
                (zxid, nodes, Ok((path, bytes)), purged) => {
                    metrics::SERVER.record_snapshot(elapsed_us, zxid, bytes, wall_ms());
                    info!(
                        file = %path.display(),
                        zxid = format_args!("0x{zxid:x}"),
                        znodes = nodes,
                        bytes,
                        elapsed_ms = elapsed_us / 1000,
                        files_purged = purged.len(),
                        "snapshot written"
                    )
                }
                (_, _, Err(e), _) => {
                    metrics::SERVER.record_snapshot_failure();
                    error!("snapshot failed (the log still has everything): {e}")
                }
            }
            in_progress.set(false);
        })
        .detach();
        Ok(snapshot_zxid)
    }
}

thread_local! {
    /// On core 0: the snapshotter, for `csnp`.
    static SNAPSHOTTER: RefCell<Option<Rc<RefCell<Snapshotter>>>> = const { RefCell::new(None) };
}

/// `csnp`: starts a snapshot of the newest committed tree now, on core 0
/// (None elsewhere). Ok(zxid) or why it was not started.
pub(crate) fn snapshot_now(shard: &Shard) -> Option<Result<i64, &'static str>> {
    let snapshots = SNAPSHOTTER.with(|s| s.borrow().clone())?;
    let sessions = shard.with_peer(|p| p.sessions())?;
    let result = snapshots.borrow_mut().start(|| sessions);
    if let Ok(zxid) = result {
        info!(
            zxid = format_args!("0x{zxid:x}"),
            "snapshot requested (csnp)"
        );
    }
    Some(result)
}

/// `ydld` / `rqld` on core 0 (None elsewhere): starts the handover;
/// Ok(the server whose outcome to watch: this one for `ydld`, the leader
/// asked for `rqld`).
pub(crate) fn handover(
    shard: &Shard,
    kind: crate::replica::HandoverKind,
) -> Option<Result<engine::zab::ServerId, engine::zab::HandoverRefused>> {
    let PipelineLink::Local(p) = &shard.link else {
        return None;
    };
    Some(match kind {
        crate::replica::HandoverKind::Yield => {
            let me = p.peer().id();
            p.yield_leadership().map(|()| me)
        }
        crate::replica::HandoverKind::Request => p.request_leadership(),
    })
}

/// `lgif`: what the log holds, in ClickHouse Keeper's terms (indexes are
/// zxids, terms epochs).
#[derive(Clone, Debug, Default)]
pub struct LogInfo {
    /// The first zxid of the oldest log segment on disk; 0 with none.
    pub first_log_zxid: i64,
    pub last_log_zxid: i64,
    pub last_committed_zxid: i64,
    /// The newest snapshot's zxid; -1 before the first.
    pub last_snapshot_zxid: i64,
}

/// `lgif` on core 0 (None elsewhere).
pub(crate) fn log_info(shard: &Shard) -> Option<LogInfo> {
    let (last_log, committed) = shard.with_peer(|p| (p.last_logged(), p.tree().last_zxid))?;
    let first = storage::recovery::segments(&shard.config.log_dir())
        .ok()
        .and_then(|segs| segs.iter().map(|(z, _)| *z).min())
        .unwrap_or(0);
    Some(LogInfo {
        first_log_zxid: first,
        last_log_zxid: last_log,
        last_committed_zxid: committed,
        last_snapshot_zxid: metrics::SERVER.snapshot_last_zxid.load(Ordering::Relaxed),
    })
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Name of the lock file in the data directory (and in dataLogDir when
/// it is elsewhere).
pub const LOCK_FILE: &str = ".corral.lock";

/// Takes an exclusive lock on `dir` for this process, or says which
/// process holds it. Two servers writing one log and one set of
/// snapshots interleave their records and break the log for both (seen:
/// a zxid gap that stops the next startup); ZooKeeper does not guard
/// against it, etcd does the same as this.
fn lock_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK_FILE);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open the lock file {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        anyhow::bail!(
            "the directory {} is in use by another corral server (pid {}); two servers on \
             one data directory would corrupt its log",
            dir.display(),
            holder.trim()
        );
    }
    f.set_len(0)?;
    f.rewind()?;
    writeln!(f, "{}", std::process::id())?;
    Ok(f)
}

/// Starts the server and blocks until it stops. `tls`: the rustls
/// configuration built from `config.tls` (`tls::server_config`, which the
/// caller runs first to refuse a bad key store as a configuration error).
pub fn run(config: Config, tls: Option<Arc<rustls::ServerConfig>>) -> anyhow::Result<()> {
    let clock = Clock::new();
    if let (Some(settings), Some(tls)) = (&config.tls, tls) {
        let _ = TLS.set(tls);
        info!(
            port = config.secure_client_port,
            client_auth = ?settings.client_auth,
            "client TLS enabled"
        );
    }
    install_signal_handlers();
    let create = |dir: &std::path::Path| {
        std::fs::create_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot create the directory {}: {e}", dir.display()))
    };
    create(&config.data_dir)?;
    let log_dir = config.log_dir();
    create(&log_dir)?;
    // Held until the process ends (the descriptors close on exec, so a
    // server re-executing itself after TRUNC takes them again).
    let _data_lock = lock_dir(&config.data_dir)?;
    let _log_lock = if log_dir.starts_with(&config.data_dir) {
        None
    } else {
        Some(lock_dir(&log_dir)?)
    };
    let ensemble = Ensemble::from_config(&config)?;

    let online = glommio::CpuSet::online()
        .map(|c| c.len())
        .unwrap_or(1)
        .max(1);
    let cores = if config.cores == 0 {
        online
    } else {
        config.cores
    };
    let stats: Arc<Vec<CoreStats>> = Arc::new((0..cores).map(|_| CoreStats::default()).collect());
    metrics::SERVER.set_cores(cores);
    // Before recovery, which can be long: /health answers and /ready says
    // 503 until every core serves.
    crate::admin::start(Arc::new(config.clone()), stats.clone(), clock);

    let pconfig = engine::pipeline::PipelineConfig {
        tick_ms: config.tick_time_ms,
        server_id: ensemble.me as u8,
        extended_types: config.extended_types,
        container_check_interval_ms: config.container_check_interval_ms,
    };
    let started = Instant::now();
    let snap_dir = config.snap_dir();
    create(&snap_dir)?;
    for tmp in storage::snapshot::tidy(&snap_dir) {
        info!(file = %tmp.display(), "put away a snapshot that was being written when the server stopped");
    }
    let extended_types = pconfig.extended_types;
    // Recovery rebuilds the tree and the sessions through a pipeline, the
    // way the log was written; the peer then starts from the result.
    let mut pipeline = engine::pipeline::Pipeline::new(pconfig, clock.now_ms());
    // The log is read on its own thread while the snapshot loads: reading
    // and re-syncing the last segment is mostly waiting for the disk. It
    // starts after the newest snapshot's zxid, which is the one that loads
    // unless that snapshot is damaged.
    let snapshots = storage::snapshot::list(&snap_dir);
    let newest_snapshot = snapshots.first().map_or(0, |(zxid, _)| *zxid);
    let log_reader = {
        let log_dir = log_dir.clone();
        std::thread::Builder::new()
            .name("corral-log-read".into())
            .spawn(move || {
                let started = Instant::now();
                let r = storage::recover_after(&log_dir, newest_snapshot);
                (r, started.elapsed().as_millis() as u64)
            })?
    };
    let loaded = crate::snap::load_newest(snapshots, extended_types);
    let loaded_file = loaded.map(|(tree, sessions, path)| {
        pipeline.restore(tree, &sessions, clock.now_ms());
        path
    });
    let snapshot_zxid = pipeline.last_zxid();
    let snapshot_ms = started.elapsed().as_millis() as u64;
    if let Some(path) = loaded_file {
        // As ZooKeeper's last_snapshot before the first new one: the
        // snapshot loaded at startup, timed by its file.
        if let Ok(m) = std::fs::metadata(&path) {
            let mtime_ms = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            metrics::SERVER.set_last_snapshot(snapshot_zxid, m.len(), mtime_ms);
        }
    }
    let (read, mut log_read_ms) = log_reader
        .join()
        .map_err(|_| anyhow::anyhow!("the thread reading the log panicked"))?;
    let read = if snapshot_zxid == newest_snapshot {
        read
    } else {
        // An older snapshot loaded: the log is needed from further back.
        let again = Instant::now();
        let r = storage::recover_after(&log_dir, snapshot_zxid);
        log_read_ms += again.elapsed().as_millis() as u64;
        r
    };
    let storage::Recovered {
        records,
        tail: wal_tail,
        truncated_bytes,
        torn_tail,
    } = read?;
    // The newest records after the snapshot become the history the peer
    // can sync others from; each payload is moved into one `Bytes` shared
    // by the decoded transaction and the history.
    let history_max = ensemble.zab.history_max;
    let history_bytes_max = ensemble.zab.history_bytes_max;
    let mut history: std::collections::VecDeque<engine::zab::Record> =
        std::collections::VecDeque::new();
    let mut history_bytes = 0usize;
    let mut count = 0;
    for (zxid, payload) in records {
        if zxid <= snapshot_zxid {
            continue;
        }
        if pipeline.last_zxid() != 0 && !storage::format::zxid_follows(pipeline.last_zxid(), zxid) {
            anyhow::bail!(
                "the log resumes at zxid {zxid:#x} but the state is at {:#x}: transactions are missing",
                pipeline.last_zxid()
            );
        }
        let payload = Bytes::from(payload);
        let txn = engine::txn::Txn::decode(payload.clone())
            .map_err(|e| anyhow::anyhow!("log record {zxid:#x} does not decode: {e}"))?;
        assert_eq!(txn.header.zxid, zxid, "record zxid matches its transaction");
        pipeline.recover(&txn, clock.now_ms());
        if history_max > 0 {
            // Both bounds, as the peer trims: the startup peak stays within
            // them too.
            history_bytes += payload.len();
            history.push_back((zxid, payload));
            while history.len() > history_max || history_bytes > history_bytes_max {
                match history.pop_front() {
                    Some((_, p)) => history_bytes -= p.len(),
                    None => break,
                }
            }
        }
        count += 1;
    }
    pipeline.finish_recovery(clock.now_ms());
    let last_zxid = pipeline.last_zxid();
    let (accepted_epoch, current_epoch) = crate::replica::read_epochs(&config.data_dir, last_zxid)?;
    let durable = engine::zab::Durable {
        tree: pipeline.committed_tree().clone(),
        sessions: pipeline
            .sessions()
            .iter()
            .map(|s| (s.id, s.timeout_ms))
            .collect(),
        snapshot_zxid,
        records: history.into(),
        accepted_epoch,
        current_epoch,
    };
    let sessions_recovered = durable.sessions.len();
    drop(pipeline);
    // Recovery built the tree through large temporary buffers; hand their
    // pages back to the OS instead of keeping them in the allocator.
    // SAFETY: mi_collect only walks the allocator's own free lists.
    unsafe { libmimalloc_sys::mi_collect(true) };
    if torn_tail {
        warn!(bytes = truncated_bytes, "cut a torn tail off the log");
    } else if truncated_bytes > 0 {
        debug!(
            bytes = truncated_bytes,
            "zeroed the old contents of a recycled log segment after the last record"
        );
    }
    info!(
        snapshot_zxid = format_args!("0x{snapshot_zxid:x}"),
        transactions_replayed = count,
        zxid = format_args!("0x{last_zxid:x}"),
        znodes = durable.tree.node_count(),
        sessions = sessions_recovered,
        accepted_epoch,
        current_epoch,
        snapshot_ms,
        log_read_ms,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "recovered from the log"
    );
    metrics::SERVER
        .recovery_ms
        .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    metrics::SERVER
        .transactions_recovered
        .store(count, Ordering::Relaxed);
    if !config.force_sync {
        warn!("forceSync=no: writes are acknowledged WITHOUT fdatasync; a crash loses acknowledged writes. Use for benchmarks only.");
    }
    let initial_tree = durable.tree.clone();
    let next_zxid = last_zxid + 1;
    let config = Arc::new(config);
    let committed_zxid = Arc::new(AtomicI64::new(initial_tree.last_zxid));

    let mut to_pipeline_tx = Vec::new();
    let mut to_pipeline_rx = Vec::new();
    let mut to_shard_tx = Vec::new();
    let mut to_shard_rx = Vec::new();
    for _ in 1..cores {
        let (t, r) = shared_channel::new_bounded::<ToPipeline>(CROSS_CORE_CHANNEL_CAPACITY);
        to_pipeline_tx.push(Some(t));
        to_pipeline_rx.push(r);
        let (t, r) = shared_channel::new_bounded::<Published>(CROSS_CORE_CHANNEL_CAPACITY);
        to_shard_tx.push(t);
        to_shard_rx.push(Some(r));
    }

    let mut handles = Vec::new();
    // Core 0: the ZAB peer, the log and a shard.
    {
        let config = config.clone();
        let tree = initial_tree.clone();
        let committed_zxid = committed_zxid.clone();
        let stats = stats.clone();
        let log_dir = log_dir.clone();
        let snap_dir = snap_dir.clone();
        let h = LocalExecutorBuilder::new(Placement::Fixed(0))
            .name("corral-core-0")
            .io_memory(IO_MEMORY_BYTES)
            .spawn(move || async move {
                let wal_config = storage::WalConfig {
                    dir: log_dir.clone(),
                    segment_bytes: config.pre_alloc_bytes,
                    force_sync: config.force_sync,
                };
                let mut wal = match Wal::open(wal_config, wal_tail, next_zxid).await {
                    Ok(w) => w,
                    Err(e) => {
                        error!("cannot open the log: {e}");
                        std::process::exit(1);
                    }
                };
                match wal.probe_sync_latency().await {
                    Ok(d) if d > Duration::from_millis(2) => warn!(
                        latency_us = d.as_micros() as u64,
                        "a 4 KiB write+fdatasync of the log took over 2 ms: writes will be slow on this disk"
                    ),
                    Ok(d) => info!(latency_us = d.as_micros() as u64, "log sync latency probe"),
                    Err(e) => {
                        error!("the log cannot be written: {e}");
                        std::process::exit(1);
                    }
                }
                let (pcore, tasks) = match PeerCore::start(&ensemble, durable, clock, config.data_dir.clone()) {
                    Ok(p) => p,
                    Err(e) => {
                        error!("cannot start replication: {e}");
                        std::process::exit(1);
                    }
                };
                let shard = new_shard(
                    0,
                    config.clone(),
                    clock,
                    tree,
                    PipelineLink::Local(pcore.clone()),
                    committed_zxid.clone(),
                    stats.clone(),
                );
                // Connect in the order the other cores do (their sender to
                // us first), or both sides wait for each other.
                let mut receivers = Vec::new();
                for rx in to_pipeline_rx {
                    receivers.push(rx.connect().await);
                }
                let mut senders = Vec::new();
                for t in to_shard_tx {
                    senders.push(t.connect().await);
                }
                for rx in receivers {
                    let pcore = pcore.clone();
                    glommio::spawn_local(async move {
                        while let Some(msg) = rx.recv().await {
                            match msg {
                                ToPipeline::Submit(v) => pcore.submit_all(v),
                                ToPipeline::Touch(v) => pcore.touch(v),
                            }
                        }
                    })
                    .detach();
                }
                // SIGTERM: stop accepting, let in-flight requests finish
                // (their records are durable once committed), then exit.
                {
                    let pcore = pcore.clone();
                    glommio::spawn_local(async move {
                        while !SHUTDOWN_REQUESTED.load(Ordering::SeqCst) {
                            glommio::timer::sleep(Duration::from_millis(20)).await;
                        }
                        STOPPING.store(true, Ordering::SeqCst);
                        metrics::SERVER.set_stopping();
                        info!("termination requested: no new connections, finishing in-flight requests");
                        let deadline = Instant::now() + Duration::from_secs(5);
                        while pcore.outstanding() > 0 && Instant::now() < deadline {
                            glommio::timer::sleep(Duration::from_millis(10)).await;
                        }
                        // Give the cores a moment to write the last replies.
                        glommio::timer::sleep(Duration::from_millis(100)).await;
                        let left = pcore.outstanding();
                        if left == 0 {
                            info!(zxid = format_args!("0x{:x}", pcore.peer().last_logged()), "stopped cleanly");
                            std::process::exit(0);
                        }
                        warn!(outstanding = left, "stopping with requests still in flight (none of them was acknowledged)");
                        std::process::exit(1);
                    })
                    .detach();
                }
                glommio::spawn_local(pcore.clone().run_ticks()).detach();
                if let Some(inbox) = tasks.inbox {
                    glommio::spawn_local(pcore.clone().run_inbox(inbox)).detach();
                }
                glommio::spawn_local(pcore.clone().run_log(
                    wal,
                    tasks.log_wake,
                    log_dir.clone(),
                    snap_dir.clone(),
                ))
                .detach();
                spawn_shard_tasks(shard.clone(), None).await;
                // The publisher: committed batches and serving changes to
                // every core, in order. The peer's first outputs (a
                // standalone server elects itself at once) are waiting.
                let snapshots = Rc::new(RefCell::new(Snapshotter::new(
                    &config,
                    snap_dir.clone(),
                    log_dir.clone(),
                    pcore.peer().tree().clone(),
                )));
                SNAPSHOTTER.with(|s| *s.borrow_mut() = Some(snapshots.clone()));
                let publish_wake = tasks.publish_wake;
                pcore.pump();
                loop {
                    while let Some(item) = pcore.next_published() {
                        let item: Published = Arc::new(item);
                        if let ToShard::Committed(batch) = &*item {
                            committed_zxid.store(batch.tree.last_zxid, Ordering::Release);
                            snapshots.borrow_mut().after_commit(
                                batch.entries.len() as u64,
                                &batch.tree,
                                || pcore.peer().sessions(),
                            );
                        }
                        for s in &senders {
                            if s.send(item.clone()).await.is_err() {
                                error!("a core stopped; shutting down");
                                std::process::exit(1);
                            }
                        }
                        shard.on_published(&item);
                    }
                    if publish_wake.recv().await.is_none() {
                        break;
                    }
                }
            })
            .map_err(|e| anyhow::anyhow!("cannot start core 0: {e}"))?;
        handles.push(h);
    }
    for (i, (tx, rx)) in to_pipeline_tx.into_iter().zip(to_shard_rx).enumerate() {
        let core = i + 1;
        let config = config.clone();
        let tree = initial_tree.clone();
        let committed_zxid = committed_zxid.clone();
        let stats = stats.clone();
        let h = LocalExecutorBuilder::new(Placement::Fixed(core % online))
            .name(&format!("corral-core-{core}"))
            .io_memory(IO_MEMORY_BYTES)
            .spawn(move || async move {
                let tx = tx.expect("sender").connect().await;
                let rx = rx.expect("receiver").connect().await;
                let shard = new_shard(
                    core as u16,
                    config,
                    clock,
                    tree,
                    PipelineLink::Remote,
                    committed_zxid,
                    stats,
                );
                spawn_shard_tasks(shard.clone(), Some(tx)).await;
                while let Some(item) = rx.recv().await {
                    shard.on_published(&item);
                }
            })
            .map_err(|e| anyhow::anyhow!("cannot start core {core}: {e}"))?;
        handles.push(h);
    }
    info!(
        addr = %config.client_addr(),
        cores,
        data_dir = %config.data_dir.display(),
        "corral started"
    );
    for h in handles {
        h.join()
            .map_err(|e| anyhow::anyhow!("executor failed: {e}"))?;
    }
    Ok(())
}

/// `stats` holds one entry per core, so its length is the core count.
fn new_shard(
    core: u16,
    config: Arc<Config>,
    clock: Clock,
    tree: DataTree,
    link: PipelineLink,
    committed_zxid: Arc<AtomicI64>,
    stats: Arc<Vec<CoreStats>>,
) -> Rc<Shard> {
    let (flush_tx, flush_rx) = local_channel::new_bounded::<()>(1);
    let shard = Rc::new(Shard {
        core,
        cores: stats.len(),
        config,
        clock,
        state: RefCell::new(ShardState {
            view: tree,
            watches: WatchManager::default(),
            conns: HashMap::new(),
            session_conn: HashMap::new(),
            touched: HashSet::new(),
            submissions: Vec::new(),
            catching_up: Vec::new(),
        }),
        counters: Counters::default(),
        link,
        flush_wake: flush_tx,
        next_conn: Cell::new(1),
        committed_zxid,
        stats,
        serving: Cell::new(false),
        read_only: Cell::new(false),
        next_local_session: Cell::new(0),
        slow_log: SlowLog::default(),
    });
    FLUSH_RX.with(|f| *f.borrow_mut() = Some(flush_rx));
    shard
}

thread_local! {
    static FLUSH_RX: RefCell<Option<LocalReceiver<()>>> = const { RefCell::new(None) };
}

/// Spawns the accept loop, the submission flusher and the touch flusher.
async fn spawn_shard_tasks(shard: Rc<Shard>, remote: Option<ConnectedSender<ToPipeline>>) {
    let remote = remote.map(Rc::new);
    let flush_rx = FLUSH_RX
        .with(|f| f.borrow_mut().take())
        .expect("flush receiver");
    // Submissions leave the core in one message per turn of the executor.
    {
        let shard = shard.clone();
        let remote = remote.clone();
        glommio::spawn_local(async move {
            while flush_rx.recv().await.is_some() {
                let subs = std::mem::take(&mut shard.state.borrow_mut().submissions);
                if subs.is_empty() {
                    continue;
                }
                match (&shard.link, &remote) {
                    (PipelineLink::Local(p), _) => p.submit_all(subs),
                    (PipelineLink::Remote, Some(tx)) => {
                        if tx.send(ToPipeline::Submit(subs)).await.is_err() {
                            error!("the pipeline core stopped");
                            std::process::exit(1);
                        }
                    }
                    (PipelineLink::Remote, None) => unreachable!("remote shard without a sender"),
                }
            }
        })
        .detach();
    }
    // Session touches, batched.
    {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            let period = Duration::from_millis((shard.config.tick_time_ms / 4).clamp(10, 250));
            loop {
                glommio::timer::sleep(period).await;
                shard.publish_slow_stats();
                let touched: Vec<SessionId> = shard.state.borrow_mut().touched.drain().collect();
                if touched.is_empty() {
                    continue;
                }
                match (&shard.link, &remote) {
                    (PipelineLink::Local(p), _) => p.touch(touched),
                    (PipelineLink::Remote, Some(tx)) => {
                        let _ = tx.send(ToPipeline::Touch(touched)).await;
                    }
                    _ => {}
                }
            }
        })
        .detach();
    }
    crate::admin::spawn_inbox_task(shard.clone());
    // Accept loops: the plaintext client port (unless only
    // secureClientPort is configured) and the TLS one.
    if shard.config.client_port != 0 {
        spawn_accept_loop(shard.clone(), shard.config.client_addr(), None);
    }
    if let (Some(port), Some(tls)) = (shard.config.secure_client_port, TLS.get()) {
        let addr = SocketAddr::new(shard.config.client_port_address, port);
        spawn_accept_loop(shard.clone(), addr, Some(tls.clone()));
    }
    metrics::SERVER.core_accepting();
}

/// The rustls configuration, built once at startup from zoo.cfg's `ssl.*`.
static TLS: std::sync::OnceLock<Arc<rustls::ServerConfig>> = std::sync::OnceLock::new();

fn spawn_accept_loop(shard: Rc<Shard>, addr: SocketAddr, tls: Option<Arc<rustls::ServerConfig>>) {
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            let port = if tls.is_some() {
                "secure client port"
            } else {
                "client port"
            };
            error!(%addr, "cannot listen on the {port}: {e}");
            std::process::exit(1);
        }
    };
    let handshake_timeout = shard
        .config
        .tls
        .as_ref()
        .map(|t| t.handshake_timeout)
        .unwrap_or(Duration::from_secs(5));
    let acceptor = tls.map(futures_rustls::TlsAcceptor::from);
    glommio::spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    if STOPPING.load(Ordering::Relaxed) {
                        drop(stream);
                        continue;
                    }
                    let Ok(peer) = stream.peer_addr() else {
                        continue;
                    };
                    // ZooKeeper's maxClientCnxns limits connections per client
                    // IP; corral applies it per core.
                    if shard.config.max_client_cnxns > 0 {
                        let same_ip = shard
                            .state
                            .borrow()
                            .conns
                            .values()
                            .filter(|c| c.peer.ip() == peer.ip())
                            .count();
                        if same_ip >= shard.config.max_client_cnxns {
                            warn!(%peer, limit = shard.config.max_client_cnxns, "too many connections from one address; refusing");
                            drop(stream);
                            continue;
                        }
                    }
                    match &acceptor {
                        None => {
                            let _ = stream.set_nodelay(true);
                            let fd = stream.as_raw_fd();
                            glommio::spawn_local(serve_conn(shard.clone(), stream, peer, fd, None))
                                .detach();
                        }
                        Some(acceptor) => {
                            glommio::spawn_local(serve_tls_conn(
                                shard.clone(),
                                stream,
                                acceptor.clone(),
                                handshake_timeout,
                            ))
                            .detach();
                        }
                    }
                }
                Err(e) => {
                    warn!("accept failed: {e}");
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    })
    .detach();
}
