"""Multi-label genres: label conventions read at ingest, metrics against scikit-learn, a tiny
multi-label training run end to end, and the app's multi-label views."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score, hamming_loss, roc_auc_score

from genre_core.metrics import multilabel as ml
from genre_core.app import multilabel as ml_view
from genre_core.app import queries as q
from genre_core.app import state
from genre_core.datasets import scan
from genre_core.datasets.ingest import ingest
from genre_core.store import open_store
from tests.helpers import make_crossover_corpus, make_fma_corpus, tone, write
from tests.test_app import _app

# -- metrics against scikit-learn ------------------------------------------------------------


@pytest.fixture
def scored():
    """60 tracks x 5 genres, scores rounded to one decimal so ties are common."""
    rng = np.random.default_rng(0)
    y = (rng.random((60, 5)) < 0.35).astype(float)
    y[0] = 1  # every genre has a positive and a negative
    y[1] = 0
    s = np.clip(0.35 * y + 0.65 * rng.random((60, 5)), 0, 1).round(1)
    return y, s


def test_per_genre_ap_and_auc_match_sklearn_with_ties(scored):
    y, s = scored
    np.testing.assert_allclose(ml.average_precision(y, s),
                               [average_precision_score(y[:, c], s[:, c]) for c in range(5)], atol=1e-12)
    np.testing.assert_allclose(ml.roc_auc(y, s), [roc_auc_score(y[:, c], s[:, c]) for c in range(5)], atol=1e-12)
    assert ml.mean_ap(y, s) == pytest.approx(average_precision_score(y, s, average="macro"))
    assert ml.macro_auc(y, s) == pytest.approx(roc_auc_score(y, s, average="macro"))


def test_f1_and_hamming_match_sklearn(scored):
    y, s = scored
    for threshold in (0.3, 0.5, 0.7):
        pred = s >= threshold
        assert ml.micro_f1(y, pred) == pytest.approx(f1_score(y, pred, average="micro", zero_division=0))
        assert ml.macro_f1(y, pred) == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
        np.testing.assert_allclose(ml.per_genre_f1(y, pred), f1_score(y, pred, average=None, zero_division=0))
        assert ml.hamming(y, pred) == pytest.approx(hamming_loss(y, pred))


def test_batched_metrics_equal_one_at_a_time(scored):
    y, s = scored
    stack_y, stack_s = np.stack([y, y[::-1]]), np.stack([s, s[::-1]])  # (2, N, C)
    np.testing.assert_allclose(ml.mean_ap(stack_y, stack_s), [ml.mean_ap(y, s)] * 2)
    np.testing.assert_allclose(ml.macro_auc(stack_y, stack_s), [ml.macro_auc(y, s)] * 2)


def test_undefined_genres_are_nan_and_left_out_of_the_mean():
    y = np.array([[1, 0], [0, 0], [1, 0]], float)
    s = np.array([[0.9, 0.1], [0.2, 0.3], [0.6, 0.2]])
    assert np.isnan(ml.average_precision(y, s)[1]) and np.isnan(ml.roc_auc(y, s)[1])
    assert ml.mean_ap(y, s) == pytest.approx(1.0)


def test_threshold_is_tuned_on_the_data_given_and_rows_have_cis(scored):
    y, s = scored
    threshold = ml.tune_threshold(y, s)
    assert threshold in ml.THRESHOLDS
    best = max(ml.micro_f1(y, s >= t) for t in ml.THRESHOLDS)
    assert ml.micro_f1(y, s >= threshold) == pytest.approx(best)
    rep = ml.report(y, s, list("abcde"), threshold=threshold)
    rows = {r["name"]: r for r in ml.metric_rows(rep, y, s, "test", seed=0, n_boot=200)}
    for name in ("mAP", "macro_auc", "micro_f1", "macro_f1", "hamming_loss"):
        row = rows[f"track/{name}"]
        assert row["ci_low"] <= row["value"] <= row["ci_high"], name
    assert rows["track/threshold"]["value"] == threshold
    assert rows["track/ap/a"]["value"] == pytest.approx(average_precision_score(y[:, 0], s[:, 0]))
    again = {r["name"]: r for r in ml.metric_rows(rep, y, s, "test", seed=0, n_boot=200)}
    assert again["track/mAP"]["ci_low"] == rows["track/mAP"]["ci_low"]  # seeded: reproducible


# -- label conventions at ingest -------------------------------------------------------------


def _synth_layout(root: Path) -> Path:
    for genre, n in (("blues", 2), ("rock", 2)):
        for i in range(n):
            write(root / "genres" / genre / f"{genre}.{i:05d}.wav", tone(1.0, 220 + 50 * i))
    (root / "metadata.csv").write_text("track_id,artist,title,also\n"
                                       "blues.00000,A,x,rock\nblues.00001,B,y,\n"
                                       "rock.00000,C,z,blues; jazz\nrock.00001,D,w,\n")
    return root


def test_synth_also_column_becomes_multi_hot(tmp_path):
    found = scan("synth", _synth_layout(tmp_path / "c"))
    also = {e.track_id: e.also for e in found.entries}
    assert also == {"blues.00000": ("rock",), "blues.00001": (), "rock.00000": ("blues", "jazz"), "rock.00001": ()}
    store = open_store(tmp_path / "db.duckdb")
    ingest(store, "synth", tmp_path / "c", name="s", progress=False)
    sets = store.track_genres("s").groupby("track_id").genre.agg(frozenset).to_dict()
    assert sets["blues.00000"] == {"blues", "rock"} and sets["blues.00001"] == {"blues"}
    assert sets["rock.00000"] == {"rock", "blues", "jazz"}


def test_folder_labels_csv(tmp_path):
    root = make_crossover_corpus(tmp_path / "c", per_genre=1, crossovers=1, seconds=1.0)
    found = scan("folder", root)
    also = {e.track_id: e.also for e in found.entries}
    assert also["low/low_mid_00"] == ("mid",) and also["low/low_00"] == ()
    (root / "labels.csv").write_text("path,genres\nmid/mid_00.wav,mid;high\n")  # the `genres` spelling
    assert {e.track_id: e.also for e in scan("folder", root).entries}["mid/mid_00"] == ("high",)


def test_fma_genres_all_maps_to_top_level_genres(tmp_path):
    columns = [("artist", "name"), ("set", "split"), ("track", "genre_top"), ("track", "genres_all")]
    rows = {2: ["AWOL", "training", "Hip-Hop", "[21, 10]"], 5: ["AWOL", "test", "Hip-Hop", "[21]"]}
    root = make_fma_corpus(tmp_path / "fma", columns, rows, seconds=1.0)
    pd.DataFrame({"genre_id": [21, 10, 76], "parent": [0, 0, 10], "title": ["Hip-Hop", "Pop", "Experimental Pop"],
                  "top_level": [21, 10, 10]}).set_index("genre_id").to_csv(root / "fma_metadata" / "genres.csv")
    also = {e.track_id: e.also for e in scan("fma", root).entries}
    assert also == {"000002": ("Pop",), "000005": ()}


def test_databases_without_track_genres_still_read(tmp_path):
    store = open_store(tmp_path / "old.duckdb")
    with store.write() as con:
        con.execute("DROP TABLE track_genres")
        con.execute("DROP TABLE multilabel_predictions")
    assert store.track_genres("anything").empty
    assert q.genre_sets(str(store.path), "no-run").empty


# -- a tiny multi-label run end to end --------------------------------------------------------


@pytest.fixture(scope="session")
def ml_run(tmp_path_factory):
    """A crossover corpus ingested and one tiny multi-label cnn run: (store, run_id)."""
    from genre_core.train.fit import train_command

    root = tmp_path_factory.mktemp("multilabel")
    corpus = make_crossover_corpus(root / "corpus", per_genre=6, crossovers=2, seconds=3.0)
    store = open_store(root / "ml.duckdb")
    ingest(store, "folder", corpus, name="mix", progress=False)
    summary = train_command(store, "mix", "cnn", tiny=True, task="multilabel", epochs=2, window_s=1.5, hop_s=1.5)
    assert "multi-label" in summary and "mAP" in summary
    return store, str(store.complete_runs("mix").run_id.iloc[-1])


def test_multilabel_run_stores_finite_sane_metrics(ml_run):
    store, run_id = ml_run
    row = store.run(run_id)
    assert row["config"]["task"] == "multilabel" and list(row["classes"]) == ["high", "low", "mid"]
    metrics = store.query("SELECT name, value, ci_low, ci_high FROM metrics WHERE run_id = ? AND split = 'test'",
                          [run_id]).set_index("name")
    for name in ("mAP", "macro_auc", "micro_f1", "macro_f1", "hamming_loss"):
        value, low, high = metrics.loc[f"track/{name}", ["value", "ci_low", "ci_high"]]
        assert 0 <= value <= 1 and math.isfinite(low) and low <= high, name
    assert 0.05 <= metrics.loc["track/threshold", "value"] <= 0.95
    predictions = store.predictions(run_id)
    assert all(len(p) == 3 and all(0 <= v <= 1 for v in p) for p in predictions.probs)
    sets = store.query("SELECT * FROM multilabel_predictions WHERE run_id = ?", [run_id])
    assert len(sets) == len(predictions) and any(len(g) == 2 for g in sets.genres)


def test_cooccurrence_cells_open_onto_their_tracks(ml_run):
    store, run_id = ml_run
    db = str(store.path)
    classes = list(store.run(run_id)["classes"])
    cells = q.cooccurrence(db, run_id, classes)
    sets = q.genre_sets(db, run_id)
    assert len(cells) == len(classes) ** 2
    for cell in cells.itertuples():
        behind = ml_view.tracks_in_cooccurrence(sets, classes, cell.label, predicted=cell.predicted)
        assert len(behind) == cell.n
    ranking = q.per_genre_ranking(db, run_id)
    assert sorted(ranking.genre) == classes and ranking[["ap", "auc", "f1"]].notna().all().all()
    top = ml_view.top_genres(sets.probs.iloc[0], classes, k=2)
    assert len(top) == 2 and top[0][1] >= top[1][1]


def test_app_pages_show_a_multilabel_run(monkeypatch, ml_run):
    store, run_id = ml_run
    at = _app(monkeypatch, store.path, **{state.RUN: run_id})
    page = at.switch_page("pages/multilabel.py").run()
    assert not page.exception, [e.value for e in page.exception]
    assert page.title[0].value == "Multi-label genres"
    assert [m.label for m in page.metric][:2] == ["mAP", "macro ROC-AUC"]
    first = q.genre_sets(str(store.path), run_id).iloc[0]
    page.session_state["genrelens.cooccurrence_cell"] = (run_id, "test", first.genres[0], first.genres[0])
    page = page.run()  # what a click on a diagonal cell stores
    assert not page.exception and any("track" in s.value for s in page.subheader)
    state.open_track(at.session_state, int(store.dataset("mix")["dataset_id"]), first.track_id, state.Selection("t"))
    track = at.switch_page("pages/track.py").run()
    assert not track.exception, [e.value for e in track.exception]
    assert any("Multi-label run" in m.value for m in track.markdown)
    compare = at.switch_page("pages/compare.py").run()
    assert not compare.exception and any(s.value == "Multi-label runs" for s in compare.subheader)
    for other in ("overview", "confusion", "map", "faults", "classify"):  # single-label views still work
        shown = at.switch_page(f"pages/{other}.py").run()
        assert not shown.exception, (other, [e.value for e in shown.exception])


def test_multilabel_page_explains_a_single_label_run(monkeypatch, app_db):
    at = _app(monkeypatch, app_db["db"], **{state.RUN: app_db["toy_run"]})
    page = at.switch_page("pages/multilabel.py").run()
    assert not page.exception and "single-label" in page.info[0].value


def test_a_loaded_multilabel_run_scores_each_genre_with_a_sigmoid(ml_run):
    import torch

    from genre_core.train.inference import load_run

    store, run_id = ml_run
    loaded = load_run(store, run_id, device="cpu")
    audio = np.random.default_rng(0).standard_normal((2, int(loaded.sr * loaded.window_s))).astype(np.float32) * 0.1
    probs, _ = loaded.predict_windows(audio)
    with torch.no_grad():
        logits = loaded.model(loaded.frontend(torch.from_numpy(audio))).logits
    np.testing.assert_allclose(probs, torch.sigmoid(logits).numpy(), atol=1e-5)


def test_a_baseline_trains_multilabel_beside_a_single_label_run(monkeypatch, ml_run):
    # A scikit-learn baseline as a multi-label model (one binary copy per genre): what the demo
    # trains so that its Multi-label page has a run. The page then shows it even while a
    # single-label run of the same dataset is the chosen one.
    from genre_core.train.fit import train_command
    from genre_core.train.inference import load_run

    store, _ = ml_run
    summary = train_command(store, "mix", "logreg", task="multilabel", window_s=1.5, hop_s=1.5)
    assert "multi-label" in summary and "mAP" in summary
    run_id = str(store.complete_runs("mix", "logreg").run_id.iloc[-1])
    assert store.run(run_id)["config"]["task"] == "multilabel"
    sets = store.query("SELECT * FROM multilabel_predictions WHERE run_id = ?", [run_id])
    assert len(sets) == len(store.predictions(run_id)) and any(len(g) == 2 for g in sets.genres)
    test_map = store.query("SELECT value FROM metrics WHERE run_id = ? AND name = 'track/mAP' AND split = 'test'",
                           [run_id]).value
    assert 0.5 < float(test_map.iloc[0]) <= 1  # three well-separated toy genres
    loaded = load_run(store, run_id, device="cpu")
    audio = np.random.default_rng(0).standard_normal((3, int(loaded.sr * loaded.window_s))).astype(np.float32) * 0.1
    probs, _ = loaded.predict_windows(audio)
    assert probs.shape == (3, 3) and ((probs >= 0) & (probs <= 1)).all()

    train_command(store, "mix", "logreg", window_s=1.5, hop_s=1.5)  # single-label, chosen in the sidebar
    single = str(store.complete_runs("mix", "logreg").run_id.iloc[-1])
    page = _app(monkeypatch, store.path, **{state.RUN: single}).switch_page("pages/multilabel.py").run()
    assert not page.exception, [e.value for e in page.exception]
    assert not any("single-label" in i.value for i in page.info) and [m.label for m in page.metric][:1] == ["mAP"]
    assert any("names one genre per song" in c.value for c in page.caption)
