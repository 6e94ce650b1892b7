//! Starts a corral ensemble on 127.0.0.1: one process per server, each
//! with its own free client, quorum and election ports, data directory,
//! `myid` and `zoo.cfg`, started as an operator would
//! (`corral server --zoo-cfg PATH`). Dropping the ensemble kills every
//! process and removes the directories (kept when a test panics).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Member {
    pub id: u64,
    pub client_port: u16,
    pub admin_port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    stopped: bool,
}

impl Member {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("corral.log")).unwrap_or_default()
    }

    pub fn four_letter_word(&self, w: &str) -> Option<String> {
        super::four_letter_word(self.client_port, w, Duration::from_secs(2))
    }

    /// "leader", "follower", "observer", or None while not serving.
    pub fn mode(&self) -> Option<String> {
        let srvr = self.four_letter_word("srvr")?;
        srvr.lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(str::to_string)
    }

    /// GET /commands/<name> from the admin server, as JSON text.
    pub fn admin_command(&self, name: &str) -> String {
        self.admin_get(&format!("/commands/{name}"))
    }

    /// The body of a GET on the admin server.
    pub fn admin_get(&self, path: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.admin_port)).expect("admin server");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn spawn(&mut self, extra: &[String]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("corral.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_corral"))
            .arg("server")
            .arg("--zoo-cfg")
            .arg(self.dir.join("zoo.cfg"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start corral");
        self.child = Some(child);
        self.stopped = false;
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on a child we started and have not reaped.
        unsafe {
            libc::kill(self.pid() as libc::pid_t, sig);
        }
    }
}

pub struct Ensemble {
    pub members: Vec<Member>,
    extra: Vec<String>,
}

impl Ensemble {
    /// `n` voting servers with `cfg` appended to every zoo.cfg (e.g.
    /// `commitLogCount=20`), each run with `extra` arguments; returns once
    /// all of them serve.
    pub fn start(n: usize, cfg: &str, extra: &[&str]) -> Ensemble {
        Ensemble::start_with_observers(n, 0, cfg, extra)
    }

    /// `voters` participants (ids 1..) and then `observers` observers.
    pub fn start_with_observers(
        voters: usize,
        observers: usize,
        cfg: &str,
        extra: &[&str],
    ) -> Ensemble {
        let n = voters + observers;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        // Four ports per server, all distinct: held open together while
        // chosen, so the kernel cannot hand one out twice.
        let held: Vec<std::net::TcpListener> = (0..4 * n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let port = |i: usize| held[i].local_addr().unwrap().port();
        let ports: Vec<(u16, u16, u16)> = (0..n)
            .map(|i| (port(4 * i), port(4 * i + 1), port(4 * i + 2)))
            .collect();
        let admin_ports: Vec<u16> = (0..n).map(|i| port(4 * i + 3)).collect();
        drop(held);
        let servers: String = ports
            .iter()
            .enumerate()
            .map(|(i, (_, q, e))| {
                let role = if i < voters { "" } else { ":observer" };
                format!("server.{}=127.0.0.1:{q}:{e}{role}\n", i + 1)
            })
            .collect();
        let mut members = Vec::new();
        for (i, (client, _, _)) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let dir = std::env::temp_dir().join(format!(
                "corral-ensemble-{}-{stamp}-{id}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("myid"), format!("{id}\n")).unwrap();
            // Short ticks keep failure detection quick: a follower that
            // does not hear from its leader for syncLimit ticks (1 s)
            // looks for another.
            let zoo = format!(
                "tickTime=200\ninitLimit=25\nsyncLimit=5\ndataDir={}\nclientPort={client}\n\
                 clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nadmin.serverAddress=127.0.0.1\n\
                 admin.serverPort={admin}\n\
                 preAllocSize=4096\n{servers}{cfg}\n",
                dir.display(),
                admin = admin_ports[i],
            );
            std::fs::write(dir.join("zoo.cfg"), zoo).unwrap();
            members.push(Member {
                id,
                client_port: *client,
                admin_port: admin_ports[i],
                dir,
                child: None,
                stopped: false,
            });
        }
        let mut e = Ensemble {
            members,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for i in 0..n {
            e.members[i].spawn(&e.extra);
        }
        e.wait_serving(&(0..n).collect::<Vec<_>>());
        e
    }

    /// The connect string naming every server.
    pub fn connect_string(&self) -> String {
        self.members
            .iter()
            .map(|m| m.addr())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every listed member serves (as leader or follower) and
    /// they agree there is exactly one leader among the serving ones.
    pub fn wait_serving(&self, which: &[usize]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let modes: Vec<Option<String>> =
                which.iter().map(|&i| self.members[i].mode()).collect();
            let serving = modes
                .iter()
                .all(|m| matches!(m.as_deref(), Some("leader" | "follower" | "observer")));
            if serving {
                return;
            }
            if Instant::now() > deadline {
                self.dump_logs();
                panic!("servers {which:?} did not all serve: {modes:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The index of the member that says it leads.
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len()).find(|&i| {
            !self.members[i].stopped && self.members[i].mode().as_deref() == Some("leader")
        })
    }

    pub fn wait_leader(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(l) = self.leader() {
                return l;
            }
            if Instant::now() > deadline {
                self.dump_logs();
                panic!("no leader elected");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts a killed member again (same directory and configuration).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let extra = self.extra.clone();
        self.members[i].spawn(&extra);
    }

    /// SIGSTOP: the process freezes with its sockets open (a long GC pause).
    pub fn pause(&mut self, i: usize) {
        self.members[i].signal(libc::SIGSTOP);
        self.members[i].stopped = true;
    }

    pub fn resume(&mut self, i: usize) {
        self.members[i].signal(libc::SIGCONT);
        self.members[i].stopped = false;
    }

    pub fn dump_logs(&self) {
        for m in &self.members {
            eprintln!("---- server {} ({}) ----", m.id, m.dir.display());
            let log = m.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            if self.members[i].stopped {
                self.resume(i);
            }
            self.kill(i);
        }
        if std::thread::panicking() {
            self.dump_logs();
            return;
        }
        for m in &self.members {
            let _ = std::fs::remove_dir_all(&m.dir);
        }
    }
}
