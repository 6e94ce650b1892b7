"""pytest fixtures for the Python suite (test_kazoo.py, test_raw.py, test_differential.py).

`server` is the server under test, chosen by the TARGET environment variable:
corral (default; the binary from CORRAL_BIN) or zookeeper (Debian's Apache
ZooKeeper 3.8). Running the suite with TARGET=zookeeper proves each test
encodes ZooKeeper's real behaviour; running it with TARGET=corral checks
corral against that. A missing corral binary (or missing ZooKeeper jars)
skips the tests with a message instead of failing them.
"""

import os
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kazoo.client import KazooClient  # noqa: E402

import servers  # noqa: E402


def start_server(kind=None, **kwargs):
    """Start a server of `kind` (default: $TARGET), or skip the test."""
    kind = kind or servers.target()
    cls = servers.SERVERS[kind]
    if not cls.available():
        pytest.skip(f"TARGET={kind}: {cls.unavailable_reason()}")
    return cls(**kwargs).start()


@pytest.fixture(scope="session")
def server():
    """The server under test, shared by the whole session (tests use unique paths)."""
    srv = start_server()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server():
    """A server of its own, for tests that look at a fresh tree or restart it."""
    srvs = []

    def make(**kwargs):
        s = start_server(**kwargs)
        srvs.append(s)
        return s

    yield make
    for s in srvs:
        s.stop()


@pytest.fixture
def make_client(server):
    """Factory for started kazoo clients on `server`; all are stopped afterwards."""
    clients = []

    def make(hosts=None, start=True, **kwargs):
        kwargs.setdefault("timeout", 10.0)
        c = KazooClient(hosts=hosts or server.hosts, **kwargs)
        if start:
            c.start(timeout=15)
        clients.append(c)
        return c

    yield make
    for c in clients:
        try:
            c.stop()
            c.close()
        except Exception:
            pass


@pytest.fixture
def zk(make_client):
    return make_client()


@pytest.fixture
def root(zk, request):
    """A unique, existing base path for one test."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "_")[:60]
    path = f"/t-{name}-{uuid.uuid4().hex[:8]}"
    zk.create(path)
    return path
