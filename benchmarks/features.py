"""Feature extraction, cold: our pipeline against the plain loop most published projects use,
on the same files, to the same output (one log-mel image per track), in the same run.

- plain librosa: `librosa.load(path, sr=22050)` (soundfile + soxr_hq) then
  `power_to_db(melspectrogram(...))`, one file after another in this process;
- ours: the `extract` command's worker (genre_core.features.extract.cache_tracks) decodes
  and resamples (soxr HQ) into a fresh shard cache, in worker processes sized as `extract`
  sizes them (in-process for a short list), then the cached
  waveforms go through the torch LogMel in batches of equal-length tracks.

Both sides start cold: a fresh cache folder for ours, and the files' pages are dropped from
the OS page cache before each side (fdatasync + posix_fadvise DONTNEED: no root needed for
clean pages). Both produce (n_mels, 1 + N // hop) per track; the images agree within 1e-3 dB
(checked here on the first track).
"""

from __future__ import annotations

import os
import tempfile
import time

import librosa
import numpy as np
import pandas as pd
import torch

from genre_core.engine import EngineOptions, chunked, map_chunks, sized
from genre_core.features.cache import ShardCache, read_samples
from genre_core.features.extract import cache_tracks
from genre_core.features.spectral import FeatureConfig, LogMel

N_TRACKS, QUICK_TRACKS = 80, 24
MEL_BATCH = 16  # tracks per torch call
TRACKS_PER_TASK = 4  # small chunks: both workers stay busy to the end of a short list


def drop_page_cache(paths) -> bool:
    """Ask the OS to forget the files' cached pages; False where it cannot be asked."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def plain_librosa(paths, config: FeatureConfig) -> list[np.ndarray]:
    out = []
    for path in paths:
        y, sr = librosa.load(path, sr=config.sr)
        mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=config.n_fft, hop_length=config.hop_length,
                                             n_mels=config.n_mels)
        out.append(librosa.power_to_db(mel, top_db=config.top_db))
    return out


def ours(tracks: pd.DataFrame, config: FeatureConfig, cache_root: str, workers: int) -> list[np.ndarray]:
    """Decode into `cache_root` in `workers` processes, then batched torch log-mel per track."""
    items = list(tracks[["track_id", "path", "sha1"]].itertuples(index=False, name=None))
    for _ in map_chunks(cache_tracks, chunked(items, TRACKS_PER_TASK), args=(cache_root, config.sr),
                        options=EngineOptions(workers=workers)):
        pass
    cache = ShardCache(cache_root)
    waves = [read_samples(cache.cached(sha1, config.sr)) for sha1 in tracks.sha1]
    frontend, images = LogMel(config), [None] * len(waves)
    by_length: dict[int, list[int]] = {}
    for i, y in enumerate(waves):
        by_length.setdefault(len(y), []).append(i)
    with torch.inference_mode():
        for members in by_length.values():
            for k in range(0, len(members), MEL_BATCH):
                group = members[k: k + MEL_BATCH]
                batch = torch.from_numpy(np.stack([waves[i] for i in group]))  # (B, N)
                for i, image in zip(group, frontend(batch)[:, 0].numpy()):  # (B, M, T)
                    images[i] = image
    return images


def run(store, args) -> pd.DataFrame:
    tracks = store.tracks("demo").head(QUICK_TRACKS if getattr(args, "quick", False) else N_TRACKS)
    # As `extract` sizes it: worker processes only where each has enough files to pay for its
    # start (~1 s); below that the decode runs in this process.
    config, workers = FeatureConfig(), sized(EngineOptions(), len(tracks)).workers
    paths = list(tracks.path)
    # Warm both code paths (librosa's lazy imports and numba, torch's first STFT) on a synthetic
    # signal, so neither side's time includes one-off start-up; only the data is cold.
    warm = (0.1 * np.sin(np.arange(config.sr) * 0.05)).astype(np.float32)
    librosa.feature.melspectrogram(y=warm, sr=config.sr, n_fft=config.n_fft, hop_length=config.hop_length)
    LogMel(config)(torch.from_numpy(warm[None]))
    cold = drop_page_cache(paths)
    started, cpu = time.perf_counter(), time.process_time()
    reference = plain_librosa(paths, config)
    plain, plain_cpu = time.perf_counter() - started, time.process_time() - cpu
    drop_page_cache(paths)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        images = ours(tracks, config, tmp, workers)
        mine = time.perf_counter() - started
    worst = float(np.abs(images[0] - reference[0]).max())
    table = pd.DataFrame([
        dict(pipeline="plain librosa: load + melspectrogram, one process", seconds=plain,
             tracks_per_s=len(paths) / plain),
        dict(pipeline=f"ours: decode in {workers} process(es) (soxr HQ) + batched torch log-mel, cold cache",
             seconds=mine, tracks_per_s=len(paths) / mine)])
    table["speedup"] = plain / table.seconds
    print(f"{len(paths)} demo tracks, {tracks.duration_s.mean():.0f} s each; page cache "
          f"{'dropped before each side (posix_fadvise)' if cold else 'NOT dropped (no posix_fadvise)'}; "
          f"plain loop used {plain_cpu:.1f} s of CPU; max |ours - librosa| on track 1: {worst:.2g} dB\n")
    print(table.to_markdown(index=False, floatfmt=".3g"))
    if (ratios := getattr(args, "ratios", None)) is not None:
        ratios.add(f"extraction, cold ({len(paths)} tracks) vs plain librosa", mine, plain, "s",
                   target=">= 3x", met=plain / mine >= 3)
    return table
