#!/usr/bin/env python3
"""A log-like writer's fdatasync latency while snapshot-sized files are
written beside it, outside any server.

The log side: a 64 KiB O_DIRECT pwrite plus fdatasync into a zero-filled
64 MiB file, every millisecond. The snapshot side: three files of 206 MB
(a 1M-znode snapshot), each written 1 MiB at a time with fdatasync after
every MiB, paced to RATE MiB/s (corral's snapshot writer does the same),
either

  fresh   a new file each time, renamed into place, the previous one deleted
  reuse   the same file written over in place (corral's snapshot.spare)
  none    nothing (the log alone, for the disk's background stalls)

Prints the log syncs' p50/p99/p99.9/max and how many took over 20 ms.

    bench/snapshot-reuse.py fresh|reuse|none [RATE_MIB_S] [DIR]   # DIR defaults to ./snapshot-reuse.d (removed after)
"""
import mmap
import os
import shutil
import sys
import threading
import time

mode = sys.argv[1] if len(sys.argv) > 1 else "reuse"
rate = (int(sys.argv[2]) if len(sys.argv) > 2 else 128) << 20
root = sys.argv[3] if len(sys.argv) > 3 else "snapshot-reuse.d"
SNAPSHOT = 206 << 20
CHUNK = 1 << 20
LOG = 64 << 20

os.makedirs(root, exist_ok=True)
log_path = os.path.join(root, "log")
with open(log_path, "wb") as f:
    f.write(b"\0" * LOG)
    os.fsync(f.fileno())

latencies = []
stop = threading.Event()


def log_writer():
    fd = os.open(log_path, os.O_RDWR | os.O_DIRECT)
    buf = mmap.mmap(-1, 65536)
    buf.write(b"x" * 65536)
    off = 0
    while not stop.is_set():
        t = time.perf_counter()
        os.pwritev(fd, [buf], off)
        os.fdatasync(fd)
        latencies.append(time.perf_counter() - t)
        off = (off + 65536) % LOG
        time.sleep(0.001)
    os.close(fd)


def write_snapshot(fd):
    data = os.urandom(CHUNK)
    for _ in range(SNAPSHOT // CHUNK):
        started = time.perf_counter()
        os.write(fd, data)
        os.fdatasync(fd)
        rest = CHUNK / rate - (time.perf_counter() - started)
        if rest > 0:
            time.sleep(rest)
    os.fsync(fd)
    os.close(fd)


def sync_dir():
    d = os.open(root, os.O_RDONLY)
    os.fsync(d)
    os.close(d)


spare = os.path.join(root, "snapshot.spare")
if mode == "reuse":
    with open(spare, "wb") as f:
        f.write(os.urandom(SNAPSHOT))
        os.fsync(f.fileno())

writer = threading.Thread(target=log_writer)
writer.start()
time.sleep(0.5)
for n in range(3):
    if mode == "none":
        time.sleep(SNAPSHOT / rate + 0.3)
        continue
    if mode == "fresh":
        tmp = os.path.join(root, "snapshot.tmp")
        write_snapshot(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
        os.rename(tmp, os.path.join(root, f"snapshot.{n}"))
        old = os.path.join(root, f"snapshot.{n - 1}")
        if os.path.exists(old):
            os.unlink(old)
    else:
        write_snapshot(os.open(spare, os.O_WRONLY))
    sync_dir()
    time.sleep(0.3)
stop.set()
writer.join()
shutil.rmtree(root)

lat = sorted(latencies)
n = len(lat)
print(
    f"{mode} {rate >> 20} MiB/s: {n} log syncs, p50 {lat[n // 2] * 1e3:.2f} ms, "
    f"p99 {lat[int(n * 0.99)] * 1e3:.2f} ms, p99.9 {lat[int(n * 0.999)] * 1e3:.2f} ms, "
    f"max {lat[-1] * 1e3:.1f} ms, over 20 ms: {sum(1 for x in lat if x > 0.02)}"
)
