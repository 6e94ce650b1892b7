"""Start a 3-server ensemble (Apache ZooKeeper 3.8 or corral) whose
server-to-server links all pass through the fault proxy (proxy.py).

How the proxy gets in the way without the servers knowing: every server has
its OWN zoo.cfg. In server i's file, its own line `server.i=...` carries its
real quorum and election ports (it listens there), while every other line
`server.j=...` points at two proxy listeners, "i->j quorum" and "i->j
election", which forward to j's real ports. So every connection server i
opens to server j goes through a link named for that direction, and
isolating server k means dropping every link into or out of k:

    server.1=127.0.0.1:Q1:E1        <- in 1's zoo.cfg: real ports
    server.2=127.0.0.1:P12q:P12e    <- proxy "1->2" -> Q2, E2
    server.3=127.0.0.1:P13q:P13e    <- proxy "1->3" -> Q3, E3

Clients talk to the servers' client ports directly (no proxy), so a client
of an isolated server sees what it would in a real partition: a server that
has lost its quorum.

Both servers run from the same zoo.cfg (tickTime, initLimit, syncLimit,
dataDir with `myid`, clientPort, server.N lines, all four-letter words,
admin server off):
  zookeeper  java -cp /usr/share/java/zookeeper.jar:... QuorumPeerMain zoo.cfg
  corral     $CORRAL_BIN server --zoo-cfg zoo.cfg --no-admin-server $ENSEMBLE_CORRAL_EXTRA

Each server keeps its data directory across stop/kill/restart, and appends
to one log, <dir>/s<N>/server.log. KEEP_SERVER_DIRS=1 keeps the directory.

Manual use: `python3 cluster.py zookeeper` starts one and prints its state.
"""

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # net/tests/kazoo: servers.py

import servers  # noqa: E402
from proxy import Proxy  # noqa: E402

# tickTime is short to keep the test fast: with 300 ms, a follower notices a
# dead leader in syncLimit * tick = 1.5 s and sessions may be 0.6..6 s long.
TICK_MS = int(os.environ.get("ENSEMBLE_TICK_MS", "300"))
INIT_LIMIT = 10
SYNC_LIMIT = 5
DEFAULT_CORRAL_EXTRA = "--pre-alloc-size 4096"


class Member:
    """One server of the ensemble: ports, directory, process."""

    def __init__(self, sid, root):
        self.sid = sid
        self.dir = os.path.join(root, f"s{sid}")
        self.data_dir = os.path.join(self.dir, "data")
        self.cfg_path = os.path.join(self.dir, "zoo.cfg")
        self.log_path = os.path.join(self.dir, "server.log")
        self.client_port = None
        self.quorum_port = None
        self.election_port = None
        self.proc = None
        self.paused = False
        self.stopped = False  # stopped or killed on purpose
        self.starts = 0

    @property
    def hosts(self):
        return f"127.0.0.1:{self.client_port}"

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def fourlw(self, word, timeout=1.0):
        return servers.four_letter_word(self.client_port, word, timeout=timeout)

    def mode(self):
        """leader, follower, observer, standalone; "down", "paused" or "not serving"."""
        if not self.running():
            return "down"
        if self.paused:
            return "paused"
        try:
            out = self.fourlw("srvr")
        except OSError:
            return "not serving"
        for line in out.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return "not serving"

    def log(self, tail=4000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-tail:]
        except OSError:
            return ""


class Ensemble:
    """A 3-server ensemble behind the fault proxy; see the module doc."""

    def __init__(self, kind, size=3, tick_ms=TICK_MS):
        if kind not in ("zookeeper", "corral"):
            raise ValueError(f"kind must be zookeeper or corral, not {kind!r}")
        self.kind = kind
        self.size = size
        self.tick_ms = tick_ms
        self.root = None
        self.proxy = None
        self.members = {}
        self.isolated = set()
        self.events = []  # (monotonic time, text): what was done to the ensemble
        self.crashes = []  # (sid, exit code, log tail): exits nobody asked for

    # --- lifecycle ----------------------------------------------------------

    @staticmethod
    def available(kind):
        cls = servers.SERVERS[kind]
        return cls.available(), cls.unavailable_reason()

    def start(self, timeout=60.0, attempts=3):
        last = None
        for _ in range(attempts):
            self.root = tempfile.mkdtemp(prefix=f"corral-ensemble-{self.kind}-")
            self.proxy = Proxy()
            try:
                self._configure()
                for sid in self.members:
                    self.spawn(sid)
                self.wait_until_serving(timeout)
                return self
            except RuntimeError as e:
                last = e
                self.close()
        raise last

    def _configure(self):
        self.members = {sid: Member(sid, self.root) for sid in range(1, self.size + 1)}
        for m in self.members.values():
            os.makedirs(m.data_dir)
            with open(os.path.join(m.data_dir, "myid"), "w") as f:
                f.write(f"{m.sid}\n")
            m.client_port = servers.free_port()
            m.quorum_port = servers.free_port()
            m.election_port = servers.free_port()
        for i, mi in self.members.items():
            lines = []
            for j, mj in self.members.items():
                if i == j:
                    q, e = mj.quorum_port, mj.election_port
                else:
                    q = self.proxy.add_link(link_name(i, j, "quorum"), mj.quorum_port)
                    e = self.proxy.add_link(link_name(i, j, "election"), mj.election_port)
                lines.append(f"server.{j}=127.0.0.1:{q}:{e}")
            with open(mi.cfg_path, "w") as f:
                f.write(f"tickTime={self.tick_ms}\n"
                        f"initLimit={INIT_LIMIT}\n"
                        f"syncLimit={SYNC_LIMIT}\n"
                        f"dataDir={mi.data_dir}\n"
                        f"clientPort={mi.client_port}\n"
                        "clientPortAddress=127.0.0.1\n"
                        "4lw.commands.whitelist=*\n"
                        "admin.enableServer=false\n"
                        "maxClientCnxns=0\n"
                        + "".join(line + "\n" for line in lines))

    def _command(self, m):
        if self.kind == "corral":
            extra = shlex.split(os.environ.get("ENSEMBLE_CORRAL_EXTRA", DEFAULT_CORRAL_EXTRA))
            return [servers.corral_bin(), "server", "--zoo-cfg", m.cfg_path, "--no-admin-server", *extra]
        l4j = os.path.join(m.dir, "log4j.properties")
        if not os.path.exists(l4j):
            with open(l4j, "w") as f:
                f.write("log4j.rootLogger=INFO, F\n"
                        "log4j.appender.F=org.apache.log4j.ConsoleAppender\n"
                        "log4j.appender.F.layout=org.apache.log4j.PatternLayout\n"
                        "log4j.appender.F.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n\n")
        classpath = ":".join([servers.ZK_JAR] + [j for j in servers.ZK_LOG_JARS if os.path.exists(j)])
        return ["java", "-Xmx192m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                f"-Dlog4j.configuration=file:{l4j}", "-Dzookeeper.admin.enableServer=false",
                *shlex.split(os.environ.get("ZK_JVM_EXTRA", "")),
                "-cp", classpath, "org.apache.zookeeper.server.quorum.QuorumPeerMain", m.cfg_path]

    def spawn(self, sid):
        self.check_crashes()
        m = self.members[sid]
        assert not m.running(), f"server {sid} is already running"
        m.starts += 1
        with open(m.log_path, "a") as log:
            log.write(f"\n==== start #{m.starts} of server {sid} ====\n")
            log.flush()
            m.proc = subprocess.Popen(self._command(m), stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        m.paused = False
        m.stopped = False
        self._event(f"start s{sid} (pid {m.proc.pid})")

    def close(self):
        for m in self.members.values():
            if m.proc is not None:
                if m.paused:
                    self._signal(m, signal.SIGCONT)
                if m.proc.poll() is None:
                    m.proc.kill()
                try:
                    m.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None
        if self.root and not os.environ.get("KEEP_SERVER_DIRS"):
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # --- faults -------------------------------------------------------------

    def _event(self, text):
        self.events.append((time.monotonic(), text))

    def check_crashes(self):
        """Record every server that exited without being stopped; returns the new ones.

        Every action calls it first, so a crash is not masked by a later
        kill or restart of the same server. A crashed server counts as stopped
        from then on (spawn() starts it again).
        """
        new = []
        for sid, m in self.members.items():
            if m.proc is not None and not m.stopped and m.proc.poll() is not None:
                m.stopped = True
                m.paused = False
                crash = (sid, m.proc.returncode, m.log(4000))
                self.crashes.append(crash)
                self.events.append((time.monotonic(), f"s{sid} exited by itself (rc={m.proc.returncode})"))
                new.append(crash)
        return new

    @staticmethod
    def _signal(m, sig):
        try:
            m.proc.send_signal(sig)
        except ProcessLookupError:
            pass

    def stop(self, sid, timeout=15.0):
        """Graceful stop: SIGTERM, then SIGKILL if it lingers."""
        self.check_crashes()
        m = self.members[sid]
        if m.paused:
            self.resume(sid)
        self._signal(m, signal.SIGTERM)
        try:
            m.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            m.proc.kill()
            m.proc.wait(timeout=10)
        m.stopped = True
        self._event(f"stop s{sid}")

    def kill(self, sid):
        """kill -9."""
        self.check_crashes()
        m = self.members[sid]
        m.proc.kill()
        m.proc.wait(timeout=10)
        m.paused = False
        m.stopped = True
        self._event(f"kill -9 s{sid}")

    def pause(self, sid):
        """SIGSTOP: the process is frozen, its sockets stay open."""
        self.check_crashes()
        m = self.members[sid]
        self._signal(m, signal.SIGSTOP)
        m.paused = True
        self._event(f"SIGSTOP s{sid}")

    def resume(self, sid):
        self.check_crashes()
        m = self.members[sid]
        self._signal(m, signal.SIGCONT)
        m.paused = False
        self._event(f"SIGCONT s{sid}")

    def restart(self, sid, graceful=True):
        if graceful:
            self.stop(sid)
        else:
            self.kill(sid)
        self.spawn(sid)

    def partition(self, sid):
        """Isolate server sid: drop every link into or out of it, both directions."""
        self.check_crashes()
        names = [n for n in self.proxy.links if sid in link_ends(n)]
        self.proxy.set_mode(names, "drop")
        self.isolated.add(sid)
        self._event(f"partition s{sid} from the others")

    def heal(self):
        self.check_crashes()
        self.proxy.set_all("pass")
        self.isolated.clear()
        self._event("heal")

    def delay(self, delay_ms):
        """Add latency to every server-to-server link."""
        self.check_crashes()
        self.proxy.set_all("delay", delay_ms)
        self._event(f"delay all links {delay_ms} ms")

    # --- observation ----------------------------------------------------------

    @property
    def connect_string(self):
        return ",".join(m.hosts for m in self.members.values())

    def hosts(self, sid):
        return self.members[sid].hosts

    def modes(self):
        return {sid: m.mode() for sid, m in self.members.items()}

    def leader(self):
        """The sid whose srvr says "Mode: leader" (the first one if several), or None."""
        for sid, mode in self.modes().items():
            if mode == "leader":
                return sid
        return None

    def followers(self):
        return [sid for sid, mode in self.modes().items() if mode == "follower"]

    def wait_until_serving(self, timeout=60.0, sids=None):
        """Wait until the given servers (default: all running, not paused, not
        isolated) are leader or follower, with exactly one leader among them."""
        deadline = time.monotonic() + timeout
        modes = {}
        while time.monotonic() < deadline:
            for sid, rc, log in self.check_crashes():
                raise RuntimeError(f"server {sid} exited by itself (rc={rc}):\n{log}")
            want = sids if sids is not None else [
                sid for sid, m in self.members.items()
                if m.running() and not m.paused and sid not in self.isolated]
            modes = {sid: self.members[sid].mode() for sid in want}
            if all(mode in ("leader", "follower") for mode in modes.values()) and \
                    list(modes.values()).count("leader") == 1:
                return modes
            time.sleep(0.1)
        logs = "\n".join(f"--- server {sid} log tail ---\n{m.log(2500)}" for sid, m in self.members.items())
        raise RuntimeError(f"{self.kind} ensemble not serving within {timeout}s: {modes}\n{logs}")


def link_name(src, dst, port):
    return f"{src}->{dst} {port}"


def link_ends(name):
    src, rest = name.split("->")
    return int(src), int(rest.split()[0])


if __name__ == "__main__":
    kind = sys.argv[1] if len(sys.argv) > 1 else "zookeeper"
    ens = Ensemble(kind)
    ens.start()
    print(f"{kind} ensemble in {ens.root}: {ens.connect_string}; modes {ens.modes()}; Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        ens.close()
