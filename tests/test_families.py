"""What issue 28 changed so that the weaker families earn their place on the demo protocol:
SpecAugment keeps each MFCC coefficient at its own level, and a run trained before a family's
architecture changed says so when it is loaded instead of failing with torch's key list."""

from __future__ import annotations

import math

import pytest
import torch

from genre_core.features.augment import AugmentConfig
from genre_core.features.spectral import MFCC
from genre_core.models import build_model
from genre_core.train.loop import LoopSettings, Trainer

SR = 22050


def _music_like(batch: int = 4, seconds: float = 3.0) -> torch.Tensor:
    """(B, N) a decaying tone on a noise floor: MFCC rows on their usual, very different scales."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(int(SR * seconds)) / SR
    tone = torch.sin(2 * math.pi * 220 * t) * torch.exp(-2 * (t % 0.5))
    return 0.3 * tone + 0.02 * torch.randn(batch, len(t), generator=g)


def _trainer(model: str, frontend: torch.nn.Module, augment: AugmentConfig) -> Trainer:
    settings = LoopSettings(epochs=1, batch_size=4, lr=1e-3, weight_decay=0.0, warmup_epochs=0.0, patience=1,
                            grad_clip=1.0, augment=augment, seed=0)
    net = build_model(model, 3, 60, tiny=True)
    return Trainer(net, frontend, settings, torch.device("cpu"), steps_per_epoch=1, sr=SR)


def test_masked_mfcc_frames_keep_each_coefficients_level():
    """A training window of an MFCC model after SpecAugment: a masked frame or coefficient takes
    that coefficient's mean over the window. With one mean for the whole example (~1, between
    c0 near -130 and the deltas near 0) every masked frame was a jump of several standard
    deviations in c0 and c1 that the rnn met in training and never in a test window."""
    masks_only = AugmentConfig(gain_db=0.0, noise_snr_db=None, spec_time_masks=2, spec_time_width=20,
                               spec_freq_masks=2, spec_freq_width=8)
    trainer = _trainer("rnn", MFCC(), masks_only)
    audio = _music_like()
    clean = trainer._features(audio, train=False)  # (B, 1, 60, T), what evaluation sees
    masked = trainer._features(audio, train=True)
    changed = masked != clean
    assert changed.any()
    level = clean.mean(dim=-1, keepdim=True).expand_as(clean)  # each coefficient's own mean
    assert torch.allclose(masked[changed], level[changed], atol=1e-3)
    z = (masked - level).abs() / clean.std(dim=-1, keepdim=True)
    assert float(z[:, :, :2][changed[:, :, :2]].max()) < 1e-3  # c0 and c1 untouched in scale


def test_a_run_trained_before_its_family_changed_asks_for_a_retrain(toy_store):
    """The transformer gained a convolutional stem: weights of a transformer run trained before
    have no stem and a 16x16 patch embedding. Loading one names the run and says to retrain."""
    from genre_core import paths
    from genre_core.store import StoreError
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit
    from genre_core.train.inference import file_sha256, load_run
    from genre_core.train.loop import save_file

    run = fit(toy_store, TrainConfig.tiny_preset("toy", "transformer", epochs=1), progress=False)
    assert load_run(toy_store, run.run_id, device="cpu").model is not None  # today's weights load
    model_file = paths.run_dir(toy_store.path, run.run_id) / paths.MODEL_FILE
    state = torch.load(model_file, weights_only=True)
    old = {k: v for k, v in state.items() if not k.startswith("stem.")}
    old["patch_embed.weight"] = torch.zeros(32, 1, 16, 16)  # the tiny transformer's former embedding
    save_file(old, model_file)
    with toy_store.write() as con:  # the file the run left, as far as its checksum goes
        con.execute("UPDATE run_files SET sha256 = ? WHERE run_id = ? AND name = ?",
                    [file_sha256(model_file), run.run_id, model_file.name])
    with pytest.raises(StoreError) as raised:
        load_run(toy_store, run.run_id, device="cpu")
    message = str(raised.value)
    assert run.run_id in message and "retrain" in message and "\n" not in message
