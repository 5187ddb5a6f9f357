"""Where a database's companions live on disk: the cache and each run's files.

Every module asks here instead of spelling the layout out, so moving the cache (a bigger
disk, shared storage for a cluster) is one flag: `--cache-dir` or `$GENRELENS_CACHE_DIR`.
"""

from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CACHE_ENV = "GENRELENS_CACHE_DIR"
MODEL_FILE = "model.pt"  # best weights of a torch run
BASELINE_FILE = "model.joblib"  # a fitted sklearn estimator
CHECKPOINT_FILE = "checkpoint.pt"  # the last finished epoch, for --resume
BACKBONE_FILE = "backbone.pt"  # a pretraining run's encoder (train/backbone.py)


def cache_dir(db_path: Path | str) -> Path:
    """The decoded-audio and feature cache: `$GENRELENS_CACHE_DIR` when set, else `<db dir>/cache`."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path(db_path).parent / "cache"


def runs_dir(db_path: Path | str) -> Path:
    """Parent folder of every run's files: `<db dir>/runs`."""
    return Path(db_path).parent / "runs"


def run_dir(db_path: Path | str, run_id: str) -> Path:
    """One run's files (weights, checkpoint, fitted estimator): `<db dir>/runs/<run_id>`."""
    return runs_dir(db_path) / run_id


# -- when a write fails ------------------------------------------------------------------------
# Every stage writes somewhere (the database, the cache, a run's folder, an --out file), and
# any of them can find the disk full. The rule, owned here: one line naming what could not be
# written and why ("cannot write /x/y.parquet: No space left on device"), no temporary file
# left, nothing half-stored. Only the machine's state counts as such a failure: a full disk,
# a quota, a read-only file system, no permission, an I/O error. Anything else (a bug) keeps
# its traceback.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                          errno.EIO, errno.EFBIG})
# SQLite (the cache index) reports these as result codes, not errno: FULL, READONLY, IOERR.
_SQLITE_ERRNOS = {13: errno.ENOSPC, 8: errno.EROFS, 10: errno.EIO}


class WriteError(OSError):
    """A file or folder could not be written; str() is the one line a user reads."""

    def __str__(self) -> str:
        where = f" {self.filename}" if self.filename else ""
        return f"cannot write{where}: {self.strerror}"


def write_errno(exc: BaseException) -> int | None:
    """The errno of a failed write (see WRITE_ERRNOS), or None when `exc` is something else.
    OSError carries it; SQLite gives a result code; DuckDB and torch say it only in words."""
    if isinstance(exc, OSError):
        return exc.errno if exc.errno in WRITE_ERRNOS else None
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return _SQLITE_ERRNOS.get(code & 0xFF)
    text = str(exc)
    return next((number for number in sorted(WRITE_ERRNOS) if os.strerror(number) in text), None)


def write_error(path: Path | str, exc: BaseException) -> WriteError | None:
    """`exc` as a WriteError naming `path` (what the user knows, not a library's temp file),
    or None when `exc` is not a failed write. A WriteError already names its file: kept."""
    number = write_errno(exc)
    if number is None:
        return None
    return exc if isinstance(exc, WriteError) else WriteError(number, os.strerror(number), str(path))


@contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """A failed write inside the block becomes one WriteError naming `path`; anything else
    propagates as it is."""
    try:
        yield
    except Exception as exc:
        failure = write_error(path, exc)
        if failure is None or failure is exc:
            raise
        raise failure from exc


@contextmanager
def atomic_write(path: Path | str) -> Iterator[Path]:
    """A temporary path beside `path` to write to. It replaces `path` when the block ends
    without error (a reader sees the old file or the whole new one) and is removed when it
    does not; a failed write raises WriteError naming `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_copy(source: Path | str, path: Path | str) -> Path:
    """A copy of `source` at `path`, written as `atomic_write` writes."""
    import shutil

    with atomic_write(path) as tmp:
        shutil.copyfile(source, tmp)
    return Path(path)
