"""Shared fixtures: everything is made on the spot, never fetched from the network."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread_torch():
    # The CI box has 2 cores; oversubscribed BLAS threads make small tests slower, not faster.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def toy_store(tmp_path_factory):
    """A database holding the 3-genre toy corpus as dataset 'toy' (24 tracks of 4 s)."""
    from genre_core.datasets.ingest import ingest
    from genre_core.store import open_store
    from tests.helpers import make_toy_corpus

    root = tmp_path_factory.mktemp("toy")
    corpus = make_toy_corpus(root / "corpus")
    store = open_store(root / "db" / "toy.duckdb")
    ingest(store, "folder", corpus, name="toy", progress=False)
    return store


def build_app_db(root: Path) -> dict:
    """Build the fixture database once per test session under `root` (reused when present)."""
    info_file = root / "app_db.json"
    if info_file.is_file():
        return json.loads(info_file.read_text())
    from benchmarks.app_db import build, fake_analysis
    from genre_core.datasets.ingest import ingest
    from genre_core.store import open_store
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit
    from tests.helpers import make_toy_corpus

    torch.set_num_threads(1)
    root.mkdir(parents=True, exist_ok=True)
    store = open_store(root / "app.duckdb")
    ingest(store, "folder", make_toy_corpus(root / "toy"), name="toy", progress=False)
    toy = fit(store, TrainConfig.tiny_preset("toy", "cnn", epochs=1), progress=False)
    classes = list(store.run(toy.run_id)["classes"])
    store.replace_run_rows(toy.run_id, fake_analysis(store.tracks("toy"), store.predictions(toy.run_id), classes,
                                                     4.0, 5, False, np.random.default_rng(0)))
    from genre_core.train.fit import train_command

    train_command(store, "toy", "logreg", split="kfold", k=4)  # a k-fold experiment: one pooled entry
    kfold = store.complete_runs("toy", "logreg")
    pooled_run = kfold.run_id[kfold.split.str.startswith("pooled-")].iloc[0]
    fold_runs = list(kfold.run_id[kfold.split.str.startswith("kfold-")])
    imported = _import_toy_predictions(store, toy.run_id, classes, root / "outside.csv")
    ten = build(store, "ten", n_tracks=150, n_runs=6, seconds=4.0, files_per_genre=1, n_explained=12)
    info = dict(db=str(store.path), toy_run=toy.run_id, ten_runs=list(ten.run_id), imported_run=imported,
                pooled_run=pooled_run, fold_runs=fold_runs,
                sweep=ten.sweep.dropna().iloc[0], ten_id=int(store.dataset("ten")["dataset_id"]),
                toy_id=int(store.dataset("toy")["dataset_id"]))
    info_file.write_text(json.dumps(info))
    return info


def _import_toy_predictions(store, run_id: str, classes: list[str], path: Path) -> str:
    """A run brought from outside: the toy run's test probabilities as a CSV, imported."""
    from genre_core.runs.imported import import_predictions
    from tests.helpers import prob_table

    prob_table(store.predictions(run_id, "test"), classes).to_csv(path, index=False)
    return import_predictions(store, "toy", path, model="outside", progress=False).run_id


@pytest.fixture(scope="session")
def app_db(tmp_path_factory) -> dict:
    """The app's fixture database: the toy corpus with a really trained cnn run, and the
    10-genre dataset of benchmarks.app_db with six complete runs (ids in the returned dict)."""
    return build_app_db(tmp_path_factory.getbasetemp() / "genrelens_app")


@pytest.fixture
def writable_app_db(app_db, tmp_path) -> Path:
    """A copy of the app fixture database (tmp_path/app.duckdb) that a test may write to."""
    from tests.helpers import writable_copy

    return writable_copy(app_db["db"], tmp_path)


@pytest.fixture
def writable_toy_db(toy_store, tmp_path) -> Path:
    """A copy of the toy store's database (tmp_path/toy.duckdb) that a test may write to."""
    from tests.helpers import writable_copy

    return writable_copy(toy_store.path, tmp_path)


@pytest.fixture(scope="module")
def scratch_cache_dir(tmp_path_factory):
    """$GENRELENS_CACHE_DIR in a scratch folder for a module (converted weights, features)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENRELENS_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield
