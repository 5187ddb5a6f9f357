"""Spectral features: the torch modules that turn waveforms into model inputs. (The librosa
table the sklearn baselines eat is in handcrafted.py.)

The torch modules (`LogMel`, `MFCC`) run batched on whatever device the model is on; their
constants (window, mel filterbank, DCT matrix) are buffers, so `.to(device)` moves them.
They are parameterised to agree with librosa's defaults (slaney mel scale and norm, zero
padding for `center=True`), so features cached by either path are interchangeable; the
tests pin the difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio
from torch import nn


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

    # Transitional read-only aliases for the app's Classify page, which still reads the old
    # names; remove once it reads fmin/fmax.
    f_min = property(lambda self: self.fmin)
    f_max = property(lambda self: self.fmax)

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureConfig":
        """From a stored runs.config["features"]; runs stored before the rename say f_min/f_max."""
        renamed = {"f_min": "fmin", "f_max": "fmax"}
        return cls(**{renamed.get(k, k): v for k, v in data.items()})


# librosa.power_to_db's floor: power below this is treated as this (-100 dB), before top_db.
AMIN = 1e-10


class LogMel(nn.Module):
    """Waveform (B, N) float in [-1, 1] -> log-mel power spectrogram (B, 1, n_mels, T) in dB.

    T = 1 + N // hop_length (centred frames, zero-padded like librosa >= 0.10). Values are
    10*log10(power) relative to 1.0, clamped per example at its maximum minus `top_db`.
    Equivalent to `librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr,
    n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax))`.
    """

    def __init__(self, config: FeatureConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FeatureConfig()
        # slaney scale + slaney norm + "constant" padding are librosa's defaults; torchaudio's
        # defaults (htk, no norm, reflect) would give a different image.
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sr,
            n_fft=config.n_fft,
            hop_length=config.hop_length,
            f_min=config.fmin,
            f_max=config.fmax_hz,
            n_mels=config.n_mels,
            power=2.0,
            center=True,
            pad_mode="constant",
            norm="slaney",
            mel_scale="slaney",
        )
        self.top_db = config.top_db

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if y.dim() != 2:
            raise ValueError(f"LogMel expects a waveform batch (B, N), got shape {tuple(y.shape)}")
        # Follow the module's dtype (float32, or float64 after .double()), not the caller's.
        y = y.to(self.mel.spectrogram.window.dtype)
        power = self.mel(y)  # (B, n_mels, T)
        db = 10.0 * torch.log10(power.clamp(min=AMIN))  # (B, n_mels, T)
        # Clamp per example: torchaudio's AmplitudeToDB on a (B, M, T) tensor would take one
        # maximum over the whole batch, so a loud clip would change a quiet one's image.
        peak = db.amax(dim=(-2, -1), keepdim=True)  # (B, 1, 1)
        db = torch.maximum(db, peak - self.top_db)
        return db.unsqueeze(1)  # (B, 1, n_mels, T)


class MFCC(nn.Module):
    """Waveform (B, N) -> MFCC with deltas and delta-deltas, (B, 1, 3 * n_mfcc, T).

    Rows [0, n_mfcc) equal `librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, n_fft=n_fft,
    hop_length=hop_length, n_mels=n_mels)` (DCT-II, ortho, of the `LogMel` image). Deltas use
    a 9-frame regression window (= `librosa.feature.delta(width=9)` away from the edges; the
    first and last 4 frames repeat the edge instead of librosa's polynomial fit); the
    delta-deltas are deltas of the deltas (the HTK / Kaldi convention).
    """

    def __init__(self, config: FeatureConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or FeatureConfig()
        self.logmel = LogMel(config)
        # create_dct returns (n_mels, n_mfcc), the matrix that maps mel bins to coefficients.
        dct = torchaudio.functional.create_dct(config.n_mfcc, config.n_mels, norm="ortho")
        self.register_buffer("dct", dct)
        self.deltas = torchaudio.transforms.ComputeDeltas(win_length=9, mode="replicate")

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        db = self.logmel(y)  # (B, 1, n_mels, T)
        mfcc = torch.matmul(db.transpose(-2, -1), self.dct)  # (B, 1, T, n_mfcc)
        mfcc = mfcc.transpose(-2, -1)  # (B, 1, n_mfcc, T)
        d1 = self.deltas(mfcc)  # (B, 1, n_mfcc, T)
        d2 = self.deltas(d1)  # (B, 1, n_mfcc, T)
        return torch.cat([mfcc, d1, d2], dim=2)  # (B, 1, 3 * n_mfcc, T)


FEATURES: dict[str, type[nn.Module]] = {"logmel": LogMel, "mfcc": MFCC}


def build_feature(kind: str, config: FeatureConfig | None = None) -> nn.Module:
    """The torch feature module named `kind` ("logmel" or "mfcc")."""
    if kind not in FEATURES:
        raise ValueError(f"unknown feature kind {kind!r}; valid kinds: {', '.join(FEATURES)}")
    return FEATURES[kind](config or FeatureConfig())


def feature_bins(kind: str, config: FeatureConfig | None = None) -> int:
    """F, the number of feature rows a model fed by `kind` sees (its `n_features`)."""
    config = config or FeatureConfig()
    bins = {"logmel": config.n_mels, "mfcc": 3 * config.n_mfcc}
    if kind not in bins:
        raise ValueError(f"unknown feature kind {kind!r}; valid kinds: {', '.join(bins)}")
    return bins[kind]
