"""What the model heard: an attribution map turned into audio (a listenable map, after L-MAC).

An attribution stored in `attributions` is an (n_bands, n_frames) grid over the track: bands
equally spaced on the model's (Slaney) mel scale between `fmin` and `fmax`, frames equally
spaced over the track's duration. The top `keep` share of the grid's cells (the "top k% of
the attribution"; ties, e.g. the zeros Grad-CAM's ReLU leaves, broken in a fixed pseudo-random
order, so no region is favoured by the tie-break) becomes a binary mask on the linear STFT of
the audio: each STFT bin takes the mask of the band holding its frequency (Hz -> mel -> band),
each STFT frame that of the map frame holding its centre. The masked STFT is inverted with the
original phase (Paissan, Ravanelli, Subakan, "Listenable Maps for Audio Classifiers", ICML
2024), except that what a mask leaves out is turned down by MASK_DEPTH_DB rather than
silenced (see there why). The complement mask gives "what it ignored"; heard + ignored equals
(1 + MASK_FLOOR) x the input up to float rounding, because the STFT is linear and Hann
windows at hop n_fft/4 invert exactly.

The area is counted on the map's grid, the model's own time-frequency resolution, not in STFT
bins (a high mel band spans many more bins than a low one). STFT bins outside [fmin, fmax]
(the model never saw them, e.g. audio above 8 kHz for musicnn) are always "ignored".
"""

from __future__ import annotations

import librosa
import numpy as np
import torch

# What a mask leaves out is turned down by this much, not silenced. Measured on the demo CNN
# (49 test tracks, docs/benchmarks.md): with cells silenced, every masked version -- kept 25%
# or removed 25%, Grad-CAM or random -- is called one genre (reggae, 100%): spectral holes the
# model never met in training, so no mask could keep or lose a decision. At -20 dB 94% still
# are; at -10 dB the model answers on the music again. A listener hears the kept part in front
# and the rest as a quieter bed.
MASK_DEPTH_DB = 10.0
MASK_FLOOR = 10.0 ** (-MASK_DEPTH_DB / 20.0)  # gain of the cells a mask leaves out (~0.32)
N_FFT = 2048  # ~93 ms at 22.05 kHz: the CNN's own analysis window, fine enough for a bass note
HOP_DIVISOR = 4  # hop = n_fft / 4: Hann windows at 75% overlap sum to a constant (exact inverse)


def stft_cells(n_bands: int, n_frames: int, *, sr: int, n_fft: int, n_stft_frames: int,
               hop_length: int, duration_s: float, fmin: float = 0.0,
               fmax: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Where the cells of a linear STFT grid (1 + n_fft // 2 bins, n_stft_frames frames, audio
    at `sr` with `hop_length`) fall on an (n_bands, n_frames) map over `duration_s`:
    ((F_stft,) band of each bin, -1 outside [fmin, fmax] (fmax None: sr / 2); (T_stft,) map
    frame of each STFT frame). Bands are uniform on the Slaney mel scale, as the front ends."""
    if n_bands < 1 or n_frames < 1:
        raise ValueError(f"a map needs at least one band and one frame, got {n_bands} x {n_frames}")
    if not duration_s > 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    fmax = sr / 2 if fmax is None else fmax
    mel_low, mel_high = librosa.hz_to_mel([fmin, fmax])
    bins_hz = np.arange(1 + n_fft // 2) * sr / n_fft  # (F_stft,)
    band = np.floor((librosa.hz_to_mel(bins_hz) - mel_low) / (mel_high - mel_low) * n_bands).astype(np.int64)
    band = np.minimum(band, n_bands - 1)  # fmax itself belongs to the top band
    band[(bins_hz < fmin) | (bins_hz > fmax)] = -1
    centres = np.arange(n_stft_frames) * hop_length / sr  # centred STFT frames: frame t at t * hop
    frame = np.clip(np.floor(centres / duration_s * n_frames).astype(np.int64), 0, n_frames - 1)
    return band, frame


def top_share_mask(values: np.ndarray, keep: float) -> np.ndarray:
    """Boolean mask of the same shape keeping exactly round(keep * size) cells, the largest
    values. Ties go by a fixed pseudo-random order of the cells (seed 0): the same map always
    gives the same mask, and the cells picked among equal values are spread evenly (breaking
    ties by index would favour low frequencies, where music has most of its energy)."""
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep must lie in [0, 1], got {keep}")
    n_keep = int(round(keep * values.size))
    tie_break = np.random.default_rng(0).permutation(values.size)
    order = np.lexsort((tie_break, -values.ravel()))  # by value, descending, then tie_break
    mask = np.zeros(values.size, dtype=bool)
    mask[order[:n_keep]] = True
    return mask.reshape(values.shape)


def stft(y: np.ndarray, n_fft: int = N_FFT) -> torch.Tensor:
    """(N,) or (B, N) audio -> complex STFT (..., 1 + n_fft // 2, T), Hann, hop n_fft / 4,
    centred (zero-padded), so `istft` gives the input back."""
    y = torch.as_tensor(np.ascontiguousarray(y, dtype=np.float32))
    return torch.stft(y, n_fft, n_fft // HOP_DIVISOR, window=torch.hann_window(n_fft), center=True,
                      pad_mode="constant", return_complex=True)


def istft(spec: torch.Tensor, length: int, n_fft: int = N_FFT) -> np.ndarray:
    """The inverse of `stft`: (..., F, T) complex -> (..., length) float32 numpy."""
    y = torch.istft(spec, n_fft, n_fft // HOP_DIVISOR, window=torch.hann_window(n_fft), center=True,
                    length=length)
    return y.numpy().astype(np.float32)


def stft_masks(maps: list[np.ndarray], keeps: list[float], *, spec_shape: tuple[int, int], sr: int,
               duration_s: float, n_fft: int = N_FFT, fmin: float = 0.0,
               fmax: float | None = None) -> np.ndarray:
    """Binary STFT masks (len(maps), F, T) bool: map i (bands, frames) keeping the top keeps[i]
    share of its own cells, on an STFT of shape `spec_shape` (F, T). Maps of one shape share
    the cell lookup; the faithfulness measure builds its explained and random masks here, so
    both go through the same mapping."""
    masks = np.zeros((len(maps), *spec_shape), dtype=bool)
    lookup: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for i, (grid, keep) in enumerate(zip(maps, keeps)):
        grid = np.asarray(grid, dtype=np.float32)
        if grid.ndim != 2 or grid.size == 0:
            raise ValueError(f"a map must be a non-empty (bands, frames) grid, got shape {grid.shape}")
        if grid.shape not in lookup:
            lookup[grid.shape] = stft_cells(*grid.shape, sr=sr, n_fft=n_fft, n_stft_frames=spec_shape[1],
                                            hop_length=n_fft // HOP_DIVISOR, duration_s=duration_s,
                                            fmin=fmin, fmax=fmax)
        band, frame = lookup[grid.shape]
        kept = top_share_mask(grid, keep)  # (bands, frames)
        inside = band >= 0
        masks[i, inside] = kept[band[inside]][:, frame]  # (F_inside, T)
    return masks


def masked_audio(y: np.ndarray, masks: np.ndarray, *, spec: torch.Tensor | None = None,
                 n_fft: int = N_FFT, floor: float = MASK_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """Audio (N,) through binary STFT masks (M, F, T) -> (masked in (M, N), masked out
    (M, N)) float32, both with the original phase; what a mask leaves out is kept at
    `floor` (default MASK_FLOOR, -MASK_DEPTH_DB), not silenced. `spec`: the STFT of y if
    already made."""
    spec = stft(y, n_fft) if spec is None else spec  # (F, T)
    heard = istft(spec * floored(masks, floor), len(y), n_fft)  # (M, N)
    ignored = istft(spec * floored(~np.asarray(masks, dtype=bool), floor), len(y), n_fft)  # (M, N)
    return heard, ignored


def floored(masks: np.ndarray, floor: float = MASK_FLOOR) -> torch.Tensor:
    """Binary masks (..., F, T) -> gains: 1 where kept, `floor` where left out."""
    keep = torch.from_numpy(np.asarray(masks, dtype=bool))
    return torch.where(keep, torch.ones(()), torch.full((), float(floor)))


def listenable(y: np.ndarray, sr: int, attribution: np.ndarray, *, duration_s: float,
               keep: float = 0.25, fmin: float = 0.0, fmax: float | None = None,
               n_fft: int = N_FFT, floor: float = MASK_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """What the model heard and what it ignored, as audio.

    y: (N,) mono audio at `sr` Hz (the track the attribution explains). attribution:
    (n_bands, n_frames) >= 0 (as stored in `attributions`: bands uniform on the mel scale
    between `fmin` and `fmax` Hz, default 0 to sr / 2, the front ends' default; frames uniform
    over `duration_s` seconds). keep: share of the map's cells kept in "heard" (0..1).
    Returns (heard, ignored), each (N,) float32; heard + ignored == (1 + MASK_FLOOR) * y up
    to float rounding (~1e-6 of full scale).
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"y must be non-empty mono audio (N,), got shape {y.shape}")
    spec = stft(y, n_fft)  # (F, T)
    masks = stft_masks([attribution], [keep], spec_shape=tuple(spec.shape), sr=sr,
                       duration_s=duration_s, n_fft=n_fft, fmin=fmin, fmax=fmax)  # (1, F, T)
    heard, ignored = masked_audio(y, masks, spec=spec, n_fft=n_fft, floor=floor)
    return heard[0], ignored[0]
