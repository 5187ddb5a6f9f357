"""Dataset scanners behind one registry: name -> function(root) -> DatasetScan."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from genre_core.datasets.base import (
    DatasetError,
    DatasetScan,
    TrackEntry,
    read_artist_index,
    with_artists,
)
from genre_core.datasets.synth.scan import scan_synth
from genre_core.datasets.fma import scan_fma
from genre_core.datasets.folder import scan_folder
from genre_core.datasets.gtzan import scan_gtzan

DATASETS: dict[str, Callable[[Path], DatasetScan]] = {
    "gtzan": scan_gtzan,
    "fma": scan_fma,
    "folder": scan_folder,
    "synth": scan_synth,
}


def scan(kind: str, root: Path, artist_index: Path | None = None) -> DatasetScan:
    """Find a corpus' tracks (no decoding yet); optional Sturm-format artist index applied."""
    if kind not in DATASETS:
        raise DatasetError(f"unknown dataset kind {kind!r} (choose from {', '.join(DATASETS)})")
    result = DATASETS[kind](Path(root))
    if artist_index is not None:
        result = with_artists(result, read_artist_index(artist_index))
    return result


__all__ = ["DATASETS", "DatasetError", "DatasetScan", "TrackEntry", "scan", "read_artist_index"]
