//! The model test of the log: the real `WalOn` and recovery code on the
//! fault-injecting [`FaultyDisk`], driven by random choices (a seed in
//! `cargo test`, the input bytes in the fuzz target `storage/fuzz`), and
//! compared with a plain oracle after every restart.
//!
//! Steps: append a batch of records with increasing zxids (sometimes
//! starting a new epoch), probe the sync latency (a rewrite and sync of the
//! last block), inject a fault (any operation kind, after a few more
//! operations, once or for good), leave a purged segment for the log to
//! recycle (an old segment image full of valid records with older zxids,
//! as the snapshot purge leaves them), install a snapshot (`restart_at`), drop
//! records after a zxid (`truncate_after`, ZAB's TRUNC, then a restart),
//! and restart: after a power loss (unsynced sectors kept, lost or torn, a
//! prefix of unsynced directory changes kept) or after the process alone
//! died (everything in the page cache still there).
//!
//! Checked:
//! - an append that returned `Ok` is never lost: every acknowledged record
//!   comes back after every later restart, in order, intact;
//! - nothing comes back that was never appended: after the acknowledged
//!   records there may only be a prefix of the one batch whose append
//!   failed;
//! - recovery succeeds (zxids gap-free, no corruption reported: the twin
//!   only does what a crash can do);
//! - fail-stop: after a failed append, `restart_at` or probe, every later
//!   call fails with `WalError::Failed` and touches nothing on the disk;
//! - after a successful `restart_at`, no record of the old log returns.
//!
//! The server's part is mirrored: at startup it skips records the snapshot
//! holds and opens the log at one past whichever is newer.
//!
//! It lives in the library, not in `tests/`, so the fuzz target can run it.

use std::path::{Path, PathBuf};

use futures_lite::future::block_on;

use crate::disk::{Disk, Fault, FaultyDisk, Op};
use crate::format::{zxid_follows, HEADER_LEN};
use crate::recovery::{recover_on, truncate_after_on};
use crate::wal::{WalConfig, WalError, WalOn};

/// Where the model's choices come from.
pub trait Choices {
    /// A number below `n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64;
    /// Whether the choices ran out (the run then stops).
    fn exhausted(&self) -> bool {
        false
    }
}

/// Choices from a seed (xorshift64).
pub struct Seeded(u64);

impl Seeded {
    pub fn new(seed: u64) -> Seeded {
        Seeded(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
}

impl Choices for Seeded {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Choices read from fuzz input, one or two bytes each; zeros once spent.
pub struct FromBytes<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> FromBytes<'a> {
    pub fn new(bytes: &'a [u8]) -> FromBytes<'a> {
        FromBytes { bytes, pos: 0 }
    }
}

impl Choices for FromBytes<'_> {
    fn below(&mut self, n: u64) -> u64 {
        let width = if n <= 256 { 1 } else { 2 };
        let mut v = 0u64;
        for _ in 0..width {
            v = v << 8 | u64::from(self.bytes.get(self.pos).copied().unwrap_or(0));
            self.pos += 1;
        }
        v % n
    }

    fn exhausted(&self) -> bool {
        self.pos >= self.bytes.len()
    }
}

/// What one run did, for the tests' sanity checks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub steps: usize,
    pub acknowledged: usize,
    pub restarts: usize,
    pub crashes: usize,
    pub failures: usize,
    pub rolls: usize,
    /// Rolls onto a recycled segment (one the `pool` step left).
    pub recycled: usize,
    pub snapshots: usize,
    pub truncations: usize,
}

type Record = (i64, Vec<u8>);

struct Model {
    disk: FaultyDisk,
    dir: PathBuf,
    config: WalConfig,
    wal: Option<WalOn<FaultyDisk>>,
    /// The records after `base` the log holds as far as the writer knows:
    /// acknowledged ones and ones recovery found.
    log: Vec<Record>,
    /// How many of `log` must survive anything: all of it once a later
    /// append is acknowledged (a record cannot survive without the ones
    /// before it, since zxids are gap-free).
    must: usize,
    /// The batch whose append failed: it may or may not come back.
    maybe: Vec<Record>,
    /// The zxid of the newest installed snapshot (0: none).
    base: i64,
    /// A `restart_at(base + 1)` succeeded: no record at or below `base`
    /// may come back.
    old_gone: bool,
    failed: bool,
    trace: Vec<String>,
    summary: Summary,
}

fn payload(zxid: i64, len: usize) -> Vec<u8> {
    let mut x = (zxid as u64).wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn describe(records: &[Record]) -> String {
    match (records.first(), records.last()) {
        (Some(a), Some(b)) => format!("{} records {:#x}..={:#x}", records.len(), a.0, b.0),
        _ => "no records".into(),
    }
}

impl Model {
    fn last_zxid(&self) -> i64 {
        self.log.last().map_or(self.base, |r| r.0)
    }

    fn note(&mut self, what: String) {
        if self.trace.len() == 40 {
            self.trace.remove(0);
        }
        self.trace.push(what);
    }

    fn fail(&self, what: String) -> String {
        format!(
            "{what}\nlast steps (oldest first):\n  {}",
            self.trace.join("\n  ")
        )
    }

    /// A failed log must refuse without touching the disk.
    fn check_refused<T>(
        &self,
        call: &str,
        ops_before: u64,
        r: Result<T, WalError>,
    ) -> Result<(), String> {
        match r {
            Err(WalError::Failed) => {}
            Err(e) => return Err(self.fail(format!("{call} on a failed log: {e}, not Failed"))),
            Ok(_) => return Err(self.fail(format!("{call} succeeded on a failed log"))),
        }
        if self.disk.ops() != ops_before {
            return Err(self.fail(format!("{call} on a failed log touched the disk")));
        }
        Ok(())
    }

    fn append(&mut self, c: &mut impl Choices) -> Result<(), String> {
        let mut zxid = self.last_zxid();
        let count = 1 + c.below(8) as usize;
        let mut batch = Vec::with_capacity(count);
        for _ in 0..count {
            zxid = if c.below(30) == 0 {
                // A new leader: next epoch, counter 1.
                (((zxid as u64 >> 32) + 1) << 32 | 1) as i64
            } else {
                zxid + 1
            };
            let len = match c.below(20) {
                0 => 1 + c.below(20_000) as usize,
                1..=4 => 1 + c.below(4096) as usize,
                _ => 1 + c.below(300) as usize,
            };
            batch.push((zxid, payload(zxid, len)));
        }
        self.note(format!("append {}", describe(&batch)));
        let ops = self.disk.ops();
        let pooled = self.pooled();
        let wal = self.wal.as_mut().expect("open");
        let before = wal.segment_path().to_path_buf();
        let r = block_on(wal.append(&batch));
        let rolled = wal.segment_path() != before;
        self.summary.recycled += pooled.saturating_sub(self.pooled());
        if self.failed {
            return self.check_refused("append", ops, r);
        }
        match r {
            Ok(()) => {
                self.summary.rolls += usize::from(rolled);
                self.summary.acknowledged += batch.len();
                self.log.extend(batch);
                self.must = self.log.len();
            }
            Err(e) => {
                self.note(format!("  failed: {e}"));
                if !self.wal.as_ref().expect("open").is_failed() {
                    return Err(self.fail("append failed but the log is not failed".into()));
                }
                self.failed = true;
                self.summary.failures += 1;
                self.maybe = batch;
            }
        }
        Ok(())
    }

    /// What the snapshot purge does to an old segment: renames it for the
    /// log to reuse as its next spare. Its records are valid, with zxids up
    /// to the snapshot's (the purge recycles only segments the snapshots
    /// kept hold entirely, and a server's snapshot holds only committed
    /// transactions, which no TRUNC takes back): below anything the log
    /// writes next. They must never come back. Errors are ignored: a purge
    /// that fails leaves nothing to recycle.
    fn pool(&mut self, c: &mut impl Choices) {
        let last = self.base;
        if last < 1 {
            return;
        }
        let first = 1 + c.below(last as u64) as i64;
        let len = self.config.segment_bytes.max(16 * 1024);
        let mut bytes = Vec::new();
        let mut zxid = first;
        while zxid <= last && HEADER_LEN + bytes.len() < len - 400 {
            let n = 1 + c.below(300) as usize;
            crate::format::encode_record(&mut bytes, zxid, &payload(zxid, n));
            zxid += 1;
        }
        bytes.truncate(len - HEADER_LEN);
        let path = self.dir.join(crate::format::recycled_name(first));
        self.note(format!(
            "pool {} with records {first:#x}..{:#x}",
            path.display(),
            zxid - 1
        ));
        let _ = self
            .disk
            .create_zeroed(&path, len, &crate::format::encode_header(first))
            .and_then(|()| self.disk.write_synced(&path, HEADER_LEN as u64, &bytes))
            .and_then(|()| self.disk.sync_dir(&self.dir));
    }

    /// Segments waiting in the recycle pool.
    fn pooled(&self) -> usize {
        self.disk
            .list(&self.dir)
            .map(|names| {
                names
                    .iter()
                    .filter(|n| crate::format::is_recycled_name(n))
                    .count()
            })
            .unwrap_or(0)
    }

    fn probe(&mut self) -> Result<(), String> {
        self.note("probe_sync_latency".into());
        let ops = self.disk.ops();
        let r = block_on(self.wal.as_mut().expect("open").probe_sync_latency());
        if self.failed {
            return self.check_refused("probe_sync_latency", ops, r);
        }
        if let Err(e) = r {
            self.note(format!("  failed: {e}"));
            // The probe is not an append, but an error there must fail the
            // log as well: the rewritten block held synced records.
            if !self.wal.as_ref().expect("open").is_failed() {
                return Err(self.fail(format!(
                    "probe_sync_latency failed ({e}) but the log still accepts writes"
                )));
            }
            self.failed = true;
            self.summary.failures += 1;
        }
        Ok(())
    }

    fn snapshot(&mut self, c: &mut impl Choices) -> Result<(), String> {
        // The leader's snapshot is at or past everything we hold.
        let zxid = self.last_zxid() + c.below(40) as i64;
        self.note(format!("restart_at {:#x} (snapshot {zxid:#x})", zxid + 1));
        let ops = self.disk.ops();
        let r = block_on(self.wal.as_mut().expect("open").restart_at(zxid + 1));
        if self.failed {
            return self.check_refused("restart_at", ops, r);
        }
        // The caller wrote the snapshot durably first.
        self.base = zxid;
        self.must = 0;
        self.log.clear();
        self.maybe.clear();
        self.summary.snapshots += 1;
        match r {
            Ok(()) => self.old_gone = true,
            Err(e) => {
                self.note(format!("  failed: {e}"));
                self.failed = true;
                self.summary.failures += 1;
                self.old_gone = false;
            }
        }
        Ok(())
    }

    /// ZAB's TRUNC: the server stops writing, drops every record after
    /// `after` (`truncate_after`), and restarts.
    fn truncate(&mut self, c: &mut impl Choices) -> Result<(), String> {
        let keep = c.below(self.log.len() as u64 + 1) as usize;
        let after = if keep == 0 {
            self.base
        } else {
            self.log[keep - 1].0
        };
        self.note(format!(
            "truncate_after {after:#x} (keeps {keep} of {})",
            self.log.len()
        ));
        self.wal = None;
        let mut dropped = self.log.split_off(keep);
        dropped.append(&mut self.maybe);
        self.must = self.must.min(keep);
        match truncate_after_on(&self.disk, &self.dir, after) {
            Ok(_) => {}
            Err(e) => {
                // Cut short: the dropped records (and a failed batch after
                // them) may still be there.
                self.note(format!("  failed: {e}"));
                self.summary.failures += 1;
                self.maybe = dropped;
            }
        }
        self.summary.truncations += 1;
        self.restart(c)
    }

    fn inject(&mut self, c: &mut impl Choices) {
        let op = match c.below(6) {
            0 => Some(Op::Create),
            1 => Some(Op::Write),
            2 => Some(Op::Sync),
            3 => Some(Op::Rename),
            4 => Some(Op::Remove),
            _ => None,
        };
        let fault = Fault {
            op,
            after: c.below(6),
            sticky: c.below(2) == 0,
        };
        self.note(format!("inject {fault:?}"));
        self.disk.set_fault(Some(fault));
    }

    fn restart(&mut self, c: &mut impl Choices) -> Result<(), String> {
        let crash = c.below(2) == 0;
        self.note(if crash {
            "power loss".into()
        } else {
            "process restart".into()
        });
        self.wal = None;
        if crash {
            self.disk.crash();
            self.summary.crashes += 1;
        } else {
            self.disk.set_fault(None);
        }
        self.summary.restarts += 1;
        let recovered = recover_on(&self.disk, &self.dir)
            .map_err(|e| self.fail(format!("recovery failed: {e}")))?;
        self.note(format!(
            "  recovered {}, cut {} bytes",
            describe(&recovered.records),
            recovered.truncated_bytes
        ));
        // The server skips what the snapshot holds.
        let (old, got): (Vec<Record>, Vec<Record>) = recovered
            .records
            .into_iter()
            .partition(|r| r.0 <= self.base);
        if self.old_gone && !old.is_empty() {
            return Err(self.fail(format!(
                "{} came back after restart_at({:#x}) succeeded",
                describe(&old),
                self.base + 1
            )));
        }
        if got.len() < self.must {
            return Err(self.fail(format!(
                "acknowledged records lost: recovered {} after the snapshot, {} acknowledged ({})",
                got.len(),
                self.must,
                describe(&self.log[got.len()..self.must])
            )));
        }
        let allowed: Vec<&Record> = self.log.iter().chain(self.maybe.iter()).collect();
        for (i, r) in got.iter().enumerate() {
            match allowed.get(i) {
                Some(a) if *a == r => {}
                Some(a) => {
                    return Err(self.fail(format!(
                        "recovered record {i} is {:#x} ({} bytes), expected {:#x} ({} bytes)",
                        r.0,
                        r.1.len(),
                        a.0,
                        a.1.len()
                    )))
                }
                None => {
                    return Err(self.fail(format!(
                        "recovered record {i} ({:#x}) was never appended",
                        r.0
                    )))
                }
            }
        }
        if let Some(first) = got.first() {
            if self.base != 0 && !zxid_follows(self.base, first.0) && old.is_empty() {
                return Err(self.fail(format!(
                    "the log resumes at {:#x} after the snapshot at {:#x}",
                    first.0, self.base
                )));
            }
        }
        // The log then starts over unless its end leads to the state.
        if let Some(o) = old.last() {
            if got.is_empty() && !zxid_follows(o.0, self.base + 1) {
                self.old_gone = true;
            }
        }
        self.log = got;
        self.maybe.clear();
        self.failed = false;
        self.disk.set_fault(None);
        let next_zxid = self.last_zxid() + 1;
        self.note(format!(
            "  open at {next_zxid:#x}, tail {:?}",
            recovered.tail
        ));
        let wal = block_on(WalOn::open_on(
            self.disk.clone(),
            self.config.clone(),
            recovered.tail,
            next_zxid,
        ))
        .map_err(|e| self.fail(format!("open after recovery failed: {e}")))?;
        self.wal = Some(wal);
        Ok(())
    }
}

/// Runs the model for at most `steps_max` steps (or until `choices` run
/// out); `Err` describes the first broken promise and the steps before it.
pub fn run(
    disk_seed: u64,
    choices: &mut impl Choices,
    steps_max: usize,
) -> Result<Summary, String> {
    let segment_bytes = [16, 32, 64][choices.below(3) as usize] * 1024;
    let disk = FaultyDisk::new(disk_seed).with_segment_bytes_min(16 * 1024);
    let dir = Path::new("/corral/log").to_path_buf();
    let config = WalConfig {
        dir: dir.clone(),
        segment_bytes,
        force_sync: true,
    };
    let wal = block_on(WalOn::open_on(disk.clone(), config.clone(), None, 1))
        .map_err(|e| format!("open of an empty log failed: {e}"))?;
    let mut m = Model {
        disk,
        dir,
        config,
        wal: Some(wal),
        log: Vec::new(),
        must: 0,
        maybe: Vec::new(),
        base: 0,
        old_gone: false,
        failed: false,
        trace: Vec::new(),
        summary: Summary::default(),
    };
    for step in 0..steps_max {
        if choices.exhausted() {
            break;
        }
        m.summary.steps = step + 1;
        match choices.below(100) {
            0..=56 => m.append(choices)?,
            57..=59 => m.pool(choices),
            60..=64 => m.probe()?,
            65..=74 => m.inject(choices),
            75..=76 => m.snapshot(choices)?,
            77..=78 => m.truncate(choices)?,
            _ => m.restart(choices)?,
        }
    }
    // Every run ends with a power loss and one last check.
    m.note("final power loss".into());
    m.wal = None;
    m.disk.crash();
    let mut last = Seeded::new(0);
    // `restart` draws one choice for the kind: a crash already happened,
    // so either kind checks the same thing.
    m.restart(&mut last)?;
    Ok(m.summary)
}

/// Runs seeds `seeds`, panicking with the seed and a replay command on the
/// first failure. Returns the totals.
pub fn run_seeds(seeds: std::ops::Range<u64>, steps_max: usize) -> Summary {
    let mut total = Summary::default();
    for seed in seeds {
        match run(seed, &mut Seeded::new(seed), steps_max) {
            Ok(s) => {
                total.steps += s.steps;
                total.acknowledged += s.acknowledged;
                total.restarts += s.restarts;
                total.crashes += s.crashes;
                total.failures += s.failures;
                total.rolls += s.rolls;
                total.recycled += s.recycled;
                total.snapshots += s.snapshots;
                total.truncations += s.truncations;
            }
            Err(e) => panic!(
                "WAL model test failed with seed {seed} ({steps_max} steps)\n\
                 replay: CORRAL_WAL_SEED={seed} cargo test -p storage --release wal_model_replay -- --ignored --nocapture\n{e}"
            ),
        }
    }
    total
}
