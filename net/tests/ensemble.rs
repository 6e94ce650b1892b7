//! A corral ensemble of three real processes on 127.0.0.1, driven by a real
//! ZooKeeper client library (the Rust `zookeeper-client` crate) and raw
//! sessions: replication, leader failure (SIGKILL), a leader frozen longer
//! than the session timeout (SIGSTOP), a minority that stops serving, a
//! lagging follower synced by snapshot, and sessions owned by the leader.
//! Partitions and the linearizability check run in the Python suite
//! (net/tests/kazoo/ensemble).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::ensemble::Ensemble;
use zookeeper_client as zk;

static OPEN: &zk::CreateOptions<'static> =
    &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
static EPHEMERAL: &zk::CreateOptions<'static> =
    &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());

async fn connect(addr: &str) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
}

/// Blocking harness calls (sleeps, waits on processes) off the runtime's
/// async path.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Retries an operation through connection loss while the ensemble elects
/// a leader. A retried create that had been applied answers NodeExists.
async fn create_retrying(c: &zk::Client, path: &str, data: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match c.create(path, data, OPEN).await {
            Ok(_) => return,
            Err(zk::Error::NodeExists) if attempts > 1 => return,
            Err(zk::Error::ConnectionLoss | zk::Error::Timeout) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("create {path}: {e}"),
        }
    }
}

/// Every znode under / except /zookeeper with its data and Stat, read
/// through `c` after a sync.
async fn dump(c: &zk::Client) -> BTreeMap<String, (Vec<u8>, zk::Stat)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match try_dump(c).await {
            Ok(d) => return d,
            Err(zk::Error::ConnectionLoss | zk::Error::Timeout) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("dump: {e}"),
        }
    }
}

async fn try_dump(c: &zk::Client) -> Result<BTreeMap<String, (Vec<u8>, zk::Stat)>, zk::Error> {
    c.sync("/").await?;
    let mut out = BTreeMap::new();
    let mut todo = vec!["/".to_string()];
    while let Some(p) = todo.pop() {
        for child in c.list_children(&p).await? {
            let path = if p == "/" {
                format!("/{child}")
            } else {
                format!("{p}/{child}")
            };
            if path == "/zookeeper" {
                continue;
            }
            let (data, stat) = c.get_data(&path).await?;
            out.insert(path.clone(), (data, stat));
            todo.push(path);
        }
    }
    Ok(out)
}

/// Waits until `m` says it does not serve (as ZooKeeper's `srvr` words it).
async fn wait_not_serving(m: &common::ensemble::Member, who: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let srvr = m.four_letter_word("srvr").unwrap_or_default();
        if srvr.contains("not currently serving") {
            return;
        }
        assert!(Instant::now() < deadline, "{who} still serves: {srvr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client that does not allow read-only sessions gets none from `addr`.
async fn assert_refuses_sessions(addr: &str, who: &str) {
    let attempt = tokio::time::timeout(
        Duration::from_secs(3),
        zk::Client::connector()
            .with_session_timeout(Duration::from_secs(5))
            .connect(addr),
    )
    .await;
    assert!(!matches!(attempt, Ok(Ok(_))), "{who} gave a session");
}

/// Every server's tree, each read through its own server, is the same.
async fn assert_converged(e: &Ensemble, expect_at_least: usize) {
    let mut dumps = Vec::new();
    for m in &e.members {
        let c = connect(&m.addr()).await;
        dumps.push((m.id, dump(&c).await));
    }
    let (first_id, first) = &dumps[0];
    assert!(
        first.len() >= expect_at_least,
        "server {first_id} has {} znodes, expected at least {expect_at_least}",
        first.len()
    );
    for (id, d) in &dumps[1..] {
        assert_eq!(d, first, "server {id} differs from server {first_id}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_replicate_survive_a_killed_leader_and_reach_a_restarted_server() {
    // Two cores per server: sessions on core 1 go through core 0's peer.
    let mut e = blocking(|| Ensemble::start(3, "", &["--cores", "2"]));
    let clients = [
        connect(&e.members[0].addr()).await,
        connect(&e.members[1].addr()).await,
        connect(&e.members[2].addr()).await,
    ];
    for (i, c) in clients.iter().enumerate() {
        c.create(&format!("/n{i}"), format!("from {i}").as_bytes(), OPEN)
            .await
            .unwrap();
    }
    // Read-your-writes across servers: after a sync, every server has
    // every write, with the same Stat.
    for c in &clients {
        c.sync("/").await.unwrap();
        for i in 0..3 {
            let (data, _) = c.get_data(&format!("/n{i}")).await.unwrap();
            assert_eq!(data, format!("from {i}").as_bytes());
        }
    }
    assert_converged(&e, 3).await;

    let leader = blocking(|| e.wait_leader());
    // The admin server names the leader on every member, and the voters.
    for (i, m) in e.members.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(&m.admin_command("leader")).unwrap();
        assert_eq!(v["leader_id"], e.members[leader].id, "server {}: {v}", m.id);
        assert_eq!(v["is_leader"], i == leader, "server {}: {v}", m.id);
        let view: serde_json::Value =
            serde_json::from_str(&m.admin_command("voting_view")).unwrap();
        assert_eq!(
            view["current_config"].as_object().unwrap().len(),
            3,
            "{view}"
        );
    }
    // Only the leader reports its learners, as ZooKeeper's mntr.
    let mntr = e.members[leader].four_letter_word("mntr").unwrap();
    assert!(mntr.contains("zk_synced_followers\t2\n"), "{mntr}");
    assert!(mntr.contains("zk_learners\t2\n"), "{mntr}");
    let follower_mntr = e.members[(leader + 1) % 3]
        .four_letter_word("mntr")
        .unwrap();
    assert!(!follower_mntr.contains("zk_learners"), "{follower_mntr}");
    // The same gauges on the leader's /metrics page, and only there.
    let metrics = e.members[leader].admin_get("/metrics");
    assert!(metrics.contains("\nsynced_followers 2\n"), "{metrics}");
    assert!(metrics.contains("\nlearners 2\n"), "{metrics}");
    // Proposals and commits moved with the writes above, on both sides.
    assert!(metric(&metrics, "proposal_count") >= 1.0, "{metrics}");
    assert!(metric(&metrics, "commit_count") >= 1.0, "{metrics}");
    let follower_metrics = e.members[(leader + 1) % 3].admin_get("/metrics");
    assert!(metric(&follower_metrics, "learner_proposal_received_count") >= 1.0);
    assert!(metric(&follower_metrics, "learner_commit_received_count") >= 1.0);
    assert_eq!(metric(&follower_metrics, "proposal_count"), 0.0);
    assert!(
        !follower_metrics.contains("\nlearners "),
        "{follower_metrics}"
    );
    let survivor = (leader + 1) % 3;
    // A session with an ephemeral, on a server that survives: the session
    // must live through the election.
    let owner = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .connect(&e.members[survivor].addr())
        .await
        .unwrap();
    owner.create("/owned", b"", EPHEMERAL).await.unwrap();
    // Every server timed the election that formed the ensemble.
    let elections_before: Vec<u64> = (0..3)
        .map(|i| mntr_number(&e.members[i], "zk_cnt_election_time"))
        .collect();
    for (i, n) in elections_before.iter().enumerate() {
        assert!(*n >= 1, "server {}: {n} elections timed", e.members[i].id);
    }

    blocking(|| e.kill(leader));
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    blocking(|| e.wait_serving(&others));
    let new_leader = blocking(|| e.wait_leader());
    assert_ne!(new_leader, leader);
    // The failover is one more election on the new leader (ZooKeeper's
    // election_time summary, in mntr and the admin server's monitor).
    let m = &e.members[new_leader];
    let count = mntr_number(m, "zk_cnt_election_time");
    assert!(
        count > elections_before[new_leader],
        "{count} elections timed"
    );
    let (min, max, sum) = (
        mntr_number(m, "zk_min_election_time"),
        mntr_number(m, "zk_max_election_time"),
        mntr_number(m, "zk_sum_election_time"),
    );
    assert!(min <= max && max <= sum, "min {min} max {max} sum {sum}");
    let monitor: serde_json::Value = serde_json::from_str(&m.admin_command("monitor")).unwrap();
    assert!(
        monitor["cnt_election_time"].as_u64() >= Some(count),
        "{monitor}"
    );
    let c = connect(&e.members[survivor].addr()).await;
    for i in 0..50 {
        create_retrying(&c, &format!("/after-{i}"), b"x").await;
    }
    // The owner's session re-attached after the election: its ephemeral
    // is still there, and the session still works.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match owner.check_stat("/owned").await {
            Ok(Some(_)) => break,
            Ok(None) => panic!("the ephemeral of a live session vanished in the failover"),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(err) => panic!("the session did not survive the failover: {err}"),
        }
    }

    blocking(|| {
        e.restart(leader);
        e.wait_serving(&[0, 1, 2]);
    });
    assert_converged(&e, 3 + 1 + 50).await;
    let log = e.members[leader].log();
    assert!(
        log.contains("\"follower\""),
        "the old leader rejoins as a follower"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_minority_stops_serving_and_resumes_with_its_data() {
    let mut e = blocking(|| Ensemble::start(3, "", &["--cores", "1"]));
    let c = connect(&e.connect_string()).await;
    for i in 0..20 {
        c.create(&format!("/k{i}"), b"v", OPEN).await.unwrap();
    }
    let leader = blocking(|| e.wait_leader());
    let alone = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    blocking(|| {
        e.kill(leader);
        e.kill(other);
    });
    // Alone, a server must not serve: no leader can be backed by a quorum.
    wait_not_serving(&e.members[alone], "a lone server").await;
    assert_refuses_sessions(&e.members[alone].addr(), "a server without a quorum").await;
    blocking(|| {
        e.restart(other);
        e.wait_serving(&[alone, other]);
    });
    let c = connect(&e.members[alone].addr()).await;
    let d = dump(&c).await;
    assert_eq!(
        d.len(),
        20,
        "every acknowledged write survived: {:?}",
        d.keys()
    );
    blocking(|| {
        e.restart(leader);
        e.wait_serving(&[0, 1, 2]);
    });
    assert_converged(&e, 20).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_far_behind_is_synced_by_snapshot_and_restarts_from_it() {
    // The leader keeps 20 transactions to DIFF from; further behind is SNAP.
    let mut e = blocking(|| Ensemble::start(3, "commitLogCount=20", &["--cores", "1"]));
    let leader = blocking(|| e.wait_leader());
    let lagging = (leader + 1) % 3;
    let writer = (leader + 2) % 3;
    blocking(|| e.kill(lagging));
    let c = connect(&e.members[writer].addr()).await;
    for i in 0..200 {
        c.create(&format!("/s{i}"), format!("{i}").as_bytes(), OPEN)
            .await
            .unwrap();
    }
    blocking(|| {
        e.restart(lagging);
        e.wait_serving(&[0, 1, 2]);
    });
    assert_converged(&e, 200).await;
    assert!(
        e.members[lagging]
            .log()
            .contains("installed the leader's snapshot"),
        "a follower 200 transactions behind a 20-transaction history gets a SNAP"
    );
    // The installed snapshot and the log after it are what it restarts from.
    for i in 200..230 {
        c.create(&format!("/s{i}"), b"", OPEN).await.unwrap();
    }
    blocking(|| {
        e.restart(lagging);
        e.wait_serving(&[0, 1, 2]);
    });
    assert_converged(&e, 230).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_leader_is_replaced_and_rejoins_without_serving_stale_data() {
    let mut e = blocking(|| Ensemble::start(3, "", &["--cores", "1"]));
    let leader = blocking(|| e.wait_leader());
    let c = connect(&e.connect_string()).await;
    c.create("/before", b"1", OPEN).await.unwrap();
    // Frozen for longer than syncLimit (1 s) and than the session timeout
    // of the client below: a long GC pause.
    blocking(|| e.pause(leader));
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    blocking(|| e.wait_serving(&others));
    let writer = connect(&e.members[others[0]].addr()).await;
    create_retrying(&writer, "/during", b"2").await;
    writer.set_data("/before", b"changed", None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    blocking(|| e.resume(leader));
    // Whatever the resumed server answers after a sync reflects every
    // write completed before the sync: it never serves its frozen state.
    let resumed = connect(&e.members[leader].addr()).await;
    let d = dump(&resumed).await;
    assert_eq!(d["/before"].0, b"changed");
    assert!(d.contains_key("/during"));
    blocking(|| e.wait_serving(&[0, 1, 2]));
    assert_ne!(
        e.members[leader].mode().as_deref(),
        Some("leader"),
        "an epoch moved on while it was frozen; it cannot lead it"
    );
    assert_converged(&e, 2).await;
}

/// A session created through a follower with a raw connection, with an
/// ephemeral; the client vanishes without closing. The leader expires the
/// session and the ephemeral disappears on every server, with a watch
/// event on another server.
#[tokio::test(flavor = "multi_thread")]
async fn the_leader_expires_a_vanished_session_everywhere() {
    let e = blocking(|| Ensemble::start(3, "", &["--cores", "1"]));
    let leader = blocking(|| e.wait_leader());
    let follower = (leader + 1) % 3;
    let watcher_server = (leader + 2) % 3;
    let mut s = TcpStream::connect(("127.0.0.1", e.members[follower].client_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&common::raw::connect_request(0, 1000, 0, &[0u8; 16]))
        .unwrap();
    let reply = common::raw::read_frame(&mut s);
    let session = i64::from_be_bytes(reply[8..16].try_into().unwrap());
    assert_ne!(session, 0, "session created through a follower");
    // create /eph "" world:anyone:cdrwa EPHEMERAL
    let mut body = Vec::new();
    body.extend_from_slice(&1i32.to_be_bytes()); // xid
    body.extend_from_slice(&1i32.to_be_bytes()); // create
    common::raw::put_str(&mut body, b"/eph");
    common::raw::put_str(&mut body, b"");
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&31i32.to_be_bytes());
    common::raw::put_str(&mut body, b"world");
    common::raw::put_str(&mut body, b"anyone");
    body.extend_from_slice(&1i32.to_be_bytes()); // EPHEMERAL
    s.write_all(&common::raw::frame(&body)).unwrap();
    let created = common::raw::read_frame(&mut s);
    assert_eq!(&created[..4], &1i32.to_be_bytes(), "reply to xid 1");
    assert_eq!(&created[12..16], &0i32.to_be_bytes(), "create succeeded");

    let w = connect(&e.members[watcher_server].addr()).await;
    w.sync("/").await.unwrap();
    let (stat, watch) = w.check_and_watch_stat("/eph").await.unwrap();
    assert_eq!(stat.map(|s| s.ephemeral_owner), Some(session));
    // Vanish: no closeSession, no more pings.
    drop(s);
    let event = tokio::time::timeout(Duration::from_secs(15), watch.changed())
        .await
        .expect("the ephemeral's deletion reaches a watcher on another server");
    assert_eq!(event.event_type, zk::EventType::NodeDeleted);
    for m in &e.members {
        let c = connect(&m.addr()).await;
        c.sync("/").await.unwrap();
        assert_eq!(c.check_stat("/eph").await.unwrap(), None, "server {}", m.id);
    }
}

/// An observer receives every commit, serves reads, forwards writes and
/// sessions, and does not vote: the ensemble keeps its quorum of voters.
#[tokio::test(flavor = "multi_thread")]
async fn an_observer_serves_and_forwards_without_voting() {
    let mut e = blocking(|| Ensemble::start_with_observers(3, 1, "", &["--cores", "1"]));
    assert_eq!(e.members[3].mode().as_deref(), Some("observer"));
    let o = connect(&e.members[3].addr()).await;
    o.create("/via-observer", b"o", OPEN).await.unwrap();
    let v = connect(&e.members[0].addr()).await;
    v.create("/via-voter", b"v", OPEN).await.unwrap();
    o.sync("/").await.unwrap();
    assert_eq!(o.get_data("/via-voter").await.unwrap().0, b"v");
    assert_converged(&e, 2).await;
    // Two voters down: the observer does not make up a quorum.
    let leader = blocking(|| e.wait_leader());
    let other = (0..3).find(|&i| i != leader).unwrap();
    blocking(|| {
        e.kill(leader);
        e.kill(other);
    });
    wait_not_serving(&e.members[3], "an observer without a quorum of voters").await;
}

/// `readonlymode.enabled`: a server cut off from its quorum serves clients
/// that allow read-only sessions, answers their writes NotReadOnly, refuses
/// other clients, and ends its read-only sessions once a leader is back.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_quorum_read_only_clients_can_still_read() {
    let mut e = blocking(|| Ensemble::start(3, "readonlymode.enabled=true", &["--cores", "1"]));
    let c = connect(&e.connect_string()).await;
    c.create("/kept", b"before", OPEN).await.unwrap();
    let leader = blocking(|| e.wait_leader());
    let alone = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    // The survivor must have the write before its peers go away.
    connect(&e.members[alone].addr())
        .await
        .sync("/")
        .await
        .unwrap();
    blocking(|| {
        e.kill(leader);
        e.kill(other);
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while e.members[alone].mode().as_deref() != Some("read-only") {
        assert!(
            Instant::now() < deadline,
            "no read-only mode: {:?}",
            e.members[alone].mode()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        e.members[alone].four_letter_word("isro").as_deref(),
        Some("ro")
    );
    let ro = zk::Client::connector()
        .with_readonly(true)
        .with_session_timeout(Duration::from_secs(10))
        .connect(&e.members[alone].addr())
        .await
        .expect("a read-only client connects");
    assert_eq!(ro.get_data("/kept").await.unwrap().0, b"before");
    assert_eq!(
        ro.create("/new", b"", OPEN).await.unwrap_err(),
        zk::Error::NotReadOnly
    );
    assert_eq!(
        ro.set_data("/kept", b"x", None).await.unwrap_err(),
        zk::Error::NotReadOnly
    );
    assert_eq!(
        ro.get_data("/kept").await.unwrap().0,
        b"before",
        "still served after refusals"
    );
    assert_refuses_sessions(
        &e.members[alone].addr(),
        "a read-only server, to a read-write client",
    )
    .await;
    blocking(|| {
        e.restart(other);
        e.wait_serving(&[alone, other]);
    });
    assert_eq!(
        e.members[alone].four_letter_word("isro").as_deref(),
        Some("rw")
    );
    let c = connect(&e.members[alone].addr()).await;
    c.create("/after", b"", OPEN).await.unwrap();
}

/// A sample without labels on a Prometheus page.
fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{page}"))
}

/// An integer line of `mntr` (`key<TAB>value`).
fn mntr_number(m: &common::ensemble::Member, key: &str) -> u64 {
    let mntr = m.four_letter_word("mntr").unwrap_or_default();
    mntr.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('\t'))
        .unwrap_or_else(|| panic!("server {}: no {key} in mntr:\n{mntr}", m.id))
        .parse()
        .unwrap_or_else(|e| panic!("server {}: {key}: {e}", m.id))
}

/// A raw client on server `at`: connects (a new session when `session` is
/// 0, else a re-attach) and returns the socket, the session id and its
/// password. Panics if the session is not live.
fn raw_session(
    e: &Ensemble,
    at: usize,
    session: i64,
    password: &[u8],
) -> (TcpStream, i64, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", e.members[at].client_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&common::raw::connect_request(0, 10_000, session, password))
        .unwrap();
    // protocolVersion, timeOut, sessionId, passwd (length + 16 bytes).
    let reply = common::raw::read_frame(&mut s);
    let timeout = i32::from_be_bytes(reply[4..8].try_into().unwrap());
    assert!(
        timeout > 0,
        "session live through server {}",
        e.members[at].id
    );
    let id = i64::from_be_bytes(reply[8..16].try_into().unwrap());
    (s, id, reply[20..36].to_vec())
}

/// setData(path, data, version -1) with `xid`, on a raw connection.
fn raw_set_data(s: &mut TcpStream, xid: i32, path: &str, data: &[u8]) {
    let mut body = Vec::new();
    body.extend_from_slice(&xid.to_be_bytes());
    body.extend_from_slice(&5i32.to_be_bytes()); // setData
    common::raw::put_str(&mut body, path.as_bytes());
    common::raw::put_str(&mut body, data);
    body.extend_from_slice(&(-1i32).to_be_bytes());
    s.write_all(&common::raw::frame(&body)).unwrap();
}

/// The error code of a reply to `xid` (header: xid, zxid, err).
fn raw_reply_err(s: &mut TcpStream, xid: i32) -> i32 {
    let reply = common::raw::read_frame(s);
    assert_eq!(&reply[..4], &xid.to_be_bytes(), "reply to xid {xid}");
    i32::from_be_bytes(reply[12..16].try_into().unwrap())
}

/// A client attached through follower A re-attaches its session through
/// follower B (as after a timeout on A), and a write then arrives on the
/// connection to A it left. As on ZooKeeper, the leader knows the session
/// moved to B and refuses the write (SessionMoved); A closes the stale
/// connection without a reply, and the session goes on through B.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_on_a_connection_the_session_left_closes_it() {
    let e = blocking(|| Ensemble::start(3, "", &["--cores", "1"]));
    let leader = blocking(|| e.wait_leader());
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    let (mut on_a, session, password) = blocking(|| raw_session(&e, a, 0, &[0u8; 16]));
    raw_set_data(&mut on_a, 1, "/", b"");
    assert_eq!(
        blocking(|| raw_reply_err(&mut on_a, 1)),
        0,
        "a write through A"
    );
    let c = connect(&e.members[b].addr()).await;
    c.create("/moved", b"0", OPEN).await.unwrap();

    let (mut on_b, _, _) = blocking(|| raw_session(&e, b, session, &password));
    raw_set_data(&mut on_a, 2, "/moved", b"stale");
    let mut buf = [0u8; 64];
    let read = blocking(|| std::io::Read::read(&mut on_a, &mut buf));
    let closed = match &read {
        Ok(n) => *n == 0,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    assert!(
        closed,
        "A closes the stale connection without a reply: {read:?}"
    );
    raw_set_data(&mut on_b, 1, "/moved", b"b");
    assert_eq!(
        blocking(|| raw_reply_err(&mut on_b, 1)),
        0,
        "the session lives on through B"
    );
    for m in &e.members {
        let c = connect(&m.addr()).await;
        c.sync("/").await.unwrap();
        assert_eq!(
            c.get_data("/moved").await.unwrap().0,
            b"b",
            "server {}",
            m.id
        );
    }
}

/// ClickHouse Keeper's `ydld` and `rqld` (and their admin commands): the
/// leader hands over to a caught-up follower within a bounded time and
/// says to whom; a follower that asks becomes the leader. Acknowledged
/// writes survive every handover and clients go on through them.
#[tokio::test(flavor = "multi_thread")]
async fn ydld_hands_leadership_over_and_rqld_brings_it_to_the_asker() {
    let e = blocking(|| Ensemble::start(3, "", &["--cores", "2"]));
    let word = |i: usize, w: &str| {
        blocking(|| {
            common::four_letter_word(e.members[i].client_port, w, Duration::from_secs(10))
                .unwrap_or_default()
        })
    };
    let old = blocking(|| e.wait_leader());
    let c = connect(&e.connect_string()).await;
    for i in 0..20 {
        create_retrying(&c, &format!("/y{i}"), b"before").await;
    }
    let follower = (0..3).find(|&i| i != old).unwrap();
    assert_eq!(
        word(follower, "ydld"),
        "Failed to yield leadership: this server is not the leader.\n"
    );
    assert_eq!(word(old, "rqld"), "This server is already the leader.\n");

    // ydld on the leader: another server leads, promptly.
    let t0 = Instant::now();
    let text = word(old, "ydld");
    let took = t0.elapsed();
    let new = blocking(|| e.wait_leader());
    assert_ne!(new, old);
    assert_eq!(
        text,
        format!("Leadership moved to server {}.\n", e.members[new].id)
    );
    assert!(took < Duration::from_secs(2), "ydld took {took:?}");
    // The client goes on; nothing acknowledged was lost.
    for i in 0..10 {
        create_retrying(&c, &format!("/z{i}"), b"after ydld").await;
    }
    assert_converged(&e, 30).await;

    // rqld on a follower: it becomes the leader.
    let asker = (0..3).find(|&i| i != new).unwrap();
    let text = word(asker, "rqld");
    assert_eq!(
        text,
        format!("This server ({}) is now the leader.\n", e.members[asker].id)
    );
    assert_eq!(blocking(|| e.wait_leader()), asker);
    create_retrying(&c, "/after-rqld", b"").await;

    // The admin commands, by name and alias.
    let other = (0..3).find(|&i| i != asker).unwrap();
    let json = blocking(|| e.members[other].admin_command("yield_leadership"));
    assert!(json.contains("not the leader"), "{json}");
    let json = blocking(|| e.members[asker].admin_command("ydld"));
    assert!(json.contains("\"moved\": true"), "{json}");
    assert!(json.contains("\"command\": \"yield_leadership\""), "{json}");
    let leader = blocking(|| e.wait_leader());
    assert_ne!(leader, asker);
    let json = blocking(|| e.members[asker].admin_command("request_leadership"));
    assert!(json.contains("\"moved\": true"), "{json}");
    assert_eq!(blocking(|| e.wait_leader()), asker);
    for i in 0..5 {
        create_retrying(&c, &format!("/w{i}"), b"after admin").await;
    }
    assert_converged(&e, 36).await;
}
