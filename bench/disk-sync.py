#!/usr/bin/env python3
"""The disk's own write+sync latency, outside any server: O_DIRECT pwrite of
N bytes then fdatasync (or an O_DSYNC descriptor with --dsync), 200 times
each at 4 KiB, 64 KiB, 256 KiB and 1 MiB, into a zero-filled 64 MiB file
(what the log's segments are). Prints p50/p90/min per size.

With --overlap, compares per size the cycle of write+fdatasync done one after
the other with the next write issued while the previous fdatasync runs (on a
second thread): whether the disk takes a write during a flush.

    bench/disk-sync.py [--dsync | --overlap] [FILE]   # FILE defaults to ./disk-sync.dat (removed after)
"""
import mmap
import os
import queue
import sys
import threading
import time

dsync = "--dsync" in sys.argv
args = [a for a in sys.argv[1:] if not a.startswith("--")]
path = args[0] if args else "disk-sync.dat"
size = 64 << 20
with open(path, "wb") as f:
    f.write(b"\0" * size)
    f.flush()
    os.fsync(f.fileno())
fd = os.open(path, os.O_RDWR | os.O_DIRECT | (os.O_DSYNC if dsync else 0))


def overlap(n, rounds=300):
    """Microseconds per cycle: serial, then with each fdatasync overlapping
    the next write."""
    buf = mmap.mmap(-1, n)
    buf.write(b"x" * n)
    t, off = time.perf_counter(), 0
    for _ in range(rounds):
        os.pwrite(fd, buf, off)
        os.fdatasync(fd)
        off = (off + n) % (size - n)
    serial = (time.perf_counter() - t) / rounds
    todo, done = queue.Queue(), queue.Queue()

    def syncer():
        while todo.get():
            os.fdatasync(fd)
            done.put(None)

    worker = threading.Thread(target=syncer)
    worker.start()
    t, off, pending = time.perf_counter(), 0, False
    for _ in range(rounds):
        os.pwrite(fd, buf, off)
        off = (off + n) % (size - n)
        if pending:
            done.get()
        todo.put(True)
        pending = True
    done.get()
    todo.put(False)
    worker.join()
    return serial * 1e6, (time.perf_counter() - t) / rounds * 1e6


try:
    if "--overlap" in sys.argv:
        for n in [65536, 229376, 1 << 20]:
            s, o = overlap(n)
            print(f"{n:>8} B  serial {s:6.0f} us/cycle  overlapped {o:6.0f} us/cycle")
        sys.exit(0)
    for n in [4096, 65536, 262144, 1 << 20]:
        buf = mmap.mmap(-1, n)  # page-aligned, as O_DIRECT wants
        buf.write(b"x" * n)
        times, off = [], 0
        for _ in range(200):
            t = time.perf_counter()
            os.pwrite(fd, buf, off)
            if not dsync:
                os.fdatasync(fd)
            times.append(time.perf_counter() - t)
            off = (off + n) % (size - n)
        times.sort()
        print(f"{n:>8} B  p50 {times[100] * 1e6:7.0f} us  p90 {times[180] * 1e6:7.0f} us  min {times[0] * 1e6:6.0f} us")
finally:
    os.close(fd)
    os.unlink(path)
