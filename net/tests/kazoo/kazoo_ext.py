"""kazoo helpers shared by the tests and zk_facts.py.

Requests kazoo 2.11 does not expose, sent through kazoo's own connection:
createContainer (opcode 19) and createTTL (opcode 21). Both answer like
create2: the created path and its Stat.

    path, stat = create_container(zk, "/c")
    path, stat = create_ttl(zk, "/t", ttl_ms=500)

And `watching_sessions(hosts)`, the four sessions with watches that the
watch four-letter words are measured with.
"""

from collections import namedtuple
from contextlib import contextmanager

from kazoo.client import KazooClient

from kazoo.protocol.serialization import Create2, long_struct
from kazoo.security import OPEN_ACL_UNSAFE

# CreateMode flags (org.apache.zookeeper.CreateMode)
PERSISTENT, EPHEMERAL, PERSISTENT_SEQUENTIAL, EPHEMERAL_SEQUENTIAL = 0, 1, 2, 3
CONTAINER, PERSISTENT_WITH_TTL, PERSISTENT_SEQUENTIAL_WITH_TTL = 4, 5, 6


class CreateContainer(namedtuple("CreateContainer", "path data acl flags")):
    type = 19
    serialize = Create2.serialize
    deserialize = classmethod(Create2.deserialize.__func__)


class CreateTTL(namedtuple("CreateTTL", "path data acl flags ttl")):
    type = 21

    def serialize(self):
        b = Create2.serialize(self)
        b.extend(long_struct.pack(self.ttl))
        return b

    deserialize = classmethod(Create2.deserialize.__func__)


def _call(zk, request, timeout=10):
    result = zk.handler.async_result()
    zk._call(request, result)
    return result.get(timeout=timeout)


def create_container(zk, path, value=b"", acl=None):
    return _call(zk, CreateContainer(path, value, acl or OPEN_ACL_UNSAFE, CONTAINER))


def create_ttl(zk, path, ttl_ms, value=b"", acl=None, sequence=False):
    flags = PERSISTENT_SEQUENTIAL_WITH_TTL if sequence else PERSISTENT_WITH_TTL
    return _call(zk, CreateTTL(path, value, acl or OPEN_ACL_UNSAFE, flags, ttl_ms))


@contextmanager
def watching_sessions(hosts):
    """Four started sessions a, b, c, d on a fresh server: a creates the
    ephemeral /w; data watches a:/w, b:/w and d:/missing (d sets it twice,
    which is still one watch); a child watch c:/. That is 4 watches (mntr),
    3 of them data watches on 2 paths (wchs, wchc, wchp). Closed on exit.

        with watching_sessions(srv.hosts) as (a, b, c, d): ...
    """
    clients = [KazooClient(hosts=hosts, timeout=10.0) for _ in range(4)]
    try:
        for c in clients:
            c.start(timeout=15)
        a, b, c, d = clients
        a.create("/w", b"", ephemeral=True)
        a.get("/w", watch=lambda e: None)
        b.exists("/w", watch=lambda e: None)
        c.get_children("/", watch=lambda e: None)
        d.exists("/missing", watch=lambda e: None)
        d.exists("/missing", watch=lambda e: None)
        yield clients
    finally:
        for c in clients:
            c.stop()
            c.close()
