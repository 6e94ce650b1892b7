//! The client's record of the watches it holds ↔ ZooKeeper's
//! `ZKWatchManager`, for a client with one watcher (the default one, as
//! zkCli uses): which events to deliver, which watches to re-register after
//! a reconnect, and what `removeWatches` removes locally.
//!
//! Paths are server paths (chroot included): they are what events carry
//! and what SetWatches must send.

use std::collections::BTreeSet;

use engine::op::ReadOp;
use engine::types::{AddWatchMode, ErrorCode, EventType, WatcherType};

/// Watched paths, per kind of watch.
pub const WATCHES_MAX: usize = 1_000_000;

/// What a successful (or, for exists, failed) read registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    /// getData with watch.
    Data,
    /// exists with watch: a data watch if the node exists, an exist watch
    /// if it does not (`ExistsWatchRegistration`).
    Exists,
    /// getChildren with watch.
    Child,
    /// addWatch.
    Add(AddWatchMode),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchTable {
    data: BTreeSet<String>,
    exist: BTreeSet<String>,
    child: BTreeSet<String>,
    persistent: BTreeSet<String>,
    persistent_recursive: BTreeSet<String>,
}

fn insert(set: &mut BTreeSet<String>, path: &str) {
    if set.len() < WATCHES_MAX {
        set.insert(path.to_string());
    }
}

impl WatchTable {
    /// Records the watch a reply with error `err` leaves, as
    /// `WatchRegistration.register(rc)` does.
    pub fn register(&mut self, reg: Registration, path: &str, err: ErrorCode) {
        match (reg, err) {
            (Registration::Data, ErrorCode::Ok) => insert(&mut self.data, path),
            (Registration::Exists, ErrorCode::Ok) => insert(&mut self.data, path),
            (Registration::Exists, ErrorCode::NoNode) => insert(&mut self.exist, path),
            (Registration::Child, ErrorCode::Ok) => insert(&mut self.child, path),
            (Registration::Add(AddWatchMode::Persistent), ErrorCode::Ok) => {
                insert(&mut self.persistent, path)
            }
            (Registration::Add(AddWatchMode::PersistentRecursive), ErrorCode::Ok) => {
                insert(&mut self.persistent_recursive, path)
            }
            _ => {}
        }
    }

    /// Whether a node event reaches the (default) watcher, removing the
    /// one-shot watches it consumes (`ZKWatchManager.materialize`).
    pub fn materialize(&mut self, event_type: EventType, path: &str) -> bool {
        let mut hit = match event_type {
            // State changes always reach the default watcher.
            EventType::None => return true,
            EventType::NodeDataChanged | EventType::NodeCreated => {
                // Both removals must happen: no short-circuit.
                let d = self.data.remove(path);
                let e = self.exist.remove(path);
                d | e
            }
            EventType::NodeChildrenChanged => self.child.remove(path),
            EventType::NodeDeleted => {
                let d = self.data.remove(path);
                let e = self.exist.remove(path);
                let c = self.child.remove(path);
                d | e | c
            }
            // Removal events are made locally, never materialized.
            EventType::DataWatchRemoved
            | EventType::ChildWatchRemoved
            | EventType::PersistentWatchRemoved => return true,
        };
        hit |= self.persistent.contains(path);
        hit |= ancestors_or_self(path).any(|p| self.persistent_recursive.contains(p));
        hit
    }

    /// `ZKWatchManager.removeWatcher`: the watches of `kind` on `path` go
    /// away and the removal events to deliver are returned. `rc` is the
    /// server's answer to the removeWatches request; unless `local`, a
    /// failure there is the result. A path without a matching watch is
    /// NoWatcher.
    pub fn remove(
        &mut self,
        path: &str,
        kind: WatcherType,
        local: bool,
        rc: ErrorCode,
    ) -> Result<Vec<EventType>, ErrorCode> {
        if !self.contains(path, kind) {
            return Err(ErrorCode::NoWatcher);
        }
        if !local && rc != ErrorCode::Ok {
            return Err(rc);
        }
        let mut removed = Vec::new();
        let child = matches!(kind, WatcherType::Children | WatcherType::Any);
        let data = matches!(kind, WatcherType::Data | WatcherType::Any);
        if child && self.child.remove(path) {
            removed.push(EventType::ChildWatchRemoved);
        }
        if data {
            let d = self.data.remove(path);
            let e = self.exist.remove(path);
            if d || e {
                removed.push(EventType::DataWatchRemoved);
            }
        }
        if kind == WatcherType::Any {
            let p = self.persistent.remove(path);
            let r = self.persistent_recursive.remove(path);
            if p || r {
                removed.push(EventType::PersistentWatchRemoved);
            }
        }
        if removed.is_empty() {
            return Err(ErrorCode::NoWatcher);
        }
        Ok(removed)
    }

    /// `ZKWatchManager.containsWatcher`: persistent watches count for
    /// every kind.
    fn contains(&self, path: &str, kind: WatcherType) -> bool {
        let persistent = self.persistent.contains(path) || self.persistent_recursive.contains(path);
        persistent
            || match kind {
                WatcherType::Children => self.child.contains(path),
                WatcherType::Data => self.data.contains(path) || self.exist.contains(path),
                _ => {
                    self.child.contains(path)
                        || self.data.contains(path)
                        || self.exist.contains(path)
                }
            }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.exist.is_empty()
            && self.child.is_empty()
            && self.persistent.is_empty()
            && self.persistent_recursive.is_empty()
    }

    /// The SetWatches request that re-registers every watch on a new
    /// connection, or None if there is none.
    pub fn set_watches(&self, relative_zxid: i64) -> Option<ReadOp> {
        if self.is_empty() {
            return None;
        }
        let v = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>();
        Some(ReadOp::SetWatches {
            relative_zxid,
            data: v(&self.data),
            exist: v(&self.exist),
            child: v(&self.child),
            persistent: v(&self.persistent),
            persistent_recursive: v(&self.persistent_recursive),
        })
    }
}

/// "/a/b" -> "/a/b", "/a", "/" (`PathParentIterator.forAll`).
fn ancestors_or_self(path: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(path);
    std::iter::from_fn(move || {
        let p = next?;
        next = match p.rfind('/') {
            _ if p == "/" => None,
            Some(0) => Some("/"),
            Some(i) => Some(&p[..i]),
            None => None,
        };
        Some(p)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shot_watches_fire_once() {
        let mut w = WatchTable::default();
        w.register(Registration::Data, "/a", ErrorCode::Ok);
        w.register(Registration::Child, "/a", ErrorCode::Ok);
        assert!(w.materialize(EventType::NodeDataChanged, "/a"));
        assert!(!w.materialize(EventType::NodeDataChanged, "/a"));
        assert!(w.materialize(EventType::NodeDeleted, "/a"));
        assert!(!w.materialize(EventType::NodeDeleted, "/a"));
        assert!(w.is_empty());
    }

    #[test]
    fn exists_on_a_missing_node_leaves_an_exist_watch() {
        let mut w = WatchTable::default();
        w.register(Registration::Exists, "/x", ErrorCode::NoNode);
        w.register(Registration::Data, "/y", ErrorCode::NoNode);
        let Some(ReadOp::SetWatches { exist, data, .. }) = w.set_watches(9) else {
            panic!("expected watches");
        };
        assert_eq!(exist, ["/x"]);
        assert!(data.is_empty());
        assert!(w.materialize(EventType::NodeCreated, "/x"));
    }

    #[test]
    fn recursive_watches_cover_descendants_and_stay() {
        let mut w = WatchTable::default();
        w.register(
            Registration::Add(AddWatchMode::PersistentRecursive),
            "/a",
            ErrorCode::Ok,
        );
        assert!(w.materialize(EventType::NodeCreated, "/a/b/c"));
        assert!(w.materialize(EventType::NodeDataChanged, "/a"));
        assert!(!w.materialize(EventType::NodeCreated, "/ab"));
        assert!(!w.is_empty());
    }

    #[test]
    fn root_recursive_watch_covers_everything() {
        let mut w = WatchTable::default();
        w.register(
            Registration::Add(AddWatchMode::PersistentRecursive),
            "/",
            ErrorCode::Ok,
        );
        assert!(w.materialize(EventType::NodeCreated, "/x"));
    }

    #[test]
    fn remove_is_no_watcher_without_a_local_watch() {
        let mut w = WatchTable::default();
        assert_eq!(
            w.remove("/a", WatcherType::Any, false, ErrorCode::Ok),
            Err(ErrorCode::NoWatcher)
        );
        w.register(Registration::Child, "/a", ErrorCode::Ok);
        assert_eq!(
            w.remove("/a", WatcherType::Data, false, ErrorCode::Ok),
            Err(ErrorCode::NoWatcher)
        );
        // The server's failure wins unless removing locally.
        assert_eq!(
            w.remove(
                "/a",
                WatcherType::Children,
                false,
                ErrorCode::ConnectionLoss
            ),
            Err(ErrorCode::ConnectionLoss)
        );
        assert_eq!(
            w.remove("/a", WatcherType::Children, true, ErrorCode::ConnectionLoss),
            Ok(vec![EventType::ChildWatchRemoved])
        );
    }

    #[test]
    fn remove_any_reports_each_kind_once() {
        let mut w = WatchTable::default();
        w.register(Registration::Child, "/a", ErrorCode::Ok);
        w.register(Registration::Data, "/a", ErrorCode::Ok);
        w.register(
            Registration::Add(AddWatchMode::Persistent),
            "/a",
            ErrorCode::Ok,
        );
        assert_eq!(
            w.remove("/a", WatcherType::Any, false, ErrorCode::Ok),
            Ok(vec![
                EventType::ChildWatchRemoved,
                EventType::DataWatchRemoved,
                EventType::PersistentWatchRemoved
            ])
        );
        assert!(w.is_empty());
    }

    #[test]
    fn ancestors() {
        assert_eq!(
            ancestors_or_self("/a/b").collect::<Vec<_>>(),
            ["/a/b", "/a", "/"]
        );
        assert_eq!(ancestors_or_self("/").collect::<Vec<_>>(), ["/"]);
    }
}
