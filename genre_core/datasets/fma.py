"""The Free Music Archive: `fma_metadata/tracks.csv` plus `fma_<subset>/XXX/XXXXXX.mp3`, subset
one of small, medium, large, full (`scan_fma(root, subset)`; default: the smallest present).

Labels are the top-level genre (`track.genre_top`); `track.genres_all` mapped to top-level
genres through `fma_metadata/genres.csv` gives multi-label tracks their extra genres; FMA's official train/validation/test split
(`set.split`) and artists (`artist.name`) come along, so artist-aware and official splits work.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from genre_core.datasets.base import DatasetError, DatasetScan, TrackEntry, is_audio, usable_labels, walk
from genre_core.datasets.labels import extras, fma_genres, fma_top_level

SUBSETS = ("fma_small", "fma_medium", "fma_large", "fma_full")
_SPLIT_NAMES = {"training": "train", "validation": "validation", "test": "test"}


def read_fma_tracks(csv_path: Path) -> pd.DataFrame:
    """tracks.csv (two header rows: section, field) -> DataFrame indexed by int track id
    with columns genre_top, split, artist, genres_all (NaN when the column is absent)."""
    try:
        raw = pd.read_csv(csv_path, index_col=0, header=[0, 1], low_memory=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DatasetError(f"{csv_path}: unreadable FMA metadata ({exc})") from exc
    needed = [("track", "genre_top"), ("set", "split"), ("artist", "name")]
    absent = [".".join(c) for c in needed if c not in raw.columns]
    if absent:
        raise DatasetError(f"{csv_path}: missing columns {', '.join(absent)}")
    table = raw[needed].copy()
    table.columns = ["genre_top", "split", "artist"]
    table["genres_all"] = raw[("track", "genres_all")] if ("track", "genres_all") in raw.columns else None
    table.index = pd.to_numeric(table.index, errors="coerce")
    return table[table.index.notna()]


def scan_fma(root: Path, subset: str | None = None) -> DatasetScan:
    root = Path(root)
    csv_path = root / "fma_metadata" / "tracks.csv"
    if not csv_path.is_file():
        raise DatasetError(f"{root}: fma_metadata/tracks.csv not found")
    audio_root = _audio_root(root, subset)
    table = read_fma_tracks(csv_path)
    top_level = fma_top_level(root / "fma_metadata" / "genres.csv")  # {}: single-label only
    paths, entries = walk(audio_root, max_depth=2)  # entries: folders it could not list
    for path in paths:
        if not (is_audio(path) and path.stem.isdigit() and len(path.relative_to(audio_root).parts) == 2):
            continue
        number = int(path.stem)
        if number not in table.index or pd.isna(table.at[number, "genre_top"]):
            continue  # tracks without a top-level genre cannot be labelled
        row = table.loc[number]
        entries.append(
            TrackEntry(
                path.stem, path, str(row["genre_top"]),
                artist=None if pd.isna(row["artist"]) else str(row["artist"]),
                official_split=_SPLIT_NAMES.get(str(row["split"])),
                also=extras(str(row["genre_top"]), fma_genres(row["genres_all"], top_level)),
            )
        )
    genres = sorted(usable_labels(entries))
    if not genres:
        raise DatasetError(f"{audio_root}: no audio files with a genre_top label in tracks.csv")
    return DatasetScan("fma", root, genres, entries)


def _audio_root(root: Path, subset: str | None) -> Path:
    """The fma_<subset>/ folder: the one asked for, else the smallest present (the subsets
    nest: small is inside medium inside large, so the smallest is the quick, safe default)."""
    present = [name for name in SUBSETS if (root / name).is_dir()]
    if subset is None:
        if not present:
            raise DatasetError(f"{root}: none of {', '.join(SUBSETS)} found beside fma_metadata/")
        return root / present[0]
    name = subset if subset.startswith("fma_") else f"fma_{subset}"
    if name not in SUBSETS:
        raise DatasetError(f"unknown FMA subset {subset!r} (choose from small, medium, large, full)")
    if name not in present:
        raise DatasetError(f"{root}: {name}/ not found (found: {', '.join(present) or 'none'})")
    return root / name
