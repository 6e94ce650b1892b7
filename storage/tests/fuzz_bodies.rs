//! The fuzz targets' bodies (`storage::fuzz`) on seeded random and mutated
//! inputs, so every `cargo test` runs them without cargo-fuzz. More
//! inputs: `CORRAL_FUZZ_INPUTS=100000 cargo test -p storage --release --test fuzz_bodies`.

use storage::format::{encode_header, encode_record};
use storage::snapshot::{Snapshot, SnapshotAcl, SnapshotNode, SnapshotSession};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Random bytes, or `valid` with a few bytes flipped, cut or repeated.
    fn input(&mut self, valid: &[u8]) -> Vec<u8> {
        if valid.is_empty() || self.below(4) == 0 {
            let n = self.below(600);
            return (0..n).map(|_| self.next() as u8).collect();
        }
        let mut b = valid.to_vec();
        for _ in 0..1 + self.below(4) {
            match self.below(4) {
                0 => {
                    let i = self.below(b.len());
                    b[i] ^= 1 << self.below(8);
                }
                1 => b.truncate(self.below(b.len() + 1)),
                2 => {
                    let i = self.below(b.len());
                    b[i] = [0, 0xff, 0x7f, 0x80][self.below(4)];
                }
                _ => {
                    let at = self.below(b.len() + 1);
                    let extra: Vec<u8> = (0..self.below(64)).map(|_| self.next() as u8).collect();
                    b.splice(at..at, extra);
                }
            }
            if b.is_empty() {
                break;
            }
        }
        b
    }
}

fn inputs() -> usize {
    std::env::var("CORRAL_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

#[test]
fn segment_decoding_and_recovery_never_panic() {
    // Valid shapes to mutate: a bare record run, and header + records
    // behind each shape byte of `storage::fuzz::segment`.
    let mut records = Vec::new();
    for z in 1..6 {
        encode_record(&mut records, z, format!("txn {z}").as_bytes());
    }
    let mut with_header = vec![0u8];
    with_header.extend_from_slice(&encode_header(1));
    with_header.extend_from_slice(&records);
    let mut rng = Rng(0x5eed_0001);
    for i in 0..inputs() {
        let valid: &[u8] = if i % 2 == 0 { &records } else { &with_header };
        let mut input = rng.input(valid);
        if i % 2 == 0 {
            input.insert(0, rng.next() as u8);
        }
        storage::fuzz::segment(&input);
    }
}

#[test]
fn snapshot_validation_never_panics() {
    let snap = storage::fuzz::sample_snapshot(42);
    let archive = rkyv::to_bytes::<rkyv::rancor::Error>(&snap).unwrap();
    // Shape 1: `storage::fuzz::snapshot` adds a correct header.
    let mut valid = vec![1u8];
    valid.extend_from_slice(&archive);
    let mut rng = Rng(0x5eed_0002);
    for _ in 0..inputs() * 4 {
        let mut input = rng.input(&valid);
        if let Some(first) = input.first_mut() {
            *first |= 1;
        }
        storage::fuzz::snapshot(&input);
    }
    storage::fuzz::snapshot(&valid);
}

#[test]
fn wal_model_from_random_bytes() {
    let mut rng = Rng(0x5eed_0003);
    for _ in 0..inputs() / 30 {
        let n = rng.below(400);
        let input: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        storage::fuzz::wal_model(&input);
    }
}

/// Found by `cargo fuzz run wal_model` within a minute: a batch ended
/// exactly at the end of a segment, and `probe_sync_latency` then rewrote
/// "the last block" one block past the preallocated end (on a real disk
/// the segment grew by 4 KiB and the probe's fdatasync had metadata to
/// flush). The twin refuses writes past the end, so this input panicked.
#[test]
fn probe_at_the_end_of_a_full_segment() {
    storage::fuzz::wal_model(&[
        10, 1, 0, 213, 0, 0, 0, 1, 0, 0, 0, 73, 137, 63, 184, 20, 0, 0, 0, 63, 239, 63, 184,
    ]);
}

/// Writes the seed inputs of `storage/fuzz/seeds/` (valid shapes the
/// fuzzer mutates from) when `CORRAL_WRITE_FUZZ_SEEDS` names that folder.
#[test]
fn write_fuzz_seeds() {
    let Ok(dir) = std::env::var("CORRAL_WRITE_FUZZ_SEEDS") else {
        return;
    };
    let dir = std::path::Path::new(&dir);
    let write = |target: &str, name: &str, bytes: &[u8]| {
        std::fs::create_dir_all(dir.join(target)).unwrap();
        std::fs::write(dir.join(target).join(name), bytes).unwrap();
    };
    let snap = Snapshot {
        zxid: 0x1_0000_0007,
        acls: vec![vec![SnapshotAcl {
            perms: 31,
            scheme: "world".into(),
            id: "anyone".into(),
        }]],
        nodes: vec![
            SnapshotNode {
                path: "/".into(),
                data: None,
                acl: 0,
                czxid: 0,
                mzxid: 0,
                pzxid: 5,
                ctime: 0,
                mtime: 0,
                version: 0,
                cversion: 1,
                aversion: 0,
                ephemeral_owner: 0,
            },
            SnapshotNode {
                path: "/a".into(),
                data: Some(b"hello".to_vec()),
                acl: 0,
                czxid: 5,
                mzxid: 7,
                pzxid: 5,
                ctime: 3,
                mtime: 4,
                version: 2,
                cversion: 0,
                aversion: 0,
                ephemeral_owner: 0x77,
            },
        ],
        sessions: vec![SnapshotSession {
            id: 0x77,
            timeout_ms: 4000,
        }],
    };
    let mut s = vec![1u8];
    s.extend_from_slice(&rkyv::to_bytes::<rkyv::rancor::Error>(&snap).unwrap());
    write("snapshot", "valid", &s);
    // Shape 5: a header, the body as records, then the body as it is.
    let mut seg = vec![5u8];
    seg.extend_from_slice(&[7u8; 150]);
    write("segment", "header-records", &seg);
    let mut raw = vec![0u8];
    encode_record(&mut raw, 1, b"one");
    encode_record(&mut raw, 2, b"two");
    write("segment", "records", &raw);
    let mut model = 7u64.to_le_bytes().to_vec();
    model.extend((0..200u32).map(|i| (i * 37 % 251) as u8));
    write("wal_model", "steps", &model);
}
