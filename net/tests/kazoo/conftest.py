import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from servers import Corral, ZooKeeper  # noqa: E402


@pytest.fixture(scope="module")
def server():
    """The server under test: corral, or Apache ZooKeeper with TARGET=zookeeper
    (to prove the suite encodes ZooKeeper's real behaviour)."""
    target = os.environ.get("TARGET", "corral")
    cls = ZooKeeper if target == "zookeeper" else Corral
    if not cls.available():
        pytest.skip(f"{target} is not available here")
    s = cls().start()
    yield s
    s.stop()
