//! The wire form of [`Message`]s between servers.
//!
//! ```text
//! frame   = length:u32 (bytes after this field) | kind:u8 | body
//! body    = jute-encoded fields (big-endian integers, length-prefixed
//!           buffers and strings), per kind below
//! record  = zxid:i64 | txn:buffer
//! ```
//!
//! Decoding never panics and never allocates beyond the frame it was given:
//! every length is checked against the bytes that remain. A frame larger
//! than [`PEER_FRAME_MAX`] is refused before it is read.

use std::sync::Arc;

use bytes::Bytes;

use super::{Done, DoneKind, Message, PeerState, Record, Vote};
use crate::acl::AuthInfo;
use crate::jute::{JuteError, JuteWrite, Reader};
use crate::op::WriteOp;
use crate::pipeline::{Origin, Submission};
use crate::tree::{DataTree, Node};
use crate::types::{Acl, Id};

/// The largest frame a server accepts from another (a SNAP of the whole
/// tree is one frame).
pub const PEER_FRAME_MAX: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error(transparent)]
    Jute(#[from] JuteError),
    #[error("unknown message kind {0}")]
    Kind(u8),
    #[error("bad field: {0}")]
    Field(&'static str),
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("{0} bytes left after the message")]
    Trailing(usize),
}

mod kind {
    pub const NOTIFICATION: u8 = 1;
    pub const FOLLOWER_INFO: u8 = 2;
    pub const LEADER_INFO: u8 = 3;
    pub const ACK_EPOCH: u8 = 4;
    pub const DIFF: u8 = 5;
    pub const TRUNC: u8 = 6;
    pub const SNAP: u8 = 7;
    pub const NEW_LEADER: u8 = 8;
    pub const ACK_NEW_LEADER: u8 = 9;
    pub const UP_TO_DATE: u8 = 10;
    pub const PROPOSE: u8 = 11;
    pub const ACK: u8 = 12;
    pub const COMMIT: u8 = 13;
    pub const INFORM: u8 = 14;
    pub const PING: u8 = 15;
    pub const REQUEST: u8 = 16;
    pub const YIELD: u8 = 17;
    pub const LEADERSHIP_REQUEST: u8 = 18;
}

/// Appends one frame holding `msg` to `out`.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    match msg {
        Message::Notification {
            vote,
            election_epoch,
            state,
        } => {
            out.push(kind::NOTIFICATION);
            out.put_jute_i64(vote.leader as i64);
            out.put_jute_i64(vote.zxid);
            out.put_jute_i32(vote.peer_epoch as i32);
            out.put_jute_i64(*election_epoch as i64);
            out.push(state_code(*state));
        }
        Message::FollowerInfo {
            accepted_epoch,
            last_zxid,
            observer,
        } => {
            out.push(kind::FOLLOWER_INFO);
            out.put_jute_i32(*accepted_epoch as i32);
            out.put_jute_i64(*last_zxid);
            out.put_jute_bool(*observer);
        }
        Message::LeaderInfo { epoch } => {
            out.push(kind::LEADER_INFO);
            out.put_jute_i32(*epoch as i32);
        }
        Message::AckEpoch {
            current_epoch,
            last_zxid,
        } => {
            out.push(kind::ACK_EPOCH);
            out.put_jute_i32(*current_epoch as i32);
            out.put_jute_i64(*last_zxid);
        }
        Message::Diff { records, committed } => {
            out.push(kind::DIFF);
            put_records(out, records);
            out.put_jute_i64(*committed);
        }
        Message::Trunc { zxid } => {
            out.push(kind::TRUNC);
            out.put_jute_i64(*zxid);
        }
        Message::Snap { tree, sessions } => {
            out.push(kind::SNAP);
            put_tree(out, tree);
            out.put_jute_i32(sessions.len() as i32);
            for &(id, timeout) in sessions {
                out.put_jute_i64(id);
                out.put_jute_i32(timeout);
            }
        }
        Message::NewLeader { epoch } => {
            out.push(kind::NEW_LEADER);
            out.put_jute_i32(*epoch as i32);
        }
        Message::AckNewLeader { epoch } => {
            out.push(kind::ACK_NEW_LEADER);
            out.put_jute_i32(*epoch as i32);
        }
        Message::UpToDate => out.push(kind::UP_TO_DATE),
        Message::Propose { round, records } => {
            out.push(kind::PROPOSE);
            out.put_jute_i64(*round as i64);
            put_records(out, records);
        }
        Message::Ack { round } => {
            out.push(kind::ACK);
            out.put_jute_i64(*round as i64);
        }
        Message::Commit { zxid, done } => {
            out.push(kind::COMMIT);
            out.put_jute_i64(*zxid);
            put_done(out, done);
        }
        Message::Inform {
            records,
            zxid,
            done,
        } => {
            out.push(kind::INFORM);
            put_records(out, records);
            out.put_jute_i64(*zxid);
            put_done(out, done);
        }
        Message::Ping { touched } => {
            out.push(kind::PING);
            out.put_jute_i32(touched.len() as i32);
            for s in touched {
                out.put_jute_i64(*s);
            }
        }
        Message::Request { id, submission } => {
            out.push(kind::REQUEST);
            out.put_jute_i64(*id as i64);
            put_submission(out, submission);
        }
        Message::Yield { vote } => {
            out.push(kind::YIELD);
            out.put_jute_i64(vote.leader as i64);
            out.put_jute_i64(vote.zxid);
            out.put_jute_i32(vote.peer_epoch as i32);
        }
        Message::LeadershipRequest => out.push(kind::LEADERSHIP_REQUEST),
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// The length a frame header announces; refuses frames over the limit.
pub fn frame_len(header: [u8; 4]) -> Result<usize, CodecError> {
    let n = u32::from_be_bytes(header) as usize;
    if n > PEER_FRAME_MAX {
        return Err(CodecError::TooLarge(n));
    }
    Ok(n)
}

/// Decodes one frame's body (the bytes after the length).
pub fn decode(body: Bytes) -> Result<Message, CodecError> {
    let Some((&k, _)) = body.split_first() else {
        return Err(CodecError::Field("empty frame"));
    };
    let mut r = Reader::new(body.slice(1..));
    let msg = match k {
        kind::NOTIFICATION => Message::Notification {
            vote: Vote {
                leader: u64_of(r.i64()?, "leader")?,
                zxid: r.i64()?,
                peer_epoch: u32_of(r.i32()?, "peer epoch")?,
            },
            election_epoch: u64_of(r.i64()?, "election epoch")?,
            state: state_of(byte(&mut r)?)?,
        },
        kind::FOLLOWER_INFO => Message::FollowerInfo {
            accepted_epoch: u32_of(r.i32()?, "accepted epoch")?,
            last_zxid: r.i64()?,
            observer: r.bool()?,
        },
        kind::LEADER_INFO => Message::LeaderInfo {
            epoch: u32_of(r.i32()?, "epoch")?,
        },
        kind::ACK_EPOCH => Message::AckEpoch {
            current_epoch: u32_of(r.i32()?, "current epoch")?,
            last_zxid: r.i64()?,
        },
        kind::DIFF => Message::Diff {
            records: records(&mut r)?,
            committed: r.i64()?,
        },
        kind::TRUNC => Message::Trunc { zxid: r.i64()? },
        kind::SNAP => {
            let tree = tree(&mut r)?;
            let n = r.vec_len(12)?;
            let mut sessions = Vec::with_capacity(n);
            for _ in 0..n {
                sessions.push((r.i64()?, r.i32()?));
            }
            Message::Snap { tree, sessions }
        }
        kind::NEW_LEADER => Message::NewLeader {
            epoch: u32_of(r.i32()?, "epoch")?,
        },
        kind::ACK_NEW_LEADER => Message::AckNewLeader {
            epoch: u32_of(r.i32()?, "epoch")?,
        },
        kind::UP_TO_DATE => Message::UpToDate,
        kind::PROPOSE => Message::Propose {
            round: u64_of(r.i64()?, "round")?,
            records: records(&mut r)?,
        },
        kind::ACK => Message::Ack {
            round: u64_of(r.i64()?, "round")?,
        },
        kind::COMMIT => Message::Commit {
            zxid: r.i64()?,
            done: done(&mut r)?,
        },
        kind::INFORM => Message::Inform {
            records: records(&mut r)?,
            zxid: r.i64()?,
            done: done(&mut r)?,
        },
        kind::PING => {
            let n = r.vec_len(8)?;
            let mut touched = Vec::with_capacity(n);
            for _ in 0..n {
                touched.push(r.i64()?);
            }
            Message::Ping { touched }
        }
        kind::REQUEST => Message::Request {
            id: u64_of(r.i64()?, "request id")?,
            submission: submission(&mut r)?,
        },
        kind::YIELD => Message::Yield {
            vote: Vote {
                leader: u64_of(r.i64()?, "leader")?,
                zxid: r.i64()?,
                peer_epoch: u32_of(r.i32()?, "peer epoch")?,
            },
        },
        kind::LEADERSHIP_REQUEST => Message::LeadershipRequest,
        k => return Err(CodecError::Kind(k)),
    };
    if r.remaining() != 0 {
        return Err(CodecError::Trailing(r.remaining()));
    }
    Ok(msg)
}

fn state_code(s: PeerState) -> u8 {
    match s {
        PeerState::Looking => 0,
        PeerState::Following => 1,
        PeerState::Leading => 2,
        PeerState::Observing => 3,
    }
}

fn state_of(b: u8) -> Result<PeerState, CodecError> {
    Ok(match b {
        0 => PeerState::Looking,
        1 => PeerState::Following,
        2 => PeerState::Leading,
        3 => PeerState::Observing,
        _ => return Err(CodecError::Field("peer state")),
    })
}

fn byte(r: &mut Reader) -> Result<u8, CodecError> {
    Ok(r.u8()?)
}

fn u64_of(v: i64, what: &'static str) -> Result<u64, CodecError> {
    u64::try_from(v).map_err(|_| CodecError::Field(what))
}

fn u32_of(v: i32, what: &'static str) -> Result<u32, CodecError> {
    u32::try_from(v).map_err(|_| CodecError::Field(what))
}

fn put_records(out: &mut Vec<u8>, records: &[Record]) {
    out.put_jute_i32(records.len() as i32);
    for (z, txn) in records {
        out.put_jute_i64(*z);
        out.put_jute_buffer(txn);
    }
}

fn records(r: &mut Reader) -> Result<Vec<Record>, CodecError> {
    let n = r.vec_len(12)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push((r.i64()?, r.buffer()?));
    }
    Ok(out)
}

fn put_done(out: &mut Vec<u8>, done: &[Done]) {
    out.put_jute_i32(done.len() as i32);
    for d in done {
        out.put_jute_i64(d.id as i64);
        out.put_jute_i64(d.zxid);
        match d.kind {
            DoneKind::Txn => out.push(0),
            DoneKind::Sync => out.push(1),
            DoneKind::Reattach { timeout_ms } => {
                out.push(2);
                out.put_jute_i32(timeout_ms.unwrap_or(-1));
            }
        }
    }
}

fn done(r: &mut Reader) -> Result<Vec<Done>, CodecError> {
    let n = r.vec_len(17)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = u64_of(r.i64()?, "request id")?;
        let zxid = r.i64()?;
        let kind = match byte(r)? {
            0 => DoneKind::Txn,
            1 => DoneKind::Sync,
            2 => {
                let t = r.i32()?;
                DoneKind::Reattach {
                    timeout_ms: (t >= 0).then_some(t),
                }
            }
            _ => return Err(CodecError::Field("done kind")),
        };
        out.push(Done { id, zxid, kind });
    }
    Ok(out)
}

fn put_tree(out: &mut Vec<u8>, tree: &DataTree) {
    out.put_jute_i64(tree.last_zxid);
    out.put_jute_bool(tree.extended_types());
    // The order `restore` rebuilds fastest; deterministic, too.
    out.put_jute_i32(tree.node_count() as i32);
    for (path, n) in tree.preorder() {
        out.put_jute_string(path);
        out.put_jute_buffer_opt(n.data.as_deref());
        out.put_jute_acls(&n.acl);
        for v in [n.czxid, n.mzxid, n.pzxid, n.ctime, n.mtime] {
            out.put_jute_i64(v);
        }
        for v in [n.version, n.cversion, n.aversion] {
            out.put_jute_i32(v);
        }
        out.put_jute_i64(n.ephemeral_owner);
    }
}

fn tree(r: &mut Reader) -> Result<DataTree, CodecError> {
    let last_zxid = r.i64()?;
    let extended = r.bool()?;
    let n = r.vec_len(4 + 4 + 4 + 5 * 8 + 3 * 4 + 8)?;
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        let path = r.string()?;
        if crate::path::validate(&path).is_err() && path != "/" {
            return Err(CodecError::Field("node path"));
        }
        let data = r.buffer_opt()?;
        let acl: Vec<Acl> = r.acls()?;
        let (czxid, mzxid, pzxid, ctime, mtime) =
            (r.i64()?, r.i64()?, r.i64()?, r.i64()?, r.i64()?);
        let (version, cversion, aversion) = (r.i32()?, r.i32()?, r.i32()?);
        let ephemeral_owner = r.i64()?;
        nodes.push((
            Arc::from(path),
            Arc::new(Node::restored(
                data,
                Arc::from(acl),
                czxid,
                mzxid,
                pzxid,
                ctime,
                mtime,
                version,
                cversion,
                aversion,
                ephemeral_owner,
            )),
        ));
    }
    DataTree::restore(extended, last_zxid, nodes).map_err(|_| CodecError::Field("tree shape"))
}

fn put_origin(out: &mut Vec<u8>, o: &Origin) {
    out.put_jute_i32(o.xid);
    out.put_jute_bool(o.reads_ahead);
}

/// A forwarded origin keeps the client's xid and whether reads wait
/// behind it; the core and connection only mean something on the server
/// that forwarded it, which keeps them in its own table.
fn origin(r: &mut Reader) -> Result<Origin, CodecError> {
    Ok(Origin {
        core: 0,
        conn: 0,
        xid: r.i32()?,
        reads_ahead: r.bool()?,
    })
}

fn put_submission(out: &mut Vec<u8>, s: &Submission) {
    match s {
        Submission::Write {
            origin,
            session,
            op,
            auth,
        } => {
            out.push(0);
            put_origin(out, origin);
            out.put_jute_i64(*session);
            out.put_jute_i32(auth.ids.len() as i32);
            for id in &auth.ids {
                out.put_jute_string(&id.scheme);
                out.put_jute_string(&id.id);
            }
            put_write_op(out, op);
        }
        Submission::Sync {
            origin,
            session,
            path,
        } => {
            out.push(1);
            put_origin(out, origin);
            out.put_jute_i64(*session);
            out.put_jute_string(path);
        }
        Submission::CreateSession { origin, timeout_ms } => {
            out.push(2);
            put_origin(out, origin);
            out.put_jute_i32(*timeout_ms);
        }
        Submission::Reattach {
            origin,
            session,
            password,
        } => {
            out.push(3);
            put_origin(out, origin);
            out.put_jute_i64(*session);
            out.put_jute_buffer(password);
        }
    }
}

fn submission(r: &mut Reader) -> Result<Submission, CodecError> {
    Ok(match byte(r)? {
        0 => {
            let origin = origin(r)?;
            let session = r.i64()?;
            let n = r.vec_len(8)?;
            let mut ids = Vec::with_capacity(n);
            for _ in 0..n {
                let scheme = r.string()?;
                let id = r.string()?;
                ids.push(Id::new(&scheme, &id));
            }
            let op = write_op(r, true)?;
            Submission::Write {
                origin,
                session,
                op,
                auth: Arc::new(AuthInfo { ids }),
            }
        }
        1 => Submission::Sync {
            origin: origin(r)?,
            session: r.i64()?,
            path: r.string()?,
        },
        2 => Submission::CreateSession {
            origin: origin(r)?,
            timeout_ms: r.i32()?,
        },
        3 => Submission::Reattach {
            origin: origin(r)?,
            session: r.i64()?,
            password: r.buffer()?.to_vec(),
        },
        _ => return Err(CodecError::Field("submission kind")),
    })
}

fn put_write_op(out: &mut Vec<u8>, op: &WriteOp) {
    match op {
        WriteOp::Create {
            opcode,
            path,
            data,
            acl,
            flags,
            ttl,
        } => {
            out.push(0);
            out.put_jute_i32(*opcode);
            out.put_jute_string(path);
            out.put_jute_buffer_opt(data.as_deref());
            out.put_jute_acls(acl);
            out.put_jute_i32(*flags);
            out.put_jute_i64(*ttl);
        }
        WriteOp::Delete { path, version } => {
            out.push(1);
            out.put_jute_string(path);
            out.put_jute_i32(*version);
        }
        WriteOp::DeleteContainer { path } => {
            out.push(2);
            out.put_jute_string(path);
        }
        WriteOp::SetData {
            path,
            data,
            version,
        } => {
            out.push(3);
            out.put_jute_string(path);
            out.put_jute_buffer_opt(data.as_deref());
            out.put_jute_i32(*version);
        }
        WriteOp::SetAcl { path, acl, version } => {
            out.push(4);
            out.put_jute_string(path);
            out.put_jute_acls(acl);
            out.put_jute_i32(*version);
        }
        WriteOp::Check { path, version } => {
            out.push(5);
            out.put_jute_string(path);
            out.put_jute_i32(*version);
        }
        WriteOp::Multi(ops) => {
            out.push(6);
            out.put_jute_i32(ops.len() as i32);
            for op in ops {
                put_write_op(out, op);
            }
        }
        WriteOp::CloseSession => out.push(7),
        WriteOp::Invalid(code) => {
            out.push(8);
            out.put_jute_i32(*code as i32);
        }
    }
}

/// A write operation; a multi may hold others but not another multi.
fn write_op(r: &mut Reader, top: bool) -> Result<WriteOp, CodecError> {
    Ok(match byte(r)? {
        0 => WriteOp::Create {
            opcode: r.i32()?,
            path: r.string()?,
            data: r.buffer_opt()?,
            acl: r.acls()?,
            flags: r.i32()?,
            ttl: r.i64()?,
        },
        1 => WriteOp::Delete {
            path: r.string()?,
            version: r.i32()?,
        },
        2 => WriteOp::DeleteContainer { path: r.string()? },
        3 => WriteOp::SetData {
            path: r.string()?,
            data: r.buffer_opt()?,
            version: r.i32()?,
        },
        4 => WriteOp::SetAcl {
            path: r.string()?,
            acl: r.acls()?,
            version: r.i32()?,
        },
        5 => WriteOp::Check {
            path: r.string()?,
            version: r.i32()?,
        },
        6 if top => {
            let n = r.vec_len(1)?;
            if n > crate::constants::MULTI_OPS_MAX {
                return Err(CodecError::Field("multi size"));
            }
            let mut ops = Vec::with_capacity(n);
            for _ in 0..n {
                ops.push(write_op(r, false)?);
            }
            WriteOp::Multi(ops)
        }
        7 => WriteOp::CloseSession,
        8 => WriteOp::Invalid(
            crate::types::ErrorCode::from_code(r.i32()?).ok_or(CodecError::Field("error code"))?,
        ),
        _ => return Err(CodecError::Field("write op")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Rng;
    use crate::types::opcode;

    fn samples() -> Vec<Message> {
        let mut tree = DataTree::new(false);
        let acl = tree.intern_acl(&[Acl::world_all()]);
        tree.create(
            "/a",
            Some(Bytes::from_static(b"x")),
            acl.clone(),
            0,
            0,
            3,
            7,
        )
        .unwrap();
        tree.create("/a/b", None, acl, 0x55, 0, 4, 8).unwrap();
        tree.last_zxid = 4;
        let write = WriteOp::Multi(vec![
            WriteOp::Create {
                opcode: opcode::CREATE2,
                path: "/m".into(),
                data: Some(Bytes::from_static(b"d")),
                acl: vec![Acl::world_all()],
                flags: 3,
                ttl: -1,
            },
            WriteOp::SetData {
                path: "/m".into(),
                data: None,
                version: 2,
            },
            WriteOp::Check {
                path: "/".into(),
                version: -1,
            },
        ]);
        let origin = Origin {
            core: 0,
            conn: 0,
            xid: 9,
            reads_ahead: true,
        };
        vec![
            Message::Notification {
                vote: Vote {
                    leader: 3,
                    zxid: 0x5_0000_0007,
                    peer_epoch: 5,
                },
                election_epoch: 12,
                state: PeerState::Following,
            },
            Message::FollowerInfo {
                accepted_epoch: 4,
                last_zxid: 0x4_0000_0001,
                observer: true,
            },
            Message::LeaderInfo { epoch: 6 },
            Message::AckEpoch {
                current_epoch: 5,
                last_zxid: 77,
            },
            Message::Diff {
                records: vec![(1, Bytes::from_static(b"abc")), (2, Bytes::new())],
                committed: 2,
            },
            Message::Trunc { zxid: 9 },
            Message::Snap {
                tree,
                sessions: vec![(0x55, 4000), (0x56, 6000)],
            },
            Message::NewLeader { epoch: 6 },
            Message::AckNewLeader { epoch: 6 },
            Message::UpToDate,
            Message::Propose {
                round: 17,
                records: vec![(0x6_0000_0001, Bytes::from_static(b"t"))],
            },
            Message::Ack { round: 17 },
            Message::Commit {
                zxid: 0x6_0000_0001,
                done: vec![
                    Done {
                        id: 4,
                        zxid: 0x6_0000_0001,
                        kind: DoneKind::Txn,
                    },
                    Done {
                        id: 5,
                        zxid: 0x6_0000_0001,
                        kind: DoneKind::Reattach {
                            timeout_ms: Some(4000),
                        },
                    },
                    Done {
                        id: 6,
                        zxid: 0x6_0000_0001,
                        kind: DoneKind::Reattach { timeout_ms: None },
                    },
                ],
            },
            Message::Inform {
                records: vec![(0x6_0000_0002, Bytes::from_static(b"u"))],
                zxid: 0x6_0000_0002,
                done: Vec::new(),
            },
            Message::Ping {
                touched: vec![1, 2, 3],
            },
            Message::Request {
                id: 8,
                submission: Submission::Write {
                    origin,
                    session: 0x55,
                    op: write,
                    auth: Arc::new(AuthInfo {
                        ids: vec![Id::new("digest", "u:h")],
                    }),
                },
            },
            Message::Request {
                id: 9,
                submission: Submission::Sync {
                    origin,
                    session: 0x55,
                    path: "/a".into(),
                },
            },
            Message::Request {
                id: 10,
                submission: Submission::CreateSession {
                    origin,
                    timeout_ms: 3000,
                },
            },
            Message::Request {
                id: 11,
                submission: Submission::Reattach {
                    origin,
                    session: 0x55,
                    password: vec![1; 16],
                },
            },
            Message::Yield {
                vote: Vote {
                    leader: 2,
                    zxid: 0x6_0000_0002,
                    peer_epoch: 6,
                },
            },
            Message::LeadershipRequest,
        ]
    }

    fn roundtrip(m: &Message) -> Message {
        let mut out = Vec::new();
        encode(m, &mut out);
        let len = frame_len(out[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, out.len() - 4);
        decode(Bytes::from(out).slice(4..)).unwrap()
    }

    #[test]
    fn every_message_round_trips() {
        for m in samples() {
            let back = roundtrip(&m);
            match (&m, &back) {
                (
                    Message::Snap {
                        tree: a,
                        sessions: sa,
                    },
                    Message::Snap {
                        tree: b,
                        sessions: sb,
                    },
                ) => {
                    assert_eq!(sa, sb);
                    assert_eq!(crate::sim::digest(a), crate::sim::digest(b));
                }
                _ => assert_eq!(format!("{m:?}"), format!("{back:?}")),
            }
        }
    }

    /// Truncations, bit flips and random bytes give errors, never panics.
    #[test]
    fn decoding_garbage_never_panics() {
        let mut rng = Rng::new(42);
        let frames: Vec<Vec<u8>> = samples()
            .iter()
            .map(|m| {
                let mut out = Vec::new();
                encode(m, &mut out);
                out.split_off(4)
            })
            .collect();
        for f in &frames {
            for cut in 0..f.len() {
                let _ = decode(Bytes::copy_from_slice(&f[..cut]));
            }
        }
        for _ in 0..20_000 {
            let mut f = frames[rng.below(frames.len() as u64) as usize].clone();
            for _ in 0..=rng.below(4) {
                let i = rng.below(f.len() as u64) as usize;
                f[i] ^= 1 << rng.below(8);
            }
            let _ = decode(Bytes::from(f));
            let n = rng.below(64) as usize;
            let junk: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            let _ = decode(Bytes::from(junk));
        }
        assert!(frame_len((PEER_FRAME_MAX as u32 + 1).to_be_bytes()).is_err());
    }
}
