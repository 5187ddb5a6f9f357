"""Dataset scanners behind one registry: name -> function(root) -> DatasetScan."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from genre_core.datasets.base import (
    DatasetError,
    DatasetScan,
    TrackEntry,
    read_artist_index,
    screen,
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


def scan(kind: str, root: Path, *, artist_index: Path | None = None, subset: str | None = None) -> DatasetScan:
    """Find a corpus' tracks (no decoding yet); optional Sturm-format artist index applied;
    `subset`: FMA's fma_<subset>/ folder. Entries ingest must not read come back rejected
    (`TrackEntry.rejected`), and track ids are unique (see `base.screen`)."""
    if kind not in DATASETS:
        raise DatasetError(f"unknown dataset kind {kind!r} (choose from {', '.join(DATASETS)})")
    if subset is not None and kind != "fma":
        raise DatasetError(f"--subset applies to --dataset fma only, not {kind!r}")
    result = scan_fma(Path(root), subset) if subset else DATASETS[kind](Path(root))
    if artist_index is not None:
        result = with_artists(result, read_artist_index(artist_index))
    return screen(result)  # after the index: it is keyed by the scanners' plain ids


__all__ = ["DATASETS", "DatasetError", "DatasetScan", "TrackEntry", "scan", "read_artist_index"]
