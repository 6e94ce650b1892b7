//! Scripted ensembles for protocol corner cases. Unlike the simulator
//! (`crate::sim`), nothing here is random: every message is delivered in
//! order as soon as the sender is done, every log write is durable at once,
//! and a test cuts servers off by name. Each test tells one story.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use super::{Durable, HandoverRefused, Message, Output, Peer, PeerState, ServerId, ZabConfig};
use crate::acl::AuthInfo;
use crate::op::WriteOp;
use crate::pipeline::{CommittedEntry, Origin, Outcome, Submission};
use crate::types::{opcode, Acl, ErrorCode, SessionId};

/// The simulated time one `run` step advances.
const STEP_MS: u64 = 10;

struct Ensemble {
    peers: BTreeMap<ServerId, Peer>,
    now: u64,
    /// Servers cut off from everyone: what they send or are sent is lost.
    cut: BTreeSet<ServerId>,
    /// Committed entries each server published, in order.
    published: BTreeMap<ServerId, Vec<CommittedEntry>>,
    in_flight: VecDeque<(ServerId, ServerId, Message)>,
    /// Election notifications on these (from, to) pairs wait in `held`
    /// until `release` (they travel on their own connection, so they may
    /// arrive after later messages of the quorum connection).
    hold: BTreeSet<(ServerId, ServerId)>,
    held: Vec<(ServerId, ServerId, Message)>,
    next_conn: u64,
    /// How each server's leadership handovers ended (`Output::Yielded`).
    yielded: BTreeMap<ServerId, Vec<Option<ServerId>>>,
}

impl Ensemble {
    fn new(voters: u64, tweak: impl Fn(&mut ZabConfig)) -> Ensemble {
        let ids: Vec<ServerId> = (1..=voters).collect();
        let mut cfg = ZabConfig::ensemble(ids.clone(), Vec::new());
        cfg.tick_ms = 100;
        cfg.finalize_wait_ms = 50;
        tweak(&mut cfg);
        let mut e = Ensemble {
            peers: BTreeMap::new(),
            now: 0,
            cut: BTreeSet::new(),
            published: BTreeMap::new(),
            in_flight: VecDeque::new(),
            hold: BTreeSet::new(),
            held: Vec::new(),
            next_conn: 1,
            yielded: BTreeMap::new(),
        };
        for id in ids {
            let peer = Peer::new(id, cfg.clone(), Durable::empty(false), 0);
            e.peers.insert(id, peer);
            e.published.insert(id, Vec::new());
        }
        e.pump();
        e
    }

    fn peer(&mut self, id: ServerId) -> &mut Peer {
        self.peers.get_mut(&id).expect("known server")
    }

    /// Carries out outputs and delivers messages until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            let ids: Vec<ServerId> = self.peers.keys().copied().collect();
            for id in ids {
                let outputs = self.peer(id).take_outputs();
                moved |= !outputs.is_empty();
                let mut durable = Vec::new();
                for o in outputs {
                    match o {
                        Output::Send { to, msg } => {
                            if self.cut.contains(&id) || self.cut.contains(&to) {
                                continue;
                            }
                            if msg.is_election() && self.hold.contains(&(id, to)) {
                                self.held.push((id, to, msg));
                            } else {
                                self.in_flight.push_back((id, to, msg));
                            }
                        }
                        Output::Append(records) => {
                            durable.push(records.last().expect("not empty").0);
                        }
                        Output::InstallSnapshot { tree, .. } => durable.push(tree.last_zxid),
                        Output::TruncateAndRestart { .. } => {
                            panic!("server {id}: a scripted ensemble does not truncate")
                        }
                        Output::Committed(batch) => {
                            let published = self.published.get_mut(&id).expect("known");
                            published.extend(batch.entries);
                        }
                        Output::Yielded(to) => self.yielded.entry(id).or_default().push(to),
                        Output::PersistEpochs { .. } | Output::Serving(_) => {}
                    }
                }
                let now = self.now;
                for z in durable {
                    self.peer(id).persisted(z, now);
                }
            }
            if let Some((from, to, msg)) = self.in_flight.pop_front() {
                let now = self.now;
                self.peer(to).receive(from, msg, now);
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    /// Delivers the held notifications (and holds no more).
    fn release(&mut self) {
        self.hold.clear();
        self.in_flight.extend(self.held.drain(..));
        self.pump();
    }

    /// Advances the time by `ms`, ticking every server.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms.div_ceil(STEP_MS) {
            self.now += STEP_MS;
            let now = self.now;
            for p in self.peers.values_mut() {
                p.tick(now);
            }
            self.pump();
        }
    }

    fn leader(&self) -> ServerId {
        let leaders: Vec<ServerId> = self
            .peers
            .iter()
            .filter(|(id, p)| p.leading_epoch().is_some() && p.serving() && !self.cut.contains(id))
            .map(|(&id, _)| id)
            .collect();
        assert_eq!(leaders.len(), 1, "one serving leader: {leaders:?}");
        leaders[0]
    }

    fn followers(&self) -> Vec<ServerId> {
        self.peers
            .iter()
            .filter(|(id, p)| p.state() == PeerState::Following && !self.cut.contains(id))
            .map(|(&id, _)| id)
            .collect()
    }

    fn origin(&mut self) -> Origin {
        let conn = self.next_conn;
        self.next_conn += 1;
        Origin {
            core: 0,
            conn,
            xid: 1,
            reads_ahead: false,
        }
    }

    /// Submits on `server` and returns the outcome that server publishes
    /// for it, if any (None: not taken, or not done yet).
    fn request(&mut self, server: ServerId, submission: Submission) -> Option<Outcome> {
        let mut submission = submission;
        let conn = submission.origin_mut().conn;
        let now = self.now;
        if !self.peer(server).submit(submission, now) {
            return None;
        }
        self.pump();
        self.published[&server]
            .iter()
            .find(|e| e.origin.is_some_and(|o| o.conn == conn))
            .map(|e| e.outcome.clone())
    }

    fn connect(&mut self, server: ServerId) -> SessionId {
        let origin = self.origin();
        let outcome = self.request(
            server,
            Submission::CreateSession {
                origin,
                timeout_ms: 30_000,
            },
        );
        match outcome {
            Some(Outcome::SessionCreated { session, .. }) => session,
            o => panic!("connect through {server}: {o:?}"),
        }
    }

    /// Re-attaches `session` through `server`; true if it is live.
    fn reattach(&mut self, server: ServerId, session: SessionId) -> bool {
        let origin = self.origin();
        let password = crate::session::password(session).to_vec();
        let outcome = self.request(
            server,
            Submission::Reattach {
                origin,
                session,
                password,
            },
        );
        match outcome {
            Some(Outcome::Reattached { timeout_ms, .. }) => timeout_ms.is_some(),
            o => panic!("re-attach through {server}: {o:?}"),
        }
    }

    fn sync(&mut self, server: ServerId, session: SessionId) -> Option<Outcome> {
        let origin = self.origin();
        self.request(
            server,
            Submission::Sync {
                origin,
                session,
                path: "/".into(),
            },
        )
    }

    fn write(&mut self, server: ServerId, session: SessionId, op: WriteOp) -> Option<Outcome> {
        let origin = self.origin();
        let auth = Arc::new(AuthInfo::default());
        self.request(
            server,
            Submission::Write {
                origin,
                session,
                op,
                auth,
            },
        )
    }
}

fn create(path: &str) -> WriteOp {
    WriteOp::Create {
        opcode: opcode::CREATE,
        path: path.into(),
        data: Some(Bytes::new()),
        acl: vec![Acl::world_all()],
        flags: 0,
        ttl: -1,
    }
}

fn set_data(path: &str, len: usize) -> WriteOp {
    WriteOp::SetData {
        path: path.into(),
        data: Some(Bytes::from(vec![b'x'; len])),
        version: -1,
    }
}

fn is_ok(outcome: Option<Outcome>) -> bool {
    matches!(outcome, Some(Outcome::Reply(Ok(_))))
}

#[test]
fn a_quiet_ensemble_elects_one_leader() {
    let mut e = Ensemble::new(3, |_| {});
    e.run(1_000);
    let leader = e.leader();
    assert_eq!(e.followers().len(), 2, "leader {leader}");
}

/// The DIFF history was bounded by its count only (`commitLogCount`,
/// 100,000 records by default): with 1 KiB records that pinned 100 MB on
/// every server. It is now bounded by bytes as well, and whichever bound is
/// reached first trims it, but only ever the committed part: a learner that
/// syncs must still be sent every transaction not known to be committed.
#[test]
fn history_is_bounded_by_bytes_as_well_as_count() {
    const BYTES_MAX: usize = 64 * 1024;
    let mut e = Ensemble::new(3, |c| {
        c.history_max = 100_000;
        c.history_bytes_max = BYTES_MAX;
    });
    e.run(1_000);
    let leader = e.leader();
    let s = e.connect(leader);
    assert!(is_ok(e.write(leader, s, create("/n"))));
    for _ in 0..200 {
        assert!(is_ok(e.write(leader, s, set_data("/n", 1024))));
    }
    for (&id, p) in &e.peers {
        let (records, bytes) = p.history_size();
        assert!(
            bytes <= BYTES_MAX,
            "server {id}: {records} records of {bytes} bytes kept"
        );
        // Trimmed by bytes, not to nothing: 1 KiB records, ~60 of them.
        assert!(records >= 50, "server {id}: {records} records kept");
    }

    // With the followers cut off nothing commits: the leader keeps every
    // uncommitted record, beyond the byte bound.
    let (records_before, _) = e.peers[&leader].history_size();
    for f in e.followers() {
        e.cut.insert(f);
    }
    let writes: Vec<Submission> = (0..100)
        .map(|_| Submission::Write {
            origin: e.origin(),
            session: s,
            op: set_data("/n", 1024),
            auth: Arc::new(AuthInfo::default()),
        })
        .collect();
    let now = e.now;
    assert_eq!(e.peer(leader).submit_many(writes, now), 100);
    e.pump();
    let (records, bytes) = e.peers[&leader].history_size();
    assert_eq!(records, records_before + 100);
    assert!(bytes > 100 * 1024, "{bytes} bytes");
    assert!(e.peers[&leader].rounds_in_flight() > 0);
}

fn moved(outcome: Option<Outcome>) -> bool {
    outcome == Some(Outcome::Reply(Err(ErrorCode::SessionMoved)))
}

/// A client attached through follower A loses patience with it and
/// re-attaches its session through follower B; a write it had sent on the
/// connection to A reaches A afterwards. As in ZooKeeper (the leader's
/// `SessionTrackerImpl` owner, `PrepRequestProcessor.checkSession`), the
/// leader knows the session now belongs to B and fails that write with
/// SessionMoved instead of applying it behind the client's back; A then
/// closes the stale connection. The session itself lives on through B.
#[test]
fn a_write_on_the_connection_a_session_left_fails_with_session_moved() {
    let mut e = Ensemble::new(3, |_| {});
    e.run(1_000);
    let leader = e.leader();
    let [a, b] = e.followers()[..] else {
        panic!("two followers")
    };
    let s = e.connect(a);
    assert!(is_ok(e.write(a, s, create("/n"))));

    assert!(e.reattach(b, s));
    assert!(moved(e.write(a, s, set_data("/n", 1))));
    assert!(moved(e.write(a, s, create("/m"))));
    let multi = WriteOp::Multi(vec![create("/m"), set_data("/n", 2)]);
    assert!(moved(e.write(a, s, multi)));
    // Nothing the stale connection asked for happened.
    for p in e.peers.values() {
        assert_eq!(p.tree().get("/n").map(|n| n.version), Some(0));
        assert!(p.tree().get("/m").is_none());
    }
    assert!(is_ok(e.write(b, s, set_data("/n", 3))));
    // The leader's own clients are checked the same way, syncs included.
    assert!(moved(e.write(leader, s, set_data("/n", 4))));
    assert!(moved(e.sync(leader, s)));
    // As on ZooKeeper, a sync forwarded by a learner is answered by that
    // learner, whose owner the leader does not check.
    assert!(is_ok(e.sync(a, s)));

    // Re-attaching through the leader moves the session there.
    assert!(e.reattach(leader, s));
    assert!(is_ok(e.write(leader, s, set_data("/n", 5))));
    assert!(moved(e.write(b, s, set_data("/n", 6))));

    // closeSession is not checked (ZooKeeper: expiry issues it without
    // being the owner); it ends the session from anywhere.
    let close = e.write(a, s, WriteOp::CloseSession);
    assert!(is_ok(close.clone()), "{close:?}");
    assert!(!e.reattach(b, s));
}

/// A new leader does not know where clients are attached: as ZooKeeper's
/// fresh session tracker, the first server to use a session after the
/// election claims it, and a request through another server then means
/// the session moved.
#[test]
fn after_a_new_election_the_first_server_to_use_a_session_owns_it() {
    let mut e = Ensemble::new(3, |_| {});
    e.run(1_000);
    let old = e.leader();
    let s = e.connect(old);
    assert!(is_ok(e.write(old, s, create("/n"))));
    e.cut.insert(old);
    e.run(3_000);
    let leader = e.leader();
    assert_ne!(leader, old);
    let [f] = e.followers()[..] else {
        panic!("one follower")
    };
    assert!(is_ok(e.write(f, s, set_data("/n", 1))));
    assert!(moved(e.write(leader, s, set_data("/n", 2))));
    assert!(is_ok(e.write(f, s, set_data("/n", 3))));
}

/// Election time, as ZooKeeper's `election_time`: from entering LOOKING to
/// leading or following. A failover takes at least the finalize wait
/// (nobody hears from the dead leader's voter).
#[test]
fn each_server_times_its_elections() {
    let mut e = Ensemble::new(3, |c| c.finalize_wait_ms = 50);
    e.run(1_000);
    for p in e.peers.values() {
        assert_eq!(p.elections().0, 1);
    }
    let old = e.leader();
    e.cut.insert(old);
    let cut_at = e.now;
    e.run(3_000);
    let leader = e.leader();
    let (count, last_ms) = e.peers[&leader].elections();
    assert_eq!(count, 2);
    assert!(last_ms >= 50, "{last_ms} ms");
    // It started LOOKING after the cut, when it noticed the leader gone.
    assert!(last_ms <= e.now - cut_at, "{last_ms} ms");
}

/// A failover waited the whole finalize wait (ZooKeeper's 200 ms) after
/// the survivors agreed, in case a better vote was still on its way, though
/// the only voter that could send one was the dead leader. When the
/// transport reports the dead leader's election connection down, every
/// voter that can still vote has, so the survivors decide at once.
#[test]
fn survivors_decide_at_once_when_every_reachable_voter_agrees() {
    const FINALIZE_WAIT_MS: u64 = 200;
    let mut e = Ensemble::new(3, |c| c.finalize_wait_ms = FINALIZE_WAIT_MS);
    e.run(1_000);
    let old = e.leader();
    e.cut.insert(old);
    let now = e.now;
    for (&id, p) in e.peers.iter_mut() {
        if id != old {
            p.election_link(old, false, now);
        }
    }
    e.run(3_000);
    let leader = e.leader();
    for (&id, p) in &e.peers {
        if id == old {
            continue;
        }
        let (count, last_ms) = p.elections();
        assert_eq!(count, 2, "server {id}");
        assert!(last_ms < FINALIZE_WAIT_MS, "server {id}: {last_ms} ms");
    }
    // Back with its connection up, the old leader joins as a follower.
    e.cut.remove(&old);
    let now = e.now;
    for (&id, p) in e.peers.iter_mut() {
        if id != old {
            p.election_link(old, true, now);
        }
    }
    e.run(3_000);
    assert_eq!(e.leader(), leader);
    assert_eq!(e.followers().len(), 2);
}

/// A voter whose connection is up but whose vote has not come (a paused
/// process) is waited for as before: the finalize wait still applies.
#[test]
fn a_silent_reachable_voter_is_waited_for() {
    const FINALIZE_WAIT_MS: u64 = 200;
    let mut e = Ensemble::new(3, |c| c.finalize_wait_ms = FINALIZE_WAIT_MS);
    e.run(1_000);
    let old = e.leader();
    e.cut.insert(old);
    e.run(3_000);
    let leader = e.leader();
    let (_, last_ms) = e.peers[&leader].elections();
    assert!(last_ms >= FINALIZE_WAIT_MS, "{last_ms} ms");
}

/// A voter that decides to follow before its candidate has decided to
/// lead sends FollowerInfo to a server still LOOKING (the election's and
/// the learner's messages travel on different connections, so the last
/// vote the candidate needs can arrive after it). That FollowerInfo was
/// dropped, and the new leader waited for the learner's retry, up to
/// ~75 ms more of failover (measured: 135 ms from election to serving
/// instead of 35). A LOOKING server now keeps it and uses it if it leads.
#[test]
fn a_follower_info_that_arrives_before_the_last_vote_is_kept() {
    let mut e = Ensemble::new(3, |c| c.finalize_wait_ms = 200);
    e.run(1_000);
    let old = e.leader();
    let followers = e.followers();
    let (x, y) = (followers[0], followers[1]);
    // Equal logs: the larger id is the better candidate.
    assert!(x < y);
    e.cut.insert(old);
    e.hold.insert((x, y));
    let now = e.now;
    for s in [x, y] {
        e.peer(s).election_link(old, false, now);
        e.peer(s).disconnected(old, now);
    }
    e.pump();
    assert_eq!(e.peers[&x].state(), PeerState::Following);
    assert_eq!(e.peers[&y].state(), PeerState::Looking);
    e.release();
    assert_eq!(e.peers[&y].leading_epoch().map(|_| ()), Some(()));
    assert!(
        e.peers[&y].serving(),
        "the new leader serves without a retry"
    );
    assert!(e.peers[&x].serving());
}

/// The outcome `server` published for the request made on connection
/// `conn`, if any yet.
fn outcome_of_conn(e: &Ensemble, server: ServerId, conn: u64) -> Option<Outcome> {
    e.published[&server]
        .iter()
        .find(|x| x.origin.is_some_and(|o| o.conn == conn))
        .map(|x| x.outcome.clone())
}

/// `ydld`: the leader hands over to a follower that holds everything it
/// logged, tells the learners at once, and the ensemble elects that
/// follower within one exchange of votes (nobody waits for a timeout or
/// the finalize wait: every voter proposes the successor). Nothing that
/// was acknowledged is lost, and the old leader follows.
#[test]
fn a_yielding_leader_hands_over_to_a_caught_up_follower() {
    let mut e = Ensemble::new(3, |c| c.finalize_wait_ms = 200);
    e.run(1_000);
    let old = e.leader();
    let s = e.connect(old);
    assert!(is_ok(e.write(old, s, create("/n"))));
    for i in 0..5 {
        assert!(is_ok(e.write(old, s, set_data("/n", i))));
    }
    let now = e.now;
    assert_eq!(e.peer(old).yield_leadership(None, now), Ok(()));
    e.pump();
    let leader = e.leader();
    assert_ne!(leader, old);
    assert_eq!(e.yielded[&old], vec![Some(leader)]);
    assert_eq!(e.peers[&old].state(), PeerState::Following);
    for (&id, p) in &e.peers {
        assert!(p.serving(), "server {id}");
        assert_eq!(p.tree().get("/n").map(|n| n.version), Some(5), "{id}");
        let (count, last_ms) = p.elections();
        assert_eq!(count, 2, "server {id}");
        assert!(last_ms < 200, "server {id}: election took {last_ms} ms");
    }
    // Clients go on: the session lives, writes commit under the new leader.
    assert!(e.reattach(leader, s));
    assert!(is_ok(e.write(leader, s, set_data("/n", 9))));
}

/// A follower that lacks what the leader logged must not succeed it: with
/// the highest-id follower cut off (it would win an ordinary tie on
/// zxid), `ydld` hands over to the other one, which has everything.
#[test]
fn the_successor_must_hold_everything_the_leader_logged() {
    let mut e = Ensemble::new(3, |_| {});
    e.run(1_000);
    let old = e.leader();
    let followers = e.followers();
    let lagging = *followers.iter().max().expect("followers");
    let caught_up = *followers.iter().min().expect("followers");
    e.cut.insert(lagging);
    let s = e.connect(old);
    assert!(is_ok(e.write(old, s, create("/n"))));
    let now = e.now;
    assert_eq!(e.peer(old).yield_leadership(None, now), Ok(()));
    e.pump();
    e.run(200);
    assert_eq!(e.leader(), caught_up);
    assert_eq!(e.yielded[&old], vec![Some(caught_up)]);
    assert!(e.peers[&caught_up].tree().get("/n").is_some());
}

/// `ydld` in favour of a follower that is behind (here cut off) waits
/// `YIELD_WAIT_MS_MAX` without cutting rounds, then gives up: the leader
/// goes on leading and the write that waited meanwhile commits.
#[test]
fn a_yield_to_a_lagging_follower_gives_up_and_the_leader_goes_on() {
    let mut e = Ensemble::new(3, |_| {});
    e.run(1_000);
    let old = e.leader();
    let lagging = *e.followers().iter().max().expect("followers");
    e.cut.insert(lagging);
    let s = e.connect(old);
    assert!(is_ok(e.write(old, s, create("/n"))));
    let now = e.now;
    assert_eq!(e.peer(old).yield_leadership(Some(lagging), now), Ok(()));
    assert_eq!(
        e.peer(old).yield_leadership(None, now),
        Err(HandoverRefused::InProgress)
    );
    e.pump();
    assert!(e.peers[&old].handing_over());
    // A write during the handover waits in the pipeline.
    let origin = e.origin();
    let conn = origin.conn;
    assert_eq!(e.write(old, s, set_data("/n", 1)), None);
    assert_eq!(outcome_of_conn(&e, old, conn), None);
    e.run(crate::constants::YIELD_WAIT_MS_MAX - 100);
    assert!(e.peers[&old].handing_over());
    e.run(200);
    assert!(!e.peers[&old].handing_over());
    assert_eq!(e.yielded[&old], vec![None]);
    assert_eq!(e.leader(), old);
    assert!(is_ok(outcome_of_conn(&e, old, conn + 1)));
    assert!(is_ok(e.write(old, s, set_data("/n", 2))));
}

/// `rqld` on a follower: the leader hands over to that follower, even
/// though another caught-up follower has a higher id (which an ordinary
/// election would prefer).
#[test]
fn a_leadership_request_makes_the_requester_leader() {
    let mut e = Ensemble::new(3, |c| c.finalize_wait_ms = 200);
    e.run(1_000);
    let old = e.leader();
    let requester = *e.followers().iter().min().expect("followers");
    let s = e.connect(requester);
    assert!(is_ok(e.write(requester, s, create("/n"))));
    let now = e.now;
    assert_eq!(e.peer(requester).request_leadership(now), Ok(old));
    e.pump();
    assert_eq!(e.leader(), requester);
    assert_eq!(e.yielded[&old], vec![Some(requester)]);
    assert_eq!(e.followers().len(), 2);
    assert!(e.reattach(requester, s));
    assert!(is_ok(e.write(requester, s, set_data("/n", 1))));
}

/// What cannot be handed over is refused at once, with the reason.
#[test]
fn handovers_are_refused_where_there_is_nothing_to_hand_over() {
    let mut e = Ensemble::new(3, |_| {});
    e.run(1_000);
    let leader = e.leader();
    let f = e.followers()[0];
    let now = e.now;
    assert_eq!(
        e.peer(f).yield_leadership(None, now),
        Err(HandoverRefused::NotLeader)
    );
    assert_eq!(
        e.peer(leader).request_leadership(now),
        Err(HandoverRefused::AlreadyLeader)
    );
    assert_eq!(
        e.peer(leader).yield_leadership(Some(leader), now),
        Err(HandoverRefused::NotAVoter(leader))
    );
    assert_eq!(
        e.peer(leader).yield_leadership(Some(7), now),
        Err(HandoverRefused::NotAVoter(7))
    );

    let mut one = Ensemble::new(1, |_| {});
    one.run(500);
    let now = one.now;
    assert_eq!(
        one.peer(1).yield_leadership(None, now),
        Err(HandoverRefused::NoOtherVoter)
    );
    assert_eq!(
        one.peer(1).request_leadership(now),
        Err(HandoverRefused::NoOtherVoter)
    );
}
