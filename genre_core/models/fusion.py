"""Fusion of a mel-spectrogram CNN with the handcrafted + wavelet statistics of the same window
(the Northeastern GTZAN study's best hybrid, less its pretrained-embedding branch).

Each branch ends in a P-dim projection; the projections are concatenated before the shared
EmbeddingHead. Branch sets are registry entries, so an ablation sweep is a list of names:

    fusion       mel CNN + handcrafted/wavelet MLP
    fusion_mel   the mel branch alone (the control: same CNN, same head, same input)
    fusion_hc    the handcrafted/wavelet branch alone

All three read the same packed input (features/fusion_input.py), so every arm of an ablation
sees identical windows; a branch that is off is not built, so its parameters do not exist.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from genre_core.features.fusion_input import VECTOR_DIM, unpack
from genre_core.models.base import GenreModel, ModelOutput, ModelSpec
from genre_core.models.cnn import EmbeddingHead, GlobalMeanMax, conv_block

BRANCHES = ("mel", "hc")
HC_DROP = 0.5  # share of training windows whose handcrafted projection the head does not see


class TrainStandardise(nn.Module):
    """(B, K) -> (B, K) standardised with the mean and variance of every training vector seen.

    Sums are float64 buffers, updated in train mode only, so the statistics are the training
    set's (exact after the first epoch when augmentation is off), travel in the state dict and
    serve evaluation, analysis and live classification unchanged. Unlike BatchNorm it does not
    standardise by the batch (a last batch of one window would fail) and never sees val/test.
    """

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("total", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("total_sq", torch.zeros(dim, dtype=torch.float64))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                d = v.detach().double()
                self.count += len(d)
                self.total += d.sum(0)
                self.total_sq += d.square().sum(0)
        n = self.count.clamp(min=1)
        mean = self.total / n
        var = (self.total_sq / n - mean.square()).clamp(min=0)
        return ((v.double() - mean) / (var + self.eps).sqrt()).to(v.dtype)


class MelBranch(nn.Module):
    """(B, 1, F, T) log-mel -> (B, P): input BatchNorm, the `cnn` model's four conv blocks,
    global mean+max pooling, a linear projection."""

    def __init__(self, widths: tuple[int, ...], proj: int) -> None:
        super().__init__()
        self.input_norm = nn.BatchNorm2d(1)  # learns the dB scale, as ConvNet's does
        self.features = nn.Sequential(*[conv_block(c_in, c_out)
                                        for c_in, c_out in zip((1, *widths[:-1]), widths)])
        self.pool = GlobalMeanMax()
        self.project = nn.Sequential(nn.Linear(2 * widths[-1], proj), nn.ReLU())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.project(self.pool(self.features(self.input_norm(image))))  # (B, P)


class VectorBranch(nn.Module):
    """(B, 78) signed-log handcrafted + wavelet vector -> (B, P): train-statistics
    standardisation, then a two-layer MLP."""

    def __init__(self, hidden: int, proj: int, dropout: float) -> None:
        super().__init__()
        self.standardise = TrainStandardise(VECTOR_DIM)
        self.mlp = nn.Sequential(nn.Linear(VECTOR_DIM, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, proj), nn.ReLU())

    def forward(self, vector: torch.Tensor) -> torch.Tensor:
        # Standardised in fp32 even under autocast: float64 sums, bf16 would round the z-scores.
        with torch.autocast(vector.device.type, enabled=False):
            z = self.standardise(vector.float())  # (B, 78)
        return self.mlp(z)  # (B, P)


class FusionNet(GenreModel):
    """Packed fusion input (B, 1, n_mels + R, T) -> ModelOutput over the chosen branches.

    `image_bands` (= n_mels) tells Grad-CAM and SpecAugment where the image ends; Grad-CAM
    runs on the mel branch's last conv block (none for the vector-only model).
    """

    input_kind = "fusion"

    def __init__(self, n_classes: int, n_features: int, tiny: bool = False,
                 branches: tuple[str, ...] = BRANCHES) -> None:
        super().__init__()
        unknown = set(branches) - set(BRANCHES)
        if not branches or unknown:
            raise ValueError(f"fusion branches must be a non-empty subset of {BRANCHES}, got {branches}")
        self.branches, self.image_bands = tuple(b for b in BRANCHES if b in branches), n_features
        widths = (8, 16, 16, 32) if tiny else (32, 64, 128, 256)
        proj = 32 if tiny else 128  # per branch: equal say for each before the head
        if "mel" in self.branches:
            self.mel_branch = MelBranch(widths, proj)
            self.gradcam_layer = "mel_branch.features.3.act1"
        if "hc" in self.branches:
            self.hc_branch = VectorBranch(64 if tiny else 256, proj, 0.2)
        self.head = EmbeddingHead(proj * len(self.branches), 32 if tiny else 128, n_classes, 0.3)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        image, vector = unpack(x, self.image_bands)  # (B, 1, F, T), (B, 78)
        parts = []
        if "mel" in self.branches:
            parts.append(self.mel_branch(image))  # (B, P)
        if "hc" in self.branches:
            hc = self.hc_branch(vector).to(parts[0].dtype if parts else vector.dtype)  # (B, P)
            if self.training and len(self.branches) > 1:
                # Branch dropout: the handcrafted branch fits the training artists within 3
                # epochs, and a head that can lean on it stops asking the mel branch; hiding it
                # from half the training windows keeps the mel branch learning.
                hc = hc * (torch.rand(len(hc), 1, device=hc.device) >= HC_DROP).to(hc.dtype)
            parts.append(hc)
        return self.head(torch.cat(parts, dim=1))  # (B, P * n_branches) -> logits, embedding


SPECS: dict[str, ModelSpec] = {
    "fusion": ModelSpec(
        "fusion", "fusion", "fusion", partial(FusionNet, branches=("mel", "hc")),
        "mel CNN + handcrafted/wavelet MLP, projections concatenated before the head",
    ),
    "fusion_mel": ModelSpec(
        "fusion_mel", "fusion", "fusion", partial(FusionNet, branches=("mel",)),
        "fusion ablation: the mel CNN branch alone",
    ),
    "fusion_hc": ModelSpec(
        "fusion_hc", "fusion", "fusion", partial(FusionNet, branches=("hc",)),
        "fusion ablation: the handcrafted + wavelet branch alone",
    ),
}
