//! Counters and histograms the server keeps about itself, and their
//! Prometheus text rendering (`GET /metrics` on the admin server).
//!
//! Cost on the request path is what decides the shape of this module:
//! - A figure that changes per request is a relaxed atomic in the per-core
//!   `CoreMetrics` of the core that owns it. A counter only its own core
//!   writes (`bump`) is a plain load and store, not a locked
//!   read-modify-write; the admin thread only reads it.
//! - Per-core structs sit in `CoreStats`, which is aligned to its own cache
//!   lines so two cores never write the same line.
//! - Figures that cost a walk (znodes, ephemerals, sessions, queue depths)
//!   are not kept up to date at all: the admin server asks every core for
//!   them when it is scraped (`admin::gather`).
//!
//! Histograms are cumulative only when rendered: each bucket counts its own
//! range, and `_count` is the sum of the buckets read in the same pass, so
//! a scrape always sees monotone buckets whose `+Inf` equals `_count`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

/// Adds to a counter that only one thread ever writes: a load and a store,
/// no lock prefix. A concurrent reader sees the old or the new value.
#[inline]
pub fn bump(a: &AtomicU64, by: u64) {
    a.store(
        a.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

/// Most buckets any histogram of ours has (the `+Inf` bucket excluded).
pub const HISTOGRAM_BUCKETS_MAX: usize = 20;

/// A fixed-bucket histogram of `u64` observations in a base unit (µs,
/// bytes, records); rendering divides by a unit (1e6 for µs to seconds).
///
/// Single writer: `observe` uses `bump`, so only one thread may call it
/// (the group-commit loop, the snapshot completion, or the core owning a
/// `CoreMetrics`). Readers on other threads are fine.
pub struct Histogram {
    bounds: &'static [u64],
    /// `counts[i]` counts observations in (bounds[i-1], bounds[i]];
    /// the last one those above every bound.
    counts: [AtomicU64; HISTOGRAM_BUCKETS_MAX + 1],
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

/// A point-in-time copy of a histogram, possibly summed over cores.
#[derive(Clone, Debug, Default)]
pub struct HistogramSnapshot {
    pub bounds: &'static [u64],
    /// Per-bucket (not cumulative) counts, `bounds.len() + 1` of them.
    pub counts: Vec<u64>,
    pub sum: u64,
    /// `u64::MAX` when nothing was observed.
    pub min: u64,
    pub max: u64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Adds another snapshot of a histogram with the same buckets.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        if self.counts.is_empty() {
            *self = other.clone();
            return;
        }
        assert_eq!(self.bounds, other.bounds, "merging different histograms");
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }
}

impl Histogram {
    pub const fn new(bounds: &'static [u64]) -> Histogram {
        assert!(bounds.len() <= HISTOGRAM_BUCKETS_MAX);
        let mut i = 1;
        while i < bounds.len() {
            assert!(bounds[i - 1] < bounds[i], "bucket bounds must increase");
            i += 1;
        }
        Histogram {
            bounds,
            counts: [const { AtomicU64::new(0) }; HISTOGRAM_BUCKETS_MAX + 1],
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }

    /// Records one observation. Single writer (see the type's comment).
    #[inline]
    pub fn observe(&self, v: u64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(self.bounds.len());
        bump(&self.counts[i], 1);
        bump(&self.sum, v);
        if v < self.min.load(Ordering::Relaxed) {
            self.min.store(v, Ordering::Relaxed);
        }
        if v > self.max.load(Ordering::Relaxed) {
            self.max.store(v, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self.counts[..=self.bounds.len()]
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum: self.sum.load(Ordering::Relaxed),
            min: self.min.load(Ordering::Relaxed),
            max: self.max.load(Ordering::Relaxed),
        }
    }
}

/// Log sync (write + fdatasync of one batch), in µs: 50 µs .. 2.5 s.
pub const SYNC_US_BOUNDS: &[u64] = &[
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000,
];
/// Write latency (request read to reply queued), in µs: 100 µs .. 10 s.
pub const WRITE_LATENCY_US_BOUNDS: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 10_000_000,
];
/// Transactions per group-commit batch: 1 .. BATCH_PROPOSALS_MAX.
pub const BATCH_RECORDS_BOUNDS: &[u64] = &[
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384,
];
/// Bytes per group-commit batch: 256 B .. BATCH_BYTES_MAX.
pub const BATCH_BYTES_BOUNDS: &[u64] = &[
    256,
    1 << 10,
    4 << 10,
    16 << 10,
    64 << 10,
    256 << 10,
    1 << 20,
    4 << 20,
];
/// Election time (LOOKING until leading, following or observing), in ms:
/// 1 ms .. 1 min.
pub const ELECTION_MS_BOUNDS: &[u64] = &[
    1, 5, 10, 25, 50, 100, 200, 300, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000,
];
/// Snapshot duration, in µs: 10 ms .. 5 min.
pub const SNAPSHOT_US_BOUNDS: &[u64] = &[
    10_000,
    50_000,
    100_000,
    500_000,
    1_000_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    300_000_000,
];

const _: () = assert!(
    BATCH_RECORDS_BOUNDS[BATCH_RECORDS_BOUNDS.len() - 1]
        >= engine::constants::BATCH_PROPOSALS_MAX as u64
);
const _: () = assert!(
    BATCH_BYTES_BOUNDS[BATCH_BYTES_BOUNDS.len() - 1] >= engine::constants::BATCH_BYTES_MAX as u64
);

/// ZooKeeper's `fsync.warningthresholdms` default: a sync slower than this
/// counts in `fsync_threshold_exceed_count`.
pub const FSYNC_WARNING_THRESHOLD_US: u64 = 1_000_000;

/// Request kinds counted per core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    Read = 0,
    Write = 1,
    Ping = 2,
    Other = 3,
}

impl RequestKind {
    pub const ALL: [RequestKind; 4] = [
        RequestKind::Read,
        RequestKind::Write,
        RequestKind::Ping,
        RequestKind::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RequestKind::Read => "read",
            RequestKind::Write => "write",
            RequestKind::Ping => "ping",
            RequestKind::Other => "other",
        }
    }
}

/// One core's request-path figures. Written only by that core, except the
/// ZooKeeper latency figures, which `srst` may reset from any core (hence
/// read-modify-write atomics for those).
pub struct CoreMetrics {
    requests: [AtomicU64; 4],
    pub auth_failures: AtomicU64,
    /// Write latency as ZooKeeper's `ServerStats` reports it (ms; reset by
    /// `srst`). `latency_min_ms` is `u64::MAX` while there is none.
    latency_count: AtomicU64,
    latency_sum_ms: AtomicU64,
    latency_min_ms: AtomicU64,
    latency_max_ms: AtomicU64,
    /// Write latency in µs, never reset.
    pub write_latency: Histogram,
}

impl Default for CoreMetrics {
    fn default() -> Self {
        CoreMetrics {
            requests: [const { AtomicU64::new(0) }; 4],
            auth_failures: AtomicU64::new(0),
            latency_count: AtomicU64::new(0),
            latency_sum_ms: AtomicU64::new(0),
            latency_min_ms: AtomicU64::new(u64::MAX),
            latency_max_ms: AtomicU64::new(0),
            write_latency: Histogram::new(WRITE_LATENCY_US_BOUNDS),
        }
    }
}

/// ZooKeeper's min/avg/max request latency, in ms.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Latency {
    pub min_ms: u64,
    pub avg_ms: f64,
    pub max_ms: u64,
    pub count: u64,
}

impl CoreMetrics {
    #[inline]
    pub fn count_request(&self, kind: RequestKind) {
        bump(&self.requests[kind as usize], 1);
    }

    pub fn requests(&self, kind: RequestKind) -> u64 {
        self.requests[kind as usize].load(Ordering::Relaxed)
    }

    /// A write answered `us` microseconds after it was read.
    #[inline]
    pub fn record_write_latency(&self, us: u64) {
        let ms = us / 1000;
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_ms.fetch_add(ms, Ordering::Relaxed);
        self.latency_min_ms.fetch_min(ms, Ordering::Relaxed);
        self.latency_max_ms.fetch_max(ms, Ordering::Relaxed);
        self.write_latency.observe(us);
    }

    /// `srst`: forget the ZooKeeper latency figures (not the histogram:
    /// Prometheus counters never go back).
    pub fn reset_latency(&self) {
        self.latency_count.store(0, Ordering::Relaxed);
        self.latency_sum_ms.store(0, Ordering::Relaxed);
        self.latency_min_ms.store(u64::MAX, Ordering::Relaxed);
        self.latency_max_ms.store(0, Ordering::Relaxed);
    }
}

/// ZooKeeper's latency figures over several cores: min of mins, max of
/// maxes, the average over every request.
pub fn latency<'a>(cores: impl IntoIterator<Item = &'a CoreMetrics>) -> Latency {
    let (mut n, mut sum, mut min, mut max) = (0u64, 0u64, u64::MAX, 0u64);
    for c in cores {
        n += c.latency_count.load(Ordering::Relaxed);
        sum += c.latency_sum_ms.load(Ordering::Relaxed);
        min = min.min(c.latency_min_ms.load(Ordering::Relaxed));
        max = max.max(c.latency_max_ms.load(Ordering::Relaxed));
    }
    Latency {
        min_ms: if n == 0 || min == u64::MAX { 0 } else { min },
        avg_ms: if n == 0 { 0.0 } else { sum as f64 / n as f64 },
        max_ms: max,
        count: n,
    }
}

/// Server-wide figures with one writer each (the group-commit loop, the
/// snapshot completion, startup), plus readiness.
pub struct ServerMetrics {
    pub log_sync_us: Histogram,
    pub batch_records: Histogram,
    pub batch_bytes: Histogram,
    pub fsync_threshold_exceeded: AtomicU64,
    pub snapshot_us: Histogram,
    pub snapshot_failures: AtomicU64,
    pub snapshot_last_bytes: AtomicU64,
    /// zxid and wall-clock ms of the last snapshot written or loaded; -1
    /// before there is one.
    pub snapshot_last_zxid: AtomicI64,
    pub snapshot_last_time_ms: AtomicI64,
    pub sessions_expired: AtomicU64,
    /// Connections to secureClientPort whose TLS handshake failed or
    /// timed out.
    pub tls_handshake_failures: AtomicU64,
    /// Requests over slowRequestThresholdMs (each one, logged or not).
    pub slow_requests: AtomicU64,
    /// Connections closed by enforce.auth.
    pub enforce_auth_refusals: AtomicU64,
    /// Times a connection stopped being read because its session had too
    /// many requests queued or too many reply bytes unread.
    pub connections_throttled: AtomicU64,
    /// ZooKeeper's proposal_count, commit_count,
    /// learner_proposal_received_count, learner_commit_received_count.
    pub proposals: AtomicU64,
    pub commits: AtomicU64,
    pub learner_proposals_received: AtomicU64,
    pub learner_commits_received: AtomicU64,
    /// ZooKeeper's `election_time`: each election this server concluded,
    /// from entering LOOKING to leading, following or observing, in ms.
    pub election_ms: Histogram,
    pub recovery_ms: AtomicU64,
    pub transactions_recovered: AtomicU64,
    cores: AtomicUsize,
    cores_accepting: AtomicUsize,
    stopping: AtomicBool,
    /// The peer has a leader with a quorum (always, once started, when
    /// standalone).
    serving: AtomicBool,
}

/// The process's one server. A static rather than a handle passed around:
/// a corral process runs exactly one server, and the group-commit loop,
/// the snapshotter and the admin thread reach it without plumbing.
pub static SERVER: ServerMetrics = ServerMetrics::new();

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics::new()
    }
}

impl ServerMetrics {
    pub const fn new() -> ServerMetrics {
        ServerMetrics {
            log_sync_us: Histogram::new(SYNC_US_BOUNDS),
            batch_records: Histogram::new(BATCH_RECORDS_BOUNDS),
            batch_bytes: Histogram::new(BATCH_BYTES_BOUNDS),
            fsync_threshold_exceeded: AtomicU64::new(0),
            snapshot_us: Histogram::new(SNAPSHOT_US_BOUNDS),
            snapshot_failures: AtomicU64::new(0),
            snapshot_last_bytes: AtomicU64::new(0),
            snapshot_last_zxid: AtomicI64::new(-1),
            snapshot_last_time_ms: AtomicI64::new(-1),
            sessions_expired: AtomicU64::new(0),
            tls_handshake_failures: AtomicU64::new(0),
            slow_requests: AtomicU64::new(0),
            enforce_auth_refusals: AtomicU64::new(0),
            connections_throttled: AtomicU64::new(0),
            proposals: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            learner_proposals_received: AtomicU64::new(0),
            learner_commits_received: AtomicU64::new(0),
            election_ms: Histogram::new(ELECTION_MS_BOUNDS),
            recovery_ms: AtomicU64::new(0),
            transactions_recovered: AtomicU64::new(0),
            cores: AtomicUsize::new(0),
            cores_accepting: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            serving: AtomicBool::new(false),
        }
    }

    /// One group-commit batch made durable.
    pub fn record_batch(&self, records: usize, bytes: usize, sync_us: u64) {
        self.log_sync_us.observe(sync_us);
        self.batch_records.observe(records as u64);
        self.batch_bytes.observe(bytes as u64);
        if sync_us > FSYNC_WARNING_THRESHOLD_US {
            bump(&self.fsync_threshold_exceeded, 1);
        }
    }

    /// A snapshot written in `elapsed_us`.
    pub fn record_snapshot(&self, elapsed_us: u64, zxid: i64, bytes: u64, now_ms: u64) {
        self.snapshot_us.observe(elapsed_us);
        self.set_last_snapshot(zxid, bytes, now_ms);
    }

    /// An election concluded after `ms` of LOOKING.
    pub fn record_election(&self, ms: u64) {
        self.election_ms.observe(ms);
    }

    pub fn record_snapshot_failure(&self) {
        bump(&self.snapshot_failures, 1);
    }

    /// The newest snapshot: written, or loaded at startup.
    pub fn set_last_snapshot(&self, zxid: i64, bytes: u64, time_ms: u64) {
        self.snapshot_last_bytes.store(bytes, Ordering::Relaxed);
        self.snapshot_last_zxid.store(zxid, Ordering::Relaxed);
        self.snapshot_last_time_ms
            .store(time_ms as i64, Ordering::Relaxed);
    }

    /// Startup: how many executors there will be.
    pub fn set_cores(&self, cores: usize) {
        self.cores.store(cores, Ordering::Relaxed);
    }

    /// A core's listener is bound and its accept loop runs.
    pub fn core_accepting(&self) {
        self.cores_accepting.fetch_add(1, Ordering::Release);
    }

    /// Shutdown began: no longer ready.
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// The server started or stopped serving clients (it has, or lost, a
    /// leader backed by a quorum).
    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::Release);
    }

    /// Serving: recovery is done, the log is open, every core accepts
    /// connections, a leader with a quorum is in place, and shutdown has
    /// not begun.
    pub fn ready(&self) -> bool {
        let cores = self.cores.load(Ordering::Relaxed);
        cores > 0
            && self.cores_accepting.load(Ordering::Acquire) >= cores
            && self.serving.load(Ordering::Acquire)
            && !self.stopping.load(Ordering::Acquire)
    }
}

/// Writes Prometheus text exposition format (version 0.0.4).
///
/// Every family gets `# HELP` and `# TYPE` once, before its samples; names
/// and label values are ours, so they need no escaping beyond what
/// `label_value` does.
pub struct Exposition {
    out: String,
}

/// A sample's labels, e.g. `&[("core", "0")]`.
pub type Labels<'a> = &'a [(&'a str, &'a str)];

fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels_text(labels: Labels<'_>, extra: Option<(&str, &str)>) -> String {
    let mut all: Vec<(&str, &str)> = labels.to_vec();
    all.extend(extra);
    if all.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = all
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", label_value(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// A float as Prometheus wants it: no exponent surprises, `+Inf`.
fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else if v.is_nan() {
        "NaN".to_string()
    } else if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Default for Exposition {
    fn default() -> Self {
        Exposition::new()
    }
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition { out: String::new() }
    }

    pub fn finish(self) -> String {
        self.out
    }

    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: Labels<'_>, v: f64) {
        let _ = writeln!(
            self.out,
            "{name}{} {}",
            labels_text(labels, None),
            number(v)
        );
    }

    pub fn gauge(&mut self, name: &str, help: &str, v: f64) {
        self.header(name, "gauge", help);
        self.sample(name, &[], v);
    }

    pub fn counter(&mut self, name: &str, help: &str, v: f64) {
        self.header(name, "counter", help);
        self.sample(name, &[], v);
    }

    /// One family with a sample per label set.
    pub fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(Labels<'_>, f64)]) {
        self.header(name, kind, help);
        for (labels, v) in samples {
            self.sample(name, labels, *v);
        }
    }

    /// A histogram; each value is divided by `unit` (1e6: µs shown as
    /// seconds; dividing keeps bounds such as 50 µs exact, `0.00005`).
    pub fn histogram(&mut self, name: &str, help: &str, h: &HistogramSnapshot, unit: f64) {
        self.header(name, "histogram", help);
        let mut cumulative = 0u64;
        for (i, c) in h.counts.iter().enumerate() {
            cumulative += c;
            let le = match h.bounds.get(i) {
                Some(b) => number(*b as f64 / unit),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                self.out,
                "{name}_bucket{} {cumulative}",
                labels_text(&[], Some(("le", &le)))
            );
        }
        self.sample(&format!("{name}_sum"), &[], h.sum as f64 / unit);
        self.sample(&format!("{name}_count"), &[], cumulative as f64);
    }

    /// A summary without quantiles (only `_sum` and `_count`): how
    /// ZooKeeper's Prometheus provider's `fsynctime` and `snapshottime`
    /// are used by its documented alerts (`rate(fsynctime_sum[1m])`).
    pub fn summary(&mut self, name: &str, help: &str, sum: f64, count: u64) {
        self.header(name, "summary", help);
        self.sample(&format!("{name}_sum"), &[], sum);
        self.sample(&format!("{name}_count"), &[], count as f64);
    }
}

/// What `/metrics` shows, gathered by the admin server.
pub struct Render<'a> {
    pub stats: &'a [crate::server::CoreStats],
    /// None while not serving (or if the cores did not answer in time):
    /// the figures that need them are left out.
    pub figures: Option<crate::stats::Figures>,
    pub uptime_ms: u64,
    /// (open, max) file descriptors.
    pub file_descriptors: (u64, u64),
    pub wall_ms: u64,
}

/// Prometheus text for the whole server: ZooKeeper's metric names (those
/// of its Prometheus provider, unprefixed) where corral measures the same
/// thing, and corral's own under `corral_`. docs/OPERATIONS.md lists them.
pub fn render(r: &Render<'_>) -> String {
    let mut e = Exposition::new();
    let s = &SERVER;
    let t = crate::stats::totals(r.stats);
    let l = latency(r.stats.iter().map(|c| &c.metrics));
    let sum = |f: fn(&crate::server::CoreStats) -> u64| r.stats.iter().map(f).sum::<u64>();

    // ZooKeeper's names.
    if let Some(f) = &r.figures {
        e.gauge(
            "znode_count",
            "Znodes in the tree.",
            f.tree.node_count as f64,
        );
        e.gauge(
            "ephemerals_count",
            "Ephemeral znodes.",
            f.tree.ephemerals_count as f64,
        );
        e.gauge(
            "approximate_data_size",
            "Bytes of znode data and paths, approximately.",
            f.tree.approximate_data_size as f64,
        );
        e.gauge(
            "global_sessions",
            "Live sessions.",
            f.pipeline.sessions as f64,
        );
    }
    e.gauge(
        "watch_count",
        "Watch registrations (path, session, kind) on every core.",
        t.watches as f64,
    );
    e.gauge(
        "num_alive_connections",
        "Client connections.",
        t.connections as f64,
    );
    e.gauge(
        "outstanding_requests",
        "Requests read and not yet answered (refreshed at least every quarter tick).",
        t.outstanding as f64,
    );
    e.gauge(
        "packets_received",
        "Requests received since start or the last srst.",
        t.received as f64,
    );
    e.gauge(
        "packets_sent",
        "Replies and events sent (refreshed at least every quarter tick).",
        t.sent as f64,
    );
    e.gauge(
        "avg_latency",
        "Average write latency, ms, since start or the last srst.",
        l.avg_ms,
    );
    e.gauge(
        "min_latency",
        "Smallest write latency, ms.",
        l.min_ms as f64,
    );
    e.gauge("max_latency", "Largest write latency, ms.", l.max_ms as f64);
    e.gauge(
        "uptime",
        "Milliseconds since the server started.",
        r.uptime_ms as f64,
    );
    e.gauge(
        "open_file_descriptor_count",
        "Open file descriptors.",
        r.file_descriptors.0 as f64,
    );
    e.gauge(
        "max_file_descriptor_count",
        "File descriptor limit (RLIMIT_NOFILE).",
        r.file_descriptors.1 as f64,
    );
    e.gauge(
        "auth_failed_count",
        "Failed authentications.",
        sum(|c| c.metrics.auth_failures.load(Ordering::Relaxed)) as f64,
    );
    let sync = s.log_sync_us.snapshot();
    e.summary(
        "fsynctime",
        "Log write+fdatasync per group-commit batch, ms (no quantiles; see corral_log_sync_duration_seconds).",
        sync.sum as f64 / 1e3,
        sync.count(),
    );
    let snap = s.snapshot_us.snapshot();
    e.summary(
        "snapshottime",
        "Snapshot writing time, ms.",
        snap.sum as f64 / 1e3,
        snap.count(),
    );
    let election = s.election_ms.snapshot();
    e.summary(
        "election_time",
        "Elections concluded: time from entering LOOKING to leading, following or observing, ms.",
        election.sum as f64,
        election.count(),
    );
    let records = s.batch_records.snapshot();
    e.summary(
        "sync_processor_batch_size",
        "Transactions per log sync.",
        records.sum as f64,
        records.count(),
    );

    // corral's own.
    e.gauge(
        "corral_ready",
        "1 when the server serves clients (recovered, every core accepting, a leader with a quorum, not stopping).",
        if s.ready() { 1.0 } else { 0.0 },
    );
    e.gauge(
        "corral_cores",
        "Executors (one per core).",
        r.stats.len() as f64,
    );
    if let Some(f) = &r.figures {
        e.gauge(
            "corral_last_zxid",
            "zxid of the last committed transaction.",
            f.tree.last_zxid as f64,
        );
        e.gauge(
            "corral_pipeline_outstanding_transactions",
            "Transactions prepared and not yet durable.",
            f.pipeline.outstanding as f64,
        );
    }
    let core_labels: Vec<String> = (0..r.stats.len()).map(|c| c.to_string()).collect();
    let mut by_kind: Vec<(Vec<(&str, &str)>, f64)> = Vec::new();
    for (i, c) in r.stats.iter().enumerate() {
        for k in RequestKind::ALL {
            by_kind.push((
                vec![("core", core_labels[i].as_str()), ("kind", k.label())],
                c.metrics.requests(k) as f64,
            ));
        }
    }
    let samples: Vec<(Labels<'_>, f64)> = by_kind.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
    e.family(
        "corral_requests_total",
        "counter",
        "Requests read, by core and kind (write includes sync).",
        &samples,
    );
    let per_core =
        |f: fn(&crate::server::CoreStats) -> &AtomicU64| -> Vec<(Vec<(&str, &str)>, f64)> {
            r.stats
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    (
                        vec![("core", core_labels[i].as_str())],
                        f(c).load(Ordering::Relaxed) as f64,
                    )
                })
                .collect()
        };
    for (name, help, f) in [
        (
            "corral_core_connections",
            "Client connections, by core.",
            (|c| &c.connections) as fn(&crate::server::CoreStats) -> &AtomicU64,
        ),
        (
            "corral_core_queued_requests",
            "Requests queued in the sessions of a core, waiting for a reply.",
            |c| &c.outstanding,
        ),
        (
            "corral_core_watches",
            "Watch registrations, by core.",
            |c| &c.watches,
        ),
    ] {
        let v = per_core(f);
        let samples: Vec<(Labels<'_>, f64)> = v.iter().map(|(l, v)| (l.as_slice(), *v)).collect();
        e.family(name, "gauge", help, &samples);
    }
    let mut write_latency = HistogramSnapshot::default();
    for c in r.stats {
        write_latency.merge(&c.metrics.write_latency.snapshot());
    }
    if !write_latency.counts.is_empty() {
        e.histogram(
            "corral_write_latency_seconds",
            "From reading a write request to queueing its reply, every core.",
            &write_latency,
            1e6,
        );
    }
    e.histogram(
        "corral_log_sync_duration_seconds",
        "One group-commit batch: the log write and its fdatasync.",
        &sync,
        1e6,
    );
    e.counter(
        "corral_log_sync_slow_total",
        "Log syncs over 1 s (ZooKeeper's fsync_threshold_exceed_count).",
        s.fsync_threshold_exceeded.load(Ordering::Relaxed) as f64,
    );
    e.histogram(
        "corral_group_commit_batch_transactions",
        "Transactions per group-commit batch.",
        &records,
        1.0,
    );
    e.histogram(
        "corral_group_commit_batch_bytes",
        "Bytes of transaction records per group-commit batch.",
        &s.batch_bytes.snapshot(),
        1.0,
    );
    e.histogram(
        "corral_snapshot_duration_seconds",
        "Writing one snapshot (serialise, write, fsync, rename), in the background.",
        &snap,
        1e6,
    );
    e.counter(
        "corral_snapshot_failures_total",
        "Snapshots that failed (the log still has everything).",
        s.snapshot_failures.load(Ordering::Relaxed) as f64,
    );
    let last_zxid = s.snapshot_last_zxid.load(Ordering::Relaxed);
    if last_zxid >= 0 {
        e.gauge(
            "corral_snapshot_last_bytes",
            "Size of the newest snapshot (written, or loaded at startup).",
            s.snapshot_last_bytes.load(Ordering::Relaxed) as f64,
        );
        e.gauge(
            "corral_snapshot_last_zxid",
            "zxid of the newest snapshot.",
            last_zxid as f64,
        );
        let ms = s.snapshot_last_time_ms.load(Ordering::Relaxed);
        e.gauge(
            "corral_snapshot_last_timestamp_seconds",
            "When the newest snapshot was written (Unix time).",
            ms as f64 / 1e3,
        );
    }
    // ZooKeeper's leader-only gauges (its learner figures), when leading.
    if let Some(figures) = crate::replica::leader_figures() {
        for (name, v) in figures {
            let help = match name {
                "learners" => "Followers and observers connected to this leader.",
                "synced_followers" => "Followers in sync with this leader.",
                "synced_observers" => "Observers in sync with this leader.",
                _ => "Learners being synchronised.",
            };
            e.gauge(name, help, v as f64);
        }
    }
    for (name, help, v) in [
        (
            "proposal_count",
            "Rounds of proposals this leader sent to its learners.",
            &s.proposals,
        ),
        (
            "commit_count",
            "Rounds this leader committed with its learners.",
            &s.commits,
        ),
        (
            "learner_proposal_received_count",
            "Proposals this learner received.",
            &s.learner_proposals_received,
        ),
        (
            "learner_commit_received_count",
            "Commits (and observers' informs) this learner received.",
            &s.learner_commits_received,
        ),
    ] {
        e.counter(name, help, v.load(Ordering::Relaxed) as f64);
    }
    e.counter(
        "corral_connections_throttled_total",
        "Times reading a connection paused because its session had too many requests queued or reply bytes unread.",
        s.connections_throttled.load(Ordering::Relaxed) as f64,
    );
    e.counter(
        "corral_sessions_expired_total",
        "Sessions closed by the server because their client went silent.",
        s.sessions_expired.load(Ordering::Relaxed) as f64,
    );
    e.counter(
        "corral_tls_handshake_failures_total",
        "Connections to secureClientPort closed because the TLS handshake failed or timed out.",
        s.tls_handshake_failures.load(Ordering::Relaxed) as f64,
    );
    e.counter(
        "corral_slow_requests_total",
        "Requests slower than slowRequestThresholdMs from arrival to reply.",
        s.slow_requests.load(Ordering::Relaxed) as f64,
    );
    e.counter(
        "corral_enforce_auth_refusals_total",
        "Connections closed because the session had not authenticated with a scheme enforce.auth.schemes requires.",
        s.enforce_auth_refusals.load(Ordering::Relaxed) as f64,
    );
    e.gauge(
        "corral_recovery_duration_seconds",
        "Startup: loading the snapshot and replaying the log.",
        s.recovery_ms.load(Ordering::Relaxed) as f64 / 1e3,
    );
    e.gauge(
        "corral_recovery_transactions",
        "Startup: transactions replayed from the log.",
        s.transactions_recovered.load(Ordering::Relaxed) as f64,
    );
    e.gauge(
        "corral_start_time_seconds",
        "When the server started (Unix time).",
        (r.wall_ms.saturating_sub(r.uptime_ms)) as f64 / 1e3,
    );
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_count() {
        let h = Histogram::new(&[10, 100, 1000]);
        for v in [1, 10, 11, 500, 5000, 7000] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.counts, vec![2, 1, 1, 2]);
        assert_eq!(s.count(), 6);
        assert_eq!(s.sum, 1 + 10 + 11 + 500 + 5000 + 7000);
        assert_eq!((s.min, s.max), (1, 7000));
        let mut e = Exposition::new();
        e.histogram("x_seconds", "help", &s, 1e3);
        let text = e.finish();
        assert!(text.contains("x_seconds_bucket{le=\"0.01\"} 2\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"0.1\"} 3\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"1\"} 4\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 6\n"), "{text}");
        assert!(text.contains("x_seconds_count 6\n"), "{text}");
    }

    #[test]
    fn merged_snapshots_add_up() {
        let a = Histogram::new(&[10]);
        let b = Histogram::new(&[10]);
        a.observe(1);
        b.observe(20);
        b.observe(3);
        let mut m = HistogramSnapshot::default();
        m.merge(&a.snapshot());
        m.merge(&b.snapshot());
        assert_eq!(m.counts, vec![2, 1]);
        assert_eq!((m.min, m.max, m.sum), (1, 20, 24));
    }

    #[test]
    fn latency_over_cores() {
        let a = CoreMetrics::default();
        let b = CoreMetrics::default();
        assert_eq!(latency([&a, &b]), Latency::default());
        a.record_write_latency(3_000);
        b.record_write_latency(9_000);
        let l = latency([&a, &b]);
        assert_eq!((l.min_ms, l.max_ms, l.count), (3, 9, 2));
        assert_eq!(l.avg_ms, 6.0);
        a.reset_latency();
        assert_eq!(latency([&a]).count, 0);
        assert_eq!(a.write_latency.snapshot().count(), 1);
    }

    #[test]
    fn numbers_and_labels() {
        assert_eq!(number(1.0), "1");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(labels_text(&[("core", "0")], None), "{core=\"0\"}");
        assert_eq!(label_value("a\"b\\"), "a\\\"b\\\\");
    }
}
