"""Bring your own predictions: a table made by any model becomes a complete run, scored like a
native one; bad tables are refused with the file and the reason, and nothing is stored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genre_core.runs.imported import BadImport, import_predictions
from genre_core.store import open_store
from tests.helpers import prob_table


@pytest.fixture()
def store(writable_app_db):
    return open_store(writable_app_db, create=False)


def _native(store, app_db) -> tuple[pd.DataFrame, list[str]]:
    run = store.run(app_db["toy_run"])
    preds = store.predictions(app_db["toy_run"])
    return preds[preds.split == "test"].reset_index(drop=True), list(run["classes"])


def _metric(store, run_id: str, name: str) -> float:
    rows = store.query("SELECT value FROM metrics WHERE run_id = ? AND split = 'test' AND name = ?",
                       [run_id, name])
    return float(rows["value"].iloc[0])


def test_imported_probabilities_score_exactly_like_the_native_run(store, app_db, tmp_path):
    preds, classes = _native(store, app_db)
    path = tmp_path / "preds.csv"
    prob_table(preds, classes).to_csv(path, index=False)
    summary = import_predictions(store, "toy", path, model="outside-model", progress=False)
    run = store.run(summary.run_id)
    assert run["status"] == "complete" and list(run["classes"]) == classes
    stored = store.predictions(summary.run_id)
    assert sorted(stored.track_id) == sorted(preds.track_id)
    assert (stored.set_index("track_id").predicted == preds.set_index("track_id").predicted).all()
    for name in ("track/accuracy", "track/macro_f1"):
        assert _metric(store, summary.run_id, name) == pytest.approx(_metric(store, app_db["toy_run"], name))
    low, high = summary.ci
    assert low <= summary.accuracy <= high


def test_predicted_genre_only_and_embeddings_give_maps_and_neighbours(store, app_db, tmp_path):
    preds, classes = _native(store, app_db)
    table = pd.DataFrame({"track": preds["track_id"], "predicted": preds["predicted"]})
    table.to_parquet(tmp_path / "p.parquet")
    tracks = store.tracks("toy")
    rng = np.random.default_rng(1)
    emb = pd.DataFrame(rng.normal(size=(len(tracks), 8)), columns=[f"e{i}" for i in range(8)])
    emb.insert(0, "track_id", tracks["track_id"].to_numpy())
    emb.to_csv(tmp_path / "e.csv", index=False)
    summary = import_predictions(store, "toy", tmp_path / "p.parquet", model="labels-only",
                                 embeddings=tmp_path / "e.csv", progress=False)
    accuracy = float((preds.predicted == preds.label).mean())
    assert summary.accuracy == pytest.approx(accuracy)
    maps = store.query("SELECT DISTINCT method FROM projections WHERE run_id = ?", [summary.run_id])
    assert set(maps.method) == {"tsne", "umap"}
    n = store.query("SELECT count(DISTINCT track_id) AS n FROM neighbours WHERE run_id = ?", [summary.run_id])
    assert int(n.n.iloc[0]) == len(tracks)


@pytest.mark.parametrize("break_it, message", [
    (lambda t: pd.concat([t, t.iloc[:1]]), "more than once"),
    (lambda t: t.assign(track_id=["nope.wav", *t.track_id[1:]]), "not in the dataset"),
    (lambda t: t.drop(columns=t.columns[-1]), "no probability column"),
    (lambda t: t.assign(**{t.columns[1]: t[t.columns[1]] + 0.5}), "do not sum to 1"),
    (lambda t: t.assign(**{t.columns[1]: -t[t.columns[1]]}), "outside"),
    (lambda t: t.assign(prob_polka=0.0), "lacks: polka"),
    (lambda t: t.rename(columns={"track_id": "song"}), "no track_id column"),
])
def test_bad_tables_are_refused_and_nothing_is_stored(store, app_db, tmp_path, break_it, message):
    preds, classes = _native(store, app_db)
    path = tmp_path / "bad.csv"
    break_it(prob_table(preds, classes)).to_csv(path, index=False)
    before = len(store.query("SELECT run_id FROM runs"))
    with pytest.raises(BadImport, match=message) as info:
        import_predictions(store, "toy", path, model="broken", progress=False)
    assert str(path) in str(info.value)
    assert len(store.query("SELECT run_id FROM runs")) == before


def test_bad_model_label_and_format(store, tmp_path):
    (tmp_path / "p.xlsx").write_text("x")
    with pytest.raises(BadImport, match="--model"):
        import_predictions(store, "toy", tmp_path / "p.xlsx", model="../evil")
    with pytest.raises(BadImport, match="unsupported format"):
        import_predictions(store, "toy", tmp_path / "p.xlsx", model="fine")


def test_analyze_explains_why_an_imported_run_has_no_model(store, app_db, tmp_path):
    from genre_core.analysis.analyze import analyze

    preds, classes = _native(store, app_db)
    prob_table(preds, classes).to_csv(tmp_path / "p.csv", index=False)
    run_id = import_predictions(store, "toy", tmp_path / "p.csv", model="outside", progress=False).run_id
    with pytest.raises(ValueError, match="no model"):
        analyze(store, run_id, progress=False)


def test_a_run_without_a_model_is_never_the_default_model(store, app_db, tmp_path):
    from genre_core.store import StoreError
    from genre_core.train.inference import latest_complete_run, load_run

    before = latest_complete_run(store)
    preds, classes = _native(store, app_db)
    prob_table(preds, classes).to_csv(tmp_path / "p.csv", index=False)
    run_id = import_predictions(store, "toy", tmp_path / "p.csv", model="newest", progress=False).run_id
    assert latest_complete_run(store) == before != run_id
    with pytest.raises(StoreError, match="no model"):
        load_run(store, run_id)
