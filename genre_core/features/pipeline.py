"""The input pipeline of a model: which torch front end turns its waveform windows into the
features it reads (log-mel, MFCC, the musicnn mel), at which sample rate, with how many bins."""

from __future__ import annotations

import torch

from genre_core.features.spectral import FeatureConfig, build_feature, feature_bins


def input_pipeline(kind: str, features: FeatureConfig) -> tuple[torch.nn.Module, int, int]:
    """(front end waveform -> (B, 1, F, T), its sample rate, F) for an input kind."""
    if kind == "musicnn":
        from genre_core.features.spectral import MUSICNN_SR, MusicnnMel

        return MusicnnMel(), MUSICNN_SR, 96
    return build_feature(kind, features), features.sr, feature_bins(kind, features)
