"""Ingest: scan a corpus, check every file, record each track (or why it cannot be used) in
the store. One bad file never stops the rest.

Scale design (issue 11):
- Files are checked in worker processes, a few tracks per task and a bounded number of tasks
  in flight, so memory and open files do not grow with the corpus (each worker holds one file).
- By default a file is checked from its header plus a bounded strided read
  (`audio.quick_check`); `validate=True` decodes every file fully, as ingest used to.
- Rows are committed in batches (every `batch_size` tracks or `batch_seconds`), one
  transaction each, so a killed ingest keeps what it finished. A re-run skips every file whose
  (path, size, mtime) - or, failing that, sha1 - matches what is stored with a final status,
  without decoding (and, for the first test, without even reading) it. With `validate`, a
  file counts as done only if a validating ingest checked it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import pandas as pd
from tqdm import tqdm

from genre_core import audio
from genre_core.datasets import DatasetError, TrackEntry, scan
from genre_core.datasets.labels import multi_hot_rows
from genre_core.engine import EngineOptions, auto_workers, chunked, map_chunks
from genre_core.store import NewDataset, Store

FINAL_STATUSES = ("ok", "unreadable")  # a stored row with one of these needs no second look
METADATA_COLUMNS = ("path", "label", "artist", "title", "official_split")  # from the scan, not the audio


@dataclass(frozen=True)
class IngestOptions:
    workers: int | None = None  # None: one per CPU, but only one per 50 tracks to check (start-up ~1 s)
    validate: bool = False  # decode every file fully instead of header + strided sample
    batch_size: int = 500  # tracks per transaction; a kill loses at most one batch of work
    batch_seconds: float = 30.0  # ... or this much time, whichever comes first
    chunk_size: int = 8  # tracks per worker task: amortises inter-process overhead
    subset: str | None = None  # FMA only: small | medium | large | full
    max_seconds: float = audio.MAX_SECONDS  # longer is refused from the header ($GENRELENS_MAX_SECONDS, 4 h)
    engine: str = "local"  # local worker processes | ray (genre_core.engine)
    ray_address: str | None = None  # with engine="ray": None starts a local instance


@dataclass(frozen=True)
class IngestSummary:
    name: str
    n_tracks: int
    n_unreadable: int
    n_missing: int  # tracks stored before that are no longer under the root
    seconds: float
    n_new: int = 0  # first time stored, usable
    n_unchanged: int = 0  # skipped: the stored row still describes the file
    n_updated: int = 0  # stored before, file changed (or was missing), usable now
    n_failed: int = 0  # checked in this run and not usable (unreadable, silent, too short)

    @property
    def n_checked(self) -> int:
        return self.n_new + self.n_updated + self.n_failed

    def line(self, db: Path) -> str:
        missing = f", {self.n_missing} no longer on disk" if self.n_missing else ""
        rate = self.n_checked / self.seconds if self.seconds > 0 else 0.0
        return (
            f"ingested {self.n_tracks} tracks ({self.n_unreadable} unreadable{missing}) "
            f"into {db} as dataset {self.name!r} in {self.seconds:.1f} s ({rate:.0f} tracks/s): "
            f"{self.n_new} new, {self.n_unchanged} unchanged, {self.n_updated} updated, "
            f"{self.n_failed} failed, {self.n_missing} missing"
        )


def inspect_track(entry: TrackEntry, validate: bool = False, known_sha1: str | None = None) -> dict:
    """One `tracks` row (plus size, mtime_ns): the scan's metadata and `audio.check_file`'s
    facts (status None: same bytes as `known_sha1`, reuse the stored row)."""
    return _row(entry, audio.check_file(entry.path, validate=validate, known_sha1=known_sha1))


def _row(entry: TrackEntry, facts: dict) -> dict:
    return {"track_id": entry.track_id, **_metadata(entry), **facts}


def _stat(path: Path) -> dict:
    try:
        st = path.stat()
    except OSError:
        return {"size": None, "mtime_ns": None}
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def ingest(
    store: Store,
    kind: str,
    root: Path,
    *, name: str | None = None,
    artist_index: Path | None = None,
    progress: bool = True,
    options: IngestOptions | None = None,
) -> IngestSummary:
    """Scan `root` as dataset `kind`, check every new or changed file and store the tracks in
    batches (re-ingesting the same name updates in place and resumes a killed ingest);
    tracks stored before that are no longer on disk are marked status='missing'."""
    options = options or IngestOptions()
    start = time.perf_counter()
    name = check_request(kind, root, name)
    found = scan(kind, Path(root), artist_index=artist_index, subset=options.subset)
    stored = _stored_rows(store.ingest_state(name))
    dataset = NewDataset(name, found.kind, str(Path(root).resolve()), tuple(found.genres),
                         tuple(multi_hot_rows(found.entries)))
    plan = _plan(found.entries, stored, options.validate)
    writer = _BatchWriter(store, dataset, options)
    writer.extend(plan.refreshed)
    counts = {"new": 0, "updated": 0, "failed": 0, "unchanged": len(plan.unchanged),
              "unreadable": plan.n_unreadable_unchanged}
    writer.extend(_settle(row, stored, counts) for row in plan.rejected)
    bar = tqdm(total=len(plan.tasks), desc=f"ingest {name}", unit="track", disable=not progress,
               postfix={"unchanged": len(plan.unchanged)} if plan.unchanged else None)
    try:
        for rows in _run(plan.tasks, options):
            writer.extend(_settle(row, stored, counts) for row in rows)
            bar.update(len(rows))
    finally:
        bar.close()
        writer.flush()  # also on Ctrl-C: finished rows are complete, keep them
    n_missing = store.mark_missing(writer.stored_dataset(), [e.track_id for e in found.entries])
    return IngestSummary(name, len(found.entries), counts["unreadable"], n_missing,
                         time.perf_counter() - start,
                         counts["new"], counts["unchanged"], counts["updated"], counts["failed"])


def check_request(kind: str, root: Path | str, name: str | None) -> str:
    """The dataset name to use (default: `kind`), or a one-line error for a request that
    cannot work - checked before anything is written (the CLI calls it before it creates
    the database file)."""
    name = kind if name is None else name
    if not name.strip():
        raise DatasetError("the dataset name must not be empty (--name)")
    if not Path(root).is_dir():
        raise DatasetError(f"{root}: not a directory")
    return name


@dataclass
class _Plan:
    tasks: list[tuple[TrackEntry, str | None]]  # to check: (entry, stored sha1 to compare)
    unchanged: list[str]  # track ids whose stored row still holds
    refreshed: list[dict]  # unchanged audio, changed metadata (e.g. a new artist index)
    n_unreadable_unchanged: int
    rejected: list[dict]  # rows of entries the scan refused: stored with the reason, never opened


def _plan(entries: list[TrackEntry], stored: dict[str, dict], validate: bool) -> _Plan:
    """Split the scan into files to check and files whose stored row still describes them,
    by (path, size, mtime) alone: no file is opened here."""
    plan = _Plan([], [], [], 0, [])
    for entry in entries:
        if entry.rejected:
            plan.rejected.append(_rejected_row(entry))
            continue
        old = stored.get(entry.track_id)
        done = old is not None and old["status"] in FINAL_STATUSES and (old["validated"] or not validate)
        if not done:
            plan.tasks.append((entry, None))
            continue
        fresh, st = _metadata(entry), _stat(entry.path)
        if (old["path"], old["size"], old["mtime_ns"]) != (fresh["path"], st["size"], st["mtime_ns"]):
            plan.tasks.append((entry, old["sha1"]))
            continue
        plan.unchanged.append(entry.track_id)
        plan.n_unreadable_unchanged += old["status"] != "ok"
        if any(old[c] != fresh[c] for c in METADATA_COLUMNS):
            plan.refreshed.append({**old, **fresh})
    return plan


def _stored_rows(state: pd.DataFrame) -> dict[str, dict]:
    """track_id -> stored row as plain Python values (SQL NULL, NaN and NA all become None)."""
    return {track_id: {k: None if _is_null(v) else v for k, v in row.items()}
            for track_id, row in state.to_dict("index").items()}


def _is_null(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # arrays and the like are values, not nulls
        return False


def _metadata(entry: TrackEntry) -> dict:
    return {"path": _resolved(entry), "label": entry.label, "artist": entry.artist,
            "title": entry.title, "official_split": entry.official_split}


def _resolved(entry: TrackEntry) -> str:
    """The path to store: resolved, except for a refused entry (its link may loop or lead out
    of the root) or one that changed into a loop since the scan."""
    if entry.rejected:
        return str(entry.path.absolute())
    try:
        return str(entry.path.resolve())
    except (RuntimeError, OSError):
        return str(entry.path.absolute())


def _rejected_row(entry: TrackEntry) -> dict:
    """The row of an entry the scan refused: the reason, no audio facts."""
    return _row(entry, audio.unusable(entry.rejected, "rejected"))


def _settle(row: dict, stored: dict[str, dict], counts: dict) -> dict:
    """Turn a worker's row into the row to store; count it new/updated/failed/unchanged."""
    old = stored.get(row["track_id"])
    if row["error_kind"] == "rejected" and old is not None and (old["status"], old["error"]) == \
            (row["status"], row["error"]):
        counts["unchanged"] += 1  # refused again for the same reason: nothing new to say
        counts["unreadable"] += 1
        return row
    if row["status"] is None:  # changed on disk but same bytes: keep the stored audio facts
        counts["unchanged"] += 1
        counts["unreadable"] += old["status"] != "ok"
        return {**old, **{k: row[k] for k in (*METADATA_COLUMNS, "size", "mtime_ns")}}
    if row["status"] != "ok":
        counts["failed"] += 1
        counts["unreadable"] += 1
    else:
        counts["updated" if old is not None else "new"] += 1
    return row


class _BatchWriter:
    """Collects rows and commits them `batch_size` rows or `batch_seconds` at a time. The
    dataset row goes in with the first batch: an ingest that stores no track (a full disk,
    Ctrl-C before the first commit) leaves no empty dataset behind."""

    def __init__(self, store: Store, dataset: NewDataset, options: IngestOptions):
        self.store, self.dataset, self.options = store, dataset, options
        self.dataset_id: int | None = None  # known once the first batch is stored
        self.rows: list[dict] = []
        self.last = time.monotonic()

    def extend(self, rows: Iterable[dict]) -> None:
        for row in rows:
            self.rows.append(row)
            if len(self.rows) >= self.options.batch_size:
                self.flush()
        if self.rows and time.monotonic() - self.last >= self.options.batch_seconds:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.stored_dataset(self.rows)
            self.rows = []
        self.last = time.monotonic()

    def stored_dataset(self, rows: list[dict] | None = None) -> int:
        """Store `rows` (none: only the dataset row, when no batch has stored it); its id."""
        if rows or self.dataset_id is None:
            target = self.dataset if self.dataset_id is None else self.dataset_id
            self.dataset_id = self.store.save_tracks(target, rows or [])
        return self.dataset_id


def _run(tasks: list[tuple[TrackEntry, str | None]], options: IngestOptions) -> Iterator[list[dict]]:
    """Yield checked rows chunk by chunk, in completion order, from worker processes or Ray
    tasks (genre_core.engine: bounded in flight, so memory stays flat whatever the corpus size).
    Workers get plain (path, sha1) pairs and import only genre_core.audio, so each stays small.

    Local worker processes start by forkserver, so, as with any multiprocessing code, a script
    that calls ingest must guard its entry point with `if __name__ == "__main__":`."""
    chunks = chunked(tasks, options.chunk_size)
    workers = options.workers or auto_workers(len(tasks))
    engine = EngineOptions(options.engine, workers, options.ray_address, preload=("genre_core.audio",))
    for i, facts in map_chunks(audio.check_files, [_items(c) for c in chunks],
                               args=(options.validate, options.max_seconds), options=engine):
        yield _rows(chunks[i], facts)


def _items(chunk: list[tuple[TrackEntry, str | None]]) -> list[tuple[str, str | None]]:
    return [(str(entry.path), known_sha1) for entry, known_sha1 in chunk]


def _rows(chunk: list[tuple[TrackEntry, str | None]], facts: list[dict]) -> list[dict]:
    return [_row(entry, f) for (entry, _), f in zip(chunk, facts)]
