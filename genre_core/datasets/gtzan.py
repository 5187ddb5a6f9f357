"""GTZAN in either layout: `genres/<g>/<g>.000NN.au` (original tarball) or
`genres_original/<g>/<g>.000NN.wav` (the common Kaggle copy). The root may be the layout
folder itself or any folder above it (the Kaggle zip nests it under `Data/`)."""

from __future__ import annotations

import re
from pathlib import Path

from genre_core.datasets.base import DatasetError, DatasetScan, TrackEntry, is_audio, usable_labels, walk

GTZAN_GENRES = (
    "blues", "classical", "country", "disco", "hiphop",
    "jazz", "metal", "pop", "reggae", "rock",
)
_TRACK_NAME = re.compile(r"^(?P<genre>[a-z]+)\.(?P<num>\d{5})$")
_LAYOUT_DIRS = ("genres_original", "genres")


def find_genre_root(root: Path) -> Path:
    """The folder whose sub-folders are the genres, searched at and below `root`."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    if _looks_like_genre_root(root):
        return root
    for name in _LAYOUT_DIRS:
        for candidate in sorted(root.rglob(name)):
            if candidate.is_dir() and _looks_like_genre_root(candidate):
                return candidate
    raise DatasetError(
        f"{root}: no GTZAN layout found (expected genres/<genre>/<genre>.000NN.au or "
        "genres_original/<genre>/<genre>.000NN.wav at or below it)"
    )


def _looks_like_genre_root(path: Path) -> bool:
    return sum((path / g).is_dir() for g in GTZAN_GENRES) >= 2


def scan_gtzan(root: Path, kind: str = "gtzan") -> DatasetScan:
    genre_root = find_genre_root(root)
    entries = []
    for genre in GTZAN_GENRES:
        if not (genre_root / genre).is_dir():
            continue
        paths, problems = walk(genre_root / genre, max_depth=1)
        entries += problems
        entries += [TrackEntry(p.stem, p, genre) for p in paths
                    if is_audio(p) and _TRACK_NAME.match(p.stem)]
    labels = usable_labels(entries)
    if not labels:
        raise DatasetError(f"{genre_root}: no files named <genre>.000NN.<audio extension>")
    genres = [g for g in GTZAN_GENRES if g in labels]
    return DatasetScan(kind, Path(root), genres, entries)
