//! corral's write-ahead log: preallocated, zero-filled segment files of
//! checksummed records, written with O_DIRECT and group-committed (one write
//! and one fdatasync per batch), and read back at startup.
//!
//! The log is fail-stop: after a write or sync error it refuses every later
//! write, because an fsync that failed once cannot be trusted to have
//! persisted anything (the kernel may have dropped the dirty pages).
//!
//! # Layout
//! - `disk` — the `Disk` trait: glommio's O_DIRECT files, and an in-memory
//!   twin that loses, tears and fails writes for the model test.
//! - `epoch` — the two ZAB epochs, persisted atomically in one small file.
//! - `fuzz` — the bodies of the fuzz targets in `storage/fuzz/`.
//! - `format` — the byte layout of segments and records; pure encode/decode.
//! - `recovery` — reads a log directory back, truncating a torn tail.
//! - `model` — the model test of the log over the twin (also a fuzz target).
//! - `segment` — the aligned write cursor, and the sector-level disk of its own model test.
//! - `wal` — the writer with group commit, generic over the `Disk`.
//! - `snapshot` — rkyv snapshots read through a memory map, and retention.

pub mod disk;
pub mod epoch;
pub mod format;
#[doc(hidden)]
pub mod fuzz;
pub mod model;
pub mod recovery;
pub mod segment;
pub mod snapshot;
pub mod wal;

pub use recovery::{recover, recover_after, Recovered, RecoveryError, Tail};
pub use wal::{Wal, WalConfig, WalError, WalOn};
