//! Reading a log directory back at startup.
//!
//! Rules (matching what a crash can and cannot do to an O_DIRECT,
//! fdatasync'ed, preallocated log):
//! - In the last segment, a torn or checksum-failing record followed only by
//!   what a crash can leave (the tail of an unsynced write) ends the log:
//!   it is cut there and zeroed, since nothing after it was acknowledged.
//! - A bad record in any earlier segment, a bad segment header, or a gap or
//!   step back in zxids is corruption of acknowledged data: startup stops
//!   with the file and offset.
//! - A valid record whose zxid is below its segment's first zxid is left
//!   over from a recycled segment's earlier life (see `format`): the
//!   segment's log ends there, as at a zero length.

use std::path::{Path, PathBuf};

use crate::disk::{Disk, GlommioDisk};
use crate::format::{self, RecordRead, HEADER_LEN};

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("cannot read log directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt log segment {file}: {what}")]
    Header { file: PathBuf, what: String },
    #[error("corrupt log record in {file} at offset {offset}: {what}")]
    Record {
        file: PathBuf,
        offset: usize,
        what: String,
    },
    #[error("zxid gap in {file} at offset {offset}: {zxid:#x} follows {previous:#x}")]
    Gap {
        file: PathBuf,
        offset: usize,
        zxid: i64,
        previous: i64,
    },
}

/// Why parsing a segment stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// A zero length, or a record left from a recycled segment's earlier
    /// life: the end of the written log.
    End,
    /// A record cut short or failing its checksum.
    Invalid(&'static str),
    /// A record whose zxid does not follow the previous one.
    Gap { zxid: i64, previous: i64 },
}

/// The records of one segment's bytes (after its header) up to where
/// parsing stopped, and the offset of that point.
#[derive(Debug)]
pub struct Parsed {
    pub records: Vec<(i64, Vec<u8>)>,
    /// The zxid of the last record parsed, kept or not.
    pub last: Option<i64>,
    pub end: usize,
    pub stop: Stop,
}

/// One record of a segment image: where it starts, its zxid, its payload.
#[derive(Debug, Clone, Copy)]
pub struct SegmentRecord<'a> {
    pub at: usize,
    pub zxid: i64,
    pub payload: &'a [u8],
}

/// The records of a segment image (header included), in order: the one
/// reader of segments. It stops at a zero length or the image's end, at a
/// record left from a recycled segment's earlier life (a valid record
/// whose zxid is below the segment's first; see `format`), both
/// `Stop::End`, or at a record cut short or failing its checksum
/// (`Stop::Invalid`). Then `stop` says which and `off` where.
pub struct Records<'a> {
    bytes: &'a [u8],
    /// The segment's first zxid, from its header.
    first: i64,
    pub off: usize,
    pub stop: Option<Stop>,
}

impl<'a> Records<'a> {
    pub fn new(bytes: &'a [u8]) -> Records<'a> {
        Records {
            bytes,
            first: format::decode_header(bytes).unwrap_or(i64::MIN),
            off: HEADER_LEN,
            stop: None,
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = SegmentRecord<'a>;

    fn next(&mut self) -> Option<SegmentRecord<'a>> {
        if self.stop.is_some() {
            return None;
        }
        let read = match self.bytes.get(self.off..) {
            Some(rest) if !rest.is_empty() => format::read_record(rest),
            _ => RecordRead::End,
        };
        let (zxid, payload, len) = match read {
            RecordRead::Record { zxid, payload, len } if zxid >= self.first => (zxid, payload, len),
            RecordRead::Record { .. } | RecordRead::End => {
                self.stop = Some(Stop::End);
                return None;
            }
            RecordRead::Invalid(what) => {
                self.stop = Some(Stop::Invalid(what));
                return None;
            }
        };
        let at = self.off;
        self.off += len;
        Some(SegmentRecord { at, zxid, payload })
    }
}

/// Parses a whole segment image (header included) without touching any
/// file: the part of recovery that the model test drives directly.
pub fn parse_segment(bytes: &[u8], previous: Option<i64>) -> Parsed {
    parse_segment_after(bytes, previous, i64::MIN)
}

/// `parse_segment` keeping only the records after zxid `after`; the
/// others are checked all the same.
fn parse_segment_after(bytes: &[u8], mut previous: Option<i64>, after: i64) -> Parsed {
    let mut records = Vec::new();
    let mut reader = Records::new(bytes);
    for r in reader.by_ref() {
        if let Some(p) = previous {
            if !format::zxid_follows(p, r.zxid) {
                return Parsed {
                    records,
                    last: previous,
                    end: r.at,
                    stop: Stop::Gap {
                        zxid: r.zxid,
                        previous: p,
                    },
                };
            }
        }
        previous = Some(r.zxid);
        if r.zxid > after {
            records.push((r.zxid, r.payload.to_vec()));
        }
    }
    Parsed {
        records,
        last: previous,
        end: reader.off,
        stop: reader.stop.unwrap_or(Stop::End),
    }
}

/// What was found: the records in order and where to continue writing.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Every record (`recover`), or those after a snapshot's zxid
    /// (`recover_after`).
    pub records: Vec<(i64, Vec<u8>)>,
    /// Where the log goes on; `None` for a log without segments.
    pub tail: Option<Tail>,
    /// Bytes zeroed after the last record of the last segment (a torn
    /// write, a recycled segment's old contents, a cut-short TRUNC).
    pub truncated_bytes: usize,
    /// Whether the last segment ended in a torn or checksum-failing record
    /// (an unsynced write cut by a crash), not a clean end.
    pub torn_tail: bool,
}

/// The last segment as recovery left it: what the writer needs to go on
/// without reading the segment again (`Wal::open`). The writer's startup
/// is on the path to serving; a second read of a 64 MiB segment that
/// O_DIRECT writes kept out of the page cache put 175-330 ms between
/// recovery's end and serving in 1M-znode restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// The last segment.
    pub path: PathBuf,
    /// The offset of its first free byte.
    pub pos: usize,
    /// The last zxid recovery read: the segment's last record, or the last
    /// of an earlier segment when it holds none. `None` when neither: no
    /// record at all, or earlier segments skipped (`recover_after`).
    pub last_zxid: Option<i64>,
    /// The bytes from the start of the block `pos` is in up to `pos`,
    /// which the writer's first aligned write rewrites.
    pub block: Vec<u8>,
}

/// The segments of the log in `dir`, by first zxid.
pub fn segments(dir: &Path) -> Result<Vec<(i64, PathBuf)>, RecoveryError> {
    segments_on(&GlommioDisk, dir)
}

/// `segments` on any disk.
pub fn segments_on<D: Disk>(disk: &D, dir: &Path) -> Result<Vec<(i64, PathBuf)>, RecoveryError> {
    let names = disk.list(dir).map_err(|source| RecoveryError::Io {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut segs: Vec<(i64, PathBuf)> = names
        .iter()
        .filter_map(|name| format::parse_segment_name(name).map(|z| (z, dir.join(name))))
        .collect();
    segs.sort();
    Ok(segs)
}

/// Reads every segment of `dir` (which must exist), cutting a torn tail.
pub fn recover(dir: &Path) -> Result<Recovered, RecoveryError> {
    read(&GlommioDisk, dir, true, i64::MIN)
}

/// `recover` for a server starting from a snapshot at zxid `after`: only
/// the records after it are returned, and the segments wholly before it
/// (the next segment starts at or before `after`) are not read at all, as
/// ZooKeeper reads no log older than its snapshot. Replaying the log is
/// then proportional to what the snapshot lacks, not to the log kept for
/// older snapshots.
pub fn recover_after(dir: &Path, after: i64) -> Result<Recovered, RecoveryError> {
    read(&GlommioDisk, dir, true, after)
}

/// `recover` on any disk.
pub fn recover_on<D: Disk>(disk: &D, dir: &Path) -> Result<Recovered, RecoveryError> {
    read(disk, dir, true, i64::MIN)
}

/// Reads the log like `recover` but changes nothing (for offline tools).
pub fn read_only(dir: &Path) -> Result<Recovered, RecoveryError> {
    read(&GlommioDisk, dir, false, i64::MIN)
}

fn read<D: Disk>(
    disk: &D,
    dir: &Path,
    repair: bool,
    after: i64,
) -> Result<Recovered, RecoveryError> {
    let segs = segments_on(disk, dir)?;
    let mut out = Recovered::default();
    let mut previous: Option<i64> = None;
    let count = segs.len();
    // Segments whose records all precede `after`: every record of one is
    // below the first zxid of the next.
    let skip = segs.windows(2).take_while(|w| w[1].0 <= after).count();
    for (i, (first, file)) in segs.into_iter().enumerate().skip(skip) {
        let last_segment = i + 1 == count;
        let bytes = disk.read(&file).map_err(|source| RecoveryError::Io {
            dir: file.clone(),
            source,
        })?;
        // Segments are created whole, header and zeros, before they get
        // their name: a shorter one is damage, not a crash.
        if bytes.len() < HEADER_LEN {
            return Err(RecoveryError::Header {
                file,
                what: format!("{} bytes, shorter than its header", bytes.len()),
            });
        }
        let header_first = format::decode_header(&bytes).map_err(|e| RecoveryError::Header {
            file: file.clone(),
            what: e.to_string(),
        })?;
        if header_first != first {
            return Err(RecoveryError::Header {
                file,
                what: format!("header says first zxid {header_first:#x}"),
            });
        }
        let parsed = parse_segment_after(&bytes, previous, after);
        previous = parsed.last.or(previous);
        out.records.extend(parsed.records);
        let off = parsed.end;
        match parsed.stop {
            Stop::End => {}
            Stop::Gap { zxid, previous } => {
                return Err(RecoveryError::Gap {
                    file,
                    offset: off,
                    zxid,
                    previous,
                })
            }
            Stop::Invalid(what) => {
                if !last_segment {
                    return Err(RecoveryError::Record {
                        file,
                        offset: off,
                        what: what.to_string(),
                    });
                }
                out.torn_tail = true;
            }
        }
        if last_segment {
            // A torn tail: zero everything after the last good record so a
            // later crash cannot resurrect it. After a zero length too: a
            // torn TRUNC (zeroing) can leave old records past a zeroed
            // sector, and a recycled segment holds its old records there.
            let end = bytes.iter().rposition(|b| *b != 0).map_or(off, |p| p + 1);
            out.truncated_bytes = end.saturating_sub(off);
            let block = bytes[off / format::BLOCK * format::BLOCK..off].to_vec();
            if repair {
                make_durable(disk, &file, bytes, off)?;
            }
            out.tail = Some(Tail {
                path: file,
                pos: off,
                last_zxid: previous,
                block,
            });
        }
    }
    if repair && count > 0 {
        disk.sync_dir(dir).map_err(|source| RecoveryError::Io {
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(out)
}

/// Writes the whole last segment back as recovery read it, its records up
/// to `off` and zeros after them, and syncs it.
///
/// What recovery reads is not necessarily durable. A previous run whose
/// fdatasync failed stopped (fail-stop), but Linux marks the pages of a
/// failed writeback clean, and a disk's write cache still answers reads
/// with what it may never persist: a process restart then reads records
/// (or the zeros of a TRUNC) that a power loss can still tear or undo
/// (`FaultyDisk` does exactly this). The writer would append after them
/// and acknowledge, and after the power loss recovery would find
/// corruption in front of acknowledged records, or truncated records back.
/// Only the last segment can hold such bytes (the previous run stopped at
/// its first error, every segment before the last was synced before the
/// log rolled past it, and TRUNC deletes the segments after the one it
/// zeroes first), so rewriting all of it, with the directory sync that
/// follows for renames whose sync failed, makes what recovery found
/// durable before anything new is acknowledged. It costs one write of one
/// segment at startup.
fn make_durable<D: Disk>(
    disk: &D,
    file: &Path,
    mut bytes: Vec<u8>,
    off: usize,
) -> Result<(), RecoveryError> {
    bytes[off..].fill(0);
    disk.write_synced(file, 0, &bytes)
        .map_err(|source| RecoveryError::Io {
            dir: file.to_path_buf(),
            source,
        })
}

/// Drops every record after `after` from the log in `dir` (ZAB's TRUNC: a
/// follower holding transactions the new leader never committed). Later
/// segments are deleted first, newest first, and the directory synced;
/// then the segment holding the first dropped record, now the last one, is
/// zeroed from that record on and synced. A crash therefore leaves the old
/// log with some of its last segments gone, or the truncated log with a
/// torn tail that recovery cuts: never a damaged segment in front of
/// others (zeroing first, as before, could leave one: found by the model
/// test).
pub fn truncate_after(dir: &Path, after: i64) -> Result<usize, RecoveryError> {
    truncate_after_on(&GlommioDisk, dir, after)
}

/// `truncate_after` on any disk.
pub fn truncate_after_on<D: Disk>(
    disk: &D,
    dir: &Path,
    after: i64,
) -> Result<usize, RecoveryError> {
    let io = |file: &Path| {
        let file = file.to_path_buf();
        move |source| RecoveryError::Io { dir: file, source }
    };
    let segments = segments_on(disk, dir)?;
    // The segment holding the first record after `after`, and where.
    let mut cut = None;
    for (i, (_, file)) in segments.iter().enumerate() {
        let bytes = disk.read(file).map_err(io(file))?;
        let at = Records::new(&bytes).find(|r| r.zxid > after).map(|r| r.at);
        if let Some(at) = at {
            cut = Some((i, at, bytes));
            break;
        }
    }
    let Some((i, off, bytes)) = cut else {
        disk.sync_dir(dir).map_err(io(dir))?;
        return Ok(0);
    };
    for (_, file) in segments[i + 1..].iter().rev() {
        disk.remove(file).map_err(io(file))?;
    }
    disk.sync_dir(dir).map_err(io(dir))?;
    let dropped = Records::new(&bytes).filter(|r| r.at >= off).count();
    let end = bytes.iter().rposition(|b| *b != 0).map_or(off, |p| p + 1);
    let file = &segments[i].1;
    disk.write_synced(file, off as u64, &vec![0u8; end.saturating_sub(off)])
        .map_err(io(file))?;
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    use crate::format::{encode_header, encode_record, segment_name};

    fn write_segment(dir: &Path, first: i64, zxids: &[i64], size: usize) -> PathBuf {
        let mut b = encode_header(first);
        for z in zxids {
            encode_record(&mut b, *z, format!("txn{z}").as_bytes());
        }
        b.resize(size, 0);
        let p = dir.join(segment_name(first));
        fs::write(&p, &b).unwrap();
        p
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("corral-recovery-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    /// A segment at `first` recycled from one that held `old`: the old
    /// image, then the new header, the new records and a zero length.
    fn write_recycled(dir: &Path, first: i64, zxids: &[i64], old: &[i64]) -> PathBuf {
        let mut b = encode_header(1);
        for z in old {
            encode_record(&mut b, *z, format!("old{z}").as_bytes());
        }
        b.resize(16384, 0);
        let mut new = encode_header(first);
        for z in zxids {
            encode_record(&mut new, *z, format!("txn{z}").as_bytes());
        }
        new.extend_from_slice(&[0; 4]);
        b[..new.len()].copy_from_slice(&new);
        let p = dir.join(segment_name(first));
        fs::write(&p, &b).unwrap();
        p
    }

    #[test]
    fn a_recycled_segments_old_records_never_come_back() {
        let d = tmp("recycled");
        let old: Vec<i64> = (1..200).collect();
        // A recycled middle segment, then a recycled last one whose zero
        // length was lost (a torn write): an old record follows, aligned.
        write_recycled(&d, 300, &[300, 301], &old);
        let last = write_recycled(&d, 302, &[302, 303], &old);
        let mut b = fs::read(&last).unwrap();
        let r = recover(&d).unwrap();
        assert_eq!(
            r.records.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![300, 301, 302, 303]
        );
        assert!(!r.torn_tail, "old records are an end, not a torn write");
        let off = r.tail.unwrap().pos;
        // Recovery zeroed everything after the last record.
        assert!(fs::read(&last).unwrap()[off..].iter().all(|b| *b == 0));
        let mut stale = Vec::new();
        encode_record(&mut stale, 150, b"old150");
        b[off..off + stale.len()].copy_from_slice(&stale);
        fs::write(&last, &b).unwrap();
        let r = recover(&d).unwrap();
        assert_eq!(r.records.len(), 4);
        assert!(!r.torn_tail);
        // A record of the new life that skips a zxid is still a gap.
        let mut gap = Vec::new();
        encode_record(&mut gap, 305, b"txn305");
        b[off..off + gap.len()].copy_from_slice(&gap);
        fs::write(&last, &b).unwrap();
        assert!(matches!(
            recover(&d).unwrap_err(),
            RecoveryError::Gap { .. }
        ));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn reads_across_segments() {
        let d = tmp("across");
        write_segment(&d, 1, &[1, 2, 3], 8192);
        write_segment(&d, 4, &[4, 5], 8192);
        let r = recover(&d).unwrap();
        assert_eq!(
            r.records.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(r.tail.unwrap().path, d.join(segment_name(4)));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_tail_carries_the_last_zxid_and_the_partial_block() {
        let d = tmp("tail");
        write_segment(&d, 1, &[1, 2, 3], 8192);
        let last = write_segment(&d, 4, &[4, 5], 8192);
        let t = recover(&d).unwrap().tail.unwrap();
        assert_eq!(t.last_zxid, Some(5));
        assert_eq!(t.path, last);
        let image = fs::read(&last).unwrap();
        assert_eq!(t.block, image[t.pos / format::BLOCK * format::BLOCK..t.pos]);
        assert!(!t.block.is_empty());
        // An empty last segment: the last zxid is the previous one's...
        let empty = write_segment(&d, 6, &[], 8192);
        let t = recover(&d).unwrap().tail.unwrap();
        assert_eq!((t.path, t.pos, t.last_zxid), (empty, HEADER_LEN, Some(5)));
        assert!(t.block.is_empty(), "the header fills whole blocks");
        // ...unknown when recovery skipped the segments that hold it.
        assert_eq!(recover_after(&d, 6).unwrap().tail.unwrap().last_zxid, None);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn torn_tail_of_last_segment_is_cut_and_zeroed() {
        // (and reported as torn: see `torn_tail` below)
        let d = tmp("torn");
        let p = write_segment(&d, 1, &[1, 2], 8192);
        let mut b = fs::read(&p).unwrap();
        let off = recover(&d).unwrap().tail.unwrap().pos;
        // A partial record: length and some garbage.
        b[off..off + 4].copy_from_slice(&100u32.to_le_bytes());
        b[off + 4] = 9;
        fs::write(&p, &b).unwrap();
        let r = recover(&d).unwrap();
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.truncated_bytes, 5);
        assert!(r.torn_tail);
        assert!(fs::read(&p).unwrap()[off..].iter().all(|b| *b == 0));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn corruption_in_an_earlier_segment_stops_with_file_and_offset() {
        let d = tmp("corrupt");
        let p = write_segment(&d, 1, &[1, 2], 8192);
        write_segment(&d, 3, &[3], 8192);
        let mut b = fs::read(&p).unwrap();
        b[HEADER_LEN + 17] ^= 1;
        fs::write(&p, &b).unwrap();
        let e = recover(&d).unwrap_err();
        assert!(
            matches!(e, RecoveryError::Record { offset: 4096, .. }),
            "{e}"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_new_epoch_starts_its_counter_at_one() {
        let d = tmp("epochs");
        let e2 = 2i64 << 32;
        write_segment(&d, 1, &[1, 2, e2 | 1, e2 | 2], 8192);
        write_segment(&d, e2 | 3, &[e2 | 3, (5i64 << 32) | 1], 8192);
        assert_eq!(recover(&d).unwrap().records.len(), 6);
        let d2 = tmp("epochs-gap");
        write_segment(&d2, 1, &[1, 2, e2 | 2], 8192);
        assert!(matches!(
            recover(&d2).unwrap_err(),
            RecoveryError::Gap { .. }
        ));
        fs::remove_dir_all(&d).unwrap();
        fs::remove_dir_all(&d2).unwrap();
    }

    #[test]
    fn truncate_after_drops_later_records_and_segments() {
        let d = tmp("trunc");
        write_segment(&d, 1, &[1, 2, 3], 8192);
        write_segment(&d, 4, &[4, 5], 8192);
        write_segment(&d, 6, &[6], 8192);
        assert_eq!(truncate_after(&d, 2).unwrap(), 1);
        let r = recover(&d).unwrap();
        assert_eq!(
            r.records.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(
            r.truncated_bytes, 0,
            "the cut leaves zeros, not a torn tail"
        );
        assert_eq!(segments(&d).unwrap().len(), 1);
        // Nothing after: nothing changes.
        assert_eq!(truncate_after(&d, 2).unwrap(), 0);
        assert_eq!(recover(&d).unwrap().records.len(), 2);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn recover_after_a_snapshot_reads_only_what_it_lacks() {
        let d = tmp("after");
        let old = write_segment(&d, 1, &[1, 2, 3], 8192);
        write_segment(&d, 4, &[4, 5, 6], 8192);
        write_segment(&d, 7, &[7, 8], 8192);
        let zxids = |r: Recovered| r.records.iter().map(|r| r.0).collect::<Vec<_>>();
        assert_eq!(zxids(recover_after(&d, 5).unwrap()), vec![6, 7, 8]);
        assert_eq!(zxids(recover_after(&d, 8).unwrap()), Vec::<i64>::new());
        assert_eq!(zxids(recover_after(&d, 3).unwrap()), vec![4, 5, 6, 7, 8]);
        // A segment the snapshot covers is not read: damage there does not
        // matter to a server starting from the snapshot ...
        let mut b = fs::read(&old).unwrap();
        b[HEADER_LEN + 17] ^= 1;
        fs::write(&old, &b).unwrap();
        assert_eq!(zxids(recover_after(&d, 4).unwrap()), vec![5, 6, 7, 8]);
        // ... but the one holding the snapshot's zxid is still checked.
        assert!(recover_after(&d, 3).is_err());
        // The tail is found as by `recover`.
        let r = recover_after(&d, 8).unwrap();
        assert_eq!(r.tail.unwrap().path, d.join(segment_name(7)));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn zxid_gap_stops_startup() {
        let d = tmp("gap");
        write_segment(&d, 1, &[1, 2, 4], 8192);
        assert!(matches!(
            recover(&d).unwrap_err(),
            RecoveryError::Gap { zxid: 4, .. }
        ));
        fs::remove_dir_all(&d).unwrap();
    }
}
