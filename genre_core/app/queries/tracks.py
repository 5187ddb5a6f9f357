"""Reads about one track: its file, audio views, predictions, Grad-CAM, taggram, neighbours."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genre_core.app.queries._db import _df

BROWSER_AUDIO = (".wav", ".mp3", ".ogg", ".flac")  # played as-is; others (.au, .aiff) decoded

# -- one track ------------------------------------------------------------------------------


def track_list(db, run_id: str) -> pd.DataFrame:
    """Tracks of the run's dataset with the run's prediction where it made one; test first."""
    return _df(db, """
        WITH run AS (SELECT dataset_id FROM runs WHERE run_id = ?)
        SELECT t.dataset_id, t.track_id, t.label, t.status, p.predicted, coalesce(p.split, 'train') AS split
        FROM tracks t JOIN run USING (dataset_id)
        LEFT JOIN predictions p ON p.run_id = ? AND p.track_id = t.track_id
        ORDER BY CASE coalesce(p.split, 'train') WHEN 'test' THEN 0 WHEN 'val' THEN 1 ELSE 2 END,
                 t.track_id""", [run_id, run_id])


def track(db, dataset_id: int, track_id: str) -> pd.Series | None:
    frame = _df(db, "SELECT * FROM tracks WHERE dataset_id = ? AND track_id = ?", [dataset_id, track_id])
    return None if frame.empty else frame.iloc[0]


def track_file(db, dataset_id: int, track_id: str) -> Path | None:
    """The audio file of a usable track in the database, or None: the only way the app finds
    a file to read, so nothing outside the corpus can be served."""
    row = track(db, dataset_id, track_id)
    if row is None or row["status"] != "ok":
        return None
    path = Path(row["path"])
    return path if path.is_file() else None


def track_audio(db, dataset_id: int, track_id: str) -> tuple[Any, int | None] | None:
    """What st.audio needs: (path, None) for formats browsers play, else ((N,) float32, sr)."""
    path = track_file(db, dataset_id, track_id)
    if path is None:
        return None
    if path.suffix.lower() in BROWSER_AUDIO:
        return path, None
    from genre_core import audio

    return audio.load(path, sr=None, reject_silent=False), audio.probe(path).sample_rate


def _signal(db, dataset_id: int, track_id: str, sr: int) -> np.ndarray | None:
    from genre_core import audio

    path = track_file(db, dataset_id, track_id)
    if path is None:
        return None
    try:
        return audio.load(path, sr=sr, reject_silent=False, min_seconds=0.0)
    except audio.AudioError:
        return None


def track_waveform(db, dataset_id: int, track_id: str, n_points: int = 1200) -> pd.DataFrame:
    """Min/max envelope of the track in `n_points` buckets: time_s, low, high."""
    y = _signal(db, dataset_id, track_id, 22050)
    if y is None or y.size == 0:
        return pd.DataFrame(columns=["time_s", "low", "high"])
    buckets = np.array_split(y, min(n_points, y.size))
    sizes = np.cumsum([0] + [b.size for b in buckets[:-1]])
    return pd.DataFrame({"time_s": sizes / 22050, "low": [b.min() for b in buckets],
                         "high": [b.max() for b in buckets]})


def track_mel(db, dataset_id: int, track_id: str, sr: int = 22050, n_mels: int = 128,
              fmin: float = 0.0, fmax: float | None = None, max_frames: int = 900) -> dict | None:
    """Log-mel spectrogram of a track for display (see `mel_image`), None when unplayable.
    Pass the run's feature settings so a Grad-CAM map lines up with its bands."""
    y = _signal(db, dataset_id, track_id, sr)
    if y is None or y.size == 0:
        return None
    return mel_image(y, sr, n_mels, fmin, fmax, max_frames)


def mel_image(y: np.ndarray, sr: int, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None,
              max_frames: int = 900, hop_length: int = 512) -> dict:
    """{"mel": (n_mels, T) dB below the peak, "duration_s", "freqs": (n_mels,) band centres
    in Hz} of (N,) audio at `sr`; frames are max-pooled to at most `max_frames` columns so the
    figure stays light."""
    import librosa

    fmax = fmax or sr / 2
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=hop_length,
                                         n_mels=n_mels, fmin=fmin, fmax=fmax)
    mel_db = librosa.power_to_db(mel, ref=np.max, top_db=80.0).astype(np.float32)  # (M, T)
    factor = int(np.ceil(mel_db.shape[1] / max_frames))
    if factor > 1:
        cut = mel_db.shape[1] // factor * factor
        mel_db = mel_db[:, :cut].reshape(n_mels, -1, factor).max(axis=2)
    freqs = librosa.mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax)[1:-1]
    return {"mel": mel_db, "duration_s": y.size / sr, "freqs": freqs}


def mel_settings(config_json: str | None, representation: str | None) -> dict:
    """track_mel keyword arguments matching a run's input image (sr, n_mels, fmin, fmax)."""
    if representation == "musicnn":
        return dict(sr=16000, n_mels=96, fmin=0.0, fmax=8000.0)
    features = (json.loads(config_json) if config_json else {}).get("features", {})
    return dict(sr=int(features.get("sr", 22050)), n_mels=int(features.get("n_mels", 128)),
                fmin=float(features.get("f_min", 0.0)), fmax=features.get("f_max"))


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
    array, band 0 lowest, normalised to [0, 1], spanning the whole track)."""
    frame = _df(db, """SELECT target, method, n_bands, n_frames, "values" FROM attributions
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
    return {"tags": tags, "values": np.asarray(row["values"], dtype=np.float32).reshape(int(row.n_frames), len(tags))}


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


