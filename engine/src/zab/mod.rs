//! ZAB, ZooKeeper's atomic broadcast, as pure state machines: fast leader
//! election, discovery and synchronisation, pipelined broadcast, followers
//! and observers. ↔ `FastLeaderElection`, `QuorumPeer`, `Leader`,
//! `LearnerHandler`, `Follower`, `Observer`.
//!
//! A [`Peer`] is one server. The shell feeds it messages from other
//! servers, client submissions, "the log is durable up to zxid z" and the
//! time, and executes the [`Output`]s it returns, in order: messages to
//! send, records to append, epochs to persist, committed batches to
//! publish to the cores. It performs no I/O and reads no clock, so the
//! simulator (`crate::sim`) runs whole ensembles on one thread and one seed
//! replays one history.
//!
//! # The protocol, as implemented
//!
//! **Election** (`election`). A LOOKING server votes for itself with its
//! credentials `(currentEpoch, last logged zxid, id)`, adopts any better
//! vote it hears in the same election round, and decides once a quorum of
//! the votes it holds name its own proposal and either nothing better
//! arrived for `finalize_wait_ms` or every voter whose election connection
//! is up (as the shell reports) is in that quorum. A server that is
//! already FOLLOWING or LEADING answers a LOOKING one with its leader,
//! which lets a restarted server join an established ensemble. Observers
//! never vote.
//!
//! **Discovery.** Followers send `FollowerInfo(acceptedEpoch, lastZxid)`;
//! once a quorum (the leader included) has, the leader picks
//! `max(acceptedEpoch) + 1`, persists it as its own acceptedEpoch and sends
//! `LeaderInfo(e)`. A follower persists acceptedEpoch = e (refusing an
//! epoch lower than one it accepted) and answers `AckEpoch(currentEpoch,
//! lastZxid)`. A follower ahead of the leader makes the leader abdicate.
//!
//! **Synchronisation.** Per follower the leader sends `Diff` (its history
//! after the follower's zxid), `Trunc` (the follower holds transactions the
//! leader does not: it truncates its log and restarts from disk) or `Snap`
//! (the follower is behind the history the leader keeps), then
//! `NewLeader(e)`. The follower persists currentEpoch = e and acknowledges
//! once everything it was sent is durable. With a quorum of acknowledgements
//! the leader's whole history is committed; it sends `UpToDate` and starts
//! serving. A server that joins later is synchronised the same way while
//! the broadcast goes on: it receives every proposal made after its sync.
//!
//! **Broadcast.** The leader runs the request [`Pipeline`]: each batch it
//! hands to the log is one *round*, appended to its own log and sent as
//! `Propose(round, records)`. A follower appends the records and sends
//! `Ack(round)` once they are durable. A round commits when a quorum of
//! voters, the leader's own durable log included, acknowledged it and every
//! earlier round committed; the leader then sends `Commit(zxid, done)`,
//! where `done` carries the outcomes of the requests that follower
//! forwarded, and `Inform` (records and outcomes) to observers.
//!
//! **Leadership handover** (`ydld`, `rqld`; ClickHouse Keeper's words).
//! A leader asked to step down (`Peer::yield_leadership`, or a follower's
//! `LeadershipRequest`) stops cutting rounds: requests wait in its
//! pipeline, so its log stops growing. Once every round committed and a
//! voter in broadcast (the one that asked, for `rqld`) acknowledged the
//! last round, that voter holds everything the leader logged and its
//! credentials equal the leader's. The leader sends `Yield(vote for it)`
//! to every learner, after everything else of its leadership, and looks;
//! the leader and every learner that gets the message propose that vote
//! instead of their own for this one election round, so the successor is
//! the only candidate and every reachable voter agrees at once. A server
//! that missed the message proposes itself as usual, and whichever wins,
//! discovery keeps the history safe as after any election. If no voter
//! catches up within `YIELD_WAIT_MS_MAX` the leader gives up and goes on
//! leading; `Output::Yielded` tells the shell either way.
//!
//! **Sync is a quorum round.** A `sync` is a barrier in the pipeline and a
//! barrier-only batch is still a round: it commits only when a quorum
//! acknowledges it *in the leader's epoch*. A deposed leader that does not
//! know it yet cannot gather that quorum, because any quorum that elected a
//! newer leader intersects it and those servers left the old epoch. So the
//! read that follows a completed sync sees every write completed before the
//! sync was issued, across leader changes (Apache ZooKeeper's leader answers
//! a sync from its own state and can be stale there).
//!
//! # Invariant the shell relies on
//! Outside the broadcast phase, a peer's tree is its snapshot plus every
//! transaction in its log (committed or not). During broadcast a follower's
//! tree holds what is committed and keeps later proposals pending. When a
//! peer leaves a role it applies what it logged and did not apply, so the
//! tree again equals its log. A transaction is identified by its zxid: one
//! leader per epoch proposes each zxid once, so two servers holding the same
//! zxid hold the same transaction, and two trees at the same zxid are equal.

pub mod codec;
mod election;
mod peer;
#[cfg(test)]
mod tests;

use bytes::Bytes;

pub use election::Vote;
pub use peer::{LearnerCounts, Peer};

use crate::pipeline::{CommittedBatch, Submission};
use crate::tree::DataTree;
use crate::types::SessionId;

/// ZooKeeper's server id (`myid`).
pub type ServerId = u64;

/// One log record: its zxid and the encoded transaction.
pub type Record = (i64, Bytes);

/// ZooKeeper's `ServerState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    Looking,
    Following,
    Leading,
    Observing,
}

/// The ensemble and its timing, as zoo.cfg gives them.
#[derive(Clone, Debug)]
pub struct ZabConfig {
    pub voters: Vec<ServerId>,
    pub observers: Vec<ServerId>,
    pub tick_ms: u64,
    /// Ticks a follower may take to connect and sync (`initLimit`).
    pub init_limit: u32,
    /// Ticks a follower may lag or be silent (`syncLimit`).
    pub sync_limit: u32,
    /// How long a LOOKING server waits for a better vote once a quorum
    /// agrees (`FastLeaderElection.finalizeWait`).
    pub finalize_wait_ms: u64,
    /// Transactions the leader keeps to sync followers with a DIFF
    /// (`zookeeper.commitLogCount`); a follower further behind gets a SNAP.
    pub history_max: usize,
    /// Bytes of encoded transactions the history may hold besides
    /// `history_max`; whichever bound is reached first trims it (only
    /// committed records are ever trimmed).
    pub history_bytes_max: usize,
    /// Rounds proposed and not yet committed (pipelining depth).
    pub rounds_in_flight_max: usize,
    pub batch_records_max: usize,
    pub batch_bytes_max: usize,
    /// Passed to the leader's pipeline.
    pub extended_types: bool,
    pub container_check_interval_ms: u64,
}

impl ZabConfig {
    pub fn ensemble(voters: Vec<ServerId>, observers: Vec<ServerId>) -> ZabConfig {
        ZabConfig {
            voters,
            observers,
            tick_ms: crate::constants::TICK_TIME_MS_DEFAULT,
            init_limit: 10,
            sync_limit: 5,
            finalize_wait_ms: 200,
            history_max: crate::constants::HISTORY_TXNS_MAX,
            history_bytes_max: crate::constants::HISTORY_BYTES_MAX,
            rounds_in_flight_max: crate::constants::ROUNDS_IN_FLIGHT_MAX,
            batch_records_max: crate::constants::BATCH_PROPOSALS_MAX,
            batch_bytes_max: crate::constants::BATCH_BYTES_MAX,
            extended_types: false,
            container_check_interval_ms: 60_000,
        }
    }

    pub fn is_voter(&self, id: ServerId) -> bool {
        self.voters.contains(&id)
    }

    pub fn is_quorum(&self, count: usize) -> bool {
        count * 2 > self.voters.len()
    }

    /// Everyone but `me`.
    pub fn others(&self, me: ServerId) -> impl Iterator<Item = ServerId> + '_ {
        self.voters
            .iter()
            .chain(self.observers.iter())
            .copied()
            .filter(move |&s| s != me)
    }
}

/// What a server brings back from its disk.
#[derive(Clone, Debug)]
pub struct Durable {
    /// Snapshot plus every logged transaction.
    pub tree: DataTree,
    /// Live sessions and their timeouts, sorted by id.
    pub sessions: Vec<(SessionId, i32)>,
    /// The zxid of the snapshot the log continues.
    pub snapshot_zxid: i64,
    /// The log's records after the snapshot, oldest first (the history the
    /// server can sync others from; trimmed to `history_max` and
    /// `history_bytes_max`).
    pub records: Vec<Record>,
    pub accepted_epoch: u32,
    pub current_epoch: u32,
}

impl Durable {
    /// A server that has never run.
    pub fn empty(extended_types: bool) -> Durable {
        Durable {
            tree: DataTree::new(extended_types),
            sessions: Vec::new(),
            snapshot_zxid: 0,
            records: Vec::new(),
            accepted_epoch: 0,
            current_epoch: 0,
        }
    }
}

/// A forwarded request is done, told to the server that forwarded it. The
/// learner computes the reply itself by applying the same transaction (or,
/// for a barrier, from what it forwarded), so only what it cannot know
/// travels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Done {
    pub id: u64,
    /// The request's transaction, or for a barrier the last transaction
    /// it waited for.
    pub zxid: i64,
    pub kind: DoneKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoneKind {
    Txn,
    Sync,
    /// The session's timeout if it is live and the password matched.
    Reattach {
        timeout_ms: Option<i32>,
    },
}

/// Messages between servers. Election notifications travel on their own
/// lossy channel; everything else on one FIFO connection per follower,
/// and a broken connection is reported with `Peer::disconnected`.
#[derive(Clone, Debug)]
pub enum Message {
    Notification {
        vote: Vote,
        election_epoch: u64,
        state: PeerState,
    },
    FollowerInfo {
        accepted_epoch: u32,
        last_zxid: i64,
        observer: bool,
    },
    LeaderInfo {
        epoch: u32,
    },
    AckEpoch {
        current_epoch: u32,
        last_zxid: i64,
    },
    /// Transactions after the follower's last zxid; those up to
    /// `committed` are committed.
    Diff {
        records: Vec<Record>,
        committed: i64,
    },
    /// Truncate the log after `zxid` and restart from disk.
    Trunc {
        zxid: i64,
    },
    /// Replace state with the leader's committed tree.
    Snap {
        tree: DataTree,
        sessions: Vec<(SessionId, i32)>,
    },
    NewLeader {
        epoch: u32,
    },
    AckNewLeader {
        epoch: u32,
    },
    UpToDate,
    Propose {
        round: u64,
        records: Vec<Record>,
    },
    Ack {
        round: u64,
    },
    Commit {
        zxid: i64,
        done: Vec<Done>,
    },
    /// To observers: committed records and their outcomes at once.
    Inform {
        records: Vec<Record>,
        zxid: i64,
        done: Vec<Done>,
    },
    /// Leader → learner: liveness. Learner → leader: liveness and the
    /// sessions its clients kept alive since the last ping.
    Ping {
        touched: Vec<SessionId>,
    },
    /// A client request received by a learner, for the leader's pipeline.
    Request {
        id: u64,
        submission: Submission,
    },
    /// Leader → learners: I step down now; elect `vote`'s server, which
    /// holds everything I logged (`vote` carries its credentials, equal to
    /// mine). Sent after every other message of this leadership.
    Yield {
        vote: Vote,
    },
    /// Follower → leader: hand leadership to me (`rqld`).
    LeadershipRequest,
}

impl Message {
    /// Election notifications go over the lossy election channel.
    pub fn is_election(&self) -> bool {
        matches!(self, Message::Notification { .. })
    }
}

/// What the shell must do, in order.
#[derive(Debug)]
pub enum Output {
    Send {
        to: ServerId,
        msg: Message,
    },
    /// Append records to the log; report with `Peer::persisted` once
    /// durable.
    Append(Vec<Record>),
    /// Replace the log and state by this snapshot (durable before anything
    /// appended after it is reported durable).
    InstallSnapshot {
        tree: DataTree,
        sessions: Vec<(SessionId, i32)>,
    },
    /// Drop every log record after `after`, then restart this server from
    /// its disk. The peer does nothing more.
    TruncateAndRestart {
        after: i64,
    },
    /// Persist both epochs atomically before any later output leaves.
    PersistEpochs {
        accepted: u32,
        current: u32,
    },
    /// Publish to the cores: replies for this server's clients, watch
    /// triggers, the new tree version.
    Committed(CommittedBatch),
    /// Serving started or stopped. On stop, close every client connection:
    /// their pending requests are lost (clients see connection loss).
    Serving(bool),
    /// A leadership handover this leader started is over: it stepped down
    /// in favour of `Some(successor)`, or gave up (`None`: no voter held
    /// everything it logged within `YIELD_WAIT_MS_MAX`) and still leads.
    Yielded(Option<ServerId>),
}

/// Why a leadership handover (`ydld`, `rqld`) was not started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandoverRefused {
    /// The ensemble has one voter: there is nobody to hand over to.
    NoOtherVoter,
    /// `ydld` on a server that does not lead (or not yet serves as leader).
    NotLeader,
    /// `rqld` on the leader itself.
    AlreadyLeader,
    /// `rqld` on an observer, which can never lead.
    Observer,
    /// `rqld` while this server follows no leader.
    NoLeader,
    /// The successor named is not another voter.
    NotAVoter(ServerId),
    /// A handover is already under way.
    InProgress,
}
