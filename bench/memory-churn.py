#!/usr/bin/env python3
"""A log-like writer's fdatasync latency while another process allocates,
touches and frees memory, outside any server: does memory churn slow the
disk down?

The log side: a 64 KiB O_DIRECT pwrite plus fdatasync into a zero-filled
64 MiB file, every millisecond, for 12 s. The churn side, a second process:
four rounds, 3 s apart, of mapping 600 MB, writing every page, unmapping it,
with

  huge   the mapping advised MADV_HUGEPAGE (what mimalloc does)
  4k     plain 4 KiB pages
  none   no churn

On a VM with free page reporting (virtio-balloon, /sys/module/page_reporting)
freed huge pages are handed to the host a couple of seconds later; on the
machine this was written on, that stalled the writer's fdatasyncs for
~100 ms, about one per round, while 4 KiB pages did not.

    bench/memory-churn.py huge|4k|none [FILE]   # FILE defaults to ./memory-churn.dat (removed after)
"""
import mmap
import os
import subprocess
import sys
import time

mode = sys.argv[1] if len(sys.argv) > 1 else "huge"

if mode == "--churn":
    huge = sys.argv[2] == "huge"
    size = 600 << 20
    for _ in range(4):
        time.sleep(0.5)
        m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if huge:
            m.madvise(mmap.MADV_HUGEPAGE)
        for off in range(0, size, 4096):
            m[off] = 1
        m.close()
        time.sleep(2.5)
    sys.exit(0)

path = sys.argv[2] if len(sys.argv) > 2 else "memory-churn.dat"
LOG = 64 << 20
with open(path, "wb") as f:
    f.write(b"\0" * LOG)
    os.fsync(f.fileno())
fd = os.open(path, os.O_RDWR | os.O_DIRECT)
buf = mmap.mmap(-1, 65536)
buf.write(b"x" * 65536)

churn = None
if mode != "none":
    churn = subprocess.Popen([sys.executable, __file__, "--churn", mode])
latencies = []
off = 0
end = time.monotonic() + 12
while time.monotonic() < end:
    t = time.perf_counter()
    os.pwritev(fd, [buf], off)
    os.fdatasync(fd)
    latencies.append(time.perf_counter() - t)
    off = (off + 65536) % LOG
    time.sleep(0.001)
os.close(fd)
os.unlink(path)
if churn:
    churn.wait()

lat = sorted(latencies)
n = len(lat)
print(
    f"{mode}: {n} log syncs, p50 {lat[n // 2] * 1e3:.2f} ms, p99 {lat[int(n * 0.99)] * 1e3:.2f} ms, "
    f"p99.9 {lat[int(n * 0.999)] * 1e3:.2f} ms, max {lat[-1] * 1e3:.1f} ms, "
    f"over 20 ms: {sum(1 for x in lat if x > 0.02)}"
)
