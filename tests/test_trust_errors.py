"""Trust suite (issue 23), families "collisions" and "errors": outputs that would overwrite each
other, and errors that reached the user in other people's words (scikit-learn's, DuckDB's,
Python's traceback) or at the length of whatever a file held.

Each case states what a user sees: one line naming the thing and the reason (exit status 2),
a message in our words with the numbers and what to do, no traceback, nothing half-stored.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genre_core.datasets import DatasetError
from genre_core.datasets.ingest import ingest
from genre_core.store import Store, open_store
from training.cli import main
from tests.helpers import band_clip, make_toy_corpus, write, writable_copy

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
LONG = 1_000_000  # characters of a hostile id or value: an error line must stay readable
READABLE = 1_000  # an error line longer than this is not read by anyone


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A database with the 3-genre toy corpus as dataset 'toy', one complete logreg run, and two
    small datasets: 'eight' (8 genres x 2 tracks) and 'blues-only' (one genre, 6 tracks)."""
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit

    root = tmp_path_factory.mktemp("trust_errors")
    store = open_store(root / "db" / "world.duckdb")
    ingest(store, "folder", make_toy_corpus(root / "toy", per_genre=6, seconds=3.0), name="toy", progress=False)
    ingest(store, "folder", _corpus(root / "eight", [f"g{i}" for i in range(8)], 2), name="eight", progress=False)
    ingest(store, "folder", _corpus(root / "one", ["blues"], 6), name="blues-only", progress=False)
    run_id = fit(store, TrainConfig.tiny_preset("toy", "logreg"), progress=False).run_id
    return {"store": store, "run": run_id, "root": root}


def _corpus(root: Path, genres: list[str], per_genre: int) -> Path:
    for g, genre in enumerate(genres):
        for i in range(per_genre):
            write(root / genre / f"{genre}_{i}.wav", band_clip((100.0 + 400 * g, 300.0 + 400 * g), 10 * g + i, 2.0))
    return root


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[:2000]
    return lines[0]


def _runs(store: Store) -> int:
    return len(store.query("SELECT run_id FROM runs"))


# -- collisions: two inputs, one output name --------------------------------------------------


def _classify(world, files: list[Path], out_dir: Path, capsys) -> tuple[int, list[str]]:
    code = main(["classify", *map(str, files), "--out-dir", str(out_dir), "--run", world["run"],
                 "--db", str(world["store"].path)])
    return code, capsys.readouterr().out.strip().splitlines()


def _windows(csv: Path) -> int:
    return len(pd.read_csv(csv))


@pytest.mark.trust("collisions", "lost")
def test_two_files_with_one_name_in_two_folders_get_two_timelines(world, tmp_path, capsys):
    short = write(tmp_path / "a" / "song.wav", band_clip("low", 1, 4.0))
    long = write(tmp_path / "b" / "song.wav", band_clip("high", 2, 9.0))
    code, out = _classify(world, [short, long], tmp_path / "D", capsys)
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "D").iterdir()) == ["song-2.csv", "song.csv"]
    # each timeline is its own file's: the 9-s recording has more windows than the 4-s one
    assert _windows(tmp_path / "D" / "song-2.csv") > _windows(tmp_path / "D" / "song.csv")
    assert "1 renamed (name taken by another file): song-2.csv" in out[-1]


@pytest.mark.trust("collisions", "lost")
def test_one_name_with_two_extensions_in_a_folder_gets_two_timelines(world, tmp_path, capsys):
    write(tmp_path / "music" / "take.wav", band_clip("low", 3, 4.0))
    write(tmp_path / "music" / "take.flac", band_clip("mid", 4, 9.0))
    code, out = _classify(world, [tmp_path / "music"], tmp_path / "D", capsys)
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "D").iterdir()) == ["take-2.csv", "take.csv"]
    assert "classified 2 of 2 files" in out[-1]


@pytest.mark.trust("collisions", "lost")
def test_a_renamed_timeline_never_takes_the_name_of_another_file(world, tmp_path, capsys):
    """a/song.wav, b/song.wav and a/song-2.wav: the second song may not become song-2.csv, which
    is the third file's own name."""
    files = [write(tmp_path / "a" / "song.wav", band_clip("low", 5, 4.0)),
             write(tmp_path / "b" / "song.wav", band_clip("mid", 6, 6.0)),
             write(tmp_path / "a" / "song-2.wav", band_clip("high", 7, 9.0))]
    code, out = _classify(world, files, tmp_path / "D", capsys)
    assert code == 0
    written = {p.name: _windows(p) for p in (tmp_path / "D").iterdir()}
    assert len(written) == 3 and len(set(written.values())) == 3  # three timelines, three files
    assert written["song-2.csv"] == max(written.values())  # a/song-2.wav (9 s) kept its own name


@pytest.mark.trust("collisions", "lost")
def test_names_that_differ_only_in_case_get_two_timelines(world, tmp_path, capsys):
    """Song.wav and song.wav are one file name on macOS and Windows disks. (Guards those
    systems: on Linux the old code wrote Song.csv and song.csv, so this passes on base.)"""
    files = [write(tmp_path / "a" / "Song.wav", band_clip("low", 8, 4.0)),
             write(tmp_path / "b" / "song.wav", band_clip("mid", 9, 9.0))]
    code, _ = _classify(world, files, tmp_path / "D", capsys)
    assert code == 0
    names = [p.name for p in (tmp_path / "D").iterdir()]
    assert len({n.casefold() for n in names}) == 2


@pytest.mark.trust("errors", "crash")
def test_an_out_dir_that_is_a_file_is_one_line_before_any_work(world, tmp_path, capsys):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    files = [write(tmp_path / "a" / "x.wav", band_clip("low", 1, 4.0)),
             write(tmp_path / "b" / "y.wav", band_clip("low", 2, 4.0))]
    assert main(["classify", *map(str, files), "--out-dir", str(blocker), "--db", str(world["store"].path)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(blocker) in line and "folder" in line
    assert blocker.read_text() == "not a folder"


@pytest.mark.trust("errors", "crash")
def test_export_to_a_file_that_exists_is_one_line(world, tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("mine")
    assert main(["export", "--run", world["run"], "--out", str(target), "--db", str(world["store"].path)]) == 2
    assert str(target) in _one_line(capsys.readouterr().err)
    assert target.read_text() == "mine"


# -- errors: splits in our words ------------------------------------------------------------------


@pytest.mark.trust("errors", "wrong")
def test_a_dataset_too_small_to_split_is_refused_in_our_words(world, capsys):
    code = main(["train", "--dataset", "eight", "--model", "logreg", "--db", str(world["store"].path), "-q"])
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert "16 usable tracks in 8 genres" in line and re.search(r"at least \d+ tracks per genre", line)
    assert "test_size" not in line and "number of classes" not in line


@pytest.mark.trust("errors", "wrong")
def test_a_kfold_split_of_a_small_dataset_is_refused_in_our_words(world, capsys):
    code = main(["train", "--dataset", "toy", "--model", "logreg", "--split", "kfold", "--k", "7",
                 "--db", str(world["store"].path), "-q"])
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert "7-fold split" in line and "18 usable tracks in 3 genres" in line
    assert "n_splits" not in line


@pytest.mark.trust("errors", "wrong")
def test_a_one_genre_dataset_is_refused_before_any_run_is_made(world, capsys):
    store = world["store"]
    before = _runs(store)
    code = main(["train", "--dataset", "blues-only", "--model", "logreg", "--db", str(store.path), "-q"])
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert "one genre ('blues')" in line and "at least 2 genres" in line
    assert _runs(store) == before  # no failed run left behind


@pytest.mark.trust("errors", "wrong")
@pytest.mark.parametrize("split", ["random", "kfold", "artist"])
def test_the_split_names_the_dataset_and_its_advice_works(split):
    """The sentence names the dataset (as the trainer passes it) and a per-genre count; that
    count really splits, for 2 to 29 genres."""
    from genre_core.datasets.splits import SPLITS

    def tracks(genres: int, per_genre: int) -> pd.DataFrame:
        labels = np.repeat([f"genre{g}" for g in range(genres)], per_genre)
        return pd.DataFrame({"track_id": [f"t{i}" for i in range(len(labels))], "label": labels,
                             "artist": [f"artist{i}" for i in range(len(labels))]})

    with pytest.raises(DatasetError) as refused:
        SPLITS[split](tracks(8, 2), 0)
    advice = re.search(r"16 usable tracks in 8 genres .*at least (\d+) tracks per genre", str(refused.value))
    assert advice, str(refused.value)
    for genres in (2, 3, 5, 8, 13, 29):
        split_made = SPLITS[split](tracks(genres, int(advice.group(1))), 0)
        assert split_made.train and split_made.val and split_made.test
    with pytest.raises(DatasetError, match="^dataset 'my small set' is too small"):
        SPLITS[split](tracks(8, 2), 0, dataset="my small set")


# -- errors: imported runs -----------------------------------------------------------------------


def _predictions(world, tmp_path) -> Path:
    tracks = world["store"].tracks("toy")
    path = tmp_path / "predictions.csv"
    pd.DataFrame({"track_id": tracks.track_id, "predicted": tracks.label}).to_csv(path, index=False)
    return path


def _import(world, file: Path, embeddings: Path | None = None):
    from genre_core.runs.imported import import_predictions

    return import_predictions(world["store"], "toy", file, model="outside", embeddings=embeddings, progress=False)


@pytest.mark.trust("errors", "wrong")
@pytest.mark.parametrize("value", [0.0, 0.25])
def test_embeddings_that_are_all_one_vector_are_refused_with_the_reason(world, tmp_path, value):
    tracks = world["store"].tracks("toy")
    embeddings = tmp_path / "embeddings.csv"
    pd.DataFrame({"track_id": tracks.track_id, **{f"d{i}": value for i in range(4)}}).to_csv(embeddings, index=False)
    from genre_core.runs.imported import BadImport

    before = _runs(world["store"])
    with pytest.raises(BadImport) as refused:
        _import(world, _predictions(world, tmp_path), embeddings)
    message = str(refused.value)
    assert str(embeddings) in message and ("all zero" if value == 0 else "the same vector") in message
    assert len(message.splitlines()) == 1 and _runs(world["store"]) == before


@pytest.mark.trust("errors", "crash")
def test_an_embedding_column_of_empty_cells_is_one_line_naming_the_file(world, tmp_path, capsys):
    """An export that wrote the column but no vectors (pandas reads the empty cells as NaN)."""
    tracks = world["store"].tracks("toy")
    embeddings = tmp_path / "embeddings.csv"
    pd.DataFrame({"track_id": tracks.track_id, "embedding": ""}).to_csv(embeddings, index=False)
    code = main(["import-predictions", "--dataset", "toy", "--model", "outside", "--file",
                 str(_predictions(world, tmp_path)), "--embeddings", str(embeddings),
                 "--db", str(world["store"].path), "-q"])
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert str(embeddings) in line and "row 1 has no embedding" in line


@pytest.mark.trust("errors", "wrong")
def test_an_embedding_that_is_not_numbers_names_the_file_and_row(world, tmp_path):
    from genre_core.runs.imported import BadImport

    tracks = world["store"].tracks("toy")
    embeddings = tmp_path / "embeddings.csv"
    cells = ["0.1 0.2 0.3", "0.1 two 0.3"] + ["0.3 0.2 0.1"] * (len(tracks) - 2)
    pd.DataFrame({"track_id": tracks.track_id, "embedding": cells}).to_csv(embeddings, index=False)
    with pytest.raises(BadImport, match="row 2") as refused:
        _import(world, _predictions(world, tmp_path), embeddings)
    assert str(embeddings) in str(refused.value)


@pytest.mark.trust("errors", "crash")
def test_a_predictions_file_with_only_a_header_is_one_line(world, tmp_path, capsys):
    empty = tmp_path / "predictions.csv"
    empty.write_text("track_id,predicted\n")
    code = main(["import-predictions", "--dataset", "toy", "--model", "outside", "--file", str(empty),
                 "--db", str(world["store"].path), "-q"])
    assert code == 2
    assert str(empty) in _one_line(capsys.readouterr().err)


# -- errors: echoed values stay readable -----------------------------------------------------------


@pytest.mark.trust("errors", "security")
@pytest.mark.parametrize("column", ["track_id", "predicted", "split"])
def test_a_huge_value_in_a_predictions_file_makes_a_short_error(world, tmp_path, column):
    from genre_core.runs.imported import BadImport

    tracks = world["store"].tracks("toy")
    table = pd.DataFrame({"track_id": tracks.track_id, "predicted": tracks.label, "split": "test"})
    table.loc[0, column] = "x" * LONG
    path = tmp_path / "predictions.csv"
    table.to_csv(path, index=False)
    with pytest.raises(BadImport) as refused:
        _import(world, path)
    message = str(refused.value)
    assert str(path) in message and len(message) < READABLE and "more characters" in message


@pytest.mark.trust("errors", "security")
def test_a_huge_run_id_on_the_command_line_makes_a_short_error(world, tmp_path, capsys):
    code = main(["export", "--run", "r" * 100_000, "--out", str(tmp_path / "out"), "--db", str(world["store"].path)])
    assert code == 2
    assert len(_one_line(capsys.readouterr().err)) < READABLE


# -- errors: the command line's pipe -----------------------------------------------------------------


@pytest.mark.trust("errors", "crash")
def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(world):
    """`genrelens runs | head -0`: the reader is gone before the first line is written."""
    read_end, write_end = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "training", "runs", "--db", str(world["store"].path)],
                            stdout=write_end, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    os.close(write_end)
    os.close(read_end)
    _, err = proc.communicate(timeout=120)
    assert err == ""
    assert proc.returncode == 141  # 128 + SIGPIPE, as `cat` or `grep` end there


# -- errors: the app while another process holds the database --------------------------------------


@pytest.fixture
def short_lock_wait(monkeypatch):
    """A read gives up on a held lock after 0.2 s instead of 10 s (what a visitor waits)."""
    read = Store.read
    monkeypatch.setattr(Store, "read", lambda self, wait_s=0.2: read(self, wait_s))


@contextmanager
def _lock_held(db: Path):
    """Another process holds the database's write lock (a long ingest or training write)."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1]); con.execute('BEGIN'); "
        "print('locked', flush=True); sys.stdin.read(); con.execute('COMMIT')"), str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def _app(monkeypatch, db: Path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("GENRELENS_DB", str(db))
    monkeypatch.delenv("GENRELENS_DBS", raising=False)
    return AppTest.from_file(str(APP), default_timeout=90)


def _busy_shown(at, db: Path) -> None:
    """Our sentence, a way to retry, and nothing of the server: no traceback, no path."""
    assert not at.exception, [e.value for e in at.exception]
    shown = [e.value for e in (*at.warning, *at.error, *at.info)]
    assert any("busy" in text for text in shown), shown
    assert not any(str(db.parent) in text or "Could not set lock" in text for text in shown), shown
    assert at.button(key="_busy_retry").label == "Try again"


@pytest.mark.trust("errors", "crash")
def test_a_page_says_the_database_is_busy_when_the_lock_is_taken(world, tmp_path, monkeypatch, short_lock_wait):
    """The server knows the database is good (a visitor opened it); then a writer takes the lock,
    and a new visitor's page queries what no cache holds yet. (A fresh AppTest: AppTest runs
    later pages without app.py around them, the server always through app.py.)"""
    import streamlit as st

    from genre_core.app import queries as q

    db = writable_copy(world["store"].path, tmp_path)
    first = _app(monkeypatch, db).run()  # opened while nobody writes
    assert not first.exception and first.title[0].value.startswith("GenreLens")
    st.cache_data.clear()
    with _lock_held(db):
        assert q.database_state(db)[0] == "ok"  # known to be a good database: the lock strikes mid-page
        at = _app(monkeypatch, db).run()
    _busy_shown(at, db)
    at = at.button(key="_busy_retry").click().run()  # the writer is done: the page works again
    assert not at.exception and at.title[0].value.startswith("GenreLens") and not at.warning


@pytest.mark.trust("errors", "wrong")
def test_the_app_opened_while_the_database_is_locked_says_busy(world, tmp_path, monkeypatch, short_lock_wait):
    """Not "this database cannot be opened here", which sends the visitor elsewhere."""
    db = writable_copy(world["store"].path, tmp_path)
    with _lock_held(db):
        at = _app(monkeypatch, db).run()
    _busy_shown(at, db)


@pytest.mark.trust("errors", "wrong")
def test_an_import_interrupted_while_storing_is_failed_not_interrupted(app_db, writable_app_db, monkeypatch):
    """A Ctrl-C while an imported run's results are written: nothing can resume it, so the
    run is marked failed (as docs/cli.md says), not left 'running' to read as interrupted."""
    from genre_core.runs.record import store_prediction_run
    from genre_core.store import Store, open_store

    store = open_store(writable_app_db)
    before = set(store.runs().run_id)

    def interrupted(self, run_id, tables):
        raise KeyboardInterrupt

    monkeypatch.setattr(Store, "finish_run", interrupted)
    predictions = pd.DataFrame({"track_id": ["a"], "split": ["test"], "label": ["rock"],
                                "probs": [np.array([1.0, 0.0])]})
    with pytest.raises(KeyboardInterrupt):
        store_prediction_run(store, app_db["ten_id"], "imported", representation="imported", split="imported",
                             classes=["rock", "pop"], predictions=predictions, config={})
    runs = store.runs()
    new = runs[~runs.run_id.isin(before)]
    assert new.status.tolist() == ["failed"]
