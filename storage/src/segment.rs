//! The write position in a segment, shared by the real writer (`wal`) and
//! the fault-injecting model test, so the test exercises the code that runs.
//!
//! O_DIRECT writes must start and end on block boundaries. The cursor keeps
//! the bytes of the partial last block; each append rewrites that block with
//! the new records after it and zero padding to the next boundary, always
//! including a zero length field after the last record (a recycled segment
//! holds old bytes there, not zeros). The
//! rewritten prefix is identical to what is on disk, so a torn write (each
//! 512-byte sector old or new) cannot damage records that were synced.

use crate::format::{BLOCK, END_MARKER_LEN};

#[derive(Clone, Debug, Default)]
pub struct SegmentCursor {
    pos: usize,
    tail: Vec<u8>,
}

impl SegmentCursor {
    /// At `pos`, with `tail` the bytes of the block containing `pos` up to
    /// `pos`.
    pub fn new(pos: usize, tail: Vec<u8>) -> SegmentCursor {
        assert_eq!(tail.len(), pos % BLOCK, "tail is the partial last block");
        SegmentCursor { pos, tail }
    }

    /// First free byte of the segment.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The aligned write that appends `bytes` and the zero length field
    /// after them: its offset and its length.
    pub fn write_for(&self, bytes: &[u8]) -> (usize, usize) {
        let offset = self.pos / BLOCK * BLOCK;
        let len = (self.tail.len() + bytes.len() + END_MARKER_LEN).div_ceil(BLOCK) * BLOCK;
        (offset, len)
    }

    /// Fills the write buffer (`out.len()` from `write_for`).
    pub fn fill(&self, bytes: &[u8], out: &mut [u8]) {
        let t = self.tail.len();
        out[..t].copy_from_slice(&self.tail);
        out[t..t + bytes.len()].copy_from_slice(bytes);
        out[t + bytes.len()..].fill(0);
    }

    /// Moves past `bytes` once they are written.
    pub fn advance(&mut self, bytes: &[u8]) {
        let block_start = self.pos / BLOCK * BLOCK;
        let new_pos = self.pos + bytes.len();
        let new_block = new_pos / BLOCK * BLOCK;
        let from = new_block - block_start;
        let t = self.tail.len();
        let mut tail = Vec::with_capacity(BLOCK);
        if from < t {
            tail.extend_from_slice(&self.tail[from..]);
            tail.extend_from_slice(bytes);
        } else {
            tail.extend_from_slice(&bytes[from - t..]);
        }
        tail.truncate(new_pos - new_block);
        self.tail = tail;
        self.pos = new_pos;
    }
}

/// A disk image with the failure modes of a real one: writes land in a
/// volatile cache and only `sync` makes them durable; a crash loses or
/// tears (per 512-byte sector) whatever was not synced; an operation can be
/// made to fail.
#[cfg(test)]
pub mod sim {
    pub const SECTOR: usize = 512;

    pub struct SimDisk {
        pub durable: Vec<u8>,
        pub volatile: Vec<u8>,
        unsynced: Vec<(usize, Vec<u8>)>,
        /// Fail every operation after this many (None: never).
        pub fail_after: Option<u64>,
        ops: u64,
    }

    impl SimDisk {
        pub fn new(image: Vec<u8>) -> SimDisk {
            SimDisk {
                durable: image.clone(),
                volatile: image,
                unsynced: Vec::new(),
                fail_after: None,
                ops: 0,
            }
        }

        fn tick(&mut self) -> std::io::Result<()> {
            self.ops += 1;
            match self.fail_after {
                Some(n) if self.ops > n => Err(std::io::Error::other("injected I/O error")),
                _ => Ok(()),
            }
        }

        pub fn write_at(&mut self, offset: usize, bytes: &[u8]) -> std::io::Result<()> {
            self.tick()?;
            self.volatile[offset..offset + bytes.len()].copy_from_slice(bytes);
            self.unsynced.push((offset, bytes.to_vec()));
            Ok(())
        }

        pub fn sync(&mut self) -> std::io::Result<()> {
            self.tick()?;
            self.durable = self.volatile.clone();
            self.unsynced.clear();
            Ok(())
        }

        /// Power loss: each unsynced sector independently made it or not.
        pub fn crash(&mut self, mut coin: impl FnMut() -> bool) {
            for (offset, bytes) in std::mem::take(&mut self.unsynced) {
                for (i, sector) in bytes.chunks(SECTOR).enumerate() {
                    if coin() {
                        let at = offset + i * SECTOR;
                        self.durable[at..at + sector.len()].copy_from_slice(sector);
                    }
                }
            }
            self.volatile = self.durable.clone();
            self.ops = 0;
            self.fail_after = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sim::SimDisk;
    use super::*;
    use crate::format::{encode_header, encode_record, HEADER_LEN};
    use crate::recovery::{parse_segment, Stop};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// The model test: random appends, syncs, injected I/O errors and power
    /// losses against a plain oracle. After every crash, recovery must give
    /// back every synced record, in order, then possibly some unsynced ones
    /// (in order, intact), and nothing else.
    #[test]
    fn no_synced_record_is_ever_lost() {
        for seed in 1..=200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let size = 64 * 1024;
            let mut image = encode_header(1);
            image.resize(size, 0);
            let mut disk = SimDisk::new(image);
            let mut cursor = SegmentCursor::new(HEADER_LEN, Vec::new());
            // Oracle: payloads by zxid; how many are synced.
            let mut written: Vec<Vec<u8>> = Vec::new();
            let mut synced = 0usize;
            let mut failed = false;
            for _ in 0..300 {
                match rng.below(10) {
                    0..=5 if !failed => {
                        let mut bytes = Vec::new();
                        let mut batch = Vec::new();
                        for _ in 0..1 + rng.below(4) {
                            let zxid = (written.len() + batch.len() + 1) as i64;
                            let len = 1 + rng.below(700) as usize;
                            let payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                            encode_record(&mut bytes, zxid, &payload);
                            batch.push(payload);
                        }
                        let (offset, len) = cursor.write_for(&bytes);
                        if offset + len > size {
                            continue; // segment full; rolling is tested elsewhere
                        }
                        let mut buf = vec![0u8; len];
                        cursor.fill(&bytes, &mut buf);
                        if rng.below(20) == 0 {
                            disk.fail_after = Some(0);
                        }
                        match disk.write_at(offset, &buf) {
                            Ok(()) => {
                                cursor.advance(&bytes);
                                written.extend(batch);
                            }
                            // Fail-stop: after an error nothing more is written.
                            Err(_) => failed = true,
                        }
                    }
                    6..=8 if !failed => {
                        if rng.below(20) == 0 {
                            disk.fail_after = Some(0);
                        }
                        match disk.sync() {
                            Ok(()) => synced = written.len(),
                            Err(_) => failed = true,
                        }
                    }
                    _ => {
                        disk.crash(|| rng.next().is_multiple_of(2));
                        let parsed = parse_segment(&disk.durable, None);
                        assert!(
                            !matches!(parsed.stop, Stop::Gap { .. }),
                            "seed {seed}: gap {:?}",
                            parsed.stop
                        );
                        let got = &parsed.records;
                        assert!(
                            got.len() >= synced,
                            "seed {seed}: lost synced records: {} < {synced}",
                            got.len()
                        );
                        for (i, (zxid, payload)) in got.iter().enumerate() {
                            assert_eq!(*zxid, i as i64 + 1, "seed {seed}");
                            assert_eq!(payload, &written[i], "seed {seed}: record {zxid} differs");
                        }
                        // Restart as recovery does: cut at the last good
                        // record, zero the rest, continue after it.
                        let end = parsed.end;
                        disk.durable[end..].fill(0);
                        disk.volatile = disk.durable.clone();
                        written.truncate(got.len());
                        synced = written.len();
                        let tail = disk.durable
                            [end / crate::format::BLOCK * crate::format::BLOCK..end]
                            .to_vec();
                        cursor = SegmentCursor::new(end, tail);
                        failed = false;
                    }
                }
            }
        }
    }
}
