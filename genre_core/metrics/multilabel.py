"""Multi-label evaluation: per-genre average precision and ROC-AUC, mAP, micro/macro F1 at a
threshold tuned on validation, Hamming loss, with bootstrap CIs over tracks.

Pure numpy/scipy like genre_core.metrics.evaluation, whose `bootstrap_ci` draws the resamples (the
same seed draws the same tracks for every metric, so intervals are paired). Every metric here
is batched: arrays (R, N, C) of R resamples of N tracks and C genres -> (R,) values, computed
in memory-bounded chunks. Definitions follow scikit-learn (`average_precision_score`,
`roc_auc_score`, `f1_score(zero_division=0)`, `hamming_loss`, per genre then averaged), with
the project's macro convention: genres without a positive (AP, AUC) or present neither in the
truth nor in the prediction (F1) are left out of the average instead of counting as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from genre_core.metrics.evaluation import bootstrap_ci

THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)  # the grid tuned on validation
_BOOT_ELEMENTS = 1_000_000  # (R, N, C) values per bootstrap chunk: the sorts copy it ~8 times


def multi_hot(genre_sets: Sequence[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
    """[{'rock', 'blues'}, ...] -> (N, C) float32 0/1 in `classes` order (unknown genres dropped)."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(genre_sets), len(classes)), dtype=np.float32)
    for row, genres in enumerate(genre_sets):
        out[row, [index[g] for g in genres if g in index]] = 1.0
    return out


def _last_axis_n(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., N, C) -> (..., C, N): per-genre scores along the last axis."""
    return np.swapaxes(np.asarray(y, dtype=np.float64), -1, -2), np.swapaxes(np.asarray(s, dtype=np.float64), -1, -2)


def average_precision(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(..., N, C) truth and scores -> (..., C) AP per genre, NaN for a genre with no positive.

    AP = sum over thresholds of (recall step) x precision, thresholds at the distinct scores:
    tied scores form one step, as in scikit-learn, so each positive counts with the precision
    at the end of its tie group."""
    y, s = _last_axis_n(y, scores)  # (..., C, N)
    n = s.shape[-1]
    order = np.argsort(-s, axis=-1, kind="stable")
    s_sorted, y_sorted = np.take_along_axis(s, order, -1), np.take_along_axis(y, order, -1)
    precision = np.cumsum(y_sorted, axis=-1) / np.arange(1, n + 1)  # (..., C, N)
    is_end = np.concatenate([s_sorted[..., 1:] != s_sorted[..., :-1],
                             np.ones(s_sorted.shape[:-1] + (1,), bool)], axis=-1)
    ends = np.where(is_end, np.arange(n), n)
    group_end = np.minimum.accumulate(ends[..., ::-1], axis=-1)[..., ::-1]  # end of each tie group
    positives = y_sorted.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = (y_sorted * np.take_along_axis(precision, group_end, -1)).sum(-1) / positives
    return np.where(positives > 0, ap, np.nan)


def roc_auc(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(..., N, C) -> (..., C) ROC-AUC per genre (Mann-Whitney, ties count half), NaN for a
    genre whose tracks are all positive or all negative."""
    y, s = _last_axis_n(y, scores)
    ranks = stats.rankdata(s, axis=-1)  # average ranks for ties
    pos = y.sum(-1)
    neg = y.shape[-1] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((ranks * y).sum(-1) - pos * (pos + 1) / 2) / (pos * neg)
    return np.where((pos > 0) & (neg > 0), auc, np.nan)


def _counts(y: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, ...]:
    """(..., N, C) 0/1 -> per-genre tp, fp, fn, each (..., C)."""
    y, pred = np.asarray(y) > 0.5, np.asarray(pred) > 0.5
    return ((y & pred).sum(-2), (~y & pred).sum(-2), (y & ~pred).sum(-2))


def _f1(tp, fp, fn) -> np.ndarray:
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def micro_f1(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(..., N, C) 0/1 -> (...) F1 of all (track, genre) decisions pooled."""
    tp, fp, fn = (c.sum(-1) for c in _counts(y, pred))
    return _f1(tp, fp, fn)


def per_genre_f1(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(..., N, C) 0/1 -> (..., C) F1 per genre (0 where a genre is neither true nor predicted)."""
    return _f1(*_counts(y, pred))


def macro_f1(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(..., N, C) -> (...) mean per-genre F1 over genres present in the truth or the prediction."""
    tp, fp, fn = _counts(y, pred)
    present = (tp + fp + fn) > 0
    with np.errstate(invalid="ignore"):
        return np.where(present, _f1(tp, fp, fn), 0).sum(-1) / present.sum(-1)


def hamming(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(..., N, C) 0/1 -> (...) share of (track, genre) decisions that are wrong."""
    return ((np.asarray(y) > 0.5) != (np.asarray(pred) > 0.5)).mean(axis=(-1, -2))


def _nanmean(values: np.ndarray) -> np.ndarray:
    counts = (~np.isnan(values)).sum(-1)
    return np.where(counts > 0, np.nansum(values, -1) / np.maximum(counts, 1), np.nan)


def mean_ap(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(..., N, C) -> (...) mAP: mean AP over genres that have a positive."""
    return _nanmean(average_precision(y, scores))


def macro_auc(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return _nanmean(roc_auc(y, scores))


def tune_threshold(y: np.ndarray, scores: np.ndarray) -> float:
    """The global probability threshold of THRESHOLDS with the best micro-F1 on (N, C)
    validation data (ties: the one nearest 0.5); 0.5 when there is no validation data."""
    y, scores = np.asarray(y), np.asarray(scores)
    if len(y) == 0:
        return 0.5
    f1 = np.array([float(micro_f1(y, scores >= t)) for t in THRESHOLDS])
    best = np.flatnonzero(np.isclose(f1, f1.max()))
    return float(THRESHOLDS[best[np.argmin(np.abs(THRESHOLDS[best] - 0.5))]])


@dataclass(frozen=True)
class MultiLabelReport:
    labels: list[str]
    n: int  # tracks
    threshold: float
    mean_ap: float
    macro_auc: float
    micro_f1: float
    macro_f1: float
    hamming_loss: float
    cardinality: float  # mean true genres per track
    ap: np.ndarray  # (C,) NaN where a genre has no positive
    auc: np.ndarray  # (C,)
    precision: np.ndarray  # (C,) at the threshold
    recall: np.ndarray
    f1: np.ndarray


def report(y: np.ndarray, scores: np.ndarray, labels: Sequence[str], *, threshold: float) -> MultiLabelReport:
    """Every multi-label metric of (N, C) truth and probabilities, decisions at `threshold`."""
    y, scores = np.asarray(y, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    pred = scores >= threshold
    tp, fp, fn = _counts(y, pred)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
    return MultiLabelReport(
        list(labels), len(y), threshold, float(mean_ap(y, scores)), float(macro_auc(y, scores)),
        float(micro_f1(y, pred)), float(macro_f1(y, pred)), float(hamming(y, pred)),
        float(y.sum(1).mean()) if len(y) else float("nan"),
        average_precision(y, scores), roc_auc(y, scores), precision, recall, _f1(tp, fp, fn))


def metric_rows(rep: MultiLabelReport, y: np.ndarray, scores: np.ndarray, split: str, seed: int,
                n_boot: int = 1000) -> list[dict]:
    """Rows for the `metrics` table (minus run_id): `track/mAP|macro_auc|micro_f1|macro_f1|
    hamming_loss` with 95% bootstrap CIs over tracks, `track/threshold` and `track/cardinality`,
    and per genre `track/ap|auc|precision|recall|f1/<genre>` (CI None)."""
    y, scores = np.asarray(y, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    decisions = (scores >= rep.threshold).astype(np.float64)
    chunk = max(1, _BOOT_ELEMENTS // max(1, y.size))
    summary = [("mAP", rep.mean_ap, mean_ap, scores), ("macro_auc", rep.macro_auc, macro_auc, scores),
               ("micro_f1", rep.micro_f1, micro_f1, decisions), ("macro_f1", rep.macro_f1, macro_f1, decisions),
               ("hamming_loss", rep.hamming_loss, hamming, decisions)]
    rows = []
    for name, value, fn, x in summary:
        low, high = bootstrap_ci(y, x, _ignore_nan(fn), n_boot=n_boot, seed=seed, chunk=chunk)
        rows.append(_row(split, f"track/{name}", value, low, high))
    rows += [_row(split, "track/threshold", rep.threshold), _row(split, "track/cardinality", rep.cardinality)]
    for kind in ("ap", "auc", "precision", "recall", "f1"):
        rows += [_row(split, f"track/{kind}/{g}", v) for g, v in zip(rep.labels, getattr(rep, kind))
                 if np.isfinite(v)]
    return rows


def _ignore_nan(fn):
    """A resample where a metric is undefined (no positive at all) is skipped, not NaN-poisoned:
    it is replaced by the median of the defined ones in its chunk."""

    def metric(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        values = np.asarray(fn(y, x), dtype=np.float64)
        return np.where(np.isnan(values), np.nanmedian(values) if np.isfinite(values).any() else 0.0, values)

    return metric


def _row(split: str, name: str, value: float, low: float | None = None, high: float | None = None) -> dict:
    return {"split": split, "name": name, "value": float(value), "ci_low": low, "ci_high": high}


def format_report(rep: MultiLabelReport, ci: dict | None = None) -> str:
    """A compact text report of the test set for the CLI."""
    ci = ci or {}

    def line(title: str, key: str, value: float) -> str:
        low, high = ci.get(key, (None, None))
        interval = f" [95% CI {low:.3f}-{high:.3f}]" if low is not None else ""
        return f"  {title:<14}{value:.3f}{interval}"

    head = [f"multi-label test report: {rep.n} tracks, {rep.cardinality:.2f} genres per track, "
            f"threshold {rep.threshold:.2f} (tuned on validation)",
            line("mAP", "mAP", rep.mean_ap), line("macro ROC-AUC", "macro_auc", rep.macro_auc),
            line("micro-F1", "micro_f1", rep.micro_f1), line("macro-F1", "macro_f1", rep.macro_f1),
            line("Hamming loss", "hamming_loss", rep.hamming_loss)]
    width = max(len(g) for g in rep.labels)
    genres = [f"  {g:<{width}}  AP {a:.3f}  AUC {u:.3f}  F1 {f:.3f}"
              for g, a, u, f in zip(rep.labels, rep.ap, rep.auc, rep.f1)]
    return "\n".join(head + ["  per genre:"] + genres)
