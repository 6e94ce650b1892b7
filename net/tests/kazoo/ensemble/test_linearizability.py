"""The linearizability checker's own tests: it must accept linearizable
histories, including ones that need reordering of concurrent ops or an
indeterminate write taking effect late, and it must reject the anomalies the
ensemble test exists to catch. A checker that never fails proves nothing.

Times are small integers; a history is written one op per line as
(process, kind, arg, call, ret, status, result).
"""

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from linearizability import Op, check, check_key, stale_reads  # noqa: E402

INIT = ("init", 0)


def history(*rows, key="k"):
    ops = []
    for i, (process, kind, arg, call, ret, status, result) in enumerate(rows):
        ops.append(Op(process, key, kind, arg, call, ret, status, result, index=i))
    return ops


def ok(*rows, init=INIT):
    v = check_key("k", history(*rows), init)
    assert v.ok is True, v.explain()
    return v


def bad(*rows, init=INIT):
    v = check_key("k", history(*rows), init)
    assert v.ok is False, f"accepted a non-linearizable history:\n{v.explain()}"
    assert "NOT linearizable" in v.explain()
    return v


# --- linearizable ---------------------------------------------------------

def test_empty_history():
    ok()


def test_sequential_write_then_read():
    ok((0, "write", "a", 0, 1, "ok", 1),
       (1, "read", None, 2, 3, "ok", ("a", 1)))


def test_concurrent_read_may_see_either_side_of_a_write():
    ok((0, "write", "a", 0, 10, "ok", 1),
       (1, "read", None, 1, 2, "ok", ("init", 0)),
       (2, "read", None, 3, 4, "ok", ("a", 1)))


def test_concurrent_writes_reordered():
    # Write b was invoked after write a but took effect first.
    ok((0, "write", "a", 0, 10, "ok", 2),
       (1, "write", "b", 1, 5, "ok", 1),
       (2, "read", None, 11, 12, "ok", ("a", 2)))


def test_cas_success_and_failure():
    ok((0, "cas", (0, "a"), 0, 1, "ok", 1),
       (1, "cas", (0, "b"), 2, 3, "fail", None),
       (1, "cas", (1, "b"), 4, 5, "ok", 2),
       (0, "read", None, 6, 7, "ok", ("b", 2)))


def test_indeterminate_write_may_land_late():
    # The write's client lost its connection; the write shows up much later.
    ok((0, "write", "a", 0, None, "info", None),
       (1, "read", None, 5, 6, "ok", ("init", 0)),
       (1, "read", None, 20, 21, "ok", ("a", 1)))


def test_indeterminate_write_may_never_happen():
    ok((0, "write", "a", 0, None, "info", None),
       (1, "read", None, 5, 6, "ok", ("init", 0)),
       (1, "write", "b", 7, 8, "ok", 1),
       (1, "read", None, 20, 21, "ok", ("b", 1)))


def test_indeterminate_cas_happens_only_if_version_matches():
    ok((0, "cas", (0, "a"), 0, None, "info", None),
       (1, "read", None, 5, 6, "ok", ("a", 1)))


def test_failed_and_indeterminate_reads_are_ignored():
    ok((0, "write", "a", 0, 1, "ok", 1),
       (1, "read", None, 2, None, "info", None),
       (1, "read", None, 3, 4, "fail", None),
       (1, "read", None, 5, 6, "ok", ("a", 1)))


def test_equal_times_count_as_concurrent():
    ok((0, "write", "a", 0, 5, "ok", 1),
       (1, "read", None, 5, 6, "ok", ("init", 0)))


# --- not linearizable -----------------------------------------------------

def test_stale_read_after_completed_write():
    v = bad((0, "write", "a", 0, 1, "ok", 1),
            (1, "read", None, 2, 3, "ok", ("init", 0)))
    assert v.blocked is not None


def test_stale_read_after_a_later_read():
    # Each read alone is fine; read 2 cannot go back in time after read 1.
    bad((0, "write", "a", 0, 100, "ok", 1),
        (1, "read", None, 1, 2, "ok", ("a", 1)),
        (2, "read", None, 3, 4, "ok", ("init", 0)))


def test_cas_success_that_contradicts_order():
    # Both CASes expect version 0, they are sequential, and both succeed.
    bad((0, "cas", (0, "a"), 0, 1, "ok", 1),
        (1, "cas", (0, "b"), 2, 3, "ok", 1))


def test_cas_failure_that_contradicts_state():
    # Nothing changed the version, yet the CAS on version 0 failed.
    bad((0, "read", None, 0, 1, "ok", ("init", 0)),
        (1, "cas", (0, "a"), 2, 3, "fail", None),
        (0, "read", None, 4, 5, "ok", ("init", 0)))


def test_lost_acknowledged_write():
    # Write a was acknowledged; afterwards the register is back to its
    # initial value, as if the write had been rolled back by a new leader.
    bad((0, "write", "a", 0, 1, "ok", 1),
        (1, "read", None, 2, 3, "ok", ("a", 1)),
        (2, "read", None, 10, 11, "ok", ("init", 0)))


def test_lost_acknowledged_write_two_writes_same_version():
    # Two concurrent writes acknowledged with the same new version: one of
    # them was lost (overwritten without a version bump).
    bad((0, "write", "a", 0, 5, "ok", 1),
        (1, "write", "b", 1, 6, "ok", 1),
        (2, "read", None, 10, 11, "ok", ("b", 1)))


def test_read_of_a_value_never_written():
    bad((0, "write", "a", 0, 1, "ok", 1),
        (1, "read", None, 2, 3, "ok", ("zzz", 1)))


def test_wrong_version_in_write_result():
    bad((0, "write", "a", 0, 1, "ok", 1),
        (0, "write", "b", 2, 3, "ok", 3))


def test_indeterminate_write_cannot_land_before_its_invocation():
    bad((1, "read", None, 0, 1, "ok", ("a", 1)),
        (0, "write", "a", 5, None, "info", None))


def test_many_pending_indeterminate_writes_stay_cheap():
    # 60 writes lost their outcome at the start and stay pending to the end;
    # without the version bound the search would try subsets of them at every
    # step. Two version gaps (at 100 and 300) need two of them to have landed.
    rows = [(p, "write", f"lost-{p}", 0, None, "info", None) for p in range(60)]
    version, t = 0, 1
    for i in range(400):
        version += 2 if i in (100, 300) else 1
        rows.append((99, "write", f"w{i}", t, t + 0.5, "ok", version))
        t += 1
    rows.append((98, "read", None, t, t + 1, "ok", ("w399", version)))
    v = ok(*rows)
    assert v.steps < 50_000, v.steps


# --- several keys, stale-read evidence, bigger histories -------------------

def test_keys_are_checked_independently():
    ops = history((0, "write", "a", 0, 1, "ok", 1), key="x")
    ops += history((1, "read", None, 2, 3, "ok", ("init", 0)), key="y")
    verdicts = check(ops, {"x": INIT, "y": INIT})
    assert all(v.ok for v in verdicts.values())
    ops += history((1, "read", None, 4, 5, "ok", ("init", 0)), key="x")
    verdicts = check(ops, INIT)
    assert verdicts["y"].ok and verdicts["x"].ok is False


def test_stale_reads_names_the_evidence():
    ops = history((0, "write", "a", 0, 1, "ok", 1),
                  (1, "read", None, 2, 3, "ok", ("init", 0)),
                  (2, "read", None, 0.5, 4, "ok", ("init", 0)))
    stale = stale_reads(ops)
    assert [(r.index, e.index) for r, e in stale] == [(1, 0)]


def random_history(rng, processes=4, ops_per_process=60, keys=1, lose=0.1, corrupt=False):
    """Simulate a linearizable register service with overlapping ops.

    Every op takes effect at a random point inside [call, ret]; some lose
    their outcome ("info"). With `corrupt`, one ok read reports the state
    before a write that completed before the read began (a stale read).
    """
    events = []  # (effect time, process, op)
    ops = []
    for p in range(processes):
        t = rng.random()
        last_version = 0
        for _ in range(ops_per_process):
            call = t
            ret = call + rng.uniform(0.01, 3.0)
            effect = rng.uniform(call, ret)
            kind = rng.choice(["read", "read", "write", "cas"])
            key = f"k{rng.randrange(keys)}"
            if kind == "write":
                arg = f"p{p}-{len(ops)}"
            elif kind == "cas":
                arg = (last_version + rng.choice([0, 0, 1, -1]), f"p{p}-{len(ops)}")
            else:
                arg = None
            op = Op(p, key, kind, arg, call, ret, "ok")
            ops.append(op)
            events.append((effect, op))
            t = ret + rng.uniform(0.0, 0.5)
            last_version = max(0, last_version + rng.choice([0, 1, 2]))
    state = {}
    history_by_time = []
    for effect, op in sorted(events, key=lambda e: e[0]):
        value, version = state.get(op.key, INIT)
        if op.kind == "read":
            op.result = (value, version)
        elif op.kind == "write":
            state[op.key] = (op.arg, version + 1)
            op.result = version + 1
        else:
            if version == op.arg[0]:
                state[op.key] = (op.arg[1], version + 1)
                op.result = version + 1
            else:
                op.status = "fail"
        history_by_time.append((effect, op, (value, version)))
        if op.kind != "read" and rng.random() < lose:
            op.status, op.ret, op.result = "info", None, None
    if corrupt:
        # A read that began after a write completed reports the state before it.
        for effect, op, before in history_by_time:
            if op.kind != "write" or op.status != "ok":
                continue
            for _, r, _ in history_by_time:
                if r.kind == "read" and r.key == op.key and r.call > op.ret and r.result[1] >= op.result:
                    r.result = before
                    break
            else:
                continue
            break
    for i, op in enumerate(sorted(ops, key=lambda o: o.call)):
        op.index = i
    return ops


def test_random_linearizable_histories_pass():
    for seed in range(30):
        rng = random.Random(seed)
        ops = random_history(rng, keys=2)
        for key, v in check(ops, INIT).items():
            assert v.ok is True, f"seed {seed}:\n{v.explain()}"


def test_random_histories_with_a_stale_read_fail():
    failures = 0
    for seed in range(30):
        rng = random.Random(1000 + seed)
        ops = random_history(rng, keys=1, corrupt=True)
        verdicts = check(ops, INIT)
        assert stale_reads(ops), f"seed {seed}: no stale read was planted"
        assert not all(v.ok for v in verdicts.values()), f"seed {seed}: stale read accepted"
        failures += 1
    assert failures == 30
