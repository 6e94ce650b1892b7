"""Differential test: the same seeded random operations, through kazoo, against
Apache ZooKeeper 3.8 and against corral; every result must match.

Usage: python3 differential.py [--seed N | --seeds A-B] [--ops N]

Results are normalised so that only what ZooKeeper promises is compared:
zxids become their rank among the zxids seen so far, times are dropped,
ephemeralOwner becomes the index of the owning session, children are sorted.
Error classes, data, versions, cversions, numChildren, sequential names,
ACLs and watch events (per session, in order) must be equal."""

import argparse
import random
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.security import ACL, Id, make_digest_acl

from servers import Corral, ZooKeeper

SESSIONS = 3
WORLD = [ACL(31, Id("world", "anyone"))]
READ_ONLY = [ACL(1, Id("world", "anyone"))]
ALICE = [make_digest_acl("alice", "pw", all=True)]


class Run:
    """One server's side of a differential run."""

    def __init__(self, hosts, root):
        self.hosts = hosts
        self.root = root
        self.clients = [None] * SESSIONS
        self.events = [[] for _ in range(SESSIONS)]
        self.lock = threading.Lock()
        self.zxids = {}
        for i in range(SESSIONS):
            self.open(i)

    def open(self, i):
        c = KazooClient(hosts=self.hosts, timeout=10.0)
        c.start(timeout=15)
        self.clients[i] = c

    def reopen(self, i):
        self.clients[i].stop()
        self.clients[i].close()
        self.open(i)

    def close(self):
        for c in self.clients:
            try:
                c.stop()
                c.close()
            except Exception:
                pass

    def session_index(self, owner):
        if owner == 0:
            return 0
        for i, c in enumerate(self.clients):
            if c.client_id and c.client_id[0] == owner:
                return i + 1
        return -1  # a closed session

    def rank(self, zxid):
        if zxid not in self.zxids:
            self.zxids[zxid] = len(self.zxids)
        return self.zxids[zxid]

    def stat(self, st):
        if st is None:
            return None
        return ("stat", self.rank(st.czxid), self.rank(st.mzxid), self.rank(st.pzxid), st.version,
                st.cversion, st.aversion, self.session_index(st.ephemeralOwner), st.dataLength, st.numChildren)

    def watcher(self, i):
        def fire(event):
            with self.lock:
                self.events[i].append((event.type, event.path))
        return fire

    def norm(self, value):
        """Normalises a kazoo result."""
        if isinstance(value, Exception):
            return ("error", type(value).__name__)
        if hasattr(value, "czxid"):
            return self.stat(value)
        if isinstance(value, tuple):
            return tuple(self.norm(v) for v in value)
        if isinstance(value, list):
            if value and all(isinstance(v, ACL) for v in value):
                return sorted((a.perms, a.id.scheme, a.id.id) for a in value)
            return [self.norm(v) for v in value]
        return value


def paths(root):
    return [root + p for p in ["/a", "/b", "/a/x", "/a/y", "/b/z", "/a/x/deep", "/c"]]


def gen_ops(seed, n, root):
    """The same op list for both servers, from the seed alone."""
    rng = random.Random(seed)
    pool = paths(root)
    ops = []
    for _ in range(n):
        s = rng.randrange(SESSIONS)
        p = rng.choice(pool)
        kind = rng.choices(
            ["create", "delete", "set", "get", "exists", "children", "getacl", "setacl", "txn", "reopen", "auth"],
            weights=[24, 12, 12, 10, 8, 8, 3, 3, 8, 2, 2])[0]
        version = rng.choice([-1, -1, 0, 1, 2, 7])
        value = rng.choice([b"", b"x", b"hello", bytes(rng.randrange(256) for _ in range(rng.randrange(64)))])
        op = {"kind": kind, "s": s, "path": p, "version": version, "value": value,
              "watch": rng.random() < 0.4,
              "ephemeral": rng.random() < 0.25, "sequence": rng.random() < 0.2,
              "acl": rng.choice(["world", "world", "world", "read", "alice"])}
        if kind == "txn":
            sub = []
            for _ in range(rng.randrange(1, 5)):
                sub.append((rng.choice(["create", "delete", "set", "check"]), rng.choice(pool),
                            rng.choice([-1, 0, 1]), rng.choice([b"", b"t"])))
            op["sub"] = sub
        ops.append(op)
    return ops


def apply(run, op):
    c = run.clients[op["s"]]
    p = op["path"]
    acl = {"world": WORLD, "read": READ_ONLY, "alice": ALICE}[op["acl"]]
    w = run.watcher(op["s"]) if op["watch"] else None
    k = op["kind"]
    try:
        if k == "create":
            return run.norm(c.create(p, op["value"], acl=acl, ephemeral=op["ephemeral"], sequence=op["sequence"],
                                     include_data=True))
        if k == "delete":
            return run.norm(c.delete(p, version=op["version"]))
        if k == "set":
            return run.norm(c.set(p, op["value"], version=op["version"]))
        if k == "get":
            return run.norm(c.get(p, watch=w))
        if k == "exists":
            return run.norm(c.exists(p, watch=w))
        if k == "children":
            children, st = c.get_children(p, watch=w, include_data=True)
            return ("children", sorted(children), run.norm(st))
        if k == "getacl":
            return run.norm(c.get_acls(p))
        if k == "setacl":
            return run.norm(c.set_acls(p, acl, version=op["version"]))
        if k == "txn":
            t = c.transaction()
            for (sk, sp, sv, sd) in op["sub"]:
                if sk == "create":
                    t.create(sp, sd)
                elif sk == "delete":
                    t.delete(sp, version=sv)
                elif sk == "set":
                    t.set_data(sp, sd, version=sv)
                else:
                    t.check(sp, sv)
            return ("txn", run.norm(t.commit()))
        if k == "reopen":
            run.reopen(op["s"])
            return ("reopened",)
        if k == "auth":
            c.add_auth("digest", "alice:pw")
            return ("auth",)
    except KazooException as e:
        return run.norm(e)
    raise AssertionError(f"unknown op {k}")


def run_seed(zk_hosts, corral_hosts, seed, n_ops):
    root = f"/diff{seed}"
    sides = []
    for hosts in (zk_hosts, corral_hosts):
        r = Run(hosts, root)
        r.clients[0].create(root)
        sides.append(r)
    ops = gen_ops(seed, n_ops, root)
    try:
        for i, op in enumerate(ops):
            a = apply(sides[0], op)
            b = apply(sides[1], op)
            if a != b:
                shown = {k: v for k, v in op.items() if k != "value"}
                return f"seed {seed} op {i} {shown}\n  zookeeper: {a}\n  corral:    {b}"
        # Watch events, per session, in order.
        for r in sides:
            for c in r.clients:
                c.sync(root)
        time.sleep(0.3)
        for i in range(SESSIONS):
            if sides[0].events[i] != sides[1].events[i]:
                return (f"seed {seed}: watch events of session {i} differ\n  zookeeper: {sides[0].events[i]}\n"
                        f"  corral:    {sides[1].events[i]}")
        # Final trees.
        trees = []
        for r in sides:
            c = r.clients[0]
            tree = {}
            stack = [root]
            while stack:
                p = stack.pop()
                try:
                    data, st = c.get(p)
                    kids = c.get_children(p)
                except KazooException as e:
                    tree[p] = type(e).__name__
                    continue
                tree[p] = (data, r.norm(st), sorted(kids))
                stack.extend(f"{p}/{k}" for k in kids)
            trees.append(tree)
        if trees[0] != trees[1]:
            return f"seed {seed}: final trees differ\n  zookeeper: {trees[0]}\n  corral:    {trees[1]}"
        return None
    finally:
        for r in sides:
            r.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int)
    ap.add_argument("--seeds", default="1-10", help="A-B, inclusive")
    ap.add_argument("--ops", type=int, default=200)
    args = ap.parse_args()
    seeds = [args.seed] if args.seed is not None else range(
        int(args.seeds.split("-")[0]), int(args.seeds.split("-")[1]) + 1)
    zk, corral = ZooKeeper().start(), Corral().start()
    try:
        for seed in seeds:
            failure = run_seed(zk.hosts, corral.hosts, seed, args.ops)
            if failure:
                print("DIVERGENCE " + failure)
                print(f"replay: python3 {sys.argv[0]} --seed {seed} --ops {args.ops}")
                sys.exit(1)
        print(f"differential: {len(seeds)} seeds passed")
    finally:
        zk.stop()
        corral.stop()


if __name__ == "__main__":
    main()
