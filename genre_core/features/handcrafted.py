"""Handcrafted features (librosa, numpy): the 57-column table of GTZAN's "features_3_sec.csv"
that published handcrafted-feature projects (and the sklearn baselines here) train on, plus
chroma and spectral contrast.

`handcrafted` is the reference: the baselines compute the same table batched in torch
(`handcrafted_torch.handcrafted_batch`), which the tests hold to it column by column."""

from __future__ import annotations

import warnings

import librosa
import numpy as np


_SPECTRAL = (
    "chroma_stft",
    "rms",
    "spectral_centroid",
    "spectral_bandwidth",
    "rolloff",
    "zero_crossing_rate",
    "harmony",
    "perceptr",
)
HANDCRAFTED_NAMES: tuple[str, ...] = (
    *(f"{name}_{stat}" for name in _SPECTRAL for stat in ("mean", "var")),
    "tempo",
    *(f"mfcc{i}_{stat}" for i in range(1, 21) for stat in ("mean", "var")),
)


def handcrafted(
    y: np.ndarray, *, sr: int = 22050, n_fft: int = 2048, hop_length: int = 512
) -> np.ndarray:
    """The 57 GTZAN table features of mono audio `y` (N,) at `sr` Hz, ordered as
    `HANDCRAFTED_NAMES`; float64, shape (57,). Frequencies in Hz, tempo in BPM.

    One STFT feeds every spectral feature, and one HPSS gives both harmony and perceptr,
    which keeps a 3 s clip well under half a second (numba warm).
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise ValueError(f"handcrafted expects mono audio (N,), got shape {y.shape}")
    spec = librosa.stft(y, n_fft=n_fft, hop_length=hop_length)  # (1 + n_fft/2, T) complex
    mag = np.abs(spec)
    power = mag**2
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr))  # (128, T)
    # = librosa.effects.harmonic / .percussive, sharing this STFT instead of taking two more.
    harm_spec, perc_spec = librosa.decompose.hpss(spec)
    harmonic = librosa.istft(harm_spec, hop_length=hop_length, length=len(y))
    percussive = librosa.istft(perc_spec, hop_length=hop_length, length=len(y))
    onset_env = librosa.onset.onset_strength(S=mel_db, sr=sr)  # (T,)
    with warnings.catch_warnings():
        # Silence has no pitched frames to estimate tuning from; librosa then assumes A440.
        warnings.filterwarnings("ignore", message="Trying to estimate tuning from empty")
        chromagram = librosa.feature.chroma_stft(S=power, sr=sr)  # (12, T)
    series = [
        chromagram,
        librosa.feature.rms(S=mag, frame_length=n_fft),
        librosa.feature.spectral_centroid(S=mag, sr=sr),
        librosa.feature.spectral_bandwidth(S=mag, sr=sr),
        librosa.feature.spectral_rolloff(S=mag, sr=sr),
        librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop_length),
        harmonic,
        percussive,
    ]
    stats = [s for f in series for s in (np.mean(f), np.var(f))]  # (16,)
    tempo = librosa.feature.tempo(onset_envelope=onset_env, sr=sr, hop_length=hop_length)[0]
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=20)  # (20, T)
    per_coef = np.stack([mfcc.mean(axis=1), mfcc.var(axis=1)], axis=1).ravel()  # (40,)
    out = np.concatenate([stats, [tempo], per_coef]).astype(np.float64)
    # librosa keeps silence finite today; this guard keeps it so, since one NaN row makes
    # the whole sklearn fit fail.
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def chroma(y: np.ndarray, *, sr: int = 22050, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Chromagram (12, T) of mono `y`, each frame scaled to max 1 (librosa.feature.chroma_stft)."""
    return librosa.feature.chroma_stft(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length)


def spectral_contrast(
    y: np.ndarray, *, sr: int = 22050, n_fft: int = 2048, hop_length: int = 512
) -> np.ndarray:
    """Spectral contrast (7, T) in dB: peak-to-valley per octave band, six bands plus the rest."""
    return librosa.feature.spectral_contrast(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length)
