//! The data tree: every znode with its data, ACL and Stat, held in
//! persistent (structurally shared) maps. Cloning a `DataTree` is O(1), which
//! is what lets the pipeline core publish an immutable version of the tree
//! per committed batch to every core, and take consistent snapshots for free.
//!
//! Corresponds to ZooKeeper's `DataTree` / `DataNode`.

use std::sync::Arc;

use bytes::Bytes;
use imbl::{HashMap, OrdSet};

use crate::types::{Acl, AclList, EphemeralKind, ErrorCode, SessionId, Stat};
use crate::{path, types::perms};

/// One znode. Children are kept as names; the full path is the map key.
#[derive(Clone, Debug)]
pub struct Node {
    /// None for null data (see `op::WriteOp::Create`).
    pub data: Option<Bytes>,
    // `cversion` below counts child creations; see `stat`.
    pub acl: AclList,
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    /// Children by full path: the very `Arc<str>` that keys the child in
    /// the tree, so a name is not stored twice (the name is the part after
    /// the last slash; order by full path is order by name among siblings).
    pub children: OrdSet<Arc<str>>,
}

impl Node {
    /// The Stat a client sees. Matches ZooKeeper's `DataNode.copyStat`:
    /// the node keeps `cversion` as the number of child creations (which is
    /// also the next sequential suffix) and shows creations plus deletions,
    /// `2 * creations - children`.
    pub fn stat(&self) -> Stat {
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self
                .cversion
                .wrapping_mul(2)
                .wrapping_sub(self.children.len() as i32),
            aversion: self.aversion,
            ephemeral_owner: self.client_ephemeral_owner(),
            data_length: self.data_len() as i32,
            num_children: self.children.len() as i32,
            pzxid: self.pzxid,
        }
    }

    /// Matches ZooKeeper's `DataNode.getClientEphemeralOwner`: clients see
    /// 0 for container and TTL nodes, whose owner field only encodes the
    /// node's kind (measured: a container's create2 Stat shows 0).
    pub fn client_ephemeral_owner(&self) -> i64 {
        let o = self.ephemeral_owner;
        if o == crate::types::CONTAINER_EPHEMERAL_OWNER
            || (o & crate::types::EXTENDED_OWNER_MASK) == crate::types::EXTENDED_OWNER_MASK
        {
            0
        } else {
            o
        }
    }

    pub fn data_len(&self) -> usize {
        self.data.as_ref().map_or(0, |d| d.len())
    }

    /// A node as read back from a snapshot (children are filled in by
    /// `DataTree::restore`).
    #[allow(clippy::too_many_arguments)]
    pub fn restored(
        data: Option<Bytes>,
        acl: AclList,
        czxid: i64,
        mzxid: i64,
        pzxid: i64,
        ctime: i64,
        mtime: i64,
        version: i32,
        cversion: i32,
        aversion: i32,
        ephemeral_owner: i64,
    ) -> Node {
        Node {
            data,
            acl,
            czxid,
            mzxid,
            pzxid,
            ctime,
            mtime,
            version,
            cversion,
            aversion,
            ephemeral_owner,
            children: OrdSet::new(),
        }
    }

    fn empty(acl: AclList) -> Node {
        Node {
            data: Some(Bytes::new()),
            acl,
            czxid: 0,
            mzxid: 0,
            pzxid: 0,
            ctime: 0,
            mtime: 0,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            children: OrdSet::new(),
        }
    }
}

/// A consistent version of the whole tree at `last_zxid`.
#[derive(Clone, Debug)]
pub struct DataTree {
    nodes: HashMap<Arc<str>, Arc<Node>>,
    ephemerals: HashMap<SessionId, OrdSet<Arc<str>>>,
    containers: OrdSet<Arc<str>>,
    ttls: OrdSet<Arc<str>>,
    /// The zxid of the last transaction applied to this version.
    pub last_zxid: i64,
    /// Sum of path and data lengths, ZooKeeper's `approximateDataSize`.
    pub approximate_data_size: i64,
    extended_types: bool,
    /// Every distinct ACL list, shared by all the nodes that use it
    /// (ZooKeeper's ReferenceCountedACLCache). Most trees have a handful,
    /// so each node holds a pointer instead of its own copy. Lists are not
    /// dropped when their last node goes; they are few and small.
    acls: HashMap<Vec<Acl>, AclList>,
}

/// The system nodes every ZooKeeper server has.
pub const ZOOKEEPER_PATH: &str = "/zookeeper";
pub const QUOTA_PATH: &str = "/zookeeper/quota";
pub const CONFIG_PATH: &str = "/zookeeper/config";

impl DataTree {
    /// A fresh tree as a fresh ZooKeeper server has it: `/`, `/zookeeper`,
    /// `/zookeeper/quota` and `/zookeeper/config`.
    pub fn new(extended_types: bool) -> DataTree {
        let all: AclList = Arc::from(vec![Acl::world_all()]);
        let read_only: AclList = Arc::from(vec![Acl {
            perms: perms::READ,
            id: crate::types::Id::new("world", "anyone"),
        }]);
        let mut t = DataTree {
            nodes: HashMap::new(),
            ephemerals: HashMap::new(),
            containers: OrdSet::new(),
            ttls: OrdSet::new(),
            last_zxid: 0,
            approximate_data_size: 0,
            extended_types,
            acls: HashMap::new(),
        };
        let all = t.intern_acl(&all);
        let read_only = t.intern_acl(&read_only);
        let mut root = Node::empty(all.clone());
        root.children.insert(Arc::from(ZOOKEEPER_PATH));
        let mut zk = Node::empty(all.clone());
        zk.children.insert(Arc::from(QUOTA_PATH));
        zk.children.insert(Arc::from(CONFIG_PATH));
        t.insert_raw("/", root);
        t.insert_raw(ZOOKEEPER_PATH, zk);
        t.insert_raw(QUOTA_PATH, Node::empty(all));
        // Matches ZooKeeper's `DataTree.addConfigNode`: it creates the node
        // and then sets its ACL to world:READ with version -1, which leaves
        // aversion at -1 (measured: a fresh server's Stat says -1).
        let mut config = Node::empty(read_only);
        config.aversion = -1;
        t.insert_raw(CONFIG_PATH, config);
        t
    }

    /// Rebuilds a tree from a snapshot's nodes (children are derived from
    /// the paths). Every node but the root must have its parent present.
    pub fn restore(
        extended_types: bool,
        last_zxid: i64,
        nodes: Vec<(String, Node)>,
    ) -> Result<DataTree, String> {
        let mut t = DataTree {
            nodes: HashMap::new(),
            ephemerals: HashMap::new(),
            containers: OrdSet::new(),
            ttls: OrdSet::new(),
            last_zxid,
            approximate_data_size: 0,
            extended_types,
            acls: HashMap::new(),
        };
        let keys: Vec<Arc<str>> = nodes.iter().map(|(p, _)| Arc::from(p.as_str())).collect();
        let mut children: std::collections::HashMap<&str, Vec<Arc<str>>> = Default::default();
        for k in &keys {
            if &**k != "/" {
                children.entry(path::parent(k)).or_default().push(k.clone());
            }
        }
        for ((p, mut node), key) in nodes.into_iter().zip(keys.iter()) {
            node.children = children
                .remove(p.as_str())
                .map(OrdSet::from)
                .unwrap_or_default();
            node.acl = t.intern_acl(&node.acl);
            let key = key.clone();
            match EphemeralKind::of(node.ephemeral_owner, extended_types) {
                EphemeralKind::Normal(session) => {
                    t.ephemerals.entry(session).or_default().insert(key.clone());
                }
                EphemeralKind::Container => {
                    t.containers.insert(key.clone());
                }
                EphemeralKind::Ttl(_) => {
                    t.ttls.insert(key.clone());
                }
                EphemeralKind::Void => {}
            }
            t.approximate_data_size += (p.len() + node.data_len()) as i64;
            t.nodes.insert(key, Arc::new(node));
        }
        if let Some((parent, _)) = children.into_iter().next() {
            return Err(format!("node {parent:?} is missing but has children"));
        }
        if t.get("/").is_none() {
            return Err("no root node".into());
        }
        Ok(t)
    }

    fn insert_raw(&mut self, path: &str, node: Node) {
        self.approximate_data_size += (path.len() + node.data_len()) as i64;
        self.nodes.insert(Arc::from(path), Arc::new(node));
    }

    /// The shared copy of an ACL list.
    pub fn intern_acl(&mut self, acl: &[Acl]) -> AclList {
        if let Some(shared) = self.acls.get(acl) {
            return shared.clone();
        }
        let shared: AclList = Arc::from(acl.to_vec());
        self.acls.insert(acl.to_vec(), shared.clone());
        shared
    }

    /// Number of distinct ACL lists.
    pub fn acl_count(&self) -> usize {
        self.acls.len()
    }

    pub fn extended_types(&self) -> bool {
        self.extended_types
    }

    /// The node at `path`. Matches ZooKeeper, whose `DataTree` keys the
    /// root under `""` as well as `"/"`: `""` is the root here too. Reads
    /// do not validate paths, so getData, exists, getChildren and getACL of
    /// `""` answer exactly what they answer for `/`; every write validates
    /// its path (or its parent's) first and refuses `""` before looking.
    pub fn get(&self, path: &str) -> Option<&Arc<Node>> {
        let path = if path.is_empty() { "/" } else { path };
        self.nodes.get(path)
    }

    /// The number of znodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The node count ZooKeeper reports (srvr "Node count", mntr
    /// `zk_znode_count`, the admin server's `node_count`/`znode_count`, the
    /// Prometheus `znode_count`): the size of its node map, which holds the
    /// root twice (`""` and `"/"`, see `get`), so one more than
    /// `node_count`. A fresh server reports 5.
    pub fn reported_node_count(&self) -> usize {
        self.nodes.len() + 1
    }

    pub fn ephemerals_of(&self, session: SessionId) -> Vec<Arc<str>> {
        self.ephemerals
            .get(&session)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(|s| s.len()).sum()
    }

    pub fn sessions_with_ephemerals(&self) -> Vec<SessionId> {
        self.ephemerals.keys().copied().collect()
    }

    pub fn containers(&self) -> impl Iterator<Item = &Arc<str>> {
        self.containers.iter()
    }

    pub fn ttls(&self) -> impl Iterator<Item = &Arc<str>> {
        self.ttls.iter()
    }

    /// All paths in the tree (for dumps and digests; O(n)).
    pub fn paths(&self) -> impl Iterator<Item = (&Arc<str>, &Arc<Node>)> {
        self.nodes.iter()
    }

    /// Number of descendants of `path` (getAllChildrenNumber).
    pub fn descendant_count(&self, path: &str) -> usize {
        let Some(node) = self.get(path) else {
            return 0;
        };
        let mut count = 0;
        let mut stack: Vec<Arc<str>> = node.children.iter().cloned().collect();
        while let Some(p) = stack.pop() {
            count += 1;
            if let Some(n) = self.get(&p) {
                stack.extend(n.children.iter().cloned());
            }
        }
        count
    }

    /// Creates a node. The caller (apply) has validated it; a missing
    /// parent or an existing node here is a broken invariant of the log.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        &mut self,
        path: &str,
        data: Option<Bytes>,
        acl: AclList,
        ephemeral_owner: i64,
        parent_cversion: i32,
        zxid: i64,
        time: i64,
    ) -> Result<Stat, ErrorCode> {
        let parent_path = path::parent(path);
        let key: Arc<str> = Arc::from(path);
        if self.nodes.contains_key(path) {
            return Err(ErrorCode::NodeExists);
        }
        let Some(parent) = self.nodes.get_mut(parent_path) else {
            return Err(ErrorCode::NoNode);
        };
        let parent = Arc::make_mut(parent);
        parent.children.insert(key.clone());
        // Matches ZooKeeper's DataTree.createNode: the parent takes the
        // cversion the prep stage computed (-1 means "current + 1").
        let cversion = if parent_cversion == -1 {
            parent.cversion + 1
        } else {
            parent_cversion
        };
        parent.cversion = cversion;
        parent.pzxid = zxid;
        let node = Node {
            data,
            acl,
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: time,
            mtime: time,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner,
            children: OrdSet::new(),
        };
        let stat = node.stat();
        match EphemeralKind::of(ephemeral_owner, self.extended_types) {
            EphemeralKind::Normal(session) => {
                self.ephemerals
                    .entry(session)
                    .or_default()
                    .insert(key.clone());
            }
            EphemeralKind::Container => {
                self.containers.insert(key.clone());
            }
            EphemeralKind::Ttl(_) => {
                self.ttls.insert(key.clone());
            }
            EphemeralKind::Void => {}
        }
        self.approximate_data_size += (path.len() + node.data_len()) as i64;
        self.nodes.insert(key, Arc::new(node));
        Ok(stat)
    }

    /// Deletes a node and returns it.
    pub fn delete(&mut self, path: &str, zxid: i64) -> Result<Arc<Node>, ErrorCode> {
        let Some(node) = self.nodes.remove(path) else {
            return Err(ErrorCode::NoNode);
        };
        self.approximate_data_size -= (path.len() + node.data_len()) as i64;
        match EphemeralKind::of(node.ephemeral_owner, self.extended_types) {
            EphemeralKind::Normal(session) => {
                if let Some(set) = self.ephemerals.get_mut(&session) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&session);
                    }
                }
            }
            EphemeralKind::Container => {
                self.containers.remove(path);
            }
            EphemeralKind::Ttl(_) => {
                self.ttls.remove(path);
            }
            EphemeralKind::Void => {}
        }
        let parent_path = path::parent(path);
        if let Some(parent) = self.nodes.get_mut(parent_path) {
            let parent = Arc::make_mut(parent);
            parent.children.remove(path);
            // Matches ZooKeeper's DataTree.deleteNode: pzxid only moves
            // forward; cversion is not touched by a delete.
            if zxid > parent.pzxid {
                parent.pzxid = zxid;
            }
        }
        Ok(node)
    }

    pub fn set_data(
        &mut self,
        path: &str,
        data: Option<Bytes>,
        version: i32,
        zxid: i64,
        time: i64,
    ) -> Result<Stat, ErrorCode> {
        let Some(node) = self.nodes.get_mut(path) else {
            return Err(ErrorCode::NoNode);
        };
        let node = Arc::make_mut(node);
        let delta = data.as_ref().map_or(0, |d| d.len()) as i64 - node.data_len() as i64;
        node.data = data;
        node.version = version;
        node.mzxid = zxid;
        node.mtime = time;
        let stat = node.stat();
        self.approximate_data_size += delta;
        Ok(stat)
    }

    pub fn set_acl(&mut self, path: &str, acl: AclList, aversion: i32) -> Result<Stat, ErrorCode> {
        let Some(node) = self.nodes.get_mut(path) else {
            return Err(ErrorCode::NoNode);
        };
        let node = Arc::make_mut(node);
        node.acl = acl;
        node.aversion = aversion;
        Ok(node.stat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh tree as ZooKeeper 3.8 shows it (docs/internals/zk-facts.md,
    /// section c): `""` reads as the root, the node map counts 5, and
    /// `/zookeeper/config` has aversion -1.
    #[test]
    fn a_fresh_tree_is_what_zookeeper_shows() {
        let t = DataTree::new(false);
        assert!(Arc::ptr_eq(t.get("").unwrap(), t.get("/").unwrap()));
        assert_eq!(t.node_count(), 4);
        assert_eq!(t.reported_node_count(), 5);
        let config = t.get(CONFIG_PATH).unwrap().stat();
        assert_eq!(config.aversion, -1);
        assert_eq!(
            Stat {
                aversion: 0,
                ..config
            },
            Stat::default()
        );
        assert_eq!(t.approximate_data_size, 44);
    }
}
