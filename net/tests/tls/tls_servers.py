"""Start and stop a server with client TLS, from one zoo.cfg both servers read.

The zoo.cfg (only keys that corral accepts as well as ZooKeeper):

    tickTime=2000
    dataDir=<dir>/data
    clientPort=<free port>
    secureClientPort=<free port>
    serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory
    ssl.keyStore.location=<certs>/server.pem
    ssl.keyStore.type=PEM
    ssl.trustStore.location=<certs>/ca.pem
    ssl.trustStore.type=PEM
    ssl.clientAuth=need|none
    4lw.commands.whitelist=*
    admin.enableServer=false

- TlsZooKeeperServer: Debian's Apache ZooKeeper 3.8,
  `java -cp zookeeper.jar:netty-codec.jar:netty-resolver.jar:slf4j-log4j12.jar:log4j-1.2.jar
   org.apache.zookeeper.server.quorum.QuorumPeerMain zoo.cfg`.
  zookeeper.jar's manifest Class-Path names netty-handler but not
  netty-codec, which netty's SslHandler extends: without it every TLS
  connection fails with NoClassDefFoundError
  io/netty/handler/codec/ByteToMessageDecoder (the plain port works).
- TlsCorralServer: `$CORRAL_BIN server --zoo-cfg zoo.cfg --cores 1`.

Both bind no fixed port (free ports, so 2181 may be in use), log to
<dir>/server.log, are ready once `ruok` on the plain port answers `imok`,
`srvr` says it serves, and the secure port accepts TCP connections, and
are killed (directory removed) by stop().

The base class and helpers come from ../kazoo/servers.py, so CORRAL_BIN,
TARGET and KEEP_SERVER_DIRS mean the same as in the Python suite.
"""

import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "kazoo"))

import servers  # noqa: E402
from servers import BaseServer, corral_bin, free_port  # noqa: E402

GEN_CERTS = os.path.join(HERE, "gen-certs.sh")
ZK_TLS_JARS = [os.path.join(servers.JAVA_DIR, j) for j in ("netty-codec.jar", "netty-resolver.jar")]


def gen_certs(directory):
    """Run gen-certs.sh into `directory`; returns `directory`."""
    subprocess.run(["bash", GEN_CERTS, directory], check=True)
    return directory


def zoo_cfg(data_dir, client_port, secure_port, certs, client_auth):
    return ("tickTime=2000\n"
            f"dataDir={data_dir}\n"
            f"clientPort={client_port}\n"
            f"secureClientPort={secure_port}\n"
            "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n"
            f"ssl.keyStore.location={os.path.join(certs, 'server.pem')}\n"
            "ssl.keyStore.type=PEM\n"
            f"ssl.trustStore.location={os.path.join(certs, 'ca.pem')}\n"
            "ssl.trustStore.type=PEM\n"
            f"ssl.clientAuth={client_auth}\n"
            "4lw.commands.whitelist=*\n"
            "admin.enableServer=false\n")


class TlsServerMixin:
    """What both TLS servers add to BaseServer: a secure port, the zoo.cfg,
    and a log that can be read from an offset."""

    def __init__(self, certs, client_auth="need"):
        super().__init__()
        self.certs = certs
        self.client_auth = client_auth
        self.secure_port = None
        self.cfg_path = None

    @property
    def secure_hosts(self):
        return f"127.0.0.1:{self.secure_port}"

    def _write_cfg(self):
        self.secure_port = free_port()
        while self.secure_port == self.port:
            self.secure_port = free_port()
        data = os.path.join(self.dir, "data")
        os.makedirs(data)
        self.cfg_path = os.path.join(self.dir, "zoo.cfg")
        with open(self.cfg_path, "w") as f:
            f.write(zoo_cfg(data, self.port, self.secure_port, self.certs, self.client_auth))

    def _wait_ready(self, timeout):
        deadline = time.time() + timeout
        super()._wait_ready(timeout)
        # ZooKeeper starts the plain factory before the secure one, so
        # `ruok` can answer before the secure port is bound.
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.secure_port), timeout=1.0).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.kind}: secure port {self.secure_port} not open within {timeout}s:\n{self.log()}")

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except (OSError, TypeError):
            return 0

    def log_since(self, offset):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except (OSError, TypeError):
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class TlsZooKeeperServer(TlsServerMixin, BaseServer):
    kind = "zookeeper"

    @staticmethod
    def available():
        return all(os.path.exists(j) for j in [servers.ZK_JAR] + ZK_TLS_JARS) and \
            servers.shutil.which("java") is not None

    @staticmethod
    def unavailable_reason():
        return (f"needs {servers.ZK_JAR}, {' '.join(ZK_TLS_JARS)} and java "
                "(apt-get install zookeeper libnetty-java)")

    def _spawn(self):
        self._write_cfg()
        l4j = os.path.join(self.dir, "log4j.properties")
        with open(l4j, "w") as f:
            f.write("log4j.rootLogger=INFO, F\n"
                    "log4j.appender.F=org.apache.log4j.ConsoleAppender\n"
                    "log4j.appender.F.layout=org.apache.log4j.PatternLayout\n"
                    "log4j.appender.F.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n\n")
        cp = ":".join([servers.ZK_JAR] + ZK_TLS_JARS + [j for j in servers.ZK_LOG_JARS if os.path.exists(j)])
        cmd = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               f"-Dlog4j.configuration=file:{l4j}",
               "-cp", cp, "org.apache.zookeeper.server.quorum.QuorumPeerMain", self.cfg_path]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)


class TlsCorralServer(TlsServerMixin, BaseServer):
    kind = "corral"

    @staticmethod
    def available():
        return servers.CorralServer.available()

    @staticmethod
    def unavailable_reason():
        return servers.CorralServer.unavailable_reason()

    def _spawn(self):
        self._write_cfg()
        cmd = [corral_bin(), "server", "--zoo-cfg", self.cfg_path, "--cores", "1"]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)


TLS_SERVERS = {"zookeeper": TlsZooKeeperServer, "corral": TlsCorralServer}


if __name__ == "__main__":
    # Manual use: python3 tls_servers.py [zookeeper|corral] [need|none]
    import shutil
    import tempfile
    kind = sys.argv[1] if len(sys.argv) > 1 else "zookeeper"
    auth = sys.argv[2] if len(sys.argv) > 2 else "need"
    certs = gen_certs(tempfile.mkdtemp(prefix="corral-tls-certs-"))
    srv = TLS_SERVERS[kind](certs, auth)
    srv.start()
    print(f"{kind}: plain {srv.hosts}, TLS {srv.secure_hosts}, certs in {certs}, dir {srv.dir}; "
          "Ctrl-C stops it", flush=True)
    try:
        while srv.alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
        shutil.rmtree(certs, ignore_errors=True)
