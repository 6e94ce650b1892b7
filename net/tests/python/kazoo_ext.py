"""Requests kazoo 2.11 does not expose, sent through kazoo's own connection:
createContainer (opcode 19) and createTTL (opcode 21). Both answer like
create2: the created path and its Stat.

    path, stat = create_container(zk, "/c")
    path, stat = create_ttl(zk, "/t", ttl_ms=500)
"""

from collections import namedtuple

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
