//! Integration tests with a real ZooKeeper client library nobody here wrote:
//! the Rust `zookeeper-client` crate, against a real corral process.

mod common;

use std::time::Duration;

use common::{client, Server};
use zookeeper_client as zk;

static OPEN: &zk::CreateOptions<'static> =
    &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
static EPHEMERAL: &zk::CreateOptions<'static> =
    &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
static SEQUENTIAL: &zk::CreateOptions<'static> =
    &zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
static CONTAINER: &zk::CreateOptions<'static> =
    &zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());

async fn timeout<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

#[tokio::test(flavor = "multi_thread")]
async fn create_get_set_delete_with_versions_and_stats() {
    let server = Server::start(&[]);
    let c = client(&server).await;
    let (stat, _) = c.create("/a", b"one", OPEN).await.unwrap();
    assert_eq!(stat.version, 0);
    assert_eq!(stat.czxid, stat.mzxid);
    assert_eq!(stat.data_length, 3);
    let (data, s) = c.get_data("/a").await.unwrap();
    assert_eq!(data, b"one");
    assert_eq!(s, stat);

    let s2 = c.set_data("/a", b"two!", Some(0)).await.unwrap();
    assert_eq!(s2.version, 1);
    assert!(s2.mzxid > stat.mzxid);
    assert_eq!(s2.czxid, stat.czxid);
    assert_eq!(s2.data_length, 4);
    assert_eq!(
        c.set_data("/a", b"x", Some(0)).await.unwrap_err(),
        zk::Error::BadVersion
    );

    assert_eq!(
        c.create("/a", b"", OPEN).await.unwrap_err(),
        zk::Error::NodeExists
    );
    assert_eq!(
        c.create("/missing/child", b"", OPEN).await.unwrap_err(),
        zk::Error::NoNode
    );

    let (child, _) = c.create("/a/b", b"", OPEN).await.unwrap();
    let (_, parent) = c.get_data("/a").await.unwrap();
    assert_eq!(parent.num_children, 1);
    assert_eq!(parent.cversion, 1);
    assert_eq!(parent.pzxid, child.czxid);
    assert_eq!(c.delete("/a", None).await.unwrap_err(), zk::Error::NotEmpty);
    assert_eq!(
        c.delete("/a/b", Some(7)).await.unwrap_err(),
        zk::Error::BadVersion
    );
    c.delete("/a/b", Some(0)).await.unwrap();
    c.delete("/a", None).await.unwrap();
    assert_eq!(c.get_data("/a").await.unwrap_err(), zk::Error::NoNode);
    assert_eq!(c.check_stat("/a").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn sequential_suffix_counts_child_creations() {
    let server = Server::start(&[]);
    let c = client(&server).await;
    c.create("/q", b"", OPEN).await.unwrap();
    let (_, seq0) = c.create("/q/n-", b"", SEQUENTIAL).await.unwrap();
    let (_, seq1) = c.create("/q/n-", b"", SEQUENTIAL).await.unwrap();
    assert_eq!(seq0.into_i64(), 0);
    assert_eq!(seq1.into_i64(), 1);
    let mut children = c.list_children("/q").await.unwrap();
    children.sort();
    assert_eq!(children, vec!["n-0000000000", "n-0000000001"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn ephemerals_vanish_with_their_session_and_take_no_children() {
    let server = Server::start(&[]);
    let owner = client(&server).await;
    let observer = client(&server).await;
    let (stat, _) = owner.create("/eph", b"", EPHEMERAL).await.unwrap();
    assert_eq!(stat.ephemeral_owner, owner.session_id().0);
    assert_eq!(
        owner.create("/eph/child", b"", OPEN).await.unwrap_err(),
        zk::Error::NoChildrenForEphemerals
    );
    assert_eq!(owner.list_ephemerals("/").await.unwrap(), vec!["/eph"]);
    let (_, watcher) = observer.check_and_watch_stat("/eph").await.unwrap();
    drop(owner);
    let event = timeout(watcher.changed()).await;
    assert_eq!(event.event_type, zk::EventType::NodeDeleted);
    assert_eq!(observer.check_stat("/eph").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_shot_watches_fire_once_before_the_reply_that_observes_the_change() {
    let server = Server::start(&[]);
    let c = client(&server).await;
    let writer = client(&server).await;
    c.create("/w", b"0", OPEN).await.unwrap();

    let (_, _, data_watch) = c.get_and_watch_data("/w").await.unwrap();
    let (_, child_watch) = c.list_and_watch_children("/w").await.unwrap();
    let (missing, exists_watch) = c.check_and_watch_stat("/w/new").await.unwrap();
    assert!(missing.is_none());

    writer.set_data("/w", b"1", None).await.unwrap();
    // The watching session reads the new value; its event must already be
    // there, since events precede replies that observe the change.
    let (data, _) = c.get_data("/w").await.unwrap();
    assert_eq!(data, b"1");
    let e = timeout(data_watch.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (zk::EventType::NodeDataChanged, "/w")
    );

    writer.create("/w/new", b"", OPEN).await.unwrap();
    let e = timeout(exists_watch.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (zk::EventType::NodeCreated, "/w/new")
    );
    let e = timeout(child_watch.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (zk::EventType::NodeChildrenChanged, "/w")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_recursive_watch_sees_every_change_below() {
    let server = Server::start(&[]);
    let c = client(&server).await;
    c.create("/r", b"", OPEN).await.unwrap();
    let mut watcher = c
        .watch("/r", zk::AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    c.create("/r/a", b"", OPEN).await.unwrap();
    c.create("/r/a/b", b"", OPEN).await.unwrap();
    c.set_data("/r/a/b", b"x", None).await.unwrap();
    c.delete("/r/a/b", None).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..4 {
        let e = timeout(watcher.changed()).await;
        seen.push((e.event_type, e.path));
    }
    assert_eq!(
        seen,
        vec![
            (zk::EventType::NodeCreated, "/r/a".to_string()),
            (zk::EventType::NodeCreated, "/r/a/b".to_string()),
            (zk::EventType::NodeDataChanged, "/r/a/b".to_string()),
            (zk::EventType::NodeDeleted, "/r/a/b".to_string()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_is_all_or_nothing() {
    let server = Server::start(&[]);
    let c = client(&server).await;
    let mut w = c.new_multi_writer();
    w.add_create("/m1", b"a", OPEN).unwrap();
    w.add_create("/m1/x", b"b", OPEN).unwrap();
    w.add_set_data("/m1", b"c", Some(0)).unwrap();
    let results = w.commit().await.unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(c.get_data("/m1").await.unwrap().0, b"c");

    let mut w = c.new_multi_writer();
    w.add_create("/m2", b"", OPEN).unwrap();
    w.add_delete("/m1", None).unwrap(); // NotEmpty
    w.add_create("/m3", b"", OPEN).unwrap();
    match w.commit().await.unwrap_err() {
        zk::MultiWriteError::OperationFailed { index, source } => {
            assert_eq!((index, source), (1, zk::Error::NotEmpty));
        }
        e => panic!("unexpected {e:?}"),
    }
    assert_eq!(c.check_stat("/m2").await.unwrap(), None);
    assert_eq!(c.check_stat("/m3").await.unwrap(), None);

    let mut r = c.new_multi_reader();
    r.add_get_data("/m1").unwrap();
    r.add_get_children("/m1").unwrap();
    r.add_get_data("/nope").unwrap();
    let results = r.commit().await.unwrap();
    assert_eq!(results.len(), 3);
    assert!(matches!(
        results[2],
        zk::MultiReadResult::Error {
            err: zk::Error::NoNode
        }
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn digest_acls_guard_reads_and_writes() {
    let server = Server::start(&[]);
    let owner = zk::Client::connector()
        .with_auth("digest", b"alice:secret")
        .connect(&server.addr())
        .await
        .unwrap();
    let stranger = client(&server).await;
    let acl = [zk::Acl::new(zk::Permission::ALL, zk::AuthId::authed())];
    let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&acl));
    owner.create("/secret", b"x", &opts).await.unwrap();
    assert_eq!(owner.get_data("/secret").await.unwrap().0, b"x");
    assert_eq!(
        stranger.get_data("/secret").await.unwrap_err(),
        zk::Error::NoAuth
    );
    assert_eq!(
        stranger.set_data("/secret", b"y", None).await.unwrap_err(),
        zk::Error::NoAuth
    );
    let (acls, _) = owner.get_acl("/secret").await.unwrap();
    assert_eq!(acls[0].scheme(), "digest");
    assert!(acls[0].id().starts_with("alice:"), "{}", acls[0].id());
    stranger.auth("digest", b"alice:secret").await.unwrap();
    assert_eq!(stranger.get_data("/secret").await.unwrap().0, b"x");
    let users = stranger.list_auth_users().await.unwrap();
    assert!(users
        .iter()
        .any(|u| u.scheme() == "digest" && u.user() == "alice"));
    // An empty ACL list is InvalidACL.
    let bad = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&[]));
    assert!(owner.create("/bad", b"", &bad).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn session_reattaches_from_a_new_connection() {
    let server = Server::start(&[]);
    // Detached: dropping the client closes its connection, not its session,
    // like a process that dies and comes back with its saved session.
    let first = zk::Client::connector()
        .with_detached()
        .with_session_timeout(Duration::from_secs(10))
        .connect(&server.addr())
        .await
        .unwrap();
    first.create("/mine", b"", EPHEMERAL).await.unwrap();
    let session = first.session().clone();
    let id = first.session_id();
    drop(first);
    let second = zk::Client::connector()
        .with_session(session)
        .connect(&server.addr())
        .await
        .unwrap();
    assert_eq!(second.session_id(), id);
    let (_, stat) = second.get_data("/mine").await.unwrap();
    assert_eq!(stat.ephemeral_owner, id.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_sigkill() {
    let mut server = Server::start(&[]);
    let c = client(&server).await;
    c.create("/durable", b"v0", OPEN).await.unwrap();
    for i in 1..=50 {
        c.set_data("/durable", format!("v{i}").as_bytes(), None)
            .await
            .unwrap();
    }
    let (_, before) = c.get_data("/durable").await.unwrap();
    drop(c);
    server.restart();
    let c = client(&server).await;
    let (data, after) = c.get_data("/durable").await.unwrap();
    assert_eq!(data, b"v50");
    assert_eq!(after.version, 50);
    assert_eq!(
        (after.czxid, after.mzxid, after.mtime),
        (before.czxid, before.mzxid, before.mtime)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_are_removed_once_emptied() {
    let server = Server::start(&["--container-check-interval", "100"]);
    let c = client(&server).await;
    c.create("/box", b"", CONTAINER).await.unwrap();
    c.create("/box/item", b"", OPEN).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        c.check_stat("/box").await.unwrap().is_some(),
        "a container with a child stays"
    );
    c.delete("/box/item", None).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.check_stat("/box").await.unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "container not removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ttl_nodes_need_extended_types_and_expire() {
    let plain = Server::start(&[]);
    let c = client(&plain).await;
    let ttl = zk::CreateMode::Persistent
        .with_acls(zk::Acls::anyone_all())
        .with_ttl(Duration::from_millis(200));
    assert_eq!(
        c.create("/t", b"", &ttl).await.unwrap_err(),
        zk::Error::Unimplemented
    );

    let server = Server::start(&["--extended-types", "--container-check-interval", "100"]);
    let c = client(&server).await;
    let (stat, _) = c.create("/t", b"", &ttl).await.unwrap();
    // Matches ZooKeeper: clients see 0 for TTL (and container) nodes.
    assert_eq!(stat.ephemeral_owner, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.check_stat("/t").await.unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "TTL node not removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_children_count_and_session_close() {
    let server = Server::start(&[]);
    let c = client(&server).await;
    c.create("/n", b"", OPEN).await.unwrap();
    for i in 0..5 {
        c.create(&format!("/n/{i}"), b"", OPEN).await.unwrap();
    }
    c.create("/n/0/deep", b"", OPEN).await.unwrap();
    c.sync("/n").await.unwrap();
    assert_eq!(c.count_descendants_number("/n").await.unwrap(), 6);
    let (children, stat) = c.get_children("/n").await.unwrap();
    assert_eq!(children.len(), 5);
    assert_eq!(stat.num_children, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn watches_are_re_registered_after_a_server_restart() {
    // The client re-sends its watches with setWatches/setWatches2 when it
    // reconnects; the restarted server recovers the session from its log.
    let mut server = Server::start(&[]);
    let c = client(&server).await;
    c.create("/rw", b"0", OPEN).await.unwrap();
    let (_, _, data_watch) = c.get_and_watch_data("/rw").await.unwrap();
    let mut recursive = c
        .watch("/rw", zk::AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    server.restart();
    let writer = client(&server).await;
    // Wait until the watching client is back (its session survived).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while c.sync("/").await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "client did not reconnect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    writer.set_data("/rw", b"1", None).await.unwrap();
    let e = timeout(data_watch.changed()).await;
    assert_eq!(
        (e.event_type, e.path.as_str()),
        (zk::EventType::NodeDataChanged, "/rw")
    );
    // The recursive watch may first report the disconnection.
    loop {
        let e = timeout(recursive.changed()).await;
        if e.event_type == zk::EventType::Session {
            continue;
        }
        assert_eq!(
            (e.event_type, e.path.as_str()),
            (zk::EventType::NodeDataChanged, "/rw")
        );
        break;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_acls_with_cidr_and_the_super_digest() {
    let cfg = std::env::temp_dir().join(format!("corral-super-{}.cfg", std::process::id()));
    // super:test, as in ZooKeeper's documentation.
    std::fs::write(&cfg, "superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n").unwrap();
    let server = Server::start(&["--zoo-cfg", cfg.to_str().unwrap()]);
    let c = client(&server).await;
    let local = [zk::Acl::new(
        zk::Permission::ALL,
        zk::AuthId::new("ip", "127.0.0.0/8"),
    )];
    let elsewhere = [zk::Acl::new(
        zk::Permission::ALL,
        zk::AuthId::new("ip", "10.1.0.0/16"),
    )];
    c.create(
        "/local",
        b"l",
        &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&local)),
    )
    .await
    .unwrap();
    c.create(
        "/elsewhere",
        b"e",
        &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&elsewhere)),
    )
    .await
    .unwrap();
    assert_eq!(c.get_data("/local").await.unwrap().0, b"l");
    assert_eq!(
        c.get_data("/elsewhere").await.unwrap_err(),
        zk::Error::NoAuth
    );
    let bad = [zk::Acl::new(
        zk::Permission::ALL,
        zk::AuthId::new("ip", "not-an-address"),
    )];
    assert_eq!(
        c.create(
            "/bad",
            b"",
            &zk::CreateMode::Persistent.with_acls(zk::Acls::new(&bad))
        )
        .await
        .unwrap_err(),
        zk::Error::InvalidAcl
    );
    let root = zk::Client::connector()
        .with_auth("digest", b"super:test")
        .connect(&server.addr())
        .await
        .unwrap();
    assert_eq!(root.get_data("/elsewhere").await.unwrap().0, b"e");
    root.set_data("/elsewhere", b"super was here", None)
        .await
        .unwrap();
    let _ = std::fs::remove_file(&cfg);
}
