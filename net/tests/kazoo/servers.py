"""Start and stop real servers for the Python suites: corral (the binary
from CORRAL_BIN) and Apache ZooKeeper 3.8 from Debian's `zookeeper` package
(plain `java -cp ... QuorumPeerMain zoo.cfg`). Each gets a free port and a
temporary directory; stop() kills the process and removes the directory."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
CORRAL_BIN = os.environ.get("CORRAL_BIN", os.path.join(REPO, "target", "debug", "corral"))
ZK_JARS = ["/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def four_letter_word(port, word, timeout=5.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word.encode())
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out.decode()
            out += chunk


class Server:
    kind = "?"

    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=f"corral-py-{self.kind}-")
        self.proc = None
        self.log_path = os.path.join(self.dir, "server.log")

    @property
    def hosts(self):
        return f"127.0.0.1:{self.port}"

    def _wait_ready(self, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited early:\n{self.log()}")
            try:
                if four_letter_word(self.port, "ruok", 1.0) == "imok":
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} did not start:\n{self.log()}")

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


class Corral(Server):
    kind = "corral"

    @staticmethod
    def available():
        return os.access(CORRAL_BIN, os.X_OK)

    def start(self, *extra):
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [CORRAL_BIN, "server", "--client-port", str(self.port), "--data-dir", os.path.join(self.dir, "data"),
             "--four-letter-words", "*", "--pre-alloc-size", "4096", "--extended-types", *extra],
            stdout=subprocess.DEVNULL, stderr=log)
        self._wait_ready()
        return self


class ZooKeeper(Server):
    kind = "zookeeper"

    @staticmethod
    def available():
        return all(os.path.exists(j) for j in ZK_JARS[:1]) and shutil.which("java") is not None

    def start(self, *extra):
        data = os.path.join(self.dir, "data")
        os.makedirs(data)
        cfg = os.path.join(self.dir, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(f"tickTime=2000\ndataDir={data}\nclientPort={self.port}\n"
                    "4lw.commands.whitelist=*\nadmin.enableServer=false\nmaxClientCnxns=0\n")
        cp = ":".join(j for j in ZK_JARS if os.path.exists(j))
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            ["java", "-Xmx512m", "-Dzookeeper.extendedTypesEnabled=true", "-cp", cp,
             "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg],
            stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()
        return self
