"""The landmark index on disk: postings in a scratch DuckDB file, offset votes counted in SQL.

Held in RAM, the index of FMA-full's 30-s clips would take ~49 GB (~91 GB while it is
sorted). Here landmarks are appended in chunks to one table of a private DuckDB file under
the cache folder, then voted on by a self-join on hash, one range of query tracks at a time,
under DuckDB's memory limit (it spills to its temp folder beyond it). Python holds one
chunk of landmarks, a landmark count per track and the candidates that pass the vote.

    postings(hash INTEGER, track INTEGER, t INTEGER)   -- every landmark, appended in scan order
    live(hash, track, t)                               -- representatives' postings minus the
                                                          stop list (fingerprint.stop_postings)

The SQL is the same vote as `fingerprint.LandmarkIndex.votes` + `_offset_peaks`: hits per
(a, b, t_a - t_b) for a < b sharing a hash, smoothed over +-1 frame, best offset per pair
(ties to the smallest offset), then `fingerprint.voted_candidates` applies the same
thresholds. SQL lives here rather than in store.py because this is a scratch database this
module creates and deletes, never the product's database.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import duckdb
import numpy as np
import pyarrow as pa
from tqdm import tqdm

from genre_core import paths
from genre_core.faults import fingerprint as fp
from genre_core.workers import pid_alive

FLUSH_LANDMARKS = 1_000_000  # landmarks buffered in Python before an append: ~12 MB
QUERY_LANDMARKS = 2_000_000  # query-side landmarks per voting pass ...
PASS_HITS = 2_000_000  # ... and pair hits (join rows) per pass: bounds the GROUP BY's memory
MEMORY_LIMIT = "256MB"  # DuckDB's own budget; joins and aggregates spill to disk beyond it
HASH_BITS = 26  # f1 << 16 | f2 << 6 | dt with bins < 1024: fits a 32-bit column

_VOTE_SQL = """
WITH q AS (SELECT hash, track, t FROM live WHERE track BETWEEN $lo AND $hi),
r AS (SELECT hash, track, t FROM live WHERE track > $lo),
hits AS MATERIALIZED (
    SELECT q.track AS a, r.track AS b, q.t - r.t AS off, count(*) AS n
    FROM q JOIN r ON r.hash = q.hash AND r.track > q.track
    GROUP BY ALL),
pairs AS (SELECT a, b, sum(n) AS total FROM hits GROUP BY a, b HAVING sum(n) >= $min_votes),
smoothed AS (
    SELECT h.a, h.b, h.off, p.total,
           h.n + coalesce(CASE WHEN lag(h.off) OVER w = h.off - 1 THEN lag(h.n) OVER w END, 0)
               + coalesce(CASE WHEN lead(h.off) OVER w = h.off + 1 THEN lead(h.n) OVER w END, 0) AS votes
    FROM hits AS h JOIN pairs AS p ON h.a = p.a AND h.b = p.b
    WINDOW w AS (PARTITION BY h.a, h.b ORDER BY h.off))
SELECT a, b, off, votes, total FROM smoothed WHERE votes >= $min_votes
QUALIFY row_number() OVER (PARTITION BY a, b ORDER BY votes DESC, off) = 1
ORDER BY a, b
"""


class DiskLandmarkIndex:
    """Landmark postings of many tracks in a scratch DuckDB file under `folder`.

    `add(i, print)` in any order, then `candidates(tracks)` once; `close()` (or leaving a
    `with` block) deletes the file. Tracks are plain ints (positions in the caller's list).
    """

    def __init__(self, folder: Path | str, memory_limit: str = MEMORY_LIMIT, threads: int | None = None):
        self.folder = Path(folder)
        with paths.writing(self.folder):
            self.folder.mkdir(parents=True, exist_ok=True)
            _remove_orphans(self.folder)
            self.dir = Path(tempfile.mkdtemp(prefix=f"landmarks-{os.getpid()}-", dir=self.folder))
        try:
            with paths.writing(self.folder):
                self.con = duckdb.connect(str(self.dir / "index.duckdb"))
            # Settings take literals, not parameters: quote the one that comes from a path.
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
            self.con.execute(f"SET threads = {int(threads or min(8, os.cpu_count() or 1))}")
            spill = str(self.dir / "spill").replace("'", "''")
            self.con.execute(f"SET temp_directory = '{spill}'")
            self._execute("CREATE TABLE postings (hash INTEGER, track INTEGER, t INTEGER)")
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)  # a scratch index that could not start
            raise
        self.sizes: dict[int, int] = {}  # track -> landmark count (stopped hashes included)
        self._pending: list[tuple[int, fp.Fingerprint]] = []
        self._pending_rows = 0

    def __enter__(self) -> "DiskLandmarkIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _execute(self, sql: str, params=None) -> duckdb.DuckDBPyConnection:
        """A statement that writes the scratch file or spills: a full disk becomes one WriteError
        naming the cache's fingerprints folder (the scratch folder in it goes on close)."""
        with paths.writing(self.folder):
            return self.con.execute(sql, params)

    def add(self, track: int, print_: fp.Fingerprint) -> None:
        """Index track `track`'s landmarks (hashes < 2**26, anchor frames)."""
        self.sizes[int(track)] = int(print_.hashes.size)
        self._pending.append((int(track), print_))
        self._pending_rows += print_.hashes.size
        if self._pending_rows >= FLUSH_LANDMARKS:
            self._flush()

    def indexed(self, track: int) -> bool:
        return int(track) in self.sizes

    def __len__(self) -> int:
        return len(self.sizes)

    def _flush(self) -> None:
        if not self._pending:
            return
        hashes = np.concatenate([p.hashes for _, p in self._pending])
        if hashes.size and (hashes.min() < 0 or hashes.max() >= 1 << HASH_BITS):
            raise ValueError("landmark hash outside the 26 bits the index stores")
        chunk = pa.table({
            "hash": hashes.astype(np.int32),
            "track": np.repeat([t for t, _ in self._pending], [p.hashes.size for _, p in self._pending]
                               ).astype(np.int32),
            "t": np.concatenate([p.times for _, p in self._pending]).astype(np.int32)})
        self.con.register("chunk", chunk)
        self._execute("INSERT INTO postings SELECT hash, track, t FROM chunk")
        self.con.unregister("chunk")
        self._pending, self._pending_rows = [], 0

    def landmarks(self) -> int:
        """Postings stored (after a flush)."""
        self._flush()
        return int(self.con.execute("SELECT count(*) FROM postings").fetchone()[0])

    def candidates(self, tracks: Sequence[int], progress: bool = False) -> Iterator[tuple[int, dict]]:
        """(a, candidate) for every voted pair a < candidate["other"] among `tracks` (indexed
        ones), a ascending then other: exactly what fingerprint.memory_candidates gives for the
        same prints in the same order. The stop list is scaled to len(tracks). `progress`: a
        bar over the tracks whose votes are counted (minutes at 100,000 tracks)."""
        self._flush()
        reps = sorted({int(t) for t in tracks if self.indexed(t)})
        if not reps:
            return
        self._execute("CREATE OR REPLACE TABLE reps (track INTEGER PRIMARY KEY)")
        self.con.register("rep_list", pa.table({"track": np.asarray(reps, dtype=np.int32)}))
        self._execute("INSERT INTO reps SELECT track FROM rep_list")
        self.con.unregister("rep_list")
        self._execute("""
            CREATE OR REPLACE TABLE live AS
            WITH p AS (SELECT * FROM postings SEMI JOIN reps USING (track)),
            stopped AS (SELECT hash FROM p GROUP BY hash HAVING count(*) > ?)
            SELECT hash, track, t FROM p ANTI JOIN stopped USING (hash)
        """, [fp.stop_postings(len(reps))])
        # Pair hits a track's landmarks can make (an upper bound: earlier tracks count too).
        work = dict(self._execute("""
            SELECT track, sum(c) FROM live JOIN (SELECT hash, count(*) - 1 AS c FROM live GROUP BY hash)
            USING (hash) GROUP BY track""").fetchall())
        sizes = self.sizes
        position = {t: k for k, t in enumerate(reps)}
        with tqdm(total=len(reps), desc="duplicate search", unit="track", disable=not progress) as bar:
            for lo, hi in _ranges(reps, [(sizes[t], work.get(t, 0)) for t in reps], (QUERY_LANDMARKS, PASS_HITS)):
                # The vote spills to the scratch folder past MEMORY_LIMIT: a disk that fills is a write error.
                rows = self._execute(_VOTE_SQL, dict(lo=lo, hi=hi, min_votes=fp.MIN_VOTES)).fetchnumpy()
                for a, b, off, votes, total in zip(rows["a"], rows["b"], rows["off"], rows["votes"], rows["total"]):
                    for cand in fp.voted_candidates([a], [b], [off], votes=[votes], hits=[total], sizes=sizes):
                        yield int(a), cand
                bar.update(position[hi] - position[lo] + 1)

    def close(self) -> None:
        try:
            self.con.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _remove_orphans(folder: Path) -> None:
    """Delete scratch indexes left by killed processes (their pid is in the name)."""
    for old in folder.glob("landmarks-*-*"):
        pid = old.name.split("-")[1]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


def _ranges(tracks: list[int], costs: list[tuple[int, ...]], budget: tuple[int, ...]
            ) -> Iterator[tuple[int, int]]:
    """Consecutive (first, last) ranges of `tracks` (sorted) whose summed costs (landmarks,
    pair hits) stay within `budget` (a track over budget on its own gets a range of its own)."""
    start, held = 0, np.zeros(len(budget), dtype=np.int64)
    for k, cost in enumerate(costs):
        if k > start and np.any(held + cost > budget):
            yield tracks[start], tracks[k - 1]
            start, held = k, np.zeros(len(budget), dtype=np.int64)
        held += cost
    if start < len(tracks):
        yield tracks[start], tracks[-1]
