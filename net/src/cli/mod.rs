//! `corral cli`: a client shell that behaves as Apache ZooKeeper 3.8's
//! zkCli (`org.apache.zookeeper.ZooKeeperMain`), so that people and
//! scripts used to zkCli can keep their habits and their output parsers.
//!
//! Same options (`-server host:port[,host:port]/chroot`, `-timeout ms`,
//! `-r`, `-waitforconnection`), same words, same output on the same
//! streams, same exit codes. The differences are deliberate and few: a
//! one-shot command closes its session on exit (zkCli leaves it to
//! expire), the quota and reconfig commands are not offered, and the
//! interactive shell keeps its history across runs and completes znode
//! paths from the server (zkCli's JLine completion, which Debian's package
//! does not ship).
//!
//! # Layout
//! - `options` — splitting a line into words, each command's options
//!   (Commons CLI's `DefaultParser`).
//! - `format` — Stat blocks, dates, ACLs, error sentences.
//! - `commands` — the commands that talk to the server
//!   (`org.apache.zookeeper.cli.*Command`).
//! - `shell` — `ZooKeeperMain`: one-shot and interactive modes, history,
//!   redo, connect, watch events, line editing and completion.

pub mod commands;
pub mod format;
pub mod options;
pub mod shell;

use std::io::Write;

/// Writes to stdout at once (zkCli's `System.out` flushes every line).
pub fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    // A closed stdout (a pipe whose reader left) is not worth a panic.
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

/// Writes to stderr at once.
pub fn err(s: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(s.as_bytes());
    let _ = e.flush();
}

/// Runs the shell with zkCli's arguments; returns the exit status.
pub fn main(args: Vec<String>) -> i32 {
    shell::main(args)
}
