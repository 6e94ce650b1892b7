//! Runs the ensemble simulator over many seeds and prints the ones that
//! fail: `cargo run --release -p engine --example sim -- --seeds 10000`.
//! Replay one with `--seed N --count 1`.

use std::process::ExitCode;

use clap::Parser;
use engine::sim;

#[derive(Parser)]
#[command(about = "Deterministic ZAB ensemble simulator")]
struct Args {
    /// First seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many seeds, from --seed on.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Print every seed's report, not only failures.
    #[arg(long)]
    verbose: bool,
    /// Print the last events before a failure.
    #[arg(long)]
    trace: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut failed = 0u64;
    let mut total = sim::Report::default();
    for seed in args.seed..args.seed + args.count {
        let outcome = std::panic::catch_unwind(|| {
            let mut cfg = sim::SimConfig::for_seed(seed);
            cfg.trace = args.trace;
            sim::Sim::new(cfg).run()
        });
        match outcome {
            Ok(Ok(r)) => {
                if args.verbose {
                    println!("seed {seed}: {r:?}");
                }
                total.acked_writes += r.acked_writes;
                total.syncs_checked += r.syncs_checked;
                total.crashes += r.crashes;
                total.partitions += r.partitions;
                total.epochs += r.epochs;
                total.connection_resets += r.connection_resets;
                total.events += r.events;
                total.diffs += r.diffs;
                total.truncs += r.truncs;
                total.snaps += r.snaps;
                total.pauses += r.pauses;
                total.sessions_moved += r.sessions_moved;
                total.elections_concluded += r.elections_concluded;
                total.elections_early += r.elections_early;
                total.handovers_asked += r.handovers_asked;
                total.handovers_done += r.handovers_done;
                total.handovers_given_up += r.handovers_given_up;
            }
            Ok(Err(e)) => {
                failed += 1;
                println!("FAIL {e}");
            }
            Err(_) => {
                failed += 1;
                println!("FAIL seed {seed}: panicked (message above)");
            }
        }
    }
    println!(
        "{} seeds, {failed} failed; acked writes {}, syncs checked {}, elections {}, crashes {}, partitions {}, pauses {}, connection resets {}, follower syncs {} (TRUNC {}, SNAP {}), sessions moved {}, elections concluded {} (before the finalize wait {}), handovers asked {} (done {}, given up {}), events {}",
        args.count,
        total.acked_writes,
        total.syncs_checked,
        total.epochs,
        total.crashes,
        total.partitions,
        total.pauses,
        total.connection_resets,
        total.diffs,
        total.truncs,
        total.snaps,
        total.sessions_moved,
        total.elections_concluded,
        total.elections_early,
        total.handovers_asked,
        total.handovers_done,
        total.handovers_given_up,
        total.events
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
