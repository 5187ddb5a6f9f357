"""`genrelens ensemble --runs A B C`: what complete runs achieve together.

Each member's track-level probabilities are first calibrated by temperature scaling fitted on
its own validation predictions (one scalar T per run minimising the validation negative log
likelihood: an over-confident member must not outvote the others), then averaged. The members
must share a dataset, classes and exactly the same test tracks (the same split), so the
ensemble is scored on the test set each member was scored on; it is stored as a complete run
of that split (leaderboard with CI, Compare, McNemar against each member).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from genre_core.metrics import evaluation
from genre_core.runs.record import SPLITS, check_label, store_prediction_run
from genre_core.store import Store, StoreError

EPS = 1e-7
TEMPERATURE_BOUNDS = (0.05, 20.0)  # log-space search; beyond this a member is broken, not miscalibrated


@dataclass
class EnsembleSummary:
    run_id: str
    members: list[str]
    temperatures: list[float]
    accuracy: float
    ci: tuple[float, float]
    versus: list[tuple[str, float, float]]  # (member, member accuracy, McNemar p-value)

    def line(self) -> str:
        low, high = self.ci
        parts = ", ".join(f"{m}: {acc:.3f} (McNemar p={p:.3g})" for m, acc, p in self.versus)
        return (f"ensemble run {self.run_id} of {len(self.members)} runs — track accuracy "
                f"{self.accuracy:.3f} [95% CI {low:.3f}-{high:.3f}]; members {parts}")


def fit_temperature(log_probs: np.ndarray, y: np.ndarray) -> float:
    """The T > 0 minimising the NLL of softmax(log_probs / T) against labels y (N,)."""
    if len(y) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        z = log_probs / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        log_softmax = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-log_softmax[np.arange(len(y)), y].mean())

    low, high = np.log(TEMPERATURE_BOUNDS)
    return float(np.exp(minimize_scalar(nll, bounds=(low, high), method="bounded").x))


def calibrated(probs: np.ndarray, temperature: float) -> np.ndarray:
    z = np.log(np.clip(probs, EPS, 1.0)) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _member(store: Store, run_id: str) -> tuple[dict, pd.DataFrame]:
    run = store.run(run_id)
    if run["status"] != "complete":
        raise StoreError(f"run {run_id} is {run['status']}, not complete")
    return run, store.predictions(run_id)


def _check_compatible(runs: list[dict], predictions: list[pd.DataFrame]) -> None:
    first, first_test = runs[0], set(predictions[0].track_id[predictions[0].split == "test"])
    for run, preds in zip(runs[1:], predictions[1:]):
        if run["dataset_id"] != first["dataset_id"]:
            raise ValueError(f"runs {first['run_id']} and {run['run_id']} are on different datasets")
        if list(run["classes"]) != list(first["classes"]):
            raise ValueError(f"runs {first['run_id']} and {run['run_id']} predict different genres")
        if set(preds.track_id[preds.split == "test"]) != first_test:
            raise ValueError(f"runs {first['run_id']} and {run['run_id']} have different test tracks "
                             "(different splits or folds): an ensemble needs one test set")


def ensemble(store: Store, run_ids: list[str], label: str = "ensemble") -> EnsembleSummary:
    """Calibrate, average and store; the summary compares the ensemble with each member."""
    check_label(label, "--label")
    if len(set(run_ids)) < 2:
        raise ValueError("an ensemble needs at least two different runs")
    members = [_member(store, r) for r in dict.fromkeys(run_ids)]
    runs, predictions = [m[0] for m in members], [m[1] for m in members]
    _check_compatible(runs, predictions)
    classes = list(runs[0]["classes"])
    index = {g: i for i, g in enumerate(classes)}
    temperatures, averaged = [], {}
    for preds in predictions:
        val = preds[preds.split == "val"]
        t = fit_temperature(np.log(np.clip(np.stack(val.probs.to_numpy()), EPS, 1)) if len(val) else
                            np.zeros((0, len(classes))), val.label.map(index).to_numpy())
        temperatures.append(t)
        for side in SPLITS:
            rows = preds[preds.split == side].set_index("track_id")
            averaged.setdefault(side, []).append((rows, calibrated(np.stack(rows.probs.to_numpy()), t)))
    table = []
    for side, parts in averaged.items():
        common = sorted(set.intersection(*(set(rows.index) for rows, _ in parts)))  # val may differ
        if not common:
            continue
        mean = np.mean([p[rows.index.get_indexer(common)] for rows, p in parts], axis=0)
        labels = parts[0][0].label.reindex(common)
        table.append(pd.DataFrame({"track_id": common, "split": side, "label": labels.to_numpy(),
                                   "probs": list(mean)}))
    combined = pd.concat(table, ignore_index=True)
    member_ids = [r["run_id"] for r in runs]
    config = {"dataset_id": int(runs[0]["dataset_id"]), "model": label, "split": runs[0]["split"],
              "members": member_ids, "temperatures": temperatures,
              "no_model": f"an ensemble of runs {', '.join(member_ids)}: Grad-CAM and live classification "
                          "use its members"}
    stored = store_prediction_run(store, int(runs[0]["dataset_id"]), label, representation="ensemble", split=runs[0]["split"],
                                  classes=classes, predictions=combined, config=config)
    return EnsembleSummary(stored.run_id, member_ids, temperatures, stored.report.accuracy, stored.ci,
                           _versus(combined, classes, predictions, member_ids))


def _versus(combined: pd.DataFrame, classes: list[str], predictions: list[pd.DataFrame],
            member_ids: list[str]) -> list[tuple[str, float, float]]:
    """(member, its test accuracy, McNemar p-value of ensemble vs member) on the shared test set."""
    test = combined[combined.split == "test"].set_index("track_id")
    ours = np.array(classes)[[int(np.argmax(p)) for p in test.probs]]
    right = ours == test.label.to_numpy()
    out = []
    for run_id, preds in zip(member_ids, predictions):
        member = preds[preds.split == "test"].set_index("track_id").reindex(test.index)
        member_right = (member.predicted == member.label).to_numpy()
        out.append((run_id, float(member_right.mean()), evaluation.mcnemar(right, member_right).p_value))
    return out
