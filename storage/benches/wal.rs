//! criterion micro-benchmarks of the write-ahead log against batch size:
//! `wal/append_no_sync` is one O_DIRECT write per batch (forceSync off),
//! `wal/group_commit` one write plus one fdatasync per batch, the path every
//! durable write takes. Throughput is in records (1 KiB each, about the size
//! of loadgen's setData with its default 1 KiB value), so the records/s
//! figure at batch size B says what group commit buys over B = 1.
//!
//! The log runs in a glommio executor on this thread with 512 KiB of
//! io_memory, as the server's cores do: glommio's default (10 MiB) does not
//! fit under an 8 MiB RLIMIT_MEMLOCK. Segments are the server's default
//! 64 MiB, preallocated in the background as in production, so a batch that
//! rolls to a new segment pays what the server pays (the first spare is
//! ready before anything is measured); segments already filled are deleted
//! between measurements to bound the disk used. The data
//! lives in cargo's target tmp dir, on the real disk (O_DIRECT needs one;
//! tmpfs would not measure a device).
//!
//! ```sh
//! cargo bench -p storage --bench wal -- --warm-up-time 1 --measurement-time 3
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};
use storage::wal::SEGMENT_BYTES_DEFAULT;
use storage::{Wal, WalConfig};

const RECORD_BYTES: usize = 1024;
const BATCHES: [usize; 6] = [1, 4, 16, 64, 128, 256];
/// The same io_memory the server gives each core (net's IO_MEMORY_BYTES).
const IO_MEMORY_BYTES: usize = 512 * 1024;

fn bench_dir(tag: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("wal-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the bench directory");
    d
}

/// Deletes every finished segment, keeping the one being written and the
/// spare being prepared.
fn purge_filled_segments(dir: &Path, current: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if p != current && name.starts_with("log.") && !name.starts_with("log.spare") {
            let _ = std::fs::remove_file(&p);
        }
    }
}

struct Log {
    wal: Wal,
    next_zxid: i64,
}

impl Log {
    /// Opens a log in `dir` and waits until its first spare segment is
    /// zero-filled: that background fill (64 MiB of O_DIRECT writes) would
    /// otherwise land in the first measurements only.
    async fn open(dir: &Path, force_sync: bool) -> Log {
        let config = WalConfig {
            dir: dir.to_path_buf(),
            segment_bytes: SEGMENT_BYTES_DEFAULT,
            force_sync,
        };
        // Epoch 1, counter 1: any valid first zxid will do.
        let first = (1i64 << 32) | 1;
        let mut wal = Wal::open(config, None, first).await.expect("open the log");
        // The first append starts the spare.
        wal.append(&[(first, b"x".as_slice())])
            .await
            .expect("append");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !dir.join("log.spare").exists() {
            assert!(
                Instant::now() < deadline,
                "the spare segment never appeared"
            );
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        Log {
            wal,
            next_zxid: first + 1,
        }
    }
}

/// One log for the whole group, so each batch size finds the log as a
/// running server has it (a spare ready, rolls at the usual pace).
fn bench_batch(c: &mut Criterion, ex: &LocalExecutor, force_sync: bool) {
    let name = if force_sync {
        "wal/group_commit"
    } else {
        "wal/append_no_sync"
    };
    let dir = bench_dir(if force_sync { "sync" } else { "nosync" });
    let mut log = ex.run(Log::open(&dir, force_sync));
    let mut group = c.benchmark_group(name);
    let payload = vec![b'x'; RECORD_BYTES];
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter_custom(|iters| {
                ex.run(async {
                    let mut records: Vec<(i64, &[u8])> = vec![(0, &payload[..]); batch];
                    let mut took = Duration::ZERO;
                    for _ in 0..iters {
                        for (i, r) in records.iter_mut().enumerate() {
                            r.0 = log.next_zxid + i as i64;
                        }
                        let start = Instant::now();
                        log.wal.append(&records).await.expect("append");
                        took += start.elapsed();
                        log.next_zxid += batch as i64;
                    }
                    purge_filled_segments(&dir, log.wal.segment_path());
                    took
                })
            });
        });
    }
    group.finish();
    // The log's file is closed inside the executor that opened it.
    ex.run(async { drop(log) });
    let _ = std::fs::remove_dir_all(&dir);
}

fn wal(c: &mut Criterion) {
    let ex = LocalExecutorBuilder::new(Placement::Unbound)
        .name("wal-bench")
        .io_memory(IO_MEMORY_BYTES)
        .make()
        .expect("a glommio executor (io_uring, 512 KiB of locked memory)");
    bench_batch(c, &ex, false);
    bench_batch(c, &ex, true);
}

criterion_group!(benches, wal);
criterion_main!(benches);
