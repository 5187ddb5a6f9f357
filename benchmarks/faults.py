"""Fault detection: runtime on the demo corpus, precision/recall per kind against the corpus'
faults_truth.csv, fingerprint scaling on synthetic 30-s clips, and the "fault-filtered
effect": a run's accuracy on its test tracks with and without the flagged faulty tracks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from genre_core.metrics import evaluation
from genre_core.faults.detect import detect_faults
from genre_core.faults.fingerprint import FP_SR, fingerprint, recording_pairs
from genre_core.faults.kinds import CLIP_KINDS
from genre_core.faults.known import read_truth

FLAGGING_KINDS = ("exact_duplicate", "recording_duplicate", "label_issue", "distortion")


def run(store, args) -> None:
    started = time.perf_counter()
    print(detect_faults(store, "demo", progress=False).line())
    print(f"faults on the demo corpus: {time.perf_counter() - started:.1f} s\n")
    detected = store.faults("demo", "detected")
    root = store.dataset("demo")["root"]
    print(score_against_truth(detected, f"{root}/faults_truth.csv").to_markdown(index=False, floatfmt=".2f"))
    print()
    scale = fingerprint_benchmark(n_tracks=200, seconds=30.0)
    print("fingerprints, 200 synthetic 30-s clips: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                                                for k, v in scale.items()))
    print()
    _fault_filtered_effect(store, set(detected[detected.kind.isin(FLAGGING_KINDS)].track_id))


def _fault_filtered_effect(store, flagged: set[str]) -> None:
    runs = store.complete_runs("demo", split_like="random")
    rows = []
    for run in runs.drop_duplicates("model", keep="last").itertuples():
        preds = store.predictions(run.run_id, split="test")
        classes = list(run.classes)
        for subset, frame in (("all test tracks", preds), ("without flagged faults", preds[~preds.track_id.isin(flagged)])):
            y = np.array([classes.index(label) for label in frame.label])
            probs = np.stack(frame.probs.to_numpy())
            acc = float((probs.argmax(1) == y).mean())
            low, high = evaluation.bootstrap_ci(y, probs.argmax(1), evaluation.batch_accuracy, seed=0)
            rows.append(dict(model=run.model, tracks=subset, n=len(frame), accuracy=acc, ci=f"[{low:.2f}, {high:.2f}]"))
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))


# -- scoring against the synthetic corpus' truth ------------------------------------------------


def score_against_truth(detected: pd.DataFrame, truth_csv: Path,
                        kinds: Sequence[str] = CLIP_KINDS) -> pd.DataFrame:
    """Precision and recall per fault kind, counting tracks (a track flagged twice counts once).

    `detected` has track_id and kind. The truth lists every member of a duplicate group,
    the original included, as detection does. Returns kind, truth, detected, hits,
    precision, recall (NaN where undefined: nothing detected, or nothing to find).
    """
    truth = read_truth(truth_csv)
    rows = []
    for kind in kinds:
        want = set(truth.loc[truth["kind"] == kind, "track_id"])
        got = set(detected.loc[detected["kind"] == kind, "track_id"])
        hits = len(want & got)
        rows.append(dict(kind=kind, truth=len(want), detected=len(got), hits=hits,
                         precision=hits / len(got) if got else float("nan"),
                         recall=hits / len(want) if want else float("nan")))
    return pd.DataFrame(rows)


# -- fingerprint scaling ----------------------------------------------------------------------


def _bench_clip(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """Noise-like synthetic music for timing: random harmonic notes, kick, hats, hiss."""
    n = int(seconds * sr)
    y = np.zeros(n)
    beat = 60.0 / rng.uniform(70, 160)
    harmonics = rng.uniform(0.2, 1.0, size=4)
    start = 0.0
    while start < seconds:
        dur = beat * rng.choice([0.5, 1.0, 2.0])
        s, e = int(start * sr), min(n, int((start + dur) * sr))
        t = np.arange(e - s) / sr
        f = 440 * 2 ** ((rng.integers(36, 84) - 69) / 12)
        partials = sum(h * np.sin(2 * np.pi * f * (k + 1) * t) for k, h in enumerate(harmonics))
        y[s:e] += np.exp(-2.5 * t) * partials
        start += dur
    hit = rng.standard_normal(int(0.05 * sr)) * np.exp(-np.arange(int(0.05 * sr)) / sr * 60)
    for s in (np.arange(0, seconds, beat / 2) * sr).astype(int):
        e = min(n, s + hit.size)
        y[s:e] += 0.5 * hit[: e - s]
    y += 0.01 * rng.standard_normal(n)
    return (0.8 * y / np.abs(y).max()).astype(np.float32)


def fingerprint_benchmark(n_tracks: int = 200, seconds: float = 30.0, seed: int = 0) -> dict:
    """Time duplicate search on `n_tracks` synthetic clips of `seconds` at FP_SR.

    Every 25th clip is a re-gained (-6 dB), time-shifted (0.7 s) copy of the one before it.
    Returns timings in seconds (synthesis excluded), tracks_per_s, a linear extrapolation to
    1,000 tracks, and how many planted copies were found.
    """
    rng = np.random.default_rng(seed)
    clips = [_bench_clip(rng, seconds, FP_SR) for _ in range(n_tracks)]
    planted = set()
    for i in range(25, n_tracks, 25):
        shift = int(0.7 * FP_SR)
        clips[i] = (0.5 * clips[i - 1][shift:]).astype(np.float32)
        planted.add((i - 1, i))
    t0, c0 = time.perf_counter(), time.process_time()
    prints = [fingerprint(y) for y in clips]
    t1 = time.perf_counter()
    pairs = recording_pairs(prints, lambda i: clips[i])
    t2, c2 = time.perf_counter(), time.process_time()
    found = {(p["a"], p["b"]) for p in pairs}
    total = t2 - t0
    return dict(
        n_tracks=n_tracks, seconds=seconds, fingerprint_s=round(t1 - t0, 3),
        match_s=round(t2 - t1, 3), total_s=round(total, 3),
        cpu_s=round(c2 - c0, 3),  # wall time inflates on a shared machine; CPU time does not
        tracks_per_s=round(n_tracks / total, 1), extrapolated_1000_s=round(1000 * total / n_tracks, 1),
        landmarks=int(sum(p.hashes.size for p in prints)), planted=len(planted),
        found=len(found & planted), false_pairs=len(found - planted),
    )
