//! A blocking ZooKeeper session over std TCP, one request at a time, built
//! on the client crate's pure codec. The measurements that need it want
//! exact control over every attempt, which the async `client::Client`
//! deliberately hides: the restart probe (a fresh session's getData, tried
//! every few milliseconds while the server loads) and the failover writers
//! (setData, and after a lost connection the same session re-attached to
//! the next server after a short pause, as kazoo does with a small retry
//! delay; `client::Client` waits a second after every host failed in a row,
//! as the Java client does, which would hide the difference being measured).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use client::codec::{self, ConnectRequest, Request};
use engine::op::{ReadOp, Response, WriteOp};
use engine::types::{opcode, Acl};

/// Bytes of a connect response body we accept (it is 37 or 38).
const CONNECT_RESPONSE_BYTES_MAX: usize = 1024;

/// Who a session is: what a client sends to re-attach it elsewhere.
#[derive(Clone, Debug)]
pub struct Identity {
    pub session_id: i64,
    pub password: Bytes,
    pub last_zxid_seen: i64,
}

impl Identity {
    /// No session yet: the server makes a new one.
    pub fn fresh() -> Identity {
        let r = ConnectRequest::new_session(0);
        Identity {
            session_id: r.session_id,
            password: r.password,
            last_zxid_seen: r.last_zxid_seen,
        }
    }
}

pub struct Session {
    stream: TcpStream,
    xid: i32,
    pub identity: Identity,
}

impl Session {
    /// Connects to `addr` and opens (or, with an identity from an earlier
    /// connection, re-attaches) a session of `timeout_ms`. Ok(None) when the
    /// server refused the session: it expired, or never existed.
    /// `io_timeout` bounds the TCP connect, the handshake and, later, every
    /// request's wait for its reply.
    pub fn connect(
        addr: &str,
        identity: &Identity,
        timeout_ms: i32,
        io_timeout: Duration,
    ) -> Result<Option<Session>> {
        let sock: SocketAddr = addr.parse().with_context(|| format!("address {addr}"))?;
        let mut stream = TcpStream::connect_timeout(&sock, io_timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(io_timeout))?;
        stream.set_write_timeout(Some(io_timeout))?;
        let mut out = Vec::new();
        codec::encode_connect(
            &mut out,
            &ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: identity.last_zxid_seen,
                timeout_ms,
                session_id: identity.session_id,
                password: identity.password.clone(),
                read_only: false,
            },
        );
        stream.write_all(&out)?;
        let body = read_frame(&mut stream, CONNECT_RESPONSE_BYTES_MAX)?;
        let resp = codec::decode_connect_response(body)?;
        if resp.timeout_ms <= 0 {
            return Ok(None);
        }
        Ok(Some(Session {
            stream,
            xid: 1,
            identity: Identity {
                session_id: resp.session_id,
                password: resp.password,
                last_zxid_seen: identity.last_zxid_seen,
            },
        }))
    }

    /// How long a request may wait for its reply (and its bytes to go out)
    /// from now on.
    pub fn set_timeouts(&mut self, t: Duration) -> Result<()> {
        self.stream.set_read_timeout(Some(t))?;
        self.stream.set_write_timeout(Some(t))?;
        Ok(())
    }

    /// Sends one request and waits for its reply: (error code, record).
    /// Watch events and ping replies met on the way are skipped.
    fn call(&mut self, req: &Request) -> Result<(i32, Bytes)> {
        let xid = self.xid;
        self.xid = if xid == i32::MAX { 1 } else { xid + 1 };
        let mut out = Vec::new();
        codec::encode_request(&mut out, xid, req);
        self.stream.write_all(&out)?;
        loop {
            let body = read_frame(&mut self.stream, codec::FRAME_BYTES_MAX)?;
            let (header, record) = codec::decode_reply_header(body)?;
            if header.zxid > self.identity.last_zxid_seen {
                self.identity.last_zxid_seen = header.zxid;
            }
            if header.xid == codec::XID_NOTIFICATION || header.xid == codec::XID_PING {
                continue;
            }
            if header.xid != xid {
                bail!("reply xid {} out of order, expected {xid}", header.xid);
            }
            return Ok((header.err, record));
        }
    }

    pub fn get_data(&mut self, path: &str) -> Result<Bytes> {
        let (err, record) = self.call(&Request::Read(ReadOp::GetData {
            path: path.to_string(),
            watch: false,
        }))?;
        if err != 0 {
            bail!("getData {path}: {}", codec::error_code(err));
        }
        match codec::decode_response(opcode::GET_DATA, record)? {
            Response::Data(data, _) => Ok(data.unwrap_or_default()),
            other => bail!("getData {path}: unexpected reply {other:?}"),
        }
    }

    pub fn set_data(&mut self, path: &str, data: &[u8]) -> Result<()> {
        let (err, _) = self.call(&Request::Write(WriteOp::SetData {
            path: path.to_string(),
            data: Some(Bytes::copy_from_slice(data)),
            version: -1,
        }))?;
        if err != 0 {
            bail!("setData {path}: {}", codec::error_code(err));
        }
        Ok(())
    }

    /// A persistent node; one that exists already is fine.
    pub fn ensure(&mut self, path: &str) -> Result<()> {
        let (err, _) = self.call(&Request::Write(WriteOp::Create {
            opcode: opcode::CREATE,
            path: path.to_string(),
            data: Some(Bytes::new()),
            acl: vec![Acl::world_all()],
            flags: 0,
            ttl: -1,
        }))?;
        let code = codec::error_code(err);
        if err != 0 && code != engine::types::ErrorCode::NodeExists {
            bail!("create {path}: {code}");
        }
        Ok(())
    }

    /// Ends the session on the server (closeSession), so it does not linger
    /// until it expires.
    pub fn close(mut self) -> Result<()> {
        self.call(&Request::Write(WriteOp::CloseSession))
            .map(|_| ())
    }
}

/// One frame's body; the length prefix is checked against `max` before
/// anything is allocated.
fn read_frame(stream: &mut TcpStream, max: usize) -> Result<Bytes> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let n = i32::from_be_bytes(len);
    if n < 0 || n as usize > max {
        bail!("frame length {n} is negative or above {max}");
    }
    let mut body = vec![0u8; n as usize];
    stream.read_exact(&mut body)?;
    Ok(Bytes::from(body))
}
