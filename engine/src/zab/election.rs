//! Fast leader election ↔ `FastLeaderElection`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use super::{PeerState, ServerId, ZabConfig};

/// A vote: who should lead, and the credentials it was chosen on. Votes are
/// ordered by epoch, then zxid, then server id, as ZooKeeper's
/// `totalOrderPredicate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vote {
    pub leader: ServerId,
    pub zxid: i64,
    pub peer_epoch: u32,
}

impl Vote {
    fn key(&self) -> (u32, i64, ServerId) {
        (self.peer_epoch, self.zxid, self.leader)
    }
}

impl PartialOrd for Vote {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Vote {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// A notification as received.
#[derive(Clone, Copy, Debug)]
pub struct Notice {
    pub from: ServerId,
    pub vote: Vote,
    pub election_epoch: u64,
    pub state: PeerState,
}

/// What an election step concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Undecided,
    /// Lead (the vote names us) or follow the vote's leader.
    Elected(Vote),
}

/// One server's election state. Only LOOKING servers hold one.
#[derive(Debug)]
pub struct Election {
    /// ZooKeeper's `logicalclock`: the election round.
    pub clock: u64,
    /// The vote this server currently proposes.
    pub vote: Vote,
    /// Our own credentials (None for an observer).
    own: Option<Vote>,
    /// Votes of LOOKING voters in this round (our own included).
    received: BTreeMap<ServerId, Vote>,
    /// Votes of servers that already follow or lead, with their round.
    settled: BTreeMap<ServerId, (Vote, u64, PeerState)>,
    /// When a quorum first agreed on `vote`.
    agreed_since: Option<u64>,
    /// When our vote was last sent.
    pub last_sent_ms: u64,
}

impl Election {
    /// Starts a new round proposing `own` (None for an observer, which
    /// proposes nobody and only listens for a leader).
    pub fn start(clock: u64, me: ServerId, own: Option<Vote>, now_ms: u64) -> Election {
        let vote = own.unwrap_or(Vote {
            leader: 0,
            zxid: -1,
            peer_epoch: 0,
        });
        let mut received = BTreeMap::new();
        if own.is_some() {
            received.insert(me, vote);
        }
        Election {
            clock: clock + 1,
            vote,
            own,
            received,
            settled: BTreeMap::new(),
            agreed_since: None,
            last_sent_ms: now_ms,
        }
    }

    fn agreeing(&self, votes: impl Iterator<Item = Vote>, vote: &Vote) -> usize {
        votes.filter(|v| v.leader == vote.leader).count()
    }

    /// Handles a notification from `from`. Returns whether our vote changed
    /// (and must be sent to everyone), and whether `from` is behind and
    /// should get our vote.
    pub fn receive(
        &mut self,
        cfg: &ZabConfig,
        me: ServerId,
        n: Notice,
        now_ms: u64,
    ) -> (bool, bool) {
        let Notice {
            from,
            vote,
            election_epoch,
            state,
        } = n;
        let participant = cfg.is_voter(me);
        let from_voter = cfg.is_voter(from);
        let mut changed = false;
        let mut answer = false;
        match state {
            PeerState::Looking if from_voter => {
                if election_epoch > self.clock {
                    self.clock = election_epoch;
                    self.received.clear();
                    self.agreed_since = None;
                    self.vote = match self.own {
                        Some(own) if participant => own.max(vote),
                        _ => vote,
                    };
                    if participant {
                        self.received.insert(me, self.vote);
                    }
                    changed = true;
                } else if election_epoch < self.clock {
                    answer = true;
                    return (changed, answer);
                } else if participant && vote > self.vote {
                    self.vote = vote;
                    self.received.insert(me, vote);
                    self.agreed_since = None;
                    changed = true;
                } else if participant && vote < self.vote {
                    // Tell it what we know: it may have missed our vote
                    // (it was still following when we sent it, and a
                    // following server answers with its old vote instead
                    // of counting ours). Both sides then agree at once
                    // rather than at the next resend.
                    answer = true;
                }
                self.received.insert(from, vote);
            }
            PeerState::Looking => {
                // An observer looking for the leader: answer it.
                answer = election_epoch < self.clock;
            }
            PeerState::Following | PeerState::Leading | PeerState::Observing => {
                self.settled.insert(from, (vote, election_epoch, state));
                if election_epoch == self.clock && from_voter && state != PeerState::Observing {
                    self.received.insert(from, vote);
                }
            }
        }
        if self.vote_agreed(cfg) {
            self.agreed_since.get_or_insert(now_ms);
        }
        (changed, answer)
    }

    fn vote_agreed(&self, cfg: &ZabConfig) -> bool {
        cfg.is_quorum(self.agreeing(self.received.values().copied(), &self.vote))
    }

    /// Every voter we can hear from has voted in this round for the leader
    /// we propose: nobody who could still tell us of a better candidate is
    /// left. `unreachable` are the voters whose election connection the
    /// transport reports down (a voter never reported is assumed
    /// reachable, so without reports this means every voter voted).
    fn reachable_agree(&self, cfg: &ZabConfig, unreachable: &BTreeSet<ServerId>) -> bool {
        cfg.voters
            .iter()
            .filter(|v| !unreachable.contains(v))
            .all(|v| {
                self.received
                    .get(v)
                    .is_some_and(|vote| vote.leader == self.vote.leader)
            })
    }

    /// Concludes the round if it can: a quorum of this round's votes agree
    /// on ours and either nothing better came for `finalize_wait_ms`, or
    /// every voter we can reach is among them; or a quorum of settled
    /// servers follow a leader that says it leads (joining an established
    /// ensemble).
    ///
    /// The finalize wait is ZooKeeper's guard against electing a worse
    /// candidate while a better one's vote is still on its way. Once every
    /// voter that is connected to us voted for our candidate, there is no
    /// such vote to wait for: each voter's vote is at least as good as its
    /// own credentials, so the candidate is the best among them, and a
    /// voter whose connection is down (a killed leader) cannot vote at all.
    /// (ZooKeeper's election before 3.6 also decided at once when every
    /// voter had voted.) Deciding early never risks two leaders of one
    /// epoch: that rests on discovery, where each epoch needs a quorum of
    /// acknowledgements and a leader that is behind one of them abdicates.
    /// At worst, a better voter whose connection is not up yet makes the
    /// leader abdicate at discovery and the election run again.
    pub fn decide(
        &mut self,
        cfg: &ZabConfig,
        me: ServerId,
        unreachable: &BTreeSet<ServerId>,
        now_ms: u64,
    ) -> Decision {
        // Our own vote alone is a quorum when we are the only voter.
        if self.agreed_since.is_none() && self.vote_agreed(cfg) {
            self.agreed_since = Some(now_ms);
        }
        if let Some(t) = self.agreed_since {
            let waited = now_ms >= t + cfg.finalize_wait_ms;
            if cfg.is_voter(me)
                && self.vote_agreed(cfg)
                && (waited || self.reachable_agree(cfg, unreachable))
            {
                // Following a leader that is not there yet is caught by the
                // follower's connect timeout.
                return Decision::Elected(self.vote);
            }
        }
        // A leader that announces itself, backed by a quorum of voters.
        // Servers that joined it at different times went through different
        // election rounds: as ZooKeeper's `Vote.equals` for servers out of
        // the election, agreement is on the leader and its epoch only.
        for (&sid, &(vote, epoch, state)) in &self.settled {
            if state != PeerState::Leading || vote.leader != sid {
                continue;
            }
            let backers = self
                .settled
                .iter()
                .filter(|(&from, (v, _, s))| {
                    cfg.is_voter(from)
                        && v.leader == sid
                        && v.peer_epoch == vote.peer_epoch
                        && *s != PeerState::Observing
                })
                .count();
            // The leader counts itself among the settled; a voter that
            // would follow it counts too.
            let backers = backers + usize::from(cfg.is_voter(me));
            if cfg.is_quorum(backers) || !cfg.is_voter(me) {
                self.clock = self.clock.max(epoch);
                self.vote = vote;
                return Decision::Elected(vote);
            }
        }
        Decision::Undecided
    }
}
