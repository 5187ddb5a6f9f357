"""What every dataset scanner returns: the tracks it found, before any audio is decoded."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from genre_core.audio import AUDIO_EXTENSIONS


class DatasetError(Exception):
    """A corpus root that does not have the expected layout (message names root and reason)."""


@dataclass(frozen=True)
class TrackEntry:
    track_id: str  # unique within the dataset, e.g. "blues.00029"
    path: Path
    label: str
    artist: str | None = None
    title: str | None = None
    official_split: str | None = None  # "train" | "validation" | "test" where the corpus has one


@dataclass
class DatasetScan:
    kind: str
    root: Path
    genres: list[str]
    entries: list[TrackEntry] = field(default_factory=list)


def is_audio(path: Path) -> bool:
    """By extension only: a non-audio file with an audio name is caught later by decoding."""
    return path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


def read_artist_index(path: Path) -> dict[str, tuple[str | None, str | None]]:
    """Bob Sturm's GTZAN index (`blues.00000.wav ::: artist ::: title`) -> {track_id: (artist, title)}.

    Lines starting with '#' are comments; an empty artist or title becomes None.
    """
    if not Path(path).is_file():
        raise DatasetError(f"{path}: artist index not found")
    index: dict[str, tuple[str | None, str | None]] = {}
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split(":::")]
        if len(parts) < 2:
            raise DatasetError(f"{path}:{line_no}: expected 'file ::: artist ::: title'")
        track_id = Path(parts[0]).stem if Path(parts[0]).suffix.lower() in AUDIO_EXTENSIONS else parts[0]
        title = parts[2] if len(parts) > 2 and parts[2] else None
        index[track_id] = (parts[1] or None, title)
    return index


def with_artists(scan: DatasetScan, index: dict[str, tuple[str | None, str | None]]) -> DatasetScan:
    """Fill artist/title from an index; entries the index does not know keep what they had."""
    scan.entries = [
        replace(e, artist=index[e.track_id][0] or e.artist, title=index[e.track_id][1] or e.title)
        if e.track_id in index
        else e
        for e in scan.entries
    ]
    return scan
