#!/usr/bin/env python3
"""Jepsen-style test of a 3-server ensemble: random register operations from
several kazoo sessions while a nemesis kills, freezes, partitions and restarts
servers; then the history must be linearizable, every acknowledged write must
survive, and the three servers must agree.

The workload. CLIENTS threads, each with its own kazoo session: the first
three are pinned to one server each (so a partitioned or frozen server still
has clients, which then see it lose its quorum), the others get the full
connect string and move between servers. Each thread loops over KEYS znodes
(registers), choosing at random:
  read   sync(path) then get(path)       -> (value, version)
  write  set(path, unique value, -1)     -> new version
  cas    set(path, unique value, v)      -> new version, or BadVersion
         where v is the last version this client saw for that key.
Every op is recorded with its invocation and completion times (one monotonic
clock). BadVersion is a definite failure; connection loss, session expiry and
timeouts are indeterminate ("info": it may have happened, at any later time).

The nemesis cycles through a seeded shuffle of:
  kill-leader       kill -9 the leader, wait, start it again
  pause-leader      SIGSTOP the leader for longer than the session timeout,
                    then SIGCONT
  partition         isolate one server (the leader half the time), then heal
  restart-follower  stop (SIGTERM or kill -9) a follower and start it again
and waits for the ensemble to serve again (one leader, the rest followers)
after each fault, then a short quiet spell.

The checks, after the nemesis heals everything and the workload stops:
  - final reads: sync + get of every key through a session pinned to each
    server in turn; they join the history.
  - linearizability of each key's history (linearizability.py).
  - convergence: all three servers report the same data, version and mzxid
    for every key.
  - no lost acknowledged write: the acknowledged versions of a key are
    distinct, none exceeds its final version, and the final version is at
    most acknowledged + indeterminate writes.

Apache ZooKeeper's sync is not a true barrier across leader changes (the
Jepsen analysis of ZooKeeper and ZOOKEEPER-1675 describe how a sync+read can
be served by a server that has just lost its leadership). If the only
violations are stale sync+reads, the test counts them and, for
TARGET=zookeeper only, ends as xfail naming the seed; for corral, a stale read
fails the test like any other violation.

Run:
  TARGET=zookeeper python3 -m pytest -q -s net/tests/kazoo/ensemble
  python3 net/tests/kazoo/ensemble/test_jepsen.py --target corral --seconds 120 --seed 7
Environment: TARGET, CORRAL_BIN, JEPSEN_SECONDS (30), JEPSEN_SEED (random,
printed), JEPSEN_CLIENTS (6), JEPSEN_KEYS (4), JEPSEN_FAULTS (the four above,
comma-separated; slow-network and kill-all are also available), JEPSEN_READS (sync; get
skips the sync, to watch the checker catch stale reads), JEPSEN_HISTORY
(write the history as JSON lines to this path), KEEP_SERVER_DIRS.
"""

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import pytest  # noqa: E402
from kazoo.client import KazooClient  # noqa: E402
from kazoo.exceptions import BadVersionError, NoNodeError  # noqa: E402

import linearizability  # noqa: E402
import servers  # noqa: E402
from cluster import Ensemble  # noqa: E402
from linearizability import Op  # noqa: E402

SECONDS = float(os.environ.get("JEPSEN_SECONDS", "30"))
CLIENTS = int(os.environ.get("JEPSEN_CLIENTS", "6"))
KEYS = int(os.environ.get("JEPSEN_KEYS", "4"))
# Session timeout the clients ask for; with tickTime 300 ms the servers allow
# 0.6 .. 6 s. pause-leader freezes the leader for longer than this.
SESSION_TIMEOUT_S = 3.0
# A single request that has not come back after this long is indeterminate.
OP_TIMEOUT_S = 5.0
# The nemesis gives the ensemble this long to elect a leader again.
RECOVERY_S_MAX = 60.0
INIT_VALUE = "init"
FAULTS = ("kill-leader", "pause-leader", "partition", "restart-follower")
# Not in the default cycle: every server-to-server link 50-250 ms slow for a
# while; kill -9 all three servers at once and start them again (recovery of
# a whole ensemble from its logs).
EXTRA_FAULTS = ("slow-network", "kill-all")
# JEPSEN_FAULTS=partition,slow-network runs only those.
FAULTS_CHOSEN = tuple(f for f in os.environ.get("JEPSEN_FAULTS", ",".join(FAULTS)).split(",") if f)
# JEPSEN_READS=get reads without the sync first. ZooKeeper promises no
# linearizable reads then (a follower answers from its own, possibly lagging,
# copy): the way to see the checker catch a real server's stale reads. Stale
# reads then end the test as xfail on either server.
READS = os.environ.get("JEPSEN_READS", "sync")
READ_NAME = "sync+read" if READS == "sync" else "read (get without sync)"


class History:
    """The ops of a run, in invocation order; appended to by every thread."""

    def __init__(self):
        self.ops = []
        self.lock = threading.Lock()

    def invoke(self, process, key, kind, arg):
        op = Op(process, key, kind, arg, time.monotonic(), None)
        with self.lock:
            op.index = len(self.ops)
            self.ops.append(op)
        return op

    @staticmethod
    def complete(op, status, result=None, note=""):
        op.ret = time.monotonic()
        op.status = status
        op.result = result
        op.note = note


def indeterminate(e):
    """How an exception reads in the history: always "info" here, with its name."""
    return type(e).__name__


class Worker(threading.Thread):
    """One client session doing random register ops until told to stop."""

    def __init__(self, process, hosts, paths, seed, history, stop):
        super().__init__(name=f"jepsen-client-{process}", daemon=True)
        self.process = process
        self.hosts = hosts
        self.paths = paths
        self.rng = random.Random(seed)
        self.history = history
        self.stop_event = stop
        self.client = None
        self.seq = 0
        self.last_version = {p: 0 for p in paths}
        self.error = None

    def run(self):
        try:
            self.client = KazooClient(hosts=self.hosts, timeout=SESSION_TIMEOUT_S,
                                      connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1.0})
            self.client.start(timeout=30)
            while not self.stop_event.is_set():
                if not self.step():
                    # Back off after an error so a client with no server does
                    # not spin; the op is already in the history.
                    self.stop_event.wait(0.1)
        except Exception as e:  # a bug in the test itself: report it
            self.error = e
            raise
        finally:
            if self.client is not None:
                try:
                    self.client.stop()
                    self.client.close()
                except Exception:
                    pass

    def step(self):
        path = self.rng.choice(self.paths)
        kind = self.rng.choices(["read", "write", "cas"], weights=[2, 1, 1])[0]
        if kind == "read":
            return self.read(path)
        self.seq += 1
        value = f"p{self.process}-{self.seq}"
        if kind == "write":
            op = self.history.invoke(self.process, path, "write", value)
            version = -1
        else:
            version = self.last_version[path]
            op = self.history.invoke(self.process, path, "cas", (version, value))
        try:
            stat = self.client.set_async(path, value.encode(), version).get(timeout=OP_TIMEOUT_S)
        except BadVersionError:
            History.complete(op, "fail", note="BadVersion")
            return True
        except NoNodeError:
            History.complete(op, "fail", note="NoNode")
            return True
        except Exception as e:
            History.complete(op, "info", note=indeterminate(e))
            return False
        History.complete(op, "ok", stat.version)
        self.last_version[path] = stat.version
        return True

    def read(self, path):
        op = self.history.invoke(self.process, path, "read", None)
        try:
            if READS == "sync":
                self.client.sync_async(path).get(timeout=OP_TIMEOUT_S)
            data, stat = self.client.get_async(path).get(timeout=OP_TIMEOUT_S)
        except Exception as e:
            History.complete(op, "info", note=indeterminate(e))
            return False
        History.complete(op, "ok", (data.decode(), stat.version))
        self.last_version[path] = stat.version
        return True


class Nemesis(threading.Thread):
    """Injects FAULTS in a seeded order until `deadline`."""

    def __init__(self, ens, seed, deadline, log, faults=FAULTS_CHOSEN):
        super().__init__(name="jepsen-nemesis", daemon=True)
        unknown = set(faults) - set(FAULTS + EXTRA_FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS + EXTRA_FAULTS}")
        self.kinds = list(faults)
        self.ens = ens
        self.rng = random.Random(seed)
        self.deadline = deadline
        self.log = log
        self.faults = Counter()
        self.error = None

    def say(self, text):
        self.log(f"[nemesis {time.monotonic() - self.start_time:6.1f}s] {text}")

    def run(self):
        self.start_time = time.monotonic()
        try:
            self.quiet(1.0, 2.0)
            while time.monotonic() < self.deadline:
                order = list(self.kinds)
                self.rng.shuffle(order)
                for fault in order:
                    if time.monotonic() >= self.deadline:
                        break
                    getattr(self, fault.replace("-", "_"))()
                    self.faults[fault] += 1
                    self.recover(fault)
                    self.quiet(1.0, 2.5)
        except Exception as e:
            self.error = e
            self.say(f"error: {e!r}")

    def quiet(self, lo, hi):
        time.sleep(min(self.rng.uniform(lo, hi), max(0.0, self.deadline - time.monotonic())))

    def recover(self, fault):
        t = time.monotonic()
        modes = self.ens.wait_until_serving(RECOVERY_S_MAX)
        self.say(f"after {fault}: serving again in {time.monotonic() - t:.1f}s: {modes}")

    def leader(self):
        leader = self.ens.leader()
        if leader is None:
            self.ens.wait_until_serving(RECOVERY_S_MAX)
            leader = self.ens.leader()
        return leader

    def kill_leader(self):
        leader = self.leader()
        self.say(f"kill -9 leader s{leader}")
        self.ens.kill(leader)
        time.sleep(self.rng.uniform(1.0, 3.0))
        self.say(f"start s{leader}")
        self.ens.spawn(leader)

    def pause_leader(self):
        leader = self.leader()
        frozen = SESSION_TIMEOUT_S + self.rng.uniform(1.0, 2.0)
        self.say(f"SIGSTOP leader s{leader} for {frozen:.1f}s")
        self.ens.pause(leader)
        time.sleep(frozen)
        self.say(f"SIGCONT s{leader}")
        self.ens.resume(leader)

    def partition(self):
        leader = self.leader()
        victim = leader if self.rng.random() < 0.5 else self.rng.choice(
            [s for s in self.ens.members if s != leader])
        held = self.rng.uniform(2.0, 4.0)
        self.say(f"isolate s{victim} ({'leader' if victim == leader else 'follower'}) for {held:.1f}s")
        self.ens.partition(victim)
        time.sleep(held)
        self.say("heal")
        self.ens.heal()

    def slow_network(self):
        delay_ms = self.rng.randrange(50, 250)
        held = self.rng.uniform(2.0, 4.0)
        self.say(f"delay every server-to-server link by {delay_ms} ms for {held:.1f}s")
        self.ens.delay(delay_ms)
        time.sleep(held)
        self.ens.heal()

    def kill_all(self):
        self.say("kill -9 every server")
        for sid in self.ens.members:
            self.ens.kill(sid)
        time.sleep(self.rng.uniform(0.5, 2.0))
        self.say("start every server")
        for sid in self.ens.members:
            self.ens.spawn(sid)

    def restart_follower(self):
        leader = self.leader()
        follower = self.rng.choice([s for s in self.ens.members if s != leader])
        graceful = self.rng.random() < 0.5
        self.say(f"restart follower s{follower} ({'SIGTERM' if graceful else 'kill -9'})")
        if graceful:
            self.ens.stop(follower)
        else:
            self.ens.kill(follower)
        time.sleep(self.rng.uniform(0.5, 1.5))
        self.ens.spawn(follower)


def final_reads(ens, paths, history, timeout=60.0):
    """sync + get every key through each server; returns {sid: {path: (value, version, mzxid)}}."""
    out = {}
    for sid in ens.members:
        client = KazooClient(hosts=ens.hosts(sid), timeout=SESSION_TIMEOUT_S,
                             connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1.0})
        client.start(timeout=timeout)
        try:
            seen = {}
            deadline = time.monotonic() + timeout
            for path in paths:
                while True:
                    op = history.invoke(1000 + sid, path, "read", None)
                    try:
                        client.sync_async(path).get(timeout=OP_TIMEOUT_S)
                        data, stat = client.get_async(path).get(timeout=OP_TIMEOUT_S)
                    except Exception as e:
                        History.complete(op, "info", note=indeterminate(e))
                        if time.monotonic() > deadline:
                            raise AssertionError(f"final read of {path} through s{sid} kept failing: {e!r}")
                        time.sleep(0.2)
                        continue
                    History.complete(op, "ok", (data.decode(), stat.version))
                    seen[path] = (data.decode(), stat.version, stat.mzxid)
                    break
            out[sid] = seen
        finally:
            client.stop()
            client.close()
    return out


def written_value(op):
    return op.arg if op.kind == "write" else op.arg[1]


def check_acknowledged(ops, finals, paths):
    """Lost-write accounting per key; returns a list of problems (empty: fine)."""
    problems = []
    some_final = next(iter(finals.values()))
    for path in paths:
        final_value, final_version, _ = some_final[path]
        acked = [op for op in ops if op.key == path and op.kind in ("write", "cas") and op.status == "ok"]
        unknown = [op for op in ops if op.key == path and op.kind in ("write", "cas") and op.status == "info"]
        versions = Counter(op.result for op in acked)
        for version, n in sorted(versions.items()):
            if n > 1:
                same = [op.describe() for op in acked if op.result == version]
                problems.append(f"{path}: {n} acknowledged writes all produced version {version}:\n    "
                                + "\n    ".join(same))
        too_new = [op for op in acked if op.result > final_version]
        for op in too_new:
            problems.append(f"{path}: acknowledged write produced version {op.result}, but the final "
                            f"version is {final_version}: {op.describe()}")
        if final_version > len(acked) + len(unknown):
            problems.append(f"{path}: final version {final_version} > {len(acked)} acknowledged + "
                            f"{len(unknown)} indeterminate writes")
        by_version = {op.result: op for op in acked}
        if final_version in by_version and written_value(by_version[final_version]) != final_value:
            problems.append(f"{path}: final value {final_value!r} at version {final_version}, but the "
                            f"acknowledged write of that version wrote {written_value(by_version[final_version])!r}")
    return problems


def check_convergence(finals, paths):
    problems = []
    for path in paths:
        seen = {sid: finals[sid][path] for sid in finals}
        if len(set(seen.values())) != 1:
            problems.append(f"{path}: servers disagree (value, version, mzxid): {seen}")
    return problems


def dump_history(ops, path):
    with open(path, "w") as f:
        for op in ops:
            f.write(json.dumps({"index": op.index, "process": op.process, "key": op.key, "kind": op.kind,
                                "arg": op.arg, "call": op.call, "ret": op.ret, "status": op.status,
                                "result": op.result, "note": op.note}) + "\n")


class Outcome:
    def __init__(self):
        self.lines = []
        self.failures = []  # violations that fail the test on any target
        self.stale = []  # (read, evidence): stale reads
        self.stats = {}

    def log(self, text):
        self.lines.append(text)
        print(text, flush=True)


def ensemble_kind(target):
    """The server kind for a TARGET: this test always runs an ensemble, so
    TARGET=corral-ensemble (the rest of the suite's follower-of-three mode)
    means the same as corral here."""
    return "corral" if target.startswith("corral") else target


def run(target, seed, seconds, clients=CLIENTS, keys=KEYS):
    """One whole run; returns an Outcome. Raises only on a broken harness."""
    target = ensemble_kind(target)
    out = Outcome()
    out.log(f"jepsen: TARGET={target} JEPSEN_SEED={seed} JEPSEN_SECONDS={seconds} "
            f"clients={clients} keys={keys} faults={','.join(FAULTS_CHOSEN)} reads={READS}")
    rng = random.Random(seed)
    ens = Ensemble(target)
    t_start = time.monotonic()
    ens.start()
    out.log(f"ensemble up in {time.monotonic() - t_start:.1f}s: {ens.modes()} (dir {ens.root})")
    history = History()
    try:
        base = f"/jepsen-{uuid.uuid4().hex[:8]}"
        paths = [f"{base}/k{i}" for i in range(keys)]
        setup = KazooClient(hosts=ens.connect_string, timeout=10.0)
        setup.start(timeout=30)
        setup.create(base)
        for p in paths:
            setup.create(p, INIT_VALUE.encode())
        setup.stop()
        setup.close()

        stop = threading.Event()
        workers = []
        sids = sorted(ens.members)
        for i in range(clients):
            hosts = ens.hosts(sids[i]) if i < len(sids) else ens.connect_string
            workers.append(Worker(i, hosts, paths, rng.randrange(2 ** 32), history, stop))
        deadline = time.monotonic() + seconds
        nemesis = Nemesis(ens, rng.randrange(2 ** 32), deadline, out.log)
        for w in workers:
            w.start()
        nemesis.start()
        nemesis.join(seconds + 4 * RECOVERY_S_MAX)
        assert not nemesis.is_alive(), "nemesis hung"
        # Heal whatever is left broken, then stop the workload.
        ens.heal()
        for sid, m in ens.members.items():
            if m.paused:
                ens.resume(sid)
            if not m.running():
                ens.spawn(sid)
        stop.set()
        for w in workers:
            w.join(OP_TIMEOUT_S * 3 + 30)
            if w.error is not None:
                raise w.error
        ens.check_crashes()
        for sid, rc, log in ens.crashes:
            out.failures.append(f"server s{sid} exited by itself (rc={rc}); its log ends:\n{log}")
        if nemesis.error is not None:
            out.failures.append(f"the ensemble did not recover: {nemesis.error}")
        ens.wait_until_serving(RECOVERY_S_MAX, sids=sids)
        finals = final_reads(ens, paths, history)
        out.log(f"final state: {finals[sids[0]]}")
    finally:
        proxy_stats = ens.proxy.stats() if ens.proxy else {}
        ens.close()

    ops = history.ops
    if os.environ.get("JEPSEN_HISTORY"):
        dump_history(ops, os.environ["JEPSEN_HISTORY"])
        out.log(f"history written to {os.environ['JEPSEN_HISTORY']}")
    counts = Counter((op.kind, op.status) for op in ops)
    out.stats = {"ops": len(ops), "by_kind_status": dict(sorted(counts.items())),
                 "faults": dict(nemesis.faults),
                 "dropped_bytes": sum(s["dropped_bytes"] for s in proxy_stats.values())}
    out.log(f"ops: {len(ops)} " + ", ".join(f"{k} {s}: {n}" for (k, s), n in sorted(counts.items())))
    out.log(f"faults: {dict(nemesis.faults)}; proxy dropped {out.stats['dropped_bytes']} bytes")

    init = (INIT_VALUE, 0)
    t_check = time.monotonic()
    verdicts = linearizability.check(ops, init)
    out.log(f"linearizability: {sum(v.steps for v in verdicts.values())} search steps in "
            f"{time.monotonic() - t_check:.1f}s")
    broken = [k for k, v in verdicts.items() if not v.ok]
    if broken:
        # Is every violation a stale read? Take out the reads that are
        # stale on direct evidence and check again.
        stale = linearizability.stale_reads(ops)
        stale_ids = {id(r) for r, _ in stale}
        without = [op for op in ops if id(op) not in stale_ids]
        again = linearizability.check(without, init)
        for k in broken:
            if again[k].ok:
                reads = [(r, e) for r, e in stale if r.key == k]
                out.stale += reads
                out.log(f"{k}: {len(reads)} stale {READ_NAME}(s):")
                for r, e in reads[:10]:
                    out.log(f"    {r.describe()}\n      after {e.describe()}")
                out.log(verdicts[k].explain())
            else:
                out.failures.append(again[k].explain() if again[k].ok is False else verdicts[k].explain())
    problems = check_acknowledged(ops, finals, paths) + check_convergence(finals, paths)
    out.failures += problems
    return out


def corral_ensemble_support():
    """None if $CORRAL_BIN can run in an ensemble from a zoo.cfg, else why not."""
    if not servers.CorralServer.available():
        return servers.CorralServer.unavailable_reason()
    try:
        help_text = subprocess.run([servers.corral_bin(), "server", "--help"], capture_output=True,
                                   text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{servers.corral_bin()} server --help failed: {e}"
    if "--zoo-cfg" not in help_text:
        return f"{servers.corral_bin()} has no --zoo-cfg"
    return None


def seed_from_env():
    env = os.environ.get("JEPSEN_SEED")
    return int(env) if env else random.SystemRandom().randrange(1, 1_000_000)


def test_jepsen():
    target = ensemble_kind(servers.target())
    if target == "zookeeper" and not servers.ZooKeeperServer.available():
        pytest.skip(servers.ZooKeeperServer.unavailable_reason())
    if target == "corral":
        why = corral_ensemble_support()
        if why:
            pytest.skip(why)
    seed = seed_from_env()
    out = run(target, seed, SECONDS)
    settings = " ".join(f"{v}={os.environ[v]}" for v in
                        ("JEPSEN_CLIENTS", "JEPSEN_KEYS", "JEPSEN_FAULTS", "JEPSEN_READS", "ENSEMBLE_TICK_MS")
                        if os.environ.get(v))
    replay = (f"replay: TARGET={target} JEPSEN_SEED={seed} JEPSEN_SECONDS={SECONDS:g} {settings} "
              "python3 -m pytest -q -s net/tests/kazoo/ensemble/test_jepsen.py").replace("  ", " ")
    if out.failures:
        pytest.fail(f"seed {seed}: {len(out.failures)} violation(s):\n" + "\n".join(out.failures)
                    + f"\n{replay}", pytrace=False)
    if out.stale:
        msg = f"seed {seed}: {len(out.stale)} stale {READ_NAME}(s)"
        if READS != "sync":
            # Not a bug on either server: ZooKeeper promises no more than this.
            pytest.xfail(f"{msg}: reads without sync are only sequentially consistent; {replay}")
        if target == "zookeeper":
            pytest.xfail(f"{msg}: a known Apache ZooKeeper anomaly (sync is not a barrier across "
                         f"a leader change, ZOOKEEPER-1675); {replay}")
        examples = "\n".join(f"  {r.describe()}\n    after {e.describe()}" for r, e in out.stale[:10])
        pytest.fail(f"{msg} on {target}: reads must be linearizable\n{examples}\n{replay}", pytrace=False)


def main():
    # kazoo logs every dropped connection; the nemesis makes plenty.
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default=os.environ.get("TARGET", "zookeeper"), choices=sorted(servers.SERVERS))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=SECONDS)
    ap.add_argument("--clients", type=int, default=CLIENTS)
    ap.add_argument("--keys", type=int, default=KEYS)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else seed_from_env()
    args.target = ensemble_kind(args.target)
    out = run(args.target, seed, args.seconds, args.clients, args.keys)
    for f in out.failures:
        print(f"VIOLATION: {f}")
    print(f"seed {seed}: {len(out.failures)} violation(s), {len(out.stale)} stale {READ_NAME}(s); "
          f"{out.stats['ops']} ops; faults {out.stats['faults']}")
    stale_is_failure = READS == "sync" and args.target != "zookeeper"
    sys.exit(1 if out.failures or (out.stale and stale_is_failure) else 0)


if __name__ == "__main__":
    main()
