import subprocess
import sys
import time

import duckdb
import pytest

from genre_core import store as store_mod
from genre_core.datasets.ingest import ingest
from genre_core.store import StoreError, open_store
from tests.helpers import tone, write


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "corpus"
    for g in ("jazz", "rock"):
        for i in range(3):
            write(root / g / f"{i}.wav", tone(1.5, 300 + 100 * i))
    (root / "rock" / "broken.wav").write_text("not audio")
    return root


def test_ingest_records_good_and_unreadable_tracks(tmp_path, corpus):
    db = open_store(tmp_path / "g.duckdb")
    summary = ingest(db, "folder", corpus, name="mine", progress=False)
    assert (summary.n_tracks, summary.n_unreadable) == (7, 1)
    tracks = db.tracks("mine", usable_only=False).set_index("track_id")
    assert tracks.loc["rock/broken", "status"] == "unreadable"
    assert "not decodable" in tracks.loc["rock/broken", "error"]
    assert tracks.loc["jazz/0", "duration_s"] == pytest.approx(1.5)
    assert len(tracks.loc["jazz/0", "sha1"]) == 40
    assert len(db.tracks("mine")) == 6


def test_reingest_updates_in_place_and_marks_vanished_files(tmp_path, corpus):
    db = open_store(tmp_path / "g.duckdb")
    ingest(db, "folder", corpus, name="mine", progress=False)
    ingest(db, "folder", corpus, name="mine", progress=False)
    assert len(db.tracks("mine", usable_only=False)) == 7
    assert len(db.query("SELECT * FROM datasets")) == 1
    (corpus / "jazz" / "0.wav").unlink()
    summary = ingest(db, "folder", corpus, name="mine", progress=False)
    assert summary.n_missing == 1
    tracks = db.tracks("mine", usable_only=False).set_index("track_id")
    assert tracks.loc["jazz/0", "status"] == "missing" and len(tracks) == 7


def test_a_failed_write_leaves_nothing_half_written(tmp_path, corpus):
    db = open_store(tmp_path / "g.duckdb")
    ingest(db, "folder", corpus, name="mine", progress=False)
    with pytest.raises(RuntimeError):
        with db.write() as con:
            con.execute("DELETE FROM tracks")
            raise RuntimeError("killed mid-write")
    assert len(db.tracks("mine", usable_only=False)) == 7


def test_pipeline_reads_of_runs_predictions_and_faults(tmp_path, corpus):
    import pandas as pd

    db = open_store(tmp_path / "g.duckdb")
    ingest(db, "folder", corpus, name="mine", progress=False)
    assert db.has_dataset("mine") and not db.has_dataset("other")
    dataset_id = int(db.dataset("mine")["dataset_id"])
    for run_id, model, split in (("r1", "cnn", "random"), ("r2", "logreg", "kfold-1/5"), ("r3", "cnn", "random")):
        db.start_run(dict(run_id=run_id, dataset_id=dataset_id, model=model, split=split, config={}))
        db.finish_run(run_id, {"predictions": pd.DataFrame(dict(
            track_id=["jazz/1", "jazz/0", "rock/0"], split=["test", "test", "val"], label="jazz",
            predicted="jazz", probs=[[1.0, 0.0]] * 3))})
    db.start_run(dict(run_id="r4", dataset_id=dataset_id, model="cnn", split="random", config={}))
    assert list(db.complete_runs().run_id) == ["r1", "r2", "r3"]
    assert list(db.complete_runs("mine", "cnn", "random").run_id) == ["r1", "r3"]
    assert list(db.complete_runs("mine", split_like="kfold-%").run_id) == ["r2"]
    assert db.complete_runs("other").empty
    assert list(db.predictions("r1", split="test").track_id) == ["jazz/0", "jazz/1"]
    assert len(db.predictions("r1")) == 3
    db.replace_faults(dataset_id, "detected", pd.DataFrame(dict(
        track_id=["rock/0", "jazz/0"], kind=["silence", "distortion"], group_id=None, score=1.0,
        evidence='{"a": 1}')))
    detected = db.faults("mine", "detected")
    assert list(detected.kind) == ["distortion", "silence"] and db.faults("mine", "known").empty


@pytest.mark.parametrize("stored, error", [
    ("0", "old.duckdb: schema version 0, this GenreLens expects"),
    ("one", "old.duckdb: schema version 'one' is not an integer"),  # a StoreError, not ValueError
])
def test_schema_version_is_checked_on_open(tmp_path, stored, error):
    path = tmp_path / "old.duckdb"
    open_store(path)
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [stored])
    con.close()
    with pytest.raises(StoreError, match=error):
        open_store(path)


def test_a_non_database_file_is_a_clear_error(tmp_path):
    path = tmp_path / "x.duckdb"
    path.write_text("hello")
    with pytest.raises(StoreError, match="x.duckdb"):
        open_store(path)


def test_missing_database_is_not_created_for_readers(tmp_path):
    with pytest.raises(StoreError, match="python -m training demo"):
        open_store(tmp_path / "none.duckdb", create=False)


def test_a_reader_waits_out_a_writer_in_another_process(tmp_path):
    path = tmp_path / "busy.duckdb"
    open_store(path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import duckdb, time, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
         "time.sleep(1.0); c.close()", str(path)],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    rows = store_mod.Store(path).query("SELECT value FROM meta")
    assert rows["value"].tolist() == [str(store_mod.SCHEMA_VERSION)]
    assert time.monotonic() - started > 0.2  # it really had to wait for the lock
    holder.wait(timeout=10)


def _running_run(db, run_id):
    db.start_run(dict(run_id=run_id, dataset_id=1, model="cnn", split="random", config={}))


def test_a_running_run_whose_process_is_gone_is_reported_interrupted(tmp_path):
    db = open_store(tmp_path / "g.duckdb")
    for run_id in ("alive", "killed", "silent", "legacy"):
        _running_run(db, run_id)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid names no process now
    with db.write() as con:
        con.execute("UPDATE run_heartbeats SET pid = ? WHERE run_id = 'killed'", [dead.pid])
        con.execute("UPDATE run_heartbeats SET beat_at = beat_at - INTERVAL 1 HOUR WHERE run_id = 'silent'")
        con.execute("DELETE FROM run_heartbeats WHERE run_id = 'legacy'")  # made before heartbeats
    status = db.runs().set_index("run_id").status
    assert status.to_dict() == {"alive": "running", "killed": "interrupted", "silent": "interrupted",
                                "legacy": "interrupted"}
    assert db.run("killed")["status"] == "interrupted"
    db.beat("alive")


def test_runs_of_a_database_without_the_heartbeat_table_still_list(tmp_path):
    db = open_store(tmp_path / "old.duckdb")
    _running_run(db, "r1")
    with db.write() as con:
        con.execute("DROP TABLE run_heartbeats")
    assert db.runs().status.tolist() == ["interrupted"]


def test_a_version_1_database_is_upgraded_in_place_by_the_first_writer(tmp_path):
    """Made before hearing-why (schema 1): opened for writing, it gains the new tables and
    keeps everything it held; the app is told how to upgrade it until then."""
    from genre_core.app import queries as q
    from genre_core.store import MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "old.duckdb"
    store = open_store(path)
    store.save_dataset("d", "folder", str(tmp_path), genres=["rock"], tracks=[])
    with duckdb.connect(str(path)) as con:
        for table in ("faithfulness", "variant_predictions", "contrast_neighbours"):
            con.execute(f"DROP TABLE {table}")
        con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    state, message = q.database_state(str(path))
    assert state == "invalid" and "older GenreLens" in message and "genrelens runs" in message
    open_store(path)
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        assert con.execute("SELECT count(*) FROM variant_predictions").fetchone()[0] == 0
        assert con.execute("SELECT name FROM datasets").fetchone()[0] == "d"
    assert set(MIGRATIONS) == set(range(2, SCHEMA_VERSION + 1))
