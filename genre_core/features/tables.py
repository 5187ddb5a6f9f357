"""The feature table a scikit-learn baseline reads, by input kind: the 57 handcrafted GTZAN
columns, optionally followed by the 21 wavelet sub-band columns. One function serves training,
analysis and live classification, so the three always build the same columns."""

from __future__ import annotations

import numpy as np
import torch

from genre_core.features.handcrafted import HANDCRAFTED_NAMES
from genre_core.features.handcrafted_torch import handcrafted_batch
from genre_core.features.wavelet import WAVELET_NAMES, wavelet_table

COLUMNS: dict[str, tuple[str, ...]] = {
    "handcrafted": HANDCRAFTED_NAMES,
    "handcrafted+wavelet": (*HANDCRAFTED_NAMES, *WAVELET_NAMES),
}


def baseline_table(audio: torch.Tensor | np.ndarray, sr: int, kind: str = "handcrafted") -> np.ndarray:
    """(B, L) windows -> (B, len(COLUMNS[kind])) float64 features."""
    if kind not in COLUMNS:
        raise ValueError(f"no feature table for input kind {kind!r} (have: {', '.join(COLUMNS)})")
    batch = torch.as_tensor(audio)
    table = np.asarray(handcrafted_batch(batch, sr=sr).cpu().numpy(), dtype=np.float64)  # (B, 57)
    if kind == "handcrafted+wavelet":
        table = np.concatenate([table, wavelet_table(batch.cpu().numpy())], axis=1)  # (B, 78)
    return table
