"""Feature extraction checked against known answers: librosa's own mel/MFCC, a sine's
centroid, and the shape of the GTZAN handcrafted table."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from genre_core.features.handcrafted import HANDCRAFTED_NAMES, chroma, handcrafted, spectral_contrast
from genre_core.features import spectral
from genre_core.features.spectral import FEATURES, FeatureConfig, LogMel, MFCC, build_feature, feature_bins

SR = 22050
SECONDS = 3
N = SR * SECONDS
FRAMES = 1 + N // 512  # centred frames at hop 512

# Stated tolerances against librosa (float32 both sides; measured ~1.4e-4 dB, ~3e-4 MFCC
# units on c0 values near 600, ~4e-5 on deltas): an order of magnitude or more of headroom.
LOGMEL_TOL_DB = 0.01  # max |torch - librosa| over every bin, including the top_db floor
MFCC_TOL = 0.01  # max abs difference of the 20 static coefficients
DELTA_TOL = 1e-3  # deltas and delta-deltas, away from the edges (see below)


def _music_like(seed: int) -> np.ndarray:
    """3 s of a chord, a gated tone and a little noise: energy spread over the spectrum."""
    rng = np.random.default_rng(seed)
    t = np.arange(N) / SR
    y = sum(0.2 * np.sin(2 * np.pi * f * t) for f in (220.0 * (seed + 1), 277.2, 329.6))
    y = y + 0.2 * np.sin(2 * np.pi * 1375.0 * t) * ((t % 0.5) < 0.1)
    y = y + 0.02 * rng.standard_normal(N)
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    """(3, N): a loud clip, a quiet one (-40 dB) and white noise, batched together so the
    per-example top_db clamp is exercised."""
    rng = np.random.default_rng(7)
    noise = (0.05 * rng.standard_normal(N)).astype(np.float32)
    return np.stack([_music_like(0), 0.01 * _music_like(1), noise])


def _librosa_logmel(y: np.ndarray) -> np.ndarray:
    mel = librosa.feature.melspectrogram(
        y=y, sr=SR, n_fft=2048, hop_length=512, n_mels=128, center=True, pad_mode="constant"
    )
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)


def test_shapes_and_bins(batch):
    config = FeatureConfig()
    for kind in FEATURES:
        with torch.no_grad():
            out = build_feature(kind, config)(torch.from_numpy(batch))
        assert out.shape == (3, 1, feature_bins(kind, config), FRAMES)
    assert feature_bins("logmel") == 128 and feature_bins("mfcc") == 60
    with pytest.raises(ValueError, match="logmel"):
        build_feature("cqt")
    with pytest.raises(ValueError, match="mfcc"):
        feature_bins("cqt")


def test_logmel_rejects_unbatched():
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        LogMel()(torch.zeros(N))


def test_logmel_matches_librosa(batch):
    with torch.no_grad():
        ours = LogMel()(torch.from_numpy(batch)).numpy()  # (3, 1, 128, T)
    for i, y in enumerate(batch):
        ref = _librosa_logmel(y)
        assert ours[i, 0].shape == ref.shape
        assert np.abs(ours[i, 0] - ref).max() < LOGMEL_TOL_DB


def test_mfcc_matches_librosa(batch):
    with torch.no_grad():
        ours = MFCC()(torch.from_numpy(batch)).numpy()  # (3, 1, 60, T)
    for i, y in enumerate(batch):
        ref = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20, n_fft=2048, hop_length=512, n_mels=128)
        assert np.abs(ours[i, 0, :20] - ref).max() < MFCC_TOL
        # Deltas: same 9-frame regression as librosa.feature.delta(width=9); only its first
        # and last 4 frames differ (edge repeat vs librosa's polynomial fit), 8 for deltas of
        # deltas, so compare the interior.
        d1 = librosa.feature.delta(ref, width=9)
        d2 = librosa.feature.delta(d1, width=9)
        assert np.abs(ours[i, 0, 20:40, 4:-4] - d1[:, 4:-4]).max() < DELTA_TOL
        assert np.abs(ours[i, 0, 40:60, 8:-8] - d2[:, 8:-8]).max() < DELTA_TOL


def test_logmel_clamps_each_example_to_its_own_range():
    # Pure sines span more than 80 dB of mel power, so both hit their floor; a batch-wide
    # clamp would floor the quiet one 40 dB too high (at the loud one's floor).
    t = torch.arange(N) / SR
    loud = 0.5 * torch.sin(2 * torch.pi * 440.0 * t)
    with torch.no_grad():
        db = LogMel()(torch.stack([loud, 1e-2 * loud]))  # (2, 1, 128, T)
    peak = db.amax(dim=(1, 2, 3))
    assert peak[0] - peak[1] == pytest.approx(40.0, abs=0.01)
    assert torch.allclose(db.amin(dim=(1, 2, 3)), peak - 80.0)


def test_logmel_of_a_large_batch_equals_each_clip_alone(monkeypatch):
    """On a CPU a batch goes through the STFT a few clips at a time (cache-sized calls): the
    images must be what each clip gives alone, the per-clip dB floor included."""
    monkeypatch.setattr(spectral, "CPU_CHUNK_SAMPLES", 2 * N)  # calls of 2 clips for this N
    rng = np.random.default_rng(3)
    clips = torch.from_numpy((rng.standard_normal((5, N)) * [[1.0], [1e-3], [0.3], [1e-2], [0.5]])
                             .astype(np.float32))  # loud and quiet ones in every call
    with torch.no_grad():
        together = LogMel()(clips)  # (5, 1, 128, T)
        alone = torch.cat([LogMel()(clip[None]) for clip in clips])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-4)


@pytest.mark.parametrize("module", [LogMel, MFCC])
def test_constants_are_buffers_that_follow_to(module, batch):
    extractor = module()
    names = set(extractor.state_dict())
    assert any(n.endswith("mel_scale.fb") for n in names)
    assert any(n.endswith("spectrogram.window") for n in names)
    if module is MFCC:
        assert "dct" in names
    extractor = extractor.to(torch.float64)
    assert all(b.dtype == torch.float64 for b in extractor.buffers())
    with torch.no_grad():
        out = extractor(torch.from_numpy(batch[:1]))
    assert out.dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_features_run_on_cuda(batch):
    for kind in FEATURES:
        extractor = build_feature(kind).to("cuda")
        assert all(b.device.type == "cuda" for b in extractor.buffers())
        with torch.no_grad():
            out = extractor(torch.from_numpy(batch).cuda())
            cpu = build_feature(kind)(torch.from_numpy(batch))
        assert out.device.type == "cuda"
        assert torch.allclose(out.cpu(), cpu, atol=0.05)


@pytest.mark.parametrize("freq", [440.0, 3000.0])
def test_sine_centroid_is_its_frequency(freq):
    y = (0.5 * np.sin(2 * np.pi * freq * np.arange(N) / SR)).astype(np.float32)
    table = dict(zip(HANDCRAFTED_NAMES, handcrafted(y, sr=SR)))
    assert table["spectral_centroid_mean"] == pytest.approx(freq, rel=0.02)


def test_handcrafted_table(batch):
    assert len(HANDCRAFTED_NAMES) == 57 == len(set(HANDCRAFTED_NAMES))
    assert HANDCRAFTED_NAMES[:2] == ("chroma_stft_mean", "chroma_stft_var")
    assert HANDCRAFTED_NAMES[16] == "tempo" and HANDCRAFTED_NAMES[-1] == "mfcc20_var"
    for y in [*batch, np.zeros(N, dtype=np.float32)]:  # silence must not give NaNs
        row = handcrafted(y, sr=SR)
        assert row.shape == (57,)
        assert np.isfinite(row).all()
    table = dict(zip(HANDCRAFTED_NAMES, handcrafted(batch[0], sr=SR)))
    assert 0.0 < table["zero_crossing_rate_mean"] < 1.0
    assert 30.0 <= table["tempo"] <= 320.0


def test_chroma_and_contrast_shapes(batch):
    assert chroma(batch[0], sr=SR).shape == (12, FRAMES)
    assert spectral_contrast(batch[0], sr=SR).shape == (7, FRAMES)
