//! Four-letter words on the client port (ZooKeeper's `FourLetterCommands`).
//! Each answers from the core that accepted the connection: tree-wide
//! figures come from its view (the whole tree), connection and watch
//! figures from its own connections.

use std::fmt::Write as _;

use std::sync::atomic::Ordering;

use crate::server::Shard;

/// Server-wide sums of the figures every core publishes.
struct Totals {
    connections: u64,
    watches: u64,
    watch_paths: u64,
    outstanding: u64,
    received: u64,
    sent: u64,
}

fn totals(shard: &Shard) -> Totals {
    shard.publish_slow_stats();
    let sum = |f: fn(&crate::server::CoreStats) -> &std::sync::atomic::AtomicU64| {
        shard
            .stats
            .iter()
            .map(|c| f(c).load(Ordering::Relaxed))
            .sum::<u64>()
    };
    Totals {
        connections: sum(|c| &c.connections),
        watches: sum(|c| &c.watches),
        watch_paths: sum(|c| &c.watch_paths),
        outstanding: sum(|c| &c.outstanding),
        received: sum(|c| &c.received),
        sent: sum(|c| &c.sent),
    }
}

pub const VERSION: &str = concat!("3.9.0-corral-", env!("CARGO_PKG_VERSION"));

fn srvr(shard: &Shard, out: &mut String) {
    let t = totals(shard);
    let st = shard.state.borrow();
    let c = &shard.counters;
    let avg = if c.latency_count.get() > 0 {
        c.latency_sum_ms.get() as f64 / c.latency_count.get() as f64
    } else {
        0.0
    };
    let _ = writeln!(out, "Zookeeper version: {VERSION}, built on corral");
    let _ = writeln!(
        out,
        "Latency min/avg/max: {}/{:.4}/{}",
        c.latency_min_ms.get(),
        avg,
        c.latency_max_ms.get()
    );
    let _ = writeln!(out, "Received: {}", t.received);
    let _ = writeln!(out, "Sent: {}", t.sent);
    let _ = writeln!(out, "Connections: {}", t.connections);
    let _ = writeln!(out, "Outstanding: {}", t.outstanding);
    let _ = writeln!(out, "Zxid: 0x{:x}", st.view.last_zxid);
    let _ = writeln!(out, "Mode: standalone");
    let _ = writeln!(out, "Node count: {}", st.view.node_count());
}

fn cons(shard: &Shard, out: &mut String) {
    let st = shard.state.borrow();
    for c in st.conns.values() {
        let _ = writeln!(
            out,
            " /{}[1](queued={},recved={},sent={},sid=0x{:x},lzxid=0x{:x},to={},est={}ms)",
            c.peer,
            c.queued(),
            c.received.get(),
            c.sent.get(),
            c.session.get(),
            c.last_zxid.get(),
            c.timeout_ms.get(),
            c.established.elapsed().as_millis()
        );
    }
    out.push('\n');
}

fn dir_size(p: &std::path::Path) -> u64 {
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

/// Runs a four-letter word and returns its text.
pub fn run(shard: &Shard, word: &str) -> String {
    if !shard.config.four_letter_word_allowed(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    let mut out = String::new();
    match word {
        "ruok" => out.push_str("imok"),
        "srvr" => srvr(shard, &mut out),
        "stat" => {
            srvr(shard, &mut out);
            let mut clients = String::new();
            cons(shard, &mut clients);
            out = out.replacen("Latency", &format!("Clients:\n{clients}Latency"), 1);
        }
        "cons" => cons(shard, &mut out),
        "crst" => {
            for c in shard.state.borrow().conns.values() {
                c.received.set(0);
                c.sent.set(0);
            }
            out.push_str("Connection stats reset.\n");
        }
        "srst" => {
            let c = &shard.counters;
            c.received.set(0);
            c.latency_count.set(0);
            c.latency_sum_ms.set(0);
            c.latency_min_ms.set(0);
            c.latency_max_ms.set(0);
            out.push_str("Server stats reset.\n");
        }
        "mntr" => {
            let t = totals(shard);
            let st = shard.state.borrow();
            let c = &shard.counters;
            let avg = if c.latency_count.get() > 0 {
                c.latency_sum_ms.get() as f64 / c.latency_count.get() as f64
            } else {
                0.0
            };
            let lines: Vec<(&str, String)> = vec![
                ("zk_version", VERSION.to_string()),
                ("zk_server_state", "standalone".into()),
                ("zk_avg_latency", format!("{avg:.4}")),
                ("zk_max_latency", c.latency_max_ms.get().to_string()),
                ("zk_min_latency", c.latency_min_ms.get().to_string()),
                ("zk_packets_received", t.received.to_string()),
                ("zk_packets_sent", t.sent.to_string()),
                ("zk_num_alive_connections", t.connections.to_string()),
                ("zk_outstanding_requests", t.outstanding.to_string()),
                ("zk_znode_count", st.view.node_count().to_string()),
                ("zk_watch_count", t.watches.to_string()),
                ("zk_ephemerals_count", st.view.ephemeral_count().to_string()),
                (
                    "zk_approximate_data_size",
                    st.view.approximate_data_size.to_string(),
                ),
                ("zk_last_zxid", format!("0x{:x}", st.view.last_zxid)),
                ("corral_core", shard.core.to_string()),
                ("corral_cores", shard.cores.to_string()),
            ];
            for (k, v) in lines {
                let _ = writeln!(out, "{k}\t{v}");
            }
        }
        "conf" => {
            let c = &shard.config;
            let (min, max) = c.session_timeout_bounds();
            let _ = writeln!(out, "clientPort={}", c.client_port);
            let _ = writeln!(out, "clientPortAddress={}", c.client_port_address);
            let _ = writeln!(out, "dataDir={}", c.data_dir.display());
            let _ = writeln!(out, "dataLogDir={}", c.log_dir().display());
            let _ = writeln!(out, "tickTime={}", c.tick_time_ms);
            let _ = writeln!(out, "maxClientCnxns={}", c.max_client_cnxns);
            let _ = writeln!(out, "minSessionTimeout={min}");
            let _ = writeln!(out, "maxSessionTimeout={max}");
            let _ = writeln!(out, "serverId={}", c.my_id.unwrap_or(0));
        }
        "envi" => {
            let _ = writeln!(out, "Environment:");
            let _ = writeln!(out, "zookeeper.version={VERSION}");
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            let _ = writeln!(out, "host.name={}", host.trim());
            let _ = writeln!(out, "os.name={}", std::env::consts::OS);
            let _ = writeln!(out, "os.arch={}", std::env::consts::ARCH);
            let _ = writeln!(
                out,
                "user.dir={}",
                std::env::current_dir()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
            let _ = writeln!(out, "corral.cores={}", shard.cores);
        }
        "wchs" => {
            let t = totals(shard);
            let _ = writeln!(
                out,
                "{} connections watching {} paths",
                t.connections, t.watch_paths
            );
            let _ = writeln!(out, "Total watches:{}", t.watches);
        }
        "wchp" => {
            for (p, sessions) in shard.state.borrow().watches.by_path() {
                let _ = writeln!(out, "{p}");
                for s in sessions {
                    let _ = writeln!(out, "\t0x{s:x}");
                }
            }
        }
        "wchc" => {
            let mut by_session: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
            for (p, sessions) in shard.state.borrow().watches.by_path() {
                for s in sessions {
                    by_session.entry(s).or_default().push(p.clone());
                }
            }
            for (s, paths) in by_session {
                let _ = writeln!(out, "0x{s:x}");
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
        }
        "dump" => {
            let st = shard.state.borrow();
            let _ = writeln!(out, "SessionTracker dump:");
            let _ = writeln!(out, "Session with ephemerals:");
            let mut sessions = st.view.sessions_with_ephemerals();
            sessions.sort();
            let _ = writeln!(out, "ephemeral nodes dump:");
            let _ = writeln!(out, "Sessions with Ephemerals ({}):", sessions.len());
            for s in sessions {
                let _ = writeln!(out, "0x{s:x}:");
                let mut paths = st.view.ephemerals_of(s);
                paths.sort();
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
        }
        "dirs" => {
            let c = &shard.config;
            let _ = writeln!(out, "datadir_size: {}", dir_size(&c.data_dir));
            let _ = writeln!(out, "logdir_size: {}", dir_size(&c.log_dir()));
        }
        "isro" => out.push_str("rw"),
        _ => out.push_str("Unknown command\n"),
    }
    out
}
