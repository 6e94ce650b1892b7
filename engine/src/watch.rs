//! The watch registry of one core (ZooKeeper's `WatchManager`, data and
//! child managers together). Each core owns the watches of the sessions
//! connected to it and fires them when it consumes a committed batch, in
//! zxid order, before it replies to anything that observed the change.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::path;
use crate::types::{AddWatchMode, EventType, SessionId, WatcherType};

/// An event to deliver to one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedEvent {
    pub event: EventType,
    pub path: Arc<str>,
}

type Table = HashMap<String, HashSet<SessionId>>;

#[derive(Default, Debug)]
pub struct WatchManager {
    /// One-shot data watches (getData and exists).
    data: Table,
    /// One-shot child watches (getChildren).
    child: Table,
    persistent: Table,
    recursive: Table,
    /// Number of (path, session, kind) registrations, kept exact so the
    /// four-letter words can report it without walking the tables.
    count: usize,
}

fn add(t: &mut Table, p: &str, s: SessionId) -> bool {
    t.entry(p.to_string()).or_default().insert(s)
}

fn remove(t: &mut Table, p: &str, s: SessionId) -> bool {
    let Some(set) = t.get_mut(p) else {
        return false;
    };
    let removed = set.remove(&s);
    if set.is_empty() {
        t.remove(p);
    }
    removed
}

fn contains(t: &Table, p: &str, s: SessionId) -> bool {
    t.get(p).is_some_and(|set| set.contains(&s))
}

impl WatchManager {
    pub fn add_data(&mut self, p: &str, s: SessionId) {
        self.count += add(&mut self.data, p, s) as usize;
    }

    pub fn add_child(&mut self, p: &str, s: SessionId) {
        self.count += add(&mut self.child, p, s) as usize;
    }

    pub fn add_persistent(&mut self, p: &str, mode: AddWatchMode, s: SessionId) {
        let added = match mode {
            AddWatchMode::Persistent => add(&mut self.persistent, p, s),
            AddWatchMode::PersistentRecursive => add(&mut self.recursive, p, s),
        };
        self.count += added as usize;
    }

    /// Number of watch registrations on this core.
    pub fn count(&self) -> usize {
        self.count
    }

    /// checkWatches: does the session hold a watch of this kind here?
    pub fn has(&self, p: &str, kind: WatcherType, s: SessionId) -> bool {
        let persistent = contains(&self.persistent, p, s) || contains(&self.recursive, p, s);
        match kind {
            WatcherType::Children => contains(&self.child, p, s) || persistent,
            WatcherType::Data => contains(&self.data, p, s) || persistent,
            WatcherType::Any => {
                contains(&self.child, p, s) || contains(&self.data, p, s) || persistent
            }
            WatcherType::Persistent => contains(&self.persistent, p, s),
            WatcherType::PersistentRecursive => contains(&self.recursive, p, s),
        }
    }

    /// removeWatches: as ZooKeeper, removing data or child watches also
    /// removes the persistent watches of the session at that path.
    pub fn remove(&mut self, p: &str, kind: WatcherType, s: SessionId) -> bool {
        let mut removed = false;
        let persistent = |w: &mut WatchManager| {
            let a = remove(&mut w.persistent, p, s);
            let b = remove(&mut w.recursive, p, s);
            a | b
        };
        match kind {
            WatcherType::Children => {
                removed |= remove(&mut self.child, p, s);
                removed |= persistent(self);
            }
            WatcherType::Data => {
                removed |= remove(&mut self.data, p, s);
                removed |= persistent(self);
            }
            WatcherType::Any => {
                removed |= remove(&mut self.child, p, s);
                removed |= remove(&mut self.data, p, s);
                removed |= persistent(self);
            }
            WatcherType::Persistent => removed |= remove(&mut self.persistent, p, s),
            WatcherType::PersistentRecursive => removed |= remove(&mut self.recursive, p, s),
        }
        self.recount();
        removed
    }

    fn recount(&mut self) {
        self.count = [&self.data, &self.child, &self.persistent, &self.recursive]
            .iter()
            .map(|t| t.values().map(|set| set.len()).sum::<usize>())
            .sum();
    }

    /// Drops every watch of a session that closed or moved away.
    pub fn remove_session(&mut self, s: SessionId) {
        let mut removed = 0;
        for t in [
            &mut self.data,
            &mut self.child,
            &mut self.persistent,
            &mut self.recursive,
        ] {
            t.retain(|_, set| {
                removed += set.remove(&s) as usize;
                !set.is_empty()
            });
        }
        self.count -= removed;
    }

    /// Fires the watches a change triggers and returns who gets which event.
    /// Each session gets at most one event per trigger. One-shot watches are
    /// consumed; persistent ones stay. Recursive watches on the path and its
    /// ancestors see created/deleted/data events but not child events, as
    /// in ZooKeeper.
    pub fn trigger(&mut self, p: &str, event: EventType, out: &mut Vec<(SessionId, WatchedEvent)>) {
        let mut fired: HashSet<SessionId> = HashSet::new();
        let one_shot: &mut [&mut Table] = match event {
            EventType::NodeCreated | EventType::NodeDataChanged => &mut [&mut self.data],
            EventType::NodeDeleted => &mut [&mut self.data, &mut self.child],
            EventType::NodeChildrenChanged => &mut [&mut self.child],
            _ => &mut [],
        };
        let mut consumed = 0;
        for t in one_shot.iter_mut() {
            if let Some(set) = t.remove(p) {
                consumed += set.len();
                fired.extend(set);
            }
        }
        self.count -= consumed;
        if let Some(set) = self.persistent.get(p) {
            fired.extend(set.iter().copied());
        }
        if event != EventType::NodeChildrenChanged && !self.recursive.is_empty() {
            let mut cur = p;
            loop {
                if let Some(set) = self.recursive.get(cur) {
                    fired.extend(set.iter().copied());
                }
                if cur == "/" {
                    break;
                }
                cur = path::parent(cur);
            }
        }
        if fired.is_empty() {
            return;
        }
        let ev = WatchedEvent {
            event,
            path: Arc::from(p),
        };
        let mut sessions: Vec<SessionId> = fired.into_iter().collect();
        sessions.sort_unstable();
        out.extend(sessions.into_iter().map(|s| (s, ev.clone())));
    }

    /// Path -> sessions of the watches ZooKeeper keeps in its `dataWatches`
    /// table, the only one `wchs`, `wchc`, `wchp` and the admin server's
    /// watch commands report: getData and exists watches, and persistent
    /// watches of both modes (ZooKeeper's `DataTree.addWatch` registers
    /// those there too; measured on 3.8). Child watches are left out. A
    /// session watching a path in several ways is listed once, as ZooKeeper
    /// keeps one entry per watcher and path. Sorted by path, sessions
    /// sorted.
    pub fn data_by_path(&self) -> Vec<(String, Vec<SessionId>)> {
        let mut m: HashMap<&str, HashSet<SessionId>> = HashMap::new();
        for t in [&self.data, &self.persistent, &self.recursive] {
            for (p, set) in t {
                m.entry(p).or_default().extend(set.iter().copied());
            }
        }
        let mut v: Vec<(String, Vec<SessionId>)> = m
            .into_iter()
            .map(|(p, s)| {
                let mut s: Vec<_> = s.into_iter().collect();
                s.sort_unstable();
                (p.to_string(), s)
            })
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(w: &mut WatchManager, p: &str, e: EventType) -> Vec<SessionId> {
        let mut out = Vec::new();
        w.trigger(p, e, &mut out);
        out.into_iter().map(|(s, _)| s).collect()
    }

    #[test]
    fn count_follows_adds_triggers_and_removals() {
        let mut w = WatchManager::default();
        w.add_data("/a", 1);
        w.add_data("/a", 1);
        w.add_child("/a", 2);
        w.add_persistent("/", AddWatchMode::PersistentRecursive, 3);
        assert_eq!(w.count(), 3);
        fire(&mut w, "/a", EventType::NodeDataChanged);
        assert_eq!(w.count(), 2);
        w.remove("/a", WatcherType::Children, 2);
        assert_eq!(w.count(), 1);
        w.remove_session(3);
        assert_eq!(w.count(), 0);
        assert!(w.data_by_path().is_empty());
    }

    #[test]
    fn data_by_path_is_zookeepers_data_watch_table() {
        let mut w = WatchManager::default();
        w.add_data("/a", 2);
        w.add_data("/a", 1);
        w.add_child("/a", 3);
        w.add_child("/", 3);
        w.add_persistent("/a", AddWatchMode::Persistent, 1);
        w.add_persistent("/r", AddWatchMode::PersistentRecursive, 4);
        assert_eq!(
            w.data_by_path(),
            vec![("/a".to_string(), vec![1, 2]), ("/r".to_string(), vec![4])]
        );
    }

    #[test]
    fn one_shot_fires_once() {
        let mut w = WatchManager::default();
        w.add_data("/a", 1);
        assert_eq!(fire(&mut w, "/a", EventType::NodeDataChanged), vec![1]);
        assert!(fire(&mut w, "/a", EventType::NodeDataChanged).is_empty());
    }

    #[test]
    fn delete_fires_data_and_child_watch_once() {
        let mut w = WatchManager::default();
        w.add_data("/a", 1);
        w.add_child("/a", 1);
        w.add_child("/a", 2);
        assert_eq!(fire(&mut w, "/a", EventType::NodeDeleted), vec![1, 2]);
    }

    #[test]
    fn recursive_sees_descendants_but_not_child_events() {
        let mut w = WatchManager::default();
        w.add_persistent("/a", AddWatchMode::PersistentRecursive, 1);
        w.add_persistent("/a", AddWatchMode::Persistent, 2);
        assert_eq!(fire(&mut w, "/a/b/c", EventType::NodeCreated), vec![1]);
        assert_eq!(fire(&mut w, "/a", EventType::NodeChildrenChanged), vec![2]);
        assert_eq!(fire(&mut w, "/a", EventType::NodeDataChanged), vec![1, 2]);
        // Persistent watches stay.
        assert_eq!(fire(&mut w, "/a", EventType::NodeDataChanged), vec![1, 2]);
        assert!(w.remove("/a", WatcherType::PersistentRecursive, 1));
        assert!(!w.remove("/a", WatcherType::PersistentRecursive, 1));
    }
}
