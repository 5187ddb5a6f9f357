"""`python -m benchmarks gpu` on a machine without CUDA: one-line refusal before any work, the
plan it would run, and its step functions on the CPU (the code path the GPU run takes, with
the device as the only difference)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import gpu
from genre_core.store import open_store

ROOT = Path(__file__).resolve().parents[1]


def test_without_cuda_it_refuses_in_one_line_before_any_work(tmp_path):
    db = tmp_path / "gpu" / "bench.duckdb"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no CUDA, even on a machine that has one
    done = subprocess.run([sys.executable, "-m", "benchmarks", "gpu", "--db", str(db)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [gpu.REFUSAL] and done.stdout == ""
    assert not (tmp_path / "gpu").exists()  # no database, no demo corpus


def test_plan_lists_every_step_on_both_devices_and_runs_nothing(tmp_path, capsys):
    from benchmarks.__main__ import main

    db = tmp_path / "bench.duckdb"
    assert main(["gpu", "--plan", "--db", str(db)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "python -m" in line]
    assert len(lines) == 2 * 6
    plain = "python -m training train --dataset demo --model"
    for step in (f"{plain} cnn ", f"{plain} resnet ", f"{plain} musicnn_finetune ",
                 "--nproc-per-node=1 -m training train --dataset demo --model cnn ", "training analyze ",
                 "training classify "):
        assert sum(step in line and "--device cuda" in line for line in lines) == 1, step
        assert sum(step in line and "--device cpu" in line for line in lines) == 1, step
    assert "mix-60min.wav" in "".join(lines) and "--epochs 1 --device cpu" in "".join(lines)
    assert not db.exists()


def test_speed_up_is_cuda_rate_over_cpu_rate_per_step():
    measures = [gpu.Measure("train cnn", "cuda", 800, "training windows", 2.0),
                gpu.Measure("train cnn", "cpu", 100, "training windows", 5.0),
                gpu.Measure("classify", "cuda", 2400, "windows", 4.0),
                gpu.Measure("classify", "cpu", 240, "windows", 6.0)]
    rows = [line.split("|") for line in gpu.table(measures).splitlines()[2:]]
    assert [r[1].strip() for r in rows] == ["train cnn", "classify"]  # the order the steps ran in
    assert [float(r[-2]) for r in rows] == [20.0, 15.0]  # 400/20 and 600/40


@pytest.mark.slow
def test_steps_on_cpu_measure_what_the_commands_did(writable_toy_db, tmp_path):
    """Train (plain and under torchrun), analyze and classify on the toy corpus with --device
    cpu: the same functions, arguments and parsing the CUDA run uses."""
    bench = gpu.Bench(writable_toy_db, tmp_path, dataset="toy", split="random")
    plain, run_id = gpu.train(bench, "cnn", "cpu", 1)
    ddp, ddp_run = gpu.train(bench, "cnn", "cpu", 1, ddp=True)  # fails unless it joined a gloo group
    store = open_store(writable_toy_db, create=False)
    assert {store.run(r)["status"] for r in (run_id, ddp_run)} == {"complete"}
    assert plain.count == ddp.count > 0  # one epoch of the same split's windows either way
    assert 0 < plain.seconds < 120 and plain.unit == "training windows"

    analysed = gpu.analyze(bench, run_id, "cpu")
    assert analysed.count == len(store.tracks("toy")) and analysed.seconds > 0

    mixed = gpu.classify(bench, run_id, "cpu", minutes=0.5)
    timeline = pd.read_csv(tmp_path / "timeline-cpu.csv")
    assert mixed.count == len(timeline) >= (30 - 3) / 1.5  # at least half a minute of 3-s windows, 1.5-s hop
    assert len(bench.commands) == 4 and "torch.distributed.run --standalone --nproc-per-node=1" in bench.commands[1]
