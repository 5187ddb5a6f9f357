"""musicnn (Pons & Serra, 2019) in PyTorch: the pretrained taggers (musicnn and VGG variants,
weights from the `musicnn` wheel's TF checkpoints) and genre models that transfer them. Their
input image, `MusicnnMel`, lives with the other feature extractors in features/spectral.py.

The layers mirror musicnn/models.py of musicnn==0.1.0 exactly (padding, layer order,
pooling, flatten order), so the converted checkpoints reproduce the original outputs.
Feature images here are (B, 1, F, T): F = 96 mel bands, T frames (TF's models are
(B, T, F, 1) NHWC; `musicnn_weights` transposes the kernels accordingly).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from genre_core.features.spectral import MUSICNN_N_MELS as N_MELS
from genre_core.features.spectral import MUSICNN_SR, MUSICNN_WINDOW_FRAMES as WINDOW_FRAMES, MusicnnMel
from genre_core.models.base import GenreModel, ModelOutput, ModelSpec
from genre_core.models.musicnn.pooled_front import (
    layer_by_layer_needed, temporal_branches, timbral_branch,
)
from genre_core.models.musicnn.weights import pretrained_state_dict, tag_names


# TF's batch-norm defaults: epsilon 1e-3; moving average decay 0.99 = torch momentum 0.01.
TF_BN_EPS = 1e-3
TF_BN_MOMENTUM = 0.01


@dataclass
class TaggerOutput:
    """Everything a pretrained tagger computes for one batch of 3-s windows."""

    logits: torch.Tensor  # (B, 50) before the sigmoid
    tags: torch.Tensor  # (B, 50) sigmoid tag probabilities
    penultimate: torch.Tensor  # (B, 200) musicnn's dense layer after BN; (B, 256) pool5 for VGG
    max_pool: torch.Tensor | None = None  # (B, 753) max over time of the mid-end features
    mean_pool: torch.Tensor | None = None  # (B, 753) mean over time of the same


def _bn2d(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=TF_BN_EPS, momentum=TF_BN_MOMENTUM)


def _bn1d(channels: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(channels, eps=TF_BN_EPS, momentum=TF_BN_MOMENTUM)


class _FrontBranch(nn.Module):
    """timbral_block / tempo_block: conv -> ReLU -> BN -> max over all frequencies."""

    def __init__(self, filters: int, kernel: tuple[int, int], time_pad: tuple[int, int]):
        super().__init__()
        self.time_pad = time_pad
        self.conv = nn.Conv2d(1, filters, kernel)  # kernel = (mel bands, frames)
        self.act = nn.ReLU()  # a module, so Grad-CAM can hook the rectified map
        self.bn = _bn2d(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.pad(x, self.time_pad)  # (B, 1, F, T + pads): TF pads time only
        h = self.bn(self.act(self.conv(h)))  # (B, C, F', T)
        return h.amax(dim=2)  # (B, C, T)


class _MidBlock(nn.Module):
    """musicnn's mid-end layer: a conv over all channels (a 1-D conv in time), ReLU, BN."""

    def __init__(self, channels_in: int, filters: int):
        super().__init__()
        self.conv = nn.Conv1d(channels_in, filters, 7, padding=3)
        self.bn = _bn1d(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))  # (B, filters, T)


def _same_pad(kernel: int) -> tuple[int, int]:
    # TF "same" with stride 1 puts the odd extra padding after: 128 -> (63, 64).
    return ((kernel - 1) // 2, kernel // 2)


class _Tagger(nn.Module):
    """What both tagger architectures share: windowed tagging of long inputs."""

    def taggram(self, x: torch.Tensor, hop_frames: int = WINDOW_FRAMES) -> torch.Tensor:
        """Per-window tag probabilities over time: (B, 1, 96, T) -> (B, n_windows, 50)."""
        return taggram(self, x, hop_frames)


class MusicnnTagger(_Tagger):
    """The musicnn architecture ('7774timbraltemporal' front end, dense mid end, global-pool
    back end). Input (B, 1, 96, T), any T (trained with T = 187)."""

    def __init__(self, n_tags: int = 50, midend_filters: int = 64, backend_units: int = 200):
        super().__init__()
        self.input_bn = _bn2d(1)
        # int(1.6 * 128) = 204 timbral and int(1.6 * 32) = 51 temporal filters, as models.py.
        self.timbral_74 = _FrontBranch(204, (int(0.4 * N_MELS), 7), (3, 3))
        self.timbral_77 = _FrontBranch(204, (int(0.7 * N_MELS), 7), (3, 3))
        self.temporal_128 = _FrontBranch(51, (1, 128), _same_pad(128))
        self.temporal_64 = _FrontBranch(51, (1, 64), _same_pad(64))
        self.temporal_32 = _FrontBranch(51, (1, 32), _same_pad(32))
        front = 2 * 204 + 3 * 51  # 561
        self.midend1 = _MidBlock(front, midend_filters)
        self.midend2 = _MidBlock(midend_filters, midend_filters)
        self.midend3 = _MidBlock(midend_filters, midend_filters)
        self.pooled_dim = front + 3 * midend_filters  # 753 per pooling
        self.pool_bn = _bn1d(2 * self.pooled_dim)
        self.dense = nn.Linear(2 * self.pooled_dim, backend_units)
        self.dense_bn = _bn1d(backend_units)
        self.classifier = nn.Linear(backend_units, n_tags)
        self.dropout = nn.Dropout(0.5)

    def _front_end(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 96, T) -> the five branches' outputs (B, 561, T); at inference pooled
        over frequency before the activation (pooled_front: same values, ~2x faster)."""
        timbral = (self.timbral_74, self.timbral_77)
        temporal = (self.temporal_128, self.temporal_64, self.temporal_32)
        if layer_by_layer_needed(timbral + temporal):
            return torch.cat([branch(x) for branch in timbral + temporal], dim=1)
        outputs = [timbral_branch(b, x) for b in timbral] + temporal_branches(temporal, x)
        return torch.cat(outputs, dim=1)

    def forward(self, x: torch.Tensor) -> TaggerOutput:
        x = self.input_bn(x)  # (B, 1, 96, T)
        front = self._front_end(x)  # (B, 561, T)
        mid1 = self.midend1(front)  # (B, 64, T)
        mid2 = self.midend2(mid1) + mid1  # residual connections, as models.py
        mid3 = self.midend3(mid2) + mid2
        mid = torch.cat([front, mid1, mid2, mid3], dim=1)  # (B, 753, T)
        max_pool, mean_pool = mid.amax(dim=2), mid.mean(dim=2)  # (B, 753) each
        # TF flattens concat([max, mean], axis=2) of shape (B, 753, 2): values interleave.
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)  # (B, 1506)
        hidden = self.dropout(self.pool_bn(pooled))
        penultimate = self.dense_bn(F.relu(self.dense(hidden)))  # (B, 200)
        logits = self.classifier(self.dropout(penultimate))  # (B, 50)
        return TaggerOutput(logits, torch.sigmoid(logits), penultimate, max_pool, mean_pool)


class VggTagger(_Tagger):
    """musicnn's VGG baseline: five 3x3 conv layers of 128 filters with max pooling.
    Input (B, 1, 96, 187): the dense layer fixes the input length to 3 s."""

    def __init__(self, n_tags: int = 50, filters: int = 128):
        super().__init__()
        self.input_bn = _bn2d(1)
        for i in range(1, 6):
            channels_in = 1 if i == 1 else filters
            self.add_module(f"conv{i}", nn.Conv2d(channels_in, filters, 3, padding=1))
            self.add_module(f"act{i}", nn.ReLU())
            self.add_module(f"bn{i}", _bn2d(filters))
        # TF pool sizes are (time, freq); here (freq, time). "valid" pooling = floor mode.
        self.pools = nn.ModuleList([
            nn.MaxPool2d((1, 4), stride=(2, 2)), nn.MaxPool2d(2, 2), nn.MaxPool2d(2, 2),
            nn.MaxPool2d(2, 2), nn.MaxPool2d(4, 4),
        ])
        self.classifier = nn.Linear(2 * filters, n_tags)
        self.dropout = nn.Dropout(0.25)
        self.dropout_out = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> TaggerOutput:
        h = self.input_bn(x)  # (B, 1, 96, 187)
        for i, pool in enumerate(self.pools, start=1):
            h = self.dropout(h) if i > 1 else h
            conv, act, bn = (self.get_submodule(f"{k}{i}") for k in ("conv", "act", "bn"))
            # (F, T) after each pool: (48, 92), (24, 46), (12, 23), (6, 11), (1, 2)
            h = pool(bn(act(conv(h))))  # (B, 128, F_i, T_i)
        # h: (B, 128, 1, 2); flatten in TF's NHWC (time, freq, channel) order for the dense.
        flat = h.permute(0, 3, 2, 1).flatten(1)  # (B, 2 * 1 * 128)
        logits = self.classifier(self.dropout_out(flat))
        return TaggerOutput(logits, torch.sigmoid(logits), flat)


def build_tagger(variant: str) -> nn.Module:
    """An untrained tagger with the architecture of `variant` (see musicnn_weights.VARIANTS)."""
    if "vgg" in variant:
        return VggTagger()
    if variant == "MSD_musicnn_big":
        return MusicnnTagger(midend_filters=512, backend_units=500)
    return MusicnnTagger()


def load_tagger(variant: str = "MSD_musicnn", cache_dir: Path | str | None = None,
                use_cache: bool = True) -> nn.Module:
    """The pretrained tagger `variant` in eval mode (moving batch-norm statistics).

    Weights come from the musicnn wheel, cached under `cache_dir` (default
    `musicnn_weights.default_cache_dir()`). Raises MusicnnWeightsMissing with the pip command
    when the wheel is not installed.
    """
    model = build_tagger(variant)
    state = pretrained_state_dict(variant, cache_dir=cache_dir, use_cache=use_cache)
    try:
        model.load_state_dict(state)
    except RuntimeError:
        # A cache written by older code can be valid for its wheel yet not fit this module.
        model.load_state_dict(pretrained_state_dict(variant, cache_dir=cache_dir, use_cache=use_cache, refresh=True))
    return model.eval()


def taggram(tagger: nn.Module, x: torch.Tensor, hop_frames: int = WINDOW_FRAMES) -> torch.Tensor:
    """Tag probabilities over time: x (B, 1, 96, T) -> (B, n_windows, 50).

    Windows of 187 frames start every `hop_frames` (default: no overlap, as the wheel's
    extractor); a trailing part shorter than a window is dropped, as the wheel does.
    """
    if x.shape[-1] < WINDOW_FRAMES:
        raise ValueError(f"need at least {WINDOW_FRAMES} frames (3 s), got {x.shape[-1]}")
    windows = x.unfold(3, WINDOW_FRAMES, hop_frames)  # (B, 1, 96, W, 187)
    batch, _, bands, n_windows, frames = windows.shape
    flat = windows.permute(0, 3, 1, 2, 4)  # (B, W, 1, 96, 187)
    flat = flat.reshape(batch * n_windows, 1, bands, frames)  # (B*W, 1, 96, 187)
    probs = tagger(flat).tags  # (B*W, 50)
    return probs.view(batch, n_windows, -1)  # (B, W, 50)


# ---------------------------------------------------------------------------- genre transfer


@dataclass(frozen=True)
class MusicnnTransferConfig:
    """How a pretrained tagger becomes a genre classifier."""

    variant: str = "MSD_musicnn"  # MSD tags include many genres, the closest source task
    features: str = "penultimate"  # head input: "penultimate" (200-d) or "pooled" (2 x 753)
    hidden: int = 128  # width of the head's hidden layer; 0 = linear head
    dropout: float = 0.3
    finetune: bool = False  # False: frozen backbone (a probe); True: everything trains


PROBE = MusicnnTransferConfig()
# musicnn's own back end uses dropout 0.5 before its output layer; fine-tuning keeps it.
FINETUNE = MusicnnTransferConfig(hidden=0, dropout=0.5, finetune=True)


class MusicnnGenre(GenreModel):
    """Pretrained musicnn tagger + trainable head -> genre logits; embedding = the tagger's
    penultimate vector (200-d for musicnn)."""

    input_kind = "musicnn"
    # musicnn's last convs (mid end) are 1-D over time, so they give no frequency map;
    # timbral_74 is the largest front-end branch (204 of 561 channels) and keeps a frequency
    # axis: its rectified map is (B, 204, 59, T).
    gradcam_layer = "backbone.timbral_74.act"

    def __init__(self, n_classes: int, config: MusicnnTransferConfig = PROBE):
        super().__init__()
        self.config = config
        self.backbone = load_tagger(config.variant)
        if "vgg" in config.variant:
            self.gradcam_layer = "backbone.act5"  # (B, 128, 6, 11) before the last pool
        if not config.finetune:
            # Frozen but not under no_grad: Grad-CAM still needs activation gradients.
            self.backbone.requires_grad_(False)
        in_dim = self._head_input_dim()
        layers: list[nn.Module] = []
        if config.features == "pooled":
            layers.append(nn.BatchNorm1d(in_dim))  # max and mean pools differ in scale
        if config.hidden:
            layers += [nn.Dropout(config.dropout), nn.Linear(in_dim, config.hidden), nn.ReLU()]
            in_dim = config.hidden
        layers += [nn.Dropout(config.dropout), nn.Linear(in_dim, n_classes)]
        self.head = nn.Sequential(*layers)

    def _head_input_dim(self) -> int:
        if self.config.features == "pooled":
            if not isinstance(self.backbone, MusicnnTagger):
                raise ValueError("features='pooled' needs a musicnn (not VGG) variant")
            return 2 * self.backbone.pooled_dim
        if self.config.features != "penultimate":
            raise ValueError(f"features must be 'penultimate' or 'pooled', not "
                             f"{self.config.features!r}")
        return self.backbone.classifier.in_features

    def train(self, mode: bool = True) -> "MusicnnGenre":
        super().train(mode)
        if not self.config.finetune:
            self.backbone.eval()  # a probe keeps the pretrained batch-norm statistics
        return self

    def forward(self, x: torch.Tensor) -> ModelOutput:
        out = self.backbone(x)  # x: (B, 1, 96, T)
        return ModelOutput(logits=self.head(self._head_input(out)), embedding=out.penultimate,
                           pooled=out.mean_pool)

    def _head_input(self, out: TaggerOutput) -> torch.Tensor:
        if self.config.features == "pooled":
            return torch.cat([out.max_pool, out.mean_pool], dim=1)  # (B, 1506)
        return out.penultimate  # (B, 200)

    # -- the frozen-backbone protocol (see GenreModel): a probe trains on cached embeddings

    @property
    def frozen_backbone(self) -> bool:
        return not self.config.finetune

    @property
    def backbone_id(self) -> str:
        return f"musicnn-{self.config.variant}-{self.config.features}"

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """What the head reads: x (B, 1, 96, T) -> (B, D), D = 200 (penultimate) or 1506."""
        return self._head_input(self.backbone(x))

    def from_embedding(self, feats: torch.Tensor) -> ModelOutput:
        """`forward` from `embed`'s output (B, D). The embedding returned is the head input:
        for the default probe that is the penultimate vector, as `forward` returns."""
        return ModelOutput(logits=self.head(feats), embedding=feats)


def _check_features(n_features: int) -> None:
    if n_features != N_MELS:
        raise ValueError(f"musicnn models take {N_MELS} mel bands (MusicnnMel), "
                         f"got n_features={n_features}")


def build_musicnn_probe(n_classes: int, n_features: int = N_MELS,
                        tiny: bool = False) -> MusicnnGenre:
    """Frozen pretrained MSD musicnn + small trainable head. `tiny` changes nothing: only
    the head trains, which is already quick on a CPU."""
    _check_features(n_features)
    return MusicnnGenre(n_classes, PROBE)


def build_musicnn_finetune(n_classes: int, n_features: int = N_MELS,
                           tiny: bool = False) -> MusicnnGenre:
    """Pretrained MSD musicnn, every layer trainable (meant for a GPU). `tiny` is ignored."""
    _check_features(n_features)
    return MusicnnGenre(n_classes, FINETUNE)


SPECS: dict[str, ModelSpec] = {
    "musicnn_probe": ModelSpec(
        "musicnn_probe", "pretrained", "musicnn", build_musicnn_probe,
        "frozen musicnn (MSD) penultimate embedding + MLP head"),
    "musicnn_finetune": ModelSpec(
        "musicnn_finetune", "pretrained", "musicnn", build_musicnn_finetune,
        "musicnn (MSD) fine-tuned end to end with a linear head"),
}

__all__ = [
    "MUSICNN_SR", "SPECS", "WINDOW_FRAMES", "MusicnnGenre", "MusicnnMel",
    "MusicnnTagger", "MusicnnTransferConfig", "TaggerOutput", "VggTagger", "build_tagger",
    "load_tagger", "tag_names", "taggram",
]
