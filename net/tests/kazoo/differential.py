#!/usr/bin/env python3
"""Seeded random differential test: the same operations, through kazoo, against
the real Apache ZooKeeper 3.8 and against corral; every result must match.

Usage:
    python3 differential.py --seed N [--ops 300] [--seeds K] [--verbose]

runs seeds N, N+1, ..., N+K-1. It starts both servers itself (ZooKeeper from
Debian's package, corral from $CORRAL_BIN). On the first divergence it prints
the seed, the op index, the op and both results, and exits 1; on success it
prints `differential: K seeds passed`.

Each seed runs in lockstep on both servers with 3 kazoo sessions per server.
Operations: create (persistent, ephemeral, sequential, ephemeral+sequential,
container; with or without the stat; world, read-only, digest and `auth`
ACLs), delete and set_data with random versions (-1, right, wrong), get,
exists and get_children (with or without a one-shot watch, with or without
the stat), get_acls/set_acls, sync, transactions mixing create, delete,
set_data and check, adding a digest identity to a live session (then `auth`
ACLs name every identity it holds), and closing and reopening a session (its
ephemerals must vanish, its watches are dropped, its added identities are
forgotten). Paths come from a small pool under a
per-seed base (/d, /d/a, /d/b, /d/a/x, ... plus the sequential names created
so far), so conflicts are frequent.

Results are normalised so that only what ZooKeeper promises is compared:
exceptions by class name; children sorted; ACL lists sorted; Stat with czxid/mzxid/pzxid
replaced by the index of the first time that zxid was seen in the run, times
dropped, ephemeralOwner replaced by the owning session's slot (0: none);
sequential names compared exactly. Watch events (type and path, per session,
in order) are compared at checkpoints every 25 ops and at the end, and the
final tree (every node's data, stat and ACL) is compared at the end.

Empty containers are not reaped during a run (the check interval is set to an
hour on both servers) so that results do not depend on timing.
"""

import argparse
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import KazooException  # noqa: E402
from kazoo.protocol.states import ZnodeStat  # noqa: E402
from kazoo.security import ACL, Id, Permissions, make_digest_acl  # noqa: E402

import kazoo_ext  # noqa: E402
from servers import CorralServer, ZooKeeperServer  # noqa: E402

SESSIONS = 3
CHECKPOINT = 25
NO_REAP_MS = 3_600_000

WORLD_ALL = [ACL(Permissions.ALL, Id("world", "anyone"))]
READ_ONLY = [ACL(Permissions.READ, Id("world", "anyone"))]
ALICE = [make_digest_acl("alice", "apw", all=True)]
ALICE_AND_READ = ALICE + READ_ONLY
AUTH = [ACL(Permissions.ALL, Id("auth", ""))]
ACLS = [("world", WORLD_ALL), ("read-only", READ_ONLY), ("alice", ALICE),
        ("alice+read", ALICE_AND_READ), ("auth", AUTH)]
# session slot -> digest identity it authenticates with (None: none)
AUTHS = ["alice:apw", "bob:bpw", None]
# identities an `auth` op adds to a live session (a repeat must change nothing)
IDENTITIES = ["alice:apw", "bob:bpw", "carol:cpw"]

STATIC_POOL = ["/d", "/d/a", "/d/b", "/d/a/x", "/d/a/y", "/d/b/x", "/e", "/e/a", "/f"]
SEQ_PREFIXES = ["/d/s-", "/d/a/s-", "/e/q-", "/s-"]


class Side:
    """One server's half of a run: its sessions and what they observed."""

    def __init__(self, name, hosts, base):
        self.name = name
        self.hosts = hosts
        self.base = base
        self.clients = [None] * SESSIONS
        self.gen = [0] * SESSIONS
        self.events = [[] for _ in range(SESSIONS)]
        self.lock = threading.Lock()
        self.zxids = {}
        for i in range(SESSIONS):
            self.open(i)

    # sessions
    def open(self, i):
        c = KazooClient(hosts=self.hosts, timeout=10.0)
        c.start(timeout=20)
        if AUTHS[i]:
            c.add_auth("digest", AUTHS[i])
        self.clients[i] = c
        self.gen[i] += 1

    def close_session(self, i):
        c = self.clients[i]
        c.stop()
        c.close()

    def reopen(self, i):
        self.close_session(i)
        self.open(i)

    def close(self):
        for c in self.clients:
            try:
                c.stop()
                c.close()
            except Exception:
                pass

    def watcher(self, i):
        gen = self.gen[i]

        def w(ev):
            with self.lock:
                self.events[i].append((gen, ev.type, self.rel(ev.path) if ev.path else None))
        return w

    def take_events(self):
        with self.lock:
            ev = [list(e) for e in self.events]
            for e in self.events:
                e.clear()
        return ev

    def quiesce(self):
        """Make sure every watch event caused so far has been recorded: a
        round trip on each session (notifications precede later replies),
        then wait for kazoo's callback threads to drain."""
        for c in self.clients:
            c.sync("/")
        deadline = time.time() + 5
        while time.time() < deadline:
            if all(c.handler.callback_queue.empty() for c in self.clients):
                break
            time.sleep(0.01)
        time.sleep(0.05)

    # normalisation
    def rel(self, path):
        if path is None:
            return None
        if path == self.base:
            return "<base>"
        if path.startswith(self.base + "/"):
            return path[len(self.base):]
        return path

    def zx(self, z):
        if z not in self.zxids:
            self.zxids[z] = len(self.zxids)
        return self.zxids[z]

    def owner(self, sid):
        if sid == 0:
            return 0
        for i, c in enumerate(self.clients):
            if c.client_id and c.client_id[0] == sid:
                return i + 1
        return f"unknown-session-{sid:#x}"

    def stat(self, st):
        return ("stat", "cz", self.zx(st.czxid), "mz", self.zx(st.mzxid), "pz", self.zx(st.pzxid),
                "v", st.version, "cv", st.cversion, "av", st.aversion, "owner", self.owner(st.ephemeralOwner),
                "len", st.dataLength, "n", st.numChildren)

    def norm(self, v):
        if isinstance(v, ZnodeStat):
            return self.stat(v)
        if isinstance(v, BaseException):
            return ("error", type(v).__name__)
        if isinstance(v, str):
            return self.rel(v)
        if isinstance(v, ACL):
            return (v.perms, v.id.scheme, v.id.id)
        if isinstance(v, list) and v and all(isinstance(x, ACL) for x in v):
            # An `auth` ACL expands to every digest identity of the session,
            # which ZooKeeper keeps in a hash set: the order it stores them in
            # is no promise (docs/internals/zk-facts.md, "auth" ACLs). Explicit
            # ACL lists keep their order on both servers; test_kazoo.py checks.
            return tuple(sorted(self.norm(x) for x in v))
        if isinstance(v, (list, tuple)):
            return tuple(self.norm(x) for x in v)
        return v


class Model:
    """A rough idea of which nodes exist, kept from the reference results; it
    only steers the random choices towards ops that can succeed."""

    NAMES = ["a", "b", "x", "y"]

    def __init__(self):
        self.pool = list(STATIC_POOL)
        self.existing = set()
        self.ephemeral = {}  # path -> session slot

    def add(self, path, eph_sess=None):
        if path and path != "<base>":
            self.existing.add(path)
            if path not in self.pool and path.count("/") <= 3:
                self.pool.append(path)
            if eph_sess is not None:
                self.ephemeral[path] = eph_sess

    def remove(self, path):
        for p in [p for p in self.existing if p == path or p.startswith(path + "/")]:
            self.existing.discard(p)
            self.ephemeral.pop(p, None)

    def pick(self, rng):
        if self.existing and rng.random() < 0.6:
            return rng.choice(sorted(self.existing))
        return rng.choice(self.pool)

    def pick_new(self, rng):
        parents = [""] + sorted(p for p in self.existing if p.count("/") < 3 and p not in self.ephemeral)
        parent = rng.choice(parents) if rng.random() < 0.8 else rng.choice([""] + self.pool)
        return f"{parent}/{rng.choice(self.NAMES)}" if rng.random() < 0.85 else rng.choice(self.pool)

    def observe(self, op, res):
        kind, sess = op[0], op[1]
        err = res[1] if isinstance(res, tuple) and len(res) == 2 and res[0] == "error" else None
        if kind == "create":
            mode = op[4]
            if err is None:
                name = res[0] if isinstance(res, tuple) else res
                self.add(name, sess if "ephemeral" in mode else None)
        elif kind == "delete" and err is None:
            self.remove(op[2])
        elif kind in ("get", "exists", "set", "children", "get_acls", "set_acls"):
            if err == "NoNodeError" or (kind == "exists" and res is None):
                self.remove(op[2])
            elif err is None:
                self.existing.add(op[2])
        elif kind == "multi" and isinstance(res, tuple) and not any(
                isinstance(r, tuple) and r and r[0] == "error" for r in res):
            for sub, r in zip(op[2], res):
                if sub[0] == "create":
                    self.add(r, sess if sub[3] else None)
                elif sub[0] == "delete":
                    self.remove(sub[1])
        elif kind == "reopen":
            for p in [p for p, s in self.ephemeral.items() if s == sess]:
                self.remove(p)


def gen_op(rng, model):
    """One random operation, as a plain tuple (so it can be printed and replayed)."""
    sess = rng.randrange(SESSIONS)
    r = rng.random()
    path = model.pick(rng)
    ver = -1 if rng.random() < 0.4 else rng.randrange(0, 3)
    data = rng.choice([b"", b"x", b"hello", bytes([rng.randrange(256)]) * rng.randrange(1, 40)])
    if r < 0.26:
        mode = rng.choice(["persistent", "persistent", "ephemeral", "sequential", "ephemeral-sequential",
                           "container"])
        path = model.pick_new(rng)
        if "sequential" in mode and rng.random() < 0.5:
            path = rng.choice(SEQ_PREFIXES)
        acl = rng.choice(ACLS)[0] if rng.random() < 0.3 else "world"
        return ("create", sess, path, data, mode, acl, rng.random() < 0.3)
    if r < 0.38:
        return ("delete", sess, path, ver)
    if r < 0.50:
        return ("set", sess, path, data, ver)
    if r < 0.59:
        return ("get", sess, path, rng.random() < 0.35)
    if r < 0.66:
        return ("exists", sess, path, rng.random() < 0.35)
    if r < 0.75:
        return ("children", sess, path, rng.random() < 0.35, rng.random() < 0.5)
    if r < 0.79:
        return ("get_acls", sess, path)
    if r < 0.83:
        return ("set_acls", sess, path, rng.choice(ACLS)[0], rng.choice([-1, -1, 0, 1]))
    if r < 0.85:
        return ("sync", sess, path)
    if r < 0.96:
        ops = []
        for _ in range(rng.randrange(1, 5)):
            k = rng.random()
            p = model.pick(rng)
            v = -1 if rng.random() < 0.5 else rng.randrange(0, 3)
            if k < 0.35:
                seq = rng.random() < 0.25
                eph = rng.random() < 0.2
                ops.append(("create", rng.choice(SEQ_PREFIXES) if seq else model.pick_new(rng), b"t", eph, seq))
            elif k < 0.6:
                ops.append(("delete", p, v))
            elif k < 0.85:
                ops.append(("set", p, b"tx", v))
            else:
                ops.append(("check", p, max(v, 0)))
        return ("multi", sess, tuple(ops))
    if r < 0.98:
        return ("auth", sess, rng.choice(IDENTITIES))
    return ("reopen", sess)


def run_op(side, op):
    """Run op on one side; return the normalised result."""
    kind, sess = op[0], op[1]
    c = side.clients[sess]
    b = side.base
    try:
        if kind == "create":
            _, _, path, data, mode, acl, with_stat = op
            acl_list = dict(ACLS)[acl]
            if mode == "container":
                res = kazoo_ext.create_container(c, b + path, data, acl=acl_list)
                if not with_stat:
                    res = res[0]
            else:
                res = c.create(b + path, data, acl=acl_list, ephemeral="ephemeral" in mode,
                               sequence="sequential" in mode, include_data=with_stat)
        elif kind == "delete":
            res = c.delete(b + op[2], version=op[3])
        elif kind == "set":
            res = c.set(b + op[2], op[3], version=op[4])
        elif kind == "get":
            res = c.get(b + op[2], watch=side.watcher(sess) if op[3] else None)
        elif kind == "exists":
            res = c.exists(b + op[2], watch=side.watcher(sess) if op[3] else None)
        elif kind == "children":
            res = c.get_children(b + op[2], watch=side.watcher(sess) if op[3] else None,
                                 include_data=op[4])
            if op[4]:
                res = (sorted(res[0]), res[1])
            else:
                res = sorted(res)
        elif kind == "get_acls":
            res = c.get_acls(b + op[2])
        elif kind == "set_acls":
            res = c.set_acls(b + op[2], dict(ACLS)[op[3]], version=op[4])
        elif kind == "sync":
            res = c.sync(b + op[2])
        elif kind == "multi":
            t = c.transaction()
            for sub in op[2]:
                if sub[0] == "create":
                    t.create(b + sub[1], sub[2], ephemeral=sub[3], sequence=sub[4])
                elif sub[0] == "delete":
                    t.delete(b + sub[1], version=sub[2])
                elif sub[0] == "set":
                    t.set_data(b + sub[1], sub[2], version=sub[3])
                else:
                    t.check(b + sub[1], sub[2])
            res = t.commit()
        elif kind == "auth":
            c.add_auth("digest", op[2])
            res = "authenticated"
        elif kind == "reopen":
            side.reopen(sess)
            res = "reopened"
        else:
            raise ValueError(kind)
    except KazooException as e:
        res = e
    return side.norm(res)


def dump_tree(side):
    """Every node under the base, with data, normalised stat and ACL."""
    c = side.clients[0]
    out = []

    def walk(path):
        try:
            data, st = c.get(path)
        except KazooException as e:
            out.append((side.rel(path), "get", type(e).__name__))
            data, st = None, c.exists(path)
            if st is None:
                return
        try:
            acl = side.norm(c.get_acls(path)[0])
        except KazooException as e:
            acl = type(e).__name__
        out.append((side.rel(path), data, side.stat(st), acl))
        try:
            kids = sorted(c.get_children(path))
        except KazooException as e:
            out.append((side.rel(path), "children", type(e).__name__))
            return
        for k in kids:
            walk(f"{path}/{k}")

    walk(side.base)
    return out


class Divergence(Exception):
    pass


def run_seed(zk_hosts, corral_hosts, seed, ops, verbose=False, base=None):
    """Run one seed in lockstep; return None, or a description of the first divergence."""
    rng = random.Random(seed)
    base = base or f"/diff-{seed}-{random.Random().getrandbits(32):08x}"
    # superuser-free setup: the base is world-writable on both servers
    sides = []
    try:
        for name, hosts in (("zookeeper", zk_hosts), ("corral", corral_hosts)):
            s = Side(name, hosts, base)
            s.clients[2].create(base, b"")
            sides.append(s)
        zk, co = sides
        model = Model()
        history = []

        def compare(idx, what, a, b):
            if a != b:
                recent = "\n".join(f"  #{i}: {o!r} -> {r!r}" for i, o, r in history[-8:])
                raise Divergence(
                    f"DIVERGENCE seed={seed} op={idx} {what}\n"
                    f"  zookeeper: {a!r}\n  corral:    {b!r}\n"
                    f"recent ops (zookeeper results):\n{recent}\n"
                    f"replay: python3 {os.path.relpath(__file__)} --seed {seed} --ops {ops} --verbose")

        def checkpoint(idx):
            for s in sides:
                s.quiesce()
            compare(idx, "watch events (per session: [(session generation, type, path)])",
                    zk.take_events(), co.take_events())

        for idx in range(ops):
            op = gen_op(rng, model)
            a = run_op(zk, op)
            b = run_op(co, op)
            if verbose:
                print(f"#{idx} {op!r} -> {a!r}", flush=True)
            compare(idx, f"op {op!r}", a, b)
            history.append((idx, op, a))
            model.observe(op, a)
            if op[0] == "reopen" or (idx + 1) % CHECKPOINT == 0:
                checkpoint(idx)
        checkpoint(ops)
        compare(ops, "final tree", dump_tree(zk), dump_tree(co))
        return None
    except Divergence as d:
        return str(d)
    finally:
        for s in sides:
            s.close()


def start_pair(corral_cls=CorralServer):
    zk = ZooKeeperServer(jvm_args=[f"-Dznode.container.checkIntervalMs={NO_REAP_MS}"])
    co = corral_cls()
    co.extra_args = [a for a in co.extra_args]
    if "--container-check-interval" in co.extra_args:
        i = co.extra_args.index("--container-check-interval")
        co.extra_args[i + 1] = str(NO_REAP_MS)
    else:
        co.extra_args += ["--container-check-interval", str(NO_REAP_MS)]
    zk.start()
    try:
        co.start()
    except Exception:
        zk.stop()
        raise
    return zk, co


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=1, help="how many consecutive seeds to run")
    ap.add_argument("--ops", type=int, default=300)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if not ZooKeeperServer.available():
        print(f"differential: {ZooKeeperServer.unavailable_reason()}", file=sys.stderr)
        return 2
    if not CorralServer.available():
        print(f"differential: {CorralServer.unavailable_reason()}", file=sys.stderr)
        return 2
    zk, co = start_pair()
    try:
        for seed in range(args.seed, args.seed + args.seeds):
            failure = run_seed(zk.hosts, co.hosts, seed, args.ops, verbose=args.verbose)
            if failure:
                print(failure)
                return 1
            if args.verbose or args.seeds > 1:
                print(f"seed {seed}: ok", flush=True)
    finally:
        zk.stop()
        co.stop()
    print(f"differential: {args.seeds} seeds passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
