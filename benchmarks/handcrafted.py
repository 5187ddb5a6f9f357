"""The 57-feature handcrafted table: librosa per window (the reference, as the baselines used to
compute it) against the batched torch version, on the same 3-s windows in the same run.

`python -m benchmarks handcrafted` uses the demo corpus; `python -m benchmarks.handcrafted`
needs no corpus (it renders synthetic songs) and takes `--windows N` and `--batch B`.
"""

from __future__ import annotations

import argparse
import time

import librosa
import numpy as np
import pandas as pd
import torch

from genre_core.features.handcrafted import handcrafted
from genre_core.features.handcrafted_torch import handcrafted_batch

SR = 22050
WINDOW = 3 * SR
N_WINDOWS = 64  # one batch, as the baselines' feature extraction and live classify use
N_LIBROSA = 16  # librosa is timed on the first windows only: it is per window anyway


def measure(windows: np.ndarray, batch: int = N_WINDOWS, n_librosa: int = N_LIBROSA) -> pd.DataFrame:
    """(W, N) float32 windows at 22050 Hz -> ms per window of each implementation, and the
    speed-up over librosa, all measured now."""
    handcrafted(windows[0], sr=SR)  # numba compiles on first use
    started = time.perf_counter()
    for y in windows[:n_librosa]:
        handcrafted(y, sr=SR)
    reference = (time.perf_counter() - started) / min(n_librosa, len(windows))
    rows = [dict(implementation="librosa, one window at a time", ms_per_window=1000 * reference)]
    audio = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
    # Live classification sees one window at a time: timed on as many windows as librosa.
    for label, size, n in ((f"torch, batches of {batch}", batch, len(audio)),
                           ("torch, one window at a time (live)", 1, n_librosa)):
        handcrafted_batch(audio[:size], sr=SR)  # builds the filterbanks once
        started = time.perf_counter()
        for i in range(0, n, size):
            handcrafted_batch(audio[i: i + size], sr=SR)
        rows.append(dict(implementation=label, ms_per_window=1000 * (time.perf_counter() - started) / n))
    if torch.cuda.is_available():
        gpu = audio.cuda()
        handcrafted_batch(gpu[:batch], sr=SR)
        torch.cuda.synchronize()
        started = time.perf_counter()
        for i in range(0, len(gpu), batch):
            handcrafted_batch(gpu[i: i + batch], sr=SR)
        torch.cuda.synchronize()
        rows.append(dict(implementation=f"torch on cuda, batches of {batch}",
                         ms_per_window=1000 * (time.perf_counter() - started) / len(gpu)))
    table = pd.DataFrame(rows)
    table["speedup_vs_librosa"] = table.ms_per_window.iloc[0] / table.ms_per_window
    return table


def demo_windows(store, n: int = N_WINDOWS) -> np.ndarray:
    """The first `n` 3-s windows of the demo corpus, decoded at 22050 Hz: (n, 66150)."""
    windows = []
    for path in store.tracks("demo").path:
        y, _ = librosa.load(path, sr=SR)
        windows += [y[s: s + WINDOW] for s in range(0, len(y) - WINDOW + 1, WINDOW)]
        if len(windows) >= n:
            break
    return np.stack(windows[:n])


def synthetic_windows(n: int = N_WINDOWS, seed: int = 0) -> np.ndarray:
    """`n` 3-s windows of synthetic songs, one genre after another: (n, 66150) float32."""
    from genre_core.datasets.synth.music import render_clip
    from genre_core.datasets.synth.styles import STYLES, make_artist

    rng = np.random.default_rng(seed)
    genres = list(STYLES)
    windows = []
    for i in range(n):
        genre = genres[i % len(genres)]
        y = render_clip(genre, make_artist(f"bench {i}", genre, rng), WINDOW, sr=SR, rng=rng)
        windows.append(0.5 * y / max(np.abs(y).max(), 1e-9))
    return np.stack(windows).astype(np.float32)


def _report(table: pd.DataFrame, windows: np.ndarray) -> None:
    print(f"{len(windows)} windows of 3 s, {torch.get_num_threads()} torch threads\n")
    print(table.to_markdown(index=False, floatfmt=".2f"))


def run(store, args) -> pd.DataFrame:
    windows = demo_windows(store, N_LIBROSA if getattr(args, "quick", False) else N_WINDOWS)
    table = measure(windows, batch=min(N_WINDOWS, len(windows)))
    _report(table, windows)
    if (ratios := getattr(args, "ratios", None)) is not None:
        ratios.add("handcrafted 57 features, torch batched vs librosa, ms/window",
                   float(table.ms_per_window.iloc[1]), float(table.ms_per_window.iloc[0]), "ms")
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.handcrafted", description=__doc__)
    parser.add_argument("--windows", type=int, default=N_WINDOWS)
    parser.add_argument("--batch", type=int, default=N_WINDOWS)
    parser.add_argument("--librosa-windows", type=int, default=N_LIBROSA)
    args = parser.parse_args(argv)
    windows = synthetic_windows(args.windows)
    _report(measure(windows, args.batch, args.librosa_windows), windows)


if __name__ == "__main__":
    main()
