"""The built-in demo corpus on disk: GTZAN layout plus the generator's `metadata.csv`
(artist, title, optional `also` genres) — read like GTZAN, so the same code serves both."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

from genre_core.datasets.base import DatasetError, DatasetScan
from genre_core.datasets.gtzan import scan_gtzan
from genre_core.datasets.labels import parse_genres, with_also


def scan_synth(root: Path) -> DatasetScan:
    scan = scan_gtzan(root, kind="synth")
    meta_path = Path(root) / "metadata.csv"
    if not meta_path.is_file():
        raise DatasetError(f"{root}: metadata.csv not found (make one with: python -m training synth)")
    with open(meta_path, newline="", encoding="utf-8") as f:
        meta = {row["track_id"]: row for row in csv.DictReader(f)}
    scan.entries = [
        replace(e, artist=meta[e.track_id].get("artist") or None, title=meta[e.track_id].get("title") or None)
        if e.track_id in meta
        else e
        for e in scan.entries
    ]
    # Optional column `also`: extra genres of a crossover track (the folder is the primary one).
    scan.entries = with_also(scan.entries, {k: parse_genres(row.get("also")) for k, row in meta.items()})
    return scan
