"""The heap policy every CLI process and worker runs with (workers.bound_heap_growth): batch
buffers are reused from the heap, and freed memory still goes back to the system."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")

# Runs in a fresh interpreter: mallopt settings and the trim thread are process-wide.
_SCRIPT = textwrap.dedent("""
    import gc, threading, time
    import numpy as np
    from genre_core.workers import bound_heap_growth

    def rss_mb():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

    bound_heap_growth(trim_every_s=0.2)
    bound_heap_growth(trim_every_s=0.2)  # a second call starts no second thread
    print("threads", sum(t.name == "heap-trim" for t in threading.enumerate()))
    base = rss_mb()
    # 400 MB in 2-MB buffers, like per-batch spectrograms, with small long-lived arrays
    # between them so that the freed buffers leave holes, not one free block at the top.
    buffers, keep = [], []
    for i in range(200):
        buffers.append(np.ones(2**18))  # 2 MB, touched
        keep.append(np.ones(64))
    print("held", rss_mb() - base)
    del buffers
    gc.collect()
    time.sleep(0.8)
    print("after", rss_mb() - base)
""")


def test_freed_batch_buffers_go_back_to_the_system():
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    figures = dict(line.split() for line in out.strip().splitlines())
    assert int(figures["threads"]) == 1
    assert float(figures["held"]) > 350  # the buffers were really in memory
    assert float(figures["after"]) < 50, out  # and left it once freed, holes and all
