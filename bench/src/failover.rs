//! `bench failover`: how long writes stop when an ensemble's leader
//! crashes. A three-server ensemble of each kind in turn (the other kind
//! is not running meanwhile); a few writer sessions, spread over the three
//! servers, each do setData one at a time with a short pause between; the
//! leader (`srvr` says Mode: leader) gets SIGKILL; the figure is the
//! client-side gap from the last write acknowledged before the kill to the
//! first write acknowledged after it, as bench/failover.py measures it
//! with one kazoo session. Then the killed server starts again on its data
//! directory, the bench waits until all three serve with one leader, and
//! the next run kills whichever server leads then.
//!
//! A writer that loses its connection (its server died, or dropped its
//! clients to elect) re-attaches its session on the next server of the
//! connect string after --retry-ms, as kazoo does with a short retry delay.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::report;
use crate::servers::Cluster;
use crate::session::{Identity, Session};
use crate::Common;

/// Servers per ensemble.
const ENSEMBLE_SIZE: usize = 3;

/// How long a run waits for writes to come back before it calls the
/// failover failed (failover.py's bound).
const RECOVERY_WAIT_MAX: Duration = Duration::from_secs(60);

#[derive(clap::Args, Debug, Clone)]
pub struct FailoverArgs {
    /// Leader failovers per kind, one after the other on the same ensemble.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Writer sessions; session i connects first to server i mod 3.
    #[arg(long, default_value_t = 3)]
    sessions: usize,
    /// Pause between a session's acknowledged write and its next one, ms
    /// (three sessions at 20 ms: some 100-150 writes/s in all).
    #[arg(long, default_value_t = 20)]
    pause_ms: u64,
    /// Pause after a failed write or connection attempt, ms
    /// (failover.py's 10 ms).
    #[arg(long, default_value_t = 10)]
    retry_ms: u64,
    /// Seconds of steady writes before each kill.
    #[arg(long, default_value_t = 2.0)]
    steady: f64,
    /// The session timeout the writers ask for, ms (failover.py's 10 s);
    /// a request waits for its reply 2/3 of it, a connection attempt a
    /// third of it, as ZooKeeper's clients do with three servers.
    #[arg(long, default_value_t = 10_000)]
    session_timeout_ms: i32,
    #[command(flatten)]
    pub common: Common,
}

/// One acknowledged write of one session.
#[derive(Clone, Copy, Debug)]
struct Ack {
    sent: Instant,
    acked: Instant,
}

/// What every writer thread shares with the bench.
struct Shared {
    stop: AtomicBool,
    /// Connection attempts and requests that failed, all sessions.
    failures: AtomicU64,
    /// Sessions the servers no longer knew on a re-attach (new ones were
    /// opened), all sessions.
    expired: AtomicU64,
}

struct Writer {
    acks: Arc<Mutex<Vec<Ack>>>,
    thread: std::thread::JoinHandle<()>,
}

/// One session writing `path` until `shared.stop`, starting on
/// `hosts[first]` and moving to the next host after any failure.
fn write_loop(
    args: &FailoverArgs,
    hosts: &[String],
    first: usize,
    path: &str,
    shared: &Shared,
    acks: &Mutex<Vec<Ack>>,
) {
    let connect_timeout =
        Duration::from_millis(args.session_timeout_ms.max(3) as u64 / hosts.len() as u64);
    let request_timeout = Duration::from_millis(args.session_timeout_ms.max(3) as u64 * 2 / 3);
    let mut host = first;
    let mut identity = Identity::fresh();
    let mut session: Option<Session> = None;
    let value = b"failover";
    let failed = |host: &mut usize| {
        shared.failures.fetch_add(1, Ordering::Relaxed);
        *host = (*host + 1) % hosts.len();
        std::thread::sleep(Duration::from_millis(args.retry_ms));
    };
    while !shared.stop.load(Ordering::Relaxed) {
        if session.is_none() {
            match Session::connect(
                &hosts[host],
                &identity,
                args.session_timeout_ms,
                connect_timeout,
            ) {
                Ok(Some(mut s)) => {
                    if s.set_timeouts(request_timeout).is_err() {
                        failed(&mut host);
                        continue;
                    }
                    session = Some(s);
                }
                Ok(None) => {
                    shared.expired.fetch_add(1, Ordering::Relaxed);
                    identity = Identity::fresh();
                    continue;
                }
                Err(_) => {
                    failed(&mut host);
                    continue;
                }
            }
        }
        let s = session.as_mut().expect("connected above");
        let sent = Instant::now();
        match s.set_data(path, value) {
            Ok(()) => {
                let acked = Instant::now();
                acks.lock().expect("acks lock").push(Ack { sent, acked });
                std::thread::sleep(Duration::from_millis(args.pause_ms));
            }
            Err(_) => {
                identity = s.identity.clone();
                session = None;
                failed(&mut host);
            }
        }
    }
    if let Some(s) = session {
        // Spares the ensemble a session to expire; nothing measured
        // depends on it.
        let _ = s.close();
    }
}

fn start_writers(
    args: &FailoverArgs,
    cluster: &Cluster,
    shared: &Arc<Shared>,
) -> Result<Vec<Writer>> {
    let hosts: Vec<String> = (0..cluster.size()).map(|i| cluster.addr(i)).collect();
    let mut writers = Vec::new();
    for i in 0..args.sessions {
        let acks = Arc::new(Mutex::new(Vec::new()));
        let (a, h, sh, ac) = (args.clone(), hosts.clone(), shared.clone(), acks.clone());
        let path = writer_path(i);
        let thread = std::thread::Builder::new()
            .name(format!("writer-{i}"))
            .spawn(move || write_loop(&a, &h, i % h.len(), &path, &sh, &ac))
            .context("start a writer thread")?;
        writers.push(Writer { acks, thread });
    }
    Ok(writers)
}

fn writer_path(i: usize) -> String {
    format!("/failover/w{i}")
}

/// The first acknowledgement of a write sent at or after `t`.
fn first_acked_after(acks: &[Ack], t: Instant) -> Option<Instant> {
    acks.iter().filter(|a| a.sent >= t).map(|a| a.acked).min()
}

/// What one failover's acknowledgements say, in ms; None where no write
/// came back.
#[derive(Debug, PartialEq)]
struct Gaps {
    /// The last acknowledgement before the kill (any session) to the first
    /// acknowledgement of a write sent after it (any session).
    gap_ms: Option<f64>,
    /// The kill to that first acknowledgement.
    kill_to_first_ms: Option<f64>,
    /// The kill to the moment the last session had a write acknowledged.
    every_session_ms: Option<f64>,
    /// Acknowledged writes per second from `steady_from` to the kill.
    writes_per_s: f64,
}

impl Gaps {
    /// A write sent before the kill and acknowledged after it does not
    /// count as "after": it may have been committed by the old leader
    /// just before it died, and proves nothing about the new one.
    fn of(sessions: &[Vec<Ack>], steady_from: Instant, killed_at: Instant) -> Gaps {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let last_before = sessions
            .iter()
            .flatten()
            .filter(|a| a.acked < killed_at)
            .map(|a| a.acked)
            .max();
        let firsts: Vec<Option<Instant>> = sessions
            .iter()
            .map(|acks| first_acked_after(acks, killed_at))
            .collect();
        let first = firsts.iter().flatten().min().copied();
        let every = if firsts.iter().all(Option::is_some) {
            firsts.iter().flatten().max().copied()
        } else {
            None
        };
        let steady_writes = sessions
            .iter()
            .flatten()
            .filter(|a| a.acked >= steady_from && a.acked < killed_at)
            .count();
        Gaps {
            gap_ms: last_before.zip(first).map(|(l, f)| ms(f - l)),
            kill_to_first_ms: first.map(|f| ms(f - killed_at)),
            every_session_ms: every.map(|e| ms(e - killed_at)),
            writes_per_s: steady_writes as f64
                / killed_at.duration_since(steady_from).as_secs_f64(),
        }
    }
}

/// One failover, measured.
fn one_run(args: &FailoverArgs, cluster: &mut Cluster, run: usize) -> Result<serde_json::Value> {
    let kind = cluster.kind.name();
    cluster.wait_one_leader(Duration::from_secs(120))?;
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        failures: AtomicU64::new(0),
        expired: AtomicU64::new(0),
    });
    let writers = start_writers(args, cluster, &shared)?;
    let steady_from = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(args.steady));
    // Asked again right before the kill: the leader of a moment ago may
    // have changed meanwhile.
    let outcome = (|| -> Result<(usize, Instant)> {
        let leader = cluster.wait_one_leader(Duration::from_secs(10))?;
        let killed_at = Instant::now();
        cluster.kill(leader)?;
        Ok((leader, killed_at))
    })();
    let (leader, killed_at) = match outcome {
        Ok(ok) => ok,
        Err(e) => {
            shared.stop.store(true, Ordering::Relaxed);
            for w in writers {
                let _ = w.thread.join();
            }
            return Err(e);
        }
    };
    // Every session writing again, or the bound.
    while Instant::now() < killed_at + RECOVERY_WAIT_MAX {
        let back = writers
            .iter()
            .all(|w| first_acked_after(&w.acks.lock().expect("acks lock"), killed_at).is_some());
        if back {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    shared.stop.store(true, Ordering::Relaxed);
    let mut sessions = Vec::new();
    for w in writers {
        if w.thread.join().is_err() {
            bail!("a writer thread panicked");
        }
        sessions.push(w.acks.lock().expect("acks lock").clone());
    }
    let Gaps {
        gap_ms,
        kill_to_first_ms,
        every_session_ms,
        writes_per_s,
    } = Gaps::of(&sessions, steady_from, killed_at);
    // The killed server comes back and rejoins before the next run.
    let t_restart = Instant::now();
    cluster.respawn(leader)?;
    cluster.wait_member_serving(leader, Duration::from_secs(120))?;
    let rejoin_s = t_restart.elapsed().as_secs_f64();
    let new_leader = cluster.wait_one_leader(Duration::from_secs(120))?;
    match gap_ms {
        Some(g) => eprintln!(
            "{kind} x3, run {run}: killed server {} (leader); writes stopped for {g:.0} ms \
             (kill to first write {:.0} ms, every session writing after {}), {writes_per_s:.0} writes/s before; \
             server {} leads; the killed one serves again after {rejoin_s:.1} s",
            leader + 1,
            kill_to_first_ms.unwrap_or(f64::NAN),
            every_session_ms.map_or("—".to_string(), |m| format!("{m:.0} ms")),
            new_leader + 1
        ),
        None => eprintln!(
            "{kind} x3, run {run}: killed server {} (leader); no write acknowledged within {RECOVERY_WAIT_MAX:?}",
            leader + 1
        ),
    }
    Ok(serde_json::json!({
        "run": run,
        "killed": leader + 1,
        "new_leader": new_leader + 1,
        "gap_ms": gap_ms,
        "kill_to_first_ms": kill_to_first_ms,
        "every_session_ms": every_session_ms,
        "writes_per_s_before": writes_per_s,
        "failures": shared.failures.load(Ordering::Relaxed),
        "expired_sessions": shared.expired.load(Ordering::Relaxed),
        "rejoin_s": rejoin_s,
    }))
}

/// Creates /failover and each writer's node.
fn create_nodes(args: &FailoverArgs, cluster: &Cluster) -> Result<()> {
    let mut s = Session::connect(
        &cluster.addr(0),
        &Identity::fresh(),
        args.session_timeout_ms,
        Duration::from_secs(10),
    )?
    .context("session refused")?;
    s.ensure("/failover")?;
    for i in 0..args.sessions {
        s.ensure(&writer_path(i))?;
    }
    s.close()
}

pub fn run(mut args: FailoverArgs) -> Result<()> {
    args.common.check()?;
    if args.runs == 0 || args.sessions == 0 {
        bail!("--runs and --sessions must be positive");
    }
    let name = args.common.name_or("-failover");
    args.common.name = Some(name.clone());
    let opts = args.common.options(ENSEMBLE_SIZE, "1g");
    let loadavg_before = report::loadavg();
    let work = args.common.work_dir()?;
    let mut rows = Vec::new();
    let mut peaks = Vec::new();
    // One ensemble at a time, as bench/ensemble.sh: six servers on two
    // vCPUs would slow each other's elections.
    for &kind in &args.common.servers {
        eprintln!("starting {} x{ENSEMBLE_SIZE}", kind.name());
        let mut cluster = Cluster::start(kind, ENSEMBLE_SIZE, &opts, work.path())?;
        create_nodes(&args, &cluster)?;
        let mut runs = Vec::new();
        for run in 1..=args.runs {
            runs.push(one_run(&args, &mut cluster, run)?);
        }
        peaks.push((
            kind.name().to_string(),
            report::peak_rss_mib(&cluster.pids()),
        ));
        rows.push(serde_json::json!({ "server": kind.name(), "runs": runs }));
    }
    drop(work);
    let mut a = args.common.json();
    if let Some(o) = a.as_object_mut() {
        o.extend([
            ("runs".to_string(), args.runs.into()),
            ("sessions".to_string(), args.sessions.into()),
            ("pause_ms".to_string(), args.pause_ms.into()),
            ("retry_ms".to_string(), args.retry_ms.into()),
            ("steady_s".to_string(), args.steady.into()),
            (
                "session_timeout_ms".to_string(),
                args.session_timeout_ms.into(),
            ),
            ("zk_heap".to_string(), opts.zk_heap.clone().into()),
            ("corral_cores".to_string(), opts.corral_cores.into()),
        ]);
    }
    let results = serde_json::json!({
        "bench": "failover",
        "meta": report::meta(&a, &loadavg_before, &peaks),
        "rows": rows,
    });
    report::save(&args.common.out_dir, &name, &results, page)
}

/// A run's figure, None for a run without a write after the kill.
fn values(row: &serde_json::Value, key: &str) -> Vec<Option<f64>> {
    row["runs"]
        .as_array()
        .map(|runs| runs.iter().map(|r| r[key].as_f64()).collect())
        .unwrap_or_default()
}

fn median_of(v: &[Option<f64>]) -> Option<f64> {
    let got: Vec<f64> = v.iter().flatten().copied().collect();
    report::median(&got)
}

/// The page, from the results JSON alone.
pub fn page(_dir: &Path, name: &str, results: &serde_json::Value) -> Result<String> {
    let meta = &results["meta"];
    let a = &meta["args"];
    let rows = results["rows"].as_array().cloned().unwrap_or_default();
    let mut md = report::preamble(
        "Leader failover, three-server ensembles of corral and Apache ZooKeeper 3.8",
        meta,
    );
    let _ = writeln!(
        md,
        "## What was measured\n\n\
         - Each kind as a three-server ensemble on 127.0.0.1, one kind at a time (the \
         other is not running), from the same zoo.cfg text: tickTime={}, initLimit=10, \
         syncLimit=5, forceSync=yes. ZooKeeper: `java -Xms{h} -Xmx{h} -cp ... \
         QuorumPeerMain zoo.cfg` per server; corral: `corral server --zoo-cfg zoo.cfg`{}.\n\
         - {} writer sessions, session i connected first to server i mod 3, each doing \
         setData of its own node one at a time with {} ms between an acknowledgement \
         and the next write. After a failed write or connection attempt a session \
         waits {} ms and re-attaches (same session id) on the next server. Session \
         timeout {} ms.\n\
         - After {} s of steady writes the leader (`srvr`: Mode: leader) gets SIGKILL. \
         **Writes stopped** is the time from the last write acknowledged before the \
         kill (any session) to the first acknowledged write sent after it (any \
         session), bench/failover.py's figure; *kill to first write* starts at the \
         kill instead; *every session* is when the last of the sessions had a write \
         acknowledged again. Election, the new leader's sync with its followers and \
         the clients' reconnects are all inside these figures.\n\
         - The killed server then starts again on its data directory; the next run \
         starts once all three serve with one leader, and kills whichever leads then.\n",
        a["tick_time_ms"],
        match a["corral_cores"].as_u64() {
            Some(c) if c > 0 => format!(" `--cores {c}`"),
            _ => " (every core)".to_string(),
        },
        a["sessions"],
        a["pause_ms"],
        a["retry_ms"],
        a["session_timeout_ms"],
        a["steady_s"],
        h = a["zk_heap"].as_str().unwrap_or("?"),
    );
    let _ = writeln!(
        md,
        "## Results\n\n| ensemble | run | server killed | writes stopped ms | kill to first write ms | every session ms | writes/s before | killed server serving again s |\n\
         |---|---|---|---|---|---|---|---|"
    );
    let opt = |v: &serde_json::Value| {
        v.as_f64()
            .map_or("no write within 60 s".to_string(), |x| format!("{x:.0}"))
    };
    for row in &rows {
        let server = row["server"].as_str().unwrap_or("?");
        for r in row["runs"].as_array().into_iter().flatten() {
            let _ = writeln!(
                md,
                "| {server} x3 | {} | {} | {} | {} | {} | {:.0} | {:.1} |",
                r["run"],
                r["killed"],
                opt(&r["gap_ms"]),
                opt(&r["kill_to_first_ms"]),
                opt(&r["every_session_ms"]),
                r["writes_per_s_before"].as_f64().unwrap_or(f64::NAN),
                r["rejoin_s"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    let find = |k: &str| rows.iter().find(|r| r["server"].as_str() == Some(k));
    let _ = writeln!(
        md,
        "\n| median | ZooKeeper | corral | corral / ZooKeeper |\n|---|---|---|---|"
    );
    for (label, key) in [
        ("writes stopped", "gap_ms"),
        ("kill to first write", "kill_to_first_ms"),
        ("every session writing", "every_session_ms"),
    ] {
        let m = |k: &str| find(k).and_then(|r| median_of(&values(r, key)));
        let cell = |v: Option<f64>| v.map_or("—".to_string(), |x| format!("{x:.0} ms"));
        let (z, c) = (m("zookeeper"), m("corral"));
        let ratio = match (z, c) {
            (Some(z), Some(c)) => format!("{:.2}", report::ratio(c, z)),
            _ => "—".to_string(),
        };
        let _ = writeln!(md, "| {label} | {} | {} | {ratio} |", cell(z), cell(c));
    }
    let _ = writeln!(
        md,
        "\nBelow 1 in the last column means corral's writes came back sooner. Runs \
         without a write within 60 s are left out of the medians.\n\n\
         Raw results: [{name}.json]({name}.json); `cargo run -p bench --release -- report \
         docs/benchmarks/{name}.json` redraws this page from them."
    );
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::{Ack, Gaps};
    use std::time::{Duration, Instant};

    #[test]
    fn gaps_count_only_writes_sent_after_the_kill() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let ack = |sent: u64, acked: u64| Ack {
            sent: at(sent),
            acked: at(acked),
        };
        let killed_at = at(1000);
        let sessions = vec![
            // Sent before the kill, acknowledged after it: not "after".
            vec![ack(980, 990), ack(995, 1010), ack(1200, 1300)],
            vec![ack(900, 950), ack(1100, 1250)],
        ];
        let g = Gaps::of(&sessions, at(0), killed_at);
        assert_eq!(g.gap_ms, Some(260.0));
        assert_eq!(g.kill_to_first_ms, Some(250.0));
        assert_eq!(g.every_session_ms, Some(300.0));
        assert_eq!(g.writes_per_s, 2.0);
    }

    #[test]
    fn a_session_that_never_writes_again_has_no_every_session_figure() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let sessions = vec![
            vec![Ack {
                sent: at(10),
                acked: at(20),
            }],
            vec![Ack {
                sent: at(1500),
                acked: at(1600),
            }],
        ];
        let g = Gaps::of(&sessions, at(0), at(1000));
        assert_eq!(g.gap_ms, Some(1580.0));
        assert_eq!(g.every_session_ms, None);
    }
}
