"""Start and stop the servers the Python suites talk to.

- ZooKeeperServer: the real Apache ZooKeeper 3.8 from Debian's `zookeeper`
  package, standalone, run as plain
  `java -cp /usr/share/java/zookeeper.jar[:slf4j-log4j12.jar:log4j-1.2.jar]
   org.apache.zookeeper.server.quorum.QuorumPeerMain zoo.cfg`
  (zookeeper.jar's manifest Class-Path pulls in its dependencies).
- CorralServer: the corral binary from $CORRAL_BIN (default
  <repo>/target/debug/corral), run as
  `$CORRAL_BIN server --client-port PORT --data-dir DIR [--no-admin-server] $CORRAL_EXTRA`.
  The admin server's default port (8080) would be shared by every test
  server on the machine, so it is off unless the arguments configure it
  (`--admin-port` or `--admin-address`); ZooKeeperServer sets
  admin.enableServer=false likewise.

Each server gets a free port on 127.0.0.1 (never assumes 2181) and a fresh
temporary directory; start() waits until `ruok` answers `imok`; stop() kills
the process and removes the directory.

Environment hooks, so one suite runs against either server:
  TARGET        corral (default) or zookeeper: which server the `server`
                pytest fixture (conftest.py) starts.
  CORRAL_BIN    path of the corral binary.
  CORRAL_EXTRA  extra corral arguments (shell-split). Default:
                `--four-letter-words * --extended-types
                --container-check-interval 500 --pre-alloc-size 4096`,
                which matches what ZooKeeperServer configures (all 4lw
                allowed, TTL nodes on, containers and expired TTL nodes
                reaped every 500 ms); 4 MiB log segments instead of 64 keep
                the many short-lived servers light on /tmp.
  ZK_EXTRA      extra zoo.cfg lines for ZooKeeper, separated by ';'
                (e.g. `ZK_EXTRA='maxClientCnxns=10;jute.maxbuffer=2000'`).
  ZK_JVM_EXTRA  extra JVM arguments for ZooKeeper (shell-split), e.g.
                `-Dzookeeper.extendedTypesEnabled=false`.
  KEEP_SERVER_DIRS=1  keep the temporary directories (logs) after stop().
"""

import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DEFAULT_CORRAL_BIN = os.path.join(REPO, "target", "debug", "corral")
JAVA_DIR = "/usr/share/java"
ZK_JAR = os.path.join(JAVA_DIR, "zookeeper.jar")
ZK_LOG_JARS = [os.path.join(JAVA_DIR, "slf4j-log4j12.jar"), os.path.join(JAVA_DIR, "log4j-1.2.jar")]
# Match what ZooKeeperServer configures: every 4lw allowed, TTL nodes on, and
# empty containers / expired TTL nodes reaped every 500 ms (ZooKeeper: 60 s).
CONTAINER_CHECK_MS = 500
DEFAULT_CORRAL_EXTRA = (f"--four-letter-words * --extended-types --container-check-interval {CONTAINER_CHECK_MS} "
                        "--pre-alloc-size 4096")


def corral_bin():
    return os.environ.get("CORRAL_BIN", DEFAULT_CORRAL_BIN)


def free_port():
    """A port that was free a moment ago on 127.0.0.1 (start() retries on a race)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def four_letter_word(port, word, host="127.0.0.1", timeout=5.0):
    """Send a four-letter word over a raw socket; return the whole reply as str."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode())
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
    return out.decode(errors="replace")


class BaseServer:
    kind = "?"
    # What the server is expected to support; tests consult these.
    ttl = True
    # What `srvr` says in its Mode line.
    mode = "standalone"

    def __init__(self):
        self.port = None
        self.dir = None
        self.proc = None
        self.log_path = None
        self._log = None

    @property
    def hosts(self):
        return f"127.0.0.1:{self.port}"

    def fourlw(self, word, timeout=5.0):
        return four_letter_word(self.port, word, timeout=timeout)

    def log(self, tail=6000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-tail:]
        except (OSError, TypeError):
            return ""

    def _spawn(self):
        raise NotImplementedError

    def start(self, timeout=40.0, attempts=3):
        last = None
        for _ in range(attempts):
            self.dir = tempfile.mkdtemp(prefix=f"corral-pytest-{self.kind}-")
            self.port = free_port()
            self.log_path = os.path.join(self.dir, "server.log")
            self._log = open(self.log_path, "w")
            self._spawn()
            try:
                self._wait_ready(timeout)
                return self
            except RuntimeError as e:
                last = e
                self.stop()
        raise last

    def _wait_ready(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited early (rc={self.proc.returncode}):\n{self.log()}")
            try:
                # ZooKeeper answers ruok before it serves requests ("This
                # ZooKeeper instance is not currently serving requests" from
                # srvr), so wait for srvr as well.
                if self.fourlw("ruok", timeout=1.0) == "imok" and \
                        "not currently serving" not in self.fourlw("srvr", timeout=1.0):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} did not answer ruok within {timeout}s:\n{self.log()}")

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.dir and not os.environ.get("KEEP_SERVER_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class ZooKeeperServer(BaseServer):
    """Apache ZooKeeper 3.8 standalone (Debian's package)."""

    kind = "zookeeper"

    def __init__(self, extra_cfg=None, jvm_args=None, extended_types=True):
        super().__init__()
        self.extra_cfg = list(extra_cfg or [])
        env_cfg = os.environ.get("ZK_EXTRA", "")
        self.extra_cfg += [l.strip() for l in env_cfg.split(";") if l.strip()]
        self.jvm_args = list(jvm_args or []) + shlex.split(os.environ.get("ZK_JVM_EXTRA", ""))
        self.extended_types = extended_types
        self.ttl = extended_types

    @staticmethod
    def available():
        return os.path.exists(ZK_JAR) and shutil.which("java") is not None

    @staticmethod
    def unavailable_reason():
        if not os.path.exists(ZK_JAR):
            return f"{ZK_JAR} missing (apt-get install zookeeper; see .ci/install-deps.sh)"
        return "java not on PATH"

    def classpath(self):
        return ":".join([ZK_JAR] + [j for j in ZK_LOG_JARS if os.path.exists(j)])

    def _spawn(self):
        data = os.path.join(self.dir, "data")
        os.makedirs(data)
        cfg = os.path.join(self.dir, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write("tickTime=2000\n"
                    f"dataDir={data}\n"
                    f"clientPort={self.port}\n"
                    "clientPortAddress=127.0.0.1\n"
                    "4lw.commands.whitelist=*\n"
                    "admin.enableServer=false\n"
                    "maxClientCnxns=0\n")
            for line in self.extra_cfg:
                f.write(line + "\n")
        l4j = os.path.join(self.dir, "log4j.properties")
        with open(l4j, "w") as f:
            f.write("log4j.rootLogger=INFO, F\n"
                    "log4j.appender.F=org.apache.log4j.ConsoleAppender\n"
                    "log4j.appender.F.layout=org.apache.log4j.PatternLayout\n"
                    "log4j.appender.F.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n\n")
        cmd = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               f"-Dlog4j.configuration=file:{l4j}",
               f"-Dzookeeper.extendedTypesEnabled={'true' if self.extended_types else 'false'}",
               f"-Dznode.container.checkIntervalMs={CONTAINER_CHECK_MS}",
               *self.jvm_args,
               "-cp", self.classpath(), "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)


class CorralServer(BaseServer):
    """corral, started from $CORRAL_BIN."""

    kind = "corral"

    def __init__(self, extra_args=None, extended_types=True):
        super().__init__()
        self.bin = corral_bin()
        self.extra_args = shlex.split(os.environ.get("CORRAL_EXTRA", DEFAULT_CORRAL_EXTRA))
        self.extra_args += list(extra_args or [])
        if not extended_types:
            self.extra_args = [a for a in self.extra_args if a != "--extended-types"]
        self.ttl = "--extended-types" in self.extra_args

    @staticmethod
    def available():
        return os.path.isfile(corral_bin()) and os.access(corral_bin(), os.X_OK)

    @staticmethod
    def unavailable_reason():
        return (f"corral binary not found at {corral_bin()} "
                "(build it with `cargo build -p net`, or set CORRAL_BIN)")

    def _spawn(self):
        cmd = [self.bin, "server", "--client-port", str(self.port), "--data-dir", os.path.join(self.dir, "data")]
        if not any(a in ("--admin-port", "--admin-address") for a in self.extra_args):
            cmd.append("--no-admin-server")
        cmd += self.extra_args
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)


class CorralEnsembleServer(CorralServer):
    """Three corral processes forming an ensemble; clients are pointed at a
    follower, so every write, sync and session goes through forwarding to
    the leader and back, and every read and watch is served by a follower.
    The same flags as CorralServer (CORRAL_EXTRA) on each member."""

    kind = "corral-ensemble"
    mode = "follower"
    SIZE = 3

    def __init__(self, extra_args=None, extended_types=True):
        super().__init__(extra_args, extended_types)
        self.members = []

    def start(self, timeout=60.0, attempts=1):
        self.dir = tempfile.mkdtemp(prefix="corral-pytest-ensemble-")
        ports = [(free_port(), free_port(), free_port()) for _ in range(self.SIZE)]
        lines = "".join(f"server.{i + 1}=127.0.0.1:{q}:{e}\n" for i, (_, q, e) in enumerate(ports))
        self.members = []
        for i, (client, _, _) in enumerate(ports):
            d = os.path.join(self.dir, f"s{i + 1}")
            os.makedirs(d)
            with open(os.path.join(d, "myid"), "w") as f:
                f.write(f"{i + 1}\n")
            cfg = os.path.join(d, "zoo.cfg")
            with open(cfg, "w") as f:
                f.write(f"tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={d}\n"
                        f"clientPort={client}\nclientPortAddress=127.0.0.1\n{lines}")
            log = open(os.path.join(d, "server.log"), "w")
            cmd = [self.bin, "server", "--zoo-cfg", cfg, "--cores", "1", "--no-admin-server", *self.extra_args]
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self.members.append({"port": client, "proc": proc, "log": log,
                                 "log_path": os.path.join(d, "server.log")})
        deadline = time.time() + timeout
        while True:
            modes = [self._mode(m["port"]) for m in self.members]
            if all(m in ("leader", "follower") for m in modes):
                break
            for m in self.members:
                if m["proc"].poll() is not None:
                    raise RuntimeError(f"an ensemble member exited:\n{self._read(m['log_path'])}")
            if time.time() > deadline:
                raise RuntimeError(f"the ensemble did not form: {modes}\n{self.log()}")
            time.sleep(0.1)
        follower = next(m for m, mode in zip(self.members, modes) if mode == "follower")
        self.port = follower["port"]
        self.log_path = follower["log_path"]
        return self

    @staticmethod
    def _mode(port):
        try:
            out = four_letter_word(port, "srvr", timeout=1.0)
        except OSError:
            return None
        for line in out.splitlines():
            if line.startswith("Mode: "):
                return line[len("Mode: "):]
        return None

    @staticmethod
    def _read(path):
        try:
            with open(path, errors="replace") as f:
                return f.read()[-6000:]
        except OSError:
            return ""

    def log(self, tail=6000):
        return "\n".join(self._read(m["log_path"])[-tail:] for m in self.members)

    def stop(self):
        for m in self.members:
            if m["proc"].poll() is None:
                m["proc"].kill()
            try:
                m["proc"].wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            m["log"].close()
        self.members = []
        if self.dir and not os.environ.get("KEEP_SERVER_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)


SERVERS = {"corral": CorralServer, "zookeeper": ZooKeeperServer,
           "corral-ensemble": CorralEnsembleServer}


def target():
    t = os.environ.get("TARGET", "corral")
    if t not in SERVERS:
        raise ValueError(f"TARGET must be one of {sorted(SERVERS)}, not {t!r}")
    return t


if __name__ == "__main__":
    # Manual use: python3 servers.py [zookeeper|corral] -- start one and wait.
    import sys
    kind = sys.argv[1] if len(sys.argv) > 1 else "zookeeper"
    srv = SERVERS[kind]()
    srv.start()
    print(f"{kind} on {srv.hosts} in {srv.dir}; Ctrl-C stops it", flush=True)
    try:
        while srv.proc.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
