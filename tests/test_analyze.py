"""analyze() end to end on the toy corpus: every analysis table gets its rows, a second
analysis replaces the first, and baselines go through without Grad-CAM."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from genre_core.analysis.analyze import analyze
from genre_core.train.config import TrainConfig
from genre_core.train.fit import fit

TABLES = ("embeddings", "projections", "neighbours", "attributions", "band_importance", "taggrams",
          "contrast_neighbours", "failure_slices", "concept_scores", "concept_pushes", "segment_projections")


# Converted musicnn weights go to a scratch dir, never the checkout's data/.
pytestmark = pytest.mark.usefixtures("scratch_cache_dir")


def _rows(store, run_id):
    return {t: store.query(f"SELECT * FROM {t} WHERE run_id = ?", [run_id]) for t in TABLES}


@pytest.fixture(scope="module")
def cnn_run(toy_store):
    config = TrainConfig.tiny_preset("toy", "cnn", epochs=8, batch_size=4, lr=3e-3, seed=1)
    return fit(toy_store, config, progress=False).run_id


@pytest.fixture(scope="module")
def first_analysis(toy_store, cnn_run):
    summary = analyze(toy_store, cnn_run, progress=False, device="cpu")
    return summary, _rows(toy_store, cnn_run)


def _test_predictions(store, run_id):
    preds = store.predictions(run_id)
    return preds[preds.split == "test"]


def test_embeddings_maps_and_neighbours_cover_every_usable_track(toy_store, first_analysis):
    summary, rows = first_analysis
    usable = set(toy_store.tracks("toy").track_id)
    emb = rows["embeddings"]
    assert set(emb.track_id) == usable and len(emb) == 24 and set(emb.kind) == {"penultimate"}
    assert {len(v) for v in emb.vector} == {32}  # the tiny cnn's embedding width
    proj = rows["projections"]
    assert proj.groupby("method").track_id.apply(set).to_dict() == {"tsne": usable, "umap": usable}
    near = rows["neighbours"]
    assert len(near) == 24 * 10 and not (near.track_id == near.neighbour_id).any()
    assert summary.n_embeddings == 24 and summary.n_projections == 2


def test_gradcam_maps_for_the_predicted_and_the_true_genre(toy_store, cnn_run, first_analysis):
    summary, rows = first_analysis
    attr = rows["attributions"]
    # the test tracks, and the closest correct tracks a mistake is compared with (issue 24)
    every = toy_store.predictions(cnn_run)
    shown = set(_test_predictions(toy_store, cnn_run).track_id) | set(rows["contrast_neighbours"].neighbour_id)
    preds = every[every.track_id.isin(shown)].drop_duplicates("track_id")
    expected = {(r.track_id, r.predicted) for r in preds.itertuples()}
    expected |= {(r.track_id, r.label) for r in preds.itertuples()}
    assert set(zip(attr.track_id, attr.target)) == expected and len(attr) == len(expected)
    assert summary.n_gradcam == len(expected) and set(attr.method) == {"gradcam"}
    for row in attr.itertuples():
        values = np.asarray(row.values)
        assert len(values) == row.n_bands * row.n_frames and row.n_bands == 64
        assert values.min() >= 0 and values.max() == pytest.approx(1.0)
    # each map's raw strength is kept, so a track's two maps can be drawn on one scale
    assert (attr.scale > 0).all()
    pairs = attr.groupby("track_id").scale.agg(["min", "max", "size"])
    assert (pairs[pairs["size"] == 2]["min"] < pairs[pairs["size"] == 2]["max"]).any()


def test_band_importance_for_each_genre_in_test(toy_store, cnn_run, first_analysis):
    summary, rows = first_analysis
    bands = rows["band_importance"].set_index(["genre", "method"])["values"]
    genres = set(_test_predictions(toy_store, cnn_run).label)
    assert set(bands.index) == {(g, m) for g in genres for m in ("gradcam", "occlusion")}
    assert summary.n_band_profiles == len(genres)
    assert all(len(bands[g, "gradcam"]) == 128 and len(bands[g, "occlusion"]) == 16 for g in genres)
    if {"low", "high"} <= genres:  # the toy genres live in low and high mel bands
        assert np.argmax(bands["low", "gradcam"]) < np.argmax(bands["high", "gradcam"])


def test_taggrams_of_the_test_tracks(toy_store, cnn_run, first_analysis):
    summary, rows = first_analysis
    if summary.n_taggrams == 0:
        assert "no taggrams" in summary.line()
        pytest.skip("musicnn weights not installed")
    tags = rows["taggrams"]
    explained = set(_test_predictions(toy_store, cnn_run).track_id) | set(rows["contrast_neighbours"].neighbour_id)
    assert set(tags.track_id) == explained
    for row in tags.itertuples():
        assert len(row.tag_names) == 50 and row.n_frames == 1  # a 4-s track: one 3-s window
        assert len(row.values) == 50 and 0 <= min(row.values) <= max(row.values) <= 1


def test_failure_slices_of_the_test_tracks(toy_store, cnn_run, first_analysis):
    summary, rows = first_analysis
    slices, tests = rows["failure_slices"], set(_test_predictions(toy_store, cnn_run).track_id)
    assert any(note.startswith(("failure slices:", "no failure slices")) for note in summary.notes)
    for row in slices.itertuples():
        assert set(row.track_ids) <= tests and len(row.track_ids) == row.n >= 3
        assert row.n_tested >= len(slices) and row.run_tracks == len(tests)


def test_summary_line(first_analysis):
    line = first_analysis[0].line()
    assert re.match(r"analyzed run \S+: 24 embeddings, 2 projections, \d+ Grad-CAM maps, "
                    r"\d genre band profiles, \d+ taggrams, \d+ segments in \d+\.\d s", line), line


def test_segments_every_window_of_predicted_tracks_beside_their_track(toy_store, cnn_run, first_analysis):
    # issue 29: each test / validation track keeps every window it has a window prediction for;
    # training tracks every SEGMENT_STRIDE-th (the toy's 4-s tracks have one 3-s window each)
    summary, rows = first_analysis
    seg = rows["segment_projections"]
    assert set(seg.method) == {"tsne"}  # UMAP cannot place new points: a note says so
    assert "no segments on the umap map" in summary.line()
    windows = toy_store.query("SELECT track_id, start_s FROM segment_predictions WHERE run_id = ?", [cnn_run])
    predicted = set(windows.track_id)
    mine = seg[seg.track_id.isin(predicted)]
    assert sorted(zip(mine.track_id, mine.start_s)) == sorted(zip(windows.track_id, windows.start_s))
    assert set(seg.track_id) == set(toy_store.tracks("toy").track_id)  # training tracks too
    assert summary.n_segments == len(seg)
    tracks = rows["projections"][rows["projections"].method == "tsne"].set_index("track_id")
    own = np.hypot(seg.x.to_numpy() - tracks.x.loc[seg.track_id].to_numpy(),
                   seg.y.to_numpy() - tracks.y.loc[seg.track_id].to_numpy())
    # the toy's tracks of a genre embed almost alike, so a window lands among its genre's points,
    # by its own track rather than on it: nearer to it than to most others
    to_all = np.hypot(seg.x.to_numpy()[:, None] - tracks.x.to_numpy()[None],
                      seg.y.to_numpy()[:, None] - tracks.y.to_numpy()[None])  # (W, N)
    assert np.mean(own < np.median(to_all, axis=1)) >= 0.9


def test_reanalysing_replaces_rows_instead_of_adding(toy_store, cnn_run, first_analysis):
    before = first_analysis[1]
    analyze(toy_store, cnn_run, progress=False, device="cpu")
    again = _rows(toy_store, cnn_run)
    assert {t: len(f) for t, f in again.items()} == {t: len(f) for t, f in before.items()}
    analyze(toy_store, cnn_run, progress=False, device="cpu", methods=("tsne",), taggrams=False)
    after = _rows(toy_store, cnn_run)
    assert set(after["projections"].method) == {"tsne"} and len(after["projections"]) == 24
    assert len(after["embeddings"]) == 24
    assert len(after["attributions"]) == len(before["attributions"])
    assert len(after["taggrams"]) == len(before["taggrams"])  # not recomputed, so kept


def test_a_baseline_run_is_analysed_without_gradcam(toy_store, monkeypatch):
    from genre_core.models.musicnn import net as musicnn
    from genre_core.models.musicnn.weights import MusicnnWeightsMissing

    def missing(*args, **kwargs):
        raise MusicnnWeightsMissing("not installed (simulated)")

    monkeypatch.setattr(musicnn, "load_tagger", missing)
    run_id = fit(toy_store, TrainConfig.tiny_preset("toy", "logreg"), progress=False).run_id
    summary = analyze(toy_store, run_id, progress=False, device="cpu", methods=("tsne",))
    rows = _rows(toy_store, run_id)
    assert len(rows["embeddings"]) == 24 and set(rows["embeddings"].kind) == {"handcrafted"}
    assert len(rows["projections"]) == 24 and len(rows["neighbours"]) == 24 * 10
    assert rows["attributions"].empty and rows["band_importance"].empty and rows["taggrams"].empty
    assert "no Grad-CAM" in summary.line() and "no taggrams" in summary.line()


def test_an_unknown_split_is_refused(toy_store, cnn_run):
    with pytest.raises(ValueError, match="no 'train' predictions"):
        analyze(toy_store, cnn_run, progress=False, device="cpu", gradcam_split="train")


def test_a_musicnn_run_stores_both_the_penultimate_and_the_pooled_embedding(toy_store, tmp_path, monkeypatch):
    from genre_core.analysis.analyze import analyze
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit

    monkeypatch.setenv("GENRELENS_CACHE_DIR", str(tmp_path))
    run = fit(toy_store, TrainConfig.tiny_preset("toy", "musicnn_probe", epochs=1), progress=False)
    analyze(toy_store, run.run_id, progress=False, taggrams=False, methods=("tsne",))
    dims = toy_store.query("SELECT kind, len(vector) AS d, count(*) AS n FROM embeddings "
                           "WHERE run_id = ? GROUP BY ALL ORDER BY kind", [run.run_id])
    assert dims.kind.tolist() == ["penultimate", "pooled"]
    assert dims.d.tolist() == [200, 753] and dims.n.nunique() == 1


def test_gradcam_limit_keeps_misclassified_tracks_first():
    from genre_core.analysis.analyze import AnalyzeSummary, _limit_explained

    frame = pd.DataFrame({"track_id": [f"t{i}" for i in range(10)],
                          "label": ["a"] * 10,
                          "predicted": ["b", "a", "a", "b", "a", "a", "a", "a", "a", "a"]})
    summary = AnalyzeSummary("r")
    kept = _limit_explained(frame, 4, seed=0, summary=summary)
    assert len(kept) == 4
    assert {"t0", "t3"} <= set(kept.track_id)  # both misclassified tracks survive the cut
    assert "4 of 10" in summary.line()
    assert _limit_explained(frame, None, seed=0, summary=summary).equals(frame)
    assert _limit_explained(frame, 4, seed=0, summary=AnalyzeSummary("r")).equals(kept)  # seeded


def test_concept_scores_are_stored_for_every_concept_and_genre_with_their_test(toy_store, cnn_run, first_analysis):
    summary, rows = first_analysis
    scores = rows["concept_scores"]
    genres = set(toy_store.tracks("toy").label)
    assert len(scores) and set(scores.genre) == genres and (scores.n_tested == len(scores)).all()
    assert scores.p.between(0, 1).all() and (scores.significant == (scores.q < scores.alpha)).all()
    assert set(rows["concept_pushes"].concept) <= set(scores[scores.significant].concept)  # said only when significant
    assert "concepts (TCAV)" in summary.line()
