//! Starting and stopping the servers under test: Apache ZooKeeper 3.8 (a
//! plain `java -cp ... QuorumPeerMain zoo.cfg`, as Debian packages it) and
//! corral (`corral server --zoo-cfg`), standalone or as a three-server
//! ensemble on 127.0.0.1. Both read the same zoo.cfg text, differing only
//! in ports and data directories, so the configuration is equivalent by
//! construction: same tickTime, forceSync on, no admin server.
//!
//! One server of a cluster can be crashed (SIGKILL) and started again on the
//! same data directory, for restart and failover measurements.
//!
//! Every process started here is killed when its `Cluster` is dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Zookeeper,
    Corral,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Zookeeper => "zookeeper",
            Kind::Corral => "corral",
        }
    }
}

/// How to run each kind of server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub corral_bin: PathBuf,
    /// Colon-separated jars for ZooKeeper.
    pub zk_classpath: String,
    /// -Xms/-Xmx of each ZooKeeper JVM, e.g. "2g".
    pub zk_heap: String,
    pub tick_time_ms: u32,
    /// corral's --cores per server; 0 leaves corral's default (every core).
    pub corral_cores: usize,
}

pub struct Cluster {
    pub kind: Kind,
    opts: ServerOptions,
    children: Vec<Child>,
    ports: Vec<u16>,
    dirs: Vec<PathBuf>,
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Sends a four-letter word and reads the whole answer.
pub fn four_letter_word(port: u16, word: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(word.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// The zoo.cfg both kinds read.
fn zoo_cfg(dir: &Path, port: u16, tick_time_ms: u32, servers: &str) -> String {
    format!(
        "tickTime={tick_time_ms}\n\
         initLimit=10\n\
         syncLimit=5\n\
         dataDir={}\n\
         clientPort={port}\n\
         clientPortAddress=127.0.0.1\n\
         4lw.commands.whitelist=*\n\
         admin.enableServer=false\n\
         maxClientCnxns=0\n\
         forceSync=yes\n\
         {servers}",
        dir.display()
    )
}

impl Cluster {
    /// Starts `size` servers (1: standalone; 3: an ensemble) of `kind` with
    /// their files under `work`, and waits until each one serves.
    pub fn start(kind: Kind, size: usize, opts: &ServerOptions, work: &Path) -> Result<Cluster> {
        let mut servers = String::new();
        if size > 1 {
            for i in 1..=size {
                servers += &format!("server.{i}=127.0.0.1:{}:{}\n", free_port()?, free_port()?);
            }
        }
        let mut c = Cluster {
            kind,
            opts: opts.clone(),
            children: Vec::new(),
            ports: Vec::new(),
            dirs: Vec::new(),
        };
        for i in 1..=size {
            let dir = work.join(format!("{}{i}", kind.name()));
            std::fs::create_dir_all(&dir)?;
            if size > 1 {
                std::fs::write(dir.join("myid"), format!("{i}\n"))?;
            }
            let port = free_port()?;
            std::fs::write(
                dir.join("zoo.cfg"),
                zoo_cfg(&dir, port, opts.tick_time_ms, &servers),
            )?;
            c.ports.push(port);
            c.dirs.push(dir);
            let child = c.spawn(i - 1)?;
            c.children.push(child);
        }
        c.wait_serving(Duration::from_secs(60))?;
        Ok(c)
    }

    /// Starts server `i` (0-based) on its zoo.cfg; its output is appended
    /// to server.log, so a restarted server's log follows the one before.
    fn spawn(&self, i: usize) -> Result<Child> {
        let dir = &self.dirs[i];
        let cfg = dir.join("zoo.cfg");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))?;
        let opts = &self.opts;
        let mut cmd = match self.kind {
            Kind::Zookeeper => {
                let mut cmd = Command::new("java");
                cmd.arg(format!("-Xms{}", opts.zk_heap))
                    .arg(format!("-Xmx{}", opts.zk_heap))
                    .arg("-cp")
                    .arg(&opts.zk_classpath)
                    .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
                    .arg(&cfg);
                cmd
            }
            Kind::Corral => {
                let mut cmd = Command::new(&opts.corral_bin);
                cmd.arg("server").arg("--zoo-cfg").arg(&cfg);
                if opts.corral_cores > 0 {
                    cmd.arg("--cores").arg(opts.corral_cores.to_string());
                }
                cmd
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {} server {}", self.kind.name(), i + 1))
    }

    /// SIGKILLs server `i` (0-based) and reaps it: a crash, with no chance
    /// to flush or say goodbye to its peers.
    pub fn kill(&mut self, i: usize) -> Result<()> {
        // Child::kill is SIGKILL on Unix.
        self.children[i]
            .kill()
            .with_context(|| format!("kill {} server {}", self.kind.name(), i + 1))?;
        self.children[i].wait()?;
        Ok(())
    }

    /// Starts server `i` again, on the same data directory, ports and
    /// zoo.cfg, after `kill`. Returns at once: the caller decides what
    /// "serving again" means and times it.
    pub fn respawn(&mut self, i: usize) -> Result<()> {
        assert!(
            self.children[i].try_wait()?.is_some(),
            "respawn of a server that still runs"
        );
        self.children[i] = self.spawn(i)?;
        Ok(())
    }

    fn wait_serving(&mut self, timeout: Duration) -> Result<()> {
        for i in 0..self.ports.len() {
            self.wait_member_serving(i, timeout)?;
        }
        Ok(())
    }

    /// Waits until server `i` reports a serving mode (standalone, leader or
    /// follower) on `srvr`; fails at once if its process has exited.
    pub fn wait_member_serving(&mut self, i: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running(i)?;
            if matches!(
                self.mode(i).as_deref(),
                Some("standalone" | "leader" | "follower")
            ) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} server {} does not serve after {timeout:?}:\n{}",
                    self.kind.name(),
                    i + 1,
                    self.log_tail(i)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// An error (with the end of its log) if server `i` has exited.
    pub fn check_running(&mut self, i: usize) -> Result<()> {
        if let Some(status) = self.children[i].try_wait()? {
            bail!(
                "{} server {} exited with {status}:\n{}",
                self.kind.name(),
                i + 1,
                self.log_tail(i)
            );
        }
        Ok(())
    }

    /// The `Mode:` line of server `i`'s `srvr` answer, if it answers.
    pub fn mode(&self, i: usize) -> Option<String> {
        four_letter_word(self.ports[i], "srvr").and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Mode: ").map(str::to_string))
        })
    }

    /// Waits until every server serves and exactly one of them leads;
    /// returns the leader.
    pub fn wait_one_leader(&mut self, timeout: Duration) -> Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            for i in 0..self.size() {
                self.check_running(i)?;
            }
            let modes: Vec<Option<String>> = (0..self.size()).map(|i| self.mode(i)).collect();
            let serving = modes
                .iter()
                .all(|m| matches!(m.as_deref(), Some("leader" | "follower")));
            let leaders: Vec<usize> = (0..self.size())
                .filter(|&i| modes[i].as_deref() == Some("leader"))
                .collect();
            if serving && leaders.len() == 1 {
                return Ok(leaders[0]);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} x{}: no single leader with every server serving after {timeout:?} (modes {modes:?})",
                    self.kind.name(),
                    self.size()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_tail(&self, i: usize) -> String {
        let log = std::fs::read_to_string(self.dirs[i].join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// host:port of every server, comma-separated (loadgen's --connect).
    pub fn connect(&self) -> String {
        (0..self.size())
            .map(|i| self.addr(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Client port of server `i`.
    pub fn port(&self, i: usize) -> u16 {
        self.ports[i]
    }

    /// host:port of server `i`.
    pub fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i])
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(|c| c.id()).collect()
    }

    pub fn pid(&self, i: usize) -> u32 {
        self.children[i].id()
    }

    /// Server `i`'s dataDir (which also holds its zoo.cfg and server.log).
    pub fn dir(&self, i: usize) -> &Path {
        &self.dirs[i]
    }

    pub fn size(&self) -> usize {
        self.children.len()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            // A server already killed and reaped refuses a second kill;
            // nothing is left to stop then.
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
