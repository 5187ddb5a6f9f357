"""Worker processes that never outlive the process that started them, and a heap that gives
memory back."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import threading
import time
from multiprocessing.connection import wait


# glibc's mallopt parameter: allocations at least this big get their own mapping.
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 17  # 128 KiB, glibc's own starting value


def bound_heap_growth() -> None:
    """Keep glibc from raising its mmap threshold as the process runs (no-op elsewhere).

    glibc starts by giving each allocation over 128 KiB its own mapping, returned to the
    system on free, but raises that threshold (up to 32 MiB) every time such a block is freed.
    After that, every per-batch audio and spectrogram buffer comes from the heap, whose free
    holes are not given back: measured on `analyze` of the 100,000-clip benchmark, RSS grew
    ~90 KB per track embedded (+0.44 GiB per 5,000 tracks, 11.0 GiB peak at 100,000); with
    the threshold fixed, +0.02 GiB per 5,000 and no slower. Setting it once also turns the
    raising off. Call at process start (the CLI, worker initialisers).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):  # not glibc (macOS, musl): their allocators differ
        pass


def init_worker() -> None:
    """Pool initializer for every worker process: bounded heap, ends with its parent."""
    bound_heap_growth()
    exit_with_parent()


def exit_with_parent() -> None:
    """Pool initializer: end this worker as soon as its parent process ends, however it ends.

    A pool's workers otherwise wait for work forever when the driver is killed with SIGKILL
    (the case that batched, resumable ingest is built for), holding memory and open files.
    """
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def idle_cores(sample_s: float = 0.1, stat_path: str = "/proc/stat") -> int:
    """How many of this process's cores other work leaves idle now (at least 1): the system's
    idle CPU share over `sample_s` seconds, from the kernel's counters. Where they cannot be
    read (not Linux), 1, the choice that is never badly wrong.

    A load average would count this process's own last minute of work as somebody else's.
    """
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    try:
        busy_before, total_before = _cpu_counters(stat_path)
        time.sleep(sample_s)
        busy_after, total_after = _cpu_counters(stat_path)
    except (OSError, ValueError, IndexError):
        return 1
    elapsed = total_after - total_before
    idle_share = 1.0 - (busy_after - busy_before) / elapsed if elapsed > 0 else 0.0
    return max(1, min(usable, int(idle_share * (os.cpu_count() or 1) + 0.5)))


def _cpu_counters(stat_path: str) -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat's first line: user nice system idle
    iowait irq softirq steal (guest time is already inside user)."""
    with open(stat_path) as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)
