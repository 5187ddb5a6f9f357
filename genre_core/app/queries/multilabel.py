"""Reads about multi-label runs (`train --task multilabel`): their headline metrics, each
track's true and predicted genre sets, and the genre co-occurrence matrix. A database made
before multi-label runs existed has no multilabel_predictions table: every read here then
returns an empty frame."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from genre_core.app.queries._db import _df

ML_HEADLINES = ("mAP", "macro_auc", "micro_f1", "macro_f1", "hamming_loss", "threshold", "cardinality")
_SETS_COLUMNS = ["track_id", "split", "genres", "predicted", "probs", "label", "top", "artist"]


def _has_sets(db) -> bool:
    return bool(_df(db, "SELECT count(*) AS n FROM information_schema.tables "
                        "WHERE table_name = 'multilabel_predictions'").n.iloc[0])


def multilabel_runs(db, run_ids: Sequence[str]) -> list[str]:
    """Those of `run_ids` that are multi-label runs (runs.config task), in the given order."""
    ids = list(run_ids)
    found = set(_df(db, "SELECT run_id FROM runs WHERE list_contains(?, run_id) "
                        "AND config->>'task' = 'multilabel'", [ids]).run_id)
    return [r for r in ids if r in found]


def newest_multilabel_run(db, dataset_id: int) -> str | None:
    """The dataset's most recently finished complete multi-label run, or None."""
    rows = _df(db, "SELECT run_id FROM runs WHERE dataset_id = ? AND status = 'complete' "
                   "AND config->>'task' = 'multilabel' ORDER BY finished_at DESC, run_id LIMIT 1", [dataset_id])
    return str(rows.run_id.iloc[0]) if len(rows) else None


def multilabel_metrics(db, run_ids: Sequence[str], split: str = "test") -> pd.DataFrame:
    """One row per run: each of ML_HEADLINES as a column, plus `<name>_low` / `<name>_high`
    for those with a 95% CI."""
    ids = list(run_ids)
    long = _df(db, "SELECT run_id, regexp_extract(name, '^track/(.*)$', 1) AS name, value, ci_low, ci_high "
                   "FROM metrics WHERE split = ? AND list_contains(?, run_id) AND list_contains(?, "
                   "regexp_extract(name, '^track/(.*)$', 1))", [split, ids, list(ML_HEADLINES)])
    if long.empty:
        return pd.DataFrame(columns=["run_id", *ML_HEADLINES])
    wide = long.pivot(index="run_id", columns="name", values="value")
    for bound in ("ci_low", "ci_high"):
        part = long.pivot(index="run_id", columns="name", values=bound).dropna(axis=1, how="all")
        wide = wide.join(part.add_suffix("_low" if bound == "ci_low" else "_high"))
    order = {r: i for i, r in enumerate(ids)}
    return wide.reindex(columns=[*ML_HEADLINES, *[c for c in wide.columns if c not in ML_HEADLINES]]).reset_index() \
        .sort_values("run_id", key=lambda s: s.map(order)).reset_index(drop=True)


def genre_sets(db, run_id: str, *, split: str | None = "test", track_id: str | None = None) -> pd.DataFrame:
    """Per track of a multi-label run (of one split or all; of one track or all): track_id,
    split, genres (true), predicted (at the run's threshold), probs (in class order), label
    (primary genre), top (most probable genre), artist."""
    if not _has_sets(db):
        return pd.DataFrame(columns=_SETS_COLUMNS)
    return _df(db, """
        WITH run AS (SELECT dataset_id FROM runs WHERE run_id = ?)
        SELECT s.track_id, s.split, s.genres, s.predicted, p.probs, p.label, p.predicted AS top, t.artist
        FROM multilabel_predictions s CROSS JOIN run
        JOIN predictions p ON p.run_id = s.run_id AND p.track_id = s.track_id AND p.split = s.split
        LEFT JOIN tracks t ON t.dataset_id = run.dataset_id AND t.track_id = s.track_id
        WHERE s.run_id = ? AND (CAST(? AS VARCHAR) IS NULL OR s.split = ?)
          AND (CAST(? AS VARCHAR) IS NULL OR s.track_id = ?)
        ORDER BY s.split DESC, s.track_id""", [run_id, run_id, split, split, track_id, track_id])


def track_genre_set(db, run_id: str, track_id: str) -> pd.Series | None:
    """One track's row of `genre_sets` (any split), or None (single-label run, training track)."""
    frame = genre_sets(db, run_id, split=None, track_id=track_id)
    return None if frame.empty else frame.iloc[0]


def cooccurrence(db, run_id: str, classes: Sequence[str], *, split: str = "test") -> pd.DataFrame:
    """Every (true genre, predicted genre) cell in class order, shaped like `confusion()`:
    label, predicted, true_index, pred_index (1-based), n = tracks having `label` among their
    true genres and `predicted` among their predicted ones, row_total = tracks with that true
    genre, rate = n / row_total. The diagonal is each genre's recall; a track with two true and
    two predicted genres counts in four cells."""
    sets = genre_sets(db, run_id, split=split)
    classes = list(classes)
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    totals = np.zeros(len(classes), dtype=np.int64)
    for true, predicted in zip(sets.genres, sets.predicted):
        rows = [index[g] for g in true if g in index]
        cols = [index[g] for g in predicted if g in index]
        totals[rows] += 1
        counts[np.ix_(rows, cols)] += 1
    t, p = np.meshgrid(np.arange(len(classes)), np.arange(len(classes)), indexing="ij")
    t, p = t.ravel(), p.ravel()
    n = counts[t, p]
    return pd.DataFrame({"label": [classes[i] for i in t], "predicted": [classes[i] for i in p],
                         "true_index": t + 1, "pred_index": p + 1, "n": n, "row_total": totals[t],
                         "rate": np.where(totals[t] > 0, n / np.maximum(totals[t], 1), 0.0)})


def per_genre_ranking(db, run_id: str, split: str = "test") -> pd.DataFrame:
    """genre, ap, auc, precision, recall, f1 of a multi-label run, best AP first."""
    frame = _df(db, """
        SELECT regexp_extract(name, '^track/[a-z0-9]+/(.*)$', 1) AS genre,
               max(value) FILTER (WHERE name LIKE 'track/ap/%') AS ap,
               max(value) FILTER (WHERE name LIKE 'track/auc/%') AS auc,
               max(value) FILTER (WHERE name LIKE 'track/precision/%') AS precision,
               max(value) FILTER (WHERE name LIKE 'track/recall/%') AS recall,
               max(value) FILTER (WHERE name LIKE 'track/f1/%') AS f1
        FROM metrics WHERE run_id = ? AND split = ?
          AND regexp_matches(name, '^track/(ap|auc|precision|recall|f1)/')
        GROUP BY ALL ORDER BY ap DESC NULLS LAST, genre""", [run_id, split])
    return frame
