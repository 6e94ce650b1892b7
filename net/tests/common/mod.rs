//! Starts and stops real corral server processes for integration tests.
//! Each server gets a free port and its own data directory; dropping the
//! handle kills the process and removes the directory.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub port: u16,
    pub data_dir: PathBuf,
    child: Option<Child>,
    extra: Vec<String>,
    keep_dir: bool,
}

/// Sends a four-letter word to 127.0.0.1:`port` and reads the answer; None
/// if the server cannot be reached or does not answer within `timeout`.
pub fn four_letter_word(port: u16, w: &str, timeout: Duration) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(w.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(tag: &str) -> PathBuf {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("corral-test-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        let mut s = Server {
            port: free_port(),
            data_dir: temp_dir("srv"),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            keep_dir: false,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.data_dir.with_extension("log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
        cmd.arg("server")
            .arg("--client-port")
            .arg(self.port.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir);
        if !self.extra.iter().any(|a| a == "--four-letter-words") {
            cmd.arg("--four-letter-words").arg("*");
        }
        // The admin server's default port (8080) is shared by every test
        // server on the machine: only tests that configure it on the command
        // line get an admin server.
        if !self
            .extra
            .iter()
            .any(|a| a == "--admin-port" || a == "--admin-address")
        {
            cmd.arg("--no-admin-server");
        }
        let child = cmd
            .arg("--pre-alloc-size")
            .arg("4096")
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start corral");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("corral exited early with {status}: {}", self.log());
            }
            // ruok answers as soon as the port is open; srvr tells whether
            // the server serves yet (as the Python suite waits).
            if let Some(answer) = self.four_letter_word("ruok") {
                if answer.contains("not in the whitelist") {
                    return;
                }
                let serving = self
                    .four_letter_word("srvr")
                    .is_some_and(|s| !s.contains("not currently serving"));
                if answer == "imok" && serving {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "corral did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }

    /// The log once it holds `n` lines containing `needle`, or whatever it
    /// holds after 10 s. A line the server writes about something a client
    /// just saw (a closed connection, an expired session) may be written on
    /// another core a moment after the client saw it.
    pub fn log_with(&self, needle: &str, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.matches(needle).count() >= n || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn four_letter_word(&self, w: &str) -> Option<String> {
        four_letter_word(self.port, w, Duration::from_secs(5))
    }

    /// SIGKILL: nothing is flushed, nothing is closed cleanly.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if !self.keep_dir && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
            let _ = std::fs::remove_file(self.data_dir.with_extension("log"));
        } else if std::thread::panicking() {
            eprintln!(
                "server log kept at {}",
                self.data_dir.with_extension("log").display()
            );
        }
    }
}

pub async fn client(server: &Server) -> zookeeper_client::Client {
    zookeeper_client::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(&server.addr())
        .await
        .expect("connect")
}

/// Raw protocol frames, for tests that need exact bytes on the wire.
pub mod ensemble;

pub mod raw {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use super::Server;

    /// A length-prefixed frame.
    pub fn frame(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    pub fn read_frame(s: &mut TcpStream) -> Vec<u8> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
        body
    }

    /// A jute string or buffer.
    pub fn put_str(b: &mut Vec<u8>, s: &[u8]) {
        b.extend_from_slice(&(s.len() as i32).to_be_bytes());
        b.extend_from_slice(s);
    }

    pub fn jstr(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        put_str(&mut v, s.as_bytes());
        v
    }

    pub fn connect_request(
        last_zxid: i64,
        timeout_ms: i32,
        session: i64,
        password: &[u8],
    ) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&last_zxid.to_be_bytes());
        b.extend_from_slice(&timeout_ms.to_be_bytes());
        b.extend_from_slice(&session.to_be_bytes());
        put_str(&mut b, password);
        b.push(0);
        frame(&b)
    }

    pub fn socket(server: &Server) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Connects and returns the socket and the connect response body.
    pub fn connect(
        server: &Server,
        timeout_ms: i32,
        session: i64,
        password: &[u8],
    ) -> (TcpStream, Vec<u8>) {
        let mut s = socket(server);
        s.write_all(&connect_request(0, timeout_ms, session, password))
            .unwrap();
        let reply = read_frame(&mut s);
        (s, reply)
    }

    /// A new session's socket, after the connect response.
    pub fn session(server: &Server) -> TcpStream {
        connect(server, 10_000, 0, &[0u8; 16]).0
    }

    /// True once the server has closed the connection (EOF or reset).
    pub fn closed_by_server(mut s: TcpStream) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }
}
