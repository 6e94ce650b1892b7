//! The log on the real disk (`Wal` = `WalOn<GlommioDisk>`): the model test
//! runs the same code on the twin; this checks that the glommio side of
//! the `Disk` trait does what the twin promises, on real files with
//! O_DIRECT, through a roll, a reopen, a SNAP and a TRUNC.

use std::path::Path;

use glommio::LocalExecutorBuilder;
use storage::wal::SEGMENT_BYTES_MIN;
use storage::{recover, Tail, Wal, WalConfig};

fn payload(zxid: i64) -> Vec<u8> {
    // 8 KiB and a bit, so a few hundred records roll a 4 MiB segment.
    (0..8200).map(|i| (zxid as usize * 31 + i) as u8).collect()
}

fn append_all(config: WalConfig, tail: Option<Tail>, zxids: std::ops::Range<i64>) {
    LocalExecutorBuilder::default()
        .spawn(move || async move {
            let mut wal = Wal::open(config, tail, zxids.start).await.unwrap();
            wal.probe_sync_latency().await.unwrap();
            let zxids: Vec<i64> = zxids.collect();
            for batch in zxids.chunks(7) {
                let records: Vec<(i64, Vec<u8>)> =
                    batch.iter().map(|z| (*z, payload(*z))).collect();
                wal.append(&records).await.unwrap();
            }
            assert!(!wal.is_failed());
        })
        .unwrap()
        .join()
        .unwrap();
}

fn check(dir: &Path, zxids: std::ops::RangeInclusive<i64>) -> Option<Tail> {
    let r = recover(dir).unwrap();
    let expected: Vec<i64> = zxids.collect();
    assert_eq!(r.records.iter().map(|r| r.0).collect::<Vec<_>>(), expected);
    for (z, p) in &r.records {
        assert_eq!(p, &payload(*z), "record {z}");
    }
    assert_eq!(r.truncated_bytes, 0);
    r.tail
}

#[test]
fn roll_reopen_snap_and_trunc_on_the_real_disk() {
    let dir = std::env::temp_dir().join(format!("corral-glommio-disk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = WalConfig {
        dir: dir.clone(),
        segment_bytes: SEGMENT_BYTES_MIN,
        force_sync: true,
    };
    // 700 records of 8 KiB: at least one roll of a 4 MiB segment.
    append_all(config.clone(), None, 1..701);
    let tail = check(&dir, 1..=700);
    assert!(storage::recovery::segments(&dir).unwrap().len() >= 2);
    // Reopen at the tail recovery found and go on.
    append_all(config.clone(), tail, 701..751);
    check(&dir, 1..=750);
    // An empty last segment (a roll just before a crash) after segments
    // recovery skipped: the writer reads back for the last zxid and goes
    // on in it.
    let empty = dir.join(storage::format::segment_name(751));
    let mut image = storage::format::encode_header(751);
    image.resize(SEGMENT_BYTES_MIN, 0);
    std::fs::write(&empty, &image).unwrap();
    let skipped = Tail {
        path: empty.clone(),
        pos: storage::format::HEADER_LEN,
        last_zxid: None,
        block: Vec::new(),
    };
    append_all(config.clone(), Some(skipped), 751..801);
    let tail = check(&dir, 1..=800);
    assert_eq!(tail.as_ref().map(|t| &t.path), Some(&empty));
    // TRUNC back to 650: later segments go, the cut one is zeroed.
    storage::recovery::truncate_after(&dir, 650).unwrap();
    let tail = {
        let _ = tail;
        check(&dir, 1..=650)
    };
    append_all(config.clone(), tail, 651..661);
    let tail = check(&dir, 1..=660);
    // A snapshot newer than the whole log (an interrupted SNAP): the log
    // starts over at the next zxid.
    append_all(config.clone(), tail, 1001..1011);
    check(&dir, 1001..=1010);
    assert_eq!(storage::recovery::segments(&dir).unwrap().len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
