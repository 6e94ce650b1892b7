//! `corral import-zk` against a real Apache ZooKeeper 3.8 (Debian's
//! package): write a few hundred znodes of every kind through the Rust
//! `zookeeper-client` crate while ZooKeeper takes fuzzy snapshots, record
//! what ZooKeeper answers, SIGKILL it, import its data directory, start
//! corral on the result and compare every znode's data, ACL and Stat.
//! Then the same data directory with a torn log tail, a corrupt record and
//! a corrupt newest snapshot.
//!
//! Skipped, with a message, when java or zookeeper.jar is missing
//! (`.ci/install-deps.sh` installs them).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, Server};
use zookeeper_client as zk;

const ZK_JARS: [&str; 3] = [
    "/usr/share/java/zookeeper.jar",
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
];
/// ZooKeeper snapshots every snapCount/2 + rand(snapCount/2) transactions
/// and starts a new log each time: a small value gives many of both.
const SNAP_COUNT: u32 = 40;
/// The live session that owns ephemerals when ZooKeeper is killed.
const OWNER_TIMEOUT: Duration = Duration::from_secs(10);
const USER: &[u8] = b"importer:secret";

fn temp_dir(tag: &str) -> PathBuf {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("corral-import-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Apache ZooKeeper 3.8, standalone, as `java ... QuorumPeerMain zoo.cfg`.
struct ZooKeeper {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl ZooKeeper {
    /// Why ZooKeeper cannot run here, if it cannot.
    fn missing() -> Option<String> {
        if let Some(jar) = ZK_JARS.iter().find(|j| !Path::new(j).exists()) {
            return Some(format!("{jar} is missing"));
        }
        match Command::new("java").arg("-version").output() {
            Ok(o) if o.status.success() => None,
            _ => Some("java is not runnable".into()),
        }
    }

    fn start() -> ZooKeeper {
        let dir = temp_dir("zk");
        let port = free_port();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=2000\ndataDir={}\nclientPort={port}\n\
                 4lw.commands.whitelist=*\nadmin.enableServer=false\nmaxClientCnxns=0\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("zookeeper.log")).unwrap();
        let child = Command::new("java")
            .arg("-Xmx256m")
            .arg(format!("-Dzookeeper.snapCount={SNAP_COUNT}"))
            // Logs padded to 64 KiB rather than 64 MiB: the test copies them.
            .arg("-Dzookeeper.preAllocSize=64")
            .arg("-Dzookeeper.extendedTypesEnabled=true")
            // No container or TTL cleanup between the last read and the
            // kill: the comparison needs ZooKeeper's tree to stand still.
            .arg("-Dznode.container.checkIntervalMs=3600000")
            .arg("-cp")
            .arg(ZK_JARS.join(":"))
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(&cfg)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start java");
        let mut zk = ZooKeeper {
            port,
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = zk.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("ZooKeeper exited with {status}: {}", zk.log());
            }
            if zk.ruok() {
                return zk;
            }
            assert!(
                Instant::now() < deadline,
                "ZooKeeper did not start: {}",
                zk.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn ruok(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut out = String::new();
        s.write_all(b"ruok").is_ok() && s.read_to_string(&mut out).is_ok() && out == "imok"
    }

    fn log(&self) -> String {
        let s = std::fs::read_to_string(self.dir.join("zookeeper.log")).unwrap_or_default();
        s[s.len().saturating_sub(4000)..].to_string()
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// SIGKILL: ZooKeeper's snapshots are fuzzy and the tail of its log
    /// is whatever the kill left, which is what the import must handle.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("ZooKeeper directory kept at {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// What a server answers for one znode.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    data: Vec<u8>,
    stat: zk::Stat,
    acl: Vec<zk::Acl>,
}

/// Every znode under `/`, read through `c` (breadth first).
async fn read_tree(c: &zk::Client) -> BTreeMap<String, Seen> {
    let mut out = BTreeMap::new();
    let mut queue = vec!["/".to_string()];
    while let Some(path) = queue.pop() {
        let (data, stat) = c
            .get_data(&path)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let (acl, acl_stat) = c.get_acl(&path).await.unwrap();
        assert_eq!(stat, acl_stat, "{path} changed while being read");
        for child in c.list_children(&path).await.unwrap() {
            queue.push(if path == "/" {
                format!("/{child}")
            } else {
                format!("{path}/{child}")
            });
        }
        out.insert(path, Seen { data, stat, acl });
    }
    out
}

/// The clients the workload leaves behind: the live session's must outlive
/// the kill so ZooKeeper still has it.
struct Workload {
    owner: zk::Client,
    main: zk::Client,
}

/// A few hundred znodes of every kind, written by several tasks at once
/// while ZooKeeper snapshots every few dozen transactions.
async fn workload(addr: &str) -> Workload {
    let connect = |timeout: Duration| {
        zk::Client::connector()
            .with_session_timeout(timeout)
            .with_auth("digest", USER)
            .connect(addr)
    };
    let main = connect(Duration::from_secs(20)).await.unwrap();
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    for p in ["/app", "/seq", "/acl", "/cont", "/ttl", "/eph", "/multi"] {
        main.create(p, p.as_bytes(), &open).await.unwrap();
    }
    // A quota on /app, as zkCli's setquota makes one. ZooKeeper keeps its
    // usage (zookeeper_stats) up to date in memory, never in the log.
    main.create("/zookeeper/quota/app", b"", &open)
        .await
        .unwrap();
    main.create(
        "/zookeeper/quota/app/zookeeper_limits",
        b"count=100000,bytes=-1",
        &open,
    )
    .await
    .unwrap();
    main.create(
        "/zookeeper/quota/app/zookeeper_stats",
        b"count=0,bytes=0",
        &open,
    )
    .await
    .unwrap();

    // Four writers at once, so snapshots are taken while the tree moves.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let c = connect(Duration::from_secs(20)).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
            let seq = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
            for i in 0..50 {
                let p = format!("/app/w{w}-{i:02}");
                c.create(&p, format!("v0 {p}").as_bytes(), &open)
                    .await
                    .unwrap();
                // Several versions of most nodes.
                for v in 1..=(i % 4) {
                    c.set_data(&p, format!("v{v} {p}").as_bytes(), Some(v - 1))
                        .await
                        .unwrap();
                }
                if i % 7 == 3 {
                    c.delete(&p, None).await.unwrap();
                }
                // Sequential children, every third one deleted again.
                let (_, n) = c.create(&format!("/seq/w{w}-"), b"s", &seq).await.unwrap();
                if n.into_i64() % 3 == 0 {
                    c.delete(&format!("/seq/w{w}-{n}"), None).await.unwrap();
                }
            }
        }));
    }

    // ACLs: read-only for the world, localhost by ip, the digest user, a
    // mixed list; then setACL twice on one node (aversion 2).
    let local = [zk::Acl::new(
        zk::Permission::ALL,
        zk::AuthId::new("ip", "127.0.0.1"),
    )];
    let authed = [zk::Acl::new(zk::Permission::ALL, zk::AuthId::authed())];
    let mixed = [
        zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone()),
        zk::Acl::new(zk::Permission::ALL, zk::AuthId::authed()),
    ];
    let acl_sets: [&[zk::Acl]; 3] = [&local, &authed, &mixed];
    for (i, acls) in acl_sets.iter().enumerate() {
        let opts = zk::CreateMode::Persistent.with_acls(zk::Acls::new(acls));
        main.create(&format!("/acl/n{i}"), b"guarded", &opts)
            .await
            .unwrap();
    }
    let read_only = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_read());
    main.create("/acl/read-only", b"ro", &read_only)
        .await
        .unwrap();
    main.create("/acl/changed", b"", &open).await.unwrap();
    main.set_acl("/acl/changed", &mixed, Some(0)).await.unwrap();
    main.set_acl("/acl/changed", &authed, Some(1))
        .await
        .unwrap();

    // Containers (one with children, one emptied) and TTL nodes.
    let container = zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());
    main.create("/cont/full", b"c", &container).await.unwrap();
    main.create("/cont/emptied", b"", &container).await.unwrap();
    for i in 0..3 {
        main.create(&format!("/cont/full/k{i}"), b"", &open)
            .await
            .unwrap();
        main.create(&format!("/cont/emptied/k{i}"), b"", &open)
            .await
            .unwrap();
        main.delete(&format!("/cont/emptied/k{i}"), None)
            .await
            .unwrap();
    }
    for i in 0..3 {
        let ttl = zk::CreateMode::Persistent
            .with_acls(zk::Acls::anyone_all())
            .with_ttl(Duration::from_secs(3600 + i));
        main.create(&format!("/ttl/t{i}"), b"t", &ttl)
            .await
            .unwrap();
    }

    // Multis: one that applies, one that fails and changes nothing.
    let mut m = main.new_multi_writer();
    m.add_create("/multi/a", b"a", &open).unwrap();
    m.add_create("/multi/a/b", b"b", &open).unwrap();
    m.add_set_data("/multi", b"changed by multi", Some(0))
        .unwrap();
    m.add_check_version("/multi/a", 0).unwrap();
    m.commit().await.unwrap();
    let mut m = main.new_multi_writer();
    m.add_create("/multi/never", b"", &open).unwrap();
    m.add_check_version("/multi", 77).unwrap();
    assert!(m.commit().await.is_err());
    let mut m = main.new_multi_writer();
    m.add_delete("/multi/a/b", Some(0)).unwrap();
    m.add_create("/multi/c", b"", &open).unwrap();
    m.commit().await.unwrap();

    // Big and odd data, an odd name.
    main.create("/app/big", &vec![7u8; 200_000], &open)
        .await
        .unwrap();
    main.create("/app/empty", b"", &open).await.unwrap();
    main.create("/app/ünïcødé ✓", "ü".as_bytes(), &open)
        .await
        .unwrap();

    // A session that closes: its ephemerals go with a closeSession.
    let gone = connect(Duration::from_secs(10)).await.unwrap();
    let eph = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    let eph_seq = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    gone.create("/eph/gone", b"", &eph).await.unwrap();
    gone.create("/eph/gone-", b"", &eph_seq).await.unwrap();
    drop(gone);

    // The live session, detached so dropping the client never closes it.
    let owner = zk::Client::connector()
        .with_session_timeout(OWNER_TIMEOUT)
        .with_detached()
        .connect(addr)
        .await
        .unwrap();
    owner.create("/eph/live", b"alive", &eph).await.unwrap();
    owner.create("/eph/live-", b"", &eph_seq).await.unwrap();
    owner.create("/eph/live-", b"", &eph_seq).await.unwrap();

    for t in tasks {
        t.await.unwrap();
    }
    // The gone session's close has been applied once its nodes are gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    while main.check_stat("/eph/gone").await.unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "closed session's ephemeral remains"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Workload { owner, main }
}

fn corral(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run corral")
}

fn import(zk_data: &Path, data_dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "import-zk",
        "--zk-data-dir",
        zk_data.to_str().unwrap(),
        "--data-dir",
        data_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    corral(&args)
}

fn text(o: &std::process::Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `version-2/<prefix>.*` files, oldest first.
fn zk_files(data: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<(i64, PathBuf)> = std::fs::read_dir(data.join("version-2"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let hex = name.strip_prefix(&format!("{prefix}."))?.to_string();
            Some((i64::from_str_radix(&hex, 16).ok()?, e.path()))
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, p)| p).collect()
}

/// The "zxid 0x..." of the summary's result line.
fn imported_zxid(stdout: &str) -> i64 {
    let line = result_line(stdout);
    let hex = line.split("zxid 0x").nth(1).unwrap();
    let hex: String = hex.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    i64::from_str_radix(&hex, 16).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_zookeeper_is_imported_znode_for_znode() {
    if let Some(why) = ZooKeeper::missing() {
        eprintln!("skipping the ZooKeeper import test: {why} (.ci/install-deps.sh installs it)");
        return;
    }
    let mut zookeeper = ZooKeeper::start();
    let w = workload(&zookeeper.addr()).await;
    let before = read_tree(&w.main).await;
    let owner_session = w.owner.session_id().0;
    let owner_info = w.owner.session().clone();
    let live: Vec<&String> = before
        .iter()
        .filter(|(_, s)| s.stat.ephemeral_owner == owner_session)
        .map(|(p, _)| p)
        .collect();
    assert_eq!(live.len(), 3, "the live session's ephemerals");
    assert!(before.len() > 300, "{} znodes", before.len());
    zookeeper.kill();
    drop(w);
    let zk_data = zookeeper.data_dir();
    let snapshots = zk_files(&zk_data, "snapshot");
    let logs = zk_files(&zk_data, "log");
    assert!(
        snapshots.len() >= 3 && logs.len() >= 3,
        "want several snapshots and logs: {snapshots:?} {logs:?}"
    );
    let pristine = temp_dir("zk-copy");
    copy_dir(&zk_data, &pristine);

    // corral refuses a data directory that is in use, then --force
    // replaces its snapshots and log.
    let mut server = Server::start(&["--extended-types", "--container-check-interval", "3600000"]);
    server.kill();
    let refused = import(&zk_data, &server.data_dir, &["--extended-types"]);
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not empty"),
        "{}",
        text(&refused)
    );
    // Without --extended-types the TTL nodes would be dropped as dead
    // sessions' ephemerals; the import refuses instead.
    let no_ext = import(&zk_data, &server.data_dir, &["--force"]);
    assert!(!no_ext.status.success(), "{}", text(&no_ext));
    assert!(
        text(&no_ext).contains("--extended-types"),
        "{}",
        text(&no_ext)
    );

    let started = Instant::now();
    let out = import(&zk_data, &server.data_dir, &["--force", "--extended-types"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!("{stdout}");
    assert!(stdout.contains("digest    matches"), "{stdout}");
    let zxid = imported_zxid(&stdout);
    let newest_mzxid = before
        .values()
        .map(|s| s.stat.mzxid.max(s.stat.pzxid))
        .max()
        .unwrap();
    assert!(zxid >= newest_mzxid, "{zxid:#x} < {newest_mzxid:#x}");
    eprintln!("import took {:?}", started.elapsed());

    server.restart();
    let c = zk::Client::connector()
        .with_auth("digest", USER)
        .connect(&server.addr())
        .await
        .unwrap();
    let after = read_tree(&c).await;

    // corral's /zookeeper/config is its own (ZooKeeper's holds an
    // ensemble's membership); everything else is compared field by field.
    let config = "/zookeeper/config";
    assert_eq!(after[config].data, b"");
    assert_eq!(
        after[config].acl,
        vec![zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone())]
    );
    assert_eq!(after[config].stat.aversion, -1, "as on a fresh server");
    let paths = |t: &BTreeMap<String, Seen>| -> Vec<String> { t.keys().cloned().collect() };
    assert_eq!(paths(&before), paths(&after), "the same znodes");
    let mut compared = 0;
    for (path, zk_seen) in &before {
        if path == config {
            continue;
        }
        let corral_seen = &after[path];
        assert_eq!(zk_seen.data, corral_seen.data, "data of {path}");
        assert_eq!(zk_seen.acl, corral_seen.acl, "ACL of {path}");
        assert_eq!(zk_seen.stat, corral_seen.stat, "Stat of {path}");
        compared += 1;
    }
    eprintln!(
        "compared {compared} znodes (data, ACL, Stat) from {} snapshots and {} logs",
        snapshots.len(),
        logs.len()
    );

    // Writes come after every imported zxid: each start of a corral server
    // begins a new ZAB epoch (as an ensemble member of ZooKeeper does),
    // whose counter starts at 1. A sequential suffix continues from the
    // parent's count of creations.
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let (stat, _) = c.create("/after-import", b"", &open).await.unwrap();
    assert!(
        stat.czxid >> 32 > zxid >> 32,
        "{:#x} after {zxid:#x}",
        stat.czxid
    );
    // Counter 1 is the createSession of `c`.
    assert_eq!(stat.czxid & 0xffff_ffff, 2);
    let seq = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
    let (_, n) = c.create("/seq/next-", b"", &seq).await.unwrap();
    let seq_stat = before["/seq"].stat;
    // cversion = 2 * creations - children.
    let creations = (seq_stat.cversion + seq_stat.num_children) / 2;
    assert_eq!(n.into_i64(), creations as i64);

    // The old client re-attaches its session to corral: passwords are
    // derived as ZooKeeper derives them, so a client can move across the
    // migration without losing its session or its ephemerals.
    let reattached = zk::Client::connector()
        .with_session(owner_info)
        .connect(&server.addr())
        .await
        .expect("the imported session re-attaches with ZooKeeper's password");
    for p in &live {
        assert!(
            reattached.check_stat(p).await.unwrap().is_some(),
            "{p} is there"
        );
    }
    drop(reattached);

    // Once its client is gone the session expires on corral after its
    // timeout (or is closed) and takes its ephemerals along.
    let deadline = Instant::now() + OWNER_TIMEOUT + Duration::from_secs(15);
    for p in &live {
        while c.check_stat(p).await.unwrap().is_some() {
            assert!(Instant::now() < deadline, "{p} outlived its session");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drop(c);
    drop(server);

    every_snapshot_restores_the_same_state(&pristine, &stdout);
    broken_inputs(&pristine, &stdout).await;
    let _ = std::fs::remove_dir_all(&pristine);
}

fn result_line(summary: &str) -> String {
    summary
        .lines()
        .find(|l| l.trim_start().starts_with("result"))
        .expect("a result line")
        .to_string()
}

/// Starting from any of ZooKeeper's snapshots (each alone with every log)
/// gives the same state: the replay of up to the whole history converges,
/// fuzzy snapshots included, and ZooKeeper's digests agree all the way.
fn every_snapshot_restores_the_same_state(pristine: &Path, good_summary: &str) {
    let logs = zk_files(pristine, "log");
    let target = temp_dir("each-target");
    let (mut replayed, mut fuzzy, mut digests, mut resolved) = (0u64, 0u64, 0u64, 0u64);
    let snapshots = zk_files(pristine, "snapshot");
    for snap in &snapshots {
        let zk = temp_dir("one-snapshot");
        let v2 = zk.join("version-2");
        std::fs::create_dir_all(&v2).unwrap();
        for f in logs.iter().chain([snap]) {
            std::os::unix::fs::symlink(f, v2.join(f.file_name().unwrap())).unwrap();
        }
        let out = import(&zk, &target, &["--force", "--extended-types"]);
        assert!(out.status.success(), "{}: {}", snap.display(), text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            result_line(&stdout),
            result_line(good_summary),
            "{}",
            snap.display()
        );
        assert!(stdout.contains("digest    matches"), "{stdout}");
        let number_after = |key: &str| -> u64 {
            let line = stdout.lines().find(|l| l.contains(key)).unwrap();
            let before_key = &line[..line.find(key).unwrap()];
            let digits: String = before_key
                .chars()
                .rev()
                .skip_while(|c| !c.is_ascii_digit())
                .take_while(|c| c.is_ascii_digit())
                .collect();
            digits.chars().rev().collect::<String>().parse().unwrap()
        };
        replayed += number_after(" transaction(s) replayed");
        fuzzy += number_after(" already in the fuzzy snapshot");
        digests += number_after(" comparison(s)");
        if stdout.contains("disagreed on the way") {
            resolved += 1;
        }
        let _ = std::fs::remove_dir_all(&zk);
    }
    eprintln!(
        "{} snapshots each restore the same state: {replayed} transactions replayed in all, \
         {fuzzy} already in a fuzzy snapshot, {digests} digest comparisons, {resolved} \
         snapshot(s) disagreeing with their own digest until the replay resolved it",
        snapshots.len()
    );
    let _ = std::fs::remove_dir_all(&target);
}

/// The same ZooKeeper data directory, damaged three ways.
async fn broken_inputs(pristine: &Path, good_summary: &str) {
    let good_zxid = imported_zxid(good_summary);
    let target = temp_dir("broken-target");

    // 1. The last log cut in the middle of its last record: that record is
    //    a torn tail, cut as ZooKeeper cuts it.
    let zk = temp_dir("torn");
    copy_dir(pristine, &zk);
    let last_log = zk_files(&zk, "log").pop().unwrap();
    let bytes = std::fs::read(&last_log).unwrap();
    let parsed = net::import_zk::format::read_log(&bytes).unwrap();
    let last = parsed.records.last().expect("the last log has records");
    std::fs::write(&last_log, &bytes[..last.offset as usize + 20]).unwrap();
    let out = import(&zk, &target, &["--force", "--extended-types"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("torn tail"), "{stdout}");
    assert!(imported_zxid(&stdout) <= good_zxid);
    let _ = std::fs::remove_dir_all(&zk);

    // 2. A flipped byte inside a complete record: corruption, named by file
    //    and the record's offset.
    let zk = temp_dir("corrupt");
    copy_dir(pristine, &zk);
    let last_log = zk_files(&zk, "log").pop().unwrap();
    let mut bytes = std::fs::read(&last_log).unwrap();
    let parsed = net::import_zk::format::read_log(&bytes).unwrap();
    let victim = parsed.records[0].offset as usize;
    bytes[victim + 12 + 10] ^= 0x20;
    std::fs::write(&last_log, &bytes).unwrap();
    let out = import(&zk, &target, &["--force", "--extended-types"]);
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = last_log.file_name().unwrap().to_str().unwrap();
    assert!(stderr.contains(name), "{stderr}");
    assert!(stderr.contains(&format!("offset {victim}")), "{stderr}");
    assert!(stderr.contains("checksum"), "{stderr}");
    let _ = std::fs::remove_dir_all(&zk);

    // 3. The newest snapshot corrupt: the previous one plus more of the
    //    log gives the same state.
    let zk = temp_dir("bad-snapshot");
    copy_dir(pristine, &zk);
    let newest = zk_files(&zk, "snapshot").pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&newest, &bytes).unwrap();
    let out = import(&zk, &target, &["--force", "--extended-types"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("trying an older snapshot"), "{stdout}");
    assert_eq!(imported_zxid(&stdout), good_zxid);
    assert_eq!(result_line(&stdout), result_line(good_summary));
    let _ = std::fs::remove_dir_all(&zk);
    let _ = std::fs::remove_dir_all(&target);
}
