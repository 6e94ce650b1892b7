"""ZAB's TRUNC with real processes: a leader cut off from the others logs a
write it can never commit, dies, and comes back after the others moved on
to a new epoch. It must drop that write (its log holds a transaction the
new leader does not have), rejoin, and serve exactly what the ensemble
committed. Runs against corral and, with TARGET=zookeeper, against Apache
ZooKeeper 3.8 (which truncates the same way).

    python3 -m pytest -q net/tests/kazoo/ensemble/test_truncation.py
"""

import os
import sys
import time

import pytest
from kazoo.client import KazooClient

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from cluster import Ensemble  # noqa: E402


def kind():
    t = os.environ.get("TARGET", "corral")
    return "corral" if t == "corral-ensemble" else t


def client(hosts):
    c = KazooClient(hosts=hosts, timeout=10.0)
    c.start(timeout=30)
    return c


def test_a_cut_off_leader_drops_its_uncommitted_write_when_it_returns():
    ok, why = Ensemble.available(kind())
    if not ok:
        pytest.skip(why)
    e = Ensemble(kind()).start()
    clients = []
    try:
        setup = client(e.connect_string)
        clients.append(setup)
        setup.create("/t", b"committed")
        old = e.leader()
        assert old is not None
        others = [s for s in e.members if s != old]
        on_old = client(e.hosts(old))
        clients.append(on_old)
        on_old.sync("/t")

        # Cut the leader off, then give it a write: it logs it and proposes
        # it into the void; nobody can acknowledge it.
        e.partition(old)
        on_old.set_async("/t", b"never committed")
        time.sleep(0.5)
        e.kill(old)

        e.wait_until_serving(sids=others)
        survivors = client(",".join(e.hosts(s) for s in others))
        clients.append(survivors)
        survivors.set("/t", b"after the election")
        survivors.create("/new-epoch", b"")

        e.heal()
        e.spawn(old)
        e.wait_until_serving()
        assert not e.check_crashes(), "a server exited by itself"
        for sid in e.members:
            c = client(e.hosts(sid))
            clients.append(c)
            c.sync("/t")
            data, stat = c.get("/t")
            assert data == b"after the election", f"server {sid}"
            assert stat.version == 1, f"server {sid}: the lost write took a version"
            assert c.exists("/new-epoch") is not None, f"server {sid}"
        if kind() == "corral":
            log = e.members[old].log(200_000)
            assert "TRUNC" in log, "the old leader was told to truncate"
    finally:
        for c in clients:
            try:
                c.stop()
                c.close()
            except Exception:
                pass
        e.close()
