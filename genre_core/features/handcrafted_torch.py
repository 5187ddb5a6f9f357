"""The 57-feature GTZAN table (`genre_core.features.handcrafted`) in torch: batched, on any device.

`Handcrafted` (an nn.Module; its filterbanks are buffers) turns a batch of windows (B, N) into
the (B, 57) table, ordered as HANDCRAFTED_NAMES, with librosa's conventions replicated step by
step so that the librosa function stays the reference the tests hold it to (TOLERANCE):
centred STFT with zero padding (librosa >= 0.10), periodic Hann window, power_to_db (ref 1.0,
amin 1e-10, top_db 80 per example), rms with half-weighted DC and Nyquist bins, zero crossings
over edge-padded frames, rolloff at 85 %, HPSS with 31-bin median filters and power-2 soft
masks, chroma with librosa's own tuning estimate (piptrack peaks, histogram of their deviation
from equal temperament; one filterbank per possible estimate, picked per example), and the
tempo of the autocorrelation tempogram under librosa's log-normal prior around 120 BPM.

Heavy arrays stay float32 (as librosa's are); the tempogram and the statistics are float64.
"""

from __future__ import annotations

from functools import lru_cache

import librosa
import numpy as np
import scipy.fft
import torch
from torch import nn
from torch.nn import functional as F

from genre_core.features.handcrafted import HANDCRAFTED_NAMES
from genre_core.features.median import median_filter

N_MELS, N_MFCC, N_CHROMA = 128, 20, 12  # the reference's (librosa's default) settings
TOP_DB, AMIN = 80.0, 1e-10
HPSS_KERNEL = 31
ROLL_PERCENT = 0.85
ZCR_THRESHOLD = 1e-10  # librosa zero_crossings: |y| <= this counts as zero (positive)
# The reference calls onset_strength(S=mel_db) without n_fft / hop_length, so its centring
# shift uses librosa's defaults (2048, 512) whatever the STFT's: lag 1 + 2048 // (2 * 512).
ONSET_PAD = 1 + 2048 // (2 * 512)
PIPTRACK_FMIN, PIPTRACK_FMAX, PIPTRACK_THRESHOLD = 150.0, 4000.0, 0.1
TUNING_RESOLUTION = 0.01  # estimate_tuning's default: tuning in hundredths of a bin
TEMPO_START_BPM, TEMPO_AC_SECONDS, TEMPO_MAX_BPM = 120.0, 8.0, 320.0


# Stated agreement with the librosa reference, per feature prefix: |torch - librosa| <= atol +
# rtol * |librosa| (tests/test_handcrafted_torch.py holds every column to it). Measured worst
# case on the test signals is in the comment; the headroom covers float32 FFT differences.
TOLERANCE: dict[str, tuple[float, float]] = {  # prefix: (rtol, atol)
    "chroma_stft": (1e-4, 1e-6),  # 2e-7 rel: same tuning estimate, so the same filterbank
    "rms": (1e-4, 1e-9),  # 3e-7 rel
    "spectral_centroid": (1e-4, 1e-3),  # 3e-6 rel (variance)
    "spectral_bandwidth": (1e-4, 1e-3),  # 2e-6 rel (variance)
    # A frame whose 85 % line falls within float32 rounding of a bin edge moves by one bin
    # (10.8 Hz at 22050 / 2048): ~0.1 Hz on the mean of 130 frames, more on the variance.
    "rolloff_mean": (1e-3, 1e-3),  # 2e-5 rel
    "rolloff_var": (1e-2, 1e-3),  # 7e-5 rel
    "zero_crossing_rate": (0.0, 1e-12),  # exact: integer counts of sign changes
    "harmony": (1e-4, 1e-8),  # mean ~1e-6 with 2e-10 abs error; var 1e-7 rel
    "perceptr": (1e-4, 1e-8),
    "tempo": (0.0, 1e-6),  # exact: the same argmax of the same prior-weighted tempogram
    "mfcc": (1e-4, 1e-3),  # 4e-5 rel (1e-3 abs on c1 means near -300)
}


def tolerance(name: str) -> tuple[float, float]:
    """(rtol, atol) of one HANDCRAFTED_NAMES column: the longest matching TOLERANCE prefix."""
    return TOLERANCE[max((p for p in TOLERANCE if name.startswith(p)), key=len)]


def hpss_split(y: torch.Tensor, spec: torch.Tensor, mag: torch.Tensor, *, window: torch.Tensor,
               hop_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """librosa.decompose.hpss (kernel 31, power 2, margin 1) + istft of y (B, N), given its STFT
    `spec` (B, F, T) and magnitude `mag` (overwritten): (B, N) harmonic and percussive signals.
    The handcrafted table and the musical variants (analysis/variants.py) share it."""
    harm = median_filter(mag, HPSS_KERNEL, dim=-1)  # (B, F, T) smooth along time
    perc = median_filter(mag, HPSS_KERNEL, dim=-2)  # (B, F, T) smooth along frequency
    # The soft mask h^2 / (h^2 + p^2), as 1 / (1 + (p / h)^2): nothing squared underflows,
    # in place on the big arrays, and 0 / 0 (both zero) is NaN -> margin 1's split_zeros half.
    mask = perc.div_(harm).square_().add_(1.0).reciprocal_().nan_to_num_(nan=0.5)  # (B, F, T)
    harmonic = _istft(spec * mask, window, hop_length, y.shape[-1])
    # The percussive mask is 1 - mask and istft is linear (and inverts this STFT exactly), so
    # the percussive signal is what the harmonic one leaves of y: one istft instead of two.
    return harmonic, y - harmonic


class Handcrafted(nn.Module):
    """Waveforms (B, N) float at `sr` Hz -> (B, 57) float64 table (HANDCRAFTED_NAMES order).

    Frequencies in Hz, tempo in BPM; matches `handcrafted(y, sr, n_fft, hop_length)` row by row
    within the tolerances pinned in tests/test_handcrafted_torch.py.
    """

    def __init__(self, sr: int = 22050, n_fft: int = 2048, hop_length: int = 512) -> None:
        super().__init__()
        self.sr, self.n_fft, self.hop_length = sr, n_fft, hop_length
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True))
        freqs = librosa.fft_frequencies(sr=sr, n_fft=n_fft)  # (F,)
        self.register_buffer("freqs", torch.from_numpy(freqs).float())
        self.register_buffer("mel_basis", torch.from_numpy(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=N_MELS)))
        dct = scipy.fft.dct(np.eye(N_MELS), type=2, norm="ortho", axis=0)[:N_MFCC]  # (20, 128)
        self.register_buffer("dct", torch.from_numpy(dct).float())
        # estimate_tuning returns a histogram bin's left edge, or 0.0 with no pitched peaks:
        # one chroma filterbank per possible answer, the last for 0.0.
        edges = np.linspace(-0.5, 0.5, int(np.ceil(1.0 / TUNING_RESOLUTION)) + 1)  # (101,)
        self.register_buffer("tuning_edges", torch.from_numpy(edges))
        banks = [librosa.filters.chroma(sr=sr, n_fft=n_fft, tuning=t, n_chroma=N_CHROMA) for t in [*edges[:-1], 0.0]]
        self.register_buffer("chroma_banks", torch.from_numpy(np.stack(banks)))  # (101, 12, F)
        self.pitch_bins = _bins_in(freqs, PIPTRACK_FMIN, PIPTRACK_FMAX)
        self._init_tempo()

    def _init_tempo(self) -> None:
        win = int(librosa.time_to_frames(TEMPO_AC_SECONDS, sr=self.sr, hop_length=self.hop_length))
        self.register_buffer("ac_window", torch.hann_window(win, periodic=True, dtype=torch.float64))
        bpms = librosa.tempo_frequencies(win, sr=self.sr, hop_length=self.hop_length)  # (win,), [0] = inf
        with np.errstate(divide="ignore"):
            logprior = -0.5 * (np.log2(bpms) - np.log2(TEMPO_START_BPM)) ** 2
        logprior[: int(np.argmax(bpms < TEMPO_MAX_BPM))] = -np.inf
        self.register_buffer("bpms", torch.from_numpy(bpms))
        self.register_buffer("tempo_logprior", torch.from_numpy(logprior))
        self.ac_fft_size = scipy.fft.next_fast_len(2 * win - 1, real=True)

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if y.dim() != 2:
            raise ValueError(f"Handcrafted expects a waveform batch (B, N), got shape {tuple(y.shape)}")
        y = y.float()
        spec = torch.stft(y, self.n_fft, self.hop_length, window=self.window, center=True,
                          pad_mode="constant", return_complex=True)  # (B, F, T)
        mag = spec.abs()  # (B, F, T)
        power = mag.square()
        mel_db = _power_to_db(torch.matmul(self.mel_basis, power))  # (B, 128, T)
        harmonic, percussive = self._hpss(y, spec, mag)  # (B, N) each
        series = [
            self._chroma(power),
            _rms(power, self.n_fft),
            *self._centroid_bandwidth(mag),
            self._rolloff(mag),
            _zero_crossing_rate(y, self.n_fft, self.hop_length),
            harmonic,
            percussive,
        ]
        stats = [s for x in series for s in _mean_var(x.flatten(1))]  # 16 of (B,)
        tempo = self._tempo(_onset_strength(mel_db))  # (B,)
        mfcc = torch.matmul(self.dct, mel_db).double()  # (B, 20, T)
        per_coef = torch.stack([mfcc.mean(-1), mfcc.var(-1, correction=0)], -1).flatten(1)  # (B, 40)
        out = torch.cat([torch.stack([*stats, tempo], 1), per_coef], 1)  # (B, 57)
        # As the reference: one NaN row would make a whole sklearn fit fail.
        return torch.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)

    def _hpss(self, y, spec, mag) -> tuple[torch.Tensor, torch.Tensor]:
        return hpss_split(y, spec, mag, window=self.window, hop_length=self.hop_length)

    def _chroma(self, power: torch.Tensor) -> torch.Tensor:
        """chroma_stft(S=power): the filterbank of each example's estimated tuning, max-normalised."""
        banks = self.chroma_banks[self._tuning_index(power)]  # (B, 12, F)
        raw = torch.bmm(banks, power)  # (B, 12, T)
        norm = raw.amax(1, keepdim=True)  # (B, 1, T)
        return raw / torch.where(norm < torch.finfo(raw.dtype).tiny, torch.ones_like(norm), norm)

    def _tuning_index(self, power: torch.Tensor) -> torch.Tensor:
        """(B,) index into chroma_banks of librosa.estimate_tuning(S=power, sr, n_fft)."""
        # The peaks as one flat list grouped by example.
        example, pitch, mag = _pitch_peaks(power, self.pitch_bins, self.sr, self.n_fft)  # (K,) each
        counts = torch.bincount(example, minlength=len(power))  # (B,)
        chosen = mag >= _group_medians(mag, example, counts)[example]  # the louder half of each example's
        residual = torch.remainder(12 * torch.log2(pitch[chosen] / 27.5), 1.0)  # semitones above A, [0, 1)
        residual = torch.where(residual >= 0.5, residual - 1.0, residual).double()
        n_bins = len(self.tuning_edges) - 1
        bins = torch.bucketize(residual, self.tuning_edges, right=True) - 1  # in [0, n_bins)
        hist = torch.bincount(example[chosen] * n_bins + bins, minlength=len(power) * n_bins)
        best = hist.view(len(power), n_bins).argmax(1)  # first maximum, as np.argmax
        return torch.where(counts > 0, best, torch.full_like(best, n_bins))  # no peaks: tuning 0.0

    def _centroid_bandwidth(self, mag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """spectral_centroid and spectral_bandwidth (p=2) of a magnitude spectrogram, (B, T) Hz."""
        # Moments 0-2 of frequency in one pass, float64 so that E[f^2] - E[f]^2 does not cancel.
        freqs = self.freqs.double()
        moments = torch.matmul(torch.stack([torch.ones_like(freqs), freqs, freqs.square()]), mag.double())  # (B, 3, T)
        total = moments[:, 0]
        total = torch.where(total < torch.finfo(mag.dtype).tiny, torch.ones_like(total), total)  # silent frame
        centroid = moments[:, 1] / total  # (B, T)
        spread = (moments[:, 2] / total - centroid.square()).clamp(min=0)  # (B, T) Hz^2
        return centroid, spread.sqrt()

    def _rolloff(self, mag: torch.Tensor) -> torch.Tensor:
        """(B, T) Hz: the lowest bin frequency whose cumulative magnitude reaches 85 % of the frame's."""
        cumulative = mag.cumsum(1)  # (B, F, T)
        below = (cumulative < ROLL_PERCENT * cumulative[:, -1:, :]).sum(1)  # (B, T) bins under the line
        return self.freqs[below]

    def _tempo(self, onset: torch.Tensor) -> torch.Tensor:
        """librosa.feature.tempo(onset_envelope=onset): (B,) BPM."""
        win, n = len(self.ac_window), onset.shape[-1]
        frames = _linear_ramp_pad(onset.double(), win // 2).unfold(-1, win, 1)[:, :n]  # (B, T, win)
        frames = frames * self.ac_window
        spectrum = torch.fft.rfft(frames, n=self.ac_fft_size)
        autocorr = torch.fft.irfft(spectrum.abs().square(), n=self.ac_fft_size)[..., :win]  # (B, T, win)
        peak = autocorr.abs().amax(-1, keepdim=True)
        tiny = torch.finfo(autocorr.dtype).tiny
        tempogram = autocorr / torch.where(peak < tiny, torch.ones_like(peak), peak)
        score = torch.log1p(1e6 * tempogram.mean(1)) + self.tempo_logprior  # (B, win)
        return self.bpms[score.argmax(-1)]


def _istft(spec: torch.Tensor, window: torch.Tensor, hop: int, length: int) -> torch.Tensor:
    """torch.istft(spec, n_fft, hop, window, center=True, length=length) for n_fft a multiple
    of hop: (B, F, T) -> (B, length). Inverse FFT of every frame, then overlap-add as n_fft / hop
    shifted sums of whole frame blocks, divided by the overlap-added squared window. Equal to
    torch.istft within float32 rounding (~1e-7), and ~5x less CPU on one 3-s window (its
    general overlap-add was a quarter of the whole table's time)."""
    n_fft = window.shape[0]
    if n_fft % hop:
        return torch.istft(spec, n_fft, hop, window=window, center=True, length=length)
    frames = torch.fft.irfft(spec, n=n_fft, dim=1) * window[:, None]  # (B, n_fft, T)
    batch, _, n_frames = frames.shape
    overlap = n_fft // hop
    blocks = frames.view(batch, overlap, hop, n_frames).permute(0, 3, 1, 2)  # (B, T, overlap, hop)
    out = frames.new_zeros(batch, n_frames + overlap - 1, hop)
    for j in range(overlap):  # block j of frame t lands on output block t + j
        out[:, j: j + n_frames] += blocks[:, :, j]
    envelope = _window_envelope(window, hop, n_frames).to(frames.device)  # (n_frames + overlap - 1) * hop
    signal = out.reshape(batch, -1) / envelope
    start = n_fft // 2  # center=True: the STFT padded n_fft // 2 on each side
    signal = signal[:, start: start + length]
    return F.pad(signal, (0, length - signal.shape[-1])) if signal.shape[-1] < length else signal


@lru_cache(maxsize=16)
def _window_envelope(window: torch.Tensor, hop: int, n_frames: int) -> torch.Tensor:
    """Overlap-added squared window of n_frames frames; 1 where it is ~0 (never inside a centred
    signal with a Hann window at hop <= n_fft / 4, as torch.istft checks)."""
    n_fft = window.shape[0]
    squared = (window.detach().cpu() ** 2).view(n_fft // hop, hop)  # (overlap, hop)
    env = torch.zeros(n_frames + n_fft // hop - 1, hop, dtype=window.dtype)
    for j in range(n_fft // hop):
        env[j: j + n_frames] += squared[j]
    env = env.reshape(-1)
    return torch.where(env > 1e-11, env, torch.ones_like(env))


def _bins_in(freqs: np.ndarray, fmin: float, fmax: float) -> slice:
    """The STFT bins with fmin <= f < fmax (piptrack's range), as a slice."""
    inside = np.flatnonzero((freqs >= fmin) & (freqs < fmax))
    return slice(int(inside[0]), int(inside[-1]) + 1)


def _pitch_peaks(power: torch.Tensor, bins: slice, sr: int, n_fft: int):
    """librosa.piptrack(S=power) restricted to `bins`, at its peaks only: (K,) example index
    (ascending), (K,) pitch Hz, (K,) magnitude.

    A peak is a local maximum along frequency of the power above 0.1 x the frame's maximum;
    its pitch and height come from a parabola through it and its two neighbours. Peaks are a
    few percent of the bins, so the parabola is fitted at them alone.
    """
    ref = PIPTRACK_THRESHOLD * power.amax(1, keepdim=True)  # (B, 1, T)
    lo, hi = bins.start, bins.stop
    near = power[:, lo - 1: hi + 1]  # (B, P + 2, T): the bins and their neighbours
    gated = near * (near > ref)
    below, here, above = (gated[:, i: i + hi - lo] for i in range(3))  # (B, P, T) each
    example, row, frame = ((here > below) & (here >= above)).nonzero(as_tuple=True)  # (K,) each
    s_below, s_here, s_above = (near[example, row + i, frame] for i in range(3))  # (K,) each
    # librosa's numba stencil does this in float64 (2 * x promotes) and stores float32.
    curvature = (s_above + s_below).double() - 2.0 * s_here.double()
    slope = (s_above - s_below).double() / 2
    shift = torch.where(slope.abs() >= curvature.abs(), torch.zeros_like(slope), -slope / curvature).float()
    pitch = ((row.double() + lo + shift.double()) * float(sr) / n_fft).float()  # librosa's order of rounding
    mag = s_here + 0.5 * ((s_above - s_below) / 2.0) * shift  # np.gradient's centred difference
    return example, pitch, mag


def _group_medians(values: torch.Tensor, group: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """np.median of each group's values (mean of the middle two for an even count): (G,).

    `group` (K,) is ascending with `counts` (G,) members each; an empty group gets 0."""
    if len(values) == 0:
        return torch.zeros(len(counts), dtype=values.dtype, device=values.device)
    order = values.argsort(stable=True)
    order = order[group[order].argsort(stable=True)]  # by group, ascending within each
    ranked = values[order]
    starts = counts.cumsum(0) - counts
    lo = ranked[(starts + (counts - 1).clamp(min=0) // 2).clamp(max=len(values) - 1)]
    hi = ranked[(starts + counts // 2).clamp(max=len(values) - 1)]
    return (lo + hi) / 2


def _power_to_db(power: torch.Tensor) -> torch.Tensor:
    """librosa.power_to_db(ref=1.0, amin=1e-10, top_db=80), the top_db clamp per example."""
    db = 10.0 * torch.log10(power.clamp(min=AMIN))  # (B, M, T)
    return torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - TOP_DB)


def _rms(power: torch.Tensor, frame_length: int) -> torch.Tensor:
    """librosa.feature.rms(S=|power|^0.5): the DC and Nyquist bins count half (no mirror)."""
    weight = torch.ones(power.shape[1], device=power.device, dtype=power.dtype)
    weight[0] = 0.5
    if frame_length % 2 == 0:
        weight[-1] = 0.5
    return (2 * torch.einsum("bft,f->bt", power, weight) / frame_length**2).sqrt()  # (B, T)


def _zero_crossing_rate(y: torch.Tensor, frame_length: int, hop_length: int) -> torch.Tensor:
    """librosa.feature.zero_crossing_rate(y, frame_length, hop_length): (B, T) float64.

    Frames are centred on edge-padded audio; a crossing is a sign change between neighbours
    inside the frame (near-zero samples count as positive), divided by the frame length.
    """
    half = frame_length // 2
    padded = torch.cat([y[:, :1].expand(-1, half), y, y[:, -1:].expand(-1, half)], 1)  # (B, N + frame)
    negative = (padded < 0) & (padded.abs() > ZCR_THRESHOLD)
    change = (negative[:, 1:] != negative[:, :-1]).int()  # (B, N + frame - 1): change into sample j + 1
    cumulative = torch.nn.functional.pad(change.cumsum(1), (1, 0))  # [j] = changes up to sample j
    starts = torch.arange(0, padded.shape[1] - frame_length + 1, hop_length, device=y.device)
    counts = cumulative[:, starts + frame_length - 1] - cumulative[:, starts]  # (B, T)
    return counts.double() / frame_length


def _onset_strength(mel_db: torch.Tensor) -> torch.Tensor:
    """librosa.onset.onset_strength(S=mel_db): mean positive dB rise per frame, (B, T)."""
    rise = (mel_db[..., 1:] - mel_db[..., :-1]).clamp(min=0).mean(1)  # (B, T - 1)
    return torch.nn.functional.pad(rise, (ONSET_PAD, 0))[:, : mel_db.shape[-1]]


def _linear_ramp_pad(x: torch.Tensor, width: int) -> torch.Tensor:
    """np.pad(x, width, mode="linear_ramp", end_values=0) along the last axis: (B, L + 2 width)."""
    ramp = torch.arange(width, device=x.device, dtype=x.dtype) / width  # (width,) 0 .. (w-1)/w
    return torch.cat([x[:, :1] * ramp, x, x[:, -1:] * ramp.flip(0)], 1)


def _mean_var(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.double()
    return x.mean(1), x.var(1, correction=0)


@lru_cache(maxsize=8)
def _module(sr: int, n_fft: int, hop_length: int, device: torch.device) -> Handcrafted:
    return Handcrafted(sr, n_fft, hop_length).to(device)


def handcrafted_batch(y, *, sr: int = 22050, n_fft: int = 2048, hop_length: int = 512):
    """The 57 GTZAN table features of each window in `y` (B, N) at `sr` Hz, ordered as
    HANDCRAFTED_NAMES: (B, 57) float64. A tensor gives a tensor on its device; a numpy array
    (e.g. inference's windows) gives a numpy array, computed on the CPU."""
    if isinstance(y, np.ndarray):
        return handcrafted_batch(torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)), sr=sr, n_fft=n_fft,
                                 hop_length=hop_length).numpy()
    return _module(sr, n_fft, hop_length, y.device)(y)


assert len(HANDCRAFTED_NAMES) == 57  # the column order above is the reference's
