//! corral's write-ahead log: preallocated, zero-filled segment files of
//! checksummed records, written with O_DIRECT and group-committed (one write
//! and one fdatasync per batch), and read back at startup.
//!
//! The log is fail-stop: after a write or sync error it refuses every later
//! write, because an fsync that failed once cannot be trusted to have
//! persisted anything (the kernel may have dropped the dirty pages).
//!
//! # Layout
//! - `epoch` — the two ZAB epochs, persisted atomically in one small file.
//! - `format` — the byte layout of segments and records; pure encode/decode.
//! - `recovery` — reads a log directory back, truncating a torn tail.
//! - `segment` — the aligned write cursor, and the fault-injecting disk of the model test.
//! - `wal` — the glommio writer with group commit.
//! - `snapshot` — rkyv snapshots read through a memory map, and retention.

pub mod epoch;
pub mod format;
pub mod recovery;
pub mod segment;
pub mod snapshot;
pub mod wal;

pub use recovery::{recover, Recovered, RecoveryError};
pub use wal::{Wal, WalConfig, WalError};
