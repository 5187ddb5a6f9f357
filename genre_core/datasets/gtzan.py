"""GTZAN in either layout: `genres/<g>/<g>.000NN.au` (original tarball) or
`genres_original/<g>/<g>.000NN.wav` (the common Kaggle copy). The root may be the layout
folder itself or any folder above it (the Kaggle zip nests it under `Data/`)."""

from __future__ import annotations

import re
from pathlib import Path

from genre_core.datasets.base import DatasetError, DatasetScan, TrackEntry, is_audio

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
        for path in sorted((genre_root / genre).glob("*")) if (genre_root / genre).is_dir() else []:
            match = _TRACK_NAME.match(path.stem)
            if is_audio(path) and match:
                entries.append(TrackEntry(path.stem, path, genre))
    if not entries:
        raise DatasetError(f"{genre_root}: no files named <genre>.000NN.<audio extension>")
    genres = [g for g in GTZAN_GENRES if any(e.label == g for e in entries)]
    return DatasetScan(kind, Path(root), genres, entries)
