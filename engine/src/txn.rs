//! Transactions: what the pipeline core decides a write does, the unit of
//! the write-ahead log and of replication. Applying the same transactions in
//! the same order to the same tree gives the same tree on every core and
//! every server.
//!
//! Encoding (jute, big-endian), one record per transaction:
//!
//! ```text
//! offset size  field
//! 0      8     session id
//! 8      4     cxid (the client's xid)
//! 12     8     zxid
//! 20     8     time (ms since the epoch, chosen by the pipeline core)
//! 28     4     type (ZooKeeper opcode; -1 error, -10 createSession, -11 closeSession)
//! 32     ...   body, by type (see `TxnBody::encode`)
//! ```

use bytes::Bytes;

use crate::jute::{JuteError, JuteWrite, Reader};
use crate::types::{opcode, Acl, ErrorCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnHeader {
    pub session: i64,
    pub cxid: i32,
    pub zxid: i64,
    pub time: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TxnBody {
    CreateSession {
        timeout_ms: i32,
    },
    CloseSession,
    Create {
        /// create, create2, createContainer or createTTL: decides the reply.
        opcode: i32,
        path: String,
        data: Option<Bytes>,
        acl: Vec<Acl>,
        ephemeral_owner: i64,
        parent_cversion: i32,
    },
    Delete {
        path: String,
    },
    SetData {
        path: String,
        data: Option<Bytes>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<TxnBody>),
    Error(ErrorCode),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Txn {
    pub header: TxnHeader,
    pub body: TxnBody,
}

const TYPE_DELETE: i32 = opcode::DELETE;

impl TxnBody {
    fn type_code(&self) -> i32 {
        match self {
            TxnBody::CreateSession { .. } => opcode::CREATE_SESSION,
            TxnBody::CloseSession => opcode::CLOSE_SESSION,
            TxnBody::Create { .. } => opcode::CREATE,
            TxnBody::Delete { .. } => TYPE_DELETE,
            TxnBody::SetData { .. } => opcode::SET_DATA,
            TxnBody::SetAcl { .. } => opcode::SET_ACL,
            TxnBody::Check { .. } => opcode::CHECK,
            TxnBody::Multi(_) => opcode::MULTI,
            TxnBody::Error(_) => opcode::ERROR,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_jute_i32(self.type_code());
        match self {
            TxnBody::CreateSession { timeout_ms } => out.put_jute_i32(*timeout_ms),
            TxnBody::CloseSession => {}
            TxnBody::Create {
                opcode,
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
            } => {
                out.put_jute_i32(*opcode);
                out.put_jute_string(path);
                out.put_jute_buffer_opt(data.as_deref());
                out.put_jute_acls(acl);
                out.put_jute_i64(*ephemeral_owner);
                out.put_jute_i32(*parent_cversion);
            }
            TxnBody::Delete { path } => out.put_jute_string(path),
            TxnBody::SetData {
                path,
                data,
                version,
            } => {
                out.put_jute_string(path);
                out.put_jute_buffer_opt(data.as_deref());
                out.put_jute_i32(*version);
            }
            TxnBody::SetAcl { path, acl, version } => {
                out.put_jute_string(path);
                out.put_jute_acls(acl);
                out.put_jute_i32(*version);
            }
            TxnBody::Check { path, version } => {
                out.put_jute_string(path);
                out.put_jute_i32(*version);
            }
            TxnBody::Multi(ops) => {
                out.put_jute_i32(ops.len() as i32);
                for op in ops {
                    op.encode(out);
                }
            }
            TxnBody::Error(code) => out.put_jute_i32(code.code()),
        }
    }

    fn decode(r: &mut Reader, depth: u32) -> Result<TxnBody, TxnDecodeError> {
        let t = r.i32()?;
        Ok(match t {
            opcode::CREATE_SESSION => TxnBody::CreateSession {
                timeout_ms: r.i32()?,
            },
            opcode::CLOSE_SESSION => TxnBody::CloseSession,
            opcode::CREATE => TxnBody::Create {
                opcode: r.i32()?,
                path: r.string()?,
                data: r.buffer_opt()?,
                acl: r.acls()?,
                ephemeral_owner: r.i64()?,
                parent_cversion: r.i32()?,
            },
            TYPE_DELETE => TxnBody::Delete { path: r.string()? },
            opcode::SET_DATA => TxnBody::SetData {
                path: r.string()?,
                data: r.buffer_opt()?,
                version: r.i32()?,
            },
            opcode::SET_ACL => TxnBody::SetAcl {
                path: r.string()?,
                acl: r.acls()?,
                version: r.i32()?,
            },
            opcode::CHECK => TxnBody::Check {
                path: r.string()?,
                version: r.i32()?,
            },
            opcode::MULTI if depth == 0 => {
                let n = r.vec_len(4)?;
                let mut ops = Vec::with_capacity(n);
                for _ in 0..n {
                    ops.push(TxnBody::decode(r, depth + 1)?);
                }
                TxnBody::Multi(ops)
            }
            opcode::ERROR => {
                let c = r.i32()?;
                TxnBody::Error(ErrorCode::from_code(c).ok_or(TxnDecodeError::UnknownError(c))?)
            }
            other => return Err(TxnDecodeError::UnknownType(other)),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnDecodeError {
    #[error(transparent)]
    Jute(#[from] JuteError),
    #[error("unknown transaction type {0}")]
    UnknownType(i32),
    #[error("unknown error code {0} in an error transaction")]
    UnknownError(i32),
    #[error("{0} trailing bytes after the transaction")]
    Trailing(usize),
}

impl Txn {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_jute_i64(self.header.session);
        out.put_jute_i32(self.header.cxid);
        out.put_jute_i64(self.header.zxid);
        out.put_jute_i64(self.header.time);
        self.body.encode(out);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64);
        self.encode(&mut v);
        v
    }

    /// Decodes one whole record; never panics on arbitrary bytes.
    pub fn decode(bytes: Bytes) -> Result<Txn, TxnDecodeError> {
        let mut r = Reader::new(bytes);
        let header = TxnHeader {
            session: r.i64()?,
            cxid: r.i32()?,
            zxid: r.i64()?,
            time: r.i64()?,
        };
        let body = TxnBody::decode(&mut r, 0)?;
        if r.remaining() != 0 {
            return Err(TxnDecodeError::Trailing(r.remaining()));
        }
        Ok(Txn { header, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Acl;

    #[test]
    fn round_trip() {
        let txn = Txn {
            header: TxnHeader {
                session: 7,
                cxid: 3,
                zxid: 0x1_0000_0002,
                time: 1234,
            },
            body: TxnBody::Multi(vec![
                TxnBody::Create {
                    opcode: opcode::CREATE2,
                    path: "/a".into(),
                    data: Some(Bytes::from_static(b"x")),
                    acl: vec![Acl::world_all()],
                    ephemeral_owner: 7,
                    parent_cversion: 1,
                },
                TxnBody::Error(ErrorCode::NodeExists),
                TxnBody::SetData {
                    path: "/b".into(),
                    data: None,
                    version: 2,
                },
            ]),
        };
        let bytes = txn.to_bytes();
        assert_eq!(Txn::decode(bytes.clone().into()).unwrap(), txn);
        // Every truncation is an error, never a panic.
        for n in 0..bytes.len() {
            assert!(Txn::decode(Bytes::copy_from_slice(&bytes[..n])).is_err());
        }
    }
}

#[cfg(test)]
mod robustness {
    use super::*;

    /// Log records come from disk: decoding arbitrary bytes must fail
    /// cleanly, never panic or allocate what the bytes claim.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..50_000 {
            let n = (next() % 96) as usize;
            let bytes: Vec<u8> = (0..n).map(|_| next() as u8).collect();
            let _ = Txn::decode(Bytes::from(bytes));
        }
    }
}
