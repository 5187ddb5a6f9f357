"""The audio of one track as the app shows it: what st.audio plays, the waveform envelope and
the spectrogram. A file is reached only through `queries.track_file` (a usable track of the
database), so nothing outside the registered corpus is ever read."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from genre_core import audio
from genre_core.app.queries.tracks import track_file

BROWSER_AUDIO = (".wav", ".mp3", ".ogg", ".flac")  # played as-is; others (.au, .aiff) decoded
ENVELOPE_SR = 22050


def track_audio(db, dataset_id: int, track_id: str) -> tuple[Any, int | None] | None:
    """What st.audio needs: (path, None) for formats browsers play, else ((N,) float32, sr)."""
    path = track_file(db, dataset_id, track_id)
    if path is None:
        return None
    if path.suffix.lower() in BROWSER_AUDIO:
        return path, None
    return audio.load(path, sr=None, reject_silent=False), audio.probe(path).sample_rate


def _signal(db, dataset_id: int, track_id: str, sr: int) -> np.ndarray | None:
    path = track_file(db, dataset_id, track_id)
    if path is None:
        return None
    try:
        return audio.load(path, sr=sr, reject_silent=False, min_seconds=0.0)
    except audio.AudioError:
        return None


def track_waveform(db, dataset_id: int, track_id: str, n_points: int = 1200) -> pd.DataFrame:
    """Min/max envelope of the track in `n_points` buckets: time_s, low, high."""
    y = _signal(db, dataset_id, track_id, ENVELOPE_SR)
    if y is None or y.size == 0:
        return pd.DataFrame(columns=["time_s", "low", "high"])
    buckets = np.array_split(y, min(n_points, y.size))
    sizes = np.cumsum([0] + [b.size for b in buckets[:-1]])
    return pd.DataFrame({"time_s": sizes / ENVELOPE_SR, "low": [b.min() for b in buckets],
                         "high": [b.max() for b in buckets]})


def track_mel(db, dataset_id: int, track_id: str, representation: str | None = "logmel",
              config_json: str | None = None) -> dict | None:
    """`features.spectral.mel_image` of a track as a run of `representation` with runs.config
    `config_json` sees it (so a Grad-CAM map lines up with its bands); None when unplayable."""
    # torch comes with features.spectral: imported on the first spectrogram, not with the page.
    from genre_core.features.spectral import display_settings, mel_image

    features = (json.loads(config_json) if config_json else {}).get("features")
    settings = display_settings(representation, features)
    y = _signal(db, dataset_id, track_id, settings["sr"])
    if y is None or y.size == 0:
        return None
    return mel_image(y, **settings)
