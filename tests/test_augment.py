"""Augmentation: identity when off, seeded determinism, and known answers on sines."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from genre_core.features import augment as aug

SR = 22050


def _sine(freq: float, seconds: float = 1.0, batch: int = 1) -> torch.Tensor:
    t = torch.arange(int(SR * seconds)) / SR
    return torch.sin(2 * math.pi * freq * t).repeat(batch, 1)  # (B, N)


def _peak_hz(y: torch.Tensor) -> float:
    """Frequency of the largest spectral peak of a 1-D signal (edges trimmed, Hann window)."""
    core = y[len(y) // 8: -len(y) // 8]
    spectrum = torch.fft.rfft(core * torch.hann_window(len(core))).abs()
    return float(spectrum.argmax()) * SR / len(core)


def _db(ratio: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(ratio)


@pytest.fixture
def batch() -> torch.Tensor:
    g = aug.make_generator(123)
    return 0.3 * torch.randn(4, SR, generator=g)  # (B, N): 1 s of noise per example


ALL_ON = aug.AugmentConfig(stretch_prob=1.0, pitch_prob=1.0, mixup_alpha=0.4)


def test_configs_roundtrip_and_validate():
    assert aug.AugmentConfig() == aug.AugmentConfig.default()
    restored = aug.AugmentConfig.from_dict(json.loads(json.dumps(ALL_ON.to_dict())))
    assert restored == ALL_ON
    with pytest.raises(ValueError):
        aug.AugmentConfig(stretch_prob=1.5)
    with pytest.raises(ValueError):
        aug.AugmentConfig(stretch_range=(1.2, 0.8))


def test_none_is_identity_and_draws_nothing(batch):
    none = aug.AugmentConfig.none()
    g = aug.make_generator(0)
    state = g.get_state()
    x = torch.randn(4, 1, 16, 30)
    assert aug.augment_waveform(batch, SR, none, generator=g) is batch
    assert aug.spec_augment(x, none, g) is x
    y = torch.eye(4)
    assert aug.mixup(x, y, none.mixup_alpha, generator=g) == (x, y)
    assert torch.equal(g.get_state(), state)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_dtypes_and_determinism(batch, dtype):
    y = batch.to(dtype)
    out1 = aug.augment_waveform(y, SR, ALL_ON, generator=aug.make_generator(5))
    out2 = aug.augment_waveform(y, SR, ALL_ON, generator=aug.make_generator(5))
    out3 = aug.augment_waveform(y, SR, ALL_ON, generator=aug.make_generator(6))
    assert out1.shape == y.shape and out1.dtype == dtype
    assert torch.equal(out1, out2) and not torch.equal(out1, out3)
    x = torch.randn(4, 1, 32, 50, dtype=dtype)
    s1 = aug.spec_augment(x, ALL_ON, 7)  # an int seed works too
    assert s1.shape == x.shape and s1.dtype == dtype
    assert torch.equal(s1, aug.spec_augment(x, ALL_ON, aug.make_generator(7)))
    m1 = aug.mixup(x, torch.eye(4, dtype=dtype), 0.4, generator=aug.make_generator(1))
    m2 = aug.mixup(x, torch.eye(4, dtype=dtype), 0.4, generator=aug.make_generator(1))
    assert all(torch.equal(a, b) for a, b in zip(m1, m2)) and m1[0].dtype == dtype


def test_apply_gain_changes_rms_by_the_given_db(batch):
    gains = torch.tensor([-6.0, -1.5, 0.0, 4.0])
    out = aug.apply_gain(batch, gains)
    change = _db(out.pow(2).mean(-1) / batch.pow(2).mean(-1))
    torch.testing.assert_close(change, gains)


def test_random_gain_is_a_per_example_scale_within_range(batch):
    config = aug.AugmentConfig(gain_db=6.0, noise_snr_db=None, spec_time_masks=0,
                               spec_freq_masks=0)
    out = aug.augment_waveform(batch, SR, config, generator=aug.make_generator(2))
    ratio = out / batch  # (B, N): constant along N for a pure gain
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))
    drawn_db = 20 * torch.log10(ratio[:, 0])
    assert drawn_db.abs().max() <= 6.0 and drawn_db.unique().numel() == 4
    change = _db(out.pow(2).mean(-1) / batch.pow(2).mean(-1))
    torch.testing.assert_close(change, drawn_db)


@pytest.mark.parametrize("snr", [0.0, 10.0, 30.0])
def test_noise_hits_the_requested_snr(snr):
    y = _sine(440, batch=3) * torch.tensor([[1.0], [0.1], [0.01]])
    config = aug.AugmentConfig(gain_db=0.0, noise_snr_db=snr)
    out = aug.augment_waveform(y, SR, config, generator=aug.make_generator(3))
    measured = _db(y.pow(2).mean(-1) / (out - y).pow(2).mean(-1))
    assert torch.all((measured - snr).abs() < 1.0)
    silent = torch.zeros(1, 1000)
    assert torch.equal(aug.add_noise(silent, snr, aug.make_generator(0)), silent)


@pytest.mark.parametrize("semitones, expected_hz", [(12, 880.0), (-12, 220.0), (3, 523.25)])
def test_pitch_shift_moves_the_peak(semitones, expected_hz):
    y = _sine(440)
    out = aug.pitch_shift(y, SR, semitones)
    assert out.shape == y.shape
    bin_hz = SR / (len(y[0]) * 3 / 4)
    assert abs(_peak_hz(out[0]) - expected_hz) <= 2 * bin_hz


def test_time_stretch_keeps_length_and_pitch_and_moves_events():
    t = torch.arange(int(1.5 * SR)) / SR
    burst = torch.sin(2 * math.pi * 440 * t) * ((t >= 0.4) & (t < 0.6))
    y = burst[None]  # (1, N)
    for rate in (0.8, 2.0):
        out = aug.time_stretch(y, SR, rate)
        assert out.shape == y.shape
        energy = out[0].pow(2)
        centre_s = float((energy * t).sum() / energy.sum())
        assert abs(centre_s - 0.5 / rate) < 0.03  # the burst's centre moves to 0.5 s / rate
    steady = aug.time_stretch(_sine(440), SR, 1.1)
    assert abs(_peak_hz(steady[0]) - 440) < 3


def test_stretch_prob_one_stretches_every_example_by_the_drawn_rate(batch):
    config = dataclasses.replace(
        aug.AugmentConfig.none(), stretch_prob=1.0, stretch_range=(1.2, 1.2)
    )
    out = aug.augment_waveform(batch, SR, config, generator=aug.make_generator(0))
    torch.testing.assert_close(out, aug.time_stretch(batch, SR, 1.2))


def test_spec_augment_masks_the_drawn_spans():
    x = torch.randn(3, 1, 40, 100) - 50.0  # log-mel-like: far from zero
    config = aug.AugmentConfig(spec_time_masks=2, spec_time_width=15, spec_freq_masks=1,
                               spec_freq_width=6)
    out = aug.spec_augment(x, config, aug.make_generator(11))
    replay = aug.make_generator(11)  # spec_augment draws time spans, then frequency spans
    t_starts, t_widths = aug.mask_spans(3, 100, 2, max_width=15, generator=replay)
    f_starts, f_widths = aug.mask_spans(3, 40, 1, max_width=6, generator=replay)
    assert t_widths.max() <= 15 and f_widths.max() <= 6
    for b in range(3):
        frames = {int(s) + i for s, w in zip(t_starts[b], t_widths[b]) for i in range(int(w))}
        bands = {int(s) + i for s, w in zip(f_starts[b], f_widths[b]) for i in range(int(w))}
        fill = x[b].mean()
        changed = (out[b, 0] != x[b, 0])  # (F, T)
        masked_frames = {t for t in range(100) if torch.all(out[b, 0, :, t] == fill)}
        masked_bands = {f for f in range(40) if torch.all(out[b, 0, f, :] == fill)}
        assert masked_frames == frames and masked_bands == bands
        expected = len(frames) * 40 + len(bands) * 100 - len(frames) * len(bands)
        assert int(changed.sum()) == expected


def test_mixup_targets_sum_to_one_and_mix_inputs():
    x = torch.randn(8, 1, 4, 5)
    y = torch.nn.functional.one_hot(torch.arange(8) % 3, 3).float()
    xm, ym = aug.mixup(x, y, 0.4, generator=aug.make_generator(9))
    assert xm.shape == x.shape and ym.shape == y.shape
    torch.testing.assert_close(ym.sum(dim=1), torch.ones(8))
    assert torch.all(ym >= 0) and not torch.equal(xm, x)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("generator_device", ["cuda", "cpu"])
def test_runs_on_cuda_with_either_generator(generator_device):
    y = _sine(440, batch=4).cuda()
    g = aug.make_generator(0, device=generator_device)
    out = aug.augment_waveform(y, SR, ALL_ON, generator=g)
    x = aug.spec_augment(torch.randn(4, 1, 32, 50, device="cuda"), ALL_ON, g)
    xm, ym = aug.mixup(x, torch.eye(4, device="cuda"), 0.4, generator=g)
    assert out.device.type == x.device.type == xm.device.type == ym.device.type == "cuda"
    assert out.shape == y.shape and torch.isfinite(out).all()
