"""benchmarks scale: PSS of a process tree, the tiny pipeline end to end (train on a sample,
analyze and faults on every track), the memory-vs-size table and the time estimate."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import scale

ROOT = Path(__file__).resolve().parent.parent
SHARED_MB = 96
# Parent: a touched array, then a fork whose child only reads it (copy-on-write pages stay
# shared); both wait until the test kills them.
FORKED = f"""
import os, sys, time
import numpy as np
big = np.ones({SHARED_MB} * 2**20 // 8)
if os.fork() == 0:
    assert big.sum() > 0
    print("child", flush=True); time.sleep(600)
else:
    print("parent", flush=True); time.sleep(600)
"""


def test_pss_counts_pages_a_forked_child_shares_once_and_rss_twice():
    proc = subprocess.Popen([sys.executable, "-c", FORKED], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own group: the forked child is killed with it
    try:
        assert sorted(proc.stdout.readline().strip() for _ in range(2)) == ["child", "parent"]
        rss, pss, fds = scale._usage(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    shared = SHARED_MB * 2**20
    assert rss >= 2 * shared  # each process's RSS holds the whole array
    assert shared <= pss < rss - 0.8 * shared  # PSS: the array once (plus each interpreter's own pages)
    assert fds >= 6  # stdin/out/err of both processes


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The scale benchmark on 70 clips of 2 s, trained on a sample of all 70 (the smallest a
    random split of 10 genres takes), run as a user runs it (it lowers its own file limit)."""
    root = tmp_path_factory.mktemp("scale")
    command = [sys.executable, "-m", "benchmarks", "scale", "--tracks", "70", "--seconds", "2",
               "--train-sample", "70", "--workers", "1", "--scale-root", str(root),
               "--plot", str(root / "memory.png")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return root, done.stdout


@pytest.mark.slow
def test_the_tiny_scale_benchmark_runs_every_stage_and_prints_pss(tiny_run):
    root, out = tiny_run
    header = next(line for line in out.splitlines() if line.startswith("| stage"))
    assert [c.strip() for c in header.strip("|").split("|")][:5] == [
        "stage", "wall s", "tracks/s", "peak PSS GiB", "peak RSS GiB"]
    rows = {cells[0]: cells for cells in (
        [c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()
        if re.match(r"\| (ingest|train|analyze|faults) ", line))}
    assert list(rows) == ["ingest", "train", "analyze", "faults"]
    for cells in rows.values():
        pss, rss = float(cells[3]), float(cells[4])
        assert cells[7] == "ok" and 0 < pss <= rss
    assert "trained on a sample of 70" in out and re.search(r"total of the stages: \d+ s", out)
    assert re.search(r"analyzed run \S+: 70 embeddings", out)  # every track analysed
    assert (root / "memory.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_a_large_run_is_estimated_from_the_last_measured_size(tiny_run):
    root, _ = tiny_run
    recorded = scale._load_results(root / "70x2" / "results.json")
    assert recorded["train"].trained_on == 70
    args = argparse.Namespace(scale_root=str(root), seconds=2.0)
    line = scale.estimate(args, 100_000, 140, ["train", "analyze", "faults"])
    # analyze and faults scale with the tracks, training with its sample (70 -> 140)
    minutes = (recorded["train"].seconds * 2 + (recorded["analyze"].seconds + recorded["faults"].seconds)
               * 100_000 / 70) / 60
    assert line.startswith(f"estimated {minutes:.0f} min from the last measured size (70 tracks: ")
    assert scale.estimate(args, 60, 60, ["analyze"]) is None  # nothing smaller was measured
    assert scale.estimate(argparse.Namespace(scale_root=str(root), seconds=5.0), 100_000, 70, ["analyze"]) is None


def _stage(name: str, pss: float | None, status: str = "ok") -> scale.StageResult:
    return scale.StageResult(name, 1.0, 1.0, 2.0, 10, 0.1, status, peak_pss_gb=pss)


def test_the_memory_table_shows_growth_from_the_smallest_size_of_ten_thousand():
    by_size = {
        3_000: {"train": _stage("train", 1.0), "analyze": _stage("analyze", 0.5)},
        10_000: {"train": _stage("train", 1.6), "analyze": _stage("analyze", 1.0)},
        100_000: {"train": _stage("train", 2.0), "analyze": _stage("analyze", 1.1, "exit 1: killed")},
    }
    table = scale.memory_table(by_size)
    train = next(line for line in table.splitlines() if line.startswith("| train"))
    assert [c.strip() for c in train.strip("|").split("|")] == ["train", "1.00", "1.60", "2.00", "+25%"], table
    assert "growth 10,000 -> 100,000" in table
    analyze = next(line for line in table.splitlines() if line.startswith("| analyze"))
    assert [c.strip() for c in analyze.strip("|").split("|")] == ["analyze", "0.50", "1.00", "", ""]  # failed: no peak


def test_results_recorded_before_pss_still_load(tmp_path):
    record = tmp_path / "results.json"
    record.write_text('{"train": {"stage": "train", "seconds": 5.0, "tracks_per_s": 2.0, "peak_rss_gb": 1.5, '
                      '"peak_open_files": 40, "disk_gb": 0.2, "status": "ok", "measured": "2026-12-01 10:00"}}')
    assert scale._load_results(record)["train"].peak_pss_gb is None
    assert scale.memory_table({1000: scale._load_results(record)}).count("train") == 1
