"""Spectral features: the torch modules that turn waveforms into model inputs. (The librosa
table the sklearn baselines eat is in handcrafted.py.)

The torch modules (`LogMel`, `MFCC`, and `MusicnnMel`, the pretrained musicnn's own input
image, kept bit-faithful to its wheel) run batched on whatever device the model is on; their
constants (window, mel filterbank, DCT matrix) are buffers, so `.to(device)` moves them.
They are parameterised to agree with librosa's defaults (slaney mel scale and norm, zero
padding for `center=True`), so features cached by either path are interchangeable; the
tests pin the difference.
"""

from __future__ import annotations

from typing import Any, Mapping

import librosa
import numpy as np
import torch
import torchaudio
from torch import nn

from genre_core.features.settings import FeatureConfig
# musicnn's input, defined in settings (torch-free: the app's tag axes read it too); named here
# as well, where the code that computes features looks for it.
from genre_core.features.settings import (  # noqa: F401
    MUSICNN_HOP_LENGTH, MUSICNN_N_FFT, MUSICNN_N_MELS, MUSICNN_SR, MUSICNN_WINDOW_FRAMES,
)


# librosa.power_to_db's floor: power below this is treated as this (-100 dB), before top_db.
AMIN = 1e-10


# Samples per log-mel call on a CPU (~7 s at 22.05 kHz): a batch of 32 x 3-s windows in calls
# of 2 windows takes half the time of one call (measured 32 vs 67 ms, one thread), because each
# call's frames and spectrum (~4 MB) stay in the core's cache instead of streaming ~70 MB.
CPU_CHUNK_SAMPLES = 160_000


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
        rows = max(1, CPU_CHUNK_SAMPLES // max(1, y.shape[-1]))
        if y.device.type == "cpu" and rows < len(y):
            return torch.cat([self._log_mel(part) for part in y.split(rows)])
        return self._log_mel(y)

    def _log_mel(self, y: torch.Tensor) -> torch.Tensor:
        power = self._mel_power(y)  # (B, n_mels, T)
        db = 10.0 * torch.log10(power.clamp(min=AMIN))  # (B, n_mels, T)
        # Clamp per example: torchaudio's AmplitudeToDB on a (B, M, T) tensor would take one
        # maximum over the whole batch, so a loud clip would change a quiet one's image.
        peak = db.amax(dim=(-2, -1), keepdim=True)  # (B, 1, 1)
        db = torch.maximum(db, peak - self.top_db)
        return db.unsqueeze(1)  # (B, 1, n_mels, T)

    def _mel_power(self, y: torch.Tensor) -> torch.Tensor:
        """What `self.mel(y)` computes, with |X|^2 as re^2 + im^2: torchaudio takes abs() of
        the complex STFT (a hypot per bin) and squares it again, ~40% of the whole image's
        time on a CPU. Equal within float32 rounding (~2e-7 relative)."""
        s = self.mel.spectrogram  # its settings, so the two paths cannot drift apart
        spec = torch.stft(y, s.n_fft, s.hop_length, s.win_length, window=s.window, center=s.center,
                          pad_mode=s.pad_mode, return_complex=True)  # (B, 1 + n_fft // 2, T)
        power = spec.real.square() + spec.imag.square()  # (B, F, T)
        return torch.matmul(power.transpose(-2, -1), self.mel.mel_scale.fb).transpose(-2, -1)  # (B, n_mels, T)


class MFCC(nn.Module):
    """Waveform (B, N) -> MFCC with deltas and delta-deltas, (B, 1, 3 * n_mfcc, T).

    Rows [0, n_mfcc) equal `librosa.feature.mfcc(y=y, sr=sr, n_mfcc=n_mfcc, n_fft=n_fft,
    hop_length=hop_length, n_mels=n_mels)` (DCT-II, ortho, of the `LogMel` image). Deltas use
    a 9-frame regression window (= `librosa.feature.delta(width=9)` away from the edges; the
    first and last 4 frames repeat the edge instead of librosa's polynomial fit); the
    delta-deltas are deltas of the deltas (the HTK / Kaldi convention).
    """

    # Coefficients sit on their own scales (c0 in the hundreds, deltas near 0): SpecAugment
    # fills a masked span of each row with that row's mean (features.augment.spec_augment).
    rows_on_own_scales = True

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


_FLOAT16_MAX = 65504.0


class MusicnnMel(nn.Module):
    """musicnn's input: waveform (B, N) at 16 kHz -> log-compressed mel image (B, 1, 96, T).

    Replicates the wheel's `batch_data`: librosa.feature.melspectrogram(sr=16000, n_fft=512,
    hop_length=256, n_mels=96) with librosa's defaults (centred periodic-Hann frames, power 2,
    Slaney mel scale and area norm), cast to float16, then log10(10000 * mel + 1) computed
    in float32 (numpy 1.x upcast `10000 * float16`; under numpy 2 the wheel's line overflows
    to inf above mel = 6.55, so a numpy-2 reference must upcast before multiplying).
    `pad_mode` defaults to "reflect", librosa's default when the models were trained
    (librosa >= 0.10 pads with zeros; this only changes the first and last frames).
    T = N // 256: librosa's final frame is centred on the last sample and half padding;
    dropping it makes 3 s (48000 samples) exactly one 187-frame window, as the wheel uses.
    """

    def __init__(self, pad_mode: str = "reflect", float16: bool = True) -> None:
        super().__init__()
        self.pad_mode = pad_mode
        self.float16 = float16  # the wheel and its training data stored mel power as float16
        self.register_buffer("window", torch.hann_window(MUSICNN_N_FFT, periodic=True))
        mel = librosa.filters.mel(sr=MUSICNN_SR, n_fft=MUSICNN_N_FFT, n_mels=MUSICNN_N_MELS)
        self.register_buffer("mel_basis", torch.from_numpy(mel).float())  # (96, 257)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """y: (B, N) or (N,) float waveform in [-1, 1] at 16 kHz -> (B, 1, 96, N // 256)."""
        if y.dim() == 1:
            y = y.unsqueeze(0)  # (1, N)
        n_frames = y.shape[-1] // MUSICNN_HOP_LENGTH
        spec = torch.stft(y.float(), MUSICNN_N_FFT, MUSICNN_HOP_LENGTH, window=self.window, center=True,
                          pad_mode=self.pad_mode, return_complex=True)  # (B, 257, T + 1)
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.mel_basis, power)[..., :n_frames]  # (B, 96, T)
        if self.float16:
            mel = mel.clamp(max=_FLOAT16_MAX).half().float()
        return torch.log10(10000.0 * mel + 1.0).unsqueeze(1)  # (B, 1, 96, T)


def display_settings(representation: str | None, features: Mapping[str, Any] | None = None) -> dict:
    """Keyword arguments of `mel_image` that draw the mel image a model of `representation`
    ("logmel", "musicnn", ...) sees, from its run's `features` settings (runs.config JSON), so a
    Grad-CAM map lines up with the bands."""
    if representation == "musicnn":
        return dict(sr=MUSICNN_SR, n_fft=MUSICNN_N_FFT, hop_length=MUSICNN_HOP_LENGTH, n_mels=MUSICNN_N_MELS,
                    fmin=0.0, fmax=None)
    f, default = dict(features or {}), FeatureConfig()
    fmin, fmax = f.get("fmin", f.get("f_min")), f.get("fmax", f.get("f_max"))  # either spelling of a run's config
    return dict(sr=int(f.get("sr", default.sr)), n_fft=int(f.get("n_fft", default.n_fft)),
                hop_length=int(f.get("hop_length", default.hop_length)), n_mels=int(f.get("n_mels", default.n_mels)),
                fmin=float(fmin or 0.0), fmax=None if fmax is None else float(fmax))


def mel_image(y: np.ndarray, *, sr: int = 22050, n_fft: int = 2048, hop_length: int = 512, n_mels: int = 128,
              fmin: float = 0.0, fmax: float | None = None, max_frames: int = 900) -> dict:
    """The `LogMel` image of (N,) mono audio at `sr` Hz, for display: {"mel": (n_mels, T)
    float32 dB below the loudest bin (down to -top_db), "duration_s", "freqs": (n_mels,) band
    centres in Hz}. Frames are max-pooled to at most `max_frames` columns so a figure stays light."""
    config = FeatureConfig(sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax)
    with torch.no_grad():
        db = LogMel(config)(torch.from_numpy(np.asarray(y, dtype=np.float32))[None])[0, 0].numpy()  # (M, T)
    db = db - db.max()
    factor = int(np.ceil(db.shape[1] / max_frames))
    if factor > 1:
        cut = db.shape[1] // factor * factor
        db = db[:, :cut].reshape(n_mels, -1, factor).max(axis=2)  # (M, T // factor)
    freqs = librosa.mel_frequencies(n_mels + 2, fmin=fmin, fmax=config.fmax_hz)[1:-1]
    return {"mel": db, "duration_s": len(y) / sr, "freqs": freqs}


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
