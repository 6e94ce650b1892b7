"""kazoo against the server under test (TARGET=corral, the default, or
TARGET=zookeeper). Every assertion here holds on Apache ZooKeeper 3.8; run
with TARGET=zookeeper to re-check that. Each test works under its own unique
path (the `root` fixture), so tests are independent and share one server."""

import queue
import socket
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (BadArgumentsError, BadVersionError, ConnectionLoss, InvalidACLError,
                              NoAuthError, NoChildrenForEphemeralsError, NodeExistsError,
                              NoNodeError, NotEmptyError, RolledBackError, RuntimeInconsistency)
from kazoo.protocol.states import EventType, KazooState
from kazoo.recipe.watchers import ChildrenWatch, DataWatch
from kazoo.security import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, Id, Permissions, make_digest_acl

import kazoo_ext
from servers import CONTAINER_CHECK_MS, four_letter_word

SEQ_LEN = 10


def wait_for(pred, timeout=10.0, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


class Recorder:
    """A watch callback that records events in order."""

    def __init__(self):
        self.q = queue.Queue()

    def __call__(self, event):
        self.q.put(event)

    def next(self, timeout=5.0):
        return self.q.get(timeout=timeout)

    def none(self, wait=0.5):
        try:
            e = self.q.get(timeout=wait)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected watch event {e}")


# --- create ------------------------------------------------------------------

def test_create_persistent_stat(zk, root):
    path = zk.create(f"{root}/n", b"hello")
    assert path == f"{root}/n"
    data, st = zk.get(path)
    assert data == b"hello"
    assert st.version == 0 and st.cversion == 0 and st.aversion == 0
    assert st.numChildren == 0 and st.dataLength == 5 and st.ephemeralOwner == 0
    assert st.czxid == st.mzxid == st.pzxid > 0
    assert st.ctime == st.mtime > 0


def test_create_empty_data(zk, root):
    zk.create(f"{root}/e")
    data, st = zk.get(f"{root}/e")
    assert data == b"" and st.dataLength == 0


def test_create2_returns_stat(zk, root):
    path, st = zk.create(f"{root}/n", b"abc", include_data=True)
    assert path == f"{root}/n"
    assert st == zk.exists(path)
    assert st.dataLength == 3


def test_create_node_exists(zk, root):
    zk.create(f"{root}/n")
    with pytest.raises(NodeExistsError):
        zk.create(f"{root}/n")


def test_create_without_parent_is_nonode(zk, root):
    with pytest.raises(NoNodeError):
        zk.create(f"{root}/missing/child")


def test_create_makepath(zk, root):
    zk.create(f"{root}/a/b/c", b"x", makepath=True)
    assert zk.get(f"{root}/a/b/c")[0] == b"x"
    assert zk.get_children(f"{root}/a") == ["b"]


def test_create_ephemeral_owner_is_session(zk, root):
    path = zk.create(f"{root}/eph", b"", ephemeral=True)
    st = zk.exists(path)
    assert st.ephemeralOwner == zk.client_id[0]
    assert st.ephemeralOwner != 0


def test_no_children_for_ephemerals(zk, root):
    zk.create(f"{root}/eph", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(f"{root}/eph/child")
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(f"{root}/eph/child", ephemeral=True)


def test_sequential_names(zk, root):
    a = zk.create(f"{root}/s-", sequence=True)
    b = zk.create(f"{root}/s-", sequence=True)
    c = zk.create(f"{root}/other", sequence=True)
    assert a == f"{root}/s-" + "0" * SEQ_LEN
    assert b == f"{root}/s-0000000001"
    assert c == f"{root}/other0000000002"  # one counter per parent, shared by all names


def test_sequential_suffix_counts_child_creates_not_deletes(zk, root):
    # ZooKeeper takes the suffix from the number of child creations, while the
    # cversion it reports counts creations and deletions (docs/internals/zk-facts.md, section a).
    p = f"{root}/p"
    zk.create(p)
    zk.create(f"{p}/a")
    assert zk.exists(p).cversion == 1
    zk.delete(f"{p}/a")
    assert zk.exists(p).cversion == 2
    assert zk.create(f"{p}/s-", sequence=True) == f"{p}/s-0000000001"
    assert zk.exists(p).cversion == 3

    q = f"{root}/q"
    zk.create(q)
    for i in range(3):
        zk.create(f"{q}/c{i}")
    for i in range(3):
        zk.delete(f"{q}/c{i}")
    assert zk.exists(q).cversion == 6
    assert zk.create(f"{q}/s-", sequence=True) == f"{q}/s-0000000003"
    assert zk.exists(q).cversion == 7


def test_sequential_failed_create_does_not_consume_number(zk, root):
    zk.create(f"{root}/x")
    with pytest.raises(NodeExistsError):
        zk.create(f"{root}/x")
    assert zk.create(f"{root}/s-", sequence=True) == f"{root}/s-0000000001"


def test_ephemeral_sequential(zk, root):
    path = zk.create(f"{root}/es-", ephemeral=True, sequence=True)
    assert path == f"{root}/es-0000000000"
    assert zk.exists(path).ephemeralOwner == zk.client_id[0]


def test_container_removed_after_last_child_goes(zk, root):
    path, st = kazoo_ext.create_container(zk, f"{root}/c")
    assert path == f"{root}/c" and st.ephemeralOwner == 0
    zk.create(f"{root}/c/child")
    time.sleep(3 * CONTAINER_CHECK_MS / 1000)
    assert zk.exists(f"{root}/c") is not None  # has a child: kept
    zk.delete(f"{root}/c/child")
    assert wait_for(lambda: zk.exists(f"{root}/c") is None, timeout=10)


def test_container_never_had_children_is_kept(zk, root):
    kazoo_ext.create_container(zk, f"{root}/c")
    time.sleep(4 * CONTAINER_CHECK_MS / 1000)
    assert zk.exists(f"{root}/c") is not None


def test_container_is_not_ephemeral_and_takes_children(zk, root):
    kazoo_ext.create_container(zk, f"{root}/c")
    zk.create(f"{root}/c/a/b", makepath=True)
    assert zk.get_children(f"{root}/c") == ["a"]


def test_ttl_node(server, zk, root):
    if not server.ttl:
        pytest.skip("TTL nodes not enabled on this server")
    path, st = kazoo_ext.create_ttl(zk, f"{root}/ttl", ttl_ms=600, value=b"v")
    assert path == f"{root}/ttl"
    assert st.ephemeralOwner == 0  # the TTL marker is not shown to clients
    assert zk.get(path)[0] == b"v"
    seq, _ = kazoo_ext.create_ttl(zk, f"{root}/ttls-", ttl_ms=600000, sequence=True)
    assert seq == f"{root}/ttls-0000000001"
    assert wait_for(lambda: zk.exists(path) is None, timeout=10)
    assert zk.exists(seq) is not None


def test_ttl_node_with_child_is_kept(server, zk, root):
    if not server.ttl:
        pytest.skip("TTL nodes not enabled on this server")
    path, _ = kazoo_ext.create_ttl(zk, f"{root}/ttl", ttl_ms=300)
    zk.create(f"{path}/child")
    time.sleep(4 * CONTAINER_CHECK_MS / 1000)
    assert zk.exists(path) is not None


def test_ttl_bad_arguments(server, zk, root):
    if not server.ttl:
        pytest.skip("TTL nodes not enabled on this server")
    for ttl in (0, -1, 1 << 40):
        with pytest.raises(BadArgumentsError):
            kazoo_ext.create_ttl(zk, f"{root}/bad{ttl}", ttl_ms=ttl)
    # createTTL with a mode that is not a TTL mode
    with pytest.raises(BadArgumentsError):
        kazoo_ext._call(zk, kazoo_ext.CreateTTL(f"{root}/m", b"", OPEN_ACL_UNSAFE, 0, 1000))


def test_ttl_disabled_is_unimplemented(fresh_server):
    from kazoo.exceptions import UnimplementedError
    srv = fresh_server(extended_types=False)
    zk = KazooClient(hosts=srv.hosts)
    zk.start(timeout=15)
    try:
        with pytest.raises(UnimplementedError):
            kazoo_ext.create_ttl(zk, "/ttl", ttl_ms=1000)
        assert zk.exists("/ttl") is None  # and the session is still usable
    finally:
        zk.stop()
        zk.close()


# --- get / set / delete --------------------------------------------------------

def test_set_with_versions(zk, root):
    p = f"{root}/n"
    zk.create(p, b"a")
    st0 = zk.exists(p)
    st1 = zk.set(p, b"bb", version=0)
    assert st1.version == 1 and st1.dataLength == 2
    assert st1.czxid == st0.czxid and st1.mzxid > st0.mzxid and st1.pzxid == st0.pzxid
    assert st1.ctime == st0.ctime and st1.mtime >= st0.mtime
    assert st1.cversion == 0 and st1.aversion == 0
    with pytest.raises(BadVersionError):
        zk.set(p, b"c", version=0)
    with pytest.raises(BadVersionError):
        zk.set(p, b"c", version=5)
    st2 = zk.set(p, b"", version=-1)
    assert st2.version == 2 and st2.dataLength == 0
    assert zk.get(p) == (b"", st2)


def test_set_same_data_still_bumps_version(zk, root):
    zk.create(f"{root}/n", b"x")
    assert zk.set(f"{root}/n", b"x").version == 1


def test_set_nonode(zk, root):
    with pytest.raises(NoNodeError):
        zk.set(f"{root}/missing", b"x")


def test_get_nonode(zk, root):
    with pytest.raises(NoNodeError):
        zk.get(f"{root}/missing")


def test_delete_with_version(zk, root):
    p = f"{root}/n"
    zk.create(p)
    zk.set(p, b"1")
    with pytest.raises(BadVersionError):
        zk.delete(p, version=0)
    zk.delete(p, version=1)
    assert zk.exists(p) is None
    with pytest.raises(NoNodeError):
        zk.delete(p)


def test_delete_not_empty(zk, root):
    zk.create(f"{root}/n/c", makepath=True)
    with pytest.raises(NotEmptyError):
        zk.delete(f"{root}/n")
    zk.delete(f"{root}/n", recursive=True)
    assert zk.exists(f"{root}/n") is None


def test_delete_bad_version_checked_before_not_empty(zk, root):
    zk.create(f"{root}/n/c", makepath=True)
    with pytest.raises(BadVersionError):
        zk.delete(f"{root}/n", version=7)


def test_exists(zk, root):
    assert zk.exists(f"{root}/missing") is None
    zk.create(f"{root}/n", b"12")
    st = zk.exists(f"{root}/n")
    assert st is not None and st.dataLength == 2
    assert st == zk.get(f"{root}/n")[1]


def test_get_children_and_stat(zk, root):
    names = ["b", "a", "zz", "c10", "c2", "m"]
    for n in names:
        zk.create(f"{root}/{n}")
    assert sorted(zk.get_children(root)) == sorted(names)
    children, st = zk.get_children(root, include_data=True)
    assert sorted(children) == sorted(names)
    assert st.numChildren == len(names) and st.cversion == len(names)
    assert st == zk.exists(root)
    assert zk.get_children(f"{root}/a") == []
    with pytest.raises(NoNodeError):
        zk.get_children(f"{root}/missing")


def test_parent_stat_after_child_ops(zk, root):
    p0 = zk.exists(root)
    _, c = zk.create(f"{root}/c", include_data=True)
    p1 = zk.exists(root)
    assert p1.cversion == p0.cversion + 1 and p1.numChildren == p0.numChildren + 1
    assert p1.pzxid == c.czxid and p1.pzxid > p0.pzxid
    assert p1.mzxid == p0.mzxid and p1.version == p0.version  # data untouched
    zk.set(f"{root}/c", b"x")
    assert zk.exists(root) == p1  # setting a child's data leaves the parent alone
    zk.delete(f"{root}/c")
    p2 = zk.exists(root)
    assert p2.cversion == p1.cversion + 1 and p2.numChildren == p1.numChildren - 1
    assert p2.pzxid > p1.pzxid and p2.mzxid == p0.mzxid
    zk.set(root, b"parent")
    p3 = zk.exists(root)
    assert p3.pzxid == p2.pzxid and p3.cversion == p2.cversion and p3.mzxid > p2.pzxid


def test_failed_ops_do_not_change_stats(zk, root):
    zk.create(f"{root}/n", b"a")
    before = zk.exists(f"{root}/n"), zk.exists(root)
    for f in (lambda: zk.create(f"{root}/n"), lambda: zk.set(f"{root}/n", b"b", version=3),
              lambda: zk.delete(f"{root}/n", version=3), lambda: zk.create(f"{root}/n/x/y")):
        with pytest.raises((NodeExistsError, BadVersionError, NoNodeError)):
            f()
    assert (zk.exists(f"{root}/n"), zk.exists(root)) == before


def test_zxids_increase_across_sessions(make_client, root):
    a, b = make_client(), make_client()
    _, s1 = a.create(f"{root}/1", include_data=True)
    _, s2 = b.create(f"{root}/2", include_data=True)
    s3 = a.set(f"{root}/1", b"x")
    assert s1.czxid < s2.czxid < s3.mzxid


def test_large_data_round_trip(zk, root):
    blob = bytes(range(256)) * 3900  # 998,400 bytes, under jute.maxbuffer
    zk.create(f"{root}/big", blob)
    data, st = zk.get(f"{root}/big")
    assert data == blob and st.dataLength == len(blob)


def test_data_over_maxbuffer_closes_connection(zk, root):
    # ZooKeeper closes the connection on a request frame over jute.maxbuffer
    # (1 MiB - 1); kazoo reconnects and the session survives (docs/internals/zk-facts.md, section f).
    zk.create(f"{root}/big", b"small")
    sid = zk.client_id[0]
    with pytest.raises(ConnectionLoss):
        zk.set(f"{root}/big", b"x" * (1024 * 1024))
    assert wait_for(lambda: zk.connected, timeout=15)
    assert zk.client_id[0] == sid
    assert zk.get(f"{root}/big")[0] == b"small"


# --- root and /zookeeper -------------------------------------------------------

def test_root_and_zookeeper_nodes(zk):
    assert "zookeeper" in zk.get_children("/")
    assert sorted(zk.get_children("/zookeeper")) == ["config", "quota"]
    with pytest.raises(NodeExistsError):
        zk.create("/")
    with pytest.raises(BadArgumentsError):
        zk.delete("/")
    with pytest.raises(BadArgumentsError):
        zk.delete("/zookeeper")
    with pytest.raises(NodeExistsError):
        zk.create("/zookeeper")
    acls, _ = zk.get_acls("/zookeeper/config")
    assert acls == [ACL(Permissions.READ, Id("world", "anyone"))]
    with pytest.raises(NoAuthError):
        zk.set("/zookeeper/config", b"x")


def test_fresh_server_root_stat(fresh_server):
    srv = fresh_server()
    zk = KazooClient(hosts=srv.hosts)
    zk.start(timeout=15)
    try:
        st = zk.exists("/")
        # cversion is reported as 2*creates - numChildren; / counts 0 creates
        # and has one child (/zookeeper), hence -1 (docs/internals/zk-facts.md, section c).
        assert (st.czxid, st.mzxid, st.pzxid, st.ctime, st.mtime) == (0, 0, 0, 0, 0)
        assert (st.version, st.cversion, st.aversion, st.ephemeralOwner) == (0, -1, 0, 0)
        assert (st.dataLength, st.numChildren) == (0, 1)
        assert zk.get_children("/") == ["zookeeper"]
        assert zk.exists("/zookeeper").numChildren == 2
        assert zk.create("/a") == "/a"
        assert zk.exists("/").cversion == 0  # 2*1 - 2
    finally:
        zk.stop()
        zk.close()


# --- ACLs ----------------------------------------------------------------------

def test_digest_acl(make_client, root):
    owner = make_client()
    owner.add_auth("digest", "alice:secret")
    acl = make_digest_acl("alice", "secret", all=True)
    owner.create(f"{root}/n", b"data", acl=[acl])
    other = make_client()
    assert other.exists(f"{root}/n") is not None  # exists needs no permission
    with pytest.raises(NoAuthError):
        other.get(f"{root}/n")
    with pytest.raises(NoAuthError):
        other.set(f"{root}/n", b"x")
    with pytest.raises(NoAuthError):
        other.get_children(f"{root}/n")
    with pytest.raises(NoAuthError):
        other.create(f"{root}/n/c")
    wrong = make_client()
    wrong.add_auth("digest", "alice:wrong")
    with pytest.raises(NoAuthError):
        wrong.get(f"{root}/n")
    other.add_auth("digest", "alice:secret")
    assert other.get(f"{root}/n")[0] == b"data"
    other.set(f"{root}/n", b"y")
    acls, st = owner.get_acls(f"{root}/n")
    assert acls == [acl] and st.aversion == 0


def test_get_acls_redacts_digest_without_admin(make_client, root):
    owner = make_client()
    owner.add_auth("digest", "alice:secret")
    alice = make_digest_acl("alice", "secret", all=True)
    owner.create(f"{root}/r", acl=[alice, ACL(Permissions.READ, Id("world", "anyone"))])
    owner.create(f"{root}/p", acl=[alice])
    other = make_client()
    # READ but not ADMIN: the digest hash is replaced by "x"
    acls, _ = other.get_acls(f"{root}/r")
    assert acls == [ACL(Permissions.ALL, Id("digest", "alice:x")),
                    ACL(Permissions.READ, Id("world", "anyone"))]
    # neither READ nor ADMIN: NoAuth
    with pytest.raises(NoAuthError):
        other.get_acls(f"{root}/p")
    assert owner.get_acls(f"{root}/r")[0][0] == alice


def test_auth_scheme_acl_uses_session_identity(make_client, root):
    c = make_client()
    c.add_auth("digest", "bob:pw")
    c.create(f"{root}/n", acl=[ACL(Permissions.ALL, Id("auth", ""))])
    acls, _ = c.get_acls(f"{root}/n")
    assert acls == [make_digest_acl("bob", "pw", all=True)]


def test_read_only_world_acl(zk, root):
    zk.create(f"{root}/ro", b"r", acl=READ_ACL_UNSAFE)
    assert zk.get(f"{root}/ro")[0] == b"r"
    with pytest.raises(NoAuthError):
        zk.set(f"{root}/ro", b"w")
    with pytest.raises(NoAuthError):
        zk.create(f"{root}/ro/child")
    with pytest.raises(NoAuthError):
        zk.set_acls(f"{root}/ro", OPEN_ACL_UNSAFE)
    # deleting needs DELETE on the parent, not on the node itself
    zk.delete(f"{root}/ro")
    assert zk.exists(f"{root}/ro") is None


def test_delete_needs_parent_delete_permission(zk, root):
    zk.create(f"{root}/p", acl=[ACL(Permissions.READ | Permissions.CREATE, Id("world", "anyone"))])
    zk.create(f"{root}/p/c")
    with pytest.raises(NoAuthError):
        zk.delete(f"{root}/p/c")


def test_set_acls_versions_and_stat(zk, root):
    p = f"{root}/n"
    zk.create(p, b"x")
    before = zk.exists(p)
    st = zk.set_acls(p, OPEN_ACL_UNSAFE, version=0)
    assert st.aversion == 1 and st.version == 0 and st.mzxid == before.mzxid
    assert st.cversion == before.cversion and st.pzxid == before.pzxid
    with pytest.raises(BadVersionError):
        zk.set_acls(p, OPEN_ACL_UNSAFE, version=0)
    st = zk.set_acls(p, READ_ACL_UNSAFE, version=1)
    assert st.aversion == 2
    assert zk.get_acls(p) == (READ_ACL_UNSAFE, st)
    # set_acls needs ADMIN, which world has not any more; the permission is
    # checked before the version
    with pytest.raises(NoAuthError):
        zk.set_acls(p, OPEN_ACL_UNSAFE, version=0)
    with pytest.raises(NoAuthError):
        zk.set_acls(p, OPEN_ACL_UNSAFE)


def test_ip_acl(zk, root):
    zk.create(f"{root}/ip", b"i", acl=[ACL(Permissions.ALL, Id("ip", "127.0.0.1"))])
    assert zk.get(f"{root}/ip")[0] == b"i"
    zk.create(f"{root}/ip2", b"i", acl=[ACL(Permissions.ALL, Id("ip", "10.1.2.3"))])
    with pytest.raises(NoAuthError):
        zk.get(f"{root}/ip2")


@pytest.mark.parametrize("acl", [
    ACL(Permissions.ALL, Id("auth", "")),          # no authenticated identity
    ACL(Permissions.ALL, Id("digest", "nocolon")),  # malformed digest id
    ACL(Permissions.ALL, Id("nosuchscheme", "x")),
    ACL(Permissions.ALL, Id("ip", "not-an-ip")),
], ids=["auth-without-auth", "digest-malformed", "unknown-scheme", "ip-malformed"])
def test_invalid_acl(zk, root, acl):
    with pytest.raises(InvalidACLError):
        zk.create(f"{root}/n", acl=[acl])
    zk.create(f"{root}/ok")
    with pytest.raises(InvalidACLError):
        zk.set_acls(f"{root}/ok", [acl])


# --- transactions --------------------------------------------------------------

def test_transaction_success(zk, root):
    zk.create(f"{root}/set", b"old")
    zk.create(f"{root}/del")
    t = zk.transaction()
    t.create(f"{root}/new", b"n")
    t.create(f"{root}/seq-", sequence=True)
    t.set_data(f"{root}/set", b"new", version=0)
    t.check(f"{root}/set", 1)
    t.delete(f"{root}/del", version=0)
    res = t.commit()
    assert res[0] == f"{root}/new"
    assert res[1] == f"{root}/seq-0000000003"
    assert res[2].version == 1 and res[2].dataLength == 3
    assert res[3:] == [True, True]
    assert zk.get(f"{root}/set")[0] == b"new"
    assert zk.exists(f"{root}/del") is None
    # one transaction, one zxid
    assert zk.exists(f"{root}/new").czxid == zk.exists(res[1]).czxid == res[2].mzxid
    assert zk.exists(root).pzxid == res[2].mzxid


def test_transaction_failure_applies_nothing(zk, root):
    zk.create(f"{root}/a", b"a")
    before_root, before_a = zk.exists(root), zk.exists(f"{root}/a")
    t = zk.transaction()
    t.create(f"{root}/new")
    t.set_data(f"{root}/a", b"b")
    t.check(f"{root}/a", 5)  # fails: version is 0
    t.delete(f"{root}/a")
    res = t.commit()
    assert [type(r) for r in res] == [RolledBackError, RolledBackError, BadVersionError,
                                      RuntimeInconsistency]
    assert zk.exists(f"{root}/new") is None
    assert zk.get(f"{root}/a")[0] == b"a"
    assert zk.exists(f"{root}/a") == before_a and zk.exists(root) == before_root


def test_transaction_failure_kinds(zk, root):
    zk.create(f"{root}/x")
    for ops, expect in [
        (lambda t: (t.create(f"{root}/y"), t.create(f"{root}/x")), [RolledBackError, NodeExistsError]),
        (lambda t: (t.delete(f"{root}/missing"), t.create(f"{root}/y")), [NoNodeError, RuntimeInconsistency]),
        (lambda t: (t.create(f"{root}/y"), t.create(f"{root}/y")), [RolledBackError, NodeExistsError]),
        (lambda t: (t.create(f"{root}/y/z"),), [NoNodeError]),
        (lambda t: (t.create(f"{root}/y"), t.create(f"{root}/y/z"), t.delete(f"{root}/x"),
                    t.delete(f"{root}/x")), [RolledBackError] * 3 + [NoNodeError]),
        (lambda t: (t.create(f"{root}/y"), t.delete(root), t.create(f"{root}/z")),
         [RolledBackError, NotEmptyError, RuntimeInconsistency]),
    ]:
        t = zk.transaction()
        ops(t)
        assert [type(r) for r in t.commit()] == expect
    assert zk.exists(f"{root}/y") is None and zk.exists(f"{root}/z") is None
    assert zk.exists(f"{root}/x") is not None


def test_transaction_sees_its_own_earlier_ops(zk, root):
    t = zk.transaction()
    t.create(f"{root}/a")
    t.create(f"{root}/a/b", b"1")
    t.set_data(f"{root}/a/b", b"2", version=0)
    t.check(f"{root}/a/b", 1)
    t.delete(f"{root}/a/b", version=1)
    res = t.commit()
    assert res[0:2] == [f"{root}/a", f"{root}/a/b"] and res[3:] == [True, True]
    assert zk.get_children(f"{root}/a") == []
    assert zk.exists(f"{root}/a").cversion == 2


# --- one-shot watches ----------------------------------------------------------

def test_get_watch_fires_once(make_client, root):
    a, b = make_client(), make_client()
    a.create(f"{root}/n", b"0")
    rec = Recorder()
    a.get(f"{root}/n", watch=rec)
    b.set(f"{root}/n", b"1")
    e = rec.next()
    assert (e.type, e.path) == (EventType.CHANGED, f"{root}/n")
    b.set(f"{root}/n", b"2")
    rec.none()


def test_exists_watch_on_missing_node_fires_created(make_client, root):
    a, b = make_client(), make_client()
    rec = Recorder()
    assert a.exists(f"{root}/n", watch=rec) is None
    b.create(f"{root}/n")
    e = rec.next()
    assert (e.type, e.path) == (EventType.CREATED, f"{root}/n")


def test_data_watch_on_delete(make_client, root):
    a, b = make_client(), make_client()
    a.create(f"{root}/n")
    rec = Recorder()
    a.get(f"{root}/n", watch=rec)
    b.delete(f"{root}/n")
    assert rec.next().type == EventType.DELETED


def test_children_watch_fires_on_create_and_delete_not_on_data(make_client, root):
    a, b = make_client(), make_client()
    rec = Recorder()
    a.get_children(root, watch=rec)
    b.set(root, b"data change")
    rec.none()
    b.create(f"{root}/c")
    e = rec.next()
    assert (e.type, e.path) == (EventType.CHILD, root)
    a.get_children(root, watch=rec)
    b.delete(f"{root}/c")
    assert rec.next().type == EventType.CHILD


def test_child_watch_and_data_watch_on_node_delete(make_client, root):
    a, b = make_client(), make_client()
    a.create(f"{root}/n")
    rd, rc = Recorder(), Recorder()
    a.get(f"{root}/n", watch=rd)
    a.get_children(f"{root}/n", watch=rc)
    b.delete(f"{root}/n")
    assert rd.next().type == EventType.DELETED
    assert rc.next().type == EventType.DELETED


def test_watch_event_arrives_before_read_reply(make_client, root):
    # ZooKeeper orders a notification before the reply of any later read on
    # the same session that observes the change.
    a, b = make_client(), make_client()
    a.create(f"{root}/n", b"0")
    seen = []
    a.get(f"{root}/n", watch=lambda e: seen.append(e))
    b.set(f"{root}/n", b"1")
    data = wait_for(lambda: a.get(f"{root}/n")[0] == b"1" and True)
    assert data
    assert [e.type for e in seen] == [EventType.CHANGED]


def test_data_watch_recipe(make_client, root):
    a, b = make_client(), make_client()
    a.create(f"{root}/n", b"v0")
    seen = queue.Queue()

    @DataWatch(a, f"{root}/n")
    def watcher(data, stat, event=None):
        seen.put((data, stat.version if stat else None))

    assert seen.get(timeout=5) == (b"v0", 0)
    b.set(f"{root}/n", b"v1")
    assert seen.get(timeout=5) == (b"v1", 1)
    b.delete(f"{root}/n")
    assert seen.get(timeout=5) == (None, None)


def test_children_watch_recipe(make_client, root):
    a, b = make_client(), make_client()
    seen = queue.Queue()

    @ChildrenWatch(a, root)
    def watcher(children):
        seen.put(sorted(children))

    assert seen.get(timeout=5) == []
    b.create(f"{root}/x")
    assert seen.get(timeout=5) == ["x"]
    b.create(f"{root}/y", ephemeral=True)
    assert seen.get(timeout=5) == ["x", "y"]
    b.delete(f"{root}/x")
    assert seen.get(timeout=5) == ["y"]


def test_same_watcher_registered_twice_fires_once(make_client, root):
    a, b = make_client(), make_client()
    a.create(f"{root}/n")
    rec = Recorder()
    a.get(f"{root}/n", watch=rec)
    a.exists(f"{root}/n", watch=rec)
    b.set(f"{root}/n", b"x")
    assert rec.next().type == EventType.CHANGED
    rec.none()


# --- persistent and recursive watches (addWatch, opcode 106) -------------------

def test_persistent_and_recursive_watches_kazoo(make_client, root):
    a = make_client()
    if not hasattr(a, "add_watch"):
        pytest.skip("this kazoo has no add_watch (persistent watches are tested raw in test_raw.py)")
    from kazoo.protocol.states import AddWatchMode  # noqa
    b = make_client()
    rec = Recorder()
    a.add_watch(root, rec, AddWatchMode.PERSISTENT_RECURSIVE)
    b.create(f"{root}/x")
    b.create(f"{root}/x/y")
    b.set(f"{root}/x/y", b"1")
    b.delete(f"{root}/x/y")
    got = [rec.next() for _ in range(4)]
    assert [(e.type, e.path) for e in got] == [
        (EventType.CREATED, f"{root}/x"), (EventType.CREATED, f"{root}/x/y"),
        (EventType.CHANGED, f"{root}/x/y"), (EventType.DELETED, f"{root}/x/y")]


# --- sessions ------------------------------------------------------------------

def test_ephemeral_removed_when_session_closes(make_client, root):
    a, b = make_client(), make_client()
    a.create(f"{root}/e1", ephemeral=True)
    a.create(f"{root}/e2-", ephemeral=True, sequence=True)
    rec = Recorder()
    b.exists(f"{root}/e1", watch=rec)
    before = b.exists(root)
    a.stop()
    a.close()
    # closeSession is answered after the ephemerals are gone
    assert b.get_children(root) == []
    assert rec.next().type == EventType.DELETED
    after = b.exists(root)
    assert after.numChildren == 0 and after.cversion == before.cversion + 2
    assert after.pzxid > before.pzxid


def test_session_survives_dropped_connection(make_client, root):
    zk, other = make_client(), make_client()
    states = []
    zk.add_listener(lambda s: states.append(s))
    sid, pw = zk.client_id
    zk.create(f"{root}/e", ephemeral=True)
    # force the TCP connection closed under kazoo; it reconnects with the same session
    zk._connection._socket.shutdown(socket.SHUT_RDWR)
    assert wait_for(lambda: KazooState.SUSPENDED in states and zk.connected, timeout=15)
    assert zk.client_id == (sid, pw)
    assert zk.exists(f"{root}/e").ephemeralOwner == sid
    assert KazooState.LOST not in states
    # the session, and its ephemeral, lived on for everyone else too
    assert other.exists(f"{root}/e").ephemeralOwner == sid


def test_session_reattach_with_client_id(make_client, root):
    import rawzk
    a = make_client()
    raw = rawzk.RawClient(_port_of(a))
    hdr, _ = raw.call("create", rawzk.create_req(f"{root}/e", b"", flags=1))
    assert hdr.err == 0
    sid, pw = raw.session_id, raw.passwd
    raw.close()  # drop the connection without closing the session
    b = make_client(client_id=(sid, pw))
    assert b.client_id[0] == sid
    assert b.exists(f"{root}/e").ephemeralOwner == sid
    b.create(f"{root}/e2", ephemeral=True)
    b.stop()
    b.close()
    assert a.exists(f"{root}/e") is None and a.exists(f"{root}/e2") is None


def test_session_expiry_removes_ephemerals(make_client, root):
    import rawzk
    a = make_client()
    raw = rawzk.RawClient(_port_of(a), timeout_ms=4000)  # the minimum: 2 * tickTime
    assert raw.negotiated_timeout == 4000
    hdr, _ = raw.call("create", rawzk.create_req(f"{root}/e", b"", flags=1))
    assert hdr.err == 0
    rec = Recorder()
    assert a.exists(f"{root}/e", watch=rec) is not None
    # no pings: the session expires after its timeout (plus up to one tick)
    e = rec.next(timeout=15)
    assert e.type == EventType.DELETED
    assert a.exists(f"{root}/e") is None
    raw.close()


def _port_of(client):
    host, port = client.hosts[0] if isinstance(client.hosts, list) else client.hosts.split(":")
    return int(port)


# --- sync and four-letter words ------------------------------------------------

def test_sync(zk, root):
    assert zk.sync(root) == root
    assert zk.sync(f"{root}/missing") == f"{root}/missing"


def test_four_letter_words(server):
    assert four_letter_word(server.port, "ruok") == "imok"
    srvr = four_letter_word(server.port, "srvr")
    assert "Zookeeper version: " in srvr and f"Mode: {server.mode}" in srvr and "Node count: " in srvr
    mntr = four_letter_word(server.port, "mntr")
    kv = dict(line.split("\t", 1) for line in mntr.splitlines() if "\t" in line)
    assert kv["zk_server_state"] == server.mode
    for key in ("zk_version", "zk_znode_count", "zk_num_alive_connections", "zk_ephemerals_count",
                "zk_watch_count", "zk_avg_latency", "zk_outstanding_requests"):
        assert key in kv, key
    assert int(kv["zk_znode_count"]) >= 4
    stat = four_letter_word(server.port, "stat")
    assert "Zookeeper version: " in stat and "Clients:" in stat
    assert four_letter_word(server.port, "isro") == "rw"
    assert f"clientPort={server.port}" in four_letter_word(server.port, "conf")
    assert "Total watches:" in four_letter_word(server.port, "wchs")
    assert four_letter_word(server.port, "xxxx") == ""  # unknown word: closed, no reply


def mntr(port):
    return dict(line.split("\t", 1) for line in four_letter_word(port, "mntr").splitlines() if "\t" in line)


def test_four_letter_words_count_sessions_and_watches(fresh_server):
    # corral once counted only the watches of the core that answered mntr, so
    # watch_count read 0 when the sessions lived on other cores. Four sessions
    # on a server of their own (spread over corral's cores), exact counts.
    srv = fresh_server()
    with kazoo_ext.watching_sessions(srv.hosts):
        kv = mntr(srv.port)
        assert int(kv["zk_watch_count"]) == 4
        assert int(kv["zk_ephemerals_count"]) == 1
        assert int(kv["zk_num_alive_connections"]) >= 4
        # the exact wchs summary and cons listing: test_raw.py (corral differs there)
        assert "Total watches:" in four_letter_word(srv.port, "wchs")
        assert "/127.0.0.1:" in four_letter_word(srv.port, "cons")
