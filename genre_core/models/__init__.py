"""The model registry: every model GenreLens can train, by name.

`MODELS` is a plain dict built from each family module's `SPECS` dict; adding a family
means adding one `**module.SPECS` line here (nothing registers itself on import).
"""

from __future__ import annotations

from typing import Any

from genre_core.models import baselines, cnn, crnn, fusion, rnn, ssl, transformer

from genre_core.models.musicnn import net as musicnn
from genre_core.models.base import GenreModel, ModelOutput, ModelSpec

MODELS: dict[str, ModelSpec] = {
    **baselines.SPECS,
    **cnn.SPECS,
    **rnn.SPECS,
    **crnn.SPECS,
    **transformer.SPECS,
    **musicnn.SPECS,
    **fusion.SPECS,
    **ssl.SPECS,
}

TORCH_MODEL_NAMES: tuple[str, ...] = tuple(name for name, spec in MODELS.items() if spec.is_torch)
BASELINE_NAMES: tuple[str, ...] = tuple(name for name, spec in MODELS.items() if not spec.is_torch)


def get_spec(name: str) -> ModelSpec:
    """The registry entry for `name`; ValueError naming the valid models otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}") from None


def build_model(
    name: str, n_classes: int, n_features: int, tiny: bool = False, *, seed: int = 0,
    backbone: dict | None = None,
) -> Any:
    """A fresh, untrained model.

    Torch models: a GenreModel taking (B, 1, n_features, T) and returning (B, n_classes)
    logits; `tiny` shrinks it to train in seconds on a CPU; seed torch yourself.
    Baselines: an unfitted sklearn Pipeline with `random_state=seed` (classes and feature
    count come from the data at fit time, so n_classes / n_features / tiny are unused).
    `backbone` (TrainConfig.backbone): the encoder of the models that need one (ssl_*).
    """
    spec = get_spec(name)
    if not spec.is_torch:
        return spec.build(seed)
    if spec.needs_backbone:
        return spec.build(n_classes, n_features, tiny, backbone)
    return spec.build(n_classes, n_features, tiny)


__all__ = [
    "BASELINE_NAMES",
    "MODELS",
    "TORCH_MODEL_NAMES",
    "GenreModel",
    "ModelOutput",
    "ModelSpec",
    "build_model",
    "get_spec",
]
