//! The ensemble simulator over a fixed list of seeds. A failure names its
//! seed; replay it with
//! `cargo run --release -p engine --example sim -- --seed N --count 1 --trace`.
//! CI also runs 500 seeds in release (`.ci/run`); the example runs thousands.

use engine::sim;

/// Seeds per `cargo test` run (a debug build is ~10x slower than release).
const SEEDS: u64 = 40;

#[test]
fn fixed_seeds_keep_every_invariant() {
    let mut failures = Vec::new();
    for seed in 1..=SEEDS {
        if let Err(e) = sim::run_seed(seed) {
            failures.push(e.lines().next().unwrap_or_default().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
