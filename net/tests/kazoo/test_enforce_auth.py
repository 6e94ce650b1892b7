"""enforce.auth.enabled / enforce.auth.schemes, against corral and ZooKeeper 3.8.

With enforcement on, a session that has not authenticated with one of the
required schemes gets SessionClosedRequireSasl (-124) for its first request
other than auth, and its connection closes (ZooKeeper's
AuthenticationHelper.enforceAuthentication). Sessions that authenticate
first work as usual.
"""

import os
import socket
import tempfile

import pytest
from kazoo.client import KazooClient

import rawzk
import servers
from rawzk import RawClient, buf, i32, ustr

ENFORCE = ["enforce.auth.enabled=true", "enforce.auth.schemes=digest"]
SESSION_CLOSED_REQUIRE_SASL = -124


def start_server(kind, **kwargs):
    """As conftest's (not imported: pytest may load another conftest module
    under that name when it collects net/tests/kazoo/ensemble too)."""
    cls = servers.SERVERS[kind]
    if not cls.available():
        pytest.skip(f"TARGET={kind}: {cls.unavailable_reason()}")
    return cls(**kwargs).start()


@pytest.fixture(scope="module")
def enforcing():
    kind = servers.target()
    if kind == "corral-ensemble":
        pytest.skip("a standalone server of its own configuration")
    tmp = tempfile.mkdtemp(prefix="corral-enforce-")
    if kind == "zookeeper":
        srv = start_server(kind, extra_cfg=ENFORCE)
    else:
        cfg = os.path.join(tmp, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write("\n".join(ENFORCE) + "\n")
        srv = start_server(kind, extra_args=["--zoo-cfg", cfg])
    yield srv
    srv.stop()


def closed(c):
    """True once the server has closed the raw connection."""
    c.sock.settimeout(5)
    try:
        while True:
            if not c.sock.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def auth_digest(c, user=b"alice:secret"):
    hdr, _ = c.call("auth", i32(0) + ustr("digest") + buf(user), xid=-4)
    return hdr


@pytest.mark.parametrize("op,body", [
    ("getData", rawzk.path_req("/")),
    ("create", rawzk.create_req("/not-allowed")),
    ("whoAmI", b""),
])
def test_unauthenticated_request_is_refused_and_connection_closed(enforcing, op, body):
    c = RawClient(enforcing.port)
    hdr, _ = c.call(op, body, xid=7)
    assert (hdr.xid, hdr.err) == (7, SESSION_CLOSED_REQUIRE_SASL)
    assert closed(c)


def test_ping_of_an_unauthenticated_session_is_refused(enforcing):
    c = RawClient(enforcing.port)
    hdr, _ = c.call("ping", b"", xid=-2)
    assert hdr.err == SESSION_CLOSED_REQUIRE_SASL
    assert closed(c)


def test_authenticated_session_is_served(enforcing):
    c = RawClient(enforcing.port)
    assert auth_digest(c).err == 0
    hdr, _ = c.call("create", rawzk.create_req("/enforced-raw", b"x"))
    assert hdr.err in (0, -110)  # -110: NodeExists on a rerun
    hdr, r = c.call("whoAmI")
    assert hdr.err == 0
    ids = sorted((r.ustr(), r.ustr()) for _ in range(r.i32()))
    assert ("digest", "alice") in ids
    c.close_session()


def test_kazoo_with_auth_data_works(enforcing):
    zk = KazooClient(hosts=enforcing.hosts, auth_data=[("digest", "bob:pw")], timeout=10)
    zk.start(timeout=15)
    try:
        zk.ensure_path("/enforced-kazoo")
        zk.set("/enforced-kazoo", b"v")
        assert zk.get("/enforced-kazoo")[0] == b"v"
    finally:
        zk.stop()
        zk.close()


def test_refused_session_can_still_authenticate_on_a_new_connection(enforcing):
    """The refusal closes the connection; what becomes of the session is
    compared with ZooKeeper: re-attaching it and authenticating works or
    not the same way on both."""
    c = RawClient(enforcing.port)
    sid, pw = c.session_id, c.passwd
    hdr, _ = c.call("exists", rawzk.path_req("/"), xid=3)
    assert hdr.err == SESSION_CLOSED_REQUIRE_SASL
    assert closed(c)
    again = RawClient(enforcing.port, session_id=sid, passwd=pw)
    if again.session_id != sid:
        pytest.fail(f"re-attach of 0x{sid:x} refused (got 0x{again.session_id:x})")
    assert auth_digest(again).err == 0
    hdr, _ = again.call("exists", rawzk.path_req("/"))
    assert hdr.err == 0
    again.close_session()
