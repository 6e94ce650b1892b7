"""A fault-injecting userspace TCP proxy, one listener per directed link.

The ensemble tests cannot use iptables or `tc netem` (no root network
namespace to play with, and the servers all sit on 127.0.0.1), so every
server-to-server connection goes through a `Link` of this proxy instead: a
listener on 127.0.0.1 that forwards each accepted connection to one target
address. The test process switches a link between four modes at runtime:

  pass    forward bytes both ways.
  drop    a blackhole, like an iptables DROP rule in both directions:
          connections stay open, bytes are silently discarded, a FIN from
          either end is not passed on, and new connections are accepted but
          never reach the target.
  reset   close every current connection with a RST and refuse new ones
          (accepted, then reset at once).
  delay   forward bytes both ways, each chunk `delay_ms` late (order kept).

Why a connection that lost bytes is closed when its link leaves `drop`:
iptables drops packets and TCP retransmits them once the rule is gone, so a
real stream is never corrupted. Discarding bytes out of the middle of a
userspace stream would hand the server a torn frame instead, which tests the
server's codec rather than its replication. So a connection that had bytes
(or a FIN) discarded, or was accepted while dropping, is marked tainted and
reset when its link heals; the servers reconnect, which is what they do after
any partition long enough to trip their read timeouts. A connection that sat
idle through a short drop keeps going, as it would with iptables.

Everything runs on one asyncio loop in a daemon thread; the `Proxy` methods
are called from the test's threads and block until the loop has applied them,
so when `set_mode` returns no byte passes under the old mode any more.
"""

import asyncio
import socket
import threading
import time

MODES = ("pass", "drop", "reset", "delay")
CHUNK_BYTES_MAX = 65536
# A link applies back-pressure instead of buffering without bound: a pump stops
# reading once this many chunks wait to be written in its direction.
QUEUE_CHUNKS_MAX = 256


def _abort(writer):
    """Close a connection with a RST (SO_LINGER 0) rather than a FIN."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
    writer.transport.abort()


class _Connection:
    """One accepted connection and, once in pass or delay mode, its upstream."""

    def __init__(self, link, client_reader, client_writer):
        self.link = link
        self.client = (client_reader, client_writer)
        self.upstream = None
        self.tainted = False
        self.closed = False
        self.tasks = []

    def close(self):
        if self.closed:
            return
        self.closed = True
        _abort(self.client[1])
        if self.upstream is not None:
            _abort(self.upstream[1])
        for t in self.tasks:
            t.cancel()
        self.link.connections.discard(self)

    async def run(self):
        link = self.link
        if link.mode == "reset":
            self.close()
            return
        if link.mode == "drop":
            # Accepted while dropping: this connection never reaches the target.
            self.tainted = True
            await self._sink(self.client[0])
            return
        try:
            self.upstream = await asyncio.wait_for(
                asyncio.open_connection(*link.target), timeout=5.0)
        except (OSError, asyncio.TimeoutError):
            self.close()
            return
        if self.closed:
            _abort(self.upstream[1])
            return
        link.connects += 1
        for src, dst in ((self.client[0], self.upstream[1]), (self.upstream[0], self.client[1])):
            queue = asyncio.Queue(QUEUE_CHUNKS_MAX)
            self.tasks.append(asyncio.ensure_future(self._read(src, queue)))
            self.tasks.append(asyncio.ensure_future(self._write(queue, dst)))
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.close()

    async def _sink(self, reader):
        """Read and discard until the peer closes or the link heals."""
        try:
            while True:
                data = await reader.read(CHUNK_BYTES_MAX)
                if not data:
                    break
                self.link.dropped_bytes += len(data)
        except (OSError, asyncio.CancelledError):
            pass
        # A FIN during a drop is swallowed: the connection stays half-open,
        # as it would behind iptables, until the link heals.

    async def _read(self, reader, queue):
        try:
            while True:
                data = await reader.read(CHUNK_BYTES_MAX)
                if self.link.mode == "drop":
                    self.tainted = True
                    if data:
                        self.link.dropped_bytes += len(data)
                        continue
                    return  # FIN swallowed; heal() resets the connection
                due = time.monotonic() + self.link.delay_s()
                await queue.put((due, data))
                if not data:
                    return
        except OSError:
            self.close()

    async def _write(self, queue, writer):
        try:
            while True:
                due, data = await queue.get()
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if self.link.mode == "drop":
                    # In flight when the drop began: lost like a packet.
                    self.tainted = True
                    if data:
                        self.link.dropped_bytes += len(data)
                    continue
                if not data:
                    writer.write_eof()
                    return
                writer.write(data)
                await writer.drain()
                self.link.forwarded_bytes += len(data)
        except OSError:
            self.close()


class Link:
    """A listener forwarding to `target`; `name` says which link it is."""

    def __init__(self, name, target):
        self.name = name
        self.target = target
        self.port = None
        self.mode = "pass"
        self.delay_ms = 0
        self.connections = set()
        self.server = None
        # Counters, for the test's report.
        self.accepts = 0
        self.connects = 0
        self.forwarded_bytes = 0
        self.dropped_bytes = 0

    def delay_s(self):
        return self.delay_ms / 1000.0 if self.mode == "delay" else 0.0

    async def _accept(self, reader, writer):
        self.accepts += 1
        conn = _Connection(self, reader, writer)
        self.connections.add(conn)
        try:
            await conn.run()
        except asyncio.CancelledError:
            # Proxy.close() cancels everything. Returning normally matters:
            # asyncio's start_server calls task.exception() on this task,
            # which raises (and logs a traceback) if the task was cancelled.
            conn.close()

    def _set(self, mode, delay_ms):
        was = self.mode
        self.mode = mode
        self.delay_ms = delay_ms
        if mode == "reset":
            for c in list(self.connections):
                c.close()
        elif was == "drop" and mode != "drop":
            for c in list(self.connections):
                if c.tainted:
                    c.close()

    def __repr__(self):
        return f"Link({self.name} :{self.port} -> {self.target[1]} {self.mode})"


class Proxy:
    """Owns the event loop thread and every link; thread-safe API."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.links = {}
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _call(self, fn, *args):
        """Run fn(*args) on the loop (a coroutine function or a plain one); wait for it."""
        async def wrapper():
            r = fn(*args)
            if asyncio.iscoroutine(r):
                r = await r
            return r
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout=30)

    def add_link(self, name, target_port, target_host="127.0.0.1", port=0):
        """Listen on 127.0.0.1:`port` (0: a free one); return the listening port."""
        link = Link(name, (target_host, target_port))

        async def start():
            link.server = await asyncio.start_server(link._accept, "127.0.0.1", port, reuse_address=True)
            link.port = link.server.sockets[0].getsockname()[1]
        self._call(start)
        self.links[name] = link
        return link.port

    def set_mode(self, names, mode, delay_ms=0):
        """Switch the named links (a name or an iterable of names) to `mode`."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if isinstance(names, str):
            names = [names]
        links = [self.links[n] for n in names]

        def apply():
            for link in links:
                link._set(mode, delay_ms)
        self._call(apply)

    def set_all(self, mode, delay_ms=0):
        self.set_mode(list(self.links), mode, delay_ms)

    def modes(self):
        return {n: l.mode for n, l in self.links.items()}

    def stats(self):
        return {n: {"accepts": l.accepts, "connects": l.connects, "forwarded_bytes": l.forwarded_bytes,
                    "dropped_bytes": l.dropped_bytes, "open": len(l.connections)}
                for n, l in self.links.items()}

    def close(self):
        async def stop():
            for link in self.links.values():
                link.server.close()
                for c in list(link.connections):
                    c.close()
            me = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not me]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
        try:
            self._call(stop)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            self.loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
