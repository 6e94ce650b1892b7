"""The seeded differential test (differential.py) on a fixed list of seeds:
real Apache ZooKeeper 3.8 and corral side by side. Skips when either server
is unavailable (no corral binary at $CORRAL_BIN, or no Debian zookeeper), and
under TARGET=zookeeper: that run checks that the other tests encode
ZooKeeper's behaviour, and this one always starts both servers anyway."""

import pytest

import differential
from servers import SERVERS, ZooKeeperServer, target

SEEDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 42, 1234, 99991]
OPS = 300


@pytest.fixture(scope="module")
def pair():
    if target() not in ("corral", "corral-ensemble"):
        pytest.skip("the differential test compares corral with ZooKeeper; "
                    "it runs with TARGET=corral or corral-ensemble")
    corral_cls = SERVERS[target()]
    for cls in (ZooKeeperServer, corral_cls):
        if not cls.available():
            pytest.skip(cls.unavailable_reason())
    zk, corral = differential.start_pair(corral_cls)
    yield zk, corral
    zk.stop()
    corral.stop()


@pytest.mark.parametrize("seed", SEEDS)
def test_same_results_as_zookeeper(pair, seed):
    zk, corral = pair
    failure = differential.run_seed(zk.hosts, corral.hosts, seed, OPS)
    assert failure is None, failure
