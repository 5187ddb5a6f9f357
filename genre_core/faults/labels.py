"""Label issues: tracks whose given genre looks wrong, by confident learning.

Confident learning (Northcutt, Jiang & Chuang, "Confident learning: estimating uncertainty in
dataset labels", JAIR 70, 2021) is implemented here from the paper because cleanlab is
AGPL-3.0, a licence this product does not take on. It needs out-of-fold probabilities (each
track scored by a model that never trained on it); in-sample probabilities would hide the very
mislabels it looks for. They come from the dataset's latest complete k-fold experiment (the
user's choice of model), or, when it has none, from `handcrafted_out_of_fold`: a 5-fold
logistic regression on each track's mean handcrafted feature row, through the same cached
tables the baselines train on, so the check costs seconds and needs no k-fold run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from genre_core.engine import EngineOptions
from genre_core.features.cache import ShardCache
from genre_core.store import to_json

QUICK_FOLDS = 5
QUICK_SWEEP = "handcrafted logreg 5-fold (faults)"  # names the source in each finding's evidence


def label_issues(track_ids: Sequence[str], labels: Sequence[str], probs: np.ndarray,
                 classes: Sequence[str]) -> pd.DataFrame:
    """Tracks whose given label looks wrong, by confident learning on out-of-fold probabilities.

    probs: (N, C) out-of-fold class probabilities, columns in `classes` order. The threshold
    of class j is the mean probability of j over the tracks labelled j (its self-confidence).
    A track is flagged when its given label's probability is below that label's threshold
    while another class reaches its own threshold; the suggestion is the most probable such
    class. Returns track_id, label, suggested, score (margin: suggested minus given
    probability), evidence (JSON), most suspicious first. Labels outside `classes` are skipped.
    """
    probs = np.asarray(probs, dtype=np.float64)
    index = {c: i for i, c in enumerate(classes)}
    keep = np.array([label in index for label in labels], dtype=bool)
    ids = np.asarray(track_ids, dtype=object)[keep]
    given = np.array([index[label] for label in np.asarray(labels, dtype=object)[keep]], dtype=np.int64)
    probs = probs[keep]
    rows_ = np.arange(given.size)
    self_conf = probs[rows_, given]
    thresholds = np.array([self_conf[given == c].mean() if np.any(given == c) else np.inf
                           for c in range(len(classes))])
    confident = probs >= thresholds  # (N, C)
    confident[rows_, given] = False
    suggested = np.where(confident, probs, -np.inf).argmax(axis=1)
    flagged = (self_conf < thresholds[given]) & confident.any(axis=1)
    margin = probs[rows_, suggested] - self_conf
    out = []
    for i in np.flatnonzero(flagged):
        g, s = int(given[i]), int(suggested[i])
        evidence = dict(given_prob=round(self_conf[i], 4), given_threshold=round(thresholds[g], 4),
                        suggested=classes[s], suggested_prob=round(probs[i, s], 4),
                        suggested_threshold=round(thresholds[s], 4), method="confident learning, out-of-fold")
        out.append(dict(track_id=ids[i], label=classes[g], suggested=classes[s], score=float(margin[i]),
                        evidence=to_json(evidence)))
    frame = pd.DataFrame(out, columns=["track_id", "label", "suggested", "score", "evidence"])
    return frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


@dataclass
class OutOfFold:
    """Out-of-fold predictions of one complete k-fold sweep: probs (N, C) in `classes` order."""

    sweep: str
    track_ids: list[str]
    labels: list[str]
    probs: np.ndarray
    classes: list[str]


_FOLD = re.compile(r"^kfold-(\d+)/(\d+)$")


def out_of_fold_probs(predictions: pd.DataFrame) -> OutOfFold | None:
    """The most recent complete k-fold sweep's test predictions, one per track, or None.

    `predictions` is `Store.kfold_test_predictions` (run_id, sweep, fold_split, classes,
    started_at, track_id, label, probs). A sweep is complete when every fold 1..k of
    'kfold-i/k' has a run; runs without a sweep id count as sweeps of their own.
    """
    if predictions.empty:
        return None
    frame = predictions.assign(group=predictions["sweep"].fillna(predictions["run_id"]))
    for group, rows in sorted(frame.groupby("group"), key=lambda g: g[1]["started_at"].max(), reverse=True):
        folds = {m.groups() for m in map(_FOLD.match, rows["fold_split"].unique()) if m}
        ks = {int(k) for _, k in folds}
        if len(ks) != 1 or {int(i) for i, _ in folds} != set(range(1, ks.pop() + 1)):
            continue
        rows = rows.drop_duplicates("track_id", keep="last").sort_values("track_id")
        classes = rows["classes"].iloc[0]  # NULL for runs stored before classes were recorded
        ok = isinstance(classes, (list, tuple, np.ndarray)) and len(classes)
        classes = list(classes) if ok else sorted(rows["label"].unique())
        probs = np.stack([np.asarray(p, dtype=np.float64) for p in rows["probs"]])
        return OutOfFold(str(group), list(rows["track_id"]), list(rows["label"]), probs, classes)
    return None


def _checkable(tracks: pd.DataFrame) -> bool:
    """Folds need two genres with at least two tracks each."""
    counts = tracks["label"].value_counts()
    return len(counts) >= 2 and counts.min() >= 2


def handcrafted_out_of_fold(tracks: pd.DataFrame, cache: ShardCache, *, seed: int = 0,
                            progress: bool = True, engine: EngineOptions | None = None) -> OutOfFold | None:
    """Out-of-fold probabilities of a logistic regression on each track's mean handcrafted row.

    `tracks` are the usable tracks (track_id, path, sha1, label). Folds are stratified by
    genre and grouped by recording (exact copies share a sha1), so no track is scored by a
    model that heard it or an exact copy. They are deliberately *not* grouped by artist: the check
    asks what a track sounds like, and the artist's other clips are fair evidence of that; with
    whole artists held out, the model was too weak to tell a mislabel from an unfamiliar artist
    (demo corpus: 47 flags for 4 planted mislabels with artist folds, 9 per recording, 3 of
    the 4 found by both; 100 vs 39, 70 vs 5 and 58 vs 6 flags on three other synth corpora,
    finding as many or more planted ones). None when a genre has fewer than two tracks.
    Tables not yet cached are computed in `engine`'s workers (100,000 clips: ~40 min serial).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from genre_core.analysis.embeddings import track_means
    from genre_core.features.windows import build_windows, handcrafted_windows, servable_tracks
    from genre_core.train.config import TrainConfig

    tracks = tracks[tracks["sha1"].notna()].sort_values("track_id").reset_index(drop=True)
    if not _checkable(tracks):  # before decoding anything: a one-genre corpus has nothing to check
        return None
    config = TrainConfig(dataset="", model="logreg")  # the baselines' window and rate
    tracks = servable_tracks(tracks, cache, sr=config.features.sr, desc="label check audio",
                             progress=progress).reset_index(drop=True)
    if not _checkable(tracks):
        return None
    counts = tracks["label"].value_counts()
    classes = sorted(counts.index)
    # One row per 3-s window, no overlap: the windows (and so the cached tables) baselines use.
    windows = build_windows(tracks, classes, cache, sr=config.features.sr, window_s=config.window_s,
                            hop_s=config.window_s, desc="label check", progress=progress)
    table = handcrafted_windows(windows, list(tracks["sha1"]), cache, progress=progress, engine=engine)  # (W, F)
    per_track = track_means(windows.index[:, 0], table, len(tracks))  # (N, F)
    groups = pd.factorize(tracks["sha1"])[0]  # (N,) one group per recording
    folds = StratifiedGroupKFold(n_splits=min(QUICK_FOLDS, int(counts.min())), shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probs = cross_val_predict(model, per_track, windows.labels, groups=groups, cv=folds, method="predict_proba")
    return OutOfFold(QUICK_SWEEP, list(tracks["track_id"]), list(tracks["label"]), probs, classes)
