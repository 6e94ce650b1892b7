"""The fault proxy's own tests, against a small echo server: each mode does
what the ensemble test relies on (pass forwards, delay delays, drop
blackholes and then resets what it tainted, reset refuses)."""

import os
import socket
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from proxy import Proxy  # noqa: E402


class EchoServer:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        return
                    conn.sendall(data)
            except OSError:
                return

    def close(self):
        self.sock.close()


@pytest.fixture
def link():
    echo = EchoServer()
    proxy = Proxy()
    port = proxy.add_link("a->b", echo.port)
    yield proxy, port, echo
    proxy.close()
    echo.close()


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def roundtrip(s, payload=b"ping", timeout=5.0):
    s.settimeout(timeout)
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        got += chunk
    return got


def test_pass_forwards_both_ways(link):
    proxy, port, _ = link
    with connect(port) as s:
        assert roundtrip(s, b"hello") == b"hello"
        big = os.urandom(1 << 20)
        assert roundtrip(s, big) == big


def test_delay_adds_latency_both_ways(link):
    proxy, port, _ = link
    proxy.set_mode("a->b", "delay", delay_ms=150)
    with connect(port) as s:
        t = time.monotonic()
        assert roundtrip(s) == b"ping"
        assert time.monotonic() - t >= 0.29  # 150 ms each way
    proxy.set_mode("a->b", "pass")
    with connect(port) as s:
        t = time.monotonic()
        roundtrip(s)
        assert time.monotonic() - t < 0.1


def test_drop_blackholes_then_heal_resets_tainted_connections(link):
    proxy, port, _ = link
    idle = connect(port)
    busy = connect(port)
    roundtrip(idle)
    roundtrip(busy)
    proxy.set_mode("a->b", "drop")
    with pytest.raises(socket.timeout):
        roundtrip(busy, timeout=0.5)  # silently discarded, connection stays open
    fresh = connect(port)  # accepted, but it never reaches the target
    with pytest.raises(socket.timeout):
        roundtrip(fresh, timeout=0.5)
    proxy.set_mode("a->b", "pass")
    # A connection that lost bytes is reset rather than resumed mid-stream.
    for s in (busy, fresh):
        with pytest.raises((ConnectionError, socket.timeout)):
            roundtrip(s, timeout=2.0)
        s.close()
    # One that stayed idle through the drop is untouched, as behind iptables.
    assert roundtrip(idle) == b"ping"
    idle.close()
    with connect(port) as s:
        assert roundtrip(s) == b"ping"
    assert proxy.stats()["a->b"]["dropped_bytes"] >= 8


def test_reset_closes_and_refuses(link):
    proxy, port, echo = link
    s = connect(port)
    roundtrip(s)
    proxy.set_mode("a->b", "reset")
    with pytest.raises((ConnectionError, socket.timeout)):
        roundtrip(s, timeout=2.0)
    s.close()
    before = echo.accepted
    with pytest.raises((ConnectionError, socket.timeout, OSError)):
        with connect(port) as s2:
            roundtrip(s2, timeout=2.0)
    assert echo.accepted == before
    proxy.set_mode("a->b", "pass")
    with connect(port) as s3:
        assert roundtrip(s3) == b"ping"


def test_unknown_mode_is_refused(link):
    proxy, _, _ = link
    with pytest.raises(ValueError):
        proxy.set_mode("a->b", "flaky")
