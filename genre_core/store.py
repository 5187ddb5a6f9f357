"""The DuckDB schema and every write (plus the reads the pipeline itself needs).

DuckDB allows one writer process or many read-only ones, never both at once. So nothing
holds a connection for long: each write opens the file, runs one transaction and closes it,
and every open retries for a while when another process holds the lock. The app (read-only)
and a training run (writer) therefore interleave instead of failing.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import duckdb
import numpy as np
import pandas as pd

from genre_core import paths
from genre_core.workers import pid_alive

SCHEMA_VERSION = 5
DEFAULT_DB = Path("data/genrelens.duckdb")
LOCK_WAIT_S = 30.0  # a run's final write takes well under a second; 30 s covers slow disks
# A training process writes a heartbeat every HEARTBEAT_S (genre_core.train.lifecycle); a
# 'running' run whose heartbeat is older than STALE_AFTER_S, or whose process is gone from
# this host, was killed (kill -9, power loss) and is reported as 'interrupted'.
HEARTBEAT_S = 20.0
# runs.representation of a pretraining run (train/pretrain.py): complete, but its result is an
# encoder, not predictions; the app lists genre classifiers only.
BACKBONE_REPRESENTATION = "backbone"
STALE_AFTER_S = 6 * HEARTBEAT_S  # generous: a loaded machine may delay a beat by a lock wait

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE SEQUENCE IF NOT EXISTS dataset_ids START 1;
CREATE TABLE IF NOT EXISTS datasets (
    dataset_id INTEGER PRIMARY KEY DEFAULT nextval('dataset_ids'),
    name VARCHAR UNIQUE NOT NULL, kind VARCHAR NOT NULL, root VARCHAR NOT NULL,
    genres VARCHAR[] NOT NULL, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL);
CREATE TABLE IF NOT EXISTS tracks (
    dataset_id INTEGER NOT NULL, track_id VARCHAR NOT NULL, path VARCHAR NOT NULL,
    label VARCHAR NOT NULL, artist VARCHAR, title VARCHAR, duration_s DOUBLE,
    sample_rate INTEGER, channels INTEGER, status VARCHAR NOT NULL, error VARCHAR,
    error_kind VARCHAR, sha1 VARCHAR, official_split VARCHAR,
    PRIMARY KEY (dataset_id, track_id));
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, dataset_id INTEGER NOT NULL, model VARCHAR NOT NULL,
    representation VARCHAR, split VARCHAR NOT NULL, config JSON, status VARCHAR NOT NULL,
    device VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, seed INTEGER,
    error VARCHAR, sweep VARCHAR, classes VARCHAR[]);
CREATE TABLE IF NOT EXISTS epochs (
    run_id VARCHAR, epoch INTEGER, train_loss DOUBLE, val_loss DOUBLE, train_acc DOUBLE,
    val_acc DOUBLE, lr DOUBLE, seconds DOUBLE);
CREATE TABLE IF NOT EXISTS metrics (
    run_id VARCHAR, split VARCHAR, name VARCHAR, value DOUBLE, ci_low DOUBLE, ci_high DOUBLE);
CREATE TABLE IF NOT EXISTS predictions (
    run_id VARCHAR, track_id VARCHAR, split VARCHAR, label VARCHAR, predicted VARCHAR,
    probs FLOAT[]);
CREATE TABLE IF NOT EXISTS segment_predictions (
    run_id VARCHAR, track_id VARCHAR, start_s DOUBLE, probs FLOAT[]);
CREATE TABLE IF NOT EXISTS embeddings (run_id VARCHAR, track_id VARCHAR, kind VARCHAR,
    vector FLOAT[]);
CREATE TABLE IF NOT EXISTS projections (
    run_id VARCHAR, method VARCHAR, track_id VARCHAR, x DOUBLE, y DOUBLE);
CREATE TABLE IF NOT EXISTS neighbours (
    run_id VARCHAR, track_id VARCHAR, rank INTEGER, neighbour_id VARCHAR, distance DOUBLE);
CREATE TABLE IF NOT EXISTS attributions (
    run_id VARCHAR, track_id VARCHAR, method VARCHAR, target VARCHAR, n_bands INTEGER,
    n_frames INTEGER, "values" FLOAT[]);
CREATE TABLE IF NOT EXISTS band_importance (
    run_id VARCHAR, genre VARCHAR, method VARCHAR, "values" FLOAT[]);
CREATE TABLE IF NOT EXISTS taggrams (
    run_id VARCHAR, track_id VARCHAR, tag_names VARCHAR[], n_frames INTEGER,
    "values" FLOAT[]);
CREATE TABLE IF NOT EXISTS faults (
    dataset_id INTEGER, track_id VARCHAR, kind VARCHAR, group_id VARCHAR, score DOUBLE,
    evidence JSON, source VARCHAR);
CREATE TABLE IF NOT EXISTS reviews (
    dataset_id INTEGER, track_id VARCHAR, kind VARCHAR, decision VARCHAR, note VARCHAR,
    decided_at TIMESTAMP);
"""

# What each schema version adds to the one before it. A new file gets all of it; an older
# file is brought up to date, in one transaction, by the first open_store() that may write.
# Version 2 (hearing why):
# faithfulness: per run and explanation method, how well masks keeping the top k share of the
#   attribution keep the decision, against random masks of the same area ("explained" /
#   "random"): measure keep_rate | drop_in | drop_out, with bootstrap CIs over n tracks.
# variant_predictions: the run's probabilities for musical variants of a track (percussive,
#   harmonic, no bass, no treble, demo stems removed...), `variant` names the variant.
# contrast_neighbours: for a misclassified test track, its closest correctly classified tracks
#   of its true (`side` = "true") and of its predicted genre ("predicted"), explained too.
# Version 3 (failure patterns):
# failure_slices: groups of a run's test tracks sharing one or two attribute values (genre,
#   artist, tempo tercile...), each tested against the rest (one-sided Fisher exact test, p_value)
#   with Benjamini-Hochberg control over all n_tested slices (q_value, significant at alpha);
#   rank 1 is the worst significant slice (genre_core.analysis.slices).
# Version 4 (reviews that never lose work):
# review_history: every change of a verdict on the Faults page, a clearing included (decision
#   NULL), with who made it (the app server's user: no accounts) and when; `reviews` keeps
#   the current verdict only.
# Version 5 (inside a track):
# segment_projections: a run's windows placed on its track maps (analyze; genre_core.analysis
#   .embeddings.WindowVectors says which windows are kept).
MIGRATIONS = {
    2: """
CREATE TABLE IF NOT EXISTS faithfulness (
    run_id VARCHAR, method VARCHAR, mask VARCHAR, k DOUBLE, measure VARCHAR, value DOUBLE,
    ci_low DOUBLE, ci_high DOUBLE, n INTEGER);
CREATE TABLE IF NOT EXISTS variant_predictions (
    run_id VARCHAR, track_id VARCHAR, variant VARCHAR, probs FLOAT[]);
CREATE TABLE IF NOT EXISTS contrast_neighbours (
    run_id VARCHAR, track_id VARCHAR, side VARCHAR, rank INTEGER, neighbour_id VARCHAR,
    distance DOUBLE);
""",
    # attributions.scale: a map's raw maximum before it was scaled to 1, so a track's maps for
    # two genres can be shown on one scale (NULL in analyses made before).
    # failure_slices: groups of a run's test tracks where it fails more than elsewhere.
    # concept_scores: TCAV of musical concepts built from the corpus, per genre; concept_pushes:
    # per misclassified test track, the significant concepts' push toward its predicted genre.
    3: """
ALTER TABLE attributions ADD COLUMN IF NOT EXISTS scale FLOAT;
CREATE TABLE IF NOT EXISTS concept_scores (
    run_id VARCHAR, concept VARCHAR, genre VARCHAR, score DOUBLE, ci_low DOUBLE, ci_high DOUBLE,
    derivative DOUBLE, null_derivative DOUBLE, p DOUBLE, q DOUBLE, significant BOOLEAN,
    direction VARCHAR, n_tested INTEGER, alpha DOUBLE);
CREATE TABLE IF NOT EXISTS concept_pushes (
    run_id VARCHAR, track_id VARCHAR, label VARCHAR, predicted VARCHAR, concept VARCHAR,
    derivative DOUBLE, agreement DOUBLE, presence DOUBLE, pushes_to_predicted BOOLEAN);
CREATE TABLE IF NOT EXISTS failure_slices (
    run_id VARCHAR, rank INTEGER, attributes VARCHAR[], attribute_values VARCHAR[],
    description VARCHAR, same_tracks_as VARCHAR[], n INTEGER, errors INTEGER, accuracy DOUBLE,
    rest_accuracy DOUBLE, run_accuracy DOUBLE, run_tracks INTEGER, tested_among INTEGER,
    p_value DOUBLE, q_value DOUBLE, significant BOOLEAN, n_tested INTEGER,
    n_pairs_left_out INTEGER, alpha DOUBLE, split VARCHAR, track_ids VARCHAR[]);
""",
    4: """
CREATE TABLE IF NOT EXISTS review_history (
    dataset_id INTEGER, track_id VARCHAR, kind VARCHAR, decision VARCHAR, note VARCHAR,
    decided_at TIMESTAMP, decided_by VARCHAR);
""",
    5: """
CREATE TABLE IF NOT EXISTS segment_projections (
    run_id VARCHAR, method VARCHAR, track_id VARCHAR, start_s DOUBLE, x DOUBLE, y DOUBLE);
""",
}

# Tables added after schema version 1: created by the first write that needs them (and by
# SCHEMA's users on a new file), so older databases need no migration; readers check first.
# run_heartbeats: the process of a running run and when it last proved alive.
# run_files: sha256 of each file a complete run left, checked before the file is loaded.
LATER_TABLES = {
    "run_heartbeats": """CREATE TABLE IF NOT EXISTS run_heartbeats (
        run_id VARCHAR PRIMARY KEY, pid INTEGER, host VARCHAR, beat_at TIMESTAMP)""",
    "run_files": """CREATE TABLE IF NOT EXISTS run_files (
        run_id VARCHAR, name VARCHAR, sha256 VARCHAR, PRIMARY KEY (run_id, name))""",
    # track_genres: every genre of a track, primary label included (multi-label corpora).
    "track_genres": """CREATE TABLE IF NOT EXISTS track_genres (
        dataset_id INTEGER, track_id VARCHAR, genre VARCHAR)""",
    # multilabel_predictions: a multi-label run's true and predicted genre sets per track.
    "multilabel_predictions": """CREATE TABLE IF NOT EXISTS multilabel_predictions (
        run_id VARCHAR, track_id VARCHAR, split VARCHAR, genres VARCHAR[], predicted VARCHAR[])""",
}
# Run tables among LATER_TABLES: created by the first run that writes them.
LATER_RUN_TABLES = ("multilabel_predictions",)

# Tables whose rows belong to one run (written by finish_run / analysis in one transaction).
RUN_TABLES = (
    "epochs", "metrics", "predictions", "segment_predictions", "embeddings", "projections",
    "neighbours", "attributions", "taggrams", "band_importance",
    "faithfulness", "variant_predictions", "contrast_neighbours", "failure_slices", "concept_scores",
    "concept_pushes", "segment_projections",
)

TRACK_COLUMNS = (
    "track_id", "path", "label", "artist", "title", "duration_s", "sample_rate", "channels",
    "status", "error", "error_kind", "sha1", "official_split",
)


# What ingest last saw of each file, so a re-run skips unchanged files without reading them
# (`validated`: the whole file was decoded, not only sampled). Created by the first ingest
# that writes, so databases made before it need no migration.
TRACK_FILES_SQL = """CREATE TABLE IF NOT EXISTS track_files (
    dataset_id INTEGER NOT NULL, track_id VARCHAR NOT NULL, size BIGINT, mtime_ns BIGINT,
    validated BOOLEAN, PRIMARY KEY (dataset_id, track_id))"""


class StoreError(Exception):
    """The database cannot be used: wrong schema version, locked too long, not DuckDB, full disk."""


class StoreBusy(StoreError):
    """Another process held the database's lock for longer than we waited: try again later."""


@dataclass(frozen=True)
class NewDataset:
    """A dataset as an ingest found it. Stored with the ingest's first batch of tracks, in that
    batch's transaction, so an ingest that cannot write leaves no empty dataset behind."""

    name: str
    kind: str
    root: str
    genres: tuple[str, ...]
    genre_rows: tuple[tuple[str, str], ...] = ()  # (track_id, genre): every genre of each track


def default_db_path() -> Path:
    return Path(os.environ.get("GENRELENS_DB", DEFAULT_DB))


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _connect(path: Path, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not _is_transient(exc) or time.monotonic() > deadline:
                failure = None if read_only else paths.write_error(path, exc)
                kind = StoreBusy if _is_transient(exc) else StoreError
                raise kind(str(failure or f"{path}: {str(exc).splitlines()[0]}")) from exc
            time.sleep(0.05)


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Undo the open transaction; a commit that failed (its WAL could not be written) has
    already ended it, and DuckDB's "no transaction is active" must not hide why it failed."""
    try:
        con.rollback()
    except duckdb.TransactionException:
        pass


def _is_transient(exc: duckdb.Error) -> bool:
    """Another process holds the lock, or another thread of this one holds a connection of the
    other kind (read-only vs read-write: a training run's heartbeat thread); both end soon."""
    text = str(exc).lower()
    return "lock" in text or "different configuration" in text


class Store:
    """One DuckDB file. Use `open_store(path)` to get one with the schema checked."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @contextmanager
    def write(self, wait_s: float = LOCK_WAIT_S) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction: committed on success, rolled back (nothing half-written) on error."""
        con = _connect(self.path, read_only=False, wait_s=wait_s)
        try:
            con.begin()
            yield con
            con.commit()
        except BaseException as exc:
            _rollback(con)
            failure = paths.write_error(self.path, exc)  # a full disk: one line naming the file
            if failure is None:
                raise
            raise StoreError(str(failure)) from exc
        finally:
            con.close()

    @contextmanager
    def read(self, wait_s: float = 10.0) -> Iterator[duckdb.DuckDBPyConnection]:
        con = _connect(self.path, read_only=True, wait_s=wait_s)
        try:
            yield con
        finally:
            con.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        with self.read() as con:
            return con.execute(sql, list(params)).df()

    # -- datasets and tracks -------------------------------------------------------------

    def save_dataset(
        self, name: str, kind: str, root: str, *, genres: Sequence[str], tracks: list[dict]
    ) -> tuple[int, int]:
        """Insert or update a dataset and its tracks in one transaction.

        Re-ingesting updates rows in place (never duplicates). Tracks no longer on disk are
        kept, marked status='missing', so predictions that refer to them stay meaningful.
        Returns (dataset_id, number of tracks marked missing).
        """
        with self.write() as con:
            dataset_id = _upsert_dataset(con, name, kind, root, list(genres))
            con.execute("CREATE TEMP TABLE incoming AS SELECT * FROM tracks LIMIT 0")
            frame = pd.DataFrame(tracks, columns=list(TRACK_COLUMNS))
            frame.insert(0, "dataset_id", dataset_id)
            con.register("incoming_frame", frame)
            con.execute("INSERT INTO incoming SELECT * FROM incoming_frame")
            missing = _mark_absent(con, dataset_id, "incoming")
            con.execute("INSERT OR REPLACE INTO tracks SELECT * FROM incoming")
            con.execute("DROP TABLE incoming")
        return dataset_id, int(missing or 0)

    def ingest_state(self, name: str) -> pd.DataFrame:
        """What a previous ingest stored for dataset `name`: its tracks' columns plus the
        size, mtime_ns and validated seen then (NULL when unknown), indexed by track_id."""
        with self.read() as con:
            has_files = _has_table(con, "track_files")
            files = ("f.size, f.mtime_ns, f.validated FROM tracks t LEFT JOIN track_files f "
                     "USING (dataset_id, track_id)" if has_files else
                     "NULL::BIGINT AS size, NULL::BIGINT AS mtime_ns, NULL::BOOLEAN AS validated FROM tracks t")
            frame = con.execute(
                f"SELECT t.*, {files} WHERE t.dataset_id = (SELECT dataset_id FROM datasets WHERE name = ?)",
                [name]).df()
        return frame.drop(columns=["dataset_id"]).set_index("track_id", drop=False)

    def save_tracks(self, dataset: int | NewDataset, tracks: list[dict]) -> int:
        """Insert or replace a batch of track rows (TRACK_COLUMNS + size, mtime_ns, validated) in one
        transaction: a killed ingest keeps every batch committed before the kill, nothing else.
        `dataset` is the dataset's id, or, for an ingest's first batch, the dataset itself
        (inserted or updated in the same transaction). Returns the dataset's id."""
        frame = pd.DataFrame(tracks, columns=[*TRACK_COLUMNS, "size", "mtime_ns", "validated"])
        frame = frame.astype({"size": "Int64", "mtime_ns": "Int64", "validated": "boolean"})
        with self.write() as con:
            con.execute(TRACK_FILES_SQL)
            dataset_id = dataset if isinstance(dataset, int) else _save_dataset_row(con, dataset)
            frame.insert(0, "dataset_id", dataset_id)
            con.register("batch_frame", frame)
            cols = ", ".join(["dataset_id", *TRACK_COLUMNS])
            con.execute(f"INSERT OR REPLACE INTO tracks ({cols}) SELECT {cols} FROM batch_frame")
            con.execute("INSERT OR REPLACE INTO track_files SELECT dataset_id, track_id, size, "
                        "mtime_ns, validated FROM batch_frame")
            con.unregister("batch_frame")
        return dataset_id

    def mark_missing(self, dataset_id: int, present: Sequence[str]) -> int:
        """Tracks of the dataset not in `present` become status='missing' (kept, so results
        that refer to them stay meaningful), in one transaction; how many there are."""
        with self.write() as con:
            con.register("present_frame", pd.DataFrame({"track_id": list(present)}, dtype=object))
            missing = _mark_absent(con, dataset_id, "present_frame")
            con.unregister("present_frame")
        return int(missing or 0)

    def track_genres(self, dataset_name: str) -> pd.DataFrame:
        """(track_id, genre) rows of the dataset's tracks: every genre of each track that has
        one stored; empty for databases or datasets ingested before multi-label genres."""
        with self.read() as con:
            if not _has_table(con, "track_genres"):
                return pd.DataFrame(columns=["track_id", "genre"])
            return con.execute(
                "SELECT track_id, genre FROM track_genres WHERE dataset_id = "
                "(SELECT dataset_id FROM datasets WHERE name = ?) ORDER BY track_id, genre",
                [dataset_name]).df()

    def dataset(self, name: str) -> dict:
        """The dataset row as a dict; StoreError naming the known datasets when absent."""
        rows = self.query("SELECT * FROM datasets WHERE name = ?", [name])
        if rows.empty:
            known = ", ".join(self.query("SELECT name FROM datasets ORDER BY name")["name"])
            raise StoreError(f"no dataset named {name!r} in {self.path} (known: {known or 'none'})")
        return rows.iloc[0].to_dict()

    def dataset_overview(self) -> pd.DataFrame:
        """One row per dataset: name, kind, root, genres and its tracks by status."""
        return self.query(
            "SELECT d.name, d.kind, len(d.genres) AS genres, count(t.track_id) AS tracks, "
            "count(*) FILTER (WHERE t.status = 'ok') AS ok, "
            "count(*) FILTER (WHERE t.status = 'missing') AS missing, "
            "count(*) FILTER (WHERE t.status NOT IN ('ok', 'missing')) AS unusable, d.root "
            "FROM datasets d LEFT JOIN tracks t USING (dataset_id) GROUP BY ALL ORDER BY d.name")

    def test_accuracy(self) -> pd.DataFrame:
        """run_id, accuracy, ci_low, ci_high: every run's track-level test accuracy."""
        return self.query("SELECT run_id, value AS accuracy, ci_low, ci_high FROM metrics "
                          "WHERE split = 'test' AND name = 'track/accuracy'")

    def has_dataset(self, name: str) -> bool:
        return not self.query("SELECT 1 FROM datasets WHERE name = ?", [name]).empty

    def tracks(self, dataset_name: str, usable_only: bool = True) -> pd.DataFrame:
        """Tracks of a dataset, ordered by track_id; `usable_only` keeps status='ok'."""
        dataset_id = int(self.dataset(dataset_name)["dataset_id"])
        status = "AND status = 'ok'" if usable_only else ""
        return self.query(
            f"SELECT * FROM tracks WHERE dataset_id = ? {status} ORDER BY track_id", [dataset_id]
        )

    def dataset_tracks(self, dataset_id: int, columns: Sequence[str] = TRACK_COLUMNS) -> pd.DataFrame:
        """Every track row of a dataset (rejected ones too), by track_id, with `columns`
        (a subset of TRACK_COLUMNS: names are checked, never formatted from input)."""
        unknown = set(columns) - set(TRACK_COLUMNS)
        if unknown:
            raise ValueError(f"unknown track columns: {sorted(unknown)}")
        return self.query(f"SELECT {', '.join(columns)} FROM tracks WHERE dataset_id = ? ORDER BY track_id",
                          [dataset_id])

    def dataset_name(self, dataset_id: int) -> str:
        rows = self.query("SELECT name FROM datasets WHERE dataset_id = ?", [dataset_id])
        if rows.empty:
            raise StoreError(f"no dataset with id {dataset_id} in {self.path}")
        return str(rows["name"].iloc[0])

    def file_sha1s(self) -> set[str]:
        """The sha1 of every file in every dataset (what the cache may keep)."""
        return set(self.query("SELECT DISTINCT sha1 FROM tracks WHERE sha1 IS NOT NULL")["sha1"])

    # -- runs ------------------------------------------------------------------------------

    def start_run(self, run: dict) -> None:
        """Insert a run row with status 'running' (the app shows only complete runs), owned by
        this process: its pid and a first heartbeat are written in the same transaction."""
        row = {**run, "status": "running", "started_at": now(), "config": to_json(run["config"])}
        with self.write() as con:
            con.execute("DELETE FROM runs WHERE run_id = ?", [row["run_id"]])
            con.execute(
                f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                list(row.values()),
            )
            _claim_run(con, row["run_id"])

    def restart_run(self, run_id: str) -> None:
        """A resumed run is 'running' again, owned by this process."""
        with self.write() as con:
            con.execute("UPDATE runs SET status = 'running', finished_at = NULL, error = NULL "
                        "WHERE run_id = ?", [run_id])
            _claim_run(con, run_id)

    def beat(self, run_id: str) -> None:
        """This process is still working on the run (see HEARTBEAT_S)."""
        # A short lock wait: a beat is skippable, and Ctrl-C must not wait on one for long.
        with self.write(wait_s=HEARTBEAT_S / 4) as con:  # start_run / restart_run made the table
            con.execute("UPDATE run_heartbeats SET beat_at = ? WHERE run_id = ?", [now(), run_id])

    def finish_run(self, run_id: str, results: dict[str, pd.DataFrame],
                   files: dict[str, str] | None = None) -> None:
        """Write every result table of a run and mark it complete, all in one transaction.

        `results` maps table name (epochs, metrics, predictions, segment_predictions, ...)
        to a frame with that table's columns minus run_id. Rows a previous attempt of the
        same run left are replaced, so a resumed run never doubles its rows. `files` maps the
        name of each file the run left (model.joblib, ...) to its sha256, checked on load.
        """
        with self.write() as con:
            _replace_run_rows(con, run_id, results)
            con.execute(LATER_TABLES["run_files"])
            con.execute("DELETE FROM run_files WHERE run_id = ?", [run_id])
            for name, digest in (files or {}).items():
                con.execute("INSERT INTO run_files VALUES (?, ?, ?)", [run_id, name, digest])
            con.execute(
                "UPDATE runs SET status = 'complete', finished_at = ?, error = NULL WHERE run_id = ?",
                [now(), run_id],
            )

    def replace_run_rows(self, run_id: str, results: dict[str, pd.DataFrame]) -> None:
        """Replace a run's rows in the given tables (analysis results), one transaction."""
        with self.write() as con:
            _replace_run_rows(con, run_id, results)

    def delete_run(self, run_id: str) -> None:
        """Remove a run and every row it owns, in one transaction (a superseded pooled run)."""
        with self.write() as con:
            for table in (*RUN_TABLES, *(t for t in LATER_RUN_TABLES if _has_table(con, t))):
                con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            con.execute("DELETE FROM runs WHERE run_id = ?", [run_id])

    def fail_run(self, run_id: str, error: str) -> None:
        """The run raised: 'failed', with the error (resumable from its last checkpoint)."""
        self._end_run(run_id, "failed", error)

    def interrupt_run(self, run_id: str, reason: str) -> None:
        """The run was stopped (Ctrl-C, SIGTERM): 'interrupted', resumable with --resume."""
        self._end_run(run_id, "interrupted", reason)

    def _end_run(self, run_id: str, status: str, error: str) -> None:
        with self.write() as con:
            con.execute(
                "UPDATE runs SET status = ?, finished_at = ?, error = ? WHERE run_id = ?",
                [status, now(), error[:2000], run_id],
            )

    def run(self, run_id: str) -> dict:
        """The run row as a dict, config parsed, `status` as `runs()` reports it."""
        rows = self.runs(run_id=run_id)
        if rows.empty:
            raise StoreError(f"no run {run_id!r} in {self.path}")
        row = rows.iloc[0].to_dict()
        row["config"] = json.loads(row["config"]) if row["config"] else {}
        return row

    def runs(self, dataset_name: str | None = None, run_id: str | None = None) -> pd.DataFrame:
        """Every run (optionally of one dataset, or one run), oldest first: the runs columns
        plus dataset, pid, host and beat_at. `status` is the live one: a 'running' run whose
        process is gone or silent (see STALE_AFTER_S) is reported as 'interrupted'."""
        with self.read() as con:
            beats = ("LEFT JOIN run_heartbeats h USING (run_id)" if _has_table(con, "run_heartbeats") else
                     "LEFT JOIN (SELECT NULL::VARCHAR AS run_id, NULL::INTEGER AS pid, "
                     "NULL::VARCHAR AS host, NULL::TIMESTAMP AS beat_at) h USING (run_id)")
            frame = con.execute(
                f"SELECT r.*, d.name AS dataset, h.pid, h.host, h.beat_at FROM runs r "
                f"LEFT JOIN datasets d USING (dataset_id) {beats} "
                "WHERE (CAST(? AS VARCHAR) IS NULL OR d.name = ?) "
                "AND (CAST(? AS VARCHAR) IS NULL OR r.run_id = ?) ORDER BY r.started_at, r.run_id",
                [dataset_name, dataset_name, run_id, run_id]).df()
        frame["status"] = [live_status(*row) for row in
                           zip(frame.status, frame.pid, frame.host, frame.beat_at)]
        return frame

    def run_file_sha256(self, run_id: str, name: str) -> str | None:
        """The sha256 recorded when the run completed for its file `name`, or None."""
        with self.read() as con:
            if not _has_table(con, "run_files"):
                return None
            row = con.execute("SELECT sha256 FROM run_files WHERE run_id = ? AND name = ?",
                              [run_id, name]).fetchone()
        return row[0] if row else None

    def complete_runs(self, dataset_name: str | None = None, model: str | None = None,
                      split_like: str = "%", *, with_model: bool = False) -> pd.DataFrame:
        """Complete runs (run_id, model, split, classes, finished_at), oldest first, optionally of
        one dataset and model, with `split` matching a LIKE pattern (e.g. 'kfold-%'), and with
        `with_model` only runs that have a model file: not imported, ensembled or pooled ones,
        which say why in config's `no_model` (pooled runs keep their folds' representation)."""
        return self.query(
            "SELECT r.run_id, r.model, r.split, r.classes, r.finished_at FROM runs r "
            "JOIN datasets d USING (dataset_id) WHERE r.status = 'complete' AND r.split LIKE ? "
            "AND (CAST(? AS VARCHAR) IS NULL OR d.name = ?) AND (CAST(? AS VARCHAR) IS NULL OR r.model = ?) "
            "AND NOT (? AND (coalesce(r.representation, '') IN ('imported', 'ensemble') "
            "OR r.config->>'no_model' IS NOT NULL)) "
            "ORDER BY r.finished_at", [split_like, dataset_name, dataset_name, model, model, with_model])

    def predictions(self, run_id: str, split: str | None = None) -> pd.DataFrame:
        """A run's track-level predictions (track_id, split, label, predicted, probs), by
        split and track_id, of one split ('test' | 'val') or all; the inputs of analysis."""
        return self.query(
            "SELECT track_id, split, label, predicted, probs FROM predictions WHERE run_id = ? "
            "AND (CAST(? AS VARCHAR) IS NULL OR split = ?) ORDER BY split, track_id", [run_id, split, split])

    def taggrams(self, run_id: str) -> pd.DataFrame:
        """A run's musicnn taggrams (track_id, tag_names, n_frames, values) by track_id."""
        return self.query('SELECT track_id, tag_names, n_frames, "values" FROM taggrams WHERE run_id = ? '
                          "ORDER BY track_id", [run_id])

    def failure_slices(self, run_id: str) -> pd.DataFrame:
        """A run's stored failure slices (every failure_slices column but run_id), by rank."""
        return self.query("SELECT * EXCLUDE (run_id) FROM failure_slices WHERE run_id = ? ORDER BY rank",
                          [run_id])

    def concept_findings(self, run_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """A run's TCAV concept scores (concept, genre, q, significant, direction) and its
        misclassified tracks' concept pushes (track_id, concept, derivative,
        pushes_to_predicted, strongest first): what analysis.why says of concepts. Empty frames
        where a table is missing (a database made while schema 3 was being written)."""
        wanted = {"concept_scores": ("concept, genre, q, significant, direction", "q"),
                  "concept_pushes": ("track_id, concept, derivative, pushes_to_predicted", "track_id, derivative DESC")}
        with self.read() as con:
            scores, pushes = (
                con.execute(f"SELECT {columns} FROM {table} WHERE run_id = ? ORDER BY {order}", [run_id]).df()
                if _has_table(con, table) else pd.DataFrame(columns=columns.split(", "))
                for table, (columns, order) in wanted.items())
        return scores, pushes

    def metrics(self, run_id: str) -> pd.DataFrame:
        """A run's metric rows (split, name, value, ci_low, ci_high) by split and name."""
        return self.query("SELECT split, name, value, ci_low, ci_high FROM metrics WHERE run_id = ? "
                          "ORDER BY split, name", [run_id])

    def projections(self, run_id: str) -> pd.DataFrame:
        """A run's 2-D maps (method, track_id, x, y) by method and track_id."""
        return self.query("SELECT method, track_id, x, y FROM projections WHERE run_id = ? "
                          "ORDER BY method, track_id", [run_id])

    def segment_projections(self, run_id: str) -> pd.DataFrame:
        """A run's windows on its maps (method, track_id, start_s, x, y) by method, track and start."""
        return self.query("SELECT method, track_id, start_s, x, y FROM segment_projections WHERE run_id = ? "
                          "ORDER BY method, track_id, start_s", [run_id])

    def embedding_rows(self, run_id: str) -> pd.DataFrame:
        """A run's stored track vectors (track_id, kind, vector) by kind and track_id."""
        return self.query("SELECT track_id, kind, vector FROM embeddings WHERE run_id = ? "
                          "ORDER BY kind, track_id", [run_id])

    def segment_predictions(self, run_id: str, track_id: str) -> pd.DataFrame:
        """One track's window-level predictions (start_s, probs) by start time."""
        return self.query("SELECT start_s, probs FROM segment_predictions WHERE run_id = ? AND track_id = ? "
                          "ORDER BY start_s", [run_id, track_id])

    def attribution(self, run_id: str, track_id: str, target: str) -> pd.DataFrame:
        """The Grad-CAM map (n_bands, n_frames, values) of one track towards `target`: 0 or 1 row."""
        return self.query('SELECT n_bands, n_frames, "values" FROM attributions WHERE run_id = ? '
                          "AND track_id = ? AND target = ?", [run_id, track_id, target])

    # -- k-fold sweeps -----------------------------------------------------------------------

    def sweep_runs(self, sweep: str, split_like: str, complete_only: bool = True) -> pd.DataFrame:
        """Runs of one sweep whose split matches a LIKE pattern: run_id, dataset_id, model,
        representation, split, classes, config, by split."""
        return self.query(
            "SELECT run_id, dataset_id, model, representation, split, classes, config FROM runs "
            "WHERE sweep = ? AND split LIKE ? AND (NOT ? OR status = 'complete') ORDER BY split",
            [sweep, split_like, complete_only])

    def unpooled_kfold_sweeps(self, dataset_name: str, pooled_like: str) -> pd.DataFrame:
        """k-fold sweeps of a dataset with no run whose split matches `pooled_like`: sweep,
        split (one fold's, e.g. 'kfold-2/5') and n (its complete fold runs)."""
        return self.query(
            "SELECT r.sweep, any_value(r.split) AS split, count(*) AS n FROM runs r JOIN datasets d "
            "USING (dataset_id) WHERE d.name = ? AND r.status = 'complete' AND r.split LIKE 'kfold-%' "
            "AND r.sweep IS NOT NULL AND r.sweep NOT IN "
            "(SELECT sweep FROM runs WHERE split LIKE ? AND sweep IS NOT NULL) GROUP BY r.sweep",
            [dataset_name, pooled_like])

    # -- faults ----------------------------------------------------------------------------

    def replace_faults(self, dataset_id: int, source: str, frame: pd.DataFrame) -> None:
        """Replace a dataset's fault rows of one source ('detected' | 'known') in one transaction.

        `frame` has columns track_id, kind, group_id, score, evidence (a JSON string);
        a re-run therefore replaces its earlier rows instead of adding to them.
        """
        columns = ["track_id", "kind", "group_id", "score", "evidence"]
        rows = frame.reindex(columns=columns).astype(
            {"track_id": str, "kind": str, "group_id": object, "score": float, "evidence": object})
        with self.write() as con:
            con.execute("DELETE FROM faults WHERE dataset_id = ? AND source = ?", [dataset_id, source])
            if len(rows):
                con.register("fault_frame", rows)
                con.execute(
                    "INSERT INTO faults (dataset_id, track_id, kind, group_id, score, evidence, source) "
                    "SELECT ?, track_id, kind, CAST(group_id AS VARCHAR), score, "
                    "CAST(evidence AS JSON), ? FROM fault_frame",
                    [dataset_id, source],
                )
                con.unregister("fault_frame")

    def faults(self, dataset_name: str, source: str) -> pd.DataFrame:
        """A dataset's fault rows of one source ('detected' | 'known'): track_id, kind, group_id,
        score, evidence (a JSON string), by kind and track_id."""
        return self.query(
            "SELECT f.track_id, f.kind, f.group_id, f.score, f.evidence FROM faults f "
            "JOIN datasets d USING (dataset_id) WHERE d.name = ? AND f.source = ? "
            "ORDER BY f.kind, f.track_id", [dataset_name, source])

    def fault_rows(self, dataset_id: int) -> pd.DataFrame:
        """Every fault row of a dataset, both sources: track_id, kind, group_id, score, source,
        evidence (a JSON string), by kind and track_id."""
        return self.query("SELECT track_id, kind, group_id, score, source, CAST(evidence AS VARCHAR) "
                          "AS evidence FROM faults WHERE dataset_id = ? ORDER BY kind, track_id", [dataset_id])

    def kfold_test_predictions(self, dataset_id: int) -> pd.DataFrame:
        """Test-side predictions of the dataset's complete k-fold runs, one row per (run, track).

        Columns: run_id, sweep, fold_split (e.g. 'kfold-2/5'), classes, started_at, track_id,
        label, probs. Choosing the sweep is left to the caller (genre_core.faults.detect).
        """
        return self.query(
            "SELECT r.run_id, r.sweep, r.split AS fold_split, r.classes, r.started_at, "
            "p.track_id, p.label, p.probs FROM predictions p JOIN runs r USING (run_id) "
            "WHERE r.dataset_id = ? AND r.status = 'complete' AND r.split LIKE 'kfold-%' "
            "AND p.split = 'test' ORDER BY r.started_at, r.run_id, p.track_id",
            [dataset_id],
        )

    # -- reviews ---------------------------------------------------------------------------

    def reviews(self, dataset_id: int) -> pd.DataFrame:
        """A dataset's verdicts (track_id, kind, decision, note, decided_at), oldest first."""
        return self.query("SELECT track_id, kind, decision, note, decided_at FROM reviews "
                          "WHERE dataset_id = ? ORDER BY decided_at", [dataset_id])

    def save_review(self, dataset_id: int, track_id: str, kind: str, *, decision: str | None,
                    note: str | None = None, by: str | None = None) -> None:
        """A person's verdict on a fault finding ("confirmed" | "dismissed"), replacing any
        earlier verdict on the same (dataset, track, kind); None clears it (undecided again).
        Either way the change is added to review_history with `by` (who) and the time."""
        self.save_reviews([dict(dataset_id=dataset_id, track_id=track_id, kind=kind, decision=decision,
                                note=note)], by=by)

    def save_reviews(self, reviews: Sequence[dict], *, by: str | None = None) -> int:
        """`save_review` for each dict (dataset_id, track_id, kind, decision, note) in one
        transaction: a group's verdict is stored for all its copies or for none."""
        for review in reviews:
            if review["decision"] not in ("confirmed", "dismissed", None):
                raise ValueError(f"decision must be 'confirmed', 'dismissed' or None, got {review['decision']!r}")
        with self.write() as con:
            con.execute(MIGRATIONS[4])  # a file made before version 4 that no writer upgraded yet
            for r in reviews:
                key = [r["dataset_id"], r["track_id"], r["kind"]]
                note, at = r.get("note") if r["decision"] else None, now()
                con.execute("DELETE FROM reviews WHERE dataset_id = ? AND track_id = ? AND kind = ?", key)
                if r["decision"]:
                    con.execute("INSERT INTO reviews (dataset_id, track_id, kind, decision, note, decided_at) "
                                "VALUES (?, ?, ?, ?, ?, ?)", [*key, r["decision"], note, at])
                con.execute("INSERT INTO review_history (dataset_id, track_id, kind, decision, note, decided_at, "
                            "decided_by) VALUES (?, ?, ?, ?, ?, ?, ?)", [*key, r["decision"], note, at, by])
        return len(reviews)

    def review_history(self, dataset_id: int) -> pd.DataFrame:
        """Every verdict change of a dataset, oldest first (decision None: cleared)."""
        return self.query("SELECT track_id, kind, decision, note, decided_at, decided_by FROM review_history "
                          "WHERE dataset_id = ? ORDER BY decided_at", [dataset_id])


def _claim_run(con, run_id: str) -> None:
    con.execute(LATER_TABLES["run_heartbeats"])
    con.execute("INSERT OR REPLACE INTO run_heartbeats VALUES (?, ?, ?, ?)",
                [run_id, os.getpid(), socket.gethostname(), now()])


def live_status(status: str, pid, host, beat_at) -> str:
    """A stored run status as it is now: 'running' only while its process can be alive."""
    if status != "running":
        return status
    if beat_at is None or pd.isna(beat_at) or (now() - beat_at).total_seconds() > STALE_AFTER_S:
        return "interrupted"
    if host == socket.gethostname() and not pid_alive(int(pid)):
        return "interrupted"
    return "running"


def _has_table(con, name: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0])


def _replace_run_rows(con, run_id: str, results: dict[str, pd.DataFrame]) -> None:
    for table, frame in results.items():
        if table not in RUN_TABLES + LATER_RUN_TABLES:
            raise ValueError(f"not a run table: {table}")
        if table in LATER_RUN_TABLES:
            con.execute(LATER_TABLES[table])
        con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
        if len(frame):
            con.register("frame", frame.assign(run_id=run_id))
            cols = ", ".join(f'"{c}"' for c in ["run_id", *frame.columns])
            con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM frame")
            con.unregister("frame")


def _save_dataset_row(con, dataset: NewDataset) -> int:
    """Insert or update an ingested dataset's row and replace its (track_id, genre) rows."""
    dataset_id = _upsert_dataset(con, dataset.name, dataset.kind, dataset.root, list(dataset.genres))
    con.execute(LATER_TABLES["track_genres"])
    con.execute("DELETE FROM track_genres WHERE dataset_id = ?", [dataset_id])
    con.register("genre_frame", pd.DataFrame(list(dataset.genre_rows), columns=["track_id", "genre"], dtype=object))
    con.execute("INSERT INTO track_genres SELECT ?, track_id, genre FROM genre_frame", [dataset_id])
    con.unregister("genre_frame")
    return dataset_id


def _upsert_dataset(con, name: str, kind: str, root: str, genres: list[str]) -> int:
    row = con.execute("SELECT dataset_id FROM datasets WHERE name = ?", [name]).fetchone()
    if row:
        con.execute(
            "UPDATE datasets SET kind = ?, root = ?, genres = ?, updated_at = ? "
            "WHERE dataset_id = ?",
            [kind, root, genres, now(), row[0]],
        )
        return int(row[0])
    return int(
        con.execute(
            "INSERT INTO datasets (name, kind, root, genres, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING dataset_id",
            [name, kind, root, genres, now(), now()],
        ).fetchone()[0]
    )


def open_store(path: Path | str | None = None, create: bool = True) -> Store:
    """Open (and on first use create) the database, checking its schema version."""
    path = Path(path) if path is not None else default_db_path()
    if not path.exists():
        if not create:
            raise StoreError(f"{path}: no database yet (run: python -m training demo)")
        _create(path)
        return Store(path)
    version = _check_version(path)
    if version < SCHEMA_VERSION:
        _migrate(path, version)
    return Store(path)


def _migrate(path: Path, version: int) -> None:
    """Bring a database of an older schema `version` up to SCHEMA_VERSION in one transaction
    (a failure leaves it as it was, at its old version)."""
    with Store(path).write() as con:
        for step in range(version + 1, SCHEMA_VERSION + 1):
            con.execute(MIGRATIONS[step])
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])


def _create(path: Path) -> None:
    """A new database with the schema; a file that could not be finished (a full disk) is
    removed, or every later open would call it "not a GenreLens database"."""
    with paths.writing(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with Store(path).write() as con:
            con.execute(SCHEMA)
            for sql in LATER_TABLES.values():
                con.execute(sql)
            for sql in MIGRATIONS.values():
                con.execute(sql)
            con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    except StoreError as exc:
        if paths.write_errno(exc) is not None:  # not a lock: no other process made this file
            for unfinished in (path, path.with_name(path.name + ".wal")):
                unfinished.unlink(missing_ok=True)
        raise


def _check_version(path: Path) -> int:
    """The file's schema version: SCHEMA_VERSION, or an older one MIGRATIONS can upgrade."""
    try:
        with Store(path).read() as con:
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except duckdb.Error as exc:
        raise StoreError(f"{path}: not a GenreLens database ({str(exc).splitlines()[0]})") from exc
    try:
        version = int(row[0]) if row else None
    except ValueError:
        raise StoreError(f"{path}: schema version {row[0]!r} is not an integer (a damaged or foreign "
                         "database); move the file aside and re-run ingest") from None
    if version is not None and 1 <= version < SCHEMA_VERSION:
        return version
    if version != SCHEMA_VERSION:
        raise StoreError(
            f"{path}: schema version {version}, this GenreLens expects {SCHEMA_VERSION}; "
            "move the file aside and re-run ingest"
        )
    return version


def taggram_grid(values: Sequence[float], n_frames: int, tag_names: Sequence[str], dtype=np.float32) -> np.ndarray:
    """A stored taggram (its row-major `values`, taggrams table) as (n_frames, n_tags)."""
    return np.asarray(values, dtype=dtype).reshape(int(n_frames), len(tag_names))


def to_json(value: Any) -> str:
    """The one JSON encoding of what GenreLens stores (run configs, fault evidence): keys sorted,
    numpy scalars as numbers, anything else unknown (paths, dates) as its string."""
    # Missing values arrive from pandas as NaN, which is not JSON: store null instead.
    if isinstance(value, dict):
        value = {k: None if isinstance(v, float) and v != v else v for k, v in value.items()}
    return json.dumps(value, sort_keys=True, default=lambda v: v.item() if hasattr(v, "item") else str(v))


def _mark_absent(con: duckdb.DuckDBPyConnection, dataset_id: int, present: str) -> int:
    """Tracks of the dataset whose id is not in the relation `present` (a registered frame or
    temp table of this module, never user input) become status 'missing'; how many."""
    return con.execute(
        "UPDATE tracks SET status = 'missing', error = 'file no longer under root' "
        f"WHERE dataset_id = ? AND track_id NOT IN (SELECT track_id FROM {present})",
        [dataset_id],
    ).fetchone()[0]
