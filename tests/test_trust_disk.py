"""Trust suite (issue 23), family "disk": every write path on a full disk.

Wanted everywhere: the command exits 2 with one line naming what could not be written and why
("error: cannot write /x/y.parquet: No space left on device"), no temporary file is left, and
nothing is half-stored (no dataset without its tracks, no export folder that claims to be
complete, no run left 'running' to read as 'interrupted').

The disks are real: a small tmpfs mounted for the test and filled with a filler file (root
only; the cases skip where mounting is not permitted).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genre_core.features.cache import ShardCache
from genre_core.store import open_store
from tests.helpers import make_toy_corpus, prob_table, tone, write, writable_copy
from training import cli

FULL = os.strerror(errno.ENOSPC)  # "No space left on device"


class Disk:
    """A mounted tmpfs whose free space a test takes with `fill`."""

    def __init__(self, root: Path):
        self.root = root
        self.filler = root / ".filler"

    def fill(self, leave: int = 0) -> None:
        """Take every free byte but `leave` (tmpfs counts whole 4-KiB pages)."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for chunk in (1 << 16, 1 << 12):  # big steps, then to the last page
                try:
                    while True:
                        os.write(fd, bytes(chunk))
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
            if leave:
                os.ftruncate(fd, os.fstat(fd).st_size - leave)
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def files(self) -> list[str]:
        """Every file and folder on the disk but the filler, relative to its root."""
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p != self.filler)


@pytest.fixture
def tmpfs():
    """mount(folder, size) -> Disk: a tmpfs on `folder` for this test (skipped without root)."""
    mounted = []

    def mount(folder: Path, size: str = "1m") -> Disk:
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a tmpfs needs root")
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return Disk(folder)

    yield mount
    for folder in reversed(mounted):  # lazily: a cache of this process may still hold a descriptor
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """run_cli(*argv) -> (exit status, stderr lines, stdout) of `python -m training ...`."""
    monkeypatch.setenv("TQDM_DISABLE", "1")  # progress bars stay out of stderr (restored after)

    def run(*argv) -> tuple[int, list[str], str]:
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, err.strip().splitlines(), out

    return run


@pytest.fixture(scope="module")
def analysed(app_db, tmp_path_factory) -> tuple[Path, str]:
    """(database, run id): a copy of the app fixture database whose toy run has embeddings."""
    store = open_store(writable_copy(app_db["db"], tmp_path_factory.mktemp("disk")), create=False)
    run_id = app_db["toy_run"]
    ids = store.predictions(run_id)["track_id"].unique()
    vectors = np.random.default_rng(0).normal(size=(len(ids), 16)).astype(np.float32)
    store.replace_run_rows(run_id, {"embeddings": pd.DataFrame(
        {"track_id": ids, "kind": "penultimate", "vector": [v.tolist() for v in vectors]})})
    return store.path, run_id


def runs_added(db: Path, before: set[str]) -> pd.DataFrame:
    """The runs of `db` not among `before`: the session's toy database holds other tests' runs."""
    runs = open_store(db).runs()
    return runs[~runs.run_id.isin(before)]


def cannot_write(path: Path) -> str:
    return f"error: cannot write {path}: {FULL}"


# -- the database ---------------------------------------------------------------------------------

@pytest.mark.trust("disk", "wrong")
def test_an_ingest_that_cannot_store_its_tracks_leaves_no_empty_dataset(tmp_path, tmpfs, run_cli):
    corpus = tmp_path / "corpus"
    for i in range(300):  # enough rows that their batch cannot fit where a dataset row still does
        write(corpus / "abc"[i % 3] / f"t{i:03d}.wav", tone(1.0, 200 + i, sr=8000), sr=8000)
    disk = tmpfs(tmp_path / "disk", "2m")
    db = disk.root / "g.duckdb"
    open_store(db)
    disk.fill(leave=16 << 10)
    code, err, _ = run_cli("ingest", "--dataset", "folder", "--root", corpus, "--name", "toy", "--db", db,
                           "--workers", "2")
    assert (code, err[-1:]) == (2, [cannot_write(db)])
    disk.free()
    assert not open_store(db).has_dataset("toy")  # nothing half-stored: no dataset without tracks


@pytest.mark.trust("disk", "lost")
def test_a_database_that_cannot_be_created_leaves_no_broken_file(tmp_path, tmpfs, run_cli):
    corpus = make_toy_corpus(tmp_path / "corpus", per_genre=1, seconds=2.0)
    disk = tmpfs(tmp_path / "disk")
    db = disk.root / "new.duckdb"
    disk.fill()
    code, err, _ = run_cli("ingest", "--dataset", "folder", "--root", corpus, "--db", db)
    assert (code, err[-1:]) == (2, [cannot_write(db)])
    disk.free()  # space again: the same command works (no half-made file "not a GenreLens database")
    code, err, out = run_cli("ingest", "--dataset", "folder", "--root", corpus, "--db", db)
    assert code == 0, err
    assert out.startswith("ingested 3 tracks")


@pytest.mark.trust("disk", "crash")
def test_import_predictions_on_a_full_disk_says_so_and_leaves_no_running_run(toy_store, tmp_path, tmpfs,
                                                                             run_cli):
    tracks = toy_store.tracks("toy")
    classes = sorted(tracks.label.unique())
    probs = np.random.default_rng(0).dirichlet(np.ones(len(classes)), size=len(tracks))
    table = tmp_path / "preds.csv"
    prob_table(pd.DataFrame({"track_id": tracks.track_id, "probs": list(probs)}), classes).to_csv(table, index=False)
    # room for the database as the session left it (other tests' runs grow it), then filled
    disk = tmpfs(tmp_path / "disk", f"{toy_store.path.stat().st_size // 2**20 + 8}m")
    db = writable_copy(toy_store.path, disk.root)
    before = set(open_store(db).runs().run_id)
    disk.fill()
    code, err, _ = run_cli("import-predictions", "--dataset", "toy", "--file", table, "--model", "outside",
                           "--db", db)
    assert (code, err[-1:]) == (2, [cannot_write(db)])
    disk.free()
    assert not {"running", "interrupted"} & set(runs_added(db, before).status)


# -- a run's files --------------------------------------------------------------------------------

@pytest.mark.trust("disk", "crash")
def test_a_checkpoint_that_cannot_be_written_fails_the_run_in_one_line(toy_store, tmp_path, tmpfs, run_cli,
                                                                       monkeypatch):
    db = writable_copy(toy_store.path, tmp_path)
    before = set(open_store(db).runs().run_id)
    monkeypatch.setenv("GENRELENS_CACHE_DIR", str(toy_store.path.parent / "cache"))  # decoded once per session
    runs = tmpfs(tmp_path / "runs")  # where the run's checkpoint goes; the database has room
    runs.fill()
    code, err, _ = run_cli("train", "--dataset", "toy", "--model", "cnn_small", "--tiny", "--epochs", "1",
                           "--db", db)
    [run] = runs_added(db, before).to_dict("records")
    assert (code, err[-1:]) == (2, [cannot_write(runs.root / run["run_id"] / "checkpoint.pt")])
    assert run["status"] == "failed"
    assert runs.files() == [run["run_id"]]  # the run's folder, empty: no temp file, no half checkpoint


# -- the cache ------------------------------------------------------------------------------------

@pytest.mark.trust("disk", "lost")
def test_a_cache_write_on_a_full_disk_names_the_shard_and_keeps_no_tail(tmp_path, tmpfs):
    disk = tmpfs(tmp_path / "cache")
    cache = ShardCache(disk.root)
    first = np.linspace(-1, 1, 22050, dtype=np.float32)
    cache.put("a" * 40, 22050, first)
    disk.fill()
    with pytest.raises(OSError) as failed:
        cache.put("b" * 40, 22050, np.ones(100_000, dtype=np.float32))
    [shard] = (disk.root / "shards").glob("*.bin")
    assert str(failed.value) == f"cannot write {shard}: {FULL}"
    assert shard.stat().st_size == first.nbytes  # the failed bytes were cut off: the disk got them back
    assert cache.cached("b" * 40, 22050) is None and cache.cached("a" * 40, 22050) is not None
    assert not [name for name in disk.files() if name.startswith("shards/.")]  # no half-made shard


@pytest.mark.trust("disk", "wrong")
def test_extract_on_a_full_disk_says_why_tracks_failed(toy_store, tmp_path, tmpfs, run_cli, monkeypatch):
    disk = tmpfs(tmp_path / "cache")  # room for two or three of the 24 decoded tracks
    monkeypatch.setenv("GENRELENS_CACHE_DIR", str(disk.root))
    code, err, out = run_cli("extract", "--dataset", "toy", "--db", toy_store.path, "--workers", "1")
    assert code == 0, err
    failed = re.search(r", (\d+) failed: (.*)$", out.strip())
    assert failed, out
    assert failed.group(2) == f"{FULL} ({failed.group(1)})"
    assert ShardCache(disk.root).stats().bytes_garbage == 0  # failed appends left no unindexed bytes


@pytest.mark.trust("disk", "crash")
def test_faults_with_no_room_for_the_fingerprint_index_say_where(toy_store, tmp_path, tmpfs, run_cli,
                                                                 monkeypatch):
    db = writable_copy(toy_store.path, tmp_path)
    cache = tmp_path / "cache"
    monkeypatch.setenv("GENRELENS_CACHE_DIR", str(cache))
    fingerprints = tmpfs(cache / "fingerprints")  # the scratch landmark index lives here
    fingerprints.fill()
    code, err, _ = run_cli("faults", "--dataset", "toy", "--db", db, "--workers", "1")
    assert (code, err[-1:]) == (2, [cannot_write(fingerprints.root)])
    assert fingerprints.files() == []  # the scratch index was removed


# -- exports and reports --------------------------------------------------------------------------

@pytest.mark.trust("disk", "lost")
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_an_export_that_cannot_finish_is_not_marked_complete(analysed, tmp_path, tmpfs, run_cli, fmt):
    db, run_id = analysed
    disk = tmpfs(tmp_path / "out")
    earlier = {"parquet": "csv", "csv": "parquet"}[fmt]  # then the same folder, the other format
    assert run_cli("export", "--run", run_id, "--out", disk.root, "--format", earlier, "--db", db)[0] == 0
    disk.fill()
    code, err, _ = run_cli("export", "--run", run_id, "--out", disk.root, "--format", fmt, "--db", db)
    assert code == 2
    assert re.fullmatch(rf"error: cannot write {re.escape(str(disk.root))}/\w+\.{fmt}: {FULL}", err[-1]), err
    assert "manifest.json" not in disk.files()  # the earlier manifest no longer vouches for the folder
    assert not [name for name in disk.files() if name.startswith(".")]  # no temp file


@pytest.mark.trust("disk", "crash")
def test_projector_files_on_a_full_disk_leave_nothing_half_written(analysed, tmp_path, tmpfs, run_cli):
    db, run_id = analysed
    disk = tmpfs(tmp_path / "out")
    disk.fill()
    code, err, _ = run_cli("export", "--run", run_id, "--out", disk.root, "--format", "tensorboard", "--db", db)
    assert (code, err[-1:]) == (2, [cannot_write(disk.root / "vectors.tsv")])
    assert disk.files() == []  # no empty vectors.tsv for the projector to read, no temp file


@pytest.mark.trust("disk", "crash")
def test_a_report_on_a_full_disk_says_so_and_leaves_no_temp_file(analysed, tmp_path, tmpfs, run_cli):
    db, run_id = analysed
    disk = tmpfs(tmp_path / "out")
    disk.fill()
    out = disk.root / "report.html"
    code, err, _ = run_cli("report", "--run", run_id, "--out", out, "--db", db)
    assert (code, err[-1:]) == (2, [cannot_write(out)])
    assert disk.files() == []


# -- the last net ---------------------------------------------------------------------------------

@pytest.mark.trust("disk", "crash")
def test_a_write_error_no_stage_put_in_words_is_still_one_line(tmp_path, run_cli, monkeypatch):
    """A full disk met where no stage names it (a new write path) still ends in one line;
    any other OSError is a bug and keeps its traceback."""
    target = tmp_path / "somewhere.csv"

    def fails(number):
        def command(args):
            raise OSError(number, os.strerror(number), str(target))
        return command

    monkeypatch.setattr(cli, "cmd_datasets", fails(errno.ENOSPC))
    code, err, _ = run_cli("datasets", "--db", tmp_path / "x.duckdb")
    assert (code, err) == (2, [f"error: {target}: {FULL}"])
    monkeypatch.setattr(cli, "cmd_datasets", fails(errno.EBADF))
    with pytest.raises(OSError):
        run_cli("datasets", "--db", tmp_path / "x.duckdb")
