"""Training a frozen-backbone model (a probe): the head alone, on cached embeddings.

The Trainer runs unchanged on a `HeadOnly` module, an identity front end and `EmbeddingSet`s,
so early stopping, exact-resume checkpoints, seeds and DDP behave as for any model. The
head's parameters are the full model's, so after training the full network (backbone +
head) is what the run stores: loading, Grad-CAM and live classification need no change.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from torch import nn

from genre_core.features.augment import AugmentConfig
from genre_core.features.cache import ShardCache
from genre_core.features.embedding_cache import EmbeddingSet, embed_windows
from genre_core.features.windows import WindowSet
from genre_core.models.base import ModelOutput
from genre_core.train.inference import batch_size
from genre_core.train.loop import LoopSettings


class HeadOnly(nn.Module):
    """(B, D) embedding -> the full model's ModelOutput, through its head only.

    Registers just the head, so checkpoints and best-weight copies hold the small part that
    trains; the backbone is reached through the bound method, outside the module tree."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.head = model.head
        self._from_embedding = model.from_embedding

    def forward(self, emb: torch.Tensor) -> ModelOutput:
        return self._from_embedding(emb)  # emb: (B, D)


def embedding_augment(augment: AugmentConfig) -> AugmentConfig:
    """What still means something on embeddings: mixup (convex combinations of vectors and
    targets). Waveform and SpecAugment stages need the audio, which the head never sees."""
    return dataclasses.replace(AugmentConfig.none(), mixup_alpha=augment.mixup_alpha)


def head_training(model: nn.Module, frontend: nn.Module, windows: dict[str, WindowSet],
                  *, shas: dict[str, Sequence[str]], cache: ShardCache, settings: LoopSettings,
                  device: torch.device, progress: bool
                  ) -> tuple[HeadOnly, nn.Module, dict[str, EmbeddingSet], LoopSettings]:
    """(module to train, its front end, its inputs per side, its settings) for a probe."""
    sets = {side: embed_windows(model, frontend, w, shas=shas[side], cache=cache, device=device, batch_size=batch_size(device), progress=progress,
                                desc=f"embed {side}")
            for side, w in windows.items()}
    settings = dataclasses.replace(settings, augment=embedding_augment(settings.augment))
    return HeadOnly(model), nn.Identity(), sets, settings
