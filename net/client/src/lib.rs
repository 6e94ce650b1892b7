//! A ZooKeeper-protocol client over the project's own jute codec: what
//! `corral cli` and corral-loadgen speak to a server (corral or Apache
//! ZooKeeper).
//!
//! It owns the client side of the wire protocol and a session's life:
//! connecting over a multi-host connect string with a chroot, pings,
//! reconnecting with session re-attach, re-registering watches, and
//! delivering watch events. It must never print, decide what a command
//! shows, or depend on the server's crates beyond `engine`'s types and
//! codec: the CLI and the load generator decide that.
//!
//! # Layout
//! - `codec` — client-side frames, pure encode/decode (the mirror of
//!   `net::proto`).
//! - `connect_string` — `host:port,.../chroot` and client-side path checks
//!   ↔ `ConnectStringParser`, `PathUtils`.
//! - `event` — session states and watch events, printed as Java does.
//! - `watches` — the watches a session holds ↔ `ZKWatchManager`.
//! - `tls` — TLS to a secure client port ↔ `ClientX509Util` (PEM only).
//! - `cnxn` — the connection task ↔ `ClientCnxn`.
//! - `zookeeper` — the handle, one method per operation ↔ `ZooKeeper`.

pub mod cnxn;
pub mod codec;
pub mod connect_string;
pub mod event;
pub mod tls;
pub mod watches;
pub mod zookeeper;

pub use connect_string::ConnectString;
pub use event::{KeeperState, State, WatchedEvent};
pub use tls::Tls;
pub use zookeeper::{Client, Error};
