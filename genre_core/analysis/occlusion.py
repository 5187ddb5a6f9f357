"""Occlusion maps: what the model loses when one time-frequency region of the audio is turned down.

The comparison method of the explanations benchmark (benchmarks/explanations.py): does a map
made by re-classifying the audio, in the very domain of the faithfulness test, beat Grad-CAM?
The track is cut into the run's windows side by side (one more aligned to the end when they
do not reach it); in each window, each region of N_GROUPS mel-band groups x N_PARTS time parts
is turned down on the window's STFT as listen.py's masks do (MASK_DEPTH_DB), resynthesised
with the original phase, and the window re-classified. A region's value is the drop of the
window's log-probability of the target genre. Values are clamped at 0 (a region whose removal
helps the target is no evidence for it), spread over an (n_bands, n_frames) grid like
Grad-CAM's stored maps and scaled to a maximum of 1. Not in analyze: at its cost (below,
~16 s a 15-s demo track on this busy CPU, 100x Grad-CAM) it does not fit `make demo`.

Cost: 1 + N_GROUPS x N_PARTS = 25 window classifications per window (125 for a 15-s track).
"""

from __future__ import annotations

import numpy as np
import torch

from genre_core.analysis.listen import N_FFT, floored, istft, stft, stft_cells
from genre_core.features.windows import window_starts
from genre_core.train.inference import batch_size

N_GROUPS = 8  # mel-band groups (8 bands each of a 64-band stored map)
N_PARTS = 3  # time parts per window: 1 s of a 3-s window, the scale of a bar at 120 BPM


def _starts(n: int, length: int) -> np.ndarray:
    """Windows side by side, plus one aligned to the end when they stop short of it."""
    starts = window_starts(n, length, length)
    if n > length and starts[-1] + length < n:
        starts = np.append(starts, n - length)
    return starts


def _window_versions(piece: np.ndarray, sr: int, mel: tuple[float, float]) -> np.ndarray:
    """A window (L,) and its N_GROUPS x N_PARTS occluded versions -> (1 + G * P, L) float32,
    version 1 + g * P + p without region (band group g, time part p)."""
    spec = stft(piece)  # (F, T)
    band, frame = stft_cells(N_GROUPS, N_PARTS, sr=sr, n_fft=N_FFT, n_stft_frames=spec.shape[1],
                             hop_length=N_FFT // 4, duration_s=len(piece) / sr, fmin=mel[0], fmax=mel[1])
    region = np.full(spec.shape, -1, dtype=np.int64)  # (F, T) region index of each cell
    inside = band >= 0
    region[inside] = band[inside, None] * N_PARTS + frame[None, :]
    masks = torch.from_numpy(region[None] != np.arange(N_GROUPS * N_PARTS)[:, None, None])  # (R, F, T) keep
    occluded = istft(spec * floored(masks.numpy()), len(piece))  # (R, L) each region turned down, as masks are
    return np.concatenate([piece[None], occluded]).astype(np.float32)


@torch.no_grad()
def occlusion_map(loaded_run, y: np.ndarray, target: int, *, n_bands: int, n_frames: int,
                  mel: tuple[float, float]) -> np.ndarray:
    """Occlusion map of track y ((N,) float32 at loaded_run.sr) for class index `target` ->
    (n_bands, n_frames) float32 in [0, 1] over the track (see the module docstring); `mel`:
    the (fmin, fmax) Hz of the run's mel image."""
    sr, length = loaded_run.sr, int(round(loaded_run.window_s * loaded_run.sr))
    y = np.pad(np.asarray(y, dtype=np.float32), (0, max(0, length - len(y))))
    starts, step = _starts(len(y), length), batch_size(loaded_run.device)
    log_p = []
    for start in starts:  # one window's versions at a time: memory stays flat on long tracks
        versions = _window_versions(y[start : start + length], sr, mel)  # (1 + R, L)
        probs = np.concatenate([loaded_run.predict_windows(versions[i : i + step])[0]
                                for i in range(0, len(versions), step)])  # (1 + R, C)
        log_p.append(np.log(np.maximum(probs[:, target], 1e-12)))
    log_p = np.stack(log_p)  # (W, 1 + R)
    drops = np.maximum(log_p[:, :1] - log_p[:, 1:], 0.0).reshape(len(starts), N_GROUPS, N_PARTS)  # (W, G, P)
    return _on_grid(drops, starts / sr, loaded_run.window_s, len(y) / sr, n_bands, n_frames)


def _on_grid(drops: np.ndarray, starts_s: np.ndarray, window_s: float, duration_s: float,
             n_bands: int, n_frames: int) -> np.ndarray:
    """Region values (W, G, P) of windows starting at `starts_s` -> (n_bands, n_frames) map;
    a frame covered by two windows (the end-aligned one) takes the larger value."""
    grid = np.zeros((n_bands, n_frames), dtype=np.float32)
    group = np.minimum(np.arange(n_bands) * N_GROUPS // n_bands, N_GROUPS - 1)  # (n_bands,)
    centres = (np.arange(n_frames) + 0.5) * duration_s / n_frames  # (n_frames,) seconds
    for w, start in enumerate(starts_s):
        offset = centres - start
        covered = (offset >= 0) & (offset < window_s)
        part = np.minimum((offset[covered] / window_s * N_PARTS).astype(np.int64), N_PARTS - 1)
        grid[:, covered] = np.maximum(grid[:, covered], drops[w][group][:, part])
    peak = float(grid.max())
    return grid / peak if peak > 0 else grid

