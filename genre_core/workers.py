"""Worker processes that never outlive the process that started them, and a heap that gives
memory back."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import threading
import time
from multiprocessing.connection import wait
from pathlib import Path


# glibc's mallopt parameter: allocations at least this big get their own mapping.
_M_MMAP_THRESHOLD = -3
# Batch buffers (waveforms, spectrograms, activations: 0.1-100 MB) come from the heap below this.
HEAP_BUFFER_LIMIT = 1 << 30
TRIM_EVERY_S = 5.0  # how often free heap pages go back to the system
_trimming_pid: int | None = None  # the process whose trim thread is running (a fork has none)


def bound_heap_growth(trim_every_s: float = TRIM_EVERY_S) -> None:
    """Reuse freed batch buffers without page faults, and give free heap memory back to the
    system every `trim_every_s` seconds (glibc only; elsewhere a no-op). Call at process start
    (the CLI, worker initialisers).

    Two costs pull apart here. A buffer glibc maps on its own (by default anything over 128
    KiB until frees raise the threshold, up to 32 MiB) is unmapped when freed, and the next
    batch's buffer faults in every page again: on this project's VM a CNN training step on 32
    x 3-s windows took 577 ms that way against 336 ms from the heap. Heap memory is reused
    without faults, but holes the allocator cannot coalesce are never given back: `analyze` of
    the 100,000-clip benchmark once grew ~90 KB per track to 11.0 GiB. So buffers come from
    the heap (threshold HEAP_BUFFER_LIMIT), and a daemon thread calls malloc_trim(0), which
    returns every whole free page of every arena, holes included, to the system.

    Measured on the scale benchmark (3,000 x 5 s, warm cache, one stage at a time, nothing
    else running), against buffers mapped on their own (threshold fixed at 128 KiB): train
    61 vs 93 s at 2.08 vs 1.75 GiB peak RSS, analyze 117 vs 186 s at 1.16 vs 1.13 GiB,
    faults 32 vs 34 s at 1.07 GiB both.
    """
    global _trimming_pid
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, HEAP_BUFFER_LIMIT)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): their allocators differ
        return
    if _trimming_pid == os.getpid():
        return

    def trim_now_and_then() -> None:
        while True:
            time.sleep(trim_every_s)
            trim(0)  # a ctypes call: the GIL is released while glibc walks its arenas

    _trimming_pid = os.getpid()
    threading.Thread(target=trim_now_and_then, name="heap-trim", daemon=True).start()


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


def idle_cores(sample_s: float = 0.05, stat_path: str = "/proc/stat") -> int:
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


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host and is not a zombie (killed, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS): existence is all we can tell
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
