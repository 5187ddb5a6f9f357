"""Data-parallel training (DDP) on CPU with the gloo backend and two processes, as CI runs it:
the run completes and is stored once, scores like a single process with the same total batch,
and its checkpoint resumes in a single process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genre_core.store import open_store
from genre_core.train.distributed import Ranks, shard

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--dataset", "toy", "--model", "cnn", "--tiny", "--epochs", "4", "--batch-size", "8",
         "--lr", "0.003", "--device", "cpu"]
# Two processes see the same batches but BatchNorm statistics come from half-batches and the
# last batch is padded, so the numbers are close, not equal: on 5 test tracks one track is 0.2.
ACCURACY_TOLERANCE = 0.4


def test_the_kth_batches_of_all_ranks_are_the_kth_global_batch():
    order = np.random.default_rng(0).permutation(32)
    parts = [shard(order, 8, Ranks(r, 2, r)) for r in range(2)]
    assert all(batch == 4 for _, batch in parts)
    for k in range(4):
        together = np.concatenate([mine[k * 4:(k + 1) * 4] for mine, _ in parts])
        assert sorted(together) == sorted(order[k * 8:(k + 1) * 8])
    odd, _ = shard(np.arange(7), 4, Ranks(1, 2, 1))
    assert len(odd) == 4  # padded by wrapping: every rank takes the same number of steps


def _cli(args: list[str], world: int = 1) -> subprocess.CompletedProcess:
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={world}"]
              if world > 1 else [sys.executable])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GENRELENS_LOADER_WORKERS": "0"}
    return subprocess.run([*launch, "-m", "training", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=900)


def _accuracy(store, run_id: str) -> float:
    preds = store.predictions(run_id, "test")
    return float((preds.label == preds.predicted).mean())


@pytest.mark.slow
def test_two_process_ddp_run_is_stored_once_and_matches_one_process(writable_toy_db):
    db = writable_toy_db
    before = set(open_store(db, create=False).runs().run_id)  # the shared toy store may hold runs
    done = _cli([*TRAIN, "--db", str(db)], world=2)
    assert done.returncode == 0, done.stderr[-3000:]
    store = open_store(db, create=False)
    runs = store.runs()
    runs = runs[~runs.run_id.isin(before)]
    assert len(runs) == 1 and runs.status.iloc[0] == "complete"
    run_id = runs.run_id.iloc[0]
    preds = store.predictions(run_id)
    assert not preds.duplicated(["track_id", "split"]).any()
    assert len(store.query("SELECT * FROM epochs WHERE run_id = ?", [run_id])) == 4
    single = _cli([*TRAIN, "--db", str(db)])
    assert single.returncode == 0, single.stderr[-3000:]
    other = [r for r in open_store(db, create=False).runs().run_id if r not in before | {run_id}][0]
    assert abs(_accuracy(store, run_id) - _accuracy(store, other)) <= ACCURACY_TOLERANCE

    # The DDP checkpoint holds plain weights: a single process resumes it.
    store.interrupt_run(run_id, "test: pretend the DDP run was stopped")
    resumed = _cli(["train", "--resume", run_id, "--db", str(db)])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert open_store(db, create=False).run(run_id)["status"] == "complete"
