"""Honest evaluation: track-level aggregation, metrics, bootstrap CIs, McNemar, k-fold summaries.

Pure numpy/scipy so the app and the CLI can score stored predictions without torch.
Per-class definitions follow scikit-learn with `zero_division=0`, and macro-F1 averages over the
classes present in `y_true` or predicted (scikit-learn's default label set), so a genre that a
small split happens to lack neither drags the average down nor inflates it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats

# A batched metric maps (y_true (R, N), x (R, N) or (R, N, C)) to (R,) values, one per resample.
BatchMetric = Callable[[np.ndarray, np.ndarray], np.ndarray]

_BOOT_CHUNK_ELEMENTS = 4_000_000  # caps one chunk of resampled probs at ~32 MB of float64


def aggregate_windows(
    track_ids: Sequence[str], log_probs: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """One prediction per track from its windows' predictions.

    `log_probs` (W, C) are per-window log-probabilities (log_softmax outputs, not logits), with
    `track_ids[w]` naming window w's track. A track's score is the mean of its windows'
    log-probabilities (a product of experts: one confidently-wrong window cannot outvote many
    mildly-right ones the way it can under mean-of-probabilities), renormalised with
    log-sum-exp so each row is again a log-distribution; the renormalisation is a per-row shift
    and changes no ranking. Returns (ids in first-appearance order, (N, C) log-probabilities).
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    if log_probs.ndim != 2 or log_probs.shape[0] != len(track_ids):
        raise ValueError(
            f"log_probs must be (W, C) with W == len(track_ids) = {len(track_ids)}, "
            f"got {log_probs.shape}"
        )
    _, first, inverse = np.unique(
        np.asarray(track_ids, dtype=object), return_index=True, return_inverse=True
    )
    order = np.argsort(first)  # unique ids are sorted by value; reorder by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    slot = rank[inverse.reshape(-1)]  # (W,) output row of each window
    sums = np.zeros((order.size, log_probs.shape[1]))
    np.add.at(sums, slot, log_probs)
    mean = sums / np.bincount(slot, minlength=order.size)[:, None]  # (N, C)
    mean -= _logsumexp_rows(mean)[:, None]  # (N, 1) shift per row
    return [track_ids[i] for i in first[order]], mean


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    peak = a.max(axis=1)
    return peak + np.log(np.exp(a - peak[:, None]).sum(axis=1))


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion counts (C, C) int64: rows are true classes, columns predicted classes."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= n_classes):
            raise ValueError(f"{name} holds labels outside 0..{n_classes - 1}")
    flat = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes)
    return flat.reshape(n_classes, n_classes)  # (C, C)


def _per_class(cm: np.ndarray) -> tuple[np.ndarray, ...]:
    """Precision, recall, F1 (..., C) and macro-F1 (...) from confusion matrices (..., C, C).

    Zero denominators give 0 (sklearn's zero_division=0); macro-F1 averages over classes with
    support or predictions, and is 0 when there are none.
    """
    cm = cm.astype(np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    predicted = cm.sum(axis=-2)
    support = cm.sum(axis=-1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    f1_den = predicted + support  # 2tp + fp + fn
    f1 = np.divide(2 * tp, f1_den, out=np.zeros_like(tp), where=f1_den > 0)
    present = f1_den > 0
    n_present = present.sum(axis=-1)
    macro = np.divide(
        (f1 * present).sum(axis=-1), n_present,
        out=np.zeros(n_present.shape), where=n_present > 0,
    )
    return precision, recall, f1, macro


def _true_class_rank(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """(...,) how many classes score strictly above the true one (0 = top-1 hit).

    Ties count in the true class's favour; with continuous scores they do not occur.
    """
    true_score = np.take_along_axis(probs, y_true[..., None], axis=-1)  # (..., 1)
    return (probs > true_score).sum(axis=-1)


@dataclass(frozen=True)
class Report:
    """Scores of one set of predictions. Arrays are indexed by class, in `labels` order."""

    labels: tuple[str, ...]
    n: int  # number of scored items (tracks or windows)
    accuracy: float
    macro_f1: float
    top2: float
    precision: np.ndarray  # (C,)
    recall: np.ndarray  # (C,)
    f1: np.ndarray  # (C,)
    support: np.ndarray  # (C,) int, true items per class
    confusion: np.ndarray  # (C, C) int, rows = true


def classification_report(
    y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str]
) -> Report:
    """Score class probabilities `probs` (N, C) against integer labels `y_true` (N,).

    The prediction is the argmax (first class on ties, like np.argmax). Any monotone score
    (log-probabilities, logits) gives the same report, since only rankings are used.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n_classes = len(labels)
    if probs.ndim != 2 or probs.shape != (y_true.size, n_classes):
        raise ValueError(f"probs must be (N, C) = ({y_true.size}, {n_classes}), got {probs.shape}")
    if y_true.size == 0:
        raise ValueError("nothing to score: y_true is empty")
    y_pred = probs.argmax(axis=1)
    cm = confusion(y_true, y_pred, n_classes)
    precision, recall, f1, macro = _per_class(cm)
    return Report(
        labels=tuple(labels),
        n=int(y_true.size),
        accuracy=float(np.mean(y_pred == y_true)),
        macro_f1=float(macro),
        top2=float(np.mean(_true_class_rank(y_true, probs) < 2)),
        precision=precision,
        recall=recall,
        f1=f1,
        support=cm.sum(axis=1),
        confusion=cm,
    )


def batch_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Accuracy over the last axis: (R, N) labels and predictions -> (R,)."""
    return np.mean(np.asarray(y_true) == np.asarray(y_pred), axis=-1)


def batch_top_k(k: int) -> BatchMetric:
    """Top-k accuracy as a batched metric: (R, N) labels, (R, N, C) scores -> (R,)."""

    def top_k(y_true: np.ndarray, probs: np.ndarray) -> np.ndarray:
        return np.mean(_true_class_rank(np.asarray(y_true), np.asarray(probs)) < k, axis=-1)

    return top_k


def batch_macro_f1(n_classes: int) -> BatchMetric:
    """Macro-F1 as a batched metric: (R, N) labels and predictions -> (R,)."""

    def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        y_true = np.asarray(y_true, dtype=np.int64)
        n_rows = y_true.shape[0]
        # One bincount builds every resample's confusion matrix at once.
        row = np.arange(n_rows)[:, None] * n_classes * n_classes  # (R, 1)
        codes = row + y_true * n_classes + np.asarray(y_pred, dtype=np.int64)  # (R, N)
        flat = np.bincount(codes.ravel(), minlength=n_rows * n_classes * n_classes)
        return _per_class(flat.reshape(n_rows, n_classes, n_classes))[3]  # (R,)

    return macro_f1


def bootstrap_ci(
    y_true: np.ndarray,
    y_x: np.ndarray,
    metric_fn: Callable[[np.ndarray, np.ndarray], np.ndarray | float],
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    vectorized: bool = True,
    chunk: int | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) interval of a metric, resampling items with replacement.

    `y_x` is whatever the metric scores against `y_true` (N,): predictions (N,) or scores
    (N, C). With `vectorized=True` `metric_fn` is a batched metric (see `batch_accuracy`,
    `batch_top_k`, `batch_macro_f1`) called on (R, N[, C]) resamples in memory-bounded chunks
    (resampled rows of at most _BOOT_CHUNK_ELEMENTS values each: memory O(chunk x N) whatever
    n_boot); otherwise it is a plain scalar metric (e.g. an sklearn function) called once per
    resample. The same seed draws the same resamples for every metric, so intervals are
    paired, and the same resamples whatever `chunk` (resamples drawn and scored together;
    default: as many as fit in _BOOT_CHUNK_ELEMENTS).
    """
    y_true = np.asarray(y_true)
    y_x = np.asarray(y_x)
    n = y_true.shape[0]
    if n == 0 or y_x.shape[0] != n:
        raise ValueError(f"need matching non-empty inputs, got {y_true.shape} and {y_x.shape}")
    if chunk is None:
        per_row = n * max(1, int(np.prod(y_x.shape[1:])))
        chunk = max(1, _BOOT_CHUNK_ELEMENTS // per_row)
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot)  # (R,)
    for start in range(0, n_boot, chunk):
        # Each chunk's resamples are drawn only when scored: peak memory is chunk x N, not
        # n_boot x N. Consecutive draws continue one stream, so any chunking draws exactly
        # the resamples one (n_boot, N) draw would, and the interval does not depend on it.
        idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))  # (R_chunk, N)
        if vectorized:
            part = np.asarray(metric_fn(y_true[idx], y_x[idx]), dtype=np.float64).reshape(-1)
        else:
            part = np.array([float(metric_fn(y_true[row], y_x[row])) for row in idx])
        values[start : start + len(idx)] = part
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def metric_rows(
    report: Report,
    y_true: np.ndarray,
    probs: np.ndarray,
    split: str,
    level: str,
    seed: int,
    n_boot: int = 1000,
) -> list[dict]:
    """Rows for the `metrics(run_id, split, name, value, ci_low, ci_high)` table, minus run_id.

    Names are `<level>/accuracy|macro_f1|top2` (with 95% bootstrap CIs over items) and
    `<level>/precision|recall|f1/<genre>` (CI None). `level` is "track" or "window".
    """
    if level not in ("track", "window"):
        raise ValueError(f"level must be 'track' or 'window', got {level!r}")
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    y_pred = probs.argmax(axis=1)
    n_classes = len(report.labels)
    summary = [
        ("accuracy", report.accuracy, batch_accuracy, y_pred),
        ("macro_f1", report.macro_f1, batch_macro_f1(n_classes), y_pred),
        ("top2", report.top2, batch_top_k(2), probs),
    ]
    rows = []
    for name, value, fn, y_x in summary:
        low, high = bootstrap_ci(y_true, y_x, fn, n_boot=n_boot, seed=seed)
        rows.append(_row(split, f"{level}/{name}", value, low, high))
    for kind in ("precision", "recall", "f1"):
        values = getattr(report, kind)
        for genre, value in zip(report.labels, values):
            rows.append(_row(split, f"{level}/{kind}/{genre}", value, None, None))
    return rows


def _row(split: str, name: str, value: float, low: float | None, high: float | None) -> dict:
    return {"split": split, "name": name, "value": float(value), "ci_low": low, "ci_high": high}


def ci_from_rows(rows: Sequence[dict]) -> dict[str, tuple[float, float]]:
    """{"accuracy": (low, high), ...} from `metric_rows` output, for `format_report`."""
    return {
        r["name"].rsplit("/", 1)[-1]: (r["ci_low"], r["ci_high"])
        for r in rows if r["ci_low"] is not None and r["name"].count("/") == 1
    }


@dataclass(frozen=True)
class McNemarResult:
    b: int  # items A gets right and B gets wrong
    c: int  # items A gets wrong and B gets right
    statistic: float  # min(b, c) for the exact test, the chi-square value otherwise
    p_value: float  # two-sided
    exact: bool  # True: binomial test; False: chi-square with continuity correction


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemarResult:
    """McNemar's test of two classifiers scored on the same items ((N,) bool correctness).

    Only discordant items carry evidence. Below 25 of them the chi-square approximation is
    poor, so the exact two-sided binomial test (p = 1/2) is used instead.
    """
    a = np.asarray(correct_a, dtype=bool)
    b_ok = np.asarray(correct_b, dtype=bool)
    if a.shape != b_ok.shape or a.ndim != 1:
        raise ValueError(f"need two (N,) correctness vectors, got {a.shape} and {b_ok.shape}")
    b = int(np.sum(a & ~b_ok))
    c = int(np.sum(~a & b_ok))
    n = b + c
    if n < 25:
        p = min(1.0, 2.0 * stats.binom.cdf(min(b, c), n, 0.5)) if n else 1.0
        return McNemarResult(b, c, float(min(b, c)), float(p), exact=True)
    # max(.., 0): the continuity correction must not turn b == c into evidence of a difference.
    statistic = max(abs(b - c) - 1, 0) ** 2 / n
    return McNemarResult(b, c, float(statistic), float(stats.chi2.sf(statistic, 1)), exact=False)


def kfold_summary(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sample std with ddof=1, n) of per-fold scores; std is nan for a single fold."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("kfold_summary needs at least one value")
    std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return float(arr.mean()), std, int(arr.size)


def abbreviations(labels: Sequence[str], width: int = 3) -> list[str]:
    """Short unique column names for a confusion matrix ("hiphop" -> "hip")."""
    short = [re.sub(r"[^0-9a-z]", "", s.lower())[:width] or "?" for s in labels]
    seen: dict[str, int] = {}
    for s in short:
        seen[s] = seen.get(s, 0) + 1
    counters: dict[str, int] = {}
    out = []
    for s in short:
        if seen[s] > 1:  # collisions get a running digit: "roc1", "roc2"
            counters[s] = counters.get(s, 0) + 1
            s = f"{s}{counters[s]}"
        out.append(s)
    return out


def format_report(report: Report, ci: dict | None = None) -> str:
    """The compact text report `train` prints: headline metrics, per-genre table, confusion.

    `ci` maps "accuracy" / "macro_f1" / "top2" to (low, high); see `ci_from_rows`.
    """
    ci = ci or {}

    def headline(title: str, key: str, value: float) -> str:
        line = f"{title:<9} {value:.3f}"
        if key in ci:
            low, high = ci[key]
            line += f"  95% CI [{low:.3f}, {high:.3f}]"
        return line

    lines = [
        headline("accuracy", "accuracy", report.accuracy) + f"  (n={report.n})",
        headline("macro-F1", "macro_f1", report.macro_f1),
        headline("top-2", "top2", report.top2),
        "",
    ]
    name_w = max(5, *(len(s) for s in report.labels))
    n_w = len(str(report.support.max()))
    lines.append(f"{'genre':<{name_w}}  prec   rec    f1  {'n':>{n_w}}")
    for i, genre in enumerate(report.labels):
        lines.append(
            f"{genre:<{name_w}}  {report.precision[i]:.2f}  {report.recall[i]:.2f}"
            f"  {report.f1[i]:.2f}  {report.support[i]:>{n_w}}"
        )
    short = abbreviations(report.labels)
    cell_w = max(3, *(len(s) for s in short), len(str(report.confusion.max())))
    lines += ["", "confusion (rows = true, columns = predicted)"]
    lines.append(" " * cell_w + " " + " ".join(f"{s:>{cell_w}}" for s in short))
    for s, counts in zip(short, report.confusion):
        lines.append(f"{s:<{cell_w}} " + " ".join(f"{int(v):>{cell_w}}" for v in counts))
    return "\n".join(lines)
