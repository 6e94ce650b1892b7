//! Snapshots: taken in the background every snapCount-ish transactions,
//! loaded at restart with the log after them replayed, and a corrupt newest
//! snapshot falls back to the previous one plus the log.

mod common;

use std::time::{Duration, Instant};

use common::{client, Server};
use zookeeper_client as zk;

static OPEN: &zk::CreateOptions<'static> =
    &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());

fn snapshots(server: &Server) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(server.data_dir.join("snap"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().unwrap().to_str().unwrap();
                    storage::snapshot::parse_file_name(name).is_some()
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_from_snapshot_plus_log_and_fall_back_past_a_corrupt_one() {
    let mut server = Server::start(&["--snap-count", "40"]);
    let c = client(&server).await;
    c.create("/s", b"", OPEN).await.unwrap();
    let ephemeral_owner = zk::Client::connector()
        .with_detached()
        .with_session_timeout(Duration::from_secs(30))
        .connect(&server.addr())
        .await
        .unwrap();
    ephemeral_owner
        .create(
            "/s/eph",
            b"e",
            &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .unwrap();
    for i in 0..300 {
        c.create(&format!("/s/n{i:03}"), format!("v{i}").as_bytes(), OPEN)
            .await
            .unwrap();
    }
    c.set_data("/s/n007", b"changed", None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while snapshots(&server).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no snapshots written: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(c);
    drop(ephemeral_owner);

    // Restart: newest snapshot + the log after it.
    server.restart();
    let c = client(&server).await;
    assert_eq!(c.get_children("/s").await.unwrap().0.len(), 301);
    assert_eq!(c.get_data("/s/n007").await.unwrap().0, b"changed");
    assert_eq!(c.get_data("/s/n299").await.unwrap().0, b"v299");
    assert!(
        c.check_stat("/s/eph").await.unwrap().is_some(),
        "the session and its ephemeral survive"
    );
    assert!(server.log().contains("loaded snapshot"), "{}", server.log());
    drop(c);

    // Corrupt the newest snapshot: the previous one plus the log must do.
    server.kill();
    let newest = snapshots(&server).pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&newest, &bytes).unwrap();
    server.restart();
    let c = client(&server).await;
    assert_eq!(c.get_children("/s").await.unwrap().0.len(), 301);
    assert_eq!(c.get_data("/s/n007").await.unwrap().0, b"changed");
    assert!(
        server.log().contains("trying an older snapshot"),
        "{}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn log_dump_and_snapshot_inspect_show_what_was_written() {
    let mut server = Server::start(&["--snap-count", "20"]);
    let c = client(&server).await;
    for i in 0..40 {
        c.create(&format!("/tool{i}"), b"x", OPEN).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while snapshots(&server).is_empty() {
        assert!(Instant::now() < deadline, "no snapshot");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(c);
    server.kill();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_corral"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let dir = server.data_dir.to_str().unwrap().to_string();
    let dump = run(&["log", "dump", &dir, "--json"]);
    let creates = dump
        .lines()
        .filter(|l| l.contains("\"type\":\"create\"") && l.contains("/tool39"))
        .count();
    assert_eq!(creates, 1, "{dump}");
    let human = run(&["log", "dump", &dir]);
    assert!(human.contains("createSession"));
    let snap = snapshots(&server).pop().unwrap();
    let inspect = run(&["snapshot", "inspect", snap.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(inspect.trim()).unwrap();
    // The first snapshot is cut after a random 10-19 transactions (half
    // of snapCount and up, as ZooKeeper): createSession and at least 9 of
    // the creates, besides the 4 nodes every tree has. Whether a second
    // one exists by the kill depends on the machine's speed.
    assert!(v["summary"]["znodes"].as_u64().unwrap() >= 13, "{inspect}");
    assert!(run(&["snapshot", "inspect", snap.to_str().unwrap()]).contains("/tool0"));
}

/// Inodes of the log directory's files whose names satisfy `keep`.
fn log_inodes(server: &Server, keep: impl Fn(&str) -> bool) -> Vec<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(server.data_dir.join("log"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_str().is_some_and(&keep))
                .filter_map(|e| e.metadata().ok().map(|m| m.ino()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn purged_log_segments_are_recycled_and_a_kill_loses_nothing() {
    // 4 MiB segments (the tests' preAllocSize) of 16 KiB writes, and a
    // snapshot every 50-100 of them: segments are purged, and recycled.
    let mut server = Server::start(&["--snap-count", "100"]);
    let c = client(&server).await;
    const KEYS: usize = 10;
    for k in 0..KEYS {
        c.create(&format!("/r{k}"), b"", OPEN).await.unwrap();
    }
    let value = |i: usize| {
        let mut v = format!("{i:08}").into_bytes();
        v.resize(16 * 1024, b'.');
        v
    };
    let mut pooled = std::collections::HashSet::new();
    let mut recycled_at = None;
    let mut i = 0;
    // Until a segment in use is a file the purge had put aside, then as
    // many writes again.
    while recycled_at.is_none_or(|at| i < 2 * at) {
        c.set_data(&format!("/r{}", i % KEYS), &value(i), None)
            .await
            .unwrap();
        i += 1;
        if recycled_at.is_none() && i % 16 == 0 {
            pooled.extend(log_inodes(&server, |n| n.starts_with("log.recycled.")));
            // Segments in use: log.<16 hex digits>.
            let in_use = log_inodes(&server, |n| n.starts_with("log.") && n.len() == 20);
            if in_use.iter().any(|ino| pooled.contains(ino)) {
                recycled_at = Some(i);
            }
        }
        assert!(
            i < 20_000,
            "no purged segment was recycled after {i} writes: {}",
            server.log()
        );
    }
    drop(c);
    server.kill();
    server.restart();
    let c = client(&server).await;
    for k in 0..KEYS {
        let last = (0..i).rev().find(|n| n % KEYS == k).unwrap();
        let (data, stat) = c.get_data(&format!("/r{k}")).await.unwrap();
        assert_eq!(&data[..8], format!("{last:08}").as_bytes(), "/r{k}");
        assert_eq!(data, value(last));
        assert_eq!(stat.version as usize, (i - 1 - k) / KEYS + 1, "/r{k}");
    }
}
