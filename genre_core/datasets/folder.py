"""Any corpus laid out as `<root>/<label>/*.<audio>`: the folder name is the label (extra
genres of multi-label tracks: an optional `<root>/labels.csv`, see datasets/labels.py)."""

from __future__ import annotations

from pathlib import Path

from genre_core.datasets.base import (
    DatasetError, DatasetScan, TrackEntry, is_audio, link_problem, rejected_entry, usable_labels, walk,
)
from genre_core.datasets.labels import read_folder_labels, with_also


def scan_folder(root: Path) -> DatasetScan:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    genres, entries = _genre_folders(root)
    for genre in genres:
        paths, problems = walk(root / genre)
        entries += problems
        for path in paths:
            if is_audio(path):
                # Relative path without suffix keeps ids unique across nested sub-folders
                # (`screen` adds the suffix back where two files share a stem).
                rel = path.relative_to(root / genre).with_suffix("").as_posix()
                entries.append(TrackEntry(f"{genre}/{rel}", path, genre))
    genres = sorted(usable_labels(entries))
    if not genres:
        raise DatasetError(f"{root}: no audio files found in <root>/<label>/ sub-folders")
    # Optional labels.csv (path, genres | also): extra genres of multi-label tracks.
    entries = with_also(entries, read_folder_labels(root), key=lambda e: e.path.relative_to(root).as_posix())
    return DatasetScan("folder", root, genres, entries)


def _genre_folders(root: Path) -> tuple[list[str], list[TrackEntry]]:
    """The label folders, and a rejected entry for each symlinked one that loops (`loop -> .`
    would otherwise become a genre holding a copy of every track)."""
    genres, problems = [], []
    try:
        children = sorted(root.iterdir())
    except OSError as exc:
        raise DatasetError(f"{root}: cannot list the root ({exc.strerror})") from exc
    for child in children:
        if child.name.startswith("."):
            continue
        problem = link_problem(child, within=root) if child.is_symlink() else None
        if problem:
            problems.append(rejected_entry(child, child, problem))
        elif child.is_dir():
            genres.append(child.name)
    return genres, problems
