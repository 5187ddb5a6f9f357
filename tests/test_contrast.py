"""Issue 24 part 4: every track a musicologist compares is explained. The closest correct
tracks of each mistake (known answers on hand-made vectors), how they share --gradcam-limit,
analyze storing and explaining them, which run's explanations a run without a network shows,
and the Track page's reads returning what was stored."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genre_core.analysis.analyze import AnalyzeSummary, _limit_explained
from genre_core.analysis.contrast import closest_correct, contrast_tables, with_contrast
from genre_core.app import queries as q
from genre_core.store import open_store

pytestmark = pytest.mark.usefixtures("scratch_cache_dir")


def _preds(rows):
    return pd.DataFrame(rows, columns=["track_id", "split", "label", "predicted"])


# -- the search, on vectors whose answer is known ------------------------------------------


def test_closest_correct_tracks_of_the_true_and_the_predicted_genre():
    # Angles on the unit circle: cosine distance grows with the angle between two tracks.
    angle = {"m": 0.0, "a1": 0.1, "a2": 0.3, "a3": 0.5, "a4": 0.7, "b1": 0.2, "b2": 0.4,
             "a_wrong": 0.05, "a_train": 0.01, "c1": 0.02}
    ids = list(angle)
    vectors = np.array([[np.cos(v), np.sin(v)] for v in angle.values()])
    preds = _preds([("m", "test", "a", "b"), ("a1", "val", "a", "a"), ("a2", "test", "a", "a"),
                    ("a3", "val", "a", "a"), ("a4", "test", "a", "a"), ("b1", "test", "b", "b"),
                    ("b2", "val", "b", "b"), ("a_wrong", "test", "a", "c"), ("c1", "test", "c", "c")])
    # a_train: no prediction (a training track), so never a candidate, however close.
    found = closest_correct(ids, vectors, preds, k=3)
    m = found[found.track_id == "m"]
    assert list(m[m.side == "true"].neighbour_id) == ["a1", "a2", "a3"]  # a_wrong is not correct
    assert list(m[m.side == "true"]["rank"]) == [1, 2, 3]
    assert list(m[m.side == "predicted"].neighbour_id) == ["b1", "b2"]  # only two correct b tracks
    expected = 1 - np.cos(0.1)
    assert m[m.side == "true"].distance.iloc[0] == pytest.approx(expected)
    wrong = found[found.track_id == "a_wrong"]
    assert list(wrong[wrong.side == "true"].neighbour_id) == ["a1", "a2", "a3"]
    assert list(wrong[wrong.side == "predicted"].neighbour_id) == ["c1"]
    assert set(found.track_id) == {"m", "a_wrong"}  # only mistakes of the explained split


def test_ties_go_to_the_smaller_track_id_and_val_mistakes_are_not_searched():
    ids = ["m", "z", "y", "v"]
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    preds = _preds([("m", "test", "a", "b"), ("z", "test", "a", "a"), ("y", "val", "a", "a"),
                    ("v", "val", "b", "a")])
    found = closest_correct(ids, vectors, preds, k=1)
    assert list(found.neighbour_id) == ["y"] and list(found.side) == ["true"]  # no correct b track


def test_no_mistakes_gives_an_empty_table_with_the_stored_columns():
    preds = _preds([("a", "test", "x", "x"), ("b", "val", "x", "x")])
    found = closest_correct(["a", "b"], np.eye(2), preds)
    assert found.empty and list(found.columns) == ["track_id", "side", "rank", "neighbour_id", "distance"]


# -- how the contrast tracks share --gradcam-limit ------------------------------------------


def test_the_limit_keeps_mistakes_then_their_closest_correct_tracks_then_the_rest():
    test = _preds([(f"t{i}", "test", "a", "b" if i < 2 else "a") for i in range(8)])
    val = _preds([(f"v{i}", "val", "a" if i % 2 else "b", "a" if i % 2 else "b") for i in range(6)])
    contrast = pd.DataFrame({"track_id": ["t0", "t0", "t1", "t1", "t0", "t1"],
                             "side": ["true", "predicted", "true", "predicted", "true", "true"],
                             "rank": [1, 1, 1, 1, 2, 2],
                             "neighbour_id": ["v1", "v0", "t5", "v0", "v3", "v5"],
                             "distance": 0.1})
    extended = with_contrast(test, contrast, pd.concat([test, val]))
    assert set(extended.track_id) == set(test.track_id) | {"v0", "v1", "v3", "v5"}
    assert set(extended.track_id[extended.contrast_only]) == {"v0", "v1", "v3", "v5"}  # t5: a test track
    assert extended.set_index("track_id").contrast_rank.to_dict()["t5"] == 1
    summary = AnalyzeSummary("r")
    kept = _limit_explained(extended, 5, seed=0, summary=summary)
    # The 2 mistakes, then every rank-1 contrast track (v0, v1, t5); rank 2 and the rest are cut.
    assert set(kept.track_id) == {"t0", "t1", "v0", "v1", "t5"}
    kept = _limit_explained(extended, 7, seed=0, summary=summary)
    assert set(kept.track_id) == {"t0", "t1", "v0", "v1", "t5", "v3", "v5"}
    assert "5 of 12 tracks" in summary.line() and "closest correct" in summary.line()


def test_contrast_tables_reads_the_neighbour_space_and_skips_training_tracks():
    embeddings = pd.DataFrame({
        "track_id": ["m", "a1", "tr", "m", "a1", "tr"],
        "kind": ["penultimate"] * 3 + ["pooled"] * 3,  # the map kind comes first (map_tables)
        "vector": [[1.0, 0.0], [0.9, 0.1], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]})
    preds = _preds([("m", "test", "a", "b"), ("a1", "val", "a", "a")])
    notes: list[str] = []
    tables, extended = contrast_tables(embeddings, preds, preds[preds.split == "test"], notes=notes)
    stored = tables["contrast_neighbours"]
    assert list(stored.neighbour_id) == ["a1"]
    assert stored.distance.iloc[0] == pytest.approx(1 - 0.9 / np.hypot(0.9, 0.1))  # penultimate
    assert list(extended.track_id) == ["m", "a1"] and notes == ["1 closest correct tracks of 1 mistakes explained too"]


# -- analyze, end to end ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, toy_store):
    """A tiny cnn half trained on a copy of the toy store (it confuses some test tracks and
    gets others right, in every genre), analysed."""
    from genre_core.analysis.analyze import analyze
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit
    from tests.helpers import writable_copy

    store = open_store(writable_copy(toy_store.path, tmp_path_factory.mktemp("contrast")))
    config = TrainConfig.tiny_preset("toy", "cnn", epochs=4, batch_size=4, lr=3e-3, seed=1)
    run_id = fit(store, config, progress=False).run_id
    summary = analyze(store, run_id, progress=False, device="cpu", taggrams=False, methods=("pca",))
    return store, run_id, summary


def test_analyze_stores_and_explains_the_closest_correct_tracks_of_every_mistake(analysed):
    store, run_id, summary = analysed
    preds = store.predictions(run_id).set_index("track_id")
    test = preds[preds.split == "test"]
    mistakes = test[test.label != test.predicted]
    assert len(mistakes) >= 1  # the fixture's premise: a run with mistakes
    stored = store.query("SELECT * FROM contrast_neighbours WHERE run_id = ?", [run_id])
    attributions = store.query("SELECT track_id, target FROM attributions WHERE run_id = ?", [run_id])
    mapped = set(zip(attributions.track_id, attributions.target))
    assert set(stored.side) == {"true", "predicted"} and set(stored.track_id) <= set(mistakes.index)
    for track_id, mistake in mistakes.iterrows():
        rows = stored[stored.track_id == track_id]
        for side, genre in (("true", mistake.label), ("predicted", mistake.predicted)):
            near = rows[rows.side == side].sort_values("rank")
            correct = preds[(preds.label == genre) & (preds.label == preds.predicted)]
            assert len(near) == min(3, len(correct))
            assert list(near["rank"]) == list(range(1, len(near) + 1))
            assert near.distance.is_monotonic_increasing
            for neighbour in near.neighbour_id:
                row = preds.loc[neighbour]
                assert row.label == genre and row.predicted == genre  # correctly classified
                assert row.split in ("test", "val")
                assert (neighbour, genre) in mapped  # explained: its Grad-CAM is stored
    assert all((t, m.label) in mapped and (t, m.predicted) in mapped for t, m in mistakes.iterrows())
    added = set(stored.neighbour_id) - set(test.index)  # validation tracks, explained for contrast
    assert (f"{len(added)} closest correct tracks of {len(mistakes)} mistakes" in summary.line()) == bool(added)


def test_contrast_tracks_get_maps_but_stay_out_of_band_importance(analysed):
    from genre_core import paths
    from genre_core.analysis.analyze import _gradcam_tables
    from genre_core.features.cache import ShardCache
    from genre_core.train.inference import load_run

    store, run_id, _ = analysed
    preds = store.predictions(run_id)
    own = preds[preds.split == "test"].head(1).assign(contrast_only=False)
    added = preds[preds.label != own.label.iloc[0]].head(1).assign(contrast_only=True)
    tables = _gradcam_tables(load_run(store, run_id, "cpu"), store.tracks("toy"), pd.concat([own, added]),
                             ShardCache(paths.cache_dir(store.path)), False, AnalyzeSummary(run_id))
    assert set(tables["attributions"].track_id) == {own.track_id.iloc[0], added.track_id.iloc[0]}
    assert set(tables["band_importance"].genre) == {own.label.iloc[0]}  # both methods: the split only


def test_the_contrast_query_returns_the_stored_rows_with_their_state(analysed):
    store, run_id, _ = analysed
    stored = store.query("SELECT * FROM contrast_neighbours WHERE run_id = ? ORDER BY track_id, side, rank", [run_id])
    track_id = stored.track_id.iloc[0]
    frame = q.contrast_neighbours(str(store.path), run_id, track_id)
    mine = stored[stored.track_id == track_id]
    assert list(frame.columns[:7]) == ["side", "rank", "neighbour_id", "distance", "label", "predicted", "explained"]
    assert list(frame.side) == sorted(mine.side, key=lambda s: s == "predicted")  # true side first
    assert sorted(zip(frame.side, frame["rank"], frame.neighbour_id)) == sorted(zip(mine.side, mine["rank"], mine.neighbour_id))
    assert frame.explained.all() and frame.playable.all()
    assert (frame.label == frame.predicted).all()
    assert q.contrast_neighbours(str(store.path), run_id, "no-such-track").empty
    assert q.explanation_source(str(store.path), run_id) == (run_id, "")


# -- runs without a network of their own ----------------------------------------------------


def _ensemble(db_path, members):
    from genre_core.runs.ensemble import ensemble

    return ensemble(open_store(db_path), members).run_id


def test_an_ensemble_shows_its_best_explained_member(app_db, writable_app_db):
    db = str(writable_app_db)
    store = open_store(db)
    runs = q.runs(db).set_index("run_id")
    torchy = [r for r in app_db["ten_runs"] if store.query(
        "SELECT count(*) AS n FROM attributions WHERE run_id = ?", [r]).n.iloc[0] > 0]
    members = torchy[:3]
    best = max(members, key=lambda r: runs.accuracy[r])
    run_id = _ensemble(db, members)
    source, note = q.explanation_source(db, run_id)
    assert source == best
    assert note.startswith(f"Explanations from member {runs.model[best]}") and "the ensemble's best member)" in note
    assert "no network of its own" in note
    store.replace_run_rows(best, {"attributions": pd.DataFrame()})  # the best one loses its maps
    second = max((m for m in members if m != best), key=lambda r: runs.accuracy[r])
    source, note = q.explanation_source(db, run_id)
    assert source == second and "best member with explanations" in note
    for member in members:
        store.replace_run_rows(member, {"attributions": pd.DataFrame()})
    source, note = q.explanation_source(db, run_id)
    assert source is None and "none of its members has Grad-CAM maps" in note


def test_imported_and_pooled_runs_say_where_explanations_come_from(app_db, writable_app_db):
    db = str(writable_app_db)
    source, note = q.explanation_source(db, app_db["imported_run"])
    assert source is None and "imported from a file" in note
    source, note = q.explanation_source(db, app_db["pooled_run"])  # logreg folds: no Grad-CAM
    assert source is None and "none of the 4 folds" in note
    folds = app_db["fold_runs"]
    store = open_store(db)
    tested = {f: set(store.predictions(f, "test").track_id) for f in folds}
    maps = lambda ids: pd.DataFrame({"track_id": list(ids), "method": "gradcam", "target": "low",  # noqa: E731
                                     "n_bands": 1, "n_frames": 1, "values": [[1.0]] * len(ids)})
    store.replace_run_rows(folds[1], {"attributions": maps(tested[folds[1]])})
    track = sorted(tested[folds[1]])[0]
    source, note = q.explanation_source(db, app_db["pooled_run"], track)
    assert source == folds[1] and "the fold that tested this track" in note
    other = sorted(tested[folds[0]])[0]
    source, note = q.explanation_source(db, app_db["pooled_run"], other)
    assert source == folds[1] and "saw the track while it was trained" in note
    assert q.explanation_source(db, "no-such-run")[0] is None


def test_a_run_not_analysed_or_without_conv_layers_says_why(app_db, writable_app_db):
    db = str(writable_app_db)
    store = open_store(db)
    source, note = q.explanation_source(db, app_db["fold_runs"][0])  # logreg
    assert source is None and "handcrafted features" in note
    runs = q.runs(db).set_index("run_id")
    run_id = next(r for r in app_db["ten_runs"] if runs.representation[r] == "logmel")
    store.replace_run_rows(run_id, {"attributions": pd.DataFrame()})  # its (fake) analysis undone
    source, note = q.explanation_source(db, run_id)
    assert source is None and "has not been analysed" in note and f"analyze --run {run_id}" in note
    store.replace_run_rows(run_id, {"embeddings": pd.DataFrame({"track_id": ["x"], "kind": "penultimate",
                                                                "vector": [[1.0]]})})
    source, note = q.explanation_source(db, run_id)
    assert source is None and "no convolutional layer" in note


# -- the other reads -----------------------------------------------------------------------


def test_faithfulness_and_variant_reads_return_what_was_stored(app_db, writable_app_db):
    db = str(writable_app_db)
    run_id = app_db["ten_runs"][0]
    faith = pd.DataFrame([dict(method="gradcam", mask=mask, k=k, measure=measure, value=0.5 + i / 100,
                               ci_low=0.4, ci_high=0.6, n=30)
                          for i, (mask, k, measure) in enumerate(
                              (m, k, s) for m in ("random", "explained") for k in (0.5, 0.1, 0.25)
                              for s in ("keep_rate", "drop_out", "drop_in"))])
    variants = pd.DataFrame({"track_id": ["t1", "t1", "t2"], "variant": ["percussive", "harmonic", "no_bass"],
                             "probs": [[0.1, 0.9], [0.7, 0.3], [0.5, 0.5]]})
    open_store(db).replace_run_rows(run_id, {"faithfulness": faith, "variant_predictions": variants})
    frame = q.faithfulness(db, run_id)
    assert list(frame.columns) == ["method", "mask", "k", "measure", "value", "ci_low", "ci_high", "n"]
    assert len(frame) == 18
    assert list(zip(frame.measure, frame.k, frame["mask"]))[:3] == [
        ("drop_in", 0.1, "explained"), ("drop_in", 0.1, "random"), ("drop_in", 0.25, "explained")]
    back = frame.merge(faith, on=["method", "mask", "k", "measure"])
    assert np.allclose(back.value_x, back.value_y) and (back.n_x == 30).all()
    got = q.variant_predictions(db, run_id, "t1")
    assert list(got.variant) == ["harmonic", "percussive"]
    assert np.allclose(got.probs.iloc[1], [0.1, 0.9]) and got.probs.iloc[1].dtype == np.float32
    assert q.variant_predictions(db, run_id, "t3").empty and q.faithfulness(db, "no-such-run").empty


def test_reads_of_a_database_without_the_new_tables_are_empty(writable_app_db, app_db):
    db = str(writable_app_db)
    with open_store(db).write() as con:
        for table in ("faithfulness", "variant_predictions", "contrast_neighbours"):
            con.execute(f"DROP TABLE {table}")
    run_id = app_db["ten_runs"][0]
    assert q.faithfulness(db, run_id).empty and q.variant_predictions(db, run_id, "t").empty
    frame = q.contrast_neighbours(db, run_id, "t")
    assert frame.empty and "explained" in frame.columns
