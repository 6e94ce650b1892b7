//! Apache ZooKeeper 3.x on-disk formats, decoded as pure functions over
//! bytes: the snapshot (`FileSnap`, `SerializeUtils.serializeSnapshot`,
//! `DataTree.serialize`), the transaction log (`FileTxnLog`) and the
//! transactions in it (`SerializeUtils.deserializeTxn`, `zookeeper.jute`).
//!
//! Every integer is big-endian (jute); strings and buffers are an `i32`
//! length then the bytes, -1 meaning null; a vector is an `i32` count then
//! the elements. Reading goes through `engine::jute::Reader`, which checks
//! every length against the bytes that remain before using it, so no input
//! makes these functions panic or allocate more than they were given.
//!
//! ```text
//! File header (FileHeader), both kinds of file
//! offset size  field
//! 0      4     magic: "ZKSN" snapshot, "ZKLG" log
//! 4      4     version (2)
//! 8      8     dbid (0)
//!
//! Snapshot (snapshot.<zxid in hex>), from offset 16
//!   i32 n; n × (i64 session id, i32 timeout ms)        the session table
//!   i32 n; n × (i64 acl id, vector<ACL>)                ReferenceCountedACLCache
//!   nodes in pre-order from the root, whose path is "":
//!     string path, buffer data, i64 acl id (-1 = world:anyone:cdrwa),
//!     StatPersisted: i64 czxid, i64 mzxid, i64 ctime, i64 mtime,
//!                    i32 version, i32 cversion, i32 aversion,
//!                    i64 ephemeralOwner, i64 pzxid
//!   string "/"                                          end of the nodes
//!   seal: i64 Adler32 of every byte before it, string "/"
//!   3.6+: i64 zxid, i32 digest version, i64 tree digest  ZxidDigest
//!         (a hex string instead of the i64 when the version is < 2); seal
//!   3.9+: i64 lastProcessedZxid; seal
//!
//! Log (log.<first zxid in hex>), records from offset 16 until a zero
//! length (ZooKeeper preallocates the file with zeros)
//! offset size  field
//! 0      8     Adler32 of the payload, in the low 32 bits
//! 8      4     payload length n
//! 12     n     payload: TxnHeader (i64 session, i32 cxid, i64 zxid,
//!              i64 time, i32 type), the txn body by type, then (3.6+)
//!              TxnDigest (i32 version, i64 tree digest)
//! 12+n   1     'B' (0x42): end of record
//! ```

use bytes::Bytes;
use engine::jute::{JuteError, Reader};
use engine::types::Acl;

/// `ByteBuffer.wrap("ZKSN".getBytes()).getInt()` in `FileSnap`.
pub const SNAP_MAGIC: i32 = i32::from_be_bytes(*b"ZKSN");
/// `FileTxnLog.TXNLOG_MAGIC`.
pub const LOG_MAGIC: i32 = i32::from_be_bytes(*b"ZKLG");
pub const FILE_HEADER_LEN: usize = 16;
/// The end-of-record byte after every log record.
pub const END_OF_RECORD: u8 = b'B';
/// Bytes before a log record's payload: checksum and length.
pub const RECORD_PREFIX_LEN: usize = 12;
/// The digest algorithm `DigestCalculator` implements (its DIGEST_VERSION).
pub const DIGEST_VERSION: i32 = 2;

/// `ZooDefs.OpCode`: the transaction types of a log are request opcodes.
pub use engine::types::opcode;

/// Why bytes could not be decoded, and where (an offset into the decoded
/// buffer; callers add the buffer's own position in its file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("offset {offset}: {what}")]
pub struct FormatError {
    pub offset: u64,
    pub what: String,
}

impl FormatError {
    fn new(offset: usize, what: impl Into<String>) -> FormatError {
        FormatError {
            offset: offset as u64,
            what: what.into(),
        }
    }

    /// The same error, its offset moved by `base` (the decoded buffer's
    /// position in its file).
    pub fn shifted(self, base: u64) -> FormatError {
        FormatError {
            offset: self.offset + base,
            what: self.what,
        }
    }
}

fn jute(e: JuteError) -> FormatError {
    match e {
        JuteError::Truncated { offset, needed } => {
            FormatError::new(offset, format!("truncated: {needed} more bytes needed"))
        }
        JuteError::BadLength { offset, length } => {
            FormatError::new(offset, format!("impossible length {length}"))
        }
        JuteError::BadUtf8 { offset } => FormatError::new(offset, "string is not UTF-8"),
    }
}

/// True when a jute error means "the record ended early", ZooKeeper's
/// `EOFException`, which some of its readers take as "field absent".
fn is_eof(e: &JuteError) -> bool {
    matches!(e, JuteError::Truncated { .. } | JuteError::BadLength { .. })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub magic: i32,
    pub version: i32,
    pub dbid: i64,
}

pub fn decode_header(bytes: &[u8]) -> Result<FileHeader, FormatError> {
    let mut r = Reader::new(Bytes::copy_from_slice(
        &bytes[..bytes.len().min(FILE_HEADER_LEN)],
    ));
    Ok(FileHeader {
        magic: r.i32().map_err(jute)?,
        version: r.i32().map_err(jute)?,
        dbid: r.i64().map_err(jute)?,
    })
}

/// `StatPersisted`, in its serialised field order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatPersisted {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
}

fn stat_persisted(r: &mut Reader) -> Result<StatPersisted, JuteError> {
    Ok(StatPersisted {
        czxid: r.i64()?,
        mzxid: r.i64()?,
        ctime: r.i64()?,
        mtime: r.i64()?,
        version: r.i32()?,
        cversion: r.i32()?,
        aversion: r.i32()?,
        ephemeral_owner: r.i64()?,
        pzxid: r.i64()?,
    })
}

/// One node as a snapshot holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapNode {
    /// As written: "" for the root, "/a/b" for the others.
    pub path: String,
    pub data: Option<Bytes>,
    /// Key into the snapshot's ACL lists; -1 is world:anyone:cdrwa.
    pub acl: i64,
    pub stat: StatPersisted,
}

/// `DataTree.ZxidDigest`: the tree digest after the transaction `zxid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZxidDigest {
    pub zxid: i64,
    pub version: i32,
    pub digest: i64,
}

/// A decoded snapshot file.
#[derive(Debug, Clone, PartialEq)]
pub struct ZkSnapshot {
    pub header: FileHeader,
    /// Session id and timeout (ms), in file order.
    pub sessions: Vec<(i64, i32)>,
    /// ACL lists by id, in file order.
    pub acls: Vec<(i64, Vec<Acl>)>,
    /// Nodes in file order: every parent before its children.
    pub nodes: Vec<SnapNode>,
    /// Written after the nodes by 3.6+ with digests enabled.
    pub digest: Option<ZxidDigest>,
    /// Written by 3.9+ (`zookeeper.serializeLastProcessedZxid.enabled`).
    pub last_processed_zxid: Option<i64>,
}

/// Streaming Adler-32 (RFC 1950), the checksum of ZooKeeper's snapshots
/// and log records (`java.util.zip.Adler32`).
#[derive(Debug, Clone, Copy)]
pub struct Adler32 {
    a: u32,
    b: u32,
}

impl Default for Adler32 {
    fn default() -> Self {
        Adler32 { a: 1, b: 0 }
    }
}

impl Adler32 {
    const MOD: u32 = 65521;
    /// The most bytes summed before `b` could overflow a u32 (zlib's NMAX).
    const CHUNK: usize = 5552;

    pub fn update(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(Self::CHUNK) {
            for &x in chunk {
                self.a += x as u32;
                self.b += self.a;
            }
            self.a %= Self::MOD;
            self.b %= Self::MOD;
        }
    }

    pub fn value(&self) -> u32 {
        (self.b << 16) | self.a
    }
}

pub fn adler32(bytes: &[u8]) -> u32 {
    let mut a = Adler32::default();
    a.update(bytes);
    a.value()
}

const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// Streaming CRC-32 (IEEE 802.3, `java.util.zip.CRC32`), which ZooKeeper's
/// `DigestCalculator` uses per node.
#[derive(Debug, Clone, Copy)]
pub struct Crc32(u32);

impl Default for Crc32 {
    fn default() -> Self {
        Crc32(0xffff_ffff)
    }
}

impl Crc32 {
    pub fn update(&mut self, bytes: &[u8]) {
        let mut c = self.0;
        for &x in bytes {
            c = CRC32_TABLE[((c ^ x as u32) & 0xff) as usize] ^ (c >> 8);
        }
        self.0 = c;
    }

    pub fn value(&self) -> u32 {
        self.0 ^ 0xffff_ffff
    }
}

/// ZooKeeper's cheap validity test before it reads a snapshot
/// (`SnapStream.isValidCheckedStream`): at least 10 bytes, ending with the
/// seal's string "/" (length 1, then '/').
pub fn looks_sealed(bytes: &[u8]) -> bool {
    bytes.len() >= 10 && bytes[bytes.len() - 5..] == [0, 0, 0, 1, b'/']
}

/// The running Adler-32 of a snapshot file, checked at each seal.
struct Seals<'a> {
    bytes: &'a [u8],
    sum: Adler32,
    summed: usize,
}

impl Seals<'_> {
    /// Reads a seal at the reader's position: the Adler-32 of every byte
    /// of the file before it (`SnapStream.checkSealIntegrity`), then a
    /// string ZooKeeper ignores.
    fn check(&mut self, r: &mut Reader) -> Result<(), FormatError> {
        let at = r.position();
        self.sum.update(&self.bytes[self.summed..at]);
        self.summed = at;
        let stored = r.i64().map_err(jute)?;
        r.string().map_err(jute)?;
        let computed = self.sum.value();
        if stored != computed as i64 {
            return Err(FormatError::new(
                at,
                format!("checksum mismatch: stored {stored:#x}, computed {computed:#x}"),
            ));
        }
        Ok(())
    }
}

/// Decodes a whole snapshot file, verifying its seals.
pub fn decode_snapshot(bytes: Bytes) -> Result<ZkSnapshot, FormatError> {
    let mut r = Reader::new(bytes.clone());
    let header = FileHeader {
        magic: r.i32().map_err(jute)?,
        version: r.i32().map_err(jute)?,
        dbid: r.i64().map_err(jute)?,
    };
    // FileSnap checks the magic and nothing else of the header.
    if header.magic != SNAP_MAGIC {
        return Err(FormatError::new(
            0,
            format!("bad magic {:#010x}: not a snapshot", header.magic),
        ));
    }

    let mut sessions = Vec::new();
    let at = r.position();
    let count = r.i32().map_err(jute)?;
    // 12 bytes per session: a count the file cannot hold is corruption.
    if count > 0 && count as usize > r.remaining() / 12 {
        return Err(FormatError::new(
            at,
            format!("session count {count} exceeds the file"),
        ));
    }
    for _ in 0..count.max(0) {
        let id = r.i64().map_err(jute)?;
        let timeout = r.i32().map_err(jute)?;
        sessions.push((id, timeout));
    }

    let mut acls = Vec::new();
    let at = r.position();
    let count = r.i32().map_err(jute)?;
    // At least 12 bytes per list: an id and a vector count.
    if count > 0 && count as usize > r.remaining() / 12 {
        return Err(FormatError::new(
            at,
            format!("ACL list count {count} exceeds the file"),
        ));
    }
    for _ in 0..count.max(0) {
        let id = r.i64().map_err(jute)?;
        let at = r.position();
        let n = r.i32().map_err(jute)?;
        // ReferenceCountedACLCache refuses a null vector here; an ACL takes
        // at least 12 bytes (perms and two string lengths).
        if n < 0 {
            return Err(FormatError::new(at, format!("ACL list {id} has count {n}")));
        }
        if n as usize > r.remaining() / 12 {
            return Err(FormatError::new(
                at,
                format!("ACL list {id}: count {n} exceeds the file"),
            ));
        }
        let mut list = Vec::with_capacity(n as usize);
        for _ in 0..n {
            list.push(r.acl().map_err(jute)?);
        }
        acls.push((id, list));
    }

    let mut nodes = Vec::new();
    loop {
        let at = r.position();
        let path = r.string().map_err(jute)?;
        if path == "/" {
            break;
        }
        let data = r.buffer_opt().map_err(jute)?;
        let acl = r.i64().map_err(jute)?;
        let stat = stat_persisted(&mut r).map_err(jute)?;
        // The walk starts at the root, "", and a null path reads as "" too:
        // a root anywhere but first is corruption.
        if path.is_empty() && !nodes.is_empty() {
            return Err(FormatError::new(at, "a second root node"));
        }
        if !path.is_empty() && !path.starts_with('/') {
            return Err(FormatError::new(
                at,
                format!("node path {path:?} is not absolute"),
            ));
        }
        nodes.push(SnapNode {
            path,
            data,
            acl,
            stat,
        });
    }

    let mut seals = Seals {
        bytes: &bytes,
        sum: Adler32::default(),
        summed: 0,
    };
    seals.check(&mut r)?;

    // The digest and the zxid after it are optional: ZooKeeper takes a
    // failed read where they would start as "an older snapshot" and stops
    // there, without a seal to check.
    let mut digest = None;
    let mut last_processed_zxid = None;
    if let Ok(d) = zxid_digest(&mut r) {
        seals.check(&mut r)?;
        digest = Some(d);
        if let Ok(z) = r.i64() {
            seals.check(&mut r)?;
            last_processed_zxid = Some(z);
        }
    }
    Ok(ZkSnapshot {
        header,
        sessions,
        acls,
        nodes,
        digest,
        last_processed_zxid,
    })
}

fn zxid_digest(r: &mut Reader) -> Result<ZxidDigest, JuteError> {
    let zxid = r.i64()?;
    let version = r.i32()?;
    // Digest version 1 wrote the digest as a hex string.
    let digest = if version < 2 {
        let s = r.string()?;
        u64::from_str_radix(&s, 16).unwrap_or(0) as i64
    } else {
        r.i64()?
    };
    Ok(ZxidDigest {
        zxid,
        version,
        digest,
    })
}

/// A log record whose checksum and end byte are good.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// Offset of the record (its checksum) in the file.
    pub offset: u64,
    pub payload: Bytes,
}

/// How a log file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEnd {
    /// A zero length or the end of the file, with only zeros after it.
    Clean,
    /// A record cut short or without its end byte (`Util.readTxnBytes`
    /// takes it as the end of the file). `trailing` counts the non-zero
    /// bytes from `offset` to the end of the file.
    Torn {
        offset: u64,
        why: String,
        trailing: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogFile {
    pub header: FileHeader,
    pub records: Vec<RawRecord>,
    pub end: LogEnd,
}

fn nonzero(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b != 0).count() as u64
}

/// Whether every byte is zero. Compares 4 KiB slices with memcmp: a log's
/// preallocated tail is tens of MiB, too many for a byte loop in a debug
/// build.
pub fn all_zero(bytes: &[u8]) -> bool {
    const ZEROS: [u8; 4096] = [0; 4096];
    bytes.chunks(ZEROS.len()).all(|c| c == &ZEROS[..c.len()])
}

/// Reads a log file's records as `FileTxnLog.FileTxnIterator` does: a
/// zero length is the end; a record that is cut short or lacks its 'B' is
/// also the end (a torn write); a checksum mismatch on a complete record is
/// corruption. A length below -1 is corruption too (jute's "unreasonable
/// length"); a length beyond the file is a record cut short.
pub fn read_log(bytes: &[u8]) -> Result<LogFile, FormatError> {
    if bytes.len() < FILE_HEADER_LEN {
        return Err(FormatError::new(0, "shorter than a file header"));
    }
    let header = decode_header(bytes)?;
    if header.magic != LOG_MAGIC {
        return Err(FormatError::new(
            0,
            format!("bad magic {:#010x}: not a transaction log", header.magic),
        ));
    }
    let mut records = Vec::new();
    let mut pos = FILE_HEADER_LEN;
    let torn = |pos: usize, why: &str| LogEnd::Torn {
        offset: pos as u64,
        why: why.to_string(),
        trailing: nonzero(&bytes[pos..]),
    };
    let end = loop {
        let rest = &bytes[pos..];
        if rest.len() < RECORD_PREFIX_LEN {
            break if all_zero(rest) {
                LogEnd::Clean
            } else {
                torn(pos, "record header cut short")
            };
        }
        let crc = i64::from_be_bytes(rest[0..8].try_into().expect("8 bytes"));
        let len = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes"));
        if len == 0 {
            break if all_zero(rest) {
                LogEnd::Clean
            } else {
                torn(pos, "zero length followed by data")
            };
        }
        if len == -1 {
            break torn(pos, "null record");
        }
        if len < -1 {
            return Err(FormatError::new(
                pos + 8,
                format!("impossible record length {len}"),
            ));
        }
        let len = len as usize;
        if rest.len() < RECORD_PREFIX_LEN + len + 1 {
            break torn(pos, "record cut short");
        }
        let payload = &rest[RECORD_PREFIX_LEN..RECORD_PREFIX_LEN + len];
        if rest[RECORD_PREFIX_LEN + len] != END_OF_RECORD {
            break torn(pos, "no end-of-record byte");
        }
        let computed = adler32(payload);
        if crc != computed as i64 {
            return Err(FormatError::new(
                pos,
                format!("record checksum mismatch: stored {crc:#x}, computed {computed:#x}"),
            ));
        }
        records.push(RawRecord {
            offset: pos as u64,
            payload: Bytes::copy_from_slice(payload),
        });
        pos += RECORD_PREFIX_LEN + len + 1;
    };
    Ok(LogFile {
        header,
        records,
        end,
    })
}

/// `TxnHeader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnHeader {
    pub session: i64,
    pub cxid: i32,
    pub zxid: i64,
    pub time: i64,
    pub kind: i32,
}

/// A transaction body, by `TxnHeader.type`.
#[derive(Debug, Clone, PartialEq)]
pub enum Txn {
    CreateSession {
        timeout_ms: i32,
    },
    /// `paths` is None for a closeSession written without a body (before
    /// 3.6, or with `zookeeper.closeSessionTxn.enabled=false`).
    CloseSession {
        paths: Option<Vec<String>>,
    },
    /// create (1) and create2 (15), `CreateTxn`; a pre-3.3 `CreateTxnV0`
    /// reads with `parent_cversion` -1, as ZooKeeper does.
    Create {
        opcode: i32,
        path: String,
        data: Option<Bytes>,
        acl: Vec<Acl>,
        ephemeral: bool,
        parent_cversion: i32,
    },
    CreateTtl {
        path: String,
        data: Option<Bytes>,
        acl: Vec<Acl>,
        parent_cversion: i32,
        ttl_ms: i64,
    },
    CreateContainer {
        path: String,
        data: Option<Bytes>,
        acl: Vec<Acl>,
        parent_cversion: i32,
    },
    /// delete (2) and deleteContainer (20).
    Delete {
        path: String,
    },
    /// setData (5) and reconfig (16, on /zookeeper/config).
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
    /// Only inside a multi.
    Check {
        path: String,
        version: i32,
    },
    Error {
        code: i32,
    },
    Multi(Vec<Txn>),
}

/// `TxnDigest`: the tree digest after this transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnDigest {
    pub version: i32,
    pub tree_digest: i64,
}

/// One decoded log record (`TxnLogEntry`).
#[derive(Debug, Clone, PartialEq)]
pub struct TxnEntry {
    pub header: TxnHeader,
    pub txn: Txn,
    pub digest: Option<TxnDigest>,
}

/// `CreateTxn`; a pre-3.3 `CreateTxnV0` (no parentCVersion) reads with
/// `parent_cversion` -1, only for create at top level, as
/// `SerializeUtils.deserializeTxn`.
fn create(r: &mut Reader, kind: i32, in_multi: bool) -> Result<Txn, FormatError> {
    let path = r.string().map_err(jute)?;
    let data = r.buffer_opt().map_err(jute)?;
    let acl = r.acls().map_err(jute)?;
    let ephemeral = r.bool().map_err(jute)?;
    let parent_cversion = match r.i32() {
        Ok(v) => v,
        Err(e) if is_eof(&e) && kind == opcode::CREATE && !in_multi => -1,
        Err(e) => return Err(jute(e)),
    };
    Ok(Txn::Create {
        opcode: kind,
        path,
        data,
        acl,
        ephemeral,
        parent_cversion,
    })
}

/// Decodes a transaction body of type `kind`. Inside a multi only the
/// types `DataTree.processTxn` accepts there are valid; a multi cannot nest,
/// which bounds the recursion.
fn txn_body(r: &mut Reader, kind: i32, in_multi: bool) -> Result<Txn, FormatError> {
    use opcode::*;
    let start = r.position();
    let txn = match kind {
        CREATE_SESSION if !in_multi => Txn::CreateSession {
            timeout_ms: r.i32().map_err(jute)?,
        },
        CLOSE_SESSION if !in_multi => {
            // SerializeUtils: an end of record here means a closeSession
            // without CloseSessionTxn; ZooKeeper then reads on from where
            // the failed read stopped (so a digest is usually lost too).
            match r.strings() {
                Ok(paths) => Txn::CloseSession { paths: Some(paths) },
                Err(e) if is_eof(&e) => Txn::CloseSession { paths: None },
                Err(e) => return Err(jute(e)),
            }
        }
        CREATE => create(r, kind, in_multi)?,
        CREATE2 if !in_multi => create(r, kind, in_multi)?,
        CREATE_TTL => Txn::CreateTtl {
            path: r.string().map_err(jute)?,
            data: r.buffer_opt().map_err(jute)?,
            acl: r.acls().map_err(jute)?,
            parent_cversion: r.i32().map_err(jute)?,
            ttl_ms: r.i64().map_err(jute)?,
        },
        CREATE_CONTAINER => Txn::CreateContainer {
            path: r.string().map_err(jute)?,
            data: r.buffer_opt().map_err(jute)?,
            acl: r.acls().map_err(jute)?,
            parent_cversion: r.i32().map_err(jute)?,
        },
        DELETE | DELETE_CONTAINER => Txn::Delete {
            path: r.string().map_err(jute)?,
        },
        SET_DATA => Txn::SetData {
            path: r.string().map_err(jute)?,
            data: r.buffer_opt().map_err(jute)?,
            version: r.i32().map_err(jute)?,
        },
        RECONFIG if !in_multi => Txn::SetData {
            path: r.string().map_err(jute)?,
            data: r.buffer_opt().map_err(jute)?,
            version: r.i32().map_err(jute)?,
        },
        SET_ACL if !in_multi => Txn::SetAcl {
            path: r.string().map_err(jute)?,
            acl: r.acls().map_err(jute)?,
            version: r.i32().map_err(jute)?,
        },
        CHECK if in_multi => Txn::Check {
            path: r.string().map_err(jute)?,
            version: r.i32().map_err(jute)?,
        },
        ERROR => Txn::Error {
            code: r.i32().map_err(jute)?,
        },
        MULTI if !in_multi => {
            // MultiTxn: vector<Txn{i32 type, buffer data}>, each sub-record
            // decoded from its own buffer (DataTree.processTxn).
            let n = r.vec_len(8).map_err(jute)?;
            let mut subs = Vec::with_capacity(n);
            for _ in 0..n {
                let sub_kind = r.i32().map_err(jute)?;
                let at = r.position();
                let buf = r.buffer().map_err(jute)?;
                let mut sub = Reader::new(buf);
                let txn =
                    txn_body(&mut sub, sub_kind, true).map_err(|e| e.shifted(at as u64 + 4))?;
                subs.push(txn);
            }
            Txn::Multi(subs)
        }
        other => {
            let place = if in_multi {
                "inside a multi"
            } else {
                "in a log"
            };
            return Err(FormatError::new(
                start,
                format!("transaction type {other} cannot appear {place}"),
            ));
        }
    };
    Ok(txn)
}

/// Decodes one log record's payload (`SerializeUtils.deserializeTxn`).
pub fn decode_txn(payload: Bytes) -> Result<TxnEntry, FormatError> {
    let mut r = Reader::new(payload);
    let header = TxnHeader {
        session: r.i64().map_err(jute)?,
        cxid: r.i32().map_err(jute)?,
        zxid: r.i64().map_err(jute)?,
        time: r.i64().map_err(jute)?,
        kind: r.i32().map_err(jute)?,
    };
    let txn = txn_body(&mut r, header.kind, false)?;
    // The digest is optional: an end of record here means there is none.
    let digest = match (r.i32(), r.i64()) {
        (Ok(version), Ok(tree_digest)) => Some(TxnDigest {
            version,
            tree_digest,
        }),
        _ => None,
    };
    Ok(TxnEntry {
        header,
        txn,
        digest,
    })
}

/// Encoders for tests: they write what ZooKeeper writes, so decoders and
/// the replay can be tested on files built in memory.
#[cfg(test)]
pub mod testing {
    use super::*;
    use engine::jute::JuteWrite;

    pub fn header(magic: i32) -> Vec<u8> {
        let mut b = Vec::new();
        b.put_jute_i32(magic);
        b.put_jute_i32(2);
        b.put_jute_i64(0);
        b
    }

    pub fn put_stat(b: &mut Vec<u8>, s: &StatPersisted) {
        b.put_jute_i64(s.czxid);
        b.put_jute_i64(s.mzxid);
        b.put_jute_i64(s.ctime);
        b.put_jute_i64(s.mtime);
        b.put_jute_i32(s.version);
        b.put_jute_i32(s.cversion);
        b.put_jute_i32(s.aversion);
        b.put_jute_i64(s.ephemeral_owner);
        b.put_jute_i64(s.pzxid);
    }

    fn put_seal(b: &mut Vec<u8>) {
        let v = adler32(b) as i64;
        b.put_jute_i64(v);
        b.put_jute_string("/");
    }

    pub fn snapshot(s: &ZkSnapshot) -> Vec<u8> {
        let mut b = header(SNAP_MAGIC);
        b.put_jute_i32(s.sessions.len() as i32);
        for &(id, t) in &s.sessions {
            b.put_jute_i64(id);
            b.put_jute_i32(t);
        }
        b.put_jute_i32(s.acls.len() as i32);
        for (id, list) in &s.acls {
            b.put_jute_i64(*id);
            b.put_jute_acls(list);
        }
        for n in &s.nodes {
            b.put_jute_string(&n.path);
            b.put_jute_buffer_opt(n.data.as_deref());
            b.put_jute_i64(n.acl);
            put_stat(&mut b, &n.stat);
        }
        b.put_jute_string("/");
        put_seal(&mut b);
        if let Some(d) = s.digest {
            b.put_jute_i64(d.zxid);
            b.put_jute_i32(d.version);
            b.put_jute_i64(d.digest);
            put_seal(&mut b);
            if let Some(z) = s.last_processed_zxid {
                b.put_jute_i64(z);
                put_seal(&mut b);
            }
        }
        b
    }

    fn put_body(b: &mut Vec<u8>, t: &Txn) {
        match t {
            Txn::CreateSession { timeout_ms } => b.put_jute_i32(*timeout_ms),
            Txn::CloseSession { paths } => {
                if let Some(p) = paths {
                    b.put_jute_strings(p);
                }
            }
            Txn::Create {
                path,
                data,
                acl,
                ephemeral,
                parent_cversion,
                ..
            } => {
                b.put_jute_string(path);
                b.put_jute_buffer_opt(data.as_deref());
                b.put_jute_acls(acl);
                b.put_jute_bool(*ephemeral);
                b.put_jute_i32(*parent_cversion);
            }
            Txn::CreateTtl {
                path,
                data,
                acl,
                parent_cversion,
                ttl_ms,
            } => {
                b.put_jute_string(path);
                b.put_jute_buffer_opt(data.as_deref());
                b.put_jute_acls(acl);
                b.put_jute_i32(*parent_cversion);
                b.put_jute_i64(*ttl_ms);
            }
            Txn::CreateContainer {
                path,
                data,
                acl,
                parent_cversion,
            } => {
                b.put_jute_string(path);
                b.put_jute_buffer_opt(data.as_deref());
                b.put_jute_acls(acl);
                b.put_jute_i32(*parent_cversion);
            }
            Txn::Delete { path } => b.put_jute_string(path),
            Txn::SetData {
                path,
                data,
                version,
            } => {
                b.put_jute_string(path);
                b.put_jute_buffer_opt(data.as_deref());
                b.put_jute_i32(*version);
            }
            Txn::SetAcl { path, acl, version } => {
                b.put_jute_string(path);
                b.put_jute_acls(acl);
                b.put_jute_i32(*version);
            }
            Txn::Check { path, version } => {
                b.put_jute_string(path);
                b.put_jute_i32(*version);
            }
            Txn::Error { code } => b.put_jute_i32(*code),
            Txn::Multi(subs) => {
                b.put_jute_i32(subs.len() as i32);
                for s in subs {
                    b.put_jute_i32(kind_of(s));
                    let mut inner = Vec::new();
                    put_body(&mut inner, s);
                    b.put_jute_buffer(&inner);
                }
            }
        }
    }

    /// The opcode a transaction is written with (create: its own).
    pub fn kind_of(t: &Txn) -> i32 {
        use opcode::*;
        match t {
            Txn::CreateSession { .. } => CREATE_SESSION,
            Txn::CloseSession { .. } => CLOSE_SESSION,
            Txn::Create { opcode, .. } => *opcode,
            Txn::CreateTtl { .. } => CREATE_TTL,
            Txn::CreateContainer { .. } => CREATE_CONTAINER,
            Txn::Delete { .. } => DELETE,
            Txn::SetData { .. } => SET_DATA,
            Txn::SetAcl { .. } => SET_ACL,
            Txn::Check { .. } => CHECK,
            Txn::Error { .. } => ERROR,
            Txn::Multi(_) => MULTI,
        }
    }

    pub fn payload(e: &TxnEntry) -> Vec<u8> {
        let mut b = Vec::new();
        b.put_jute_i64(e.header.session);
        b.put_jute_i32(e.header.cxid);
        b.put_jute_i64(e.header.zxid);
        b.put_jute_i64(e.header.time);
        b.put_jute_i32(e.header.kind);
        put_body(&mut b, &e.txn);
        if let Some(d) = e.digest {
            b.put_jute_i32(d.version);
            b.put_jute_i64(d.tree_digest);
        }
        b
    }

    /// A log file: header, records, then `padding` zero bytes.
    pub fn log(entries: &[TxnEntry], padding: usize) -> Vec<u8> {
        let mut b = header(LOG_MAGIC);
        for e in entries {
            let p = payload(e);
            b.put_jute_i64(adler32(&p) as i64);
            b.put_jute_buffer(&p);
            b.push(END_OF_RECORD);
        }
        b.resize(b.len() + padding, 0);
        b
    }

    /// A header for `txn` with its opcode.
    pub fn entry(session: i64, zxid: i64, txn: Txn) -> TxnEntry {
        TxnEntry {
            header: TxnHeader {
                session,
                cxid: 0,
                zxid,
                time: 1000 + zxid,
                kind: kind_of(&txn),
            },
            txn,
            digest: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use engine::types::Id;

    fn acl() -> Vec<Acl> {
        vec![Acl {
            perms: 31,
            id: Id::new("world", "anyone"),
        }]
    }

    fn sample_snapshot() -> ZkSnapshot {
        let stat = StatPersisted {
            czxid: 3,
            mzxid: 4,
            ctime: 5,
            mtime: 6,
            version: 1,
            cversion: 2,
            aversion: 0,
            ephemeral_owner: 0,
            pzxid: 7,
        };
        ZkSnapshot {
            header: FileHeader {
                magic: SNAP_MAGIC,
                version: 2,
                dbid: 0,
            },
            sessions: vec![(0x100, 4000), (0x101, 6000)],
            acls: vec![(1, acl())],
            nodes: vec![
                SnapNode {
                    path: "".into(),
                    data: Some(Bytes::new()),
                    acl: -1,
                    stat: StatPersisted::default(),
                },
                SnapNode {
                    path: "/a".into(),
                    data: Some(Bytes::from_static(b"hello")),
                    acl: 1,
                    stat,
                },
                SnapNode {
                    path: "/a/b".into(),
                    data: None,
                    acl: 1,
                    stat,
                },
            ],
            digest: Some(ZxidDigest {
                zxid: 9,
                version: 2,
                digest: 12345,
            }),
            last_processed_zxid: None,
        }
    }

    #[test]
    fn checksums_match_known_values() {
        // RFC 1950's example and the CRC-32 check value.
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        let mut c = Crc32::default();
        c.update(b"123456789");
        assert_eq!(c.value(), 0xcbf4_3926);
        let long = vec![0xffu8; 100_000];
        let mut split = Adler32::default();
        split.update(&long[..777]);
        split.update(&long[777..]);
        assert_eq!(split.value(), adler32(&long));
        assert_eq!(SNAP_MAGIC, 0x5a4b_534e);
    }

    #[test]
    fn snapshot_round_trip_with_and_without_digest() {
        let s = sample_snapshot();
        let bytes = snapshot(&s);
        assert!(looks_sealed(&bytes));
        assert_eq!(decode_snapshot(Bytes::from(bytes)).unwrap(), s);

        let mut older = sample_snapshot();
        older.digest = None;
        let bytes = snapshot(&older);
        assert_eq!(decode_snapshot(Bytes::from(bytes)).unwrap(), older);

        let mut newer = sample_snapshot();
        newer.last_processed_zxid = Some(11);
        let bytes = snapshot(&newer);
        assert_eq!(decode_snapshot(Bytes::from(bytes)).unwrap(), newer);
    }

    #[test]
    fn a_flipped_byte_in_a_snapshot_is_never_accepted_silently() {
        let good = snapshot(&sample_snapshot());
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x01;
            match decode_snapshot(Bytes::from(b)) {
                Err(_) => {}
                // The only bytes no checksum covers are the seals' "/"
                // strings, which ZooKeeper reads and ignores.
                Ok(s) => assert_eq!(s.nodes, sample_snapshot().nodes, "byte {i}"),
            }
        }
    }

    #[test]
    fn log_records_checksums_and_torn_tails() {
        let entries = vec![
            entry(1, 1, Txn::CreateSession { timeout_ms: 4000 }),
            entry(
                1,
                2,
                Txn::Create {
                    opcode: opcode::CREATE2,
                    path: "/x".into(),
                    data: Some(Bytes::from_static(b"v")),
                    acl: acl(),
                    ephemeral: true,
                    parent_cversion: 1,
                },
            ),
        ];
        let file = log(&entries, 100);
        let parsed = read_log(&file).unwrap();
        assert_eq!(parsed.end, LogEnd::Clean);
        assert_eq!(parsed.records.len(), 2);
        for (r, e) in parsed.records.iter().zip(&entries) {
            assert_eq!(&decode_txn(r.payload.clone()).unwrap(), e);
        }

        // Cut inside the second record: the first survives, the end is torn.
        let second = parsed.records[1].offset as usize;
        let parsed = read_log(&file[..second + 20]).unwrap();
        assert_eq!(parsed.records.len(), 1);
        assert!(matches!(parsed.end, LogEnd::Torn { offset, .. } if offset == second as u64));

        // A flipped payload byte of a complete record is corruption.
        let mut bad = file.clone();
        bad[second + 30] ^= 0x40;
        let err = read_log(&bad).unwrap_err();
        assert_eq!(err.offset, second as u64);
        assert!(err.what.contains("checksum"), "{err}");
    }

    #[test]
    fn txn_variants_round_trip() {
        let digest = Some(TxnDigest {
            version: 2,
            tree_digest: -5,
        });
        let txns = vec![
            Txn::CloseSession {
                paths: Some(vec!["/e1".into(), "/e2".into()]),
            },
            Txn::CreateTtl {
                path: "/t".into(),
                data: None,
                acl: acl(),
                parent_cversion: 3,
                ttl_ms: 5000,
            },
            Txn::CreateContainer {
                path: "/c".into(),
                data: Some(Bytes::new()),
                acl: acl(),
                parent_cversion: 4,
            },
            Txn::SetAcl {
                path: "/c".into(),
                acl: acl(),
                version: 2,
            },
            Txn::Multi(vec![
                Txn::Check {
                    path: "/c".into(),
                    version: 0,
                },
                Txn::SetData {
                    path: "/c".into(),
                    data: Some(Bytes::from_static(b"z")),
                    version: 1,
                },
                Txn::Delete { path: "/c".into() },
                Txn::Error { code: -101 },
            ]),
        ];
        for t in txns {
            let mut e = entry(7, 9, t);
            e.digest = digest;
            assert_eq!(decode_txn(Bytes::from(payload(&e))).unwrap(), e);
        }
    }

    #[test]
    fn old_forms_read_as_zookeeper_reads_them() {
        // A closeSession without CloseSessionTxn (and without a digest).
        let mut e = entry(7, 9, Txn::CloseSession { paths: None });
        e.digest = None;
        assert_eq!(decode_txn(Bytes::from(payload(&e))).unwrap(), e);
        // A CreateTxnV0: no parentCVersion, which then reads as -1.
        let full = entry(
            7,
            9,
            Txn::Create {
                opcode: opcode::CREATE,
                path: "/v0".into(),
                data: None,
                acl: acl(),
                ephemeral: false,
                parent_cversion: 77,
            },
        );
        let mut bytes = payload(&full);
        bytes.truncate(bytes.len() - 4);
        let got = decode_txn(Bytes::from(bytes)).unwrap();
        assert!(matches!(
            got.txn,
            Txn::Create {
                parent_cversion: -1,
                ..
            }
        ));
    }

    /// A tiny deterministic generator, so a failure replays from its seed.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn decoders_never_panic_on_arbitrary_truncated_or_mutated_bytes() {
        let snap = snapshot(&sample_snapshot());
        let mut multi = entry(
            7,
            9,
            Txn::Multi(vec![Txn::Create {
                opcode: opcode::CREATE,
                path: "/m".into(),
                data: Some(Bytes::from_static(b"d")),
                acl: acl(),
                ephemeral: false,
                parent_cversion: 1,
            }]),
        );
        multi.digest = Some(TxnDigest {
            version: 2,
            tree_digest: 1,
        });
        let txn = payload(&multi);
        let logfile = log(std::slice::from_ref(&multi), 16);
        let seeds = [1u64, 0x9e37_79b9_7f4a_7c15, 42, 7_777_777];
        for seed in seeds {
            let mut rng = XorShift(seed);
            for round in 0..3000 {
                let base: &[u8] = match round % 3 {
                    0 => &snap,
                    1 => &txn,
                    _ => &logfile,
                };
                let mut b = base.to_vec();
                match rng.next() % 4 {
                    // Arbitrary bytes, sometimes behind a valid magic.
                    0 => {
                        let n = (rng.next() % 200) as usize;
                        b = (0..n).map(|_| rng.next() as u8).collect();
                        if rng.next() & 1 == 0 && b.len() >= 4 {
                            b[..4].copy_from_slice(&base[..4]);
                        }
                    }
                    1 => {
                        let cut = (rng.next() as usize) % (b.len() + 1);
                        b.truncate(cut);
                    }
                    2 => {
                        for _ in 0..1 + rng.next() % 4 {
                            let i = (rng.next() as usize) % b.len();
                            b[i] = rng.next() as u8;
                        }
                    }
                    _ => {
                        // A length field set to something huge or negative.
                        let i = (rng.next() as usize) % b.len().saturating_sub(4).max(1);
                        let v = [i32::MAX, -2, -1, 0x7fff, 1 << 20][(rng.next() % 5) as usize];
                        if i + 4 <= b.len() {
                            b[i..i + 4].copy_from_slice(&v.to_be_bytes());
                        }
                    }
                }
                let _ = decode_snapshot(Bytes::from(b.clone()));
                let _ = decode_txn(Bytes::from(b.clone()));
                let _ = read_log(&b);
                let _ = looks_sealed(&b);
                let _ = decode_header(&b);
            }
        }
    }
}
