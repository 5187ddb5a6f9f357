"""Convolutional-recurrent model: conv blocks find local timbre patterns on the mel image,
a bidirectional GRU reads their sequence over time (after Choi et al., 2017)."""

from __future__ import annotations

import torch
from torch import nn

from genre_core.models.base import GenreModel, ModelOutput, ModelSpec
from genre_core.models.cnn import EmbeddingHead, conv_block
from genre_core.models.rnn import SequenceEncoder


class CRNN(GenreModel):
    """(B, 1, F, T) log-mel -> conv front end -> (B, T', C * F') sequence -> biGRU ->
    ModelOutput."""

    input_kind = "logmel"
    gradcam_layer = "front.2.act1"

    def __init__(self, n_classes: int, n_features: int, tiny: bool = False) -> None:
        super().__init__()
        widths = (8, 16, 16) if tiny else (32, 64, 128)
        self.input_norm = nn.BatchNorm2d(1)
        # Pool frequency harder than time: the GRU needs the time steps, not the bins.
        pools = ((2, 2), (4, 2), (4, 1))
        self.front = nn.Sequential(
            *(
                conv_block(c_in, c_out, pool=pool)
                for c_in, c_out, pool in zip((1, *widths[:-1]), widths, pools)
            )
        )
        f_out = n_features
        for pool in pools:
            f_out //= pool[0]  # MaxPool2d floors
        if f_out < 1:
            raise ValueError(f"crnn needs n_features >= 32, got {n_features}")
        self.encoder = SequenceEncoder(
            widths[-1] * f_out,
            hidden=16 if tiny else 64,
            num_layers=1 if tiny else 2,
            cell="gru",
            dropout=0.3,
        )
        self.head = EmbeddingHead(self.encoder.out_dim, 32 if tiny else 128, n_classes, 0.3)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        z = self.front(self.input_norm(x))  # (B, C, F', T'), F' = F / 32, T' = T / 4
        # Keep the remaining bins apart (not averaged): where in frequency a pattern sits,
        # bass or cymbals, is much of what tells genres apart.
        z = z.flatten(1, 2)  # (B, C * F', T')
        z = z.permute(0, 2, 1)  # (B, T', C * F'): one feature vector per time step
        return self.head(self.encoder(z))


SPECS: dict[str, ModelSpec] = {
    "crnn": ModelSpec(
        "crnn", "crnn", "logmel", CRNN, "conv front end, bidirectional GRU over time"
    ),
}
