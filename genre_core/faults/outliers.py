"""Clips unlike any music in the corpus: speech, noise, test tones filed under a genre.

Each clip is described by four numbers that tell music from the rest whatever the genre: how
noise-like its spectrum is once the clip's own average colour is divided out (whitened
flatness: noise stays flat, notes make peaks), how regular its onsets are (a pulse), how strong
they are, and how peaked its chroma is (pitched notes). They are scaled robustly over the corpus
(median and interquartile range, so the odd clips do not set the scale). A clip's outlier score
is its mean distance to its OUTLIER_K nearest neighbours over the corpus' median of that
distance: music has other music near it; speech, noise or a tone has nothing. Clips scoring
OUTLIER_MIN_SCORE or more are flagged `not_music`, with the score, the threshold, the nearest
clip and each descriptor's robust z in the evidence.

Timbre (MFCCs) was tried and left out: it varies so much between genres that it drowned the
planted pink noise among hip-hop clips (measured on the demo corpus, docs/datasets.md).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


OUTLIER_SR = 11025  # the fingerprints' rate: pulse, pitch and noisiness need no more
HOP = 512  # 46-ms frames
OUTLIER_K = 5  # neighbours: a handful of similar clips is what any real song has in a genre corpus
# Measured on the default demo corpus and two other seeds (docs/datasets.md): planted non-music
# clips score 3.7 and above, music mostly below 3 (two clips of one corpus at 3.2 and 4.2); a
# 60-clip corpus of 8-s clips put its babble at 3.0, the next clip at 2.5.
OUTLIER_MIN_SCORE = 3.0
DESCRIPTORS = ("whitened_flatness", "onset_regularity", "onset_strength", "chroma_peakiness")


def descriptors(y: np.ndarray, sr: int) -> np.ndarray | None:
    """(len(DESCRIPTORS),) numbers describing clip y ((N,) at sr Hz), from one spectrogram;
    None for a clip under a second long or without sound."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if len(y) < sr or not np.any(y):
        return None
    power = np.abs(librosa.stft(y, n_fft=2048, hop_length=HOP)) ** 2  # (F, T)
    white = np.maximum(power / np.maximum(power.mean(axis=1, keepdims=True), 1e-20), 1e-12)
    flatness = np.exp(np.mean(np.log(white), axis=0)) / np.mean(white, axis=0)  # (T,)
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr, n_mels=40))
    onset = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=HOP)  # (T,)
    chroma = librosa.feature.chroma_stft(S=power, sr=sr)  # (12, T)
    centred = onset - onset.mean()
    pulse = np.correlate(centred, centred, "full")[len(onset) - 1:]
    regularity = float(pulse[5:60].max() / max(pulse[0], 1e-9)) if len(pulse) > 5 else 0.0  # a beat 0.2-2.8 s later
    peaky = float(np.mean(chroma.max(axis=0) / np.maximum(chroma.mean(axis=0), 1e-9)))
    return np.array([float(np.mean(flatness)), regularity, float(np.log1p(onset.mean())), peaky])


def outlier_scores(table: np.ndarray, k: int = OUTLIER_K) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores (N,), nearest neighbour (N,), robust z (N, D)) of descriptor rows `table` (N, D):
    mean distance to the k nearest others over the median of that mean (NaN rows: NaN score)."""
    table = np.asarray(table, dtype=np.float64)
    middle = np.nanmedian(table, axis=0)
    spread = np.nanpercentile(table, 75, axis=0) - np.nanpercentile(table, 25, axis=0)
    z = (table - middle) / np.where(spread > 1e-9, spread, 1.0)
    n, k = len(z), min(k, len(z) - 1)
    scores, nearest = np.full(n, np.nan), np.full(n, -1)
    ok = np.flatnonzero(~np.isnan(z).any(axis=1))
    if len(ok) < 2 or k < 1:
        return scores, nearest, z
    dist = np.sqrt(((z[ok, None, :] - z[None, ok, :]) ** 2).sum(axis=-1))  # (M, M)
    np.fill_diagonal(dist, np.inf)
    order = np.argsort(dist, axis=1)[:, :k]
    knn = np.take_along_axis(dist, order, axis=1).mean(axis=1)
    scores[ok] = knn / max(float(np.median(knn)), 1e-9)
    nearest[ok] = ok[order[:, 0]]
    return scores, nearest, z


def outlier_rows(ids: Sequence[str], table: np.ndarray, min_score: float = OUTLIER_MIN_SCORE) -> list[dict]:
    """Rows (track_id, kind 'not_music', group_id None, score, evidence dict) of the clips
    whose outlier score reaches min_score, most outlying first."""
    scores, nearest, z = outlier_scores(table)
    rows = []
    for i in np.argsort(-np.nan_to_num(scores, nan=-np.inf)):
        if not scores[i] >= min_score:
            break
        evidence = dict(outlier_score=round(float(scores[i]), 2), threshold=min_score, k=OUTLIER_K,
                        nearest=ids[nearest[i]],
                        robust_z={name: round(float(v), 1) for name, v in zip(DESCRIPTORS, z[i])})
        rows.append(dict(track_id=ids[i], kind="not_music", group_id=None, score=float(scores[i]), evidence=evidence))
    return rows


def outlier_faults(ids: Sequence[str], described: Sequence[Sequence[float] | None]) -> pd.DataFrame:
    """`outlier_rows` of tracks `ids` from their `descriptors` (None: not described; the faults
    scan computes them in the same pass over the audio as the fingerprints), as FAULT_COLUMNS
    rows with JSON evidence."""
    from genre_core.faults.known import FAULT_COLUMNS
    from genre_core.store import to_json

    table = np.full((len(ids), len(DESCRIPTORS)), np.nan)
    for pos, found in enumerate(described):
        if found is not None:
            table[pos] = found
    rows = outlier_rows(list(ids), table)
    return pd.DataFrame([dict(r, evidence=to_json(r["evidence"])) for r in rows], columns=FAULT_COLUMNS)
