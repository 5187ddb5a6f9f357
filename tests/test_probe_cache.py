"""The embedding cache of frozen-backbone models (musicnn_probe): extracted once, reused by
later runs and other processes, deterministic, resumable, and the stored full network
predicts what the head on cached embeddings predicted.

Needs the `musicnn` wheel; skipped with the pip hint when it is missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genre_core.metrics import evaluation
from genre_core.models.musicnn import net as musicnn
from genre_core.models.musicnn.weights import MusicnnWeightsMissing
from genre_core.train.config import TrainConfig
from genre_core.train.fit import fit, resume_run
from genre_core.train.loop import Interrupted

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def probe_store(tmp_path_factory):
    """A fresh store and cache (7-s clips: three 3-s windows each) shared by this module."""
    from genre_core.datasets.ingest import ingest
    from genre_core.store import open_store
    from tests.helpers import make_toy_corpus

    root = tmp_path_factory.mktemp("probe")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENRELENS_CACHE_DIR", str(root / "cache"))
        try:
            musicnn.load_tagger("MSD_musicnn")
        except MusicnnWeightsMissing as exc:
            pytest.skip(str(exc))
        corpus = make_toy_corpus(root / "corpus", per_genre=8, seconds=7.0)
        store = open_store(root / "db" / "probe.duckdb")
        ingest(store, "folder", corpus, name="toy", progress=False)
        yield store


@pytest.fixture
def backbone_calls(monkeypatch):
    """How many windows went through any musicnn tagger's forward."""
    calls = {"windows": 0}
    forward = musicnn.MusicnnTagger.forward

    def counting(self, x):
        calls["windows"] += x.shape[0]
        return forward(self, x)

    monkeypatch.setattr(musicnn.MusicnnTagger, "forward", counting)
    return calls


def _probs(store, run_id: str) -> np.ndarray:
    rows = store.query("SELECT track_id, probs FROM predictions WHERE run_id = ? ORDER BY split, track_id",
                       [run_id])
    return np.stack(rows.probs)


def _config(**overrides) -> TrainConfig:
    return TrainConfig.tiny_preset("toy", "musicnn_probe", **{"epochs": 3, "seed": 5, **overrides})


def test_the_second_run_reuses_the_embeddings_and_matches_the_first(probe_store, backbone_calls):
    first = fit(probe_store, _config(), progress=False)
    assert backbone_calls["windows"] == 72  # 24 tracks x 3 windows, each embedded once
    second = fit(probe_store, _config(), progress=False)
    assert backbone_calls["windows"] == 72  # nothing more: every track was cached
    assert np.allclose(_probs(probe_store, first.run_id), _probs(probe_store, second.run_id), atol=1e-6)


def test_a_memory_mapped_embedding_set_trains_the_same_probe(probe_store, monkeypatch):
    """Above IN_RAM_BYTES the embeddings live in a mapped scratch file (FMA-full's ~15 GB would
    not fit in RAM); the probe it trains predicts exactly what the in-memory one does."""
    from genre_core.features import embedding_cache

    in_ram = fit(probe_store, _config(), progress=False)
    sets = []
    assemble = embedding_cache._assemble
    monkeypatch.setattr(embedding_cache, "IN_RAM_BYTES", 0)
    monkeypatch.setattr(embedding_cache, "_assemble", lambda *a: sets.append(assemble(*a)) or sets[-1])
    mapped = fit(probe_store, _config(), progress=False)
    assert sets and all(isinstance(v, np.memmap) for v in sets)
    scratch = Path(os.environ["GENRELENS_CACHE_DIR"])
    assert not list(scratch.rglob("embedding-set-*"))  # unlinked: nothing left behind
    assert np.array_equal(_probs(probe_store, in_ram.run_id), _probs(probe_store, mapped.run_id))


def test_another_process_reuses_the_cache(probe_store):
    script = (
        "import json, sys\n"
        "from genre_core.models.musicnn import net\n"
        "from genre_core.store import open_store\n"
        "from genre_core.train.config import TrainConfig\n"
        "from genre_core.train.fit import fit\n"
        "calls, forward = [0], net.MusicnnTagger.forward\n"
        "def counting(self, x):\n"
        "    calls[0] += x.shape[0]\n"
        "    return forward(self, x)\n"
        "net.MusicnnTagger.forward = counting\n"
        "store = open_store(sys.argv[1])\n"
        "fit(store, TrainConfig.tiny_preset('toy', 'musicnn_probe', epochs=1, seed=5), progress=False)\n"
        "print(json.dumps(calls[0]))\n"
    )
    fit(probe_store, _config(epochs=1), progress=False)  # the cache is warm, whatever ran before
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script, str(probe_store.path)], env=env, cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == 0


def test_a_resumed_probe_run_equals_an_uninterrupted_one(probe_store):
    config = _config(augment=_mixup())
    straight = fit(probe_store, config, progress=False)
    with pytest.raises(Interrupted):
        fit(probe_store, config, run_id="probe-resume", progress=False, stop_after_epoch=1)
    resumed = resume_run(probe_store, "probe-resume", progress=False)
    assert np.allclose(_probs(probe_store, straight.run_id), _probs(probe_store, resumed.run_id), atol=1e-6)


def _mixup():
    from genre_core.features.augment import AugmentConfig

    # Everything on: the probe keeps mixup and drops the stages that need audio.
    return AugmentConfig(stretch_prob=0.5, pitch_prob=0.5, mixup_alpha=0.4)


def test_the_stored_full_network_predicts_what_the_head_predicted(probe_store):
    from genre_core.features.cache import ShardCache
    from genre_core.features.windows import window_starts
    from genre_core import paths
    from genre_core.train.inference import load_run

    run = fit(probe_store, _config(), progress=False)
    loaded = load_run(probe_store, run.run_id, device="cpu")
    cache = ShardCache(paths.cache_dir(probe_store.path))
    stored = probe_store.query("SELECT p.track_id, p.probs, t.path, t.sha1 FROM predictions p JOIN tracks t "
                               "USING (track_id) WHERE p.run_id = ? AND p.split = 'test'", [run.run_id])
    length = int(loaded.window_s * loaded.sr)
    for row in stored.itertuples():
        y = cache.load(row.path, row.sha1, loaded.sr)
        hop = int(loaded.config.eval_hop_s * loaded.sr)
        windows = np.stack([y[s : s + length] for s in window_starts(len(y), length, hop)])
        probs, _ = loaded.predict_windows(windows)  # (W, C): backbone + head on audio
        _, track = evaluation.aggregate_windows([row.track_id] * len(windows), np.log(probs))
        assert np.allclose(np.exp(track[0]), row.probs, atol=1e-4), row.track_id


def test_the_head_alone_equals_the_full_forward(probe_store):
    torch.manual_seed(0)
    model = musicnn.build_musicnn_probe(3).eval()
    x = torch.rand(4, 1, 96, 187) * 3  # (B, 1, 96, T)
    with torch.no_grad():
        full, head = model(x), model.from_embedding(model.embed(x))
    assert torch.allclose(full.logits, head.logits, atol=1e-6)
    assert torch.equal(full.embedding, head.embedding)  # the probe's head reads the penultimate


def test_a_probe_keeps_mixup_and_drops_the_audio_augmentations():
    from genre_core.features.augment import AugmentConfig
    from genre_core.train.probe import embedding_augment

    assert embedding_augment(_mixup()) == AugmentConfig(gain_db=0.0, noise_snr_db=None, spec_time_masks=0,
                                                        spec_freq_masks=0, mixup_alpha=0.4)
    assert embedding_augment(AugmentConfig.default()) == AugmentConfig.none()
