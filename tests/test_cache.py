"""The shard cache: durable before visible, safe under kills and EMFILE, bounded descriptors."""

import errno
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from genre_core.features import cache as cache_mod
from genre_core.features.cache import MAX_OPEN_SHARDS, ShardCache, open_read_shards, read_samples
from genre_core.features.windows import build_windows
from tests.helpers import make_toy_corpus, tone, write

REPO = Path(__file__).resolve().parents[1]


def _signal(seed: int, n: int = 5000) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def _sha(i: int) -> str:
    return f"{i:040x}"


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_load_decodes_once_then_reads_the_shard(tmp_path, monkeypatch):
    from genre_core import audio

    path = write(tmp_path / "a.wav", tone(1.0))
    cache = ShardCache(tmp_path / "cache")
    first = cache.load(path, "ab" * 20, 22050)
    assert first.dtype == np.float32 and first.shape == (22050,)
    monkeypatch.setattr(audio, "load", lambda *a, **k: pytest.fail("decoded twice"))
    again = ShardCache(tmp_path / "cache").load(path, "ab" * 20, 22050)  # a new process, in effect
    assert np.array_equal(first, again)
    assert not isinstance(again, np.memmap)  # nothing stays mapped or open per track


def test_float16_storage_round_trips_within_tolerance_and_halves_the_bytes(tmp_path):
    y = _signal(1) * 0.5
    c32, c16 = ShardCache(tmp_path / "a"), ShardCache(tmp_path / "b", dtype="float16")
    l32, l16 = c32.put(_sha(1), 22050, y), c16.put(_sha(1), 22050, y)
    back = read_samples(l16)
    assert back.dtype == np.float32
    assert np.max(np.abs(back - y)) < 1e-3
    assert np.array_equal(read_samples(l32), y)
    assert c16.stats().audio[(22050, "<f2")][1] * 2 == c32.stats().audio[(22050, "<f4")][1]
    with pytest.raises(ValueError):
        ShardCache(tmp_path / "c", dtype="int8")


def test_tables_round_trip_and_compute_once(tmp_path):
    cache = ShardCache(tmp_path)
    calls = []
    value = cache.table(f"feat-{_sha(3)}-x", lambda: calls.append(1) or np.arange(12.0).reshape(3, 4))
    again = ShardCache(tmp_path).table(f"feat-{_sha(3)}-x", lambda: calls.append(1) or None)
    assert calls == [1] and np.array_equal(value, again) and again.shape == (3, 4)
    assert cache.has_table(f"feat-{_sha(3)}-x") and not cache.has_table("other")


_WRITER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from genre_core.features.cache import ShardCache

    root, die_at = sys.argv[1], int(sys.argv[2])
    calls = [0]
    real = os.fdatasync
    def fdatasync(fd):
        calls[0] += 1
        if calls[0] == die_at:  # bytes written, not yet synced nor indexed: SIGKILL here
            os.kill(os.getpid(), signal.SIGKILL)
        real(fd)
    os.fdatasync = fdatasync
    cache = ShardCache(root, shard_bytes=1 << 20)
    for i in range(1000):
        y = np.random.default_rng(i).standard_normal(20000).astype(np.float32)
        cache.put(f"{i:040x}", 22050, y)
""")


def test_a_writer_killed_mid_write_leaves_every_indexed_entry_loadable(tmp_path):
    root = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-c", _WRITER, str(root), "13"], cwd=REPO)
    assert proc.returncode == -signal.SIGKILL
    cache = ShardCache(root)
    indexed = [i for i in range(20) if cache.cached(_sha(i), 22050) is not None]
    assert indexed == list(range(12))  # the 13th was on disk, never indexed
    for i in indexed:
        assert np.array_equal(read_samples(cache.cached(_sha(i), 22050)),
                              np.random.default_rng(i).standard_normal(20000).astype(np.float32))
    stats = cache.stats()
    assert stats.tracks == 12 and stats.bytes_garbage == 20000 * 4  # the torn tail, unreferenced
    cache.put(_sha(99), 22050, _signal(99))  # still writable
    assert np.array_equal(read_samples(cache.cached(_sha(99), 22050)), _signal(99))
    result = cache.prune()  # the dead writer's shards: compacted, tail reclaimed
    assert result.shards_removed >= 1 and cache.stats().bytes_garbage == 0
    for i in indexed:
        assert read_samples(cache.cached(_sha(i), 22050)).shape == (20000,)


def test_a_writer_killed_at_a_random_moment_never_corrupts_the_index(tmp_path):
    root = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root), "0"], cwd=REPO)
    index = root / "index.sqlite"
    for _ in range(600):  # wait until a few entries exist, then kill without warning
        if index.is_file() and ShardCache(root).stats().tracks >= 3:
            break
        if proc.poll() is not None:
            break
        import time
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cache = ShardCache(root)
    n = cache.stats().tracks
    assert n >= 3
    for i in range(n):
        assert np.array_equal(read_samples(cache.cached(_sha(i), 22050)),
                              np.random.default_rng(i).standard_normal(20000).astype(np.float32))


def test_emfile_never_deletes_a_good_entry(tmp_path, monkeypatch):
    path = write(tmp_path / "a.wav", tone(1.0))
    cache = ShardCache(tmp_path / "cache")
    good = cache.load(path, _sha(7), 22050)
    shards = sorted((tmp_path / "cache" / "shards").iterdir())
    cache_mod._READERS.forget(str(cache.cached(_sha(7), 22050).shard))

    def no_descriptors(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(cache_mod.os, "open", no_descriptors)
    with pytest.raises(OSError) as caught:
        ShardCache(tmp_path / "cache").load(path, _sha(7), 22050)
    assert caught.value.errno == errno.EMFILE
    monkeypatch.undo()
    assert sorted((tmp_path / "cache" / "shards").iterdir()) == shards
    fresh = ShardCache(tmp_path / "cache")
    assert fresh.cached(_sha(7), 22050) is not None
    assert np.array_equal(fresh.load(path, _sha(7), 22050), good)


def test_a_legacy_npy_file_is_migrated_and_never_deleted_on_emfile(tmp_path, monkeypatch):
    legacy = tmp_path / "cache" / "audio" / "22050" / f"{_sha(8)}.npy"
    legacy.parent.mkdir(parents=True)
    np.save(legacy, _signal(8))
    real_load = np.load

    def emfile_load(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(np, "load", emfile_load)
    with pytest.raises(OSError):
        ShardCache(tmp_path / "cache").load("missing.wav", _sha(8), 22050)
    monkeypatch.setattr(np, "load", real_load)
    assert legacy.is_file()
    assert np.array_equal(ShardCache(tmp_path / "cache").load("missing.wav", _sha(8), 22050), _signal(8))


def test_a_torn_entry_is_re_decoded_not_trusted(tmp_path):
    path = write(tmp_path / "a.wav", tone(1.0))
    cache = ShardCache(tmp_path / "cache")
    y = cache.load(path, _sha(9), 22050)
    loc = cache.cached(_sha(9), 22050)
    os.truncate(loc.shard, loc.offset + 100)  # proof: the shard is shorter than the index says
    cache_mod._READERS.forget(loc.shard)
    assert np.array_equal(ShardCache(tmp_path / "cache").load(path, _sha(9), 22050), y)


def test_descriptors_stay_bounded_whatever_the_number_of_tracks_and_shards(tmp_path):
    cache = ShardCache(tmp_path, shard_bytes=50_000)  # ~2 tracks per shard: 150 shards
    before = _fds()
    locs = [cache.put(_sha(i), 22050, _signal(i, 10000)) for i in range(300)]
    assert cache.stats().shards > 3 * MAX_OPEN_SHARDS
    for i, loc in enumerate(locs):
        assert np.array_equal(read_samples(loc, 10, 100), _signal(i, 10000)[10:110])
    assert open_read_shards() <= MAX_OPEN_SHARDS
    assert _fds() - before <= MAX_OPEN_SHARDS + 4  # + one write shard and the index (+wal, shm)


def test_concurrent_writer_processes_share_one_cache(tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2) as pool:
        list(pool.map(_put_range, [(tmp_path, 0), (tmp_path, 20), (tmp_path, 0)]))  # a race on 0..19
    cache = ShardCache(tmp_path)
    assert cache.stats().tracks == 40
    for i in range(40):
        assert np.array_equal(read_samples(cache.cached(_sha(i), 22050)), _signal(i))


def _put_range(job):
    root, first = job
    cache = ShardCache(root)
    for i in range(first, first + 20):
        cache.put(_sha(i), 22050, _signal(i))


def test_prune_drops_entries_of_gone_files_and_keeps_the_rest_loadable(tmp_path):
    cache = ShardCache(tmp_path, shard_bytes=100_000)
    for i in range(12):
        cache.put(_sha(i), 22050, _signal(i))
        cache.table(f"handcrafted-v1-{_sha(i)}-x", lambda i=i: np.full(3, i))
    cache.close()
    before = ShardCache(tmp_path).stats()
    result = ShardCache(tmp_path, shard_bytes=100_000).prune(keep_sha1=[_sha(i) for i in range(0, 12, 2)])
    assert result.entries_removed == 12  # 6 waveforms + 6 tables
    after = ShardCache(tmp_path)
    stats = after.stats()
    assert stats.tracks == 6 and stats.tables == 6 and stats.bytes_garbage == 0
    assert stats.bytes_total < before.bytes_total
    for i in range(12):
        loc = after.cached(_sha(i), 22050)
        assert (loc is not None) == (i % 2 == 0)
        if loc is not None:
            assert np.array_equal(read_samples(loc), _signal(i))
            assert after.table(f"handcrafted-v1-{_sha(i)}-x", lambda: None).tolist() == [i] * 3


def test_window_index_is_grouped_per_track_and_reads_the_right_samples(tmp_path):
    import pandas as pd

    corpus = make_toy_corpus(tmp_path / "c", per_genre=2, seconds=2.0)
    files = sorted(corpus.rglob("*.wav"))
    tracks = pd.DataFrame(dict(track_id=[f.stem for f in files], path=[str(f) for f in files],
                               sha1=[_sha(i) for i in range(len(files))],
                               label=[f.parent.name for f in files]))
    cache = ShardCache(tmp_path / "cache")
    w = build_windows(tracks, ["high", "low", "mid"], cache, sr=22050, window_s=0.5, hop_s=0.25,
                      progress=False)
    assert len(w) == len(files) * 7
    for pos in range(len(files)):
        rows = w.index[w.rows_of(pos)]
        assert (rows[:, 0] == pos).all() and len(rows) == 7
    audio_batch, labels, owners = w.batch(np.array([0, 8, 20]))
    full = w.waveform(int(owners[1]))
    start = int(w.index[8, 1])
    assert np.array_equal(audio_batch[1], full[start : start + w.window_len])


def test_the_loader_gives_the_same_batches_with_and_without_workers(tmp_path, monkeypatch):
    import pandas as pd
    import torch

    from genre_core.train.loop import window_loader

    corpus = make_toy_corpus(tmp_path / "c", per_genre=2, seconds=2.0)
    files = sorted(corpus.rglob("*.wav"))
    tracks = pd.DataFrame(dict(track_id=[f.stem for f in files], path=[str(f) for f in files],
                               sha1=[_sha(i) for i in range(len(files))],
                               label=[f.parent.name for f in files]))
    w = build_windows(tracks, ["high", "low", "mid"], ShardCache(tmp_path / "cache"), sr=22050,
                      window_s=0.5, hop_s=0.25, progress=False)
    order = torch.randperm(len(w), generator=torch.Generator().manual_seed(0)).numpy()
    runs = []
    for workers in ("0", "2"):
        monkeypatch.setenv("GENRELENS_LOADER_WORKERS", workers)
        runs.append([(a.clone(), l.clone()) for a, l, _ in window_loader(w, order, 5, device=torch.device("cpu"))])
    assert len(runs[0]) == len(runs[1]) == -(-len(w) // 5)
    for (a0, l0), (a1, l1) in zip(*runs):
        assert torch.equal(a0, a1) and torch.equal(l0, l1)


def test_handcrafted_tables_from_worker_processes_match_the_in_process_ones(tmp_path):
    """The faults label check at 100,000 clips computes its tables in the engine's workers;
    they must be the tables the driver would have computed, found in the cache afterwards."""
    import pandas as pd

    from genre_core.engine import EngineOptions
    from genre_core.features.windows import handcrafted_windows

    corpus = make_toy_corpus(tmp_path / "c", per_genre=3, seconds=4.0)
    files = sorted(corpus.rglob("*.wav"))
    tracks = pd.DataFrame(dict(track_id=[f.stem for f in files], path=[str(f) for f in files],
                               sha1=[_sha(i) for i in range(len(files))],
                               label=[f.parent.name for f in files]))
    tables = []
    for name, engine in (("serial", None), ("workers", EngineOptions(workers=2))):
        cache = ShardCache(tmp_path / name)
        w = build_windows(tracks, ["high", "low", "mid"], cache, sr=22050, window_s=3.0,
                          hop_s=1.0, progress=False)
        tables.append(handcrafted_windows(w, list(tracks.sha1), cache, progress=False, engine=engine))
        assert ShardCache(tmp_path / name).stats().tables == len(files)  # each cached once
    assert tables[0].shape == (len(files) * 2, 57)
    np.testing.assert_allclose(tables[1], tables[0], rtol=1e-5, atol=1e-6)


def test_training_runs_under_a_low_descriptor_limit(tmp_path):
    """90 tracks under `ulimit -n 64`: one descriptor per track (the old cache) cannot fit."""
    corpus = make_toy_corpus(tmp_path / "corpus", per_genre=30, seconds=3.5)
    db, cache_dir = tmp_path / "db" / "g.duckdb", tmp_path / "elsewhere"
    env = {**os.environ, "GENRELENS_CACHE_DIR": str(cache_dir), "GENRELENS_LOADER_WORKERS": "1",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    from genre_core.datasets.ingest import ingest
    from genre_core.store import open_store

    ingest(open_store(db), "folder", corpus, name="many", progress=False)
    run = dict(cwd=REPO, env=env, capture_output=True, text=True, timeout=600)

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    train = subprocess.run([sys.executable, "-m", "training", "train", "--dataset", "many", "--model",
                            "cnn_small", "--tiny", "--epochs", "1", "--device", "cpu", "--db", str(db)],
                           preexec_fn=low_limit, **run)
    assert train.returncode == 0, train.stderr[-3000:]
    assert "track accuracy" in train.stdout
    assert ShardCache(cache_dir).stats().tracks == 90  # the cache went where it was told


def test_cache_command_reports_and_prunes_files_no_dataset_lists(toy_store, tmp_path, monkeypatch, capsys):
    from genre_core import paths
    from training.cli import main

    elsewhere = tmp_path / "moved"
    monkeypatch.setenv(paths.CACHE_ENV, "unused")  # restored afterwards; --cache-dir overrides it
    cache = ShardCache(elsewhere)
    kept = sorted(toy_store.file_sha1s())[:3]
    for i, sha1 in enumerate(kept + [_sha(1), _sha(2)]):
        cache.put(sha1, 22050, _signal(i))
    cache.close()
    assert main(["cache", "--db", str(toy_store.path), "--cache-dir", str(elsewhere)]) == 0
    out = capsys.readouterr().out
    assert "5 tracks" in out and "22050 Hz float32: 5 tracks" in out
    assert main(["cache", "--db", str(toy_store.path), "--cache-dir", str(elsewhere), "--prune"]) == 0
    out = capsys.readouterr().out
    assert "pruned 2 entries" in out and "3 tracks" in out
    assert ShardCache(elsewhere).cached(kept[0], 22050) is not None
    assert ShardCache(elsewhere).cached(_sha(1), 22050) is None
