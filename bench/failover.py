"""Leader failover time: while one kazoo client writes (setData, one at a
time, ~100/s) through the connect string, SIGKILL the leader's process and
measure how long no write succeeds: from the last success before the kill
to the first success after it. Prints one markdown table row.

    python3 bench/failover.py CONNECT_STRING LEADER_PID LABEL
"""

import os
import signal
import sys
import time

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.retry import KazooRetry


def main():
    connect, leader_pid, label = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    # No retries inside kazoo: every attempt is one measured write.
    zk = KazooClient(hosts=connect, timeout=10.0,
                     connection_retry=KazooRetry(max_tries=-1, delay=0.05, max_delay=0.2),
                     command_retry=None)
    zk.start(timeout=20)
    zk.ensure_path("/failover")
    # Two seconds of steady writes, then the kill.
    last_ok = None
    warm_until = time.monotonic() + 2
    while time.monotonic() < warm_until:
        zk.set("/failover", b"warm")
        last_ok = time.monotonic()
        time.sleep(0.01)
    os.kill(leader_pid, signal.SIGKILL)
    killed_at = time.monotonic()
    first_after = None
    deadline = killed_at + 60
    while time.monotonic() < deadline:
        try:
            zk.set("/failover", b"after")
            first_after = time.monotonic()
            break
        except KazooException:
            time.sleep(0.01)
    zk.stop()
    zk.close()
    if first_after is None:
        print(f"| {label} x3 | no successful write within 60 s |")
        return 1
    print(f"| {label} x3 | {(first_after - last_ok) * 1000:.0f} ms (kill to first write: {(first_after - killed_at) * 1000:.0f} ms) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
