"""Engines: the same ingest through local worker processes and through Ray tasks stores the
same tracks. The Ray path runs on a local 2-CPU instance (no dashboard, no usage stats)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from genre_core.datasets.ingest import IngestOptions, ingest
from genre_core.engine import EngineOptions, map_chunks
from genre_core.store import TRACK_COLUMNS, open_store
from tests.helpers import make_toy_corpus

ray = pytest.importorskip("ray")


def _square_rows(chunk, offset):
    return [{"x": x, "y": x * x + offset, **({"odd": True} if x % 2 else {})} for x in chunk]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _tracks(store, name):
    return (store.query(f"SELECT {', '.join(TRACK_COLUMNS)} FROM tracks t JOIN datasets d USING (dataset_id) "
                        "WHERE d.name = ? ORDER BY track_id", [name]))


@pytest.mark.slow
def test_map_chunks_gives_every_result_once_on_each_engine(local_ray):
    chunks = [list(range(i, i + 3)) for i in range(0, 30, 3)]
    expected = {i: _square_rows(c, 1) for i, c in enumerate(chunks)}
    for engine in (EngineOptions("local", workers=2), EngineOptions("ray", workers=2)):
        got = dict(map_chunks(_square_rows, chunks, args=(1,), options=engine))
        # Arrow gives every row every column: a key one row lacked reads back as None.
        assert {i: [{k: v for k, v in r.items() if v is not None} for r in rows]
                for i, rows in got.items()} == expected, engine.engine


@pytest.mark.slow
def test_ingest_on_ray_stores_what_the_local_engine_stores(local_ray, tmp_path):
    corpus = make_toy_corpus(tmp_path / "corpus")
    (corpus / "low" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")  # a failure row too
    stores = {}
    for engine in ("local", "ray"):
        store = open_store(tmp_path / f"{engine}.duckdb")
        ingest(store, "folder", corpus, name="toy", progress=False,
               options=IngestOptions(workers=2, chunk_size=3, engine=engine))
        stores[engine] = _tracks(store, "toy")
    local, on_ray = stores["local"], stores["ray"]
    assert len(local) == 25 and (local.status != "ok").sum() == 1
    assert local.equals(on_ray), local.compare(on_ray)


@pytest.mark.slow
def test_cli_ingest_with_engine_ray(tmp_path):
    import subprocess
    import sys

    corpus = make_toy_corpus(tmp_path / "corpus")
    db = tmp_path / "cli.duckdb"
    done = subprocess.run([sys.executable, "-m", "training", "ingest", "--dataset", "folder", "--root",
                           str(corpus), "--name", "toy", "--db", str(db), "--engine", "ray", "--workers", "2"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ingested 24 tracks" in done.stdout
    assert len(_tracks(open_store(db, create=False), "toy")) == 24


@pytest.mark.slow
def test_faults_on_ray_find_what_the_local_engine_finds(local_ray, tmp_path):
    import shutil

    from genre_core.faults.detect import detect_faults

    import soundfile as sf

    from tests.test_fingerprint import SR, song

    corpus = tmp_path / "corpus"
    for i, genre in enumerate(["a", "b", "c"] * 3):
        (corpus / genre).mkdir(parents=True, exist_ok=True)
        sf.write(corpus / genre / f"song{i}.wav", song(i, seconds=6.0, artist=i % 3), SR)
    shutil.copyfile(corpus / "a" / "song0.wav", corpus / "b" / "copy_of_song0.wav")  # same bytes
    sf.write(corpus / "c" / "quieter_song1.flac", 0.6 * song(1, seconds=6.0, artist=1), SR)  # fingerprints
    found = {}
    for engine in ("local", "ray"):
        store = open_store(tmp_path / f"{engine}.duckdb")
        ingest(store, "folder", corpus, name="toy", progress=False)
        summary = detect_faults(store, "toy", progress=False,
                                engine=EngineOptions(engine, workers=2))
        found[engine] = (summary.detected.drop(columns=["evidence"]).sort_values(["kind", "track_id"])
                         .reset_index(drop=True), summary.detected.evidence.sort_values().tolist())
    kinds = set(found["local"][0].kind)
    assert "exact_duplicate" in kinds and len(kinds - {"exact_duplicate"}) >= 1, kinds
    assert found["local"][0].equals(found["ray"][0]) and found["local"][1] == found["ray"][1]


@pytest.mark.slow
def test_analyze_embeddings_on_workers_and_ray_equal_the_in_process_ones(local_ray, toy_store):
    import numpy as np

    from genre_core import paths
    from genre_core.analysis.embeddings import SpreadEmbeddings, track_embeddings
    from genre_core.features.cache import ShardCache
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit
    from genre_core.train.inference import load_run

    run_id = fit(toy_store, TrainConfig.tiny_preset("toy", "cnn", epochs=1), progress=False).run_id
    loaded = load_run(toy_store, run_id, "cpu")
    tracks = toy_store.tracks("toy")
    cache = ShardCache(paths.cache_dir(toy_store.path))
    ids, here, kind = track_embeddings(loaded, tracks, cache, progress=False)
    for engine in (EngineOptions("local", workers=2), EngineOptions("ray", workers=2)):
        spread = SpreadEmbeddings(str(toy_store.path), run_id, engine, tracks_per_task=5)
        spread_ids, spread_vectors, spread_kind = track_embeddings(loaded, tracks, cache, progress=False,
                                                                   spread=spread)
        assert (spread_ids, spread_kind) == (ids, kind), engine.engine
        np.testing.assert_allclose(spread_vectors, here, rtol=1e-4, atol=1e-5, err_msg=engine.engine)


@pytest.mark.slow
def test_batch_classify_of_a_folder_on_workers_and_ray(local_ray, toy_store, tmp_path):
    import shutil

    from genre_core.live.batch import classify_many
    from genre_core.live.streaming import classify_file
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit

    run_id = fit(toy_store, TrainConfig.tiny_preset("toy", "cnn", epochs=1), progress=False).run_id
    folder = tmp_path / "music"
    folder.mkdir()
    for track in toy_store.tracks("toy").path[:5]:
        shutil.copy(track, folder / Path(track).name)
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    tables = {}
    for engine in (EngineOptions("local", workers=2), EngineOptions("ray", workers=2)):
        result = classify_many(toy_store, [folder], run_id=run_id, out_dir=tmp_path / engine.engine, engine=engine)
        tables[engine.engine] = result.table
        assert result.table.error.notna().sum() == 1 and "1 failed" in result.line()
        assert result.table.set_index("path").error.notna()[str(folder / "broken.wav")]
        assert len(list((tmp_path / engine.engine).glob("*.csv"))) == 5
    pd.testing.assert_frame_equal(tables["local"], tables["ray"], check_exact=False, atol=1e-6)
    first = tables["local"].dropna(subset=["genre"]).iloc[0]
    single = classify_file(toy_store, first.path, run_id=run_id, progress=False, device="cpu")
    assert len(single.sections) == first.sections


@pytest.mark.slow
def test_extract_caches_the_same_samples_on_workers_and_ray(local_ray, tmp_path, monkeypatch):
    import numpy as np

    from genre_core import paths
    from genre_core.features.cache import ShardCache
    from genre_core.features.extract import extract, model_rate

    corpus = make_toy_corpus(tmp_path / "corpus")
    samples = {}
    for engine in (EngineOptions("local", workers=1), EngineOptions("local", workers=2),
                   EngineOptions("ray", workers=2)):
        name = f"{engine.engine}{engine.workers}"
        monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / name / "cache"))
        store = open_store(tmp_path / name / "db.duckdb")
        ingest(store, "folder", corpus, name="toy", progress=False)
        summary = extract(store, "toy", model_rate("cnn"), engine=engine, progress=False)
        assert (summary.n_tracks, summary.n_failed) == (24, 0)
        cache, tracks = ShardCache(paths.cache_dir(store.path)), store.tracks("toy")
        assert all(cache.cached(sha1, 22050) is not None for sha1 in tracks.sha1)  # train decodes nothing
        samples[name] = [cache.load(p, s, 22050) for p, s in zip(tracks.path, tracks.sha1)]
    for name in ("local2", "ray2"):
        assert all(np.array_equal(a, b) for a, b in zip(samples["local1"], samples[name])), name
