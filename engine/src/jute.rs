//! ZooKeeper's jute binary encoding: big-endian integers, `i32` length
//! prefixes for strings, buffers and vectors (-1 meaning null), one byte per
//! boolean. Used for the client wire protocol and for corral's log records.
//!
//! The reader never panics and never allocates more than the bytes it was
//! given: every length is checked against what remains before use.

use bytes::{BufMut, Bytes};

use crate::types::{Acl, Id, Stat};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JuteError {
    #[error("record truncated: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("negative or oversized length {length} at offset {offset}")]
    BadLength { offset: usize, length: i64 },
    #[error("string is not valid UTF-8 at offset {offset}")]
    BadUtf8 { offset: usize },
}

pub type Result<T> = std::result::Result<T, JuteError>;

/// Reads jute records out of a `Bytes` without copying buffers.
pub struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub fn new(buf: Bytes) -> Reader {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.remaining() < n {
            return Err(JuteError::Truncated {
                offset: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn i32(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i64(&mut self) -> Result<i64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn bool(&mut self) -> Result<bool> {
        Ok(self.take(1)?[0] != 0)
    }

    /// A length prefix; -1 (null) reads as `None`.
    fn length(&mut self) -> Result<Option<usize>> {
        let offset = self.pos;
        let n = self.i32()?;
        if n == -1 {
            return Ok(None);
        }
        if n < 0 {
            return Err(JuteError::BadLength {
                offset,
                length: n as i64,
            });
        }
        Ok(Some(n as usize))
    }

    /// A buffer; null reads as empty, as ZooKeeper's server treats it.
    pub fn buffer(&mut self) -> Result<Bytes> {
        match self.length()? {
            None => Ok(Bytes::new()),
            Some(n) => {
                if self.remaining() < n {
                    return Err(JuteError::Truncated {
                        offset: self.pos,
                        needed: n - self.remaining(),
                    });
                }
                let b = self.buf.slice(self.pos..self.pos + n);
                self.pos += n;
                Ok(b)
            }
        }
    }

    /// A buffer that may be null (ZooKeeper keeps null data apart from
    /// empty data: getData of a node created with null data returns null).
    pub fn buffer_opt(&mut self) -> Result<Option<Bytes>> {
        let offset = self.pos;
        match self.length()? {
            None => Ok(None),
            Some(_) => {
                self.pos = offset;
                self.buffer().map(Some)
            }
        }
    }

    /// A string; null reads as empty.
    pub fn string(&mut self) -> Result<String> {
        let offset = self.pos;
        let b = self.buffer()?;
        String::from_utf8(b.to_vec()).map_err(|_| JuteError::BadUtf8 { offset })
    }

    /// A vector count; null reads as zero. Each element takes at least
    /// `min_elem_bytes`, which bounds the count by the bytes that remain.
    pub fn vec_len(&mut self, min_elem_bytes: usize) -> Result<usize> {
        let offset = self.pos;
        let n = self.length()?.unwrap_or(0);
        if n.saturating_mul(min_elem_bytes.max(1)) > self.remaining() {
            return Err(JuteError::BadLength {
                offset,
                length: n as i64,
            });
        }
        Ok(n)
    }

    pub fn strings(&mut self) -> Result<Vec<String>> {
        let n = self.vec_len(4)?;
        (0..n).map(|_| self.string()).collect()
    }

    pub fn id(&mut self) -> Result<Id> {
        Ok(Id {
            scheme: self.string()?,
            id: self.string()?,
        })
    }

    pub fn acl(&mut self) -> Result<Acl> {
        Ok(Acl {
            perms: self.i32()?,
            id: self.id()?,
        })
    }

    pub fn acls(&mut self) -> Result<Vec<Acl>> {
        let n = self.vec_len(12)?;
        (0..n).map(|_| self.acl()).collect()
    }

    pub fn stat(&mut self) -> Result<Stat> {
        Ok(Stat {
            czxid: self.i64()?,
            mzxid: self.i64()?,
            ctime: self.i64()?,
            mtime: self.i64()?,
            version: self.i32()?,
            cversion: self.i32()?,
            aversion: self.i32()?,
            ephemeral_owner: self.i64()?,
            data_length: self.i32()?,
            num_children: self.i32()?,
            pzxid: self.i64()?,
        })
    }
}

/// Appends jute records to a `Vec<u8>`.
/// Starts a length-prefixed frame in `out`; returns where it starts, for
/// [`end_frame`].
pub fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.put_jute_i32(0);
    start
}

/// Writes the length of the frame begun at `start` (the bytes after the
/// 4-byte prefix).
pub fn end_frame(out: &mut [u8], start: usize) {
    let len = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

pub trait JuteWrite {
    fn put_jute_i32(&mut self, v: i32);
    fn put_jute_i64(&mut self, v: i64);
    fn put_jute_bool(&mut self, v: bool);
    fn put_jute_buffer(&mut self, v: &[u8]);
    fn put_jute_string(&mut self, v: &str);
    fn put_jute_buffer_opt(&mut self, v: Option<&[u8]>);
    fn put_jute_strings<S: AsRef<str>>(&mut self, v: &[S]);
    fn put_jute_acls(&mut self, v: &[Acl]);
    fn put_jute_stat(&mut self, v: &Stat);
}

impl JuteWrite for Vec<u8> {
    fn put_jute_i32(&mut self, v: i32) {
        self.put_i32(v);
    }
    fn put_jute_i64(&mut self, v: i64) {
        self.put_i64(v);
    }
    fn put_jute_bool(&mut self, v: bool) {
        self.put_u8(v as u8);
    }
    fn put_jute_buffer(&mut self, v: &[u8]) {
        self.put_i32(v.len() as i32);
        self.put_slice(v);
    }
    fn put_jute_buffer_opt(&mut self, v: Option<&[u8]>) {
        match v {
            Some(b) => self.put_jute_buffer(b),
            None => self.put_i32(-1),
        }
    }
    fn put_jute_string(&mut self, v: &str) {
        self.put_jute_buffer(v.as_bytes());
    }
    fn put_jute_strings<S: AsRef<str>>(&mut self, v: &[S]) {
        self.put_i32(v.len() as i32);
        for s in v {
            self.put_jute_string(s.as_ref());
        }
    }
    fn put_jute_acls(&mut self, v: &[Acl]) {
        self.put_i32(v.len() as i32);
        for a in v {
            self.put_i32(a.perms);
            self.put_jute_string(&a.id.scheme);
            self.put_jute_string(&a.id.id);
        }
    }
    fn put_jute_stat(&mut self, s: &Stat) {
        self.put_i64(s.czxid);
        self.put_i64(s.mzxid);
        self.put_i64(s.ctime);
        self.put_i64(s.mtime);
        self.put_i32(s.version);
        self.put_i32(s.cversion);
        self.put_i32(s.aversion);
        self.put_i64(s.ephemeral_owner);
        self.put_i32(s.data_length);
        self.put_i32(s.num_children);
        self.put_i64(s.pzxid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_round_trips_in_68_bytes() {
        let s = Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        let mut v = Vec::new();
        v.put_jute_stat(&s);
        assert_eq!(v.len(), 68);
        assert_eq!(Reader::new(v.into()).stat().unwrap(), s);
    }

    #[test]
    fn lengths_beyond_the_buffer_are_errors_not_allocations() {
        let mut v = Vec::new();
        v.put_i32(i32::MAX);
        assert!(Reader::new(v.clone().into()).buffer().is_err());
        assert!(Reader::new(v.clone().into()).strings().is_err());
        let mut v = Vec::new();
        v.put_i32(-7);
        assert!(matches!(
            Reader::new(v.into()).buffer(),
            Err(JuteError::BadLength { .. })
        ));
    }

    #[test]
    fn null_string_and_buffer_read_as_empty() {
        let mut v = Vec::new();
        v.put_i32(-1);
        v.put_i32(-1);
        let mut r = Reader::new(v.into());
        assert_eq!(r.string().unwrap(), "");
        assert!(r.buffer().unwrap().is_empty());
    }
}
