"""Load a finished run's model for inference on new audio (the classify command, the app)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import torch

from genre_core import paths
from genre_core.audio import file_digest
from genre_core.models import build_model, get_spec
from genre_core.models.base import fold_batch_norms, load_weights
from genre_core.store import Store, StoreError
from genre_core.features.pipeline import input_pipeline
from genre_core.train.config import TrainConfig
from genre_core.train.loop import resolve_device

CPU_BATCH = 16  # windows per forward on a CPU: measured, the per-window cost doubles past 16
GPU_BATCH = 64  # ... on a GPU: keeps it busy; musicnn backward (Grad-CAM) at 64 windows needs ~3 GB


def batch_size(device: torch.device | str) -> int:
    """Windows per forward pass on `device` (bounds memory on long tracks too)."""
    return GPU_BATCH if torch.device(device).type == "cuda" else CPU_BATCH


@dataclass
class LoadedRun:
    run_id: str
    config: TrainConfig
    classes: list[str]
    sr: int  # sample rate the model's front end expects
    window_s: float
    device: torch.device
    model: torch.nn.Module | None = None  # torch runs
    frontend: torch.nn.Module | None = None
    estimator: object | None = None  # sklearn baselines

    def predict_windows(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(B, L) float32 audio at `sr` -> ((B, C) probabilities, (B, D) embeddings or None)."""
        probs, vectors = self.predict_with_embeddings(windows)
        return probs, vectors.get("penultimate")

    @torch.no_grad()
    def predict_with_embeddings(self, windows: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(B, L) audio -> ((B, C) probabilities, {kind: (B, D)}) with kinds "penultimate" and,
        where the model has one, "pooled". Baselines return no embeddings."""
        if self.estimator is not None:
            from genre_core.features.tables import baseline_table

            kind = get_spec(self.config.model).input_kind
            table = baseline_table(np.asarray(windows, dtype=np.float32), self.sr, kind)  # (B, F), batched
            probs = np.full((len(windows), len(self.classes)), 0.0)
            probs[:, self.estimator.classes_] = self.estimator.predict_proba(table)
            return probs, {}
        x = self.frontend(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(self.device))
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            out = self.model(x)
        logits = out.logits.float()  # (B, C); a multi-label run scores each genre on its own
        probs = torch.sigmoid(logits) if self.config.task == "multilabel" else torch.softmax(logits, dim=1)
        vectors = {"penultimate": out.embedding, "pooled": out.pooled}
        return probs.cpu().numpy(), {k: v.float().cpu().numpy() for k, v in vectors.items() if v is not None}


def file_sha256(path: Path) -> str:
    """The checksum a run stores for each of its model files."""
    return file_digest(path, "sha256")


def verified_file(store: Store, run_id: str, path: Path, *, required: bool) -> Path:
    """`path` if it is the very file the run left (sha256 recorded when it completed).

    `required`: a file that can run code when loaded (a joblib pickle) is refused without a
    record too; torch weights, loaded with weights_only=True, only when a record disagrees."""
    if not path.is_file():
        raise StoreError(f"run {run_id}: model file {path} is missing")
    expected = store.run_file_sha256(run_id, path.name)
    if expected is None and required:
        raise StoreError(f"{path}: refusing to load: no checksum recorded for it in {store.path} "
                         "(retrain the run)")
    if expected is not None and file_sha256(path) != expected:
        raise StoreError(f"{path}: refusing to load: its sha256 differs from the one recorded "
                         "when the run completed (file replaced or damaged)")
    return path


def latest_complete_run(store: Store) -> str:
    """The most recent complete run that has a model (imported and ensemble runs have none)."""
    runs = store.complete_runs(with_model=True)
    if runs.empty:
        raise StoreError(f"{store.path}: no complete run yet (train one: python -m training train ...)")
    return str(runs.run_id.iloc[-1])


def load_run(store: Store, run_id: str | None = None, device: str = "auto") -> LoadedRun:
    """The trained model of a complete run (default: the most recent one), in eval mode, for
    inference: its BatchNorms are folded into their convolutions (models.base.fold_batch_norms)."""
    run_id = run_id or latest_complete_run(store)
    row = store.run(run_id)
    if row["status"] != "complete":
        raise StoreError(f"run {run_id} is {row['status']}, not complete")
    if reason := row["config"].get("no_model"):
        raise StoreError(f"run {run_id} has no model to load: {reason}")
    config = TrainConfig.from_dict(row["config"])
    spec, classes = get_spec(config.model), list(row["classes"])
    folder, dev = paths.run_dir(store.path, run_id), resolve_device(device)
    if not spec.is_torch:
        path = verified_file(store, run_id, folder / paths.BASELINE_FILE, required=True)
        return LoadedRun(run_id, config, classes, config.features.sr, config.window_s, dev,
                         estimator=joblib.load(path))
    representation = row.get("representation") or spec.input_kind
    frontend, sr, bins = input_pipeline(representation, config.features)
    model = build_model(config.model, len(classes), bins, tiny=config.tiny, backbone=config.backbone)
    path = verified_file(store, run_id, folder / paths.MODEL_FILE, required=False)
    try:
        load_weights(model, torch.load(path, map_location="cpu", weights_only=True), f"run {run_id} ({path})")
    except ValueError as exc:
        raise StoreError(str(exc)) from None
    return LoadedRun(run_id, config, classes, sr, config.window_s, dev,
                     model=fold_batch_norms(model).to(dev), frontend=frontend.to(dev).eval())


_WORKER_RUNS: dict[tuple[str, str], LoadedRun] = {}


def worker_run(db_path: str, run_id: str, device: str = "cpu") -> LoadedRun:
    """A run's model for a worker process or Ray task: loaded once per process, from the
    database opened read-only; on the CPU (a worker owns one core) unless the task was given a
    GPU (device "auto")."""
    from genre_core.store import open_store

    key = (db_path, run_id)
    if key not in _WORKER_RUNS:
        _WORKER_RUNS[key] = load_run(open_store(db_path, create=False), run_id, device=device)
    return _WORKER_RUNS[key]
