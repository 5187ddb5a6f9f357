"""Turn per-window genre probabilities of a long recording into a timeline of sections.

Pure numpy/scipy/pandas (no torch), so the app can re-smooth stored windows with other
settings without a model. The pipeline: windows -> smoothed label per window (Viterbi, median or
none) -> runs of equal labels -> `Section`s with boundaries between window centres -> text,
DataFrame, CSV or JSON.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from genre_core import untrusted

SILENCE = "silence"  # genre name of sections made of silent windows
METHODS = ("viterbi", "median", "none")
# Log-space cost of one genre change. A section that interrupts another pays it twice (in and
# out), so it survives only if its windows' summed log-probability margin over the surrounding
# genre exceeds 20 nats: ~7 windows at hop 1.5 s (a 12-s section) of confident (0.9 vs 0.05)
# windows, or ~16 windows (~25 s) of middling (0.7 vs 0.2) ones. Isolated wrong windows, whose
# margin is capped at -log(PROB_FLOOR) = 9.2 nats, never open a section on their own. On
# simulated 10-genre sets (20 sections, 80% of windows right) 10 recovered the section count of
# 30-300 s sections exactly and kept 90% of 12-s ones; 5 added 16% more sections (65% with a
# 60%-right model), 15 and 20 dropped 32% and 65% of the 12-s ones. The cost is per change, not
# per second: a smaller hop gives more windows per second of evidence, so shorter sections pass.
DEFAULT_SWITCH_PENALTY = 10.0
DEFAULT_MEDIAN_WINDOWS = 7  # ~10 s of context at hop 1.5 s, the shortest section we want to keep
# Floor for log-probabilities: bounds one overconfident window's say (a softmax can emit 1e-9).
PROB_FLOOR = 1e-4


@dataclass(frozen=True)
class WindowPrediction:
    """One analysed window: [start_s, end_s) of audio in seconds from the stream start.

    `probs` (C,) are the model's class probabilities, all NaN when `silent` (peak below
    SILENCE_DBFS: no genre is claimed for silence). The last window of a stream may be shorter
    than the others (a zero-padded tail), so `end_s` is the end of real audio it covers.
    """

    start_s: float
    end_s: float
    probs: np.ndarray = field(compare=False)
    silent: bool = False

    @property
    def centre_s(self) -> float:
        return 0.5 * (self.start_s + self.end_s)


@dataclass(frozen=True)
class Section:
    """A stretch [start_s, end_s) in seconds of one genre (or SILENCE).

    `confidence` is the mean probability of `genre` over the section's windows (1.0 for
    silence, which is measured, not guessed); `top_k` lists (genre, mean probability) pairs in
    descending order, the section's own genre included (empty for silence).
    """

    start_s: float
    end_s: float
    genre: str
    confidence: float
    top_k: list[tuple[str, float]] = field(default_factory=list)


def viterbi(log_probs: np.ndarray, switch_penalty: float = DEFAULT_SWITCH_PENALTY) -> np.ndarray:
    """Best piecewise-constant state path: (T, S) per-window log-scores -> (T,) state indices.

    Maximises sum_t log_probs[t, s_t] - switch_penalty * #{t : s_t != s_{t-1}}, exactly. This
    is Viterbi decoding of an HMM whose transition matrix is "sticky" (stay with probability
    p_stay, switch uniformly to any other state), with switch_penalty =
    log(p_stay * (S - 1) / (1 - p_stay)); -inf entries forbid a state at a window. Ties keep the
    current state, so equal evidence never adds a boundary. O(T * S) time, O(T * S) memory for
    the back-pointers (a 2-hour stream at hop 1.5 s is 4,800 x 11 ints).
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    n_windows, n_states = log_probs.shape
    path = np.zeros(n_windows, dtype=np.int64)
    if n_windows == 0:
        return path
    states = np.arange(n_states)
    back = np.empty((n_windows, n_states), dtype=np.int64)  # (T, S) best predecessor
    score = log_probs[0].copy()  # (S,) best path score ending in each state
    for t in range(1, n_windows):
        best = int(np.argmax(score))
        switched = score[best] - switch_penalty
        stay = score >= switched
        back[t] = np.where(stay, states, best)
        score = np.where(stay, score, switched) + log_probs[t]
    path[-1] = int(np.argmax(score))
    for t in range(n_windows - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def _median_labels(probs: np.ndarray, silent: np.ndarray, windows: int) -> np.ndarray:
    """Argmax of each genre's probability median-filtered over `windows` windows, filtered
    separately inside each audible run so silence never bleeds into a genre's median."""
    labels = np.full(len(probs), -1, dtype=np.int64)
    audible = np.flatnonzero(~silent)
    if audible.size == 0:
        return labels
    runs = np.split(audible, np.flatnonzero(np.diff(audible) > 1) + 1)
    for run in runs:
        smoothed = ndimage.median_filter(probs[run], size=(windows, 1), mode="nearest")  # (R, C)
        labels[run] = np.argmax(smoothed, axis=1)
    return labels


def smooth_labels(
    probs: np.ndarray,
    silent: np.ndarray,
    *, method: str = "viterbi",
    switch_penalty: float = DEFAULT_SWITCH_PENALTY,
    median_windows: int = DEFAULT_MEDIAN_WINDOWS,
) -> np.ndarray:
    """(T, C) probabilities (rows of silent windows ignored) and (T,) bool silent -> (T,) labels:
    a class index per window, -1 for silence.

    "viterbi" (default) finds the exact best piecewise-constant path under a per-change cost: a
    DJ mix or album has few genre changes, and unlike a median filter Viterbi weighs how sure
    each window is, so three confident windows can outvote five hesitant ones, and a boundary
    lands where the evidence flips rather than where a filter's majority does. Silence is an
    extra state that silent windows are forced into (and only they can be). "median" filters each
    genre's probability over `median_windows` windows; "none" is the raw argmax.
    """
    if method not in METHODS:
        raise ValueError(f"unknown smoothing method {method!r} (choose from {', '.join(METHODS)})")
    probs, silent = np.asarray(probs, dtype=np.float64), np.asarray(silent, dtype=bool)
    if method == "median":
        return _median_labels(probs, silent, median_windows)
    if method == "none":
        return np.where(silent, -1, np.argmax(np.nan_to_num(probs, nan=0.0), axis=1))
    n_classes = probs.shape[1]
    scores = np.full((len(probs), n_classes + 1), -np.inf)  # (T, C + 1); last state = silence
    scores[~silent, :n_classes] = np.log(np.clip(probs[~silent], PROB_FLOOR, 1.0))
    scores[silent, n_classes] = 0.0
    path = viterbi(scores, switch_penalty)
    return np.where(path == n_classes, -1, path)


def segment(
    predictions: Sequence[WindowPrediction],
    classes: Sequence[str],
    *, method: str = "viterbi",
    switch_penalty: float = DEFAULT_SWITCH_PENALTY,
    top_k: int = 3,
    median_windows: int = DEFAULT_MEDIAN_WINDOWS,
    end_s: float | None = None,
) -> list[Section]:
    """Windows in time order -> sections covering [0, end_s) without gaps.

    A boundary sits at the midpoint between the centres of the two adjacent windows whose
    smoothed labels differ; the first section starts at 0 and the last ends at `end_s` (default:
    the last window's end). Returns [] for no windows.
    """
    if not predictions:
        return []
    probs = np.stack([np.asarray(p.probs, dtype=np.float64) for p in predictions])  # (T, C)
    silent = np.array([p.silent for p in predictions])
    labels = smooth_labels(probs, silent, method=method, switch_penalty=switch_penalty, median_windows=median_windows)
    centres = np.array([p.centre_s for p in predictions])
    changes = np.flatnonzero(labels[1:] != labels[:-1]) + 1  # first window of each later run
    firsts = np.concatenate([[0], changes])
    lasts = np.concatenate([changes, [len(labels)]])
    bounds = [0.0, *(0.5 * (centres[changes - 1] + centres[changes])).tolist()]
    bounds.append(predictions[-1].end_s if end_s is None else float(end_s))
    return [
        _section(probs[a:b], int(labels[a]), classes, bounds[i], bounds[i + 1], top_k)
        for i, (a, b) in enumerate(zip(firsts, lasts))
    ]


def _section(probs: np.ndarray, label: int, classes: Sequence[str], start: float, end: float,
             top_k: int) -> Section:
    if label < 0:
        return Section(start, end, SILENCE, 1.0, [])
    mean = probs.mean(axis=0)  # (C,)
    order = np.argsort(-mean, kind="stable")[:top_k]
    return Section(start, end, classes[label], float(mean[label]),
                   [(classes[i], float(mean[i])) for i in order])


def format_time(seconds: float, hours: bool = False) -> str:
    """mm:ss, or h:mm:ss when `hours` or when the time reaches an hour (rounded to the second)."""
    total = int(round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if hours or h else f"{m:02d}:{s:02d}"


def format_sections(sections: Sequence[Section]) -> str:
    """One line per section, e.g. `00:00-04:12  hiphop  (0.91)  also: reggae 0.05, pop 0.02`.

    Times are mm:ss, or h:mm:ss on every line once the timeline reaches an hour, so the columns
    line up; genre names are padded to the longest one.
    """
    if not sections:
        return ""
    hours = round(sections[-1].end_s) >= 3600
    width = max((len(s.genre) for s in sections if s.genre != SILENCE), default=0)
    lines = []
    for s in sections:
        span = f"{format_time(s.start_s, hours)}-{format_time(s.end_s, hours)}"
        if s.genre == SILENCE:
            lines.append(f"{span}  {s.genre}")
            continue
        line = f"{span}  {s.genre.ljust(width)}  ({s.confidence:.2f})"
        others = [f"{g} {p:.2f}" for g, p in s.top_k if g != s.genre]
        lines.append(line + (f"  also: {', '.join(others)}" if others else ""))
    return "\n".join(lines)


def timeline_frame(
    predictions: Sequence[WindowPrediction],
    classes: Sequence[str],
    sections: Sequence[Section] | None = None,
    **segment_kwargs,
) -> pd.DataFrame:
    """One row per window: start_s, end_s, one probability column per genre (NaN when silent)
    and `genre`, the smoothed genre of the section holding the window's centre. Without
    `sections` they are computed with `segment(predictions, classes, **segment_kwargs)`."""
    if sections is None:
        sections = segment(predictions, classes, **segment_kwargs)
    frame = pd.DataFrame({"start_s": [p.start_s for p in predictions],
                          "end_s": [p.end_s for p in predictions]})
    probs = (np.stack([p.probs for p in predictions]) if predictions
             else np.zeros((0, len(classes))))  # (T, C)
    for i, genre in enumerate(classes):
        frame[genre] = probs[:, i].astype(np.float64)
    starts = np.array([s.start_s for s in sections])
    centres = np.array([p.centre_s for p in predictions])
    which = np.clip(np.searchsorted(starts, centres, side="right") - 1, 0, None)
    frame["genre"] = [sections[i].genre for i in which] if sections else [None] * len(frame)
    return frame


def check_timeline_target(out: Path | str) -> Path:
    """`out` as a Path if a timeline can be written there (.csv or .json, in a folder that
    exists or can be made, writable); else a one-line ValueError. Callers check before the
    long work, so a bad --out never costs a whole classification."""
    out = Path(out)
    if out.suffix.lower() not in (".csv", ".json"):
        shown = repr(out.suffix) if out.suffix else "(no suffix)"
        raise ValueError(f"{out}: unknown timeline format {shown} (use .csv or .json)")
    if out.is_dir():
        raise ValueError(f"{out}: is a directory, not a file")
    folder = next(p for p in (out.parent, *out.parent.parents) if p.exists())  # "/" always exists
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{out}: cannot write there ({folder} is not a writable folder)")
    return out


def write_timeline(
    predictions: Sequence[WindowPrediction],
    sections: Sequence[Section],
    classes: Sequence[str],
    *, out: Path | str,
) -> Path:
    """Write the timeline by suffix: .csv (one row per window, as `timeline_frame`) or .json
    ({"windows": [...], "sections": [...]}, probabilities null for silent windows)."""
    out = check_timeline_target(out)
    frame = timeline_frame(predictions, classes, sections)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        untrusted.cells(frame).to_csv(out, index=False)  # genre names are headers a spreadsheet reads
        return out
    windows = [
        {"start_s": p.start_s, "end_s": p.end_s, "genre": genre,
         "probs": None if p.silent else dict(zip(classes, map(float, p.probs)))}
        for p, genre in zip(predictions, frame["genre"])
    ]
    out.write_text(json.dumps({"windows": windows, "sections": [asdict(s) for s in sections]}, indent=1))
    return out


def boundary_error(true_boundaries: Sequence[float], sections: Sequence[Section]) -> float:
    """Mean |true - nearest predicted boundary| in seconds over the true boundaries (the
    predicted ones are the starts of all sections but the first). inf when there are true
    boundaries but no predicted ones; 0 when there are no true boundaries."""
    if len(true_boundaries) == 0:
        return 0.0
    predicted = np.array([s.start_s for s in sections[1:]])
    if predicted.size == 0:
        return math.inf
    truth = np.asarray(true_boundaries, dtype=np.float64)
    return float(np.abs(truth[:, None] - predicted[None, :]).min(axis=1).mean())


def time_accuracy(truth: Sequence[tuple[float, float, str]], sections: Sequence[Section]) -> float:
    """Share of the true timeline's duration where the predicted section's genre equals the
    true one. `truth` is (start_s, end_s, genre) triples."""
    total = sum(end - start for start, end, _ in truth)
    agree = sum(
        max(0.0, min(end, s.end_s) - max(start, s.start_s))
        for start, end, genre in truth for s in sections if s.genre == genre
    )
    return agree / total if total > 0 else math.nan
