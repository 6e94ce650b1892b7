//! Real crash test: the server under write load from real clients is
//! killed with SIGKILL at random moments and restarted; every write that
//! had been acknowledged must be there with the right data and Stat.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{client, Server};
use zookeeper_client as zk;

static OPEN: &zk::CreateOptions<'static> =
    &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());

/// path -> (data, version) of every acknowledged write.
type Acked = Arc<Mutex<BTreeMap<String, (Vec<u8>, i32)>>>;

async fn writer(server_addr: String, id: usize, acked: Acked) {
    let Ok(c) = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(&server_addr)
        .await
    else {
        return;
    };
    let base = format!("/crash/w{id}");
    let mut n = 0u64;
    loop {
        let path = format!("{base}-{n}");
        let data = format!("{id}:{n}").into_bytes();
        match c.create(&path, &data, OPEN).await {
            Ok(_) => {
                acked.lock().unwrap().insert(path.clone(), (data, 0));
            }
            Err(zk::Error::NodeExists) => {}
            Err(_) => return, // the server died; unacknowledged writes may or may not exist
        }
        let update = format!("{id}:{n}:updated").into_bytes();
        match c.set_data(&path, &update, Some(0)).await {
            Ok(stat) => {
                acked.lock().unwrap().insert(path, (update, stat.version));
            }
            Err(_) => return,
        }
        n += 1;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_repeated_sigkill() {
    let rounds: u64 = std::env::var("CORRAL_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut server = Server::start(&["--snap-count", "500"]);
    {
        let c = client(&server).await;
        c.create("/crash", b"", OPEN).await.unwrap();
    }
    let acked: Acked = Default::default();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..rounds {
        let mut tasks = Vec::new();
        for w in 0..8 {
            let id = (round as usize) * 100 + w;
            tasks.push(tokio::spawn(writer(server.addr(), id, acked.clone())));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(150 + seed % 400)).await;
        server.kill();
        for t in tasks {
            let _ = t.await;
        }
        server.restart();
        let c = client(&server).await;
        let expected = acked.lock().unwrap().clone();
        assert!(
            !expected.is_empty(),
            "round {round}: nothing was acknowledged"
        );
        for (path, (data, version)) in &expected {
            let (got, stat) = c
                .get_data(path)
                .await
                .unwrap_or_else(|e| panic!("round {round}: acknowledged {path} lost: {e}"));
            // A write the server made durable just before it died may not
            // have been acknowledged: the node may be newer than the last
            // acknowledged state, never older.
            if stat.version == *version {
                assert_eq!(&got, data, "round {round}: {path}");
            } else {
                assert!(
                    stat.version > *version,
                    "round {round}: {path} went back to version {}",
                    stat.version
                );
                assert!(got.ends_with(b":updated"), "round {round}: {path}");
            }
        }
        eprintln!(
            "round {round}: {} acknowledged writes verified",
            expected.len()
        );
    }
}
