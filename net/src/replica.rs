//! The replication shell on core 0: runs the engine's ZAB [`Peer`] and
//! executes what it asks for ↔ ZooKeeper's `QuorumPeer` thread plus the
//! `SyncRequestProcessor` and `CommitProcessor` glue.
//!
//! A standalone server is an ensemble of one: the same `Peer` elects itself
//! at once, and every write goes through the same rounds, group commit and
//! publication as on an ensemble's leader.
//!
//! What the shell promises the `Peer` (see `engine::zab`):
//! - outputs are executed in the order given; `PersistEpochs` is durable
//!   before any later output leaves (it is written synchronously);
//! - log operations (append, install a snapshot, truncate) run one at a
//!   time in order on the log task; `Peer::persisted` is called only once
//!   the log is durable up to the zxid reported;
//! - committed batches and serving changes reach every core in order.
//!
//! Tasks on core 0: the log writer (group commit: every append queued while
//! one write+fdatasync is in flight goes into the next one), the publisher
//! (committed batches to the cores), the ticker, and the transport's inbox.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::pipeline::{CommittedBatch, Submission};
use engine::tree::DataTree;
use engine::types::SessionId;
use engine::zab::Message as ZabMessage;
use engine::zab::{Durable, HandoverRefused, Output, Peer, PeerState, Record, ServerId, ZabConfig};
use glommio::channels::local_channel::{LocalReceiver, LocalSender};
use storage::Wal;
use tracing::{error, info, warn};

use crate::config::Config;
use crate::metrics;
use crate::quorum::{Inbound, PeerAddrs, Transport};
use crate::server::Clock;

/// How often the peer's clock advances (elections, pings, session expiry).
const TICK_PERIOD: Duration = Duration::from_millis(25);

/// How long `ydld` and `rqld` wait to report how a handover ended: the
/// leader's own wait for a caught-up successor (`YIELD_WAIT_MS_MAX`) plus
/// an election, which a handover makes quick.
pub const HANDOVER_REPORT_WAIT: Duration = Duration::from_millis(3_000);

/// How the last handover this server started as leader ended, as its
/// `Output::Yielded` said: `HANDOVER_PENDING` while under way,
/// `HANDOVER_GAVE_UP`, or the successor's id + 2 once it stepped down.
static HANDOVER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(HANDOVER_PENDING);
const HANDOVER_PENDING: u64 = 0;
const HANDOVER_GAVE_UP: u64 = 1;

/// Which handover an operator asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoverKind {
    /// `ydld` / `yield_leadership`, on the leader.
    Yield,
    /// `rqld` / `request_leadership`, on a follower.
    Request,
}

/// Why a handover was refused, as `ydld`/`rqld` say it (one line, no
/// newline).
pub fn handover_refused_text(kind: HandoverKind, why: HandoverRefused) -> String {
    let head = match kind {
        HandoverKind::Yield => "Failed to yield leadership",
        HandoverKind::Request => "Failed to request leadership",
    };
    match why {
        HandoverRefused::AlreadyLeader => "This server is already the leader.".into(),
        HandoverRefused::NoOtherVoter => {
            format!("{head}: this server is the only voter; there is no one to hand over to.")
        }
        HandoverRefused::NotLeader => format!("{head}: this server is not the leader."),
        HandoverRefused::Observer => format!("{head}: an observer cannot lead."),
        HandoverRefused::NoLeader => format!("{head}: this server follows no leader."),
        HandoverRefused::NotAVoter(s) => format!("{head}: server {s} is not another voter."),
        HandoverRefused::InProgress => {
            format!("{head}: a leadership handover is already under way.")
        }
    }
}

/// Where a handover this server asked for stands (`asked`: for `ydld`
/// this server, for `rqld` the leader it asked): None while undecided,
/// then Ok(text) or Err(text). Read from the statics core 0 publishes, so
/// any core (or the admin thread) can poll it.
pub fn handover_progress(
    kind: HandoverKind,
    me: ServerId,
    asked: ServerId,
) -> Option<Result<String, String>> {
    let serving = matches!(server_state(), "leader" | "follower");
    match kind {
        HandoverKind::Yield => match HANDOVER.load(Ordering::Relaxed) {
            HANDOVER_PENDING => None,
            HANDOVER_GAVE_UP => Some(Err(format!(
                "Failed to yield leadership: no follower caught up with the leader's log within {} ms; this server is still the leader.",
                engine::constants::YIELD_WAIT_MS_MAX
            ))),
            _ => match leader_id().filter(|_| serving) {
                Some(l) if l != me => Some(Ok(format!("Leadership moved to server {l}."))),
                Some(_) => Some(Err(
                    "Failed to yield leadership: this server was elected again.".into(),
                )),
                None => None,
            },
        },
        HandoverKind::Request => match leader_id().filter(|_| serving) {
            Some(l) if l == me => Some(Ok(format!("This server ({me}) is now the leader."))),
            Some(l) if l != asked => Some(Err(format!(
                "Failed to request leadership: server {l} leads now, not this server."
            ))),
            _ => None,
        },
    }
}

/// What `ydld`/`rqld` say when `HANDOVER_REPORT_WAIT` passed undecided.
/// One look at a handover started at `started`: Some((moved, text)) once
/// it ended or `HANDOVER_REPORT_WAIT` passed, None while it is under way.
/// The four-letter word (on a core) and the admin command (on its thread)
/// poll this, each with its own kind of sleep.
pub fn handover_outcome(
    kind: HandoverKind,
    me: ServerId,
    asked: ServerId,
    started: Instant,
) -> Option<(bool, String)> {
    match handover_progress(kind, me, asked) {
        Some(Ok(text)) => Some((true, text)),
        Some(Err(text)) => Some((false, text)),
        None if started.elapsed() >= HANDOVER_REPORT_WAIT => {
            Some((false, handover_timeout_text(kind, asked)))
        }
        None => None,
    }
}

pub fn handover_timeout_text(kind: HandoverKind, asked: ServerId) -> String {
    let ms = HANDOVER_REPORT_WAIT.as_millis();
    match kind {
        HandoverKind::Yield => match HANDOVER.load(Ordering::Relaxed) {
            n if n >= 2 => format!(
                "Stepped down in favour of server {}, but no leader was elected within {ms} ms.",
                n - 2
            ),
            _ => format!("Failed to yield leadership: no outcome within {ms} ms."),
        },
        HandoverKind::Request => format!(
            "Failed to request leadership: sent the request to leader {asked}, but this server did not become leader within {ms} ms (a leader hands over only to a follower that holds its whole log)."
        ),
    }
}

/// What core 0 publishes to every core, in order.
pub enum ToShard {
    Committed(Arc<CommittedBatch>),
    /// Serving started or stopped; on stop every client connection closes.
    Serving(bool),
    /// Still without a quorum after the read-only delay: accept read-only
    /// clients (`readonlymode.enabled`) until serving starts again.
    ReadOnly,
}

/// This server's role, readable from any core (four-letter words, admin).
static ROLE: AtomicU8 = AtomicU8::new(ROLE_LOOKING);
const ROLE_LOOKING: u8 = 0;
const ROLE_FOLLOWING: u8 = 1;
const ROLE_LEADING: u8 = 2;
const ROLE_OBSERVING: u8 = 3;
const ROLE_STANDALONE: u8 = 4;
const ROLE_READ_ONLY: u8 = 5;

/// The leader this server follows or is, plus one; 0 while there is none.
static LEADER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The current leader's id, while this server serves under one.
pub fn leader_id() -> Option<ServerId> {
    match LEADER.load(Ordering::Relaxed) {
        0 => None,
        n => Some(n - 1),
    }
}

/// The leader's learner figures, published by core 0 every tick for the
/// four-letter words and the admin server on any core: learners, synced
/// followers, synced observers, pending syncs. All 0 unless leading.
static LEARNERS: [std::sync::atomic::AtomicUsize; 4] = [
    std::sync::atomic::AtomicUsize::new(0),
    std::sync::atomic::AtomicUsize::new(0),
    std::sync::atomic::AtomicUsize::new(0),
    std::sync::atomic::AtomicUsize::new(0),
];

/// ZooKeeper's leader-only mntr lines, when this server leads.
pub fn leader_figures() -> Option<[(&'static str, usize); 4]> {
    (server_state() == "leader").then(|| {
        let get = |i: usize| LEARNERS[i].load(Ordering::Relaxed);
        [
            ("learners", get(0)),
            ("synced_followers", get(1)),
            ("synced_observers", get(2)),
            ("pending_syncs", get(3)),
        ]
    })
}

/// ZooKeeper's name for this server's state (`srvr`'s Mode,
/// `zk_server_state`): standalone, leader, follower, observer or looking.
pub fn server_state() -> &'static str {
    match ROLE.load(Ordering::Relaxed) {
        ROLE_FOLLOWING => "follower",
        ROLE_LEADING => "leader",
        ROLE_OBSERVING => "observer",
        ROLE_STANDALONE => "standalone",
        ROLE_READ_ONLY => "read-only",
        _ => "looking",
    }
}

/// What waits to be published, in order. Few are queued at a time, and
/// a committed batch is moved, not copied, into the published one.
#[allow(clippy::large_enum_variant)]
enum Pending {
    Committed(CommittedBatch),
    Serving(bool),
    ReadOnly,
}

/// One log operation, run in order by the log task.
enum LogOp {
    Append(Vec<Record>),
    Install {
        tree: DataTree,
        sessions: Vec<(SessionId, i32)>,
    },
    Truncate {
        after: i64,
    },
}

/// Who this server is and the ensemble it belongs to, from the config.
pub struct Ensemble {
    pub me: ServerId,
    pub zab: ZabConfig,
    /// Other servers' addresses; empty when standalone.
    pub peers: BTreeMap<ServerId, PeerAddrs>,
    pub standalone: bool,
    pub read_only_after: Option<Duration>,
}

impl Ensemble {
    pub fn from_config(config: &Config) -> anyhow::Result<Ensemble> {
        let standalone = config.servers.is_empty();
        let me = if standalone {
            // As a standalone ZooKeeper: server id 0 (it is the high byte
            // of every session id).
            config.my_id.unwrap_or(0)
        } else {
            config.my_id.ok_or_else(|| {
                anyhow::anyhow!(
                    "zoo.cfg lists servers but {} has no myid file",
                    config.data_dir.display()
                )
            })?
        };
        let (voters, observers) = if standalone {
            (vec![me], Vec::new())
        } else {
            let (o, v): (Vec<_>, Vec<_>) = config.servers.iter().partition(|s| s.observer);
            (
                v.iter().map(|s| s.id).collect::<Vec<_>>(),
                o.iter().map(|s| s.id).collect::<Vec<_>>(),
            )
        };
        if !voters.contains(&me) && !observers.contains(&me) {
            anyhow::bail!("myid {me} is not one of zoo.cfg's server.N lines");
        }
        if voters.is_empty() {
            anyhow::bail!("zoo.cfg lists no participant (voting) server");
        }
        let mut peers = BTreeMap::new();
        for s in &config.servers {
            let resolve = |port: u16| -> anyhow::Result<std::net::SocketAddr> {
                use std::net::ToSocketAddrs;
                (s.host.as_str(), port)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("server.{}: cannot resolve {}", s.id, s.host))
            };
            peers.insert(
                s.id,
                PeerAddrs {
                    quorum: resolve(s.quorum_port)?,
                    election: resolve(s.election_port)?,
                },
            );
        }
        let mut zab = ZabConfig::ensemble(voters, observers);
        zab.tick_ms = config.tick_time_ms;
        zab.init_limit = config.init_limit;
        zab.sync_limit = config.sync_limit;
        zab.history_max = config.commit_log_count;
        zab.history_bytes_max = config.commit_log_bytes;
        zab.extended_types = config.extended_types;
        zab.container_check_interval_ms = config.container_check_interval_ms;
        if zab.voters.len() == 1 {
            // Nobody else can vote: no reason to wait for better votes.
            zab.finalize_wait_ms = 0;
        }
        if standalone {
            // Nobody to sync from this history: keep only what is not yet
            // committed (memory stays the tree's).
            zab.history_max = 0;
        }
        let read_only_after = (config.read_only_mode && !standalone)
            .then(|| Duration::from_millis(config.tick_time_ms.max(2000)));
        Ok(Ensemble {
            me,
            zab,
            peers,
            standalone,
            read_only_after,
        })
    }
}

/// Reads the epochs file; a data directory written before it existed (a
/// standalone corral, or one imported from ZooKeeper) takes the epoch of
/// its last zxid for both, as ZooKeeper does when `currentEpoch` is
/// missing.
pub fn read_epochs(dir: &std::path::Path, last_zxid: i64) -> anyhow::Result<(u32, u32)> {
    if !dir.join(storage::epoch::FILE).exists() {
        let e = (last_zxid as u64 >> 32) as u32;
        return Ok((e, e));
    }
    let e = storage::epoch::read(dir)?;
    Ok((e.accepted, e.current))
}

/// Core 0's peer and the queues to the tasks that carry out its outputs.
pub struct PeerCore {
    peer: RefCell<Peer>,
    clock: Clock,
    transport: Option<Rc<Transport>>,
    epochs_dir: PathBuf,
    standalone: bool,
    log_ops: RefCell<VecDeque<LogOp>>,
    log_wake: LocalSender<()>,
    /// `readonlymode.enabled`: how long without a quorum before read-only
    /// clients are accepted (ZooKeeper: max(2 s, tickTime)).
    read_only_after: Option<Duration>,
    /// Since when the peer has not served; None while serving or once
    /// read-only mode began.
    not_serving_since: std::cell::Cell<Option<Instant>>,
    publish: RefCell<VecDeque<Pending>>,
    publish_wake: LocalSender<()>,
    /// Elections of the peer already recorded in the metrics.
    elections_recorded: std::cell::Cell<u64>,
    /// The newest round this leader counted as proposed (it is sent once
    /// per learner).
    last_counted_round: std::cell::Cell<u64>,
}

/// The receiving ends of `PeerCore`'s queues, for the tasks that drain them.
pub struct PeerTasks {
    pub log_wake: LocalReceiver<()>,
    pub publish_wake: LocalReceiver<()>,
    pub inbox: Option<LocalReceiver<Inbound>>,
}

impl PeerCore {
    /// Must run on core 0's executor (the transport spawns its tasks there).
    pub fn start(
        ensemble: &Ensemble,
        durable: Durable,
        clock: Clock,
        epochs_dir: PathBuf,
    ) -> anyhow::Result<(Rc<PeerCore>, PeerTasks)> {
        let (transport, inbox) = if ensemble.standalone {
            (None, None)
        } else {
            let (t, rx) = Transport::start(ensemble.me, ensemble.peers.clone())?;
            (Some(t), Some(rx))
        };
        let (log_tx, log_rx) = glommio::channels::local_channel::new_bounded(1);
        let (pub_tx, pub_rx) = glommio::channels::local_channel::new_bounded(1);
        let peer = Peer::new(ensemble.me, ensemble.zab.clone(), durable, clock.now_ms());
        let core = Rc::new(PeerCore {
            peer: RefCell::new(peer),
            clock,
            transport,
            epochs_dir,
            standalone: ensemble.standalone,
            log_ops: RefCell::new(VecDeque::new()),
            log_wake: log_tx,
            read_only_after: ensemble.read_only_after,
            not_serving_since: std::cell::Cell::new(Some(Instant::now())),
            publish: RefCell::new(VecDeque::new()),
            publish_wake: pub_tx,
            elections_recorded: std::cell::Cell::new(0),
            last_counted_round: std::cell::Cell::new(0),
        });
        Ok((
            core,
            PeerTasks {
                log_wake: log_rx,
                publish_wake: pub_rx,
                inbox,
            },
        ))
    }

    pub fn peer(&self) -> std::cell::Ref<'_, Peer> {
        self.peer.borrow()
    }

    /// Runs `f` on the peer, then carries out what it asked for.
    fn with_peer<R>(&self, f: impl FnOnce(&mut Peer, u64) -> R) -> R {
        let now = self.clock.now_ms();
        let r = f(&mut self.peer.borrow_mut(), now);
        self.pump();
        r
    }

    pub fn submit_all(&self, subs: Vec<(Submission, u64)>) {
        // Refused when not serving: the cores close these connections when
        // the serving change on its way to them arrives.
        self.with_peer(|p, now| p.submit_many(subs.into_iter().map(|(s, _)| s), now));
    }

    pub fn touch(&self, sessions: impl IntoIterator<Item = SessionId>) {
        self.with_peer(|p, now| {
            for s in sessions {
                p.touch(s, now);
            }
        });
    }

    pub fn tick(&self) {
        self.with_peer(|p, now| p.tick(now));
        let c = self.peer.borrow().learner_counts().unwrap_or_default();
        for (slot, v) in LEARNERS.iter().zip([
            c.learners,
            c.synced_followers,
            c.synced_observers,
            c.pending_syncs,
        ]) {
            slot.store(v, Ordering::Relaxed);
        }
        if let (Some(after), Some(since)) = (self.read_only_after, self.not_serving_since.get()) {
            if since.elapsed() >= after {
                self.not_serving_since.set(None);
                ROLE.store(ROLE_READ_ONLY, Ordering::Relaxed);
                warn!(
                    "no quorum for {} ms: serving read-only clients (readonlymode.enabled)",
                    after.as_millis()
                );
                self.publish(Pending::ReadOnly);
            }
        }
    }

    fn inbound(&self, msg: Inbound) {
        // ZooKeeper's learner_proposal_received_count and
        // learner_commit_received_count.
        if let Inbound::Message { msg, .. } = &msg {
            match **msg {
                ZabMessage::Propose { .. } => metrics::SERVER
                    .learner_proposals_received
                    .fetch_add(1, Ordering::Relaxed),
                ZabMessage::Commit { .. } | ZabMessage::Inform { .. } => metrics::SERVER
                    .learner_commits_received
                    .fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
        self.with_peer(|p, now| match msg {
            Inbound::Message { from, msg } => p.receive(from, *msg, now),
            Inbound::Disconnected { peer } => p.disconnected(peer, now),
            Inbound::ElectionLink { peer, up } => p.election_link(peer, up, now),
        });
    }

    pub fn outstanding(&self) -> usize {
        self.peer.borrow().outstanding()
    }

    /// `ydld`: starts handing leadership over (see `Peer::yield_leadership`);
    /// `handover_progress` then tells how it ends.
    pub fn yield_leadership(&self) -> Result<(), HandoverRefused> {
        let before = HANDOVER.swap(HANDOVER_PENDING, Ordering::Relaxed);
        let r = self.with_peer(|p, now| p.yield_leadership(None, now));
        if r.is_err() {
            HANDOVER.store(before, Ordering::Relaxed);
        } else {
            info!("yielding leadership (ydld)");
        }
        r
    }

    /// `rqld`: asks the leader to hand over to this server; returns the
    /// leader asked.
    pub fn request_leadership(&self) -> Result<ServerId, HandoverRefused> {
        let r = self.with_peer(|p, now| p.request_leadership(now));
        if let Ok(leader) = r {
            info!(
                leader,
                "asked the leader to hand leadership over to this server (rqld)"
            );
        }
        r
    }

    /// Carries out the peer's outputs, in order. Called after every call
    /// into the peer, and once at start for what `Peer::new` asked.
    pub fn pump(&self) {
        self.record_election();
        loop {
            let outputs = self.peer.borrow_mut().take_outputs();
            if outputs.is_empty() {
                return;
            }
            for o in outputs {
                self.execute(o);
            }
        }
    }

    fn execute(&self, output: Output) {
        match output {
            Output::Send { to, msg } => match &self.transport {
                // ZooKeeper's proposal_count: rounds this leader proposed.
                Some(t) if matches!(&msg, ZabMessage::Propose { round, .. } if *round > self.last_counted_round.get()) =>
                {
                    if let ZabMessage::Propose { round, .. } = &msg {
                        self.last_counted_round.set(*round);
                    }
                    metrics::SERVER.proposals.fetch_add(1, Ordering::Relaxed);
                    t.send(to, &msg)
                }
                Some(t) => t.send(to, &msg),
                None => unreachable!("a standalone peer sends nothing (to {to})"),
            },
            Output::Append(records) => self.log(LogOp::Append(records)),
            Output::InstallSnapshot { tree, sessions } => {
                self.log(LogOp::Install { tree, sessions })
            }
            Output::TruncateAndRestart { after } => self.log(LogOp::Truncate { after }),
            Output::PersistEpochs { accepted, current } => {
                let e = storage::epoch::Epochs { accepted, current };
                if let Err(e) = storage::epoch::write(&self.epochs_dir, e) {
                    // Going on could let us vote twice in one epoch.
                    error!("cannot persist the ZAB epochs; stopping: {e}");
                    std::process::exit(3);
                }
            }
            Output::Committed(batch) => {
                // ZooKeeper's commit_count: what a leader of learners
                // committed (a standalone server counts none, as there).
                if self.transport.is_some() && self.peer.borrow().state() == PeerState::Leading {
                    metrics::SERVER.commits.fetch_add(1, Ordering::Relaxed);
                }
                self.publish(Pending::Committed(batch))
            }
            Output::Yielded(successor) => {
                match successor {
                    Some(s) => info!(successor = s, "stepped down: leadership handed over"),
                    None => warn!("leadership handover given up: no follower caught up in time; still leading"),
                }
                HANDOVER.store(
                    successor.map_or(HANDOVER_GAVE_UP, |s| s + 2),
                    Ordering::Relaxed,
                );
            }
            Output::Serving(serving) => {
                let peer = self.peer.borrow();
                let role = match peer.state() {
                    _ if !serving => ROLE_LOOKING,
                    _ if self.standalone => ROLE_STANDALONE,
                    PeerState::Leading => ROLE_LEADING,
                    PeerState::Following => ROLE_FOLLOWING,
                    PeerState::Observing => ROLE_OBSERVING,
                    PeerState::Looking => ROLE_LOOKING,
                };
                ROLE.store(role, Ordering::Relaxed);
                let leader = peer.leader().filter(|_| serving).map_or(0, |l| l + 1);
                LEADER.store(leader, Ordering::Relaxed);
                self.not_serving_since.set((!serving).then(Instant::now));
                let (accepted, current) = peer.epochs();
                if serving {
                    info!(
                        state = server_state(),
                        leader = peer.leader(),
                        epoch = current,
                        zxid = format_args!("0x{:x}", peer.tree().last_zxid),
                        "serving clients"
                    );
                } else if !self.standalone {
                    warn!(
                        accepted_epoch = accepted,
                        "not serving: no leader with a quorum; client connections close until one is elected"
                    );
                }
                drop(peer);
                metrics::SERVER.set_serving(serving);
                self.publish(Pending::Serving(serving));
            }
        }
    }

    /// ZooKeeper's `election_time`: an election the peer concluded since
    /// the last call is recorded (a standalone server elects nobody, as
    /// ZooKeeper's, and records none).
    fn record_election(&self) {
        let (count, last_ms) = self.peer.borrow().elections();
        if count == self.elections_recorded.get() {
            return;
        }
        self.elections_recorded.set(count);
        if self.standalone {
            return;
        }
        metrics::SERVER.record_election(last_ms);
        let peer = self.peer.borrow();
        info!(
            state = ?peer.state(),
            leader = peer.leader(),
            election_ms = last_ms,
            "election concluded"
        );
    }

    fn log(&self, op: LogOp) {
        self.log_ops.borrow_mut().push_back(op);
        let _ = self.log_wake.try_send(());
    }

    fn publish(&self, item: Pending) {
        self.publish.borrow_mut().push_back(item);
        let _ = self.publish_wake.try_send(());
    }

    /// The next thing to publish. Consecutive committed batches (rounds
    /// that committed together, or while the cores were busy) go out as
    /// one: one cross-core message and one view switch per core instead
    /// of one per round.
    pub fn next_published(&self) -> Option<ToShard> {
        let mut queue = self.publish.borrow_mut();
        match queue.pop_front()? {
            Pending::Serving(serving) => Some(ToShard::Serving(serving)),
            Pending::ReadOnly => Some(ToShard::ReadOnly),
            Pending::Committed(mut batch) => {
                while matches!(queue.front(), Some(Pending::Committed(_))) {
                    let Some(Pending::Committed(next)) = queue.pop_front() else {
                        unreachable!("checked above");
                    };
                    batch.entries.extend(next.entries);
                    batch.tree = next.tree;
                }
                Some(ToShard::Committed(Arc::new(batch)))
            }
        }
    }

    /// The log task: runs the queued log operations in order. Appends
    /// queued together go out as one write and one fdatasync.
    pub async fn run_log(
        self: Rc<Self>,
        mut wal: Wal,
        wake: LocalReceiver<()>,
        log_dir: PathBuf,
        snap_dir: PathBuf,
    ) {
        let mut stats = GroupCommitStats::new();
        while wake.recv().await.is_some() {
            loop {
                let op = self.log_ops.borrow_mut().pop_front();
                match op {
                    None => break,
                    Some(LogOp::Append(mut records)) => {
                        loop {
                            let mut ops = self.log_ops.borrow_mut();
                            match ops.front_mut() {
                                Some(LogOp::Append(more)) => {
                                    records.append(more);
                                    ops.pop_front();
                                }
                                _ => break,
                            }
                        }
                        let last = records.last().map(|r| r.0).expect("appends are not empty");
                        let t_sync = Instant::now();
                        if let Err(e) = wal.append(&records).await {
                            error!("log write failed; stopping (fail-stop, nothing unsynced was acknowledged): {e}");
                            std::process::exit(3);
                        }
                        let sync_us = t_sync.elapsed().as_micros() as u64;
                        metrics::SERVER.record_batch(
                            records.len(),
                            records.iter().map(|(_, r)| r.len()).sum(),
                            sync_us,
                        );
                        self.with_peer(|p, now| p.persisted(last, now));
                        stats.record(records.len(), sync_us, t_sync.elapsed().as_micros() as u64);
                    }
                    Some(LogOp::Install { tree, sessions }) => {
                        let zxid = tree.last_zxid;
                        let nodes = tree.node_count();
                        let dir = snap_dir.clone();
                        let t = Instant::now();
                        let written = glommio::executor()
                            .spawn_blocking(move || {
                                crate::snap::write_tree(&dir, &tree, sessions, false)
                            })
                            .await;
                        if let Err(e) = written {
                            error!(
                                "cannot write the snapshot received from the leader; stopping: {e}"
                            );
                            std::process::exit(3);
                        }
                        if let Err(e) = wal.restart_at(zxid + 1).await {
                            error!(
                                "cannot start the log after the leader's snapshot; stopping: {e}"
                            );
                            std::process::exit(3);
                        }
                        info!(
                            zxid = format_args!("0x{zxid:x}"),
                            znodes = nodes,
                            elapsed_ms = t.elapsed().as_millis() as u64,
                            "installed the leader's snapshot (SNAP) and started the log over"
                        );
                        self.with_peer(|p, now| p.persisted(zxid, now));
                    }
                    Some(LogOp::Truncate { after }) => {
                        drop(wal);
                        restart_after_truncation(&log_dir, &snap_dir, after);
                    }
                }
            }
        }
    }

    /// The ticker: advances the peer's clock.
    pub async fn run_ticks(self: Rc<Self>) {
        loop {
            glommio::timer::sleep(TICK_PERIOD).await;
            self.tick();
        }
    }

    /// Messages from the other servers.
    pub async fn run_inbox(self: Rc<Self>, inbox: LocalReceiver<Inbound>) {
        while let Some(msg) = inbox.recv().await {
            self.inbound(msg);
        }
    }
}

/// ZAB's TRUNC: drops the log after `after` (and any snapshot beyond it),
/// then starts this server over from its disk by executing itself again:
/// the same process id, arguments and configuration, state from disk.
fn restart_after_truncation(
    log_dir: &std::path::Path,
    snap_dir: &std::path::Path,
    after: i64,
) -> ! {
    match storage::recovery::truncate_after(log_dir, after) {
        Ok(dropped) => warn!(
            after = format_args!("0x{after:x}"),
            dropped,
            "the leader does not have our last transactions (TRUNC): dropped them from the log; restarting from disk"
        ),
        Err(e) => {
            error!("cannot truncate the log for the leader; stopping: {e}");
            std::process::exit(3);
        }
    }
    for (zxid, path) in storage::snapshot::list(snap_dir) {
        if zxid > after {
            warn!(file = %path.display(), "removing a snapshot beyond the truncation point");
            if let Err(e) = std::fs::remove_file(&path) {
                error!("cannot remove {}; stopping: {e}", path.display());
                std::process::exit(3);
            }
        }
    }
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new("/proc/self/exe")
        .args(std::env::args_os().skip(1))
        .exec();
    error!("cannot restart this server ({err}); exiting so a supervisor restarts it");
    std::process::exit(2);
}

/// Batch sizes and timings of group commit, logged at debug level once a
/// second.
struct GroupCommitStats {
    since: Instant,
    batches: u64,
    records: u64,
    sync_us: u64,
    cycle_us: u64,
}

impl GroupCommitStats {
    fn new() -> GroupCommitStats {
        GroupCommitStats {
            since: Instant::now(),
            batches: 0,
            records: 0,
            sync_us: 0,
            cycle_us: 0,
        }
    }

    fn record(&mut self, records: usize, sync_us: u64, cycle_us: u64) {
        self.batches += 1;
        self.records += records as u64;
        self.sync_us += sync_us;
        self.cycle_us += cycle_us;
        if self.since.elapsed() >= Duration::from_secs(1) {
            let n = self.batches.max(1);
            tracing::debug!(
                batches = self.batches,
                records = self.records,
                avg_batch = self.records / n,
                avg_sync_us = self.sync_us / n,
                avg_cycle_us = self.cycle_us / n,
                "group commit"
            );
            *self = GroupCommitStats::new();
        }
    }
}
