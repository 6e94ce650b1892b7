//! ZooKeeper's data tree as its restore sees it: the nodes with their
//! `StatPersisted`, the ACL cache with reference counts, the ephemerals by
//! session and the tree digest, changed by transactions exactly as
//! `DataTree.processTxn` changes them.
//!
//! Matching ZooKeeper here, rather than reusing the engine's tree, is the
//! point: a ZooKeeper snapshot is fuzzy (written while transactions keep
//! being applied), and ZooKeeper's restore replays the log from the
//! snapshot's zxid over a tree that may already hold some of those
//! transactions. Its `createNode`, `deleteNode` and `setCversionPzxid` are
//! written to make that replay converge (a create of an existing node
//! moves the parent's cversion forward only; a delete of a missing node
//! still moves the parent's pzxid), and the tree digest that ZooKeeper
//! logs with every transaction is what proves the replay converged. The
//! engine's tree applies corral's own, never fuzzy, log.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use engine::types::{Acl, ErrorCode};

use super::format::{Crc32, SnapNode, StatPersisted, Txn, TxnHeader, ZkSnapshot};

/// `ReferenceCountedACLCache.OPEN_UNSAFE_ACL_ID`: world:anyone:cdrwa.
pub const OPEN_UNSAFE_ACL_ID: i64 = -1;
/// `EphemeralType.CONTAINER_EPHEMERAL_OWNER`.
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// `EphemeralType`: the top byte 0xff marks an extended type.
const EXTENDED_MASK: i64 = 0xff00_0000_0000_0000u64 as i64;
/// `EphemeralType`: the two bytes naming the extended type (0 = TTL).
const RESERVED_BITS_MASK: i64 = 0x00ff_ff00_0000_0000;
/// The largest TTL: the 40 bits below the reserved ones.
pub const TTL_MAX_MS: i64 = 0x0000_00ff_ffff_ffff;
/// Nodes under this prefix are left out of the digest (`DigestCalculator`).
const DIGEST_EXCLUDED_PREFIX: &str = "/zookeeper/";
/// `Quotas`: a quota on path P is `/zookeeper/quota` + P + `/zookeeper_limits`,
/// its usage `/zookeeper/quota` + P + `/zookeeper_stats`.
const QUOTA_PREFIX: &str = "/zookeeper/quota";
const QUOTA_LIMIT_SUFFIX: &str = "/zookeeper_limits";
const QUOTA_STAT_SUFFIX: &str = "/zookeeper_stats";

/// What an `ephemeralOwner` means (`EphemeralType.get`). Which values are
/// TTL depends on `zookeeper.extendedTypesEnabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    Persistent,
    Session(i64),
    Container,
    Ttl(i64),
}

/// An owner ZooKeeper would refuse (an unknown extended type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid ephemeralOwner {0:#018x}: an extended type other than TTL")]
pub struct InvalidOwner(pub i64);

pub fn owner_kind(owner: i64, extended_types: bool) -> Result<OwnerKind, InvalidOwner> {
    if extended_types && owner & EXTENDED_MASK == EXTENDED_MASK {
        if owner & RESERVED_BITS_MASK != 0 {
            return Err(InvalidOwner(owner));
        }
        return Ok(OwnerKind::Ttl(owner & TTL_MAX_MS));
    }
    Ok(match owner {
        0 => OwnerKind::Persistent,
        CONTAINER_OWNER => OwnerKind::Container,
        session => OwnerKind::Session(session),
    })
}

/// `ZooDefs.Ids.OPEN_ACL_UNSAFE`.
pub fn open_acl_unsafe() -> Vec<Acl> {
    vec![Acl::world_all()]
}

/// `ReferenceCountedACLCache`: ACL lists by id, shared by the nodes, with
/// reference counts. The counts matter for exactness: a list whose count
/// drops to zero is forgotten, and a later use of the same list gets the
/// next id, which a node read from a fuzzy snapshot may already name.
#[derive(Debug, Default)]
pub struct AclCache {
    by_id: HashMap<i64, Vec<Acl>>,
    by_list: HashMap<Vec<Acl>, i64>,
    references: HashMap<i64, i64>,
    /// The last id handed out.
    index: i64,
}

impl AclCache {
    /// `deserialize`: every list with a zero count.
    fn from_snapshot(lists: Vec<(i64, Vec<Acl>)>) -> AclCache {
        let mut c = AclCache::default();
        for (id, list) in lists {
            c.index = c.index.max(id);
            c.by_list.insert(list.clone(), id);
            c.by_id.insert(id, list);
            c.references.insert(id, 0);
        }
        c
    }

    /// `convertAcls`: the id of a list, adding it if new; counts a use.
    fn convert_acls(&mut self, list: &[Acl]) -> i64 {
        let id = match self.by_list.get(list) {
            Some(&id) => id,
            None => {
                self.index += 1;
                self.by_id.insert(self.index, list.to_vec());
                self.by_list.insert(list.to_vec(), self.index);
                self.index
            }
        };
        self.add_usage(id);
        id
    }

    /// `convertLong`: the list an id names; None for an id the cache does
    /// not hold (ZooKeeper throws when it meets one).
    pub fn list(&self, id: i64) -> Option<Vec<Acl>> {
        if id == OPEN_UNSAFE_ACL_ID {
            return Some(open_acl_unsafe());
        }
        self.by_id.get(&id).cloned()
    }

    fn add_usage(&mut self, id: i64) {
        if id == OPEN_UNSAFE_ACL_ID || !self.by_id.contains_key(&id) {
            return;
        }
        *self.references.entry(id).or_insert(0) += 1;
    }

    fn remove_usage(&mut self, id: i64) {
        if id == OPEN_UNSAFE_ACL_ID || !self.by_id.contains_key(&id) {
            return;
        }
        let count = self.references.entry(id).or_insert(0);
        *count -= 1;
        if *count <= 0 {
            self.forget(id);
        }
    }

    fn forget(&mut self, id: i64) {
        self.references.remove(&id);
        if let Some(list) = self.by_id.remove(&id) {
            self.by_list.remove(&list);
        }
    }

    /// `purgeUnused`, run once after a snapshot is read.
    fn purge_unused(&mut self) {
        let unused: Vec<i64> = self
            .references
            .iter()
            .filter(|(_, &n)| n <= 0)
            .map(|(&id, _)| id)
            .collect();
        for id in unused {
            self.forget(id);
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ZkNode {
    pub data: Option<Bytes>,
    pub acl: i64,
    pub stat: StatPersisted,
}

/// A broken invariant of the input that ZooKeeper's restore would also
/// fail on (with an exception rather than an ignored error code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("path {0:?} is not absolute")]
    BadPath(String),
    #[error(transparent)]
    Owner(#[from] InvalidOwner),
    #[error("TTL {0} ms is out of range (1..={TTL_MAX_MS})")]
    Ttl(i64),
    #[error("node {0:?} comes before its parent")]
    Orphan(String),
    #[error("the snapshot has no root node")]
    NoRoot,
}

/// The digest of one node (`DigestCalculator.calculateDigest`): CRC-32 of
/// the path ("" for the root), the data, and nine Stat fields in this
/// order, big-endian.
pub fn node_digest(path: &str, node: &ZkNode) -> i64 {
    if path.starts_with(DIGEST_EXCLUDED_PREFIX) {
        return 0;
    }
    let path = if path == "/" { "" } else { path };
    let s = &node.stat;
    let mut fields = [0u8; 60];
    let mut at = 0;
    for v in [s.czxid, s.mzxid, s.pzxid, s.ctime, s.mtime] {
        fields[at..at + 8].copy_from_slice(&v.to_be_bytes());
        at += 8;
    }
    for v in [s.version, s.cversion, s.aversion] {
        fields[at..at + 4].copy_from_slice(&v.to_be_bytes());
        at += 4;
    }
    fields[at..at + 8].copy_from_slice(&s.ephemeral_owner.to_be_bytes());
    let mut crc = Crc32::default();
    crc.update(path.as_bytes());
    if let Some(d) = &node.data {
        crc.update(d);
    }
    crc.update(&fields);
    crc.value() as i64
}

/// Splits a path into parent and child name as `DataTree` does
/// (`lastIndexOf('/')`), with the root's alias "" spelled "/".
fn split(path: &str) -> Result<(&str, &str), TreeError> {
    match path.rfind('/') {
        Some(0) if path.len() > 1 => Ok(("/", &path[1..])),
        Some(i) if i > 0 => Ok((&path[..i], &path[i + 1..])),
        _ => Err(TreeError::BadPath(path.to_string())),
    }
}

/// The tree being restored. Nodes are keyed by full path with the root as
/// "/"; children are not kept, since every change ZooKeeper's restore makes
/// keeps the children sets equal to "the nodes whose parent is this one".
#[derive(Debug)]
pub struct ZkTree {
    nodes: HashMap<String, ZkNode>,
    /// `DataTree.ephemerals`: session -> paths it owns.
    ephemerals: HashMap<i64, HashSet<String>>,
    pub acls: AclCache,
    /// `NodeHashMapImpl`'s AdHash: the wrapping sum of node digests.
    digest: i64,
    pub last_processed_zxid: i64,
    extended_types: bool,
}

impl ZkTree {
    /// `DataTree.deserialize`: nodes in file order, each parent before its
    /// children; then the unused ACL lists are purged.
    pub fn from_snapshot(
        snap: &ZkSnapshot,
        zxid: i64,
        extended_types: bool,
    ) -> Result<ZkTree, TreeError> {
        let mut t = ZkTree {
            nodes: HashMap::with_capacity(snap.nodes.len()),
            ephemerals: HashMap::new(),
            acls: AclCache::from_snapshot(snap.acls.clone()),
            digest: 0,
            last_processed_zxid: zxid,
            extended_types,
        };
        for SnapNode {
            path,
            data,
            acl,
            stat,
        } in &snap.nodes
        {
            let node = ZkNode {
                data: data.clone(),
                acl: *acl,
                stat: *stat,
            };
            let key = if path.is_empty() {
                "/".to_string()
            } else {
                let (parent, _) = split(path)?;
                if !t.nodes.contains_key(parent) {
                    return Err(TreeError::Orphan(path.clone()));
                }
                if let OwnerKind::Session(s) = owner_kind(stat.ephemeral_owner, extended_types)? {
                    t.ephemerals.entry(s).or_default().insert(path.clone());
                }
                path.clone()
            };
            t.acls.add_usage(node.acl);
            t.put(key, node);
        }
        if !t.nodes.contains_key("/") {
            return Err(TreeError::NoRoot);
        }
        t.acls.purge_unused();
        Ok(t)
    }

    fn put(&mut self, path: String, node: ZkNode) {
        self.digest = self.digest.wrapping_add(node_digest(&path, &node));
        if let Some(old) = self.nodes.insert(path.clone(), node) {
            self.digest = self.digest.wrapping_sub(node_digest(&path, &old));
        }
    }

    /// Changes one node, keeping the digest (`preChange`/`postChange`).
    fn change(&mut self, path: &str, f: impl FnOnce(&mut ZkNode)) {
        let node = self.nodes.get_mut(path).expect("caller checked");
        let before = node_digest(path, node);
        f(node);
        let after = node_digest(path, node);
        self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
    }

    pub fn digest(&self) -> i64 {
        self.digest
    }

    /// The digest computed from scratch (to check the running one).
    pub fn recompute_digest(&self) -> i64 {
        self.nodes
            .iter()
            .fold(0i64, |acc, (p, n)| acc.wrapping_add(node_digest(p, n)))
    }

    pub fn nodes(&self) -> &HashMap<String, ZkNode> {
        &self.nodes
    }

    pub fn get(&self, path: &str) -> Option<&ZkNode> {
        self.nodes.get(path)
    }

    /// Sessions that own ephemerals (`DataTree.getSessions`).
    pub fn sessions_with_ephemerals(&self) -> Vec<i64> {
        self.ephemerals.keys().copied().collect()
    }

    pub fn ephemerals_of(&self, session: i64) -> usize {
        self.ephemerals.get(&session).map_or(0, |s| s.len())
    }

    /// Applies one transaction (`DataTree.processTxn`). Returns the error
    /// code ZooKeeper's restore records and ignores (NoNode, NodeExists:
    /// the transaction was already in the fuzzy snapshot).
    pub fn process_txn(
        &mut self,
        header: &TxnHeader,
        txn: &Txn,
        is_sub: bool,
    ) -> Result<ErrorCode, TreeError> {
        let (zxid, time) = (header.zxid, header.time);
        let rc = match txn {
            Txn::Create {
                path,
                data,
                acl,
                ephemeral,
                parent_cversion,
                ..
            } => {
                let owner = if *ephemeral { header.session } else { 0 };
                self.create_node(path, data, acl, owner, *parent_cversion, zxid, time)?
            }
            Txn::CreateTtl {
                path,
                data,
                acl,
                parent_cversion,
                ttl_ms,
            } => {
                if *ttl_ms <= 0 || *ttl_ms > TTL_MAX_MS {
                    return Err(TreeError::Ttl(*ttl_ms));
                }
                let owner = EXTENDED_MASK | ttl_ms;
                self.create_node(path, data, acl, owner, *parent_cversion, zxid, time)?
            }
            Txn::CreateContainer {
                path,
                data,
                acl,
                parent_cversion,
            } => self.create_node(
                path,
                data,
                acl,
                CONTAINER_OWNER,
                *parent_cversion,
                zxid,
                time,
            )?,
            Txn::Delete { path } => self.delete_node(path, zxid)?,
            Txn::SetData {
                path,
                data,
                version,
            } => {
                if self.nodes.contains_key(path.as_str()) {
                    self.change(path, |n| {
                        n.data = data.clone();
                        n.stat.mtime = time;
                        n.stat.mzxid = zxid;
                        n.stat.version = *version;
                    });
                    ErrorCode::Ok
                } else {
                    ErrorCode::NoNode
                }
            }
            Txn::SetAcl { path, acl, version } => match self.nodes.get(path.as_str()) {
                Some(node) => {
                    // Order matters for the ids: the old list's use is
                    // dropped before the new list is looked up.
                    let old = node.acl;
                    self.acls.remove_usage(old);
                    let id = self.acls.convert_acls(acl);
                    self.change(path, |n| {
                        n.stat.aversion = *version;
                        n.acl = id;
                    });
                    ErrorCode::Ok
                }
                None => ErrorCode::NoNode,
            },
            Txn::CloseSession { paths } => {
                self.kill_session(header.session, zxid, paths.as_deref())?;
                ErrorCode::Ok
            }
            Txn::CreateSession { .. } | Txn::Check { .. } => ErrorCode::Ok,
            Txn::Error { code } => ErrorCode::from_code(*code).unwrap_or(ErrorCode::SystemError),
            Txn::Multi(subs) => {
                // A failed multi was logged with every op an error: it
                // changes nothing (ZooKeeper turns the ops before the
                // failure into ErrorTxn(0) too).
                if subs.iter().any(|s| matches!(s, Txn::Error { .. })) {
                    ErrorCode::Ok
                } else {
                    let mut rc = ErrorCode::Ok;
                    for sub in subs {
                        let sub_rc = self.process_txn(header, sub, true)?;
                        if rc == ErrorCode::Ok {
                            rc = sub_rc;
                        }
                    }
                    rc
                }
            }
        };
        // The fuzzy-snapshot fix-up of DataTree.processTxn: a create (type
        // create only, alone or in a multi) of a node that exists moves the
        // parent's cversion and pzxid forward to what the create set.
        let mut rc = rc;
        if let (
            Txn::Create {
                opcode: super::format::opcode::CREATE,
                path,
                parent_cversion,
                ..
            },
            ErrorCode::NodeExists,
        ) = (txn, rc)
        {
            let (parent, _) = split(path)?;
            if !self.set_cversion_pzxid(parent, *parent_cversion, zxid) {
                rc = ErrorCode::NoNode;
            }
        }
        if !is_sub && zxid > self.last_processed_zxid {
            self.last_processed_zxid = zxid;
        }
        Ok(rc)
    }

    /// `DataTree.createNode`.
    #[allow(clippy::too_many_arguments)]
    fn create_node(
        &mut self,
        path: &str,
        data: &Option<Bytes>,
        acl: &[Acl],
        owner: i64,
        parent_cversion: i32,
        zxid: i64,
        time: i64,
    ) -> Result<ErrorCode, TreeError> {
        let (parent, _) = split(path)?;
        let kind = owner_kind(owner, self.extended_types)?;
        let Some(parent_node) = self.nodes.get(parent) else {
            return Ok(ErrorCode::NoNode);
        };
        let parent_cv = parent_node.stat.cversion;
        // The ACL is counted before the existence check, as ZooKeeper does
        // (so that a fuzzy snapshot's node never names a missing list).
        let acl_id = self.acls.convert_acls(acl);
        if self.nodes.contains_key(path) {
            return Ok(ErrorCode::NodeExists);
        }
        let cversion = if parent_cversion == -1 {
            parent_cv + 1
        } else {
            parent_cversion
        };
        // Only forward: replaying a create of a node created and deleted
        // within the fuzzy window must not move the parent back.
        self.change(parent, |p| {
            if cversion > p.stat.cversion {
                p.stat.cversion = cversion;
                p.stat.pzxid = zxid;
            }
        });
        let node = ZkNode {
            data: data.clone(),
            acl: acl_id,
            stat: StatPersisted {
                czxid: zxid,
                mzxid: zxid,
                ctime: time,
                mtime: time,
                version: 0,
                cversion: 0,
                aversion: 0,
                ephemeral_owner: owner,
                pzxid: zxid,
            },
        };
        self.put(path.to_string(), node);
        if let OwnerKind::Session(s) = kind {
            self.ephemerals
                .entry(s)
                .or_default()
                .insert(path.to_string());
        }
        Ok(ErrorCode::Ok)
    }

    /// `DataTree.deleteNode`: the parent's pzxid moves forward even when
    /// the child is already gone.
    fn delete_node(&mut self, path: &str, zxid: i64) -> Result<ErrorCode, TreeError> {
        let (parent, _) = split(path)?;
        if !self.nodes.contains_key(parent) {
            return Ok(ErrorCode::NoNode);
        }
        self.change(parent, |p| {
            if zxid > p.stat.pzxid {
                p.stat.pzxid = zxid;
            }
        });
        let Some(node) = self.nodes.remove(path) else {
            return Ok(ErrorCode::NoNode);
        };
        self.digest = self.digest.wrapping_sub(node_digest(path, &node));
        self.acls.remove_usage(node.acl);
        // Owners were validated when the node was created or read.
        if let Ok(OwnerKind::Session(s)) =
            owner_kind(node.stat.ephemeral_owner, self.extended_types)
        {
            if let Some(set) = self.ephemerals.get_mut(&s) {
                set.remove(path);
            }
        }
        Ok(ErrorCode::Ok)
    }

    /// `DataTree.setCversionPzxid`; false if the node is missing.
    fn set_cversion_pzxid(&mut self, path: &str, cversion: i32, zxid: i64) -> bool {
        let Some(node) = self.nodes.get(path) else {
            return false;
        };
        let cversion = if cversion == -1 {
            node.stat.cversion + 1
        } else {
            cversion
        };
        if cversion > node.stat.cversion {
            self.change(path, |n| {
                n.stat.cversion = cversion;
                n.stat.pzxid = zxid;
            });
        }
        true
    }

    /// `DataTree.killSession`: the paths the closeSession names, then any
    /// other ephemeral of the session; missing nodes are skipped. Returns
    /// how many nodes were deleted.
    pub fn kill_session(
        &mut self,
        session: i64,
        zxid: i64,
        paths_in_txn: Option<&[String]>,
    ) -> Result<usize, TreeError> {
        let local = self.ephemerals.remove(&session);
        let mut deleted = 0;
        if let Some(paths) = paths_in_txn {
            for p in paths {
                if self.delete_node(p, zxid)? == ErrorCode::Ok {
                    deleted += 1;
                }
            }
        }
        let Some(mut local) = local else {
            return Ok(deleted);
        };
        if let Some(paths) = paths_in_txn {
            for p in paths {
                local.remove(p);
            }
        }
        for p in local {
            if self.delete_node(&p, zxid)? == ErrorCode::Ok {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    /// `DataTree.setupQuota`, which ZooKeeper runs when it reads a
    /// snapshot: every quota's `zookeeper_stats` gets the node count and data
    /// bytes of the quota's subtree, as "count=N,bytes=B". ZooKeeper keeps
    /// these up to date in memory only (they are never logged), so the log
    /// replay leaves them stale. Returns the number of quotas.
    pub fn setup_quota(&mut self) -> usize {
        let parents: HashSet<&str> = self
            .nodes
            .keys()
            .filter_map(|p| split(p).ok().map(|(parent, _)| parent))
            .collect();
        // A quota is a leaf named zookeeper_limits (DataTree.traverseNode).
        let mut usage: HashMap<String, (i64, i64)> = HashMap::new();
        for p in self.nodes.keys() {
            let Some(rest) = p.strip_prefix(QUOTA_PREFIX) else {
                continue;
            };
            if parents.contains(p.as_str()) {
                continue;
            }
            if let Some(i) = rest.find(QUOTA_LIMIT_SUFFIX) {
                if rest.len() == i + QUOTA_LIMIT_SUFFIX.len() {
                    let real = if i == 0 { "/" } else { &rest[..i] };
                    usage.insert(real.to_string(), (0, 0));
                }
            }
        }
        if usage.is_empty() {
            return 0;
        }
        // Each node counts towards every quota on it or an ancestor.
        for (p, node) in &self.nodes {
            let mut cur = p.as_str();
            loop {
                if let Some(u) = usage.get_mut(cur) {
                    u.0 += 1;
                    u.1 += node.data.as_ref().map_or(0, |d| d.len()) as i64;
                }
                match split(cur) {
                    Ok((parent, _)) => cur = parent,
                    Err(_) => break,
                }
            }
        }
        let quotas = usage.len();
        for (real, (count, bytes)) in usage {
            let prefix = if real == "/" { "" } else { real.as_str() };
            let stat_path = format!("{QUOTA_PREFIX}{prefix}{QUOTA_STAT_SUFFIX}");
            if self.nodes.contains_key(&stat_path) {
                let text = format!("count={count},bytes={bytes}");
                self.change(&stat_path, |n| n.data = Some(Bytes::from(text)));
            }
        }
        quotas
    }

    /// Paths whose ancestors are all present, i.e. the nodes a ZooKeeper
    /// snapshot walk would reach, and the count of those it would not.
    pub fn reachable(&self) -> (Vec<&str>, usize) {
        let mut reach = Vec::with_capacity(self.nodes.len());
        let mut lost = 0;
        for p in self.nodes.keys() {
            let mut cur = p.as_str();
            let mut ok = true;
            while cur != "/" {
                match split(cur) {
                    Ok((parent, _)) if self.nodes.contains_key(parent) => cur = parent,
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                reach.push(p.as_str());
            } else {
                lost += 1;
            }
        }
        (reach, lost)
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::{opcode, FileHeader, SNAP_MAGIC};
    use super::*;
    use engine::types::Id;

    fn acl(perms: i32) -> Vec<Acl> {
        vec![Acl {
            perms,
            id: Id::new("world", "anyone"),
        }]
    }

    fn stat(czxid: i64, cversion: i32, pzxid: i64, owner: i64) -> StatPersisted {
        StatPersisted {
            czxid,
            mzxid: czxid,
            ctime: 100,
            mtime: 100,
            version: 0,
            cversion,
            aversion: 0,
            ephemeral_owner: owner,
            pzxid,
        }
    }

    fn snap(nodes: Vec<(&str, StatPersisted, i64)>, acls: Vec<(i64, Vec<Acl>)>) -> ZkSnapshot {
        ZkSnapshot {
            header: FileHeader {
                magic: SNAP_MAGIC,
                version: 2,
                dbid: 0,
            },
            sessions: vec![],
            acls,
            nodes: nodes
                .into_iter()
                .map(|(p, s, a)| SnapNode {
                    path: p.to_string(),
                    data: Some(Bytes::new()),
                    acl: a,
                    stat: s,
                })
                .collect(),
            digest: None,
            last_processed_zxid: None,
        }
    }

    fn header(session: i64, zxid: i64) -> TxnHeader {
        TxnHeader {
            session,
            cxid: 0,
            zxid,
            time: 1000 + zxid,
            kind: 0,
        }
    }

    fn create(path: &str, parent_cversion: i32, ephemeral: bool) -> Txn {
        Txn::Create {
            opcode: opcode::CREATE,
            path: path.into(),
            data: Some(Bytes::from_static(b"d")),
            acl: acl(31),
            ephemeral,
            parent_cversion,
        }
    }

    fn base() -> ZkTree {
        let s = snap(
            vec![
                ("", stat(0, 1, 0, 0), -1),
                ("/zookeeper", stat(0, 0, 0, 0), -1),
                ("/app", stat(5, 3, 8, 0), 1),
                ("/app/a", stat(6, 0, 6, 0), 1),
            ],
            vec![(1, acl(31)), (2, acl(1))],
        );
        ZkTree::from_snapshot(&s, 8, false).unwrap()
    }

    #[test]
    fn replaying_a_create_already_in_the_fuzzy_snapshot_only_moves_the_parent_forward() {
        // The story: ZooKeeper serialised /app after /app/b was created at
        // zxid 9 (cversion 3 -> 4) but the snapshot is named for zxid 8, so
        // the log replays the create of a node the snapshot already has.
        let mut t = base();
        let rc = t.process_txn(&header(1, 9), &create("/app/a", 4, false), false);
        assert_eq!(rc, Ok(ErrorCode::NodeExists));
        let app = t.get("/app").unwrap();
        assert_eq!((app.stat.cversion, app.stat.pzxid), (4, 9));
        // A stale create (cversion not above the current one) moves nothing.
        let rc = t.process_txn(&header(1, 10), &create("/app/a", 2, false), false);
        assert_eq!(rc, Ok(ErrorCode::NodeExists));
        let app = t.get("/app").unwrap();
        assert_eq!((app.stat.cversion, app.stat.pzxid), (4, 9));
        assert_eq!(t.last_processed_zxid, 10);
        assert_eq!(t.digest(), t.recompute_digest());
    }

    #[test]
    fn deleting_a_missing_node_still_moves_the_parents_pzxid() {
        let mut t = base();
        let rc = t.process_txn(
            &header(1, 12),
            &Txn::Delete {
                path: "/app/gone".into(),
            },
            false,
        );
        assert_eq!(rc, Ok(ErrorCode::NoNode));
        assert_eq!(t.get("/app").unwrap().stat.pzxid, 12);
        // And never backwards.
        t.process_txn(
            &header(1, 11),
            &Txn::Delete {
                path: "/app/a".into(),
            },
            false,
        )
        .unwrap();
        assert_eq!(t.get("/app").unwrap().stat.pzxid, 12);
        assert!(t.get("/app/a").is_none());
        assert_eq!(t.digest(), t.recompute_digest());
    }

    #[test]
    fn close_session_deletes_its_ephemerals_and_only_those() {
        let mut t = base();
        t.process_txn(&header(0x77, 9), &create("/app/e1", -1, true), false)
            .unwrap();
        t.process_txn(&header(0x77, 10), &create("/app/e2", -1, true), false)
            .unwrap();
        t.process_txn(&header(0x78, 11), &create("/app/other", -1, true), false)
            .unwrap();
        assert_eq!(t.get("/app").unwrap().stat.cversion, 6);
        let close = Txn::CloseSession {
            paths: Some(vec!["/app/e1".into()]),
        };
        t.process_txn(&header(0x77, 12), &close, false).unwrap();
        assert!(t.get("/app/e1").is_none());
        assert!(
            t.get("/app/e2").is_none(),
            "the session's other ephemeral goes too"
        );
        assert!(t.get("/app/other").is_some());
        assert_eq!(t.get("/app").unwrap().stat.pzxid, 12);
        assert_eq!(t.sessions_with_ephemerals(), vec![0x78]);
        assert_eq!(t.ephemerals_of(0x78), 1);
    }

    #[test]
    fn acl_ids_follow_zookeepers_cache() {
        // List 2 is unused in the snapshot and purged; the next new list
        // gets id 3 (the index is not reused), and a list that loses its
        // last node is forgotten.
        let mut t = base();
        assert!(t.acls.list(2).is_none());
        let mut c = create("/app/r", -1, false);
        if let Txn::Create { acl: a, .. } = &mut c {
            *a = acl(1);
        }
        t.process_txn(&header(1, 9), &c, false).unwrap();
        assert_eq!(t.get("/app/r").unwrap().acl, 3);
        let set = Txn::SetAcl {
            path: "/app/r".into(),
            acl: acl(31),
            version: 1,
        };
        t.process_txn(&header(1, 10), &set, false).unwrap();
        assert_eq!(t.get("/app/r").unwrap().acl, 1);
        assert_eq!(t.get("/app/r").unwrap().stat.aversion, 1);
        assert!(t.acls.list(3).is_none(), "no node uses list 3 any more");
        assert_eq!(t.acls.list(-1), Some(open_acl_unsafe()));
    }

    #[test]
    fn a_failed_multi_changes_nothing_and_a_good_one_everything() {
        let mut t = base();
        let before = t.recompute_digest();
        let failed = Txn::Multi(vec![Txn::Error { code: 0 }, Txn::Error { code: -101 }]);
        t.process_txn(&header(1, 9), &failed, false).unwrap();
        assert_eq!(t.recompute_digest(), before);
        let good = Txn::Multi(vec![
            create("/app/m", 4, false),
            Txn::SetData {
                path: "/app/m".into(),
                data: None,
                version: 1,
            },
            Txn::Delete {
                path: "/app/a".into(),
            },
        ]);
        t.process_txn(&header(1, 10), &good, false).unwrap();
        let m = t.get("/app/m").unwrap();
        assert_eq!((m.stat.version, m.data.clone()), (1, None));
        assert!(t.get("/app/a").is_none());
        assert_eq!(t.last_processed_zxid, 10);
        assert_eq!(t.digest(), t.recompute_digest());
    }

    #[test]
    fn owners_decode_as_ephemeral_type() {
        let ttl = EXTENDED_MASK | 5000;
        assert_eq!(owner_kind(ttl, true), Ok(OwnerKind::Ttl(5000)));
        assert_eq!(owner_kind(ttl, false), Ok(OwnerKind::Session(ttl)));
        assert_eq!(owner_kind(i64::MIN, true), Ok(OwnerKind::Container));
        assert_eq!(owner_kind(0, true), Ok(OwnerKind::Persistent));
        assert!(owner_kind(EXTENDED_MASK | (1 << 40), true).is_err());
    }

    #[test]
    fn digest_of_a_node_is_crc32_of_path_data_and_stat() {
        // Excluded subtree and the root's alias.
        let n = ZkNode {
            data: None,
            acl: -1,
            stat: StatPersisted::default(),
        };
        assert_eq!(node_digest("/zookeeper/quota", &n), 0);
        let mut crc = Crc32::default();
        crc.update(&[0u8; 60]);
        assert_eq!(node_digest("/", &n), crc.value() as i64);
        assert_ne!(node_digest("/zookeeper", &n), 0);
    }

    #[test]
    fn quota_stats_are_recounted_from_the_tree() {
        let mut t = base();
        for (p, data) in [
            ("/zookeeper/quota", ""),
            ("/zookeeper/quota/app", ""),
            ("/zookeeper/quota/app/zookeeper_limits", "count=10,bytes=-1"),
            ("/zookeeper/quota/app/zookeeper_stats", "count=0,bytes=0"),
        ] {
            let c = Txn::Create {
                opcode: opcode::CREATE,
                path: p.into(),
                data: Some(Bytes::from(data)),
                acl: acl(31),
                ephemeral: false,
                parent_cversion: -1,
            };
            let _ = t.process_txn(&header(1, 20), &c, false).unwrap();
        }
        let digest = t.digest();
        assert_eq!(t.setup_quota(), 1);
        // /app (empty data) and /app/a ("" from the snapshot).
        let stats = t.get("/zookeeper/quota/app/zookeeper_stats").unwrap();
        assert_eq!(stats.data.as_deref(), Some(&b"count=2,bytes=0"[..]));
        assert_eq!(t.digest(), digest, "/zookeeper/ is outside the digest");
    }
}
