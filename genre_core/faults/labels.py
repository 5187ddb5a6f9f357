"""Label issues: tracks whose given genre looks wrong, judged on out-of-fold evidence.

The evidence is out-of-fold class probabilities (each track scored by a model that never
trained on it or on an exact copy of it); in-sample probabilities would hide the very
mislabels it looks for. Every source the dataset has is averaged: each complete k-fold
experiment of the dataset (any model, `train --split kfold`), and a quick check that needs
none and always runs -- two 5-fold logistic regressions on each track's mean window row,
one over the cached handcrafted tables, one over musicnn embeddings (the pretrained
Million-Song-Dataset tagger the musicnn probe uses, cached like the probe's). Averaging
the two halved the false flags of either alone on every planted corpus we measured (see
docs/datasets.md: label issues).

When the dataset names artists, an artist's other recordings are evidence too: a track
filed under metal by a band whose five other songs are filed as rock is more likely rock.
The audio's probabilities are multiplied by a prior from the genres of the artist's other
recordings (exact copies of the track excluded; add-one smoothing spread over the genres),
so an artist spread over genres leaves the audio to decide.

The rule follows confident learning (Northcutt, Jiang & Chuang, JAIR 70, 2021; implemented
here from the paper: cleanlab is AGPL-3.0) in ranking tracks by self-confidence, the
probability the evidence gives the given label. It deviates in three ways, each measured on
planted corpora: (1) a track is flagged when its own genres (every genre of a multi-label
track: a blues-rock crossover called rock is not a mislabel) get less than FLAG_BELOW,
instead of the paper's per-class thresholds (the mean self-confidence of a class), which let
a track whose probability is spread over three other genres pass unflagged; (2) the
probabilities are an average over sources and scaled by the artist prior; (3) since a flag's
probability of being a real mislabel is one minus its self-confidence when the evidence is
calibrated, the sum of those over the top k flags estimates how many of them are real --
the Faults page shows it, and docs/datasets.md compares it with the truth on planted corpora.
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
QUICK_SWEEP = "quick check (handcrafted + musicnn logistic regression, 5-fold)"
FLAG_BELOW = 0.1  # a track's own genres under 10%: at most a 1-in-10 chance the label is right
ARTIST_SMOOTHING = 1.0  # pseudo-recordings spread over the genres: one other song is weak evidence
MUSICNN_WINDOW_S = 3.0  # musicnn's input; windows side by side (no overlap) keep the check quick


@dataclass
class OutOfFold:
    """Out-of-fold class probabilities of one source: probs (N, C) in `classes` order."""

    sweep: str
    track_ids: list[str]
    labels: list[str]
    probs: np.ndarray
    classes: list[str]


def combine(sources: Sequence[OutOfFold | None]) -> OutOfFold | None:
    """The average of the sources' probabilities, per track over the sources that scored it,
    in the union of their classes (a class a source never saw has probability 0 there).
    Rows are renormalised first: stored probabilities are float32 and need not sum to 1."""
    sources = [s for s in sources if s is not None and len(s.track_ids)]
    if not sources:
        return None
    classes = sorted(set().union(*(s.classes for s in sources)))
    column = {c: i for i, c in enumerate(classes)}
    ids = sorted(set().union(*(s.track_ids for s in sources)))
    row = {t: i for i, t in enumerate(ids)}
    total, count = np.zeros((len(ids), len(classes))), np.zeros(len(ids))
    label = {}
    for s in sources:
        probs = np.asarray(s.probs, dtype=np.float64)
        probs = probs / np.clip(probs.sum(axis=1, keepdims=True), 1e-12, None)
        rows = np.array([row[t] for t in s.track_ids])
        total[np.ix_(rows, [column[c] for c in s.classes])] += probs
        count[rows] += 1
        label.update((t, g) for t, g in zip(s.track_ids, s.labels) if t not in label)
    return OutOfFold(" + ".join(s.sweep for s in sources), ids, [label[t] for t in ids],
                     total / count[:, None], classes)


def artist_prior(labels: Sequence[str], artists: Sequence, recordings: Sequence, classes: Sequence[str]
                 ) -> np.ndarray:
    """(N, C): for each track, the genres of its artist's other recordings, add-one smoothed
    (ARTIST_SMOOTHING spread evenly over the classes); uniform where the artist is unknown or
    has no other recording. Copies of the track (same `recordings` key, e.g. its file sha1) do
    not count: a copy filed under the same genre would vouch for its own label."""
    n_classes = len(classes)
    column = {c: i for i, c in enumerate(classes)}
    y = np.array([column.get(label, -1) for label in labels], dtype=np.int64)
    named = np.array([isinstance(a, str) and bool(a.strip()) for a in artists], dtype=bool) & (y >= 0)
    if not named.any():
        return np.full((len(y), n_classes), 1.0 / n_classes)
    artist = pd.factorize(pd.Series(list(artists), dtype=object).where(named, None))[0]
    recording = pd.factorize(pd.Series([f"{artist[i]}/{r}" if isinstance(r, str) else f"{artist[i]}/row-{i}"
                                        for i, r in enumerate(recordings)]))[0]
    onehot = np.eye(n_classes)[y[named]]
    by_artist = np.zeros((artist.max() + 1, n_classes))
    by_recording = np.zeros((recording.max() + 1, n_classes))
    np.add.at(by_artist, artist[named], onehot)
    np.add.at(by_recording, recording[named], onehot)
    others = np.zeros((len(y), n_classes))
    others[named] = by_artist[artist[named]] - by_recording[recording[named]]
    return (others + ARTIST_SMOOTHING / n_classes) / (others.sum(axis=1, keepdims=True) + ARTIST_SMOOTHING)


def label_issues(oof: OutOfFold, tracks: pd.DataFrame | None = None,
                 genres: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tracks whose own genres get less than FLAG_BELOW of the evidence, most suspicious first.

    `oof`: the (combined) out-of-fold probabilities. `tracks` (track_id, artist, sha1): with
    artists, the audio's probabilities are scaled by `artist_prior` and renormalised. `genres`
    (track_id, genre): every genre of multi-label tracks; a track's own probability is the sum
    over its genres (its label alone when it has none listed). Returns track_id, label,
    suggested (the most probable genre not its own), score (1 - own probability: the chance
    the label is wrong if the evidence is calibrated), evidence (JSON). Labels outside
    `oof.classes` are skipped.
    """
    column = {c: i for i, c in enumerate(oof.classes)}
    keep = [i for i, label in enumerate(oof.labels) if label in column]
    ids = [oof.track_ids[i] for i in keep]
    labels = [oof.labels[i] for i in keep]
    audio = np.asarray(oof.probs, dtype=np.float64)[keep]
    info = (tracks.drop_duplicates("track_id").set_index("track_id").reindex(ids) if tracks is not None
            else pd.DataFrame(index=ids, columns=["artist", "sha1"]))
    probs = audio
    if info["artist"].notna().any():
        probs = audio * artist_prior(labels, info["artist"], info["sha1"], oof.classes)
        probs /= probs.sum(axis=1, keepdims=True)
    own_genres = _own_genres(ids, labels, genres, column)  # (N, C) bool
    own = np.where(own_genres, probs, 0.0).sum(axis=1)
    suggested = np.where(own_genres, -np.inf, probs).argmax(axis=1)
    out = []
    for i in np.flatnonzero(own < FLAG_BELOW):
        s = int(suggested[i])
        evidence = dict(given_prob=round(float(own[i]), 4), suggested=oof.classes[s],
                        suggested_prob=round(float(probs[i, s]), 4),
                        audio_given_prob=round(float(np.where(own_genres[i], audio[i], 0.0).sum()), 4),
                        own_genres=[oof.classes[j] for j in np.flatnonzero(own_genres[i])],
                        sources=oof.sweep, rule=f"own genres below {FLAG_BELOW:g}, out-of-fold")
        evidence.update(_artist_evidence(info, ids[i], labels))
        out.append(dict(track_id=ids[i], label=labels[i], suggested=oof.classes[s], score=float(1.0 - own[i]),
                        evidence=to_json(evidence)))
    frame = pd.DataFrame(out, columns=["track_id", "label", "suggested", "score", "evidence"])
    return frame.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)


def _own_genres(ids: list[str], labels: list[str], genres: pd.DataFrame | None, column: dict) -> np.ndarray:
    own = np.zeros((len(ids), len(column)), dtype=bool)
    own[np.arange(len(ids)), [column[label] for label in labels]] = True
    if genres is not None and len(genres):
        row = {t: i for i, t in enumerate(ids)}
        for t, g in zip(genres["track_id"], genres["genre"]):
            if t in row and g in column:
                own[row[t], column[g]] = True
    return own


def _artist_evidence(info: pd.DataFrame, track_id: str, labels: list[str]) -> dict:
    """The artist and how their other recordings are filed, for the reviewer to see."""
    artist, sha1 = info.at[track_id, "artist"], info.at[track_id, "sha1"]
    if not isinstance(artist, str) or not artist.strip():
        return {}
    others = (info["artist"] == artist).to_numpy() & (info["sha1"] != sha1).to_numpy()
    filed = pd.Series(np.asarray(labels, dtype=object)[others]).value_counts()
    return dict(artist=artist, artist_other_genres={str(g): int(n) for g, n in filed.items()})


def expected_real(scores: Sequence[float], ks: Sequence[int] = (5, 10, 20)) -> pd.DataFrame:
    """How many of the top k flags are expected to be real mislabels: the sum of their scores
    (each the evidence's probability that the label is wrong), for each k up to the number of
    flags and for all of them. Columns k, expected_real, expected_precision."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    cuts = sorted({k for k in ks if k < len(scores)} | ({len(scores)} if len(scores) else set()))
    rows = [dict(k=k, expected_real=float(scores[:k].sum()), expected_precision=float(scores[:k].mean()))
            for k in cuts]
    return pd.DataFrame(rows, columns=["k", "expected_real", "expected_precision"])


_FOLD = re.compile(r"^kfold-(\d+)/(\d+)$")


def kfold_sources(predictions: pd.DataFrame) -> list[OutOfFold]:
    """Every complete k-fold sweep's test predictions, one row per track, oldest first.

    `predictions` is `Store.kfold_test_predictions` (run_id, sweep, fold_split, classes,
    started_at, track_id, label, probs). A sweep is complete when every fold 1..k of
    'kfold-i/k' has a run; runs without a sweep id count as sweeps of their own.
    """
    if predictions.empty:
        return []
    frame = predictions.assign(group=predictions["sweep"].fillna(predictions["run_id"]))
    sources = []
    for group, rows in sorted(frame.groupby("group"), key=lambda g: g[1]["started_at"].max()):
        folds = {m.groups() for m in map(_FOLD.match, rows["fold_split"].unique()) if m}
        ks = {int(k) for _, k in folds}
        if len(ks) != 1 or {int(i) for i, _ in folds} != set(range(1, ks.pop() + 1)):
            continue
        rows = rows.drop_duplicates("track_id", keep="last").sort_values("track_id")
        classes = rows["classes"].iloc[0]  # NULL for runs stored before classes were recorded
        ok = isinstance(classes, (list, tuple, np.ndarray)) and len(classes)
        classes = list(classes) if ok else sorted(rows["label"].unique())
        probs = np.stack([np.asarray(p, dtype=np.float64) for p in rows["probs"]])
        sources.append(OutOfFold(str(group), list(rows["track_id"]), list(rows["label"]), probs, classes))
    return sources


def _checkable(tracks: pd.DataFrame) -> bool:
    """Folds need two genres with at least two tracks each."""
    counts = tracks["label"].value_counts()
    return len(counts) >= 2 and counts.min() >= 2


def quick_out_of_fold(tracks: pd.DataFrame, cache: ShardCache, *, seed: int = 0, progress: bool = True,
                      engine: EngineOptions | None = None, device: str = "auto") -> OutOfFold | None:
    """Out-of-fold probabilities without any k-fold run: the average of two logistic
    regressions, on each track's mean handcrafted row and on its mean musicnn embedding.

    `tracks` are the usable tracks (track_id, path, sha1, label). Folds (the same for both)
    are stratified by genre and grouped by recording (exact copies share a sha1), so no track
    is scored by a model that heard it or an exact copy. They are deliberately *not* grouped
    by artist: the check asks what a track sounds like, and the artist's other clips are fair
    evidence of that; with whole artists held out, the model was too weak to tell a mislabel
    from an unfamiliar artist (demo corpus: 47 flags for 4 planted mislabels with artist
    folds, 9 per recording). None when a genre has fewer than two tracks. Tables not yet cached
    are computed in `engine`'s workers (handcrafted) and on `device` (musicnn; both cached, so
    a second check, and a musicnn probe with the same windows, reuse them).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    tracks = tracks[tracks["sha1"].notna()].sort_values("track_id").reset_index(drop=True)
    if not _checkable(tracks):  # before decoding anything: a one-genre corpus has nothing to check
        return None
    hand_ids, hand = _handcrafted_means(tracks, cache, progress, engine)
    music_ids, music = _musicnn_means(tracks, cache, progress, device)
    both = sorted(set(hand_ids) & set(music_ids))  # servable at both rates
    tracks = tracks.set_index("track_id").loc[both].reset_index()
    if not _checkable(tracks):
        return None
    labels = tracks["label"].to_numpy()
    folds = StratifiedGroupKFold(n_splits=min(QUICK_FOLDS, int(tracks["label"].value_counts().min())),
                                 shuffle=True, random_state=seed)
    splits = list(folds.split(np.zeros(len(tracks)), labels, groups=pd.factorize(tracks["sha1"])[0]))
    classes = sorted(set(labels))
    probs = [_out_of_fold_logreg(_rows(table, ids, both), labels, splits, classes)
             for ids, table in ((hand_ids, hand), (music_ids, music))]
    return OutOfFold(QUICK_SWEEP, both, list(labels), (probs[0] + probs[1]) / 2, classes)


def _rows(table: np.ndarray, ids: list[str], wanted: list[str]) -> np.ndarray:
    position = {t: i for i, t in enumerate(ids)}
    return table[[position[t] for t in wanted]]


def _out_of_fold_logreg(features: np.ndarray, labels: np.ndarray, splits: list, classes: list[str]) -> np.ndarray:
    """(N, C) probabilities of a standardised logistic regression, each row from the fold
    that held it out."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probs = np.zeros((len(labels), len(classes)))
    for train, held_out in splits:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(features[train], labels[train])
        columns = [classes.index(c) for c in model.classes_]  # a fold may miss a rare genre
        probs[np.ix_(held_out, columns)] = model.predict_proba(features[held_out])
    return probs


def _handcrafted_means(tracks: pd.DataFrame, cache: ShardCache, progress: bool,
                       engine: EngineOptions | None) -> tuple[list[str], np.ndarray]:
    """(servable track ids, (N, F) mean handcrafted rows) over the baselines' 3-s windows."""
    from genre_core.analysis.embeddings import track_means
    from genre_core.features.windows import build_windows, handcrafted_windows, servable_tracks
    from genre_core.train.config import TrainConfig

    config = TrainConfig(dataset="", model="logreg")  # the baselines' window and rate
    tracks = servable_tracks(tracks, cache, sr=config.features.sr, desc="label check audio",
                             progress=progress).reset_index(drop=True)
    classes = sorted(tracks["label"].unique())
    windows = build_windows(tracks, classes, cache, sr=config.features.sr, window_s=config.window_s,
                            hop_s=config.window_s, desc="label check", progress=progress)
    table = handcrafted_windows(windows, list(tracks["sha1"]), cache, progress=progress, engine=engine)
    return list(tracks["track_id"]), track_means(windows.index[:, 0], table, len(tracks))


def _musicnn_means(tracks: pd.DataFrame, cache: ShardCache, progress: bool,
                   device: str) -> tuple[list[str], np.ndarray]:
    """(servable track ids, (N, D) mean musicnn embeddings) over side-by-side 3-s windows."""
    from genre_core.analysis.embeddings import track_means
    from genre_core.features.embedding_cache import embed_windows
    from genre_core.features.pipeline import input_pipeline
    from genre_core.features.windows import build_windows, servable_tracks
    from genre_core.models import build_model
    from genre_core.train.config import TrainConfig
    from genre_core.train.inference import batch_size
    from genre_core.train.loop import resolve_device

    frontend, sr, n_bins = input_pipeline("musicnn", TrainConfig(dataset="", model="musicnn_probe").features)
    tracks = servable_tracks(tracks, cache, sr=sr, desc="label check audio (musicnn)",
                             progress=progress).reset_index(drop=True)
    classes = sorted(tracks["label"].unique())
    windows = build_windows(tracks, classes, cache, sr=sr, window_s=MUSICNN_WINDOW_S, hop_s=MUSICNN_WINDOW_S,
                            desc="label check (musicnn)", progress=progress)
    model = build_model("musicnn_probe", len(classes), n_bins)
    where = resolve_device(device)
    vectors = embed_windows(model, frontend, windows, shas=list(tracks["sha1"]), cache=cache, device=where,
                            batch_size=batch_size(where), progress=progress, desc="label check musicnn").vectors
    return list(tracks["track_id"]), track_means(windows.index[:, 0], vectors, len(tracks))
