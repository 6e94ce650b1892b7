//! The model test of the log (`storage::model`): the real writer and
//! recovery on the fault-injecting disk, seeded. A failure prints its seed
//! and the command that replays it.
//!
//! ```sh
//! cargo test -p storage no_synced                     # 300 seeds
//! CORRAL_WAL_SEEDS=20000 cargo test -p storage --release wal_model_many -- --ignored
//! CORRAL_WAL_SEED=17 cargo test -p storage --release wal_model_replay -- --ignored --nocapture
//! ```

use storage::model;

const STEPS: usize = 300;

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number"))
    })
}

#[test]
fn no_synced_record_is_lost_by_the_wal_model() {
    let total = model::run_seeds(1..301, STEPS);
    // The run must reach the interesting states, or it proves nothing.
    assert!(total.acknowledged > 10_000, "{total:?}");
    assert!(total.crashes > 1_000, "{total:?}");
    assert!(total.failures > 500, "{total:?}");
    assert!(total.rolls > 500, "{total:?}");
    assert!(total.recycled > 100, "{total:?}");
    assert!(total.snapshots > 200, "{total:?}");
}

/// Thousands of seeds; `CORRAL_WAL_SEEDS` (default 5000) from
/// `CORRAL_WAL_SEED_START` (default 1000, after the normal test's).
#[test]
#[ignore = "long: run with --release -- --ignored"]
fn wal_model_many_seeds() {
    let start = env("CORRAL_WAL_SEED_START").unwrap_or(1000);
    let count = env("CORRAL_WAL_SEEDS").unwrap_or(5000);
    let total = model::run_seeds(start..start + count, STEPS);
    eprintln!("seeds {start}..{}: {total:?}", start + count);
}

/// Replays `CORRAL_WAL_SEED`.
#[test]
#[ignore = "replays CORRAL_WAL_SEED"]
fn wal_model_replay() {
    let seed = env("CORRAL_WAL_SEED").expect("set CORRAL_WAL_SEED");
    let total = model::run_seeds(seed..seed + 1, STEPS);
    eprintln!("seed {seed}: {total:?}");
}
