//! `bench ramp`: the highest throughput each kind sustains within a p99
//! latency SLA. corral-loadgen's `ramp` workload (loadgen/src/ramp.rs)
//! offers an open-loop rate that rises by --ramp-factor each step until a
//! step's p99 exceeds --sla-p99-ms or it achieves less than
//! --ramp-shortfall of what was offered; the figure is the highest rate
//! achieved by a step within the SLA. As `compare` does, every server
//! starts first, ZooKeeper's JIT is warmed, and the ramps alternate
//! between the servers base workload by base workload.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Result};

use crate::report;
use crate::servers::Cluster;
use crate::Common;

#[derive(clap::Args, Debug, Clone)]
pub struct RampArgs {
    /// The workloads whose rate rises, in order (loadgen's --base).
    #[arg(long, value_delimiter = ',', default_value = "read,write")]
    bases: Vec<String>,
    /// A step whose p99 exceeds this, ms, fails and ends the ramp.
    #[arg(long, default_value_t = 10.0)]
    sla_p99_ms: f64,
    /// The first step's offered rate for `read` (and `exists`, `children`), requests/s.
    #[arg(long, default_value_t = 2500.0)]
    ramp_start_read: f64,
    /// The first step's offered rate for every other base, requests/s.
    #[arg(long, default_value_t = 1000.0)]
    ramp_start_write: f64,
    /// Each step offers this many times the rate of the one before.
    #[arg(long, default_value_t = 1.5)]
    ramp_factor: f64,
    /// Measured seconds per step.
    #[arg(long, default_value_t = 5.0)]
    ramp_step: f64,
    /// Unmeasured seconds at the start of each step (fresh sessions).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    #[arg(long, default_value_t = 20)]
    ramp_steps_max: usize,
    /// A step that achieves less than this fraction of its offered rate fails.
    #[arg(long, default_value_t = 0.95)]
    ramp_shortfall: f64,
    /// Sessions.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Requests in flight per session at most (open loop: a session waits
    /// for a free slot, and the wait counts in the latency).
    #[arg(long, default_value_t = 16)]
    inflight: usize,
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Three-server ensembles instead of standalone servers.
    #[arg(long)]
    ensemble: bool,
    /// Unmeasured seconds of read and then write load on ZooKeeper first,
    /// so its JIT has compiled the hot paths.
    #[arg(long, default_value_t = 5.0)]
    zk_jit_warmup: f64,
    #[command(flatten)]
    pub common: Common,
}

fn is_read(base: &str) -> bool {
    matches!(base, "read" | "exists" | "children")
}

/// Runs corral-loadgen against `cluster`: `workload` with `extra` flags;
/// returns its JSON summary.
fn loadgen(
    args: &RampArgs,
    cluster: &Cluster,
    extra: &[String],
    workload: &str,
    json: &Path,
) -> Result<serde_json::Value> {
    let shape = crate::LoadShape {
        clients: args.clients,
        inflight: args.inflight,
        value_size: args.value_size,
        keys: args.keys,
    };
    crate::run_loadgen(&args.common, cluster, &shape, extra, workload, json)
}

fn ramp_flags(args: &RampArgs, base: &str) -> Vec<String> {
    let start = if is_read(base) {
        args.ramp_start_read
    } else {
        args.ramp_start_write
    };
    [
        ("--base", base.to_string()),
        ("--sla-p99-ms", args.sla_p99_ms.to_string()),
        ("--ramp-start", start.to_string()),
        ("--ramp-factor", args.ramp_factor.to_string()),
        ("--ramp-step", args.ramp_step.to_string()),
        ("--ramp-steps-max", args.ramp_steps_max.to_string()),
        ("--ramp-shortfall", args.ramp_shortfall.to_string()),
        ("--warmup", args.warmup.to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_string(), v])
    .collect()
}

pub fn run(mut args: RampArgs) -> Result<()> {
    args.common.check()?;
    if args.bases.is_empty() {
        bail!("--bases is empty");
    }
    let size = if args.ensemble { 3 } else { 1 };
    let name = args.common.name_or(if args.ensemble {
        "-ramp-ensemble"
    } else {
        "-ramp"
    });
    args.common.name = Some(name.clone());
    let opts = args
        .common
        .options(size, if args.ensemble { "1g" } else { "2g" });
    let work = args.common.work_dir()?;
    let loadavg_before = report::loadavg();
    let json = work.path().join("run.json");
    let closed_loop = [
        "--duration".to_string(),
        args.zk_jit_warmup.to_string(),
        "--warmup".to_string(),
        "0".to_string(),
    ];
    let clusters = crate::start_warm(
        &args.common,
        size,
        &opts,
        work.path(),
        args.zk_jit_warmup,
        |c, w| loadgen(&args, c, &closed_loop, w, &json).map(drop),
    )?;
    let mut rows = Vec::new();
    for base in &args.bases {
        for c in &clusters {
            let server = if c.size() > 1 {
                format!("{} x{}", c.kind.name(), c.size())
            } else {
                c.kind.name().to_string()
            };
            eprintln!("{server}: ramp of {base}, p99 SLA {} ms", args.sla_p99_ms);
            let j = loadgen(&args, c, &ramp_flags(&args, base), "ramp", &json)?;
            let sustained = j["sustained_ops_per_s"].as_f64();
            eprintln!(
                "  sustained {} ({})",
                sustained.map_or("none".to_string(), |s| format!("{s:.0} ops/s")),
                j["ended"].as_str().unwrap_or("?")
            );
            rows.push(serde_json::json!({
                "server": server, "kind": c.kind.name(), "base": base,
                "sustained_ops_per_s": sustained, "ended": j["ended"], "steps": j["steps"],
            }));
        }
    }
    let peaks: Vec<(String, f64)> = clusters
        .iter()
        .map(|c| (c.kind.name().to_string(), report::peak_rss_mib(&c.pids())))
        .collect();
    drop(clusters);
    drop(work);
    let mut a = args.common.json();
    if let Some(o) = a.as_object_mut() {
        o.extend([
            ("bases".to_string(), serde_json::json!(args.bases)),
            ("sla_p99_ms".to_string(), args.sla_p99_ms.into()),
            ("ramp_start_read".to_string(), args.ramp_start_read.into()),
            ("ramp_start_write".to_string(), args.ramp_start_write.into()),
            ("ramp_factor".to_string(), args.ramp_factor.into()),
            ("ramp_step_s".to_string(), args.ramp_step.into()),
            ("warmup_s".to_string(), args.warmup.into()),
            ("ramp_steps_max".to_string(), args.ramp_steps_max.into()),
            ("ramp_shortfall".to_string(), args.ramp_shortfall.into()),
            ("clients".to_string(), args.clients.into()),
            ("inflight".to_string(), args.inflight.into()),
            ("value_size".to_string(), args.value_size.into()),
            ("keys".to_string(), args.keys.into()),
            ("ensemble".to_string(), args.ensemble.into()),
            ("zk_jit_warmup_s".to_string(), args.zk_jit_warmup.into()),
            ("zk_heap".to_string(), opts.zk_heap.clone().into()),
            ("corral_cores".to_string(), opts.corral_cores.into()),
        ]);
    }
    let results = serde_json::json!({
        "bench": "ramp",
        "meta": report::meta(&a, &loadavg_before, &peaks),
        "rows": rows,
    });
    report::save(&args.common.out_dir, &name, &results, page)
}

/// The page (and its plot), from the results JSON alone.
pub fn page(dir: &Path, name: &str, results: &serde_json::Value) -> Result<String> {
    let meta = &results["meta"];
    let a = &meta["args"];
    let rows = results["rows"].as_array().cloned().unwrap_or_default();
    let ensemble = a["ensemble"].as_bool().unwrap_or(false);
    let svg = format!("{name}.svg");
    crate::plot::ramp(
        &dir.join(&svg),
        &rows,
        a["sla_p99_ms"].as_f64().unwrap_or(f64::NAN),
    )?;
    let mut md = report::preamble(
        &format!(
            "Highest throughput within a p99 SLA of {} ms, corral and Apache ZooKeeper 3.8, {}",
            a["sla_p99_ms"],
            if ensemble {
                "three-server ensembles"
            } else {
                "standalone"
            }
        ),
        meta,
    );
    let _ = writeln!(
        md,
        "## What was measured\n\n\
         - Both kinds{} from the same zoo.cfg text (tickTime={}, forceSync=yes), all \
         started before anything is measured. ZooKeeper: `java -Xms{h} -Xmx{h} -cp ... \
         QuorumPeerMain zoo.cfg`, its JIT warmed by {} s of read and {} s of write load \
         first; corral: `corral server --zoo-cfg zoo.cfg`{}.\n\
         - `corral-loadgen ramp`: open loop, {} sessions with at most {} requests in \
         flight each, {} B values over {} keys; latency counts from when each request \
         was due, so a server that falls behind shows it. Steps of {} s measured after \
         {} s of warm-up on fresh sessions; the offered rate starts at {:.0} requests/s \
         for reads and {:.0} for other workloads and grows {}x a step, until a step's \
         p99 exceeds {} ms or achieves less than {:.0} % of its offered rate.\n\
         - **Sustained** is the highest rate a step achieved within the SLA; with \
         steps {}x apart it is a lower bound, within that factor of the true limit.\n\
         - The base workloads alternate between the servers, so a machine that gets \
         busier part-way hurts both.\n",
        if ensemble {
            " as three-server ensembles on 127.0.0.1 (sessions spread over the three)"
        } else {
            " standalone"
        },
        a["tick_time_ms"],
        a["zk_jit_warmup_s"],
        a["zk_jit_warmup_s"],
        match a["corral_cores"].as_u64() {
            Some(c) if c > 0 => format!(" `--cores {c}`"),
            _ => " (every core)".to_string(),
        },
        a["clients"],
        a["inflight"],
        a["value_size"],
        a["keys"],
        a["ramp_step_s"],
        a["warmup_s"],
        a["ramp_start_read"].as_f64().unwrap_or(f64::NAN),
        a["ramp_start_write"].as_f64().unwrap_or(f64::NAN),
        a["ramp_factor"],
        a["sla_p99_ms"],
        a["ramp_shortfall"].as_f64().unwrap_or(f64::NAN) * 100.0,
        a["ramp_factor"],
        h = a["zk_heap"].as_str().unwrap_or("?"),
    );
    let _ = writeln!(
        md,
        "## Results\n\n| workload | ZooKeeper ops/s | corral ops/s | corral / ZooKeeper |\n|---|---|---|---|"
    );
    let mut bases: Vec<&str> = Vec::new();
    for r in &rows {
        if let Some(b) = r["base"].as_str() {
            if !bases.contains(&b) {
                bases.push(b);
            }
        }
    }
    let sustained = |kind: &str, base: &str| {
        rows.iter()
            .find(|r| r["kind"].as_str() == Some(kind) && r["base"].as_str() == Some(base))
            .map(|r| r["sustained_ops_per_s"].as_f64())
    };
    for base in &bases {
        let cell = |v: Option<Option<f64>>| match v {
            None => "—".to_string(),
            Some(None) => "none (the first step failed)".to_string(),
            Some(Some(x)) => format!("{x:.0}"),
        };
        let (z, c) = (sustained("zookeeper", base), sustained("corral", base));
        let ratio = match (z, c) {
            (Some(Some(z)), Some(Some(c))) => format!("{:.1}x", report::ratio(c, z)),
            _ => "—".to_string(),
        };
        let _ = writeln!(md, "| {base} | {} | {} | {ratio} |", cell(z), cell(c));
    }
    let _ = writeln!(
        md,
        "\nAbove 1 in the last column means corral sustains more.\n\n![p99 against offered rate]({svg})\n"
    );
    for r in &rows {
        let _ = writeln!(
            md,
            "### {}, {}: {}\n\n| offered/s | achieved/s | p50 ms | p99 ms | p99.9 ms | server CPU µs/op | errors | within SLA |\n\
             |---|---|---|---|---|---|---|---|",
            r["server"].as_str().unwrap_or("?"),
            r["base"].as_str().unwrap_or("?"),
            r["ended"].as_str().unwrap_or("?"),
        );
        for s in r["steps"].as_array().into_iter().flatten() {
            let f = |k: &str| s[k].as_f64().unwrap_or(f64::NAN);
            let _ = writeln!(
                md,
                "| {:.0} | {:.0} | {:.3} | {:.3} | {:.3} | {} | {} | {} |",
                f("offered_per_s"),
                f("achieved_per_s"),
                f("p50_ms"),
                f("p99_ms"),
                f("p999_ms"),
                s["server_cpu_us_per_op"]
                    .as_f64()
                    .map_or("—".to_string(), |x| format!("{x:.1}")),
                s["errors"],
                if s["passed"].as_bool().unwrap_or(false) {
                    "yes"
                } else {
                    "no"
                },
            );
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "Raw results: [{name}.json]({name}.json); `cargo run -p bench --release -- report \
         docs/benchmarks/{name}.json` redraws this page and the plot from them."
    );
    Ok(md)
}
