"""kill -9 at points of ingest / train / analyze / faults, then the invariants a database keeps.

Each test runs `python -m training` as a real process on a tiny corpus, SIGKILLs it while it
works (the trigger is what it has committed or printed so far, so the point lands mid-work on
a fast or a loaded machine), and then checks: the database opens, no half-written run is
visible as complete, what was committed before the kill is still there, and re-running (or
`train --resume`) finishes the work. The counts of the issue's report come from these tests:
6 kill points (ingest, train before / after its first checkpoint, SIGTERM, analyze, faults).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
import torch

from genre_core import paths
from genre_core.store import Store, StoreError, open_store
from tests.helpers import make_toy_corpus
from training.cli import main

pytestmark = pytest.mark.slow  # ~6 CLI processes; still part of `make test` and CI

TRAIN = ["--dataset", "toy", "--model", "cnn_small", "--tiny", "--device", "cpu"]
EPOCHS_TO_KILL = 6  # a tiny epoch is well under a second: the kill must land before the last


class Cli:
    """`python -m training ARGS` in the background; its merged output is collected as it comes."""

    def __init__(self, *args: str):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "GENRELENS_LOADER_WORKERS": "0"}
        self.proc = subprocess.Popen([sys.executable, "-m", "training", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).parents[1])
        self.chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while chunk := self.proc.stdout.read1(4096):
            self.chunks.append(chunk)

    @property
    def output(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")

    def stop_when(self, ready, sig=signal.SIGKILL, timeout_s: float = 120.0, poll_s: float = 0.05) -> bool:
        """Send `sig` as soon as `ready()`; True if the process was still at work then."""
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None and not ready():
            assert time.monotonic() < deadline, f"never ready:\n{self.output[-2000:]}"
            time.sleep(poll_s)
        at_work = self.proc.poll() is None
        if at_work:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=60)
        self._reader.join(timeout=10)
        return at_work


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_toy_corpus(tmp_path_factory.mktemp("corpus") / "toy", per_genre=6, seconds=4.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus) -> tuple[Path, str]:
    """A folder holding a database with the toy dataset and one complete tiny run (its id)."""
    from genre_core.datasets.ingest import ingest
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit

    torch.set_num_threads(1)  # module fixtures run before conftest's per-test setting
    folder = tmp_path_factory.mktemp("trained")
    store = open_store(folder / "g.duckdb")
    ingest(store, "folder", corpus, name="toy", progress=False)
    run = fit(store, TrainConfig.tiny_preset("toy", "cnn_small", epochs=1, device="cpu"), progress=False)
    return folder, run.run_id


def _copy(trained: tuple[Path, str], tmp_path: Path) -> Store:
    shutil.copytree(trained[0], tmp_path / "db")
    return open_store(tmp_path / "db" / "g.duckdb", create=False)


def _rows(store: Store, sql: str, params=()) -> set[tuple]:
    return set(store.query(sql, params).itertuples(index=False, name=None))


def _polled_rows(db: Path, sql: str) -> set[tuple]:
    """`_rows` while a writer may still be creating the file: not readable yet = nothing committed."""
    try:
        return _rows(Store(db), sql)
    except (StoreError, duckdb.Error):
        return set()


def _complete_ids(store: Store) -> set[str]:
    return set(store.complete_runs().run_id)


def _counts(store: Store, run_id: str, tables: tuple[str, ...]) -> dict[str, int]:
    return {t: int(store.query(f"SELECT count(*) AS n FROM {t} WHERE run_id = ?", [run_id]).n[0]) for t in tables}


def test_kill_during_ingest_keeps_every_committed_batch(corpus, tmp_path):
    db = tmp_path / "g.duckdb"
    seen: set[tuple] = set()

    def committed_some() -> bool:
        seen.update(_polled_rows(db, "SELECT track_id, sha1 FROM tracks") if db.exists() else set())
        return len(seen) >= 2

    cli = Cli("ingest", "--dataset", "folder", "--root", str(corpus), "--name", "toy", "--db", str(db),
              "--batch-size", "2", "--workers", "1")
    assert cli.stop_when(committed_some)
    store = open_store(db, create=False)  # the database opens
    after = _rows(store, "SELECT track_id, sha1 FROM tracks")
    assert seen <= after  # nothing committed before the kill was lost
    assert main(["ingest", "--dataset", "folder", "--root", str(corpus), "--name", "toy", "--db", str(db)]) == 0
    final = _rows(store, "SELECT track_id, sha1 FROM tracks")
    assert after <= final and len(final) == 18


def test_kill_before_the_first_checkpoint_then_resume_completes(trained, tmp_path):
    store = _copy(trained, tmp_path)
    cli = Cli("train", *TRAIN, "--epochs", "2", "--db", str(store.path))
    assert cli.stop_when(lambda: ": started" in cli.output)
    run_id = cli.output.split(": started")[0].split()[-1]  # printed when the run starts
    assert store.run(run_id)["status"] == "interrupted"  # its process is gone: not 'running' forever
    assert run_id not in _complete_ids(store)
    assert _counts(store, run_id, ("predictions", "metrics"))["predictions"] == 0
    assert main(["train", "--resume", run_id, "--db", str(store.path)]) == 0
    assert store.run(run_id)["status"] == "complete"
    assert _counts(store, run_id, ("epochs",)) == {"epochs": 2}


def test_kill_after_a_checkpoint_resumes_it_while_a_reader_keeps_reading(trained, tmp_path):
    store = _copy(trained, tmp_path)
    before = _rows(store, "SELECT run_id, track_id, probs::VARCHAR FROM predictions")
    reads, read_errors, stop_reading = [], [], threading.Event()

    def keep_reading() -> None:  # a reader during the writer's work: must never fail
        while not stop_reading.is_set():
            try:
                reads.append(len(store.runs()))
            except Exception as error:  # noqa: BLE001 - any failure is the finding
                read_errors.append(repr(error))
            time.sleep(0.02)

    def checkpointed() -> bool:
        # The trigger only looks at the printed run id and the file system: a read that waits
        # on the writer's lock must not delay the kill past the run's end (CI saw a tiny run
        # finish while the trigger itself was reading).
        if ": started" not in cli.output:
            return False
        started = cli.output.split(": started")[0].split()[-1]
        return (paths.run_dir(store.path, started) / paths.CHECKPOINT_FILE).is_file()

    reader = threading.Thread(target=keep_reading, daemon=True)
    cli = Cli("train", *TRAIN, "--epochs", str(EPOCHS_TO_KILL), "--db", str(store.path))
    reader.start()
    try:
        assert cli.stop_when(checkpointed, poll_s=0.01)
    finally:
        stop_reading.set()
        reader.join(timeout=30)
    assert not read_errors and len(reads) >= 2
    run_id = cli.output.split(": started")[0].split()[-1]
    assert store.run(run_id)["status"] == "interrupted" and run_id not in _complete_ids(store)
    checkpoint = torch.load(paths.run_dir(store.path, run_id) / paths.CHECKPOINT_FILE, weights_only=True)
    done = checkpoint["state"]["history"]
    assert main(["train", "--resume", run_id, "--db", str(store.path)]) == 0
    epochs = store.query("SELECT epoch, train_loss FROM epochs WHERE run_id = ? ORDER BY epoch", [run_id])
    assert epochs.epoch.tolist() == list(range(1, EPOCHS_TO_KILL + 1))  # patience 6: no early stop
    # It continued the killed run: the epochs before the kill are the ones it had trained.
    assert epochs.train_loss.tolist()[: len(done)] == pytest.approx([h["train_loss"] for h in done])
    assert before <= _rows(store, "SELECT run_id, track_id, probs::VARCHAR FROM predictions")


def test_sigterm_marks_the_run_interrupted(trained, tmp_path):
    store = _copy(trained, tmp_path)
    cli = Cli("train", *TRAIN, "--epochs", "3", "--db", str(store.path))
    assert cli.stop_when(lambda: "epoch   1:" in cli.output, sig=signal.SIGTERM)
    assert cli.proc.returncode == 130, cli.output[-2000:]
    run_id = cli.output.split(": started")[0].split()[-1]
    stored = store.query("SELECT status, error FROM runs WHERE run_id = ?", [run_id])  # written, not inferred
    assert stored.status[0] == "interrupted" and "SIGTERM" in stored.error[0]


def test_kill_during_analyze_leaves_the_run_and_no_partial_analysis(trained, tmp_path):
    store = _copy(trained, tmp_path)
    run_id = trained[1]
    tables = ("embeddings", "projections", "neighbours", "attributions")
    predictions = _rows(store, "SELECT track_id, probs::VARCHAR FROM predictions WHERE run_id = ?", [run_id])
    args = ["analyze", "--run", run_id, "--methods", "pca", "--gradcam-limit", "3", "--db", str(store.path)]
    cli = Cli(*args)
    assert cli.stop_when(lambda: "embeddings" in cli.output or "Grad-CAM" in cli.output)
    killed = _counts(store, run_id, tables)
    assert main(args) == 0
    full = _counts(store, run_id, tables)
    assert killed in ({t: 0 for t in tables}, full)  # nothing, or everything: one transaction
    assert store.run(run_id)["status"] == "complete"
    assert predictions == _rows(store, "SELECT track_id, probs::VARCHAR FROM predictions WHERE run_id = ?", [run_id])


def test_kill_during_faults_keeps_each_source_whole(trained, tmp_path):
    store = _copy(trained, tmp_path)
    query = "SELECT track_id, kind, group_id, source FROM faults"
    cli = Cli("faults", "--dataset", "toy", "--db", str(store.path))
    assert cli.stop_when(lambda: "fault scan" in cli.output)
    killed = _rows(store, query)
    assert main(["faults", "--dataset", "toy", "--db", str(store.path)]) == 0
    full = _rows(store, query)
    for source in ("detected", "known"):
        part = {r for r in killed if r[3] == source}
        assert part in (set(), {r for r in full if r[3] == source})
    assert len(store.tracks("toy")) == 18


def test_the_heartbeat_beats_periodically_and_when_nudged(trained, tmp_path):
    from genre_core.train.lifecycle import Heartbeat

    store = _copy(trained, tmp_path)
    store.start_run(dict(run_id="beating", dataset_id=1, model="cnn", split="random", config={}))

    def beat_at():
        return store.runs(run_id="beating").beat_at[0]

    first = beat_at()
    with Heartbeat(store, "beating", period_s=0.2):
        time.sleep(1.0)
        periodic = beat_at()
    assert periodic > first
    with Heartbeat(store, "beating", period_s=3600) as heartbeat:
        heartbeat.nudge()  # what the loop does after each epoch
        time.sleep(0.5)
    assert beat_at() > periodic
