"""An honest leaderboard: a k-fold experiment is one entry scored on its pooled out-of-fold
predictions; folds are never ranked; entries tested on other tracks are marked."""

from __future__ import annotations

import pandas as pd
import pytest

from genre_core.app import queries as q
from genre_core.runs.imported import import_predictions
from genre_core.store import open_store
from genre_core.train.fit import train_command
from genre_core.runs.pooled import ensure_pooled, pool_kfold
from tests.helpers import prob_table, writable_copy


@pytest.fixture(scope="module")
def kfold_store(toy_store, tmp_path_factory):
    store = open_store(writable_copy(toy_store.path, tmp_path_factory.mktemp("pooled")), create=False)
    line = train_command(store, "toy", "logreg", split="kfold", k=4, seed=0)
    return store, line


def _pooled(store) -> pd.Series:
    runs = store.runs()
    return runs[runs.split.str.startswith("pooled-kfold/")].iloc[0]


def test_every_track_is_predicted_once_and_scored_over_all_tracks(kfold_store):
    store, line = kfold_store
    pooled = _pooled(store)
    assert pooled.split == "pooled-kfold/4" and "pooled out-of-fold" in line
    preds = store.predictions(pooled.run_id, "test")
    usable = store.tracks("toy")
    assert sorted(preds.track_id) == sorted(usable.track_id)
    folds = store.runs()
    folds = folds[folds.split.str.startswith("kfold-")]
    fold_preds = pd.concat([store.predictions(r, "test") for r in folds.run_id])
    assert (fold_preds.set_index("track_id").predicted.sort_index()
            == preds.set_index("track_id").predicted.sort_index()).all()
    accuracy = store.query("SELECT value FROM metrics WHERE run_id = ? AND split = 'test' AND "
                           "name = 'track/accuracy'", [pooled.run_id]).value.iloc[0]
    assert accuracy == pytest.approx((preds.label == preds.predicted).mean())


def test_leaderboard_shows_the_experiment_once_with_its_fold_spread(kfold_store):
    store, _ = kfold_store
    board = q.leaderboard(str(store.path))
    assert not board.split.str.startswith("kfold-").any()
    pooled = board[board.split == "pooled-kfold/4"]
    assert len(pooled) == 1 and "over 4 folds" in pooled.fold_spread.iloc[0]


def test_repooling_replaces_and_old_databases_get_pooled(kfold_store):
    store, _ = kfold_store
    sweep = _pooled(store).sweep
    first = _pooled(store).run_id
    again = pool_kfold(store, sweep).run_id
    runs = store.runs()
    assert first not in set(runs.run_id) and again in set(runs.run_id)
    assert ensure_pooled(store, "toy") == []  # already pooled: nothing to do



def test_the_latest_run_with_a_model_is_a_fold_not_the_pooled_entry(kfold_store):
    """The pooled entry is the newest run of a k-fold experiment but has no model: commands
    that default to the latest run (classify, the scale benchmark's analyze) must load a fold."""
    from genre_core.train.inference import latest_complete_run, load_run

    store, _ = kfold_store
    latest = latest_complete_run(store)
    assert latest != _pooled(store).run_id
    assert load_run(store, latest, device="cpu").estimator is not None

def test_an_entry_on_other_test_tracks_is_marked_not_comparable(app_db, writable_app_db, tmp_path):
    store = open_store(writable_app_db, create=False)
    ref = str(writable_app_db)
    board = q.leaderboard(ref)
    toy = board[board.dataset == "toy"]
    assert toy[toy.best].comparable.all()
    test = store.predictions(app_db["toy_run"], "test")
    run = store.run(app_db["toy_run"])
    half = test.iloc[: max(1, len(test) // 2)]
    prob_table(half, list(run["classes"])).to_csv(tmp_path / "half.csv", index=False)
    other = import_predictions(store, "toy", tmp_path / "half.csv", model="half", progress=False).run_id
    board = q.leaderboard(ref)
    row = board[board.run_id == other].iloc[0]
    assert not row.best and not row.comparable
