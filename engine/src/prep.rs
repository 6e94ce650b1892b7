//! Validation of writes, as ZooKeeper's `PrepRequestProcessor`: a write op
//! from a client becomes a transaction — either the change it makes or an
//! error transaction carrying the ZooKeeper error code. Checks run in the
//! same order as ZooKeeper's so the same request fails with the same code.
//!
//! `prepare` runs against the *prepared* tree: the committed tree plus every
//! transaction already prepared but not yet durable (ZooKeeper's
//! `outstandingChanges`), so a create that follows an uncommitted create of
//! its parent succeeds, as it does in ZooKeeper.

use crate::acl::{self, AuthInfo};
use crate::apply;
use crate::constants::TTL_MS_MAX;
use crate::op::WriteOp;
use crate::path;
use crate::tree::{DataTree, CONFIG_PATH, QUOTA_PATH, ZOOKEEPER_PATH};
use crate::txn::{Txn, TxnBody, TxnHeader};
use crate::types::{
    opcode, perms, CreateMode, EphemeralKind, ErrorCode, SessionId, CONTAINER_EPHEMERAL_OWNER,
    EXTENDED_OWNER_MASK,
};

/// Who is asking, and with which identities.
pub struct PrepContext<'a> {
    pub session: SessionId,
    pub auth: &'a AuthInfo,
    pub extended_types: bool,
}

/// `getRecordForPath` of the parent: everything before the last slash.
fn parent_of(p: &str) -> Result<&str, ErrorCode> {
    match p.rfind('/') {
        None => Err(ErrorCode::BadArguments),
        Some(0) => Ok("/"),
        Some(i) => Ok(&p[..i]),
    }
}

fn validate(p: &str) -> Result<(), ErrorCode> {
    path::validate(p).map_err(|_| ErrorCode::BadArguments)
}

/// `checkAndIncVersion`.
fn check_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

fn is_special(p: &str) -> bool {
    matches!(p, "/" | ZOOKEEPER_PATH | QUOTA_PATH | CONFIG_PATH)
}

/// The data of a request is a slice of the whole request frame; the tree
/// keeps its own copy so that it does not hold the frame (path, ACL and
/// all) alive for as long as the node lives.
fn compact(data: &Option<bytes::Bytes>) -> Option<bytes::Bytes> {
    data.as_ref().map(|d| bytes::Bytes::copy_from_slice(d))
}

/// Prepares one op against `tree` (which is not modified).
pub fn prepare_op(ctx: &PrepContext, tree: &DataTree, op: &WriteOp) -> Result<TxnBody, ErrorCode> {
    match op {
        WriteOp::Create {
            opcode: code,
            path: p,
            data,
            acl: requested_acl,
            flags,
            ttl,
        } => {
            let mode = CreateMode::from_flags(*flags).ok_or(ErrorCode::BadArguments)?;
            if mode.is_ttl() && !ctx.extended_types {
                return Err(ErrorCode::Unimplemented);
            }
            // EphemeralType.validateTTL: a TTL mode needs 0 < ttl <= max,
            // any other mode needs no ttl (< 0).
            let ttl = if *code == opcode::CREATE_TTL {
                *ttl
            } else {
                -1
            };
            if mode.is_ttl() {
                if ttl <= 0 || ttl > TTL_MS_MAX {
                    return Err(ErrorCode::BadArguments);
                }
            } else if ttl >= 0 {
                return Err(ErrorCode::BadArguments);
            }
            if p.contains('\0') {
                return Err(ErrorCode::BadArguments);
            }
            let parent_path = parent_of(p)?;
            let acl = acl::fixup(requested_acl, ctx.auth)?;
            let parent = tree.get(parent_path).ok_or(ErrorCode::NoNode)?;
            acl::check(&parent.acl, perms::CREATE, ctx.auth)?;
            let mut full = p.clone();
            if mode.is_sequential() {
                // Matches ZooKeeper: the suffix is the parent's cversion.
                full.push_str(&format!("{:010}", parent.cversion));
            }
            validate(&full)?;
            if tree.get(&full).is_some() {
                return Err(ErrorCode::NodeExists);
            }
            if let EphemeralKind::Normal(_) =
                EphemeralKind::of(parent.ephemeral_owner, ctx.extended_types)
            {
                return Err(ErrorCode::NoChildrenForEphemerals);
            }
            let ephemeral_owner = if mode.is_container() {
                CONTAINER_EPHEMERAL_OWNER
            } else if mode.is_ttl() {
                EXTENDED_OWNER_MASK | ttl
            } else if mode.is_ephemeral() {
                ctx.session
            } else {
                0
            };
            Ok(TxnBody::Create {
                opcode: *code,
                path: full,
                data: compact(data),
                acl,
                ephemeral_owner,
                parent_cversion: parent.cversion + 1,
            })
        }
        WriteOp::Delete { path: p, version } => {
            if p.contains('\0') || is_special(p) {
                return Err(ErrorCode::BadArguments);
            }
            let parent_path = parent_of(p)?;
            let parent = tree.get(parent_path).ok_or(ErrorCode::NoNode)?;
            // Matches ZooKeeper: the parent's DELETE permission is checked
            // before the node is looked up.
            acl::check(&parent.acl, perms::DELETE, ctx.auth)?;
            let node = tree.get(p).ok_or(ErrorCode::NoNode)?;
            check_version(node.version, *version)?;
            if !node.children.is_empty() {
                return Err(ErrorCode::NotEmpty);
            }
            Ok(TxnBody::Delete { path: p.clone() })
        }
        WriteOp::DeleteContainer { path: p } => {
            if p.contains('\0') || is_special(p) {
                return Err(ErrorCode::BadArguments);
            }
            let node = tree.get(p).ok_or(ErrorCode::NoNode)?;
            if !node.children.is_empty() {
                return Err(ErrorCode::NotEmpty);
            }
            match EphemeralKind::of(node.ephemeral_owner, tree.extended_types()) {
                EphemeralKind::Container | EphemeralKind::Ttl(_) => {}
                _ => return Err(ErrorCode::BadArguments),
            }
            Ok(TxnBody::Delete { path: p.clone() })
        }
        WriteOp::SetData {
            path: p,
            data,
            version,
        } => {
            validate(p)?;
            let node = tree.get(p).ok_or(ErrorCode::NoNode)?;
            acl::check(&node.acl, perms::WRITE, ctx.auth)?;
            let version = check_version(node.version, *version)?;
            Ok(TxnBody::SetData {
                path: p.clone(),
                data: compact(data),
                version,
            })
        }
        WriteOp::SetAcl {
            path: p,
            acl: requested,
            version,
        } => {
            validate(p)?;
            let acl = acl::fixup(requested, ctx.auth)?;
            let node = tree.get(p).ok_or(ErrorCode::NoNode)?;
            acl::check(&node.acl, perms::ADMIN, ctx.auth)?;
            let version = check_version(node.aversion, *version)?;
            Ok(TxnBody::SetAcl {
                path: p.clone(),
                acl,
                version,
            })
        }
        WriteOp::Check { path: p, version } => {
            validate(p)?;
            let node = tree.get(p).ok_or(ErrorCode::NoNode)?;
            acl::check(&node.acl, perms::READ, ctx.auth)?;
            check_version(node.version, *version)?;
            Ok(TxnBody::Check {
                path: p.clone(),
                version: *version,
            })
        }
        WriteOp::Multi(ops) => Ok(prepare_multi(ctx, tree, ops)),
        WriteOp::CloseSession => Ok(TxnBody::CloseSession),
        WriteOp::Invalid(code) => Err(*code),
    }
}

/// A multi is all or nothing. Each op is prepared against the tree as
/// changed by the ops before it; at the first failure the whole multi turns
/// into error results: earlier ops Ok, the failing op its code, later ops
/// RuntimeInconsistency — exactly what ZooKeeper's clients see.
fn prepare_multi(ctx: &PrepContext, tree: &DataTree, ops: &[WriteOp]) -> TxnBody {
    let mut scratch = tree.clone();
    let mut txns = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let prepared = match op {
            WriteOp::Multi(_) | WriteOp::CloseSession | WriteOp::DeleteContainer { .. } => {
                Err(ErrorCode::BadArguments)
            }
            _ => prepare_op(ctx, &scratch, op),
        };
        match prepared {
            Ok(body) => {
                let header = TxnHeader {
                    session: ctx.session,
                    cxid: 0,
                    zxid: scratch.last_zxid,
                    time: 0,
                };
                apply::apply_body(&mut scratch, &header, &body);
                txns.push(body);
            }
            Err(code) => {
                let mut out: Vec<TxnBody> = (0..i).map(|_| TxnBody::Error(ErrorCode::Ok)).collect();
                out.push(TxnBody::Error(code));
                out.extend(
                    (i + 1..ops.len()).map(|_| TxnBody::Error(ErrorCode::RuntimeInconsistency)),
                );
                return TxnBody::Multi(out);
            }
        }
    }
    TxnBody::Multi(txns)
}

/// Prepares a whole transaction: the op's body or an error transaction.
pub fn prepare(ctx: &PrepContext, tree: &DataTree, header: TxnHeader, op: &WriteOp) -> Txn {
    let body = prepare_op(ctx, tree, op).unwrap_or_else(TxnBody::Error);
    Txn { header, body }
}
