"""From stored tracks to fixed-length training windows, through the shard cache.

Decoded waveforms are cached in shard files keyed by (file sha1, sample rate), and
handcrafted feature tables by (file sha1, window settings, feature version), so the second
epoch and the second run decode no audio (see genre_core.features.cache). A window is an index
entry (track, start sample) plus the track's cache location; its samples are read from the
shard when a batch needs them, so memory and open files stay flat however large the corpus.
The index is built in O(windows); the rows of one track are a contiguous slice of it.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from genre_core.features.cache import Location, ShardCache, read_samples

HANDCRAFTED_VERSION = 1  # bump when genre_core.features.handcrafted changes its output


@dataclass
class WindowSet:
    """Fixed-length windows of a list of tracks (all on one side of a split).

    `index` is (W, 2) int64: [track position, start sample], grouped by track in track order
    (track p owns rows offsets[p]:offsets[p + 1]). Windows never mix tracks. `locations` say
    where each track's samples are in the cache; nothing is held in memory or kept open.
    """

    track_ids: list[str]
    labels: np.ndarray  # (n_tracks,) int class index
    locations: list[Location]  # per track
    index: np.ndarray  # (W, 2)
    window_len: int  # samples
    sr: int
    offsets: np.ndarray | None = None  # (n_tracks + 1,) row bounds per track

    def __post_init__(self):
        if self.offsets is None:
            counts = np.bincount(self.index[:, 0], minlength=len(self.track_ids)) if len(self.index) \
                else np.zeros(len(self.track_ids), dtype=np.int64)
            self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def rows_of(self, pos: int) -> slice:
        return slice(int(self.offsets[pos]), int(self.offsets[pos + 1]))

    def waveform(self, pos: int) -> np.ndarray:
        """(N,) float32 samples of track `pos`, read now."""
        return read_samples(self.locations[pos])

    def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Windows `rows` -> ((B, L) float32 audio, (B,) labels, (B,) track positions)."""
        rows = np.asarray(rows)
        tracks, starts = self.index[rows, 0], self.index[rows, 1]
        out = np.zeros((len(rows), self.window_len), dtype=np.float32)
        for i, (t, s) in enumerate(zip(tracks, starts)):
            piece = read_samples(self.locations[t], int(s), self.window_len)
            out[i, : piece.size] = piece
        return out, self.labels[tracks], tracks

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
    cache: ShardCache,
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
    locations, rows = [], []
    for pos, track in enumerate(
        tqdm(tracks.itertuples(), total=len(tracks), desc=desc, unit="track", disable=not progress)
    ):
        loc = cache.locate(track.path, track.sha1, sr)
        locations.append(loc)
        starts = window_starts(loc.n, window_len, hop)
        rows.append(np.stack([np.full_like(starts, pos), starts], axis=1))
    index = np.concatenate(rows) if rows else np.zeros((0, 2), dtype=np.int64)
    labels = np.array([class_index[label] for label in tracks["label"]], dtype=np.int64)
    return WindowSet(list(tracks["track_id"]), labels, locations, index, window_len, sr)


def handcrafted_windows(windows: WindowSet, shas: Sequence[str], cache: ShardCache,
                        progress: bool = True) -> np.ndarray:
    """(W, 57) handcrafted feature table of every window, cached per track.

    librosa's features are single-threaded Python, so tracks not yet cached are computed in
    worker processes, one per core.
    """
    keys, jobs = [], {}
    for pos, sha1 in enumerate(shas):
        starts = windows.index[windows.rows_of(pos), 1]
        key = f"handcrafted-v{HANDCRAFTED_VERSION}-{sha1}-{windows.sr}-{windows.window_len}-" + "-".join(
            map(str, (starts[0], starts[-1], len(starts))))
        keys.append((key, sha1))
        if not cache.has_table(key):
            # Ship the cache location, not the samples: a GTZAN-sized queue stays small.
            jobs[key] = (windows.locations[pos], starts, windows.window_len, windows.sr, sha1)
    if jobs:
        workers = max(1, min(os.cpu_count() or 1, len(jobs)))
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = pool.map(_handcrafted_rows, jobs.values(), chunksize=4)
            for key, table in tqdm(zip(jobs, results), total=len(jobs), desc="handcrafted features",
                                   unit="track", disable=not progress):
                cache.table(key, lambda table=table: table, sha1=jobs[key][4])
    tables = [cache.table(key, _missing, sha1=sha1) for key, sha1 in keys]
    return np.concatenate(tables) if tables else np.zeros((0, 57))


def _handcrafted_rows(job: tuple[Location, np.ndarray, int, int, str]) -> np.ndarray:
    """Worker: (cache location, window starts, window length, sr, sha1) -> (n_windows, 57)."""
    from genre_core.features.handcrafted import handcrafted

    loc, starts, length, sr, _ = job
    y = read_samples(loc)
    return np.stack([handcrafted(_window(y, int(s), length), sr=sr) for s in starts])


def _missing() -> np.ndarray:
    raise RuntimeError("handcrafted table vanished from the cache while in use")
