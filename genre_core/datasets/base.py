"""What every dataset scanner returns: the tracks it found, before any audio is decoded."""

from __future__ import annotations

import os
from collections import Counter
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
    also: tuple[str, ...] = ()  # genres beyond `label` (multi-label corpora; datasets/labels.py)
    # Why ingest must not read this path (a loop, a link out of the root, a folder it could not
    # list); the entry is stored with this reason instead of being dropped silently.
    rejected: str | None = None


@dataclass
class DatasetScan:
    kind: str
    root: Path
    genres: list[str]
    entries: list[TrackEntry] = field(default_factory=list)


def usable_labels(entries: list[TrackEntry]) -> set[str]:
    """Labels of the entries ingest will read (a rejected entry makes no genre)."""
    return {e.label for e in entries if not e.rejected}


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


def walk(folder: Path, max_depth: int | None = None) -> tuple[list[Path], list[TrackEntry]]:
    """Every path under `folder` (sorted; `max_depth` 1: its direct children only) that may be
    a track, and a rejected entry (see `rejected_entry`) for each sub-folder that could not
    be read. Symlinked sub-folders are reported, never followed: a
    link back up would repeat the corpus forever. A real folder named like audio (`x.wav`) is
    listed too, so ingest records why it is no track."""
    paths: list[Path] = []
    skipped: list[tuple[Path, str]] = []

    def unlistable(exc: OSError) -> None:
        skipped.append((Path(exc.filename or folder), f"folder cannot be listed ({exc.strerror})"))

    for top, dirs, files in os.walk(folder, onerror=unlistable):
        top_path = Path(top)
        paths += [top_path / name for name in files]
        if max_depth is not None and len(top_path.relative_to(folder).parts) + 1 >= max_depth:
            paths += [top_path / name for name in dirs]  # listed, not entered
            dirs[:] = []
            continue
        links = [d for d in dirs if (top_path / d).is_symlink()]
        skipped += [(top_path / d, link_problem(top_path / d) or "symlinked folder not followed")
                    for d in links]
        dirs[:] = sorted(d for d in dirs if d not in links)
        paths += [top_path / name for name in dirs]
    problems = [rejected_entry(path, folder, reason) for path, reason in skipped]
    return sorted(paths), problems


def link_problem(path: Path, within: Path | None = None) -> str | None:
    """'symlink loop ...' when following `path` never ends or leads back to a folder that holds
    it (`within`, default its parent), 'broken symlink ...' when its target is gone, else None."""
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        return "broken symlink (its target does not exist)"
    except (RuntimeError, OSError):  # RuntimeError: Python 3.11's resolve() on a loop
        return "symlink loop (the link never reaches a file or folder)"
    if (within or path.parent).resolve().is_relative_to(target):
        return "symlink loop (the folder links back to a folder that contains it)"
    return None


def rejected_entry(path: Path, folder: Path, reason: str) -> TrackEntry:
    """An entry ingest records as refused: id `<label>/<path under folder>/` (the trailing slash
    keeps it apart from any file's id), label: the folder's name."""
    label = folder.name
    rel = path.relative_to(folder).as_posix() if path != folder else ""
    return TrackEntry(f"{label}/{rel}/" if rel else f"{label}/", path, label, rejected=reason)


def screen(found: DatasetScan) -> DatasetScan:
    """Reject entries ingest must not read, make track ids unique and keep only genres that
    still have a usable entry. Rejected here: symlink loops, symlinks whose target lies
    outside the corpus root (the app serves audio only from inside it) and names that are
    not UTF-8 (the database stores text)."""
    root = found.root.resolve()
    entries = [e if e.rejected else _screened(e, root) for e in found.entries]
    found.entries = unique_ids([_utf8(e) for e in entries])
    labels = usable_labels(found.entries)
    found.genres = [g for g in found.genres if g in labels]
    return found


def _screened(entry: TrackEntry, root: Path) -> TrackEntry:
    try:
        target = entry.path.resolve(strict=False)
    except (RuntimeError, OSError):  # RuntimeError: Python 3.11's resolve() on a loop
        return replace(entry, rejected="symlink loop (the link never reaches a file)")
    if not target.is_relative_to(root):
        # The target is not named: the reason may be shown to people who are not the operator.
        return replace(entry, rejected="symlink target lies outside the corpus root")
    return entry


def _utf8(entry: TrackEntry) -> TrackEntry:
    """A name that is not valid UTF-8 (Python keeps its bytes as surrogates) is rejected, and
    stored with U+FFFD in place of the bad bytes."""
    texts = (entry.track_id, entry.label, str(entry.path))
    if all(_is_utf8(t) for t in texts):
        return entry
    return replace(entry, track_id=_printable(entry.track_id), label=_printable(entry.label),
                   path=Path(_printable(str(entry.path))),
                   rejected=entry.rejected or "file or folder name is not valid UTF-8 (rename it)")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def unique_ids(entries: list[TrackEntry]) -> list[TrackEntry]:
    """Track ids made unique, deterministically: ids that clash (`song.wav` and `song.flac`
    both give `genre/song`) keep their file's extension (`genre/song.wav`); any clash left
    after that gets `#2`, `#3`... in scan order. Ids that never clashed stay as they were, so
    GTZAN's `blues.00000` and ids stored by earlier ingests keep their meaning."""
    clashes = Counter(e.track_id for e in entries)
    entries = [replace(e, track_id=e.track_id + e.path.suffix)
               if clashes[e.track_id] > 1 and not e.track_id.endswith("/") else e for e in entries]
    taken = {e.track_id for e in entries}
    seen: set[str] = set()
    out = []
    for entry in entries:  # scanners list paths sorted, so this order is deterministic
        track_id, n = entry.track_id, 1
        while track_id in seen or (n > 1 and track_id in taken):
            n += 1
            track_id = f"{entry.track_id}#{n}"
        seen.add(track_id)
        out.append(entry if track_id == entry.track_id else replace(entry, track_id=track_id))
    return out
