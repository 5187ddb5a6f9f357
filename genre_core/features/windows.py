"""From stored tracks to fixed-length training windows, through the shard cache.

Decoded waveforms are cached in shard files keyed by (file sha1, sample rate), and
handcrafted feature tables by (file sha1, window settings, feature version), so the second
epoch and the second run decode no audio (see genre_core.features.cache). A window is an index
entry (track, start sample) plus the track's cache location; its samples are read from the
shard when a batch needs them, so memory and open files stay flat however large the corpus.
The index is built in O(windows); the rows of one track are a contiguous slice of it.
"""

from __future__ import annotations

import logging

from dataclasses import dataclass
from typing import Iterator, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from genre_core.audio import AudioError
from genre_core.engine import EngineOptions, chunked, map_chunks, sized
from genre_core.features.cache import Location, ShardCache, read_samples, worker_cache
from genre_core.features.tables import COLUMNS, baseline_table
from genre_core.untrusted import terminal

log = logging.getLogger("genrelens")

# Bump when the table changes its output. v2: computed by handcrafted_torch (within its TOLERANCE
# of the librosa v1, not bit-equal), so v1 tables are not mixed with v2 ones.
HANDCRAFTED_VERSION = 2
HANDCRAFTED_BATCH = 32  # windows per torch call: ~15 MB of intermediates each (measured)
TABLE_JOBS_PER_TASK = 64  # tracks per worker task: a few seconds of work, results are tiny


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


def servable_tracks(tracks: pd.DataFrame, cache: ShardCache, *, sr: int, desc: str, progress: bool,
                    log: logging.Logger = log) -> pd.DataFrame:
    """`tracks` less those whose audio cannot be served as ingested (replaced or deleted since,
    no longer decodable: see ShardCache.locate), each named in one warning line. One bad file
    must not stop work over thousands (a run, the label check), nor be used unsaid. Decodes
    what is not cached yet, so build_windows after it only indexes."""
    keep = []
    with logging_redirect_tqdm([log]):  # a warning gets a line of its own, not the bar's tail
        for track in tqdm(tracks.itertuples(), total=len(tracks), desc=desc, unit="track", disable=not progress):
            try:
                cache.locate(track.path, track.sha1, sr)
                keep.append(True)
            except AudioError as exc:
                log.warning(terminal(f"warning: track {track.track_id} left out: {exc}"))
                keep.append(False)
    return tracks[keep]


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
                        *, progress: bool = True, device: str | torch.device | None = None,
                        kind: str = "handcrafted", engine: EngineOptions | None = None) -> np.ndarray:
    """(W, F) baseline feature table of every window (57 handcrafted columns, + 21 wavelet
    ones for kind "handcrafted+wavelet"; see features/tables.py), cached per track.

    Tracks not yet cached are computed with the batched torch table (`handcrafted_batch`) on
    `device` (default CPU), HANDCRAFTED_BATCH windows at a time across tracks, so short tracks
    share a batch and a long one never holds more than a batch of audio. With `engine`, the
    missing tables are computed in its worker processes (CPU, one torch thread each), which
    write them to the shared cache; the driver then only reads.
    """
    return handcrafted_sides({"": windows}, {"": shas}, cache, progress=progress, device=device, kind=kind,
                             engine=engine)[""]


def handcrafted_sides(windows: Mapping[str, WindowSet], shas: Mapping[str, Sequence[str]], cache: ShardCache,
                      *, progress: bool = True, device: str | torch.device | None = None,
                      kind: str = "handcrafted", engine: EngineOptions | None = None) -> dict[str, np.ndarray]:
    """`handcrafted_windows` of several window sets (a run's train/val/test sides, same rate
    and window length) at once: their missing tables are computed together, so one worker
    pool serves every side (per side, the small val and test sets would each be computed in
    this process after the pool had finished the training set)."""
    keys = {side: [] for side in windows}
    pending: list[TableJob] = []
    for side, window_set in windows.items():
        for pos, sha1 in enumerate(shas[side]):
            starts = window_set.index[window_set.rows_of(pos), 1]
            key = f"{kind}-v{HANDCRAFTED_VERSION}-{sha1}-{window_set.sr}-{window_set.window_len}-" + "-".join(
                map(str, (starts[0], starts[-1], len(starts))))
            keys[side].append((key, sha1))
            if not cache.has_table(key):
                pending.append(TableJob(key, sha1, window_set.locations[pos], starts))
    pending = list({job.key: job for job in pending}.values())  # a track on two sides: computed once
    if pending:
        first = next(iter(windows.values()))
        _compute_tables(pending, cache, first.sr, first.window_len, kind=kind, device=device, engine=engine,
                        progress=progress)
    width = len(COLUMNS[kind])
    return {side: (np.concatenate([cache.table(key, _missing, sha1=sha1) for key, sha1 in side_keys])
                   if side_keys else np.zeros((0, width)))
            for side, side_keys in keys.items()}


def _compute_tables(pending: list["TableJob"], cache: ShardCache, sr: int, window_len: int, *, kind: str,
                    device: str | torch.device | None, engine: EngineOptions | None, progress: bool) -> None:
    spread = sized(engine, len(pending)) if engine is not None else None
    with tqdm(total=len(pending), desc="handcrafted features", unit="track", disable=not progress) as bar:
        if spread is not None and (spread.engine == "ray" or spread.workers > 1):
            args = (str(cache.root), sr, window_len, kind)
            for _, done in map_chunks(cache_table_chunk, chunked(pending, TABLE_JOBS_PER_TASK), args=args, options=spread):
                bar.update(len(done))
        else:
            for group in _batches(pending):
                tables = _handcrafted_tables(group, sr, window_len, torch.device(device or "cpu"), kind)
                _store_tables(cache, group, tables)
                bar.update(len(group))


class TableJob(NamedTuple):
    """One track's missing table: its cache key, file sha1, samples and window starts (picklable)."""

    key: str
    sha1: str
    location: Location
    starts: np.ndarray  # (n_windows,) start samples


def cache_table_chunk(jobs: list[TableJob], cache_root: str, sr: int, window_len: int,
                      kind: str) -> list[dict]:
    """Worker: compute and cache the tables of `jobs` on the CPU; a row per track. One torch
    thread: the worker processes are the parallelism."""
    torch.set_num_threads(1)
    cache = worker_cache(cache_root)
    for group in _batches(jobs):
        _store_tables(cache, group, _handcrafted_tables(group, sr, window_len, torch.device("cpu"), kind))
    return [{"key": job.key} for job in jobs]


def _store_tables(cache: ShardCache, jobs: list[TableJob], tables: list[np.ndarray]) -> None:
    for job, table in zip(jobs, tables):
        cache.table(job.key, lambda table=table: table, sha1=job.sha1)


def _batches(jobs: list[TableJob]) -> Iterator[list[TableJob]]:
    """Consecutive groups of jobs holding about HANDCRAFTED_BATCH windows each."""
    group, size = [], 0
    for job in jobs:
        group.append(job)
        size += len(job.starts)
        if size >= HANDCRAFTED_BATCH:
            yield group
            group, size = [], 0
    if group:
        yield group


def _handcrafted_tables(jobs: list[TableJob], sr: int, window_len: int, device: torch.device,
                        kind: str) -> list[np.ndarray]:
    """Jobs -> their (n_windows, F) tables, computed in batches of windows."""
    audio, counts = [], []
    for job in jobs:
        y = read_samples(job.location)
        audio.extend(_window(y, int(s), window_len) for s in job.starts)
        counts.append(len(job.starts))
    rows = []
    for i in range(0, len(audio), HANDCRAFTED_BATCH):
        batch = torch.from_numpy(np.stack(audio[i: i + HANDCRAFTED_BATCH])).to(device)  # (B, L)
        rows.append(baseline_table(batch, sr, kind))  # (B, F)
    return np.split(np.concatenate(rows), np.cumsum(counts)[:-1])


def _missing() -> np.ndarray:
    raise RuntimeError("handcrafted table vanished from the cache while in use")
