"""Decode a dataset into the shard cache ahead of training, in parallel: every usable track
at a model's input rate (`genrelens extract --dataset D --model M [--engine ray --workers N]`).

Training and analysis read windows from the cache and build their features (log-mel, MFCC, the
musicnn mel) on the fly from those samples, so the decoded, resampled waveform is the expensive
part to prepare; done here by worker processes or Ray tasks, each appending to its own shard
(the cache is safe for concurrent writers), `train` then finds every track cached. Workers return
(track_id, samples, reason) rows; nothing is written to the database.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field

from tqdm import tqdm

from genre_core import paths, untrusted
from genre_core.audio import AudioError
from genre_core.engine import EngineOptions, chunked, map_chunks, sized
from genre_core.features.cache import worker_cache
from genre_core.store import Store

TRACKS_PER_TASK = 16
REASONS_SHOWN = 3  # distinct failure reasons named in the summary line, most frequent first


@dataclass
class ExtractSummary:
    dataset: str
    sr: int
    n_tracks: int
    n_failed: int
    seconds: float
    reasons: Counter = field(default_factory=Counter)  # why tracks failed -> how many

    def line(self) -> str:
        rate = self.n_tracks / self.seconds if self.seconds > 0 else 0.0
        failed = f", {self.n_failed} failed: {self._why()}" if self.n_failed else ""
        return (f"cached {self.n_tracks - self.n_failed} of {self.n_tracks} tracks of {self.dataset!r} at "
                f"{self.sr} Hz in {self.seconds:.1f} s ({rate:.0f} tracks/s){failed}")

    def _why(self) -> str:
        """'No space left on device (58)': the most frequent reasons with their counts."""
        shown = [f"{untrusted.shortened(reason)} ({n})" for reason, n in self.reasons.most_common(REASONS_SHOWN)]
        others = len(self.reasons) - len(shown)
        return ", ".join(shown) + (f" and {others} other reason{'s' * (others > 1)}" if others > 0 else "")


def model_rate(model: str) -> int:
    """The sample rate a model's input pipeline reads (what its training windows are cut at)."""
    from genre_core.features.pipeline import input_pipeline
    from genre_core.features.spectral import FeatureConfig
    from genre_core.models import get_spec

    return int(input_pipeline(get_spec(model).input_kind, FeatureConfig())[1])


def cache_tracks(items: list[tuple[str, str, str]], cache_root: str, sr: int) -> list[dict]:
    """Worker: decode and cache (track_id, path, sha1) items at sr; a row per track (reason:
    why it failed, None when cached)."""
    cache = worker_cache(cache_root)
    rows = []
    for track_id, path, sha1 in items:
        try:
            rows.append({"track_id": track_id, "samples": int(cache.locate(path, sha1, sr).n), "reason": None})
        except (AudioError, ValueError, OSError) as exc:  # changed on disk since ingest: report, go on
            rows.append({"track_id": track_id, "samples": None, "reason": _reason(exc)})
    return rows


def _reason(exc: Exception) -> str:
    """Why a track failed, worded so that failures of one cause count together: a full disk
    is the same reason for every track (not one per shard path), a decoding error its own."""
    number = paths.write_errno(exc)
    if number is not None:
        return os.strerror(number)
    return exc.reason if isinstance(exc, AudioError) else str(exc)


def extract(store: Store, dataset: str, sr: int, *, engine: EngineOptions = EngineOptions(),
            progress: bool = True) -> ExtractSummary:
    started = time.perf_counter()
    tracks = store.tracks(dataset)
    items = list(tracks[["track_id", "path", "sha1"]].itertuples(index=False, name=None))
    engine = sized(engine, len(items))
    root = str(paths.cache_dir(store.path))
    reasons = Counter()
    with tqdm(total=len(items), desc=f"extract {dataset}", unit="track", disable=not progress) as bar:
        for _, rows in map_chunks(cache_tracks, chunked(items, TRACKS_PER_TASK), args=(root, int(sr)), options=engine):
            reasons.update(r["reason"] for r in rows if r["reason"] is not None)
            bar.update(len(rows))
    return ExtractSummary(dataset, int(sr), len(items), sum(reasons.values()), time.perf_counter() - started,
                          reasons)
