//! The connection task ↔ ZooKeeper's `ClientCnxn`: one tokio task owns
//! the socket, the queues of requests and the watch table.
//!
//! It follows the Java client where a user could tell the difference:
//! - Hosts are tried in a shuffled order; each attempt (TCP connect and
//!   the connect handshake) has `session timeout / hosts` to finish. After
//!   every host failed in a row, it waits a second before the next round.
//! - A failed attempt or a lost connection fails every request sent and
//!   every request queued with ConnectionLoss (`ClientCnxn.cleanup`); a
//!   request issued while connecting waits for that attempt.
//! - On every connect it re-attaches the session (id, password,
//!   lastZxidSeen), then sends SetWatches with every watch it holds, then
//!   the auth infos, then the queued requests (`primeConnection`).
//! - A refused re-attach (timeout 0) is session expiry: the handle is
//!   closed and the Expired event delivered.
//! - It pings after `read timeout / 2` without sending, and gives the
//!   connection up after `read timeout` (2/3 of the negotiated session
//!   timeout) without hearing from the server.
//! - Replies come back in request order; a reply out of order is a broken
//!   connection, as in ZooKeeper.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use engine::op::Response;
use engine::types::{ErrorCode, EventType, WatcherType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, timeout, Instant};

use crate::codec::{self, ConnectRequest, Request};
use crate::connect_string::ConnectString;
use crate::event::{event_type_from_code, KeeperState, State, WatchedEvent};
use crate::watches::{Registration, WatchTable};

/// Requests sent and not yet answered, plus requests queued while
/// connecting. Beyond it, new requests fail at once.
pub const REQUESTS_QUEUED_MAX: usize = 100_000;

/// Pause after every host of the connect string failed in a row
/// (`StaticHostProvider`'s spin delay).
const ROUND_PAUSE: Duration = Duration::from_secs(1);

/// Bytes of a connect response body we accept (it is 37 or 38).
const CONNECT_RESPONSE_BYTES_MAX: i32 = 1024;

pub type Reply = Result<Response, ErrorCode>;

/// One request on its way (`ClientCnxn.Packet`).
pub struct Packet {
    pub request: Request,
    pub reply: oneshot::Sender<Reply>,
    /// The watch a reply leaves, with its server path.
    pub registration: Option<(Registration, String)>,
    /// removeWatches: (server path, kind, local).
    pub deregistration: Option<(String, WatcherType, bool)>,
}

/// Sent from the handle to the task.
pub enum Command {
    Submit(Packet),
    AddAuth { scheme: String, auth: Bytes },
    Close { done: oneshot::Sender<()> },
}

/// What the handle can read without asking the task.
#[derive(Clone, Copy, Debug)]
pub struct Shared {
    pub state: State,
    pub session_id: i64,
    pub timeout_ms: i32,
    /// Why the task ended, for requests made afterwards.
    pub ended_with: ErrorCode,
}

pub struct Options {
    pub session_timeout_ms: i32,
    pub read_only: bool,
    /// Connect over TLS (the Java client's `zookeeper.client.secure`).
    pub tls: Option<crate::tls::Tls>,
}

/// A connection's byte stream: plain TCP or TLS over it.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for S {}
type Stream = Box<dyn Io>;

struct Sent {
    xid: i32,
    opcode: i32,
    packet: Packet,
}

/// Why a connected period ended.
enum Ended {
    Lost,
    Closed,
    AuthFailed,
}

pub struct Cnxn {
    connect: ConnectString,
    hosts: Vec<String>,
    opts: Options,
    shared: Arc<Mutex<Shared>>,
    events: mpsc::UnboundedSender<WatchedEvent>,
    session_id: i64,
    password: Bytes,
    negotiated_timeout_ms: i32,
    last_zxid: i64,
    xid: i32,
    outgoing: VecDeque<Packet>,
    pending: VecDeque<Sent>,
    watches: WatchTable,
    auth: Vec<(String, Bytes)>,
    /// The last state an event of type None reported (`EventThread`
    /// delivers a state change only once).
    event_state: KeeperState,
}

/// TCP connect and the session handshake, within `limit`.
async fn handshake(
    host: String,
    request: ConnectRequest,
    limit: Duration,
    tls: Option<crate::tls::Tls>,
) -> Result<(Stream, codec::ConnectResponse), ()> {
    let attempt = async {
        let tcp = TcpStream::connect(&host).await.ok()?;
        tcp.set_nodelay(true).ok()?;
        let mut s: Stream = match tls {
            None => Box::new(tcp),
            Some(tls) => Box::new(tls.connect(&host, tcp).await.ok()?),
        };
        let mut out = Vec::new();
        codec::encode_connect(&mut out, &request);
        s.write_all(&out).await.ok()?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await.ok()?;
        let n = i32::from_be_bytes(len);
        // A connect response is 37 or 38 bytes; anything else is not a
        // ZooKeeper server answering.
        if !(0..=CONNECT_RESPONSE_BYTES_MAX).contains(&n) {
            return None;
        }
        let mut body = vec![0u8; n as usize];
        s.read_exact(&mut body).await.ok()?;
        let resp = codec::decode_connect_response(Bytes::from(body)).ok()?;
        Some((s, resp))
    };
    match timeout(limit, attempt).await {
        Ok(Some(ok)) => Ok(ok),
        _ => Err(()),
    }
}

/// A cheap shuffle seeded by the clock: which host goes first does not
/// need to be unpredictable, only spread.
fn shuffle(hosts: &mut [String]) {
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    for i in (1..hosts.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        hosts.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

impl Cnxn {
    pub fn new(
        connect: ConnectString,
        opts: Options,
        shared: Arc<Mutex<Shared>>,
        events: mpsc::UnboundedSender<WatchedEvent>,
    ) -> Cnxn {
        let mut hosts = connect.hosts.clone();
        shuffle(&mut hosts);
        Cnxn {
            connect,
            hosts,
            negotiated_timeout_ms: opts.session_timeout_ms,
            opts,
            shared,
            events,
            session_id: 0,
            password: Bytes::from_static(&[0u8; engine::constants::SESSION_PASSWORD_LEN]),
            last_zxid: 0,
            xid: 1,
            outgoing: VecDeque::new(),
            pending: VecDeque::new(),
            watches: WatchTable::default(),
            auth: Vec::new(),
            event_state: KeeperState::Disconnected,
        }
    }

    fn set_state(&self, state: State) {
        let mut s = self.shared.lock().expect("client state lock");
        s.state = state;
        s.session_id = self.session_id;
        s.timeout_ms = self.negotiated_timeout_ms;
    }

    fn end(&self, state: State, why: ErrorCode) {
        self.set_state(state);
        self.shared.lock().expect("client state lock").ended_with = why;
    }

    fn emit(&mut self, event: WatchedEvent) {
        if event.event_type == EventType::None {
            if event.state == self.event_state {
                return;
            }
            self.event_state = event.state;
        }
        // The receiver may be gone (the handle was dropped): nothing to do.
        let _ = self.events.send(event);
    }

    fn emit_state(&mut self, state: KeeperState) {
        self.emit(WatchedEvent {
            state,
            event_type: EventType::None,
            path: None,
        });
    }

    fn next_xid(&mut self) -> i32 {
        let x = self.xid;
        // Wraps before reaching the special negative xids.
        self.xid = if x == i32::MAX { 1 } else { x + 1 };
        x
    }

    /// Completes a request: registers or removes watches as its result
    /// says, then answers (`ClientCnxn.finishPacket`).
    fn finish(&mut self, packet: Packet, mut result: Reply) {
        let rc = match &result {
            Ok(_) => ErrorCode::Ok,
            Err(c) => *c,
        };
        if let Some((reg, path)) = &packet.registration {
            self.watches.register(*reg, path, rc);
        }
        if let Some((path, kind, local)) = &packet.deregistration {
            match self.watches.remove(path, *kind, *local, rc) {
                Ok(removed) => {
                    let state = match rc {
                        ErrorCode::SessionExpired | ErrorCode::ConnectionLoss => {
                            KeeperState::Disconnected
                        }
                        _ => KeeperState::SyncConnected,
                    };
                    let client_path = self.connect.client_path(path);
                    for event_type in removed {
                        self.emit(WatchedEvent {
                            state,
                            event_type,
                            path: Some(client_path.clone()),
                        });
                    }
                    result = Ok(Response::Empty);
                }
                Err(code) => result = Err(code),
            }
        }
        // The caller may have given up waiting.
        let _ = packet.reply.send(result);
    }

    /// Fails everything sent and queued (`ClientCnxn.cleanup`).
    fn fail_all(&mut self, code: ErrorCode) {
        while let Some(sent) = self.pending.pop_front() {
            self.finish(sent.packet, Err(code));
        }
        while let Some(p) = self.outgoing.pop_front() {
            self.finish(p, Err(code));
        }
    }

    fn queue(&mut self, p: Packet) {
        if self.pending.len() + self.outgoing.len() >= REQUESTS_QUEUED_MAX {
            let _ = p.reply.send(Err(ErrorCode::Throttled));
            return;
        }
        self.outgoing.push_back(p);
    }

    /// Runs until the handle is closed, the session expires or auth fails.
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut next_host = 0usize;
        let mut failed_in_a_row = 0usize;
        loop {
            if failed_in_a_row > 0 && failed_in_a_row.is_multiple_of(self.hosts.len()) {
                let until = Instant::now() + ROUND_PAUSE;
                loop {
                    tokio::select! {
                        _ = sleep_until(until) => break,
                        cmd = commands.recv() => {
                            if let Some(done) = self.command_while_connecting(cmd) {
                                return self.close_disconnected(done);
                            }
                        }
                    }
                }
            }
            let host = self.hosts[next_host].clone();
            next_host = (next_host + 1) % self.hosts.len();
            self.set_state(State::Connecting);
            let per_host = self.opts.session_timeout_ms.max(1) as u64 / self.hosts.len() as u64;
            let request = ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: self.last_zxid,
                timeout_ms: self.opts.session_timeout_ms,
                session_id: self.session_id,
                password: self.password.clone(),
                read_only: self.opts.read_only,
            };
            let attempt = handshake(
                host,
                request,
                Duration::from_millis(per_host.max(100)),
                self.opts.tls.clone(),
            );
            tokio::pin!(attempt);
            let outcome = loop {
                tokio::select! {
                    r = &mut attempt => break r,
                    cmd = commands.recv() => {
                        if let Some(done) = self.command_while_connecting(cmd) {
                            return self.close_disconnected(done);
                        }
                    }
                }
            };
            let (stream, resp) = match outcome {
                Ok(ok) => ok,
                Err(()) => {
                    failed_in_a_row += 1;
                    self.fail_all(ErrorCode::ConnectionLoss);
                    continue;
                }
            };
            failed_in_a_row = 0;
            if resp.timeout_ms <= 0 {
                // The server no longer knows the session.
                self.end(State::Closed, ErrorCode::SessionExpired);
                self.emit_state(KeeperState::Expired);
                self.fail_all(ErrorCode::SessionExpired);
                return;
            }
            self.session_id = resp.session_id;
            self.password = resp.password;
            self.negotiated_timeout_ms = resp.timeout_ms;
            if resp.read_only {
                self.set_state(State::ConnectedReadOnly);
                self.emit_state(KeeperState::ConnectedReadOnly);
            } else {
                self.set_state(State::Connected);
                self.emit_state(KeeperState::SyncConnected);
            }
            match self.connected(stream, &mut commands).await {
                Ended::Lost => {
                    self.set_state(State::Connecting);
                    self.emit_state(KeeperState::Disconnected);
                    self.fail_all(ErrorCode::ConnectionLoss);
                }
                Ended::Closed | Ended::AuthFailed => return,
            }
        }
    }

    /// A command that arrived while no connection is up; Some on close.
    fn command_while_connecting(
        &mut self,
        cmd: Option<Command>,
    ) -> Option<Option<oneshot::Sender<()>>> {
        match cmd {
            None => Some(None),
            Some(Command::Close { done }) => Some(Some(done)),
            Some(Command::Submit(p)) => {
                self.queue(p);
                None
            }
            Some(Command::AddAuth { scheme, auth }) => {
                self.auth.push((scheme, auth));
                None
            }
        }
    }

    fn close_disconnected(mut self, done: Option<oneshot::Sender<()>>) {
        self.end(State::Closed, ErrorCode::ConnectionLoss);
        self.emit_state(KeeperState::Closed);
        self.fail_all(ErrorCode::ConnectionLoss);
        if let Some(done) = done {
            let _ = done.send(());
        }
    }

    /// Serves one connection until it breaks or the handle closes.
    async fn connected(
        &mut self,
        mut stream: Stream,
        commands: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Ended {
        let read_timeout =
            Duration::from_millis((self.negotiated_timeout_ms as u64 * 2 / 3).max(10));
        let ping_after = read_timeout / 2;
        let mut out = Vec::new();
        // primeConnection: watches, auth, then what waited for us.
        if let Some(op) = self.watches.set_watches(self.last_zxid) {
            codec::encode_request(&mut out, codec::XID_SET_WATCHES, &Request::Read(op));
        }
        for (scheme, auth) in &self.auth {
            let req = Request::Auth {
                scheme: scheme.clone(),
                auth: auth.clone(),
            };
            codec::encode_request(&mut out, codec::XID_AUTH, &req);
        }
        while let Some(p) = self.outgoing.pop_front() {
            self.encode_packet(&mut out, p);
        }
        if stream.write_all(&out).await.is_err() {
            return Ended::Lost;
        }
        let mut last_send = Instant::now();
        let mut last_recv = Instant::now();
        let mut rbuf = BytesMut::with_capacity(64 * 1024);
        loop {
            out.clear();
            tokio::select! {
                n = stream.read_buf(&mut rbuf) => {
                    match n {
                        Ok(0) | Err(_) => return Ended::Lost,
                        Ok(_) => last_recv = Instant::now(),
                    }
                    match self.read_frames(&mut rbuf) {
                        Ok(()) => {}
                        Err(ended) => return ended,
                    }
                }
                cmd = commands.recv() => match cmd {
                    Some(Command::Submit(p)) => self.encode_packet(&mut out, p),
                    Some(Command::AddAuth { scheme, auth }) => {
                        let req = Request::Auth { scheme: scheme.clone(), auth: auth.clone() };
                        codec::encode_request(&mut out, codec::XID_AUTH, &req);
                        self.auth.push((scheme, auth));
                    }
                    Some(Command::Close { done }) => {
                        self.close_connected(&mut stream, &mut rbuf, read_timeout).await;
                        let _ = done.send(());
                        return Ended::Closed;
                    }
                    None => {
                        self.close_connected(&mut stream, &mut rbuf, read_timeout).await;
                        return Ended::Closed;
                    }
                },
                _ = sleep_until(last_send + ping_after) => {
                    codec::encode_request(&mut out, codec::XID_PING, &Request::Ping);
                }
                _ = sleep_until(last_recv + read_timeout) => return Ended::Lost,
            }
            if !out.is_empty() {
                if stream.write_all(&out).await.is_err() {
                    return Ended::Lost;
                }
                last_send = Instant::now();
            }
        }
    }

    fn encode_packet(&mut self, out: &mut Vec<u8>, p: Packet) {
        if self.pending.len() >= REQUESTS_QUEUED_MAX {
            let _ = p.reply.send(Err(ErrorCode::Throttled));
            return;
        }
        let xid = self.next_xid();
        codec::encode_request(out, xid, &p.request);
        self.pending.push_back(Sent {
            xid,
            opcode: p.request.opcode(),
            packet: p,
        });
    }

    /// Handles every whole frame in `rbuf`.
    fn read_frames(&mut self, rbuf: &mut BytesMut) -> Result<(), Ended> {
        loop {
            let total = match codec::split_frame(rbuf, codec::FRAME_BYTES_MAX) {
                Ok(Some(n)) => n,
                Ok(None) => return Ok(()),
                Err(_) => return Err(Ended::Lost),
            };
            let frame = rbuf.split_to(total).freeze().slice(4..);
            self.on_frame(frame)?;
        }
    }

    fn on_frame(&mut self, frame: Bytes) -> Result<(), Ended> {
        let (header, record) = codec::decode_reply_header(frame).map_err(|_| Ended::Lost)?;
        match header.xid {
            codec::XID_NOTIFICATION => {
                let ev = codec::decode_event(record).map_err(|_| Ended::Lost)?;
                let Some(event_type) = event_type_from_code(ev.event_type) else {
                    return Ok(());
                };
                if self.watches.materialize(event_type, &ev.path) {
                    let path = self.connect.client_path(&ev.path);
                    self.emit(WatchedEvent {
                        state: KeeperState::from_code(ev.state),
                        event_type,
                        path: Some(path),
                    });
                }
                Ok(())
            }
            codec::XID_PING | codec::XID_SET_WATCHES => Ok(()),
            codec::XID_AUTH => {
                if header.err == ErrorCode::AuthFailed.code() {
                    self.end(State::AuthFailed, ErrorCode::AuthFailed);
                    self.emit_state(KeeperState::AuthFailed);
                    self.fail_all(ErrorCode::AuthFailed);
                    return Err(Ended::AuthFailed);
                }
                Ok(())
            }
            xid => {
                let Some(sent) = self.pending.pop_front() else {
                    return Err(Ended::Lost);
                };
                if sent.xid != xid {
                    // "Xid out of order": the connection is not trustworthy.
                    self.pending.push_front(sent);
                    return Err(Ended::Lost);
                }
                if header.zxid > 0 {
                    self.last_zxid = header.zxid;
                }
                let result = if header.err == 0 {
                    codec::decode_response(sent.opcode, record)
                        .map_err(|_| ErrorCode::MarshallingError)
                } else {
                    Err(codec::error_code(header.err))
                };
                self.finish(sent.packet, result);
                Ok(())
            }
        }
    }

    /// Sends closeSession and waits (at most `limit`) for its reply or the
    /// server closing the socket, then reports Closed.
    async fn close_connected(&mut self, stream: &mut Stream, rbuf: &mut BytesMut, limit: Duration) {
        let mut out = Vec::new();
        let xid = self.next_xid();
        let req = Request::Write(engine::op::WriteOp::CloseSession);
        codec::encode_request(&mut out, xid, &req);
        let (tx, _rx) = oneshot::channel();
        self.pending.push_back(Sent {
            xid,
            opcode: req.opcode(),
            packet: Packet {
                request: req,
                reply: tx,
                registration: None,
                deregistration: None,
            },
        });
        let wait = async {
            stream.write_all(&out).await.ok()?;
            while self.pending.iter().any(|s| s.xid == xid) {
                let n = stream.read_buf(rbuf).await.ok()?;
                if n == 0 {
                    return None;
                }
                self.read_frames(rbuf).ok()?;
            }
            Some(())
        };
        let _ = timeout(limit, wait).await;
        self.end(State::Closed, ErrorCode::ConnectionLoss);
        self.emit_state(KeeperState::Closed);
        self.fail_all(ErrorCode::ConnectionLoss);
    }
}
