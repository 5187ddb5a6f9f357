"""From stored tracks to fixed-length training windows, through an on-disk cache.

Decoded waveforms are cached as .npy files keyed by (file sha1, sample rate), and
handcrafted feature tables by (file sha1, window settings, feature version), so the second
epoch and the second run decode no audio. Windows are index entries (track, start sample)
into memory-mapped waveforms: memory stays flat however large the corpus.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from genre_core import audio

HANDCRAFTED_VERSION = 1  # bump when genre_core.features.handcrafted changes its output


class WaveformCache:
    """Mono float32 waveforms at a fixed rate, one .npy file per (audio file, rate)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path_for(self, sha1: str, sr: int) -> Path:
        return self.root / "audio" / f"{sr}" / f"{sha1}.npy"

    def load(self, path: str | Path, sha1: str, sr: int) -> np.ndarray:
        """(N,) float32 samples; decoded once, memory-mapped afterwards."""
        cached = self.path_for(sha1, sr)
        if cached.is_file():
            try:
                return np.load(cached, mmap_mode="r")
            except (ValueError, OSError):
                cached.unlink()  # a torn write from a killed process: decode again
        y = audio.load(path, sr=sr)
        _atomic_save(cached, y)
        return np.load(cached, mmap_mode="r")

    def table_path(self, key: str) -> Path:
        return self.root / "tables" / f"{key}.npy"

    def table(self, key: str, compute) -> np.ndarray:
        """A derived per-track array cached under `key` (computed by `compute()` once)."""
        cached = self.table_path(key)
        if cached.is_file():
            return np.load(cached)
        value = np.asarray(compute())
        _atomic_save(cached, value)
        return value


def _atomic_save(path: Path, value: np.ndarray) -> None:
    """Write-then-rename, so a reader never sees a half-written cache file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, value)
    os.replace(tmp, path)


@dataclass
class WindowSet:
    """Fixed-length windows of a list of tracks (all on one side of a split).

    `index` is (W, 2) int64: [track position, start sample]. Windows never mix tracks.
    """

    track_ids: list[str]
    labels: np.ndarray  # (n_tracks,) int class index
    waveforms: list[np.ndarray]  # per track (N_i,) float32, usually memory-mapped
    index: np.ndarray  # (W, 2)
    window_len: int  # samples
    sr: int

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Windows `rows` -> ((B, L) float32 audio, (B,) labels, (B,) track positions)."""
        tracks, starts = self.index[rows, 0], self.index[rows, 1]
        audio_batch = np.stack(
            [_window(self.waveforms[t], s, self.window_len) for t, s in zip(tracks, starts)]
        )
        return audio_batch, self.labels[tracks], tracks

    def start_seconds(self) -> np.ndarray:
        return self.index[:, 1] / self.sr


def _window(y: np.ndarray, start: int, length: int) -> np.ndarray:
    piece = np.asarray(y[start : start + length], dtype=np.float32)
    return piece if piece.size == length else np.pad(piece, (0, length - piece.size))


def window_starts(n_samples: int, window_len: int, hop: int) -> np.ndarray:
    """Start samples of the windows of one track: full windows only, at least one."""
    if n_samples <= window_len:
        return np.zeros(1, dtype=np.int64)
    return np.arange(0, n_samples - window_len + 1, hop, dtype=np.int64)


def build_windows(
    tracks: pd.DataFrame,
    classes: Sequence[str],
    cache: WaveformCache,
    *,
    sr: int,
    window_s: float,
    hop_s: float,
    desc: str = "windows",
    progress: bool = True,
) -> WindowSet:
    """Cache-load each track (columns track_id, path, sha1, label) and index its windows."""
    class_index = {c: i for i, c in enumerate(classes)}
    window_len, hop = int(round(window_s * sr)), int(round(hop_s * sr))
    waveforms, rows = [], []
    for pos, track in enumerate(
        tqdm(tracks.itertuples(), total=len(tracks), desc=desc, unit="track", disable=not progress)
    ):
        y = cache.load(track.path, track.sha1, sr)
        waveforms.append(y)
        starts = window_starts(len(y), window_len, hop)
        rows.append(np.stack([np.full_like(starts, pos), starts], axis=1))
    index = np.concatenate(rows) if rows else np.zeros((0, 2), dtype=np.int64)
    labels = np.array([class_index[label] for label in tracks["label"]], dtype=np.int64)
    return WindowSet(list(tracks["track_id"]), labels, waveforms, index, window_len, sr)


def handcrafted_windows(windows: WindowSet, shas: Sequence[str], cache: WaveformCache,
                        progress: bool = True) -> np.ndarray:
    """(W, 57) handcrafted feature table of every window, cached per track.

    librosa's features are single-threaded Python, so tracks not yet cached are computed in
    worker processes, one per core.
    """
    keys, jobs = [], {}
    for pos, sha1 in enumerate(shas):
        starts = windows.index[windows.index[:, 0] == pos, 1]
        key = f"handcrafted-v{HANDCRAFTED_VERSION}-{sha1}-{windows.sr}-{windows.window_len}-" + "-".join(
            map(str, (starts[0], starts[-1], len(starts))))
        keys.append(key)
        if not cache.table_path(key).is_file():
            y = windows.waveforms[pos]
            # Ship the cache file's name, not its samples: a GTZAN-sized queue stays small.
            source = y.filename if isinstance(y, np.memmap) and y.filename else np.asarray(y)
            jobs[key] = (source, starts, windows.window_len, windows.sr)
    if jobs:
        workers = max(1, min(os.cpu_count() or 1, len(jobs)))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = pool.map(_handcrafted_rows, jobs.values(), chunksize=4)
            for key, table in tqdm(zip(jobs, results), total=len(jobs), desc="handcrafted features",
                                   unit="track", disable=not progress):
                cache.table(key, lambda table=table: table)
    tables = [cache.table(key, _missing) for key in keys]
    return np.concatenate(tables) if tables else np.zeros((0, 57))


def _handcrafted_rows(job: tuple[str | np.ndarray, np.ndarray, int, int]) -> np.ndarray:
    """Worker: (cached .npy path or waveform, window starts, window length, sr) -> (n_windows, 57)."""
    from genre_core.features.handcrafted import handcrafted

    source, starts, length, sr = job
    y = np.load(source, mmap_mode="r") if isinstance(source, (str, os.PathLike)) else source
    return np.stack([handcrafted(_window(y, int(s), length), sr=sr) for s in starts])


def _missing() -> np.ndarray:
    raise RuntimeError("handcrafted table vanished from the cache while in use")
