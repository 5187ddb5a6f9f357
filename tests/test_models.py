"""Every registered model: shapes for any clip length, a Grad-CAM layer that exists and is
4-D, and a loss that falls on a learnable toy task. Baselines fit a separable table."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from genre_core.features.spectral import feature_bins
from genre_core.models import (
    BASELINE_NAMES,
    MODELS,
    TORCH_MODEL_NAMES,
    GenreModel,
    build_model,
    get_spec,
)

# Models whose features this file can make (a pretrained front end brings its own tests).
TORCH_MODELS = [n for n in TORCH_MODEL_NAMES if MODELS[n].input_kind in ("logmel", "mfcc")]


def _bins(name: str) -> int:
    return feature_bins(MODELS[name].input_kind)


def _toy_bands(n_features: int, n: int = 48, frames: int = 64, seed: int = 0):
    """(n, 1, F, T) dB-like images, 3 classes: class c is 15 dB louder in the c-th third of
    the bins. Centred near -50 with 5 dB noise, so the model must cope with the raw scale."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = -50.0 + 5.0 * torch.randn(n, 1, n_features, frames, generator=g)
    edges = torch.linspace(0, n_features, 4).long()
    for c in range(3):
        x[y == c, :, edges[c] : edges[c + 1], :] += 15.0
    return x, y


def test_registry_is_consistent():
    assert set(TORCH_MODEL_NAMES) | set(BASELINE_NAMES) == set(MODELS)
    assert not set(TORCH_MODEL_NAMES) & set(BASELINE_NAMES)
    assert {"logreg", "sgd", "rf", "svm", "mlp"} <= set(BASELINE_NAMES)
    assert {"cnn_small", "cnn", "vgg", "resnet", "rnn", "gru", "crnn", "transformer"} <= set(
        TORCH_MODEL_NAMES
    )
    for name, spec in MODELS.items():
        assert spec.name == name
        assert spec.family in {"baseline", "cnn", "rnn", "crnn", "transformer", "pretrained", "fusion", "ssl"}


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="valid models: .*cnn"):
        get_spec("wavenet")
    with pytest.raises(ValueError, match="'wavenet'"):
        build_model("wavenet", n_classes=10, n_features=128)


@pytest.mark.parametrize("name", TORCH_MODELS)
@pytest.mark.parametrize("tiny", [True, False])
def test_output_shapes_for_any_length(name, tiny):
    torch.manual_seed(0)
    model = build_model(name, n_classes=5, n_features=_bins(name), tiny=tiny).eval()
    assert isinstance(model, GenreModel)
    assert model.input_kind == MODELS[name].input_kind
    dims = set()
    frame_counts = (32, 97) if tiny else (64,)  # full-size models: one length keeps it quick
    for frames in frame_counts:
        with torch.no_grad():
            out = model(torch.randn(2, 1, _bins(name), frames))
        assert out.logits.shape == (2, 5)
        assert out.embedding.dim() == 2 and out.embedding.shape[0] == 2
        assert torch.isfinite(out.logits).all() and torch.isfinite(out.embedding).all()
        dims.add(out.embedding.shape[1])
    assert len(dims) == 1  # the embedding size does not depend on the clip length


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_gradcam_layer_gives_a_4d_activation(name):
    model = build_model(name, n_classes=3, n_features=_bins(name), tiny=True).eval()
    if model.gradcam_layer is None:
        assert MODELS[name].family == "rnn"  # only the convolution-free models may opt out
        return
    captured = []
    layer = model.get_submodule(model.gradcam_layer)
    handle = layer.register_forward_hook(lambda _m, _inp, out: captured.append(out))
    with torch.no_grad():
        model(torch.randn(2, 1, _bins(name), 64))
    handle.remove()
    assert len(captured) == 1  # the layer runs once per forward
    assert captured[0].dim() == 4 and captured[0].shape[0] == 2  # (B, C, F', T')


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_inference_folding_keeps_every_output_and_the_gradcam_layer(name):
    # load_run folds BatchNorms into convolutions for speed: a trained model's outputs,
    # embeddings and Grad-CAM layer must not change (BatchNorm statistics made non-trivial).
    import copy

    from genre_core.models.base import fold_batch_norms

    torch.manual_seed(0)
    model = build_model(name, n_classes=3, n_features=_bins(name), tiny=True).eval()
    for norm in (m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)):
        norm.running_mean.normal_(0.0, 0.3)
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.data.uniform_(0.5, 1.5)
    folded = fold_batch_norms(copy.deepcopy(model))
    x = torch.randn(3, 1, _bins(name), 64)
    with torch.no_grad():
        a, b = model(x), folded(x)
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(b.embedding, a.embedding, rtol=1e-4, atol=1e-5)
    if model.gradcam_layer is not None:
        folded.get_submodule(model.gradcam_layer)  # still there by its name


@pytest.mark.parametrize("name", [n for n in TORCH_MODELS if MODELS[n].family != "rnn"])
def test_captum_gradcam_runs_on_the_named_layer(name):
    attr = pytest.importorskip("captum.attr")
    model = build_model(name, n_classes=3, n_features=_bins(name), tiny=True).eval()
    cam = attr.LayerGradCam(lambda x: model(x).logits, model.get_submodule(model.gradcam_layer))
    heat = cam.attribute(torch.randn(2, 1, _bins(name), 64), target=1)
    assert heat.dim() == 4 and heat.shape[:2] == (2, 1)  # (B, 1, F', T'), summed over channels
    assert torch.isfinite(heat).all()


@pytest.mark.parametrize("name", TORCH_MODELS)
def test_tiny_model_learns_the_toy_task(name):
    torch.manual_seed(0)
    model = build_model(name, n_classes=3, n_features=_bins(name), tiny=True).train()
    x, y = _toy_bands(_bins(name))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):  # full-batch steps
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x).logits, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # Average the last steps: dropout makes any single step's loss noisy.
    assert np.mean(losses[-3:]) < 0.7 * losses[0], losses


def _toy_table(n: int, seed: int):
    """(n, 57) table, 3 classes with shifted means, columns on the table's mixed scales."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = rng.normal(size=(3, 57)) * 1.5
    scales = 10.0 ** rng.uniform(-3, 3, size=57)  # variances near 0 next to Hz in thousands
    x = (centres[y] + rng.normal(size=(n, 57))) * scales
    return x, y


@pytest.mark.parametrize("name", BASELINE_NAMES)
def test_baseline_fits_and_predicts_probabilities(name):
    x, y = _toy_table(120, seed=0)
    (x_train, y_train), (x_test, y_test) = (x[:90], y[:90]), (x[90:], y[90:])
    estimator = build_model(name, n_classes=3, n_features=57, seed=0)
    estimator.fit(x_train, y_train)
    proba = estimator.predict_proba(x_test)
    assert proba.shape == (30, 3)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert (estimator.predict(x_test) == y_test).mean() > 0.6  # chance is 1/3
