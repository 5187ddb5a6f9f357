"""musicnn port: input pipeline vs librosa, numerical match with the TF model's reference
outputs, weight loading and caching, taggram, and the genre-transfer models.

Needs the `musicnn` wheel (checkpoints only, never TensorFlow); skipped with the pip hint
when it is missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import librosa
import numpy as np
import pytest
import torch

from genre_core.models.musicnn.net import (
    MUSICNN_SR, SPECS, WINDOW_FRAMES, MusicnnMel, build_musicnn_finetune,
    build_musicnn_probe, load_tagger, taggram,
)
from genre_core.models.musicnn.pooled_front import timbral_branch
from genre_core.models.musicnn.weights import (
    INSTALL_HINT, MusicnnWeightsMissing, pretrained_state_dict, tag_names,
)
from tests.helpers import reference_file

REFERENCE = reference_file("musicnn_msd_reference.json")


# Converted musicnn weights go to a scratch dir, never the checkout's data/.
pytestmark = pytest.mark.usefixtures("scratch_cache_dir")


@pytest.fixture(scope="module")
def msd_tagger():
    try:
        return load_tagger("MSD_musicnn")
    except MusicnnWeightsMissing as exc:
        pytest.skip(str(exc))


def _reference_input() -> np.ndarray:
    t = np.arange(187, dtype=np.float64)[:, None]
    f = np.arange(96, dtype=np.float64)[None, :]
    x = 2.2 + 1.2 * np.sin(0.05 * (t + 1) * (f + 1) / 8) * np.cos(0.3 * f / 7)
    return x.astype(np.float32)  # (187, 96) = (frames, bands), the TF model's layout


# ---------------------------------------------------------------- input pipeline


def _sine_and_noise(seconds: float) -> np.ndarray:
    n = int(seconds * MUSICNN_SR)
    t = np.arange(n) / MUSICNN_SR
    noise = np.random.default_rng(0).standard_normal(n)
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * noise).astype(np.float32)


def test_mel_three_seconds_is_one_window():
    y = torch.from_numpy(_sine_and_noise(3.0))
    assert MusicnnMel()(y[None]).shape == (1, 1, 96, WINDOW_FRAMES)
    assert MusicnnMel()(torch.stack([y, y])).shape == (2, 1, 96, 187)


@pytest.mark.parametrize("pad_mode", ["reflect", "constant"])
def test_mel_matches_librosa_pipeline(pad_mode):
    """The wheel's batch_data, recomputed with librosa. Its librosa (<0.10) padded with
    "reflect"; explicit pad_mode keeps this test independent of the installed default."""
    y = _sine_and_noise(3.0)
    mel = librosa.feature.melspectrogram(y=y, sr=MUSICNN_SR, hop_length=256, n_fft=512,
                                         n_mels=96, pad_mode=pad_mode)  # (96, 188)
    # float16 storage as in the wheel; numpy 1.x then upcast 10000 * x to float32.
    expected = np.log10(10000 * mel.astype(np.float16).astype(np.float32) + 1)[:, :187]
    got = MusicnnMel(pad_mode=pad_mode)(torch.from_numpy(y)[None])[0, 0].numpy()
    # 4.3e-4 = one float16 rounding step in log10 units, hit when torch and librosa's
    # float32 mel values fall on either side of a float16 boundary.
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3)
    exact = np.log10(10000 * mel.astype(np.float64) + 1)[:, :187]
    got32 = MusicnnMel(pad_mode=pad_mode, float16=False)(torch.from_numpy(y)[None])[0, 0]
    np.testing.assert_allclose(got32.numpy(), exact, rtol=0, atol=1e-4)


# ---------------------------------------------------------------- pretrained taggers


def test_matches_tensorflow_reference(msd_tagger):
    if not REFERENCE.is_file():
        pytest.skip(f"musicnn reference outputs not found: {REFERENCE}")
    ref = json.loads(REFERENCE.read_text())
    kind, tol = ref["tolerance"].split()
    assert kind == "abs"
    x = torch.from_numpy(_reference_input()).T[None, None]  # (1, 1, 96, 187)
    with torch.no_grad():
        out = msd_tagger(x)
    tags, pen = out.tags[0].numpy(), out.penultimate[0].numpy().astype(np.float64)
    assert list(tag_names("MSD_musicnn")) == ref["tag_names"]
    errors = {
        "sigmoid_tags": np.abs(tags - np.array(ref["sigmoid_tags"])).max(),
        "penultimate_first10": np.abs(pen[:10] - np.array(ref["penultimate_200_first10"])).max(),
        "penultimate_mean": abs(pen.mean() - ref["penultimate_200_mean"]),
        # The reference std is the sample std (ddof=1); ddof=0 differs by 2.6e-3.
        "penultimate_std": abs(pen.std(ddof=1) - ref["penultimate_200_std"]),
    }
    print("max abs error vs reference:", errors)
    assert max(errors.values()) <= float(tol), errors


def test_all_wheel_variants_load():
    x = torch.from_numpy(_reference_input()).T[None, None]  # (1, 1, 96, 187)
    for variant in ["MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"]:
        try:
            model = load_tagger(variant)
        except MusicnnWeightsMissing as exc:
            pytest.skip(str(exc))
        with torch.no_grad():
            out = model(x)
        assert out.tags.shape == (1, 50) and torch.isfinite(out.tags).all(), variant
        assert len(tag_names(variant)) == 50
        width = 256 if "vgg" in variant else 200
        assert out.penultimate.shape == (1, width), variant
        if "vgg" not in variant:
            assert out.max_pool.shape == out.mean_pool.shape == (1, 753)


def test_pooled_features_and_taggram(msd_tagger):
    x = torch.rand(1, 1, 96, 2 * WINDOW_FRAMES + 40) * 3  # 2 full windows + a dropped tail
    with torch.no_grad():
        grid = taggram(msd_tagger, x)  # (1, 2, 50)
        second = msd_tagger(x[..., WINDOW_FRAMES : 2 * WINDOW_FRAMES]).tags
    assert grid.shape == (1, 2, 50)
    with torch.no_grad():
        torch.testing.assert_close(msd_tagger.taggram(x), grid)
    torch.testing.assert_close(grid[:, 1], second, atol=1e-5, rtol=0)


def test_inference_front_end_equals_layer_by_layer(msd_tagger, monkeypatch):
    """At inference the tagger pools each front-end branch over frequency before its ReLU and
    batch norm (pooled_front, ~2x faster). Outputs must equal the layers run one by one
    (autograd on), with the real weights (most of their batch-norm scales are negative)."""
    net = sys.modules[load_tagger.__module__]

    pooled_calls = []
    monkeypatch.setattr(net, "timbral_branch",
                        lambda *a: pooled_calls.append(1) or timbral_branch(*a))
    x = torch.rand(3, 1, 96, 201) * 4  # not a multiple of anything: edges of every branch
    with torch.no_grad():
        fast = msd_tagger(x)
    assert len(pooled_calls) == 2  # both timbral branches took the pooled path
    slow = msd_tagger(x)  # autograd on: layer by layer
    assert len(pooled_calls) == 2
    for name in ("tags", "penultimate", "max_pool", "mean_pool"):
        torch.testing.assert_close(getattr(fast, name), getattr(slow, name).detach(),
                                   atol=2e-5, rtol=1e-5)
    # A hook on a branch's layer (what Grad-CAM and probes read) sees the rectified map even
    # without autograd: hooks send the tagger layer by layer.
    seen = []
    hook = msd_tagger.timbral_74.act.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    try:
        with torch.no_grad():
            hooked = msd_tagger(x).tags
    finally:
        hook.remove()
    assert seen == [(3, 204, 59, 201)] and len(pooled_calls) == 2
    torch.testing.assert_close(hooked, fast.tags, atol=2e-5, rtol=1e-5)


def test_missing_wheel_gives_the_pip_command(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "musicnn" else real(name, *a))
    with pytest.raises(MusicnnWeightsMissing) as err:
        pretrained_state_dict("MSD_musicnn", use_cache=False)
    assert str(err.value) == INSTALL_HINT
    assert INSTALL_HINT == ("musicnn weights not found; install them with: "
                            "pip install --no-deps musicnn==0.1.0")


def test_corrupt_or_stale_cache_is_rebuilt(msd_tagger, tmp_path):
    cache = tmp_path / "MSD_musicnn.pt"
    cache.write_bytes(b"\x00garbage, not a torch file")
    state = pretrained_state_dict("MSD_musicnn", cache_dir=tmp_path)
    assert state["classifier.weight"].shape == (50, 200)
    blob = torch.load(cache, weights_only=True)  # rewritten as a valid cache
    blob["fingerprint"] = [["another wheel", 0, 0]]
    blob["state_dict"]["classifier.weight"].zero_()
    torch.save(blob, cache)
    fresh = pretrained_state_dict("MSD_musicnn", cache_dir=tmp_path)
    assert fresh["classifier.weight"].abs().sum() > 0  # the stale zeros were not used
    assert os.listdir(tmp_path) == ["MSD_musicnn.pt"]  # no temporary files left behind


# ---------------------------------------------------------------- genre transfer


def test_registry_entries():
    for name, spec in SPECS.items():
        assert spec.name == name and spec.family == "pretrained"
        assert spec.input_kind == "musicnn" and spec.is_torch
    with pytest.raises(ValueError, match="96 mel bands"):
        build_musicnn_probe(4, n_features=128)


def test_probe_shapes_frozen_backbone_and_gradcam_layer(msd_tagger):
    model = build_musicnn_probe(4, 96)
    assert model.input_kind == "musicnn"
    assert all(not p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    seen = {}

    def record(module, inputs, output):
        seen["shape"] = output.shape  # returns None: the output is left unchanged

    hook = model.layer(model.gradcam_layer).register_forward_hook(record)
    out = model(torch.rand(3, 1, 96, 64) * 3)
    hook.remove()
    assert out.logits.shape == (3, 4) and out.embedding.shape == (3, 200)
    assert len(seen["shape"]) == 4  # (B, C, F', T'): what LayerGradCam needs


def test_probe_head_trains(msd_tagger):
    torch.manual_seed(0)
    model = build_musicnn_probe(3, 96).train()
    assert not model.backbone.training  # pretrained batch-norm statistics stay in use
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    x = torch.rand(6, 1, 96, 48) * 3  # short windows keep the test quick on a CPU
    x[:2, :, :30] += 2.0  # three classes, each with a different spectral emphasis
    x[2:4, :, 60:] += 2.0
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    optim = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(model(x).logits, y)
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # incl. running stats


def test_finetune_trains_the_backbone(msd_tagger):
    model = build_musicnn_finetune(2, 96).train()
    assert all(p.requires_grad for p in model.parameters())
    out = model(torch.rand(2, 1, 96, 40) * 3)
    out.logits.sum().backward()
    assert model.backbone.timbral_74.conv.weight.grad.abs().sum() > 0
