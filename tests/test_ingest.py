"""Ingest at scale: batched commits that survive kill -9 and resume, worker processes, header
sanity checks, FMA subsets."""

import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genre_core import audio
from genre_core.datasets import DatasetError
from genre_core.datasets.ingest import IngestOptions, ingest
from genre_core.store import open_store
from tests.helpers import SR, make_fma_corpus, tone, write

REPO = Path(__file__).resolve().parents[1]
COMPARED = ["track_id", "path", "label", "artist", "title", "duration_s", "sample_rate",
            "channels", "status", "error", "error_kind", "sha1", "official_split"]


@pytest.fixture
def corpus(tmp_path):
    """12 short clips in two genres, one undecodable file, one silent clip."""
    root = tmp_path / "corpus"
    for g in ("jazz", "rock"):
        for i in range(6):
            write(root / g / f"{i:02d}.wav", tone(1.2, 200 + 60 * i))
    (root / "rock" / "broken.wav").write_bytes(b"RIFF\x00\x10\x00\x00WAVE" + bytes(range(200)))
    write(root / "jazz" / "silent.wav", np.zeros(SR * 2, np.float32))
    return root


def _table(store, name="c") -> pd.DataFrame:
    return store.tracks(name, usable_only=False)[COMPARED].reset_index(drop=True)


class _Calls:
    """Counts decodes, probes and hashes made in this process (workers=1 runs in-process)."""

    def __init__(self, monkeypatch):
        self.paths: list[str] = []
        for fn in ("probe", "file_sha1", "load"):
            real = getattr(audio, fn)
            monkeypatch.setattr(audio, fn, self._counting(real))

    def _counting(self, real):
        def wrapper(path, *args, **kwargs):
            self.paths.append(f"{Path(path).parent.name}/{Path(path).name}")
            return real(path, *args, **kwargs)
        return wrapper


_KILLER = textwrap.dedent("""
    import multiprocessing, os, signal, sys
    from pathlib import Path
    from genre_core.store import Store, open_store
    from genre_core.datasets.ingest import IngestOptions, ingest

    def die():
        Path(sys.argv[5]).write_text(" ".join(str(p.pid) for p in multiprocessing.active_children()))
        os.kill(os.getpid(), signal.SIGKILL)

    def save_then_die(self, dataset_id, rows):
        if when == "inside" and getattr(Store, "_done", 0) == 1:  # second batch's transaction open
            with self.write() as con:
                con.execute("DELETE FROM tracks")
                die()
        real(self, dataset_id, rows)
        Store._done = getattr(Store, "_done", 0) + 1
        if when == "after" and Store._done == 2:
            die()

    if __name__ == "__main__":
        db, root, when, workers = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
        real, Store.save_tracks = Store.save_tracks, save_then_die
        ingest(open_store(db), "folder", root, name="c", progress=False,
               options=IngestOptions(workers=workers, batch_size=4, chunk_size=2))
""")


def _gone(pids: list[int], within_s: float = 20.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() for pid in pids):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("when, workers", [("after", 1), ("inside", 1), ("after", 2)])
def test_a_killed_ingest_resumes_without_redoing_finished_files(tmp_path, corpus, monkeypatch, when, workers):
    db, script, pids = tmp_path / "k.duckdb", tmp_path / "killer.py", tmp_path / "pids"
    script.write_text(_KILLER)
    with open(tmp_path / "log", "w") as log:  # not a pipe: a lingering worker would hold it open
        result = subprocess.run([sys.executable, str(script), str(db), str(corpus), when, str(workers),
                                 str(pids)], cwd=REPO, stdout=log, stderr=log, timeout=300,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == -signal.SIGKILL, (tmp_path / "log").read_text()
    workers_left = [int(p) for p in pids.read_text().split()]
    assert len(workers_left) == (workers if workers > 1 else 0)
    assert _gone(workers_left), "worker processes outlived their killed driver"
    store = open_store(db)
    committed = set(store.tracks("c", usable_only=False).track_id)
    assert len(committed) == 8 if when == "after" else len(committed) == 4  # whole batches only

    calls = _Calls(monkeypatch)
    summary = ingest(store, "folder", corpus, name="c", progress=False,
                     options=IngestOptions(workers=1, batch_size=4))
    redone = {p.rsplit(".", 1)[0] for p in calls.paths}  # "genre/name" = the track id
    assert redone and not redone & committed
    assert (summary.n_unchanged, summary.n_tracks) == (len(committed), 14)
    assert summary.n_new + summary.n_failed == 14 - len(committed)

    clean = open_store(tmp_path / "clean.duckdb")
    ingest(clean, "folder", corpus, name="c", progress=False)
    pd.testing.assert_frame_equal(_table(store), _table(clean))


def test_rerun_skips_unchanged_files_and_rechecks_changed_ones(tmp_path, corpus, monkeypatch):
    store = open_store(tmp_path / "r.duckdb")
    first = ingest(store, "folder", corpus, name="c", progress=False)
    assert (first.n_new, first.n_failed, first.n_unreadable) == (12, 2, 2)
    assert "12 new, 0 unchanged, 0 updated, 2 failed, 0 missing" in first.line(store.path)

    write(corpus / "jazz" / "00.wav", tone(1.5, 900))  # new content
    os.utime(corpus / "rock" / "01.wav", ns=(1, 1))  # touched only: same bytes
    (corpus / "rock" / "05.wav").unlink()
    calls = _Calls(monkeypatch)
    second = ingest(store, "folder", corpus, name="c", progress=False)
    assert sorted(set(calls.paths)) == ["jazz/00.wav", "rock/01.wav"]
    assert calls.paths.count("rock/01.wav") == 1  # hashed, found identical, not decoded
    assert (second.n_new, second.n_updated, second.n_unchanged, second.n_failed, second.n_missing) == \
        (0, 1, 12, 0, 1)
    assert second.n_unreadable == 2
    tracks = store.tracks("c", usable_only=False).set_index("track_id")
    assert tracks.loc["jazz/00", "duration_s"] == pytest.approx(1.5)
    assert tracks.loc["rock/05", "status"] == "missing"


def test_default_probe_keeps_the_outcomes_of_a_full_decode(tmp_path, corpus):
    quick, full = open_store(tmp_path / "q.duckdb"), open_store(tmp_path / "f.duckdb")
    ingest(quick, "folder", corpus, name="c", progress=False)
    ingest(full, "folder", corpus, name="c", progress=False, options=IngestOptions(validate=True))
    pd.testing.assert_frame_equal(_table(quick), _table(full))
    tracks = _table(quick).set_index("track_id")
    assert tracks.loc["rock/broken", "status"] == "unreadable"
    assert (tracks.loc["jazz/silent", "status"], tracks.loc["jazz/silent", "error_kind"]) == \
        ("unreadable", "silent")


def _wav_header_saying(path: Path, sample_rate: int, seconds: float = 2.0) -> Path:
    """A hand-made 16-bit mono PCM WAV whose fmt chunk says `sample_rate`."""
    samples = (tone(seconds) * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(samples)) + samples
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_a_header_saying_1_hz_is_rejected_and_the_rest_ingested(tmp_path, corpus):
    bad = _wav_header_saying(corpus / "rock" / "one_hz.wav", 1)
    with pytest.raises(audio.AudioError, match=r"one_hz.wav: header says sample rate 1 Hz"):
        audio.load(bad)
    store = open_store(tmp_path / "h.duckdb")
    summary = ingest(store, "folder", corpus, name="c", progress=False)
    tracks = _table(store).set_index("track_id")
    assert "sample rate 1 Hz" in tracks.loc["rock/one_hz", "error"]
    assert tracks.loc["rock/one_hz", "status"] == "unreadable"
    assert (tracks.status == "ok").sum() == 12 and summary.n_tracks == 15


def test_header_sanity_bounds_channels_and_duration(tmp_path):
    info = audio.AudioInfo(tmp_path / "x.wav", 44100, 9, 44100, "WAV", "PCM_16")
    with pytest.raises(audio.AudioError, match="9 channels"):
        audio.check_header(info)
    info = audio.AudioInfo(tmp_path / "x.wav", 44100, 2, 44100 * 3600 * 5, "WAV", "PCM_16")
    with pytest.raises(audio.AudioError, match="5.0 h of audio"):
        audio.check_header(info)
    assert audio.check_header(info, max_seconds=None) is info


def test_a_quiet_intro_is_not_silence(tmp_path):
    y = tone(10.0)
    y[: SR * 9] = 0  # every strided block but the last is digital silence
    assert audio.quick_check(write(tmp_path / "intro.wav", y)).duration_s == pytest.approx(10.0)


def test_workers_give_the_same_table_as_one_process(tmp_path, corpus):
    one, many = open_store(tmp_path / "1.duckdb"), open_store(tmp_path / "n.duckdb")
    ingest(one, "folder", corpus, name="c", progress=False, options=IngestOptions(workers=1))
    summary = ingest(many, "folder", corpus, name="c", progress=False,
                     options=IngestOptions(workers=2, chunk_size=2, batch_size=3))
    pd.testing.assert_frame_equal(_table(one), _table(many))
    assert summary.n_new == 12


def _fma(root: Path, subsets: tuple[str, ...]) -> Path:
    """The n-th of `subsets` holds the audio of the first n tracks."""
    columns = [("artist", "name"), ("set", "split"), ("track", "genre_top")]
    rows = {2: ["AWOL", "training", "Hip-Hop"], 5: ["AWOL", "test", "Pop"], 10: ["KV", "test", "Pop"]}
    return make_fma_corpus(root, columns, rows, {s: list(rows)[:n] for n, s in enumerate(subsets, start=1)})


def test_fma_subset_is_chosen_and_defaults_to_the_smallest_present(tmp_path):
    root = _fma(tmp_path, ("small", "medium"))
    store = open_store(tmp_path / "f.duckdb")
    assert ingest(store, "fma", root, progress=False).n_tracks == 1  # fma_small
    medium = ingest(store, "fma", root, name="m", progress=False, options=IngestOptions(subset="medium"))
    assert medium.n_tracks == 2
    assert set(store.tracks("m").path.map(lambda p: Path(p).parts[-3])) == {"fma_medium"}


def test_fma_subset_absent_names_the_ones_found(tmp_path):
    root = _fma(tmp_path, ("small", "medium"))
    store = open_store(tmp_path / "f.duckdb")
    with pytest.raises(DatasetError, match=r"fma_large/ not found \(found: fma_small, fma_medium\)"):
        ingest(store, "fma", root, progress=False, options=IngestOptions(subset="large"))
    with pytest.raises(DatasetError, match="fma only"):
        ingest(store, "folder", root, progress=False, options=IngestOptions(subset="small"))


def test_cli_flags_reach_ingest(tmp_path, corpus, capsys):
    from training.cli import main

    code = main(["ingest", "--dataset", "folder", "--root", str(corpus), "--db", str(tmp_path / "x.duckdb"),
                 "--workers", "1", "--validate", "--batch-size", "5"])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 0 and "tracks/s" in out and "12 new, 0 unchanged, 0 updated, 2 failed, 0 missing" in out


def test_tracks_go_to_workers_in_chunks(tmp_path, corpus, monkeypatch):
    seen = []
    real = audio.check_files
    monkeypatch.setattr(audio, "check_files", lambda items, *args: seen.append(len(items)) or real(items, *args))
    ingest(open_store(tmp_path / "b.duckdb"), "folder", corpus, name="c", progress=False,
           options=IngestOptions(workers=1, chunk_size=5))
    assert seen == [5, 5, 4]


def test_sampling_an_mp3_prints_no_decoder_noise(tmp_path, capfd):
    noise = (0.3 * np.random.default_rng(0).standard_normal(SR * 20)).astype(np.float32)
    path = write(tmp_path / "noise.mp3", noise)
    capfd.readouterr()
    info = audio.quick_check(path)  # seeks: libmpg123 would print a warning after each one
    assert info.duration_s == pytest.approx(20.0, abs=0.1)
    assert capfd.readouterr().err == ""


def test_validate_rechecks_files_only_sampled_before(tmp_path, corpus, monkeypatch):
    store = open_store(tmp_path / "v.duckdb")
    ingest(store, "folder", corpus, name="c", progress=False)
    calls = _Calls(monkeypatch)
    first = ingest(store, "folder", corpus, name="c", progress=False, options=IngestOptions(validate=True))
    assert (first.n_updated, first.n_failed, first.n_unchanged) == (12, 2, 0)
    assert calls.paths.count("jazz/00.wav") >= 2  # hashed and decoded whole
    again = ingest(store, "folder", corpus, name="c", progress=False, options=IngestOptions(validate=True))
    quick = ingest(store, "folder", corpus, name="c", progress=False)
    assert again.n_unchanged == quick.n_unchanged == 14
