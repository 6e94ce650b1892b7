"""Client TLS with real clients: kazoo and raw TLS sockets against the
secure client port, beside the plain one, from one zoo.cfg that Apache
ZooKeeper 3.8 and corral both read (tls_servers.py).

    TARGET=zookeeper python3 -m pytest -q net/tests/tls   # proves the tests encode ZooKeeper
    python3 -m pytest -q net/tests/tls                    # corral (TARGET=corral, the default)

With ssl.clientAuth=need:
- a client with a certificate from the trusted CA gets a session over TLS,
  creates, reads and watches znodes, and sees the same tree as a plain
  client on clientPort at the same time (and each sees the other's writes
  and fires the other's watches);
- a certificate from another CA, an expired certificate, no certificate,
  and a plaintext ZooKeeper connect request on the secure port all get no
  session; so does a client that verifies the server against another CA
  (the client refuses the server);
- the server logs each refusal (ZooKeeper: "Unsuccessful handshake" and
  the cause; corral: a line containing "TLS", whatever else it says);
- after all that the server still serves TLS and plain clients.
With ssl.clientAuth=none, a client without a certificate gets a session.

A refusal is checked twice: by a raw probe (TLS handshake, then a
ConnectRequest frame; refused = the handshake fails or the connection is
closed without a ConnectResponse, within a few seconds), and by kazoo,
whose start() must time out. Where the refusal happens depends on the TLS
version: ZooKeeper 3.8 enables only TLSv1.2 by default, so a bad client
certificate fails the handshake; with TLSv1.3 the client's handshake
completes before the server has checked its certificate, and the refusal
arrives as an alert on the first read. The probe accepts both.
"""

import os
import re
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
import uuid
from collections import namedtuple

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from kazoo.client import KazooClient  # noqa: E402
from kazoo.handlers.threading import KazooTimeoutError  # noqa: E402
from kazoo.protocol.states import EventType  # noqa: E402

import tls_servers  # noqa: E402

# Seconds a refused kazoo client keeps trying before start() gives up.
REFUSED_START_TIMEOUT = 4.0
# Seconds a refused raw probe waits for the server to close the connection.
PROBE_TIMEOUT = 5.0
# Seconds to wait for a refusal to reach the server log.
LOG_WAIT = 5.0
WATCH_WAIT = 10.0


def target():
    t = os.environ.get("TARGET", "corral")
    if t not in tls_servers.TLS_SERVERS:
        pytest.skip(f"TARGET={t}: the TLS tests run against a standalone zookeeper or corral")
    return t


# ---- fixtures -----------------------------------------------------------------

@pytest.fixture(scope="session")
def certs():
    d = tempfile.mkdtemp(prefix="corral-tls-certs-")
    tls_servers.gen_certs(d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def start_server(certs, client_auth):
    kind = target()
    cls = tls_servers.TLS_SERVERS[kind]
    if not cls.available():
        pytest.skip(f"TARGET={kind}: {cls.unavailable_reason()}")
    return cls(certs, client_auth).start()


@pytest.fixture(scope="module")
def need_server(certs):
    """ssl.clientAuth=need: every TLS client must present a trusted certificate."""
    srv = start_server(certs, "need")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def none_server(certs):
    """ssl.clientAuth=none: the server asks no client for a certificate."""
    srv = start_server(certs, "none")
    yield srv
    srv.stop()


@pytest.fixture
def clients():
    """Factory for kazoo clients; all are stopped afterwards."""
    made = []

    def make(hosts, **kwargs):
        kwargs.setdefault("timeout", 10.0)
        c = KazooClient(hosts=hosts, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


def tls_kwargs(certs, cert="client", ca="ca"):
    """kazoo arguments for a TLS client presenting `cert` (None: no
    certificate) and verifying the server, host name included, against `ca`."""
    kw = dict(use_ssl=True, ca=os.path.join(certs, f"{ca}.pem"), verify_certs=True, check_hostname=True)
    if cert is not None:
        kw.update(certfile=os.path.join(certs, f"{cert}.crt"), keyfile=os.path.join(certs, f"{cert}.key"))
    return kw


def tls_client(clients, server, certs, cert="client", ca="ca"):
    c = clients(server.secure_hosts, **tls_kwargs(certs, cert, ca))
    c.start(timeout=15)
    return c


def plain_client(clients, server):
    c = clients(server.hosts)
    c.start(timeout=15)
    return c


def unique(name):
    return f"/tls-{name}-{uuid.uuid4().hex[:8]}"


# ---- raw probe ----------------------------------------------------------------

Probe = namedtuple("Probe", "outcome detail session_id tls_version peer_cert")


def _recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError(f"closed by the server after {len(out)}/{n} bytes")
        out += chunk
    return out


def _frame(payload):
    return struct.pack(">i", len(payload)) + payload


def connect_request(timeout_ms=10000):
    # protocolVersion, lastZxidSeen, timeOut, sessionId, passwd (16 zero bytes), readOnly
    return struct.pack(">iqiq", 0, 0, timeout_ms, 0) + struct.pack(">i", 16) + b"\0" * 16 + b"\0"


def probe(port, certs, cert=None, ca="ca", tls=True, maximum_version=None):
    """Connect to `port`, optionally with TLS, and ask for a session.

    outcome is one of
      "session"   a ConnectResponse with a session id (then closed with closeSession),
      "handshake" the TLS handshake failed (detail: the exception),
      "closed"    the server closed or reset the connection, or sent a TLS
                  alert, without a ConnectResponse,
      "timeout"   the server neither answered nor closed within PROBE_TIMEOUT.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT)
    try:
        version = peer = None
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(os.path.join(certs, f"{ca}.pem"))
            ctx.check_hostname = True
            if maximum_version is not None:
                ctx.maximum_version = maximum_version
            if cert is not None:
                ctx.load_cert_chain(os.path.join(certs, f"{cert}.crt"), os.path.join(certs, f"{cert}.key"))
            try:
                sock = ctx.wrap_socket(sock, server_hostname="127.0.0.1")
            except socket.timeout as e:
                return Probe("timeout", repr(e), None, None, None)
            except OSError as e:  # ssl.SSLError, reset, EOF
                return Probe("handshake", repr(e), None, None, None)
            version = sock.version()
            peer = sock.getpeercert(binary_form=True)
        try:
            sock.sendall(_frame(connect_request()))
            (n,) = struct.unpack(">i", _recv_exact(sock, 4))
            if not 28 <= n <= 1024:
                # Not a ConnectResponse: e.g. a TLS alert record sent in the clear.
                return Probe("closed", f"non-ZooKeeper reply, length field {n:#x}", None, version, peer)
            body = _recv_exact(sock, n)
        except socket.timeout as e:
            return Probe("timeout", repr(e), None, version, peer)
        except OSError as e:  # ssl.SSLError (alert), ConnectionError, reset
            return Probe("closed", repr(e), None, version, peer)
        _, _, session_id = struct.unpack(">iiq", body[:16])
        # closeSession (xid 1, type -11), so the probe leaves no session behind.
        try:
            sock.sendall(_frame(struct.pack(">ii", 1, -11)))
            (n,) = struct.unpack(">i", _recv_exact(sock, 4))
            _recv_exact(sock, n)
        except OSError:
            pass
        return Probe("session", "", session_id, version, peer)
    finally:
        sock.close()


def pem_to_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


# ---- log checks ----------------------------------------------------------------

# What ZooKeeper 3.8 logs for each refusal: NettyServerCnxnFactory's
# "Unsuccessful handshake with session 0x0" (ERROR) and "Exception caught"
# (WARN) with the cause. corral's wording is its own: the check only asks
# for a new line containing "TLS" (any case).
ZK_HANDSHAKE = r"Unsuccessful handshake"
ZK_CAUSES = {
    "rogue_ca_client_cert": r"PKIX path building failed|unable to find valid certification path",
    "expired_client_cert": r"CertificateExpiredException|validity check failed",
    "no_client_cert": r"Empty client certificate chain",
    "plaintext_connect": r"NotSslRecordException|not an SSL/TLS record",
    "client_distrusts_server": r"unknown_ca",
}
CORRAL_TLS_LINE = re.compile(r"tls", re.IGNORECASE)


def expect_refusal_logged(server, offset, case):
    """The server's log since `offset` mentions the refusal `case`."""
    deadline = time.time() + LOG_WAIT
    while True:
        text = server.log_since(offset)
        if server.kind == "zookeeper":
            ok = re.search(ZK_HANDSHAKE, text) and re.search(ZK_CAUSES[case], text)
            want = f"/{ZK_HANDSHAKE}/ and /{ZK_CAUSES[case]}/"
        else:
            ok = any(CORRAL_TLS_LINE.search(line) for line in text.splitlines())
            want = "a line containing 'TLS'"
        if ok:
            return
        if time.time() > deadline:
            pytest.fail(f"{server.kind} logged no refusal for {case} (wanted {want}); "
                        f"log since the attempt:\n{text[-3000:]}")
        time.sleep(0.1)


# ---- the refusals, shared by the refusal tests and the after-refusals test ----

REFUSALS = {
    # name: probe arguments, kazoo arguments (None: plaintext kazoo)
    "rogue_ca_client_cert": dict(cert="rogue-client"),
    "expired_client_cert": dict(cert="expired-client"),
    "no_client_cert": dict(cert=None),
    "plaintext_connect": dict(tls=False),
    "client_distrusts_server": dict(cert="client", ca="rogue-ca"),
}


def refused_probe(server, certs, case):
    p = probe(server.secure_port, certs, **REFUSALS[case])
    assert p.outcome != "timeout", f"{case}: {server.kind} neither answered nor closed: {p.detail}"
    assert p.outcome in ("handshake", "closed"), f"{case}: got a session {p.session_id:#x}"
    return p


def kazoo_refused(clients, server, certs, case):
    args = REFUSALS[case]
    if args.get("tls", True):
        kw = tls_kwargs(certs, args.get("cert"), args.get("ca", "ca"))
    else:
        kw = {}
    c = clients(server.secure_hosts, **kw)
    with pytest.raises(KazooTimeoutError):
        c.start(timeout=REFUSED_START_TIMEOUT)
    assert not c.connected


# ---- clientAuth=need: good clients ----------------------------------------------

def test_tls_client_creates_reads_and_watches(need_server, certs, clients):
    a = tls_client(clients, need_server, certs)
    b = tls_client(clients, need_server, certs)
    base = unique("crud")
    assert a.create(base, b"over tls") == base
    data, stat = a.get(base)
    assert data == b"over tls"
    assert stat.version == 0

    # A data watch set over TLS fires for a change made over TLS.
    events = []
    fired = threading.Event()

    def watch(ev):
        events.append(ev)
        fired.set()

    a.get(base, watch=watch)
    b.set(base, b"v1")
    assert fired.wait(WATCH_WAIT), "data watch did not fire"
    assert (events[0].type, events[0].path) == (EventType.CHANGED, base)
    assert a.get(base)[0] == b"v1"

    # A child watch, and an ephemeral node that goes with its TLS session.
    fired.clear()
    events.clear()
    a.get_children(base, watch=watch)
    b.create(f"{base}/e", b"eph", ephemeral=True)
    assert fired.wait(WATCH_WAIT), "child watch did not fire"
    assert (events[0].type, events[0].path) == (EventType.CHILD, base)
    assert a.get(f"{base}/e")[1].ephemeralOwner == b.client_id[0]

    fired.clear()
    events.clear()
    assert a.exists(f"{base}/e", watch=watch) is not None
    b.stop()
    assert fired.wait(WATCH_WAIT), "closing the TLS session did not delete its ephemeral node"
    assert (events[0].type, events[0].path) == (EventType.DELETED, f"{base}/e")
    a.delete(base)
    assert a.exists(base) is None


def test_plain_and_tls_clients_share_the_tree(need_server, certs, clients):
    tls = tls_client(clients, need_server, certs)
    plain = plain_client(clients, need_server)
    base = unique("shared")
    tls.create(base, b"from tls")
    assert plain.get(base)[0] == b"from tls"
    plain.create(f"{base}/p", b"from plain")
    assert tls.get(f"{base}/p")[0] == b"from plain"
    assert sorted(tls.get_children(base)) == sorted(plain.get_children(base)) == ["p"]

    # Watches cross the two ports in both directions.
    for watcher, writer, value in ((tls, plain, b"plain wrote"), (plain, tls, b"tls wrote")):
        fired = threading.Event()
        events = []
        watcher.get(base, watch=lambda ev: (events.append(ev), fired.set()))
        writer.set(base, value)
        assert fired.wait(WATCH_WAIT), "watch across ports did not fire"
        assert (events[0].type, events[0].path) == (EventType.CHANGED, base)
        assert watcher.get(base)[0] == value
    plain.delete(f"{base}/p")
    tls.delete(base)


def test_server_presents_its_certificate(need_server, certs):
    p = probe(need_server.secure_port, certs, cert="client")
    assert p.outcome == "session", p
    assert p.session_id != 0
    assert p.peer_cert == pem_to_der(os.path.join(certs, "server.crt"))


def test_tls12_client_gets_a_session(need_server, certs):
    # ZooKeeper 3.8's Java client enables only TLSv1.2 by default
    # (ssl.protocol=TLSv1.2), so the server must speak it.
    p = probe(need_server.secure_port, certs, cert="client", maximum_version=ssl.TLSVersion.TLSv1_2)
    assert p.outcome == "session", p
    assert p.tls_version == "TLSv1.2"


# ---- clientAuth=need: refusals ----------------------------------------------------

@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused(need_server, certs, clients, case):
    offset = need_server.log_size()
    p = refused_probe(need_server, certs, case)
    if case == "client_distrusts_server":
        assert p.outcome == "handshake" and "CERTIFICATE_VERIFY_FAILED" in p.detail, p
    expect_refusal_logged(need_server, offset, case)
    kazoo_refused(clients, need_server, certs, case)
    assert need_server.alive()


def test_still_serves_after_refusals(need_server, certs, clients):
    # Every kind of refusal again, several times, then both ports must work.
    for _ in range(3):
        for case in REFUSALS:
            refused_probe(need_server, certs, case)
    assert need_server.alive()
    assert need_server.fourlw("ruok") == "imok"
    tls = tls_client(clients, need_server, certs)
    plain = plain_client(clients, need_server)
    base = unique("after")
    tls.create(base, b"still")
    assert plain.get(base)[0] == b"still"
    plain.set(base, b"serving")
    assert tls.get(base)[0] == b"serving"
    tls.delete(base)
    assert probe(need_server.secure_port, certs, cert="client").outcome == "session"


# ---- clientAuth=none --------------------------------------------------------------

def test_client_auth_none_accepts_a_client_without_certificate(none_server, certs, clients):
    p = probe(none_server.secure_port, certs, cert=None)
    assert p.outcome == "session", p
    c = tls_client(clients, none_server, certs, cert=None)
    plain = plain_client(clients, none_server)
    base = unique("nocert")
    c.create(base, b"no client cert")
    assert plain.get(base)[0] == b"no client cert"
    assert c.get(base)[0] == b"no client cert"
    c.delete(base)


def test_client_auth_none_accepts_a_client_with_certificate(none_server, certs, clients):
    c = tls_client(clients, none_server, certs, cert="client")
    base = unique("withcert")
    c.create(base, b"x")
    assert c.get(base)[0] == b"x"
    c.delete(base)


def test_client_auth_none_client_still_verifies_the_server(none_server, certs, clients):
    p = probe(none_server.secure_port, certs, cert=None, ca="rogue-ca")
    assert p.outcome == "handshake" and "CERTIFICATE_VERIFY_FAILED" in p.detail, p
    c = clients(none_server.secure_hosts, **tls_kwargs(certs, None, "rogue-ca"))
    with pytest.raises(KazooTimeoutError):
        c.start(timeout=REFUSED_START_TIMEOUT)


def test_client_auth_none_refuses_plaintext_on_the_secure_port(none_server, certs):
    p = probe(none_server.secure_port, certs, tls=False)
    assert p.outcome == "closed", p
