"""Live classification: ms per window and real-time factor per trained model family, and the
end-to-end classification of a 60-minute mix of demo test clips of known genres.

`latency_benchmark` and `mix_benchmark` stream through genre_core.live exactly as
`classify_file` does, and score speed and timeline quality."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from genre_core.audio import stream_blocks
from genre_core.runs.demo import DemoConfig
from genre_core.live.streaming import classify_blocks, window_predictor
from genre_core.live.timeline import DEFAULT_SWITCH_PENALTY, boundary_error, segment, time_accuracy
from genre_core.train.inference import load_run
from genre_core.workers import bound_heap_growth

MIX_MINUTES, QUICK_MIX_MINUTES = 60, 6
TARGET_MS = 20.0  # per 3-s window, every family (issue 13)
TARGET_MIX_S_PER_MIN = 1.0  # the 60-minute mix in under 60 s
SECTION_CLIPS = 6  # consecutive clips per genre section: 90-s sections of 15-s clips


def run(store, args) -> None:
    # The accuracy section's runs, the ensemble left out (it has no model to stream).
    runs = store.complete_runs("demo", split_like=DemoConfig.split, with_model=True).drop_duplicates(
        "model", keep="last")
    if runs.empty:
        print("no complete demo runs: run the accuracy section first")
        return
    quick = getattr(args, "quick", False)
    ratios = getattr(args, "ratios", None)
    rows = []
    for run in runs.itertuples():
        loaded = load_run(store, run.run_id, device=args.device)
        stats = latency_benchmark(loaded, minutes=0.5 if quick else 2.0)
        rows.append(dict(model=run.model, device=str(loaded.device), ms_per_window=stats["ms_per_window"],
                         cpu_ms_per_window=stats["cpu_ms_per_window"], real_time_factor=stats["real_time_factor"],
                         live_latency_ms=stats["live_latency_ms"],
                         under_20_ms="yes" if stats["ms_per_window"] < TARGET_MS else "NO"))
        if ratios is not None:
            ratios.add(f"live ms per 3-s window, {run.model} (cpu ms: {stats['cpu_ms_per_window']:.3g})",
                       stats["ms_per_window"], None, "ms", target=f"< {TARGET_MS:g}",
                       met=stats["ms_per_window"] < TARGET_MS)
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g"))
    print("\nms_per_window: wall time (what a listener waits; inflated by other load); cpu_ms_per_window: "
          "this process's CPU time per window (what this CPU needs).")
    best = store.query("SELECT m.run_id FROM metrics m JOIN runs r USING (run_id) WHERE r.run_id IN "
                       f"({', '.join('?' * len(runs))}) AND m.split = 'test' AND m.name = 'track/accuracy' "
                       "ORDER BY m.value DESC LIMIT 1", list(runs.run_id)).run_id[0]
    minutes = QUICK_MIX_MINUTES if quick else MIX_MINUTES
    model = runs.set_index("run_id").model[best]
    print(f"\nA mix of at least {minutes} minutes of demo test clips, classified by run {best} ({model}, the best test accuracy):")
    result = mix_benchmark(load_run(store, best, device=args.device), _mix_clips(store, best, minutes))
    print(", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))
    if ratios is not None:
        # The mix cycles whole rounds of genre sections, so it can run past `minutes`: the
        # target scales with the audio actually classified (60 s per 60 minutes).
        audio_min = result["seconds_audio"] / 60
        limit = TARGET_MIX_S_PER_MIN * audio_min
        ratios.add(f"{audio_min:.0f}-min mix, best run ({model}), wall seconds", result["seconds_wall"], None, "s",
                   target=f"< {limit:.0f}", met=result["seconds_wall"] < limit)


def _mix_clips(store, run_id: str, minutes: float = MIX_MINUTES) -> list[tuple[str, str]]:
    """Test clips (never trained on) grouped into same-genre sections, cycled to 60 minutes."""
    tracks = store.query("SELECT t.path, t.label, t.duration_s FROM predictions p JOIN runs r USING (run_id) "
                         "JOIN tracks t ON t.dataset_id = r.dataset_id AND t.track_id = p.track_id "
                         "WHERE p.run_id = ? AND p.split = 'test' ORDER BY t.label, t.track_id", [run_id])
    by_genre = {g: list(group.itertuples()) for g, group in tracks.groupby("label")}
    clips, seconds, turn = [], 0.0, 0
    while seconds < minutes * 60:
        for genre, items in by_genre.items():
            for k in range(SECTION_CLIPS):
                track = items[(turn * SECTION_CLIPS + k) % len(items)]
                clips.append((track.path, genre))
                seconds += track.duration_s
        turn += 1
    return clips


def _synthetic_blocks(sr: int, seconds: float, block_s: float, seed: int) -> Iterator[np.ndarray]:
    """`seconds` of noise-plus-tones audio in blocks, cycling a few pre-made blocks so that
    generating the audio costs nothing next to classifying it."""
    rng = np.random.default_rng(seed)
    n = max(1, int(block_s * sr))
    t = np.arange(n) / sr
    bank = [(0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)
            for f in rng.uniform(100, 4000, size=4)]
    total = int(seconds * sr)
    for i, block in zip(range(0, total, n), itertools.cycle(bank)):
        yield block[: total - i]


def latency_benchmark(loaded_run, minutes: float = 60.0, hop_s: float = 1.5,
                      window_s: float | None = None, block_s: float = 10.0, batch: int = 16,
                      seed: int = 0) -> dict:
    """Speed of streaming classification on this machine, over `minutes` of synthetic audio.

    Returns ms_per_window (wall time / windows, batched as in classify_file), cpu_ms_per_window
    (this process's CPU time / windows: what the work costs this CPU, whatever else runs),
    real_time_factor (wall / audio seconds: < 1 is faster than real time), speed_x (its
    inverse), live_latency_ms (median time of a single-window call: the delay a live display
    adds after each hop), windows, seconds_audio, seconds_wall. Decoding is not included.
    """
    window_s = window_s or loaded_run.window_s
    predict = window_predictor(loaded_run)  # as classify_blocks calls the model
    single = np.asarray(next(_synthetic_blocks(loaded_run.sr, window_s, window_s, seed)))[None]  # (1, L)
    predict(single)  # warm-up: lazy init, allocator
    singles = []
    for _ in range(10):
        started = time.perf_counter()
        predict(single)
        singles.append(time.perf_counter() - started)
    seconds = 60.0 * minutes
    started, cpu = time.perf_counter(), time.process_time()
    windows = sum(1 for _ in classify_blocks(_synthetic_blocks(loaded_run.sr, seconds, block_s, seed),
                                             loaded_run, window_s=window_s, hop_s=hop_s, batch=batch))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return dict(ms_per_window=1000 * wall / max(windows, 1), cpu_ms_per_window=1000 * cpu / max(windows, 1),
                real_time_factor=wall / seconds,
                speed_x=seconds / wall, live_latency_ms=1000 * float(np.median(singles)), windows=windows,
                seconds_audio=seconds, seconds_wall=wall)


def _mix_blocks(clips: Sequence[tuple[Path | str, str]], sr: int, block_s: float,
                truth: list[tuple[float, float, str]]) -> Iterator[np.ndarray]:
    """Blocks of the clips played back to back; appends (start_s, end_s, genre) to `truth` as
    each clip ends, merging consecutive clips of one genre into one true section."""
    offset = 0  # samples
    for path, genre in clips:
        start = offset / sr
        for block in stream_blocks(path, sr, block_s):
            yield block
            offset += len(block)
        if truth and truth[-1][2] == genre:
            start = truth.pop()[0]
        truth.append((start, offset / sr, genre))


def mix_benchmark(loaded_run, clips: Sequence[tuple[Path | str, str]], hop_s: float = 1.5,
                  window_s: float | None = None, method: str = "viterbi",
                  switch_penalty: float = DEFAULT_SWITCH_PENALTY, block_s: float = 10.0) -> dict:
    """Classify the clips played back to back as one stream (never held whole in memory) and
    score the timeline against the known genres.

    `clips` are (path, genre) in play order; consecutive clips of one genre form one true
    section. Returns boundary_error_s (mean |true boundary - nearest predicted one|, s),
    section_accuracy (share of audio time whose smoothed genre is the true one), n_true_sections,
    n_sections, seconds_audio, seconds_wall, real_time_factor.
    """
    truth: list[tuple[float, float, str]] = []
    started = time.perf_counter()
    predictions = list(classify_blocks(_mix_blocks(clips, loaded_run.sr, block_s, truth), loaded_run,
                                       window_s=window_s, hop_s=hop_s))
    end_s = truth[-1][1] if truth else 0.0
    sections = segment(predictions, loaded_run.classes, method=method, switch_penalty=switch_penalty,
                       end_s=end_s)
    wall = time.perf_counter() - started
    return dict(boundary_error_s=boundary_error([end for _, end, _ in truth[:-1]], sections),
                section_accuracy=time_accuracy(truth, sections), n_true_sections=len(truth),
                n_sections=len(sections), seconds_audio=end_s, seconds_wall=wall,
                real_time_factor=wall / end_s if end_s else float("nan"))


def untrained_run(name: str, n_classes: int = 10, seed: int = 0):
    """A LoadedRun of `name` with random weights (torch) or fitted on random tables (sklearn):
    as fast as a trained one, so every family's speed is measured without training it."""
    import torch

    from genre_core.features.pipeline import input_pipeline
    from genre_core.features.spectral import FeatureConfig
    from genre_core.features.tables import COLUMNS
    from genre_core.models import build_model, get_spec
    from genre_core.train.config import TrainConfig
    from genre_core.train.inference import LoadedRun

    spec, config, cpu = get_spec(name), TrainConfig(dataset="bench", model=name), torch.device("cpu")
    classes = [f"g{i}" for i in range(n_classes)]
    if not spec.is_torch:
        rng = np.random.default_rng(seed)
        table = rng.standard_normal((20 * n_classes, len(COLUMNS[spec.input_kind])))
        estimator = spec.build(seed=seed).fit(table, np.arange(len(table)) % n_classes)
        return LoadedRun(name, config, classes, config.features.sr, config.window_s, cpu, estimator=estimator)
    torch.manual_seed(seed)
    frontend, sr, bins = input_pipeline(spec.input_kind, config.features or FeatureConfig())
    model = build_model(name, n_classes, bins, tiny=False).eval()
    return LoadedRun(name, config, classes, sr, config.window_s, cpu, model=model, frontend=frontend.eval())


def main(argv: list[str] | None = None) -> None:
    """python -m benchmarks.latency [--models M ...] [--minutes X]: live ms per window of every
    registered model (full widths, untrained weights), no corpus or training needed."""
    import argparse
    import os

    from genre_core.models import MODELS

    parser = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=main.__doc__)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--minutes", type=float, default=0.5, help="synthetic audio per model")
    args = parser.parse_args(argv)
    bound_heap_growth()  # measure with the heap the CLI runs with
    rows = []
    for name in args.models:
        stats = latency_benchmark(untrained_run(name), minutes=args.minutes)
        rows.append(dict(model=name, ms_per_window=stats["ms_per_window"], cpu_ms_per_window=stats["cpu_ms_per_window"],
                         live_latency_ms=stats["live_latency_ms"],
                         under_20_ms="yes" if stats["ms_per_window"] < TARGET_MS else "NO"))
        print(f"  {name:18s} {stats['ms_per_window']:.3g} ms/window ({stats['cpu_ms_per_window']:.3g} cpu ms)", flush=True)
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3g"))
    one, five, _ = os.getloadavg()
    print(f"\nload average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
