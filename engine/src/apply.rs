//! Applying transactions to the tree and answering reads: the tree half of
//! ZooKeeper's `DataTree.processTxn` and the reply half of
//! `FinalRequestProcessor`.
//!
//! `apply` is deterministic: the same transaction applied to equal trees
//! gives equal trees, the same reply and the same watch triggers.

use std::sync::Arc;

use bytes::Bytes;

use crate::acl::{self, AuthInfo};
use crate::op::{MultiReadResult, MultiResult, ReadOp, Reply, Response};
use crate::path;
use crate::tree::DataTree;
use crate::txn::{Txn, TxnBody, TxnHeader};
use crate::types::{opcode, perms, AclList, ErrorCode, EventType, SessionId};
use crate::watch::{WatchManager, WatchedEvent};

/// A change that may fire watches: `NodeChildrenChanged` carries the parent.
/// `acl` is the ACL of the node the event names: as Apache ZooKeeper 3.8
/// does (measured), an event reaches only sessions allowed to READ it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    pub path: Arc<str>,
    pub event: EventType,
    pub acl: AclList,
}

/// What applying one transaction produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub reply: Reply,
    pub triggers: Vec<Trigger>,
}

fn trigger(triggers: &mut Vec<Trigger>, p: &str, event: EventType, acl: &AclList) {
    triggers.push(Trigger {
        path: Arc::from(p),
        event,
        acl: acl.clone(),
    });
}

/// `NodeChildrenChanged` of the parent of `p`, with the parent's ACL.
fn trigger_parent(tree: &DataTree, triggers: &mut Vec<Trigger>, p: &str) {
    let parent = path::parent(p);
    let acl = tree
        .get(parent)
        .map(|n| n.acl.clone())
        .unwrap_or_else(|| Arc::from(Vec::new()));
    trigger(triggers, parent, EventType::NodeChildrenChanged, &acl);
}

/// Applies one body and returns the reply it gives; records triggers.
fn apply_one(
    tree: &mut DataTree,
    header: &TxnHeader,
    body: &TxnBody,
    triggers: &mut Vec<Trigger>,
) -> Result<Response, ErrorCode> {
    match body {
        TxnBody::CreateSession { .. } => Ok(Response::Empty),
        TxnBody::CloseSession => {
            // ZooKeeper deletes a closing session's ephemerals in path order.
            let mut paths = tree.ephemerals_of(header.session);
            paths.sort();
            for p in paths {
                let node = tree
                    .delete(&p, header.zxid)
                    .expect("an ephemeral listed for a session exists");
                trigger(triggers, &p, EventType::NodeDeleted, &node.acl);
                trigger_parent(tree, triggers, &p);
            }
            Ok(Response::Empty)
        }
        TxnBody::Create {
            opcode: code,
            path: p,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
        } => {
            let acl = tree.intern_acl(acl);
            let stat = tree.create(
                p,
                data.clone(),
                acl.clone(),
                *ephemeral_owner,
                *parent_cversion,
                header.zxid,
                header.time,
            )?;
            trigger(triggers, p, EventType::NodeCreated, &acl);
            trigger_parent(tree, triggers, p);
            if *code == opcode::CREATE {
                Ok(Response::Path(p.clone()))
            } else {
                Ok(Response::PathStat(p.clone(), stat))
            }
        }
        TxnBody::Delete { path: p } => {
            let node = tree.delete(p, header.zxid)?;
            trigger(triggers, p, EventType::NodeDeleted, &node.acl);
            trigger_parent(tree, triggers, p);
            Ok(Response::Empty)
        }
        TxnBody::SetData {
            path: p,
            data,
            version,
        } => {
            let stat = tree.set_data(p, data.clone(), *version, header.zxid, header.time)?;
            let acl = tree.get(p).map(|n| n.acl.clone()).expect("just set");
            trigger(triggers, p, EventType::NodeDataChanged, &acl);
            Ok(Response::Stat(stat))
        }
        TxnBody::SetAcl {
            path: p,
            acl,
            version,
        } => {
            let acl = tree.intern_acl(acl);
            let stat = tree.set_acl(p, acl, *version)?;
            Ok(Response::Stat(stat))
        }
        TxnBody::Check { path: p, .. } => match tree.get(p) {
            Some(_) => Ok(Response::Empty),
            None => Err(ErrorCode::NoNode),
        },
        TxnBody::Multi(bodies) => {
            let mut results = Vec::with_capacity(bodies.len());
            if bodies.iter().any(|b| matches!(b, TxnBody::Error(_))) {
                for b in bodies {
                    let code = match b {
                        TxnBody::Error(c) => *c,
                        _ => ErrorCode::RuntimeInconsistency,
                    };
                    results.push(MultiResult::Error(code));
                }
                return Ok(Response::Multi(results));
            }
            for b in bodies {
                let r = apply_one(tree, header, b, triggers)
                    .expect("a prepared multi applies without error");
                results.push(match (b, r) {
                    (TxnBody::Create { .. }, Response::Path(p)) => MultiResult::Create(p),
                    (TxnBody::Create { .. }, Response::PathStat(p, s)) => {
                        MultiResult::Create2(p, s)
                    }
                    (TxnBody::Delete { .. }, _) => MultiResult::Delete,
                    (TxnBody::SetData { .. }, Response::Stat(s)) => MultiResult::SetData(s),
                    (TxnBody::Check { .. }, _) => MultiResult::Check,
                    (b, r) => unreachable!("multi sub-transaction {b:?} gave {r:?}"),
                });
            }
            Ok(Response::Multi(results))
        }
        TxnBody::Error(code) => Err(*code),
    }
}

/// Applies a body without a reply (used while preparing a multi).
pub fn apply_body(tree: &mut DataTree, header: &TxnHeader, body: &TxnBody) {
    let mut t = Vec::new();
    let _ = apply_one(tree, header, body, &mut t);
}

/// Applies a transaction. The zxid must follow the tree's last zxid.
pub fn apply(tree: &mut DataTree, txn: &Txn) -> Applied {
    assert!(
        txn.header.zxid > tree.last_zxid,
        "zxid {:#x} applied after {:#x}",
        txn.header.zxid,
        tree.last_zxid
    );
    let mut triggers = Vec::new();
    let reply = apply_one(tree, &txn.header, &txn.body, &mut triggers);
    tree.last_zxid = txn.header.zxid;
    Applied { reply, triggers }
}

/// Who reads, for ACL checks and watch registration.
pub struct ReadContext<'a> {
    pub session: SessionId,
    pub auth: &'a AuthInfo,
}

/// What a read produced: its reply and any events it must deliver first
/// (setWatches reports changes missed while disconnected).
pub struct ReadOutcome {
    pub reply: Reply,
    pub events: Vec<WatchedEvent>,
}

fn get_data(
    tree: &DataTree,
    watches: &mut WatchManager,
    ctx: &ReadContext,
    p: &str,
    watch: bool,
) -> Result<(Option<Bytes>, crate::Stat), ErrorCode> {
    let node = tree.get(p).ok_or(ErrorCode::NoNode)?;
    acl::check(&node.acl, perms::READ, ctx.auth)?;
    if watch {
        watches.add_data(p, ctx.session);
    }
    Ok((node.data.clone(), node.stat()))
}

fn get_children(
    tree: &DataTree,
    watches: &mut WatchManager,
    ctx: &ReadContext,
    p: &str,
    watch: bool,
) -> Result<(Vec<String>, crate::Stat), ErrorCode> {
    let node = tree.get(p).ok_or(ErrorCode::NoNode)?;
    acl::check(&node.acl, perms::READ, ctx.auth)?;
    if watch {
        watches.add_child(p, ctx.session);
    }
    let children = node
        .children
        .iter()
        .map(|c| path::name(c).to_string())
        .collect();
    Ok((children, node.stat()))
}

/// Answers a read from one version of the tree and registers its watches
/// in the same step, so no change can slip between the two.
pub fn read(
    tree: &DataTree,
    watches: &mut WatchManager,
    ctx: &ReadContext,
    op: &ReadOp,
) -> ReadOutcome {
    let mut events = Vec::new();
    let reply = match op {
        ReadOp::Exists { path: p, watch } => {
            if p.contains('\0') {
                Err(ErrorCode::BadArguments)
            } else {
                // Matches ZooKeeper: an exists watch is left even when the
                // node does not exist (it fires on creation).
                if *watch {
                    watches.add_data(p, ctx.session);
                }
                match tree.get(p) {
                    Some(n) => Ok(Response::Stat(n.stat())),
                    None => Err(ErrorCode::NoNode),
                }
            }
        }
        ReadOp::GetData { path: p, watch } => {
            get_data(tree, watches, ctx, p, *watch).map(|(d, s)| Response::Data(d, s))
        }
        ReadOp::GetAcl { path: p } => match tree.get(p) {
            None => Err(ErrorCode::NoNode),
            Some(node) => match acl::check(&node.acl, perms::READ | perms::ADMIN, ctx.auth) {
                Err(e) => Err(e),
                Ok(()) => {
                    let acl = if acl::check(&node.acl, perms::ADMIN, ctx.auth).is_ok() {
                        node.acl.to_vec()
                    } else {
                        acl::mask_digests(&node.acl)
                    };
                    Ok(Response::Acl(acl, node.stat()))
                }
            },
        },
        ReadOp::GetChildren {
            path: p,
            watch,
            with_stat,
        } => get_children(tree, watches, ctx, p, *watch).map(|(c, s)| {
            if *with_stat {
                Response::Children2(c, s)
            } else {
                Response::Children(c)
            }
        }),
        ReadOp::GetAllChildrenNumber { path: p } => match tree.get(p) {
            None => Err(ErrorCode::NoNode),
            Some(node) => acl::check(&node.acl, perms::READ, ctx.auth)
                .map(|()| Response::Number(tree.descendant_count(p) as i32)),
        },
        ReadOp::GetEphemerals { prefix } => {
            let mut v: Vec<String> = tree
                .ephemerals_of(ctx.session)
                .iter()
                .filter(|p| prefix == "/" || p.starts_with(prefix.as_str()))
                .map(|p| p.to_string())
                .collect();
            v.sort();
            Ok(Response::Strings(v))
        }
        ReadOp::MultiRead(ops) => {
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                results.push(match op {
                    ReadOp::GetData { path: p, watch } => {
                        match get_data(tree, watches, ctx, p, *watch) {
                            Ok((d, s)) => MultiReadResult::Data(d, s),
                            Err(e) => MultiReadResult::Error(e),
                        }
                    }
                    ReadOp::GetChildren { path: p, watch, .. } => {
                        match get_children(tree, watches, ctx, p, *watch) {
                            Ok((c, _)) => MultiReadResult::Children(c),
                            Err(e) => MultiReadResult::Error(e),
                        }
                    }
                    _ => MultiReadResult::Error(ErrorCode::BadArguments),
                });
            }
            Ok(Response::MultiRead(results))
        }
        ReadOp::CheckWatches { path: p, kind } => {
            if watches.has(p, *kind, ctx.session) {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }
        ReadOp::RemoveWatches { path: p, kind } => {
            if watches.remove(p, *kind, ctx.session) {
                Ok(Response::Empty)
            } else {
                Err(ErrorCode::NoWatcher)
            }
        }
        ReadOp::AddWatch { path: p, mode } => {
            watches.add_persistent(p, *mode, ctx.session);
            // Matches ZooKeeper: the reply carries an ErrorResponse(0) body,
            // which the Java client reads (an empty body drops its session).
            Ok(Response::Number(0))
        }
        ReadOp::SetWatches {
            relative_zxid,
            data,
            exist,
            child,
            persistent,
            persistent_recursive,
        } => {
            // Matches ZooKeeper's DataTree.setWatches: changes missed since
            // the client's last zxid fire at once, the rest are re-armed.
            let ev = |event: EventType, p: &str| WatchedEvent {
                event,
                path: Arc::from(p),
            };
            for p in data {
                match tree.get(p) {
                    None => events.push(ev(EventType::NodeDeleted, p)),
                    Some(n) if n.mzxid > *relative_zxid => {
                        events.push(ev(EventType::NodeDataChanged, p))
                    }
                    Some(_) => watches.add_data(p, ctx.session),
                }
            }
            for p in exist {
                match tree.get(p) {
                    Some(_) => events.push(ev(EventType::NodeCreated, p)),
                    None => watches.add_data(p, ctx.session),
                }
            }
            for p in child {
                match tree.get(p) {
                    None => events.push(ev(EventType::NodeDeleted, p)),
                    Some(n) if n.pzxid > *relative_zxid => {
                        events.push(ev(EventType::NodeChildrenChanged, p))
                    }
                    Some(_) => watches.add_child(p, ctx.session),
                }
            }
            for p in persistent {
                watches.add_persistent(p, crate::AddWatchMode::Persistent, ctx.session);
            }
            for p in persistent_recursive {
                watches.add_persistent(p, crate::AddWatchMode::PersistentRecursive, ctx.session);
            }
            Ok(Response::Empty)
        }
        // Matches ZooKeeper: the user name of each identity, which for a
        // digest is the part before the colon.
        ReadOp::WhoAmI => Ok(Response::WhoAmI(
            ctx.auth
                .ids
                .iter()
                .map(|i| {
                    let user = match i.scheme.as_str() {
                        "digest" => i.id.split(':').next().unwrap_or("").to_string(),
                        _ => i.id.clone(),
                    };
                    (i.scheme.clone(), user)
                })
                .collect(),
        )),
    };
    ReadOutcome { reply, events }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Acl;

    fn txn(zxid: i64, body: TxnBody) -> Txn {
        Txn {
            header: TxnHeader {
                session: 1,
                cxid: 0,
                zxid,
                time: 0,
            },
            body,
        }
    }

    fn create(path: &str) -> TxnBody {
        TxnBody::Create {
            opcode: opcode::CREATE,
            path: path.into(),
            data: Some(Bytes::new()),
            acl: vec![Acl::world_all()],
            ephemeral_owner: 0,
            parent_cversion: -1,
        }
    }

    /// Matches ZooKeeper's DataTree.setWatches: what changed after the
    /// client's last zxid fires at once; the rest is re-armed.
    #[test]
    fn set_watches_reports_missed_changes_and_rearms_the_rest() {
        let mut tree = DataTree::new(false);
        apply(&mut tree, &txn(1, create("/same")));
        apply(&mut tree, &txn(2, create("/changed")));
        apply(&mut tree, &txn(3, create("/parent")));
        let seen = 3;
        apply(
            &mut tree,
            &txn(
                4,
                TxnBody::SetData {
                    path: "/changed".into(),
                    data: Some(Bytes::from_static(b"x")),
                    version: 1,
                },
            ),
        );
        apply(&mut tree, &txn(5, create("/parent/kid")));
        apply(&mut tree, &txn(6, create("/born")));
        let mut watches = WatchManager::default();
        let auth = AuthInfo::default();
        let ctx = ReadContext {
            session: 9,
            auth: &auth,
        };
        let out = read(
            &tree,
            &mut watches,
            &ctx,
            &ReadOp::SetWatches {
                relative_zxid: seen,
                data: vec!["/same".into(), "/changed".into(), "/gone".into()],
                exist: vec!["/born".into(), "/unborn".into()],
                child: vec!["/parent".into()],
                persistent: vec![],
                persistent_recursive: vec![],
            },
        );
        let got: Vec<(EventType, String)> = out
            .events
            .iter()
            .map(|e| (e.event, e.path.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                (EventType::NodeDataChanged, "/changed".to_string()),
                (EventType::NodeDeleted, "/gone".to_string()),
                (EventType::NodeCreated, "/born".to_string()),
                (EventType::NodeChildrenChanged, "/parent".to_string()),
            ]
        );
        assert!(watches.has("/same", crate::WatcherType::Data, 9));
        assert!(watches.has("/unborn", crate::WatcherType::Data, 9));
        assert!(!watches.has("/changed", crate::WatcherType::Data, 9));
    }
}
