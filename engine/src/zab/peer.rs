//! One server of an ensemble: its roles and their transitions.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use super::election::{Decision, Election, Notice, Vote};
use super::{
    Done, DoneKind, Durable, HandoverRefused, Message, Output, PeerState, Record, ServerId,
    ZabConfig,
};
use crate::apply;
use crate::constants::YIELD_WAIT_MS_MAX;
use crate::op::Response;
use crate::pipeline::{
    CommittedBatch, CommittedEntry, Origin, Outcome, Pipeline, PipelineConfig, Submission,
};
use crate::tree::DataTree;
use crate::txn::{Txn, TxnBody};
use crate::types::{SessionId, Zxid};

/// The pipeline origin of a request a learner forwarded: `conn` is a token
/// the leader maps back to (learner, request id).
const REMOTE_CORE: u16 = u16::MAX;

/// How often a follower that has not heard from the leader it elected asks
/// again (at most every tick).
const FOLLOWER_INFO_RETRY_MS: u64 = 50;

/// State every role shares.
struct Core {
    id: ServerId,
    cfg: ZabConfig,
    accepted_epoch: u32,
    current_epoch: u32,
    /// The tree when not leading (the pipeline owns it while leading).
    tree: DataTree,
    sessions: BTreeMap<SessionId, i32>,
    /// The last zxid handed to the log.
    last_logged: i64,
    /// The log is durable up to here.
    durable: i64,
    /// Logged records, oldest first: covers `(history_floor, last_logged]`.
    history: VecDeque<Record>,
    history_floor: i64,
    /// Payload bytes of `history`, bounded by `cfg.history_bytes_max`.
    history_bytes: usize,
    /// The election round, kept across roles.
    clock: u64,
    /// Ids of forwarded requests, unique across roles: an outcome for a
    /// request forwarded while following an earlier leadership must not
    /// match a request forwarded now.
    next_request: u64,
    /// The vote this server settled on (answered to LOOKING servers).
    vote: Vote,
    /// Voters whose election connection the shell reports down.
    unreachable: BTreeSet<ServerId>,
    /// FollowerInfo received while LOOKING, by learner: a voter that chose
    /// us can decide before we do (its last vote to us and its
    /// FollowerInfo travel on different connections). Used if we lead.
    early_follower_info: BTreeMap<ServerId, Message>,
    serving: bool,
    restarting: bool,
    /// When this server last started LOOKING (ZooKeeper's `start_fle`).
    looking_since_ms: u64,
    /// Elections this server concluded, and how long the last one took.
    elections: u64,
    last_election_ms: u64,
    now: u64,
    out: Vec<Output>,
}

impl Core {
    fn send(&mut self, to: ServerId, msg: Message) {
        self.out.push(Output::Send { to, msg });
    }

    fn own_vote(&self) -> Vote {
        Vote {
            leader: self.id,
            zxid: self.last_logged,
            peer_epoch: self.current_epoch,
        }
    }

    fn persist_epochs(&mut self) {
        self.out.push(Output::PersistEpochs {
            accepted: self.accepted_epoch,
            current: self.current_epoch,
        });
    }

    /// Hands records to the log and keeps them in the history. Records at
    /// or below what is already logged (a sync resending them) are skipped.
    fn append(&mut self, records: Vec<Record>) {
        let fresh: Vec<Record> = records
            .into_iter()
            .filter(|(z, _)| *z > self.last_logged)
            .collect();
        if fresh.is_empty() {
            return;
        }
        for (z, _) in &fresh {
            let z = Zxid(*z);
            let last = Zxid(self.last_logged);
            assert!(
                z.0 > last.0 && (z.epoch() > last.epoch() || z.0 == last.0 + 1),
                "server {}: zxid {z} does not follow {last}",
                self.id
            );
            self.last_logged = z.0;
        }
        self.history_bytes += fresh.iter().map(|(_, b)| b.len()).sum::<usize>();
        self.history.extend(fresh.iter().cloned());
        self.out.push(Output::Append(fresh));
    }

    /// Drops the oldest history once it is both committed and beyond
    /// either bound (count or bytes), so the uncommitted tail is always
    /// there to sync from.
    fn trim_history(&mut self, committed: i64) {
        while self.history.len() > self.cfg.history_max
            || self.history_bytes > self.cfg.history_bytes_max
        {
            match self.history.front() {
                Some((z, bytes)) if *z <= committed => {
                    self.history_floor = *z;
                    self.history_bytes -= bytes.len();
                    self.history.pop_front();
                }
                _ => break,
            }
        }
        debug_assert_eq!(
            self.history_bytes,
            self.history.iter().map(|(_, b)| b.len()).sum::<usize>()
        );
    }

    /// Forgets the whole history (a SNAP replaced the state).
    fn clear_history(&mut self, floor: i64) {
        self.history.clear();
        self.history_bytes = 0;
        self.history_floor = floor;
    }

    /// Logged records after `zxid`.
    fn history_after(&self, zxid: i64) -> Vec<Record> {
        let start = self.history.partition_point(|(z, _)| *z <= zxid);
        self.history.range(start..).cloned().collect()
    }

    fn note_sessions(&mut self, txn: &Txn) {
        match &txn.body {
            TxnBody::CreateSession { timeout_ms } => {
                self.sessions.insert(txn.header.session, *timeout_ms);
            }
            TxnBody::CloseSession => {
                self.sessions.remove(&txn.header.session);
            }
            _ => {}
        }
    }

    /// Applies logged records after the tree's zxid, up to `upto`.
    fn apply_logged(&mut self, upto: i64, mut each: impl FnMut(&mut Core, &Txn, apply::Applied)) {
        let start = self
            .history
            .partition_point(|(z, _)| *z <= self.tree.last_zxid);
        let records: Vec<Record> = self
            .history
            .range(start..)
            .take_while(|(z, _)| *z <= upto)
            .cloned()
            .collect();
        for (z, bytes) in records {
            let txn = Txn::decode(bytes).unwrap_or_else(|e| {
                panic!(
                    "server {}: logged record {:#x} does not decode: {e}",
                    self.id, z
                )
            });
            let applied = apply::apply(&mut self.tree, &txn);
            self.note_sessions(&txn);
            each(self, &txn, applied);
        }
    }

    fn sessions_vec(&self) -> Vec<(SessionId, i32)> {
        self.sessions.iter().map(|(&s, &t)| (s, t)).collect()
    }

    fn set_serving(&mut self, serving: bool) {
        if self.serving != serving {
            self.serving = serving;
            self.out.push(Output::Serving(serving));
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum LearnerPhase {
    /// Sent FollowerInfo; waits for the epoch to be chosen.
    Connected,
    AwaitAckEpoch,
    /// Acknowledged the epoch; synced once a quorum has.
    EpochAcked {
        last_zxid: i64,
    },
    /// Synced; every round after `round` is sent to it.
    Syncing {
        round: u64,
    },
    Active,
}

struct Learner {
    observer: bool,
    phase: LearnerPhase,
    accepted_epoch: u32,
    last_heard_ms: u64,
    /// The last round it acknowledged (NEWLEADER acknowledges every round
    /// it was synced with): it holds every record up to that round's.
    acked_round: u64,
}

impl Learner {
    fn forwarding(&self) -> bool {
        matches!(
            self.phase,
            LearnerPhase::Syncing { .. } | LearnerPhase::Active
        )
    }
}

struct Round {
    id: u64,
    last_zxid: i64,
    entries: usize,
    records: Vec<Record>,
    acks: BTreeSet<ServerId>,
}

struct Leader {
    /// 0 until a quorum reported its accepted epochs.
    epoch: u32,
    /// A quorum acknowledged the epoch and none was ahead of us: our
    /// history holds everything committed, and we may sync others to it.
    confirmed: bool,
    established: bool,
    learners: BTreeMap<ServerId, Learner>,
    newleader_acks: BTreeSet<ServerId>,
    pipeline: Option<Pipeline>,
    rounds: VecDeque<Round>,
    next_round: u64,
    commit_zxid: i64,
    /// Pipeline token → (learner, its request id).
    remote: BTreeMap<u64, (ServerId, u64)>,
    next_token: u64,
    last_ping_ms: u64,
    started_ms: u64,
    /// A leadership handover under way (`ydld`, `rqld`): no new rounds are
    /// cut until it ends.
    handover: Option<Handover>,
}

/// A leader waiting to step down in favour of a voter that holds
/// everything it logged.
struct Handover {
    /// The successor asked for (`rqld`), or any voter (`ydld`).
    to: Option<ServerId>,
    /// Gives up then and goes on leading.
    deadline_ms: u64,
}

#[derive(Debug, PartialEq, Eq)]
enum FollowerPhase {
    Connecting,
    Syncing,
    Broadcast,
}

struct Follower {
    leader: ServerId,
    observer: bool,
    phase: FollowerPhase,
    last_heard_ms: u64,
    last_info_ms: u64,
    commit_point: i64,
    /// Acknowledge NEWLEADER once the log is durable up to this zxid.
    newleader: Option<(u32, i64)>,
    /// Rounds to acknowledge once durable up to their last zxid.
    unacked: VecDeque<(u64, i64)>,
    forwarded: BTreeMap<u64, Forwarded>,
    touched: BTreeSet<SessionId>,
}

/// What a follower remembers of a request it forwarded.
struct Forwarded {
    origin: Origin,
    session: SessionId,
    /// The path of a sync, for its reply.
    sync_path: Option<String>,
}

enum Role {
    Looking(Election),
    Leading(Box<Leader>),
    Following(Box<Follower>),
}

/// What a role handler asks of the peer.
enum Next {
    Stay,
    Look,
    /// Look, proposing this vote instead of our own (a handover names the
    /// successor; see `Leader::try_handover`).
    LookFor(Vote),
}

pub struct Peer {
    core: Core,
    role: Role,
}

/// What a leader knows of its learners.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LearnerCounts {
    pub learners: usize,
    pub synced_followers: usize,
    pub synced_observers: usize,
    pub pending_syncs: usize,
}

impl Peer {
    /// A server starting from what its disk holds. It starts LOOKING.
    pub fn new(id: ServerId, cfg: ZabConfig, durable: Durable, now_ms: u64) -> Peer {
        let last_logged = durable
            .records
            .last()
            .map(|(z, _)| *z)
            .unwrap_or(durable.tree.last_zxid)
            .max(durable.tree.last_zxid);
        let history_floor = durable.snapshot_zxid;
        let history_bytes = durable.records.iter().map(|(_, b)| b.len()).sum();
        let mut core = Core {
            id,
            accepted_epoch: durable.accepted_epoch,
            current_epoch: durable.current_epoch,
            tree: durable.tree,
            sessions: durable.sessions.into_iter().collect(),
            last_logged,
            durable: last_logged,
            history: durable.records.into(),
            history_floor,
            history_bytes,
            clock: 0,
            next_request: 1,
            vote: Vote {
                leader: id,
                zxid: last_logged,
                peer_epoch: durable.current_epoch,
            },
            unreachable: BTreeSet::new(),
            early_follower_info: BTreeMap::new(),
            serving: false,
            restarting: false,
            looking_since_ms: now_ms,
            elections: 0,
            last_election_ms: 0,
            now: now_ms,
            out: Vec::new(),
            cfg,
        };
        assert_eq!(
            core.tree.last_zxid, core.last_logged,
            "server {id}: the tree must hold every logged transaction at start"
        );
        core.trim_history(core.last_logged);
        let election = Election::start(0, id, Some(core.own_vote()), now_ms);
        let mut peer = Peer {
            core,
            role: Role::Looking(election),
        };
        peer.look();
        peer
    }

    pub fn id(&self) -> ServerId {
        self.core.id
    }

    pub fn state(&self) -> PeerState {
        match &self.role {
            Role::Looking(_) => PeerState::Looking,
            Role::Leading(_) => PeerState::Leading,
            Role::Following(f) if f.observer => PeerState::Observing,
            Role::Following(_) => PeerState::Following,
        }
    }

    /// The epoch this server leads, once established.
    pub fn leading_epoch(&self) -> Option<u32> {
        match &self.role {
            Role::Leading(l) if l.established => Some(l.epoch),
            _ => None,
        }
    }

    /// Rounds proposed and not yet committed (0 unless leading).
    pub fn rounds_in_flight(&self) -> usize {
        match &self.role {
            Role::Leading(l) => l.rounds.len(),
            _ => 0,
        }
    }

    pub fn serving(&self) -> bool {
        self.core.serving
    }

    /// Waiting to be restarted from disk (after a TRUNC).
    pub fn restarting(&self) -> bool {
        self.core.restarting
    }

    pub fn epochs(&self) -> (u32, u32) {
        (self.core.accepted_epoch, self.core.current_epoch)
    }

    pub fn last_logged(&self) -> i64 {
        self.core.last_logged
    }

    /// Elections this server concluded (it left LOOKING to lead, follow or
    /// observe), and how long the last one took, in ms from entering
    /// LOOKING (ZooKeeper's `election_time`, `end_fle - start_fle`).
    pub fn elections(&self) -> (u64, u64) {
        (self.core.elections, self.core.last_election_ms)
    }

    /// Records kept to sync learners with a DIFF, and their payload bytes.
    pub fn history_size(&self) -> (usize, usize) {
        (self.core.history.len(), self.core.history_bytes)
    }

    /// The tree reads are served from.
    pub fn tree(&self) -> &DataTree {
        match &self.role {
            Role::Leading(l) => match &l.pipeline {
                Some(p) => p.committed_tree(),
                None => &self.core.tree,
            },
            _ => &self.core.tree,
        }
    }

    pub fn has_outputs(&self) -> bool {
        !self.core.out.is_empty()
    }

    pub fn take_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.core.out)
    }

    /// A client request. False if this server is not serving (the shell
    /// answers connection loss).
    pub fn submit(&mut self, submission: Submission, now_ms: u64) -> bool {
        self.submit_many([submission], now_ms) == 1
    }

    /// Client requests arrived together: one batch for the pipeline rather
    /// than a round each. Returns how many were taken (all or none).
    pub fn submit_many(
        &mut self,
        submissions: impl IntoIterator<Item = Submission>,
        now_ms: u64,
    ) -> usize {
        self.core.now = now_ms;
        if !self.core.serving || self.core.restarting {
            return 0;
        }
        let mut taken = 0;
        match &mut self.role {
            Role::Leading(l) => {
                let p = l.pipeline.as_mut().expect("serving leader has a pipeline");
                for submission in submissions {
                    p.submit_from(submission, self.core.id, now_ms);
                    taken += 1;
                }
                l.flush(&mut self.core);
            }
            Role::Following(f) => {
                for mut submission in submissions {
                    let (session, sync_path) = match &submission {
                        Submission::Write { session, .. }
                        | Submission::Reattach { session, .. } => (*session, None),
                        Submission::Sync { session, path, .. } => (*session, Some(path.clone())),
                        Submission::CreateSession { .. } => (0, None),
                    };
                    let forwarded = Forwarded {
                        origin: *submission.origin_mut(),
                        session,
                        sync_path,
                    };
                    let id = self.core.next_request;
                    self.core.next_request += 1;
                    f.forwarded.insert(id, forwarded);
                    self.core
                        .send(f.leader, Message::Request { id, submission });
                    taken += 1;
                }
            }
            Role::Looking(_) => {}
        }
        taken
    }

    /// Requests taken and not yet answered: in the leader's pipeline, or
    /// forwarded to the leader.
    pub fn outstanding(&self) -> usize {
        match &self.role {
            Role::Leading(l) => l.pipeline.as_ref().map_or(0, |p| p.outstanding()),
            Role::Following(f) => f.forwarded.len(),
            Role::Looking(_) => 0,
        }
    }

    /// The leader's pipeline (which owns the session table and expiry).
    pub fn pipeline(&self) -> Option<&Pipeline> {
        match &self.role {
            Role::Leading(l) => l.pipeline.as_ref(),
            _ => None,
        }
    }

    /// Sessions as of the last committed (or, outside broadcast, logged)
    /// transaction, sorted by id: what a snapshot of `tree()` holds.
    pub fn sessions(&self) -> Vec<(SessionId, i32)> {
        self.core.sessions_vec()
    }

    pub fn session_count(&self) -> usize {
        self.core.sessions.len()
    }

    /// The leader's view of its learners (ZooKeeper's `zk_learners`,
    /// `zk_synced_followers`, `zk_synced_observers`, `zk_pending_syncs`);
    /// None unless leading.
    pub fn learner_counts(&self) -> Option<LearnerCounts> {
        let Role::Leading(l) = &self.role else {
            return None;
        };
        let mut c = LearnerCounts::default();
        for learner in l.learners.values() {
            c.learners += 1;
            match learner.phase {
                LearnerPhase::Active if learner.observer => c.synced_observers += 1,
                LearnerPhase::Active => c.synced_followers += 1,
                LearnerPhase::Syncing { .. } => c.pending_syncs += 1,
                _ => {}
            }
        }
        Some(c)
    }

    /// The leader this server follows or is, once decided.
    pub fn leader(&self) -> Option<ServerId> {
        match &self.role {
            Role::Leading(_) => Some(self.core.id),
            Role::Following(f) => Some(f.leader),
            Role::Looking(_) => None,
        }
    }

    /// `ydld`: step down in favour of another voter (`to`, or whichever
    /// holds everything this leader logged first). Stops cutting rounds,
    /// waits up to `YIELD_WAIT_MS_MAX` for such a voter, then steps down
    /// and tells the learners to elect it; `Output::Yielded` says how it
    /// ended. Refused at once when there is nothing to do.
    pub fn yield_leadership(
        &mut self,
        to: Option<ServerId>,
        now_ms: u64,
    ) -> Result<(), HandoverRefused> {
        self.core.now = now_ms;
        let me = self.core.id;
        if self.core.cfg.voters.iter().all(|&v| v == me) {
            return Err(HandoverRefused::NoOtherVoter);
        }
        let Role::Leading(l) = &mut self.role else {
            return Err(HandoverRefused::NotLeader);
        };
        if !l.established || self.core.restarting {
            return Err(HandoverRefused::NotLeader);
        }
        if let Some(t) = to {
            if t == me || !self.core.cfg.is_voter(t) {
                return Err(HandoverRefused::NotAVoter(t));
            }
        }
        if l.handover.is_some() {
            return Err(HandoverRefused::InProgress);
        }
        l.handover = Some(Handover {
            to,
            deadline_ms: now_ms + YIELD_WAIT_MS_MAX,
        });
        self.after(Next::Stay);
        Ok(())
    }

    /// `rqld`: ask the leader this server follows to hand leadership to
    /// it (the leader runs `yield_leadership(Some(us))`). Returns the
    /// leader asked.
    pub fn request_leadership(&mut self, now_ms: u64) -> Result<ServerId, HandoverRefused> {
        self.core.now = now_ms;
        let me = self.core.id;
        if self.core.cfg.voters.iter().all(|&v| v == me) {
            return Err(HandoverRefused::NoOtherVoter);
        }
        if !self.core.cfg.is_voter(me) {
            return Err(HandoverRefused::Observer);
        }
        match &self.role {
            Role::Leading(_) => Err(HandoverRefused::AlreadyLeader),
            Role::Following(f) if f.phase == FollowerPhase::Broadcast && !self.core.restarting => {
                let leader = f.leader;
                self.core.send(leader, Message::LeadershipRequest);
                Ok(leader)
            }
            _ => Err(HandoverRefused::NoLeader),
        }
    }

    /// A leadership handover is under way on this leader.
    pub fn handing_over(&self) -> bool {
        matches!(&self.role, Role::Leading(l) if l.handover.is_some())
    }

    /// A client of this server is alive (a ping or any request).
    pub fn touch(&mut self, session: SessionId, now_ms: u64) {
        self.core.now = now_ms;
        match &mut self.role {
            Role::Leading(l) => {
                if let Some(p) = l.pipeline.as_mut() {
                    p.touch(session, now_ms);
                }
            }
            Role::Following(f) => {
                f.touched.insert(session);
            }
            Role::Looking(_) => {}
        }
    }

    /// The log is durable up to `zxid` (records and installed snapshots).
    pub fn persisted(&mut self, zxid: i64, now_ms: u64) {
        self.core.now = now_ms;
        if self.core.restarting {
            return;
        }
        self.core.durable = self.core.durable.max(zxid);
        let next = match &mut self.role {
            Role::Leading(l) => l.on_durable(&mut self.core),
            Role::Following(f) => {
                f.send_acks(&mut self.core);
                Next::Stay
            }
            Role::Looking(_) => Next::Stay,
        };
        self.after(next);
    }

    /// The connection to `peer` broke.
    pub fn disconnected(&mut self, peer: ServerId, now_ms: u64) {
        self.core.now = now_ms;
        if self.core.restarting {
            return;
        }
        self.core.early_follower_info.remove(&peer);
        let next = match &mut self.role {
            Role::Leading(l) => {
                l.learners.remove(&peer);
                Next::Stay
            }
            Role::Following(f) if f.leader == peer => Next::Look,
            _ => Next::Stay,
        };
        self.after(next);
    }

    /// The election connection to `peer` is up or down, as the transport
    /// sees it. A LOOKING server does not wait for votes from voters it
    /// cannot hear (see `Election::decide`); until told otherwise, every
    /// voter is assumed reachable.
    pub fn election_link(&mut self, peer: ServerId, up: bool, now_ms: u64) {
        self.core.now = now_ms;
        if up {
            self.core.unreachable.remove(&peer);
        } else {
            self.core.unreachable.insert(peer);
        }
        if !self.core.restarting {
            self.maybe_decide();
        }
    }

    pub fn tick(&mut self, now_ms: u64) {
        self.core.now = now_ms;
        if self.core.restarting {
            return;
        }
        let next = match &mut self.role {
            Role::Looking(e) => {
                // As ZooKeeper's notification timeout, which starts at its
                // finalize wait: a lost vote costs a fraction of a second,
                // not a tick.
                let resend =
                    (self.core.cfg.finalize_wait_ms * 2).clamp(50, self.core.cfg.tick_ms.max(50));
                if now_ms >= e.last_sent_ms + resend {
                    e.last_sent_ms = now_ms;
                    broadcast_vote(&mut self.core, e);
                }
                Next::Stay
            }
            Role::Leading(l) => l.tick(&mut self.core),
            Role::Following(f) => f.tick(&mut self.core),
        };
        self.after(next);
        self.maybe_decide();
    }

    pub fn receive(&mut self, from: ServerId, msg: Message, now_ms: u64) {
        self.core.now = now_ms;
        if self.core.restarting {
            return;
        }
        if let Message::Notification {
            vote,
            election_epoch,
            state,
        } = msg
        {
            self.notification(from, vote, election_epoch, state);
            return;
        }
        let next = match &mut self.role {
            Role::Looking(_) => {
                if matches!(msg, Message::FollowerInfo { .. })
                    && self.core.cfg.others(self.core.id).any(|s| s == from)
                {
                    self.core.early_follower_info.insert(from, msg);
                }
                Next::Stay
            }
            Role::Leading(l) => l.receive(&mut self.core, from, msg),
            Role::Following(f) => f.receive(&mut self.core, from, msg),
        };
        self.after(next);
    }

    fn notification(&mut self, from: ServerId, vote: Vote, election_epoch: u64, state: PeerState) {
        let my_state = self.state();
        match &mut self.role {
            Role::Looking(e) => {
                let notice = Notice {
                    from,
                    vote,
                    election_epoch,
                    state,
                };
                let (changed, answer) =
                    e.receive(&self.core.cfg, self.core.id, notice, self.core.now);
                if changed {
                    broadcast_vote(&mut self.core, e);
                } else if answer {
                    let msg = Message::Notification {
                        vote: e.vote,
                        election_epoch: e.clock,
                        state: PeerState::Looking,
                    };
                    self.core.send(from, msg);
                }
                self.maybe_decide();
            }
            _ => {
                if state == PeerState::Looking {
                    let msg = Message::Notification {
                        vote: self.core.vote,
                        election_epoch: self.core.clock,
                        state: my_state,
                    };
                    self.core.send(from, msg);
                }
            }
        }
    }

    fn maybe_decide(&mut self) {
        let Role::Looking(e) = &mut self.role else {
            return;
        };
        let decision = e.decide(
            &self.core.cfg,
            self.core.id,
            &self.core.unreachable,
            self.core.now,
        );
        let Decision::Elected(vote) = decision else {
            return;
        };
        self.core.clock = e.clock;
        self.core.vote = vote;
        let now = self.core.now;
        self.core.elections += 1;
        self.core.last_election_ms = now.saturating_sub(self.core.looking_since_ms);
        let early = std::mem::take(&mut self.core.early_follower_info);
        if vote.leader == self.core.id {
            let mut l = Box::new(Leader {
                epoch: 0,
                confirmed: false,
                established: false,
                learners: BTreeMap::new(),
                newleader_acks: BTreeSet::new(),
                pipeline: None,
                rounds: VecDeque::new(),
                next_round: 1,
                commit_zxid: 0,
                remote: BTreeMap::new(),
                next_token: 1,
                last_ping_ms: now,
                started_ms: now,
                handover: None,
            });
            // Learners that chose us before we did; a stale one (it has
            // moved on) only never acknowledges our epoch, as when its
            // FollowerInfo is still in flight when it changes its mind.
            for (from, msg) in early {
                l.receive(&mut self.core, from, msg);
            }
            l.try_choose_epoch(&mut self.core);
            let next = l.try_confirm(&mut self.core);
            self.role = Role::Leading(l);
            self.after(next);
        } else {
            let observer = !self.core.cfg.is_voter(self.core.id);
            let f = Box::new(Follower {
                leader: vote.leader,
                observer,
                phase: FollowerPhase::Connecting,
                last_heard_ms: now,
                last_info_ms: now,
                commit_point: 0,
                newleader: None,
                unacked: VecDeque::new(),
                forwarded: BTreeMap::new(),
                touched: BTreeSet::new(),
            });
            f.send_info(&mut self.core);
            self.role = Role::Following(f);
        }
    }

    fn after(&mut self, next: Next) {
        match next {
            Next::Look => self.look(),
            Next::LookFor(vote) => self.look_for(Some(vote)),
            Next::Stay => {
                // Whatever moved may have let a handover complete.
                if let Role::Leading(l) = &mut self.role {
                    if let Some(vote) = l.try_handover(&mut self.core) {
                        self.look_for(Some(vote));
                    }
                }
            }
        }
    }

    /// Back to LOOKING: stop serving, bring the tree level with the log,
    /// start a new election round.
    fn look(&mut self) {
        self.look_for(None);
    }

    /// Back to LOOKING, proposing `successor` (a handover's vote) rather
    /// than ourselves unless it names us. For this election round only: a
    /// server that steps down, and every learner it told, never proposes
    /// itself, so the successor it chose is the only candidate (a better
    /// vote from a server that missed the news still wins, and discovery
    /// keeps that safe as in any election). The next round is ordinary.
    fn look_for(&mut self, successor: Option<Vote>) {
        self.core.set_serving(false);
        if self.core.restarting {
            return;
        }
        if let Role::Leading(l) = &mut self.role {
            if let Some(p) = l.pipeline.take() {
                self.core.tree = p.committed_tree().clone();
            }
            if l.handover.take().is_some() {
                // Lost the quorum while waiting for a successor.
                self.core.out.push(Output::Yielded(None));
            }
        }
        let upto = self.core.last_logged;
        self.core.apply_logged(upto, |_, _, _| {});
        let me = self.core.id;
        let own = self.core.cfg.is_voter(me).then(|| match successor {
            Some(v) if v.leader != me => v,
            _ => self.core.own_vote(),
        });
        let mut e = Election::start(self.core.clock, self.core.id, own, self.core.now);
        self.core.clock = e.clock;
        self.core.looking_since_ms = self.core.now;
        broadcast_vote(&mut self.core, &mut e);
        self.role = Role::Looking(e);
        self.maybe_decide();
    }
}

fn broadcast_vote(core: &mut Core, e: &mut Election) {
    e.last_sent_ms = core.now;
    let others: Vec<ServerId> = core.cfg.others(core.id).collect();
    for to in others {
        core.send(
            to,
            Message::Notification {
                vote: e.vote,
                election_epoch: e.clock,
                state: PeerState::Looking,
            },
        );
    }
}

impl Leader {
    fn pipeline(&mut self) -> &mut Pipeline {
        self.pipeline.as_mut().expect("established")
    }

    fn receive(&mut self, core: &mut Core, from: ServerId, msg: Message) -> Next {
        if let Message::FollowerInfo {
            accepted_epoch,
            last_zxid: _,
            observer,
        } = msg
        {
            let known = self.learners.get(&from);
            let resend = matches!(
                known.map(|l| &l.phase),
                Some(LearnerPhase::Connected | LearnerPhase::AwaitAckEpoch)
            );
            if !resend {
                // A new connection: outcomes of what the old one forwarded
                // have nobody to go to.
                self.remote.retain(|_, (sid, _)| *sid != from);
                self.learners.insert(
                    from,
                    Learner {
                        observer: observer || !core.cfg.is_voter(from),
                        phase: LearnerPhase::Connected,
                        accepted_epoch,
                        last_heard_ms: core.now,
                        acked_round: 0,
                    },
                );
            }
            if self.epoch == 0 {
                self.try_choose_epoch(core);
            } else {
                let l = self.learners.get_mut(&from).expect("inserted");
                l.phase = LearnerPhase::AwaitAckEpoch;
                core.send(from, Message::LeaderInfo { epoch: self.epoch });
            }
            return Next::Stay;
        }
        let Some(learner) = self.learners.get_mut(&from) else {
            return Next::Stay;
        };
        learner.last_heard_ms = core.now;
        match msg {
            Message::AckEpoch {
                current_epoch,
                last_zxid,
            } => {
                if learner.phase != LearnerPhase::AwaitAckEpoch {
                    return Next::Stay;
                }
                // Until confirmed, `current_epoch` is still the one we were
                // elected with.
                if (current_epoch, last_zxid) > (core.current_epoch, core.last_logged) {
                    // A learner knows more than we do: let the election
                    // pick it (ZooKeeper: "follower is ahead of the leader").
                    return Next::Look;
                }
                if self.confirmed {
                    self.sync(core, from, last_zxid);
                    return Next::Stay;
                }
                learner.phase = LearnerPhase::EpochAcked { last_zxid };
                self.try_confirm(core)
            }
            Message::AckNewLeader { epoch } if epoch == self.epoch => {
                let LearnerPhase::Syncing { round } = learner.phase else {
                    return Next::Stay;
                };
                if !self.established {
                    // Everyone synced before establishment starts with it.
                    self.newleader_acks.insert(from);
                    return self.try_establish(core);
                }
                learner.phase = LearnerPhase::Active;
                learner.acked_round = round;
                core.send(from, Message::UpToDate);
                if learner.observer {
                    return Next::Stay;
                }
                // Its NEWLEADER acknowledges everything it was synced with.
                for r in self.rounds.iter_mut().filter(|r| r.id <= round) {
                    r.acks.insert(from);
                }
                self.try_commit(core)
            }
            Message::Ack { round } => {
                if !learner.observer && learner.forwarding() {
                    learner.acked_round = learner.acked_round.max(round);
                    for r in self.rounds.iter_mut().filter(|r| r.id <= round) {
                        r.acks.insert(from);
                    }
                    return self.try_commit(core);
                }
                Next::Stay
            }
            Message::Ping { touched } => {
                if let Some(p) = self.pipeline.as_mut() {
                    for s in touched {
                        p.touch(s, core.now);
                    }
                }
                Next::Stay
            }
            Message::LeadershipRequest => {
                // `rqld` on that follower: hand over to it, if it is a
                // voter in broadcast and no handover is under way (the
                // requester sees whether it became leader).
                let able = self.established
                    && self.handover.is_none()
                    && !learner.observer
                    && learner.phase == LearnerPhase::Active
                    && core.cfg.is_voter(from);
                if able {
                    self.handover = Some(Handover {
                        to: Some(from),
                        deadline_ms: core.now + YIELD_WAIT_MS_MAX,
                    });
                }
                Next::Stay
            }
            Message::Request { id, submission } => {
                if !self.established || learner.phase != LearnerPhase::Active {
                    return Next::Stay;
                }
                let token = self.next_token;
                self.next_token += 1;
                self.remote.insert(token, (from, id));
                let mut submission = submission;
                let origin = submission.origin_mut();
                *origin = Origin {
                    core: REMOTE_CORE,
                    conn: token,
                    xid: origin.xid,
                    reads_ahead: false,
                };
                // The learner it came through owns the request, as
                // ZooKeeper's `LearnerHandler` is its requests' owner.
                self.pipeline().submit_from(submission, from, core.now);
                self.flush(core);
                Next::Stay
            }
            _ => Next::Stay,
        }
    }

    /// Once a quorum (us included) reported its accepted epoch, the new
    /// epoch is one more than the highest.
    fn try_choose_epoch(&mut self, core: &mut Core) {
        if self.epoch != 0 {
            return;
        }
        let voters: Vec<u32> = self
            .learners
            .values()
            .filter(|l| !l.observer)
            .map(|l| l.accepted_epoch)
            .collect();
        if !core.cfg.is_quorum(voters.len() + 1) {
            return;
        }
        let epoch = voters
            .into_iter()
            .chain([core.accepted_epoch])
            .max()
            .expect("us")
            + 1;
        self.epoch = epoch;
        core.accepted_epoch = epoch;
        core.persist_epochs();
        let waiting: Vec<ServerId> = self.learners.keys().copied().collect();
        for sid in waiting {
            self.learners.get_mut(&sid).expect("listed").phase = LearnerPhase::AwaitAckEpoch;
            core.send(sid, Message::LeaderInfo { epoch });
        }
    }

    /// With a quorum of epoch acknowledgements (none ahead of us), our
    /// history has everything committed: adopt the epoch and sync those
    /// waiting. Before that, syncing could truncate committed
    /// transactions from a learner that knows more than we do.
    fn try_confirm(&mut self, core: &mut Core) -> Next {
        if self.confirmed || self.epoch == 0 {
            return Next::Stay;
        }
        let acked: Vec<(ServerId, i64)> = self
            .learners
            .iter()
            .filter_map(|(&sid, l)| match l.phase {
                LearnerPhase::EpochAcked { last_zxid } => Some((sid, last_zxid)),
                _ => None,
            })
            .collect();
        let voters = acked
            .iter()
            .filter(|(sid, _)| core.cfg.is_voter(*sid))
            .count();
        if !core.cfg.is_quorum(voters + 1) {
            return Next::Stay;
        }
        self.confirmed = true;
        core.current_epoch = self.epoch;
        core.persist_epochs();
        // Everyone of this leadership answers LOOKING servers with the
        // same vote, so one that joins later can count them as agreeing
        // (ZooKeeper's `updateElectionVote`).
        core.vote.peer_epoch = self.epoch;
        for (sid, last_zxid) in acked {
            self.sync(core, sid, last_zxid);
        }
        self.try_establish(core)
    }

    /// Brings one learner level with us: DIFF, TRUNC or SNAP, then
    /// NEWLEADER. From now on it receives every round.
    fn sync(&mut self, core: &mut Core, sid: ServerId, peer_zxid: i64) {
        let committed = if self.established {
            self.commit_zxid
        } else {
            core.last_logged
        };
        let last = core.last_logged;
        let in_history = |z: i64| {
            z == core.history_floor || core.history.binary_search_by_key(&z, |r| r.0).is_ok()
        };
        if peer_zxid > last || (peer_zxid >= core.history_floor && !in_history(peer_zxid)) {
            // The learner holds transactions we do not: it truncates to the
            // last zxid we share and comes back.
            let start = core.history.partition_point(|(z, _)| *z < peer_zxid);
            let common = if start == 0 {
                core.history_floor
            } else {
                core.history[start - 1].0
            };
            core.send(
                sid,
                Message::Trunc {
                    zxid: common.min(last),
                },
            );
            self.learners.remove(&sid);
            return;
        }
        let (snap_zxid, snap) = if peer_zxid < core.history_floor {
            let (tree, sessions) = match &self.pipeline {
                Some(p) => (p.committed_tree().clone(), core.sessions_vec()),
                None => (core.tree.clone(), core.sessions_vec()),
            };
            (tree.last_zxid, Some(Message::Snap { tree, sessions }))
        } else {
            (peer_zxid, None)
        };
        if let Some(snap) = snap {
            core.send(sid, snap);
        }
        let records = core.history_after(snap_zxid);
        core.send(sid, Message::Diff { records, committed });
        core.send(sid, Message::NewLeader { epoch: self.epoch });
        let round = self.next_round - 1;
        self.learners.get_mut(&sid).expect("syncing").phase = LearnerPhase::Syncing { round };
    }

    /// With a quorum of NEWLEADER acknowledgements (our own once our log is
    /// durable), our history is committed: start serving.
    fn try_establish(&mut self, core: &mut Core) -> Next {
        if self.established || !self.confirmed || core.durable < core.last_logged {
            return Next::Stay;
        }
        let voters = self
            .newleader_acks
            .iter()
            .filter(|s| core.cfg.is_voter(**s))
            .count();
        if !core.cfg.is_quorum(voters + 1) {
            return Next::Stay;
        }
        self.established = true;
        self.commit_zxid = core.last_logged;
        let tree = std::mem::replace(&mut core.tree, DataTree::new(core.cfg.extended_types));
        let mut p = Pipeline::new(
            PipelineConfig {
                tick_ms: core.cfg.tick_ms,
                server_id: core.id as u8,
                extended_types: core.cfg.extended_types,
                container_check_interval_ms: core.cfg.container_check_interval_ms,
            },
            core.now,
        );
        p.restore(tree, &core.sessions_vec(), core.now);
        p.finish_recovery(core.now);
        p.start_epoch(self.epoch);
        let published = CommittedBatch {
            entries: Vec::new(),
            tree: p.committed_tree().clone(),
        };
        self.pipeline = Some(p);
        for sid in self.newleader_acks.clone() {
            if let Some(l) = self.learners.get_mut(&sid) {
                if matches!(l.phase, LearnerPhase::Syncing { .. }) {
                    l.phase = LearnerPhase::Active;
                    core.send(sid, Message::UpToDate);
                }
            }
        }
        core.out.push(Output::Committed(published));
        core.set_serving(true);
        core.trim_history(self.commit_zxid);
        Next::Stay
    }

    fn on_durable(&mut self, core: &mut Core) -> Next {
        if !self.established {
            return self.try_establish(core);
        }
        let next = self.try_commit(core);
        self.flush(core);
        next
    }

    /// Hands the pipeline's next batches to the log and the followers, up
    /// to the pipelining bound.
    ///
    /// A new round is cut only once our own log holds every earlier round:
    /// what arrives while a log write is in flight waits in the pipeline
    /// and becomes the next round, so one round is one group commit on the
    /// leader (and one `Propose` per follower), however requests trickle
    /// in. Rounds still waiting for followers' acks do not hold it back.
    fn flush(&mut self, core: &mut Core) {
        // During a handover requests wait in the pipeline: the successor
        // must catch up with a log that stops growing. If the leader steps
        // down they are dropped with its clients' connections, never
        // acknowledged; if it gives up they go out then.
        if !self.established || self.handover.is_some() {
            return;
        }
        while self.rounds.len() < core.cfg.rounds_in_flight_max
            && self
                .rounds
                .back()
                .is_none_or(|r| core.durable >= r.last_zxid)
        {
            let (records_max, bytes_max) = (core.cfg.batch_records_max, core.cfg.batch_bytes_max);
            let batch = self.pipeline().take_batch(records_max, bytes_max);
            if batch.entries == 0 {
                break;
            }
            let records: Vec<Record> = batch
                .records
                .into_iter()
                .map(|(z, r)| (z, Bytes::from(r)))
                .collect();
            core.append(records.clone());
            let id = self.next_round;
            self.next_round += 1;
            for (&sid, l) in &self.learners {
                if l.forwarding() && !l.observer {
                    core.out.push(Output::Send {
                        to: sid,
                        msg: Message::Propose {
                            round: id,
                            records: records.clone(),
                        },
                    });
                }
            }
            self.rounds.push_back(Round {
                id,
                last_zxid: core.last_logged,
                entries: batch.entries,
                records,
                acks: BTreeSet::new(),
            });
        }
        // A round without records (only barriers) may already be durable.
        self.try_commit(core);
    }

    /// Commits rounds in order while the oldest has a quorum.
    fn try_commit(&mut self, core: &mut Core) -> Next {
        while let Some(r) = self.rounds.front() {
            let own = usize::from(core.durable >= r.last_zxid);
            if !core.cfg.is_quorum(r.acks.len() + own) {
                break;
            }
            let r = self.rounds.pop_front().expect("front");
            let mut batch = self.pipeline().persisted(r.entries);
            self.commit_zxid = batch.tree.last_zxid;
            let mut done: BTreeMap<ServerId, Vec<Done>> = BTreeMap::new();
            for e in &mut batch.entries {
                match &e.outcome {
                    Outcome::SessionCreated {
                        session,
                        timeout_ms,
                        ..
                    } => {
                        core.sessions.insert(*session, *timeout_ms);
                    }
                    _ => {
                        if let Some(s) = e.closed_session {
                            core.sessions.remove(&s);
                        }
                    }
                }
                let Some(origin) = e.origin.filter(|o| o.core == REMOTE_CORE) else {
                    continue;
                };
                e.origin = None;
                if let Some((sid, id)) = self.remote.remove(&origin.conn) {
                    let kind = match e.outcome {
                        _ if !e.barrier => DoneKind::Txn,
                        Outcome::Reattached { timeout_ms, .. } => DoneKind::Reattach { timeout_ms },
                        _ => DoneKind::Sync,
                    };
                    done.entry(sid).or_default().push(Done {
                        id,
                        zxid: e.zxid,
                        kind,
                    });
                }
            }
            for (&sid, l) in &self.learners {
                if !l.forwarding() {
                    continue;
                }
                let mine = done.remove(&sid).unwrap_or_default();
                let msg = if l.observer {
                    Message::Inform {
                        records: r.records.clone(),
                        zxid: self.commit_zxid,
                        done: mine,
                    }
                } else {
                    Message::Commit {
                        zxid: self.commit_zxid,
                        done: mine,
                    }
                };
                core.out.push(Output::Send { to: sid, msg });
            }
            core.out.push(Output::Committed(batch));
            core.trim_history(self.commit_zxid);
        }
        Next::Stay
    }

    /// Completes a handover once a successor holds everything we logged:
    /// every round committed (so our clients have their replies), our own
    /// log durable, and the successor, a voter in broadcast, acknowledged
    /// the last round. Its credentials then equal ours, and with us and
    /// every learner told to propose it, the election picks it. Electing a
    /// server that lacks a transaction we logged could drop a committed one
    /// from the history (discovery would make it abdicate, but only after
    /// another election). Returns the vote to look with, having told the
    /// learners.
    fn try_handover(&mut self, core: &mut Core) -> Option<Vote> {
        let h = self.handover.as_ref()?;
        if !self.rounds.is_empty() || core.durable < core.last_logged {
            return None;
        }
        let last_round = self.next_round - 1;
        let successor = self
            .learners
            .iter()
            .filter(|(&sid, l)| {
                !l.observer
                    && core.cfg.is_voter(sid)
                    && l.phase == LearnerPhase::Active
                    && l.acked_round >= last_round
                    && h.to.is_none_or(|t| t == sid)
            })
            .map(|(&sid, _)| sid)
            .max()?;
        self.handover = None;
        let vote = Vote {
            leader: successor,
            zxid: core.last_logged,
            peer_epoch: core.current_epoch,
        };
        let learners: Vec<ServerId> = self.learners.keys().copied().collect();
        for sid in learners {
            core.send(sid, Message::Yield { vote });
        }
        core.out.push(Output::Yielded(Some(successor)));
        Some(vote)
    }

    fn tick(&mut self, core: &mut Core) -> Next {
        let tick = core.cfg.tick_ms;
        if !self.established {
            if core.now > self.started_ms + core.cfg.init_limit as u64 * tick {
                return Next::Look;
            }
            return Next::Stay;
        }
        let limit = core.cfg.sync_limit as u64 * tick;
        let now = core.now;
        let init = core.cfg.init_limit as u64 * tick;
        self.learners.retain(|_, l| {
            let allowed = if l.forwarding() { limit } else { init };
            l.last_heard_ms + allowed >= now
        });
        let live = self
            .learners
            .values()
            .filter(|l| !l.observer && l.forwarding())
            .count();
        if !core.cfg.is_quorum(live + 1) {
            return Next::Look;
        }
        if self.handover.as_ref().is_some_and(|h| now >= h.deadline_ms) {
            // No voter caught up in time: go on leading, and cut the
            // rounds that waited (below).
            self.handover = None;
            core.out.push(Output::Yielded(None));
        }
        if now >= self.last_ping_ms + tick / 2 {
            self.last_ping_ms = now;
            let to: Vec<ServerId> = self
                .learners
                .iter()
                .filter(|(_, l)| l.forwarding())
                .map(|(s, _)| *s)
                .collect();
            for sid in to {
                core.send(
                    sid,
                    Message::Ping {
                        touched: Vec::new(),
                    },
                );
            }
        }
        self.pipeline().tick(now);
        self.flush(core);
        Next::Stay
    }
}

impl Follower {
    fn send_info(&self, core: &mut Core) {
        core.send(
            self.leader,
            Message::FollowerInfo {
                accepted_epoch: core.accepted_epoch,
                last_zxid: core.last_logged,
                observer: self.observer,
            },
        );
    }

    fn tick(&mut self, core: &mut Core) -> Next {
        let tick = core.cfg.tick_ms;
        let limit = if self.phase == FollowerPhase::Broadcast {
            core.cfg.sync_limit
        } else {
            core.cfg.init_limit
        } as u64
            * tick;
        if core.now > self.last_heard_ms + limit {
            return Next::Look;
        }
        // The leader may not have been leading yet when we first asked.
        // It usually is not when we decide first: the election gives the
        // leader a finalize wait of its own. Asking again only every tick
        // (2 s by default) made a failover take seconds (measured).
        let retry = tick.min(FOLLOWER_INFO_RETRY_MS);
        if self.phase == FollowerPhase::Connecting && core.now >= self.last_info_ms + retry {
            self.last_info_ms = core.now;
            self.send_info(core);
        }
        Next::Stay
    }

    fn receive(&mut self, core: &mut Core, from: ServerId, msg: Message) -> Next {
        // Only what a leader sends proves it leads: two servers that chose
        // each other must not keep each other alive with FollowerInfo.
        if from != self.leader || matches!(msg, Message::FollowerInfo { .. }) {
            return Next::Stay;
        }
        self.last_heard_ms = core.now;
        match msg {
            Message::LeaderInfo { epoch } if self.phase == FollowerPhase::Connecting => {
                if epoch < core.accepted_epoch {
                    return Next::Look;
                }
                if epoch > core.accepted_epoch {
                    core.accepted_epoch = epoch;
                    core.persist_epochs();
                }
                core.send(
                    self.leader,
                    Message::AckEpoch {
                        current_epoch: core.current_epoch,
                        last_zxid: core.last_logged,
                    },
                );
                self.phase = FollowerPhase::Syncing;
            }
            Message::Snap { tree, sessions } if self.phase == FollowerPhase::Syncing => {
                core.tree = tree.clone();
                core.sessions = sessions.iter().copied().collect();
                core.last_logged = tree.last_zxid;
                core.clear_history(tree.last_zxid);
                core.out.push(Output::InstallSnapshot { tree, sessions });
            }
            Message::Diff { records, committed } if self.phase == FollowerPhase::Syncing => {
                core.append(records);
                self.commit_point = self.commit_point.max(committed);
            }
            Message::Trunc { zxid } if self.phase == FollowerPhase::Syncing => {
                core.set_serving(false);
                core.restarting = true;
                core.out.push(Output::TruncateAndRestart { after: zxid });
            }
            Message::NewLeader { epoch } if self.phase == FollowerPhase::Syncing => {
                core.current_epoch = epoch;
                core.vote.peer_epoch = epoch;
                core.accepted_epoch = core.accepted_epoch.max(epoch);
                core.persist_epochs();
                self.newleader = Some((epoch, core.last_logged));
                self.send_acks(core);
            }
            Message::UpToDate if self.phase == FollowerPhase::Syncing => {
                self.phase = FollowerPhase::Broadcast;
                // Always publish here: the cores' view must become this
                // tree even when the sync brought nothing new to apply
                // (a SNAP replaced the tree without a committed batch).
                self.apply_committed(core, Vec::new(), true);
                core.set_serving(true);
            }
            Message::Propose { round, records } if !self.observer => {
                if self.phase == FollowerPhase::Connecting {
                    return Next::Stay;
                }
                core.append(records);
                self.unacked.push_back((round, core.last_logged));
                self.send_acks(core);
            }
            Message::Commit { zxid, done } if self.phase != FollowerPhase::Connecting => {
                self.commit_point = self.commit_point.max(zxid);
                if self.phase == FollowerPhase::Broadcast {
                    self.apply_committed(core, done, false);
                }
            }
            Message::Inform {
                records,
                zxid,
                done,
            } if self.phase != FollowerPhase::Connecting => {
                core.append(records);
                self.commit_point = self.commit_point.max(zxid);
                if self.phase == FollowerPhase::Broadcast {
                    self.apply_committed(core, done, false);
                }
            }
            // The leader stepped down for `vote`'s server: look at once
            // (rather than after syncLimit), proposing it.
            Message::Yield { vote } => return Next::LookFor(vote),
            Message::Ping { .. } => {
                let touched = std::mem::take(&mut self.touched).into_iter().collect();
                core.send(self.leader, Message::Ping { touched });
            }
            _ => {}
        }
        Next::Stay
    }

    /// Acknowledges NEWLEADER and rounds whose records are durable.
    fn send_acks(&mut self, core: &mut Core) {
        if let Some((epoch, zxid)) = self.newleader {
            if core.durable < zxid {
                return;
            }
            self.newleader = None;
            core.send(self.leader, Message::AckNewLeader { epoch });
        }
        while let Some(&(round, zxid)) = self.unacked.front() {
            if core.durable < zxid {
                break;
            }
            self.unacked.pop_front();
            if !self.observer {
                core.send(self.leader, Message::Ack { round });
            }
        }
    }

    /// Applies what is committed and publishes it, with the outcomes of
    /// our own forwarded requests in the leader's order.
    fn apply_committed(&mut self, core: &mut Core, done: Vec<Done>, publish: bool) {
        let from = core.tree.last_zxid;
        let mut entries = Vec::new();
        for d in done {
            let Some(fwd) = self.forwarded.remove(&d.id) else {
                continue;
            };
            let origin = Some(fwd.origin);
            let barrier = d.kind != DoneKind::Txn;
            let upto = if barrier { d.zxid } else { d.zxid - 1 };
            apply_internal(core, upto.min(self.commit_point), &mut entries);
            let view_before = fwd.origin.reads_ahead.then(|| core.tree.clone());
            let barrier_outcome = match d.kind {
                DoneKind::Txn => None,
                DoneKind::Sync => Some(Outcome::Reply(Ok(Response::Path(
                    fwd.sync_path.unwrap_or_default(),
                )))),
                DoneKind::Reattach { timeout_ms } => Some(Outcome::Reattached {
                    session: fwd.session,
                    timeout_ms,
                }),
            };
            if let Some(outcome) = barrier_outcome {
                entries.push(CommittedEntry {
                    origin,
                    session: fwd.session,
                    zxid: core.tree.last_zxid,
                    outcome,
                    triggers: Vec::new(),
                    closed_session: None,
                    view_before,
                    barrier: true,
                });
                continue;
            }
            core.apply_logged(d.zxid, |_, txn, applied| {
                let mine = txn.header.zxid == d.zxid;
                entries.push(CommittedEntry {
                    origin: origin.filter(|_| mine),
                    session: txn.header.session,
                    zxid: txn.header.zxid,
                    outcome: if mine {
                        outcome_of(txn, applied.reply)
                    } else {
                        Outcome::Internal
                    },
                    triggers: applied.triggers,
                    closed_session: closed(txn),
                    view_before: view_before.clone().filter(|_| mine),
                    barrier: false,
                });
            });
        }
        apply_internal(core, self.commit_point, &mut entries);
        if publish || core.tree.last_zxid != from || !entries.is_empty() {
            core.out.push(Output::Committed(CommittedBatch {
                entries,
                tree: core.tree.clone(),
            }));
        }
        core.trim_history(core.tree.last_zxid);
    }
}

/// The outcome a client's own transaction produces, as the leader's
/// pipeline computes it.
fn outcome_of(txn: &Txn, reply: crate::op::Reply) -> Outcome {
    match txn.body {
        TxnBody::CreateSession { timeout_ms } => Outcome::SessionCreated {
            session: txn.header.session,
            timeout_ms,
            password: crate::session::password(txn.header.session).to_vec(),
        },
        _ => Outcome::Reply(reply),
    }
}

fn closed(txn: &Txn) -> Option<SessionId> {
    matches!(txn.body, TxnBody::CloseSession).then_some(txn.header.session)
}

/// Applies committed transactions nobody here waits for.
fn apply_internal(core: &mut Core, upto: i64, entries: &mut Vec<CommittedEntry>) {
    core.apply_logged(upto, |_, txn, applied| {
        entries.push(CommittedEntry {
            origin: None,
            session: txn.header.session,
            zxid: txn.header.zxid,
            outcome: Outcome::Internal,
            triggers: applied.triggers,
            closed_session: closed(txn),
            view_before: None,
            barrier: false,
        });
    });
}
