"""The differential test (differential.py) on a fixed list of seeds."""

import pytest

import differential
from servers import Corral, ZooKeeper

SEEDS = range(1, 21)


@pytest.fixture(scope="module")
def pair():
    if not (Corral.available() and ZooKeeper.available()):
        pytest.skip("needs both corral and Debian's zookeeper")
    zk, corral = ZooKeeper().start(), Corral().start()
    yield zk, corral
    zk.stop()
    corral.stop()


@pytest.mark.parametrize("seed", SEEDS)
def test_same_results_as_zookeeper(pair, seed):
    zk, corral = pair
    failure = differential.run_seed(zk.hosts, corral.hosts, seed, 150)
    assert failure is None, failure
