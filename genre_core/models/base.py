"""The one output type every torch model returns, so Grad-CAM, projections and the app
work with any model in the registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (B, n_classes), unnormalised
    embedding: torch.Tensor  # (B, D), penultimate layer, before the classifier
    # (B, P) another representation worth mapping, or None: musicnn's mean-pooled 753-d
    # mid-end features, which describe timbre and rhythm before any tag decision.
    pooled: torch.Tensor | None = None


class GenreModel(nn.Module):
    """Base class of every torch genre model.

    Subclasses set `input_kind` (which feature module feeds them: "logmel", "mfcc" or
    "musicnn") and `gradcam_layer` (dotted name of the last convolutional layer, for
    captum's LayerGradCam; None for models without convolutions).
    Input is always a feature image `x` of shape (B, 1, F, T): F feature bins, T frames.
    A model whose input carries more than the image (the fusion models pack a feature vector
    below it) sets `image_bands`, the rows that are the image: Grad-CAM, band occlusion and
    SpecAugment look at those alone.
    """

    input_kind: str = "logmel"
    gradcam_layer: str | None = None
    # True for a model whose backbone never trains (a probe). Such a model also has
    # `backbone_id` (a name for what `embed` computes, part of the embedding cache key),
    # `embed(x) -> (B, D)`, a `head` module holding every trainable parameter, and
    # `from_embedding((B, D)) -> ModelOutput`, equal to `forward(x)` in eval mode. Training
    # then reads embeddings extracted once (genre_core.features.embedding_cache).
    frozen_backbone: bool = False

    def forward(self, x: torch.Tensor) -> ModelOutput:  # pragma: no cover - interface
        raise NotImplementedError

    def layer(self, dotted: str) -> nn.Module:
        """The submodule named by a dotted path (e.g. "features.3")."""
        return self.get_submodule(dotted)


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the model registry `genre_core.models.MODELS`.

    `input_kind` names what the model eats: "handcrafted" (a (N, 57) numpy table, sklearn
    estimators) or "handcrafted+wavelet" ((N, 78), see features/tables.py), or a torch feature module: "logmel", "mfcc", "musicnn", "fusion" (input (B, 1, F, T)).
    For torch models `build(n_classes, n_features, tiny)` returns a GenreModel; for
    sklearn baselines `build(seed)` returns an unfitted estimator.
    """

    name: str
    family: str  # "baseline" | "cnn" | "rnn" | "crnn" | "transformer" | "pretrained" | "fusion" | "ssl"
    input_kind: str
    build: Callable[..., Any]
    description: str = ""
    # Built on a pretrained encoder: `build(n_classes, n_features, tiny, backbone)` takes
    # TrainConfig.backbone, and `train` asks for --backbone (models/ssl.py).
    needs_backbone: bool = False

    @property
    def is_torch(self) -> bool:
        return not self.input_kind.startswith("handcrafted")  # the sklearn tables


def load_weights(model: nn.Module, state: dict, source: str) -> None:
    """`model.load_state_dict(state)`, or a one-line ValueError naming `source` when the weights
    do not fit: a run trained before its family's architecture changed (the rnn's width, the
    transformer's convolutional stem) must say so and ask for a retrain, not print torch's list
    of every missing and unexpected key."""
    try:
        model.load_state_dict(state)
    except RuntimeError:
        ours = model.state_dict()
        missing, unexpected = ours.keys() - state.keys(), state.keys() - ours.keys()
        reshaped = [k for k in ours.keys() & state.keys() if ours[k].shape != state[k].shape]
        raise ValueError(f"{source}: its weights do not fit today's {type(model).__name__} "
                         f"({len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} reshaped "
                         "tensors): trained before this model family changed; retrain it") from None


_FOLDABLE = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d))


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """Fold, in place, each BatchNorm that directly follows a convolution inside an
    nn.Sequential (where order is execution order) into that convolution's weights and
    replace it with an Identity; returns `model`, in eval mode. For inference only: the
    result equals the original in eval mode within float32 rounding (~1e-6 relative) and saves
    a pass over every activation per BatchNorm (about a fifth of the demo cnn's CPU forward
    time). Names of other layers (Grad-CAM's "features.3.act1") are untouched."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model.eval()
    for sequential in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(sequential._modules)
        for first, second in zip(names, names[1:]):
            conv, norm = sequential._modules[first], sequential._modules[second]
            if any(type(conv) is c and type(norm) is b for c, b in _FOLDABLE) and norm.track_running_stats:
                sequential._modules[first] = fuse_conv_bn_eval(conv, norm)
                sequential._modules[second] = nn.Identity()
    return model
