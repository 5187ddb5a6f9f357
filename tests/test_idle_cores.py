"""How many threads live classification takes: the cores other work leaves idle."""

from __future__ import annotations

import os

import numpy as np
import pytest

from genre_core import workers
from genre_core.workers import idle_cores

_READ_COUNTERS = workers._cpu_counters  # the real parser, before any test replaces it


def _stat(tmp_path, busy: int, idle: int):
    """A /proc/stat whose first line says `busy` jiffies of user time and `idle` of idle."""
    path = tmp_path / f"stat-{busy}-{idle}"
    path.write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n")
    return path


def _counters_between(monkeypatch, tmp_path, before, after):
    files = iter([_stat(tmp_path, *before), _stat(tmp_path, *after)])
    monkeypatch.setattr(workers, "_cpu_counters", lambda _path: _READ_COUNTERS(str(next(files))))


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="core affinity is Linux-only")
def test_idle_machine_gives_every_usable_core_and_busy_one_gives_one(monkeypatch, tmp_path):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    _counters_between(monkeypatch, tmp_path, (1000, 5000), (1000, 5400))  # all idle
    assert idle_cores(sample_s=0) == 4
    _counters_between(monkeypatch, tmp_path, (1000, 5000), (1400, 5000))  # all busy
    assert idle_cores(sample_s=0) == 1
    _counters_between(monkeypatch, tmp_path, (1000, 5000), (1200, 5200))  # half busy
    assert idle_cores(sample_s=0) == 2
    # This process may use only two of the four cores: never more threads than that.
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    _counters_between(monkeypatch, tmp_path, (1000, 5000), (1000, 5400))
    assert idle_cores(sample_s=0) == 2


def test_unreadable_counters_give_one_thread(tmp_path):
    assert idle_cores(sample_s=0, stat_path=str(tmp_path / "missing")) == 1
    (tmp_path / "garbled").write_text("not a stat file\n")
    assert idle_cores(sample_s=0, stat_path=str(tmp_path / "garbled")) == 1


def test_this_machine_answers_within_its_cores():
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    assert 1 <= idle_cores(sample_s=0.05) <= usable


class _RecordingRun:
    """Stands in for a LoadedRun: records how many torch threads each prediction ran on."""

    def __init__(self):
        self.threads: list[int] = []

    def predict_windows(self, windows):
        import torch

        self.threads.append(torch.get_num_threads())
        return np.zeros((len(windows), 2)), None


@pytest.fixture
def torch_threads():
    import torch

    before = torch.get_num_threads()
    yield torch
    torch.set_num_threads(before)


def test_live_threads_follow_idle_cores_within_what_the_process_allows(monkeypatch, torch_threads):
    from genre_core.live import streaming

    windows = np.zeros((3, 100), dtype=np.float32)
    torch_threads.set_num_threads(2)
    for idle in (2, 1):
        monkeypatch.setattr(streaming, "idle_cores", lambda idle=idle: idle)
        run = _RecordingRun()
        streaming.window_predictor(run)(windows)
        assert run.threads == [idle]
    assert torch_threads.get_num_threads() == 2  # restored after each call
    # A batch worker pins one thread (the workers are the parallelism): the predictor keeps it
    # and does not spend time sampling the machine for every file.
    torch_threads.set_num_threads(1)
    monkeypatch.setattr(streaming, "idle_cores", lambda: pytest.fail("sampled the CPU counters"))
    run = _RecordingRun()
    streaming.window_predictor(run)(windows)
    assert run.threads == [1]
