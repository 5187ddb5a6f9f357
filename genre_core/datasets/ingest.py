"""Ingest: scan a corpus, check every file decodes, record each track (or why it cannot
be used) in the store. One bad file never stops the rest."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from genre_core import audio
from genre_core.datasets import DatasetScan, TrackEntry, scan
from genre_core.store import Store


@dataclass(frozen=True)
class IngestSummary:
    name: str
    n_tracks: int
    n_unreadable: int
    n_missing: int  # tracks stored before that are no longer under the root
    seconds: float

    def line(self, db: Path) -> str:
        missing = f", {self.n_missing} no longer on disk" if self.n_missing else ""
        return (
            f"ingested {self.n_tracks} tracks ({self.n_unreadable} unreadable{missing}) "
            f"into {db} as dataset {self.name!r} in {self.seconds:.1f} s"
        )


def inspect_track(entry: TrackEntry) -> dict:
    """One `tracks` row: decoded and checked, or status='unreadable' with the reason."""
    row = {
        "track_id": entry.track_id, "path": str(entry.path.resolve()), "label": entry.label,
        "artist": entry.artist, "title": entry.title, "official_split": entry.official_split,
        "duration_s": None, "sample_rate": None, "channels": None,
        "status": "ok", "error": None, "error_kind": None, "sha1": None,
    }
    try:
        info = audio.probe(entry.path)
        row.update(sample_rate=info.sample_rate, channels=info.channels, duration_s=info.duration_s)
        audio.load(entry.path, sr=None)  # full decode: truncated data only shows here
    except audio.AudioError as exc:
        row.update(status="unreadable", error=exc.reason, error_kind=exc.kind)
    if entry.path.is_file():
        row["sha1"] = audio.file_sha1(entry.path)
    return row


def ingest(
    store: Store,
    kind: str,
    root: Path,
    name: str | None = None,
    artist_index: Path | None = None,
    progress: bool = True,
) -> IngestSummary:
    """Scan `root` as dataset `kind`, decode every file, and write dataset + tracks in one
    transaction (re-ingesting the same name updates in place)."""
    start = time.perf_counter()
    found: DatasetScan = scan(kind, Path(root), artist_index)
    name = name or kind
    # Decoding is I/O plus C code that releases the GIL, so threads use both cores.
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        rows = list(
            tqdm(pool.map(inspect_track, found.entries), total=len(found.entries),
                 desc=f"ingest {name}", unit="track", disable=not progress)
        )
    _, n_missing = store.save_dataset(name, found.kind, str(Path(root).resolve()), found.genres, rows)
    n_bad = sum(r["status"] != "ok" for r in rows)
    return IngestSummary(name, len(rows), n_bad, n_missing, time.perf_counter() - start)
