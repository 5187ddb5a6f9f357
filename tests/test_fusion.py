"""The fusion models: packed input, branch sets, train statistics, an end-to-end tiny run
(stored predictions, reload, Grad-CAM over the mel branch, analysis) and the registry/CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from genre_core.features.augment import AugmentConfig, spec_augment
from genre_core.features.fusion_input import VECTOR_DIM, FusionFrontend, pack, unpack
from genre_core.features.pipeline import input_pipeline
from genre_core.features.spectral import FeatureConfig
from genre_core.models import MODELS, TORCH_MODEL_NAMES, build_model
from genre_core.models.fusion import TrainStandardise

FUSION = ("fusion", "fusion_mel", "fusion_hc")
BRANCHES = {"fusion": {"mel", "hc"}, "fusion_mel": {"mel"}, "fusion_hc": {"hc"}}


def _windows(n: int, seconds: float, sr: int = 22050) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.from_numpy((0.1 * rng.standard_normal((n, int(seconds * sr)))).astype(np.float32))


def test_pack_and_unpack_are_inverse_for_any_window_length():
    image = torch.randn(2, 1, 128, 44)  # a 1-s window: 44 frames, so the vector needs 2 rows
    vector = torch.randn(2, VECTOR_DIM)
    x = pack(image, vector)
    assert x.shape == (2, 1, 130, 44)
    back_image, back_vector = unpack(x, 128)
    assert torch.equal(back_image, image) and torch.equal(back_vector, vector)


def test_the_front_end_packs_the_mel_image_and_the_78_column_table():
    frontend, sr, bins = input_pipeline("fusion", FeatureConfig())
    assert isinstance(frontend, FusionFrontend) and (sr, bins) == (22050, 128)
    x = frontend(_windows(2, 3.0))
    assert x.shape == (2, 1, 129, 130)  # 128 mel rows + one row holding the 78 values
    _, vector = unpack(x, bins)
    assert torch.isfinite(vector).all() and vector.abs().max() < 40  # signed log: dB-like scale
    assert torch.equal(frontend(_windows(2, 3.0)), x)  # memoised: the same values again


@pytest.mark.parametrize("name", FUSION)
@pytest.mark.parametrize("seconds", [3.0, 1.0])
def test_each_branch_set_builds_and_forwards(name, seconds):
    torch.manual_seed(0)
    frames = 1 + int(seconds * 22050) // 512
    x = pack(-40 + 5 * torch.randn(4, 1, 128, frames), torch.randn(4, VECTOR_DIM))
    model = build_model(name, 5, 128, tiny=True)
    assert MODELS[name].input_kind == "fusion" and model.image_bands == 128
    assert {b for b in ("mel", "hc") if hasattr(model, f"{b}_branch")} == BRANCHES[name]
    out = model(x)
    assert out.logits.shape == (4, 5) and out.embedding.shape == (4, 32)
    assert (model.gradcam_layer is not None) == ("mel" in BRANCHES[name])
    out.logits.sum().backward()  # every branch that exists gets gradients
    assert all(p.grad is not None for p in model.parameters())


def test_training_hides_the_handcrafted_branch_from_half_the_windows_evaluation_from_none():
    """Branch dropout: the handcrafted branch fits the training artists first (demo protocol:
    fusion 0.490 without it, 0.755 with it), so in training the head must not always see it."""
    torch.manual_seed(0)
    model = build_model("fusion", 5, 128, tiny=True)
    seen = []
    model.head.register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    x = pack(-40 + 5 * torch.randn(400, 1, 128, 44), torch.randn(400, VECTOR_DIM))
    hidden = lambda: (seen[-1][:, 32:] == 0).all(dim=1).float().mean().item()  # hc half of the head input
    model.train()(x)
    assert 0.4 < hidden() < 0.6
    model.eval()(x)
    assert hidden() < 0.02  # every window's handcrafted projection reaches the head
    only_hc = build_model("fusion_hc", 5, 128, tiny=True)
    only_hc.head.register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    only_hc.train()(x)
    assert (seen[-1] == 0).all(dim=1).float().mean().item() < 0.02  # alone, the branch is never hidden


def test_the_vector_branch_uses_train_statistics_only():
    norm = TrainStandardise(3)
    train = torch.tensor([[1.0, 10.0, -5.0], [3.0, 30.0, -5.0]])
    norm.train()(train)
    norm.eval()(torch.full((4, 3), 100.0))  # evaluation never moves the statistics
    assert norm.count.item() == 2
    z = norm(train)
    assert torch.allclose(z[:, :2], torch.tensor([[-1.0, -1.0], [1.0, 1.0]]), atol=1e-3)
    assert torch.all(z[:, 2] == 0)  # a constant column: no division by zero


def test_spec_augment_leaves_the_vector_rows_alone():
    x = pack(torch.randn(4, 1, 128, 130), torch.randn(4, VECTOR_DIM))
    config = AugmentConfig.default()
    out = spec_augment(x, config, 0, image_bands=128)
    assert torch.equal(out[:, :, 128:], x[:, :, 128:]) and not torch.equal(out[:, :, :128], x[:, :, :128])


def test_registry_and_cli_list_the_fusion_models():
    assert set(FUSION) <= set(TORCH_MODEL_NAMES)
    text = subprocess.run([sys.executable, "-m", "training", "train", "--help"], capture_output=True,
                          text=True, check=True).stdout
    assert all(name in text for name in FUSION)


def test_fusion_trains_stores_reloads_and_explains_over_the_mel_branch(toy_store):
    from genre_core.analysis.analyze import analyze
    from genre_core.analysis.explain import band_occlusion, track_features, track_gradcam
    from genre_core.features.cache import ShardCache
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit, prepare
    from genre_core.train.inference import load_run

    config = TrainConfig.tiny_preset("toy", "fusion", epochs=1)
    result = fit(toy_store, config, progress=False)
    preds = toy_store.predictions(result.run_id, "test")
    assert toy_store.run(result.run_id)["status"] == "complete"
    assert len(preds) == len(prepare(toy_store, config).split.test)
    assert np.allclose([sum(p) for p in preds.probs], 1.0, atol=1e-4)

    run = load_run(toy_store, result.run_id, "cpu")
    assert run.model.hc_branch.standardise.count.item() > 0  # train statistics were stored
    track = toy_store.tracks("toy").iloc[0]
    y = ShardCache(toy_store.path.parent / "cache").load(track.path, track.sha1, run.sr)
    probs, embedding = run.predict_windows(y[None, : int(run.window_s * run.sr)])
    assert probs.shape == (1, 3) and embedding.shape == (1, 32)
    cam = track_gradcam(run, y, target=0)
    assert cam.shape == (128, 173) and np.isfinite(cam).all()  # the mel grid, not the packed one
    drops = band_occlusion(run.model, track_features(run, y).x, 0)
    assert drops.shape == (16,) and np.isfinite(drops).all()

    summary = analyze(toy_store, result.run_id, progress=False, device="cpu", gradcam_limit=2)
    maps = toy_store.query("SELECT n_bands FROM attributions WHERE run_id = ?", [result.run_id])
    assert len(maps) > 0 and (maps.n_bands == 64).all(), summary
