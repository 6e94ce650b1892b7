"""Wire-level behaviour kazoo hides, checked with the raw jute client in
rawzk.py against the server under test (TARGET=corral or zookeeper). Every
assertion holds on Apache ZooKeeper 3.8 (see docs/internals/zk-facts.md for the evidence)."""

import time
import uuid

import pytest

import kazoo_ext
import rawzk
import servers
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


def test_malformed_write_is_an_error_transaction_and_a_malformed_read_is_not(fresh_server):
    # A request whose body does not deserialise is answered MarshallingError
    # (-5) with an empty body, and the connection stays. For the opcodes
    # PrepRequestProcessor turns into transactions (create*, delete, setData,
    # setACL, check, multi) the header, and so the next zxid, is taken before
    # the body is read: an error transaction, reply zxid last + 1. Reads,
    # multiRead, sync and reconfig (deserialised before anything else) take
    # none. A server of its own, so that no other session's expiry takes a
    # zxid in between.
    srv = fresh_server()
    c = RawClient(srv.port)
    try:
        z = c.call("create", rawzk.create_req("/m"))[0].zxid
        truncated = i32(100) + b"/ab"
        mixed = mh("getData") + rawzk.path_req("/m") + MULTI_END  # a read inside a multi
        for op, body, takes_zxid in [("create", truncated, True), ("setData", ustr("/m") + buf(b"x"), True),
                                     ("delete", truncated, True), ("multi", mixed, True),
                                     ("getChildren", truncated, False), ("sync", i32(10), False),
                                     ("multiRead", mh("create") + rawzk.create_req("/n") + MULTI_END, False),
                                     ("reconfig", ustr("x"), False), ("checkWatches", ustr("/m") + i32(7), False)]:
            hdr, r = c.call(op, body)
            z += takes_zxid
            assert (op, hdr.err, hdr.zxid) == (op, -5, z)
            # (ZooKeeper's multiRead error still carries an empty result
            # list, ffffffff01ffffffff, which clients ignore after err -5.)
            assert op == "multiRead" or r.rest() == b""
        # A null path: setData validates it first (BadArguments), getData
        # dereferences it (MarshallingError).
        hdr, _ = c.call("setData", ustr(None) + buf(b"x") + i32(-1))
        assert (hdr.err, hdr.zxid) == (-8, z + 1)
        assert c.call("getData", ustr(None) + boolean(False))[0][1:] == (z + 1, -5)
        # Bytes after a whole request are ignored.
        hdr, r = c.call("getData", rawzk.path_req("/m") + b"xyz")
        assert hdr.err == 0 and r.buf() == b""
        assert c.call("create", rawzk.create_req("/n"))[0].zxid == z + 2
    finally:
        c.close()


@pytest.mark.parametrize("frame", [b"", i32(1), i32(1) + b"\0\0\0"], ids=["empty", "xid", "7-bytes"])
def test_frame_shorter_than_its_header_closes_the_connection(server, frame):
    # Not a request at all (no xid and opcode to answer): the server closes
    # the connection without a reply.
    c = RawClient(server.port)
    try:
        c.send_frame(frame)
        with pytest.raises((ConnectionError, OSError)):
            c.recv()
    finally:
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


# --- where corral used to differ from ZooKeeper 3.8 -------------------------
#
# Each test states ZooKeeper's behaviour exactly (it passes with
# TARGET=zookeeper); docs/internals/zk-facts.md has the bytes ZooKeeper sends.
# A newly found difference is pinned here first, marked
# `@pytest.mark.xfail(ON_CORRAL, strict=True, reason="corral differs: ...")`
# and listed in zk-facts.md ("Where corral differs"): the xfail is strict, so
# once corral is fixed the test XPASSes, which fails the run, and whoever
# fixed it deletes the marker.

ON_CORRAL = servers.target() == "corral"
ROOT_READS = [("getData", rawzk.path_req), ("exists", rawzk.path_req), ("getChildren", rawzk.path_req),
              ("getChildren2", rawzk.path_req), ("getACL", ustr)]


@pytest.mark.parametrize("op,body", ROOT_READS, ids=[op for op, _ in ROOT_READS])
def test_read_of_empty_path_is_the_root(raw, op, body):
    # ZooKeeper's DataTree keys the root under "" as well as "/" (which is also
    # why a fresh server counts 5 nodes), and reads do not validate paths: a
    # read of "" answers exactly what a read of "/" does. getData "" on a
    # fresh server: 00000001 0000000000000001 00000000 | 00000000 (data "") |
    # Stat(0, 0, 0, 0, 0, cversion -1, 0, 0, 0, numChildren 1, 0).
    hdr_root, r_root = raw.call(op, body("/"))
    hdr, r = raw.call(op, body(""))
    assert (hdr.err, hdr_root.err) == (0, 0)
    assert r.rest() == r_root.rest()


@pytest.mark.parametrize("op", ["getData", "exists"])
def test_null_path_is_marshalling_error_and_keeps_connection(raw, op):
    # A path string with length -1 cannot be deserialised: ZooKeeper answers
    # ReplyHeader(xid, last zxid, -5 MarshallingError) with an empty body
    # (00000001 <zxid> fffffffb) and keeps the connection.
    hdr, r = raw.call(op, ustr(None) + boolean(False))
    assert (hdr.xid, hdr.err) == (1, -5) and r.rest() == b""
    assert raw.call("exists", rawzk.path_req("/"))[0].err == 0


def test_truncated_request_body_is_marshalling_error_and_keeps_connection(raw):
    # getData whose path claims 100 bytes but the frame ends after 3: ZooKeeper
    # answers ReplyHeader(xid, last zxid, -5) with an empty body and keeps the
    # connection.
    hdr, r = raw.call("getData", i32(100) + b"/ab")
    assert (hdr.xid, hdr.err) == (1, -5) and r.rest() == b""
    assert raw.call("exists", rawzk.path_req("/"))[0].err == 0


def test_unknown_opcode_reply_zxid_is_minus_one(server):
    # ZooKeeper sends exactly 00000010 00000001 ffffffffffffffff fffffffa
    # (length 16, xid 1, zxid -1, err -6 Unimplemented) and then closes the
    # connection (test_unknown_opcode_is_unimplemented_then_closed).
    c = RawClient(server.port)
    try:
        c.send(999)
        frame = c.recv_frame()
        assert i32(len(frame)) + frame == bytes.fromhex("00000010" "00000001" "ffffffffffffffff" "fffffffa")
    finally:
        c.close()


def test_zookeeper_config_node_aversion_is_minus_one(raw):
    # ZooKeeper creates /zookeeper/config with aversion -1 (and world:READ);
    # every other Stat field is 0 on a standalone server.
    hdr, r = raw.call("exists", rawzk.path_req("/zookeeper/config"))
    assert hdr.err == 0
    assert r.stat() == rawzk.Stat(0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0)


def test_fresh_server_counts_five_nodes(fresh_server):
    # ZooKeeper's DataTree holds the root twice ("" and "/"), plus /zookeeper,
    # /zookeeper/quota and /zookeeper/config: srvr says "Node count: 5" and
    # mntr "zk_znode_count\t5"; each create adds one.
    srv = fresh_server()
    assert "Node count: 5\n" in srv.fourlw("srvr")
    assert "zk_znode_count\t5\n" in srv.fourlw("mntr")


def test_refused_reconfig_consumes_a_zxid(fresh_server):
    # Every write that PrepRequestProcessor refuses becomes an error
    # transaction with a zxid of its own, and reconfig with reconfig disabled
    # is refused there: its reply is ReplyHeader(xid, last zxid + 1, -123
    # ReconfigDisabled) and the next write gets last zxid + 2. (corral matches
    # ZooKeeper for every other refused write: create, delete, setData,
    # setACL, check, multi.) A server of its own, so that no other session's
    # expiry takes a zxid in between.
    srv = fresh_server()
    c = RawClient(srv.port)
    try:
        z = c.call("create", rawzk.create_req("/a"))[0].zxid
        hdr, _ = c.call("reconfig", ustr("server.2=127.0.0.1:2888:3888") + ustr(None) + ustr(None) + i64(-1))
        assert hdr.err == -123
        assert hdr.zxid == z + 1
        assert c.call("create", rawzk.create_req("/b"))[0].zxid == z + 2
    finally:
        c.close()


def test_wchs_counts_data_watches_only(fresh_server):
    # ZooKeeper's wchs summarises the data-watch table only: sessions with a
    # data watch, distinct watched paths, data watches (child watches are not
    # counted; mntr zk_watch_count does count them). A fresh server says
    # "0 connections watching 0 paths\nTotal watches:0\n".
    srv = fresh_server()
    assert srv.fourlw("wchs") == "0 connections watching 0 paths\nTotal watches:0\n"
    with kazoo_ext.watching_sessions(srv.hosts):
        assert srv.fourlw("wchs") == "3 connections watching 2 paths\nTotal watches:3\n"


def test_cons_wchc_and_wchp_list_every_session(fresh_server):
    # ZooKeeper lists every connection in cons (" /127.0.0.1:<port>[1](...,
    # sid=0x<session>,...)\n" each, the asking one too, then "\n"), and data
    # watches only, by session in wchc ("0x<session>\n" then "\t<path>\n" per
    # path) and by path in wchp ("<path>\n" then "\t0x<session>\n"), in hash
    # order, ending with one more "\n". A fresh server answers "\n" to wchc
    # and wchp.
    srv = fresh_server()
    assert (srv.fourlw("wchc"), srv.fourlw("wchp")) == ("\n", "\n")

    def parse(text):
        """wchc/wchp text -> {heading: sorted indented lines}, checking the closing blank line."""
        assert text.endswith("\n\n")
        groups, key = {}, None
        for line in text[:-2].split("\n"):
            if line.startswith("\t"):
                groups[key].append(line[1:])
            else:
                key = line
                groups[key] = []
        return {k: sorted(v) for k, v in groups.items()}

    with kazoo_ext.watching_sessions(srv.hosts) as clients:
        a, b, c, d = (f"{client.client_id[0]:#x}" for client in clients)
        cons = srv.fourlw("cons")
        assert [f"sid={s}," in cons for s in (a, b, c, d)] == [True] * 4
        assert parse(srv.fourlw("wchc")) == {a: ["/w"], b: ["/w"], d: ["/missing"]}
        assert parse(srv.fourlw("wchp")) == {"/w": sorted([a, b]), "/missing": [d]}
