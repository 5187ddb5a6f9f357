"""A k-fold experiment as one result: its folds' out-of-fold test predictions pooled.

Every track of the dataset is tested exactly once across the k folds, so pooling their test
predictions gives one prediction per track, scored with a bootstrap CI over all tracks (not
over one fold's fifth of them). The pooled result is stored as a run of split
"pooled-kfold/<k>" in the experiment's sweep, whose config keeps each fold's accuracy (the
spread shown beside it). It has no model of its own (each fold has one): the leaderboard shows
it instead of the folds, so a lucky fold is never starred or summarised.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genre_core.metrics import evaluation
from genre_core.runs.record import StoredRun, store_prediction_run
from genre_core.store import Store

POOLED_PREFIX = "pooled-kfold/"


def pool_kfold(store: Store, sweep: str) -> StoredRun:
    """Store (or replace) the pooled run of k-fold sweep `sweep`; its folds must be complete."""
    folds = store.sweep_runs(sweep, "kfold-%")
    if folds.empty:
        raise ValueError(f"sweep {sweep!r} has no complete k-fold run to pool")
    k = int(folds.split.iloc[0].split("/")[-1])
    if len(folds) != k:
        raise ValueError(f"sweep {sweep!r} has {len(folds)} of its {k} folds complete: nothing pooled yet")
    classes = list(folds.classes.iloc[0])
    tests = [store.predictions(run_id, "test") for run_id in folds.run_id]
    pooled = pd.concat(tests, ignore_index=True)
    if pooled.track_id.duplicated().any():  # the split guarantees disjoint test folds
        raise ValueError(f"sweep {sweep!r}: a track is in two test folds; refusing to pool")
    accuracies = [float((t.label == t.predicted).mean()) for t in tests]
    mean, sd, _ = evaluation.kfold_summary(accuracies)
    first = folds.iloc[0]
    config = {"model": first.model, "k": k, "folds": list(folds.run_id), "fold_accuracies": accuracies,
              "fold_mean": mean, "fold_sd": sd,
              "no_model": f"pooled out-of-fold predictions of {k} fold runs, each with its own model"}
    existing = store.sweep_runs(sweep, POOLED_PREFIX + "%", complete_only=False)
    for run_id in existing.run_id:  # a re-pool replaces, never doubles, the entry
        store.delete_run(run_id)
    predictions = pooled.assign(probs=[np.asarray(p, dtype=np.float64) for p in pooled.probs])
    return store_prediction_run(store, int(first.dataset_id), first.model, representation=first.representation,
                                split=f"{POOLED_PREFIX}{k}", classes=classes, predictions=predictions[["track_id", "split", "label", "probs"]],
                                config=config, sweep=sweep)


def is_pooled(split: str | None) -> bool:
    return bool(split) and split.startswith(POOLED_PREFIX)


def ensure_pooled(store: Store, dataset: str) -> list[str]:
    """Pool every complete k-fold sweep of `dataset` that has no pooled run yet (databases
    made before pooling existed); the pooled run ids made."""
    sweeps = store.unpooled_kfold_sweeps(dataset, POOLED_PREFIX + "%")
    complete = sweeps[sweeps.n == sweeps.split.str.split("/").str[-1].astype(int)]
    return [pool_kfold(store, sweep).run_id for sweep in complete.sweep]
