"""Small audio made on the spot for tests, and where the shared reference files live."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 22050

# The team's reference data (GTZAN index, Sturm's repetition table, musicnn outputs) sits in
# shared/reference beside the checkout; a clone elsewhere names it with $GENRELENS_REFERENCE.
_REFERENCE_DIRS = (os.environ.get("GENRELENS_REFERENCE", ""),
                   str(Path(__file__).resolve().parents[2] / "shared" / "reference"),
                   "/work/shared/reference")


def reference_file(name: str) -> Path:
    """The first existing `name` among the reference folders (the default one if none has it)."""
    candidates = [Path(d) / name for d in _REFERENCE_DIRS if d]
    return next((p for p in candidates if p.is_file()), candidates[0])


def tone(seconds: float = 2.0, freq: float = 440.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path: Path, y: np.ndarray, sr: int = SR, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, **kwargs)
    return path


BANDS = {"low": (80.0, 300.0), "mid": (600.0, 1500.0), "high": (3000.0, 6000.0)}


def band_clip(genre: str | tuple[float, float], seed: int, seconds: float = 4.0, sr: int = SR) -> np.ndarray:
    """A learnable toy 'genre': a few random partials inside the genre's band (a BANDS name or
    (low, high) Hz), plus noise."""
    rng = np.random.default_rng(seed)
    lo, hi = BANDS[genre] if isinstance(genre, str) else genre
    t = np.arange(int(seconds * sr)) / sr
    freqs = rng.uniform(lo, hi, size=4)
    y = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) for f in freqs)
    y = y / 4 * 0.5 + 0.02 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def make_toy_corpus(root: Path, per_genre: int = 8, seconds: float = 4.0) -> Path:
    """`<root>/<genre>/<genre>_NN.wav` for the three BANDS genres."""
    for g_index, genre in enumerate(BANDS):
        for i in range(per_genre):
            write(root / genre / f"{genre}_{i:02d}.wav", band_clip(genre, 100 * g_index + i, seconds))
    return root


def make_crossover_corpus(root: Path, per_genre: int = 8, crossovers: int = 4, seconds: float = 4.0,
                          seed: int = 0) -> Path:
    """A folder corpus with multi-label tracks: `make_toy_corpus` plus, per ordered pair of BANDS
    genres, `crossovers` mixes of one clip of each in the first genre's folder, listed in
    `<root>/labels.csv` (path, also) with the second genre as the extra one."""
    make_toy_corpus(root, per_genre, seconds)
    genres, lines = list(BANDS), ["path,also"]
    rng = np.random.default_rng(seed)
    for a in genres:
        for b in genres:
            if a == b:
                continue
            for i in range(crossovers):
                seeds = rng.integers(1000, 10_000, size=2)
                y = 0.5 * band_clip(a, int(seeds[0]), seconds) + 0.5 * band_clip(b, int(seeds[1]), seconds)
                rel = f"{a}/{a}_{b}_{i:02d}.wav"
                write(root / rel, y)
                lines.append(f"{rel},{b}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root
