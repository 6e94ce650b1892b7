//! bench: corral against Apache ZooKeeper 3.8 on the same machine in the
//! same run. `compare` starts both (standalone, or three-server ensembles
//! with `--ensemble`) from one zoo.cfg, warms ZooKeeper's JIT, runs the same
//! corral-loadgen matrix against each (workload by workload, alternating
//! servers so a machine that gets busier part-way hurts both alike), takes
//! the server CPU per operation and RSS from /proc (loadgen samples them at
//! the exact edges of its measured window), and writes
//! docs/benchmarks/<date>.md with the table, the ratios and SVG plots.
//! `million` (memory, disk and restart time with a large tree), `failover`
//! (leader crash in a three-server ensemble), `kafka` (Kafka's controller
//! failover) and `ramp` (highest throughput within a p99 SLA) measure what
//! the matrix does not, each writing its own page and JSON.
//! `report` redraws any page (and its plots) from a run's saved JSON.
//!
//! # Layout
//! - `servers` — starting ZooKeeper and corral processes, readiness,
//!   crashing and restarting one of them, teardown.
//! - `session` — a blocking ZooKeeper session, one request at a time, for
//!   the probes that time restarts and failovers.
//! - `million`, `failover`, `kafka`, `ramp` — one subcommand each: its
//!   flags, the run and its page.
//! - `report` — compare's page, what every page opens with, the machine.
//! - `plot` — the SVG charts (plotters).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

mod failover;
mod kafka;
mod million;
mod plot;
mod ramp;
mod report;
mod servers;
mod session;

use servers::{Cluster, Kind, ServerOptions};

#[derive(Parser, Debug)]
#[command(name = "bench", about = "corral vs Apache ZooKeeper 3.8, side by side")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start both servers, run the loadgen matrix against each, write the page.
    Compare(Box<CompareArgs>),
    /// Memory, disk and restart-to-serving time with --znodes znodes
    /// (default a million), each server standalone.
    Million(Box<million::MillionArgs>),
    /// Leader failover under a light write load, three-server ensembles.
    Failover(Box<failover::FailoverArgs>),
    /// Kafka's controller failover over --topics x --partitions partitions.
    Kafka(Box<kafka::KafkaArgs>),
    /// The highest throughput within a p99 SLA, reads and writes.
    Ramp(Box<ramp::RampArgs>),
    /// Redraw a page (and its plots) from a saved results JSON.
    Report {
        /// The <name>.json a run wrote.
        results: PathBuf,
    },
}

/// The servers under test and where the results go: every subcommand's
/// flags for these.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Servers to measure, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "zookeeper,corral"
    )]
    pub servers: Vec<Kind>,
    /// tickTime in both servers' zoo.cfg.
    #[arg(long, default_value_t = 2000)]
    pub tick_time_ms: u32,
    /// Heap of each ZooKeeper JVM (-Xms and -Xmx); default 2g standalone,
    /// 1g per ensemble server, 4g for `million`.
    #[arg(long)]
    pub zk_heap: Option<String>,
    #[arg(
        long,
        default_value = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar"
    )]
    pub zk_classpath: String,
    /// corral's --cores per server (0: corral's default, every core);
    /// default 1 per server in three-server ensembles, else 0.
    #[arg(long)]
    pub corral_cores: Option<usize>,
    #[arg(long, default_value = "target/release/corral")]
    pub corral_bin: PathBuf,
    #[arg(long, default_value = "target/release/corral-loadgen")]
    pub loadgen_bin: PathBuf,
    /// Where the page, the plots and the JSON go.
    #[arg(long, default_value = "docs/benchmarks")]
    pub out_dir: PathBuf,
    /// File name stem; each subcommand has its default (compare:
    /// <YYYY-MM-DD> or <YYYY-MM-DD>-ensemble; million:
    /// <YYYY-MM-DD>-million, ...).
    #[arg(long)]
    pub name: Option<String>,
    /// Keep the servers' data directories and logs (the path is printed).
    #[arg(long)]
    pub keep: bool,
}

impl Common {
    /// Fails early, with the command that fixes it, when a binary or a
    /// ZooKeeper jar is missing.
    pub fn check(&self) -> Result<()> {
        for bin in [&self.corral_bin, &self.loadgen_bin] {
            if !bin.exists() {
                bail!(
                    "{} is missing: cargo build --release -p net -p loadgen",
                    bin.display()
                );
            }
        }
        if self.servers.contains(&Kind::Zookeeper) {
            for jar in self.zk_classpath.split(':') {
                if !Path::new(jar).exists() {
                    bail!("{jar} is missing: apt-get install zookeeper (Debian's 3.8)");
                }
            }
        }
        Ok(())
    }

    /// ZooKeeper's heap: --zk-heap, else `default`.
    pub fn zk_heap_or(&self, default: &str) -> String {
        self.zk_heap.clone().unwrap_or_else(|| default.to_string())
    }

    /// corral's cores per server: --corral-cores, else one each in an
    /// ensemble (three servers share this machine's cores) and every core
    /// standalone.
    pub fn corral_cores_for(&self, size: usize) -> usize {
        self.corral_cores.unwrap_or(if size > 1 { 1 } else { 0 })
    }

    pub fn options(&self, size: usize, zk_heap_default: &str) -> ServerOptions {
        ServerOptions {
            corral_bin: self.corral_bin.clone(),
            zk_classpath: self.zk_classpath.clone(),
            zk_heap: self.zk_heap_or(zk_heap_default),
            tick_time_ms: self.tick_time_ms,
            corral_cores: self.corral_cores_for(size),
        }
    }

    /// --name, else today's date followed by `suffix`.
    pub fn name_or(&self, suffix: &str) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}{suffix}", report::today()))
    }

    /// A fresh directory for the servers' files, removed when dropped
    /// (unless --keep). Declare it before the clusters that use it, so
    /// that they are dropped (their processes killed) first.
    pub fn work_dir(&self) -> Result<WorkDir> {
        let path = std::env::temp_dir().join(format!("corral-bench-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(WorkDir {
            path,
            keep: self.keep,
        })
    }

    /// The flags every results JSON records.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "servers": self.servers.iter().map(|k| k.name()).collect::<Vec<_>>(),
            "tick_time_ms": self.tick_time_ms,
            "command": report::command(),
        })
    }
}

/// The servers' files for one run; see `Common::work_dir`. Removed on
/// every way out of a run, errors included: a million znodes leave
/// gigabytes behind.
pub struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
struct CompareArgs {
    /// Measured seconds per run.
    #[arg(long, default_value_t = 8.0)]
    duration: f64,
    /// loadgen's unmeasured warm-up per run, seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Sessions.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Requests in flight per session.
    #[arg(long, default_value_t = 16)]
    inflight: usize,
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// loadgen workloads, in order.
    #[arg(long, value_delimiter = ',', default_value = "read,write,mixed")]
    workloads: Vec<String>,
    /// Three-server ensembles instead of standalone servers (corral then
    /// runs --cores 1 per server unless --corral-cores says otherwise).
    #[arg(long)]
    ensemble: bool,
    /// Unmeasured seconds of read and then write load on ZooKeeper before
    /// measuring, so its JIT has compiled the hot paths.
    #[arg(long, default_value_t = 5.0)]
    zk_jit_warmup: f64,
    /// Session counts of the throughput-against-sessions sweep that follows
    /// the matrix (same requests in flight per session); empty for none.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    sweep_clients: Vec<usize>,
    /// Workloads of the sweep.
    #[arg(long, value_delimiter = ',', default_value = "read,write")]
    sweep_workloads: Vec<String>,
    /// Measured seconds per run of the sweep.
    #[arg(long, default_value_t = 5.0)]
    sweep_duration: f64,
    #[command(flatten)]
    common: Common,
}

/// One loadgen run against one server (or ensemble).
#[derive(Clone, Debug)]
pub struct Row {
    pub server: String,
    pub workload: String,
    pub ops_per_s: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub server_cpu_us_per_op: f64,
    pub server_rss_mib: f64,
    pub errors: u64,
}

impl Row {
    fn from_loadgen(server: &str, workload: &str, j: &serde_json::Value) -> Result<Row> {
        let f = |v: &serde_json::Value| v.as_f64().context("loadgen JSON: missing number");
        let lat = &j["latency_ms"];
        Ok(Row {
            server: server.to_string(),
            workload: workload.to_string(),
            ops_per_s: f(&j["ops_per_s"])?,
            p50_ms: f(&lat["p50"])?,
            p90_ms: f(&lat["p90"])?,
            p99_ms: f(&lat["p99"])?,
            p999_ms: f(&lat["p999"])?,
            max_ms: f(&lat["max"])?,
            server_cpu_us_per_op: f(&j["server_cpu_us_per_op"])?,
            server_rss_mib: f(&j["server_rss_kib"])? / 1024.0,
            errors: j["errors"]
                .as_object()
                .map(|e| e.values().filter_map(|v| v.as_u64()).sum())
                .unwrap_or(0),
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "server": self.server, "workload": self.workload, "ops_per_s": self.ops_per_s,
            "p50_ms": self.p50_ms, "p90_ms": self.p90_ms, "p99_ms": self.p99_ms,
            "p999_ms": self.p999_ms, "max_ms": self.max_ms,
            "server_cpu_us_per_op": self.server_cpu_us_per_op,
            "server_rss_mib": self.server_rss_mib, "errors": self.errors,
        })
    }

    pub fn from_json(j: &serde_json::Value) -> Result<Row> {
        let f = |k: &str| j[k].as_f64().with_context(|| format!("results JSON: {k}"));
        let s = |k: &str| {
            j[k].as_str()
                .map(str::to_string)
                .with_context(|| format!("results JSON: {k}"))
        };
        Ok(Row {
            server: s("server")?,
            workload: s("workload")?,
            ops_per_s: f("ops_per_s")?,
            p50_ms: f("p50_ms")?,
            p90_ms: f("p90_ms")?,
            p99_ms: f("p99_ms")?,
            p999_ms: f("p999_ms")?,
            max_ms: f("max_ms")?,
            server_cpu_us_per_op: f("server_cpu_us_per_op")?,
            server_rss_mib: f("server_rss_mib")?,
            errors: j["errors"].as_u64().unwrap_or(0),
        })
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Compare(args) => compare(*args),
        Cmd::Million(args) => million::run(*args),
        Cmd::Failover(args) => failover::run(*args),
        Cmd::Kafka(args) => kafka::run(*args),
        Cmd::Ramp(args) => ramp::run(*args),
        Cmd::Report { results } => {
            let j: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(&results)
                    .with_context(|| format!("read {}", results.display()))?,
            )?;
            let dir = results.parent().unwrap_or(Path::new("."));
            let name = results
                .file_stem()
                .and_then(|s| s.to_str())
                .context("results file name")?;
            let page = match j["bench"].as_str() {
                Some("million") => million::page,
                Some("failover") => failover::page,
                Some("kafka") => kafka::page,
                Some("ramp") => ramp::page,
                // compare's JSON has no "bench": it came first.
                _ => return report::write(dir, name, &j),
            };
            std::fs::write(dir.join(format!("{name}.md")), page(dir, name, &j)?)?;
            Ok(())
        }
    }
}

/// The shape of the load `compare` and `ramp` offer.
pub struct LoadShape {
    pub clients: usize,
    pub inflight: usize,
    pub value_size: usize,
    pub keys: usize,
}

/// Runs corral-loadgen once against `cluster`: `workload` with `shape`,
/// `extra` flags and the servers' pids (for their CPU time); returns its
/// JSON summary.
pub fn run_loadgen(
    common: &Common,
    cluster: &Cluster,
    shape: &LoadShape,
    extra: &[String],
    workload: &str,
    json: &Path,
) -> Result<serde_json::Value> {
    let pids: Vec<String> = cluster.pids().iter().map(|p| p.to_string()).collect();
    let out = Command::new(&common.loadgen_bin)
        .arg("--connect")
        .arg(cluster.connect())
        .args(["--clients", &shape.clients.to_string()])
        .args(["--inflight", &shape.inflight.to_string()])
        .args(["--value-size", &shape.value_size.to_string()])
        .args(["--keys", &shape.keys.to_string()])
        .args(["--server-pids", &pids.join(",")])
        .args(extra)
        .arg("--json")
        .arg(json)
        .arg(workload)
        .output()
        .with_context(|| format!("run {}", common.loadgen_bin.display()))?;
    if !out.status.success() {
        bail!(
            "loadgen {workload} against {} failed: {}{}",
            cluster.kind.name(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_str(&std::fs::read_to_string(json)?)?)
}

/// Starts every server of `common.servers` (`size` each), then warms each
/// ZooKeeper's JIT with `jit_warmup` s of read and of write load through
/// `run(cluster, workload)`. Every server starts before any measurement,
/// and the runs alternate between them workload by workload: an idle
/// server costs next to nothing, and a machine that gets busier part-way
/// (it is shared) then hurts both sides alike.
pub fn start_warm(
    common: &Common,
    size: usize,
    opts: &servers::ServerOptions,
    work: &Path,
    jit_warmup: f64,
    mut run: impl FnMut(&Cluster, &str) -> Result<()>,
) -> Result<Vec<Cluster>> {
    let mut clusters = Vec::new();
    for &kind in &common.servers {
        eprintln!("starting {} x{size}", kind.name());
        clusters.push(Cluster::start(kind, size, opts, work)?);
    }
    for c in &clusters {
        if c.kind == Kind::Zookeeper && jit_warmup > 0.0 {
            eprintln!("warming ZooKeeper's JIT ({jit_warmup} s read, {jit_warmup} s write)");
            for w in ["read", "write"] {
                run(c, w)?;
            }
        }
    }
    Ok(clusters)
}

/// A closed-loop loadgen run of `compare` with `clients` sessions; returns
/// its JSON summary.
fn loadgen(
    args: &CompareArgs,
    cluster: &Cluster,
    workload: &str,
    (clients, duration, warmup): (usize, f64, f64),
    json: &Path,
) -> Result<serde_json::Value> {
    let shape = LoadShape {
        clients,
        inflight: args.inflight,
        value_size: args.value_size,
        keys: args.keys,
    };
    let timing = [
        "--duration".to_string(),
        duration.to_string(),
        "--warmup".to_string(),
        warmup.to_string(),
    ];
    run_loadgen(&args.common, cluster, &shape, &timing, workload, json)
}

/// ZooKeeper's heap for compare: 2g standalone, 1g per ensemble server.
fn compare_zk_heap(args: &CompareArgs) -> String {
    args.common
        .zk_heap_or(if args.ensemble { "1g" } else { "2g" })
}

fn compare(mut args: CompareArgs) -> Result<()> {
    args.common.check()?;
    let size = if args.ensemble { 3 } else { 1 };
    let opts = args.common.options(size, &compare_zk_heap(&args));
    let name = args
        .common
        .name_or(if args.ensemble { "-ensemble" } else { "" });
    args.common.name = Some(name.clone());
    let work = args.common.work_dir()?;
    let loadavg_before = report::loadavg();
    let json = work.path().join("run.json");
    let clusters = start_warm(
        &args.common,
        size,
        &opts,
        work.path(),
        args.zk_jit_warmup,
        |c, w| {
            let run = (args.clients, args.zk_jit_warmup, 0.0);
            loadgen(&args, c, w, run, &json).map(drop)
        },
    )?;
    let server_name = |c: &Cluster| {
        if c.size() > 1 {
            format!("{} x{}", c.kind.name(), c.size())
        } else {
            c.kind.name().to_string()
        }
    };
    let mut rows = Vec::new();
    for w in &args.workloads {
        for c in &clusters {
            let server = server_name(c);
            eprintln!("{server}: {w}, {} s", args.duration);
            let run = (args.clients, args.duration, args.warmup);
            let j = loadgen(&args, c, w, run, &json)?;
            let row = Row::from_loadgen(&server, w, &j)?;
            eprintln!(
                "  {:.0} ops/s, p99 {:.2} ms, {:.1} us CPU/op, {} errors",
                row.ops_per_s, row.p99_ms, row.server_cpu_us_per_op, row.errors
            );
            rows.push(row);
        }
    }
    // Throughput against sessions: the same alternation, point by point.
    let mut sweep = Vec::new();
    for w in &args.sweep_workloads {
        for &n in &args.sweep_clients {
            for c in &clusters {
                let server = server_name(c);
                eprintln!("{server}: {w} with {n} sessions, {} s", args.sweep_duration);
                let run = (n, args.sweep_duration, args.warmup);
                let j = loadgen(&args, c, w, run, &json)?;
                let row = Row::from_loadgen(&server, w, &j)?;
                eprintln!(
                    "  {:.0} ops/s, p99 {:.2} ms, {:.1} us CPU/op",
                    row.ops_per_s, row.p99_ms, row.server_cpu_us_per_op
                );
                let mut point = row.to_json();
                point["clients"] = n.into();
                sweep.push(point);
            }
        }
    }
    let peaks: Vec<(String, f64)> = clusters
        .iter()
        .map(|c| (c.kind.name().to_string(), report::peak_rss_mib(&c.pids())))
        .collect();
    drop(clusters);
    drop(work);
    let results = serde_json::json!({
        "meta": report::meta(&args_json(&args), &loadavg_before, &peaks),
        "rows": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        "sweep": sweep,
    });
    let out_dir = &args.common.out_dir;
    std::fs::create_dir_all(out_dir)?;
    let path = out_dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
    report::write(out_dir, &name, &results)?;
    println!("{}", report::table(&rows));
    eprintln!("wrote {}", out_dir.join(format!("{name}.md")).display());
    Ok(())
}

/// The run's settings, kept with its results.
fn args_json(a: &CompareArgs) -> serde_json::Value {
    let size = if a.ensemble { 3 } else { 1 };
    serde_json::json!({
        "duration_s": a.duration, "warmup_s": a.warmup, "clients": a.clients,
        "inflight": a.inflight, "value_size": a.value_size, "keys": a.keys,
        "workloads": a.workloads, "ensemble": a.ensemble, "tick_time_ms": a.common.tick_time_ms,
        "zk_heap": compare_zk_heap(a),
        "zk_jit_warmup_s": a.zk_jit_warmup,
        "sweep_clients": a.sweep_clients, "sweep_workloads": a.sweep_workloads,
        "sweep_duration_s": a.sweep_duration,
        "corral_cores": a.common.corral_cores_for(size),
        "servers": a.common.servers.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "command": report::command(),
    })
}
