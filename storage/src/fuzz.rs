//! The bodies of the cargo-fuzz targets in `storage/fuzz/`, kept here so
//! that plain `cargo test` runs them too (`tests/fuzz_bodies.rs`, on seeded
//! random and mutated inputs) and a toolchain without cargo-fuzz still
//! exercises them. Each panics only on a broken promise; arbitrary bytes
//! must give errors, never panics.

use std::path::Path;

use futures_lite::future::block_on;

use crate::disk::{Disk, FaultyDisk};
use crate::format::{self, zxid_follows};
use crate::model::{self, FromBytes};
use crate::recovery::{parse_segment, recover_on, truncate_after_on};
use crate::snapshot;
use crate::wal::{WalConfig, WalOn};

/// The model test (`model::run`) driven by the input: its first 8 bytes
/// seed the disk's own choices (torn sectors), the rest choose the steps.
pub fn wal_model(data: &[u8]) {
    let mut seed = [0u8; 8];
    let n = data.len().min(8);
    seed[..n].copy_from_slice(&data[..n]);
    let mut choices = FromBytes::new(&data[n..]);
    if let Err(e) = model::run(u64::from_le_bytes(seed), &mut choices, 5_000) {
        panic!("WAL model: {e}");
    }
}

/// Arbitrary bytes as a segment header, a record, a segment image, and a
/// log directory to recover, continue and recover again.
///
/// The first byte picks a shape, so the fuzzer gets past checksums it
/// cannot guess: bit 0 puts a valid header in front of the rest, bit 1
/// splits the rest into two segments (corruption in a segment that is not
/// the last), bit 2 also appends the rest as checksummed records.
pub fn segment(data: &[u8]) {
    let _ = format::decode_header(data);
    let _ = format::read_record(data);
    let _ = parse_segment(data, None);
    let _ = parse_segment(data, Some(1));
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let dir = Path::new("/log");
    let disk = FaultyDisk::new(u64::from(shape)).with_segment_bytes_min(16 * 1024);
    let image = |first: i64, body: &[u8]| {
        let mut b = if shape & 1 == 1 {
            format::encode_header(first)
        } else {
            Vec::new()
        };
        if shape & 4 == 4 {
            // The same bytes as valid records first, then as they are.
            for (i, chunk) in body.chunks(64).enumerate() {
                format::encode_record(&mut b, first + i as i64, chunk);
            }
        }
        b.extend_from_slice(body);
        b
    };
    if shape & 2 == 2 && rest.len() >= 2 {
        let (a, b) = rest.split_at(rest.len() / 2);
        let second = if shape & 4 == 4 {
            1 + a.chunks(64).count() as i64
        } else {
            1000
        };
        disk.put(&dir.join(format::segment_name(1)), &image(1, a));
        disk.put(&dir.join(format::segment_name(second)), &image(second, b));
    } else {
        disk.put(&dir.join(format::segment_name(1)), &image(1, rest));
    }
    let _ = crate::recovery::segments_on(&disk, dir);
    let Ok(recovered) = recover_on(&disk, dir) else {
        let _ = truncate_after_on(&disk, dir, 3);
        return;
    };
    // Recovery's promise: gap-free records, and a tail to continue at.
    for w in recovered.records.windows(2) {
        assert!(zxid_follows(w[0].0, w[1].0), "recovered a gap");
    }
    let last = recovered.records.last().map_or(0, |r| r.0);
    let config = WalConfig {
        dir: dir.to_path_buf(),
        segment_bytes: 16 * 1024,
        force_sync: true,
    };
    let mut wal = match block_on(WalOn::open_on(
        disk.clone(),
        config,
        recovered.tail.clone(),
        last + 1,
    )) {
        Ok(w) => w,
        Err(e) => panic!("open after a successful recovery failed: {e}"),
    };
    if let Err(e) = block_on(wal.append(&[(last + 1, b"next".as_slice())])) {
        panic!("append after a successful recovery failed: {e}");
    }
    drop(wal);
    disk.crash();
    let again = match recover_on(&disk, dir) {
        Ok(r) => r,
        Err(e) => panic!("the continued log does not recover: {e}"),
    };
    let mut expected = recovered.records;
    expected.push((last + 1, b"next".to_vec()));
    assert!(again.records == expected, "the continued log differs");
    let _ = truncate_after_on(&disk, dir, last);
    assert!(disk.list(dir).is_ok());
}

/// Arbitrary bytes as a snapshot file: validated, and deserialized when
/// valid. Bit 0 of the first byte wraps the rest in a correct header
/// (length and checksum), so the fuzzer reaches rkyv's archive check.
pub fn snapshot(data: &[u8]) {
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let mut file = rkyv::util::AlignedVec::<16>::new();
    if shape & 1 == 1 {
        let mut header = [0u8; snapshot::HEADER_LEN];
        header[0..8].copy_from_slice(snapshot::MAGIC);
        header[8..12].copy_from_slice(&snapshot::VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&crc32c::crc32c(rest).to_le_bytes());
        header[24..32].copy_from_slice(&(rest.len() as u64).to_le_bytes());
        file.extend_from_slice(&header);
    }
    file.extend_from_slice(rest);
    if let Ok(archived) = snapshot::validate(&file) {
        let _ = rkyv::deserialize::<snapshot::Snapshot, rkyv::rancor::Error>(archived);
    }
}

/// A small valid snapshot (one znode, one ACL, one session) at `zxid`: the
/// shape the fuzz bodies mutate and the snapshot tests write.
pub fn sample_snapshot(zxid: i64) -> snapshot::Snapshot {
    use snapshot::{Snapshot, SnapshotAcl, SnapshotNode, SnapshotSession};
    Snapshot {
        zxid,
        acls: vec![vec![SnapshotAcl {
            perms: 31,
            scheme: "world".into(),
            id: "anyone".into(),
        }]],
        nodes: vec![SnapshotNode {
            path: "/a".into(),
            data: Some(b"x".to_vec()),
            acl: 0,
            czxid: 1,
            mzxid: 2,
            pzxid: 1,
            ctime: 3,
            mtime: 4,
            version: 1,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
        }],
        sessions: vec![SnapshotSession {
            id: 7,
            timeout_ms: 4000,
        }],
    }
}
