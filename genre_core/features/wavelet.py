"""Wavelet sub-band statistics per window (PyWavelets, MIT): the representation the best
hybrid of the Northeastern GTZAN study added to mel-spectrograms.

A 6-level discrete wavelet transform (Daubechies-4) splits a 3-s window at 22,050 Hz into
octave bands (detail bands ~5.5-11 kHz, 2.8-5.5 kHz, ... down to ~172-345 Hz, plus the
approximation below ~172 Hz). Per band: the mean absolute coefficient (level), the standard
deviation (spread) and the band's share of the window's energy (the spectral balance the
handcrafted table only summarises with a centroid and a rolloff). 7 bands x 3 = 21 columns.
"""

from __future__ import annotations

import numpy as np
import pywt

WAVELET = "db4"
LEVELS = 6
BANDS = ("approx", *(f"detail{level}" for level in range(LEVELS, 0, -1)))  # low to high frequency
WAVELET_NAMES: tuple[str, ...] = tuple(f"wavelet_{band}_{stat}" for band in BANDS
                                       for stat in ("mean_abs", "std", "energy_share"))


def wavelet_table(audio: np.ndarray) -> np.ndarray:
    """(B, L) windows -> (B, 21) float64 sub-band statistics, columns as WAVELET_NAMES."""
    audio = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    bands = pywt.wavedec(audio, WAVELET, level=LEVELS, axis=-1)  # [(B, n_0), ..., (B, n_6)]
    energy = np.stack([np.sum(c * c, axis=1) for c in bands], axis=1)  # (B, 7)
    share = energy / np.maximum(energy.sum(axis=1, keepdims=True), 1e-20)
    columns = []
    for i, c in enumerate(bands):
        columns += [np.abs(c).mean(axis=1), c.std(axis=1), share[:, i]]
    return np.stack(columns, axis=1)  # (B, 21)
