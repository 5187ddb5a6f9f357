"""Crossover tracks for a synthetic corpus: mixes of two clips of different genres, filed under
the first genre with the second in metadata.csv's `also` column (the multi-label convention
of datasets/labels.py). For measuring multi-label training until the demo corpus has its own.

    python -m genre_core.datasets.synth.crossover DIR [--per-genre N] [--seed K]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import soundfile as sf

LAYOUT = "genres_original"


def add_crossovers(root: Path, per_genre: int = 6, seed: int = 0) -> int:
    """Write `per_genre` crossovers per genre of the corpus at `root` (made by `training synth`):
    each an equal-gain mix of a clean clip of that genre and one of another genre, numbered
    after the genre's last clip; metadata.csv gains rows and the `also` column. Only clips
    without a planted fault (faults_truth.csv) are mixed. Returns how many were written."""
    root = Path(root)
    with open(root / "metadata.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    faulty = _faulty(root / "faults_truth.csv")
    clean: dict[str, list[dict]] = {}
    for row in rows:
        if row["track_id"] not in faulty and not row.get("also"):
            clean.setdefault(row["label"], []).append(row)
    genres, rng, added = sorted(clean), np.random.default_rng(seed), []
    for genre in genres:
        last = max(int(r["track_id"].split(".")[1]) for r in rows + added if r["label"] == genre)
        for i in range(per_genre):
            other = genres[(genres.index(genre) + 1 + rng.integers(len(genres) - 1)) % len(genres)]
            a, b = clean[genre][rng.integers(len(clean[genre]))], clean[other][rng.integers(len(clean[other]))]
            track_id = f"{genre}.{last + 1 + i:05d}"
            _write_mix(root, a, b, root / LAYOUT / genre / f"{track_id}.wav")
            added.append({"track_id": track_id, "label": genre, "true_genre": genre, "artist": a["artist"],
                          "title": f"{a['title']} x {b['title']}", "also": other})
    columns = list(dict.fromkeys([*rows[0].keys(), "also"]))
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, lineterminator="\n", restval="")
        writer.writeheader()
        writer.writerows(rows + added)
    return len(added)


def _faulty(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    with open(path, newline="", encoding="utf-8") as f:
        return {row["track_id"] for row in csv.DictReader(f)}


def _write_mix(root: Path, a: dict, b: dict, out: Path) -> None:
    ya, sr = sf.read(root / LAYOUT / a["label"] / f"{a['track_id']}.wav", dtype="float32")
    yb, _ = sf.read(root / LAYOUT / b["label"] / f"{b['track_id']}.wav", dtype="float32")
    n = min(len(ya), len(yb))
    sf.write(out, 0.5 * ya[:n] + 0.5 * yb[:n], sr, subtype="PCM_16")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--per-genre", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"added {add_crossovers(args.root, args.per_genre, args.seed)} crossover tracks to {args.root}")
