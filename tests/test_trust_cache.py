"""Trust suite (issue 23), family "cache": a rotten cache is never served, and "train": a run
is never stored as complete on a non-finite loss nor resumed from a checkpoint that is gone.

- a damaged `index.sqlite` is set aside with one warning line and rebuilt, never crashed on;
- an entry whose bytes are not the ones written (NaN, zeros over a shard, a damaged table or
  embedding) is dropped and made again from the audio;
- audio replaced or deleted after caching is refused per track, named in one line, and the
  other tracks go on;
- a NaN loss fails the run with one line and keeps the last sound checkpoint;
- `--resume` of a run whose checkpoint was removed exits 2 with one line.
"""

from __future__ import annotations

import gc
import logging
import os
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from genre_core import audio, paths
from genre_core.features.cache import INDEX_FILE, ShardCache, read_samples
from genre_core.features.windows import build_windows
from genre_core.store import open_store
from genre_core.train.config import TrainConfig
from genre_core.train.fit import fit, prepare
from genre_core.train.loop import Interrupted, Trainer
from tests.helpers import SR, band_clip, make_toy_corpus, write

@pytest.fixture(autouse=True)
def _cli_logging_restored():
    """`main` points the genrelens logger at this test's captured stderr: put it back after."""
    log = logging.getLogger("genrelens")
    handlers, level, propagate = log.handlers[:], log.level, log.propagate
    yield
    log.handlers[:] = handlers
    log.setLevel(level)
    log.propagate = propagate


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A fresh 18-track corpus, its database and its own cache (tests here damage all three)."""
    from genre_core.datasets.ingest import ingest

    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cache"))
    corpus = make_toy_corpus(tmp_path / "corpus", per_genre=6, seconds=4.0)
    store = open_store(tmp_path / "db" / "toy.duckdb")
    ingest(store, "folder", corpus, name="toy", progress=False)
    return store


def _cache(store) -> ShardCache:
    return ShardCache(paths.cache_dir(store.path))


def _train(store, *extra: str) -> int:
    from training.cli import main

    return main(["train", "--dataset", "toy", "--model", "cnn_small", "--tiny", "--epochs", "1",
                 "--device", "cpu", "--db", str(store.path), *extra])


def _latest_run(store) -> dict:
    return store.run(store.runs().run_id.iloc[-1])


def _error_lines(capsys) -> list[str]:
    """stderr lines that are not progress: warnings and errors."""
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith(("warning:", "error:"))]


def _damage_index(root, how: str) -> None:
    """Damage a closed index file, as a crash of the disk or a stray write would."""
    gc.collect()  # earlier ShardCaches of this process close their connections (as between runs)
    index = root / INDEX_FILE
    for extra in (index.with_name(INDEX_FILE + "-wal"), index.with_name(INDEX_FILE + "-shm")):
        extra.unlink(missing_ok=True)
    if how == "garbage":
        index.write_bytes(b"this is no database " * 500)
    else:  # truncated: a sound header over missing pages
        os.truncate(index, index.stat().st_size // 2)


def _overwrite_entry(loc, value: float) -> None:
    """Overwrite a cached waveform's bytes in its shard, as a failing disk or a stray write would."""
    with open(loc.shard, "r+b") as f:
        f.seek(loc.offset)
        f.write(np.full(loc.n, value, dtype=loc.dtype).tobytes())


def _tracks(store) -> pd.DataFrame:
    return store.tracks("toy")


# -- a damaged index -----------------------------------------------------------------------------

@pytest.mark.trust("cache", "crash")
def test_the_cache_command_sets_a_garbage_index_aside_with_one_line(toy, capsys):
    from training.cli import main

    cache = _cache(toy)
    for track in _tracks(toy).head(3).itertuples():
        cache.load(track.path, track.sha1, 22050)
    cache.close()
    root = cache.root
    _damage_index(root, "garbage")
    assert main(["cache", "--db", str(toy.path)]) == 0
    lines = _error_lines(capsys)
    assert len(lines) == 1 and f"{root / INDEX_FILE}" in lines[0] and "damaged" in lines[0], lines
    assert list(root.glob(f"{INDEX_FILE}.damaged-*")), "the damaged index was set aside, not deleted"
    assert main(["cache", "--db", str(toy.path)]) == 0  # the fresh index holds: no second warning
    assert _error_lines(capsys) == []


@pytest.mark.trust("cache", "crash")
def test_training_goes_on_over_a_garbage_index_and_rebuilds_it(toy, capsys):
    assert _train(toy) == 0
    root = _cache(toy).root
    _damage_index(root, "garbage")
    capsys.readouterr()
    assert _train(toy) == 0
    lines = _error_lines(capsys)
    assert len(lines) == 1 and f"{root / INDEX_FILE}" in lines[0], lines
    assert _latest_run(toy)["status"] == "complete"
    assert ShardCache(root).stats().tracks == len(_tracks(toy))  # re-decoded into a fresh index


@pytest.mark.trust("cache", "crash")
def test_a_truncated_index_is_rebuilt_and_serves_the_audio_again(toy, tmp_path):
    cache = _cache(toy)
    for i in range(400):  # enough rows for the index to span many pages
        cache.put(f"{i:040x}", 22050, np.zeros(10, dtype=np.float32))
    track = _tracks(toy).iloc[0]
    cache.load(track.path, track.sha1, 22050)
    cache.close()
    _damage_index(cache.root, "truncated")
    served = ShardCache(cache.root).load(track.path, track.sha1, 22050)
    assert np.array_equal(served, audio.load(track.path, sr=22050))


# -- entries whose bytes are not the ones written ------------------------------------------------

@pytest.mark.trust("cache", "wrong")
@pytest.mark.parametrize("value", [np.nan, 0.0], ids=["nan", "zeros"])
def test_a_damaged_waveform_is_decoded_again_not_served(toy, value):
    track = _tracks(toy).iloc[0]
    cache = _cache(toy)
    cache.load(track.path, track.sha1, 22050)
    _overwrite_entry(cache.cached(track.sha1, 22050), value)
    served = ShardCache(cache.root).load(track.path, track.sha1, 22050)  # another process, in effect
    assert np.array_equal(served, audio.load(track.path, sr=22050))


@pytest.mark.trust("cache", "wrong")
def test_training_over_shards_overwritten_with_nan_trains_on_the_audio(toy):
    assert _train(toy) == 0
    for shard in (_cache(toy).root / "shards").glob("*.bin"):
        shard.write_bytes(np.full(shard.stat().st_size // 4, np.nan, dtype="<f4").tobytes())
    assert _train(toy) == 0
    run = _latest_run(toy)
    epochs = toy.query("SELECT train_loss, val_loss FROM epochs WHERE run_id = ?", [run["run_id"]])
    assert run["status"] == "complete" and np.isfinite(epochs.to_numpy()).all()


@pytest.mark.trust("cache", "wrong")
def test_a_damaged_feature_table_is_computed_again(toy):
    from genre_core.features.windows import handcrafted_windows

    tracks = _tracks(toy).head(6)
    cache = _cache(toy)
    windows = build_windows(tracks, ["high", "low", "mid"], cache, sr=22050, window_s=1.0, hop_s=1.0,
                            progress=False)
    first = handcrafted_windows(windows, list(tracks.sha1), cache, progress=False)
    shard = next((cache.root / "shards").glob("*.bin"))
    row = sqlite3.connect(cache.root / INDEX_FILE).execute(
        "SELECT shard, offset, nbytes FROM entries WHERE key LIKE 'table/%' ORDER BY key LIMIT 1").fetchone()
    with open(shard.with_name(row[0]), "r+b") as f:  # the table's numbers, after its .npy header
        f.seek(row[1] + row[2] - 64)
        f.write(np.full(8, np.nan).tobytes())
    again = handcrafted_windows(windows, list(tracks.sha1), ShardCache(cache.root), progress=False)
    assert np.isfinite(again).all()
    np.testing.assert_allclose(again, first)


class _Frontend(nn.Module):
    def forward(self, y: torch.Tensor) -> torch.Tensor:  # (B, L) -> (B, 1, 1, L)
        return y[:, None, None, :]


class _Backbone(nn.Module):
    """The frozen-backbone protocol, counting the windows it embeds."""

    backbone_id = "fake"

    def __init__(self):
        super().__init__()
        self.windows = 0

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, 1, L) -> (B, 4)
        self.windows += x.shape[0]
        return torch.stack([x.mean((1, 2, 3)), x.std((1, 2, 3)), x.amax((1, 2, 3)), x.amin((1, 2, 3))], 1)


@pytest.mark.trust("cache", "wrong")
def test_a_damaged_embedding_table_is_extracted_again(toy):
    from genre_core.features.embedding_cache import embed_windows

    tracks = _tracks(toy).head(4)
    cache = _cache(toy)
    windows = build_windows(tracks, ["high", "low", "mid"], cache, sr=22050, window_s=1.0, hop_s=1.0,
                            progress=False)
    model = _Backbone()

    def embed(into: ShardCache) -> np.ndarray:
        return embed_windows(model, _Frontend(), windows, shas=list(tracks.sha1), cache=into,
                             device=torch.device("cpu"), batch_size=8, progress=False).vectors

    first = embed(cache)
    row = sqlite3.connect(cache.root / INDEX_FILE).execute(
        "SELECT shard, offset, nbytes FROM entries WHERE key LIKE 'table/embedding-%' LIMIT 1").fetchone()
    with open(cache.root / "shards" / row[0], "r+b") as f:
        f.seek(row[1] + row[2] - 32)
        f.write(np.full(8, np.nan, dtype=np.float32).tobytes())
    embedded = model.windows
    again = embed(ShardCache(cache.root))
    assert np.isfinite(again).all() and np.allclose(again, first)
    assert model.windows > embedded  # the damaged track was embedded again


# -- audio changed or gone since it was cached ---------------------------------------------------

@pytest.mark.trust("cache", "wrong")
@pytest.mark.parametrize("change", ["replaced", "deleted"])
def test_audio_changed_after_caching_is_refused_naming_the_file(toy, change):
    track = _tracks(toy).iloc[0]
    _cache(toy).load(track.path, track.sha1, 22050)
    if change == "replaced":
        write(Path(track.path), band_clip("low", 999, 4.0))  # same length, other music
    else:
        os.unlink(track.path)
    with pytest.raises(audio.AudioError) as caught:
        ShardCache(paths.cache_dir(toy.path)).load(track.path, track.sha1, 22050)
    message = str(caught.value)
    assert track.path in message and "re-run ingest" in message and len(message.splitlines()) == 1
    assert ("changed since ingest" if change == "replaced" else "missing") in message


@pytest.mark.trust("cache", "wrong")
def test_training_leaves_out_changed_and_deleted_tracks_with_one_line_each(toy, capsys):
    assert _train(toy) == 0
    test_ids = list(prepare(toy, TrainConfig.tiny_preset("toy", "cnn_small")).tracks["test"].track_id)
    tracks = _tracks(toy).set_index("track_id")
    replaced, deleted = (tracks.loc[t, "path"] for t in test_ids[:2])
    write(Path(replaced), band_clip("low", 999, 4.0))
    os.unlink(deleted)
    capsys.readouterr()
    assert _train(toy) == 0
    lines = _error_lines(capsys)
    assert len(lines) == 2, lines
    assert any(replaced in line and "audio changed since ingest: re-run ingest" in line for line in lines), lines
    assert any(deleted in line and "re-run ingest" in line for line in lines), lines
    run = _latest_run(toy)
    predicted = set(toy.predictions(run["run_id"], "test").track_id)
    assert run["status"] == "complete" and predicted == set(test_ids[2:])


def test_a_touched_but_unchanged_file_is_still_served_from_the_cache(toy, monkeypatch):
    """Guard (passes on base too): the change check must not refuse a file whose bytes are the
    same (a copy, a touch), nor decode it again."""
    track = _tracks(toy).iloc[0]
    first = _cache(toy).load(track.path, track.sha1, 22050)
    os.utime(track.path, ns=(1, 1))
    monkeypatch.setattr(audio, "load", lambda *a, **k: pytest.fail("decoded again"))
    assert np.array_equal(ShardCache(paths.cache_dir(toy.path)).load(track.path, track.sha1, 22050), first)


def test_an_index_from_before_checksums_is_upgraded_and_still_served(tmp_path):
    """Guard (passes on base too): caches written by the previous version keep serving."""
    y = band_clip("mid", 1, 1.0)
    path = write(tmp_path / "a.wav", y)
    sha1 = audio.file_sha1(path)
    loc = ShardCache(tmp_path / "new").put(sha1, SR, y)
    old = tmp_path / "old"
    (old / "shards").mkdir(parents=True)
    os.link(loc.shard, old / "shards" / os.path.basename(loc.shard))
    con = sqlite3.connect(old / INDEX_FILE)
    con.executescript("""CREATE TABLE entries (key TEXT PRIMARY KEY, sha1 TEXT, sr INTEGER, dtype TEXT NOT NULL,
        shard TEXT NOT NULL, offset INTEGER NOT NULL, nbytes INTEGER NOT NULL, created REAL NOT NULL);""")
    con.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                [f"audio/{SR}/{sha1}", sha1, SR, loc.dtype, os.path.basename(loc.shard), loc.offset,
                 loc.n * 4])
    con.commit()
    con.close()
    assert np.array_equal(read_samples(ShardCache(old).locate(path, sha1, SR)), read_samples(loc))


# -- training: a non-finite loss, a checkpoint that is gone ---------------------------------------

def _nan_loss_from(epoch: int, monkeypatch) -> None:
    """From the `epoch`-th epoch on (1-based), every batch's loss is NaN (a diverged model)."""
    real = Trainer._loss

    def loss(self, logits, target):
        value = real(self, logits, target)
        return value * float("nan") if self.state.epoch + 1 >= epoch else value

    monkeypatch.setattr(Trainer, "_loss", loss)


@pytest.mark.trust("train", "wrong")
def test_a_nan_loss_fails_the_run_with_one_line(toy, monkeypatch, capsys):
    _nan_loss_from(1, monkeypatch)
    assert _train(toy) == 2
    lines = _error_lines(capsys)
    assert len(lines) == 1 and "training loss became NaN at epoch 1" in lines[0], lines
    run = _latest_run(toy)
    assert run["status"] == "failed"
    assert run["error"].startswith("training loss became NaN at epoch 1") and "\n" not in run["error"]
    assert toy.query("SELECT count(*) AS n FROM predictions WHERE run_id = ?", [run["run_id"]]).n[0] == 0


@pytest.mark.trust("train", "lost")
def test_a_nan_loss_later_keeps_the_last_sound_checkpoint(toy, monkeypatch):
    _nan_loss_from(2, monkeypatch)
    assert _train(toy, "--epochs", "3") == 2
    run = _latest_run(toy)
    assert run["status"] == "failed" and "at epoch 2" in run["error"]
    checkpoint = torch.load(paths.run_dir(toy.path, run["run_id"]) / paths.CHECKPOINT_FILE, weights_only=True)
    assert checkpoint["state"]["epoch"] == 1
    assert all(torch.isfinite(w).all() for w in checkpoint["model"].values() if w.is_floating_point())


@pytest.mark.trust("train", "wrong")
def test_resume_without_its_checkpoint_exits_2_naming_where_it_was_expected(toy, capsys):
    from training.cli import main

    with pytest.raises(Interrupted):
        fit(toy, TrainConfig.tiny_preset("toy", "cnn_small", epochs=2), run_id="gone", progress=False,
            stop_after_epoch=1)
    checkpoint = paths.run_dir(toy.path, "gone") / paths.CHECKPOINT_FILE
    checkpoint.unlink()
    capsys.readouterr()
    assert main(["train", "--resume", "gone", "--db", str(toy.path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(checkpoint) in err[0] and "missing" in err[0] and "new run" in err[0], err
    assert toy.run("gone")["status"] == "interrupted"  # untouched: not restarted, not complete
    assert toy.query("SELECT count(*) AS n FROM epochs WHERE run_id = 'gone'").n[0] == 0


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_epoch_1_and_says_so(toy, monkeypatch, capsys):
    """Guard: the one resume without a checkpoint that is legitimate still works, and says
    where it starts instead of "resumed"."""
    from training.cli import main

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        fit(toy, TrainConfig.tiny_preset("toy", "cnn_small", epochs=1), run_id="early", progress=False)
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["train", "--resume", "early", "--db", str(toy.path)]) == 0
    assert "run early: resumed from epoch 1" in capsys.readouterr().err
    assert toy.run("early")["status"] == "complete"


@pytest.mark.trust("cache", "wrong")
def test_faults_go_on_over_audio_changed_after_caching(toy, capsys):
    """The faults pass after a file was replaced: that track is named and left out of the label
    check (the scan already records it), every other finding is still made; no exit 2."""
    from training.cli import main

    def faults() -> int:
        return main(["faults", "--dataset", "toy", "--db", str(toy.path), "--workers", "1"])

    assert faults() == 0
    replaced = _tracks(toy).iloc[0]
    write(Path(replaced.path), band_clip("low", 999, 4.0))
    capsys.readouterr()
    assert faults() == 0
    lines = _error_lines(capsys)
    assert any(replaced.path in line and "re-run ingest" in line for line in lines), lines
