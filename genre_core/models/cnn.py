"""Convolutional models over feature images (B, 1, F, T): the small published GTZAN CNN, a
4-block conv net, a VGG-style net and a small ResNet.

Also home of the pieces the other families share (`conv_block`, `EmbeddingHead`,
`GlobalMeanMax`), so each model file only says what is particular to it.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from genre_core.models.base import GenreModel, ModelOutput, ModelSpec


def conv_block(
    c_in: int,
    c_out: int,
    *,
    n_convs: int = 1,
    pool: tuple[int, int] | None = (2, 2),
    batch_norm: bool = True,
) -> nn.Sequential:
    """`n_convs` x (3x3 conv, BatchNorm, ReLU), then max-pool: (B, c_in, F, T) ->
    (B, c_out, F / pool[0], T / pool[1]).

    Children are named conv1, bn1, act1, ..., pool, so Grad-CAM can name a layer as
    "features.3.act2". ReLUs are not in-place: captum's layer hooks need the activation
    tensor intact.
    """
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i in range(1, n_convs + 1):
        # No conv bias before BatchNorm: BN's shift makes it redundant.
        layers[f"conv{i}"] = nn.Conv2d(
            c_in if i == 1 else c_out, c_out, kernel_size=3, padding=1, bias=not batch_norm
        )
        if batch_norm:
            layers[f"bn{i}"] = nn.BatchNorm2d(c_out)
        layers[f"act{i}"] = nn.ReLU()
    if pool is not None:
        layers["pool"] = nn.MaxPool2d(pool)
    return nn.Sequential(layers)


class GlobalMeanMax(nn.Module):
    """(B, C, F, T) -> (B, 2C): mean and max over all positions, so any clip length works.

    Mean says "how much of this pattern", max says "did it occur at all"; genres differ in both.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1)  # (B, 2C)


class EmbeddingHead(nn.Module):
    """(B, D_in) pooled features -> ModelOutput: dropout, Linear + ReLU to the (B, D)
    embedding that projections and the app use, dropout, Linear to (B, n_classes) logits."""

    def __init__(self, in_dim: int, emb_dim: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_dim, emb_dim), nn.ReLU())
        self.classify = nn.Sequential(nn.Dropout(dropout), nn.Linear(emb_dim, n_classes))

    def forward(self, x: torch.Tensor) -> ModelOutput:
        embedding = self.embed(x)  # (B, D)
        return ModelOutput(logits=self.classify(embedding), embedding=embedding)


class ConvNet(GenreModel):
    """Shared skeleton: input BatchNorm -> `features` (conv stack) -> `pool` -> head.

    The input BatchNorm learns the scale of the features (dB values around -40, MFCCs in
    the hundreds), so the models need no dataset statistics from the training code.
    """

    input_kind = "logmel"
    # Channels-last (NHWC) convolutions: on this 2-core CPU cnn_small inferred 1.6x faster and
    # trained 1.2x faster (oneDNN's preferred layout). Not measured to help ResNet: off there.
    channels_last = True

    def __init__(
        self,
        features: nn.Sequential,
        pool: nn.Module,
        pooled_dim: int,
        n_classes: int,
        emb_dim: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.input_norm = nn.BatchNorm2d(1)
        self.features = features
        self.pool = pool
        self.pooled_dim = pooled_dim
        self.head = EmbeddingHead(pooled_dim, emb_dim, n_classes, dropout)
        if self.channels_last:
            self.to(memory_format=torch.channels_last)  # 4-D weights; loaded weights keep it

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return self.head(self.pooled(x))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """The conv stack's pooled output, what the head reads: (B, 1, F, T) -> (B, pooled_dim)
        (the encoder of the self-supervised models, models/ssl.py)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)  # same values, NHWC strides
        z = self.features(self.input_norm(x))  # (B, C, F', T')
        return self.pool(z)


class SmallCNN(ConvNet):
    """The 3-conv CNN of the published GTZAN mel-image projects (conv-ReLU-pool x3,
    flatten, dense 128, dropout): the baseline to beat. No BatchNorm, as published; an
    adaptive pool to a 4x4 grid stands in for their fixed 128x128 flatten so T may vary."""

    gradcam_layer = "features.2.act1"

    def __init__(self, n_classes: int, n_features: int, tiny: bool = False) -> None:
        widths = (8, 16, 16) if tiny else (32, 64, 128)
        blocks = [
            conv_block(c_in, c_out, batch_norm=False)
            for c_in, c_out in zip((1, *widths[:-1]), widths)
        ]
        pool = nn.Sequential(nn.AdaptiveAvgPool2d((4, 4)), nn.Flatten())  # (B, C * 16)
        super().__init__(
            nn.Sequential(*blocks), pool, widths[-1] * 16, n_classes, 32 if tiny else 128, 0.3
        )


class CNN(ConvNet):
    """Four conv-BN-ReLU-maxpool blocks, global mean+max pooling, dropout, 128-d embedding."""

    gradcam_layer = "features.3.act1"

    def __init__(self, n_classes: int, n_features: int, tiny: bool = False) -> None:
        widths = (8, 16, 16, 32) if tiny else (32, 64, 128, 256)
        blocks = [conv_block(c_in, c_out) for c_in, c_out in zip((1, *widths[:-1]), widths)]
        super().__init__(
            nn.Sequential(*blocks), GlobalMeanMax(), 2 * widths[-1], n_classes,
            32 if tiny else 128, 0.3,
        )


class VGG(ConvNet):
    """VGG-style: four stages of two 3x3 convs then a 2x2 max-pool, 256-d embedding.

    Stacked 3x3 convs see a 5x5 neighbourhood per stage with fewer weights than one 5x5.
    """

    gradcam_layer = "features.3.act2"

    def __init__(self, n_classes: int, n_features: int, tiny: bool = False) -> None:
        widths = (8, 16, 16, 32) if tiny else (32, 64, 128, 256)
        blocks = [
            conv_block(c_in, c_out, n_convs=2)
            for c_in, c_out in zip((1, *widths[:-1]), widths)
        ]
        super().__init__(
            nn.Sequential(*blocks), GlobalMeanMax(), 2 * widths[-1], n_classes,
            32 if tiny else 256, 0.4,
        )


class ResidualBlock(nn.Module):
    """Basic ResNet block: (B, c_in, F, T) -> (B, c_out, F / stride, T / stride)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        reshape = stride != 1 or c_in != c_out
        # A 1x1 projection only where the identity cannot be added (new width or stride).
        self.shortcut: nn.Module = nn.Identity()
        if reshape:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )
        # Its own module (not reused inside body) so a hook on it fires once per forward.
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ResNet(ConvNet):
    """ResNet-18's layout (four stages of two residual blocks) at a quarter of its width,
    after a conv + max-pool stem; global mean+max pooling, 256-d embedding."""

    gradcam_layer = "features.4.1.act"
    channels_last = False

    def __init__(self, n_classes: int, n_features: int, tiny: bool = False) -> None:
        widths = (8, 16, 16, 32) if tiny else (32, 64, 128, 256)
        layers: list[nn.Module] = [conv_block(1, widths[0])]  # stem: (B, w0, F/2, T/2)
        for i, (c_in, c_out) in enumerate(zip((widths[0], *widths[:-1]), widths)):
            stride = 1 if i == 0 else 2
            stage = nn.Sequential(ResidualBlock(c_in, c_out, stride), ResidualBlock(c_out, c_out))
            layers.append(stage)
        super().__init__(
            nn.Sequential(*layers), GlobalMeanMax(), 2 * widths[-1], n_classes,
            32 if tiny else 256, 0.3,
        )


SPECS: dict[str, ModelSpec] = {
    "cnn_small": ModelSpec(
        "cnn_small", "cnn", "logmel", SmallCNN,
        "3-layer CNN on mel images, as in published GTZAN projects (the baseline to beat)",
    ),
    "cnn": ModelSpec("cnn", "cnn", "logmel", CNN, "4-block conv-BN-ReLU-pool net, global pooling"),
    "vgg": ModelSpec("vgg", "cnn", "logmel", VGG, "VGG-style stacks of 3x3 convolutions"),
    "resnet": ModelSpec(
        "resnet", "cnn", "logmel", ResNet, "small ResNet (ResNet-18 layout, 1/4 width)"
    ),
}
