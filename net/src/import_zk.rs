//! `corral import-zk`: an Apache ZooKeeper 3.x data directory turned into a
//! corral data directory.
//!
//! # Layout
//! - `format` — ZooKeeper's snapshot, log and transaction formats; pure.
//! - `tree` — ZooKeeper's data tree as its restore changes it; pure.

pub mod format;
pub mod tree;
