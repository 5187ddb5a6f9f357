"""Where a database's companions live on disk: the cache and each run's files.

Every module asks here instead of spelling the layout out, so moving the cache (a bigger
disk, shared storage for a cluster) is one flag: `--cache-dir` or `$GENRELENS_CACHE_DIR`.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "GENRELENS_CACHE_DIR"
MODEL_FILE = "model.pt"  # best weights of a torch run
BASELINE_FILE = "model.joblib"  # a fitted sklearn estimator
CHECKPOINT_FILE = "checkpoint.pt"  # the last finished epoch, for --resume


def cache_dir(db_path: Path | str) -> Path:
    """The decoded-audio and feature cache: `$GENRELENS_CACHE_DIR` when set, else `<db dir>/cache`."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path(db_path).parent / "cache"


def runs_dir(db_path: Path | str) -> Path:
    """Parent folder of every run's files: `<db dir>/runs`."""
    return Path(db_path).parent / "runs"


def run_dir(db_path: Path | str, run_id: str) -> Path:
    """One run's files (weights, checkpoint, fitted estimator): `<db dir>/runs/<run_id>`."""
    return runs_dir(db_path) / run_id
