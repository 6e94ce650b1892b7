"""Experiments against the real Apache ZooKeeper 3.8 whose answers are written
up in docs/internals/zk-facts.md. Run: python3 zk_facts.py [--target zookeeper|corral]
(default zookeeper). Prints every observation; nothing is asserted, so the
same script shows how corral answers when run with --target corral."""

import argparse
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.security import ACL, Id

import kazoo_ext
import rawzk
from rawzk import MULTI_END, RawClient, boolean, buf, err_name, i32, i64, ustr
from rawzk import multi_header as mh
from servers import CorralServer, ZooKeeperServer

OPEN = rawzk.OPEN_ACL_UNSAFE
READ = [(1, "world", "anyone")]


def p(*a):
    print(*a, flush=True)


def stat_dict(st):
    return {k: getattr(st, k) for k in ("czxid", "mzxid", "ctime", "mtime", "version", "cversion",
                                        "aversion", "ephemeralOwner", "dataLength", "numChildren",
                                        "pzxid")}


def exc_name(f):
    try:
        return ("ok", f())
    except KazooException as e:
        return ("exc", type(e).__name__)
    except Exception as e:  # noqa
        return ("exc", f"{type(e).__name__}: {e}")


def probe(c, label, op, body=b"", after=False):
    """Send one raw request on client c and print the reply header (and, with
    after=True, whether the connection still answers); a closed connection
    is printed, not raised."""
    try:
        hdr, r = c.call(op, body)
        p(f"{label}:", err_name(hdr.err), hdr)
    except Exception as e:  # noqa
        p(f"{label}: {type(e).__name__}: {e}")
        return None
    if after:
        try:
            p("  connection usable after:", err_name(c.call("exists", rawzk.path_req("/"))[0].err))
        except Exception as e:  # noqa
            p(f"  connection after: {type(e).__name__}: {e}")
    return hdr, r


def probe_new(srv, label, op, body=b"", after=False, timeout=5):
    """probe() on a new session of its own, closed afterwards."""
    c = RawClient(srv.port, sock_timeout=timeout)
    try:
        return probe(c, label, op, body, after)
    finally:
        c.close()


def fact_a(srv):
    p("\n== a. cversion and sequential suffixes")
    zk = KazooClient(hosts=srv.hosts); zk.start()
    try:
        zk.create("/p")
        p("after create /p: cversion", zk.exists("/p").cversion)
        zk.create("/p/a")
        p("after create /p/a: cversion", zk.exists("/p").cversion)
        zk.delete("/p/a")
        p("after delete /p/a: cversion", zk.exists("/p").cversion)
        s = zk.create("/p/s-", sequence=True)
        p("sequential created:", s, "cversion", zk.exists("/p").cversion)
        zk.create("/q")
        for i in range(3):
            zk.create(f"/q/c{i}")
        p("/q after 3 creates: cversion", zk.exists("/q").cversion)
        for i in range(3):
            zk.delete(f"/q/c{i}")
        p("/q after 3 deletes: cversion", zk.exists("/q").cversion)
        s = zk.create("/q/s-", sequence=True)
        p("sequential created:", s, "cversion", zk.exists("/q").cversion)
        # setData on a child / parent does not touch cversion
        zk.set("/q", b"x")
        p("/q after set on /q: cversion", zk.exists("/q").cversion)
        # Failed create of an existing child: cversion unchanged?
        try:
            zk.create(s)
        except KazooException as e:
            p("re-create existing child:", type(e).__name__, "cversion", zk.exists("/q").cversion)
        # ephemeral children and cversion on session close
        zk2 = KazooClient(hosts=srv.hosts); zk2.start()
        zk.create("/r")
        zk2.create("/r/e", ephemeral=True)
        p("/r after ephemeral child create: cversion", zk.exists("/r").cversion, "pzxid", hex(zk.exists("/r").pzxid))
        zk2.stop(); zk2.close()
        time.sleep(0.3)
        st = zk.exists("/r")
        p("/r after ephemeral owner closed: cversion", st.cversion, "numChildren", st.numChildren, "pzxid", hex(st.pzxid))
        p("next sequential under /r:", zk.create("/r/s-", sequence=True))
        # sequence counter when cversion is bumped by a multi
        zk.create("/t")
        tx = zk.transaction()
        tx.create("/t/a"); tx.create("/t/b"); tx.delete("/t/a")
        p("multi create,create,delete under /t:", tx.commit(), "cversion", zk.exists("/t").cversion)
        p("next sequential under /t:", zk.create("/t/s-", sequence=True))
        # sequential numbering of a failed multi
        tx = zk.transaction()
        tx.create("/t/x-", sequence=True); tx.create("/nonexistent/y")
        p("failed multi with a sequential create:", tx.commit(), "cversion", zk.exists("/t").cversion)
        p("next sequential under /t:", zk.create("/t/s-", sequence=True))
        # Negative: sequence number wraps? -> cversion as int: printed format %010d
    finally:
        zk.stop(); zk.close()


def fact_b(srv):
    p("\n== b. failed multi: reply header err and per-op results")
    zk = KazooClient(hosts=srv.hosts); zk.start()
    zk.create("/mb")
    tx = zk.transaction()
    tx.create("/mb/a"); tx.create("/mb/missing/x"); tx.set_data("/mb", b"z")
    p("kazoo results:", tx.commit())
    p("/mb/a exists after:", zk.exists("/mb/a") is not None)
    zk.stop(); zk.close()

    c = RawClient(srv.port)
    # multi: for each op a MultiHeader(type, done, err) and the op's body; then the end marker
    body = (mh("create") + rawzk.create_req("/mb/raw") +
            mh("create") + rawzk.create_req("/mb/nope/x") +
            mh("setData") + rawzk.set_data_req("/mb", b"q") + MULTI_END)
    hdr, r = c.call("multi", body)
    p("raw failed multi reply header:", hdr, err_name(hdr.err))
    p("raw failed multi per-op results:", r.multi())
    body = (mh("create") + rawzk.create_req("/mb/raw2") + mh("check") + ustr("/mb") + i32(-1)
            + mh("delete") + rawzk.delete_req("/mb/raw2") + MULTI_END)
    hdr, r = c.call("multi", body)
    p("raw successful multi reply header:", hdr)
    hdr, r = c.call("multi", MULTI_END)
    p("raw empty multi reply header:", hdr, "body:", r.rest().hex())
    # multiRead with a missing node
    body = (mh("getData") + rawzk.path_req("/mb") + mh("getData") + rawzk.path_req("/mb/none")
            + mh("getChildren") + rawzk.path_req("/mb") + MULTI_END)
    hdr, r = c.call("multiRead", body)
    out = [res[:2] for res in r.multi()]
    p("raw multiRead header:", hdr, "results:", out)
    c.close_session()


def fact_c():
    p("\n== c. / and /zookeeper on a fresh server")
    srv = make_server()
    try:
        zk = KazooClient(hosts=srv.hosts); zk.start()
        st = zk.exists("/")
        p("stat / :", stat_dict(st))
        p("get / :", zk.get("/")[0])
        p("get_children / :", zk.get_children("/"))
        p("get_children /zookeeper :", zk.get_children("/zookeeper"))
        p("get_children /zookeeper/config :", exc_name(lambda: zk.get_children("/zookeeper/config")))
        p("stat /zookeeper :", stat_dict(zk.exists("/zookeeper")))
        p("get /zookeeper/config :", exc_name(lambda: zk.get("/zookeeper/config")))
        p("stat /zookeeper/quota :", stat_dict(zk.exists("/zookeeper/quota")))
        p("get_acls / :", zk.get_acls("/"))
        p("get_acls /zookeeper :", exc_name(lambda: zk.get_acls("/zookeeper")))
        p("get_acls /zookeeper/config :", exc_name(lambda: zk.get_acls("/zookeeper/config")))
        c = RawClient(srv.port)
        for path in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
            hdr, _ = c.call("create", rawzk.create_req(path))
            p(f"raw create {path}:", err_name(hdr.err))
            hdr, _ = c.call("delete", rawzk.delete_req(path))
            p(f"raw delete {path}:", err_name(hdr.err))
            hdr, _ = c.call("setData", rawzk.set_data_req(path, b"x"))
            p(f"raw setData {path}:", err_name(hdr.err))
        hdr, _ = c.call("create", rawzk.create_req("/zookeeper/foo"))
        p("raw create /zookeeper/foo:", err_name(hdr.err))
        p("kazoo create('/'):", exc_name(lambda: zk.create("/")))
        p("kazoo delete('/'):", exc_name(lambda: zk.delete("/")))
        p("kazoo delete('/zookeeper'):", exc_name(lambda: zk.delete("/zookeeper")))
        p("stat / after:", stat_dict(zk.exists("/")))
        c.close_session()
        zk.stop(); zk.close()
    finally:
        srv.stop()


def fact_d(srv):
    p("\n== d. exists on a missing node")
    c = RawClient(srv.port)
    hdr, r = c.call("exists", rawzk.path_req("/d-missing", watch=True))
    p("raw exists(missing, watch=True) header:", hdr, err_name(hdr.err), "body bytes:", r.rest().hex())
    hdr, r = c.call("exists", rawzk.path_req("/d-missing", watch=False))
    p("raw exists(missing, watch=False) header:", hdr, err_name(hdr.err), "body bytes:", r.rest().hex())
    c2 = RawClient(srv.port)
    hdr, r = c2.call("create", rawzk.create_req("/d-missing"))
    p("other session creates it:", err_name(hdr.err))
    c.sock.settimeout(3)
    try:
        hdr, r = c.call("ping", xid=-2)
        p("after ping, events on watching session:", c.events)
    except Exception as e:
        p("no event:", e)
    c.close_session(); c2.close_session()

    zk = KazooClient(hosts=srv.hosts); zk.start()
    ev = []
    got = threading.Event()
    def w(e):
        ev.append(e); got.set()
    p("kazoo exists(missing, watch) ->", zk.exists("/d-missing2", watch=w))
    zk2 = KazooClient(hosts=srv.hosts); zk2.start()
    zk2.create("/d-missing2")
    got.wait(5)
    p("kazoo watch fired:", ev)
    zk.stop(); zk.close(); zk2.stop(); zk2.close()


def fact_e(srv):
    p("\n== e. malformed paths sent raw")
    for path in ("noslash", "/a/", "", "/a//b", "/a/./b", "/a/../b", "/.", "/zookeeper/", "/\u0000x",
                 "/a\u0001", "/\ud7ff", "/\u00e9"):
        c = RawClient(srv.port, sock_timeout=3)
        probe(c, f"getData {path!r}", "getData", rawzk.path_req(path))
        probe(c, f"create {path!r}", "create", rawzk.create_req(path))
        probe(c, f"exists {path!r}", "exists", rawzk.path_req(path))
        c.close()
    c = RawClient(srv.port, sock_timeout=3)
    for op, body in (("getData", rawzk.path_req), ("exists", rawzk.path_req), ("getChildren", rawzk.path_req),
                     ("getChildren2", rawzk.path_req), ("getACL", ustr)):
        root, empty = probe(c, f"{op} '/'", op, body("/")), probe(c, f"{op} ''", op, body(""))
        if root and empty:
            p(f"  {op} '' answers exactly what {op} '/' does:", root[1].rest() == empty[1].rest())
    for op in ("setData", "delete"):
        probe(c, f"{op} ''", op, rawzk.set_data_req("", b"x") if op == "setData" else rawzk.delete_req(""))
    c.close()
    probe_new(srv, "getData null path", "getData", ustr(None) + boolean(False), after=True, timeout=3)
    probe_new(srv, "exists null path", "exists", ustr(None) + boolean(False), after=True, timeout=3)
    res = probe_new(srv, "unknown opcode 999", 999, after=True, timeout=3)
    if res:
        p("  reply frame:", res[1].d.hex())
    probe_new(srv, "truncated getData (path length 100, 3 bytes)", "getData", i32(100) + b"/ab", after=True,
              timeout=3)
    # Malformed bodies: which take a zxid (the reply zxid against the one
    # before), and whether the connection stays.
    c = RawClient(srv.port, sock_timeout=3)
    truncated = i32(100) + b"/ab"
    for label, op, body in [
            ("create truncated", "create", truncated), ("create null path", "create", rawzk.create_req(None)),
            ("delete truncated", "delete", truncated), ("delete null path", "delete", rawzk.delete_req(None)),
            ("setData truncated", "setData", ustr("/") + buf(b"x")),
            ("setData null path", "setData", rawzk.set_data_req(None, b"x")),
            ("setACL null path", "setACL", ustr(None) + rawzk.acls(OPEN) + i32(-1)),
            ("check null path", "check", ustr(None) + i32(-1)),
            ("multi truncated", "multi", mh("create") + ustr("/m")),
            ("multi with a getData", "multi", mh("getData") + rawzk.path_req("/") + MULTI_END),
            ("multi with a null-path create", "multi", mh("create") + rawzk.create_req(None) + MULTI_END),
            ("multiRead with a create", "multiRead", mh("create") + rawzk.create_req("/m") + MULTI_END),
            ("getChildren truncated", "getChildren", truncated), ("sync truncated", "sync", i32(10)),
            ("sync null path", "sync", ustr(None)),
            ("reconfig truncated", "reconfig", ustr("x")),
            ("checkWatches type 7", "checkWatches", ustr("/") + i32(7)),
            ("addWatch mode 7", "addWatch", ustr("/") + i32(7)),
            ("getData + 3 trailing bytes", "getData", rawzk.path_req("/") + b"xyz")]:
        before = c.call("create", rawzk.create_req(f"/e-{time.time_ns()}"))[0].zxid
        res = probe(c, f"{label} (last zxid {before:#x})", op, body)
        if res is None:
            c = RawClient(srv.port, sock_timeout=3)
        else:
            p("  takes a zxid:", res[0].zxid == before + 1, " body:", res[1].rest().hex() or "(empty)")
    c.close()
    for label, frame in (("empty frame", b""), ("4-byte frame (xid only)", i32(1))):
        c = RawClient(srv.port, sock_timeout=3)
        c.send_frame(frame)
        try:
            p(f"{label}: reply", c.recv_frame().hex())
        except Exception as e:  # noqa
            p(f"{label}: {type(e).__name__}: {e}")
        c.close()


def fact_f(srv):
    p("\n== f. data larger than jute.maxbuffer (0xfffff = 1048575)")
    zk = KazooClient(hosts=srv.hosts); zk.start()
    zk.create("/big")
    for n in (1048575 - 100, 1048575, 1048576, 1048576 + 1000, 2 * 1048576):
        probe_new(srv, f"raw setData {n} bytes", "setData", rawzk.set_data_req("/big", b"x" * n))
        probe_new(srv, f"raw create {n} bytes", "create", rawzk.create_req(f"/big{n}", b"x" * n))
    p("kazoo set 1048576 bytes:", exc_name(lambda: zk.set("/big", b"y" * 1048576)))
    p("kazoo still connected:", zk.connected, exc_name(lambda: zk.exists("/big").dataLength))
    zk.stop(); zk.close()


def fact_g(srv):
    p("\n== g. sasl (opcode 102) without SASL configured")
    probe_new(srv, "sasl", "sasl", buf(b"hello"), after=True)
    for op, body in (("whoAmI", b""), ("getEphemerals", ustr("/")), ("getAllChildrenNumber", ustr("/")),
                     ("checkWatches", ustr("/") + i32(1)), ("removeWatches", ustr("/") + i32(1))):
        probe_new(srv, op, op, body)


def fact_h(srv):
    p("\n== h. reconfig when disabled")
    zk = KazooClient(hosts=srv.hosts); zk.start()
    p("kazoo reconfig:", exc_name(lambda: zk.reconfig(joining="server.2=127.0.0.1:2888:3888", leaving=None, new_members=None)))
    zk.stop(); zk.close()
    probe_new(srv, "raw reconfig", "reconfig", RECONFIG, after=True)


RECONFIG = ustr("server.2=127.0.0.1:2888:3888") + ustr(None) + ustr(None) + i64(-1)


def fact_z():
    p("\n== z. which refused requests take a zxid (reply zxid minus the previous one), on a fresh server")
    srv = make_server()
    try:
        c = RawClient(srv.port)
        for path, flags, acl in (("/a", 0, OPEN), ("/a/c", 0, OPEN), ("/e", 1, OPEN), ("/ro", 0, READ)):
            c.call("create", rawzk.create_req(path, acl=acl, flags=flags))
        last = c.call("exists", rawzk.path_req("/"))[0].zxid
        set_acl = lambda path, version: ustr(path) + rawzk.acls(OPEN) + i32(version)  # noqa: E731
        for label, op, body in (
                ("create ''", "create", rawzk.create_req("")),
                ("setData ''", "setData", rawzk.set_data_req("", b"x")),
                ("delete ''", "delete", rawzk.delete_req("")),
                ("setACL ''", "setACL", set_acl("", -1)),
                ("create existing", "create", rawzk.create_req("/a")),
                ("create under an ephemeral", "create", rawzk.create_req("/e/x")),
                ("create without parent", "create", rawzk.create_req("/none/x")),
                ("create with empty ACL", "create", rawzk.create_req("/x", acl=[])),
                ("create with unknown scheme", "create", rawzk.create_req("/x", acl=[(31, "nosuch", "x")])),
                ("create under world:READ", "create", rawzk.create_req("/ro/x")),
                ("create flags 5", "create", rawzk.create_req("/x", flags=5)),
                ("createTTL ttl 0", "createTTL", rawzk.create_ttl_req("/x", ttl=0)),
                ("delete not empty", "delete", rawzk.delete_req("/a")),
                ("delete bad version", "delete", rawzk.delete_req("/a/c", 5)),
                ("delete /", "delete", rawzk.delete_req("/")),
                ("setData NoAuth", "setData", rawzk.set_data_req("/ro", b"x")),
                ("setACL NoAuth", "setACL", set_acl("/ro", -1)),
                ("setACL bad version", "setACL", set_acl("/a", 9)),
                ("check bad version", "check", ustr("/a") + i32(9)),
                ("multi failed", "multi", mh("create") + rawzk.create_req("/none/x") + MULTI_END),
                ("multi empty", "multi", MULTI_END),
                ("multiRead", "multiRead", mh("getData") + rawzk.path_req("/none") + MULTI_END),
                ("reconfig", "reconfig", RECONFIG),
                ("sync missing", "sync", ustr("/none")),
                ("removeWatches NoWatcher", "removeWatches", ustr("/a") + i32(1)),
                ("getData missing", "getData", rawzk.path_req("/none")),
                ("setData ok", "setData", rawzk.set_data_req("/a", b"x"))):
            hdr, _ = c.call(op, body)
            p(f"{label:28s} {err_name(hdr.err):18s} zxid +{hdr.zxid - last}")
            last = hdr.zxid
        c.close_session()
    finally:
        srv.stop()


def fact_g(srv):
    p("\n== g. sasl (opcode 102) without SASL configured")
    c = RawClient(srv.port, sock_timeout=5)
    try:
        hdr, r = c.call("sasl", buf(b"hello"))
        p("sasl reply:", err_name(hdr.err), hdr, "body:", r.rest().hex())
        hdr, r = c.call("exists", rawzk.path_req("/"))
        p("connection usable after:", err_name(hdr.err))
    except Exception as e:
        p(f"sasl: {type(e).__name__}: {e}")
    c.close()
    for op in ("whoAmI", "getEphemerals", "getAllChildrenNumber", "checkWatches", "removeWatches"):
        c = RawClient(srv.port, sock_timeout=5)
        try:
            body = {"whoAmI": b"", "getEphemerals": ustr("/"), "getAllChildrenNumber": ustr("/"),
                    "checkWatches": ustr("/") + i32(1), "removeWatches": ustr("/") + i32(1)}[op]
            hdr, r = c.call(op, body)
            p(f"{op}:", err_name(hdr.err), hdr, "body:", r.rest()[:200])
        except Exception as e:
            p(f"{op}: {type(e).__name__}: {e}")
        c.close()


def fact_h(srv):
    p("\n== h. reconfig when disabled")
    zk = KazooClient(hosts=srv.hosts); zk.start()
    p("kazoo reconfig:", exc_name(lambda: zk.reconfig(joining="server.2=127.0.0.1:2888:3888", leaving=None, new_members=None)))
    zk.stop(); zk.close()
    c = RawClient(srv.port, sock_timeout=5)
    try:
        hdr, r = c.call("reconfig", ustr("server.2=127.0.0.1:2888:3888") + ustr(None) + ustr(None) + i64(-1))
        p("raw reconfig:", err_name(hdr.err), hdr)
    except Exception as e:
        p(f"raw reconfig: {type(e).__name__}: {e}")
    c.close()


def fact_i(srv):
    p("\n== i. TTL nodes")
    c = RawClient(srv.port)
    hdr, r = c.call("createTTL", rawzk.create_ttl_req("/ttl1", b"", flags=5, ttl=100000))
    p("createTTL persistent-with-ttl (mode 5):", err_name(hdr.err), r.ustr() if hdr.err == 0 else "")
    zk = KazooClient(hosts=srv.hosts); zk.start()
    st = zk.exists("/ttl1")
    if st:
        p("TTL node ephemeralOwner:", hex(st.ephemeralOwner & 0xFFFFFFFFFFFFFFFF), st.ephemeralOwner)
    hdr, r = c.call("createTTL", rawzk.create_ttl_req("/ttl2-", b"", flags=6, ttl=100000))
    name = r.ustr() if hdr.err == 0 else None
    p("createTTL persistent-sequential-with-ttl (mode 6):", err_name(hdr.err), name)
    if name:
        st = zk.exists(name)
        p("  ephemeralOwner:", hex(st.ephemeralOwner & 0xFFFFFFFFFFFFFFFF))
    for flags, ttl, what in ((5, 0, "ttl=0"), (5, -1, "ttl=-1"), (0, 1000, "mode 0 persistent with ttl"),
                             (1, 1000, "mode 1 ephemeral with ttl"), (5, 0xFFFFFFFFFF, "ttl=2^40-1"),
                             (5, 0x10000000000, "ttl=2^40")):
        hdr, r = c.call("createTTL", rawzk.create_ttl_req(f"/ttlx{flags}{ttl}", b"", flags=flags, ttl=ttl))
        p(f"createTTL {what}:", err_name(hdr.err))
    # create (opcode 1) with a TTL mode flag
    hdr, r = c.call("create", rawzk.create_req("/ttlc", b"", flags=5))
    p("plain create with flags=5:", err_name(hdr.err))
    hdr, r = c.call("create2", rawzk.create_req("/ttlc2", b"", flags=5))
    p("create2 with flags=5:", err_name(hdr.err))
    hdr, r = c.call("create", rawzk.create_req("/cont", b"", flags=4))
    p("plain create with flags=4 (container):", err_name(hdr.err))
    st = zk.exists("/cont")
    if st:
        p("container ephemeralOwner:", hex(st.ephemeralOwner & 0xFFFFFFFFFFFFFFFF))
    hdr, r = c.call("createContainer", rawzk.create_req("/cont2", b"", flags=0))
    p("createContainer opcode with flags=0:", err_name(hdr.err))
    hdr, r = c.call("createContainer", rawzk.create_req("/cont3", b"", flags=4))
    p("createContainer opcode with flags=4:", err_name(hdr.err), r.ustr() if hdr.err == 0 else "")
    st = zk.exists("/cont3")
    if st:
        p("container ephemeralOwner:", hex(st.ephemeralOwner & 0xFFFFFFFFFFFFFFFF))
    c.close_session()
    zk.stop(); zk.close()

    p("-- with -Dzookeeper.extendedTypesEnabled=false")
    s2 = type(srv)(extended_types=False).start()
    try:
        c = RawClient(s2.port)
        hdr, r = c.call("createTTL", rawzk.create_ttl_req("/ttl1", b"", flags=5, ttl=100000))
        p("createTTL with TTL disabled:", err_name(hdr.err), hdr)
        hdr, r = c.call("exists", rawzk.path_req("/"))
        p("connection usable after:", err_name(hdr.err))
        c.close_session()
    finally:
        s2.stop()


def fact_j():
    p("\n== j. four-letter words on a fresh server")
    srv = make_server()
    try:
        for w in ("ruok", "srvr", "stat", "mntr", "conf", "envi", "isro", "dirs", "wchs", "cons",
                  "wchc", "wchp", "crst", "srst", "gtmk", "xxxx"):
            p(f"--- {w}")
            p(srv.fourlw(w))
        p("--- four sessions: data watches a:/w, b:/w, d:/missing; child watch c:/")
        with kazoo_ext.watching_sessions(srv.hosts) as clients:
            p("sessions a b c d:", [hex(x.client_id[0]) for x in clients])
            p("mntr zk_watch_count:", [l for l in srv.fourlw("mntr").splitlines() if l.startswith("zk_watch_count")])
            for w in ("wchs", "wchc", "wchp", "cons"):
                p(f"{w}: {srv.fourlw(w)!r}")
    finally:
        srv.stop()


def fact_k(srv):
    p("\n== k. order of getChildren")
    zk = KazooClient(hosts=srv.hosts); zk.start()
    zk.create("/ord")
    names = ["b", "a", "zz", "c10", "c2", "m", "A", "0", "_", "y" * 5, "x1", "x0"]
    for n in names:
        zk.create(f"/ord/{n}")
    p("created in order:", names)
    p("get_children:", zk.get_children("/ord"))
    p("get_children again:", zk.get_children("/ord"))
    zk.create("/ord2")
    for i in range(40):
        zk.create(f"/ord2/n{i}")
    p("40 children n0..n39:", zk.get_children("/ord2"))
    zk.stop(); zk.close()


def fact_extra(srv):
    p("\n== extra: misc")
    zk = KazooClient(hosts=srv.hosts); zk.start()
    p("session id:", hex(zk.client_id[0]), "timeout negotiated:", zk._session_timeout)
    zk.create("/x1", b"abc")
    st = zk.exists("/x1")
    p("fresh node stat:", stat_dict(st))
    zk.set_acls("/x1", [rawzk_acl()])
    p("after set_acls:", stat_dict(zk.exists("/x1")))
    p("create with empty ACL list:", exc_name(lambda: zk.create("/x2", acl=[])))
    p("create ephemeral under ephemeral:", exc_name(lambda: (zk.create("/x3", ephemeral=True), zk.create("/x3/c"))))
    p("delete /nonexistent/child:", exc_name(lambda: zk.delete("/nonexistent/child")))
    p("create /nonexistent/child:", exc_name(lambda: zk.create("/nonexistent/child")))
    p("set_data -1 returns stat:", stat_dict(zk.set("/x1", b"", version=-1)))
    p("sync('/x1'):", zk.sync("/x1"))
    p("sync('/nonexistent'):", exc_name(lambda: zk.sync("/nonexistent")))
    zk.stop(); zk.close()
    # An `auth` ACL names every digest identity of the session: in which order?
    for added in (["carol:cpw", "alice:apw"], ["bob:bpw", "alice:apw", "zed:z", "carol:cpw"],
                  ["alice:apw", "alice:apw"]):
        zk = KazooClient(hosts=srv.hosts); zk.start()
        for ident in added:
            zk.add_auth("digest", ident)
        path = zk.create("/auth-", acl=[ACL(31, Id("auth", ""))], sequence=True)
        p(f"auth ACL after adding {added}:", [a.id.id.split(":")[0] for a in zk.get_acls(path)[0]])
        zk.stop(); zk.close()


def rawzk_acl():
    return ACL(31, Id("world", "anyone"))


TARGET = "zookeeper"


def make_server():
    return (ZooKeeperServer() if TARGET == "zookeeper" else CorralServer()).start()


def main():
    global TARGET
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="zookeeper", choices=["zookeeper", "corral"])
    ap.add_argument("--only", default="abcdefghijkz+", help="which facts (letters) to probe")
    args = ap.parse_args()
    TARGET = args.target
    srv = make_server()
    try:
        p(srv.fourlw("srvr").splitlines()[0])
        for letter, fn in (("a", fact_a), ("b", fact_b), ("d", fact_d), ("e", fact_e), ("f", fact_f),
                           ("g", fact_g), ("h", fact_h), ("i", fact_i), ("k", fact_k), ("+", fact_extra)):
            if letter in args.only:
                try:
                    fn(srv)
                except Exception as e:
                    p(f"!! fact {letter} raised {type(e).__name__}: {e}")
    finally:
        srv.stop()
    if "c" in args.only:
        fact_c()
    if "j" in args.only:
        fact_j()
    if "z" in args.only:
        fact_z()


if __name__ == "__main__":
    main()
