//! The pure core of corral: the znode tree, sessions, watches, ACLs and the
//! request pipeline (ZooKeeper's PrepRequestProcessor and the apply half of
//! FinalRequestProcessor).
//!
//! This crate never performs I/O, reads a clock, spawns a thread or draws
//! randomness from the environment. It is driven by inputs — client
//! requests, ticks carrying the time, "persisted up to zxid" — and answers
//! with outputs (log records to persist, committed entries to publish). The
//! shell in `net/` executes them. That keeps it deterministic, so one seed
//! replays one history, and keeps the ordering rules in one place.
//!
//! # Layout
//! - `constants` — every limit, named `*_max`, in one place.
//! - `types` — ZooKeeper's nouns: `Zxid`, `Stat`, `Acl`, error codes, modes.
//! - `jute` — big-endian reader/writer for ZooKeeper's jute encoding.
//! - `path` — path validation (ZooKeeper's `PathUtils`).
//! - `acl` — ACL checks, `fixupACL`, digest, ip and super schemes.
//! - `tree` — the persistent (structurally shared) data tree.
//! - `op` — client operations and their results.
//! - `txn` — transactions, the unit of the log, and their encoding.
//! - `prep` — validation of writes against the tree ↔ `PrepRequestProcessor`.
//! - `apply` — txn application and reads ↔ `DataTree`/`FinalRequestProcessor`.
//! - `session` — session table with tick-bucket expiry ↔ `SessionTrackerImpl`.
//! - `watch` — watch registry of one core ↔ `WatchManager`.
//! - `pipeline` — the write pipeline state machine that ties them together.
//! - `zab` — replication: election, sync and broadcast between servers.
//! - `sim` — a deterministic simulator of whole ensembles, for tests.

pub mod acl;
pub mod apply;
pub mod constants;
pub mod jute;
pub mod op;
pub mod path;
pub mod pipeline;
pub mod prep;
pub mod session;
pub mod sim;
pub mod tree;
pub mod txn;
pub mod types;
pub mod watch;
pub mod zab;

pub use types::*;
