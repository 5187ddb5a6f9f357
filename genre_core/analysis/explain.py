"""Why a model said what it said: Grad-CAM maps over the feature image, and band importance.

Grad-CAM (captum's LayerGradCam on the model's `gradcam_layer`) is computed per window,
rectified, upsampled to the window's feature grid (F bands x T frames) and stitched along
the whole track, overlaps averaged. For storage a track map is pooled down to at most
64 bands x 8 frames/s and scaled to [0, 1]: `values` of an `attributions` row are that
(n_bands, n_frames) grid flattened row-major, band 0 the lowest, frame 0 the track start.

Band importance says which frequency bands a genre's evidence lives in, two ways that
should agree: the time-averaged Grad-CAM ("gradcam", one value per feature band), and the
drop of the true-class probability when a group of bands is blotted out ("occlusion", one
value per band group; group i = `np.array_split(range(F), n_groups)[i]`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from torch import nn

from genre_core.features.windows import window_starts
from genre_core.train.inference import batch_size

MAX_BANDS = 64  # stored maps: 128 mel bands pooled in pairs is still finer than the eye needs
FRAMES_PER_S = 8.0  # stored maps: 125-ms columns, finer than a beat at 200 BPM
N_BAND_GROUPS = 16  # occlusion: 8 mel bands per group at n_mels=128
OCCLUSION_WINDOWS = 4  # windows of a track that band occlusion looks at
OCCLUSION_IMAGES = 256  # occluded copies materialised at once (256 x 128 x 130 floats = 17 MB)


class _Logits(nn.Module):
    """captum attributes a tensor output; GenreModel returns a ModelOutput, so unwrap it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).logits  # (B, C)


def image_bands(model: nn.Module, x: torch.Tensor) -> int:
    """Rows of x that are the feature image (all, unless the model packs more below it)."""
    return int(getattr(model, "image_bands", None) or x.shape[-2])


def gradcam_features(model: nn.Module, x: torch.Tensor, target: int | list[int]) -> torch.Tensor:
    """Grad-CAM of feature images x (B, 1, F, T) for class `target` (one int, or one per
    row) -> (B, F, T), >= 0, on x's device. `model` is a GenreModel in eval mode with a
    `gradcam_layer`; F is its `image_bands` where it has them (fusion inputs)."""
    if getattr(model, "gradcam_layer", None) is None:
        raise ValueError(f"{type(model).__name__} has no convolutional layer for Grad-CAM")
    layer = model.get_submodule(model.gradcam_layer)
    # Frozen backbones (musicnn_probe) have no parameter needing grad before the layer, so
    # its activation would carry no graph: asking for the input's gradient restores it.
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        cam = LayerGradCam(_Logits(model), layer).attribute(
            x, target=target, relu_attributions=True
        )  # (B, 1, F', T'): channel-weighted sum at the layer's resolution
    size = (image_bands(model, x), x.shape[-1])
    cam = F.interpolate(cam.detach(), size=size, mode="bilinear", align_corners=False)
    return cam.squeeze(1).clamp_min(0)  # (B, F, T); bilinear keeps >= 0 up to rounding


def gradcam_windows(model: nn.Module, frontend: nn.Module, windows: np.ndarray | torch.Tensor,
                    *, target: int) -> np.ndarray:
    """Grad-CAM of audio windows (B, L) float32 at the front end's rate -> (B, F, T) float32,
    on the front end's feature grid (F bands, T frames of one window). The front end lives
    on the model's device."""
    device = next(model.parameters()).device
    with torch.no_grad():
        x = frontend(torch.as_tensor(windows, dtype=torch.float32, device=device))  # (B, 1, F, T)
    maps = [gradcam_features(model, chunk, target) for chunk in x.split(batch_size(x.device))]
    return torch.cat(maps).cpu().numpy().astype(np.float32)


def stitch(maps: np.ndarray, starts_frames: np.ndarray, total_frames: int) -> np.ndarray:
    """Window maps (W, F, T) starting at frames `starts_frames` (W,) -> one (F, total_frames)
    map of the track; where windows overlap the map is their mean, frames no window covers
    are 0, and window frames past `total_frames` are dropped."""
    _, n_bands, n_frames = maps.shape
    total = np.zeros((n_bands, total_frames), dtype=np.float64)
    count = np.zeros(total_frames, dtype=np.int64)
    for window_map, start in zip(maps, np.asarray(starts_frames, dtype=np.int64)):
        end = min(int(start) + n_frames, total_frames)
        if end > start:
            total[:, start:end] += window_map[:, : end - start]
            count[start:end] += 1
    return (total / np.maximum(count, 1)).astype(np.float32)  # (F, total_frames)


def frame_hop(frontend: nn.Module) -> int:
    """Samples between feature frames of a front end (LogMel/MFCC config, or musicnn's)."""
    config = getattr(frontend, "config", None)
    if config is not None:
        return int(config.hop_length)
    from genre_core.features.spectral import MUSICNN_HOP_LENGTH

    return MUSICNN_HOP_LENGTH


@dataclass
class TrackFeatures:
    """A track cut into windows at the run's eval hop, as the model sees them."""

    x: torch.Tensor  # (W, 1, F, T) feature images on the model's device
    starts_frames: np.ndarray  # (W,) first frame of each window on the track's timeline
    total_frames: int  # frames of the whole track
    frame_rate: float  # frames per second


def track_features(loaded_run, y: np.ndarray, hop_s: float | None = None) -> TrackFeatures:
    """Feature images of every window of track `y` ((N,) float32 at `loaded_run.sr`).

    Windows start every `hop_s` (default: the run's eval hop); one more window is aligned
    to the end of the track, so the stitched map covers the full timeline.
    """
    sr, length = loaded_run.sr, int(round(loaded_run.window_s * loaded_run.sr))
    hop = int(round((hop_s or loaded_run.config.eval_hop_s) * sr))
    starts = window_starts(len(y), length, hop)
    if len(y) > length and starts[-1] + length < len(y):
        starts = np.append(starts, len(y) - length)
    padded = np.pad(np.asarray(y, dtype=np.float32), (0, max(0, length - len(y))))
    audio = np.stack([padded[s : s + length] for s in starts])  # (W, L)
    with torch.no_grad():
        x = loaded_run.frontend(torch.from_numpy(audio).to(loaded_run.device))  # (W, 1, F, T)
    samples_per_frame = frame_hop(loaded_run.frontend)
    starts_frames = np.round(starts / samples_per_frame).astype(np.int64)
    total = int(starts_frames[-1] + x.shape[-1])
    if len(y) < length:  # one zero-padded window: the map stops where the track does
        total = min(total, max(1, round(len(y) / samples_per_frame)))
    return TrackFeatures(x, starts_frames, total, sr / samples_per_frame)


def track_map(model: nn.Module, feats: TrackFeatures, target: int) -> np.ndarray:
    """Stitched Grad-CAM of one track's windows for class `target` -> (F, total_frames)."""
    chunks = feats.x.split(batch_size(feats.x.device))
    maps = torch.cat([gradcam_features(model, chunk, target) for chunk in chunks])
    return stitch(maps.cpu().numpy(), feats.starts_frames, feats.total_frames)


def track_gradcam(loaded_run, y: np.ndarray, target: int) -> np.ndarray:
    """Grad-CAM of a whole track (N,) at `loaded_run.sr` for class index `target` ->
    (F, T_total) float32, F the model's feature bands, T_total the track's frames."""
    return track_map(loaded_run.model, track_features(loaded_run, y), target)


def compact(cam: np.ndarray, frame_rate: float, *, max_bands: int = MAX_BANDS,
            frames_per_s: float = FRAMES_PER_S) -> np.ndarray:
    """A track map (F, T) at `frame_rate` frames/s -> (<= max_bands, ~frames_per_s per s)
    float32, average-pooled, scaled so its maximum is 1 (all zeros stays all zeros)."""
    return normalise(pooled(cam, frame_rate, max_bands=max_bands, frames_per_s=frames_per_s))


def pooled(cam: np.ndarray, frame_rate: float, *, max_bands: int = MAX_BANDS,
           frames_per_s: float = FRAMES_PER_S) -> np.ndarray:
    """compact() before scaling: its maximum is the map's raw strength, which analyze stores
    so that two genres' maps of one track can be compared on one scale."""
    n_bands, n_frames = cam.shape
    out_frames = min(n_frames, max(1, math.ceil(n_frames / frame_rate * frames_per_s)))
    return F.adaptive_avg_pool2d(
        torch.from_numpy(np.ascontiguousarray(cam, dtype=np.float32))[None],  # (1, F, T)
        (min(n_bands, max_bands), out_frames),
    )[0].numpy()  # (f, t)


def stored_map(track_id: str, target: str, cam: np.ndarray, frame_rate: float, *, method: str = "gradcam") -> dict:
    """A track map (F, T) as an `attributions` row: pooled to the storage grid, scaled to a
    maximum of 1, its raw maximum kept as `scale` (a track's maps for two genres side by side
    on one scale)."""
    raw = pooled(cam, frame_rate)  # (f, t)
    small = normalise(raw)
    return dict(track_id=track_id, method=method, target=target, n_bands=small.shape[0], n_frames=small.shape[1],
                values=small.ravel().tolist(), scale=float(raw.max()) if raw.size else 0.0)


def normalise(values: np.ndarray) -> np.ndarray:
    """Scale non-negative values so the largest is 1: zero keeps meaning 'no evidence'."""
    peak = float(np.max(values)) if values.size else 0.0
    return (values / peak if peak > 0 else values).astype(np.float32)


def band_profile(cam: np.ndarray) -> np.ndarray:
    """A track map (F, T) -> (F,) time-averaged importance of each band, maximum 1; tracks
    are scaled alike before a genre's profiles are averaged, so loud gradients don't rule."""
    return normalise(normalise(cam).mean(axis=1))


def _probs(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """(W, 1, F, T) -> (W,) softmax probability of `target`, a batch at a time."""
    return torch.cat([torch.softmax(model(c).logits.float(), dim=1)[:, target]
                      for c in x.split(batch_size(x.device))])


@torch.no_grad()
def band_occlusion(model: nn.Module, x: torch.Tensor, target: int,
                   *, n_groups: int = N_BAND_GROUPS,
                   max_windows: int | None = OCCLUSION_WINDOWS) -> np.ndarray:
    """Mean drop of p(target) over windows x (W, 1, F, T) when each of `n_groups` equal
    groups of bands is replaced by the window's mean value -> (n_groups,) float32, in
    probability units (negative: hiding the bands made the class more likely).

    Only `max_windows` windows spread evenly over the track are used (None: all): a
    genre's profile averages many tracks, and each window costs n_groups forward passes.
    """
    if max_windows is not None and len(x) > max_windows:
        spread = np.linspace(0, len(x) - 1, max_windows).round().astype(np.int64)
        x = x[torch.as_tensor(spread, device=x.device)]  # (max_windows, 1, F, T)
    n_windows, _, n_rows, n_frames = x.shape
    n_bands = image_bands(model, x)  # rows past it (a fusion vector) are never occluded
    base = _probs(model, x, target)  # (W,)
    fill = x[:, :, :n_bands].mean(dim=(1, 2, 3)).view(1, -1, 1, 1, 1)  # (1, W, 1, 1, 1): each window's level
    group_of = torch.as_tensor(  # (F_rows,) group index of each band, -1 past the image
        np.concatenate([np.repeat(np.arange(n_groups), [len(g) for g in np.array_split(range(n_bands), n_groups)]),
                        np.full(n_rows - n_bands, -1)]),
        device=x.device)
    drops = []
    # Several groups per forward (up to OCCLUSION_IMAGES images) keep a GPU busy.
    step = max(1, OCCLUSION_IMAGES // n_windows)
    for first in range(0, n_groups, step):
        groups = torch.arange(first, min(first + step, n_groups), device=x.device)
        inside = group_of[None, :] == groups[:, None]  # (g, F): bands of each group
        inside = inside.view(len(groups), 1, 1, n_rows, 1)  # (g, 1, 1, F_rows, 1)
        occluded = torch.where(inside, fill, x.unsqueeze(0))  # (g, W, 1, F, T)
        probs = _probs(model, occluded.view(-1, 1, n_rows, n_frames), target)  # (g * W,)
        drops.append((base[None, :] - probs.view(len(groups), n_windows)).mean(dim=1))  # (g,)
    return torch.cat(drops).cpu().numpy().astype(np.float32)
