//! Conversions between the engine's tree and storage's snapshot format, and
//! choosing the snapshot to start from.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use engine::tree::{DataTree, Node};
use engine::types::{Acl, AclList, Id, SessionId};
use storage::snapshot::{
    self, ArchivedSnapshot, Snapshot, SnapshotAcl, SnapshotNode, SnapshotSession,
};
use tracing::{info, warn};

/// Builds a snapshot of one tree version. ACL lists shared between nodes
/// are stored once.
pub fn to_snapshot(tree: &DataTree, sessions: Vec<(SessionId, i32)>) -> Snapshot {
    let mut acl_index: HashMap<*const [Acl], u32> = HashMap::new();
    let mut acls: Vec<Vec<SnapshotAcl>> = Vec::new();
    let mut nodes = Vec::with_capacity(tree.node_count());
    for (path, node) in tree.paths() {
        let key = Arc::as_ptr(&node.acl);
        let acl = *acl_index.entry(key).or_insert_with(|| {
            acls.push(
                node.acl
                    .iter()
                    .map(|a| SnapshotAcl {
                        perms: a.perms,
                        scheme: a.id.scheme.clone(),
                        id: a.id.id.clone(),
                    })
                    .collect(),
            );
            (acls.len() - 1) as u32
        });
        nodes.push(SnapshotNode {
            path: path.to_string(),
            data: node.data.as_ref().map(|d| d.to_vec()),
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
        });
    }
    Snapshot {
        zxid: tree.last_zxid,
        acls,
        nodes,
        sessions: sessions
            .into_iter()
            .map(|(id, timeout_ms)| SnapshotSession { id, timeout_ms })
            .collect(),
    }
}

/// Rebuilds the tree and the sessions from a validated archive.
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
    let mut nodes = Vec::with_capacity(a.nodes.len());
    for n in a.nodes.iter() {
        let acl = acls
            .get(n.acl.to_native() as usize)
            .cloned()
            .ok_or_else(|| format!("node {} names ACL {} of {}", n.path, n.acl, acls.len()))?;
        let data = n
            .data
            .as_ref()
            .map(|d| Bytes::copy_from_slice(d.as_slice()));
        nodes.push((
            n.path.to_string(),
            Node::restored(
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
            ),
        ));
    }
    let tree = DataTree::restore(extended_types, a.zxid.to_native(), nodes)?;
    let sessions = a
        .sessions
        .iter()
        .map(|s| (s.id.to_native(), s.timeout_ms.to_native()))
        .collect();
    Ok((tree, sessions))
}

/// The newest snapshot that loads, falling back to older ones.
pub fn load_newest(dir: &Path, extended_types: bool) -> Option<(DataTree, Vec<(SessionId, i32)>)> {
    for (zxid, path) in snapshot::list(dir) {
        match snapshot::load(&path, |a| from_archived(a, extended_types)) {
            Ok(Ok(found)) => {
                info!(file = %path.display(), zxid = format_args!("0x{zxid:x}"), "loaded snapshot");
                return Some(found);
            }
            Ok(Err(why)) => {
                warn!(file = %path.display(), "snapshot is inconsistent, trying an older one: {why}")
            }
            Err(e) => warn!("{e}; trying an older snapshot"),
        }
    }
    None
}
