"""Wire-level behaviour kazoo hides, checked with the raw jute client in
rawzk.py against the server under test (TARGET=corral or zookeeper). Every
assertion holds on Apache ZooKeeper 3.8 (see docs/internals/zk-facts.md for the evidence)."""

import time
import uuid

import pytest

import rawzk
from rawzk import MULTI_END, RawClient, boolean, buf, i32, i64, ustr
from rawzk import multi_header as mh

@pytest.fixture
def raw(server):
    c = RawClient(server.port)
    yield c
    c.close()


@pytest.fixture
def base(raw):
    path = f"/raw-{uuid.uuid4().hex[:10]}"
    hdr, _ = raw.call("create", rawzk.create_req(path))
    assert hdr.err == 0
    return path


def events(c, n, timeout=5.0):
    """Collect n watch events on a raw client (pinging to drain the socket)."""
    deadline = time.time() + timeout
    while len(c.events) < n and time.time() < deadline:
        c.sock.settimeout(max(0.1, deadline - time.time()))
        hdr, _ = c.call("ping", xid=-2)
        assert hdr.xid == -2
        if len(c.events) < n:
            time.sleep(0.05)
    return c.events[:]


# --- multi ---------------------------------------------------------------------

def test_failed_multi_header_err_is_ok(raw, base):
    body = (mh("create") + rawzk.create_req(f"{base}/a") +
            mh("create") + rawzk.create_req(f"{base}/missing/x") +
            mh("setData") + rawzk.set_data_req(base, b"z") + MULTI_END)
    hdr, r = raw.call("multi", body)
    assert hdr.err == 0
    # earlier ops: error 0 (rolled back); the failing op: its code; later ops: -2
    assert r.multi() == [("error", 0), ("error", -101), ("error", -2)]
    hdr, _ = raw.call("exists", rawzk.path_req(f"{base}/a"))
    assert hdr.err == -101


def test_successful_multi_results(raw, base):
    body = (mh("create") + rawzk.create_req(f"{base}/a", b"1") +
            mh("setData") + rawzk.set_data_req(f"{base}/a", b"22", 0) +
            mh("check") + ustr(f"{base}/a") + i32(1) +
            mh("delete") + rawzk.delete_req(f"{base}/a", 1) + MULTI_END)
    hdr, r = raw.call("multi", body)
    assert hdr.err == 0
    res = r.multi()
    assert res[0] == ("create", f"{base}/a")
    assert res[1][0] == "setData" and res[1][1].version == 1 and res[1][1].dataLength == 2
    assert res[2:] == [("check",), ("delete",)]


def test_empty_multi(raw):
    hdr, r = raw.call("multi", MULTI_END)
    assert hdr.err == 0
    assert r.rest() == MULTI_END


def test_multi_read(raw, base):
    raw.call("setData", rawzk.set_data_req(base, b"d"))
    body = (mh("getData") + rawzk.path_req(base) + mh("getData") + rawzk.path_req(f"{base}/none") +
            mh("getChildren") + rawzk.path_req(base) + MULTI_END)
    hdr, r = raw.call("multiRead", body)
    assert hdr.err == 0
    res = r.multi()
    assert res[0][0:2] == ("getData", b"d")
    assert res[1] == ("error", -101)
    assert res[2] == ("getChildren", [])


# --- exists, paths -------------------------------------------------------------

def test_exists_missing_is_nonode_with_empty_body_and_leaves_watch(server, raw, base):
    hdr, r = raw.call("exists", rawzk.path_req(f"{base}/n", watch=True))
    assert hdr.err == -101 and r.rest() == b""
    other = RawClient(server.port)
    assert other.call("create", rawzk.create_req(f"{base}/n"))[0].err == 0
    other.close()
    assert events(raw, 1) == [(1, 3, f"{base}/n")]  # NodeCreated, SyncConnected


@pytest.mark.parametrize("path", ["noslash", "/a/", "/a//b", "/a/./b", "/a/../b"])
def test_read_of_malformed_path_is_nonode(raw, path):
    hdr, _ = raw.call("getData", rawzk.path_req(path))
    assert hdr.err == -101


@pytest.mark.parametrize("suffix", ["/", "/.", "/..", "/x\u0000y", "/x\u0001"])
def test_create_malformed_path_under_existing_parent_is_bad_arguments(raw, base, suffix):
    hdr, _ = raw.call("create", rawzk.create_req(base + suffix))
    assert hdr.err == -8


@pytest.mark.parametrize("suffix", ["//x", "/./x", "/../x"])
def test_create_malformed_path_with_missing_parent_is_nonode(raw, base, suffix):
    # the parent ("base/", "base/.", "base/..") is looked up first and is not there
    hdr, _ = raw.call("create", rawzk.create_req(base + suffix))
    assert hdr.err == -101


def test_create_malformed_paths(raw):
    assert raw.call("create", rawzk.create_req("noslash"))[0].err == -8
    assert raw.call("create", rawzk.create_req(""))[0].err == -8
    # the parent is looked up before the path is validated
    assert raw.call("create", rawzk.create_req("/nonexistent-parent/"))[0].err == -101


def test_unicode_path(raw, base):
    hdr, r = raw.call("create", rawzk.create_req(f"{base}/\u00e9\u4e2d"))
    assert hdr.err == 0 and r.ustr() == f"{base}/\u00e9\u4e2d"


def test_empty_acl_list_is_invalid_acl(raw, base):
    hdr, _ = raw.call("create", rawzk.create_req(f"{base}/n", acl=[]))
    assert hdr.err == -114


# --- limits and unknown requests ---------------------------------------------

def test_frame_length_limit_is_jute_maxbuffer(server, raw, base):
    # A request frame (after the 4-byte length) of up to 0xfffff bytes is
    # accepted; one byte more and the server closes the connection.
    overhead = 8 + 4 + len(base) + 4 + 4  # header, path, data length, version
    c = RawClient(server.port)
    hdr, _ = c.call("setData", rawzk.set_data_req(base, b"x" * (0xFFFFF - overhead)))
    assert hdr.err == 0
    c.close()
    c = RawClient(server.port)
    c.send("setData", rawzk.set_data_req(base, b"x" * (0xFFFFF - overhead + 1)))
    with pytest.raises((ConnectionError, OSError)):
        c.recv()
    c.close()


def test_unknown_opcode_is_unimplemented_then_closed(server):
    c = RawClient(server.port)
    hdr, _ = c.call(999, b"")
    assert hdr.err == -6 and hdr.xid == 1
    with pytest.raises((ConnectionError, OSError)):
        c.call("exists", rawzk.path_req("/"))
    c.close()


def test_sasl_without_sasl_configured(server):
    c = RawClient(server.port)
    hdr, r = c.call("sasl", buf(b"token"))
    assert hdr.err == 0 and r.rest() == i32(-1)  # SetSASLResponse with a null token
    assert c.call("exists", rawzk.path_req("/"))[0].err == 0
    c.close()


def test_reconfig_disabled(zk):
    from kazoo.exceptions import ReconfigDisabledError
    with pytest.raises(ReconfigDisabledError):
        zk.reconfig(joining="server.2=127.0.0.1:2888:3888", leaving=None, new_members=None)


def test_who_am_i(server):
    c = RawClient(server.port)
    hdr, r = c.call("whoAmI")
    assert hdr.err == 0
    n = r.i32()
    assert [(r.ustr(), r.ustr()) for _ in range(n)] == [("ip", "127.0.0.1")]
    hdr, _ = c.call("auth", i32(0) + ustr("digest") + buf(b"carol:pw"), xid=-4)
    assert hdr.err == 0 and hdr.xid == -4
    hdr, r = c.call("whoAmI")
    ids = sorted((r.ustr(), r.ustr()) for _ in range(r.i32()))
    assert ids == [("digest", "carol"), ("ip", "127.0.0.1")]
    c.close()


def test_get_ephemerals_and_all_children_number(server, raw, base):
    c = RawClient(server.port)
    for n in ("e1", "e2"):
        assert c.call("create", rawzk.create_req(f"{base}/{n}", flags=1))[0].err == 0
    assert raw.call("create", rawzk.create_req(f"{base}/p"))[0].err == 0
    assert raw.call("create", rawzk.create_req(f"{base}/p/q"))[0].err == 0
    hdr, r = c.call("getEphemerals", ustr(base))
    assert hdr.err == 0 and sorted(r.strings()) == [f"{base}/e1", f"{base}/e2"]
    hdr, r = raw.call("getEphemerals", ustr(base))
    assert hdr.err == 0 and r.strings() == []
    hdr, r = raw.call("getAllChildrenNumber", ustr(base))
    assert hdr.err == 0 and r.i32() == 4
    c.close()


def test_check_and_remove_watches_without_watch(raw, base):
    assert raw.call("checkWatches", ustr(base) + i32(1))[0].err == -121
    assert raw.call("removeWatches", ustr(base) + i32(3))[0].err == -121


# --- sessions ------------------------------------------------------------------

def test_handshake_clamps_timeout(server):
    lo = RawClient(server.port, timeout_ms=100)
    hi = RawClient(server.port, timeout_ms=10_000_000)
    assert lo.negotiated_timeout == 4000 and hi.negotiated_timeout == 40000  # 2 and 20 ticks
    assert lo.session_id != hi.session_id and len(lo.passwd) == 16
    lo.close()
    hi.close()


def test_reconnect_with_wrong_password_is_expired(server):
    a = RawClient(server.port)
    sid = a.session_id
    a.close()
    b = RawClient(server.port, connect=False)
    b.send_frame(i32(0) + i64(0) + i32(10000) + i64(sid) + buf(b"\x01" * 16) + boolean(False))
    r = rawzk.Reader(b.recv_frame())
    r.i32()
    assert r.i32() == 0  # timeout 0: the session is expired for this client
    b.close()


def test_ping_and_close_session(server):
    c = RawClient(server.port)
    hdr, _ = c.call("ping", xid=-2)
    assert hdr.xid == -2 and hdr.err == 0
    hdr, _ = c.call("closeSession")
    assert hdr.err == 0
    c.sock.settimeout(5)
    assert c.sock.recv(1) == b""  # and the server closes the connection
    c.close()


def test_reply_xids_follow_requests_in_order(raw, base):
    xids = [raw.send("exists", rawzk.path_req(base)) for _ in range(5)]
    xids += [raw.send("create", rawzk.create_req(f"{base}/n{i}")) for i in range(5)]
    xids += [raw.send("getChildren", rawzk.path_req(base)) for _ in range(3)]
    got = [raw.recv()[0].xid for _ in xids]
    assert got == xids


# --- persistent and recursive watches (addWatch, opcode 106) ----------------

def add_watch(c, path, mode):
    hdr, r = c.call("addWatch", ustr(path) + i32(mode))
    assert hdr.err == 0 and r.rest() == i32(0)  # ZooKeeper answers with an ErrorResponse(0)


def test_persistent_watch(server, raw, base):
    add_watch(raw, f"{base}/n", 0)
    w = RawClient(server.port)
    w.call("create", rawzk.create_req(f"{base}/n"))
    w.call("setData", rawzk.set_data_req(f"{base}/n", b"1"))
    w.call("setData", rawzk.set_data_req(f"{base}/n", b"2"))
    w.call("create", rawzk.create_req(f"{base}/n/c"))
    w.call("setData", rawzk.set_data_req(f"{base}/n/c", b"child data: not watched"))
    w.call("delete", rawzk.delete_req(f"{base}/n/c"))
    w.call("delete", rawzk.delete_req(f"{base}/n"))
    w.close()
    p = f"{base}/n"
    assert events(raw, 7) == [(1, 3, p), (3, 3, p), (3, 3, p), (4, 3, p), (4, 3, p), (2, 3, p)]


def test_persistent_recursive_watch(server, raw, base):
    add_watch(raw, base, 1)
    w = RawClient(server.port)
    w.call("create", rawzk.create_req(f"{base}/a"))
    w.call("create", rawzk.create_req(f"{base}/a/b"))
    w.call("setData", rawzk.set_data_req(f"{base}/a/b", b"1"))
    w.call("delete", rawzk.delete_req(f"{base}/a/b"))
    w.call("setData", rawzk.set_data_req(base, b"x"))
    w.close()
    # no NodeChildrenChanged in recursive mode
    assert events(raw, 5) == [(1, 3, f"{base}/a"), (1, 3, f"{base}/a/b"), (3, 3, f"{base}/a/b"),
                              (2, 3, f"{base}/a/b"), (3, 3, base)]


def test_remove_persistent_watch(server, raw, base):
    add_watch(raw, base, 0)
    # ZooKeeper 3.8 answers MarshallingError for WatcherType Persistent (4) and
    # PersistentRecursive (5) here; Any (3) finds and removes a persistent watch.
    assert raw.call("checkWatches", ustr(base) + i32(3))[0].err == 0
    assert raw.call("removeWatches", ustr(base) + i32(3))[0].err == 0
    assert raw.call("checkWatches", ustr(base) + i32(3))[0].err == -121
    w = RawClient(server.port)
    w.call("setData", rawzk.set_data_req(base, b"1"))
    w.close()
    assert events(raw, 1, timeout=1.0) == []

