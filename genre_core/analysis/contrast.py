"""The tracks a musicologist compares a mistake with: for every misclassified track of the
explained split, its closest correctly classified tracks of its TRUE genre and of its
PREDICTED genre, in the run's embedding space (the space of the `neighbours` table: unit
rows, cosine distance 1 - cos in [0, 2]).

Candidates are the run's test and validation tracks it classified correctly (the only tracks
with a prediction to call correct). The search is exact and per genre: each mistake is
compared with the correct tracks of two genres only, in chunks, so memory is chunk x (one
genre's candidates) and time ~ mistakes x 2 x candidates / genres x D (FMA-full's ~5,000 test
mistakes against ~20,000 correct tracks in 16 genres: ~12 million distances).

`contrast_tables` also adds those tracks to the set `analyze` explains (Grad-CAM, taggrams),
marked so that `_limit_explained` ranks them right after the mistakes (see its docstring for
how --gradcam-limit is shared) and band importance keeps describing the explained split only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from genre_core.analysis.embeddings import unit_rows

CONTRAST_K = 3  # closest correct tracks kept per side (true / predicted genre) of a mistake
CANDIDATE_SPLITS = ("test", "val")  # splits whose correct predictions may serve as contrast
CONTRAST_COLUMNS = ["track_id", "side", "rank", "neighbour_id", "distance"]
SIDES = ("true", "predicted")


def closest_correct(ids: Sequence[str], vectors: np.ndarray, predictions: pd.DataFrame, *,
                    split: str = "test", k: int = CONTRAST_K, chunk: int = 1024) -> pd.DataFrame:
    """For each misclassified `split` track among `ids`, the k closest correctly classified
    test/validation tracks of its true genre (side "true") and of its predicted genre (side
    "predicted") -> DataFrame(track_id, side, rank (1 = closest), neighbour_id, distance
    (cosine, 1 - cos)). Fewer than k rows on a side when the genre has fewer correct tracks;
    ties go to the smaller track id.

    ids, vectors: the tracks' embeddings (N,) and (N, D); predictions: the run's rows
    (track_id, split, label, predicted), every split.
    """
    index = {t: i for i, t in enumerate(ids)}
    rows = predictions[predictions.track_id.isin(index)]
    wrong = rows[(rows.split == split) & (rows.label != rows.predicted)].sort_values("track_id")
    right = rows[rows.split.isin(CANDIDATE_SPLITS) & (rows.label == rows.predicted)]
    right = right.drop_duplicates("track_id").sort_values("track_id")  # sorted: ties to the smaller id
    x = np.asarray(vectors)
    parts = []
    for genre, candidates in right.groupby("label", sort=True):
        c = unit_rows(x[[index[t] for t in candidates.track_id]])  # (C, D)
        for side, column in zip(SIDES, ("label", "predicted")):
            queries = wrong[wrong[column] == genre]
            if queries.empty:
                continue
            q = unit_rows(x[[index[t] for t in queries.track_id]])  # (Q, D)
            nearest, distance = _nearest(q, c, min(k, len(c)), chunk)  # (Q, k') each
            parts.append(pd.DataFrame({
                "track_id": np.repeat(queries.track_id.to_numpy(), nearest.shape[1]),
                "side": side,
                "rank": np.tile(np.arange(1, nearest.shape[1] + 1), len(queries)),
                "neighbour_id": candidates.track_id.to_numpy()[nearest.ravel()],
                "distance": distance.ravel(),
            }))
    if not parts:
        return pd.DataFrame(columns=CONTRAST_COLUMNS)
    frame = pd.concat(parts, ignore_index=True)
    return frame.sort_values(["track_id", "side", "rank"], ignore_index=True)[CONTRAST_COLUMNS]


def _nearest(q: np.ndarray, c: np.ndarray, k: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows q (Q, D), c (C, D) -> ((Q, k) indices into c, (Q, k) cosine distances),
    nearest first, ties to the smaller index. Memory: chunk x C distances."""
    indices, distances = [], []
    for start in range(0, len(q), chunk):
        dist = np.clip(1.0 - q[start : start + chunk] @ c.T, 0.0, 2.0)  # (c, C)
        candidates = np.argpartition(dist, k - 1, axis=1)[:, :k]  # (c, k), unordered
        cand_dist = np.take_along_axis(dist, candidates, axis=1)  # (c, k)
        order = np.lexsort((candidates, cand_dist), axis=1)  # by distance, then index
        indices.append(np.take_along_axis(candidates, order, axis=1))
        distances.append(np.take_along_axis(cand_dist, order, axis=1))
    return np.concatenate(indices), np.concatenate(distances)


def with_contrast(explained: pd.DataFrame, contrast: pd.DataFrame,
                  predictions: pd.DataFrame) -> pd.DataFrame:
    """The explained rows plus the contrast tracks' prediction rows, with two columns:
    `contrast_rank` (the best rank at which the track is a contrast neighbour; NaN for
    none), which `_limit_explained` ranks by, and `contrast_only` (True for rows added here,
    not of the explained split: their maps are stored but they stay out of band importance)."""
    best = contrast.groupby("neighbour_id")["rank"].min()
    extra = predictions[predictions.track_id.isin(best.index) & ~predictions.track_id.isin(explained.track_id)]
    extra = extra[extra.split.isin(CANDIDATE_SPLITS)].drop_duplicates("track_id")
    out = pd.concat([explained.assign(contrast_only=False), extra.assign(contrast_only=True)],
                    ignore_index=True)
    return out.assign(contrast_rank=out.track_id.map(best).astype(float))


def contrast_tables(embeddings: pd.DataFrame, predictions: pd.DataFrame, explained: pd.DataFrame,
                    *, split: str = "test", k: int = CONTRAST_K, notes: list[str] | None = None,
                    ) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    """analyze's hook: ({"contrast_neighbours": closest_correct(...)}, explained + contrast
    tracks, see `with_contrast`). `embeddings`: analyze's embeddings table (track_id, kind,
    vector); the first kind in it is the one maps and neighbours use (analyze.map_tables
    stores that kind first). `explained`: the usable rows of the explained split. `notes`
    receives a line for the summary when tracks were added."""
    if embeddings.empty:
        return {"contrast_neighbours": pd.DataFrame(columns=CONTRAST_COLUMNS)}, explained
    space = embeddings[embeddings.kind == embeddings.kind.iloc[0]]
    wanted = predictions.split.isin(CANDIDATE_SPLITS) | (predictions.split == split)
    space = space[space.track_id.isin(predictions.track_id[wanted])]  # skip the training tracks
    vectors = np.array(space.vector.tolist(), dtype=np.float32) if len(space) else np.zeros((0, 1))
    contrast = closest_correct(list(space.track_id), vectors, predictions, split=split, k=k)
    usable = contrast[contrast.track_id.isin(explained.track_id)]  # mistakes analyze may explain
    extended = with_contrast(explained, usable, predictions)
    added = int(extended.contrast_only.sum())
    if added and notes is not None:
        notes.append(f"{added} closest correct tracks of {usable.track_id.nunique()} mistakes "
                     "explained too")
    return {"contrast_neighbours": contrast}, extended
