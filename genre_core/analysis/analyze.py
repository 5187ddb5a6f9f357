"""analyze(store, run_id): what the app shows about a finished run beyond its predictions.

Embeddings of every usable track of the run's dataset, their t-SNE / UMAP maps and nearest
neighbours, the run's windows placed on those maps beside their track (segment_projections:
every window of the test and validation tracks, every embeddings.SEGMENT_STRIDE-th of the
training tracks, from the embedding pass itself; t-SNE and PCA maps only), Grad-CAM maps of the explained split's tracks (for the predicted and the true
genre) and of each mistake's closest correct tracks (contrast.py), per-genre band importance
(Grad-CAM and occlusion), and musicnn taggrams. All of it
is written in one transaction at the end, replacing the run's earlier analysis rows, so a
killed or repeated analysis never leaves half or double results.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from genre_core import paths
from genre_core.analysis.embeddings import (
    DEFAULT_METHODS, UMAP_NEIGHBOURS, SpreadEmbeddings, WindowVectors, fit_map, knn_graph,
    nearest_neighbours, skip_reason, track_embeddings,
)
from genre_core.engine import EngineOptions
from genre_core.analysis.contrast import contrast_tables
from genre_core.analysis.faithfulness import faithfulness_tables
from genre_core.analysis.variants import variant_tables
from genre_core.analysis.explain import (
    band_occlusion, band_profile, normalise, stored_map, track_features, track_map,
)
from genre_core.analysis.concepts import HeadInputTap, concept_tables
from genre_core.analysis.slices import slice_tables
from genre_core.train.inference import LoadedRun, load_run
from genre_core.store import Store
from genre_core.features.cache import ShardCache

TAGGER = "MSD_musicnn"  # its 50 MSD tags include most genre words
TAGGRAM_CHUNK = 16  # 3-s windows per tagger forward: bounds memory on long tracks
# Grad-CAM, occlusion and taggrams cost seconds per track on a CPU: above this many explained
# tracks a sample is taken (every misclassified track first), so analysis of a 100,000-track
# corpus finishes; embeddings, maps and neighbours still cover every track.
GRADCAM_LIMIT = 300


@dataclass
class AnalyzeSummary:
    run_id: str
    n_embeddings: int = 0
    n_projections: int = 0
    n_gradcam: int = 0
    n_band_profiles: int = 0  # genres with a band-importance profile
    n_taggrams: int = 0
    n_segments: int = 0  # windows placed on the maps (each map that can place new points)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what was skipped, and why

    def line(self) -> str:
        text = (f"analyzed run {self.run_id}: {self.n_embeddings} embeddings, "
                f"{self.n_projections} projections, {self.n_gradcam} Grad-CAM maps, "
                f"{self.n_band_profiles} genre band profiles, {self.n_taggrams} taggrams, "
                f"{self.n_segments} segments "
                f"in {self.seconds:.1f} s")
        return text + "".join(f"; {note.rstrip('.')}" for note in self.notes)


def analyze(store: Store, run_id: str, *, progress: bool = True, gradcam_split: str = "test",
            taggrams: bool = True, methods: Sequence[str] = DEFAULT_METHODS,
            device: str = "auto", k: int = 10, gradcam_limit: int | None = GRADCAM_LIMIT,
            engine: EngineOptions | None = None) -> AnalyzeSummary:
    """Compute and store every analysis of a complete run; returns counts for the summary.

    `gradcam_split`: the split (with stored predictions: "test" or "val") whose tracks get
    Grad-CAM maps, band importance and taggrams. `taggrams` needs the musicnn wheel (skipped
    with a note without it). `k`: neighbours kept per track. `methods`: the 2-D maps to
    draw (see embeddings.METHODS); one skipped at this size gets a note instead. `engine`:
    embed the tracks of a torch run in local worker processes or Ray tasks (CPU) instead of
    in this process.
    """
    started = time.perf_counter()
    if reason := store.run(run_id)["config"].get("no_model"):  # imported, pooled, ensembled, a pretraining
        raise ValueError(f"run {run_id} cannot be analysed: {reason}")
    loaded = load_run(store, run_id, device)
    summary = AnalyzeSummary(run_id)
    tracks = _usable_tracks(store, loaded, summary)
    predictions = store.predictions(run_id)
    explained = predictions[predictions.split == gradcam_split]
    if explained.empty:
        splits = ", ".join(sorted(predictions.split.unique())) or "none"
        raise ValueError(f"run {run_id} has no {gradcam_split!r} predictions (has: {splits})")
    explained = explained[explained.track_id.isin(tracks.track_id)]
    cache = ShardCache(paths.cache_dir(store.path))
    spread = (SpreadEmbeddings(str(store.path), run_id, engine)
              if engine is not None and loaded.model is not None else None)
    # The embedding pass forwards every window of every track: concepts take their
    # activations from it instead of forwarding the training tracks again.
    tap = HeadInputTap() if spread is None and getattr(loaded.model, "head", None) is not None else None
    results = _embedding_tables(loaded, tracks, cache, methods, k, progress, summary, spread, tap,
                                predicted=set(predictions.track_id[predictions.split.isin(("test", "val"))]))
    # Each mistake's closest correct tracks (true and predicted genre) are explained too.
    contrast, explained = contrast_tables(results["embeddings"], predictions, explained, split=gradcam_split,
                                          notes=summary.notes)
    results.update(contrast)
    explained = _limit_explained(explained, gradcam_limit, loaded.config.seed, summary)
    results.update(_gradcam_tables(loaded, tracks, explained, cache, progress, summary))
    results.update(faithfulness_tables(loaded, tracks, explained, cache, results["attributions"],
                                       progress=progress, summary=summary))  # maps vs random masks
    results.update(variant_tables(loaded, tracks, explained, cache, progress=progress, notes=summary.notes))
    if taggrams:
        table = _taggram_table(loaded, tracks, explained, cache, progress, summary)
        if table is not None:
            results["taggrams"] = table
    results.update(slice_tables(store, run_id, taggrams=results.get("taggrams"), cache=cache, progress=progress,
                                notes=summary.notes))
    results.update(concept_tables(loaded, tracks, predictions, cache, progress=progress, notes=summary.notes,
                                  activations=tap.activations if tap is not None else None))
    store.replace_run_rows(run_id, results)
    summary.seconds = time.perf_counter() - started
    return summary


def _limit_explained(explained: pd.DataFrame, limit: int | None, seed: int,
                     summary: AnalyzeSummary) -> pd.DataFrame:
    """At most `limit` tracks to explain, the contrast tracks included: misclassified ones
    first (where a person looks), then their closest correct tracks (`contrast_rank` from
    contrast.py: every mistake's nearest on both sides, then the second nearest...), then
    correct ones in a seeded random order, so every genre tends to be represented."""
    if limit is None or len(explained) <= limit:
        return explained
    shuffled = explained.iloc[np.random.default_rng(seed).permutation(len(explained))]
    rank = shuffled.get("contrast_rank", pd.Series(np.nan, index=shuffled.index)).fillna(np.inf)
    priority = np.where(shuffled.predicted != shuffled.label, 0.0, rank.to_numpy())
    ranked = shuffled.iloc[np.argsort(priority, kind="stable")]  # misclassified (0) first
    summary.notes.append(f"Grad-CAM and taggrams for {limit} of {len(explained)} tracks "
                         f"(misclassified first, then their closest correct tracks; "
                         f"--gradcam-limit to change)")
    return ranked.head(limit)


def _usable_tracks(store: Store, loaded: LoadedRun, summary: AnalyzeSummary) -> pd.DataFrame:
    tracks = store.tracks(loaded.config.dataset)
    # A dataset re-ingested with a new genre has tracks this run cannot place.
    known = tracks[tracks.label.isin(loaded.classes)]
    if len(known) < len(tracks):
        summary.notes.append(f"{len(tracks) - len(known)} tracks of genres unknown to the run "
                             "left out")
    return known.reset_index(drop=True)


def _embedding_tables(loaded: LoadedRun, tracks: pd.DataFrame, cache: ShardCache,
                      methods: Sequence[str], k: int, progress: bool,
                      summary: AnalyzeSummary, spread: SpreadEmbeddings | None = None,
                      tap: HeadInputTap | None = None, predicted: set[str] = frozenset()) -> dict[str, pd.DataFrame]:
    """`predicted`: the tracks with window predictions, whose every window is kept for the
    segment map (the rest every SEGMENT_STRIDE-th)."""
    extra: dict[str, np.ndarray] = {}
    keep = WindowVectors(predicted, loaded.config.eval_hop_s) if spread is None and loaded.model is not None \
        else None
    ids, vectors, kind = track_embeddings(loaded, tracks, cache, progress=progress, extra=extra, spread=spread,
                                          tap=tap, keep=keep)
    if kind != "penultimate":
        summary.notes.append(f"maps and neighbours use the {kind} features (no network embedding)")
    if keep is None:
        summary.notes.append("no segment map (" + ("windows embedded in workers" if spread is not None
                                                   else "no network embedding") + ")")
    return map_tables(ids, {kind: vectors, **extra}, kind, methods=methods, k=k, seed=loaded.config.seed,
                      progress=progress, summary=summary, segments=keep.frame() if keep is not None else None)


def map_tables(ids: Sequence[str], vectors_by_kind: dict[str, np.ndarray], kind: str,
               *, methods: Sequence[str], k: int, seed: int, progress: bool,
               summary: AnalyzeSummary,
               segments: tuple[pd.DataFrame, np.ndarray] | None = None) -> dict[str, pd.DataFrame]:
    """Embeddings, 2-D maps and neighbours of tracks `ids` from stored vectors: maps and
    neighbours use `vectors_by_kind[kind]` (N, D); every kind is stored. Also serves runs
    whose embeddings were imported rather than computed.

    `segments`: windows (DataFrame(track_id, start_s), (W, D) vectors of the same kind),
    placed on each map that can place new points (segment_projections; see
    embeddings.fit_map)."""
    vectors = vectors_by_kind[kind]
    # One neighbour search serves UMAP and the neighbours table (approximate above
    # embeddings.ANN_THRESHOLD tracks).
    graph = knn_graph(vectors, max(k, UMAP_NEIGHBOURS - 1), seed=seed)
    if not graph.exact:
        summary.notes.append(f"neighbours approximate (pynndescent, {len(ids):,} tracks)")
    maps, placed = [], []
    for method in tqdm(methods, desc="projections", unit="map", disable=not progress):
        if (reason := skip_reason(method, len(ids))) is not None:
            summary.notes.append(reason)
            continue
        xy, place = fit_map(vectors, method=method, seed=seed, knn=graph)  # (N, 2)
        maps.append(pd.DataFrame({"method": method, "track_id": ids, "x": xy[:, 0], "y": xy[:, 1]}))
        if segments is not None:
            placed.append(_placed_segments(method, place, *segments, summary))
    summary.n_embeddings, summary.n_projections = len(ids), len(maps)
    summary.n_segments = max((len(p) for p in placed), default=0)
    return {
        "segment_projections": pd.concat(placed, ignore_index=True) if placed else pd.DataFrame(),
        "embeddings": pd.concat(
            [pd.DataFrame({"track_id": ids, "kind": name, "vector": [v.tolist() for v in table]})
             for name, table in vectors_by_kind.items()], ignore_index=True),
        "projections": pd.concat(maps, ignore_index=True) if maps else pd.DataFrame(),
        "neighbours": nearest_neighbours(ids, vectors, k=k, knn=graph),
    }


def _placed_segments(method: str, place, rows: pd.DataFrame, vectors: np.ndarray,
                     summary: AnalyzeSummary) -> pd.DataFrame:
    """Rows (method, track_id, start_s, x, y) of windows `rows` placed by the map's `place`
    (None: a note instead)."""
    if place is None:
        summary.notes.append(f"no segments on the {method} map (it cannot place new points)")
        return pd.DataFrame()
    xy = place(vectors) if len(rows) else np.zeros((0, 2))  # (W, 2)
    return rows.assign(method=method, x=xy[:, 0], y=xy[:, 1])[["method", "track_id", "start_s", "x", "y"]]


def _gradcam_tables(loaded: LoadedRun, tracks: pd.DataFrame, explained: pd.DataFrame,
                    cache: ShardCache, progress: bool,
                    summary: AnalyzeSummary) -> dict[str, pd.DataFrame]:
    """Grad-CAM maps (predicted and true genre) and band importance of explained tracks."""
    model = loaded.model
    if model is None or getattr(model, "gradcam_layer", None) is None:
        why = "sklearn baseline" if model is None else f"{loaded.config.model} has no conv layer"
        summary.notes.append(f"no Grad-CAM ({why})")
        return {"attributions": pd.DataFrame(), "band_importance": pd.DataFrame()}
    by_id = tracks.set_index("track_id")
    column = {genre: i for i, genre in enumerate(loaded.classes)}
    maps, profiles, drops = [], defaultdict(list), defaultdict(list)
    for row in tqdm(explained.itertuples(), total=len(explained), desc="Grad-CAM",
                    unit="track", disable=not progress):
        track = by_id.loc[row.track_id]
        feats = track_features(loaded, cache.load(track.path, track.sha1, loaded.sr))
        for target in dict.fromkeys([row.predicted, row.label]):  # once when they agree
            cam = track_map(model, feats, column[target])  # (F, T_total)
            maps.append(stored_map(row.track_id, target, cam, feats.frame_rate))
            if target == row.label and not getattr(row, "contrast_only", False):
                profiles[target].append(band_profile(cam))
        if not getattr(row, "contrast_only", False):  # band importance: the explained split only
            drops[row.label].append(band_occlusion(model, feats.x, column[row.label]))
    bands = [dict(genre=g, method="gradcam",
                  values=normalise(np.mean(profiles[g], axis=0)).tolist()) for g in sorted(profiles)]
    bands += [dict(genre=g, method="occlusion", values=np.mean(drops[g], axis=0).tolist())
              for g in sorted(drops)]
    summary.n_gradcam, summary.n_band_profiles = len(maps), len(profiles)
    return {"attributions": pd.DataFrame(maps), "band_importance": pd.DataFrame(bands)}


def _taggram_table(loaded: LoadedRun, tracks: pd.DataFrame, explained: pd.DataFrame,
                   cache: ShardCache, progress: bool,
                   summary: AnalyzeSummary) -> pd.DataFrame | None:
    """MSD musicnn tag probabilities per 3-s window of each explained track: `values` is
    (n_frames windows, 50 tags) flattened row-major. None when the wheel is missing."""
    from genre_core.features.spectral import MUSICNN_SR, MusicnnMel
    from genre_core.models.musicnn.net import load_tagger
    from genre_core.models.musicnn.weights import MusicnnWeightsMissing, tag_names

    try:
        tagger = load_tagger(TAGGER).to(loaded.device)
    except MusicnnWeightsMissing:
        summary.notes.append("no taggrams (musicnn weights not installed: "
                             "pip install --no-deps musicnn==0.1.0)")
        return None
    mel, names = MusicnnMel().to(loaded.device), list(tag_names(TAGGER))
    by_id = tracks.set_index("track_id")
    rows = []
    for track_id in tqdm(explained.track_id, desc="taggrams", unit="track", disable=not progress):
        track = by_id.loc[track_id]
        y = np.array(cache.load(track.path, track.sha1, MUSICNN_SR), dtype=np.float32)  # (N,)
        probs = _track_taggram(tagger, mel(torch.from_numpy(y).to(loaded.device)))  # (W, 50)
        rows.append(dict(track_id=track_id, tag_names=names, n_frames=probs.shape[0],
                         values=probs.ravel().tolist()))
    summary.n_taggrams = len(rows)
    return pd.DataFrame(rows)


@torch.no_grad()
def _track_taggram(tagger: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """musicnn mel (1, 1, 96, T) -> (W, 50) tag probabilities of its 3-s windows; a track
    shorter than one window is padded with silence (0 after musicnn's log) to one."""
    from genre_core.models.musicnn.net import WINDOW_FRAMES, taggram

    if x.shape[-1] < WINDOW_FRAMES:
        x = F.pad(x, (0, WINDOW_FRAMES - x.shape[-1]))  # (1, 1, 96, 187)
    n_windows = x.shape[-1] // WINDOW_FRAMES
    chunk = TAGGRAM_CHUNK * WINDOW_FRAMES
    parts = [taggram(tagger, x[..., start : min(start + chunk, n_windows * WINDOW_FRAMES)])[0]
             for start in range(0, n_windows * WINDOW_FRAMES, chunk)]  # each (w, 50)
    return torch.cat(parts).float().cpu().numpy()
