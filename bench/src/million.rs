//! `bench million`: what a large tree costs each server. For each kind in
//! turn (one at a time, so neither competes with the other), a standalone
//! server is started empty, loaded with --znodes znodes of --value-size
//! bytes by corral-loadgen (its `--keys` set-up, pipelined on one session),
//! then measured: resident memory (VmRSS) against the same server empty,
//! bytes on disk of its data directory, and --restarts times "restart to
//! serving": SIGKILL, start again on the same data directory, and the wall
//! time from the spawn until a fresh session's getData of a key created by
//! the load returns its value. A `ruok` or `srvr` answer is not enough:
//! ZooKeeper answers four-letter words while it is still loading its
//! database, and only a real read proves the tree is back.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use std::fmt::Write as _;

use crate::report::{self, Rss};
use crate::servers::{self, Cluster, Kind};
use crate::session::{Identity, Session};
use crate::Common;

#[derive(clap::Args, Debug, Clone)]
pub struct MillionArgs {
    /// Znodes to create (loadgen's keys, /loadgen/k00000000 on).
    #[arg(long, default_value_t = 1_000_000)]
    znodes: usize,
    /// Bytes of data per znode.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Restarts measured per server, each after a SIGKILL.
    #[arg(long, default_value_t = 3)]
    restarts: usize,
    /// Seconds to wait before each memory and disk reading, so that work a
    /// server does in the background (a snapshot after the load, a
    /// collection) has settled.
    #[arg(long, default_value_t = 5.0)]
    settle: f64,
    /// The longest a restarted server may take to serve, seconds.
    #[arg(long, default_value_t = 600.0)]
    restart_timeout: f64,
    /// corral only: writes per second offered (open loop, setData of the
    /// loaded keys) in two runs, one quiet and one during which `csnp`
    /// keeps a snapshot of the whole tree being written; 0 skips them.
    /// ZooKeeper has no way to ask for a snapshot.
    #[arg(long, default_value_t = 5000.0)]
    snapshot_rate: f64,
    /// Measured seconds of each of those two runs.
    #[arg(long, default_value_t = 15.0)]
    snapshot_duration: f64,
    #[command(flatten)]
    pub common: Common,
}

/// The data directory's files, the servers' own state only: what the
/// bench puts there (zoo.cfg, myid, the server's output) is left out.
#[derive(Clone, Copy, Debug, Default)]
struct Disk {
    /// st_blocks x 512: what the files occupy. ZooKeeper's log files are
    /// sparse (it extends them by writing one byte 64 MiB ahead), so this
    /// is the fair figure.
    allocated: u64,
    /// The files' lengths.
    apparent: u64,
    files: u64,
}

impl Disk {
    fn of(dir: &Path) -> Result<Disk> {
        use std::os::unix::fs::MetadataExt;
        let mut d = Disk::default();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(p) = todo.pop() {
            for e in std::fs::read_dir(&p).with_context(|| format!("read {}", p.display()))? {
                // The server runs meanwhile and may delete a file (an old
                // snapshot or log) between the listing and its metadata:
                // it no longer occupies the disk then.
                let Ok((e, m)) = e.and_then(|e| e.metadata().map(|m| (e, m))) else {
                    continue;
                };
                if m.is_dir() {
                    todo.push(e.path());
                    continue;
                }
                let name = e.file_name();
                if p == dir && matches!(name.to_str(), Some("zoo.cfg" | "myid" | "server.log")) {
                    continue;
                }
                d.allocated += m.blocks() * 512;
                d.apparent += m.len();
                d.files += 1;
            }
        }
        Ok(d)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "allocated_bytes": self.allocated, "apparent_bytes": self.apparent, "files": self.files,
        })
    }
}

/// The key loadgen creates as its `i`th: the same format as its `key()`
/// under its default root.
fn loadgen_key(i: usize) -> String {
    format!("/loadgen/k{i:08}")
}

/// How long a read's session handshake may take at first. A server that
/// has not started its network threads can still have the kernel accept a
/// connection into the listen backlog, and ZooKeeper never answers the
/// handshake of such a connection: a probe that waited seconds for it
/// would add those seconds to the restart. A server that does answer,
/// refusing ("not running") or accepting, does so within milliseconds.
const HANDSHAKE_WAIT_FIRST: Duration = Duration::from_millis(100);
/// Each handshake that times out doubles the next one's wait, up to this,
/// so that a server slow to create sessions is still measured.
const HANDSHAKE_WAIT_MAX: Duration = Duration::from_secs(5);
/// How long a getData may take once the session is open.
const READ_WAIT_MAX: Duration = Duration::from_secs(30);

/// One read through a fresh session: connect, getData, close.
fn read_once(addr: &str, path: &str, handshake_wait: Duration) -> Result<bytes::Bytes> {
    let mut s = Session::connect(addr, &Identity::fresh(), 10_000, handshake_wait)?
        .context("session refused")?;
    s.set_timeouts(READ_WAIT_MAX)?;
    let data = s.get_data(path)?;
    // The close only spares the server a session to expire; its outcome
    // changes nothing measured.
    let _ = s.close();
    Ok(data)
}

/// True if `e` is a socket timeout (a read or connect that got no answer).
fn timed_out(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>().is_some_and(|e| {
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    })
}

/// Tries `read_once` every 5 ms from now on until it returns `value_size`
/// bytes; returns the tries it took. A wrong value is an error: the server
/// lost or changed data across the crash.
fn wait_readable(
    cluster: &mut Cluster,
    path: &str,
    value_size: usize,
    timeout: Duration,
) -> Result<u64> {
    let deadline = Instant::now() + timeout;
    let mut tries = 0;
    let mut handshake_wait = HANDSHAKE_WAIT_FIRST;
    loop {
        tries += 1;
        match read_once(&cluster.addr(0), path, handshake_wait) {
            Ok(data) if data.len() == value_size => return Ok(tries),
            Ok(data) => bail!(
                "{} serves {path} with {} bytes after the restart, not {value_size}",
                cluster.kind.name(),
                data.len()
            ),
            Err(e) if timed_out(&e) => {
                handshake_wait = (handshake_wait * 2).min(HANDSHAKE_WAIT_MAX);
            }
            Err(_) => handshake_wait = HANDSHAKE_WAIT_FIRST,
        }
        cluster.check_running(0)?;
        if Instant::now() > deadline {
            bail!(
                "{} does not serve {path} {timeout:?} after its start:\n{}",
                cluster.kind.name(),
                cluster.log_tail(0)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn settle(args: &MillionArgs) {
    std::thread::sleep(Duration::from_secs_f64(args.settle));
}

/// Everything measured on one kind of server.
fn measure(args: &MillionArgs, cluster: &mut Cluster, work: &Path) -> Result<serde_json::Value> {
    let kind = cluster.kind.name();
    settle(args);
    let rss_empty = Rss::of(cluster.pid(0));
    eprintln!(
        "{kind}: empty, RSS {} MiB; creating {} znodes of {} B",
        rss_empty.total_kib / 1024,
        args.znodes,
        args.value_size
    );
    // loadgen creates its --keys before any run (pipelined on one
    // session); the one-second read run afterwards is only its way to
    // exit, with one session so that it leaves little behind.
    let t_load = Instant::now();
    let out = Command::new(&args.common.loadgen_bin)
        .arg("--connect")
        .arg(cluster.addr(0))
        .args(["--keys", &args.znodes.to_string()])
        .args(["--value-size", &args.value_size.to_string()])
        .args(["--clients", "1", "--inflight", "1"])
        .args(["--duration", "1", "--warmup", "0"])
        .arg("--json")
        .arg(work.join("load.json"))
        .arg("read")
        .output()
        .with_context(|| format!("run {}", args.common.loadgen_bin.display()))?;
    if !out.status.success() {
        bail!(
            "loading {kind} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let load_s = t_load.elapsed().as_secs_f64();
    let probe = loadgen_key(args.znodes - 1);
    let data = read_once(&cluster.addr(0), &probe, HANDSHAKE_WAIT_MAX)?;
    if data.len() != args.value_size {
        bail!("{kind}: {probe} has {} bytes after the load", data.len());
    }
    settle(args);
    let rss_loaded = Rss::of(cluster.pid(0));
    let disk_loaded = Disk::of(cluster.dir(0))?;
    eprintln!(
        "{kind}: loaded in {load_s:.1} s, RSS {} MiB, {} MiB on disk",
        rss_loaded.total_kib / 1024,
        disk_loaded.allocated >> 20
    );
    let mut restarts = Vec::new();
    for r in 1..=args.restarts {
        cluster.kill(0)?;
        let t0 = Instant::now();
        cluster.respawn(0)?;
        let tries = wait_readable(
            cluster,
            &probe,
            args.value_size,
            Duration::from_secs_f64(args.restart_timeout),
        )?;
        let serving_s = t0.elapsed().as_secs_f64();
        let rss_serving = Rss::of(cluster.pid(0));
        settle(args);
        let rss_settled = Rss::of(cluster.pid(0));
        eprintln!(
            "{kind}: restart {r}: serving after {serving_s:.2} s ({tries} tries), RSS {} MiB, {} MiB settled",
            rss_serving.total_kib / 1024,
            rss_settled.total_kib / 1024
        );
        restarts.push(serde_json::json!({
            "serving_s": serving_s, "tries": tries,
            "rss_serving": rss_serving.json(), "rss_settled": rss_settled.json(),
        }));
    }
    let disk_after = Disk::of(cluster.dir(0))?;
    let mut snapshot_latency = serde_json::Value::Null;
    if cluster.kind == Kind::Corral && args.snapshot_rate > 0.0 {
        let quiet = write_latency(args, cluster, work, false)?;
        let during = write_latency(args, cluster, work, true)?;
        snapshot_latency = serde_json::json!({ "quiet": quiet, "during": during });
    }
    Ok(serde_json::json!({
        "snapshot_latency": snapshot_latency,
        "server": kind,
        "rss_empty": rss_empty.json(),
        "rss_loaded": rss_loaded.json(),
        "load_s": load_s,
        "disk_loaded": disk_loaded.json(),
        "disk_after_restarts": disk_after.json(),
        "restarts": restarts,
    }))
}

/// One open-loop run of setData on the loaded keys at --snapshot-rate;
/// with `snapshots`, a `csnp` every 100 ms keeps one being written (corral
/// refuses the word while one is). Returns loadgen's latency figures and
/// how many snapshots were started.
fn write_latency(
    args: &MillionArgs,
    cluster: &Cluster,
    work: &Path,
    snapshots: bool,
) -> Result<serde_json::Value> {
    let what = if snapshots {
        "during snapshots"
    } else {
        "quiet"
    };
    let json = work.join("snapshot-latency.json");
    let mut child = Command::new(&args.common.loadgen_bin)
        .arg("--connect")
        .arg(cluster.addr(0))
        .args(["--keys", &args.znodes.to_string(), "--keys-exist"])
        .args(["--value-size", &args.value_size.to_string()])
        .args(["--clients", "8", "--inflight", "16"])
        .args(["--rate", &args.snapshot_rate.to_string()])
        .args(["--duration", &args.snapshot_duration.to_string()])
        .args(["--warmup", "2"])
        .arg("--json")
        .arg(&json)
        .arg("write")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", args.common.loadgen_bin.display()))?;
    let mut started = 0u64;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if snapshots {
            let answer = servers::four_letter_word(cluster.port(0), "csnp").unwrap_or_default();
            if answer.starts_with("Snapshot creation scheduled") {
                started += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        bail!("loadgen write {what} failed: {err}");
    }
    let j: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;
    let lat = &j["latency_ms"];
    eprintln!(
        "corral: writes at {} /s {what}: p99 {} ms, p99.9 {} ms, max {} ms ({started} snapshots started)",
        args.snapshot_rate, lat["p99"], lat["p999"], lat["max"]
    );
    Ok(serde_json::json!({
        "ops_per_s": j["ops_per_s"], "p50_ms": lat["p50"], "p99_ms": lat["p99"],
        "p999_ms": lat["p999"], "max_ms": lat["max"], "errors": j["errors"],
        "snapshots_started": started,
    }))
}

pub fn run(mut args: MillionArgs) -> Result<()> {
    args.common.check()?;
    if args.znodes == 0 || args.restarts == 0 {
        bail!("--znodes and --restarts must be positive");
    }
    let name = args.common.name_or("-million");
    args.common.name = Some(name.clone());
    let opts = args.common.options(1, "4g");
    let work = args.common.work_dir()?;
    let loadavg_before = report::loadavg();
    let mut rows = Vec::new();
    let mut peaks = Vec::new();
    // One kind after the other: loading a million znodes takes both cores,
    // and a server loading next to the one being measured would slow its
    // restart.
    for &kind in &args.common.servers {
        eprintln!("starting {} (standalone)", kind.name());
        let mut cluster = Cluster::start(kind, 1, &opts, work.path())?;
        rows.push(measure(&args, &mut cluster, work.path())?);
        // VmHWM of the last incarnation only: each restart is a new process.
        peaks.push((
            kind.name().to_string(),
            report::peak_rss_mib(&cluster.pids()),
        ));
        drop(cluster);
        // A million znodes' snapshots and logs are gigabytes; the next
        // kind does not need them.
        if !args.common.keep {
            let _ = std::fs::remove_dir_all(work.path().join(format!("{}1", kind.name())));
        }
    }
    drop(work);
    let mut a = args.common.json();
    if let Some(o) = a.as_object_mut() {
        o.extend([
            ("znodes".to_string(), args.znodes.into()),
            ("value_size".to_string(), args.value_size.into()),
            ("restarts".to_string(), args.restarts.into()),
            ("settle_s".to_string(), args.settle.into()),
            ("snapshot_rate".to_string(), args.snapshot_rate.into()),
            (
                "snapshot_duration_s".to_string(),
                args.snapshot_duration.into(),
            ),
            ("zk_heap".to_string(), opts.zk_heap.clone().into()),
            ("corral_cores".to_string(), opts.corral_cores.into()),
        ]);
    }
    let results = serde_json::json!({
        "bench": "million",
        "meta": report::meta(&a, &loadavg_before, &peaks),
        "rows": rows,
    });
    report::save(&args.common.out_dir, &name, &results, page)
}

/// The figures of one server, derived from its JSON row.
struct Figures {
    rss_empty_mib: f64,
    rss_loaded_mib: f64,
    rss_loaded_file_mib: f64,
    rss_per_znode: f64,
    disk_mib: f64,
    disk_per_znode: f64,
    disk_apparent_mib: f64,
    disk_after_mib: f64,
    restart_min_s: f64,
    restart_median_s: f64,
    restart_all: Vec<f64>,
    rss_restart_mib: f64,
    rss_restart_file_mib: f64,
    rss_restart_per_znode: f64,
    anon_restart_per_znode: f64,
}

fn figures(row: &serde_json::Value, znodes: f64) -> Figures {
    let bytes = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN) * 1024.0;
    let mib = |b: f64| b / (1024.0 * 1024.0);
    let (empty, empty_anon) = (
        bytes(&row["rss_empty"]["rss_kib"]),
        bytes(&row["rss_empty"]["anon_kib"]),
    );
    let loaded = bytes(&row["rss_loaded"]["rss_kib"]);
    let restarts = row["restarts"].as_array().cloned().unwrap_or_default();
    let serving: Vec<f64> = restarts
        .iter()
        .map(|r| r["serving_s"].as_f64().unwrap_or(f64::NAN))
        .collect();
    let settled = |k: &str| {
        let v: Vec<f64> = restarts
            .iter()
            .map(|r| bytes(&r["rss_settled"][k]))
            .collect();
        report::median(&v).unwrap_or(f64::NAN)
    };
    let (rss_restart, anon_restart, file_restart) =
        (settled("rss_kib"), settled("anon_kib"), settled("file_kib"));
    let disk = |k: &str| row[k]["allocated_bytes"].as_f64().unwrap_or(f64::NAN);
    Figures {
        rss_empty_mib: mib(empty),
        rss_loaded_mib: mib(loaded),
        rss_loaded_file_mib: mib(bytes(&row["rss_loaded"]["file_kib"])),
        rss_per_znode: (loaded - empty) / znodes,
        disk_mib: mib(disk("disk_loaded")),
        disk_per_znode: disk("disk_loaded") / znodes,
        disk_apparent_mib: mib(row["disk_loaded"]["apparent_bytes"]
            .as_f64()
            .unwrap_or(f64::NAN)),
        disk_after_mib: mib(disk("disk_after_restarts")),
        restart_min_s: serving.iter().copied().fold(f64::NAN, f64::min),
        restart_median_s: report::median(&serving).unwrap_or(f64::NAN),
        restart_all: serving,
        rss_restart_mib: mib(rss_restart),
        rss_restart_file_mib: mib(file_restart),
        rss_restart_per_znode: (rss_restart - empty) / znodes,
        anon_restart_per_znode: (anon_restart - empty_anon) / znodes,
    }
}

/// The page, from the results JSON alone.
pub fn page(_dir: &Path, name: &str, results: &serde_json::Value) -> Result<String> {
    let meta = &results["meta"];
    let a = &meta["args"];
    let znodes = a["znodes"].as_f64().unwrap_or(f64::NAN);
    let rows = results["rows"].as_array().cloned().unwrap_or_default();
    let mut md = report::preamble(
        &format!(
            "A large tree: {} znodes in corral and Apache ZooKeeper 3.8",
            a["znodes"]
        ),
        meta,
    );
    let _ = writeln!(
        md,
        "## What was measured\n\n\
         - One standalone server at a time, each from the same zoo.cfg text (tickTime={}, \
         forceSync=yes, no admin server). ZooKeeper: Debian's 3.8 jars, \
         `java -Xms{h} -Xmx{h} -cp ... QuorumPeerMain zoo.cfg`; corral: \
         `corral server --zoo-cfg zoo.cfg`{}.\n\
         - The server starts empty; after {} s its VmRSS is the *empty* figure. \
         corral-loadgen then creates {} znodes of {} B (`--keys {} --value-size {}`: \
         /loadgen/k00000000 on, pipelined on one session), and {} s later VmRSS \
         and the data directory's size are read. Per znode means (loaded - empty) / znodes.\n\
         - Then {} times: SIGKILL, start on the same data directory, and time from the \
         spawn until a fresh session's getData of the last key created returns its \
         {} B, tried every 5 ms (`ruok` would not do: ZooKeeper answers it while still \
         loading). A try whose handshake gets no answer within 100 ms is abandoned \
         (the next one waits twice as long): a connection the kernel accepted before \
         ZooKeeper's network threads ran is never answered, and waiting on it would \
         add seconds that no server spent. VmRSS (and its file-backed part, RssFile: \
         pages of files the server maps) is read once it serves and again {} s later.\n\
         - Disk: the blocks the data directory's files occupy (the bench's zoo.cfg and \
         server log left out). ZooKeeper's transaction logs are sparse files it extends \
         64 MiB at a time, so their lengths overstate them (the apparent size is below); \
         corral zero-fills each 64 MiB log segment and keeps the next one ready, so up \
         to 128 MiB of its figure is preallocated space, which dominates it for small \
         trees.\n\
         - ZooKeeper snapshots only every snapCount (100,000, randomised by up to half) \
         transactions, so a restart loads the last snapshot and replays the log after \
         it, which is what ZooKeeper users live with; corral likewise loads its last \
         snapshot and replays its log. Each figure is what its server does by default.\n\
         - A JVM returns little memory to the OS: ZooKeeper's RSS includes heap it \
         touched while loading, garbage or not, which is also what its users pay.\n",
        a["tick_time_ms"],
        match a["corral_cores"].as_u64() {
            Some(c) if c > 0 => format!(" `--cores {c}`"),
            _ => " (every core)".to_string(),
        },
        a["settle_s"],
        a["znodes"],
        a["value_size"],
        a["znodes"],
        a["value_size"],
        a["settle_s"],
        a["restarts"],
        a["value_size"],
        a["settle_s"],
        h = a["zk_heap"].as_str().unwrap_or("?"),
    );
    let find = |k: &str| {
        rows.iter()
            .find(|r| r["server"].as_str() == Some(k))
            .map(|r| figures(r, znodes))
    };
    let (zk, corral) = (find("zookeeper"), find("corral"));
    let _ = writeln!(
        md,
        "## Results\n\n| measure | ZooKeeper | corral | corral / ZooKeeper |\n|---|---|---|---|"
    );
    let line =
        |md: &mut String, what: &str, f: &dyn Fn(&Figures) -> f64, unit: &str, prec: usize| {
            let cell = |x: &Option<Figures>| {
                x.as_ref()
                    .map(|x| format!("{:.prec$} {unit}", f(x)))
                    .unwrap_or_else(|| "—".to_string())
            };
            let ratio = match (&zk, &corral) {
                (Some(z), Some(c)) => format!("{:.2}", report::ratio(f(c), f(z))),
                _ => "—".to_string(),
            };
            let _ = writeln!(
                md,
                "| {what} | {} | {} | {ratio} |",
                cell(&zk),
                cell(&corral)
            );
        };
    line(&mut md, "RSS, empty", &|x| x.rss_empty_mib, "MiB", 0);
    line(&mut md, "RSS, loaded", &|x| x.rss_loaded_mib, "MiB", 0);
    line(
        &mut md,
        "of which file-backed (RssFile), loaded",
        &|x| x.rss_loaded_file_mib,
        "MiB",
        0,
    );
    line(
        &mut md,
        "RSS per znode, loaded",
        &|x| x.rss_per_znode,
        "B",
        0,
    );
    line(
        &mut md,
        "RSS after restart (median)",
        &|x| x.rss_restart_mib,
        "MiB",
        0,
    );
    line(
        &mut md,
        "of which file-backed (RssFile), after restart",
        &|x| x.rss_restart_file_mib,
        "MiB",
        0,
    );
    line(
        &mut md,
        "RSS per znode after restart",
        &|x| x.rss_restart_per_znode,
        "B",
        0,
    );
    line(
        &mut md,
        "anonymous memory (RssAnon) per znode after restart",
        &|x| x.anon_restart_per_znode,
        "B",
        0,
    );
    line(&mut md, "data directory, loaded", &|x| x.disk_mib, "MiB", 1);
    line(&mut md, "disk per znode", &|x| x.disk_per_znode, "B", 0);
    line(
        &mut md,
        "data directory, apparent size",
        &|x| x.disk_apparent_mib,
        "MiB",
        1,
    );
    line(
        &mut md,
        "data directory after the restarts",
        &|x| x.disk_after_mib,
        "MiB",
        1,
    );
    line(
        &mut md,
        "restart to serving, min",
        &|x| x.restart_min_s,
        "s",
        2,
    );
    line(
        &mut md,
        "restart to serving, median",
        &|x| x.restart_median_s,
        "s",
        2,
    );
    let _ = writeln!(
        md,
        "\nBelow 1 in the last column means corral needs less. Every restart:\n"
    );
    for (k, f) in [("ZooKeeper", &zk), ("corral", &corral)] {
        if let Some(f) = f {
            let all: Vec<String> = f.restart_all.iter().map(|s| format!("{s:.2} s")).collect();
            let _ = writeln!(md, "- {k}: {}", all.join(", "));
        }
    }
    if let Some(c) = rows
        .iter()
        .find(|r| r["server"].as_str() == Some("corral"))
        .filter(|c| !c["snapshot_latency"].is_null())
    {
        let (q, d) = (
            &c["snapshot_latency"]["quiet"],
            &c["snapshot_latency"]["during"],
        );
        let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
        let _ = writeln!(
            md,
            "\n## corral: write latency while a snapshot is written\n\n\
             setData of the {} loaded keys ({} B), open loop at {} writes/s (8 sessions, \
             latency from when each write was due), {} s measured after 2 s of warm-up; \
             in the second run a `csnp` every 100 ms keeps a snapshot of the whole tree \
             being written ({} started). ZooKeeper cannot be asked for a snapshot, so it \
             has no row.\n\n\
             | run | ops/s | p50 | p99 | p99.9 | max |\n|---|---|---|---|---|---|",
            a["znodes"],
            a["value_size"],
            a["snapshot_rate"],
            a["snapshot_duration_s"],
            d["snapshots_started"]
        );
        for (what, r) in [("quiet", q), ("during snapshots", d)] {
            let _ = writeln!(
                md,
                "| {what} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
                f(&r["ops_per_s"]),
                f(&r["p50_ms"]),
                f(&r["p99_ms"]),
                f(&r["p999_ms"]),
                f(&r["max_ms"])
            );
        }
        let _ = writeln!(
            md,
            "\np99 during snapshots / quiet p99: {:.2}",
            report::ratio(f(&d["p99_ms"]), f(&q["p99_ms"]))
        );
    }
    let _ = writeln!(
        md,
        "\nRaw results: [{n}.json]({n}.json); `cargo run -p bench --release -- report \
         docs/benchmarks/{n}.json` redraws this page from them.",
        n = name
    );
    Ok(md)
}
