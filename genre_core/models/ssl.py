"""Genre models on a self-supervised encoder (`python -m training pretrain`, train/pretrain.py).

The encoder is a CNN-family ConvNet (models/cnn.py) without its head: log-mel window ->
pooled (B, D) vector. Pretraining puts a projection head on it (`ContrastiveNet`) and trains
both on pairs of segments of one track; what it keeps, the backbone, is the encoder alone.
`SSLGenre` is that encoder under a linear genre head: frozen (`ssl_probe`, trained on cached
embeddings like musicnn_probe) or trainable (`ssl_finetune`). Built without pretrained weights
the encoder is randomly initialised: the control a pretraining must beat.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from genre_core.models.cnn import SPECS as CNN_SPECS, ConvNet
from genre_core.models.base import GenreModel, ModelOutput, ModelSpec

ENCODERS: dict[str, ModelSpec] = CNN_SPECS  # the CNN family: cnn_small, cnn, vgg, resnet
DEFAULT_ENCODER = "cnn"


def encoder_net(name: str, n_features: int, tiny: bool) -> ConvNet:
    """An untrained CNN-family encoder: call `.pooled(x)`, (B, 1, F, T) -> (B, pooled_dim)."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; valid encoders: {', '.join(ENCODERS)}")
    net = ENCODERS[name].build(1, n_features, tiny)
    net.head = nn.Identity()  # no genre head: its weights would be dead parameters here
    return net


class ContrastiveNet(nn.Module):
    """Encoder + projection MLP, as SimCLR/COLA: the contrastive loss is computed on the
    projection, so the encoder's pooled vector keeps what the loss would otherwise throw away
    (SimCLR found the pre-projection layer the better representation)."""

    def __init__(self, encoder: ConvNet, proj_dim: int):
        super().__init__()
        self.encoder = encoder
        dim = encoder.pooled_dim
        self.project = nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Linear(dim, proj_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.encoder.pooled(x))  # (B, 1, F, T) -> (B, proj_dim)


class SSLGenre(GenreModel):
    """A (pretrained) encoder + a linear head on its standardised pooled vector; the embedding
    projections and the app show is that pooled vector."""

    input_kind = "logmel"

    def __init__(self, n_classes: int, n_features: int, *, encoder: str = DEFAULT_ENCODER, tiny: bool = False,
                 finetune: bool = False):
        super().__init__()
        self.finetune = finetune
        self.encoder = encoder_net(encoder, n_features, tiny)
        self.gradcam_layer = f"encoder.{self.encoder.gradcam_layer}"
        dim = self.encoder.pooled_dim
        # The pooled vector mixes means and maxima of ReLU maps at very different scales; the
        # BatchNorm standardises them so one learning rate suits the linear layer.
        self.head = nn.Sequential(nn.BatchNorm1d(dim), nn.Dropout(0.3 if finetune else 0.0), nn.Linear(dim, n_classes))
        if not finetune:
            # Frozen but not under no_grad: Grad-CAM still needs activation gradients.
            self.encoder.requires_grad_(False)

    def train(self, mode: bool = True) -> "SSLGenre":
        super().train(mode)
        if not self.finetune:
            self.encoder.eval()  # a probe keeps the pretrained batch-norm statistics
        return self

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return self.from_embedding(self.embed(x))

    # -- the frozen-backbone protocol (see GenreModel): a probe trains on cached embeddings

    @property
    def frozen_backbone(self) -> bool:
        return not self.finetune

    @property
    def backbone_id(self) -> str:
        """Names the encoder's weights themselves (a digest), so a pretrained encoder and a
        random one, or two pretrainings, never share cached embeddings."""
        digest = hashlib.sha256()
        for name, tensor in self.encoder.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return f"ssl-{digest.hexdigest()[:16]}"

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, 1, F, T) -> the encoder's pooled vector (B, D)."""
        return self.encoder.pooled(x)

    def from_embedding(self, pooled: torch.Tensor) -> ModelOutput:
        return ModelOutput(logits=self.head(pooled), embedding=pooled)


def _builder(finetune: bool):
    def build(n_classes: int, n_features: int, tiny: bool = False, backbone: dict | None = None) -> SSLGenre:
        """`backbone` (TrainConfig.backbone) names the encoder architecture; its weights are
        loaded by the training code (train/backbone.py) or come with the run's model file.
        None: the default encoder, randomly initialised, at `tiny` width."""
        backbone = backbone or {}
        return SSLGenre(n_classes, n_features, encoder=backbone.get("encoder", DEFAULT_ENCODER),
                        tiny=bool(backbone.get("tiny", tiny)), finetune=finetune)

    return build


SPECS: dict[str, ModelSpec] = {
    "ssl_probe": ModelSpec(
        "ssl_probe", "ssl", "logmel", _builder(False),
        "frozen self-supervised encoder (pretrain --backbone) + linear head", needs_backbone=True),
    "ssl_finetune": ModelSpec(
        "ssl_finetune", "ssl", "logmel", _builder(True),
        "self-supervised encoder (pretrain --backbone) fine-tuned with a linear head", needs_backbone=True),
}
