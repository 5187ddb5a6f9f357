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


def test_a_failed_step_is_reported_and_the_others_still_run(monkeypatch, tmp_path, capsys):
    """A first GPU session is short: musicnn_finetune failing on CUDA must not cost the other
    figures; without a cnn run, analyze and classify say why instead of running."""
    def fake_train(bench, model, device, epochs, ddp=False):
        if model == "musicnn_finetune" and device == "cuda":
            raise RuntimeError("python -m training train ... exited with status 1: bf16 unsupported")
        if model == "cnn" and not ddp and fail_cnn:
            raise RuntimeError("python -m training train ... exited with status 1: out of memory")
        name = f"train {model}" + (" (torchrun, 1 process)" if ddp else "")  # as gpu.train names them
        return gpu.Measure(name, device, 10 * epochs, "training windows", 1.0, f"{model}-{device}")

    used = []
    monkeypatch.setattr(gpu, "train", fake_train)
    monkeypatch.setattr(gpu, "analyze", lambda bench, run, d: used.append(run) or gpu.Measure("analyze", d, 5, "tracks", 1.0))
    monkeypatch.setattr(gpu, "classify", lambda bench, run, d, m: used.append(run) or gpu.Measure("classify", d, 9, "windows", 1.0))
    sizes = {"cuda": gpu.GPU_SIZES, "cpu": gpu.CPU_SIZES}
    bench = gpu.Bench(tmp_path / "b.duckdb", tmp_path)

    fail_cnn = False
    measures, failures = gpu.measure_all(bench, sizes)
    assert len(measures) == 11 and failures == ["cuda: python -m training train ... exited with status 1: bf16 unsupported"]
    assert used == ["cnn-cuda"] * 4  # the CUDA cnn run is analysed and classifies on both devices
    assert "FAILED on cuda: python -m training train" in capsys.readouterr().out

    fail_cnn, used[:] = True, []
    measures, failures = gpu.measure_all(bench, sizes)
    assert used == [] and len(measures) == 5  # resnet x2, musicnn_finetune on cpu, torchrun x2
    assert len(failures) == 3 + 4 and sum("no cnn run trained on cuda" in f for f in failures) == 4


@pytest.mark.slow
def test_steps_on_cpu_measure_what_the_commands_did(writable_toy_db, tmp_path, scratch_cache_dir):
    """Train (plain and under torchrun), analyze and classify on the toy corpus with --device
    cpu: the same functions, arguments and parsing the CUDA run uses."""
    # scratch_cache_dir: analyze converts the musicnn tagger's weights into the cache, which
    # would otherwise be the checkout's data/cache
    bench = gpu.Bench(writable_toy_db, tmp_path, dataset="toy", split="random")
    plain = gpu.train(bench, "cnn", "cpu", 1)
    ddp = gpu.train(bench, "cnn", "cpu", 1, ddp=True)  # fails unless it joined a gloo group
    run_id = plain.run_id
    store = open_store(writable_toy_db, create=False)
    assert {store.run(r)["status"] for r in (run_id, ddp.run_id)} == {"complete"} and run_id != ddp.run_id
    assert plain.count == ddp.count > 0  # one epoch of the same split's windows either way
    assert 0 < plain.seconds < 120 and plain.unit == "training windows"

    analysed = gpu.analyze(bench, run_id, "cpu")
    assert analysed.count == len(store.tracks("toy")) and analysed.seconds > 0

    mixed = gpu.classify(bench, run_id, "cpu", minutes=0.5)
    timeline = pd.read_csv(tmp_path / "timeline-cpu.csv")
    assert mixed.count == len(timeline) >= (30 - 3) / 1.5  # at least half a minute of 3-s windows, 1.5-s hop
    assert len(bench.commands) == 4 and "torch.distributed.run --standalone --nproc-per-node=1" in bench.commands[1]
