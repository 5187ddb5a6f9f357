"""Where a model puts each track: penultimate embeddings, 2-D maps of them (t-SNE, UMAP,
PCA), nearest neighbours, and the confusion analysis that reads those neighbours.

A track's embedding is the mean of its windows' embeddings (the run's eval hop), so it
summarises the whole track the way the track-level prediction does. Maps and neighbours
use the direction of a vector, not its length (rows scaled to unit length; cosine
distance), because ReLU embeddings of loud and quiet versions of a sound differ mostly
in length.

Nothing here is O(N^2) above ANN_THRESHOLD tracks: neighbours are then approximate
(pynndescent) and searched once for both UMAP and the neighbours table, t-SNE is openTSNE's
O(N) FFT method, and past TSNE_MAX_POINTS it is skipped.
"""

from __future__ import annotations

import contextlib

import warnings
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from genre_core.engine import EngineOptions, chunked, map_chunks
from genre_core.features.cache import ShardCache
from genre_core.features.windows import build_windows, handcrafted_windows
from genre_core.train.inference import batch_size

NEIGHBOUR_COLUMNS = ["track_id", "rank", "neighbour_id", "distance"]
METHODS = ("tsne", "umap", "pca")  # every 2-D map project() draws
DEFAULT_METHODS = ("tsne", "umap")  # what `analyze` draws unless told (the Map page's two)
# Above this many tracks neighbours come from pynndescent: exact search is O(N^2 D) (~1 s
# at 5,000 x 200-d, ~3 min at 100,000); below it exact search is as fast and has no error.
ANN_THRESHOLD = 5_000
UMAP_NEIGHBOURS = 15  # UMAP's n_neighbors, counting each point as its own first neighbour
# openTSNE's FFT t-SNE is O(N), but its 750 iterations on one core take minutes per 100,000
# points: a catalogue past this would stall `analyze` for an hour or more, so it is skipped
# there, with a note.
TSNE_MAX_POINTS = 250_000
# Windows of tracks without window predictions (training tracks) kept for the segment map:
# every 4th (one per 6 s at the 1.5-s eval hop), so the map shows where they sit at a quarter
# of the rows; tracks with window predictions keep every window (see WindowVectors).
SEGMENT_STRIDE = 4
CONFUSION_COLUMNS = [
    "label", "predicted", "count", "share", "track_ids", "probs", "neighbour_ids",
    "neighbour_labels", "neighbours_predicted_share",
]


class TrackMeans:
    """Per-track means of per-window rows, added a batch at a time: memory O(tracks x D)
    whatever the number of windows (FMA-full's ~20 million 3-s windows would hold ~10 GB of
    128-d vectors if kept until the end)."""

    def __init__(self, n_tracks: int):
        self.counts = np.zeros(n_tracks, dtype=np.int64)
        self.sums: np.ndarray | None = None  # (n_tracks, D) float64, made by the first batch

    def add(self, track_pos: np.ndarray, values: np.ndarray) -> None:
        """Rows (B, D) of windows owned by tracks at positions (B,)."""
        if self.sums is None:
            self.sums = np.zeros((len(self.counts), values.shape[1]), dtype=np.float64)
        np.add.at(self.sums, track_pos, values)
        np.add.at(self.counts, track_pos, 1)

    def means(self) -> np.ndarray:
        """(n_tracks, D) float32; a track without windows gets zeros."""
        return (self.sums / np.maximum(self.counts, 1)[:, None]).astype(np.float32)


def track_means(track_pos: np.ndarray, values: np.ndarray, n_tracks: int) -> np.ndarray:
    """Per-window rows (W, D) with owner positions (W,) -> (n_tracks, D) per-track means."""
    means = TrackMeans(n_tracks)
    means.add(track_pos, values)
    return means.means()


class WindowVectors:
    """Per-window embeddings kept from the embedding pass for the segment map: every window of
    the tracks in `full` (analyze: the test and validation tracks, which have window
    predictions and among which the explained tracks and their closest correct neighbours
    are), every `stride`-th window of the others (the first, the stride+1-th, ...). Memory:
    the kept windows x D float32, e.g. ~25 MB for 50,000 windows of 128-d."""

    def __init__(self, full: set[str], hop_s: float, stride: int = SEGMENT_STRIDE):
        self.full, self.hop_s, self.stride = set(full), hop_s, stride  # hop_s: the pass's window hop
        self.track_ids: list[str] = []
        self.starts: list[np.ndarray] = []  # seconds from each track's start, per batch
        self.vectors: list[np.ndarray] = []  # (b, D) per batch

    def add(self, windows, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Window rows (B,) of `windows` (a WindowSet) and their embeddings (B, D)."""
        starts = windows.index[rows, 1] / windows.sr  # (B,) seconds
        ids = [windows.track_ids[t] for t in windows.index[rows, 0]]
        ordinal = np.rint(starts / self.hop_s).astype(np.int64)  # (B,) the window's place in its track
        keep = np.array([t in self.full or o % self.stride == 0 for t, o in zip(ids, ordinal)], dtype=bool)
        self.track_ids += [t for t, k in zip(ids, keep) if k]
        self.starts.append(starts[keep])
        self.vectors.append(np.asarray(vectors, dtype=np.float32)[keep])

    def frame(self) -> tuple[pd.DataFrame, np.ndarray]:
        """(DataFrame(track_id, start_s), (W, D) float32 vectors) of the kept windows."""
        rows = pd.DataFrame({"track_id": self.track_ids,
                             "start_s": np.concatenate(self.starts) if self.starts else np.zeros(0)})
        vectors = np.concatenate(self.vectors) if self.vectors else np.zeros((0, 0), np.float32)
        return rows, vectors


def track_embeddings(loaded_run, tracks: pd.DataFrame, cache: ShardCache,
                     *, progress: bool = True, extra: dict | None = None,
                     spread: "SpreadEmbeddings | None" = None, tap=None,
                     keep: WindowVectors | None = None) -> tuple[list[str], np.ndarray, str]:
    """Embed every track (columns track_id, path, sha1, label; labels among the run's
    classes) -> (track ids, (N, D) float32 vectors, kind).

    `extra`, when given, receives the model's other per-track vectors by kind (musicnn's
    "pooled" 753-d), computed in the same pass.

    Torch runs: the penultimate layer (kind "penultimate"). sklearn baselines have none,
    so their handcrafted table as the classifier sees it (standardised) stands in
    (kind "handcrafted").

    `tap` (torch runs embedded in this process): an object whose `attached(model, windows)`
    context watches this pass over every window in order (concepts.HeadInputTap), so other
    analyses share its forward passes.

    `keep` (torch runs embedded in this process): receives the penultimate embedding of the
    windows it chooses (see WindowVectors), from this same pass.
    """
    if loaded_run.estimator is not None:
        return _handcrafted_embeddings(loaded_run, tracks, cache, progress)
    if spread is not None:
        return _spread_embeddings(tracks, spread, progress, extra)
    windows = build_windows(tracks, loaded_run.classes, cache, sr=loaded_run.sr,
                            window_s=loaded_run.window_s, hop_s=loaded_run.config.eval_hop_s,
                            desc="load tracks", progress=progress)
    running: dict[str, TrackMeans] = {}
    batch = batch_size(loaded_run.device)
    with tap.attached(loaded_run.model, windows) if tap is not None else contextlib.nullcontext():
        for start in tqdm(range(0, len(windows), batch), desc="embeddings", unit="batch",
                          disable=not progress):
            rows = np.arange(start, min(start + batch, len(windows)))
            audio, _, owners = windows.batch(rows)
            for kind, vectors in loaded_run.predict_with_embeddings(audio)[1].items():  # (B, D)
                running.setdefault(kind, TrackMeans(len(windows.track_ids))).add(owners, vectors)
                if keep is not None and kind == "penultimate":
                    keep.add(windows, rows, vectors)
    means = {kind: acc.means() for kind, acc in running.items()}
    if extra is not None:
        extra.update({kind: v for kind, v in means.items() if kind != "penultimate"})
    return windows.track_ids, means["penultimate"], "penultimate"


@dataclass(frozen=True)
class SpreadEmbeddings:
    """Embed tracks in worker processes or Ray tasks (genre_core.engine): each loads the run's
    model once from the database (read-only) and returns per-track vectors; the driver keeps
    writing alone. Every path and the database must be visible to the workers."""

    db_path: str
    run_id: str
    engine: EngineOptions
    tracks_per_task: int = 64


def _spread_embeddings(tracks: pd.DataFrame, spread: SpreadEmbeddings, progress: bool,
                       extra: dict | None) -> tuple[list[str], np.ndarray, str]:
    items = list(tracks[["track_id", "path", "sha1", "label"]].itertuples(index=False, name=None))
    by_kind: dict[str, dict[str, np.ndarray]] = {}
    with tqdm(total=len(items), desc="embeddings", unit="track", disable=not progress) as bar:
        device = "auto" if spread.engine.gpus_per_task else "cpu"  # a task given a GPU uses it
        for _, rows in map_chunks(embed_tracks, chunked(items, spread.tracks_per_task),
                                  args=(spread.db_path, spread.run_id, device), options=spread.engine):
            for row in rows:
                by_kind.setdefault(row["kind"], {})[row["track_id"]] = np.asarray(row["vector"], np.float32)
            bar.update(len(rows) // max(1, len({r["kind"] for r in rows})))
    ids = [t for t, *_ in items]
    means = {kind: np.stack([vectors[t] for t in ids]) for kind, vectors in by_kind.items()}
    if extra is not None:
        extra.update({kind: v for kind, v in means.items() if kind != "penultimate"})
    return ids, means["penultimate"], "penultimate"


def embed_tracks(items: list[tuple], db_path: str, run_id: str, device: str = "cpu") -> list[dict]:
    """Worker: per-track mean embeddings (every kind the model has) of (track_id, path, sha1,
    label) items, as plain rows. One torch thread: the workers are the parallelism; `device`
    "auto" on a task given a GPU (untested here: no GPU in CI)."""
    from genre_core import paths
    from genre_core.train.inference import worker_run

    torch.set_num_threads(1)
    loaded = worker_run(db_path, run_id, device)
    tracks = pd.DataFrame(items, columns=["track_id", "path", "sha1", "label"])
    extra: dict[str, np.ndarray] = {}
    ids, vectors, kind = track_embeddings(loaded, tracks, ShardCache(paths.cache_dir(db_path)), progress=False, extra=extra)
    return [{"track_id": t, "kind": k, "vector": v.tolist()}
            for k, table in {kind: vectors, **extra}.items() for t, v in zip(ids, table)]


def _handcrafted_embeddings(loaded_run, tracks, cache, progress):
    # The hop training used for baselines (one row per window), so the cached tables hit.
    windows = build_windows(tracks, loaded_run.classes, cache, sr=loaded_run.sr,
                            window_s=loaded_run.window_s, hop_s=loaded_run.window_s,
                            desc="load tracks", progress=progress)
    from genre_core.models import get_spec

    kind = get_spec(loaded_run.config.model).input_kind
    table = handcrafted_windows(windows, list(tracks.sha1), cache, progress=progress, kind=kind)  # (W, F)
    estimator = loaded_run.estimator
    if hasattr(estimator, "steps") and len(estimator.steps) > 1:
        table = estimator[:-1].transform(table)  # Hz and BPM columns would swamp the rest
    vectors = track_means(windows.index[:, 0], np.asarray(table), len(windows.track_ids))
    return windows.track_ids, vectors, "handcrafted"


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """(N, D) -> (N, D) float64 rows of length 1 (all-zero rows stay zero)."""
    x = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    return x / np.where(norms > 0, norms, 1.0)


def _pca2(x: np.ndarray) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """First two principal coordinates (N, 2) float32 (zero-padded when there are fewer),
    and the same axes applied to new rows."""
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    axes = np.pad(vt[:2].T, ((0, 0), (0, 2 - min(2, len(vt)))))  # (D, 2)

    def place(new: np.ndarray) -> np.ndarray:
        return ((unit_rows(new) - mean) @ axes).astype(np.float32)  # (M, 2)

    return ((x - mean) @ axes).astype(np.float32), place


@dataclass(frozen=True)
class KnnGraph:
    """Each row's nearest other rows by cosine distance, nearest first: computed once,
    then shared by the UMAP map and the neighbours table."""

    indices: np.ndarray  # (N, k) int64 row numbers, never the row itself
    distances: np.ndarray  # (N, k) float64 cosine distances (1 - cos, in [0, 2])
    exact: bool  # False: pynndescent's approximate answer

    def first(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest ((N, k) indices, (N, k) distances); k <= the graph's width."""
        if k > self.indices.shape[1]:
            raise ValueError(f"graph holds {self.indices.shape[1]} neighbours, {k} asked")
        return self.indices[:, :k], self.distances[:, :k]


def knn_graph(vectors: np.ndarray, k: int, *, seed: int = 0, threshold: int = ANN_THRESHOLD,
              chunk: int = 1024) -> KnnGraph:
    """(N, D) embeddings -> the k (capped at N - 1) nearest other rows of each by cosine
    distance. Exact (ties to the earlier row; memory chunk x N) for N <= `threshold`,
    pynndescent above it (memory O(N k), time empirically ~O(N^1.14 D)); the same seed
    gives the same graph either way."""
    x = unit_rows(vectors)
    k = min(k, len(x) - 1)
    if k < 1:
        empty = np.zeros((len(x), 0))
        return KnnGraph(empty.astype(np.int64), empty, exact=True)
    if len(x) <= threshold:
        indices, distances = _knn(x, k, chunk)
        return KnnGraph(indices, distances, exact=True)
    return _ann(x, k, seed)


def _ann(x: np.ndarray, k: int, seed: int) -> KnnGraph:
    from pynndescent import NNDescent  # numba compile: only when a big corpus needs it

    # Euclidean on unit rows ranks like cosine, and is the distance UMAP is handed.
    # n_jobs=1: numba's parallel descent would make the graph (and the maps) unrepeatable.
    index = NNDescent(x.astype(np.float32), metric="euclidean", n_neighbors=k + 1,
                      random_state=seed, n_jobs=1, low_memory=True)
    indices, l2 = index.neighbor_graph  # (N, k + 1) each, nearest first, usually self first
    # Drop each row's own entry wherever it sits (duplicates may come before it); a row
    # whose search missed itself drops its farthest instead. A stable sort keeps the order.
    own = indices == np.arange(len(x))[:, None]  # (N, k + 1)
    keep = np.argsort(own, axis=1, kind="stable")[:, :k]  # (N, k)
    indices = np.take_along_axis(indices, keep, axis=1).astype(np.int64)
    l2 = np.take_along_axis(l2, keep, axis=1).astype(np.float64)
    return KnnGraph(indices, np.clip(l2 * l2 / 2.0, 0.0, 2.0), exact=False)


def skip_reason(method: str, n: int) -> str | None:
    """Why `method` is not drawn for n tracks (a note for the summary), or None."""
    if method == "tsne" and n > TSNE_MAX_POINTS:
        return (f"t-SNE skipped: {n:,} tracks > {TSNE_MAX_POINTS:,} would take hours "
                "(UMAP and PCA maps scale; choose them with --methods)")
    return None


def project(vectors: np.ndarray, *, method: str = "tsne", seed: int = 0,
            knn: KnnGraph | None = None) -> np.ndarray:
    """(N, D) embeddings -> (N, 2) float32 map coordinates (see `fit_map`)."""
    return fit_map(vectors, method=method, seed=seed, knn=knn)[0]


def fit_map(vectors: np.ndarray, *, method: str = "tsne", seed: int = 0,
            knn: KnnGraph | None = None) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray] | None]:
    """(N, D) embeddings -> (N, 2) float32 map coordinates; the same seed gives the same map.

    "tsne": openTSNE (FFT-accelerated above 10,000 points, its own Annoy neighbour search
    above 1,000), PCA-initialised, perplexity min(30, (N - 1) / 3) (it must stay below N).
    "umap": n_neighbors min(15, N - 1), single-threaded, since numba's parallel layout is
    not reproducible; it reuses `knn` (see `knn_graph`) when given. "pca": the first two
    principal coordinates. Fewer than 4 tracks are too few for t-SNE or UMAP: they get PCA.

    Returns the map and a function placing new rows (M, D) -> (M, 2) in it (segments beside
    their track): openTSNE's `transform` (each new point optimised against the fixed map from
    its nearest map points), PCA's fitted axes; None for UMAP, which is fit from neighbours
    handed in without a search index, so umap-learn cannot place new points.
    """
    if method not in METHODS:
        raise ValueError(f"unknown projection {method!r} (choose from {', '.join(METHODS)})")
    x = unit_rows(vectors)
    n = len(x)
    if n < 4 or method == "pca":
        return _pca2(x)
    if method == "tsne":
        return _tsne(x, seed)
    import umap  # slow import (numba): only when a UMAP map is wanted

    k = min(UMAP_NEIGHBOURS, n - 1)  # UMAP counts each point as its own first neighbour
    # Neighbours handed in (the exact ones below ANN_THRESHOLD, the answer UMAP's own
    # search gives there), so UMAP never searches again and numba never compiles its search.
    if knn is None or knn.indices.shape[1] < k - 1:
        knn = knn_graph(x, k - 1, seed=seed)
    indices, cosine = knn.first(k - 1)
    indices = np.concatenate([np.arange(n)[:, None], indices], axis=1)  # (N, k), self first
    dists = np.sqrt(2.0 * np.concatenate([np.zeros((n, 1)), cosine], axis=1))  # unit-row L2
    reducer = umap.UMAP(n_components=2, n_neighbors=k, random_state=seed, n_jobs=1,
                        precomputed_knn=(indices, dists.astype(np.float32)))
    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            # Only umap's .transform of new points needs its search index; we never call it.
            warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
            return np.asarray(reducer.fit_transform(x), dtype=np.float32), None
    finally:
        # numba's OpenMP layer resets the process-wide OpenMP thread count, which torch
        # shares: left alone, every later forward pass runs oversubscribed (10x slower).
        torch.set_num_threads(threads)


def _tsne(x: np.ndarray, seed: int) -> np.ndarray:
    # openTSNE (BSD): approximate affinities and FFT-interpolated gradients, O(N) per
    # iteration; sklearn's t-SNE searched neighbours exactly (O(N^2 D) on 200-d vectors).
    from openTSNE import TSNE

    # n_jobs=1: one seed, one map (and the 2 cores are shared with the rest of analyze).
    tsne = TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), initialization="pca",
                n_jobs=1, random_state=seed)
    embedding = tsne.fit(x)

    def place(new: np.ndarray) -> np.ndarray:
        if not len(new):
            return np.zeros((0, 2), np.float32)
        # perplexity capped like the fit's: openTSNE needs it below the map's size / 3
        return np.asarray(embedding.transform(unit_rows(new), perplexity=min(5.0, (len(x) - 1) / 3)),
                          dtype=np.float32)  # (M, 2)

    return np.asarray(embedding, dtype=np.float32), place


def _knn(x: np.ndarray, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows (N, D) -> ((N, k) indices, (N, k) cosine distances) of each row's k nearest
    other rows, nearest first; ties go to the earlier row. Memory: chunk x N distances."""
    indices, distances = [], []
    for start in range(0, len(x), chunk):
        dist = np.clip(1.0 - x[start : start + chunk] @ x.T, 0.0, 2.0)  # (c, N)
        rows = np.arange(len(dist))
        dist[rows, start + rows] = np.inf  # never yourself
        candidates = np.argpartition(dist, k - 1, axis=1)[:, :k]  # (c, k), unordered
        cand_dist = np.take_along_axis(dist, candidates, axis=1)  # (c, k)
        order = np.lexsort((candidates, cand_dist), axis=1)  # (c, k): by distance, then row
        indices.append(np.take_along_axis(candidates, order, axis=1))
        distances.append(np.take_along_axis(cand_dist, order, axis=1))
    return np.concatenate(indices), np.concatenate(distances)


def nearest_neighbours(track_ids: Sequence[str], vectors: np.ndarray, *, k: int = 10,
                       chunk: int = 1024, knn: KnnGraph | None = None) -> pd.DataFrame:
    """The k nearest other tracks of each track by cosine distance (1 - cos, in [0, 2])
    -> DataFrame(track_id, rank (1 = nearest), neighbour_id, distance). A track is never
    its own neighbour; ties go to the earlier track. `knn`: a graph from `knn_graph` (at
    least k wide) to read instead of searching; without it, `knn_graph` searches (exact up
    to ANN_THRESHOLD tracks, memory chunk x N; approximate above)."""
    ids = np.asarray(list(track_ids), dtype=object)
    k = min(k, len(ids) - 1)
    if k < 1:
        return pd.DataFrame(columns=NEIGHBOUR_COLUMNS)
    if knn is None:
        knn = knn_graph(vectors, k, chunk=chunk)
    nearest, distance = knn.first(k)  # (N, k) each
    return pd.DataFrame({
        "track_id": np.repeat(ids, k),
        "rank": np.tile(np.arange(1, k + 1), len(ids)),
        "neighbour_id": ids[nearest.ravel()],
        "distance": distance.ravel(),
    })


def confusion_analysis(predictions: pd.DataFrame, neighbours: pd.DataFrame,
                       classes: Sequence[str], *, labels: Mapping[str, str] | None = None,
                       split: str | None = "test", top: int = 3,
                       n_neighbours: int = 5) -> pd.DataFrame:
    """Failure analysis of stored rows: one row per (label, predicted) pair with
    label != predicted, most frequent first.

    predictions: rows of the `predictions` table (track_id, split, label, predicted, probs
    in `classes` order); only `split` is analysed (None: all rows). neighbours: rows of the
    `neighbours` table. labels: track_id -> genre for every track that may appear as a
    neighbour (e.g. the dataset's tracks); default: the labels in `predictions`.

    Columns: label, predicted, count, share (of that label's tracks), track_ids / probs
    (the `top` most confidently wrong tracks and their predicted-genre probability),
    neighbour_ids / neighbour_labels (each one's `n_neighbours` nearest tracks), and
    neighbours_predicted_share (of all the pair's tracks' neighbours, the share labelled
    with the predicted genre: high means the track sits among that genre, a hint of a
    mislabel or of genuinely shared style).
    """
    label_of = dict(zip(predictions.track_id, predictions.label))
    label_of.update(dict(labels or {}))
    rows = predictions
    if split is not None and "split" in rows.columns:
        rows = rows[rows.split == split]
    column = {genre: i for i, genre in enumerate(classes)}
    rows = rows.assign(prob=[float(p[column[g]]) for p, g in zip(rows.probs, rows.predicted)])
    support = rows.label.value_counts()
    near = (neighbours.sort_values(["track_id", "rank"]).groupby("track_id").neighbour_id
            .apply(lambda s: list(s)[:n_neighbours]).to_dict())
    out = []
    wrong = rows[rows.label != rows.predicted]
    for (label, predicted), group in wrong.groupby(["label", "predicted"], sort=True):
        worst = group.sort_values(["prob", "track_id"], ascending=[False, True]).head(top)
        worst_near = [near.get(t, []) for t in worst.track_id]
        pooled = [label_of.get(n) for t in group.track_id for n in near.get(t, [])]
        out.append(dict(
            label=label, predicted=predicted, count=len(group),
            share=len(group) / int(support[label]),
            track_ids=list(worst.track_id), probs=[float(p) for p in worst.prob],
            neighbour_ids=worst_near,
            neighbour_labels=[[label_of.get(n) for n in ids] for ids in worst_near],
            neighbours_predicted_share=(float(np.mean([g == predicted for g in pooled]))
                                        if pooled else float("nan")),
        ))
    frame = pd.DataFrame(out, columns=CONFUSION_COLUMNS)
    return frame.sort_values(["count", "label", "predicted"], ascending=[False, True, True],
                             ignore_index=True)
