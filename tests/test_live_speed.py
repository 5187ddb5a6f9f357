"""Live classification's fast paths give the reference answers: batched windows predict what
one window at a time does, for every input kind; the torch feature table the baselines use
live matches librosa's within the stated tolerance; the exact median filters agree; and the
benchmarks' --quick flag runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genre_core.features.handcrafted import HANDCRAFTED_NAMES, handcrafted
from genre_core.features.handcrafted_torch import tolerance
from genre_core.features.median import median_filter, sliding_median
from genre_core.features.pipeline import input_pipeline
from genre_core.features.spectral import FeatureConfig
from genre_core.features.tables import COLUMNS
from genre_core.live.streaming import StreamingClassifier, classify_blocks
from genre_core.models import MODELS, build_model, get_spec
from genre_core.train.config import TrainConfig
from genre_core.train.inference import LoadedRun

CLASSES = ["a", "b", "c"]
# One model per input pipeline (handcrafted, handcrafted+wavelet, logmel, mfcc, musicnn) and
# per family, untrained: speed paths must not change answers whatever the weights.
LIVE_MODELS = ["logreg", "rf_wavelet", "cnn_small", "rnn", "crnn", "transformer", "musicnn_probe"]


def _song(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    tone = np.sin(2 * np.pi * (220 + 200 * np.floor(t / 2)) * t)  # a note change every 2 s
    return (0.3 * tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _loaded(name: str) -> LoadedRun:
    spec = get_spec(name)
    config = TrainConfig(dataset="t", model=name, tiny=True)
    cpu = torch.device("cpu")
    if not spec.is_torch:
        rng = np.random.default_rng(0)
        n = len(COLUMNS[spec.input_kind])
        table = rng.standard_normal((30, n)) * 10 + np.linspace(0, 50, n)
        estimator = spec.build(seed=0).fit(table, np.arange(30) % len(CLASSES))
        return LoadedRun("t", config, CLASSES, config.features.sr, 3.0, cpu, estimator=estimator)
    torch.manual_seed(0)
    frontend, sr, bins = input_pipeline(spec.input_kind, FeatureConfig())
    model = build_model(name, len(CLASSES), bins, tiny=True).eval()
    return LoadedRun("t", config, CLASSES, sr, 3.0, cpu, model=model, frontend=frontend.eval())


@pytest.mark.parametrize("name", LIVE_MODELS)
def test_batched_live_windows_predict_as_one_at_a_time(name):
    assert name in MODELS
    loaded = _loaded(name)
    y = _song(loaded.sr, 9.0)
    blocks = [y[i: i + 20_000] for i in range(0, len(y), 20_000)]
    batched = list(classify_blocks(iter(blocks), loaded, hop_s=1.5, batch=16))
    single = list(classify_blocks(iter(blocks), loaded, hop_s=1.5, batch=1))
    assert len(batched) == len(single) >= 5
    for a, b in zip(batched, single):
        assert (a.start_s, a.end_s) == (b.start_s, b.end_s)
        np.testing.assert_allclose(a.probs, b.probs, rtol=1e-4, atol=1e-5)
    assert [int(np.argmax(p.probs)) for p in batched] == [int(np.argmax(p.probs)) for p in single]


def test_live_handcrafted_table_matches_librosa():
    """The windows the streaming classifier hands a baseline, through the torch table it uses
    live, against the librosa reference column by column."""
    from genre_core.features.tables import baseline_table

    sr, seen = 22050, []

    def predict(windows):
        seen.append(baseline_table(windows, sr, "handcrafted"))
        seen[-1] = (np.array(windows), seen[-1])
        return np.full((len(windows), 2), 0.5)

    classifier = StreamingClassifier(predict, sr, window_s=3.0, hop_s=1.5, batch=4)
    classifier.feed(_song(sr, 6.0, seed=1))
    classifier.flush()
    windows = np.concatenate([w for w, _ in seen])[:3]
    tables = np.concatenate([t for _, t in seen])[:3]
    for window, row in zip(windows, tables):
        expected = handcrafted(window, sr=sr)
        for j, column in enumerate(HANDCRAFTED_NAMES):
            rtol, atol = tolerance(column)
            np.testing.assert_allclose(row[j], expected[j], rtol=rtol, atol=atol, err_msg=column)


@pytest.mark.parametrize("dim", [-1, -2])
def test_cpu_median_equals_the_merge_network(dim):
    """The CPU path (sorted window, numba) and the merge network (the GPU path) agree bit for
    bit, ties included."""
    rng = np.random.default_rng(3)
    for x in (torch.rand(2, 40, 50), torch.from_numpy(rng.integers(0, 3, (2, 40, 50)).astype(np.float32))):
        moved = x.movedim(dim, -1)
        padded = torch.cat([moved[..., :15].flip(-1), moved, moved[..., -15:].flip(-1)], -1)
        network = sliding_median(padded.reshape(-1, padded.shape[-1]), 31).reshape(moved.shape).movedim(-1, dim)
        assert torch.equal(median_filter(x, 31, dim), network)


@pytest.mark.slow
def test_bench_quick_flag_parses_and_runs_a_section(tmp_path, capsys):
    from benchmarks.__main__ import main

    db = tmp_path / "bench.duckdb"
    assert main(["handcrafted", "--quick", "--db", str(db), "--per-genre", "4", "--seconds", "4"]) == 0
    out = capsys.readouterr().out
    assert "## handcrafted" in out and "ours vs baseline" in out and "torch batched vs librosa" in out
    assert (tmp_path / "demo" / "metadata.csv").is_file()  # the corpus went beside --db


@pytest.mark.slow
def test_bench_latency_measures_the_runs_the_accuracy_section_trained(tmp_path, capsys):
    """The latency section reads the accuracy section's runs (same dataset, same split, the
    ensemble left out: it has no model to stream): when the two disagreed on the split,
    `--quick` printed no latency and no mix at all."""
    from benchmarks.__main__ import main

    db = tmp_path / "bench.duckdb"
    assert main(["accuracy", "latency", "--quick", "--db", str(db), "--per-genre", "4", "--seconds", "4",
                 "--models", "logreg", "rf"]) == 0
    out = capsys.readouterr().out.split("## latency", 1)[1]
    assert "no complete demo runs" not in out
    assert "| logreg" in out and "| rf" in out and "mix" in out
