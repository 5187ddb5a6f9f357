"""The one output type every torch model returns, so Grad-CAM, projections and the app
work with any model in the registry."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (B, n_classes), unnormalised
    embedding: torch.Tensor  # (B, D), penultimate layer, before the classifier


class GenreModel(nn.Module):
    """Base class of every torch genre model.

    Subclasses set `input_kind` (which feature module feeds them: "logmel", "mfcc" or
    "musicnn") and `gradcam_layer` (dotted name of the last convolutional layer, for
    captum's LayerGradCam; None for models without convolutions).
    Input is always a feature image `x` of shape (B, 1, F, T): F feature bins, T frames.
    """

    input_kind: str = "logmel"
    gradcam_layer: str | None = None

    def forward(self, x: torch.Tensor) -> ModelOutput:  # pragma: no cover - interface
        raise NotImplementedError

    def layer(self, dotted: str) -> nn.Module:
        """The submodule named by a dotted path (e.g. "features.3")."""
        return self.get_submodule(dotted)
