"""Multi-label training (`train --task multilabel`): every genre of a track is a target.
Torch models and the scikit-learn baselines (one binary copy per genre, `one_vs_rest`).

The split, windows, loop, checkpoints and storage are fit.py's; what differs lives here:
- targets: each window's target is its track's multi-hot genre vector (track_genres; a track
  without stored genres has its primary label only), classes the union of every genre;
- loss: binary cross-entropy with logits; window scores are log-sigmoids, not log-softmaxes;
- tracks: the mean of their windows' sigmoid probabilities (each genre on its own);
- decisions: one probability threshold, tuned for micro-F1 on the validation tracks and applied
  unchanged to the test tracks (genre_core.metrics.multilabel).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from genre_core.metrics import multilabel as ml
from genre_core.features.windows import WindowSet
from genre_core.store import Store
from genre_core.train.loop import Trainer


def genre_sets(store: Store, dataset: str, tracks: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """track_id -> every genre of the track (primary label first), for the given tracks."""
    stored = store.track_genres(dataset)
    extra = stored.groupby("track_id")["genre"].agg(tuple).to_dict() if len(stored) else {}
    return {t: tuple(dict.fromkeys((label, *extra.get(t, ())))) for t, label in zip(tracks.track_id, tracks.label)}


def classes_of(sets: dict[str, tuple[str, ...]]) -> list[str]:
    """Every genre any track has, sorted."""
    return sorted({g for genres in sets.values() for g in genres})


def multi_hot_windows(windows: dict[str, WindowSet], sets: dict[str, tuple[str, ...]],
                      classes: list[str]) -> dict[str, WindowSet]:
    """The same windows with `labels` (n_tracks,) replaced by (n_tracks, C) float32 multi-hot
    rows, so a batch's labels are its windows' track targets (B, C)."""
    return {side: dataclasses.replace(w, labels=ml.multi_hot([sets[t] for t in w.track_ids], classes),
                                      offsets=w.offsets)
            for side, w in windows.items()}


def one_vs_rest(estimator):
    """A scikit-learn baseline as a multi-label model: one binary copy per genre, each giving
    the probability of its genre on its own (the baselines' sigmoid counterpart)."""
    from sklearn.multiclass import OneVsRestClassifier

    return OneVsRestClassifier(estimator)


def baseline_log_probs(estimator, table: np.ndarray) -> np.ndarray:
    """(W, C) log-probabilities of each genre on its own from a one_vs_rest baseline, clipped
    away from 0 and 1 like a sigmoid's, the window scores `results` expects."""
    if len(table) == 0:
        return np.zeros((0, len(estimator.classes_)))
    return np.log(np.clip(estimator.predict_proba(table), 1e-6, 1 - 1e-6))


def window_scores(log_p: np.ndarray, targets: np.ndarray) -> tuple[float | None, float | None]:
    """(binary cross-entropy, share of windows whose top genre is one of theirs) of (W, C)
    log-probabilities against (W, C) multi-hot targets, as MultiLabelTrainer reports an epoch;
    (None, None) for no windows."""
    if len(log_p) == 0:
        return None, None
    p = np.exp(log_p)
    bce = -(targets * log_p + (1 - targets) * np.log1p(-np.minimum(p, 1 - 1e-6))).mean()
    return float(bce), float(targets[np.arange(len(p)), p.argmax(1)].mean())


class MultiLabelTrainer(Trainer):
    """The Trainer with sigmoid outputs: BCE-with-logits on (B, C) multi-hot targets. Its
    epoch 'accuracy' is the share of windows whose top genre is one of their true genres."""

    def _target(self, labels: torch.Tensor) -> torch.Tensor:
        return labels.float()  # already (B, C) multi-hot

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target)

    def _correct(self, logits: torch.Tensor, labels: torch.Tensor) -> int:
        return int(top1_hits(logits.numpy(), labels.numpy()).sum())

    def _window_scores(self, logits: torch.Tensor) -> torch.Tensor:
        return F.logsigmoid(logits)  # (B, C), each genre its own probability

    def evaluate_loss(self, windows: WindowSet) -> tuple[float, float]:
        """Window-level mean binary cross-entropy and top-1 hit rate (NaN, NaN when empty)."""
        if len(windows) == 0:
            return float("nan"), float("nan")
        log_p, _ = self.predict(windows, progress=False)
        target = windows.labels[windows.index[:, 0]]  # (W, C)
        p = np.exp(log_p)
        log_not_p = np.log1p(-np.minimum(p, 1 - 1e-7))
        loss = -(target * log_p + (1 - target) * log_not_p).mean()
        return float(loss), float(top1_hits(log_p, target).mean())


def top1_hits(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(B, C) scores and multi-hot targets -> (B,) whether the top genre is a true one."""
    return target[np.arange(len(target)), scores.argmax(1)] > 0.5


def track_probs(windows: WindowSet, log_p: np.ndarray) -> np.ndarray:
    """(W, C) window log-sigmoids -> (n_tracks, C) mean window probability per track, in
    `windows.track_ids` order (every track has at least one window)."""
    sums = np.zeros((len(windows.track_ids), log_p.shape[1]))
    np.add.at(sums, windows.index[:, 0], np.exp(log_p))
    return sums / np.maximum(np.bincount(windows.index[:, 0], minlength=len(sums)), 1)[:, None]


def results(windows: dict[str, WindowSet], log_probs: dict[str, np.ndarray], classes: list[str],
            *, primary: dict[str, str], seed: int) -> tuple[dict[str, pd.DataFrame], ml.MultiLabelReport | None, dict]:
    """The run's result tables (metrics, predictions, multilabel_predictions,
    segment_predictions), the test report and its CIs {name: (low, high)}. `primary`: track_id
    -> primary genre, stored as `predictions.label` (its `predicted` is the top genre, `probs`
    the per-genre probabilities), so single-label readers of predictions keep working."""
    probs = {side: track_probs(windows[side], log_probs[side]) for side in ("val", "test")}
    truth = {side: windows[side].labels for side in ("val", "test")}
    threshold = ml.tune_threshold(truth["val"], probs["val"])  # never the test tracks
    metrics, predictions, sets, segments, report, ci = [], [], [], [], None, {}
    for side in ("test", "val"):
        w, p, y = windows[side], probs[side], truth[side]
        if len(w) == 0:
            continue
        side_report = ml.report(y, p, classes, threshold=threshold)
        rows = ml.metric_rows(side_report, y, p, side, seed)
        metrics += rows
        if side == "test":
            report = side_report
            ci = {r["name"].split("/", 1)[1]: (r["ci_low"], r["ci_high"]) for r in rows if r["ci_low"] is not None}
        predictions += [dict(track_id=t, split=side, label=primary[t], predicted=classes[int(row.argmax())],
                             probs=row.astype(np.float32).tolist()) for t, row in zip(w.track_ids, p)]
        sets += [dict(track_id=t, split=side, genres=[c for c, v in zip(classes, yt) if v > 0.5],
                      predicted=[c for c, v in zip(classes, row) if v >= threshold])
                 for t, yt, row in zip(w.track_ids, y, p)]
        segments += [dict(track_id=w.track_ids[i], start_s=float(s), probs=row.astype(np.float32).tolist())
                     for i, s, row in zip(w.index[:, 0], w.start_seconds(), np.exp(log_probs[side]))]
    tables = {"metrics": pd.DataFrame(metrics), "predictions": pd.DataFrame(predictions),
              "multilabel_predictions": pd.DataFrame(sets, columns=["track_id", "split", "genres", "predicted"]),
              "segment_predictions": pd.DataFrame(segments)}
    return tables, report, ci


def summary_line(run_id: str, model: str, dataset: str, *, split: str, rep: ml.MultiLabelReport | None,
                 ci: dict) -> str:
    if rep is None:
        return f"run {run_id}: {model} on {dataset} ({split}) — no test tracks"
    low, high = ci.get("mAP", (float("nan"), float("nan")))
    return (f"run {run_id}: {model} on {dataset} ({split}, multi-label) — test mAP {rep.mean_ap:.3f} "
            f"[95% CI {low:.3f}-{high:.3f}], micro-F1 {rep.micro_f1:.3f}, macro-F1 {rep.macro_f1:.3f}, "
            f"Hamming loss {rep.hamming_loss:.3f} at threshold {rep.threshold:.2f} on {rep.n} test tracks")
