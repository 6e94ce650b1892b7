//! The client side of ZooKeeper's wire protocol: pure functions over bytes.
//!
//! `net::proto` decodes what a client sends and encodes what a server
//! answers; this module is its mirror image, encoding requests and decoding
//! replies and watch events. Requests are spelled with the engine's own
//! nouns (`WriteOp`, `ReadOp`) and replies decode into the engine's
//! `Response`, so a request built here and decoded by `net::proto` comes
//! back as the value it started as (`net/tests/client_codec.rs` checks it).
//!
//! ```text
//! frame      := len:i32 body[len]                    (big-endian)
//! connect    := protocolVersion:i32 lastZxidSeen:i64 timeOut:i32
//!               sessionId:i64 passwd:buffer readOnly:bool
//! connected  := protocolVersion:i32 timeOut:i32 sessionId:i64 passwd:buffer
//!               [readOnly:bool]
//! request    := xid:i32 type:i32 record
//! reply      := xid:i32 zxid:i64 err:i32 [record if err == 0]
//! event      := xid=-1 zxid=-1 err=0 type:i32 state:i32 path:string
//! ```

use bytes::Bytes;
use engine::jute::{begin_frame, end_frame, JuteError, JuteWrite, Reader};
use engine::op::{MultiReadResult, MultiResult, ReadOp, Response, WriteOp};
use engine::types::{opcode, AddWatchMode, ErrorCode, WatcherType};

/// Special xids (`ClientCnxn`).
pub const XID_NOTIFICATION: i32 = -1;
pub const XID_PING: i32 = -2;
pub const XID_AUTH: i32 = -4;
pub const XID_SET_WATCHES: i32 = -8;

/// The largest frame the client accepts (ZooKeeper's client default
/// `jute.maxbuffer` is 0xfffff; a getChildren of a huge node can be more,
/// so the client is as lenient as the server's own upper bound).
pub const FRAME_BYTES_MAX: usize = engine::constants::JUTE_MAXBUFFER_MAX;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("frame length {0} is negative or too large")]
    BadLength(i64),
    #[error("malformed record: {0}")]
    Jute(#[from] JuteError),
    #[error("unexpected type {0} in a multi reply")]
    BadMultiResult(i32),
}

/// The length of the first whole frame of `buf` (prefix included), or
/// None while it is incomplete.
pub fn split_frame(buf: &[u8], max: usize) -> Result<Option<usize>, CodecError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 0 || len as usize > max {
        return Err(CodecError::BadLength(len as i64));
    }
    let total = 4 + len as usize;
    Ok((buf.len() >= total).then_some(total))
}

pub use engine::op::ConnectRequest;

pub fn encode_connect(out: &mut Vec<u8>, req: &ConnectRequest) {
    let start = begin_frame(out);
    out.put_jute_i32(req.protocol_version);
    out.put_jute_i64(req.last_zxid_seen);
    out.put_jute_i32(req.timeout_ms);
    out.put_jute_i64(req.session_id);
    out.put_jute_buffer(&req.password);
    out.put_jute_bool(req.read_only);
    end_frame(out, start);
}

/// `ConnectResponse`. A `timeout_ms` of 0 or less means the server refused
/// the session: it expired (or never existed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Bytes,
    pub read_only: bool,
}

pub fn decode_connect_response(body: Bytes) -> Result<ConnectResponse, CodecError> {
    let mut r = Reader::new(body);
    Ok(ConnectResponse {
        protocol_version: r.i32()?,
        timeout_ms: r.i32()?,
        session_id: r.i64()?,
        password: r.buffer()?,
        // Servers before 3.4 omit the flag.
        read_only: if r.remaining() > 0 { r.bool()? } else { false },
    })
}

/// What a client can ask: the engine's operations plus the requests that
/// never reach it (sync, ping, auth).
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Write(WriteOp),
    Read(ReadOp),
    Sync(String),
    Ping,
    Auth { scheme: String, auth: Bytes },
}

fn write_opcode(op: &WriteOp) -> i32 {
    match op {
        WriteOp::Create { opcode, .. } => *opcode,
        WriteOp::Delete { .. } => opcode::DELETE,
        WriteOp::DeleteContainer { .. } => opcode::DELETE_CONTAINER,
        WriteOp::SetData { .. } => opcode::SET_DATA,
        WriteOp::SetAcl { .. } => opcode::SET_ACL,
        WriteOp::Check { .. } => opcode::CHECK,
        WriteOp::Multi(_) => opcode::MULTI,
        WriteOp::CloseSession => opcode::CLOSE_SESSION,
        WriteOp::Invalid(code) => panic!("a client never sends an invalid op ({code})"),
    }
}

fn read_opcode(op: &ReadOp) -> i32 {
    match op {
        ReadOp::Exists { .. } => opcode::EXISTS,
        ReadOp::GetData { .. } => opcode::GET_DATA,
        ReadOp::GetAcl { .. } => opcode::GET_ACL,
        ReadOp::GetChildren {
            with_stat: false, ..
        } => opcode::GET_CHILDREN,
        ReadOp::GetChildren {
            with_stat: true, ..
        } => opcode::GET_CHILDREN2,
        ReadOp::GetAllChildrenNumber { .. } => opcode::GET_ALL_CHILDREN_NUMBER,
        ReadOp::GetEphemerals { .. } => opcode::GET_EPHEMERALS,
        ReadOp::MultiRead(_) => opcode::MULTI_READ,
        ReadOp::CheckWatches { .. } => opcode::CHECK_WATCHES,
        ReadOp::RemoveWatches { .. } => opcode::REMOVE_WATCHES,
        ReadOp::AddWatch { .. } => opcode::ADD_WATCH,
        // Matches ZooKeeper's client: the old SetWatches unless persistent
        // watches need the newer record.
        ReadOp::SetWatches {
            persistent,
            persistent_recursive,
            ..
        } if persistent.is_empty() && persistent_recursive.is_empty() => opcode::SET_WATCHES,
        ReadOp::SetWatches { .. } => opcode::SET_WATCHES2,
        ReadOp::WhoAmI => opcode::WHO_AM_I,
    }
}

impl Request {
    pub fn opcode(&self) -> i32 {
        match self {
            Request::Write(op) => write_opcode(op),
            Request::Read(op) => read_opcode(op),
            Request::Sync(_) => opcode::SYNC,
            Request::Ping => opcode::PING,
            Request::Auth { .. } => opcode::AUTH,
        }
    }

    /// The path a request names, for error messages.
    pub fn path(&self) -> Option<&str> {
        match self {
            Request::Write(op) => op.path(),
            Request::Read(op) => op.path(),
            Request::Sync(path) => Some(path),
            _ => None,
        }
    }
}

fn watcher_type_code(kind: WatcherType) -> i32 {
    match kind {
        WatcherType::Children => 1,
        WatcherType::Data => 2,
        WatcherType::Any => 3,
        WatcherType::Persistent => 4,
        WatcherType::PersistentRecursive => 5,
    }
}

fn put_write(out: &mut Vec<u8>, op: &WriteOp) {
    match op {
        WriteOp::Create {
            opcode: code,
            path,
            data,
            acl,
            flags,
            ttl,
        } => {
            out.put_jute_string(path);
            out.put_jute_buffer_opt(data.as_deref());
            out.put_jute_acls(acl);
            out.put_jute_i32(*flags);
            if *code == opcode::CREATE_TTL {
                out.put_jute_i64(*ttl);
            }
        }
        WriteOp::Delete { path, version } | WriteOp::Check { path, version } => {
            out.put_jute_string(path);
            out.put_jute_i32(*version);
        }
        WriteOp::DeleteContainer { path } => out.put_jute_string(path),
        WriteOp::SetData {
            path,
            data,
            version,
        } => {
            out.put_jute_string(path);
            out.put_jute_buffer_opt(data.as_deref());
            out.put_jute_i32(*version);
        }
        WriteOp::SetAcl { path, acl, version } => {
            out.put_jute_string(path);
            out.put_jute_acls(acl);
            out.put_jute_i32(*version);
        }
        WriteOp::Multi(ops) => {
            for op in ops {
                put_multi_header(out, write_opcode(op), false);
                put_write(out, op);
            }
            put_multi_header(out, -1, true);
        }
        WriteOp::CloseSession => {}
        WriteOp::Invalid(code) => panic!("a client never sends an invalid op ({code})"),
    }
}

/// `MultiHeader`: type, done, err (always -1 in a request).
fn put_multi_header(out: &mut Vec<u8>, t: i32, done: bool) {
    out.put_jute_i32(t);
    out.put_jute_bool(done);
    out.put_jute_i32(-1);
}

fn put_read(out: &mut Vec<u8>, op: &ReadOp) {
    match op {
        ReadOp::Exists { path, watch }
        | ReadOp::GetData { path, watch }
        | ReadOp::GetChildren { path, watch, .. } => {
            out.put_jute_string(path);
            out.put_jute_bool(*watch);
        }
        ReadOp::GetAcl { path } | ReadOp::GetAllChildrenNumber { path } => {
            out.put_jute_string(path)
        }
        ReadOp::GetEphemerals { prefix } => out.put_jute_string(prefix),
        ReadOp::MultiRead(ops) => {
            for op in ops {
                put_multi_header(out, read_opcode(op), false);
                put_read(out, op);
            }
            put_multi_header(out, -1, true);
        }
        ReadOp::CheckWatches { path, kind } | ReadOp::RemoveWatches { path, kind } => {
            out.put_jute_string(path);
            out.put_jute_i32(watcher_type_code(*kind));
        }
        ReadOp::AddWatch { path, mode } => {
            out.put_jute_string(path);
            out.put_jute_i32(match mode {
                AddWatchMode::Persistent => 0,
                AddWatchMode::PersistentRecursive => 1,
            });
        }
        ReadOp::SetWatches {
            relative_zxid,
            data,
            exist,
            child,
            persistent,
            persistent_recursive,
        } => {
            out.put_jute_i64(*relative_zxid);
            out.put_jute_strings(data);
            out.put_jute_strings(exist);
            out.put_jute_strings(child);
            if read_opcode(op) == opcode::SET_WATCHES2 {
                out.put_jute_strings(persistent);
                out.put_jute_strings(persistent_recursive);
            }
        }
        ReadOp::WhoAmI => {}
    }
}

/// Appends one request frame.
pub fn encode_request(out: &mut Vec<u8>, xid: i32, req: &Request) {
    let start = begin_frame(out);
    out.put_jute_i32(xid);
    encode_request_body(out, req);
    end_frame(out, start);
}

/// Appends a request's type and record, without frame or xid: for callers
/// that number and frame requests themselves (the load generator's
/// pipelines).
pub fn encode_request_body(out: &mut Vec<u8>, req: &Request) {
    out.put_jute_i32(req.opcode());
    match req {
        Request::Write(op) => put_write(out, op),
        Request::Read(op) => put_read(out, op),
        Request::Sync(path) => out.put_jute_string(path),
        Request::Ping => {}
        Request::Auth { scheme, auth } => {
            out.put_jute_i32(0); // AuthPacket.type, unused
            out.put_jute_string(scheme);
            out.put_jute_buffer(auth);
        }
    }
}

/// `ReplyHeader`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

/// Splits a frame body (after the length prefix) into its reply header and
/// the record that follows.
pub fn decode_reply_header(body: Bytes) -> Result<(ReplyHeader, Bytes), CodecError> {
    let mut r = Reader::new(body.clone());
    let header = ReplyHeader {
        xid: r.i32()?,
        zxid: r.i64()?,
        err: r.i32()?,
    };
    Ok((header, body.slice(r.position()..)))
}

/// `WatcherEvent`, with the raw type and state codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatcherEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
}

pub fn decode_event(record: Bytes) -> Result<WatcherEvent, CodecError> {
    let mut r = Reader::new(record);
    Ok(WatcherEvent {
        event_type: r.i32()?,
        state: r.i32()?,
        path: r.string()?,
    })
}

/// An error code as sent; codes this build does not know read as
/// SystemError rather than failing the connection.
pub fn error_code(err: i32) -> ErrorCode {
    ErrorCode::from_code(err).unwrap_or(ErrorCode::SystemError)
}

/// Decodes the record of a successful reply to a request of type `code`.
pub fn decode_response(code: i32, record: Bytes) -> Result<Response, CodecError> {
    let mut r = Reader::new(record);
    let resp = match code {
        opcode::CREATE | opcode::SYNC => Response::Path(r.string()?),
        opcode::CREATE2 | opcode::CREATE_CONTAINER | opcode::CREATE_TTL => {
            Response::PathStat(r.string()?, r.stat()?)
        }
        opcode::EXISTS | opcode::SET_DATA | opcode::SET_ACL => Response::Stat(r.stat()?),
        opcode::GET_DATA => Response::Data(r.buffer_opt()?, r.stat()?),
        opcode::GET_ACL => Response::Acl(r.acls()?, r.stat()?),
        opcode::GET_CHILDREN => Response::Children(r.strings()?),
        opcode::GET_CHILDREN2 => Response::Children2(r.strings()?, r.stat()?),
        opcode::GET_ALL_CHILDREN_NUMBER => Response::Number(r.i32()?),
        opcode::GET_EPHEMERALS => Response::Strings(r.strings()?),
        opcode::WHO_AM_I => {
            let n = r.vec_len(8)?;
            let mut ids = Vec::with_capacity(n);
            for _ in 0..n {
                ids.push((r.string()?, r.string()?));
            }
            Response::WhoAmI(ids)
        }
        opcode::MULTI => Response::Multi(multi_results(&mut r)?),
        opcode::MULTI_READ => Response::MultiRead(multi_read_results(&mut r)?),
        _ => Response::Empty,
    };
    Ok(resp)
}

/// The entries of a multi or multiRead reply: `(type, done, err)` headers
/// until `done`, each followed by what `item` reads for its type.
fn multi_entries<T>(
    r: &mut Reader,
    mut item: impl FnMut(i32, &mut Reader) -> Result<T, CodecError>,
) -> Result<Vec<T>, CodecError> {
    let mut out = Vec::new();
    loop {
        let t = r.i32()?;
        let done = r.bool()?;
        let _err = r.i32()?;
        if done {
            return Ok(out);
        }
        if out.len() >= engine::constants::MULTI_OPS_MAX {
            return Err(CodecError::BadMultiResult(t));
        }
        out.push(item(t, r)?);
    }
}

fn multi_results(r: &mut Reader) -> Result<Vec<MultiResult>, CodecError> {
    multi_entries(r, |t, r| {
        Ok(match t {
            opcode::CREATE => MultiResult::Create(r.string()?),
            opcode::CREATE2 | opcode::CREATE_CONTAINER | opcode::CREATE_TTL => {
                MultiResult::Create2(r.string()?, r.stat()?)
            }
            opcode::DELETE => MultiResult::Delete,
            opcode::SET_DATA => MultiResult::SetData(r.stat()?),
            opcode::CHECK => MultiResult::Check,
            opcode::ERROR => MultiResult::Error(error_code(r.i32()?)),
            other => return Err(CodecError::BadMultiResult(other)),
        })
    })
}

fn multi_read_results(r: &mut Reader) -> Result<Vec<MultiReadResult>, CodecError> {
    multi_entries(r, |t, r| {
        Ok(match t {
            opcode::GET_CHILDREN => MultiReadResult::Children(r.strings()?),
            opcode::GET_DATA => MultiReadResult::Data(r.buffer_opt()?, r.stat()?),
            opcode::ERROR => MultiReadResult::Error(error_code(r.i32()?)),
            other => return Err(CodecError::BadMultiResult(other)),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::types::Stat;

    #[test]
    fn split_frame_waits_for_whole_frames_and_refuses_huge_ones() {
        assert_eq!(split_frame(&[0, 0, 0], 10), Ok(None));
        assert_eq!(split_frame(&[0, 0, 0, 2, 9], 10), Ok(None));
        assert_eq!(split_frame(&[0, 0, 0, 2, 9, 9, 7], 10), Ok(Some(6)));
        assert!(split_frame(&[0x7f, 0, 0, 0], 10).is_err());
        assert!(split_frame(&[0xff, 0xff, 0xff, 0xfe], 10).is_err());
    }

    #[test]
    fn connect_request_is_the_45_byte_record_plus_prefix() {
        let mut out = Vec::new();
        encode_connect(&mut out, &ConnectRequest::new_session(30_000));
        // 4 + 8 + 4 + 8 + (4 + 16) + 1 bytes of record.
        assert_eq!(out.len(), 4 + 45);
        assert_eq!(&out[..4], &45i32.to_be_bytes());
    }

    #[test]
    fn connect_response_without_read_only_flag_decodes() {
        let mut b = Vec::new();
        b.put_jute_i32(0);
        b.put_jute_i32(4000);
        b.put_jute_i64(0x1234);
        b.put_jute_buffer(&[7u8; 16]);
        let r = decode_connect_response(b.into()).unwrap();
        assert_eq!(r.timeout_ms, 4000);
        assert_eq!(r.session_id, 0x1234);
        assert!(!r.read_only);
    }

    #[test]
    fn multi_reply_decodes_every_result_kind() {
        let stat = Stat {
            version: 3,
            ..Stat::default()
        };
        let mut b = Vec::new();
        for (t, err) in [
            (opcode::CREATE, 0),
            (opcode::SET_DATA, 0),
            (opcode::ERROR, -101),
        ] {
            b.put_jute_i32(t);
            b.put_jute_bool(false);
            b.put_jute_i32(err);
            match t {
                opcode::CREATE => b.put_jute_string("/a"),
                opcode::SET_DATA => b.put_jute_stat(&stat),
                _ => b.put_jute_i32(err),
            }
        }
        b.put_jute_i32(-1);
        b.put_jute_bool(true);
        b.put_jute_i32(-1);
        assert_eq!(
            decode_response(opcode::MULTI, b.into()).unwrap(),
            Response::Multi(vec![
                MultiResult::Create("/a".into()),
                MultiResult::SetData(stat),
                MultiResult::Error(ErrorCode::NoNode),
            ])
        );
    }

    #[test]
    fn truncated_replies_are_errors_not_panics() {
        let mut b = Vec::new();
        b.put_jute_buffer(b"data");
        b.put_jute_stat(&Stat::default());
        for n in 0..b.len() {
            let cut = Bytes::copy_from_slice(&b[..n]);
            assert!(decode_response(opcode::GET_DATA, cut).is_err());
        }
        assert!(decode_response(opcode::GET_DATA, b.into()).is_ok());
    }

    #[test]
    fn set_watches_uses_the_old_record_without_persistent_watches() {
        let old = Request::Read(ReadOp::SetWatches {
            relative_zxid: 5,
            data: vec!["/a".into()],
            exist: vec![],
            child: vec![],
            persistent: vec![],
            persistent_recursive: vec![],
        });
        assert_eq!(old.opcode(), opcode::SET_WATCHES);
        let new = Request::Read(ReadOp::SetWatches {
            relative_zxid: 5,
            data: vec![],
            exist: vec![],
            child: vec![],
            persistent: vec![],
            persistent_recursive: vec!["/r".into()],
        });
        assert_eq!(new.opcode(), opcode::SET_WATCHES2);
    }
}
