"""The torch handcrafted table against its librosa reference, column by column, within the
tolerances stated in genre_core.features.handcrafted_torch.TOLERANCE; and the exact median
filter behind its HPSS against scipy's."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.ndimage
import torch

from genre_core.datasets.synth.music import render_clip
from genre_core.datasets.synth.styles import make_artist
from genre_core.features.handcrafted import HANDCRAFTED_NAMES, handcrafted
from genre_core.features.handcrafted_torch import TOLERANCE, Handcrafted, handcrafted_batch, tolerance
from genre_core.features.median import median_filter

SR = 22050
N = 3 * SR  # the 3-s window the baselines use
DETUNE = 0.3  # of a semitone: far from A440 tuning, so the chroma filterbank must follow it


def _synth(genre: str, seed: int, n: int = N) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = render_clip(genre, make_artist(f"test {genre}", genre, rng), n, sr=SR, rng=rng)
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def _tones_clicks(n: int = N) -> np.ndarray:
    """A detuned triad, a click track at 132 BPM and a little noise."""
    t = np.arange(n) / SR
    y = sum(0.2 * np.sin(2 * np.pi * 440.0 * 2 ** ((k + DETUNE) / 12) * t) for k in (0, 4, 7))
    clicks = np.zeros(n)
    clicks[(np.arange(0, n / SR, 60 / 132) * SR).astype(int)] = 1.0
    burst = np.random.default_rng(3).standard_normal(400) * np.exp(-np.arange(400) / 60)
    y = y + 0.5 * np.convolve(clicks, burst)[:n] + 0.01 * np.random.default_rng(4).standard_normal(n)
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def signals() -> dict[str, np.ndarray]:
    rock = _synth("rock", 1)
    return {
        "rock": rock,
        "jazz": _synth("jazz", 2),
        "hiphop": _synth("hiphop", 3),
        "tones+clicks": _tones_clicks(),
        "noise": (0.05 * np.random.default_rng(5).standard_normal(N)).astype(np.float32),
        "silence": np.zeros(N, dtype=np.float32),
        # In the same batch as loud clips: top_db and every normalisation must stay per example.
        "rock at -60 dB": (1e-3 * rock).astype(np.float32),
    }


@pytest.fixture(scope="module")
def reference(signals) -> np.ndarray:
    return np.stack([handcrafted(y, sr=SR) for y in signals.values()])  # (S, 57)


def _violations(ours: np.ndarray, ref: np.ndarray, labels: list[str]) -> list[str]:
    bad = []
    for j, name in enumerate(HANDCRAFTED_NAMES):
        rtol, atol = tolerance(name)
        err = np.abs(ours[:, j] - ref[:, j])
        over = err > atol + rtol * np.abs(ref[:, j])
        bad += [f"{name} on {labels[i]}: torch {ours[i, j]:.6g} vs librosa {ref[i, j]:.6g}"
                for i in np.flatnonzero(over)]
    return bad


def test_every_column_matches_librosa(signals, reference):
    ours = handcrafted_batch(torch.from_numpy(np.stack(list(signals.values()))), sr=SR)
    assert ours.shape == (len(signals), 57) and ours.dtype == torch.float64
    assert torch.isfinite(ours).all()
    bad = _violations(ours.numpy(), reference, list(signals))
    assert not bad, "\n".join(bad)


def test_short_clip_matches_librosa():
    y = _synth("jazz", 9, n=SR)  # 1 s: 44 frames, shorter than the 31-frame HPSS kernel twice over
    bad = _violations(handcrafted_batch(y[None], sr=SR), handcrafted(y, sr=SR)[None], ["1-s jazz"])
    assert not bad, "\n".join(bad)


def test_tuning_estimate_is_librosas(signals):
    module = Handcrafted(SR)
    batch = torch.from_numpy(np.stack(list(signals.values())))
    power = torch.stft(batch, 2048, 512, window=module.window, return_complex=True).abs().square()
    edges = torch.cat([module.tuning_edges[:-1], torch.zeros(1, dtype=torch.float64)])
    ours = edges[module._tuning_index(power)].numpy()
    with pytest.warns(UserWarning, match="empty frequency set"):  # silence
        theirs = [librosa.estimate_tuning(S=p, sr=SR) for p in power.numpy()]
    assert ours == pytest.approx(theirs, abs=1e-12)
    # librosa hears the 0.3-semitone detune as ~0.26: far enough from 0 that the filterbank moves.
    assert ours[list(signals).index("tones+clicks")] > 0.2


def test_tolerance_covers_every_column():
    assert all(tolerance(name) in TOLERANCE.values() for name in HANDCRAFTED_NAMES)
    assert tolerance("rolloff_var") == TOLERANCE["rolloff_var"]


def test_numpy_in_numpy_out(signals):
    windows = np.stack([signals["rock"], signals["noise"]])
    table = handcrafted_batch(windows, sr=SR)
    assert isinstance(table, np.ndarray) and table.shape == (2, 57) and table.dtype == np.float64
    alone = handcrafted_batch(windows[1:], sr=SR)  # a row does not depend on its batch
    np.testing.assert_allclose(alone[0], table[1], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("size", [1, 3, 7, 31])
@pytest.mark.parametrize("dim", [0, 1])
def test_median_filter_is_scipys(size, dim):
    rng = np.random.default_rng(size)
    infinite = rng.random((37, 70))
    infinite[rng.random((37, 70)) < 0.1] = np.inf
    infinite[rng.random((37, 70)) < 0.1] = -np.inf
    # with ties; with infinities (the CPU loop takes them, only NaN sends it to the network)
    for x in (rng.random((37, 70)), rng.integers(0, 4, (37, 70)).astype(float), infinite):
        window = [1, 1]
        window[dim] = size
        expected = scipy.ndimage.median_filter(x, size=window, mode="reflect")
        np.testing.assert_array_equal(median_filter(torch.from_numpy(x), size, dim).numpy(), expected)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda(signals, reference):
    ours = handcrafted_batch(torch.from_numpy(np.stack(list(signals.values()))).cuda(), sr=SR)
    assert ours.device.type == "cuda"
    bad = _violations(ours.cpu().numpy(), reference, list(signals))
    assert not bad, "\n".join(bad)
