"""Production effects of the demo corpus, numpy/scipy only: EQ shelves, overdrive, a
compressor, a convolution reverb and loudness normalisation. Every function takes and
returns mono float64 audio `y` (N,) at `sr` Hz; randomness comes only from the caller's rng.
"""

from __future__ import annotations

import numpy as np
from scipy import signal


def shelf(y: np.ndarray, sr: int, freq: float, *, gain_db: float, high: bool) -> np.ndarray:
    """RBJ-cookbook shelf (slope 1): boost or cut by `gain_db` above (`high`) or below `freq` Hz."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * freq / sr
    cos, alpha = np.cos(w), np.sin(w) / 2 * np.sqrt(2)
    s = 1 if high else -1  # the two shelves differ only in these signs
    b = np.array([a * ((a + 1) + s * (a - 1) * cos + 2 * np.sqrt(a) * alpha),
                  -2 * s * a * ((a - 1) + s * (a + 1) * cos),
                  a * ((a + 1) + s * (a - 1) * cos - 2 * np.sqrt(a) * alpha)])
    den = np.array([(a + 1) - s * (a - 1) * cos + 2 * np.sqrt(a) * alpha,
                    2 * s * ((a - 1) - s * (a + 1) * cos),
                    (a + 1) - s * (a - 1) * cos - 2 * np.sqrt(a) * alpha])
    return signal.lfilter(b / den[0], den / den[0], y)


def highpass(y: np.ndarray, sr: int, freq: float) -> np.ndarray:
    """2nd-order Butterworth high-pass: the rumble cut every mix gets."""
    return signal.sosfilt(signal.butter(2, freq, "highpass", fs=sr, output="sos"), y)


def overdrive(y: np.ndarray, sr: int, drive: float, *, cabinet_hz: float) -> np.ndarray:
    """tanh saturation of a unit-RMS bus, then a speaker-cabinet low-pass; same RMS out."""
    if drive <= 1.0:
        return y
    rms = np.sqrt(np.mean(y**2)) + 1e-12
    wet = np.tanh(drive * y / rms)
    wet = signal.sosfilt(signal.butter(2, cabinet_hz, fs=sr, output="sos"), wet)
    return wet * rms / (np.sqrt(np.mean(wet**2)) + 1e-12)


def compress(y: np.ndarray, sr: int, threshold_db: float, *, ratio: float, window_s: float = 0.03
             ) -> np.ndarray:
    """Feed-forward RMS compressor: above `threshold_db` (dBFS of the signal's RMS over about
    `window_s`) the level rises only 1/ratio dB per dB. The detector runs on blocks of a
    quarter window, the gain is interpolated between block centres: same sound, a tenth the work."""
    return y * compress_gain(y, sr, threshold_db, ratio=ratio, window_s=window_s)


def compress_gain(y: np.ndarray, sr: int, threshold_db: float, *, ratio: float, window_s: float = 0.03
                  ) -> np.ndarray:
    """The gain (N,) `compress` multiplies `y` by: applied to the parts of a mix, it compresses
    them as the mix was (their sum stays the compressed mix)."""
    hop = max(1, int(window_s * sr / 4))
    n_blocks = -(-len(y) // hop)
    blocks = np.zeros(n_blocks * hop)
    blocks[: len(y)] = y**2
    coef = np.exp(-1.0 / 4)  # one-pole average over ~4 blocks = window_s
    power = signal.lfilter([1 - coef], [1, -coef], blocks.reshape(n_blocks, hop).mean(1))
    over = np.maximum(10 * np.log10(power + 1e-12) - threshold_db, 0.0)
    gain = 10 ** (-over * (1 - 1 / ratio) / 20)
    centres = (np.arange(n_blocks) + 0.5) * hop
    return np.interp(np.arange(len(y)), centres, gain)


def reverb(y: np.ndarray, sr: int, rt60: float, *, wet: float, damping_hz: float,
           rng: np.random.Generator) -> np.ndarray:
    """Convolution with exponentially decaying noise (a diffuse room whose tail falls 60 dB in
    `rt60` s), low-passed at `damping_hz`, 15 ms pre-delay; `wet` is the tail's energy share.
    The tail is computed at half the rate: it is dark anyway, and the FFTs halve."""
    return room(y, room_ir(sr, rt60, wet=wet, damping_hz=damping_hz, rng=rng), wet=wet)


def room_ir(sr: int, rt60: float, *, wet: float, damping_hz: float, rng: np.random.Generator) -> np.ndarray:
    """`reverb`'s impulse response at sr / 2 (one draw of rng): one room for every part of a mix."""
    half = sr / 2
    t = np.arange(int(rt60 * half)) / half
    ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
    ir = signal.sosfilt(signal.butter(1, min(damping_hz, 0.45 * half), fs=half, output="sos"), ir)
    ir[: int(0.015 * half)] = 0.0
    ir *= np.sqrt(wet) / (np.sqrt(np.sum(ir**2)) + 1e-12)
    return ir


def room(y: np.ndarray, ir: np.ndarray, *, wet: float) -> np.ndarray:
    """`y` (N,) in the room `ir` (from room_ir, same `wet`): linear, so parts sum to the mix."""
    padded = np.append(y, 0.0) if len(y) % 2 else y
    small = 0.5 * (padded[0::2] + padded[1::2])  # pair average: a gentle low-pass, then decimate
    tail = np.repeat(signal.fftconvolve(small, ir)[: len(small)], 2)[: len(y)]
    return np.sqrt(1 - wet) * y + signal.lfilter([0.5, 0.5], [1.0], tail)


def loudness(y: np.ndarray, sr: int, target_db: float, *, ceiling: float = 0.89, floor: float = 0.5
             ) -> np.ndarray:
    """Scale to `target_db` dBFS of K-weighting-like RMS (a 1.5 kHz +4 dB shelf, as in ITU-R
    BS.1770, without gating), then hold peaks under `ceiling` with a fast limiter pass; a very
    dynamic clip whose peak stays under `floor` is raised to it, as a mastering engineer would."""
    return levelled(y, sr, target_db, ceiling=ceiling, floor=floor)[0]


def levelled(y: np.ndarray, sr: int, target_db: float, *, ceiling: float = 0.89, floor: float = 0.5
             ) -> tuple[np.ndarray, np.ndarray]:
    """(`loudness(y, ...)`, the gain (N,) it applied): the parts of a mix times that gain sum
    to the levelled mix, up to float rounding."""
    weighted = shelf(highpass(y, sr, 60.0), sr, 1500.0, gain_db=4.0, high=True)
    level, rms = 10 ** (target_db / 20), np.sqrt(np.mean(weighted**2)) + 1e-12
    y = y * level / rms
    limit = compress_gain(y, sr, 20 * np.log10(ceiling) - 6.0, ratio=8.0, window_s=0.002)
    y = y * limit
    peak = float(np.max(np.abs(y)))
    final = min(ceiling, max(floor, peak)) / max(peak, 1e-12)
    return y * final, level / rms * limit * final
