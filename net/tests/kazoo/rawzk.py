"""A tiny raw ZooKeeper wire-protocol client (jute over TCP), for poking at
what kazoo hides: reply header err codes, malformed paths, unknown opcodes.

    c = RawClient(port)           # connects and creates a session
    hdr, body = c.call(OP_GET_DATA, path_req("/x", watch=False))
    hdr.err  -> 0 or a negative ZooKeeper error code
"""

import socket
import struct
from collections import namedtuple

OP = dict(notification=0, create=1, delete=2, exists=3, getData=4, setData=5, getACL=6,
          setACL=7, getChildren=8, sync=9, ping=11, getChildren2=12, check=13, multi=14,
          create2=15, reconfig=16, checkWatches=17, removeWatches=18, createContainer=19,
          deleteContainer=20, createTTL=21, multiRead=22, auth=100, setWatches=101, sasl=102,
          getEphemerals=103, getAllChildrenNumber=104, setWatches2=105, addWatch=106,
          whoAmI=107, createSession=-10, closeSession=-11, error=-1)

ERR = {0: "OK", -1: "SystemError", -2: "RuntimeInconsistency", -3: "DataInconsistency",
       -4: "ConnectionLoss", -5: "MarshallingError", -6: "Unimplemented",
       -7: "OperationTimeout", -8: "BadArguments", -12: "UnknownSession",
       -13: "NewConfigNoQuorum", -14: "ReconfigInProgress", -100: "APIError",
       -101: "NoNode", -102: "NoAuth", -103: "BadVersion", -108: "NoChildrenForEphemerals",
       -110: "NodeExists", -111: "NotEmpty", -112: "SessionExpired",
       -113: "InvalidCallback", -114: "InvalidACL", -115: "AuthFailed",
       -118: "SessionMoved", -119: "NotReadOnly", -120: "EphemeralOnLocalSession",
       -121: "NoWatcher", -122: "RequestTimeout", -123: "ReconfigDisabled",
       -124: "SessionClosedRequireAuth", -125: "QuotaExceeded", -127: "Throttled"}

ReplyHeader = namedtuple("ReplyHeader", "xid zxid err")
Stat = namedtuple("Stat", "czxid mzxid ctime mtime version cversion aversion "
                          "ephemeralOwner dataLength numChildren pzxid")
STAT_FMT = ">qqqqiiiqiiq"
STAT_LEN = struct.calcsize(STAT_FMT)

OPEN_ACL_UNSAFE = [(31, "world", "anyone")]


# --- jute encoders -----------------------------------------------------------

def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def boolean(v):
    return b"\x01" if v else b"\x00"


def buf(b):
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def ustr(s):
    return buf(None if s is None else s.encode())


def acls(lst):
    out = i32(len(lst))
    for perms, scheme, ident in lst:
        out += i32(perms) + ustr(scheme) + ustr(ident)
    return out


def path_req(path, watch=False):
    """GetData/Exists/GetChildren/GetChildren2 request body."""
    return ustr(path) + boolean(watch)


def create_req(path, data=b"", acl=OPEN_ACL_UNSAFE, flags=0):
    return ustr(path) + buf(data) + acls(acl) + i32(flags)


def create_ttl_req(path, data=b"", acl=OPEN_ACL_UNSAFE, flags=5, ttl=1000):
    return create_req(path, data, acl, flags) + i64(ttl)


def delete_req(path, version=-1):
    return ustr(path) + i32(version)


def set_data_req(path, data, version=-1):
    return ustr(path) + buf(data) + i32(version)


def multi_header(op, done=False, err=-1):
    """MultiHeader(type, done, err): precedes each op of a multi / multiRead
    request; `multi_header(-1, True)` ends the list."""
    return i32(OP[op] if isinstance(op, str) else op) + boolean(done) + i32(err)


MULTI_END = multi_header(-1, True)


# --- jute decoders -----------------------------------------------------------

class Reader:
    def __init__(self, data):
        self.d = data
        self.o = 0

    def i32(self):
        v = struct.unpack_from(">i", self.d, self.o)[0]
        self.o += 4
        return v

    def i64(self):
        v = struct.unpack_from(">q", self.d, self.o)[0]
        self.o += 8
        return v

    def boolean(self):
        v = self.d[self.o] != 0
        self.o += 1
        return v

    def buf(self):
        n = self.i32()
        if n < 0:
            return None
        v = self.d[self.o:self.o + n]
        self.o += n
        return v

    def ustr(self):
        b = self.buf()
        return None if b is None else b.decode()

    def stat(self):
        v = Stat(*struct.unpack_from(STAT_FMT, self.d, self.o))
        self.o += STAT_LEN
        return v

    def strings(self):
        return [self.ustr() for _ in range(self.i32())]

    def rest(self):
        return self.d[self.o:]

    def multi(self):
        """The results of a multi / multiRead reply, as tuples:
        ("error", code), ("create", path), ("create2", path, stat),
        ("setData", stat), ("delete",), ("check",), ("getData", data, stat),
        ("getChildren", names)."""
        out = []
        while True:
            t, done, _err = self.i32(), self.boolean(), self.i32()
            if done:
                return out
            if t == -1:
                out.append(("error", self.i32()))
            elif t == OP["create"]:
                out.append(("create", self.ustr()))
            elif t == OP["create2"]:
                out.append(("create2", self.ustr(), self.stat()))
            elif t == OP["setData"]:
                out.append(("setData", self.stat()))
            elif t in (OP["delete"], OP["check"]):
                out.append(({OP["delete"]: "delete", OP["check"]: "check"}[t],))
            elif t == OP["getData"]:
                out.append(("getData", self.buf(), self.stat()))
            elif t == OP["getChildren"]:
                out.append(("getChildren", self.strings()))
            else:
                raise ValueError(f"unexpected multi result type {t}")


class RawClient:
    def __init__(self, port, host="127.0.0.1", timeout_ms=10000, session_id=0, passwd=b"\0" * 16,
                 read_only=False, connect=True, sock_timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=sock_timeout)
        self.xid = 0
        self.session_id = None
        self.passwd = None
        self.negotiated_timeout = None
        self.events = []
        if connect:
            self.handshake(timeout_ms, session_id, passwd, read_only)

    # framing
    def send_frame(self, payload):
        self.sock.sendall(i32(len(payload)) + payload)

    def _recv_exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError(f"connection closed by server after {len(out)}/{n} bytes")
            out += chunk
        return out

    def recv_frame(self):
        (n,) = struct.unpack(">i", self._recv_exact(4))
        return self._recv_exact(n)

    def handshake(self, timeout_ms=10000, session_id=0, passwd=b"\0" * 16, read_only=False):
        req = i32(0) + i64(0) + i32(timeout_ms) + i64(session_id) + buf(passwd) + boolean(read_only)
        self.send_frame(req)
        r = Reader(self.recv_frame())
        r.i32()  # protocol version
        self.negotiated_timeout = r.i32()
        self.session_id = r.i64()
        self.passwd = r.buf()
        return self.session_id

    def send(self, op, body=b"", xid=None):
        if xid is None:
            self.xid += 1
            xid = self.xid
        self.send_frame(i32(xid) + i32(OP[op] if isinstance(op, str) else op) + body)
        return xid

    def recv(self):
        """Next reply that is not a watch notification (those go to self.events)."""
        while True:
            r = Reader(self.recv_frame())
            hdr = ReplyHeader(r.i32(), r.i64(), r.i32())
            if hdr.xid == -1:  # watch event
                self.events.append((r.i32(), r.i32(), r.ustr()))
                continue
            return hdr, r

    def call(self, op, body=b"", xid=None):
        self.send(op, body, xid)
        return self.recv()

    def close_session(self):
        try:
            return self.call("closeSession")
        finally:
            self.sock.close()

    def close(self):
        self.sock.close()


def err_name(code):
    return ERR.get(code, str(code))
