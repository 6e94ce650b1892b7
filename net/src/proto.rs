//! The ZooKeeper client wire protocol: length-prefixed jute frames.
//!
//! Every decoder is a pure function over bytes. "Need more bytes" is not an
//! error; a length prefix is checked against `jute.maxbuffer` before anything
//! is allocated. As in ZooKeeper, what is not a request at all (a bad length
//! prefix, a malformed connect request, a frame too short for its header)
//! closes the connection, while a request whose body does not decode is
//! answered MarshallingError (`Request::Malformed`).
//!
//! ```text
//! frame      := len:i32 body[len]                    (big-endian)
//! connect    := protocolVersion:i32 lastZxidSeen:i64 timeOut:i32
//!               sessionId:i64 passwd:buffer [readOnly:bool]
//! request    := xid:i32 type:i32 record
//! reply      := xid:i32 zxid:i64 err:i32 [record if err == 0]
//! event      := xid=-1 zxid=-1 err=0 type:i32 state:i32 path:string
//! ```

use bytes::Bytes;
use engine::jute::{begin_frame, end_frame, JuteError, JuteWrite, Reader};
use engine::op::{MultiReadResult, MultiResult, ReadOp, Response, WriteOp};
use engine::types::{opcode, AddWatchMode, ErrorCode, EventType, Stat, WatcherType};

/// Special xids (`ClientCnxn`).
pub const XID_NOTIFICATION: i32 = -1;
pub const XID_PING: i32 = -2;
pub const XID_AUTH: i32 = -4;

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("frame length {0} is negative or exceeds jute.maxbuffer")]
    BadLength(i64),
    #[error("malformed record: {0}")]
    Jute(#[from] JuteError),
    #[error("invalid type {0} inside a multi or multiRead")]
    BadMultiOp(i32),
    #[error("unknown watcher type {0}")]
    BadWatcherType(i32),
    #[error("unknown addWatch mode {0}")]
    BadWatchMode(i32),
}

/// Splits one frame off the front of `buf`: Ok(None) while incomplete.
pub fn split_frame(buf: &[u8], max: usize) -> Result<Option<(usize, usize)>, CodecError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 0 || len as usize > max {
        return Err(CodecError::BadLength(len as i64));
    }
    let len = len as usize;
    if buf.len() < 4 + len {
        return Ok(None);
    }
    Ok(Some((4, 4 + len)))
}

/// The four-letter words ZooKeeper answers on the client port.
pub const FOUR_LETTER_WORDS: &[&str] = &[
    "ruok", "srvr", "stat", "mntr", "conf", "cons", "crst", "srst", "envi", "wchs", "wchc", "wchp",
    "dump", "dirs", "isro", "gtmk", "stmk",
    // ClickHouse Keeper's, which corral also answers.
    "csnp", "lgif", "rqld", "ydld",
];

/// A connection's first four bytes may be a four-letter word instead of a
/// length prefix.
pub fn four_letter_word(first: &[u8]) -> Option<&'static str> {
    if first.len() < 4 {
        return None;
    }
    FOUR_LETTER_WORDS
        .iter()
        .copied()
        .find(|w| w.as_bytes() == &first[..4])
}

pub use engine::op::ConnectRequest;

pub fn decode_connect(body: Bytes) -> Result<ConnectRequest, CodecError> {
    let mut r = Reader::new(body);
    let req = ConnectRequest {
        protocol_version: r.i32()?,
        last_zxid_seen: r.i64()?,
        timeout_ms: r.i32()?,
        session_id: r.i64()?,
        password: r.buffer()?,
        // Old clients omit the flag.
        read_only: if r.remaining() > 0 { r.bool()? } else { false },
    };
    Ok(req)
}

pub fn encode_connect_response(
    out: &mut Vec<u8>,
    timeout_ms: i32,
    session_id: i64,
    password: &[u8],
    read_only: bool,
) {
    let start = begin_frame(out);
    out.put_jute_i32(0);
    out.put_jute_i32(timeout_ms);
    out.put_jute_i64(session_id);
    out.put_jute_buffer(password);
    out.put_jute_bool(read_only);
    end_frame(out, start);
}

/// What a request frame asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Write(WriteOp),
    Read(ReadOp),
    Sync(String),
    Ping,
    Auth {
        scheme: String,
        auth: Bytes,
    },
    Sasl,
    /// reconfig (16), well formed; the server refuses it.
    Reconfig,
    /// A request whose header decoded but whose body did not (truncated, a
    /// null path where ZooKeeper dereferences it, a bad vector length, an
    /// unknown watcher type or watch mode, a read inside a multi...).
    /// ZooKeeper answers it with MarshallingError and keeps the connection
    /// (measured on 3.8, docs/internals/zk-facts.md section e): a `write`
    /// (an opcode PrepRequestProcessor turns into a transaction before it
    /// deserialises the body) becomes an error transaction and takes a
    /// zxid; anything else is answered with the last zxid.
    Malformed {
        write: bool,
        error: CodecError,
    },
    /// An opcode the server does not know; answered Unimplemented.
    Unknown,
}

/// ZooKeeper's name of an opcode (`OpCode` in its sources), for logs.
pub fn opcode_name(opcode: i32) -> &'static str {
    use engine::types::opcode::*;
    match opcode {
        NOTIFICATION => "notification",
        CREATE => "create",
        DELETE => "delete",
        EXISTS => "exists",
        GET_DATA => "getData",
        SET_DATA => "setData",
        GET_ACL => "getACL",
        SET_ACL => "setACL",
        GET_CHILDREN => "getChildren",
        SYNC => "sync",
        PING => "ping",
        GET_CHILDREN2 => "getChildren2",
        CHECK => "check",
        MULTI => "multi",
        CREATE2 => "create2",
        RECONFIG => "reconfig",
        CHECK_WATCHES => "checkWatches",
        REMOVE_WATCHES => "removeWatches",
        CREATE_CONTAINER => "createContainer",
        DELETE_CONTAINER => "deleteContainer",
        CREATE_TTL => "createTTL",
        MULTI_READ => "multiRead",
        AUTH => "auth",
        SET_WATCHES => "setWatches",
        SASL => "sasl",
        GET_EPHEMERALS => "getEphemerals",
        GET_ALL_CHILDREN_NUMBER => "getAllChildrenNumber",
        SET_WATCHES2 => "setWatches2",
        ADD_WATCH => "addWatch",
        WHO_AM_I => "whoAmI",
        CREATE_SESSION => "createSession",
        CLOSE_SESSION => "closeSession",
        _ => "unknown",
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RequestFrame {
    pub xid: i32,
    pub opcode: i32,
    pub request: Request,
}

/// The opcodes whose malformed body ZooKeeper turns into an error
/// transaction (`PrepRequestProcessor` sets the transaction header, and so
/// takes the next zxid, before it deserialises the request). reconfig is
/// not one: its body is deserialised first.
fn takes_a_zxid(code: i32) -> bool {
    matches!(
        code,
        opcode::CREATE
            | opcode::CREATE2
            | opcode::CREATE_CONTAINER
            | opcode::CREATE_TTL
            | opcode::DELETE
            | opcode::DELETE_CONTAINER
            | opcode::SET_DATA
            | opcode::SET_ACL
            | opcode::CHECK
            | opcode::MULTI
    )
}

/// A string that may be null (length -1).
fn string_opt(r: &mut Reader) -> Result<Option<String>, CodecError> {
    let offset = r.position();
    match r.buffer_opt()? {
        None => Ok(None),
        Some(b) => String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| CodecError::Jute(JuteError::BadUtf8 { offset })),
    }
}

/// A path that must not be null: ZooKeeper reads a null string as a null
/// path, which these requests dereference while processing it, so a null
/// path is a MarshallingError there (measured for getData, exists,
/// getChildren, getACL, create and delete).
fn path(r: &mut Reader) -> Result<String, CodecError> {
    let offset = r.position();
    string_opt(r)?.ok_or(CodecError::Jute(JuteError::BadLength {
        offset,
        length: -1,
    }))
}

/// The path of setData, setACL and check, which ZooKeeper validates first:
/// `PathUtils.validatePath` refuses a null path with BadArguments (measured),
/// after the whole body was deserialised.
fn validated_path(path: Option<String>, op: impl FnOnce(String) -> WriteOp) -> WriteOp {
    match path {
        Some(p) => op(p),
        None => WriteOp::Invalid(ErrorCode::BadArguments),
    }
}

/// The body of a write that may also appear inside a multi. Inside a
/// multi (`in_multi`) every null path is a MarshallingError of the whole
/// multi, as on ZooKeeper (measured), whose multi handling dereferences the
/// path before it validates it.
fn write_op(r: &mut Reader, code: i32, in_multi: bool) -> Result<WriteOp, CodecError> {
    let offset = r.position();
    let op = write_op_body(r, code)?;
    if in_multi && op == WriteOp::Invalid(ErrorCode::BadArguments) {
        return Err(CodecError::Jute(JuteError::BadLength {
            offset,
            length: -1,
        }));
    }
    Ok(op)
}

fn write_op_body(r: &mut Reader, code: i32) -> Result<WriteOp, CodecError> {
    Ok(match code {
        opcode::CREATE | opcode::CREATE2 | opcode::CREATE_CONTAINER | opcode::CREATE_TTL => {
            let path = path(r)?;
            let data = r.buffer_opt()?;
            let acl = r.acls()?;
            let flags = r.i32()?;
            let ttl = if code == opcode::CREATE_TTL {
                r.i64()?
            } else {
                -1
            };
            WriteOp::Create {
                opcode: code,
                path,
                data,
                acl,
                flags,
                ttl,
            }
        }
        opcode::DELETE => WriteOp::Delete {
            path: path(r)?,
            version: r.i32()?,
        },
        opcode::SET_DATA => {
            let p = string_opt(r)?;
            let data = r.buffer_opt()?;
            let version = r.i32()?;
            validated_path(p, |path| WriteOp::SetData {
                path,
                data,
                version,
            })
        }
        opcode::CHECK => {
            let p = string_opt(r)?;
            let version = r.i32()?;
            validated_path(p, |path| WriteOp::Check { path, version })
        }
        other => return Err(CodecError::BadMultiOp(other)),
    })
}

/// Reads the ops of a multi or multiRead (`MultiOperationRecord`).
/// ZooKeeper's record refuses a read inside a multi and a write inside a
/// multiRead ("Mixing read and write operations"), and any other type.
fn multi_ops(r: &mut Reader, reads: bool) -> Result<Vec<Request>, CodecError> {
    let mut ops = Vec::new();
    loop {
        let t = r.i32()?;
        let done = r.bool()?;
        let _err = r.i32()?;
        if done {
            break;
        }
        if ops.len() >= engine::constants::MULTI_OPS_MAX {
            return Err(CodecError::BadMultiOp(t));
        }
        let req = match (t, reads) {
            (opcode::GET_CHILDREN, true) => Request::Read(ReadOp::GetChildren {
                path: path(r)?,
                watch: r.bool()?,
                with_stat: false,
            }),
            (opcode::GET_DATA, true) => Request::Read(ReadOp::GetData {
                path: path(r)?,
                watch: r.bool()?,
            }),
            (
                opcode::CREATE
                | opcode::CREATE2
                | opcode::CREATE_CONTAINER
                | opcode::CREATE_TTL
                | opcode::DELETE
                | opcode::SET_DATA
                | opcode::CHECK,
                false,
            ) => Request::Write(write_op(r, t, true)?),
            (other, _) => return Err(CodecError::BadMultiOp(other)),
        };
        ops.push(req);
    }
    Ok(ops)
}

/// Decodes one request frame body (after the length prefix).
///
/// A frame too short for its header (xid and opcode) is not a request at
/// all: an error, on which the connection closes, as ZooKeeper closes it.
/// After a good header, a body that does not decode is a request ZooKeeper
/// answers: `Request::Malformed` — except auth and SASL, whose malformed
/// bodies close the connection there (measured) and here. Bytes after a
/// complete body are ignored, as ZooKeeper's deserialisers ignore them
/// (measured: getData and setData with trailing bytes succeed).
pub fn decode_request(body: Bytes) -> Result<RequestFrame, CodecError> {
    let mut r = Reader::new(body);
    let xid = r.i32()?;
    let code = r.i32()?;
    let request = match decode_body(&mut r, code) {
        Ok(request) => request,
        Err(e) if code == opcode::AUTH || code == opcode::SASL => return Err(e),
        Err(error) => Request::Malformed {
            write: takes_a_zxid(code),
            error,
        },
    };
    Ok(RequestFrame {
        xid,
        opcode: code,
        request,
    })
}

fn decode_body(r: &mut Reader, code: i32) -> Result<Request, CodecError> {
    Ok(match code {
        opcode::CREATE
        | opcode::CREATE2
        | opcode::CREATE_CONTAINER
        | opcode::CREATE_TTL
        | opcode::DELETE
        | opcode::SET_DATA
        | opcode::CHECK => Request::Write(write_op(r, code, false)?),
        opcode::DELETE_CONTAINER => Request::Write(WriteOp::DeleteContainer { path: path(r)? }),
        opcode::SET_ACL => {
            let p = string_opt(r)?;
            let acl = r.acls()?;
            let version = r.i32()?;
            Request::Write(validated_path(p, |path| WriteOp::SetAcl {
                path,
                acl,
                version,
            }))
        }
        opcode::MULTI => {
            let ops = multi_ops(r, false)?
                .into_iter()
                .map(|req| match req {
                    Request::Write(w) => w,
                    other => unreachable!("multi_ops gave {other:?} for a multi"),
                })
                .collect();
            Request::Write(WriteOp::Multi(ops))
        }
        opcode::MULTI_READ => {
            let ops = multi_ops(r, true)?
                .into_iter()
                .map(|req| match req {
                    Request::Read(op) => op,
                    other => unreachable!("multi_ops gave {other:?} for a multiRead"),
                })
                .collect();
            Request::Read(ReadOp::MultiRead(ops))
        }
        opcode::CLOSE_SESSION => Request::Write(WriteOp::CloseSession),
        opcode::EXISTS => Request::Read(ReadOp::Exists {
            path: path(r)?,
            watch: r.bool()?,
        }),
        opcode::GET_DATA => Request::Read(ReadOp::GetData {
            path: path(r)?,
            watch: r.bool()?,
        }),
        opcode::GET_ACL => Request::Read(ReadOp::GetAcl { path: path(r)? }),
        opcode::GET_CHILDREN | opcode::GET_CHILDREN2 => Request::Read(ReadOp::GetChildren {
            path: path(r)?,
            watch: r.bool()?,
            with_stat: code == opcode::GET_CHILDREN2,
        }),
        opcode::GET_ALL_CHILDREN_NUMBER => {
            Request::Read(ReadOp::GetAllChildrenNumber { path: path(r)? })
        }
        opcode::GET_EPHEMERALS => Request::Read(ReadOp::GetEphemerals {
            prefix: r.string()?,
        }),
        opcode::CHECK_WATCHES | opcode::REMOVE_WATCHES => {
            let path = path(r)?;
            let t = r.i32()?;
            // Matches ZooKeeper: an unknown WatcherType fails to
            // deserialise, a MarshallingError (measured).
            let kind = WatcherType::from_code(t).ok_or(CodecError::BadWatcherType(t))?;
            if code == opcode::CHECK_WATCHES {
                Request::Read(ReadOp::CheckWatches { path, kind })
            } else {
                Request::Read(ReadOp::RemoveWatches { path, kind })
            }
        }
        opcode::ADD_WATCH => {
            let path = path(r)?;
            let mode = r.i32()?;
            let mode = AddWatchMode::from_code(mode).ok_or(CodecError::BadWatchMode(mode))?;
            Request::Read(ReadOp::AddWatch { path, mode })
        }
        opcode::SET_WATCHES | opcode::SET_WATCHES2 => {
            let relative_zxid = r.i64()?;
            let data = r.strings()?;
            let exist = r.strings()?;
            let child = r.strings()?;
            let (persistent, persistent_recursive) = if code == opcode::SET_WATCHES2 {
                (r.strings()?, r.strings()?)
            } else {
                (Vec::new(), Vec::new())
            };
            Request::Read(ReadOp::SetWatches {
                relative_zxid,
                data,
                exist,
                child,
                persistent,
                persistent_recursive,
            })
        }
        opcode::WHO_AM_I => Request::Read(ReadOp::WhoAmI),
        opcode::SYNC => Request::Sync(r.string()?),
        opcode::PING => Request::Ping,
        opcode::AUTH => {
            let _type = r.i32()?;
            Request::Auth {
                scheme: r.string()?,
                auth: r.buffer()?,
            }
        }
        opcode::SASL => {
            // Apache ZooKeeper dereferences the token: a null one (like a
            // missing one) closes the connection there, and here.
            let at = r.position();
            if r.buffer_opt()?.is_none() {
                return Err(CodecError::Jute(JuteError::BadLength {
                    offset: at,
                    length: -1,
                }));
            }
            Request::Sasl
        }
        opcode::RECONFIG => {
            // ReconfigRequest: joiningServers, leavingServers, newMembers
            // (each may be null) and curConfigId. ZooKeeper deserialises it
            // before it refuses it, so a malformed one is a MarshallingError
            // without a zxid (measured); the contents are not needed.
            for _ in 0..3 {
                string_opt(r)?;
            }
            r.i64()?;
            Request::Reconfig
        }
        _ => Request::Unknown,
    })
}

fn put_stat(out: &mut Vec<u8>, s: &Stat) {
    out.put_jute_stat(s);
}

fn encode_body(out: &mut Vec<u8>, resp: &Response) {
    match resp {
        Response::Empty => {}
        Response::Path(p) => out.put_jute_string(p),
        Response::PathStat(p, s) => {
            out.put_jute_string(p);
            put_stat(out, s);
        }
        Response::Stat(s) => put_stat(out, s),
        Response::Data(d, s) => {
            out.put_jute_buffer_opt(d.as_deref());
            put_stat(out, s);
        }
        Response::Acl(a, s) => {
            out.put_jute_acls(a);
            put_stat(out, s);
        }
        Response::Children(c) | Response::Strings(c) => out.put_jute_strings(c),
        Response::Children2(c, s) => {
            out.put_jute_strings(c);
            put_stat(out, s);
        }
        Response::Number(n) => out.put_jute_i32(*n),
        Response::Multi(results) => {
            for r in results {
                let (t, err) = match r {
                    MultiResult::Create(_) => (opcode::CREATE, 0),
                    MultiResult::Create2(..) => (opcode::CREATE2, 0),
                    MultiResult::Delete => (opcode::DELETE, 0),
                    MultiResult::SetData(_) => (opcode::SET_DATA, 0),
                    MultiResult::Check => (opcode::CHECK, 0),
                    MultiResult::Error(c) => (opcode::ERROR, c.code()),
                };
                out.put_jute_i32(t);
                out.put_jute_bool(false);
                out.put_jute_i32(err);
                match r {
                    MultiResult::Create(p) => out.put_jute_string(p),
                    MultiResult::Create2(p, s) => {
                        out.put_jute_string(p);
                        put_stat(out, s);
                    }
                    MultiResult::SetData(s) => put_stat(out, s),
                    MultiResult::Error(c) => out.put_jute_i32(c.code()),
                    MultiResult::Delete | MultiResult::Check => {}
                }
            }
            out.put_jute_i32(-1);
            out.put_jute_bool(true);
            out.put_jute_i32(-1);
        }
        Response::MultiRead(results) => {
            for r in results {
                match r {
                    MultiReadResult::Children(c) => {
                        out.put_jute_i32(opcode::GET_CHILDREN);
                        out.put_jute_bool(false);
                        out.put_jute_i32(0);
                        out.put_jute_strings(c);
                    }
                    MultiReadResult::Data(d, s) => {
                        out.put_jute_i32(opcode::GET_DATA);
                        out.put_jute_bool(false);
                        out.put_jute_i32(0);
                        out.put_jute_buffer_opt(d.as_deref());
                        put_stat(out, s);
                    }
                    MultiReadResult::Error(c) => {
                        out.put_jute_i32(opcode::ERROR);
                        out.put_jute_bool(false);
                        out.put_jute_i32(c.code());
                        out.put_jute_i32(c.code());
                    }
                }
            }
            out.put_jute_i32(-1);
            out.put_jute_bool(true);
            out.put_jute_i32(-1);
        }
        Response::WhoAmI(ids) => {
            out.put_jute_i32(ids.len() as i32);
            for (scheme, user) in ids {
                out.put_jute_string(scheme);
                out.put_jute_string(user);
            }
        }
    }
}

/// Appends one reply frame. A body that would exceed `max` bytes is
/// replaced by an error reply, as the client could not read it anyway.
pub fn encode_reply(
    out: &mut Vec<u8>,
    xid: i32,
    zxid: i64,
    reply: &Result<Response, ErrorCode>,
    max: usize,
) {
    let start = begin_frame(out);
    out.put_jute_i32(xid);
    out.put_jute_i64(zxid);
    match reply {
        Ok(resp) => {
            out.put_jute_i32(0);
            encode_body(out, resp);
            if out.len() - start - 4 > max {
                out.truncate(start);
                let err = Err(ErrorCode::MarshallingError);
                return encode_reply(out, xid, zxid, &err, max);
            }
        }
        Err(code) => out.put_jute_i32(code.code()),
    }
    end_frame(out, start);
}

/// Appends one watch notification frame.
pub fn encode_event(out: &mut Vec<u8>, event: EventType, state: i32, path: &str) {
    let start = begin_frame(out);
    out.put_jute_i32(XID_NOTIFICATION);
    out.put_jute_i64(-1);
    out.put_jute_i32(0);
    out.put_jute_i32(event as i32);
    out.put_jute_i32(state);
    out.put_jute_string(path);
    end_frame(out, start);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn split_needs_more_and_refuses_huge_lengths() {
        assert_eq!(split_frame(&[0, 0], 100), Ok(None));
        assert_eq!(split_frame(&frame(b"abc")[..5], 100), Ok(None));
        assert_eq!(split_frame(&frame(b"abc"), 100), Ok(Some((4, 7))));
        assert!(split_frame(&0x7fff_ffffi32.to_be_bytes(), 0xfffff).is_err());
        assert!(split_frame(&(-5i32).to_be_bytes(), 0xfffff).is_err());
    }

    #[test]
    fn get_data_request_decodes() {
        let mut b = Vec::new();
        b.put_jute_i32(7);
        b.put_jute_i32(opcode::GET_DATA);
        b.put_jute_string("/a");
        b.put_jute_bool(true);
        let f = decode_request(b.into()).unwrap();
        assert_eq!(f.xid, 7);
        assert_eq!(
            f.request,
            Request::Read(ReadOp::GetData {
                path: "/a".into(),
                watch: true
            })
        );
    }

    fn request(xid: i32, code: i32, body: &[u8]) -> Result<RequestFrame, CodecError> {
        let mut b = Vec::new();
        b.put_jute_i32(xid);
        b.put_jute_i32(code);
        b.extend_from_slice(body);
        decode_request(b.into())
    }

    fn malformed(f: Result<RequestFrame, CodecError>) -> Option<bool> {
        match f.expect("a request").request {
            Request::Malformed { write, .. } => Some(write),
            _ => None,
        }
    }

    fn null_string() -> Vec<u8> {
        (-1i32).to_be_bytes().to_vec()
    }

    /// What ZooKeeper 3.8 answers with MarshallingError, and whether it
    /// takes a zxid for it (docs/internals/zk-facts.md, section e).
    #[test]
    fn a_malformed_body_is_a_request_answered_marshalling_error() {
        let truncated_path = [&100i32.to_be_bytes()[..], b"/ab"].concat();
        // Reads: answered with the last zxid.
        assert_eq!(
            malformed(request(1, opcode::GET_DATA, &truncated_path)),
            Some(false)
        );
        assert_eq!(malformed(request(1, opcode::GET_DATA, &[])), Some(false));
        let null_path = [null_string(), vec![0]].concat();
        assert_eq!(
            malformed(request(1, opcode::GET_DATA, &null_path)),
            Some(false)
        );
        assert_eq!(
            malformed(request(1, opcode::EXISTS, &null_path)),
            Some(false)
        );
        let mut watch = Vec::new();
        watch.put_jute_string("/");
        watch.put_jute_i32(7);
        assert_eq!(
            malformed(request(1, opcode::CHECK_WATCHES, &watch)),
            Some(false)
        );
        assert_eq!(
            malformed(request(1, opcode::ADD_WATCH, &watch)),
            Some(false)
        );
        assert_eq!(malformed(request(1, opcode::RECONFIG, b"\0")), Some(false));
        // Writes: an error transaction, which takes a zxid.
        assert_eq!(
            malformed(request(1, opcode::CREATE, &truncated_path)),
            Some(true)
        );
        let mut null_create = null_string();
        null_create.put_jute_buffer(b"");
        null_create.put_jute_acls(&[engine::Acl::world_all()]);
        null_create.put_jute_i32(0);
        assert_eq!(
            malformed(request(1, opcode::CREATE, &null_create)),
            Some(true)
        );
        let mut set = Vec::new();
        set.put_jute_string("/");
        set.put_jute_buffer(b"x");
        assert_eq!(malformed(request(1, opcode::SET_DATA, &set)), Some(true));
        // A read inside a multi, a write inside a multiRead.
        let mut multi = Vec::new();
        multi.put_jute_i32(opcode::GET_DATA);
        multi.put_jute_bool(false);
        multi.put_jute_i32(-1);
        multi.put_jute_string("/");
        multi.put_jute_bool(false);
        multi.put_jute_i32(-1);
        multi.put_jute_bool(true);
        multi.put_jute_i32(-1);
        assert_eq!(malformed(request(1, opcode::MULTI, &multi)), Some(true));
        assert_eq!(malformed(request(1, opcode::MULTI_READ, &multi)), None);
        let mut multi_read = Vec::new();
        multi_read.put_jute_i32(opcode::CHECK);
        multi_read.put_jute_bool(false);
        multi_read.put_jute_i32(-1);
        multi_read.put_jute_string("/");
        multi_read.put_jute_i32(-1);
        multi_read.put_jute_i32(-1);
        multi_read.put_jute_bool(true);
        multi_read.put_jute_i32(-1);
        assert_eq!(
            malformed(request(1, opcode::MULTI_READ, &multi_read)),
            Some(false)
        );
        assert_eq!(malformed(request(1, opcode::MULTI, &multi_read)), None);
        let mut null_in_multi = Vec::new();
        null_in_multi.put_jute_i32(opcode::CHECK);
        null_in_multi.put_jute_bool(false);
        null_in_multi.put_jute_i32(-1);
        null_in_multi.extend_from_slice(&null_string());
        null_in_multi.put_jute_i32(-1);
        null_in_multi.put_jute_i32(-1);
        null_in_multi.put_jute_bool(true);
        null_in_multi.put_jute_i32(-1);
        assert_eq!(
            malformed(request(1, opcode::MULTI, &null_in_multi)),
            Some(true)
        );
    }

    #[test]
    fn what_is_not_a_request_is_an_error() {
        assert!(decode_request(Bytes::new()).is_err());
        assert!(decode_request(Bytes::from_static(&[0, 0, 0, 1])).is_err());
        assert!(decode_request(Bytes::from_static(&[0, 0, 0, 1, 0, 0, 0])).is_err());
        // Auth and SASL: ZooKeeper closes the connection.
        assert!(request(-4, opcode::AUTH, &[0, 0, 0, 0]).is_err());
        assert!(request(1, opcode::SASL, &null_string()).is_err());
    }

    #[test]
    fn null_paths_are_refused_as_zookeeper_refuses_them() {
        // setData, setACL and check validate the path first: BadArguments.
        let mut set = null_string();
        set.put_jute_buffer(b"x");
        set.put_jute_i32(-1);
        let f = request(3, opcode::SET_DATA, &set).unwrap();
        assert_eq!(
            f.request,
            Request::Write(WriteOp::Invalid(ErrorCode::BadArguments))
        );
        let mut check = null_string();
        check.put_jute_i32(-1);
        let f = request(3, opcode::CHECK, &check).unwrap();
        assert_eq!(
            f.request,
            Request::Write(WriteOp::Invalid(ErrorCode::BadArguments))
        );
        // An empty path is a path (the root, for reads).
        let f = request(3, opcode::GET_DATA, &[0, 0, 0, 0, 0]).unwrap();
        assert_eq!(
            f.request,
            Request::Read(ReadOp::GetData {
                path: String::new(),
                watch: false
            })
        );
    }

    #[test]
    fn trailing_bytes_and_reconfig() {
        let mut b = Vec::new();
        b.put_jute_string("/a");
        b.put_jute_bool(true);
        b.extend_from_slice(b"xyz");
        assert_eq!(
            request(7, opcode::GET_DATA, &b).unwrap().request,
            Request::Read(ReadOp::GetData {
                path: "/a".into(),
                watch: true
            })
        );
        let mut r = Vec::new();
        r.put_jute_string("server.2=127.0.0.1:2888:3888");
        r.extend_from_slice(&null_string());
        r.extend_from_slice(&null_string());
        r.put_jute_i64(-1);
        assert_eq!(
            request(8, opcode::RECONFIG, &r).unwrap().request,
            Request::Reconfig
        );
        assert_eq!(request(9, 999, b"").unwrap().request, Request::Unknown);
    }

    #[test]
    fn every_truncation_of_a_multi_is_malformed_not_a_panic() {
        let mut b = Vec::new();
        b.put_jute_i32(1);
        b.put_jute_i32(opcode::MULTI);
        b.put_jute_i32(opcode::CREATE);
        b.put_jute_bool(false);
        b.put_jute_i32(-1);
        b.put_jute_string("/x");
        b.put_jute_buffer(b"d");
        b.put_jute_acls(&[engine::Acl::world_all()]);
        b.put_jute_i32(0);
        b.put_jute_i32(-1);
        b.put_jute_bool(true);
        b.put_jute_i32(-1);
        assert!(matches!(
            decode_request(b.clone().into()).unwrap().request,
            Request::Write(WriteOp::Multi(_))
        ));
        for n in 0..b.len() {
            let f = decode_request(Bytes::copy_from_slice(&b[..n]));
            if n < 8 {
                assert!(f.is_err(), "{n} bytes: no header");
            } else {
                assert_eq!(malformed(f), Some(true), "{n} bytes");
            }
        }
    }

    #[test]
    fn oversized_reply_becomes_an_error() {
        let mut out = Vec::new();
        let big = Ok(Response::Data(
            Some(Bytes::from(vec![0u8; 100])),
            Stat::default(),
        ));
        encode_reply(&mut out, 1, 2, &big, 50);
        assert_eq!(out.len(), 4 + 16);
        assert_eq!(
            &out[16..20],
            &ErrorCode::MarshallingError.code().to_be_bytes()
        );
    }
}

/// Decoders must never panic on arbitrary bytes: random inputs and random
/// mutations of valid frames, from a fixed seed (a fuzz smoke that runs in
/// every `cargo test`).
#[cfg(test)]
mod robustness {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn valid_frames() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut b = Vec::new();
        b.put_jute_i32(1);
        b.put_jute_i32(opcode::CREATE2);
        b.put_jute_string("/a/b");
        b.put_jute_buffer(b"data");
        b.put_jute_acls(&[engine::Acl::world_all()]);
        b.put_jute_i32(3);
        out.push(b);
        let mut b = Vec::new();
        b.put_jute_i32(2);
        b.put_jute_i32(opcode::SET_WATCHES2);
        b.put_jute_i64(5);
        for _ in 0..5 {
            b.put_jute_strings(&["/x", "/y"]);
        }
        out.push(b);
        let mut b = Vec::new();
        b.put_jute_i32(3);
        b.put_jute_i32(opcode::MULTI_READ);
        for _ in 0..3 {
            b.put_jute_i32(opcode::GET_DATA);
            b.put_jute_bool(false);
            b.put_jute_i32(-1);
            b.put_jute_string("/m");
            b.put_jute_bool(true);
        }
        b.put_jute_i32(-1);
        b.put_jute_bool(true);
        b.put_jute_i32(-1);
        out.push(b);
        out
    }

    #[test]
    fn random_and_mutated_requests_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..20_000 {
            let n = (rng.next() % 64) as usize;
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            let _ = decode_request(Bytes::from(bytes.clone()));
            let _ = decode_connect(Bytes::from(bytes.clone()));
            let _ = split_frame(&bytes, 1 << 20);
        }
        for frame in valid_frames() {
            assert!(decode_request(Bytes::from(frame.clone())).is_ok());
            for _ in 0..20_000 {
                let mut m = frame.clone();
                for _ in 0..1 + rng.next() % 4 {
                    let i = (rng.next() as usize) % m.len();
                    m[i] = rng.next() as u8;
                }
                if rng.next().is_multiple_of(4) {
                    m.truncate((rng.next() as usize) % m.len());
                }
                let _ = decode_request(Bytes::from(m));
            }
        }
    }
}
