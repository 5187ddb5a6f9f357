"""A run from probabilities: a complete run stored from track-level predictions made elsewhere.

Imported predictions, ensembles and pooled k-fold results have no training loop of their own;
they are scored exactly like a native run (track-level metrics, bootstrap CIs) and stored in one
transaction. Run ids are made here, for native runs too. numpy, pandas and scipy only: no torch.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from genre_core import untrusted
from genre_core.metrics import evaluation
from genre_core.store import Store

SPLITS = ("test", "val")  # the sides a recorded run's predictions may sit on
SEED = 0  # of the bootstrap CIs, so a re-recorded run reports the same intervals


def check_label(label: str, option: str = "--model") -> str:
    """`label`, when it is safe in a run id and file names (untrusted.is_label); else a
    ValueError in the user's terms, naming `option`."""
    if not untrusted.is_label(label):
        raise ValueError(f"{option} {untrusted.shortened(repr(label))}: use 1-64 letters, digits and _.+- "
                         "(starting with a letter or digit)")
    return label


def new_run_id(model: str) -> str:
    """A new run's id: time, model label (checked: it goes into file names), random tag."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{check_label(model)}-{secrets.token_hex(2)}"


@dataclass
class StoredRun:
    run_id: str
    report: evaluation.Report  # of the test split
    ci: tuple[float, float]  # of track accuracy on the test split


def store_prediction_run(store: Store, dataset_id: int, model: str, *, representation: str, split: str,
                         classes: list[str], predictions: pd.DataFrame, config: dict,
                         extra: dict[str, pd.DataFrame] | None = None, sweep: str | None = None) -> StoredRun:
    """A complete run from track-level probabilities made elsewhere (imported, ensembled):
    `predictions` (track_id, split in SPLITS, label, probs (C,) in `classes` order) is scored
    exactly like a native run's (track-level metrics, bootstrap CIs) and stored with `extra`
    run tables in one transaction; a failure leaves the run marked failed, never half-written."""
    run_id = new_run_id(model)
    index = {g: i for i, g in enumerate(classes)}
    metrics, report, ci = [], None, (float("nan"), float("nan"))
    for side in SPLITS:
        rows = predictions[predictions.split == side]
        if rows.empty:
            continue
        y_true, probs = rows["label"].map(index).to_numpy(), np.stack(rows["probs"].to_numpy())
        side_report = evaluation.classification_report(y_true, probs, classes)
        side_rows = evaluation.metric_rows(side_report, y_true, probs, side, "track", SEED)
        metrics += side_rows
        if side == "test":
            report, ci = side_report, evaluation.ci_from_rows(side_rows).get("accuracy", ci)
    stored = predictions.assign(
        predicted=[classes[int(np.argmax(p))] for p in predictions["probs"]],
        probs=[np.asarray(p, dtype=np.float32).tolist() for p in predictions["probs"]],
    )[["track_id", "split", "label", "predicted", "probs"]]
    store.start_run(dict(run_id=run_id, dataset_id=dataset_id, model=model, representation=representation,
                         split=split, config=config, device="none", seed=SEED, classes=classes, sweep=sweep))
    try:
        store.finish_run(run_id, {"metrics": pd.DataFrame(metrics), "predictions": stored, **(extra or {})})
    except BaseException as exc:  # Ctrl-C too: there is no process to resume it, so it failed
        reason = "interrupted before its results were stored" if isinstance(exc, KeyboardInterrupt) else \
            f"{type(exc).__name__}: {exc}"
        store.fail_run(run_id, reason)
        raise
    return StoredRun(run_id, report, ci)
