"""Recurrent models: a bidirectional LSTM or GRU reading MFCC frames in time order."""

from __future__ import annotations

import torch
from torch import nn

from genre_core.models.base import GenreModel, ModelOutput, ModelSpec
from genre_core.models.cnn import EmbeddingHead

CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU}


class SequenceEncoder(nn.Module):
    """(B, T, D) frames -> (B, 4H): a bidirectional LSTM/GRU, then mean and max over time.

    Pooling every step (rather than keeping the last state) lets a chorus in the middle of a
    clip count as much as its end, and makes the output independent of T.
    """

    def __init__(
        self, input_dim: int, hidden: int, num_layers: int, cell: str, dropout: float
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; valid cells: {', '.join(CELLS)}")
        self.rnn = CELLS[cell](
            input_dim,
            hidden,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            # torch warns about (and ignores) dropout between layers when there is one layer.
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.out_dim = 4 * hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)  # (B, T, 2H)
        return torch.cat([h.mean(dim=1), h.amax(dim=1)], dim=1)  # (B, 4H)


class RecurrentNet(GenreModel):
    """Bidirectional recurrent net over MFCC (+ delta) frames, averaged 4 at a time:
    (B, 1, F, T) -> ModelOutput.

    No convolution, so no Grad-CAM layer.
    """

    input_kind = "mfcc"
    gradcam_layer = None

    def __init__(
        self, n_classes: int, n_features: int, tiny: bool = False, cell: str = "lstm"
    ) -> None:
        super().__init__()
        # Per-coefficient normalisation: c0 sits in the hundreds, deltas near +-5; an RNN fed
        # raw MFCCs saturates its gates on c0 alone.
        self.input_norm = nn.BatchNorm1d(n_features)
        # Mean of every 4 frames (~93 ms; 130 -> 33 steps per 3-s window) and one 64-wide
        # layer instead of two of 128: on the demo's artist split the larger net on every frame
        # learned the training artists within 3 epochs and its val loss rose from epoch 2 on
        # (best val loss 1.86 -> 1.43, docs/benchmarks.md#what-held-the-weak-families-back).
        self.frames = nn.AvgPool1d(4, ceil_mode=True)
        self.encoder = SequenceEncoder(
            n_features,
            hidden=32 if tiny else 64,
            num_layers=1,
            cell=cell,
            dropout=0.3,
        )
        self.head = EmbeddingHead(self.encoder.out_dim, 32 if tiny else 128, n_classes, 0.3)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        z = self.frames(self.input_norm(x.squeeze(1)))  # (B, F, T / 4)
        z = z.permute(0, 2, 1)  # (B, T, F): one MFCC vector per time step
        return self.head(self.encoder(z))


def build_lstm(n_classes: int, n_features: int, tiny: bool = False) -> RecurrentNet:
    return RecurrentNet(n_classes, n_features, tiny, cell="lstm")


def build_gru(n_classes: int, n_features: int, tiny: bool = False) -> RecurrentNet:
    return RecurrentNet(n_classes, n_features, tiny, cell="gru")


SPECS: dict[str, ModelSpec] = {
    "rnn": ModelSpec("rnn", "rnn", "mfcc", build_lstm, "bidirectional LSTM over MFCC+delta frames"),
    "gru": ModelSpec("gru", "rnn", "mfcc", build_gru, "bidirectional GRU over MFCC+delta frames"),
}
