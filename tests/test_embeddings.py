"""Embeddings: per-track means, deterministic 2-D maps, cosine neighbours, and the
confusion analysis built on stored predictions and neighbours."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from genre_core.analysis.embeddings import confusion_analysis, nearest_neighbours, project, track_means


def _clusters(n_per: int = 12, dim: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((3, dim)) * 3
    return np.concatenate([c + rng.standard_normal((n_per, dim)) for c in centres])


def test_track_means_average_each_tracks_windows():
    values = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]])
    out = track_means(np.array([0, 0, 2]), values, n_tracks=3)
    np.testing.assert_allclose(out, [[2, 1], [0, 0], [5, 5]])  # track 1 had no window


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_projections_are_deterministic_under_a_seed(method):
    vectors = _clusters()
    first, again = project(vectors, method, seed=0), project(vectors, method, seed=0)
    assert first.shape == (36, 2) and first.dtype == np.float32 and np.isfinite(first).all()
    np.testing.assert_array_equal(first, again)
    if method == "umap":
        # t-SNE's PCA start and exact optimisation leave nothing to a seed; UMAP's random
        # negative sampling gives another layout under another seed.
        assert not np.allclose(first, project(vectors, method, seed=1))


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_projections_keep_clusters_apart(method):
    xy = project(_clusters(), method, seed=0)
    centres = np.stack([xy[i * 12 : (i + 1) * 12].mean(axis=0) for i in range(3)])
    spread = max(np.linalg.norm(xy[i * 12 : (i + 1) * 12] - centres[i], axis=1).max()
                 for i in range(3))
    gaps = [np.linalg.norm(centres[i] - centres[j]) for i in range(3) for j in range(i + 1, 3)]
    assert min(gaps) > spread


def test_umap_leaves_torchs_thread_count_alone():
    # numba's OpenMP layer resets the shared OpenMP thread count; Grad-CAM after a UMAP map
    # ran 10x slower, oversubscribed, until project() restored it.
    torch.set_num_threads(1)
    project(_clusters(), "umap", seed=0)
    assert torch.get_num_threads() == 1


def test_a_handful_of_tracks_still_gets_a_map():
    assert project(np.eye(3), "umap").shape == (3, 2)
    with pytest.raises(ValueError, match="unknown projection"):
        project(np.eye(5), "pca")


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
