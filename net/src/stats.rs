//! What the server knows about itself, as plain data: the figures behind
//! the four-letter words (rendered as text by `fourlw`), the admin
//! commands (rendered as JSON by `admin`) and the metrics (`metrics`).
//!
//! Functions taking a `&Shard` run on that shard's core and see its
//! connections and watches; functions taking `&[CoreStats]` read the
//! figures every core publishes and may run anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;

use engine::tree::DataTree;
use engine::types::SessionId;

use crate::config::Config;
use crate::metrics::{self, Latency};
use crate::server::{CoreStats, Shard};

/// The version string clients and tools see, ZooKeeper-shaped so tools
/// that parse it keep working.
pub const VERSION: &str = concat!("3.9.0-corral-", env!("CARGO_PKG_VERSION"));

/// Server-wide sums of the figures every core publishes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    pub connections: u64,
    pub watches: u64,
    pub outstanding: u64,
    pub received: u64,
    pub sent: u64,
}

pub fn totals(stats: &[CoreStats]) -> Totals {
    let sum = |f: fn(&CoreStats) -> &std::sync::atomic::AtomicU64| {
        stats
            .iter()
            .map(|c| f(c).load(Ordering::Relaxed))
            .sum::<u64>()
    };
    Totals {
        connections: sum(|c| &c.connections),
        watches: sum(|c| &c.watches),
        outstanding: sum(|c| &c.outstanding),
        received: sum(|c| &c.received),
        sent: sum(|c| &c.sent),
    }
}

/// ZooKeeper's request latency over every core.
pub fn latency(stats: &[CoreStats]) -> Latency {
    metrics::latency(stats.iter().map(|c| &c.metrics))
}

/// Tree-wide figures, exact on any core's view.
#[derive(Clone, Copy, Debug, Default)]
pub struct TreeFigures {
    /// As ZooKeeper reports it everywhere (srvr, mntr, the admin server,
    /// Prometheus): `DataTree::reported_node_count`, one more than the
    /// znodes because ZooKeeper keys the root twice.
    pub node_count: u64,
    pub ephemerals_count: u64,
    pub approximate_data_size: i64,
    pub last_zxid: i64,
}

pub fn tree_figures(tree: &DataTree) -> TreeFigures {
    TreeFigures {
        node_count: tree.reported_node_count() as u64,
        ephemerals_count: tree.ephemeral_count() as u64,
        approximate_data_size: tree.approximate_data_size,
        last_zxid: tree.last_zxid,
    }
}

/// One client connection, as `cons` shows it.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    pub queued: u64,
    pub received: u64,
    pub sent: u64,
    pub session: SessionId,
    pub last_zxid: i64,
    pub timeout_ms: i32,
    /// When the connection was accepted: wall-clock ms and age in ms.
    pub established_ms: u64,
    pub age_ms: u64,
}

/// The connections of the shard's core.
pub fn connections(shard: &Shard) -> Vec<ConnectionInfo> {
    let now_ms = shard.clock.now_ms();
    let st = shard.state.borrow();
    let mut v: Vec<ConnectionInfo> = st
        .conns
        .values()
        .map(|c| {
            let age_ms = c.established.elapsed().as_millis() as u64;
            ConnectionInfo {
                peer: c.peer,
                queued: c.queued() as u64,
                received: c.received.get(),
                sent: c.sent.get(),
                session: c.session.get(),
                last_zxid: c.last_zxid.get(),
                timeout_ms: c.timeout_ms.get(),
                established_ms: now_ms.saturating_sub(age_ms),
                age_ms,
            }
        })
        .collect();
    v.sort_by_key(|c| (c.established_ms, c.peer));
    v
}

/// `crst`: zero the packet counts of the shard's connections.
pub fn reset_connection_stats(shard: &Shard) {
    for c in shard.state.borrow().conns.values() {
        c.received.set(0);
        c.sent.set(0);
    }
}

/// `srst` on one core: its received count and its latency figures.
pub fn reset_server_stats(shard: &Shard) {
    shard.counters.received.set(0);
    shard.stats[shard.core as usize].metrics.reset_latency();
    shard.publish_stats();
}

/// Watched path -> sessions of the shard's core, data watches only
/// (`WatchManager::data_by_path`): what ZooKeeper's `wchs`, `wchc`, `wchp`
/// and admin watch commands report.
pub fn data_watches_by_path(shard: &Shard) -> Vec<(String, Vec<SessionId>)> {
    shard.state.borrow().watches.data_by_path()
}

/// Every core's data watches as one map, path -> sorted distinct sessions
/// (two sessions on different cores may watch one path).
pub fn merge_watches(
    per_core: impl IntoIterator<Item = Vec<(String, Vec<SessionId>)>>,
) -> BTreeMap<String, Vec<SessionId>> {
    let mut m: BTreeMap<String, BTreeSet<SessionId>> = BTreeMap::new();
    for (p, sessions) in per_core.into_iter().flatten() {
        m.entry(p).or_default().extend(sessions);
    }
    m.into_iter()
        .map(|(p, s)| (p, s.into_iter().collect()))
        .collect()
}

/// Session -> watched paths, from path -> sessions.
pub fn watches_by_session(
    by_path: &BTreeMap<String, Vec<SessionId>>,
) -> BTreeMap<SessionId, Vec<String>> {
    let mut m: BTreeMap<SessionId, Vec<String>> = BTreeMap::new();
    for (p, sessions) in by_path {
        for s in sessions {
            m.entry(*s).or_default().push(p.clone());
        }
    }
    for paths in m.values_mut() {
        paths.sort();
    }
    m
}

/// ZooKeeper's `WatchesSummary` of the data watches (`wchs`,
/// `watch_summary`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchSummary {
    /// Sessions holding at least one data watch.
    pub connections: usize,
    /// Distinct watched paths.
    pub paths: usize,
    /// (session, path) pairs.
    pub watches: usize,
}

pub fn watch_summary(by_path: &BTreeMap<String, Vec<SessionId>>) -> WatchSummary {
    let sessions: BTreeSet<SessionId> = by_path.values().flatten().copied().collect();
    WatchSummary {
        connections: sessions.len(),
        paths: by_path.len(),
        watches: by_path.values().map(|s| s.len()).sum(),
    }
}

/// Sessions and their ephemerals, and (on the pipeline core, which owns
/// the session table) when each session expires.
#[derive(Clone, Debug, Default)]
pub struct Dump {
    /// Expiry time (wall-clock ms, the tick bucket) -> sessions.
    pub expiry: BTreeMap<u64, Vec<SessionId>>,
    pub ephemerals: BTreeMap<SessionId, Vec<String>>,
}

pub fn dump(shard: &Shard) -> Dump {
    let mut d = Dump::default();
    {
        let st = shard.state.borrow();
        for s in st.view.sessions_with_ephemerals() {
            let mut paths: Vec<String> = st
                .view
                .ephemerals_of(s)
                .iter()
                .map(|p| p.to_string())
                .collect();
            paths.sort();
            d.ephemerals.insert(s, paths);
        }
    }
    // Only the leader tracks expiry deadlines.
    shard.with_peer(|peer| {
        for s in peer.pipeline().iter().flat_map(|p| p.sessions().iter()) {
            d.expiry.entry(s.deadline_ms).or_default().push(s.id);
        }
    });
    for ids in d.expiry.values_mut() {
        ids.sort_unstable();
    }
    d
}

/// What only the pipeline core knows.
#[derive(Clone, Copy, Debug, Default)]
pub struct PipelineFigures {
    pub sessions: u64,
    /// Transactions prepared and not yet durable.
    pub outstanding: u64,
}

/// The tree's and the pipeline's figures, as the pipeline core sees them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Figures {
    pub tree: TreeFigures,
    pub pipeline: PipelineFigures,
}

pub fn pipeline_figures(shard: &Shard) -> Option<PipelineFigures> {
    shard.with_peer(|p| PipelineFigures {
        sessions: p.session_count() as u64,
        outstanding: p.outstanding() as u64,
    })
}

/// The configuration as `conf` shows it.
#[derive(Clone, Debug)]
pub struct Conf {
    pub client_port: u16,
    pub client_port_address: String,
    pub data_dir: String,
    pub data_log_dir: String,
    pub tick_time_ms: u64,
    pub max_client_cnxns: usize,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub server_id: u64,
}

pub fn conf(c: &Config) -> Conf {
    let (min, max) = c.session_timeout_bounds();
    Conf {
        client_port: c.client_port,
        client_port_address: c.client_port_address.to_string(),
        data_dir: c.data_dir.display().to_string(),
        data_log_dir: c.log_dir().display().to_string(),
        tick_time_ms: c.tick_time_ms,
        max_client_cnxns: c.max_client_cnxns,
        min_session_timeout_ms: min,
        max_session_timeout_ms: max,
        server_id: c.my_id.unwrap_or(0),
    }
}

/// `envi`: (key, value) in ZooKeeper's key names where one applies.
pub fn environment(cores: usize) -> Vec<(&'static str, String)> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    vec![
        ("zookeeper.version", VERSION.to_string()),
        ("host.name", read("/proc/sys/kernel/hostname")),
        ("os.name", std::env::consts::OS.to_string()),
        ("os.arch", std::env::consts::ARCH.to_string()),
        ("os.version", read("/proc/sys/kernel/osrelease")),
        ("user.name", std::env::var("USER").unwrap_or_default()),
        ("user.home", std::env::var("HOME").unwrap_or_default()),
        (
            "user.dir",
            std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        ),
        ("corral.cores", cores.to_string()),
    ]
}

/// `dirs`. As ZooKeeper's, `datadir_size` is what holds snapshots and
/// `logdir_size` what holds the transaction log.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dirs {
    pub datadir_size: u64,
    pub logdir_size: u64,
}

fn dir_size(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

pub fn dirs(c: &Config) -> Dirs {
    Dirs {
        datadir_size: dir_size(&c.snap_dir()),
        logdir_size: dir_size(&c.log_dir()),
    }
}

/// Open file descriptors and their limit (ZooKeeper's
/// `open_file_descriptor_count` / `max_file_descriptor_count`).
pub fn file_descriptors() -> (u64, u64) {
    let open = std::fs::read_dir("/proc/self/fd")
        .map(|rd| rd.count() as u64)
        .unwrap_or(0);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        0
    };
    (open, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_invert_to_sessions_with_sorted_paths() {
        let by_path = merge_watches([
            vec![("/b".to_string(), vec![1, 2])],
            vec![("/a".to_string(), vec![2])],
        ]);
        let m = watches_by_session(&by_path);
        assert_eq!(m[&1], vec!["/b"]);
        assert_eq!(m[&2], vec!["/a", "/b"]);
    }

    /// Two cores whose sessions watch one path: one path, as ZooKeeper
    /// counts it (docs/internals/zk-facts.md, section j).
    #[test]
    fn the_summary_counts_paths_across_cores_once() {
        let by_path = merge_watches([
            vec![
                ("/w".to_string(), vec![1]),
                ("/missing".to_string(), vec![4]),
            ],
            vec![("/w".to_string(), vec![2])],
            vec![],
        ]);
        assert_eq!(
            watch_summary(&by_path),
            WatchSummary {
                connections: 3,
                paths: 2,
                watches: 3
            }
        );
        assert_eq!(watch_summary(&BTreeMap::new()), WatchSummary::default());
    }
}
