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
    pub children: Children,
}

/// A node's children (see `Node::children`). Most znodes have none, so the
/// set is boxed and absent when empty: 8 bytes in every node instead of
/// 24. With the thin `AclList` that keeps `Arc<Node>` in a 128-byte
/// allocation instead of 160: a restarted 1M-znode tree went from 553 to
/// 517 MB of RSS (VmRSS, in kB).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Children(Option<Box<OrdSet<Arc<str>>>>);

impl Children {
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|s| s.is_empty())
    }

    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |s| s.len())
    }

    /// In order of path (of name, among siblings).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<str>> + '_ {
        self.0.iter().flat_map(|s| s.iter())
    }

    pub fn insert(&mut self, path: Arc<str>) {
        self.0.get_or_insert_with(Default::default).insert(path);
    }

    pub fn remove(&mut self, path: &str) {
        if let Some(set) = &mut self.0 {
            set.remove(path);
            if set.is_empty() {
                self.0 = None;
            }
        }
    }
}

// `Arc<Node>` adds two counters (16 bytes): at most 112 keeps a node in
// mimalloc's 128-byte size class, the next being 160.
const _: () = assert!(std::mem::size_of::<Node>() <= 112);

impl FromIterator<Arc<str>> for Children {
    fn from_iter<I: IntoIterator<Item = Arc<str>>>(iter: I) -> Children {
        let set: OrdSet<Arc<str>> = iter.into_iter().collect();
        Children((!set.is_empty()).then(|| Box::new(set)))
    }
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
            children: Children::default(),
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
            children: Children::default(),
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
    /// No nodes at all, not even the root: what `new` and `Restore` fill.
    fn without_nodes(extended_types: bool, last_zxid: i64) -> DataTree {
        DataTree {
            nodes: HashMap::new(),
            ephemerals: HashMap::new(),
            containers: OrdSet::new(),
            ttls: OrdSet::new(),
            last_zxid,
            approximate_data_size: 0,
            extended_types,
            acls: HashMap::new(),
        }
    }

    /// A fresh tree as a fresh ZooKeeper server has it: `/`, `/zookeeper`,
    /// `/zookeeper/quota` and `/zookeeper/config`.
    pub fn new(extended_types: bool) -> DataTree {
        let all: AclList = Arc::from(vec![Acl::world_all()]);
        let read_only: AclList = Arc::from(vec![Acl {
            perms: perms::READ,
            id: crate::types::Id::new("world", "anyone"),
        }]);
        let mut t = DataTree::without_nodes(extended_types, 0);
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
    /// the paths); see `Attach` and `Restore`, which this drives.
    pub fn restore(
        extended_types: bool,
        last_zxid: i64,
        nodes: Vec<(Arc<str>, Arc<Node>)>,
    ) -> Result<DataTree, String> {
        let mut attach = Attach::default();
        let mut restore = Restore::new(extended_types, last_zxid);
        let mut finished = Vec::new();
        for (key, node) in nodes {
            attach.push(key, node, &mut finished)?;
            for f in finished.drain(..) {
                restore.store(f)?;
            }
        }
        attach.finish(&mut finished)?;
        for f in finished {
            restore.store(f)?;
        }
        restore.finish()
    }

    /// Every node, each parent before its children and siblings in order:
    /// the order `restore` rebuilds fastest, so snapshots and SNAP syncs
    /// are written in it.
    pub fn preorder(&self) -> impl Iterator<Item = (&Arc<str>, &Arc<Node>)> {
        let mut stack: Vec<&Arc<str>> = Vec::new();
        if let Some((root, _)) = self.nodes.get_key_value("/") {
            stack.push(root);
        }
        std::iter::from_fn(move || {
            let path = stack.pop()?;
            let (key, node) = self
                .nodes
                .get_key_value(&**path)
                .expect("every child names a node");
            stack.extend(node.children.iter().rev());
            Some((key, node))
        })
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
            children: Children::default(),
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

/// Rebuilds a tree from its nodes as a snapshot or a SNAP sync delivers
/// them, in two stages that can run on two threads: `Attach` gives each
/// node its children, `Restore` stores the finished nodes in the tree.
/// Every node but the root must have its parent present.
///
/// Any order is accepted; the order `DataTree::preorder` yields (each
/// parent before its children, siblings sorted) is the fast one: a node's
/// parent is found on a stack of its ancestors instead of in a map of every
/// path, and a node is finished (its child set built from names already in
/// order) as soon as the stack moves past it. A B-tree filled in order
/// touches only its right edge; filled at random, its inserts cost several
/// times more on a parent with a million children. From the first node out
/// of that order on, nodes pass through unattached and `Restore::finish`
/// attaches them to their parents. Restart time with millions of znodes is
/// mostly these two.
#[derive(Default)]
pub struct Attach {
    /// The ancestors of the last node pushed.
    stack: Vec<Open>,
    broken: bool,
}

/// A node on `Attach`'s stack: its path, itself, its children so far.
type Open = (Arc<str>, Arc<Node>, Vec<Arc<str>>);

/// A node `Attach` is done with; `attached` is false for one that came
/// out of order, whose parent learns of it in `Restore::finish`.
pub struct Finished {
    pub key: Arc<str>,
    pub node: Arc<Node>,
    pub attached: bool,
}

impl Attach {
    /// Takes one node (which must not be shared: its children are filled
    /// in here) and appends to `out` the nodes this finishes.
    pub fn push(
        &mut self,
        key: Arc<str>,
        node: Arc<Node>,
        out: &mut Vec<Finished>,
    ) -> Result<(), String> {
        if !self.broken {
            if &*key == "/" {
                if self.stack.is_empty() {
                    self.stack.push((key, node, Vec::new()));
                    return Ok(());
                }
            } else {
                let parent = path::parent(&key);
                while let Some((top, _, _)) = self.stack.last() {
                    if &**top == parent {
                        break;
                    }
                    self.finish_top(out)?;
                }
                if let Some((_, _, children)) = self.stack.last_mut() {
                    children.push(key.clone());
                    self.stack.push((key, node, Vec::new()));
                    return Ok(());
                }
            }
            // Out of order: from here on nodes pass through as they come.
            self.broken = true;
            self.finish(out)?;
        }
        out.push(Finished {
            key,
            node,
            attached: false,
        });
        Ok(())
    }

    /// Finishes the nodes still open, once every node has been pushed.
    pub fn finish(&mut self, out: &mut Vec<Finished>) -> Result<(), String> {
        while !self.stack.is_empty() {
            self.finish_top(out)?;
        }
        Ok(())
    }

    fn finish_top(&mut self, out: &mut Vec<Finished>) -> Result<(), String> {
        let (key, mut node, mut children) =
            self.stack.pop().expect("called with a node on the stack");
        if !children.is_sorted() {
            children.sort_unstable();
        }
        Arc::get_mut(&mut node)
            .ok_or("a restored node is shared")?
            .children = children.into_iter().collect();
        // The root is attached by being the root; so is every node placed
        // under a parent on the stack.
        out.push(Finished {
            key,
            node,
            attached: true,
        });
        Ok(())
    }
}

/// The second stage of rebuilding a tree (see `Attach`): stores finished
/// nodes, shares their ACL lists, indexes ephemerals, containers and TTL
/// nodes.
pub struct Restore {
    t: DataTree,
    /// Nodes that came out of order, still to be attached.
    unattached: Vec<Arc<str>>,
    /// Nodes mostly share a few ACL lists, by pointer as well as by value:
    /// the pointer is looked up before the list is hashed.
    acl_by_ptr: std::collections::HashMap<*const Vec<Acl>, AclList>,
}

impl Restore {
    pub fn new(extended_types: bool, last_zxid: i64) -> Restore {
        Restore {
            t: DataTree::without_nodes(extended_types, last_zxid),
            unattached: Vec::new(),
            acl_by_ptr: Default::default(),
        }
    }

    pub fn store(&mut self, f: Finished) -> Result<(), String> {
        let Finished {
            key,
            mut node,
            attached,
        } = f;
        let t = &mut self.t;
        let n = Arc::get_mut(&mut node).ok_or("a restored node is shared")?;
        n.acl = match self.acl_by_ptr.get(&Arc::as_ptr(&n.acl)) {
            Some(interned) => interned.clone(),
            None => {
                let interned = t.intern_acl(&n.acl);
                self.acl_by_ptr
                    .insert(Arc::as_ptr(&n.acl), interned.clone());
                interned
            }
        };
        match EphemeralKind::of(n.ephemeral_owner, t.extended_types) {
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
        t.approximate_data_size += (key.len() + n.data_len()) as i64;
        if !attached {
            self.unattached.push(key.clone());
        }
        // One traversal of the map, and no second handle on the key: a
        // duplicate is named by finding the node just stored, which only
        // a broken snapshot pays for.
        let stored = Arc::as_ptr(&node);
        if t.nodes.insert(key, node).is_some() {
            let key = t
                .nodes
                .iter()
                .find(|(_, n)| Arc::as_ptr(n) == stored)
                .map(|(k, _)| k.to_string())
                .unwrap_or_default();
            return Err(format!("node {key:?} appears twice"));
        }
        Ok(())
    }

    /// The tree, once every finished node has been stored.
    pub fn finish(mut self) -> Result<DataTree, String> {
        // In order of path, siblings come in order of name: each child
        // set is then filled along its right edge, as `Attach` does.
        let mut unattached = std::mem::take(&mut self.unattached);
        unattached.sort_unstable();
        for key in unattached {
            if &*key == "/" {
                continue;
            }
            let parent = path::parent(&key);
            let Some(node) = self.t.nodes.get_mut(parent) else {
                return Err(format!("node {parent:?} is missing but has children"));
            };
            Arc::make_mut(node).children.insert(key);
        }
        if self.t.get("/").is_none() {
            return Err("no root node".into());
        }
        Ok(self.t)
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

    /// A tree with nesting, siblings whose names sort differently as names
    /// and as paths (`a-b` vs `a/..`), data, shared and distinct ACLs,
    /// ephemerals and a container.
    fn sample() -> DataTree {
        let mut t = DataTree::new(true);
        let all = t.intern_acl(&[Acl::world_all()]);
        let mine = t.intern_acl(&[Acl {
            perms: perms::READ,
            id: crate::types::Id::new("digest", "u:x"),
        }]);
        let mut zxid = 1;
        let mut create = |t: &mut DataTree, p: &str, owner: i64, acl: &AclList| {
            t.create(
                p,
                Some(Bytes::from(p.to_string())),
                acl.clone(),
                owner,
                0,
                zxid,
                7,
            )
            .unwrap();
            zxid += 1;
        };
        create(&mut t, "/a", 0, &all);
        create(&mut t, "/a/x", 0, &mine);
        create(&mut t, "/a-b", 0, &all);
        create(&mut t, "/a/y", 0x55, &all);
        create(&mut t, "/b", crate::types::CONTAINER_EPHEMERAL_OWNER, &all);
        create(&mut t, "/b/z", 0x55, &mine);
        create(&mut t, "/a/x/deep", 0, &all);
        create(&mut t, "/many", 0, &all);
        for i in (0..50).rev() {
            create(&mut t, &format!("/many/{i:03}"), 0, &all);
        }
        t
    }

    fn shape(t: &DataTree) -> Vec<(String, Stat, Vec<String>, Vec<Acl>)> {
        let mut v: Vec<_> = t
            .paths()
            .map(|(p, n)| {
                (
                    p.to_string(),
                    n.stat(),
                    n.children.iter().map(|c| c.to_string()).collect(),
                    n.acl.to_vec(),
                )
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn nodes_in(order: Vec<(&Arc<str>, &Arc<Node>)>) -> Vec<(Arc<str>, Arc<Node>)> {
        order
            .into_iter()
            .map(|(p, n)| {
                let mut n = (**n).clone();
                n.children = Children::default();
                // As a reader builds them: every node its own ACL handle.
                n.acl = Arc::from(n.acl.to_vec());
                (p.clone(), Arc::new(n))
            })
            .collect()
    }

    #[test]
    fn preorder_puts_parents_first_and_siblings_in_order() {
        let t = sample();
        let order: Vec<&str> = t.preorder().map(|(p, _)| &**p).collect();
        assert_eq!(order.len(), t.node_count());
        assert_eq!(order[0], "/");
        for (i, p) in order.iter().enumerate().skip(1) {
            let parent = path::parent(p);
            let at = order.iter().position(|q| *q == parent).unwrap();
            assert!(at < i, "{p} before its parent");
        }
        let a = order.iter().position(|p| *p == "/a").unwrap();
        assert_eq!(&order[a..a + 4], &["/a", "/a/x", "/a/x/deep", "/a/y"]);
    }

    #[test]
    fn restore_rebuilds_the_same_tree_in_any_order() {
        let t = sample();
        let want = shape(&t);
        let preorder = nodes_in(t.preorder().collect());
        let mut shuffled = nodes_in(t.preorder().collect());
        // A fixed permutation that puts children before parents.
        shuffled.reverse();
        shuffled.swap(3, 17);
        // In order until part-way, then out of order.
        let mut broken = nodes_in(t.preorder().collect());
        let tail = broken.split_off(20);
        broken.extend(tail.into_iter().rev());
        for (what, nodes) in [
            ("preorder", preorder),
            ("shuffled", shuffled),
            ("broken", broken),
        ] {
            let back = DataTree::restore(true, t.last_zxid, nodes).unwrap();
            assert_eq!(shape(&back), want, "{what}");
            assert_eq!(
                back.approximate_data_size, t.approximate_data_size,
                "{what}"
            );
            assert_eq!(back.ephemerals_of(0x55).len(), 2, "{what}");
            assert_eq!(back.containers().count(), 1, "{what}");
            // ACL lists are shared again, whatever handles came in.
            assert_eq!(back.acl_count(), t.acl_count(), "{what}");
        }
    }

    #[test]
    fn restore_refuses_orphans_duplicates_and_a_missing_root() {
        let t = sample();
        let all = nodes_in(t.preorder().collect());
        let without = |p: &str| -> Vec<_> {
            all.iter()
                .filter(|(k, _)| &**k != p)
                .map(|(k, n)| (k.clone(), Arc::new((**n).clone())))
                .collect()
        };
        let fresh = |v: &[(Arc<str>, Arc<Node>)]| -> Vec<_> {
            v.iter()
                .map(|(k, n)| (k.clone(), Arc::new((**n).clone())))
                .collect()
        };
        let e = DataTree::restore(true, 0, without("/a/x")).unwrap_err();
        assert!(e.contains("/a/x"), "{e}");
        let mut reversed = without("/a/x");
        reversed.reverse();
        let e = DataTree::restore(true, 0, reversed).unwrap_err();
        assert!(e.contains("/a/x"), "{e}");
        assert!(DataTree::restore(true, 0, without("/")).is_err());
        let mut twice = fresh(&all);
        twice.push((all[5].0.clone(), Arc::new((*all[5].1).clone())));
        let e = DataTree::restore(true, 0, twice).unwrap_err();
        assert!(e.contains("twice"), "{e}");
        // A node the caller still shares is refused, not silently copied.
        let mut shared = fresh(&all);
        let keep = shared[3].1.clone();
        assert!(DataTree::restore(true, 0, std::mem::take(&mut shared)).is_err());
        drop(keep);
    }
}
