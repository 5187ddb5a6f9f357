"""Any corpus laid out as `<root>/<label>/*.<audio>`: the folder name is the label."""

from __future__ import annotations

from pathlib import Path

from genre_core.datasets.base import DatasetError, DatasetScan, TrackEntry, is_audio


def scan_folder(root: Path) -> DatasetScan:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    genres = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    entries = []
    for genre in genres:
        for path in sorted((root / genre).rglob("*")):
            if is_audio(path):
                # Relative path without suffix keeps ids unique across nested sub-folders.
                rel = path.relative_to(root / genre).with_suffix("").as_posix()
                entries.append(TrackEntry(f"{genre}/{rel}", path, genre))
    genres = sorted({e.label for e in entries})
    if not entries:
        raise DatasetError(f"{root}: no audio files found in <root>/<label>/ sub-folders")
    return DatasetScan("folder", root, genres, entries)
