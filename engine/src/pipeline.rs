//! The write pipeline: the state machine the pipeline core runs. Together
//! with `prep` and `apply` it plays ZooKeeper's PrepRequestProcessor,
//! SyncRequestProcessor (through the shell) and the apply half of
//! FinalRequestProcessor.
//!
//! # Ordering contract
//! - `submit` prepares a request at once against the *prepared* tree and
//!   assigns the next zxid; requests are prepared in arrival order, so one
//!   session's writes get increasing zxids in the order it sent them.
//! - `take_batch` hands the next prepared transactions, in zxid order, to
//!   the log. The shell writes them with one write and one fdatasync.
//! - `persisted(n)` is called only after those records are durable. Only
//!   then are they applied to the *committed* tree, and only the committed
//!   entries it returns may produce replies or watch events. So no client
//!   ever sees a change that could be lost.
//! - Barriers (sync, session re-attach) carry no record; they complete when
//!   every transaction prepared before them has committed.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::acl::AuthInfo;
use crate::apply::{self, Applied, Trigger};
use crate::op::{Reply, Response, WriteOp};
use crate::prep::{self, PrepContext};
use crate::session::{self, SessionTracker};
use crate::tree::DataTree;
use crate::txn::{Txn, TxnBody, TxnHeader};
use crate::types::{EphemeralKind, ErrorCode, SessionId, Zxid};

#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub tick_ms: u64,
    pub server_id: u8,
    /// ZooKeeper's `zookeeper.extendedTypesEnabled` (TTL nodes).
    pub extended_types: bool,
    /// ZooKeeper's `znode.container.checkIntervalMs`.
    pub container_check_interval_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            tick_ms: crate::constants::TICK_TIME_MS_DEFAULT,
            server_id: 0,
            extended_types: false,
            container_check_interval_ms: 60_000,
        }
    }
}

/// Where a reply goes: the core, the connection on it, the client's xid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    pub core: u16,
    pub conn: u64,
    pub xid: i32,
    /// The session has reads queued ahead of this request (behind an
    /// earlier write still in flight). The committed entry then carries the
    /// tree as it was just before it, so the core can answer those reads
    /// from the state they must see: after every earlier entry, before this
    /// one. Set only when needed, because every version kept alive makes
    /// the next updates copy the paths they share.
    pub reads_ahead: bool,
}

/// What a core hands to the pipeline.
#[derive(Clone, Debug)]
pub enum Submission {
    Write {
        origin: Origin,
        session: SessionId,
        op: WriteOp,
        auth: Arc<AuthInfo>,
    },
    Sync {
        origin: Origin,
        session: SessionId,
        path: String,
    },
    /// A connect without a session id; the timeout is already negotiated.
    CreateSession { origin: Origin, timeout_ms: i32 },
    /// A connect that names an existing session.
    Reattach {
        origin: Origin,
        session: SessionId,
        password: Vec<u8>,
    },
}

impl Submission {
    /// Where the reply goes.
    pub fn origin_mut(&mut self) -> &mut Origin {
        match self {
            Submission::Write { origin, .. }
            | Submission::Sync { origin, .. }
            | Submission::CreateSession { origin, .. }
            | Submission::Reattach { origin, .. } => origin,
        }
    }
}

/// The result of one committed entry, for the core that owns its origin.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A write or sync: the reply to send with the entry's zxid.
    Reply(Reply),
    /// A new session exists: send the connect response.
    SessionCreated {
        session: SessionId,
        timeout_ms: i32,
        password: Vec<u8>,
    },
    /// A re-attach: Some(timeout) if the session is live, None if expired
    /// or the password is wrong.
    Reattached {
        session: SessionId,
        timeout_ms: Option<i32>,
    },
    /// A transaction the server issued itself (expiry, container cleanup).
    Internal,
}

/// One entry of a committed batch, in zxid order.
#[derive(Clone, Debug)]
pub struct CommittedEntry {
    pub origin: Option<Origin>,
    pub session: SessionId,
    /// The zxid to put in the reply header (the last committed zxid for
    /// barriers).
    pub zxid: i64,
    pub outcome: Outcome,
    pub triggers: Vec<Trigger>,
    /// A session that ended with this entry: every core drops its
    /// connection and watches.
    pub closed_session: Option<SessionId>,
    /// The tree just before this entry, when the origin asked for it
    /// (`Origin::reads_ahead`).
    pub view_before: Option<DataTree>,
    /// A sync or re-attach: no transaction, it completes after every
    /// transaction up to `zxid`.
    pub barrier: bool,
}

/// What `persisted` returns: the entries and the tree version after them.
#[derive(Clone, Debug)]
pub struct CommittedBatch {
    pub entries: Vec<CommittedEntry>,
    pub tree: DataTree,
}

/// Records for the log, in zxid order.
#[derive(Debug, Default)]
pub struct Batch {
    /// (zxid, encoded transaction).
    pub records: Vec<(i64, Vec<u8>)>,
    /// How many pending entries (records and barriers) the batch covers;
    /// pass it back to `persisted`.
    pub entries: usize,
}

#[derive(Debug)]
enum PendingKind {
    Txn(Txn),
    /// The path to answer, or SessionMoved.
    Sync(Result<String, ErrorCode>),
    Reattach(SessionId, Option<i32>),
}

#[derive(Debug)]
struct Pending {
    origin: Option<Origin>,
    session: SessionId,
    kind: PendingKind,
    /// The timeout of a session being created (for its reply).
    timeout_ms: i32,
}

pub struct Pipeline {
    config: PipelineConfig,
    prepared: DataTree,
    committed: DataTree,
    sessions: SessionTracker,
    last_prepared: Zxid,
    queued: VecDeque<Pending>,
    in_flight: VecDeque<Pending>,
    next_container_check_ms: u64,
    batches_since_rebase: u32,
}

impl Pipeline {
    pub fn new(config: PipelineConfig, now_ms: u64) -> Pipeline {
        let tree = DataTree::new(config.extended_types);
        Pipeline {
            sessions: SessionTracker::new(config.tick_ms, config.server_id, now_ms),
            prepared: tree.clone(),
            committed: tree,
            last_prepared: Zxid::default(),
            queued: VecDeque::new(),
            in_flight: VecDeque::new(),
            next_container_check_ms: now_ms + config.container_check_interval_ms,
            batches_since_rebase: 0,
            config,
        }
    }

    /// Starts from a snapshot: its tree and its sessions (live from now).
    pub fn restore(&mut self, tree: DataTree, sessions: &[(SessionId, i32)], now_ms: u64) {
        assert!(self.queued.is_empty() && self.in_flight.is_empty());
        for &(id, timeout_ms) in sessions {
            self.sessions.add(id, timeout_ms, now_ms);
        }
        self.last_prepared = Zxid(tree.last_zxid);
        // `prepared` follows in finish_recovery, after the log replay.
        self.committed = tree;
    }

    /// Replays one logged transaction at startup.
    pub fn recover(&mut self, txn: &Txn, now_ms: u64) {
        assert!(self.queued.is_empty() && self.in_flight.is_empty());
        let (z, last) = (Zxid(txn.header.zxid), Zxid(self.committed.last_zxid));
        assert!(
            z.0 == last.0 + 1 || last.0 == 0 || (z.epoch() > last.epoch() && z.counter() == 1),
            "log gap: {z} after {last}"
        );
        apply::apply(&mut self.committed, txn);
        match &txn.body {
            TxnBody::CreateSession { timeout_ms } => {
                self.sessions.add(txn.header.session, *timeout_ms, now_ms)
            }
            TxnBody::CloseSession => self.sessions.remove(txn.header.session),
            _ => {}
        }
        self.last_prepared = Zxid(txn.header.zxid);
    }

    /// After recovery: sessions that own ephemerals but whose createSession
    /// is before the log we kept are restored so they can expire.
    pub fn finish_recovery(&mut self, now_ms: u64) {
        // One clone at the end: cloning per replayed transaction would make
        // every later update copy the paths the two versions share.
        self.prepared = self.committed.clone();
        for s in self.committed.sessions_with_ephemerals() {
            if self.sessions.get(s).is_none() {
                self.sessions.add(s, self.config.tick_ms as i32 * 2, now_ms);
            }
        }
    }

    /// A new leader's first zxid is `(epoch, 1)`: ZooKeeper's NEWLEADER
    /// takes `(epoch, 0)`.
    pub fn start_epoch(&mut self, epoch: u32) {
        assert!(self.queued.is_empty() && self.in_flight.is_empty());
        let base = Zxid::new(epoch, 0);
        assert!(
            base.0 >= self.last_prepared.0,
            "epoch {epoch} goes backwards"
        );
        self.last_prepared = base;
    }

    pub fn committed_tree(&self) -> &DataTree {
        &self.committed
    }

    pub fn last_zxid(&self) -> i64 {
        self.committed.last_zxid
    }

    pub fn sessions(&self) -> &SessionTracker {
        &self.sessions
    }

    /// Prepared entries not yet handed to the log, plus in flight.
    pub fn outstanding(&self) -> usize {
        self.queued.len() + self.in_flight.len()
    }

    fn next_header(&mut self, session: SessionId, cxid: i32, now_ms: u64) -> TxnHeader {
        self.last_prepared = self.last_prepared.next();
        TxnHeader {
            session,
            cxid,
            zxid: self.last_prepared.0,
            time: now_ms as i64,
        }
    }

    fn push_txn(&mut self, origin: Option<Origin>, txn: Txn, timeout_ms: i32) {
        apply::apply(&mut self.prepared, &txn);
        self.queued.push_back(Pending {
            origin,
            session: txn.header.session,
            kind: PendingKind::Txn(txn),
            timeout_ms,
        });
    }

    /// Prepares one submission from a client of this server (its owner is
    /// `PipelineConfig::server_id`). Never fails: a request that is invalid
    /// becomes an error transaction, answered in order.
    pub fn submit(&mut self, sub: Submission, now_ms: u64) {
        let owner = u64::from(self.config.server_id);
        self.submit_from(sub, owner, now_ms);
    }

    /// Prepares one submission that arrived through server `owner` (this
    /// one, or a learner that forwarded it).
    ///
    /// Matches ZooKeeper's session ownership (`SessionTrackerImpl`
    /// `setOwner`/`checkSession`): creating or re-attaching a session makes
    /// `owner` its owner; a write (but closeSession, which ZooKeeper does
    /// not check either: expiry issues it too) or sync of a live session
    /// owned by another server fails with SessionMoved. The client moved
    /// and this request came on the connection it left; the server holding
    /// that connection closes it rather than replying (`FinalRequestProcessor`).
    pub fn submit_from(&mut self, sub: Submission, owner: u64, now_ms: u64) {
        match sub {
            Submission::Write {
                origin,
                session,
                op,
                auth,
            } => {
                self.sessions.touch(session, now_ms);
                let header = self.next_header(session, origin.xid, now_ms);
                let txn = if op == WriteOp::CloseSession {
                    self.sessions.set_closing(session);
                    Txn {
                        header,
                        body: TxnBody::CloseSession,
                    }
                } else if !self.sessions.is_live(session) {
                    Txn {
                        header,
                        body: TxnBody::Error(ErrorCode::SessionExpired),
                    }
                } else if owner_checked(&op) && !self.sessions.check_owner(session, owner) {
                    // ZooKeeper's multi records the error per op; the whole
                    // request fails either way, and the client never sees
                    // the result (its connection is closed).
                    Txn {
                        header,
                        body: TxnBody::Error(ErrorCode::SessionMoved),
                    }
                } else {
                    let ctx = PrepContext {
                        session,
                        auth: &auth,
                        extended_types: self.config.extended_types,
                    };
                    prep::prepare(&ctx, &self.prepared, header, &op)
                };
                self.push_txn(Some(origin), txn, 0);
            }
            Submission::Sync {
                origin,
                session,
                path,
            } => {
                self.sessions.touch(session, now_ms);
                // A sync forwarded by a learner is answered by the learner
                // whatever its outcome here (so, as on ZooKeeper, only a
                // sync on the leader's own connection can fail this way).
                let moved =
                    self.sessions.is_live(session) && !self.sessions.check_owner(session, owner);
                let result = if moved {
                    Err(ErrorCode::SessionMoved)
                } else {
                    Ok(path)
                };
                self.queued.push_back(Pending {
                    origin: Some(origin),
                    session,
                    kind: PendingKind::Sync(result),
                    timeout_ms: 0,
                });
            }
            Submission::CreateSession { origin, timeout_ms } => {
                let session = self.sessions.next_session_id();
                self.sessions.add(session, timeout_ms, now_ms);
                self.sessions.set_owner(session, owner);
                let header = self.next_header(session, 0, now_ms);
                let txn = Txn {
                    header,
                    body: TxnBody::CreateSession { timeout_ms },
                };
                self.push_txn(Some(origin), txn, timeout_ms);
            }
            Submission::Reattach {
                origin,
                session,
                password,
            } => {
                let ok = password.as_slice() == session::password(session).as_slice()
                    && self.sessions.touch(session, now_ms);
                let timeout = if ok {
                    self.sessions.set_owner(session, owner);
                    self.sessions.get(session).map(|s| s.timeout_ms)
                } else {
                    None
                };
                self.queued.push_back(Pending {
                    origin: Some(origin),
                    session,
                    kind: PendingKind::Reattach(session, timeout),
                    timeout_ms: 0,
                });
            }
        }
    }

    /// Keeps sessions alive (pings and requests seen by the cores).
    pub fn touch(&mut self, session: SessionId, now_ms: u64) {
        self.sessions.touch(session, now_ms);
    }

    /// Expires sessions and cleans up containers and TTL nodes whose time
    /// has come, by preparing the transactions ZooKeeper would issue.
    pub fn tick(&mut self, now_ms: u64) {
        for session in self.sessions.expire(now_ms) {
            let header = self.next_header(session, 0, now_ms);
            let txn = Txn {
                header,
                body: TxnBody::CloseSession,
            };
            self.push_txn(None, txn, 0);
        }
        if now_ms >= self.next_container_check_ms {
            self.next_container_check_ms = now_ms + self.config.container_check_interval_ms;
            self.check_containers(now_ms);
        }
    }

    /// ZooKeeper's ContainerManager: delete containers that had children and
    /// are empty, and TTL nodes without children not modified for their TTL.
    pub fn check_containers(&mut self, now_ms: u64) {
        let tree = &self.prepared;
        let mut doomed: Vec<String> = Vec::new();
        for p in tree.containers() {
            if let Some(n) = tree.get(p) {
                if n.cversion > 0 && n.children.is_empty() {
                    doomed.push(p.to_string());
                }
            }
        }
        for p in tree.ttls() {
            if let Some(n) = tree.get(p) {
                if let EphemeralKind::Ttl(ttl) = EphemeralKind::of(n.ephemeral_owner, true) {
                    if n.children.is_empty() && now_ms as i64 - n.mtime > ttl {
                        doomed.push(p.to_string());
                    }
                }
            }
        }
        for path in doomed {
            let header = self.next_header(0, 0, now_ms);
            let ctx = PrepContext {
                session: 0,
                auth: &AuthInfo::default(),
                extended_types: self.config.extended_types,
            };
            let txn = prep::prepare(
                &ctx,
                &self.prepared,
                header,
                &WriteOp::DeleteContainer { path },
            );
            self.push_txn(None, txn, 0);
        }
    }

    /// Hands the next prepared entries to the log, at most `records_max`
    /// records and about `bytes_max` bytes (always at least one entry).
    pub fn take_batch(&mut self, records_max: usize, bytes_max: usize) -> Batch {
        let mut batch = Batch::default();
        let mut bytes = 0;
        while let Some(p) = self.queued.front() {
            if let PendingKind::Txn(txn) = &p.kind {
                if batch.entries > 0 && (batch.records.len() >= records_max || bytes >= bytes_max) {
                    break;
                }
                let rec = txn.to_bytes();
                bytes += rec.len();
                batch.records.push((txn.header.zxid, rec));
            }
            batch.entries += 1;
            self.in_flight
                .push_back(self.queued.pop_front().expect("front exists"));
        }
        batch
    }

    /// The first `entries` in-flight entries are durable: apply them to the
    /// committed tree and return what the cores must publish.
    pub fn persisted(&mut self, entries: usize) -> CommittedBatch {
        assert!(
            entries <= self.in_flight.len(),
            "persisted more than in flight"
        );
        let mut out = Vec::with_capacity(entries);
        for _ in 0..entries {
            let p = self.in_flight.pop_front().expect("counted");
            let view_before = p
                .origin
                .filter(|o| o.reads_ahead)
                .map(|_| self.committed.clone());
            match p.kind {
                PendingKind::Txn(txn) => {
                    let Applied { reply, triggers } = apply::apply(&mut self.committed, &txn);
                    let mut closed_session = None;
                    let outcome = match &txn.body {
                        TxnBody::CreateSession { .. } => Outcome::SessionCreated {
                            session: txn.header.session,
                            timeout_ms: p.timeout_ms,
                            password: session::password(txn.header.session).to_vec(),
                        },
                        TxnBody::CloseSession => {
                            self.sessions.remove(txn.header.session);
                            closed_session = Some(txn.header.session);
                            if p.origin.is_some() {
                                Outcome::Reply(reply)
                            } else {
                                Outcome::Internal
                            }
                        }
                        _ if p.origin.is_none() => Outcome::Internal,
                        _ => Outcome::Reply(reply),
                    };
                    out.push(CommittedEntry {
                        origin: p.origin,
                        session: p.session,
                        zxid: txn.header.zxid,
                        outcome,
                        triggers,
                        closed_session,
                        view_before,
                        barrier: false,
                    });
                }
                PendingKind::Sync(result) => out.push(CommittedEntry {
                    origin: p.origin,
                    session: p.session,
                    zxid: self.committed.last_zxid,
                    outcome: Outcome::Reply(result.map(Response::Path)),
                    triggers: Vec::new(),
                    closed_session: None,
                    view_before,
                    barrier: true,
                }),
                PendingKind::Reattach(session, timeout_ms) => out.push(CommittedEntry {
                    origin: p.origin,
                    session,
                    zxid: self.committed.last_zxid,
                    outcome: Outcome::Reattached {
                        session,
                        timeout_ms,
                    },
                    triggers: Vec::new(),
                    closed_session: None,
                    view_before,
                    barrier: true,
                }),
            }
        }
        self.rebase_prepared();
        CommittedBatch {
            entries: out,
            tree: self.committed.clone(),
        }
    }

    /// The prepared tree is the committed tree plus the outstanding
    /// transactions, but applying each transaction to both trees gives each
    /// its own copy of every node it touches. When little is outstanding,
    /// rebuild the prepared tree as a clone of the committed one (sharing
    /// every node) plus the outstanding transactions, so memory does not
    /// creep towards two full trees under sustained writes.
    fn rebase_prepared(&mut self) {
        const OUTSTANDING_FOR_REBASE_MAX: usize = 64;
        self.batches_since_rebase += 1;
        let outstanding = self.queued.len() + self.in_flight.len();
        if outstanding > 0
            && (outstanding > OUTSTANDING_FOR_REBASE_MAX || self.batches_since_rebase < 64)
        {
            return;
        }
        self.batches_since_rebase = 0;
        let mut prepared = self.committed.clone();
        for p in self.in_flight.iter().chain(self.queued.iter()) {
            if let PendingKind::Txn(txn) = &p.kind {
                apply::apply(&mut prepared, txn);
            }
        }
        // `last_prepared` may be a new epoch's base, `(epoch, 0)`, which
        // no transaction carries.
        let last_txn = self
            .in_flight
            .iter()
            .chain(self.queued.iter())
            .rev()
            .find_map(|p| match &p.kind {
                PendingKind::Txn(txn) => Some(txn.header.zxid),
                _ => None,
            });
        debug_assert_eq!(
            prepared.last_zxid,
            last_txn.unwrap_or(self.committed.last_zxid)
        );
        self.prepared = prepared;
    }
}

/// Whether a client write is checked against the session's owner, as
/// ZooKeeper's `PrepRequestProcessor` calls `checkSession`: every write but
/// closeSession, one refused before it is looked at, and an empty multi
/// (which has no op to check).
fn owner_checked(op: &WriteOp) -> bool {
    match op {
        WriteOp::CloseSession | WriteOp::Invalid(_) | WriteOp::DeleteContainer { .. } => false,
        WriteOp::Multi(ops) => !ops.is_empty(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{opcode, Acl};
    use bytes::Bytes;

    fn origin(xid: i32) -> Origin {
        Origin {
            core: 0,
            conn: 1,
            xid,
            reads_ahead: false,
        }
    }

    fn run(p: &mut Pipeline) -> CommittedBatch {
        let b = p.take_batch(usize::MAX, usize::MAX);
        p.persisted(b.entries)
    }

    fn create(path: &str, flags: i32) -> WriteOp {
        WriteOp::Create {
            opcode: opcode::CREATE,
            path: path.into(),
            data: Some(Bytes::from_static(b"d")),
            acl: vec![Acl::world_all()],
            flags,
            ttl: -1,
        }
    }

    fn session(p: &mut Pipeline) -> SessionId {
        p.submit(
            Submission::CreateSession {
                origin: origin(0),
                timeout_ms: 4000,
            },
            0,
        );
        match &run(p).entries[0].outcome {
            Outcome::SessionCreated { session, .. } => *session,
            o => panic!("{o:?}"),
        }
    }

    fn write(p: &mut Pipeline, s: SessionId, op: WriteOp) -> Reply {
        p.submit(
            Submission::Write {
                origin: origin(1),
                session: s,
                op,
                auth: Arc::new(AuthInfo::default()),
            },
            10,
        );
        match run(p).entries.pop().unwrap().outcome {
            Outcome::Reply(r) => r,
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn nothing_commits_before_persisted() {
        let mut p = Pipeline::new(PipelineConfig::default(), 0);
        let s = session(&mut p);
        p.submit(
            Submission::Write {
                origin: origin(1),
                session: s,
                op: create("/a", 0),
                auth: Arc::new(AuthInfo::default()),
            },
            0,
        );
        // A dependent create is prepared against the uncommitted parent.
        p.submit(
            Submission::Write {
                origin: origin(2),
                session: s,
                op: create("/a/b", 0),
                auth: Arc::new(AuthInfo::default()),
            },
            0,
        );
        let b = p.take_batch(usize::MAX, usize::MAX);
        assert_eq!(b.records.len(), 2);
        assert!(p.committed_tree().get("/a").is_none());
        let c = p.persisted(b.entries);
        assert_eq!(c.entries.len(), 2);
        assert!(c.tree.get("/a/b").is_some());
    }

    #[test]
    fn sequential_and_ephemeral_and_close() {
        let mut p = Pipeline::new(PipelineConfig::default(), 0);
        let s = session(&mut p);
        write(&mut p, s, create("/p", 0)).unwrap();
        assert_eq!(
            write(&mut p, s, create("/p/q-", 2)),
            Ok(Response::Path("/p/q-0000000000".into()))
        );
        assert_eq!(
            write(&mut p, s, create("/p/q-", 2)),
            Ok(Response::Path("/p/q-0000000001".into()))
        );
        assert_eq!(
            write(&mut p, s, create("/e", 1)),
            Ok(Response::Path("/e".into()))
        );
        assert_eq!(
            write(&mut p, s, create("/e/x", 0)),
            Err(ErrorCode::NoChildrenForEphemerals)
        );
        p.submit(
            Submission::Write {
                origin: origin(9),
                session: s,
                op: WriteOp::CloseSession,
                auth: Arc::new(AuthInfo::default()),
            },
            20,
        );
        let c = run(&mut p);
        assert_eq!(c.entries[0].closed_session, Some(s));
        assert!(c.tree.get("/e").is_none());
        assert_eq!(
            write(&mut p, s, create("/z", 0)),
            Err(ErrorCode::SessionExpired)
        );
    }

    /// Measured against Apache ZooKeeper 3.8: create /p/a, delete it, and the
    /// parent shows cversion 2, yet the next sequential child gets suffix 1.
    /// The suffix counts creations; the visible cversion counts creations
    /// and deletions.
    #[test]
    fn cversion_counts_changes_but_sequence_counts_creations() {
        let mut p = Pipeline::new(PipelineConfig::default(), 0);
        let s = session(&mut p);
        write(&mut p, s, create("/p", 0)).unwrap();
        write(&mut p, s, create("/p/a", 0)).unwrap();
        write(
            &mut p,
            s,
            WriteOp::Delete {
                path: "/p/a".into(),
                version: -1,
            },
        )
        .unwrap();
        assert_eq!(p.committed_tree().get("/p").unwrap().stat().cversion, 2);
        assert_eq!(
            write(&mut p, s, create("/p/s-", 2)),
            Ok(Response::Path("/p/s-0000000001".into()))
        );
        assert_eq!(p.committed_tree().get("/p").unwrap().stat().cversion, 3);
        // A fresh root shows -1: one child (/zookeeper) that was never created.
        let fresh = Pipeline::new(PipelineConfig::default(), 0);
        assert_eq!(fresh.committed_tree().get("/").unwrap().stat().cversion, -1);
    }

    #[test]
    fn failed_multi_changes_nothing() {
        let mut p = Pipeline::new(PipelineConfig::default(), 0);
        let s = session(&mut p);
        let r = write(
            &mut p,
            s,
            WriteOp::Multi(vec![
                create("/m", 0),
                create("/m", 0),
                WriteOp::Delete {
                    path: "/m".into(),
                    version: -1,
                },
            ]),
        );
        use crate::op::MultiResult::Error as E;
        assert_eq!(
            r,
            Ok(Response::Multi(vec![
                E(ErrorCode::Ok),
                E(ErrorCode::NodeExists),
                E(ErrorCode::RuntimeInconsistency)
            ]))
        );
        assert!(p.committed_tree().get("/m").is_none());
    }

    #[test]
    fn sessions_expire_and_take_their_ephemerals() {
        let mut p = Pipeline::new(PipelineConfig::default(), 0);
        let s = session(&mut p);
        write(&mut p, s, create("/e", 1)).unwrap();
        p.tick(100_000);
        let c = run(&mut p);
        assert_eq!(c.entries[0].closed_session, Some(s));
        assert!(c.tree.get("/e").is_none());
    }
}
