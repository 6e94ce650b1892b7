//! A deterministic simulator of whole ensembles: servers ([`Peer`]s),
//! their disks, the network between them and clients, all on one thread,
//! driven by one seeded random generator. One seed is one history; the same
//! seed replays it exactly.
//!
//! # What it injects
//! - Network: delays, and on the election channel drops, duplicates and
//!   reordering. Server-to-server connections are FIFO as TCP is; a message
//!   lost on one *breaks* the connection: every later message of that
//!   connection is lost too and both ends are told (`Peer::disconnected`).
//!   Partitions (a random side cut off for a while) and heals.
//! - Disks: a group commit in flight at a time with a random latency;
//!   crashes lose what was not synced, except a random prefix of it (a torn
//!   tail that happened to reach the platter).
//! - Servers: crash at random moments and restart from their disk later.
//! - Operators: `ydld` on the leader (to any voter or a named one) and
//!   `rqld` on a random server, at random moments.
//!
//! # What it checks, after every event
//! - At most one leader per epoch.
//! - Every zxid is the same transaction everywhere: all trees at the same
//!   zxid have the same digest (so committed prefixes agree).
//! - Zxids handed to a log only grow, without gaps within an epoch (the
//!   peer asserts it).
//! - Per-session FIFO: replies arrive in request order.
//! - `sync` then read sees every write acknowledged before the sync was
//!   issued, on whatever server the client is connected to.
//!
//! And at the end, once faults stop and everything heals: every server is
//! serving the same tree, and no acknowledged write is lost.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use crate::acl::AuthInfo;
use crate::apply;
use crate::op::{Response, WriteOp};
use crate::pipeline::{Origin, Outcome, Submission};
use crate::session;
use crate::tree::DataTree;
use crate::txn::{Txn, TxnBody};
use crate::types::{opcode, Acl, SessionId};
use crate::zab::{Durable, Message, Output, Peer, Record, ServerId, ZabConfig};

/// Registers every client writes and syncs against.
const REGISTERS: usize = 4;
const CLIENT_INFLIGHT_MAX: usize = 4;
const SESSION_TIMEOUT_MS: i32 = 1500;

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub voters: usize,
    pub observers: usize,
    pub clients: usize,
    /// Simulated time with faults; then a quiet period to converge.
    pub duration_ms: u64,
    pub settle_ms: u64,
    pub faults: bool,
    /// Small, so syncs by SNAP and history trimming happen.
    pub history_max: usize,
    /// Sometimes small too, so the byte bound is what trims.
    pub history_bytes_max: usize,
    /// Keep a trace of events, printed with a failure.
    pub trace: bool,
}

impl SimConfig {
    /// The shape of run one seed gets: 3 or 5 voters, sometimes an
    /// observer.
    pub fn for_seed(seed: u64) -> SimConfig {
        let mut rng = Rng::new(seed ^ 0x5eed);
        SimConfig {
            seed,
            voters: if rng.below(3) == 0 { 5 } else { 3 },
            observers: usize::from(rng.below(3) == 0),
            clients: 3 + rng.below(3) as usize,
            duration_ms: 8_000,
            settle_ms: 12_000,
            faults: true,
            history_max: [16, 64, 100_000][rng.below(3) as usize],
            // Drawn last: earlier draws, and so each seed's shape, stay
            // what they were before this bound existed.
            history_bytes_max: [crate::constants::HISTORY_BYTES_MAX, 4096, 1024]
                [rng.below(3) as usize],
            trace: false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub final_zxid: i64,
    pub epochs: usize,
    pub acked_writes: usize,
    pub syncs_checked: usize,
    pub crashes: usize,
    pub partitions: usize,
    pub pauses: usize,
    /// Syncs sent, by kind: a DIFF follows every sync, so `diffs` counts
    /// them all; `truncs` and `snaps` the ones that needed more.
    pub diffs: usize,
    pub truncs: usize,
    pub snaps: usize,
    pub connection_resets: usize,
    /// Requests refused with SessionMoved (on a connection the client had
    /// left), counted whoever they were for.
    pub sessions_moved: usize,
    /// Elections servers concluded, and those concluded before the
    /// finalize wait (every reachable voter agreed).
    pub elections_concluded: usize,
    pub elections_early: usize,
    /// Leadership handovers started (`ydld`, `rqld`), completed (the
    /// leader stepped down for a caught-up successor) and given up.
    pub handovers_asked: usize,
    pub handovers_done: usize,
    pub handovers_given_up: usize,
    pub events: u64,
}

/// SplitMix64: small, fast, good enough, and ours.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// Microseconds in `[lo, hi)`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }
}

#[derive(Debug)]
enum Event {
    Deliver {
        from: ServerId,
        to: ServerId,
        msg: Box<Message>,
        /// Connection generation; None on the election channel.
        generation: Option<u64>,
    },
    Disconnected {
        at: ServerId,
        peer: ServerId,
        incarnation: u64,
    },
    Tick(ServerId),
    SyncDone {
        server: ServerId,
        count: usize,
        disk_generation: u64,
    },
    Restart(ServerId),
    /// `at`'s transport notices whether its election connection to `peer`
    /// is up (the peer's process runs) and tells its `Peer`. Scheduled when
    /// a process stops or starts; a silent partition goes unnoticed, as
    /// behind iptables DROP.
    ElectionLink {
        at: ServerId,
        peer: ServerId,
        incarnation: u64,
    },
    Fault,
    Heal,
    ClientStep(usize),
    /// An operator asks for a leadership handover.
    Handover,
}

#[derive(Default)]
struct Disk {
    snapshot: Option<(DataTree, Vec<(SessionId, i32)>)>,
    log: Vec<Record>,
    pending: Vec<Record>,
    accepted: u32,
    current: u32,
    sync_in_flight: bool,
    /// Bumped when pending writes are discarded, so a sync scheduled
    /// before does not complete them.
    generation: u64,
}

impl Disk {
    fn durable_zxid(&self) -> i64 {
        self.log.last().map(|r| r.0).unwrap_or_else(|| {
            self.snapshot
                .as_ref()
                .map(|(t, _)| t.last_zxid)
                .unwrap_or(0)
        })
    }
}

struct Server {
    peer: Option<Peer>,
    disk: Disk,
    incarnation: u64,
    /// The last zxid whose tree digest was checked.
    checked_zxid: i64,
    /// Elections of this incarnation already counted in the report.
    elections_seen: u64,
}

#[derive(Clone, Debug)]
enum ClientOp {
    Connect,
    Write {
        path: String,
        value: Bytes,
    },
    Ephemeral,
    /// Writes acknowledged before the sync was issued: path → zxid.
    Sync {
        expect: BTreeMap<String, i64>,
    },
    Close,
}

struct Client {
    server: Option<ServerId>,
    /// Identifies the connection: replies to an earlier one are ignored.
    conn: u64,
    /// When the server last answered (or the connection started).
    last_heard_us: u64,
    session: Option<SessionId>,
    next_xid: i32,
    pending: VecDeque<(i32, ClientOp)>,
    writes: u64,
}

pub struct Sim {
    cfg: SimConfig,
    rng: Rng,
    now_us: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
    events: Vec<Option<Event>>,
    zab: ZabConfig,
    ids: Vec<ServerId>,
    servers: BTreeMap<ServerId, Server>,
    clients: Vec<Client>,
    /// Unordered pair → connection generation.
    generations: BTreeMap<(ServerId, ServerId), u64>,
    /// Directed pair → arrival time of the last message (FIFO).
    last_arrival: BTreeMap<(ServerId, ServerId), u64>,
    /// (at, peer): at's end of the connection to peer broke and `at` has
    /// not noticed yet. What it sends there meanwhile is lost.
    dead: BTreeSet<(ServerId, ServerId)>,
    paused_until: BTreeMap<ServerId, u64>,
    /// Draws for handovers, apart from `rng`: a history stays what it was
    /// without handovers until the first one changes something.
    handover_rng: Rng,
    partition: Option<BTreeSet<ServerId>>,
    faults_on: bool,
    /// Clients stop writing once faults stop, so the ensemble can settle.
    writes_on: bool,
    /// zxid → digest of a tree at that zxid.
    digests: BTreeMap<i64, u64>,
    leaders: BTreeMap<u32, ServerId>,
    /// path → (zxid, value) of the latest acknowledged write.
    acked: BTreeMap<String, (i64, Bytes)>,
    report: Report,
    trace: Vec<String>,
    states: BTreeMap<ServerId, String>,
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Sim {
        let voters: Vec<ServerId> = (1..=cfg.voters as u64).collect();
        let observers: Vec<ServerId> =
            (cfg.voters as u64 + 1..=(cfg.voters + cfg.observers) as u64).collect();
        let mut zab = ZabConfig::ensemble(voters.clone(), observers.clone());
        zab.tick_ms = 100;
        zab.init_limit = 10;
        zab.sync_limit = 5;
        zab.finalize_wait_ms = 50;
        zab.history_max = cfg.history_max;
        zab.history_bytes_max = cfg.history_bytes_max;
        zab.rounds_in_flight_max = 4;
        zab.batch_records_max = 8;
        let ids: Vec<ServerId> = voters.into_iter().chain(observers).collect();
        let mut sim = Sim {
            rng: Rng::new(cfg.seed),
            now_us: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            servers: BTreeMap::new(),
            clients: Vec::new(),
            generations: BTreeMap::new(),
            last_arrival: BTreeMap::new(),
            dead: BTreeSet::new(),
            paused_until: BTreeMap::new(),
            handover_rng: Rng::new(cfg.seed ^ 0x7e1d),
            partition: None,
            faults_on: cfg.faults,
            writes_on: true,
            digests: BTreeMap::new(),
            leaders: BTreeMap::new(),
            acked: BTreeMap::new(),
            report: Report::default(),
            trace: Vec::new(),
            states: BTreeMap::new(),
            zab,
            ids: ids.clone(),
            cfg,
        };
        for &id in &ids {
            sim.servers.insert(
                id,
                Server {
                    peer: None,
                    disk: Disk::default(),
                    incarnation: 0,
                    checked_zxid: -1,
                    elections_seen: 0,
                },
            );
            sim.start_server(id);
            let first_tick = sim.rng.between(0, 10_000);
            sim.schedule(first_tick, Event::Tick(id));
        }
        for c in 0..sim.cfg.clients {
            sim.clients.push(Client {
                server: None,
                conn: c as u64,
                last_heard_us: 0,
                session: None,
                next_xid: 1,
                pending: VecDeque::new(),
                writes: 0,
            });
            let at = sim.rng.between(100_000, 600_000);
            sim.schedule(at, Event::ClientStep(c));
        }
        if sim.faults_on {
            let at = sim.rng.between(200_000, 1_500_000);
            sim.schedule(at, Event::Fault);
            let at = sim.handover_rng.between(500_000, 2_500_000);
            sim.schedule(at, Event::Handover);
        }
        sim
    }

    fn now_ms(&self) -> u64 {
        self.now_us / 1000
    }

    fn schedule(&mut self, delay_us: u64, event: Event) {
        self.seq += 1;
        let slot = self.events.len();
        self.events.push(Some(event));
        self.queue
            .push(Reverse((self.now_us + delay_us, self.seq, slot)));
    }

    fn fail(&self, what: String) -> String {
        let mut msg = format!("seed {}: at {} ms: {what}", self.cfg.seed, self.now_ms());
        if self.cfg.trace {
            let from = self.trace.len().saturating_sub(20_000);
            msg.push_str("\n--- last events ---\n");
            msg.push_str(&self.trace[from..].join("\n"));
        }
        msg
    }

    fn note(&mut self, what: impl FnOnce() -> String) {
        if self.cfg.trace {
            let line = format!("{:>9.3} {}", self.now_us as f64 / 1000.0, what());
            self.trace.push(line);
        }
    }

    /// Runs the whole history. Err names the seed and what broke.
    pub fn run(mut self) -> Result<Report, String> {
        let end = (self.cfg.duration_ms + self.cfg.settle_ms) * 1000;
        self.run_until(end)?;
        self.finish()
    }

    /// Runs every event up to `end` (µs of simulated time).
    fn run_until(&mut self, end: u64) -> Result<(), String> {
        let faults_end = self.cfg.duration_ms * 1000;
        while let Some(&Reverse((t, _, _))) = self.queue.peek() {
            if t > end {
                break;
            }
            let Reverse((t, _, slot)) = self.queue.pop().expect("peeked");
            if self.writes_on && t >= faults_end {
                self.calm();
            }
            self.now_us = t;
            let event = self.events[slot].take().expect("each event runs once");
            self.report.events += 1;
            if self.cfg.trace && !matches!(event, Event::Tick(_) | Event::ClientStep(_)) {
                let line = match &event {
                    Event::Deliver { from, to, msg, .. } => format!("{from}->{to} {}", brief(msg)),
                    e => format!("{e:?}"),
                };
                self.note(|| line);
            }
            // A peer's broken assertion is a failure of this seed: report
            // it with the trace.
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.handle(event)?;
                self.check()
            }));
            match step {
                Ok(r) => r?,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    return Err(self.fail(format!("panicked: {what}")));
                }
            }
            if self.events.len() > 1 << 16 && self.queue.len() < self.events.len() / 4 {
                self.compact();
            }
        }
        self.now_us = self.now_us.max(end);
        Ok(())
    }

    fn leader(&self) -> Option<ServerId> {
        self.ids.iter().copied().find(|id| {
            self.servers[id]
                .peer
                .as_ref()
                .is_some_and(|p| p.leading_epoch().is_some())
        })
    }

    /// Keeps the event arena from growing without bound.
    fn compact(&mut self) {
        let mut entries: Vec<_> = std::mem::take(&mut self.queue).into_vec();
        entries.sort();
        let mut events = Vec::with_capacity(entries.len());
        for Reverse((t, seq, slot)) in entries {
            let e = self.events[slot].take();
            self.queue.push(Reverse((t, seq, events.len())));
            events.push(e);
        }
        self.events = events;
    }

    /// Faults stop: heal the network, restart everyone.
    fn calm(&mut self) {
        self.faults_on = false;
        // Pauses run their course: ending one early would let later events
        // overtake those it deferred.
        self.writes_on = false;
        self.partition = None;
        for id in self.ids.clone() {
            if self.servers[&id].peer.is_none() {
                self.schedule(0, Event::Restart(id));
            }
        }
    }

    /// The server an event runs on, if any.
    fn target(&self, event: &Event) -> Option<ServerId> {
        match event {
            Event::Deliver { to, .. } => Some(*to),
            Event::Disconnected { at, .. } => Some(*at),
            Event::Tick(id) | Event::Restart(id) => Some(*id),
            Event::ElectionLink { at, .. } => Some(*at),
            Event::SyncDone { server, .. } => Some(*server),
            // Clients are processes of their own: they notice a paused
            // server by its silence.
            Event::ClientStep(_) => None,
            Event::Fault | Event::Heal | Event::Handover => None,
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), String> {
        // A paused process (SIGSTOP, a long GC pause) runs nothing until
        // it resumes, then everything that waited, in order.
        if let Some(id) = self.target(&event) {
            if let Some(&until) = self.paused_until.get(&id) {
                if until > self.now_us {
                    self.note(|| format!("  (deferred: {id} paused until {})", until / 1000));
                    self.schedule(until - self.now_us, event);
                    return Ok(());
                }
                self.paused_until.remove(&id);
            }
        }
        let now = self.now_ms();
        match event {
            Event::Deliver {
                from,
                to,
                msg,
                generation,
            } => {
                if let Some(g) = generation {
                    if g != self.generation(from, to) {
                        self.note(|| "  (dropped: connection broke)".into());
                        return Ok(());
                    }
                    if self.crosses_partition(from, to) {
                        let detect = self.rng.between(1, 1_500_000);
                        self.break_link(from, to, detect);
                        return Ok(());
                    }
                    // A new connection from `from` while `to` still holds
                    // the dead one: the shell drops the old one first.
                    if self.dead.remove(&(to, from)) {
                        if let Some(p) = self.peer_mut(to) {
                            p.disconnected(from, now);
                            self.drain(to)?;
                        }
                    }
                }
                if let Some(p) = self.peer_mut(to) {
                    p.receive(from, *msg, now);
                    self.drain(to)?;
                }
            }
            Event::Disconnected {
                at,
                peer,
                incarnation,
            } => {
                if self.servers[&at].incarnation == incarnation && self.dead.remove(&(at, peer)) {
                    if let Some(p) = self.peer_mut(at) {
                        p.disconnected(peer, now);
                        self.drain(at)?;
                    }
                }
            }
            Event::Tick(id) => {
                if let Some(p) = self.peer_mut(id) {
                    p.tick(now);
                    self.drain(id)?;
                }
                self.schedule(10_000, Event::Tick(id));
            }
            Event::SyncDone {
                server,
                count,
                disk_generation,
            } => {
                let s = self.servers.get_mut(&server).expect("server");
                if s.disk.generation != disk_generation {
                    return Ok(());
                }
                let synced: Vec<Record> = s.disk.pending.drain(..count).collect();
                s.disk.log.extend(synced);
                s.disk.sync_in_flight = false;
                let durable = s.disk.durable_zxid();
                if let Some(p) = s.peer.as_mut() {
                    p.persisted(durable, now);
                    self.drain(server)?;
                }
                self.start_sync(server);
            }
            Event::Restart(id) => {
                if self.servers[&id].peer.is_none() {
                    self.start_server(id);
                    self.drain(id)?;
                }
            }
            Event::Fault => {
                if self.faults_on {
                    self.fault();
                    let next = self.rng.between(300_000, 2_500_000);
                    self.schedule(next, Event::Fault);
                }
            }
            Event::Heal => self.partition = None,
            Event::Handover => {
                if self.faults_on {
                    self.handover()?;
                    let next = self.handover_rng.between(300_000, 2_000_000);
                    self.schedule(next, Event::Handover);
                }
            }
            Event::ElectionLink {
                at,
                peer,
                incarnation,
            } => {
                let up = self.servers[&peer].peer.is_some();
                if self.servers[&at].incarnation == incarnation {
                    if let Some(p) = self.peer_mut(at) {
                        p.election_link(peer, up, now);
                        self.drain(at)?;
                    }
                }
            }
            Event::ClientStep(c) => {
                self.client_step(c)?;
                let next = self.rng.between(2_000, 30_000);
                self.schedule(next, Event::ClientStep(c));
            }
        }
        Ok(())
    }

    fn peer_mut(&mut self, id: ServerId) -> Option<&mut Peer> {
        self.servers.get_mut(&id).and_then(|s| s.peer.as_mut())
    }

    fn pair(a: ServerId, b: ServerId) -> (ServerId, ServerId) {
        (a.min(b), a.max(b))
    }

    fn generation(&self, a: ServerId, b: ServerId) -> u64 {
        self.generations
            .get(&Self::pair(a, b))
            .copied()
            .unwrap_or(0)
    }

    fn crosses_partition(&self, a: ServerId, b: ServerId) -> bool {
        self.partition
            .as_ref()
            .is_some_and(|side| side.contains(&a) != side.contains(&b))
    }

    /// Breaks the connection between `a` and `b`: what is in flight is
    /// lost, and each end notices within `detect_max_us` (a reset arrives
    /// at once; a silent network is noticed by timeouts, if ever).
    fn break_link(&mut self, a: ServerId, b: ServerId, detect_max_us: u64) {
        *self.generations.entry(Self::pair(a, b)).or_insert(0) += 1;
        self.report.connection_resets += 1;
        for (at, peer) in [(a, b), (b, a)] {
            let incarnation = self.servers[&at].incarnation;
            if self.servers[&at].peer.is_some() && self.dead.insert((at, peer)) {
                let delay = self.rng.between(0, detect_max_us.max(1));
                self.schedule(
                    delay,
                    Event::Disconnected {
                        at,
                        peer,
                        incarnation,
                    },
                );
            }
        }
    }

    fn send(&mut self, from: ServerId, to: ServerId, msg: Message) {
        // Every message crosses the wire form, as between real servers.
        let mut frame = Vec::new();
        crate::zab::codec::encode(&msg, &mut frame);
        let msg = crate::zab::codec::decode(Bytes::from(frame).slice(4..))
            .unwrap_or_else(|e| panic!("{msg:?} does not survive its encoding: {e}"));
        match msg {
            Message::Diff { .. } => self.report.diffs += 1,
            Message::Trunc { .. } => self.report.truncs += 1,
            Message::Snap { .. } => self.report.snaps += 1,
            _ => {}
        }
        let down = self.servers[&to].peer.is_none();
        if msg.is_election() {
            if down || self.crosses_partition(from, to) {
                return;
            }
            if self.faults_on && self.rng.chance(20) {
                return;
            }
            let copies = if self.faults_on && self.rng.chance(10) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = self.delay();
                self.schedule(
                    delay,
                    Event::Deliver {
                        from,
                        to,
                        msg: Box::new(msg.clone()),
                        generation: None,
                    },
                );
            }
            return;
        }
        if self.dead.contains(&(from, to)) {
            return;
        }
        if down {
            self.break_link(from, to, 200_000);
            return;
        }
        if self.crosses_partition(from, to) {
            self.break_link(from, to, 1_500_000);
            return;
        }
        if self.faults_on && self.rng.chance(2) {
            self.break_link(from, to, 20_000);
            return;
        }
        let arrival = (self.now_us + self.delay())
            .max(self.last_arrival.get(&(from, to)).copied().unwrap_or(0));
        self.last_arrival.insert((from, to), arrival);
        let generation = Some(self.generation(from, to));
        self.schedule(
            arrival - self.now_us,
            Event::Deliver {
                from,
                to,
                msg: Box::new(msg),
                generation,
            },
        );
    }

    fn delay(&mut self) -> u64 {
        if self.faults_on && self.rng.chance(30) {
            self.rng.between(5_000, 60_000)
        } else {
            self.rng.between(50, 1_500)
        }
    }

    fn start_sync(&mut self, id: ServerId) {
        let latency = self.rng.between(100, 3_000);
        let s = self.servers.get_mut(&id).expect("server");
        if s.disk.sync_in_flight || s.disk.pending.is_empty() || s.peer.is_none() {
            return;
        }
        s.disk.sync_in_flight = true;
        let event = Event::SyncDone {
            server: id,
            count: s.disk.pending.len(),
            disk_generation: s.disk.generation,
        };
        self.schedule(latency, event);
    }

    /// Executes what a peer asked for.
    fn drain(&mut self, id: ServerId) -> Result<(), String> {
        let Some(peer) = self.peer_mut(id) else {
            return Ok(());
        };
        let outputs = peer.take_outputs();
        let now = self.now_ms();
        for o in outputs {
            match o {
                Output::Send { to, msg } => self.send(id, to, msg),
                Output::Append(records) => {
                    self.servers
                        .get_mut(&id)
                        .expect("server")
                        .disk
                        .pending
                        .extend(records);
                    self.start_sync(id);
                }
                Output::InstallSnapshot { tree, sessions } => {
                    let s = self.servers.get_mut(&id).expect("server");
                    let zxid = tree.last_zxid;
                    s.disk.snapshot = Some((tree, sessions));
                    s.disk.log.clear();
                    s.disk.pending.clear();
                    s.disk.generation += 1;
                    s.disk.sync_in_flight = false;
                    s.peer.as_mut().expect("live").persisted(zxid, now);
                }
                Output::TruncateAndRestart { after } => {
                    let s = self.servers.get_mut(&id).expect("server");
                    s.disk.log.retain(|r| r.0 <= after);
                    s.disk.pending.clear();
                    s.disk.generation += 1;
                    self.stop_server(id);
                    self.schedule(1_000, Event::Restart(id));
                    return Ok(());
                }
                Output::PersistEpochs { accepted, current } => {
                    let d = &mut self.servers.get_mut(&id).expect("server").disk;
                    d.accepted = accepted;
                    d.current = current;
                }
                Output::Committed(batch) => {
                    for e in batch.entries {
                        if let Some(o) = e.origin {
                            self.client_reply(id, o, e.zxid, e.outcome)?;
                        }
                    }
                }
                Output::Serving(false) => {
                    for c in 0..self.clients.len() {
                        if self.clients[c].server == Some(id) {
                            self.connection_lost(c);
                        }
                    }
                }
                Output::Serving(true) => {}
                Output::Yielded(to) => {
                    if to.is_some() {
                        self.report.handovers_done += 1;
                    } else {
                        self.report.handovers_given_up += 1;
                    }
                }
            }
        }
        // Outputs may have produced more (persisted after a snapshot).
        if self.peer_mut(id).is_some_and(|p| p.has_outputs()) {
            return self.drain(id);
        }
        Ok(())
    }

    fn initial_tree(&self) -> DataTree {
        let mut t = DataTree::new(false);
        let acl = t.intern_acl(&[Acl::world_all()]);
        for r in 0..REGISTERS {
            t.create(
                &format!("/r{r}"),
                Some(Bytes::new()),
                acl.clone(),
                0,
                0,
                0,
                0,
            )
            .expect("fresh tree");
        }
        t
    }

    /// What the server's disk gives back at start.
    fn recover(&self, id: ServerId) -> Durable {
        let disk = &self.servers[&id].disk;
        let (mut tree, sessions) = match &disk.snapshot {
            Some((t, s)) => (t.clone(), s.clone()),
            None => (self.initial_tree(), Vec::new()),
        };
        let snapshot_zxid = tree.last_zxid;
        let mut sessions: BTreeMap<SessionId, i32> = sessions.into_iter().collect();
        for (z, bytes) in &disk.log {
            let txn = Txn::decode(bytes.clone()).expect("the log holds what we wrote");
            assert!(*z > tree.last_zxid);
            apply::apply(&mut tree, &txn);
            match txn.body {
                TxnBody::CreateSession { timeout_ms } => {
                    sessions.insert(txn.header.session, timeout_ms);
                }
                TxnBody::CloseSession => {
                    sessions.remove(&txn.header.session);
                }
                _ => {}
            }
        }
        Durable {
            tree,
            sessions: sessions.into_iter().collect(),
            snapshot_zxid,
            records: disk.log.clone(),
            accepted_epoch: disk.accepted,
            current_epoch: disk.current,
        }
    }

    fn start_server(&mut self, id: ServerId) {
        let durable = self.recover(id);
        let now = self.now_ms();
        let peer = Peer::new(id, self.zab.clone(), durable, now);
        self.dead.retain(|(at, _)| *at != id);
        let s = self.servers.get_mut(&id).expect("server");
        s.incarnation += 1;
        s.checked_zxid = -1;
        s.elections_seen = 0;
        s.peer = Some(peer);
        // Election connections come up within a reconnect delay: the
        // others learn this one is back, and it learns who is down.
        // (At construction, only the servers started so far.)
        let others: Vec<ServerId> = self.servers.keys().copied().filter(|&o| o != id).collect();
        for other in others {
            let delay = self.rng.between(1_000, 150_000);
            self.schedule_link_check(other, id, delay);
            let delay = self.rng.between(1_000, 150_000);
            self.schedule_link_check(id, other, delay);
        }
    }

    fn schedule_link_check(&mut self, at: ServerId, peer: ServerId, delay_us: u64) {
        let incarnation = self.servers[&at].incarnation;
        self.schedule(
            delay_us,
            Event::ElectionLink {
                at,
                peer,
                incarnation,
            },
        );
    }

    /// The process is gone: connections break, unsynced writes are lost
    /// but for a torn prefix.
    fn stop_server(&mut self, id: ServerId) {
        let keep = {
            let n = self.servers[&id].disk.pending.len() as u64;
            self.rng.below(n + 1) as usize
        };
        let s = self.servers.get_mut(&id).expect("server");
        s.peer = None;
        let torn: Vec<Record> = s.disk.pending.drain(..keep).collect();
        s.disk.log.extend(torn);
        s.disk.pending.clear();
        s.disk.generation += 1;
        s.disk.sync_in_flight = false;
        for other in self.ids.clone() {
            if other != id {
                self.break_link(id, other, 300_000);
                // The process is gone: its election connections reset.
                let delay = self.rng.between(100, 20_000);
                self.schedule_link_check(other, id, delay);
            }
        }
        for c in 0..self.clients.len() {
            if self.clients[c].server == Some(id) {
                self.connection_lost(c);
            }
        }
    }

    fn fault(&mut self) {
        let n = self.ids.len() as u64;
        match self.rng.below(5) {
            0 => {
                let id = self.ids[self.rng.below(n) as usize];
                if self.servers[&id].peer.is_some() {
                    self.report.crashes += 1;
                    self.stop_server(id);
                    let back = self.rng.between(100_000, 3_000_000);
                    self.schedule(back, Event::Restart(id));
                }
            }
            1 if self.partition.is_none() => {
                let mut side = BTreeSet::new();
                let leader = self.leader();
                match leader {
                    // Cut the leader off alone: the deposed leader that
                    // does not know it yet.
                    Some(l) if self.rng.chance(500) => {
                        side.insert(l);
                    }
                    _ => {
                        for &id in &self.ids {
                            if self.rng.chance(400) {
                                side.insert(id);
                            }
                        }
                    }
                }
                if !side.is_empty() && side.len() < self.ids.len() {
                    // Silent, as iptables DROP: connections break as
                    // messages fail to cross, and each side notices late.
                    self.report.partitions += 1;
                    self.partition = Some(side);
                    let heal = self.rng.between(100_000, 3_000_000);
                    self.schedule(heal, Event::Heal);
                }
            }
            2 => {
                // A power failure of several servers at once: whatever a
                // quorum acknowledged must have been durable.
                let mut hit = 0;
                for id in self.ids.clone() {
                    if self.servers[&id].peer.is_some() && self.rng.chance(600) {
                        self.stop_server(id);
                        let back = self.rng.between(50_000, 1_500_000);
                        self.schedule(back, Event::Restart(id));
                        hit += 1;
                    }
                }
                self.report.crashes += hit;
            }
            3 => {
                // A pause longer than the session timeout, often of the
                // leader: it resumes believing it still leads.
                let leader = self.leader();
                let id = match leader {
                    Some(l) if self.rng.chance(700) => l,
                    _ => self.ids[self.rng.below(n) as usize],
                };
                let pause = self.rng.between(200_000, 3_000_000);
                self.note(|| format!("pause {id} for {} ms", pause / 1000));
                self.report.pauses += 1;
                // A second pause of a paused server extends it: ending it
                // earlier would deliver what arrived during this one before
                // what the first one deferred.
                let until = self.paused_until.get(&id).copied().unwrap_or(0);
                self.paused_until.insert(id, until.max(self.now_us + pause));
            }
            _ => {
                // A slow period: nothing but the delays the network draws.
            }
        }
    }

    /// `ydld` on the leader (half the time naming a random voter), or
    /// `rqld` on a random server. A paused server does not answer.
    fn handover(&mut self) -> Result<(), String> {
        let now = self.now_ms();
        let voters = self.zab.voters.clone();
        let ask_leader = self.handover_rng.chance(500);
        let (at, to) = match self.leader() {
            Some(l) if ask_leader => {
                let to = self
                    .handover_rng
                    .chance(500)
                    .then(|| voters[self.handover_rng.below(voters.len() as u64) as usize]);
                (l, to)
            }
            _ => (
                self.ids[self.handover_rng.below(self.ids.len() as u64) as usize],
                None,
            ),
        };
        if self.paused_until.get(&at).is_some_and(|&t| t > self.now_us) {
            return Ok(());
        }
        let Some(p) = self.peer_mut(at) else {
            return Ok(());
        };
        let asked = if ask_leader {
            p.yield_leadership(to, now).map(|()| at)
        } else {
            p.request_leadership(now)
        };
        self.note(|| format!("handover at {at} (ydld {ask_leader}, to {to:?}): {asked:?}"));
        if asked.is_ok() {
            self.report.handovers_asked += 1;
        }
        self.drain(at)
    }

    fn client_step(&mut self, c: usize) -> Result<(), String> {
        let now = self.now_ms();
        if let Some(server) = self.clients[c].server {
            if self
                .paused_until
                .get(&server)
                .is_some_and(|&t| t > self.now_us)
            {
                // No answer: after 2/3 of the session timeout the client
                // gives up on the server, as ZooKeeper's clients do.
                let silent = self.now_us - self.clients[c].last_heard_us;
                if silent > SESSION_TIMEOUT_MS as u64 * 2000 / 3 {
                    self.connection_lost(c);
                }
                return Ok(());
            }
        }
        let Some(server) = self.clients[c].server else {
            // Connect to a serving server, re-attaching the session if any.
            let serving: Vec<ServerId> = self
                .ids
                .iter()
                .copied()
                .filter(|id| self.servers[id].peer.as_ref().is_some_and(|p| p.serving()))
                .collect();
            if serving.is_empty() {
                return Ok(());
            }
            let server = serving[self.rng.below(serving.len() as u64) as usize];
            self.clients[c].server = Some(server);
            self.clients[c].conn += 1 << 16;
            self.clients[c].last_heard_us = self.now_us;
            if self
                .paused_until
                .get(&server)
                .is_some_and(|&t| t > self.now_us)
            {
                // The kernel accepts the connection; the process does not
                // answer, and the client times out.
                return Ok(());
            }
            let submission = match self.clients[c].session {
                Some(session) => Submission::Reattach {
                    origin: self.origin(c),
                    session,
                    password: session::password(session).to_vec(),
                },
                None => Submission::CreateSession {
                    origin: self.origin(c),
                    timeout_ms: SESSION_TIMEOUT_MS,
                },
            };
            return self.submit(c, submission, ClientOp::Connect);
        };
        let client = &self.clients[c];
        let Some(session) = client.session else {
            return Ok(());
        };
        if let Some(p) = self.peer_mut(server) {
            p.touch(session, now);
        }
        if self.clients[c].pending.len() >= CLIENT_INFLIGHT_MAX || !self.writes_on {
            return Ok(());
        }
        // Every third client only syncs and reads: on a deposed leader its
        // syncs are not stuck behind its own writes, which is where a
        // stale sync would show.
        let pick = if c % 3 == 2 { 16 } else { self.rng.below(20) };
        let op = match pick {
            0..=12 => {
                let path = format!("/r{}", self.rng.below(REGISTERS as u64));
                let n = self.clients[c].writes;
                self.clients[c].writes += 1;
                let value = Bytes::from(format!("c{c}-{n}"));
                ClientOp::Write { path, value }
            }
            13..=15 => ClientOp::Ephemeral,
            16..=18 => ClientOp::Sync {
                expect: self
                    .acked
                    .iter()
                    .map(|(p, (z, _))| (p.clone(), *z))
                    .collect(),
            },
            _ => ClientOp::Close,
        };
        let origin = self.origin(c);
        let auth = Arc::new(AuthInfo::default());
        let submission = match &op {
            ClientOp::Write { path, value } => Submission::Write {
                origin,
                session,
                op: WriteOp::SetData {
                    path: path.clone(),
                    data: Some(value.clone()),
                    version: -1,
                },
                auth,
            },
            ClientOp::Ephemeral => Submission::Write {
                origin,
                session,
                op: WriteOp::Create {
                    opcode: opcode::CREATE,
                    path: "/e-".into(),
                    data: None,
                    acl: vec![Acl::world_all()],
                    flags: 3,
                    ttl: -1,
                },
                auth,
            },
            ClientOp::Sync { .. } => Submission::Sync {
                origin,
                session,
                path: "/".into(),
            },
            ClientOp::Close => Submission::Write {
                origin,
                session,
                op: WriteOp::CloseSession,
                auth,
            },
            ClientOp::Connect => unreachable!("chosen above"),
        };
        self.submit(c, submission, op)
    }

    fn origin(&mut self, c: usize) -> Origin {
        let xid = self.clients[c].next_xid;
        self.clients[c].next_xid += 1;
        Origin {
            core: 0,
            conn: self.clients[c].conn,
            xid,
            reads_ahead: false,
        }
    }

    fn submit(&mut self, c: usize, mut submission: Submission, op: ClientOp) -> Result<(), String> {
        let server = self.clients[c].server.expect("connected");
        let xid = submission.origin_mut().xid;
        let now = self.now_ms();
        let accepted = self
            .peer_mut(server)
            .is_some_and(|p| p.submit(submission, now));
        if !accepted {
            self.connection_lost(c);
            return Ok(());
        }
        self.clients[c].pending.push_back((xid, op));
        self.drain(server)
    }

    /// Pending requests are indeterminate; the session may live on.
    fn connection_lost(&mut self, c: usize) {
        let client = &mut self.clients[c];
        client.server = None;
        client.pending.clear();
    }

    fn client_reply(
        &mut self,
        server: ServerId,
        origin: Origin,
        zxid: i64,
        outcome: Outcome,
    ) -> Result<(), String> {
        let c = (origin.conn & 0xffff) as usize;
        let session_moved = outcome == Outcome::Reply(Err(crate::types::ErrorCode::SessionMoved));
        if session_moved {
            self.report.sessions_moved += 1;
        }
        if self.clients[c].server != Some(server) || self.clients[c].conn != origin.conn {
            return Ok(()); // an earlier connection's reply
        }
        self.clients[c].last_heard_us = self.now_us;
        let Some((xid, op)) = self.clients[c].pending.pop_front() else {
            return Err(self.fail(format!(
                "client {c}: reply {} with nothing pending",
                origin.xid
            )));
        };
        if xid != origin.xid {
            return Err(self.fail(format!(
                "client {c}: FIFO broken: reply to xid {} while {xid} is first",
                origin.xid
            )));
        }
        match (op, outcome) {
            (ClientOp::Connect, Outcome::SessionCreated { session, .. }) => {
                self.clients[c].session = Some(session);
            }
            (
                ClientOp::Connect,
                Outcome::Reattached {
                    timeout_ms: None, ..
                },
            ) => {
                // Expired: start over with a new session.
                self.clients[c].session = None;
                self.connection_lost(c);
            }
            (ClientOp::Write { path, value }, Outcome::Reply(Ok(Response::Stat(stat)))) => {
                if stat.mzxid != zxid {
                    return Err(self.fail(format!(
                        "write acked with zxid {zxid:#x} but mzxid {:#x}",
                        stat.mzxid
                    )));
                }
                self.report.acked_writes += 1;
                let newer = self.acked.get(&path).is_none_or(|(z, _)| *z < zxid);
                if newer {
                    self.acked.insert(path, (zxid, value));
                }
            }
            (ClientOp::Sync { expect }, Outcome::Reply(Ok(_))) => {
                self.report.syncs_checked += 1;
                let tree = self.servers[&server]
                    .peer
                    .as_ref()
                    .expect("replying server is live")
                    .tree();
                for (path, z) in expect {
                    let seen = tree.get(&path).map(|n| n.mzxid).unwrap_or(-1);
                    if seen < z {
                        return Err(self.fail(format!(
                            "client {c} on server {server}: read after sync shows {path} at {seen:#x}, \
                             but a write at {z:#x} was acknowledged before the sync"
                        )));
                    }
                }
            }
            // The server closes the connection instead of replying (as
            // ZooKeeper's FinalRequestProcessor); the client reconnects.
            (_, Outcome::Reply(Err(crate::types::ErrorCode::SessionMoved))) => {
                self.connection_lost(c);
            }
            (ClientOp::Close, Outcome::Reply(_)) => {
                self.clients[c].session = None;
                self.connection_lost(c);
            }
            _ => {}
        }
        Ok(())
    }

    fn check(&mut self) -> Result<(), String> {
        for id in self.ids.clone() {
            let Some(p) = self.servers[&id].peer.as_ref() else {
                continue;
            };
            if self.cfg.trace {
                let state = format!(
                    "{:?} serving={} epochs={:?} logged={:#x}",
                    p.state(),
                    p.serving(),
                    p.epochs(),
                    p.last_logged()
                );
                if self.states.get(&id) != Some(&state) {
                    self.states.insert(id, state.clone());
                    self.note(|| format!("server {id}: {state}"));
                }
            }
            let p = self.servers[&id].peer.as_ref().expect("live");
            let (elections, last_ms) = p.elections();
            if elections > self.servers[&id].elections_seen {
                self.report.elections_concluded += 1;
                if last_ms < self.zab.finalize_wait_ms {
                    self.report.elections_early += 1;
                }
                self.servers.get_mut(&id).expect("server").elections_seen = elections;
            }
            let p = self.servers[&id].peer.as_ref().expect("live");
            if let Some(epoch) = p.leading_epoch() {
                let leader = *self.leaders.entry(epoch).or_insert(id);
                if leader != id {
                    return Err(
                        self.fail(format!("two leaders in epoch {epoch}: {leader} and {id}"))
                    );
                }
            }
            let tree = p.tree();
            if tree.last_zxid == self.servers[&id].checked_zxid {
                continue;
            }
            let (zxid, d) = (tree.last_zxid, digest(tree));
            self.servers.get_mut(&id).expect("server").checked_zxid = zxid;
            let known = *self.digests.entry(zxid).or_insert(d);
            if known != d {
                return Err(self.fail(format!(
                    "server {id}: tree at zxid {zxid:#x} differs from another server's at the same zxid"
                )));
            }
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Report, String> {
        let mut zxids = BTreeSet::new();
        for id in self.ids.clone() {
            let Some(p) = self.servers[&id].peer.as_ref() else {
                return Err(self.fail(format!("server {id} is down at the end")));
            };
            if !p.serving() {
                return Err(self.fail(format!(
                    "server {id} is not serving after {} ms without faults ({:?})",
                    self.cfg.settle_ms,
                    p.state()
                )));
            }
            zxids.insert(p.tree().last_zxid);
        }
        if zxids.len() != 1 {
            return Err(self.fail(format!("servers did not converge: zxids {zxids:x?}")));
        }
        let leader = self
            .leader()
            .ok_or_else(|| self.fail("no leader at the end".into()))?;
        let tree = self.servers[&leader].peer.as_ref().expect("live").tree();
        for (path, (z, value)) in &self.acked {
            let node = tree.get(path).expect("registers are never deleted");
            if node.mzxid < *z {
                return Err(self.fail(format!(
                    "acknowledged write to {path} at {z:#x} lost: the node is at {:#x}",
                    node.mzxid
                )));
            }
            if node.mzxid == *z && node.data.as_ref() != Some(value) {
                return Err(self.fail(format!(
                    "{path} at {z:#x} holds other data than acknowledged"
                )));
            }
        }
        self.report.final_zxid = tree.last_zxid;
        self.report.epochs = self.leaders.len();
        Ok(std::mem::take(&mut self.report))
    }
}

/// A message in a trace line: its kind and the fields that matter.
fn brief(msg: &Message) -> String {
    match msg {
        Message::Notification {
            vote,
            election_epoch,
            state,
        } => format!(
            "vote {} ({:#x}, e{}) round {election_epoch} {state:?}",
            vote.leader, vote.zxid, vote.peer_epoch
        ),
        Message::Diff { records, committed } => format!(
            "Diff {} records {:?}..{:?} committed {committed:#x}",
            records.len(),
            records.first().map(|r| r.0),
            records.last().map(|r| r.0)
        ),
        Message::Propose { round, records } => {
            format!("Propose {round} ({} records)", records.len())
        }
        Message::Snap { tree, .. } => format!("Snap at {:#x}", tree.last_zxid),
        Message::Commit { zxid, done } => format!("Commit {zxid:#x} ({} done)", done.len()),
        Message::Inform { zxid, records, .. } => {
            format!("Inform {zxid:#x} ({} records)", records.len())
        }
        Message::Request { id, .. } => format!("Request {id}"),
        m => format!("{m:?}"),
    }
}

/// An order-independent digest of a tree: paths, data and Stat.
pub fn digest(tree: &DataTree) -> u64 {
    fn mix(h: &mut u64, bytes: &[u8]) {
        for &b in bytes {
            *h ^= b as u64;
            *h = h.wrapping_mul(0x0100_0000_01b3);
        }
        *h ^= 0xff;
        *h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut nodes: Vec<_> = tree.paths().collect();
    nodes.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    mix(&mut h, &tree.last_zxid.to_be_bytes());
    for (path, n) in nodes {
        mix(&mut h, path.as_bytes());
        mix(&mut h, n.data.as_deref().unwrap_or(b"\xff-null"));
        let s = n.stat();
        for v in [
            s.czxid,
            s.mzxid,
            s.pzxid,
            s.ctime,
            s.mtime,
            n.ephemeral_owner,
        ] {
            mix(&mut h, &v.to_be_bytes());
        }
        for v in [s.version, s.cversion, s.aversion, s.num_children] {
            mix(&mut h, &v.to_be_bytes());
        }
    }
    h
}

/// Runs one seed.
pub fn run_seed(seed: u64) -> Result<Report, String> {
    Sim::new(SimConfig::for_seed(seed)).run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_ensemble_elects_and_serves() {
        for voters in [1, 3, 5] {
            let cfg = SimConfig {
                seed: 7,
                voters,
                observers: 1,
                clients: 3,
                duration_ms: 3_000,
                settle_ms: 3_000,
                faults: false,
                history_max: 100,
                history_bytes_max: crate::constants::HISTORY_BYTES_MAX,
                trace: false,
            };
            let r = Sim::new(cfg).run().unwrap();
            assert_eq!(r.epochs, 1, "{voters} voters: {r:?}");
        }
    }

    /// The GC-pause case: the leader stops for longer than the session
    /// timeout, the others elect a new leader that acknowledges writes,
    /// and the first thing the old leader does when it resumes is take a
    /// sync from its client. The sync must not complete from its stale
    /// state: it needs a quorum round the others refuse, so the client
    /// gets connection loss, never a stale read (the client checks).
    #[test]
    fn a_resumed_leader_cannot_answer_a_sync_from_stale_state() {
        let cfg = SimConfig {
            seed: 11,
            voters: 3,
            observers: 0,
            clients: 3,
            duration_ms: 60_000,
            settle_ms: 0,
            faults: false,
            history_max: 100,
            history_bytes_max: crate::constants::HISTORY_BYTES_MAX,
            trace: false,
        };
        let mut sim = Sim::new(cfg);
        sim.run_until(1_500_000).unwrap();
        let old = sim.leader().expect("elected");
        // Client 2 only syncs; connect it to the leader.
        sim.connection_lost(2);
        sim.clients[2].session = None;
        let origin = sim.origin(2);
        sim.clients[2].server = Some(old);
        let connect = Submission::CreateSession {
            origin,
            timeout_ms: SESSION_TIMEOUT_MS,
        };
        sim.submit(2, connect, ClientOp::Connect).unwrap();
        sim.run_until(1_700_000).unwrap();
        assert!(sim.clients[2].session.is_some());
        let session = sim.clients[2].session.unwrap();

        // Quiesce first: with nothing outstanding, a leader that answered
        // syncs from its own state (as Apache ZooKeeper's does) would
        // answer this one at once.
        sim.writes_on = false;
        let mut t = sim.now_us;
        while sim.servers[&old].peer.as_ref().unwrap().rounds_in_flight() > 0
            || !sim.servers[&old].disk.pending.is_empty()
        {
            t += 10_000;
            sim.run_until(t).unwrap();
        }
        sim.writes_on = true;
        let resume = sim.now_us + 3_000_000;
        sim.paused_until.insert(old, resume);
        sim.run_until(resume - 1_000).unwrap();
        let new = sim.leader().filter(|&l| l != old);
        assert!(new.is_some(), "the others elected a new leader");
        let acked_before = sim.report.acked_writes;
        assert!(acked_before > 0);
        let expect: BTreeMap<String, i64> = sim
            .acked
            .iter()
            .map(|(p, (z, _))| (p.clone(), *z))
            .collect();
        let newest = expect.values().copied().max().unwrap();
        assert!(
            newest >> 32
                > sim.servers[&old]
                    .peer
                    .as_ref()
                    .unwrap()
                    .leading_epoch()
                    .unwrap() as i64,
            "a write of the new epoch was acknowledged"
        );

        // The old leader resumes and reads its client's sync first (the
        // client still holds its connection there).
        sim.connection_lost(2);
        sim.clients[2].server = Some(old);
        sim.clients[2].conn += 1 << 16;
        sim.clients[2].last_heard_us = sim.now_us;
        sim.clients[2].session = Some(session);
        let origin = sim.origin(2);
        let (conn, xid) = (origin.conn, origin.xid);
        let sync = Submission::Sync {
            origin,
            session,
            path: "/".into(),
        };
        sim.submit(2, sync, ClientOp::Sync { expect }).unwrap();
        // A stale answer fails the run: the client checks every sync.
        sim.run_until(resume + 3_000_000).unwrap();
        assert!(sim.servers[&old]
            .peer
            .as_ref()
            .unwrap()
            .leading_epoch()
            .is_none());
        assert!(
            sim.clients[2].conn != conn || sim.clients[2].server.is_none(),
            "the client saw connection loss"
        );
        assert!(
            !(sim.clients[2].conn == conn && sim.clients[2].pending.iter().any(|p| p.0 == xid)),
            "the sync is not left waiting"
        );
        // The client goes on through another server (it only syncs): with
        // no new requests, whatever it has in flight there completes.
        sim.writes_on = false;
        sim.run_until(resume + 5_000_000).unwrap();
        assert!(sim.clients[2].pending.is_empty());
    }

    #[test]
    fn one_seed_replays_exactly() {
        let a = run_seed(3).map(|r| (r.events, r.final_zxid, r.acked_writes));
        let b = run_seed(3).map(|r| (r.events, r.final_zxid, r.acked_writes));
        assert_eq!(a, b);
    }
}
