"""The input of the fusion models: one window's log-mel image with its handcrafted + wavelet
vector packed underneath, so it travels the same (B, 1, F, T) road as every other model input.

Why packed rows rather than a dataset of (mel, features) tuples: every consumer of a model --
the training loop, mixup, prediction, the `classify` timeline, batch workers, Grad-CAM and band
occlusion, the embedding maps -- already does `model(frontend(waveform))` on one tensor. A
front end that also computes the 78 per-window statistics (57 handcrafted + 21 wavelet columns,
`features.tables.baseline_table`, the very table the rf/mlp baselines read) from the same
waveform keeps all of those paths working unchanged and guarantees that training, analysis and
live classification see identical vectors. The model unpacks the image rows (`image_bands`)
and the vector rows; Grad-CAM and SpecAugment look at the image rows only.

The vector is stored as sign(v) * log1p(|v|): the raw columns span 1e-10 (harmonic variance)
to 1e6 (centroid variance in Hz^2); the log keeps them within ~±20, on the scale of the dB
image, and leaves the model's standardisation (train statistics, `models.fusion`) a
well-conditioned job.

The table costs ~0.2 s per 3-s window on one loaded CPU core, ~30x the log-mel, so vectors are
memoised per window content and rate (one bounded LRU per process, shared by every front end):
training epochs after the first, and the other arms of an ablation sweep, reuse them.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from genre_core.features.spectral import FeatureConfig, LogMel
from genre_core.features.tables import COLUMNS, baseline_table

TABLE_KIND = "handcrafted+wavelet"
VECTOR_DIM = len(COLUMNS[TABLE_KIND])  # 78
MEMO_SIZE = 200_000  # vectors kept (~80 MB with keys): a 100k-window corpus's train set
_MEMO: OrderedDict[bytes, np.ndarray] = OrderedDict()  # blake2b(window bytes, sr) -> (78,) float32


def vector_rows(n_frames: int) -> int:
    """Rows of T frames needed to hold the VECTOR_DIM vector (1 for 3-s windows: T = 130)."""
    return math.ceil(VECTOR_DIM / n_frames)


def pack(image: torch.Tensor, vector: torch.Tensor) -> torch.Tensor:
    """(B, 1, F, T) image + (B, K) vector -> (B, 1, F + ceil(K / T), T), the vector row-major
    in the extra rows, zero-padded."""
    batch, _, _, n_frames = image.shape
    rows = math.ceil(vector.shape[1] / n_frames)
    flat = torch.zeros(batch, rows * n_frames, dtype=image.dtype, device=image.device)
    flat[:, : vector.shape[1]] = vector.to(image.dtype)
    return torch.cat([image, flat.view(batch, 1, rows, n_frames)], dim=2)  # (B, 1, F + R, T)


def unpack(x: torch.Tensor, image_bands: int, dim: int = VECTOR_DIM) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of `pack`: (B, 1, F + R, T) -> ((B, 1, F, T) image, (B, dim) vector)."""
    return x[:, :, :image_bands], x[:, 0, image_bands:, :].flatten(1)[:, :dim]


def signed_log(v: np.ndarray) -> np.ndarray:
    return np.sign(v) * np.log1p(np.abs(v))


class FusionFrontend(nn.Module):
    """Waveforms (B, L) at config.sr -> (B, 1, n_mels + R, T): the LogMel image of the window
    and, in the R rows below, the signed-log 78-column handcrafted + wavelet vector.

    `config` is the LogMel's, so Grad-CAM's frame hop and the app's mel display line up.
    """

    def __init__(self, config: FeatureConfig | None = None) -> None:
        super().__init__()
        self.config = config or FeatureConfig()
        self.mel = LogMel(self.config)

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        image = self.mel(y)  # (B, 1, M, T)
        vector = torch.from_numpy(self.vectors(y)).to(image.device)  # (B, 78)
        return pack(image, vector)

    def vectors(self, y: torch.Tensor) -> np.ndarray:
        """(B, L) windows -> (B, 78) float32 signed-log table rows, memoised by content."""
        audio = np.ascontiguousarray(y.detach().float().cpu().numpy())  # (B, L)
        salt = str(self.config.sr).encode()
        keys = [hashlib.blake2b(row.tobytes() + salt, digest_size=16).digest() for row in audio]
        todo = [i for i, k in enumerate(keys) if k not in _MEMO]
        if todo:
            table = baseline_table(y[todo] if y.device.type != "cpu" else torch.from_numpy(audio[todo]),
                                   self.config.sr, TABLE_KIND)  # (n, 78) float64
            for i, row in zip(todo, signed_log(table).astype(np.float32)):
                _MEMO[keys[i]] = row
        out = np.stack([_MEMO[k] for k in keys])
        for k in keys:
            _MEMO.move_to_end(k)
        while len(_MEMO) > MEMO_SIZE:
            _MEMO.popitem(last=False)
        return out
