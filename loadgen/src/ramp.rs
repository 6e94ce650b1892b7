//! The `ramp` workload: the highest rate a server sustains within a latency
//! SLA. Open loop (latency from when each request was due, so a server that
//! falls behind shows it in the percentiles instead of slowing the client
//! down), the offered rate multiplied by `--ramp-factor` each step, until a
//! step's p99 exceeds `--sla-p99-ms` or it achieves less than
//! `--ramp-shortfall` of what it was offered. Each step opens fresh sessions
//! and warms up for `--warmup` seconds before `--ramp-step` measured ones.

use std::sync::Arc;

use anyhow::{bail, Result};

use crate::{errors_json, measure_window, new_flags, spawn_sessions, Args, Tally, Workload};

struct Step {
    offered: f64,
    achieved: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    errors: u64,
    /// Server CPU per operation (with --server-pids), µs.
    server_cpu_us_per_op: Option<f64>,
    errors_by_code: std::collections::BTreeMap<i32, u64>,
    /// Within the SLA and the shortfall bound.
    passed: bool,
}

pub async fn run(args: Arc<Args>, addrs: Vec<String>) -> Result<()> {
    if matches!(
        args.base,
        Workload::Ramp | Workload::Watch | Workload::Kafka | Workload::SessionChurn
    ) {
        bail!("--base {:?} cannot be ramped", args.base);
    }
    if args.ramp_factor <= 1.0 || args.ramp_start <= 0.0 {
        bail!("--ramp-start must be positive and --ramp-factor above 1");
    }
    let mut steps: Vec<Step> = Vec::new();
    let mut offered = args.ramp_start;
    for _ in 0..args.ramp_steps_max {
        let mut a = (*args).clone();
        a.workload = args.base;
        a.rate = Some(offered);
        a.duration = args.ramp_step;
        let a = Arc::new(a);
        let (measuring, stop, totals) = new_flags();
        let tasks = spawn_sessions(&a, &addrs, &measuring, &stop, &totals);
        let window = measure_window(&a, &measuring, &stop, &totals).await;
        let elapsed = window.elapsed;
        let mut all = Tally::new()?;
        for t in tasks {
            all.add(t.await??)?;
        }
        let q = |p: f64| all.hist.value_at_quantile(p) as f64 / 1000.0;
        let achieved = all.ops as f64 / elapsed;
        let p99_ms = q(0.99);
        let passed = p99_ms <= args.sla_p99_ms && achieved >= args.ramp_shortfall * offered;
        let step = Step {
            offered,
            achieved,
            p50_ms: q(0.5),
            p99_ms,
            p999_ms: q(0.999),
            errors: all.errors.values().sum(),
            server_cpu_us_per_op: (!args.server_pids.is_empty() && all.ops > 0)
                .then(|| window.server_cpu * 1e6 / all.ops as f64),
            errors_by_code: all.errors,
            passed,
        };
        eprintln!(
            "offered {:>9.0}/s  achieved {:>9.0}/s  p50 {:>8.3}  p99 {:>8.3} ms  errors {}  {}",
            step.offered,
            step.achieved,
            step.p50_ms,
            step.p99_ms,
            step.errors,
            if passed { "ok" } else { "FAILED" }
        );
        steps.push(step);
        if !passed {
            break;
        }
        offered *= args.ramp_factor;
    }
    let best = steps
        .iter()
        .filter(|s| s.passed)
        .map(|s| s.achieved)
        .fold(None, |m: Option<f64>, a| Some(m.map_or(a, |m| m.max(a))));
    let ended = match steps.last() {
        Some(s) if !s.passed && s.p99_ms > args.sla_p99_ms => "p99 above the SLA",
        Some(s) if !s.passed => "achieved rate fell short of the offered rate",
        _ => "--ramp-steps-max reached",
    };
    println!("workload     ramp of {:?}", args.base);
    println!("servers      {}", args.connect);
    println!(
        "sessions     {} x {} in flight, value {} B, keys {}; {} s per step after {} s warm-up",
        args.clients, args.inflight, args.value_size, args.keys, args.ramp_step, args.warmup
    );
    println!(
        "sla          p99 <= {} ms, achieved >= {:.0}% of offered",
        args.sla_p99_ms,
        args.ramp_shortfall * 100.0
    );
    println!("| offered/s | achieved/s | p50 ms | p99 ms | p99.9 ms | errors | within SLA |");
    println!("|---|---|---|---|---|---|---|");
    for s in &steps {
        println!(
            "| {:.0} | {:.0} | {:.3} | {:.3} | {:.3} | {} | {} |",
            s.offered,
            s.achieved,
            s.p50_ms,
            s.p99_ms,
            s.p999_ms,
            s.errors,
            if s.passed { "yes" } else { "no" }
        );
    }
    match best {
        Some(b) => println!("sustained    {b:.0} ops/s (ended: {ended})"),
        None => println!("sustained    none: the first step already failed ({ended})"),
    }
    let json = serde_json::json!({
        "workload": "ramp",
        "base": format!("{:?}", args.base).to_lowercase(),
        "servers": args.connect,
        "clients": args.clients,
        "inflight": args.inflight,
        "value_size": args.value_size,
        "keys": args.keys,
        "step_s": args.ramp_step,
        "warmup_s": args.warmup,
        "sla_p99_ms": args.sla_p99_ms,
        "shortfall": args.ramp_shortfall,
        "sustained_ops_per_s": best,
        "ended": ended,
        "steps": steps.iter().map(|s| serde_json::json!({
            "offered_per_s": s.offered,
            "achieved_per_s": s.achieved,
            "p50_ms": s.p50_ms,
            "p99_ms": s.p99_ms,
            "p999_ms": s.p999_ms,
            "errors": s.errors,
            "server_cpu_us_per_op": s.server_cpu_us_per_op,
            "errors_by_code": errors_json(&s.errors_by_code),
            "passed": s.passed,
        })).collect::<Vec<_>>(),
    });
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}
