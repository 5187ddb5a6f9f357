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
    if kind == "fusion":  # log-mel + handcrafted/wavelet rows; F counts the image rows only
        from genre_core.features.fusion_input import FusionFrontend

        return FusionFrontend(features), features.sr, features.n_mels
    return build_feature(kind, features), features.sr, feature_bins(kind, features)
