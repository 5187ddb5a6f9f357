"""Embeddings: per-track means, deterministic 2-D maps, cosine neighbours (exact, and
approximate above a size threshold), `analyze --methods`, and the confusion analysis built
on stored predictions and neighbours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from genre_core.analysis import embeddings
from genre_core.analysis.embeddings import (
    KnnGraph, WindowVectors, confusion_analysis, fit_map, knn_graph, nearest_neighbours, project, track_means,
)


def _clusters(n_per: int = 12, dim: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, dim)) * 3
    return np.concatenate([c + rng.standard_normal((n_per, dim)) for c in centres])


def test_track_means_average_each_tracks_windows():
    values = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]])
    out = track_means(np.array([0, 0, 2]), values, n_tracks=3)
    np.testing.assert_allclose(out, [[2, 1], [0, 0], [5, 5]])  # track 1 had no window


@pytest.mark.parametrize("method", ["tsne", "umap", "pca"])
def test_projections_are_deterministic_under_a_seed(method):
    vectors = _clusters()
    first, again = project(vectors, method=method, seed=0), project(vectors, method=method, seed=0)
    assert first.shape == (36, 2) and first.dtype == np.float32 and np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    if method == "umap":
        # t-SNE's PCA start and exact optimisation leave nothing to a seed; UMAP's random
        # negative sampling gives another layout under another seed.
        assert not np.allclose(first, project(vectors, method=method, seed=1))


@pytest.mark.parametrize("method", ["tsne", "umap", "pca"])
def test_projections_keep_clusters_apart(method):
    xy = project(_clusters(), method=method, seed=0)
    centres = np.stack([xy[i * 12 : (i + 1) * 12].mean(axis=0) for i in range(3)])
    spread = max(np.linalg.norm(xy[i * 12 : (i + 1) * 12] - centres[i], axis=1).max()
                 for i in range(3))
    gaps = [np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > spread


@pytest.mark.parametrize("method", ["tsne", "pca"])
def test_new_points_land_beside_the_map_point_they_belong_to(method):
    # segments (issue 29): a track's windows scatter around its mean; placed with the fitted
    # map's transform they sit by their track's point, far closer than the tracks to each other
    rng = np.random.default_rng(1)
    tracks = _clusters()  # (36, 8)
    windows = np.repeat(tracks, 5, axis=0) + 0.2 * rng.standard_normal((180, 8))
    xy, place = fit_map(tracks, method=method, seed=0)
    np.testing.assert_array_equal(xy, project(tracks, method=method, seed=0))  # the same map
    placed = place(windows)
    assert placed.shape == (180, 2) and placed.dtype == np.float32
    own = np.linalg.norm(placed - np.repeat(xy, 5, axis=0), axis=1)
    between = np.linalg.norm(xy[:, None] - xy[None], axis=2)[np.triu_indices(36, 1)]
    assert np.median(own) < 0.25 * np.median(between)


def test_umap_maps_say_they_cannot_place_new_points():
    assert fit_map(_clusters(), method="umap", seed=0)[1] is None


class _Windows:  # the three fields of a WindowSet that WindowVectors reads
    sr = 10
    track_ids = ["test_a", "train_b"]
    index = np.array([[0, s] for s in range(0, 60, 15)] + [[1, s] for s in range(0, 150, 15)])  # hop 1.5 s


def test_window_vectors_keep_every_window_of_chosen_tracks_and_a_stride_of_the_rest():
    keep = WindowVectors({"test_a"}, hop_s=1.5, stride=4)
    vectors = np.arange(14, dtype=np.float32)[:, None] * np.ones((1, 3))  # (14, 3): row i holds i
    keep.add(_Windows(), np.arange(0, 9), vectors[:9])  # batches may split a track
    keep.add(_Windows(), np.arange(9, 14), vectors[9:])
    rows, kept = keep.frame()
    assert list(rows.track_id) == ["test_a"] * 4 + ["train_b"] * 3
    np.testing.assert_allclose(rows.start_s, [0, 1.5, 3, 4.5, 0, 6, 12])  # the 1st, 5th, 9th of b
    np.testing.assert_array_equal(kept[:, 0], [0, 1, 2, 3, 4, 8, 12])


def test_umap_leaves_torchs_thread_count_alone():
    # numba's OpenMP layer resets the shared OpenMP thread count; Grad-CAM after a UMAP map
    # ran 10x slower, oversubscribed, until project() restored it.
    torch.set_num_threads(1)
    project(_clusters(), method="umap", seed=0)
    assert torch.get_num_threads() == 1


def test_a_handful_of_tracks_still_gets_a_map():
    assert project(np.eye(3), method="umap").shape == (3, 2)
    with pytest.raises(ValueError, match="unknown projection"):
        project(np.eye(5), method="mds")


def test_umap_reads_a_graph_handed_in_instead_of_searching():
    vectors = _clusters()
    graph = knn_graph(vectors, 14)
    np.testing.assert_array_equal(project(vectors, method="umap", knn=graph), project(vectors, method="umap"))
    # A graph it reads: scrambled neighbours give another map.
    rng = np.random.default_rng(0)
    scrambled = KnnGraph(rng.permutation(graph.indices), graph.distances, exact=True)
    assert not np.allclose(project(vectors, method="umap", knn=scrambled), project(vectors, method="umap"))


def test_nearest_neighbours_by_cosine_exclude_self_and_are_ordered():
    vectors = np.array([[1.0, 0.0], [2.0, 0.2], [0.0, 3.0], [-1.0, 0.0]])  # lengths differ
    out = nearest_neighbours(["a", "b", "c", "d"], vectors, k=10)
    assert list(out.columns) == ["track_id", "rank", "neighbour_id", "distance"]
    assert len(out) == 4 * 3  # k capped at the 3 other tracks
    assert not (out.track_id == out.neighbour_id).any()
    of_a = out[out.track_id == "a"]
    assert list(of_a.neighbour_id) == ["b", "c", "d"] and list(of_a["rank"]) == [1, 2, 3]
    cos_ab = 2.0 / np.hypot(2.0, 0.2)
    np.testing.assert_allclose(of_a.distance, [1 - cos_ab, 1.0, 2.0], atol=1e-12)
    for _, group in out.groupby("track_id"):
        assert group.distance.is_monotonic_increasing


def test_nearest_neighbours_chunks_give_the_same_answer():
    vectors = _clusters()
    ids = [f"t{i:02d}" for i in range(len(vectors))]
    whole = nearest_neighbours(ids, vectors, k=5)
    pd.testing.assert_frame_equal(whole, nearest_neighbours(ids, vectors, k=5, chunk=7))
    assert (whole.groupby("track_id").size() == 5).all()


def _many_clusters(n: int = 3000, dim: int = 32, n_clusters: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)) * 2
    return centres[rng.integers(0, n_clusters, size=n)] + rng.standard_normal((n, dim))


@pytest.fixture(scope="module")
def exact_and_approximate():
    vectors = _many_clusters()
    # threshold=1000 forces pynndescent on 3,000 vectors; the first call compiles (numba).
    return vectors, knn_graph(vectors, 10), knn_graph(vectors, 10, seed=0, threshold=1000)


@pytest.mark.slow
def test_approximate_neighbours_agree_with_exact_ones(exact_and_approximate):
    vectors, exact, approx = exact_and_approximate
    assert exact.exact and not approx.exact
    assert approx.indices.shape == exact.indices.shape == (3000, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx.indices, exact.indices)])
    assert recall >= 0.9
    assert not (approx.indices == np.arange(3000)[:, None]).any()  # never yourself
    assert (np.diff(approx.distances, axis=1) >= 0).all()  # nearest first
    x = embeddings.unit_rows(vectors)
    cosine = 1.0 - np.einsum("nd,nkd->nk", x, x[approx.indices])  # (N, k) recomputed
    np.testing.assert_allclose(approx.distances, cosine, atol=1e-5)


@pytest.mark.slow
def test_approximate_neighbours_are_seeded_and_feed_the_table(exact_and_approximate):
    vectors, _, approx = exact_and_approximate
    again = knn_graph(vectors, 10, seed=0, threshold=1000)
    np.testing.assert_array_equal(again.indices, approx.indices)
    ids = [f"t{i:04d}" for i in range(len(vectors))]
    table = nearest_neighbours(ids, vectors, k=5, knn=approx)
    assert len(table) == 3000 * 5
    np.testing.assert_array_equal(table.distance.to_numpy().reshape(3000, 5), approx.distances[:, :5])


def test_a_narrow_graph_refuses_a_wider_question():
    graph = knn_graph(_clusters(), 3)
    assert graph.exact and graph.indices.shape == (36, 3)
    with pytest.raises(ValueError, match="holds 3 neighbours"):
        graph.first(5)
    pd.testing.assert_frame_equal(  # prefixes of a wider exact graph are the narrower answer
        nearest_neighbours(list("abcdefghijklmnopqrstuvwxyz0123456789"), _clusters(), k=3,
                           knn=knn_graph(_clusters(), 10)),
        nearest_neighbours(list("abcdefghijklmnopqrstuvwxyz0123456789"), _clusters(), k=3))


def test_methods_flag_parses_and_refuses_unknown_maps(capsys):
    from training.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["analyze", "--run", "r"]).methods == ("tsne", "umap")
    assert parse(["analyze", "--run", "r", "--methods", "pca, umap,pca"]).methods == ("pca", "umap")
    assert parse(["analyze", "--run", "r", "--methods", "none"]).methods == ()
    with pytest.raises(SystemExit) as stop:
        parse(["analyze", "--run", "r", "--methods", "umap,mds"])
    assert stop.value.code == 2 and "unknown projection mds" in capsys.readouterr().err


def test_analyze_draws_the_methods_asked_and_says_what_it_skipped(toy_store, monkeypatch, capsys):
    from genre_core.models.musicnn import net as musicnn
    from genre_core.models.musicnn.weights import MusicnnWeightsMissing
    from genre_core.train.fit import TrainConfig, fit
    from training.cli import main

    def missing(*args, **kwargs):
        raise MusicnnWeightsMissing("not installed (simulated)")

    monkeypatch.setattr(musicnn, "load_tagger", missing)
    monkeypatch.setattr(embeddings, "TSNE_MAX_POINTS", 10)  # the toy's 24 tracks are "too many"
    run_id = fit(toy_store, TrainConfig.tiny_preset("toy", "logreg"), progress=False).run_id
    code = main(["analyze", "--run", run_id, "--methods", "pca,tsne", "--db", str(toy_store.path)])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 0 and "1 projections" in line and "t-SNE skipped: 24 tracks > 10" in line
    maps = toy_store.query("SELECT method, count(*) AS n FROM projections WHERE run_id = ? "
                           "GROUP BY method", [run_id])
    assert maps.to_dict("records") == [{"method": "pca", "n": 24}]


CLASSES = ["blues", "jazz", "rock"]


def _predictions() -> pd.DataFrame:
    rows = [  # track, true, predicted, probs (blues, jazz, rock)
        ("b1", "blues", "blues", [0.8, 0.1, 0.1]),
        ("b2", "blues", "jazz", [0.3, 0.6, 0.1]),
        ("b3", "blues", "jazz", [0.1, 0.9, 0.0]),
        ("b4", "blues", "rock", [0.2, 0.1, 0.7]),
        ("j1", "jazz", "jazz", [0.1, 0.8, 0.1]),
        ("j2", "jazz", "blues", [0.5, 0.4, 0.1]),
        ("v1", "blues", "rock", [0.0, 0.0, 1.0]),  # a val track: not analysed
    ]
    frame = pd.DataFrame(rows, columns=["track_id", "label", "predicted", "probs"])
    return frame.assign(split=["test"] * 6 + ["val"])


def _neighbours() -> pd.DataFrame:
    near = {"b2": ["j1", "x9", "b1"], "b3": ["j1", "j2"], "b4": ["b1"], "j2": ["b1", "b2"]}
    return pd.DataFrame([(t, r + 1, n, 0.1 * (r + 1)) for t, ns in near.items()
                         for r, n in enumerate(ns)],
                        columns=["track_id", "rank", "neighbour_id", "distance"])


def test_confusion_analysis_on_a_hand_made_frame():
    out = confusion_analysis(_predictions(), _neighbours(), CLASSES, labels={"x9": "jazz"})
    assert list(out[["label", "predicted"]].itertuples(index=False, name=None)) == [
        ("blues", "jazz"), ("blues", "rock"), ("jazz", "blues")]  # most frequent first
    bj = out.iloc[0]
    assert bj["count"] == 2 and bj.share == pytest.approx(2 / 4)
    assert bj.track_ids == ["b3", "b2"] and bj.probs == pytest.approx([0.9, 0.6])
    assert bj.neighbour_ids == [["j1", "j2"], ["j1", "x9", "b1"]]
    assert bj.neighbour_labels == [["jazz", "jazz"], ["jazz", "jazz", "blues"]]
    assert bj.neighbours_predicted_share == pytest.approx(4 / 5)
    jb = out.iloc[2]
    assert jb.share == pytest.approx(1 / 2) and jb.neighbour_labels == [["blues", "blues"]]
    assert out.iloc[1].track_ids == ["b4"]  # the val track v1 is left out


def test_confusion_analysis_of_a_perfect_run_is_empty():
    perfect = _predictions().assign(predicted=lambda f: f.label)
    out = confusion_analysis(perfect, _neighbours(), CLASSES)
    assert out.empty and "neighbours_predicted_share" in out.columns
