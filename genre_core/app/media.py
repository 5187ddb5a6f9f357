"""The audio the app handles: what st.audio plays for a track, its waveform envelope and
spectrogram, and the checks an upload passes before it is decoded. A track's file is reached
only through `queries.track_file` (a usable track, inside its dataset's registered root), so
nothing outside the registered corpus is ever read."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genre_core import audio
from genre_core.app.queries.tracks import track_file

BROWSER_AUDIO = (".wav", ".mp3", ".ogg", ".flac")  # played as-is; others (.au, .aiff) decoded
ENVELOPE_SR = 22050
# What a page says when a track marked ok is refused (outside its root, not audio): the same
# words whatever the reason, so the page reveals nothing about the file.
NO_AUDIO = "No playable audio for this track."
MAX_UPLOAD_MB = 200  # about 20 min of 44.1 kHz stereo WAV; longer recordings are cut first
# Decoding allocates what the header promises (frames x channels float32) before reading a
# byte, and a compressed header can promise hours in a 1 KB file: 2 GiB is ~1.7 h of 44.1 kHz
# stereo, more than any single recording the Classify page is for.
MAX_DECODED_MB = 2048


def upload_problem(data: bytes, name: str, max_mb: float | None = None) -> str | None:
    """One sentence saying why an uploaded file will not be decoded, or None when it may be.

    Checked without decoding: the byte size (0 < size <= `max_mb`, default MAX_UPLOAD_MB),
    then from the header alone the sample rate, channels and duration (`audio.check_header`)
    and the decoded size they imply (<= MAX_DECODED_MB), so a forged header cannot make the
    server allocate gigabytes.
    """
    max_mb = MAX_UPLOAD_MB if max_mb is None else max_mb
    if not data:
        return f"{name} is empty (0 bytes)."
    if len(data) > max_mb * 2**20:
        return f"{name} is {len(data) / 2**20:.1f} MB; the limit is {max_mb:g} MB. Cut it shorter first."
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("upload" + Path(name).suffix.lower())  # libsndfile goes by content
        path.write_bytes(data)
        try:
            info = audio.check_header(audio.probe(path))
        except audio.AudioError as exc:
            return f"{name} is not audio GenreLens can read: {exc.reason}."
    if info.frames * info.channels * 4 > MAX_DECODED_MB * 2**20:
        return (f"{name} is too long to classify here: its header says {info.duration_s / 60:.0f} min "
                f"of {info.channels}-channel audio (limit {MAX_DECODED_MB} MB decoded). Cut it shorter first.")
    return None


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


def track_clip(db, dataset_id: int, track_id: str, start_s: float, seconds: float, sr: int) -> np.ndarray | None:
    """(N,) mono samples at `sr` of the track from `start_s` for `seconds` (shorter at its end;
    a start past the end gives its last `seconds`), read as every page reads audio (only a
    usable track inside its dataset's root); None when there is nothing to play."""
    y = _signal(db, dataset_id, track_id, sr)
    if y is None or y.size == 0:
        return None
    n = max(1, int(round(seconds * sr)))
    first = max(0, int(round(start_s * sr)))
    if first >= y.size:
        first = max(0, y.size - n)
    return y[first:first + n]
