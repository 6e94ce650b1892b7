//! Snapshots: the whole tree, the sessions and the zxid they are consistent
//! at, written with rkyv and read back through a memory map.
//!
//! A snapshot is taken from one immutable version of the tree (the engine's
//! tree is persistent), so it is consistent at exactly one zxid — not fuzzy
//! like ZooKeeper's — and writing it never stalls the write pipeline.
//!
//! File `snapshot.<zxid, 16 hex digits>`, little-endian header:
//!
//! ```text
//! offset size  field
//! 0      8     magic "CORRALSN"
//! 8      4     version (1)
//! 12     4     crc32c of the payload
//! 16     8     zxid
//! 24     8     payload length
//! 32     32    zero
//! 64     n     payload: an rkyv archive of `Snapshot`, validated before use
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rkyv::{Archive, Deserialize, Serialize};

pub const MAGIC: &[u8; 8] = b"CORRALSN";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SnapshotAcl {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SnapshotNode {
    pub path: String,
    pub data: Option<Vec<u8>>,
    /// Index into `Snapshot::acls`.
    pub acl: u32,
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    /// The number of child creations (see the engine's `Node::stat`).
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SnapshotSession {
    pub id: i64,
    pub timeout_ms: i32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub zxid: i64,
    /// Distinct ACL lists, shared by index (ZooKeeper's ACL cache).
    pub acls: Vec<Vec<SnapshotAcl>>,
    pub nodes: Vec<SnapshotNode>,
    pub sessions: Vec<SnapshotSession>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot I/O error on {file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt snapshot {file}: {what}")]
    Corrupt { file: PathBuf, what: String },
}

pub fn file_name(zxid: i64) -> String {
    format!("snapshot.{:016x}", zxid as u64)
}

pub fn parse_file_name(name: &str) -> Option<i64> {
    let hex = name.strip_prefix("snapshot.")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|v| v as i64)
}

/// Snapshots in `dir`, newest first.
pub fn list(dir: &Path) -> Vec<(i64, PathBuf)> {
    let mut v: Vec<(i64, PathBuf)> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(parse_file_name)
                        .map(|z| (z, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_by_key(|e| std::cmp::Reverse(e.0));
    v
}

/// How much of a snapshot file is written before it is synced. The log
/// shares the disk, and on a disk with a write-back cache every fdatasync
/// is a cache flush that waits for everything the disk holds, whoever
/// wrote it (seen in the kernel: the log's fdatasync in
/// `blkdev_issue_flush` while a snapshot was being written). One fsync of
/// a whole snapshot (hundreds of MiB with millions of znodes) made a log
/// sync wait 310 ms (write p99 409 ms instead of 4.6 ms during 1M-znode
/// snapshots). Written and synced 1 MiB at a time, and paced, the log's
/// flush finds little of the snapshot ahead of it.
pub const WRITE_CHUNK: usize = 1 << 20;

/// The most bytes per second a snapshot is written (and an old file
/// deleted) at: each chunk is followed by a pause that keeps to it. A
/// 1M-znode snapshot (~200 MiB) then takes ~1.6 s to write, in the
/// background; the log keeps the disk for itself most of that time.
pub const WRITE_BYTES_PER_SECOND: u64 = 128 << 20;

/// Waits out what is left of `chunk` bytes' share of time at
/// `WRITE_BYTES_PER_SECOND`, counted from `started`.
fn pace(started: std::time::Instant, chunk: usize) {
    let share = std::time::Duration::from_secs_f64(chunk as f64 / WRITE_BYTES_PER_SECOND as f64);
    if let Some(rest) = share.checked_sub(started.elapsed()) {
        std::thread::sleep(rest);
    }
}

/// Cuts `f` down to `target` bytes without a burst of freed blocks:
/// `WRITE_CHUNK` x 16 at a time at the paced rate (a file system mounted
/// with `discard` trims what is freed at once, and the log's next flush
/// waits behind the trim).
fn shrink_gradually(f: &fs::File, target: u64) -> std::io::Result<()> {
    const STEP: u64 = 16 * WRITE_CHUNK as u64;
    let mut len = f.metadata()?.len();
    while len > target {
        let started = std::time::Instant::now();
        len = len.saturating_sub(STEP).max(target);
        f.set_len(len)?;
        pace(started, STEP as usize);
    }
    Ok(())
}

/// Deletes a file that may be hundreds of MiB without a burst of freed
/// blocks: shrunk in paced steps, then removed. RocksDB deletes its files
/// the same way.
fn remove_gradually(path: &Path) -> std::io::Result<()> {
    if let Ok(f) = fs::OpenOptions::new().write(true).open(path) {
        shrink_gradually(&f, 16 * WRITE_CHUNK as u64)?;
    }
    fs::remove_file(path)
}

/// A purged snapshot kept for the next one to be written over, as the log
/// recycles its segments. Writing into a new file's freshly allocated
/// blocks, and deleting the old file, stalled the log's flushes on the
/// virtio disk this was measured on (ext4 mounted with `discard`): a
/// log-like writer beside three paced 206 MB snapshots saw 3-5 flushes
/// over 20 ms (up to 65-131 ms) per run with new files, 0-1 (at most
/// 21 ms) with one file written over (`bench/snapshot-reuse.py`).
pub const SPARE_NAME: &str = "snapshot.spare";

/// Startup housekeeping for the snapshot directory: a temporary file left
/// by a snapshot that was being written when the server stopped becomes
/// the spare (or is deleted if there is one). Never loaded either way: a
/// snapshot is only ever read under its final name.
pub fn tidy(dir: &Path) -> Vec<PathBuf> {
    let mut tidied = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return tidied;
    };
    let spare = dir.join(SPARE_NAME);
    for e in entries.filter_map(|e| e.ok()) {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with("snapshot.") && name.ends_with(".tmp")) {
            continue;
        }
        let path = e.path();
        let done = if spare.exists() {
            fs::remove_file(&path)
        } else {
            fs::rename(&path, &spare)
        };
        if done.is_ok() {
            tidied.push(path);
        }
    }
    tidied
}

/// Writes a snapshot durably: temp file (the spare, if there is one)
/// written and synced in chunks (`WRITE_CHUNK`), cut to its length,
/// rename, fsync of the directory. Returns the path and its size in bytes.
pub fn write(dir: &Path, snap: &Snapshot) -> Result<(PathBuf, u64), SnapshotError> {
    write_from(dir, &borrowed(snap), false)
}

/// A node as the snapshot archives it (`ArchivedSnapshotNode`), borrowed
/// from wherever the node lives: a server serialises its tree through
/// these without copying a path or a value.
#[derive(Debug, Clone, Copy)]
pub struct NodeRef<'a> {
    pub path: &'a str,
    pub data: Option<&'a [u8]>,
    pub acl: u32,
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
}

impl<'a> From<&'a SnapshotNode> for NodeRef<'a> {
    fn from(n: &'a SnapshotNode) -> Self {
        NodeRef {
            path: &n.path,
            data: n.data.as_deref(),
            acl: n.acl,
            czxid: n.czxid,
            mzxid: n.mzxid,
            pzxid: n.pzxid,
            ctime: n.ctime,
            mtime: n.mtime,
            version: n.version,
            cversion: n.cversion,
            aversion: n.aversion,
            ephemeral_owner: n.ephemeral_owner,
        }
    }
}

impl From<NodeRef<'_>> for SnapshotNode {
    fn from(n: NodeRef<'_>) -> Self {
        SnapshotNode {
            path: n.path.to_owned(),
            data: n.data.map(<[u8]>::to_vec),
            acl: n.acl,
            czxid: n.czxid,
            mzxid: n.mzxid,
            pzxid: n.pzxid,
            ctime: n.ctime,
            mtime: n.mtime,
            version: n.version,
            cversion: n.cversion,
            aversion: n.aversion,
            ephemeral_owner: n.ephemeral_owner,
        }
    }
}

/// A snapshot to be written, as `Snapshot` archives it, with its nodes
/// coming from an iterator (walked twice: rkyv writes what the nodes point
/// to, then the nodes). The archive is byte for byte the one `Snapshot`
/// gives (tested), and is streamed to the file: nothing the size of the
/// snapshot is held in memory. Built from the tree of a server with 1M
/// znodes, the whole `Snapshot` and its archive took ~600-800 MB at once.
pub struct SnapshotRef<'a, I> {
    pub zxid: i64,
    pub acls: &'a [Vec<SnapshotAcl>],
    pub nodes: I,
    pub sessions: &'a [SnapshotSession],
}

/// `snap` as a `SnapshotRef`.
fn borrowed(
    snap: &Snapshot,
) -> SnapshotRef<'_, impl ExactSizeIterator<Item = NodeRef<'_>> + Clone> {
    SnapshotRef {
        zxid: snap.zxid,
        acls: &snap.acls,
        nodes: snap.nodes.iter().map(NodeRef::from),
        sessions: &snap.sessions,
    }
}

/// Bytes as an archived `Vec<u8>`.
struct BytesRef<'a>(&'a [u8]);

impl Archive for BytesRef<'_> {
    type Archived = rkyv::vec::ArchivedVec<u8>;
    type Resolver = rkyv::vec::VecResolver;

    fn resolve(&self, resolver: Self::Resolver, out: rkyv::Place<Self::Archived>) {
        rkyv::vec::ArchivedVec::resolve_from_len(self.0.len(), resolver, out);
    }
}

impl<S> Serialize<S> for BytesRef<'_>
where
    S: rkyv::rancor::Fallible + rkyv::ser::Allocator + rkyv::ser::Writer + ?Sized,
{
    fn serialize(&self, serializer: &mut S) -> Result<Self::Resolver, S::Error> {
        rkyv::vec::ArchivedVec::<u8>::serialize_from_slice(self.0, serializer)
    }
}

pub struct NodeRefResolver {
    path: rkyv::string::StringResolver,
    data: Option<rkyv::vec::VecResolver>,
}

impl Archive for NodeRef<'_> {
    type Archived = ArchivedSnapshotNode;
    type Resolver = NodeRefResolver;

    fn resolve(&self, resolver: Self::Resolver, out: rkyv::Place<Self::Archived>) {
        rkyv::munge::munge!(let ArchivedSnapshotNode {
            path, data, acl, czxid, mzxid, pzxid, ctime, mtime, version, cversion, aversion,
            ephemeral_owner,
        } = out);
        rkyv::string::ArchivedString::resolve_from_str(self.path, resolver.path, path);
        self.data.map(BytesRef).resolve(resolver.data, data);
        self.acl.resolve((), acl);
        self.czxid.resolve((), czxid);
        self.mzxid.resolve((), mzxid);
        self.pzxid.resolve((), pzxid);
        self.ctime.resolve((), ctime);
        self.mtime.resolve((), mtime);
        self.version.resolve((), version);
        self.cversion.resolve((), cversion);
        self.aversion.resolve((), aversion);
        self.ephemeral_owner.resolve((), ephemeral_owner);
    }
}

impl<S> Serialize<S> for NodeRef<'_>
where
    S: rkyv::rancor::Fallible + rkyv::ser::Allocator + rkyv::ser::Writer + ?Sized,
    S::Error: rkyv::rancor::Source,
{
    fn serialize(&self, serializer: &mut S) -> Result<Self::Resolver, S::Error> {
        // In field order, as the derived `Serialize` of `SnapshotNode`.
        Ok(NodeRefResolver {
            path: rkyv::string::ArchivedString::serialize_from_str(self.path, serializer)?,
            data: self.data.map(BytesRef).serialize(serializer)?,
        })
    }
}

pub struct SnapshotRefResolver {
    acls: rkyv::vec::VecResolver,
    nodes: rkyv::vec::VecResolver,
    sessions: rkyv::vec::VecResolver,
}

impl<'a, I> Archive for SnapshotRef<'a, I>
where
    I: ExactSizeIterator<Item = NodeRef<'a>> + Clone,
{
    type Archived = ArchivedSnapshot;
    type Resolver = SnapshotRefResolver;

    fn resolve(&self, resolver: Self::Resolver, out: rkyv::Place<Self::Archived>) {
        rkyv::munge::munge!(let ArchivedSnapshot { zxid, acls, nodes, sessions } = out);
        self.zxid.resolve((), zxid);
        rkyv::vec::ArchivedVec::resolve_from_len(self.acls.len(), resolver.acls, acls);
        rkyv::vec::ArchivedVec::resolve_from_len(self.nodes.len(), resolver.nodes, nodes);
        rkyv::vec::ArchivedVec::resolve_from_len(self.sessions.len(), resolver.sessions, sessions);
    }
}

impl<'a, I, S> Serialize<S> for SnapshotRef<'a, I>
where
    I: ExactSizeIterator<Item = NodeRef<'a>> + Clone,
    S: rkyv::rancor::Fallible + rkyv::ser::Allocator + rkyv::ser::Writer + ?Sized,
    S::Error: rkyv::rancor::Source,
{
    fn serialize(&self, serializer: &mut S) -> Result<Self::Resolver, S::Error> {
        // In field order, as the derived `Serialize` of `Snapshot`.
        Ok(SnapshotRefResolver {
            acls: rkyv::vec::ArchivedVec::serialize_from_slice(self.acls, serializer)?,
            nodes: rkyv::vec::ArchivedVec::<ArchivedSnapshotNode>::serialize_from_iter::<
                NodeRef<'a>,
                _,
                _,
            >(self.nodes.clone(), serializer)?,
            sessions: rkyv::vec::ArchivedVec::serialize_from_slice(self.sessions, serializer)?,
        })
    }
}

/// The snapshot file being written: the payload goes out `WRITE_CHUNK` at
/// a time, each chunk written and synced (and, paced, followed by its
/// pause) as it fills, its checksum computed on the way. The first chunk
/// starts with room for the header, written last.
struct ChunkedFile {
    file: fs::File,
    buf: Vec<u8>,
    crc: u32,
    payload_len: u64,
    paced: bool,
    /// The first I/O error, kept whole (rkyv's error would only carry
    /// its text).
    error: Option<std::io::Error>,
}

impl ChunkedFile {
    fn new(file: fs::File, paced: bool) -> Self {
        let mut buf = Vec::with_capacity(WRITE_CHUNK);
        buf.resize(HEADER_LEN, 0);
        ChunkedFile {
            file,
            buf,
            crc: 0,
            payload_len: 0,
            paced,
            error: None,
        }
    }

    fn flush_chunk(&mut self) -> std::io::Result<()> {
        let started = std::time::Instant::now();
        self.file.write_all(&self.buf)?;
        self.file.sync_data()?;
        if self.paced {
            pace(started, self.buf.len());
        }
        self.buf.clear();
        Ok(())
    }
}

impl Write for ChunkedFile {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.error.is_some() {
            return Err(std::io::Error::other("an earlier write failed"));
        }
        let n = bytes.len().min(WRITE_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&bytes[..n]);
        self.crc = crc32c::crc32c_append(self.crc, &bytes[..n]);
        self.payload_len += n as u64;
        if self.buf.len() == WRITE_CHUNK {
            if let Err(e) = self.flush_chunk() {
                let kind = e.kind();
                self.error = Some(e);
                return Err(kind.into());
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes a snapshot durably from `source` (see `write`); the payload is
/// streamed to the file as it is serialised. `paced`, for a server's
/// background snapshots next to a log that is taking writes: at most
/// `WRITE_BYTES_PER_SECOND` (it sleeps between chunks).
pub fn write_from<'a, I>(
    dir: &Path,
    source: &SnapshotRef<'a, I>,
    paced: bool,
) -> Result<(PathBuf, u64), SnapshotError>
where
    I: ExactSizeIterator<Item = NodeRef<'a>> + Clone,
{
    let io = |file: &Path| {
        let file = file.to_path_buf();
        move |source| SnapshotError::Io { file, source }
    };
    let path = dir.join(file_name(source.zxid));
    let tmp = dir.join(format!("{}.tmp", file_name(source.zxid)));
    // Over the spare's blocks if there is one: it holds an old snapshot
    // no longer needed, and until the rename below nothing reads this name.
    let file = match fs::rename(dir.join(SPARE_NAME), &tmp) {
        Ok(()) => fs::OpenOptions::new().write(true).open(&tmp),
        Err(_) => fs::File::create(&tmp),
    }
    .map_err(io(&tmp))?;
    let written = stream_to(file, &tmp, source, paced);
    if written.is_err() {
        // The file is still the spare's blocks for the next try.
        let _ = fs::rename(&tmp, dir.join(SPARE_NAME));
    }
    let len = written?;
    fs::rename(&tmp, &path).map_err(io(&path))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok((path, len))
}

/// Streams the archive of `source` into `file` (named `tmp`), header last,
/// cut to length and synced. Returns the file's length.
fn stream_to<'a, I>(
    file: fs::File,
    tmp: &Path,
    source: &SnapshotRef<'a, I>,
    paced: bool,
) -> Result<u64, SnapshotError>
where
    I: ExactSizeIterator<Item = NodeRef<'a>> + Clone,
{
    use std::os::unix::fs::FileExt;
    let io = |source| SnapshotError::Io {
        file: tmp.to_path_buf(),
        source,
    };
    // Chunks start on chunk boundaries (the header rides in the first):
    // no partial page to read back from the old file.
    let mut out = ChunkedFile::new(file, paced);
    let serialised = rkyv::api::high::to_bytes_in::<_, rkyv::rancor::Error>(
        source,
        rkyv::ser::writer::IoWriter::new(&mut out),
    )
    .map(drop);
    if let Some(e) = out.error.take() {
        return Err(io(e));
    }
    if let Err(e) = serialised {
        return Err(SnapshotError::Corrupt {
            file: tmp.to_path_buf(),
            what: format!("cannot serialise: {e}"),
        });
    }
    if !out.buf.is_empty() {
        out.flush_chunk().map_err(io)?;
    }
    let mut header = [0u8; HEADER_LEN];
    header[0..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&out.crc.to_le_bytes());
    header[16..24].copy_from_slice(&source.zxid.to_le_bytes());
    header[24..32].copy_from_slice(&out.payload_len.to_le_bytes());
    let f = out.file;
    f.write_all_at(&header, 0).map_err(io)?;
    let len = HEADER_LEN as u64 + out.payload_len;
    if paced {
        shrink_gradually(&f, len).map_err(io)?;
    } else {
        f.set_len(len).map_err(io)?;
    }
    f.sync_all().map_err(io)?;
    Ok(len)
}

/// Maps a snapshot, checks its header, checksum and archive, and hands the
/// validated archive to `f`.
pub fn load<R>(path: &Path, f: impl FnOnce(&ArchivedSnapshot) -> R) -> Result<R, SnapshotError> {
    let file = fs::File::open(path).map_err(|source| SnapshotError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    // SAFETY: the file is ours and not modified while mapped (snapshots are
    // written once under a temporary name and renamed into place).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|source| SnapshotError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    let archived = validate(&map).map_err(|what| SnapshotError::Corrupt {
        file: path.to_path_buf(),
        what,
    })?;
    Ok(f(archived))
}

/// Checks the bytes of a snapshot file (header, checksum, then the archive
/// with rkyv's bytecheck) and returns the validated archive; `Err` says
/// what is wrong. Never panics, whatever the bytes. The archive is found
/// only if `bytes` starts 16-byte aligned, as a memory map does.
pub fn validate(bytes: &[u8]) -> Result<&ArchivedSnapshot, String> {
    if bytes.len() < HEADER_LEN {
        return Err("shorter than its header".into());
    }
    if &bytes[0..8] != MAGIC {
        return Err("bad magic".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!("unsupported version {version}"));
    }
    let crc = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes"));
    let len = u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes"));
    // Checked: a damaged length near u64::MAX must not overflow (a panic
    // in debug builds, a wrap that could match the file size in release).
    if (HEADER_LEN as u64).checked_add(len) != Some(bytes.len() as u64) {
        return Err(format!("payload length {len} does not match the file"));
    }
    let payload = &bytes[HEADER_LEN..];
    if crc32c::crc32c(payload) != crc {
        return Err("checksum mismatch".into());
    }
    rkyv::access::<ArchivedSnapshot, rkyv::rancor::Error>(payload)
        .map_err(|e| format!("invalid archive: {e}"))
}

/// Purged log segments kept for the log to reuse as its next spare instead
/// of zero-filling a new file (which writes as many bytes as the log
/// itself); further ones are deleted.
pub const RECYCLED_SEGMENTS_MAX: usize = 2;

/// Keeps the newest `retain` snapshots and deletes older ones (the newest
/// of those becomes the spare if there is none), and every log segment whose records all precede the oldest snapshot kept (never
/// the last segment): up to `RECYCLED_SEGMENTS_MAX` of those are renamed
/// for the log to recycle, the rest deleted. Returns the files removed or
/// renamed.
pub fn purge(snap_dir: &Path, log_dir: &Path, retain: usize) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let snaps = list(snap_dir);
    if snaps.len() <= retain || retain == 0 {
        return removed;
    }
    let spare = snap_dir.join(SPARE_NAME);
    for (_, p) in &snaps[retain..] {
        let gone = if spare.exists() {
            remove_gradually(p)
        } else {
            fs::rename(p, &spare)
        };
        if gone.is_ok() {
            removed.push(p.clone());
        }
    }
    let oldest_kept = snaps[retain - 1].0;
    let mut pooled = fs::read_dir(log_dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(crate::format::is_recycled_name)
                })
                .count()
        })
        .unwrap_or(RECYCLED_SEGMENTS_MAX);
    let mut renamed = false;
    if let Ok(segments) = crate::recovery::segments(log_dir) {
        // A segment holds zxids up to the next segment's first - 1.
        for w in segments.windows(2) {
            let (first, path) = &w[0];
            let (next_first, _) = w[1];
            if next_first > oldest_kept + 1 {
                continue;
            }
            // Renamed, it is out of the log as surely as deleted: the
            // snapshots kept hold all of it.
            let pool = log_dir.join(crate::format::recycled_name(*first));
            if pooled < RECYCLED_SEGMENTS_MAX && fs::rename(path, &pool).is_ok() {
                pooled += 1;
                renamed = true;
                removed.push(path.clone());
            } else if remove_gradually(path).is_ok() {
                removed.push(path.clone());
            }
        }
    }
    if renamed {
        let _ = fs::File::open(log_dir).and_then(|d| d.sync_all());
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("corral-snap-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn sample(zxid: i64) -> Snapshot {
        crate::fuzz::sample_snapshot(zxid)
    }

    #[test]
    fn round_trip() {
        let d = tmp("rt");
        let s = sample(42);
        let (p, _) = write(&d, &s).unwrap();
        let back = load(&p, |a| {
            rkyv::deserialize::<Snapshot, rkyv::rancor::Error>(a).unwrap()
        })
        .unwrap();
        assert_eq!(back, s);
        assert_eq!(list(&d)[0].0, 42);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn any_flipped_byte_is_detected() {
        let d = tmp("flip");
        let (p, _) = write(&d, &sample(1)).unwrap();
        let good = fs::read(&p).unwrap();
        for i in (0..good.len()).step_by(7) {
            let mut b = good.clone();
            b[i] ^= 0x10;
            fs::write(&p, &b).unwrap();
            // Either an error or, for the reserved zero bytes, the same data.
            if let Ok(z) = load(&p, |a| a.zxid.to_native()) {
                assert_eq!(z, 1, "byte {i}");
            }
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn purge_keeps_the_newest_and_the_logs_they_need() {
        let d = tmp("purge");
        for z in [10, 20, 30, 40] {
            write(&d, &sample(z)).unwrap();
        }
        for first in [1i64, 15, 25, 35] {
            fs::write(d.join(crate::format::segment_name(first)), b"").unwrap();
        }
        let removed = purge(&d, &d, 3);
        let names: Vec<String> = removed
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect();
        // Snapshot 10 goes; oldest kept is 20, which needs zxids 21.. from
        // the segment starting at 15.
        assert!(names.contains(&file_name(10)));
        assert!(names.contains(&crate::format::segment_name(1)));
        assert!(!names.contains(&crate::format::segment_name(15)));
        assert_eq!(list(&d).len(), 3);
        // Segment 1 was kept for the log to recycle, not deleted.
        assert!(d.join(crate::format::recycled_name(1)).exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn purge_keeps_at_most_a_few_segments_to_recycle() {
        let d = tmp("recycle-pool");
        for z in [100, 200, 300, 400] {
            write(&d, &sample(z)).unwrap();
        }
        let firsts = [1i64, 20, 40, 60, 250];
        for first in firsts {
            fs::write(d.join(crate::format::segment_name(first)), b"x").unwrap();
        }
        let removed = purge(&d, &d, 3);
        // Snapshot 100 and the segments at 1, 20 and 40 go (60 holds 200).
        assert_eq!(removed.len(), 4);
        let pooled: Vec<String> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| crate::format::is_recycled_name(n))
            .collect();
        assert_eq!(pooled.len(), RECYCLED_SEGMENTS_MAX, "{pooled:?}");
        assert_eq!(crate::recovery::segments(&d).unwrap().len(), 2);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_large_file_is_removed_in_steps() {
        let d = tmp("gradual");
        let p = d.join("big");
        let f = fs::File::create(&p).unwrap();
        // Sparse: the size is what the steps go by.
        f.set_len(3 * 16 * WRITE_CHUNK as u64 + 12345).unwrap();
        drop(f);
        let started = std::time::Instant::now();
        remove_gradually(&p).unwrap();
        assert!(!p.exists());
        // Three steps of 16 chunks, each paced.
        let floor = 3.0 * 16.0 * WRITE_CHUNK as f64 / WRITE_BYTES_PER_SECOND as f64;
        assert!(started.elapsed().as_secs_f64() >= floor * 0.9);
        // A file that is already gone is an error for the caller to skip.
        assert!(remove_gradually(&p).is_err());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_purged_snapshot_is_written_over_by_the_next() {
        use std::os::unix::fs::MetadataExt;
        let d = tmp("spare");
        // A big snapshot, then small ones: the spare is longer than what
        // is written over it and must be cut to length.
        let mut big = sample(10);
        big.nodes = (0..20_000)
            .map(|i| SnapshotNode {
                path: format!("/n{i}"),
                data: Some(vec![7; 100]),
                ..big.nodes[0].clone()
            })
            .collect();
        write(&d, &big).unwrap();
        for z in [20, 30, 40] {
            write(&d, &sample(z)).unwrap();
        }
        let big_inode = fs::metadata(d.join(file_name(10))).unwrap().ino();
        purge(&d, &d, 3);
        let spare = d.join(SPARE_NAME);
        assert_eq!(fs::metadata(&spare).unwrap().ino(), big_inode);
        assert!(list(&d).iter().all(|(z, _)| *z != 10));

        let (p, n) = write_from(&d, &borrowed(&sample(50)), true).unwrap();
        assert!(!spare.exists());
        let m = fs::metadata(&p).unwrap();
        assert_eq!(m.ino(), big_inode, "written over the spare");
        assert_eq!(m.len(), n);
        let back = load(&p, |a| {
            rkyv::deserialize::<Snapshot, rkyv::rancor::Error>(a).unwrap()
        })
        .unwrap();
        assert_eq!(back, sample(50));

        // The next purge makes a new spare; one at a time, the rest go.
        write(&d, &sample(60)).unwrap();
        purge(&d, &d, 1);
        assert!(spare.exists());
        assert_eq!(list(&d).len(), 1);
        assert_eq!(
            fs::read_dir(&d).unwrap().count(),
            2,
            "the newest snapshot and one spare"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_snapshot_cut_short_by_a_crash_becomes_the_spare() {
        let d = tmp("tidy");
        write(&d, &sample(5)).unwrap();
        let half = d.join(format!("{}.tmp", file_name(9)));
        fs::write(&half, b"half a snapshot").unwrap();
        assert_eq!(tidy(&d), vec![half.clone()]);
        assert!(!half.exists());
        assert!(d.join(SPARE_NAME).exists());
        // A second leftover, with a spare already there, is deleted.
        let other = d.join(format!("{}.tmp", file_name(11)));
        fs::write(&other, b"another").unwrap();
        assert_eq!(tidy(&d), vec![other.clone()]);
        assert!(!other.exists());
        // Only the snapshot is a snapshot; the spare is written over next.
        assert_eq!(list(&d).len(), 1);
        let (p, _) = write(&d, &sample(12)).unwrap();
        assert_eq!(load(&p, |a| a.zxid.to_native()).unwrap(), 12);
        assert!(!d.join(SPARE_NAME).exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_streamed_file_holds_the_archive_of_the_whole_snapshot() {
        let d = tmp("stream");
        // Several chunks' worth, values of every size up to a chunk and
        // past it, nodes without data, ACLs and sessions.
        let mut snap = sample(77);
        let template = snap.nodes[0].clone();
        snap.nodes = (0..30_000)
            .map(|i| SnapshotNode {
                path: format!("/p{}/{}", i % 97, "n".repeat(i % 40)),
                data: match i % 5 {
                    0 => None,
                    1 => Some(Vec::new()),
                    _ => Some(vec![i as u8; (i * 37) % 300]),
                },
                czxid: i as i64,
                ..template.clone()
            })
            .chain(std::iter::once(SnapshotNode {
                path: "/big".into(),
                data: Some(vec![9; WRITE_CHUNK + 4321]),
                ..template.clone()
            }))
            .collect();
        snap.sessions = (0..500)
            .map(|i| SnapshotSession {
                id: i,
                timeout_ms: 4000 + i as i32,
            })
            .collect();
        let (p, n) = write(&d, &snap).unwrap();
        let file = fs::read(&p).unwrap();
        assert_eq!(file.len() as u64, n);
        let whole = rkyv::to_bytes::<rkyv::rancor::Error>(&snap).unwrap();
        assert!(
            file[HEADER_LEN..] == whole[..],
            "the same archive, byte for byte"
        );
        let back = load(&p, |a| {
            rkyv::deserialize::<Snapshot, rkyv::rancor::Error>(a).unwrap()
        })
        .unwrap();
        assert_eq!(back, snap);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_write_is_an_io_error_and_leaves_the_spare() {
        let d = tmp("enospc");
        // A spare whose writes fail as on a full disk.
        std::os::unix::fs::symlink("/dev/full", d.join(SPARE_NAME)).unwrap();
        // Failing in the last chunk, and in a full chunk mid-way.
        let mut big = sample(4);
        big.nodes[0].data = Some(vec![5; 3 * WRITE_CHUNK]);
        for snap in [sample(3), big] {
            match write(&d, &snap) {
                Err(SnapshotError::Io { source, .. }) => {
                    assert_eq!(source.raw_os_error(), Some(libc_enospc()), "{source}")
                }
                other => panic!("expected an I/O error, got {other:?}"),
            }
        }
        assert!(list(&d).is_empty());
        let names: Vec<String> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            vec![SPARE_NAME.to_string()],
            "no temporary file left"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    /// ENOSPC on Linux.
    fn libc_enospc() -> i32 {
        28
    }

    #[test]
    fn a_paced_write_reads_back_like_an_unpaced_one() {
        let d = tmp("paced");
        let (p, n) = write_from(&d, &borrowed(&sample(7)), true).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().len(), n);
        let zxid = load(&p, |a| a.zxid.to_native()).unwrap();
        assert_eq!(zxid, 7);
        fs::remove_dir_all(&d).unwrap();
    }
}
