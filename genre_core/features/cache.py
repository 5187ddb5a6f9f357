"""The decoded-audio and feature cache: a few large append-only shard files plus one index.

Layout under the cache root (`paths.cache_dir`):

    index.sqlite             key -> (shard, offset, nbytes, dtype, sha1, sr)
    shards/<pid>-<token>.bin raw little-endian samples (float32 or float16) and .npy tables,
                             appended one after another; rotated at ~1 GiB

Why this design
- Bounded open files whatever the corpus size: a process has at most one shard open for
  writing, at most `MAX_OPEN_SHARDS` open for reading (an LRU of plain descriptors read with
  `os.pread`, no memory maps: a CPython mmap holds a dup'ed descriptor each), and the index.
  GTZAN and FMA-full cost the same descriptors.
- Durable before visible: bytes are written and `fdatasync`ed *before* their index row is
  committed, so the index never points at bytes that are not on disk. A writer killed mid-write
  leaves only an unindexed tail in its own shard; readers never see it and `prune` reclaims it.
  A write that fails (a full disk) cuts its tail off at once and raises `paths.WriteError`
  naming the shard or the index.
- Concurrent writers are safe without coordination: each process appends to shard files only
  it writes (named by pid + random token, created under a dot name and renamed once locked),
  and holds `flock(LOCK_SH)` on its open shard so `prune` can tell live shards from dead ones.
  The index is SQLite in WAL mode (standard library, many-process readers and serialised
  writers with a busy timeout; DuckDB allows only one writing process at a time, and one
  JSON/atomic-rename index file would need a lock around read-modify-write). The same key
  written twice by two racing processes keeps the first row (INSERT OR IGNORE); the loser's
  bytes are garbage that `prune` reclaims. Not for network file systems (SQLite WAL needs
  shared memory on one host).
- Never delete on doubt: an `OSError` while reading (EMFILE, EIO, ...) propagates and deletes
  nothing. The only evidence acted upon is proof of a torn entry — its shard shorter than the
  index says — and even then only the index row is replaced by a fresh decode; shard bytes are
  removed by `prune` alone, which rewrites live entries into new durable shards before unlinking
  the old ones.
- A cache verifies what it serves. Every entry carries the CRC-32 of its bytes, checked the
  first time a process serves it (entries written before checksums: their samples must be
  finite); a failed check is proof, so the row is dropped and the entry decoded or computed
  again. A waveform also records its audio file's size and mtime when decoded: a file whose
  size or mtime differs is hashed, and served only while its bytes still hash to the entry's
  sha1 (`AudioChanged` otherwise, and for a file that is gone: training on audio the dataset
  no longer holds would be silent). A file changed *before* its first decode is not caught
  here: the caller's sha1 is taken on trust (re-running ingest re-hashes every file).
- A damaged index (not a database, or failing SQLite's quick_check) is set aside as
  `index.sqlite.damaged-<time>` with one warning line and a fresh index started: what it
  indexed is decoded again on demand, and `prune` reclaims the orphaned shards.
- float16 storage halves the disk (and page cache) for waveforms: `dtype="float16"` or
  `$GENRELENS_CACHE_DTYPE=float16`; reads always return float32. An entry keeps the dtype it
  was written with (the cache key is (sha1, rate), so switching affects new entries only).

Fork safety: descriptors and the SQLite connection are per process (checked by pid); a forked
child (DataLoader worker, ProcessPool) opens its own and never writes to its parent's shard.
"""

from __future__ import annotations

import errno
import fcntl
import io
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, NamedTuple

import numpy as np

from genre_core import paths
from genre_core.audio import AudioError, file_sha1
from genre_core.untrusted import terminal

log = logging.getLogger("genrelens")

DTYPE_ENV = "GENRELENS_CACHE_DTYPE"
DTYPES = {"float32": "<f4", "float16": "<f2"}
SHARD_BYTES = 1 << 30  # rotate a writer's shard past ~1 GiB
MAX_OPEN_SHARDS = 8  # read descriptors per process (LRU): 4 loader workers + main stay < 64
INDEX_FILE = "index.sqlite"
INDEX_LOCK_WAIT_S = 60.0  # how long a process waits for another one's hold on the index
SHARD_DIR = "shards"
TABLE_DTYPE = "npy"  # a table entry holds a whole .npy file (any shape and dtype)
_SHA1 = re.compile(r"(?<![0-9a-f])[0-9a-f]{40}(?![0-9a-f])")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key     TEXT PRIMARY KEY,   -- 'audio/<sr>/<sha1>' or 'table/<key>'
    sha1    TEXT,               -- the audio file the entry derives from (prune keys on it)
    sr      INTEGER,
    dtype   TEXT NOT NULL,      -- '<f4', '<f2' or 'npy'
    shard   TEXT NOT NULL,      -- file name under shards/
    offset  INTEGER NOT NULL,
    nbytes  INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_shard ON entries(shard);
"""
# Columns added after the first release: an older index gains them when opened (NULL = unknown).
_LATER_COLUMNS = {
    "crc32": "INTEGER",         # zlib.crc32 of the entry's bytes as written
    "src_size": "INTEGER",      # the audio file's size and mtime when its waveform was decoded
    "src_mtime_ns": "INTEGER",
}
_COLUMNS = "key, sha1, sr, dtype, shard, offset, nbytes, created, crc32, src_size, src_mtime_ns"
_DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB")  # proof the index file is not a sound database


class Location(NamedTuple):
    """Where one cached waveform lives: picklable, so workers read without the index."""

    shard: str  # absolute path
    offset: int  # bytes
    n: int  # samples
    dtype: str  # '<f4' | '<f2'

    @property
    def itemsize(self) -> int:
        return np.dtype(self.dtype).itemsize


class Entry(NamedTuple):
    """One index row, as the readers need it."""

    shard: str  # file name under shards/
    offset: int
    nbytes: int
    dtype: str
    crc32: int | None  # None: written before checksums
    src_size: int | None  # None: unknown (put() without a file, or written before this was kept)
    src_mtime_ns: int | None

    @property
    def place(self) -> tuple:
        """Where its bytes are and what they hash to: what a check vouches for."""
        return self.shard, self.offset, self.nbytes, self.crc32


class CorruptEntry(ValueError):
    """An entry's bytes are not the ones written (damaged shard): proof it must be made again."""


class TornEntry(CorruptEntry):
    """An index row points past the end of its shard: proof the bytes are not there."""


class AudioChanged(AudioError):
    """The audio file is no longer the one a cache entry was decoded from (replaced or gone).
    An AudioError: every caller that reports a bad file per track reports this one too."""


# -- reading: a bounded, thread-safe, fork-aware pool of descriptors ---------------------------------

class _FdPool:
    def __init__(self, capacity: int):
        self.capacity = capacity
        self.pid = os.getpid()
        self.fds: OrderedDict[str, int] = OrderedDict()
        self.busy: dict[str, int] = {}
        self.lock = threading.Lock()

    def _check_fork(self) -> None:
        if self.pid != os.getpid():  # a forked child: its copies are its own to close
            for fd in self.fds.values():
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.fds.clear()
            self.busy.clear()
            self.pid = os.getpid()

    def pread(self, path: str, nbytes: int, offset: int) -> bytes:
        with self.lock:
            self._check_fork()
            fd = self.fds.get(path)
            if fd is None:
                self._evict(self.capacity - 1)
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)  # OSError (EMFILE...) propagates
                self.fds[path] = fd
            self.fds.move_to_end(path)
            self.busy[path] = self.busy.get(path, 0) + 1
        try:
            chunks, done = [], 0
            while done < nbytes:
                piece = os.pread(fd, nbytes - done, offset + done)
                if not piece:
                    break
                chunks.append(piece)
                done += len(piece)
            return b"".join(chunks) if len(chunks) != 1 else chunks[0]
        finally:
            with self.lock:
                self.busy[path] -= 1
                if not self.busy[path]:
                    del self.busy[path]
                self._evict(self.capacity)

    def _evict(self, keep: int) -> None:
        for path in list(self.fds):
            if len(self.fds) <= keep:
                break
            if path not in self.busy:
                os.close(self.fds.pop(path))

    def forget(self, path: str) -> None:
        with self.lock:
            if path in self.fds and path not in self.busy:
                os.close(self.fds.pop(path))

    def open_count(self) -> int:
        return len(self.fds)


_READERS = _FdPool(MAX_OPEN_SHARDS)


def read_samples(loc: Location, start: int = 0, count: int | None = None) -> np.ndarray:
    """Samples [start, start + count) of a cached waveform as float32 (clipped to its end)."""
    start = max(0, min(int(start), loc.n))
    count = loc.n - start if count is None else max(0, min(int(count), loc.n - start))
    if count == 0:
        return np.zeros(0, dtype=np.float32)
    nbytes = count * loc.itemsize
    data = _READERS.pread(loc.shard, nbytes, loc.offset + start * loc.itemsize)
    if len(data) != nbytes:
        raise TornEntry(f"{loc.shard}: {len(data)} of {nbytes} bytes at {loc.offset}")
    y = np.frombuffer(data, dtype=loc.dtype).astype(np.float32)
    # Entries are verified when located; this catches a shard damaged since, for the price of
    # one pass over samples already in memory (decoded audio is always finite).
    if not np.isfinite(y).all():
        raise CorruptEntry(f"cache shard {loc.shard}: non-finite samples at byte {loc.offset}: damaged since "
                           "it was checked; run again to decode the track anew")
    return y


def open_read_shards() -> int:
    """Read descriptors this process holds now (for tests and reports)."""
    return _READERS.open_count()


# -- the cache ---------------------------------------------------------------------------------------

def default_dtype() -> str:
    name = os.environ.get(DTYPE_ENV, "float32")
    if name not in DTYPES:
        raise ValueError(f"${DTYPE_ENV} must be one of {', '.join(DTYPES)}, not {name!r}")
    return name


@dataclass
class CacheStats:
    root: Path
    files: int  # shard files + index
    shards: int
    tracks: int  # distinct audio files with a cached waveform
    tables: int
    bytes_total: int  # on disk, shards + index
    bytes_garbage: int  # shard bytes no index row points at (reclaimed by prune)
    audio: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)  # (sr, dtype) -> (n, bytes)
    table_bytes: int = 0

    def lines(self) -> list[str]:
        out = [f"cache {self.root}: {self.files} files ({self.shards} shards + index), "
               f"{self.tracks} tracks, {self.tables} tables, {self.bytes_total / 1e9:.3f} GB"]
        for (sr, dtype), (n, size) in sorted(self.audio.items()):
            name = {v: k for k, v in DTYPES.items()}.get(dtype, dtype)
            out.append(f"  audio {sr} Hz {name}: {n} tracks, {size / 1e9:.3f} GB")
        out.append(f"  tables: {self.tables} entries, {self.table_bytes / 1e9:.3f} GB")
        out.append(f"  unreferenced bytes: {self.bytes_garbage / 1e9:.3f} GB (prune reclaims)")
        return out


@dataclass
class PruneResult:
    entries_removed: int
    shards_rewritten: int
    shards_removed: int
    bytes_before: int
    bytes_after: int

    def line(self) -> str:
        return (f"pruned {self.entries_removed} entries, rewrote {self.shards_rewritten} shards, "
                f"removed {self.shards_removed}: {self.bytes_before / 1e9:.3f} GB -> "
                f"{self.bytes_after / 1e9:.3f} GB")


def _while_locked(statement: Callable[[], object]) -> None:
    """Run a setup statement, retrying while another process holds the index. Switching to
    WAL (and creating the tables) while a second process opens a brand-new index can fail
    with "database is locked" at once: SQLite skips its busy timeout there to avoid deadlock."""
    deadline = time.monotonic() + INDEX_LOCK_WAIT_S
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class _IndexDamaged(sqlite3.DatabaseError):
    """quick_check found the index unsound (its first complaint is the message)."""

    sqlite_errorname = "SQLITE_CORRUPT"


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    """Proof that the index file itself is broken (not a lock, a permission or a full disk)."""
    return str(getattr(exc, "sqlite_errorname", "")).startswith(_DAMAGED)


def _size_and_mtime(st: os.stat_result | None) -> tuple[int | None, int | None]:
    return (None, None) if st is None else (st.st_size, st.st_mtime_ns)


def _damage(row: Entry, data: bytes) -> str | None:
    """Why `data`, read for `row`, is not what was written there; None when it is."""
    if len(data) != row.nbytes:
        return f"{len(data)} of {row.nbytes} bytes there"
    if row.crc32 is not None:
        return None if zlib.crc32(data) == row.crc32 else "checksum mismatch"
    # Written before checksums: what can still be checked is that the numbers are numbers.
    try:
        values = (np.load(io.BytesIO(data), allow_pickle=False) if row.dtype == TABLE_DTYPE
                  else np.frombuffer(data, dtype=row.dtype))
    except ValueError as exc:
        return f"not a readable array ({exc})"
    if values.dtype.kind in "fc" and not np.isfinite(values).all():
        return "non-finite values"
    return None


def _add_later_columns(con: sqlite3.Connection) -> None:
    have = {row[1] for row in con.execute("PRAGMA table_info(entries)")}
    for name, kind in _LATER_COLUMNS.items():
        if name not in have:
            try:
                con.execute(f"ALTER TABLE entries ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):  # another process added it first: fine
                    raise


class ShardCache:
    """Mono waveforms at a fixed rate and derived per-track tables, in shards (see module doc).

    Thread-safe within a process; safe across processes sharing the root.
    """

    def __init__(self, root: Path | str, dtype: str | None = None, shard_bytes: int = SHARD_BYTES):
        self.root = Path(root)
        self.dtype = dtype or default_dtype()
        if self.dtype not in DTYPES:
            raise ValueError(f"cache dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        self.shard_bytes = shard_bytes
        self._lock = threading.RLock()
        self._pid = None
        self._con: sqlite3.Connection | None = None
        self._writer: tuple[int, str, int] | None = None  # (fd, path, size)
        self._memo: dict[str, Entry] = {}
        # Entries (by place and checksum) whose bytes passed their check in this process: a
        # row that moves (prune) or is rewritten is a different place and is checked again.
        self._verified: set[tuple] = set()
        self._damaged_shards: set[str] = set()  # warned about already

    # -- per-process state --------------------------------------------------------------------

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            if self._writer is not None:  # the parent's shard: never append to it from here
                try:
                    os.close(self._writer[0])  # the parent still holds its own descriptor and lock
                except OSError:
                    pass
            if self._con is not None:
                _ORPHANS.append(self._con)  # closing a parent's SQLite handle in a child is unsafe
            self._pid, self._con, self._writer, self._memo = os.getpid(), None, None, {}

    def _db(self) -> sqlite3.Connection:
        self._check_fork()
        if self._con is None:
            self.root.mkdir(parents=True, exist_ok=True)
            try:
                self._con = self._open_index()
            except sqlite3.DatabaseError as exc:
                if not _is_damage(exc):
                    raise  # locked, unreadable, disk full...: not proof, nothing is moved
                self._con = self._replace_damaged_index()
        return self._con

    def _open_index(self) -> sqlite3.Connection:
        """A connection to a sound index (created, or upgraded with _LATER_COLUMNS, as needed)."""
        con = sqlite3.connect(self.root / INDEX_FILE, timeout=INDEX_LOCK_WAIT_S, isolation_level=None,
                              check_same_thread=False)
        try:
            _while_locked(lambda: con.execute("PRAGMA journal_mode=WAL"))
            con.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: consistent after a crash
            _while_locked(lambda: con.executescript(_SCHEMA))
            _while_locked(lambda: _add_later_columns(con))
            # A file can open and still be torn inside (truncated, overwritten pages). The
            # page-level check costs ~5 ms per MB of index, once per connection (measured: 0.4 s
            # for 320,000 entries, FMA-full's audio and tables; ~3 ms for GTZAN).
            verdict = con.execute("PRAGMA quick_check(1)").fetchone()[0]
            if verdict != "ok":
                raise _IndexDamaged(verdict)
        except BaseException:
            con.close()
            raise
        return con

    def _replace_damaged_index(self) -> sqlite3.Connection:
        """Set the damaged index aside and open a fresh one, under an exclusive lock on the
        cache folder: of several processes that find it damaged, the first moves it and the
        others open what that one made (never moving a fresh index aside)."""
        folder = os.open(self.root, os.O_RDONLY | os.O_CLOEXEC)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            try:
                return self._open_index()  # another process replaced it meanwhile
            except sqlite3.DatabaseError as exc:
                if not _is_damage(exc):
                    raise
                reason = str(exc)
            index = self.root / INDEX_FILE
            aside = index.with_name(f"{INDEX_FILE}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
            for suffix in ("-wal", "-shm"):  # the journal belongs to the damaged file, not the fresh one
                if index.with_name(INDEX_FILE + suffix).exists():
                    os.replace(index.with_name(INDEX_FILE + suffix), aside.with_name(aside.name + suffix))
            os.replace(index, aside)
            log.warning(terminal(f"warning: cache index {index} is damaged ({reason}): set aside as {aside.name}; "
                                 "a fresh index starts now and cached audio is decoded again as needed"))
            return self._open_index()
        finally:
            os.close(folder)  # releases the lock

    @property
    def shard_dir(self) -> Path:
        return self.root / SHARD_DIR

    # -- index --------------------------------------------------------------------------------

    def _row(self, key: str) -> Entry | None:
        with self._lock:
            row = self._memo.get(key)
            if row is None:
                if not (self.root / INDEX_FILE).is_file():
                    return None  # nothing cached yet: do not create an index just to look
                found = self._db().execute(
                    "SELECT shard, offset, nbytes, dtype, crc32, src_size, src_mtime_ns FROM entries "
                    "WHERE key = ?", [key]).fetchone()
                if found is not None:
                    row = self._memo[key] = Entry(*found)
            return row

    def _forget(self, key: str) -> None:
        with self._lock:
            self._memo.pop(key, None)
            self._db().execute("DELETE FROM entries WHERE key = ?", [key])

    def _verified_bytes(self, key: str) -> bytes | None:
        """The bytes of entry `key` once they pass their check; None when there is no entry or
        it failed (its row is then dropped: the check is proof). OSError (EMFILE, EIO...)
        propagates and drops nothing."""
        for _ in range(2):
            row = self._row(key)
            if row is None:
                return None
            try:
                data = _READERS.pread(str(self.shard_dir / row.shard), row.nbytes, row.offset)
                break
            except FileNotFoundError:  # pruned meanwhile (its row moved), or removed by hand: look again
                with self._lock:
                    self._memo.pop(key, None)
        else:
            data = b""  # still no shard: none of the entry's bytes are there
        problem = _damage(row, data)
        if problem is None:
            with self._lock:
                self._verified.add(row.place)
            return data
        with self._lock:
            first = row.shard not in self._damaged_shards
            self._damaged_shards.add(row.shard)
        if first:  # one line per shard: a shard overwritten whole would otherwise print one per track
            log.warning(terminal(f"warning: cache shard {self.shard_dir / row.shard} holds a damaged entry "
                                 f"({key}: {problem}): damaged entries are dropped and made again"))
        self._forget(key)
        return None

    def _intact(self, key: str) -> bool:
        """Whether entry `key` exists and its bytes passed their check (read once per process)."""
        row = self._row(key)
        if row is not None and row.place in self._verified:
            return True
        return self._verified_bytes(key) is not None

    # -- writing ------------------------------------------------------------------------------

    def _open_writer(self) -> tuple[int, str, int]:
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        name = f"{os.getpid()}-{secrets.token_hex(6)}.bin"
        tmp = self.shard_dir / f".new-{name}"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        fcntl.flock(fd, fcntl.LOCK_SH)  # live: prune leaves it alone
        os.rename(tmp, self.shard_dir / name)  # visible to prune only once locked
        return fd, name, 0

    def _append(self, key: str, payload: bytes, dtype: str, sha1: str | None, sr: int | None,
                source: os.stat_result | None = None) -> Entry:
        """Write durably, then index; returns the row now in the index for `key`. `source`:
        the audio file's stat when it was decoded (see `_check_source`)."""
        with self._lock:
            name, offset = self._append_raw(payload)
            try:
                with paths.writing(self.root / INDEX_FILE):  # SQLite's "database or disk is full"
                    con = self._db()
                    con.execute(f"INSERT OR IGNORE INTO entries ({_COLUMNS}) VALUES ({', '.join('?' * 11)})",
                                [key, sha1, sr, dtype, name, offset, len(payload), time.time(),
                                 zlib.crc32(payload), *_size_and_mtime(source)])
            except BaseException:
                self._undo_append(offset)  # bytes no row points at
                raise
            self._memo.pop(key, None)
            return self._row(key)

    # -- waveforms ----------------------------------------------------------------------------

    @staticmethod
    def audio_key(sha1: str, sr: int) -> str:
        return f"audio/{int(sr)}/{sha1}"

    def _location(self, row: Entry) -> Location:
        return Location(str(self.shard_dir / row.shard), row.offset, row.nbytes // np.dtype(row.dtype).itemsize,
                        row.dtype)

    def cached(self, sha1: str, sr: int) -> Location | None:
        """Where the waveform is indexed, unchecked (reports and tests); `locate` checks."""
        row = self._row(self.audio_key(sha1, sr))
        return None if row is None else self._location(row)

    def locate(self, path: str | Path, sha1: str, sr: int) -> Location:
        """Where the waveform of `path` at `sr` lives, its bytes checked; decoded and cached on
        a miss or a damaged entry. AudioChanged when `path` is not the file it was decoded from."""
        key = self.audio_key(sha1, sr)
        row = self._row(key)
        if row is not None:
            self._check_source(key, row, path, sha1)
            if self._intact(key):
                return self._location(self._row(key))
        try:
            source = os.stat(path)  # before decoding: a change during the decode shows next time
        except OSError:
            source = None  # no file to compare later (a legacy .npy may still hold the samples)
        return self.put(sha1, sr, self._decode(path, sha1, sr), source=source)

    def _check_source(self, key: str, row: Entry, path: str | Path, sha1: str) -> None:
        """Raise AudioChanged unless `path` is still the file entry `key` was decoded from:
        same size and mtime as then, or else bytes that still hash to `sha1` (a copy, a
        touch: the new size and mtime are kept, so the file is hashed once)."""
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise AudioChanged(path, "audio file missing since ingest: re-run ingest") from None
        if (st.st_size, st.st_mtime_ns) == (row.src_size, row.src_mtime_ns):
            return
        if file_sha1(path) != sha1:
            raise AudioChanged(path, "audio changed since ingest: re-run ingest")
        with self._lock:
            try:
                self._db().execute("UPDATE entries SET src_size = ?, src_mtime_ns = ? WHERE key = ?",
                                   [st.st_size, st.st_mtime_ns, key])
            except sqlite3.OperationalError:
                pass  # a read-only or busy index: the file is only hashed again next time
            self._memo.pop(key, None)

    def put(self, sha1: str, sr: int, y: np.ndarray, *, source: os.stat_result | None = None) -> Location:
        """Cache samples `y` under (sha1, sr); `source`: the stat of the file they were decoded
        from, taken before decoding (None: nothing to compare, `locate` hashes the file once)."""
        dtype = DTYPES[self.dtype]
        payload = np.ascontiguousarray(y, dtype=dtype).tobytes()
        return self._location(self._append(self.audio_key(sha1, sr), payload, dtype, sha1, int(sr), source))

    def _decode(self, path, sha1: str, sr: int) -> np.ndarray:
        legacy = self.root / "audio" / f"{sr}" / f"{sha1}.npy"  # the one-file-per-track cache
        if legacy.is_file():
            try:
                return np.asarray(np.load(legacy), dtype=np.float32)
            except ValueError:
                pass  # a torn legacy file: decode again (and leave the file alone)
        from genre_core import audio

        return audio.load(path, sr=sr)

    def load(self, path: str | Path, sha1: str, sr: int) -> np.ndarray:
        """(N,) float32 samples, in memory (no descriptor or map outlives the call)."""
        try:
            return read_samples(self.locate(path, sha1, sr))
        except (CorruptEntry, FileNotFoundError):
            # Damaged or moved between its check and this read: check it (and decode) once more.
            key = self.audio_key(sha1, sr)
            with self._lock:
                row = self._row(key)
                if row is not None:
                    self._verified.discard(row.place)
                self._memo.pop(key, None)
            return read_samples(self.locate(path, sha1, sr))

    # -- tables -------------------------------------------------------------------------------

    def has_table(self, key: str) -> bool:
        """Whether `table(key, ...)` would serve without computing: cached and intact (a
        damaged entry is dropped here, so callers batch its recomputation with the missing)."""
        return self._intact(f"table/{key}") or (self.root / "tables" / f"{key}.npy").is_file()

    def table(self, key: str, compute: Callable[[], np.ndarray], sha1: str | None = None) -> np.ndarray:
        """A derived array cached under `key` (computed by `compute()` once). `sha1` names
        the audio file it derives from (prune keeps it while that file is in a dataset);
        by default the first 40-hex token of `key`."""
        full = f"table/{key}"
        data = self._verified_bytes(full)
        if data is not None:
            return np.load(io.BytesIO(data), allow_pickle=False)
        legacy = self.root / "tables" / f"{key}.npy"
        value = None
        if legacy.is_file():
            try:
                value = np.load(legacy, allow_pickle=False)
            except ValueError:
                value = None
        if value is None:
            value = np.asarray(compute())
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        if sha1 is None:
            found = _SHA1.search(key)
            sha1 = found.group(0) if found else None
        self._append(full, buf.getvalue(), TABLE_DTYPE, sha1, None)
        return value

    # -- reporting and pruning ----------------------------------------------------------------

    def _shard_files(self) -> list[Path]:
        if not self.shard_dir.is_dir():
            return []
        return sorted(p for p in self.shard_dir.iterdir() if p.suffix == ".bin" and not p.name.startswith("."))

    def stats(self) -> CacheStats:
        shards = self._shard_files()
        index_files = [p for p in self.root.glob(INDEX_FILE + "*") if p.is_file()]
        on_disk = sum(p.stat().st_size for p in shards) + sum(p.stat().st_size for p in index_files)
        audio, tracks, tables, table_bytes, referenced = {}, 0, 0, 0, 0
        if (self.root / INDEX_FILE).is_file():
            con = self._db()
            for sr, dtype, n, size in con.execute(
                    "SELECT sr, dtype, count(*), sum(nbytes) FROM entries WHERE dtype != ? GROUP BY 1, 2",
                    [TABLE_DTYPE]):
                audio[(int(sr), dtype)] = (int(n), int(size))
            tracks = con.execute("SELECT count(DISTINCT sha1) FROM entries WHERE dtype != ?",
                                 [TABLE_DTYPE]).fetchone()[0]
            tables, table_bytes = con.execute("SELECT count(*), coalesce(sum(nbytes), 0) FROM entries "
                                              "WHERE dtype = ?", [TABLE_DTYPE]).fetchone()
            referenced = con.execute("SELECT coalesce(sum(nbytes), 0) FROM entries").fetchone()[0]
        shard_bytes = sum(p.stat().st_size for p in shards)
        return CacheStats(self.root, len(shards) + (1 if index_files else 0), len(shards), int(tracks),
                          int(tables), on_disk, max(0, shard_bytes - int(referenced)), audio, int(table_bytes))

    def prune(self, keep_sha1: Iterable[str] | None = None) -> PruneResult:
        """Drop entries whose sha1 is not in `keep_sha1` (None: keep every entry), then
        compact: every shard holding unreferenced bytes (dropped entries, a killed writer's
        tail, a lost race) or too small to stand alone is rewritten into this process's
        shards, durably, before its index rows move and the old file is unlinked. Shards a
        live writer holds are skipped."""
        before = self.stats().bytes_total
        con = self._db()
        removed = 0
        if keep_sha1 is not None:
            keep = set(keep_sha1)
            con.execute("CREATE TEMP TABLE IF NOT EXISTS keep_sha1 (sha1 TEXT PRIMARY KEY)")
            con.execute("DELETE FROM keep_sha1")
            con.executemany("INSERT OR IGNORE INTO keep_sha1 VALUES (?)", [(s,) for s in keep])
            removed = con.execute("DELETE FROM entries WHERE sha1 IS NOT NULL AND sha1 NOT IN "
                                  "(SELECT sha1 FROM keep_sha1)").rowcount
            with self._lock:
                self._memo.clear()
        own = self._writer[1] if self._writer is not None and self._pid == os.getpid() else None
        candidates = []
        for path in self._shard_files():
            if path.name == own:
                continue
            size = path.stat().st_size
            referenced = con.execute("SELECT coalesce(sum(nbytes), 0) FROM entries WHERE shard = ?",
                                     [path.name]).fetchone()[0]
            candidates.append((path, size, int(referenced)))
        small = [c for c in candidates if c[1] < self.shard_bytes // 4]
        rewritten = gone = 0
        for path, size, referenced in candidates:
            if referenced == size and not (len(small) > 1 and (path, size, referenced) in small):
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer's shard
                rows = con.execute("SELECT key, sha1, sr, dtype, offset, nbytes FROM entries WHERE shard = ?",
                                   [path.name]).fetchall()
                moved = []
                for key, sha1, sr, dtype, offset, nbytes in rows:
                    data = os.pread(fd, nbytes, offset)
                    if len(data) != nbytes:
                        continue  # torn: its row goes below, nothing else to save
                    moved.append((key, self._append_raw(data)))
                with self._lock:
                    con.execute("BEGIN IMMEDIATE")
                    try:
                        for key, (name, offset) in moved:
                            con.execute("UPDATE entries SET shard = ?, offset = ? WHERE key = ? AND shard = ?",
                                        [name, offset, key, path.name])
                        con.execute("DELETE FROM entries WHERE shard = ?", [path.name])  # torn rows
                        con.execute("COMMIT")
                    except BaseException:
                        con.execute("ROLLBACK")
                        raise
                    self._memo.clear()
                _READERS.forget(str(path))
                path.unlink()
                rewritten += bool(moved)
                gone += 1
            finally:
                os.close(fd)
        return PruneResult(removed, rewritten, gone, before, self.stats().bytes_total)

    def _append_raw(self, payload: bytes) -> tuple[str, int]:
        """Durably append bytes to this process's shard; (shard name, offset). Indexing is the caller's."""
        with self._lock:
            self._check_fork()
            if self._writer is None or self._writer[2] >= self.shard_bytes:
                if self._writer is not None:
                    os.close(self._writer[0])
                with paths.writing(self.shard_dir):
                    self._writer = self._open_writer()
            fd, name, offset = self._writer
            view, done = memoryview(payload), 0
            try:
                with paths.writing(self.shard_dir / name):
                    while done < len(view):
                        done += os.pwrite(fd, view[done:], offset + done)
                    os.fdatasync(fd)
            except BaseException:
                self._undo_append(offset)
                raise
            self._writer = (fd, name, offset + len(payload))
            return name, offset

    def _undo_append(self, offset: int) -> None:
        """Take back this process's last append (its write or its index row failed): the shard
        is cut back to `offset`, so a full disk gets the space back and no unindexed tail waits
        for prune, removed if that leaves it empty, and closed; the next append opens a new one."""
        fd, name, _ = self._writer
        self._writer = None
        try:
            os.ftruncate(fd, offset)
            if offset == 0:
                (self.shard_dir / name).unlink(missing_ok=True)
        except OSError:
            pass  # what is left is an unindexed tail: prune reclaims it
        finally:
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                if self._writer is not None:
                    os.close(self._writer[0])
                if self._con is not None:
                    self._con.close()
            self._writer, self._con, self._memo = None, None, {}

    def __getstate__(self):  # pickles as its settings; the receiving process opens its own
        return dict(root=self.root, dtype=self.dtype, shard_bytes=self.shard_bytes)

    def __setstate__(self, state):
        self.__init__(state["root"], state["dtype"], state["shard_bytes"])


_ORPHANS: list = []  # a parent's SQLite handles inherited by a forked child, never touched
_WORKER_CACHES: dict[tuple[int, str], "ShardCache"] = {}


def worker_cache(root: str | Path) -> "ShardCache":
    """The one ShardCache of this process for `root`, for worker tasks that get only the path.

    A long-lived worker runs thousands of tasks; a fresh cache per task would leave its SQLite
    connection and shard descriptor open each time (found at 100,000 tracks: the faults scan
    died of EMFILE under `ulimit -n 256`). Keyed by pid, so a forked child opens its own.
    """
    key = (os.getpid(), str(Path(root)))
    if key not in _WORKER_CACHES:
        _WORKER_CACHES[key] = ShardCache(Path(root))
    return _WORKER_CACHES[key]


def is_emfile(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE)
