//! Conversions between the engine's tree and storage's snapshot format, and
//! choosing the snapshot to start from.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use engine::tree::{Attach, DataTree, Finished, Node, Restore};
use engine::types::{Acl, AclList, Id, SessionId};
use storage::snapshot::{
    self, ArchivedSnapshot, ArchivedSnapshotNode, SnapshotAcl, SnapshotSession,
};
use tracing::{info, warn};

/// Writes a snapshot of one tree version to `dir` (`paced` as in
/// `storage::snapshot::write_from`), streamed from the tree: paths and
/// values are not copied, and nothing the size of the snapshot is held in
/// memory. The file is the one a `Snapshot` of the tree would give (tested
/// against the tests' `to_snapshot`).
pub fn write_tree(
    dir: &std::path::Path,
    tree: &DataTree,
    sessions: Vec<(SessionId, i32)>,
    paced: bool,
) -> Result<(PathBuf, u64), snapshot::SnapshotError> {
    let mut acls = AclTable::default();
    // One walk of the tree (a walk is a hash lookup per node); the two
    // passes of the serialiser go over this list. Parents before children,
    // siblings in order: the order `DataTree::restore` rebuilds fastest.
    let nodes: Vec<(&str, &Node, u32)> = tree
        .preorder()
        .map(|(path, node)| (&**path, &**node, acls.index(&node.acl)))
        .collect();
    let sessions: Vec<SnapshotSession> = sessions
        .into_iter()
        .map(|(id, timeout_ms)| SnapshotSession { id, timeout_ms })
        .collect();
    let source = snapshot::SnapshotRef {
        zxid: tree.last_zxid,
        acls: &acls.lists,
        nodes: nodes
            .iter()
            .map(|&(path, node, acl)| node_ref(path, node, acl)),
        sessions: &sessions,
    };
    snapshot::write_from(dir, &source, paced)
}

/// A node as the snapshot holds it, `acl` being its index in the snapshot's
/// ACL lists.
fn node_ref<'a>(path: &'a str, node: &'a Node, acl: u32) -> snapshot::NodeRef<'a> {
    snapshot::NodeRef {
        path,
        data: node.data.as_deref(),
        acl,
        czxid: node.czxid,
        mzxid: node.mzxid,
        pzxid: node.pzxid,
        ctime: node.ctime,
        mtime: node.mtime,
        version: node.version,
        cversion: node.cversion,
        aversion: node.aversion,
        ephemeral_owner: node.ephemeral_owner,
    }
}

/// Distinct ACL lists in the order first met, by their shared copy.
#[derive(Default)]
struct AclTable {
    index: HashMap<*const Vec<Acl>, u32>,
    lists: Vec<Vec<SnapshotAcl>>,
}

impl AclTable {
    fn index(&mut self, acl: &AclList) -> u32 {
        let lists = &mut self.lists;
        *self.index.entry(Arc::as_ptr(acl)).or_insert_with(|| {
            lists.push(
                acl.iter()
                    .map(|a| SnapshotAcl {
                        perms: a.perms,
                        scheme: a.id.scheme.clone(),
                        id: a.id.id.clone(),
                    })
                    .collect(),
            );
            (lists.len() - 1) as u32
        })
    }
}

/// Rebuilds the tree and the sessions from a validated archive.
///
/// Two threads share the work: one copies the archived nodes out of the
/// map into the engine's nodes (the allocations and the reads of the
/// file's pages) and gives each its children (`engine::tree::Attach`),
/// the calling one stores them in the tree as they come
/// (`engine::tree::Restore`). At startup both cores are otherwise idle.
pub fn from_archived(
    a: &ArchivedSnapshot,
    extended_types: bool,
) -> Result<(DataTree, Vec<(SessionId, i32)>), String> {
    let acls: Vec<AclList> = a
        .acls
        .iter()
        .map(|list| {
            Arc::from(
                list.iter()
                    .map(|x| Acl {
                        perms: x.perms.to_native(),
                        id: Id::new(x.scheme.as_str(), x.id.as_str()),
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    // Enough nodes per message that the channel costs nothing, few enough
    // that storing starts at once and the nodes in flight stay few.
    const CHUNK: usize = 8192;
    type Chunk = Result<Vec<Finished>, String>;
    let mut restore = Restore::new(extended_types, a.zxid.to_native());
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(16);
        let acls = &acls;
        std::thread::Builder::new()
            .name("corral-snapshot-read".into())
            .spawn_scoped(scope, move || {
                let mut attach = Attach::default();
                let attach_chunk = |attach: &mut Attach, archived: &[ArchivedSnapshotNode]| {
                    let mut out = Vec::with_capacity(archived.len() + 16);
                    for n in archived {
                        let (key, node) = node_of(n, acls)?;
                        attach.push(key, node, &mut out)?;
                    }
                    Ok(out)
                };
                for archived in a.nodes.as_slice().chunks(CHUNK) {
                    let chunk: Chunk = attach_chunk(&mut attach, archived);
                    let failed = chunk.is_err();
                    // A closed channel: the storing side stopped at an error.
                    if tx.send(chunk).is_err() || failed {
                        return;
                    }
                }
                let mut last = Vec::new();
                let chunk = attach.finish(&mut last).map(|()| last);
                let _ = tx.send(chunk);
            })
            .map_err(|e| format!("cannot start a thread: {e}"))?;
        for chunk in rx {
            for f in chunk? {
                restore.store(f)?;
            }
        }
        Ok::<(), String>(())
    })?;
    let tree = restore.finish()?;
    let sessions = a
        .sessions
        .iter()
        .map(|s| (s.id.to_native(), s.timeout_ms.to_native()))
        .collect();
    Ok((tree, sessions))
}

/// One archived node as the engine's, with its ACL list by index.
fn node_of(n: &ArchivedSnapshotNode, acls: &[AclList]) -> Result<(Arc<str>, Arc<Node>), String> {
    let acl = acls
        .get(n.acl.to_native() as usize)
        .cloned()
        .ok_or_else(|| format!("node {} names ACL {} of {}", n.path, n.acl, acls.len()))?;
    let data = n
        .data
        .as_ref()
        .map(|d| Bytes::copy_from_slice(d.as_slice()));
    Ok((
        Arc::from(n.path.as_str()),
        Arc::new(Node::restored(
            data,
            acl,
            n.czxid.to_native(),
            n.mzxid.to_native(),
            n.pzxid.to_native(),
            n.ctime.to_native(),
            n.mtime.to_native(),
            n.version.to_native(),
            n.cversion.to_native(),
            n.aversion.to_native(),
            n.ephemeral_owner.to_native(),
        )),
    ))
}

/// A snapshot loaded at startup: the tree, the sessions, and its file.
pub type Loaded = (DataTree, Vec<(SessionId, i32)>, PathBuf);

/// The newest of `snapshots` (as `storage::snapshot::list` gives them,
/// newest first) that loads, falling back to older ones.
pub fn load_newest(snapshots: Vec<(i64, PathBuf)>, extended_types: bool) -> Option<Loaded> {
    for (zxid, path) in snapshots {
        let started = std::time::Instant::now();
        let mut checked_ms = 0;
        let loaded = snapshot::load(&path, |a| {
            checked_ms = started.elapsed().as_millis();
            from_archived(a, extended_types)
        });
        match loaded {
            Ok(Ok(found)) => {
                info!(
                    file = %path.display(),
                    zxid = format_args!("0x{zxid:x}"),
                    znodes = found.0.node_count(),
                    checked_ms,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "loaded snapshot"
                );
                return Some((found.0, found.1, path));
            }
            Ok(Err(why)) => {
                warn!(file = %path.display(), "snapshot is inconsistent, trying an older one: {why}")
            }
            Err(e) => warn!("{e}; trying an older snapshot"),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::snapshot::{Snapshot, SnapshotNode};

    /// The tree as a whole `Snapshot` in memory: what `write_tree` streams.
    fn to_snapshot(tree: &DataTree, sessions: Vec<(SessionId, i32)>) -> Snapshot {
        let mut acls = AclTable::default();
        let mut nodes = Vec::with_capacity(tree.node_count());
        for (path, node) in tree.preorder() {
            let acl = acls.index(&node.acl);
            nodes.push(SnapshotNode::from(node_ref(path, node, acl)));
        }
        Snapshot {
            zxid: tree.last_zxid,
            acls: acls.lists,
            nodes,
            sessions: sessions
                .into_iter()
                .map(|(id, timeout_ms)| SnapshotSession { id, timeout_ms })
                .collect(),
        }
    }

    /// More nodes than one message of the reader thread carries, under
    /// several parents, with ephemerals.
    fn big_tree() -> DataTree {
        let mut t = DataTree::new(false);
        let all = t.intern_acl(&[Acl::world_all()]);
        let mut zxid = 1;
        for p in ["/a", "/b"] {
            t.create(p, None, all.clone(), 0, 0, zxid, 1).unwrap();
            zxid += 1;
        }
        for i in 0..20_000 {
            let (p, owner) = if i % 3 == 0 {
                (format!("/b/{i}"), 0x42)
            } else {
                (format!("/a/{i:06}"), 0)
            };
            let data = Bytes::from(vec![i as u8; i % 7]);
            t.create(&p, Some(data), all.clone(), owner, 0, zxid, 1)
                .unwrap();
            zxid += 1;
        }
        t
    }

    /// Writes `snap` as a file and reads it back through `from_archived`.
    fn round_trip(snap: &Snapshot) -> Result<(DataTree, Vec<(SessionId, i32)>), String> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "corral-snap-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (path, _) = snapshot::write(&dir, snap).unwrap();
        let r = snapshot::load(&path, |a| from_archived(a, false)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        r
    }

    #[test]
    fn a_snapshot_reads_back_as_the_same_tree() {
        let t = big_tree();
        let (back, sessions) = round_trip(&to_snapshot(&t, vec![(0x42, 5000)])).unwrap();
        assert_eq!(sessions, vec![(0x42, 5000)]);
        assert_eq!(back.node_count(), t.node_count());
        assert_eq!(back.last_zxid, t.last_zxid);
        assert_eq!(back.approximate_data_size, t.approximate_data_size);
        assert_eq!(back.ephemerals_of(0x42), t.ephemerals_of(0x42));
        for (p, n) in t.paths() {
            let m = back.get(p).unwrap();
            assert_eq!(m.stat(), n.stat(), "{p}");
            assert_eq!(m.data, n.data, "{p}");
            assert!(m.children.iter().eq(n.children.iter()), "{p}");
        }
    }

    #[test]
    fn a_tree_streamed_to_its_file_is_its_snapshot_byte_for_byte() {
        let mut t = big_tree();
        // A second ACL list, shared by several nodes.
        let digest = t.intern_acl(&[Acl {
            perms: 1,
            id: Id {
                scheme: "digest".into(),
                id: "u:hash".into(),
            },
        }]);
        for i in 0..5 {
            let z = t.last_zxid + 1;
            t.create(&format!("/d{i}"), None, digest.clone(), 0, 0, z, 1)
                .unwrap();
        }
        let sessions = vec![(0x42, 5000), (0x43, 30000)];
        let base = std::env::temp_dir().join(format!("corral-snap-stream-{}", std::process::id()));
        let (streamed, copied) = (base.join("streamed"), base.join("copied"));
        std::fs::create_dir_all(&streamed).unwrap();
        std::fs::create_dir_all(&copied).unwrap();
        let (a, _) = write_tree(&streamed, &t, sessions.clone(), false).unwrap();
        let (b, _) = snapshot::write(&copied, &to_snapshot(&t, sessions)).unwrap();
        assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_bad_node_part_way_is_an_error_not_a_hang() {
        let t = big_tree();
        for at in [0, 3, 9000, 20_001] {
            let mut snap = to_snapshot(&t, Vec::new());
            snap.nodes[at].acl = 7;
            let e = round_trip(&snap).unwrap_err();
            assert!(e.contains("names ACL 7 of 2"), "{e}");
        }
        // An orphan: the error comes from the storing side.
        let mut snap = to_snapshot(&t, Vec::new());
        snap.nodes.retain(|n| n.path != "/b");
        let e = round_trip(&snap).unwrap_err();
        assert!(e.contains("\"/b\" is missing"), "{e}");
    }
}
