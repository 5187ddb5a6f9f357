"""Pretrained musicnn weights: find the checkpoints shipped in the `musicnn` wheel, convert
them from TensorFlow layout to the PyTorch modules of `musicnn.py`, and cache the result.

The wheel is installed with `--no-deps` only for its checkpoint files; nothing here imports
musicnn or TensorFlow (the checkpoints are read by `genre_core.models.musicnn.tf_checkpoint`).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from genre_core import paths
from genre_core.models.musicnn.tf_checkpoint import read_checkpoint

INSTALL_HINT = "musicnn weights not found; install them with: pip install --no-deps musicnn==0.1.0"
DEFAULT_CACHE_DIR = Path("data") / "cache" / "musicnn"  # matches paths.cache_dir of the default database
VARIANTS = ("MSD_musicnn", "MTT_musicnn", "MSD_musicnn_big", "MSD_vgg", "MTT_vgg")

# Output tags, in the models' output order (musicnn/configuration.py of the wheel).
MTT_TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental",
    "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy",
    "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop",
    "sad", "House", "happy",
)


def tag_names(variant: str) -> tuple[str, ...]:
    """The 50 tag names of a variant's outputs (MSD_* or MTT_*)."""
    return MSD_TAGS if variant.startswith("MSD") else MTT_TAGS


def default_cache_dir() -> Path:
    """Where converted weights go: `$GENRELENS_CACHE_DIR/musicnn` when that is set (tests and
    read-only checkouts point it elsewhere), else `data/cache/musicnn`."""
    root = os.environ.get(paths.CACHE_ENV)
    return Path(root) / "musicnn" if root else DEFAULT_CACHE_DIR

# Bump when the torch module names or the conversion change, so old caches are rebuilt.
_CACHE_FORMAT = 1


class MusicnnWeightsMissing(FileNotFoundError):
    """The musicnn wheel (or one variant's checkpoint in it) is not installed."""


def wheel_dir() -> Path:
    """Directory of the installed `musicnn` package; found without importing it, since
    its modules import TensorFlow."""
    spec = importlib.util.find_spec("musicnn")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise MusicnnWeightsMissing(INSTALL_HINT)
    return Path(locations[0])


def checkpoint_dir(variant: str) -> Path:
    """Directory holding one variant's checkpoint (its files are named `.index`, ...)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown musicnn variant {variant!r}; choose from {VARIANTS}")
    folder = wheel_dir() / variant
    if not (folder / ".index").is_file():
        if variant == "MSD_musicnn_big":
            # The PyPI wheel leaves this one out; only a source install of musicnn has it.
            raise MusicnnWeightsMissing(
                "MSD_musicnn_big weights are not in the musicnn PyPI wheel; "
                "install musicnn from source (python setup.py install) to use them"
            )
        raise MusicnnWeightsMissing(INSTALL_HINT)
    return folder


# ---------------------------------------------------------------------------- TF -> torch

# (torch module prefix, TF variable scope, kind). TF layers are numbered in creation order,
# which models.py fixes: input BN, then each conv followed by its BN.
def _musicnn_layout() -> list[tuple[str, str, str]]:
    layout = [("input_bn", "batch_normalization", "bn")]
    front = ["timbral_74", "timbral_77", "temporal_128", "temporal_64", "temporal_32"]
    for i, name in enumerate(front):
        layout += [(f"{name}.conv", _tf("conv2d", i), "conv2d"),
                   (f"{name}.bn", _tf("batch_normalization", i + 1), "bn")]
    for i in range(3):
        layout += [(f"midend{i + 1}.conv", _tf("conv2d", 5 + i), "conv1d"),
                   (f"midend{i + 1}.bn", _tf("batch_normalization", 6 + i), "bn")]
    layout += [("pool_bn", "batch_normalization_9", "bn"), ("dense", "dense", "dense"),
               ("dense_bn", "batch_normalization_10", "bn"), ("classifier", "dense_1", "dense")]
    return layout


def _vgg_layout() -> list[tuple[str, str, str]]:
    layout = [("input_bn", "batch_normalization", "bn")]
    for i in range(1, 6):
        layout += [(f"conv{i}", f"{i}CNN", "conv2d"), (f"bn{i}", f"batch_normalization_{i}", "bn")]
    return layout + [("classifier", "dense", "dense")]


def _tf(scope: str, index: int) -> str:
    return scope if index == 0 else f"{scope}_{index}"


def _convert(kind: str, tf: dict[str, np.ndarray], scope: str) -> dict[str, np.ndarray]:
    """One layer's torch parameters from its TF variables."""
    if kind == "bn":
        return {"weight": tf[f"{scope}/gamma"], "bias": tf[f"{scope}/beta"],
                "running_mean": tf[f"{scope}/moving_mean"],
                "running_var": tf[f"{scope}/moving_variance"],
                "num_batches_tracked": np.array(0, dtype=np.int64)}
    kernel, bias = tf[f"{scope}/kernel"], tf[f"{scope}/bias"]
    if kind == "conv2d":
        # TF NHWC with H = time, W = mel: (kT, kF, in, out); torch (B, C, F, T) wants
        # (out, in, kF, kT).
        weight = kernel.transpose(3, 2, 1, 0)
    elif kind == "conv1d":
        # The mid-end "2-D" conv spans all channels along W, i.e. a 1-D conv over time:
        # (kT, C, 1, out) -> (kT, C, out) -> (out, C, kT).
        weight = kernel[:, :, 0, :].transpose(2, 1, 0)
    else:  # dense: (in, out) -> (out, in)
        weight = kernel.T
    return {"weight": weight, "bias": bias}


def convert_checkpoint(variant: str, tf_vars: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Torch state_dict for the `musicnn.py` module of `variant` from TF checkpoint variables
    (Adam slots and other training-only variables are ignored)."""
    layout = _vgg_layout() if "vgg" in variant else _musicnn_layout()
    state: dict[str, torch.Tensor] = {}
    for prefix, scope, kind in layout:
        for key, value in _convert(kind, tf_vars, scope).items():
            state[f"{prefix}.{key}"] = torch.from_numpy(np.ascontiguousarray(value))
    return state


# ---------------------------------------------------------------------------- cache


def _fingerprint(folder: Path) -> list[list[object]]:
    # Size + mtime of the source files: a reinstalled or different wheel invalidates the cache.
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns]
            for p in sorted(folder.glob(".*")) if p.is_file()]


def _read_cache(path: Path, variant: str, fingerprint: list) -> dict[str, torch.Tensor] | None:
    """The cached state_dict, or None when absent, stale, or unreadable."""
    if not path.is_file():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        ok = (isinstance(blob, dict) and blob.get("format") == _CACHE_FORMAT
              and blob.get("variant") == variant and blob.get("fingerprint") == fingerprint)
        return dict(blob["state_dict"]) if ok else None
    except Exception:  # noqa: BLE001 - any corrupt cache is rebuilt, never fatal
        return None


def _write_cache(path: Path, blob: dict) -> None:
    # Write-then-rename, so a concurrent reader never sees half a file.
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        os.close(fd)
        torch.save(blob, tmp)
        os.replace(tmp, path)
    except OSError:
        # A read-only cache dir only costs a re-conversion next time.
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def pretrained_state_dict(variant: str, *, cache_dir: Path | str | None = None,
                          use_cache: bool = True, refresh: bool = False,
                          ) -> dict[str, torch.Tensor]:
    """Converted weights of one musicnn variant, from `<cache_dir>/<variant>.pt` when valid.

    `cache_dir=None` means `default_cache_dir()`; `use_cache=False` neither reads nor writes
    it; `refresh=True` rebuilds it. A stale or corrupt cache file is rebuilt. Raises
    MusicnnWeightsMissing (with the pip command) when the wheel is not installed.
    """
    folder = checkpoint_dir(variant)
    fingerprint = _fingerprint(folder)
    path = None
    if use_cache:
        path = Path(cache_dir if cache_dir is not None else default_cache_dir()) / f"{variant}.pt"
    if path is not None and not refresh:
        cached = _read_cache(path, variant, fingerprint)
        if cached is not None:
            return cached
    state = convert_checkpoint(variant, read_checkpoint(folder))
    if path is not None:
        _write_cache(path, {"format": _CACHE_FORMAT, "variant": variant,
                            "fingerprint": fingerprint, "state_dict": state})
    return state
