"""The backbone file `pretrain` leaves: a self-supervised encoder anyone can train on.

One torch file (read with weights_only=True: only tensors, strings, numbers and dicts) holding
the encoder's state dict and what rebuilds it and its input: the encoder name and width, the
FeatureConfig of its log-mel front end, the window length it was trained on, and where it
came from. `--backbone` takes such a file's path, or the id of the pretraining run that wrote
it (its folder in the runs directory, checked against the sha256 the run recorded).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import torch

from genre_core import paths
from genre_core.features.settings import FeatureConfig
from genre_core.models.ssl import ENCODERS, SSLGenre
from genre_core.store import BACKBONE_REPRESENTATION, Store, StoreError
from genre_core.train.inference import file_sha256, verified_file
from genre_core.train.loop import load_reason, save_file

FORMAT = "genrelens-backbone"
VERSION = 1


def save_backbone(path: Path, encoder: torch.nn.Module, *, encoder_name: str, tiny: bool,
                  features: FeatureConfig, window_s: float, dataset: str, run_id: str) -> str:
    """Write the backbone file atomically; returns its sha256."""
    payload = dict(format=FORMAT, version=VERSION, encoder=encoder_name, tiny=tiny,
                   features=dataclasses.asdict(features), representation="logmel", window_s=float(window_s),
                   dataset=dataset, run_id=run_id,
                   weights={k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()})
    save_file(payload, path)
    return file_sha256(path)


def read_backbone(path: Path) -> dict:
    """The payload of a backbone file; ValueError naming the file and the reason otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such backbone file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses code; anything else unreadable is unusable too
        raise ValueError(f"{path}: not a GenreLens backbone file ({load_reason(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a GenreLens backbone file (written by `pretrain`)")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: backbone format version {payload.get('version')!r}, this GenreLens reads {VERSION}")
    if payload.get("encoder") not in ENCODERS:
        raise ValueError(f"{path}: unknown encoder {payload.get('encoder')!r}")
    return payload


def resolve_backbone(store: Store, name: str) -> tuple[dict, FeatureConfig]:
    """--backbone RUN|PATH -> (TrainConfig.backbone, the FeatureConfig the encoder was trained on)."""
    path = _backbone_path(store, name)
    payload = read_backbone(path)
    backbone = dict(encoder=payload["encoder"], tiny=bool(payload["tiny"]), file=str(path.resolve()),
                    sha256=file_sha256(path), run_id=payload.get("run_id"))
    return backbone, FeatureConfig.from_dict(payload["features"])


def _backbone_path(store: Store, name: str) -> Path:
    candidate = Path(name)
    if candidate.is_dir():  # an exported pretraining run's folder
        return candidate / paths.BACKBONE_FILE
    if candidate.is_file() or candidate.suffix == ".pt" or "/" in name:
        return candidate  # read_backbone names a missing file
    try:
        row = store.run(name)
    except StoreError:
        raise ValueError(f"--backbone {name}: neither a backbone file nor a pretraining run in {store.path}") from None
    if row.get("representation") != BACKBONE_REPRESENTATION:
        raise ValueError(f"--backbone {name}: run {name} is a {row['model']} run, not a pretraining run")
    if row["status"] != "complete":
        raise ValueError(f"--backbone {name}: pretraining run {name} is {row['status']}, not complete "
                         f"(continue it with: python -m training pretrain --resume {name})")
    folder = paths.run_dir(store.path, name)
    return verified_file(store, name, folder / paths.BACKBONE_FILE, required=False)


def load_encoder_weights(model: SSLGenre, backbone: dict) -> None:
    """Put the pretrained weights named by TrainConfig.backbone into `model`'s encoder. The file
    must still be the one the config recorded (a resumed run must not switch encoders)."""
    path = Path(backbone["file"])
    payload = read_backbone(path)
    if file_sha256(path) != backbone["sha256"]:
        raise ValueError(f"{path}: refusing to load: the backbone file changed since this run was configured "
                         "(its sha256 differs)")
    try:
        model.encoder.load_state_dict(payload["weights"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:200]
        raise ValueError(f"{path}: its weights do not fit a {backbone['encoder']} encoder ({first})") from None
