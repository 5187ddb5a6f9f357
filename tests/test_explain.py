"""Grad-CAM and band attributions: shapes on every conv model, stitching arithmetic, and
that a trained model's map and occlusion point at a planted discriminative event."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from genre_core.analysis.explain import (
    band_occlusion, band_profile, compact, gradcam_features, gradcam_windows, stitch,
    track_gradcam,
)
from genre_core.features.pipeline import input_pipeline
from genre_core.features.spectral import FeatureConfig
from genre_core.models import MODELS, build_model

N_BANDS, N_FRAMES = 64, 64
EVENT_BANDS, EVENT_FRAMES = slice(40, 48), slice(44, 52)  # where the test event sits
CONV_MODELS = [name for name, spec in MODELS.items()
               if spec.is_torch and spec.input_kind != "musicnn"
               and build_model(name, 3, 128, tiny=True).gradcam_layer is not None]


# ------------------------------------------------------------------------------ stitching


def test_stitch_averages_where_windows_overlap():
    maps = np.stack([np.full((2, 4), 1.0), np.full((2, 4), 3.0)])  # (W=2, F=2, T=4)
    out = stitch(maps, np.array([0, 2]), total_frames=7)
    # frames 0-1: first window only; 2-3: both (mean 2); 4-5: second only; 6: nobody.
    assert out.shape == (2, 7)
    np.testing.assert_allclose(out[0], [1, 1, 2, 2, 3, 3, 0])
    np.testing.assert_allclose(out[1], out[0])


def test_stitch_drops_frames_past_the_end():
    out = stitch(np.ones((1, 3, 5)), np.array([3]), total_frames=6)
    np.testing.assert_allclose(out, [[0, 0, 0, 1, 1, 1]] * 3)


def test_compact_pools_to_the_storage_grid_and_scales_to_one():
    cam = np.zeros((128, 430), dtype=np.float32)  # 10 s at 43 frames/s
    cam[100:110, 200:220] = 5.0
    small = compact(cam, frame_rate=43.0)
    assert small.shape == (64, 80) and small.dtype == np.float32
    assert small.max() == pytest.approx(1.0) and small.min() >= 0
    band, frame = np.unravel_index(small.argmax(), small.shape)
    assert 50 <= band < 55 and 37 <= frame < 41  # the same place, at half / ~1/5 resolution
    assert band_profile(cam).argmax() in range(100, 110)


# ------------------------------------------------------------------------- every model


def _random_windows(n: int, seconds: float, sr: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((n, int(seconds * sr)))).astype(np.float32)


@pytest.mark.parametrize("name", CONV_MODELS)
def test_gradcam_has_the_feature_grid_shape_for_every_conv_model(name):
    torch.manual_seed(0)
    frontend = input_pipeline(MODELS[name].input_kind, FeatureConfig())[0]  # fusion: packed rows
    model = build_model(name, 3, 128, tiny=True).eval()
    maps = gradcam_windows(model, frontend, _random_windows(2, 1.0, 22050), target=1)
    assert maps.shape == (2, 128, 1 + 22050 // 512)  # (B, n_mels, frames of one window)
    assert maps.dtype == np.float32 and np.isfinite(maps).all() and (maps >= 0).all()


def test_gradcam_works_through_the_frozen_musicnn_probe(tmp_path, monkeypatch):
    from genre_core.features.spectral import MusicnnMel
    from genre_core.models.musicnn.weights import MusicnnWeightsMissing

    monkeypatch.setenv("GENRELENS_CACHE_DIR", str(tmp_path))
    try:
        model = build_model("musicnn_probe", 3, 96).eval()
    except MusicnnWeightsMissing as exc:
        pytest.skip(str(exc))
    maps = gradcam_windows(model, MusicnnMel(), _random_windows(2, 3.0, 16000), target=0)
    assert maps.shape == (2, 96, 187)  # MusicnnMel's (bands, frames) of 3 s
    assert np.isfinite(maps).all() and maps.max() > 0  # gradients reach the frozen layer


def test_a_model_without_conv_layers_is_refused():
    name = next(n for n, spec in MODELS.items() if spec.is_torch and spec.input_kind != "musicnn"
                and n not in CONV_MODELS)  # the recurrent nets
    model = build_model(name, 3, 60, tiny=True).eval()
    with pytest.raises(ValueError, match="no convolutional layer"):
        gradcam_features(model, torch.zeros(1, 1, 60, 20), 0)


# -------------------------------------------------------- localisation of a planted event


def _event_images(n: int, rng: np.random.Generator, at: tuple[slice, slice] | None = None):
    """Noise images (n, F, T); odd rows (class 1) carry a bright 8x8 patch, at `at` or at a
    random place, so the model must learn the pattern, not a position."""
    x = rng.standard_normal((n, N_BANDS, N_FRAMES)).astype(np.float32)
    labels = np.arange(n) % 2
    for i in np.flatnonzero(labels):
        bands, frames = at or (slice(b := rng.integers(0, N_BANDS - 8), b + 8),
                               slice(f := rng.integers(0, N_FRAMES - 8), f + 8))
        x[i, bands, frames] += 3.0
    return x, labels


@pytest.fixture(scope="module")
def event_model():
    """A tiny cnn that learned 'a bright patch means class 1' (deterministic, ~3 s)."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build_model("cnn", 2, N_BANDS, tiny=True)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        x, y = _event_images(32, rng)
        loss = nn.functional.cross_entropy(model(torch.from_numpy(x)[:, None]).logits,
                                           torch.from_numpy(y))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def test_gradcam_peaks_at_the_planted_event(event_model):
    x, _ = _event_images(4, np.random.default_rng(1), at=(EVENT_BANDS, EVENT_FRAMES))
    frontend = nn.Unflatten(1, (1, N_BANDS, N_FRAMES))  # "audio" (B, F*T) -> (B, 1, F, T)
    maps = gradcam_windows(event_model, frontend, x.reshape(4, -1), target=1)[1::2]  # class 1
    assert maps.shape == (2, N_BANDS, N_FRAMES)
    for cam in maps:
        band, frame = np.unravel_index(cam.argmax(), cam.shape)
        assert 36 <= band < 52 and 40 <= frame < 56, (band, frame)  # event +- 4 px
        inside = cam[EVENT_BANDS, EVENT_FRAMES].mean()
        assert inside > 3 * cam.mean()


def test_occlusion_drop_is_largest_for_the_event_bands(event_model):
    x, _ = _event_images(4, np.random.default_rng(2), at=(EVENT_BANDS, EVENT_FRAMES))
    with_event = torch.from_numpy(x[1::2])[:, None]  # (2, 1, F, T)
    drops = band_occlusion(event_model, with_event, target=1, n_groups=8)  # 8 bands a group
    assert drops.shape == (8,) and drops.argmax() == 5  # bands 40-47
    assert drops[5] > 0.3


# ----------------------------------------------------------------------- a trained run


def test_track_gradcam_spans_the_whole_track_on_the_mel_grid(toy_store):
    from genre_core.train.inference import load_run
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit
    from genre_core.features.cache import ShardCache

    config = TrainConfig.tiny_preset("toy", "cnn", epochs=1)
    run = load_run(toy_store, fit(toy_store, config, progress=False).run_id, "cpu")
    track = toy_store.tracks("toy").iloc[0]
    y = ShardCache(toy_store.path.parent / "cache").load(track.path, track.sha1, run.sr)
    cam = track_gradcam(run, y, target=0)
    # 4 s at 22050 Hz, hop 512, centred frames: 1 + 88200 // 512 = 173 frames, 128 bands.
    assert cam.shape == (128, 173) and np.isfinite(cam).all()
    short = track_gradcam(run, np.asarray(y[:22050]), target=0)  # shorter than a window
    assert short.shape == (128, 43)  # the padded window's map, cut where the second ends
