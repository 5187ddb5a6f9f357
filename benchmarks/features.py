"""Feature extraction: our pipeline (cached decode + batched torch log-mel) against the plain
librosa.load + librosa.feature.melspectrogram loop most published projects use."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import torch

from genre_core.features.spectral import FeatureConfig, LogMel
from genre_core.features.cache import ShardCache
from genre_core.features.windows import build_windows

N_TRACKS = 60


def run(store, args) -> pd.DataFrame:
    tracks = store.tracks("demo").head(N_TRACKS)
    config = FeatureConfig()
    started = time.perf_counter()
    for path in tracks.path:
        y, sr = librosa.load(path, sr=config.sr)
        librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr, n_fft=config.n_fft,
                                                           hop_length=config.hop_length, n_mels=config.n_mels))
    plain = time.perf_counter() - started

    frontend = LogMel(config)
    rows = [dict(pipeline="librosa.load + melspectrogram loop", tracks_per_s=len(tracks) / plain)]
    with tempfile.TemporaryDirectory() as tmp:
        cache = ShardCache(Path(tmp))
        for label in ("GenreLens, cold cache (decode + cache + log-mel)", "GenreLens, warm cache (log-mel only)"):
            started = time.perf_counter()
            windows = build_windows(tracks, sorted(tracks.label.unique()), cache, sr=config.sr,
                                    window_s=3.0, hop_s=3.0, progress=False)
            with torch.no_grad():
                for i in range(0, len(windows), 64):
                    audio, _, _ = windows.batch(np.arange(i, min(i + 64, len(windows))))
                    frontend(torch.from_numpy(audio))
            rows.append(dict(pipeline=label, tracks_per_s=len(tracks) / (time.perf_counter() - started)))
    table = pd.DataFrame(rows)
    print(f"{len(tracks)} demo tracks, {tracks.duration_s.mean():.0f} s each\n")
    print(table.to_markdown(index=False, floatfmt=".1f"))
    return table
