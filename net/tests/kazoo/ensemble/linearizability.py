"""A linearizability checker for ZooKeeper znodes used as registers.

The model: each key is a register whose state is (value, version), as a znode's
data and Stat.version are. Operations, as the test records them:

  read          sync(path) then get(path); result (value, version).
  write(v)      setData(path, v, -1); result the new version.
  cas(e, v)     setData(path, v, e); ok: the new version; fail: BadVersion,
                which says the version was not e at that moment.

Every operation has an invocation time and, unless its outcome is unknown, a
completion time (time.monotonic(), one clock for the whole test process).
Statuses follow Jepsen: "ok" (happened, with that result), "fail" (did not
happen; for a cas, BadVersion is a fact about the state too) and "info" (we
do not know: connection loss, session expiry, timeout). An "info" write or
cas may take effect at any moment after its invocation, or never; an "info"
read says nothing and is dropped.

The search is Wing & Gong's, with Lowe's memoization as in Knossos and
porcupine: walk the history's call/return events in time order, linearize a
pending call if the model allows its result in the current state, back up
when a return is reached whose call was never linearized, and never explore a
(set of linearized ops, model state) pair twice. Keys are independent
registers, so each key's sub-history is checked on its own
(P-compositionality: a history is linearizable iff every per-object
sub-history is).

An "info" op gets an infinite completion time, so its return event sorts
after every real one; reaching it means every op with a known outcome is
linearized, and the rest may simply never have happened. Such ops would
make the plain search exponential (any subset of them may have landed at any
point); since versions never go down, a branch is cut as soon as the state's
version passes what some op still to be placed needs (`_Ceilings`), which
leaves an indeterminate write only the version gaps the acknowledged ops
leave. Tens of thousands of ops per key check in seconds.

Besides the search, `stale_reads` finds reads that are wrong on direct
evidence alone (a read saw version r after a write producing a later version
had been acknowledged, or after another read had already seen a later
version). The ensemble test uses it to tell a stale sync+read, which Apache
ZooKeeper is known to allow, from any other violation.

Run `python3 -m pytest -q test_linearizability.py` for the checker's own
tests, which include histories that must fail.
"""

import bisect
import math
import random
from dataclasses import dataclass, field
from typing import Any, Optional

INF = math.inf
# The search gives up (verdict "unknown") after this many steps on one key;
# with versions in every result the search is almost linear, so reaching it
# means something pathological.
STEPS_MAX = 5_000_000


@dataclass
class Op:
    """One operation: `kind` read/write/cas, `status` ok/fail/info."""

    process: int
    key: str
    kind: str
    arg: Any  # write: value; cas: (expected_version, value); read: None
    call: float
    ret: Optional[float]  # None while pending and for "info"
    status: str = "info"
    result: Any = None  # read: (value, version); write/cas ok: new version (None: not checked)
    index: int = field(default=-1, compare=False)  # position in the whole history
    note: str = ""  # e.g. the exception of an "info" op

    def describe(self):
        if self.kind == "read":
            what = "read"
        elif self.kind == "write":
            what = f"write {self.arg!r}"
        else:
            what = f"cas v{self.arg[0]} -> {self.arg[1]!r}"
        if self.status == "ok":
            res = f"-> {self.result!r}" if self.kind == "read" else f"-> ok v{self.result}"
        elif self.status == "fail":
            res = "-> fail (BadVersion)" if self.kind == "cas" else f"-> fail {self.note}"
        else:
            res = f"-> info ({self.note or 'unknown'})"
        ret = "  ...  " if self.ret is None else f"{self.ret:9.4f}"
        return f"#{self.index:<5} p{self.process:<3} [{self.call:9.4f}, {ret}] {self.key} {what} {res}"


class RegisterModel:
    """A znode's data and version; `step` returns the next state or None."""

    @staticmethod
    def step(state, op):
        value, version = state
        if op.kind == "read":
            # Only "ok" reads reach the search (see prepare()).
            return state if tuple(op.result) == state else None
        if op.kind == "write":
            if op.status == "ok" and op.result is not None and op.result != version + 1:
                return None
            return (op.arg, version + 1)
        if op.kind == "cas":
            expected, new_value = op.arg
            if op.status == "fail":
                return state if version != expected else None
            if version != expected:
                return None
            if op.status == "ok" and op.result is not None and op.result != version + 1:
                return None
            return (new_value, version + 1)
        raise ValueError(f"unknown op kind {op.kind!r}")

    @staticmethod
    def rank(state):
        """A measure of the state that no step decreases: the version."""
        return state[1]

    @staticmethod
    def rank_max(op):
        """The highest rank the state may have when `op` is linearized, or None.

        An ok read of version r needs the version to be r; an ok write or cas
        returning r needs r - 1. A failed or indeterminate op sets no bound.
        """
        if op.status != "ok":
            return None
        if op.kind == "read":
            return op.result[1]
        return None if op.result is None else op.result - 1


def prepare(ops):
    """The ops the search considers: drop what has no effect and says nothing."""
    out = []
    for op in ops:
        if op.kind == "read" and op.status != "ok":
            continue
        if op.kind == "write" and op.status == "fail":
            continue  # a definite failure of a blind write carries no fact about the state
        out.append(op)
    return out


@dataclass
class Verdict:
    ok: Optional[bool]  # None: gave up (STEPS_MAX)
    key: str
    ops: list
    steps: int = 0
    # On failure: the deepest partial linearization found and the op that
    # could not be placed after it.
    linearized: list = field(default_factory=list)
    state: Any = None
    blocked: Optional[Op] = None

    def explain(self, context_ops=12):
        """A human-readable account of a failure, with the sub-history around it."""
        if self.ok:
            return f"key {self.key}: linearizable ({len(self.ops)} ops)"
        if self.ok is None:
            return f"key {self.key}: gave up after {self.steps} steps ({len(self.ops)} ops)"
        lines = [f"key {self.key}: NOT linearizable ({len(self.ops)} ops, {self.steps} steps)"]
        lines.append(f"  longest linearizable prefix: {len(self.linearized)} ops, ending in state {self.state!r}")
        for op in self.linearized[-context_ops:]:
            lines.append("    " + op.describe())
        if self.blocked is not None:
            b = self.blocked
            lines.append("  no linearization can place:")
            lines.append("    " + b.describe())
            placed = {id(o) for o in self.linearized}
            window_start = min([b.call] + [o.call for o in self.linearized[-3:]])
            window_end = b.ret if b.ret is not None else INF
            overlapping = [o for o in self.ops if o is not b and o.call <= window_end
                           and (o.ret is None or o.status == "info" or o.ret >= window_start)]
            lines.append(f"  ops overlapping [{window_start:.4f}, {window_end:.4f}] (* = in the prefix):")
            for op in sorted(overlapping, key=lambda o: o.call)[:40]:
                lines.append(("  * " if id(op) in placed else "    ") + op.describe())
        return "\n".join(lines)


class _Ceilings:
    """The lowest `rank_max` among ops not linearized yet, kept up to date.

    This is what makes indeterminate writes cheap. Versions never go down, so
    once the state's version passes the bound of an op still to be placed,
    that op can never be placed: the branch is dead. Without this, the search
    tries every subset of the pending indeterminate writes at every point (a
    lost write stays pending to the end of the history), which is
    exponential; with it, an indeterminate write is only tried where the
    acknowledged versions leave a gap for it.
    """

    def __init__(self, ops, model):
        bounded = [(model.rank_max(op), i) for i, op in enumerate(ops)]
        self.order = sorted((b, i) for b, i in bounded if b is not None)
        self.position = {i: p for p, (_, i) in enumerate(self.order)}
        self.done = bytearray(len(self.order))
        self.lo = 0  # every position below lo is done

    def mark(self, i, done):
        p = self.position.get(i)
        if p is None:
            return
        self.done[p] = done
        if done:
            while self.lo < len(self.order) and self.done[self.lo]:
                self.lo += 1
        elif p < self.lo:
            self.lo = p

    def lowest_other_than(self, i):
        """The lowest bound among ops not linearized, ignoring op i; None if none."""
        p = self.lo
        while p < len(self.order) and (self.done[p] or self.order[p][1] == i):
            p += 1
        return self.order[p][0] if p < len(self.order) else None


class _Node:
    __slots__ = ("op", "is_return", "match", "prev", "next")

    def __init__(self, op, is_return):
        self.op = op
        self.is_return = is_return
        self.match = None
        self.prev = None
        self.next = None


def _lift(entry):
    entry.prev.next = entry.next
    entry.next.prev = entry.prev
    match = entry.match
    match.prev.next = match.next
    if match.next is not None:
        match.next.prev = match.prev


def _unlift(entry):
    match = entry.match
    match.prev.next = match
    if match.next is not None:
        match.next.prev = match
    entry.prev.next = entry
    entry.next.prev = entry


def check_key(key, ops, init, model=RegisterModel, steps_max=STEPS_MAX):
    """Is this one key's history linearizable from state `init`?"""
    ops = prepare(ops)
    events = []
    for i, op in enumerate(ops):
        ret = op.ret if op.status != "info" and op.ret is not None else INF
        assert op.status == "info" or op.ret is not None, f"completed op without a completion time: {op}"
        assert ret >= op.call, f"op completes before it is invoked: {op.describe()}"
        call_node, ret_node = _Node(i, False), _Node(i, True)
        call_node.match = ret_node
        # At equal times a call sorts before a return: the two ops count as
        # concurrent, the permissive reading of a clock tie.
        events.append((op.call, 0, i, call_node))
        events.append((ret, 1, i, ret_node))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    head = _Node(None, False)
    prev = head
    for _, _, _, node in events:
        prev.next = node
        node.prev = prev
        prev = node

    # The memo key is the linearized set, hashed Zobrist-style: one random
    # 128-bit word per op, xored in and out. A set of thousands of ops as a
    # bitmask costs O(ops) per step; the hash costs O(1), and two different
    # sets collide with probability about (configurations)^2 / 2^128.
    rng = random.Random(0x5EED)
    zobrist = [rng.getrandbits(128) for _ in ops]
    linearized = 0
    ceilings = _Ceilings(ops, model)
    cache = set()
    calls = []  # stack of (call node, state before it)
    state = init
    entry = head.next
    steps = 0
    best = (-1, None, None, None)  # depth, calls snapshot, state, blocked op
    while True:
        steps += 1
        if steps > steps_max:
            return Verdict(None, key, ops, steps)
        if entry is None:
            return Verdict(True, key, ops, steps)
        op = ops[entry.op]
        if not entry.is_return:
            new_state = model.step(state, op)
            if new_state is not None:
                ceiling = ceilings.lowest_other_than(entry.op)
                if ceiling is not None and model.rank(new_state) > ceiling:
                    new_state = None  # some op still to be placed could never be
            if new_state is not None:
                new_linearized = linearized ^ zobrist[entry.op]
                memo = (new_linearized, new_state)
                if memo not in cache:
                    cache.add(memo)
                    calls.append((entry, state))
                    state = new_state
                    linearized = new_linearized
                    ceilings.mark(entry.op, 1)
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
            continue
        # A return whose call is not linearized yet.
        if op.status == "info":
            return Verdict(True, key, ops, steps)
        if len(calls) > best[0]:
            best = (len(calls), [ops[c.op] for c, _ in calls], state, op)
        if not calls:
            break
        entry, state = calls.pop()
        linearized ^= zobrist[entry.op]
        ceilings.mark(entry.op, 0)
        _unlift(entry)
        entry = entry.next
    _, placed, at_state, blocked = best
    return Verdict(False, key, ops, steps, linearized=placed or [], state=at_state, blocked=blocked)


def check(ops, init):
    """Check every key on its own. `init` is a state or a {key: state} dict.

    Returns {key: Verdict}.
    """
    by_key = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    out = {}
    for key in sorted(by_key):
        start = init[key] if isinstance(init, dict) else init
        out[key] = check_key(key, by_key[key], start)
    return out


def stale_reads(ops):
    """Reads that are wrong on direct evidence, as (read, evidence op) pairs.

    A read r that returned version v is stale if, before r was invoked, an
    acknowledged write or cas had produced a version above v, or another read
    had completed having seen a version above v. Versions only grow, so no
    linearization can order r after that evidence; this names the anomaly
    in words a reader can check by hand.
    """
    out = []
    by_key = {}
    for op in ops:
        if op.status == "ok":
            by_key.setdefault(op.key, []).append(op)
    for key_ops in by_key.values():
        # (completion time, version) of every ok op that proves a version.
        proofs = []
        for op in key_ops:
            if op.kind == "read":
                proofs.append((op.ret, op.result[1], op))
            elif op.result is not None:
                proofs.append((op.ret, op.result, op))
        proofs.sort(key=lambda p: p[0])
        # best[i]: the proof with the highest version among proofs[:i + 1].
        best = []
        for proof in proofs:
            best.append(proof if not best or proof[1] > best[-1][1] else best[-1])
        rets = [p[0] for p in proofs]
        for op in key_ops:
            if op.kind != "read":
                continue
            i = bisect.bisect_left(rets, op.call)  # proofs completed strictly before the call
            if i > 0 and best[i - 1][1] > op.result[1]:
                out.append((op, best[i - 1][2]))
    return out
