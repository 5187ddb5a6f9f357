"""Switchable training augmentation: a waveform stage, a feature (SpecAugment) stage, mixup.

Every random draw goes through an explicit `torch.Generator` (or an int seed turned into one),
never the global RNG, so a run's augmentation is reproducible from its config and seed and does
not perturb any other random stream. Everything runs on the input's device; pass a generator on
that device to avoid host-device copies of the random numbers.

Time-stretch and pitch-shift use one random rate per batch, applied to a random subset of
examples: a phase vocoder (and a resampling kernel) is built per rate, so per-example rates
would cost a kernel and an STFT round trip per example, while the subset keeps the variety of
"augmented or not" per example. Across batches the rate still covers the whole range.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Callable

import torch
import torchaudio.functional as AF
from scipy.special import betaincinv

from genre_core.features.settings import AugmentConfig

# Pitch-shift resampling ratio num/den has den <= 100: the error is under 0.09 semitone
# (median 0.0015 over +-4 semitones) and the sinc kernel stays at most ~100 x 260 taps.
_MAX_RATIO_DEN = 100


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator on `device`, seeded; keep one per training run and pass it to every call."""
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


def _as_generator(generator: torch.Generator | int) -> torch.Generator:
    return generator if isinstance(generator, torch.Generator) else make_generator(generator)


def _rand(shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Uniform [0, 1) drawn on the generator's device, returned on `like`'s device and dtype."""
    u = torch.rand(shape, generator=generator, device=generator.device)
    return u.to(device=like.device, dtype=like.dtype)


def _uniform_scalar(bounds: tuple[float, float], generator: torch.Generator) -> float:
    u = torch.rand((), generator=generator, device=generator.device).item()
    return bounds[0] + (bounds[1] - bounds[0]) * u


def _fit_length(y: torch.Tensor, n: int) -> torch.Tensor:
    """Crop or right-pad with zeros the last axis to `n` samples."""
    if y.shape[-1] >= n:
        return y[..., :n]
    return torch.nn.functional.pad(y, (0, n - y.shape[-1]))


def _stft_size(sr: int) -> int:
    """Power-of-two FFT size near 93 ms (2048 at 22.05 kHz, librosa's music default)."""
    return 2 ** max(8, round(math.log2(sr * 0.093)))


def _vocoder_stretch(y: torch.Tensor, rate: float, n_fft: int, out_len: int) -> torch.Tensor:
    """Phase-vocoder tempo change of (B, N) by `rate` (> 1 faster), fitted to `out_len`."""
    hop = n_fft // 4
    window = torch.hann_window(n_fft, device=y.device, dtype=y.dtype)
    spec = torch.stft(y, n_fft, hop, window=window, return_complex=True)  # (B, n_fft//2+1, T)
    phase_advance = torch.linspace(
        0, math.pi * hop, spec.shape[-2], device=y.device, dtype=y.dtype
    )[:, None]  # (n_fft//2+1, 1): expected phase advance per hop of each bin
    stretched = AF.phase_vocoder(spec, rate, phase_advance)  # (B, n_fft//2+1, ceil(T / rate))
    length = round(y.shape[-1] / rate)
    out = torch.istft(stretched, n_fft, hop, window=window, length=length)  # (B, length)
    return _fit_length(out, out_len)


def time_stretch(y: torch.Tensor, sr: int, rate: float) -> torch.Tensor:
    """Change tempo of `y` (B, N) by `rate` (> 1 faster) keeping pitch; length stays N.

    A slower result keeps its first N samples; a faster one is zero-padded at the end (at most
    10% of the window at the default range).
    """
    if rate == 1.0:
        return y
    return _vocoder_stretch(y, rate, _stft_size(sr), y.shape[-1])


def pitch_shift(y: torch.Tensor, sr: int, semitones: float) -> torch.Tensor:
    """Shift the pitch of `y` (B, N) by `semitones`, keeping tempo and length N.

    Resampling by the frequency ratio changes pitch and tempo together; the phase vocoder then
    undoes the tempo change. The ratio is a fraction with a small denominator so the sinc
    kernel stays small (torchaudio's kernel grows with the reduced ratio's terms).
    """
    if semitones == 0:
        return y
    ratio = Fraction(2 ** (semitones / 12)).limit_denominator(_MAX_RATIO_DEN)
    faster = AF.resample(y, orig_freq=ratio.numerator, new_freq=ratio.denominator)  # (B, ~N/r)
    return _vocoder_stretch(faster, 1 / float(ratio), _stft_size(sr), y.shape[-1])


def apply_gain(y: torch.Tensor, gain_db: torch.Tensor) -> torch.Tensor:
    """Scale each example of `y` (B, N) by `gain_db` (B,) decibels (no clipping: features are
    computed in float, so values beyond +-1 are harmless)."""
    return y * torch.pow(10.0, gain_db / 20)[:, None]  # (B, 1)


def add_noise(y: torch.Tensor, snr_db: float, generator: torch.Generator) -> torch.Tensor:
    """Add white Gaussian noise to each example of `y` (B, N) at exactly `snr_db` dB.

    The noise is scaled by its own measured power, so the realised SNR equals the target;
    silent examples stay silent.
    """
    noise = torch.randn(y.shape, generator=generator, device=generator.device)
    noise = noise.to(device=y.device, dtype=y.dtype)
    signal_power = y.pow(2).mean(dim=-1, keepdim=True)  # (B, 1)
    noise_power = noise.pow(2).mean(dim=-1, keepdim=True).clamp_min(1e-20)  # (B, 1)
    scale = torch.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    return y + scale * noise


def _on_subset(
    y: torch.Tensor, chosen: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Apply `fn` to the rows of `y` selected by the (B,) bool mask `chosen`."""
    if not bool(chosen.any()):
        return y
    out = y.clone()
    out[chosen] = fn(y[chosen])
    return out


def augment_waveform(
    y: torch.Tensor, sr: int, config: AugmentConfig, *, generator: torch.Generator | int
) -> torch.Tensor:
    """Waveform-stage augmentation of a batch `y` (B, N) at `sr` Hz; returns (B, N), same dtype.

    Order: time-stretch, pitch-shift, gain, noise (noise last so its SNR is relative to the
    final signal). Disabled stages draw no random numbers, so `AugmentConfig.none()` returns
    `y` itself and leaves the generator untouched.
    """
    if y.ndim != 2:
        raise ValueError(f"augment_waveform expects (B, N), got {tuple(y.shape)}")
    g = _as_generator(generator)
    batch = y.shape[0]
    if config.stretch_prob > 0:
        chosen = _rand((batch,), g, y) < config.stretch_prob
        rate = _uniform_scalar(config.stretch_range, g)
        y = _on_subset(y, chosen, lambda sub: time_stretch(sub, sr, rate))
    if config.pitch_prob > 0:
        chosen = _rand((batch,), g, y) < config.pitch_prob
        semitones = _uniform_scalar(config.pitch_range, g)
        y = _on_subset(y, chosen, lambda sub: pitch_shift(sub, sr, semitones))
    if config.gain_db > 0:
        y = apply_gain(y, (2 * _rand((batch,), g, y) - 1) * config.gain_db)
    if config.noise_snr_db is not None:
        y = add_noise(y, config.noise_snr_db, g)
    return y


def mask_spans(
    batch: int, size: int, n_masks: int, *, max_width: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """SpecAugment spans along an axis of `size`: (starts, widths), each (batch, n_masks) int.

    Widths are uniform in [0, max_width] (as in the SpecAugment paper), capped at `size`;
    starts are uniform over the positions where the span fits. Drawn on the generator's device.
    """
    dev = generator.device
    widths = torch.randint(0, min(max_width, size) + 1, (batch, n_masks),
                           generator=generator, device=dev)
    u = torch.rand((batch, n_masks), generator=generator, device=dev)
    starts = (u * (size - widths + 1)).floor().long()
    return starts, widths


def _span_mask(starts: torch.Tensor, widths: torch.Tensor, size: int) -> torch.Tensor:
    """(B, size) bool: True inside any of the (B, n) spans."""
    pos = torch.arange(size, device=starts.device)  # (size,)
    inside = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])  # (B, n, size)
    return inside.any(dim=1)


def spec_augment(
    x: torch.Tensor, config: AugmentConfig, generator: torch.Generator | int,
    *, image_bands: int | None = None, fill_per_row: bool = False,
) -> torch.Tensor:
    """SpecAugment on feature images `x` (B, 1, F, T); returns a new tensor of the same shape.

    `image_bands`: only the first that many rows are an image (a fusion input packs a feature
    vector below them); the rows after it are returned untouched.

    Masked bins/frames take the example's mean rather than zero: log-mel values sit far below
    zero (e.g. -80 dB for silence), so a zero band would be a loud artificial stripe. Time spans
    are drawn first, then frequency spans, each with `mask_spans`.

    `fill_per_row`: each row takes its own mean over time instead, for features whose rows sit
    on different scales. MFCC rows do (c0 near -130, c1 near +110, deltas near 0): the one mean
    of the example (~1) put c0 and c1 3-4 standard deviations off in every masked frame, an
    artefact the recurrent model then met in every training window and in no test window.
    """
    # Off means a no-op for any shape: a probe's head trains on (B, D) embeddings in the loop.
    if config.spec_time_masks == 0 and config.spec_freq_masks == 0:
        return x
    if x.ndim != 4:
        raise ValueError(f"spec_augment expects (B, 1, F, T), got {tuple(x.shape)}")
    if image_bands is not None and image_bands < x.shape[2]:
        image = spec_augment(x[:, :, :image_bands], config, generator, fill_per_row=fill_per_row)  # (B, 1, F, T)
        return torch.cat([image, x[:, :, image_bands:]], dim=2)
    g = _as_generator(generator)
    batch, _, n_freq, n_time = x.shape
    t_spans = mask_spans(batch, n_time, config.spec_time_masks, max_width=config.spec_time_width, generator=g)
    f_spans = mask_spans(batch, n_freq, config.spec_freq_masks, max_width=config.spec_freq_width, generator=g)
    t_mask = _span_mask(*t_spans, n_time).to(x.device)  # (B, T)
    f_mask = _span_mask(*f_spans, n_freq).to(x.device)  # (B, F)
    mask = t_mask[:, None, None, :] | f_mask[:, None, :, None]  # (B, 1, F, T)
    # Before masking: (B, 1, F, 1) per row, or (B, 1, 1, 1) per example.
    fill = x.mean(dim=-1 if fill_per_row else (1, 2, 3), keepdim=True)
    return torch.where(mask, fill, x)


def mixup(
    x: torch.Tensor, y_onehot: torch.Tensor, alpha: float, *, generator: torch.Generator | int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each example of `x` (B, ...) and its target `y_onehot` (B, C) with a random partner.

    One weight per example, lam ~ Beta(alpha, alpha), drawn by inverse CDF from the
    generator's uniforms (torch's Beta sampler takes no generator). Rows of the mixed targets
    sum to 1 when the inputs' do; train with soft-target cross-entropy. alpha 0 = identity.
    """
    if alpha <= 0:
        return x, y_onehot
    g = _as_generator(generator)
    batch = x.shape[0]
    u = torch.rand(batch, generator=g, device=g.device, dtype=torch.float64)
    lam = torch.from_numpy(betaincinv(alpha, alpha, u.cpu().numpy()))  # (B,)
    perm = torch.randperm(batch, generator=g, device=g.device).to(x.device)
    shape = (batch,) + (1,) * (x.ndim - 1)  # (B, 1, ..., 1): broadcasts over x's other axes
    lam_x = lam.to(device=x.device, dtype=x.dtype).view(shape)
    lam_y = lam.to(device=y_onehot.device, dtype=y_onehot.dtype)[:, None]  # (B, 1)
    x_mixed = lam_x * x + (1 - lam_x) * x[perm]
    y_mixed = lam_y * y_onehot + (1 - lam_y) * y_onehot[perm.to(y_onehot.device)]
    return x_mixed, y_mixed
