"""kazoo (PyPI) against the server under test. Run with TARGET=zookeeper to
check the suite itself against Apache ZooKeeper 3.8."""

import socket
import threading
import time
import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import (BadVersionError, NoAuthError, NoChildrenForEphemeralsError, NodeExistsError,
                              NoNodeError, NotEmptyError, RolledBackError)
from kazoo.protocol.states import EventType
from kazoo.security import make_digest_acl

from servers import four_letter_word


def _session(server):
    c = KazooClient(hosts=server.hosts, timeout=10.0)
    c.start(timeout=15)
    yield c
    c.stop()
    c.close()


@pytest.fixture
def zk(server):
    yield from _session(server)


@pytest.fixture
def other(server):
    """A second session, for the other side of watches and ephemerals."""
    yield from _session(server)


def unique():
    return "/k" + uuid.uuid4().hex[:10]


def wait_for(pred, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return False


def test_crud_versions_and_stat(zk):
    p = unique()
    assert zk.create(p, b"v0") == p
    data, st = zk.get(p)
    assert data == b"v0" and st.version == 0 and st.dataLength == 2 and st.czxid == st.mzxid
    st2 = zk.set(p, b"v1", version=0)
    assert st2.version == 1 and st2.mzxid > st.mzxid
    with pytest.raises(BadVersionError):
        zk.set(p, b"v2", version=0)
    with pytest.raises(NodeExistsError):
        zk.create(p)
    with pytest.raises(NoNodeError):
        zk.create(p + "/missing/child")
    zk.create(p + "/c")
    with pytest.raises(NotEmptyError):
        zk.delete(p)
    st = zk.exists(p)
    assert st.numChildren == 1 and st.cversion == 1
    zk.delete(p + "/c", version=0)
    assert zk.exists(p).cversion == 2
    zk.delete(p, version=-1)
    assert zk.exists(p) is None
    with pytest.raises(NoNodeError):
        zk.get(p)


def test_sequential_and_ephemeral_nodes(zk, other):
    p = unique()
    zk.create(p)
    a = zk.create(p + "/s-", sequence=True)
    b = zk.create(p + "/s-", sequence=True, ephemeral=True)
    assert (a, b) == (p + "/s-0000000000", p + "/s-0000000001")
    assert zk.exists(b).ephemeralOwner == zk.client_id[0]
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(b + "/x")
    gone = threading.Event()
    other.exists(b, watch=lambda e: e.type == EventType.DELETED and gone.set())
    zk.stop()
    assert gone.wait(10), "ephemeral not removed with its session"
    assert other.get_children(p) == ["s-0000000000"]


def test_acls_and_digest_auth(server, zk):
    p = unique()
    zk.add_auth("digest", "alice:secret")
    zk.create(p, b"s", acl=[make_digest_acl("alice", "secret", all=True)])
    assert zk.get(p)[0] == b"s"
    stranger = KazooClient(hosts=server.hosts)
    stranger.start()
    try:
        with pytest.raises(NoAuthError):
            stranger.get(p)
        with pytest.raises(NoAuthError):
            stranger.set(p, b"x")
        acls, _ = zk.get_acls(p)
        assert acls[0].id.scheme == "digest" and acls[0].id.id.startswith("alice:")
        stranger.add_auth("digest", "alice:secret")
        assert stranger.get(p)[0] == b"s"
    finally:
        stranger.stop()


def test_transaction_all_or_nothing(zk):
    p = unique()
    t = zk.transaction()
    t.create(p, b"a")
    t.create(p + "/x", b"b")
    assert t.commit() == [p, p + "/x"]
    t = zk.transaction()
    t.create(p + "/y")
    t.delete(p)  # not empty
    t.create(p + "/z")
    results = t.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], NotEmptyError)
    assert zk.exists(p + "/y") is None and zk.exists(p + "/z") is None


def test_one_shot_watches(zk, other):
    p = unique()
    zk.create(p, b"0")
    events = []
    zk.get(p, watch=lambda e: events.append(("data", e.type, e.path)))
    zk.get_children(p, watch=lambda e: events.append(("child", e.type, e.path)))
    zk.exists(p + "/new", watch=lambda e: events.append(("exists", e.type, e.path)))
    other.set(p, b"1")
    other.set(p, b"2")  # the data watch fired once already
    other.create(p + "/new")
    assert wait_for(lambda: len(events) >= 3)
    time.sleep(0.2)
    assert sorted(events) == sorted([("data", EventType.CHANGED, p), ("child", EventType.CHILD, p),
                                     ("exists", EventType.CREATED, p + "/new")])


def test_persistent_recursive_watch(zk, other):
    if not hasattr(zk, "add_watch"):
        pytest.skip("this kazoo has no add_watch")
    from kazoo.protocol.states import AddWatchMode
    p = unique()
    zk.create(p)
    events = []
    zk.add_watch(p, lambda e: events.append((e.type, e.path)), AddWatchMode.PERSISTENT_RECURSIVE)
    other.create(p + "/a")
    other.create(p + "/a/b")
    other.set(p + "/a/b", b"x")
    other.delete(p + "/a/b")
    assert wait_for(lambda: len(events) >= 4)
    assert events == [(EventType.CREATED, p + "/a"), (EventType.CREATED, p + "/a/b"),
                      (EventType.CHANGED, p + "/a/b"), (EventType.DELETED, p + "/a/b")]


def test_session_survives_a_dropped_connection(server, zk, other):
    from kazoo.protocol.states import KazooState
    p = unique()
    zk.create(p, ephemeral=True)
    session = zk.client_id
    states = []
    zk.add_listener(lambda s: states.append(s))
    # Cut the socket under kazoo; it reconnects with the same session.
    zk._connection._socket.shutdown(socket.SHUT_RDWR)
    assert wait_for(lambda: KazooState.SUSPENDED in states and states[-1] == KazooState.CONNECTED)
    assert zk.client_id == session
    assert zk.retry(zk.exists, p).ephemeralOwner == session[0]
    # The session (and its ephemeral) lived on.
    assert other.exists(p).ephemeralOwner == session[0]


def test_sync_and_server_info(server, zk):
    zk.sync("/")
    assert four_letter_word(server.port, "ruok") == "imok"
    assert "Zookeeper version" in four_letter_word(server.port, "srvr")
    assert "zk_znode_count" in four_letter_word(server.port, "mntr")
