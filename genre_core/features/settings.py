"""What a run's features and augmentation are: plain dataclasses, stored in runs.config.

Importable without torch or librosa, so the CLI can state their defaults in its help without
paying seconds of imports (`features.spectral` and `features.augment` hold what computes them
and re-export these classes).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# musicnn's input (Pons & Serra, 2019): 16 kHz, 32-ms frames, 96 bands, 3-s windows.
MUSICNN_SR = 16000
MUSICNN_N_FFT = 512
MUSICNN_HOP_LENGTH = 256
MUSICNN_N_MELS = 96
MUSICNN_WINDOW_FRAMES = 187  # musicnn's 3-s input: librosa.time_to_frames(3, ...) + 1


@dataclass(frozen=True)
class FeatureConfig:
    """Spectral analysis settings shared by every feature of one run (stored in runs.config)."""

    sr: int = 22050  # GTZAN's native rate; resampling everything to it avoids a resample of GTZAN
    n_fft: int = 2048  # ~93 ms window: resolves low notes (bass, kick) that separate genres
    hop_length: int = 512  # ~23 ms hop; 3 s of audio -> 130 frames, 30 s -> 1292
    n_mels: int = 128  # the 128-band mel image the published GTZAN CNNs use
    n_mfcc: int = 20  # librosa's default and the GTZAN feature table's 20 coefficients
    fmin: float = 0.0
    fmax: float | None = None  # None means sr / 2 (Nyquist), as in librosa
    top_db: float = 80.0  # dynamic range kept below each example's loudest bin (librosa default)

    @property
    def fmax_hz(self) -> float:
        return float(self.fmax) if self.fmax is not None else self.sr / 2

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureConfig":
        """From a stored runs.config["features"]; runs stored before the rename say f_min/f_max."""
        renamed = {"f_min": "fmin", "f_max": "fmax"}
        return cls(**{renamed.get(k, k): v for k, v in data.items()})


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run, and how strongly. Field defaults equal `default()`."""

    # Max |gain| in dB, uniform per example; 0 = off. +-6 dB spans ordinary level differences
    # between recordings, and the model should not key on loudness.
    gain_db: float = 6.0
    # White noise at this SNR (dB) for every example; None = off. 30 dB is audible only in
    # quiet passages: it mimics a noise floor without masking the music.
    noise_snr_db: float | None = 30.0
    # Per-example chance of a tempo change. Off by default: the phase vocoder costs two STFTs
    # per batch, which a CPU-only tiny run should not pay.
    stretch_prob: float = 0.0
    stretch_range: tuple[float, float] = (0.9, 1.1)  # rate, > 1 faster; +-10% stays in-genre
    pitch_prob: float = 0.0  # per-example chance of a key change; off for the same reason
    pitch_range: tuple[float, float] = (-2.0, 2.0)  # semitones; larger shifts warp timbre
    spec_time_masks: int = 2  # SpecAugment time masks per example; 0 = off
    spec_time_width: int = 20  # max frames per time mask (~0.46 s at hop 512, 22.05 kHz)
    spec_freq_masks: int = 2  # SpecAugment frequency masks per example; 0 = off
    spec_freq_width: int = 8  # max bins per frequency mask (of typically 96-128 mel bands)
    # Beta(alpha, alpha) mixup weight; 0 = off. Off by default: soft targets make training
    # accuracy unreadable and slow the convergence of tiny runs.
    mixup_alpha: float = 0.0

    def __post_init__(self) -> None:
        for name in ("stretch_prob", "pitch_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]")
        for name in ("gain_db", "spec_time_masks", "spec_time_width", "spec_freq_masks",
                     "spec_freq_width", "mixup_alpha"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        lo, hi = self.stretch_range
        if not 0 < lo <= hi:
            raise ValueError("stretch_range must be (low, high) with 0 < low <= high")
        if self.pitch_range[0] > self.pitch_range[1]:
            raise ValueError("pitch_range must be (low, high) with low <= high")

    @classmethod
    def none(cls) -> "AugmentConfig":
        """Everything off: every stage returns its input unchanged."""
        return cls(gain_db=0.0, noise_snr_db=None, stretch_prob=0.0, pitch_prob=0.0,
                   spec_time_masks=0, spec_freq_masks=0, mixup_alpha=0.0)

    @classmethod
    def default(cls) -> "AugmentConfig":
        """Cheap, safe set: gain, a 30 dB noise floor and SpecAugment."""
        return cls()

    def to_dict(self) -> dict:
        """JSON-ready dict (tuples as lists) for `runs.config`."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "AugmentConfig":
        """Inverse of `to_dict`."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
