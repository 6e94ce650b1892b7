//! `bench kafka`: Kafka's ZooKeeper-mode controller failover against each
//! kind, standalone. corral-loadgen's `kafka` workload builds the metadata
//! of --topics x --partitions partitions with three brokers, closes the
//! first controller's session and times its successor: election (a
//! multi), a read of every partition's state and a fenced conditional
//! rewrite of each (see loadgen/src/kafka.rs). Each run gets fresh servers,
//! so every run starts from an empty tree; the kinds alternate run by run.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::report;
use crate::servers::Cluster;
use crate::Common;

#[derive(clap::Args, Debug, Clone)]
pub struct KafkaArgs {
    #[arg(long, default_value_t = 100)]
    topics: usize,
    /// Partitions per topic.
    #[arg(long, default_value_t = 1000)]
    partitions: usize,
    #[arg(long, default_value_t = 3)]
    brokers: u32,
    /// Requests in flight during the failover (Kafka's controller allows 10).
    #[arg(long, default_value_t = 10)]
    inflight: usize,
    /// Failovers per kind, each on fresh servers.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    #[command(flatten)]
    pub common: Common,
}

/// One loadgen kafka run against `cluster`; its JSON summary.
fn loadgen_kafka(args: &KafkaArgs, cluster: &Cluster, json: &Path) -> Result<serde_json::Value> {
    // The default root (/kafka) on both kinds: every run has fresh
    // servers. docs/BENCHMARKS.md's hand-run used `--root /kafka-zk`
    // against ZooKeeper so as not to meet an earlier run's /kafka (and its
    // /controller, ephemeral until that session expired) on a server it
    // had used before; here no server is used twice.
    let out = Command::new(&args.common.loadgen_bin)
        .arg("--connect")
        .arg(cluster.connect())
        .args(["--topics", &args.topics.to_string()])
        .args(["--partitions", &args.partitions.to_string()])
        .args(["--brokers", &args.brokers.to_string()])
        .args(["--kafka-inflight", &args.inflight.to_string()])
        .arg("--json")
        .arg(json)
        .arg("kafka")
        .output()
        .with_context(|| format!("run {}", args.common.loadgen_bin.display()))?;
    if !out.status.success() {
        bail!(
            "loadgen kafka against {} failed: {}{}",
            cluster.kind.name(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_str(&std::fs::read_to_string(json)?)?)
}

pub fn run(mut args: KafkaArgs) -> Result<()> {
    args.common.check()?;
    if args.topics == 0 || args.partitions == 0 || args.runs == 0 {
        bail!("--topics, --partitions and --runs must be positive");
    }
    let name = args.common.name_or("-kafka");
    args.common.name = Some(name.clone());
    let opts = args.common.options(1, "2g");
    let work = args.common.work_dir()?;
    let loadavg_before = report::loadavg();
    let mut rows = Vec::new();
    let mut peaks: Vec<(String, f64)> = Vec::new();
    for run in 1..=args.runs {
        for &kind in &args.common.servers {
            let dir = work.path().join(format!("run{run}"));
            eprintln!(
                "{}: run {run}, {} topics x {} partitions",
                kind.name(),
                args.topics,
                args.partitions
            );
            let cluster = Cluster::start(kind, 1, &opts, &dir)?;
            let j = loadgen_kafka(&args, &cluster, &dir.join(format!("{}.json", kind.name())))?;
            let peak = report::peak_rss_mib(&cluster.pids());
            drop(cluster);
            // The servers' files of a finished run are not needed again,
            // and 100k partitions' logs add up.
            if !args.common.keep {
                let _ = std::fs::remove_dir_all(dir.join(format!("{}1", kind.name())));
            }
            let f = |k: &str| j[k].as_f64().unwrap_or(f64::NAN);
            eprintln!(
                "  failover {:.3} s (election {:.1} ms, read {:.3} s, writes {:.3} s), setup {:.1} s, peak RSS {peak:.0} MiB",
                f("failover_s"),
                f("election_ms"),
                f("read_s"),
                f("write_s"),
                f("setup_s")
            );
            match peaks.iter_mut().find(|(k, _)| k == kind.name()) {
                Some((_, p)) => *p = p.max(peak),
                None => peaks.push((kind.name().to_string(), peak)),
            }
            rows.push(serde_json::json!({
                "server": kind.name(), "run": run, "peak_rss_mib": peak,
                "partitions": j["partitions"], "setup_s": j["setup_s"],
                "election_ms": j["election_ms"], "read_s": j["read_s"],
                "write_s": j["write_s"], "failover_s": j["failover_s"],
            }));
        }
    }
    drop(work);
    let mut a = args.common.json();
    if let Some(o) = a.as_object_mut() {
        o.extend([
            ("topics".to_string(), args.topics.into()),
            ("partitions".to_string(), args.partitions.into()),
            ("brokers".to_string(), args.brokers.into()),
            ("inflight".to_string(), args.inflight.into()),
            ("runs".to_string(), args.runs.into()),
            ("zk_heap".to_string(), opts.zk_heap.clone().into()),
            ("corral_cores".to_string(), opts.corral_cores.into()),
        ]);
    }
    let results = serde_json::json!({
        "bench": "kafka",
        "meta": report::meta(&a, &loadavg_before, &peaks),
        "rows": rows,
    });
    report::save(&args.common.out_dir, &name, &results, page)
}

/// The page, from the results JSON alone.
pub fn page(_dir: &Path, name: &str, results: &serde_json::Value) -> Result<String> {
    let meta = &results["meta"];
    let a = &meta["args"];
    let rows = results["rows"].as_array().cloned().unwrap_or_default();
    let total = a["topics"].as_u64().unwrap_or(0) * a["partitions"].as_u64().unwrap_or(0);
    let mut md = report::preamble(
        &format!("Kafka controller failover, {total} partitions, corral and Apache ZooKeeper 3.8"),
        meta,
    );
    let _ = writeln!(
        md,
        "## What was measured\n\n\
         - One standalone server at a time, fresh for every run, from the same zoo.cfg \
         text (tickTime={}, forceSync=yes). ZooKeeper: `java -Xms{h} -Xmx{h} -cp ... \
         QuorumPeerMain zoo.cfg`; corral: `corral server --zoo-cfg zoo.cfg`{}.\n\
         - `corral-loadgen kafka --topics {} --partitions {} --brokers {} --kafka-inflight {}`: \
         {} brokers register ephemeral ids, a controller is elected by a multi (ephemeral \
         /controller plus a versioned setData of /controller_epoch), {} topics x {} \
         partitions of JSON state are created (*setup*; it also warms ZooKeeper's JIT \
         before anything below is timed). Then the controller's session closes and \
         the **failover** is timed: the new controller's election, a getData of every \
         partition's state ({} in flight) and a fenced rewrite of each, \
         `multi[check(/controller_epoch), setData]` ({} in flight).\n",
        a["tick_time_ms"],
        match a["corral_cores"].as_u64() {
            Some(c) if c > 0 => format!(" `--cores {c}`"),
            _ => " (every core)".to_string(),
        },
        a["topics"],
        a["partitions"],
        a["brokers"],
        a["inflight"],
        a["brokers"],
        a["topics"],
        a["partitions"],
        a["inflight"],
        a["inflight"],
        h = a["zk_heap"].as_str().unwrap_or("?"),
    );
    let _ = writeln!(
        md,
        "## Results\n\n| server | run | failover s | election ms | read all states s | fenced writes s | setup s | peak RSS MiB |\n\
         |---|---|---|---|---|---|---|---|"
    );
    let f = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {:.3} | {:.1} | {:.3} | {:.3} | {:.1} | {:.0} |",
            r["server"].as_str().unwrap_or("?"),
            r["run"],
            f(r, "failover_s"),
            f(r, "election_ms"),
            f(r, "read_s"),
            f(r, "write_s"),
            f(r, "setup_s"),
            f(r, "peak_rss_mib"),
        );
    }
    let median = |server: &str, k: &str| {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| r["server"].as_str() == Some(server))
            .map(|r| f(r, k))
            .collect();
        report::median(&v)
    };
    let _ = writeln!(
        md,
        "\n| median | ZooKeeper | corral | corral / ZooKeeper |\n|---|---|---|---|"
    );
    for (label, k, unit) in [
        ("failover", "failover_s", "s"),
        ("election", "election_ms", "ms"),
        ("read all states", "read_s", "s"),
        ("fenced writes", "write_s", "s"),
        ("setup", "setup_s", "s"),
    ] {
        let (z, c) = (median("zookeeper", k), median("corral", k));
        let cell = |v: Option<f64>| {
            v.map_or("—".to_string(), |x| match unit {
                "ms" => format!("{x:.1} {unit}"),
                _ => format!("{x:.3} {unit}"),
            })
        };
        let ratio = match (z, c) {
            (Some(z), Some(c)) => format!("{:.2}", report::ratio(c, z)),
            _ => "—".to_string(),
        };
        let _ = writeln!(md, "| {label} | {} | {} | {ratio} |", cell(z), cell(c));
    }
    if let (Some(z), Some(c)) = (
        median("zookeeper", "failover_s"),
        median("corral", "failover_s"),
    ) {
        let _ = writeln!(
            md,
            "\nBelow 1 in the last column means corral took less time: its failover \
             took {:.2} of ZooKeeper's time ({:.1}x as fast).",
            report::ratio(c, z),
            report::ratio(z, c)
        );
    }
    let _ = writeln!(
        md,
        "\nRaw results: [{name}.json]({name}.json); `cargo run -p bench --release -- report \
         docs/benchmarks/{name}.json` redraws this page from them."
    );
    Ok(md)
}
