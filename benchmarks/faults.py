"""Fault detection: runtime on the demo corpus, precision/recall per kind against the corpus'
faults_truth.csv, fingerprint scaling on synthetic 30-s clips, and the "fault-filtered
effect": a run's accuracy on its test tracks with and without the flagged faulty tracks."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from genre_core import evaluation
from genre_core.faults.detect import detect_faults
from genre_core.faults.fingerprint import fingerprint_benchmark
from genre_core.faults.known import score_against_truth

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
