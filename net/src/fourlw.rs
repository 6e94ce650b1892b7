//! Four-letter words on the client port (ZooKeeper's `FourLetterCommands`).
//! Each answers from the core that accepted the connection: tree-wide
//! figures come from its view (the whole tree), counters are summed over
//! every core, connections and watch lists are its own. The figures come
//! from `stats`, shared with the admin server; this module only renders
//! them as ZooKeeper's text.

use std::fmt::Write as _;

use crate::server::Shard;
use crate::stats;

pub use crate::stats::VERSION;

fn srvr(shard: &Shard, out: &mut String) {
    shard.publish_slow_stats();
    let t = stats::totals(&shard.stats);
    let l = stats::latency(&shard.stats);
    let tree = stats::tree_figures(&shard.state.borrow().view);
    let _ = writeln!(out, "Zookeeper version: {VERSION}, built on corral");
    let _ = writeln!(
        out,
        "Latency min/avg/max: {}/{:.4}/{}",
        l.min_ms, l.avg_ms, l.max_ms
    );
    let _ = writeln!(out, "Received: {}", t.received);
    let _ = writeln!(out, "Sent: {}", t.sent);
    let _ = writeln!(out, "Connections: {}", t.connections);
    let _ = writeln!(out, "Outstanding: {}", t.outstanding);
    let _ = writeln!(out, "Zxid: 0x{:x}", tree.last_zxid);
    let _ = writeln!(out, "Mode: standalone");
    let _ = writeln!(out, "Node count: {}", tree.node_count);
}

fn cons(shard: &Shard, out: &mut String) {
    for c in stats::connections(shard) {
        let _ = writeln!(
            out,
            " /{}[1](queued={},recved={},sent={},sid=0x{:x},lzxid=0x{:x},to={},est={}ms)",
            c.peer, c.queued, c.received, c.sent, c.session, c.last_zxid, c.timeout_ms, c.age_ms
        );
    }
    out.push('\n');
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
            stats::reset_connection_stats(shard);
            out.push_str("Connection stats reset.\n");
        }
        "srst" => {
            // Latency is summed over every core, so it is reset on every
            // core; the received count only here (the admin server's
            // stat_reset asks every core).
            for c in shard.stats.iter() {
                c.metrics.reset_latency();
            }
            stats::reset_server_stats(shard);
            out.push_str("Server stats reset.\n");
        }
        "mntr" => {
            shard.publish_slow_stats();
            let t = stats::totals(&shard.stats);
            let l = stats::latency(&shard.stats);
            let tree = stats::tree_figures(&shard.state.borrow().view);
            let lines: Vec<(&str, String)> = vec![
                ("zk_version", VERSION.to_string()),
                ("zk_server_state", "standalone".into()),
                ("zk_avg_latency", format!("{:.4}", l.avg_ms)),
                ("zk_max_latency", l.max_ms.to_string()),
                ("zk_min_latency", l.min_ms.to_string()),
                ("zk_packets_received", t.received.to_string()),
                ("zk_packets_sent", t.sent.to_string()),
                ("zk_num_alive_connections", t.connections.to_string()),
                ("zk_outstanding_requests", t.outstanding.to_string()),
                ("zk_znode_count", tree.node_count.to_string()),
                ("zk_watch_count", t.watches.to_string()),
                ("zk_ephemerals_count", tree.ephemerals_count.to_string()),
                (
                    "zk_approximate_data_size",
                    tree.approximate_data_size.to_string(),
                ),
                ("zk_last_zxid", format!("0x{:x}", tree.last_zxid)),
                ("corral_core", shard.core.to_string()),
                ("corral_cores", shard.cores.to_string()),
            ];
            for (k, v) in lines {
                let _ = writeln!(out, "{k}\t{v}");
            }
        }
        "conf" => {
            let c = stats::conf(&shard.config);
            let _ = writeln!(out, "clientPort={}", c.client_port);
            let _ = writeln!(out, "clientPortAddress={}", c.client_port_address);
            let _ = writeln!(out, "dataDir={}", c.data_dir);
            let _ = writeln!(out, "dataLogDir={}", c.data_log_dir);
            let _ = writeln!(out, "tickTime={}", c.tick_time_ms);
            let _ = writeln!(out, "maxClientCnxns={}", c.max_client_cnxns);
            let _ = writeln!(out, "minSessionTimeout={}", c.min_session_timeout_ms);
            let _ = writeln!(out, "maxSessionTimeout={}", c.max_session_timeout_ms);
            let _ = writeln!(out, "serverId={}", c.server_id);
        }
        "envi" => {
            let _ = writeln!(out, "Environment:");
            for (k, v) in stats::environment(shard.cores) {
                let _ = writeln!(out, "{k}={v}");
            }
        }
        "wchs" => {
            shard.publish_slow_stats();
            let t = stats::totals(&shard.stats);
            let _ = writeln!(
                out,
                "{} connections watching {} paths",
                t.connections, t.watch_paths
            );
            let _ = writeln!(out, "Total watches:{}", t.watches);
        }
        "wchp" => {
            for (p, sessions) in stats::watches_by_path(shard) {
                let _ = writeln!(out, "{p}");
                for s in sessions {
                    let _ = writeln!(out, "\t0x{s:x}");
                }
            }
        }
        "wchc" => {
            let by_path = stats::watches_by_path(shard);
            for (s, paths) in stats::watches_by_session(&by_path) {
                let _ = writeln!(out, "0x{s:x}");
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
        }
        "dump" => {
            let d = stats::dump(shard);
            let _ = writeln!(out, "SessionTracker dump:");
            let _ = writeln!(out, "Session with ephemerals:");
            let _ = writeln!(out, "ephemeral nodes dump:");
            let _ = writeln!(out, "Sessions with Ephemerals ({}):", d.ephemerals.len());
            for (s, paths) in d.ephemerals {
                let _ = writeln!(out, "0x{s:x}:");
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
        }
        "dirs" => {
            let d = stats::dirs(&shard.config);
            let _ = writeln!(out, "datadir_size: {}", d.datadir_size);
            let _ = writeln!(out, "logdir_size: {}", d.logdir_size);
        }
        "isro" => out.push_str("rw"),
        _ => out.push_str("Unknown command\n"),
    }
    out
}
