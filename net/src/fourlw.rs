//! Four-letter words on the client port (ZooKeeper's `FourLetterCommands`).
//! Each answers from the core that accepted the connection: tree-wide
//! figures come from its view (the whole tree), counters are summed over
//! every core, and the connection and watch listings (`stat`, `cons`,
//! `wchs`, `wchc`, `wchp`) and the resets (`crst`, `srst`) ask every core
//! through the admin server's per-core inboxes (`admin::gather_from_core`),
//! so they cover the whole server as ZooKeeper's do. The figures come from
//! `stats`, shared with the admin server; this module only renders them as
//! ZooKeeper's text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use engine::types::SessionId;

use crate::admin::{self, Ask};
use crate::replica::{self, HandoverKind};
use crate::server::Shard;
use crate::stats::{self, ConnectionInfo};

pub use crate::stats::VERSION;

/// Answered when a core does not answer within `admin::GATHER_TIMEOUT`.
const CORES_SILENT: &str = "Not every core answered in time; try again.\n";

async fn connections(shard: &Shard) -> Option<Vec<ConnectionInfo>> {
    admin::gather_from_core(&shard.stats, Ask::Connections)
        .await
        .map(admin::connections_of)
}

async fn watches(shard: &Shard) -> Option<BTreeMap<String, Vec<SessionId>>> {
    admin::gather_from_core(&shard.stats, Ask::Watches)
        .await
        .map(admin::watches_of)
}

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
    let _ = writeln!(out, "Mode: {}", crate::replica::server_state());
    let _ = writeln!(out, "Node count: {}", tree.node_count);
}

/// One connection as ZooKeeper's `ServerCnxn.dumpConnectionInfo` prints
/// it: ` /<peer>[<interest ops>](queued=..,recved=..,sent=..` and, unless
/// `brief` (stat) or without a session (a four-letter word's own
/// connection: `[0](queued=0,recved=1,sent=0)` as on ZooKeeper), the
/// session's figures. corral does not track a connection's last operation,
/// cxid, response time or latency: those show ZooKeeper's values for "none
/// yet" (`lop=NA`, no `lcxid`, zeros), as in the admin server's JSON.
fn connection(out: &mut String, c: &ConnectionInfo, brief: bool) {
    let interest = if c.session == 0 { 0 } else { 1 };
    let _ = write!(
        out,
        " /{}[{interest}](queued={},recved={},sent={}",
        c.peer, c.queued, c.received, c.sent
    );
    if !brief && c.session != 0 {
        let _ = write!(
            out,
            ",sid=0x{:x},lop=NA,est={},to={},lzxid=0x{:x},lresp=0,llat=0,minlat=0,avglat=0,maxlat=0",
            c.session, c.established_ms, c.timeout_ms, c.last_zxid
        );
    }
    out.push_str(")\n");
}

/// Every connection, then a blank line (ZooKeeper's `cons`, and the
/// `Clients:` block of `stat` with `brief`).
fn connection_list(out: &mut String, conns: &[ConnectionInfo], brief: bool) {
    for c in conns {
        connection(out, c, brief);
    }
    out.push('\n');
}

/// Runs a four-letter word and returns its text.
pub async fn run(shard: &Shard, word: &str) -> String {
    if !shard.config.four_letter_word_allowed(word) {
        return format!("{word} is not executed because it is not in the whitelist.\n");
    }
    let mut out = String::new();
    // As ZooKeeper: without a leader, only these answer.
    if crate::replica::server_state() == "looking"
        && !matches!(word, "ruok" | "conf" | "envi" | "isro" | "dirs")
    {
        return "This ZooKeeper instance is not currently serving requests\n".into();
    }
    match word {
        "ruok" => out.push_str("imok"),
        "srvr" => srvr(shard, &mut out),
        "stat" => {
            srvr(shard, &mut out);
            let Some(conns) = connections(shard).await else {
                return CORES_SILENT.into();
            };
            let mut clients = String::new();
            connection_list(&mut clients, &conns, true);
            out = out.replacen("Latency", &format!("Clients:\n{clients}Latency"), 1);
        }
        "cons" => {
            let Some(conns) = connections(shard).await else {
                return CORES_SILENT.into();
            };
            connection_list(&mut out, &conns, false);
        }
        "crst" | "srst" => {
            // Every core's connections (crst), and every core's received
            // count and latency figures (srst), as the admin server's
            // connection_stat_reset and stat_reset.
            let (ask, text) = if word == "crst" {
                (Ask::ResetConnectionStats, "Connection stats reset.\n")
            } else {
                (Ask::ResetServerStats, "Server stats reset.\n")
            };
            if admin::gather_from_core(&shard.stats, ask).await.is_none() {
                return CORES_SILENT.into();
            }
            out.push_str(text);
        }
        "mntr" => {
            shard.publish_slow_stats();
            let t = stats::totals(&shard.stats);
            let l = stats::latency(&shard.stats);
            let tree = stats::tree_figures(&shard.state.borrow().view);
            let lines: Vec<(&str, String)> = vec![
                ("zk_version", VERSION.to_string()),
                ("zk_server_state", crate::replica::server_state().into()),
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
            // As ZooKeeper: only a leader reports its learners.
            for (k, v) in crate::replica::leader_figures().into_iter().flatten() {
                let _ = writeln!(out, "zk_{k}\t{v}");
            }
            // ZooKeeper's election_time summary, in ms, in its form: the
            // average as a double, the rest as integers.
            let h = crate::metrics::SERVER.election_ms.snapshot();
            let n = h.count();
            let (min, max) = if n == 0 { (0, 0) } else { (h.min, h.max) };
            let avg = if n == 0 { 0.0 } else { h.sum as f64 / n as f64 };
            let avg = if avg.fract() == 0.0 {
                format!("{avg:.1}")
            } else {
                format!("{avg}")
            };
            let _ = writeln!(out, "zk_avg_election_time\t{avg}");
            let _ = writeln!(out, "zk_min_election_time\t{min}");
            let _ = writeln!(out, "zk_max_election_time\t{max}");
            let _ = writeln!(out, "zk_cnt_election_time\t{n}");
            let _ = writeln!(out, "zk_sum_election_time\t{}", h.sum);
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
        // Matches ZooKeeper: the data watches only (its `dataWatches`
        // table; mntr's zk_watch_count counts child watches too), over
        // every core; wchc and wchp end with a blank line.
        "wchs" => {
            let Some(by_path) = watches(shard).await else {
                return CORES_SILENT.into();
            };
            let w = stats::watch_summary(&by_path);
            let _ = writeln!(
                out,
                "{} connections watching {} paths",
                w.connections, w.paths
            );
            let _ = writeln!(out, "Total watches:{}", w.watches);
        }
        "wchp" => {
            let Some(by_path) = watches(shard).await else {
                return CORES_SILENT.into();
            };
            for (p, sessions) in by_path {
                let _ = writeln!(out, "{p}");
                for s in sessions {
                    let _ = writeln!(out, "\t0x{s:x}");
                }
            }
            out.push('\n');
        }
        "wchc" => {
            let Some(by_path) = watches(shard).await else {
                return CORES_SILENT.into();
            };
            for (s, paths) in stats::watches_by_session(&by_path) {
                let _ = writeln!(out, "0x{s:x}");
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
            out.push('\n');
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
        "isro" => out.push_str(if crate::replica::server_state() == "read-only" {
            "ro"
        } else {
            "rw"
        }),
        // ClickHouse Keeper's: start a snapshot now; the log's extent.
        "csnp" => match admin::ask_core_zero(&shard.stats, Ask::Snapshot).await {
            Some(admin::Answer::Snapshot(Ok(zxid))) => {
                let _ = writeln!(
                    out,
                    "Snapshot creation scheduled with last committed log index {zxid} (zxid 0x{zxid:x})."
                );
            }
            Some(admin::Answer::Snapshot(Err(why))) => {
                let _ = writeln!(out, "Failed to schedule snapshot creation task: {why}.");
            }
            _ => return CORES_SILENT.into(),
        },
        "lgif" => match admin::ask_core_zero(&shard.stats, Ask::LogInfo).await {
            Some(admin::Answer::LogInfo(info)) => {
                for (k, v) in admin::log_info_fields(&info) {
                    let _ = writeln!(out, "{k}\t{v}");
                }
            }
            _ => return CORES_SILENT.into(),
        },
        // ClickHouse Keeper's: hand leadership over (on the leader), or ask
        // for it (on a follower). ClickHouse answers at once that the
        // request was sent; we wait (bounded) and say how it ended.
        "ydld" | "rqld" => {
            let kind = if word == "ydld" {
                HandoverKind::Yield
            } else {
                HandoverKind::Request
            };
            out = handover(shard, kind).await;
            out.push('\n');
        }
        _ => out.push_str("Unknown command\n"),
    }
    out
}

/// Starts a handover on core 0 and waits (at most
/// `replica::HANDOVER_REPORT_WAIT`) to tell how it ended, in one line.
async fn handover(shard: &Shard, kind: HandoverKind) -> String {
    let asked = match admin::ask_core_zero(&shard.stats, Ask::Handover(kind)).await {
        Some(admin::Answer::Handover(Ok(asked))) => asked,
        Some(admin::Answer::Handover(Err(why))) => {
            return replica::handover_refused_text(kind, why);
        }
        _ => return CORES_SILENT.trim_end().into(),
    };
    let me = shard.config.my_id.unwrap_or(0);
    let started = Instant::now();
    loop {
        if let Some((_, text)) = replica::handover_outcome(kind, me, asked, started) {
            return text;
        }
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}
