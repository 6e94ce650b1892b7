//! The shell around the engine: the ZooKeeper wire codec, connections, the
//! per-core glommio runtime that drives the engine, configuration, and the
//! `corral` binary.
//!
//! It owns every side effect the engine must not have: sockets, files,
//! clocks and threads. It must never decide what a request does: that is
//! the engine's.
//!
//! # Layout
//! - `proto` — ZooKeeper wire frames, pure encode/decode.
//! - `config` — zoo.cfg and flags.
//! - `server` — executors, cores, connections, the group-commit loop.
//! - `stats` — the server's figures as data, shared by the four-letter
//!   words, the admin commands and the metrics.
//! - `fourlw` — four-letter words (text).
//! - `admin` — the admin HTTP server: ZooKeeper's admin commands (JSON),
//!   `/metrics`, `/health`, `/ready`.
//! - `metrics` — counters and histograms, Prometheus text.
//! - `snap` — tree <-> snapshot conversion, choosing the snapshot to load.
//! - `tools` — `corral log dump` and `corral snapshot inspect`.
//! - `import_zk` — `corral import-zk`: an Apache ZooKeeper data directory
//!   into a corral one.
//! - `cli` — `corral cli`, a zkCli-compatible shell over the `client` crate.

pub mod admin;
pub mod cli;
pub mod config;
pub mod fourlw;
pub mod import_zk;
pub mod metrics;
pub mod proto;
pub mod quorum;
pub mod replica;
pub mod server;
pub mod snap;
pub mod stats;
pub mod tls;
pub mod tools;
