"""Multi-label genres: the conventions by which a corpus says a track has more than one genre.

A track's primary genre stays its `label` (the folder, FMA's genre_top); extra genres ride on
`TrackEntry.also` and end up, with the primary one, in the `track_genres` table.

- synth and GTZAN-like corpora: `metadata.csv` column `also`, genres `;`-separated
  (empty: single-label).
- folder corpora: an optional `<root>/labels.csv` with a `path` column (relative to the root,
  e.g. `rock/song.wav`) and either `genres` (every genre of the track) or `also` (the extras),
  `;`-separated; the folder stays the primary genre either way.
- FMA: `track.genres_all` (genre ids) mapped to their top-level genre via `genres.csv`.
"""

from __future__ import annotations

import ast
import csv
from dataclasses import replace
from pathlib import Path

import pandas as pd

from genre_core.datasets.base import DatasetError, TrackEntry

SEPARATOR = ";"
LABELS_FILE = "labels.csv"


def parse_genres(text: str | None) -> tuple[str, ...]:
    """'rock; blues;' -> ('rock', 'blues'): stripped, empties dropped, order kept, no repeats."""
    parts = (p.strip() for p in (text or "").split(SEPARATOR))
    return tuple(dict.fromkeys(p for p in parts if p))


def extras(primary: str, genres: tuple[str, ...]) -> tuple[str, ...]:
    """The genres beyond the primary one."""
    return tuple(g for g in genres if g != primary)


def with_also(entries: list[TrackEntry], also: dict[str, tuple[str, ...]], key=lambda e: e.track_id
              ) -> list[TrackEntry]:
    """Entries with `also` filled from a {key(entry): genres} map (the primary genre dropped)."""
    return [replace(e, also=extras(e.label, also[key(e)])) if key(e) in also else e for e in entries]


def read_folder_labels(root: Path) -> dict[str, tuple[str, ...]]:
    """`<root>/labels.csv` -> {path relative to root (posix): genres}; {} when there is none."""
    path = Path(root) / LABELS_FILE
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or ())
        column = "genres" if "genres" in fields else "also" if "also" in fields else None
        if "path" not in fields or column is None:
            raise DatasetError(f"{path}: expected columns path and genres (or also)")
        return {Path(row["path"]).as_posix(): parse_genres(row[column]) for row in reader}


def fma_top_level(genres_csv: Path) -> dict[int, str]:
    """FMA's genres.csv -> {genre id: title of its top-level genre}; {} when absent."""
    if not Path(genres_csv).is_file():
        return {}
    try:
        table = pd.read_csv(genres_csv, index_col=0)
        titles = table["title"].to_dict()
        return {int(g): str(titles[int(top)]) for g, top in table["top_level"].items() if int(top) in titles}
    except (OSError, ValueError, KeyError, pd.errors.ParserError) as exc:
        raise DatasetError(f"{genres_csv}: unreadable FMA genres ({exc})") from exc


def fma_genres(genres_all, top_level: dict[int, str]) -> tuple[str, ...]:
    """One track's `genres_all` ('[21, 12]') -> its top-level genre titles, in first-seen order."""
    if not isinstance(genres_all, str) or not genres_all.strip():
        return ()
    try:
        ids = ast.literal_eval(genres_all)
    except (ValueError, SyntaxError):
        return ()
    return tuple(dict.fromkeys(top_level[int(i)] for i in ids if int(i) in top_level))


def multi_hot_rows(entries: list[TrackEntry]) -> list[tuple[str, str]]:
    """(track_id, genre) for every genre of every usable entry, primary first."""
    return [(e.track_id, g) for e in entries if not e.rejected for g in (e.label, *e.also)]
