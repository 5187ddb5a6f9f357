"""TrainConfig: everything that defines a training run, stored as JSON in runs.config; and
PretrainConfig, the same for a self-supervised pretraining (train/pretrain.py)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from genre_core.features.settings import AugmentConfig, FeatureConfig


@dataclass(frozen=True)
class TrainConfig:
    dataset: str
    model: str
    split: str = "random"  # random | kfold | artist | fault-filtered | official
    fold: int = 1  # which fold (1-based) when split == "kfold"
    k: int = 5  # folds when split == "kfold"
    representation: str | None = None  # override the model's input ("logmel"|"mfcc") for ablations
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    patience: int = 6  # epochs without val-loss improvement before stopping early
    grad_clip: float = 1.0
    window_s: float = 3.0  # the window length the GTZAN literature uses
    hop_s: float = 1.5  # half-overlapping windows: twice the training windows, no leakage
    eval_hop_s: float = 1.5
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig.default)
    device: str = "auto"
    seed: int = 0
    tiny: bool = False  # small model widths: any model trains in seconds on a CPU
    task: str = "single"  # single: one genre (softmax) | multilabel: every genre (sigmoid, BCE)
    # ssl_* models: the pretrained encoder (train/backbone.py: encoder, tiny, file, sha256,
    # run_id); None builds their encoder randomly initialised.
    backbone: dict | None = None
    # Share of each genre's training tracks whose labels are used (seeded); val and test keep
    # all theirs. Below 1: few-label experiments (benchmarks pretraining).
    label_share: float = 1.0
    # Tracks of the dataset the run trains, validates and tests on (train --sample; seeded,
    # genre-stratified, whole artists; split inside the sample). None: every usable track.
    # analyze still embeds every track of the dataset: a model fitted on 5,000 of 100,000.
    sample: int | None = None

    def __post_init__(self) -> None:
        # Checked here, not only by the CLI: sweeps and the API build configs too, and a bad
        # value must fail before a run row exists, not as a ZeroDivisionError mid-run.
        for name, low in (("epochs", 1), ("batch_size", 1), ("k", 2), ("fold", 1), ("seed", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        if self.task not in ("single", "multilabel"):
            raise ValueError(f"task must be 'single' or 'multilabel', got {self.task!r}")
        if self.task == "multilabel" and self.split == "kfold":
            raise ValueError("multi-label runs take one split (random, artist, official, fault-filtered), not kfold")
        if self.fold > self.k:
            raise ValueError(f"fold must be in 1..{self.k}, got {self.fold}")
        for name in ("lr", "grad_clip", "window_s", "hop_s", "eval_hop_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if self.sample is not None and self.sample < 2:
            raise ValueError(f"sample must be >= 2 tracks, got {self.sample}")
        if not 0 < self.label_share <= 1:
            raise ValueError(f"label_share must lie in (0, 1], got {self.label_share}")
        for name in ("weight_decay", "warmup_epochs", "patience"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be >= 0, got {value}")

    @classmethod
    def tiny_preset(cls, dataset: str, model: str, **overrides) -> "TrainConfig":
        """A run that finishes in seconds on a CPU: tiny widths, 2 epochs, no augmentation."""
        base = dict(epochs=2, batch_size=16, tiny=True, augment=AugmentConfig.none(), warmup_epochs=0.0)
        return cls(dataset=dataset, model=model, **{**base, **overrides})

    def to_dict(self) -> dict:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return _from_dict(cls, data)


def _to_dict(config) -> dict:
    """A config as JSON-ready runs.config (its AugmentConfig's tuples as lists)."""
    data = dataclasses.asdict(config)
    data["augment"] = config.augment.to_dict()
    return data


def _from_dict(cls, data: dict):
    """Inverse of `_to_dict`."""
    data = dict(data)
    data["features"] = FeatureConfig.from_dict(data["features"])
    data["augment"] = AugmentConfig.from_dict(data["augment"])
    return cls(**data)


@dataclass(frozen=True)
class PretrainConfig:
    dataset: str
    encoder: str = "cnn"  # a CNN-family architecture (models/cnn.py; checked by pretrain())
    # None: every usable track. A split name: only its train and val tracks, so the test tracks
    # of that split (seed and all) stay unheard, as a benchmark against supervised runs needs.
    split: str | None = None
    epochs: int = 8  # the demo's 240 clips: a few minutes on a 2-core CPU
    batch_size: int = 32  # pairs per batch: 64 windows, 62 negatives per window
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    patience: int = 4  # epochs without a lower validation loss before stopping
    grad_clip: float = 1.0
    temperature: float = 0.2  # NT-Xent; SimCLR's range is 0.1-0.5, lower is harsher on near misses
    proj_dim: int = 64
    pairs_per_track: int = 2  # each track gives this many pairs (fresh segments) per epoch
    val_share: float = 0.1  # tracks held out to measure the loss on fixed pairs (early stopping)
    window_s: float = 3.0  # segment length: the window the genre models see
    hop_s: float = 0.5  # grid of segment starts within a track
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig.default)
    device: str = "auto"
    seed: int = 0
    tiny: bool = False  # tiny encoder widths: a pretraining in seconds on a CPU

    def __post_init__(self) -> None:
        for name, low in (("epochs", 1), ("batch_size", 2), ("pairs_per_track", 1), ("proj_dim", 1), ("seed", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low}, got {getattr(self, name)}")
        for name in ("lr", "temperature", "window_s", "hop_s", "grad_clip"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value}")
        if not 0 < self.val_share < 1:
            raise ValueError(f"val_share must lie in (0, 1), got {self.val_share}")

    def to_dict(self) -> dict:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PretrainConfig":
        return _from_dict(cls, {k: v for k, v in data.items() if k != "no_model"})
