//! End-to-end checks of loadgen's workloads against a real corral server.
//!
//! loadgen cannot depend on the `corral` binary (it lives in the `net`
//! crate, and cargo gives a test only its own package's binaries), so the
//! server is found through `CORRAL_BIN` or in the workspace's target
//! directory; without one the tests say so and pass, rather than build the
//! server themselves. `cargo build -p net` first to run them for real.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn corral_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CORRAL_BIN") {
        return Some(PathBuf::from(p));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    ["debug", "release"]
        .iter()
        .map(|p| target.join(p).join("corral"))
        .find(|p| p.exists())
}

/// A corral server on a free port with its own data directory; dropping it
/// kills the process and removes the directory.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start(bin: &PathBuf) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("corral-loadgen-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(bin)
            .args(["server", "--client-port", &port.to_string(), "--data-dir"])
            .arg(&dir)
            .args([
                "--no-admin-server",
                "--pre-alloc-size",
                "4096",
                "--cores",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start corral");
        let mut s = Server { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(s.child.try_wait().unwrap().is_none(), "corral exited early");
            assert!(Instant::now() < deadline, "corral did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        s.port = port;
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs loadgen with `args` against `server`, returns its JSON summary.
fn loadgen(server: &Server, args: &[&str]) -> serde_json::Value {
    let json = server
        .dir
        .with_extension(format!("{}.json", args.join("-")));
    let out = Command::new(env!("CARGO_BIN_EXE_corral-loadgen"))
        .arg("--connect")
        .arg(format!("127.0.0.1:{}", server.port))
        .arg("--json")
        .arg(&json)
        .args(args)
        .output()
        .expect("run loadgen");
    assert!(
        out.status.success(),
        "loadgen {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    v
}

macro_rules! server_or_skip {
    () => {
        match corral_bin() {
            Some(bin) => Server::start(&bin),
            None => {
                eprintln!("skipped: no corral binary (set CORRAL_BIN or cargo build -p net)");
                return;
            }
        }
    };
}

#[test]
fn watch_counts_every_event_with_its_latency() {
    let server = server_or_skip!();
    for op in ["get", "exists"] {
        let r = loadgen(
            &server,
            &[
                "--clients",
                "4",
                "--duration",
                "1",
                "--warmup",
                "0.2",
                "--watch-op",
                op,
                "watch",
            ],
        );
        let events = r["events"].as_u64().unwrap();
        let writes = r["writes"].as_u64().unwrap();
        assert!(writes > 0, "{op}: no write measured: {r}");
        // Every write fires one event at each of the four watchers.
        assert_eq!(events, 4 * writes, "{op}: {r}");
        assert!(r["events_per_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["latency_ms"]["max"].as_f64().unwrap() > 0.0, "{r}");
        assert!(
            r["latency_from_send_ms"]["p50"].as_f64().unwrap() > 0.0,
            "{r}"
        );
        assert!(r["errors"].as_object().unwrap().is_empty(), "{r}");
    }
}

#[test]
fn ramp_reports_each_step_and_the_sustained_rate() {
    let server = server_or_skip!();
    let r = loadgen(
        &server,
        &[
            "--clients",
            "2",
            "--inflight",
            "4",
            "--keys",
            "10",
            "--warmup",
            "0.2",
            "--ramp-start",
            "200",
            "--ramp-factor",
            "2",
            "--ramp-step",
            "0.5",
            "--ramp-steps-max",
            "2",
            "--sla-p99-ms",
            "1000",
            "--ramp-shortfall",
            "0.5",
            "--base",
            "read",
            "ramp",
        ],
    );
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{r}");
    assert_eq!(steps[1]["offered_per_s"].as_f64(), Some(400.0), "{r}");
    assert!(steps.iter().all(|s| s["passed"] == true), "{r}");
    assert!(r["sustained_ops_per_s"].as_f64().unwrap() > 100.0, "{r}");
}
