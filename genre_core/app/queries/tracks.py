"""Reads about one track: its row and file, predictions, Grad-CAM, taggram, neighbours (the
audio views themselves are in genre_core.app.media)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from genre_core.app.access import servable_audio
from genre_core.app.queries._db import _df
from genre_core.store import taggram_grid

# -- one track ------------------------------------------------------------------------------


def search_tracks(db, run_id: str, text: str = "", limit: int | None = 50) -> pd.DataFrame:
    """Tracks of the run's dataset whose id, file path, artist or label contains `text`
    (case-insensitive; empty text matches every track), with the run's prediction where it made
    one: dataset_id, track_id, label, artist, path, status, predicted, split, n_matches (how many
    matched before `limit`; None: no limit). Exact id first, then test, validation, training."""
    needle = (text or "").strip().lower()
    return _df(db, f"""
        WITH run AS (SELECT dataset_id FROM runs WHERE run_id = ?)
        SELECT t.dataset_id, t.track_id, t.label, t.artist, t.path, t.status, p.predicted,
               coalesce(p.split, 'train') AS split, count(*) OVER () AS n_matches
        FROM tracks t JOIN run USING (dataset_id)
        LEFT JOIN predictions p ON p.run_id = ? AND p.track_id = t.track_id
        WHERE ? = '' OR contains(lower(t.track_id), ?) OR contains(lower(t.path), ?)
              OR contains(lower(coalesce(t.artist, '')), ?) OR contains(lower(t.label), ?)
        ORDER BY lower(t.track_id) != ?,
                 CASE coalesce(p.split, 'train') WHEN 'test' THEN 0 WHEN 'val' THEN 1 ELSE 2 END, t.track_id
        {'' if limit is None else 'LIMIT ' + str(int(limit))}""",
        [run_id, run_id, needle, needle, needle, needle, needle, needle])


def track(db, dataset_id: int, track_id: str) -> pd.Series | None:
    frame = _df(db, "SELECT * FROM tracks WHERE dataset_id = ? AND track_id = ?", [dataset_id, track_id])
    return None if frame.empty else frame.iloc[0]


def track_file(db, dataset_id: int, track_id: str) -> Path | None:
    """The audio file of a usable track, or None: the only way the app finds a file to read.

    Returned only when the track's status is ok and, after resolving symlinks, the file lies
    inside its dataset's registered root, has an audio extension and a header that probes as
    audio (`access.servable_audio`); the path returned is the resolved one. A database whose
    rows point elsewhere (another directory, /etc/passwd, a text file named .wav, a symlink
    leading out of the corpus) gets None, so nothing outside the corpus is served.
    """
    frame = _df(db, """SELECT t.path, t.status, d.root FROM tracks t JOIN datasets d USING (dataset_id)
                       WHERE t.dataset_id = ? AND t.track_id = ?""", [dataset_id, track_id])
    if frame.empty or frame.status.iloc[0] != "ok":
        return None
    return servable_audio(frame.path.iloc[0], frame.root.iloc[0])


def track_probs(db, run_id: str, track_id: str) -> pd.DataFrame:
    """The run's track-level probabilities for one track: genre, prob, is_true, is_predicted,
    split (empty when the run made no prediction for it)."""
    # Filter first, then unnest: a lateral range() join over the whole table is 100x slower.
    return _df(db, """
        WITH p AS (SELECT label, predicted, split, probs FROM predictions WHERE run_id = ? AND track_id = ?),
        c AS (SELECT classes FROM runs WHERE run_id = ?)
        SELECT genre, prob, genre = label AS is_true, genre = predicted AS is_predicted, split
        FROM (SELECT unnest(c.classes) AS genre, unnest(p.probs) AS prob, p.label, p.predicted, p.split
              FROM p, c)
        ORDER BY prob DESC""", [run_id, track_id, run_id])


def segments(db, run_id: str, track_id: str) -> pd.DataFrame:
    """Per-window probabilities, long: start_s, genre, prob (window length: runs.window_s)."""
    return _df(db, """
        WITH s AS (SELECT start_s, probs FROM segment_predictions WHERE run_id = ? AND track_id = ?),
        c AS (SELECT classes FROM runs WHERE run_id = ?)
        SELECT start_s, genre, prob
        FROM (SELECT s.start_s, unnest(c.classes) AS genre, unnest(s.probs) AS prob,
                     generate_subscripts(s.probs, 1) AS i FROM s, c)
        ORDER BY start_s, i""", [run_id, track_id, run_id])


def attributions(db, run_id: str, track_id: str) -> pd.DataFrame:
    """Grad-CAM maps of the track: target, n_bands, n_frames, values ((n_bands, n_frames)
    array, band 0 lowest, normalised to [0, 1], spanning the whole track), scale (the map's
    raw maximum before that, for comparing two genres' maps; NULL in older analyses)."""
    frame = _df(db, """SELECT target, method, n_bands, n_frames, "values", scale FROM attributions
                       WHERE run_id = ? AND track_id = ? ORDER BY target""", [run_id, track_id])
    frame["values"] = [np.asarray(v, dtype=np.float32).reshape(b, f)
                       for v, b, f in zip(frame["values"], frame.n_bands, frame.n_frames)]
    return frame


def taggram(db, run_id: str, track_id: str) -> dict | None:
    """{"tags": [...], "values": (n_frames, n_tags)} of the pretrained tagger, or None."""
    frame = _df(db, """SELECT tag_names, n_frames, "values" FROM taggrams
                       WHERE run_id = ? AND track_id = ? LIMIT 1""", [run_id, track_id])
    if frame.empty:
        return None
    row = frame.iloc[0]
    tags = list(row.tag_names)
    return {"tags": tags, "values": taggram_grid(row["values"], row.n_frames, tags)}


def neighbours(db, run_id: str, track_id: str) -> pd.DataFrame:
    """Nearest tracks in the run's embedding space: rank, neighbour_id, distance, label,
    predicted (by this run, if it predicted it), playable."""
    return _df(db, """
        WITH run AS (SELECT dataset_id FROM runs WHERE run_id = ?)
        SELECT n.rank, n.neighbour_id, n.distance, t.label, p.predicted,
               coalesce(t.status = 'ok', false) AS playable
        FROM neighbours n CROSS JOIN run
        LEFT JOIN tracks t ON t.dataset_id = run.dataset_id AND t.track_id = n.neighbour_id
        LEFT JOIN predictions p ON p.run_id = n.run_id AND p.track_id = n.neighbour_id
        WHERE n.run_id = ? AND n.track_id = ? ORDER BY n.rank""", [run_id, run_id, track_id])


def band_importance(db, run_id: str) -> pd.DataFrame:
    return _df(db, """SELECT genre, method, "values" FROM band_importance WHERE run_id = ?
                      ORDER BY genre, method""", [run_id])


