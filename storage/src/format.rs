//! Byte layout of log segments. All integers are little-endian.
//!
//! A segment file `log.<first zxid, 16 hex digits>` is preallocated to its
//! full size, so an append is an overwrite of allocated blocks and
//! fdatasync has no metadata to flush. A new segment is zero-filled; a
//! recycled one (a segment purged after a snapshot, renamed and reused
//! instead of zero-filling a new file) still holds its earlier records
//! after the new header. Two rules keep those out of the log:
//! - every write ends with a zero length field after its last record (the
//!   write is extended by a block when the record ends within 4 bytes of a
//!   block boundary), so reading stops there;
//! - a record with a valid checksum whose zxid is below the segment's first
//!   zxid is left over from the file's earlier life (zxids only grow, and a
//!   segment is recycled only once all its records precede the oldest
//!   snapshot kept): it ends the segment like a zero length does. This
//!   covers a torn write that lost the sector holding the zero length.
//!
//! ```text
//! segment header (one 4096-byte block)
//! offset size  field
//! 0      8     magic "CORRALWL"
//! 8      4     version (2; 1 is read too: it never recycled segments)
//! 12     4     crc32c of bytes 0..12 and 16..24
//! 16     8     first zxid the segment may hold
//! 24     4072  zero
//!
//! record (from offset 4096, back to back, no alignment)
//! offset size  field
//! 0      4     payload length n (> 0; 0 marks the end of the log)
//! 4      4     crc32c of bytes 8..16+n
//! 8      8     zxid
//! 16     n     payload (an encoded engine transaction)
//! ```

pub const BLOCK: usize = 4096;
pub const MAGIC: &[u8; 8] = b"CORRALWL";
pub const VERSION: u32 = 2;

/// The bytes of the zero length field that ends the written log (see the
/// module comment): every write carries it after its last record.
pub const END_MARKER_LEN: usize = 4;
pub const HEADER_LEN: usize = BLOCK;
pub const RECORD_HEADER_LEN: usize = 16;
/// A record payload is at most this large (a txn is bounded by jute.maxbuffer
/// plus its header; this leaves room).
pub const RECORD_PAYLOAD_MAX: usize = 128 * 1024 * 1024;

/// Whether `zxid` may directly follow `previous` in a log: the next
/// counter of the same epoch, or the first transaction of a later epoch
/// (a zxid is `epoch << 32 | counter`, and each leader starts its epoch's
/// counter at 1; epochs in which nothing was proposed leave no trace).
pub fn zxid_follows(previous: i64, zxid: i64) -> bool {
    let epoch = |z: i64| (z as u64) >> 32;
    zxid == previous + 1 || (epoch(zxid) > epoch(previous) && zxid as u64 & 0xffff_ffff == 1)
}

pub fn segment_name(first_zxid: i64) -> String {
    format!("log.{:016x}", first_zxid as u64)
}

/// A purged segment kept to be recycled as the next spare (named after
/// the first zxid it held; recovery ignores it).
pub fn recycled_name(first_zxid: i64) -> String {
    format!("log.recycled.{:016x}", first_zxid as u64)
}

pub fn is_recycled_name(name: &str) -> bool {
    name.strip_prefix("log.recycled.")
        .is_some_and(|hex| hex.len() == 16 && u64::from_str_radix(hex, 16).is_ok())
}

pub fn parse_segment_name(name: &str) -> Option<i64> {
    let hex = name.strip_prefix("log.")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|v| v as i64)
}

fn header_crc(b: &[u8]) -> u32 {
    let c = crc32c::crc32c(&b[0..12]);
    crc32c::crc32c_append(c, &b[16..24])
}

pub fn encode_header(first_zxid: i64) -> Vec<u8> {
    let mut b = vec![0u8; HEADER_LEN];
    b[0..8].copy_from_slice(MAGIC);
    b[8..12].copy_from_slice(&VERSION.to_le_bytes());
    b[16..24].copy_from_slice(&first_zxid.to_le_bytes());
    let crc = header_crc(&b);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    b
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("segment shorter than its header")]
    Short,
    #[error("bad magic")]
    Magic,
    #[error("unsupported version {0}")]
    Version(u32),
    #[error("header checksum mismatch")]
    Checksum,
}

pub fn decode_header(b: &[u8]) -> Result<i64, HeaderError> {
    if b.len() < 24 {
        return Err(HeaderError::Short);
    }
    if &b[0..8] != MAGIC {
        return Err(HeaderError::Magic);
    }
    let version = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
    if !(1..=VERSION).contains(&version) {
        return Err(HeaderError::Version(version));
    }
    let crc = u32::from_le_bytes(b[12..16].try_into().expect("4 bytes"));
    if crc != header_crc(b) {
        return Err(HeaderError::Checksum);
    }
    Ok(i64::from_le_bytes(b[16..24].try_into().expect("8 bytes")))
}

pub fn encode_record(out: &mut Vec<u8>, zxid: i64, payload: &[u8]) {
    assert!(!payload.is_empty(), "empty record payload");
    assert!(
        payload.len() <= RECORD_PAYLOAD_MAX,
        "record payload too large"
    );
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&zxid.to_le_bytes()), payload);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&zxid.to_le_bytes());
    out.extend_from_slice(payload);
}

pub fn record_len(payload_len: usize) -> usize {
    RECORD_HEADER_LEN + payload_len
}

/// Result of reading one record at the start of `b`.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordRead<'a> {
    /// A valid record and its total length.
    Record {
        zxid: i64,
        payload: &'a [u8],
        len: usize,
    },
    /// Zero length: the end of the written log.
    End,
    /// A record that is cut off or fails its checksum.
    Invalid(&'static str),
}

pub fn read_record(b: &[u8]) -> RecordRead<'_> {
    if b.len() < 4 {
        return RecordRead::End;
    }
    let n = u32::from_le_bytes(b[0..4].try_into().expect("4 bytes")) as usize;
    if n == 0 {
        return RecordRead::End;
    }
    if n > RECORD_PAYLOAD_MAX {
        return RecordRead::Invalid("length beyond the record limit");
    }
    if b.len() < RECORD_HEADER_LEN + n {
        return RecordRead::Invalid("record runs past the end of the segment");
    }
    let crc = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"));
    let zxid_bytes = &b[8..16];
    let payload = &b[16..16 + n];
    let actual = crc32c::crc32c_append(crc32c::crc32c(zxid_bytes), payload);
    if actual != crc {
        return RecordRead::Invalid("checksum mismatch");
    }
    RecordRead::Record {
        zxid: i64::from_le_bytes(zxid_bytes.try_into().expect("8 bytes")),
        payload,
        len: RECORD_HEADER_LEN + n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_corruption() {
        let h = encode_header(42);
        assert_eq!(decode_header(&h), Ok(42));
        let mut bad = h.clone();
        bad[17] ^= 1;
        assert_eq!(decode_header(&bad), Err(HeaderError::Checksum));
        assert_eq!(decode_header(&h[..10]), Err(HeaderError::Short));
    }

    #[test]
    fn record_round_trip_and_every_corruption_detected() {
        let mut b = Vec::new();
        encode_record(&mut b, 7, b"hello");
        assert_eq!(
            read_record(&b),
            RecordRead::Record {
                zxid: 7,
                payload: b"hello",
                len: b.len()
            }
        );
        for i in 4..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x40;
            assert!(
                matches!(read_record(&c), RecordRead::Invalid(_)),
                "byte {i}"
            );
        }
        for n in 4..b.len() {
            assert!(matches!(read_record(&b[..n]), RecordRead::Invalid(_)));
        }
        assert_eq!(read_record(&[0u8; 32]), RecordRead::End);
    }
}

#[cfg(test)]
mod robustness {
    use super::*;

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..50_000 {
            let n = (next() % 128) as usize;
            let bytes: Vec<u8> = (0..n).map(|_| next() as u8).collect();
            let _ = read_record(&bytes);
            let _ = decode_header(&bytes);
        }
    }
}
