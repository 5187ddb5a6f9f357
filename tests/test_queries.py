"""Every query the app makes, on a small fixture database, and the selection-to-filter logic.

The fixture (`app_db` in conftest.py, shared with test_app.py and test_browser.py) holds the 3-genre toy
corpus with a run really trained by `training.fit`, plus a 10-genre synthetic dataset with six
complete runs (one sweep), a running and a failed run, analysis rows and faults written by
benchmarks.app_db.build.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genre_core.app import state
from genre_core.metrics import evaluation
from genre_core.app import media
from genre_core.app import queries as q
from genre_core.faults.kinds import DUPLICATE_KINDS, SEVERITY
from genre_core.store import open_store


@pytest.fixture
def db(app_db):
    return q.DbRef(app_db["db"], q.db_version(app_db["db"]))


def _cnn(app_db) -> str:
    return app_db["ten_runs"][0]  # cnn on logmel, with Grad-CAM maps


# -- the database ----------------------------------------------------------------------------


def test_database_state_says_how_to_fill_it(tmp_path, app_db):
    assert q.database_state(tmp_path / "none.duckdb")[0] == "missing"
    assert "make demo" in q.database_state(tmp_path / "none.duckdb")[1]
    empty = open_store(tmp_path / "empty.duckdb")
    db_state, message = q.database_state(empty.path)
    assert db_state == "empty" and "make demo" in message
    (tmp_path / "junk.duckdb").write_text("not a database")
    assert q.database_state(tmp_path / "junk.duckdb")[0] == "invalid"
    assert q.database_state(app_db["db"]) == ("ok", "")


def test_database_without_runs(tmp_path):
    from genre_core.datasets.ingest import ingest
    from tests.helpers import make_toy_corpus

    store = open_store(tmp_path / "db.duckdb")
    ingest(store, "folder", make_toy_corpus(tmp_path / "c", per_genre=2), name="t", progress=False)
    assert q.database_state(store.path)[0] == "no_runs"
    assert q.runs(store.path).empty and len(q.datasets(store.path)) == 1


def test_queries_wait_while_a_training_process_writes(writable_app_db):
    """DuckDB allows one writer process or many readers: reads retry until the writer is done."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); con.execute('BEGIN'); "
        "print('locked', flush=True); time.sleep(1.5); con.execute('COMMIT')"), str(writable_app_db)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        assert len(q.runs(writable_app_db)) == 13  # toy: cnn + 4 folds + pooled + imported; ten: 6
        assert time.monotonic() - started > 0.3  # it did wait for the lock
    finally:
        holder.wait(timeout=30)


def test_db_version_changes_when_a_review_is_saved(writable_app_db):
    before = q.db_version(writable_app_db)
    store = open_store(writable_app_db)
    store.save_review(2, "blues.00000", "artist_repeat", decision="confirmed", note=None)
    assert q.db_version(writable_app_db) != before


def test_db_version_queries_only_after_the_files_changed(writable_app_db, monkeypatch):
    runs = importlib.import_module("genre_core.app.queries.runs")  # the package's `runs` is a query
    calls = []
    real = runs._version_row
    monkeypatch.setattr(runs, "_version_row", lambda path: calls.append(path) or real(path))
    first = q.db_version(writable_app_db)
    assert q.db_version(writable_app_db) == first and len(calls) == 1  # every rerun asks; files unchanged
    open_store(writable_app_db).save_review(2, "blues.00000", "artist_repeat", decision="confirmed", note=None)
    assert q.db_version(writable_app_db) != first and len(calls) == 2


def test_database_state_asks_only_after_the_files_changed(writable_app_db, monkeypatch):
    runs = importlib.import_module("genre_core.app.queries.runs")
    calls = []
    real = runs._database_state
    monkeypatch.setattr(runs, "_database_state", lambda path, fill: calls.append(path) or real(path, fill))
    runs._STATES.clear()
    assert q.database_state(writable_app_db) == ("ok", "") == q.database_state(writable_app_db) and len(calls) == 1
    open_store(writable_app_db).save_review(2, "blues.00000", "artist_repeat", decision="confirmed", note=None)
    assert q.database_state(writable_app_db) == ("ok", "") and len(calls) == 2


# -- datasets, runs, leaderboard -------------------------------------------------------------


def test_datasets_count_tracks_and_faults(db, app_db):
    sets = q.datasets(db).set_index("name")
    assert sets.loc["toy", "n_tracks"] == 24 and sets.loc["toy", "n_genres"] == 3
    assert sets.loc["ten", "n_tracks"] == 150 and sets.loc["ten", "n_unreadable"] >= 1
    assert sets.loc["ten", "n_faults"] > 0 and "duplicate" in sets.loc["ten", "faults"]


def test_runs_are_complete_only(db, app_db):
    runs = q.runs(db)
    kfold = runs[runs.split.str.contains("kfold")]  # the fixture's 4 folds and their pooled run
    assert set(runs.run_id) - set(kfold.run_id) == {app_db["toy_run"], app_db["imported_run"], *app_db["ten_runs"]}
    assert len(kfold) == 5
    assert not any("running" in r or "failed" in r for r in runs.run_id)
    assert runs.accuracy.between(0, 1).all() and (runs.ci_low <= runs.accuracy).all()


def test_leaderboard_marks_one_best_per_dataset(db):
    board = q.leaderboard(db)
    assert board.groupby("dataset").best.sum().eq(1).all()
    ten = board[board.dataset == "ten"]
    assert list(ten.accuracy) == sorted(ten.accuracy, reverse=True)
    assert ten.iloc[0].best


# -- predictions, confusion, per genre -------------------------------------------------------


def test_confusion_matches_evaluation(db, app_db):
    run = _cnn(app_db)
    cells = q.confusion(db, run)
    classes = list(q.run_row(db, run).classes)
    preds = q.predictions(db, run)
    expected = evaluation.confusion([classes.index(x) for x in preds.label],
                                    [classes.index(x) for x in preds.predicted], len(classes))
    assert cells.n.to_numpy().reshape(len(classes), len(classes)).tolist() == expected.tolist()
    rows = cells[cells.row_total > 0].groupby("label").rate.sum()
    assert np.allclose(rows, 1.0)


def test_predictions_carry_confidence_and_fault_flags(db, app_db):
    preds = q.predictions(db, _cnn(app_db), split=None)
    assert set(preds.split) == {"test", "val"}
    assert preds.confidence.between(0, 1).all() and (preds.p_true <= preds.confidence + 1e-6).all()
    assert (preds.correct == (preds.label == preds.predicted)).all()
    assert (preds.faults != "").any()


def test_per_genre_scores(db, app_db):
    run = _cnn(app_db)
    frame = q.per_genre(db, run)
    assert list(frame.genre) == list(q.run_row(db, run).classes)
    assert frame[["precision", "recall", "f1"]].stack().between(0, 1).all()
    both = q.per_genre(db, app_db["ten_runs"][:2])
    assert set(both.run_id) == set(app_db["ten_runs"][:2])


# -- map and track ---------------------------------------------------------------------------


def test_projection_covers_every_usable_track(db, app_db):
    run = _cnn(app_db)
    assert q.projection_methods(db, run) == ["tsne", "umap"]
    points = q.projection(db, run, "tsne")
    assert len(points) == 150 - 1  # one unreadable track has no embedding
    assert set(points.outcome) <= {"correct", "wrong", "training track"}
    assert points.fault.isin(["none", *SEVERITY]).all()


def test_track_views(db, app_db):
    run = _cnn(app_db)
    preds = q.predictions(db, run)
    track_id = next(t for t in preds.track_id if len(q.attributions(db, run, t)))
    ds = app_db["ten_id"]
    audio, sr = media.track_audio(db, ds, track_id)
    assert Path(audio).is_file() and sr is None
    mel = media.track_mel(db, ds, track_id)
    assert mel["mel"].shape[0] == 128 and mel["duration_s"] == pytest.approx(4.0, abs=0.01)
    assert mel["mel"].max() == 0.0 and mel["mel"].min() >= -80.0  # dB below the loudest bin
    musicnn = media.track_mel(db, ds, track_id, "musicnn")
    assert musicnn["mel"].shape[0] == 96 and musicnn["freqs"][-1] < 8000
    assert len(media.track_waveform(db, ds, track_id)) > 100
    probs = q.track_probs(db, run, track_id)
    assert probs.prob.sum() == pytest.approx(1.0, abs=1e-4) and probs.is_true.sum() == 1
    segments = q.segments(db, run, track_id)
    assert np.allclose(segments.groupby("start_s").prob.sum(), 1.0, atol=1e-4)
    maps = q.attributions(db, run, track_id)
    assert maps["values"].iloc[0].shape == (maps.n_bands.iloc[0], maps.n_frames.iloc[0])
    assert len(q.neighbours(db, run, track_id)) > 0


def test_track_search_matches_id_path_artist_and_label_with_a_limit(db, app_db):
    run = _cnn(app_db)
    every = q.search_tracks(db, run, "", limit=None)
    assert len(every) == 150 and (every.n_matches == 150).all()
    assert list(every.split.drop_duplicates()) == ["test", "val", "train"]  # test first
    jazz = q.search_tracks(db, run, " JAZZ ", limit=5)
    assert len(jazz) == 5 and jazz.n_matches.iloc[0] == 15 and (jazz.label == "jazz").all()
    assert set(q.search_tracks(db, run, "artist 001", limit=None).artist.str.contains("artist 001")) == {True}
    by_file = q.search_tracks(db, run, "blues_00.wav", limit=None)
    assert len(by_file) == 15 and by_file.path.str.endswith("blues_00.wav").all()  # 15 tracks share the file
    exact = every.track_id.iloc[-1]  # a training track: listed first when its id is typed
    assert q.search_tracks(db, run, exact.upper(), limit=3).track_id.iloc[0] == exact
    assert q.search_tracks(db, run, "%", limit=None).empty  # a LIKE wildcard is just a character
    assert q.search_tracks(db, run, "no such track").empty


def test_audio_only_for_usable_tracks_in_the_database(db, app_db):
    ds = app_db["ten_id"]
    tracks = q.search_tracks(db, _cnn(app_db), limit=None)
    bad = tracks[tracks.status != "ok"].track_id.iloc[0]
    assert media.track_audio(db, ds, bad) is None
    assert media.track_audio(db, ds, "../../etc/passwd") is None
    assert q.track_file(db, ds + 100, tracks.track_id.iloc[0]) is None


def test_taggram_only_for_the_pretrained_run(db, app_db):
    probe = next(r for r in app_db["ten_runs"] if "musicnn" in r)
    track_id = q.predictions(db, probe).track_id.iloc[0]
    tags = q.taggram(db, probe, track_id)
    assert tags is not None and tags["values"].shape[1] == len(tags["tags"]) == 50
    assert q.taggram(db, _cnn(app_db), track_id) is None


# -- faults and reviews ----------------------------------------------------------------------


def test_fault_queries(db, app_db):
    ds = app_db["ten_id"]
    dups = q.duplicate_groups(db, ds)
    assert set(dups.kind) <= set(DUPLICATE_KINDS) and dups.groupby("group_id").size().ge(2).all()
    issues = q.label_issues(db, ds, _cnn(app_db))
    assert {"predicted", "confidence", "p_given"} <= set(issues.columns)
    detail, summary, _ = q.known_vs_detected(db, ds)
    assert set(detail.status) == {"found", "missed", "new"}
    assert list(summary.kind) == list(DUPLICATE_KINDS) and summary.looked_for.all()  # per kind, in the one order
    assert (summary.known == summary.found + summary.missed).all()
    assert 0 < summary.found.sum() / summary.known.sum() < 1  # the fixture's known list has a miss
    artists = q.artists_across_split(db, ds, _cnn(app_db))
    assert artists.n_tracks.ge(2).all() and (artists.train + artists.val + artists.test == artists.n_tracks).all()


def test_review_replaces_earlier_verdict_and_cleans_evaluation(writable_app_db, app_db):
    store = open_store(writable_app_db)
    run = _cnn(app_db)
    ds = app_db["ten_id"]
    test_track = q.predictions(writable_app_db, run).track_id.iloc[0]
    before = q.clean_evaluation(writable_app_db, run, n_boot=100)
    assert before.n.tolist() == [before.n[0]] * 2
    # Nothing confirmed: "confirmed or flagged" (Faults' fair view, Story step 5) leaves out the flags.
    fallback = q.clean_evaluation(writable_app_db, run, n_boot=100, leave_out="confirmed or flagged")
    flagged = q.clean_evaluation(writable_app_db, run, n_boot=100, leave_out="flagged")
    pd.testing.assert_frame_equal(fallback, flagged)
    store.save_review(ds, test_track, "label_issue", decision="dismissed", note="fine")
    store.save_review(ds, test_track, "label_issue", decision="confirmed", note="wrong label")
    reviews = store.query("SELECT * FROM reviews")
    assert len(reviews) == 1 and reviews.decision[0] == "confirmed"
    after = q.clean_evaluation(writable_app_db, run, n_boot=100)
    assert after.n[1] == before.n[1] - 1 and after.excluded[1] == 1
    assert after.ci_low[1] <= after.accuracy[1] <= after.ci_high[1]
    pd.testing.assert_frame_equal(q.clean_evaluation(writable_app_db, run, n_boot=100, leave_out="confirmed or flagged"),
                                  after)  # once a test track is confirmed, the confirmed ones
    with pytest.raises(ValueError):
        store.save_review(ds, test_track, "label_issue", decision="maybe", note=None)


def test_dismissed_faults_are_not_flagged(writable_app_db, app_db):
    ds = app_db["ten_id"]
    found = q.faults(writable_app_db, ds)
    one = found[found.kind == "distortion"].iloc[0]
    open_store(writable_app_db).save_review(ds, one.track_id, "distortion", decision="dismissed", note=None)
    flags = q.predictions(writable_app_db, _cnn(app_db), split=None).set_index("track_id").faults
    assert "distortion" not in flags.get(one.track_id, "")


# -- comparing runs --------------------------------------------------------------------------


def test_mcnemar_on_shared_test_tracks(db, app_db):
    a, b = app_db["ten_runs"][:2]
    result = q.mcnemar(db, a, b).iloc[0]
    pa, pb = q.predictions(db, a).set_index("track_id"), q.predictions(db, b).set_index("track_id")
    shared = pa.index.intersection(pb.index)
    direct = evaluation.mcnemar(pa.loc[shared].correct.to_numpy(bool), pb.loc[shared].correct.to_numpy(bool))
    assert result.n_shared == len(shared) and result.p_value == pytest.approx(direct.p_value)
    assert q.mcnemar(db, a, app_db["toy_run"]).empty  # different datasets share no track


def test_epochs_sweeps_ablation(db, app_db):
    assert set(q.epochs(db, app_db["ten_runs"][:2]).run_id) == set(app_db["ten_runs"][:2])
    sweeps = q.sweeps(db)
    counts = sweeps.set_index("sweep").n_runs
    assert counts[app_db["sweep"]] == 3 and sorted(counts) == [3, 4]  # the ablation; the k-fold folds
    table = q.ablation(db, app_db["sweep"])
    assert len(table) == 3 and {"model", "representation", "accuracy", "ci_low"} <= set(table.columns)
    assert "window_s" not in table.columns  # identical in every run of the sweep: not shown
    assert list(table.accuracy) == sorted(table.accuracy, reverse=True)
    summary = q.sweep_summary(db, app_db["sweep"]).iloc[0]
    assert summary.n_runs == 3 and summary["mean"] == pytest.approx(table.accuracy.mean()) and not summary.kfold


# -- selection-to-filter logic ---------------------------------------------------------------


def test_a_click_on_a_confusion_cell_lists_its_tracks(db, app_db):
    run = _cnn(app_db)
    preds = q.predictions(db, run)
    wrong = preds[~preds.correct].iloc[0]
    event = {"selection": {"points": [{"x": 3, "y": 2, "customdata": [wrong.label, wrong.predicted, "1 of 5"]}],
                           "point_indices": [23], "box": [], "lasso": []}}
    cell = state.clicked_cell(event)
    assert cell == (wrong.label, wrong.predicted)
    rows = state.tracks_in_cell(preds, *cell)
    assert wrong.track_id in set(rows.track_id)
    assert ((rows.label == wrong.label) & (rows.predicted == wrong.predicted)).all()
    assert list(rows.confidence) == sorted(rows.confidence, reverse=True)  # confident mistakes first
    assert state.clicked_cell({"selection": {"points": []}}) is None and state.clicked_cell(None) is None


def test_a_lasso_selection_becomes_track_ids(db, app_db):
    points = q.projection(db, _cnn(app_db), "tsne")
    chosen = points.head(5)
    event = {"selection": {"points": [{"customdata": [t, "x", "y", "", ""]} for t in chosen.track_id]
                                      + [{"customdata": [chosen.track_id.iloc[0], "x", "y", "", ""]}],
                           "box": [], "lasso": [{"x": [0, 1, 1], "y": [0, 0, 1]}]}}
    ids = state.selected_track_ids(event)
    assert ids == list(chosen.track_id)
    assert not state.is_single_click(event)
    assert list(state.filter_tracks(points, ids[::-1]).track_id) == ids[::-1]
    click = {"selection": {"points": [{"customdata": [ids[0]]}], "box": [], "lasso": []}}
    assert state.is_single_click(click) and state.selected_track_ids(click) == [ids[0]]
    near = state.nearest_on_map(points, ids[0], 5)
    assert near[0] == ids[0] and len(near) == 5


def test_map_sample_keeps_every_genre_the_misclassified_and_the_kept_tracks():
    rng = np.random.default_rng(0)
    n = 120_000
    labels = np.where(np.arange(n) < 150, "rare", rng.choice(list("abcdefghi"), n))
    outcome = rng.choice(["wrong", "correct", "training track"], n, p=[0.05, 0.2, 0.75])
    points = pd.DataFrame({"track_id": [f"t{i:06d}" for i in range(n)], "x": rng.normal(size=n),
                           "y": rng.normal(size=n), "label": labels, "outcome": outcome})
    keep = ["t000007", "t099999", "t050000"]
    drawn = state.sample_map(points, keep=keep)
    assert len(drawn) <= state.MAP_MAX_POINTS + 10 * state.MAP_MIN_PER_LABEL
    assert set(drawn.label) == set(labels) and (drawn.label == "rare").sum() == 150  # a rare genre: all of it
    assert (drawn.outcome == "wrong").sum() == (outcome == "wrong").sum()
    assert set(keep) <= set(drawn.track_id) and drawn.track_id.is_monotonic_increasing
    shares = drawn[drawn.outcome != "wrong"].label.value_counts(normalize=True)
    assert abs(shares["a"] - shares["i"]) < 0.01  # common genres in proportion
    assert drawn.track_id.equals(state.sample_map(points, keep=keep).track_id)  # same seed, same map
    assert state.sample_map(points.head(1000)) is not None and len(state.sample_map(points.head(1000))) == 1000


def test_prev_next_through_a_selection():
    sel = state.Selection("Confusion: jazz → blues", ("a", "b", "c"), 1)
    assert state.step(sel, "a") == (None, "b", 0)
    assert state.step(sel, "b") == ("a", "c", 1)
    assert state.step(sel, "c") == ("b", None, 2)
    assert state.step(sel, "z") == (None, None, None)
    session: dict = {}
    state.open_track(session, 1, "b", sel)
    assert session[state.TRACK] == (1, "b") and session[state.SELECTION] is sel
    state.open_track(session, 1, "c")  # inside the selection: kept
    assert session[state.SELECTION] is sel
    state.open_track(session, 1, "zz")  # outside: a selection of one
    assert session[state.SELECTION].track_ids == ("zz",)


def test_review_changes_from_an_edited_table():
    before = pd.DataFrame({"dataset_id": [1, 1, 1], "track_id": ["a", "b", "c"], "kind": ["label_issue"] * 3,
                           "decision": [None, "confirmed", None], "note": ["", "", ""]})
    after = before.copy()
    after.loc[0, "decision"] = "dismissed"
    after.loc[1, "note"] = "checked by ear"
    changes = state.review_changes(before, after)
    assert [c["track_id"] for c in changes] == ["a", "b"]
    assert changes[0]["decision"] == "dismissed" and changes[1]["note"] == "checked by ear"
    assert state.review_changes(before, before) == []


def _review_changes_by_rows(before, after):
    """The row-by-row review_changes the column-wise one replaced (the reference)."""
    def text(value):
        return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)

    out = []
    for (_, old), (_, new) in zip(before.iterrows(), after.iterrows()):
        decision, note = text(new.get("decision")), text(new.get("note"))
        if decision in state.DECISIONS and (decision != text(old.get("decision")) or note != text(old.get("note"))):
            out.append(dict(dataset_id=int(new["dataset_id"]), track_id=str(new["track_id"]), kind=str(new["kind"]),
                            decision=decision, note=note or None))
    return out


def test_review_changes_column_wise_equals_row_by_row():
    rng = np.random.default_rng(3)
    n = 300
    values = np.array([None, np.nan, "", "confirmed", "dismissed", "maybe"], dtype=object)
    notes = np.array([None, np.nan, "", "by ear", "x"], dtype=object)
    before = pd.DataFrame({"dataset_id": rng.integers(1, 3, n), "track_id": [f"t{i}" for i in range(n)],
                           "kind": rng.choice(["label_issue", "distortion"], n),
                           "decision": values[rng.integers(0, len(values), n)],
                           "note": notes[rng.integers(0, len(notes), n)]})
    after = before.copy()
    after["decision"] = values[rng.integers(0, len(values), n)]
    after["note"] = notes[rng.integers(0, len(notes), n)]
    expected = _review_changes_by_rows(before, after)
    assert expected and state.review_changes(before, after) == expected
    assert state.review_changes(before.drop(columns="note"), after) == _review_changes_by_rows(
        before.drop(columns="note"), after)
    assert state.review_changes(before, after.drop(columns="note")) == _review_changes_by_rows(
        before, after.drop(columns="note"))
    assert state.review_changes(before.head(0), after.head(0)) == []


def test_plain_summary_for_non_experts():
    text = state.plain_summary(dict(model="cnn", accuracy=0.712, ci_low=0.62, ci_high=0.79, n_test=100,
                                n_classes=10), 5)
    assert text.startswith("The best model, cnn, names the right genre for 71 of 100 test songs (95% CI 62–79)")
    assert "at random would get about 10" in text
