"""Duplicate finding: the same file or the same recording filed more than once.

Exact duplicates are found by key equality (file SHA-1, or SHA-1 of the decoded samples, so a
WAV and an AU of the same PCM match). Recording duplicates -- the same recording re-gained,
time-shifted, trimmed, resampled or re-encoded -- are found with spectral-peak landmarks in the
manner of Wang, "An industrial-strength audio search algorithm" (ISMIR 2003):

1. constellation: local maxima of a log-magnitude STFT at 11025 Hz (picked in one vectorised
   pass with `scipy.ndimage.maximum_filter`);
2. landmarks: each peak paired with a few later peaks, hashed as (f1, f2, dt);
3. an inverted index hash -> postings (track, t1): on disk for a whole corpus
   (genre_core.faults.landmark_index, a DuckDB table voted on in SQL, memory bounded), or
   in RAM as hash-sorted arrays searched by bisection (`LandmarkIndex`, the reference the
   on-disk index is tested against, and fast for a few hundred tracks);
4. each track queries the index; hits vote on (other track, t_query - t_ref) and a real
   duplicate shows a sharp peak at one offset; hashes too common to identify anything (the
   stop list, scaled with corpus size by `stop_postings`) cast no votes;
5. only candidates with enough aligned votes are confirmed, by a gain-invariant normalised
   cross-correlation of the waveforms at the voted offset (refined to a sub-sample lag).

Nothing compares all pairs: cost is linear in corpus size plus the hash collisions, and
songs by one artist (same timbre, same tempo, different recording) collide in hashes but fail
either the sharp-offset vote or the waveform correlation.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import scipy.fft
from scipy import ndimage

FP_SR = 11025  # landmark rate: all the melody and most of the drums, a quarter of the samples
N_FFT = 1024  # 93 ms at 11025 Hz
HOP = 256  # 23 ms frames: fine enough that a shifted copy's peaks land within a frame
PEAK_SIZE = (41, 31)  # (bins, frames) a peak must dominate, 440 Hz x 0.72 s: <= 17 peaks/s
PEAK_RANGE_DB = 60.0  # peaks within 60 dB of the loudest bin: gain-invariant threshold
PEAK_PROMINENCE_DB = 15.0  # above the neighbourhood mean: maxima of the noise floor do not
                           # survive noise or re-encoding, so they only add chance hits
MIN_BIN = 4  # skip < 43 Hz: rumble and DC carry no identity
FAN_OUT = 4  # landmarks per anchor peak
LOOKAHEAD = 24  # later peaks considered as targets of one anchor
MAX_DT = 63  # frames (1.5 s): 6 bits of the hash
MAX_DF = 127  # bins an anchor and its target may differ by
STOP_POSTINGS = 256  # hashes this common (steady tones, silence edges) say nothing: skipped ...
STOP_SHARE = 0.01  # ... and above 25,600 tracks, hashes with more postings than 1% of the track
                   # count: a fixed cap stops ever more useful hashes as the corpus grows
MIN_VOTES = 12  # aligned landmark hits needed to call a pair a candidate
MIN_VOTE_SHARE = 0.05  # ... and as a share of the shorter track's landmarks
MIN_CORRELATION = 0.9  # waveform correlation confirming a candidate: copies measure > 0.99,
                       # songs sharing a drum loop (same kit, same tempo) reach ~0.8
MIN_OVERLAP_S = 3.0  # audio the two must share for the correlation to mean anything


@dataclass
class Fingerprint:
    """Landmarks of one track: (H,) int64 hashes and (H,) int32 anchor frames."""

    hashes: np.ndarray
    times: np.ndarray
    n_frames: int


def spectrogram_db(y: np.ndarray) -> np.ndarray:
    """(N,) audio at FP_SR -> (N_FFT/2+1, T) float32 log power in dB (relative, not calibrated)."""
    y = np.asarray(y, dtype=np.float32)
    if y.size < N_FFT:
        y = np.pad(y, (0, N_FFT - y.size))
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP]  # (T, N_FFT)
    window = np.hanning(N_FFT).astype(np.float32)
    power = np.abs(scipy.fft.rfft(frames * window, axis=1)) ** 2  # (T, F)
    floor = max(float(power.max()), 1e-20) * 1e-12  # relative floor keeps this gain-invariant
    return (10.0 * np.log10(power + floor)).T.astype(np.float32)  # (F, T)


def constellation(spec_db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local maxima of a (F, T) dB spectrogram -> ((P,) frames, (P,) bins), sorted by time."""
    local_max = ndimage.maximum_filter(spec_db, size=PEAK_SIZE, mode="constant", cval=-np.inf)
    local_mean = ndimage.uniform_filter(spec_db, size=PEAK_SIZE, mode="nearest")
    mask = (spec_db == local_max) & (spec_db > spec_db.max() - PEAK_RANGE_DB)
    mask &= spec_db > local_mean + PEAK_PROMINENCE_DB
    mask[:MIN_BIN] = False
    bins, frames = np.nonzero(mask)
    order = np.lexsort((bins, frames))
    return frames[order].astype(np.int32), bins[order].astype(np.int32)


def landmarks(frames: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair each peak with up to FAN_OUT later ones -> ((H,) int64 hashes, (H,) int32 anchor frames).

    hash = f1 << 16 | f2 << 6 | dt, with f in STFT bins (< 1024) and dt in frames (1..63).
    """
    n = frames.size
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    anchor = np.repeat(np.arange(n), LOOKAHEAD)  # (n * K,)
    target = anchor + np.tile(np.arange(1, LOOKAHEAD + 1), n)
    inside = target < n
    anchor, target = anchor[inside], target[inside]
    dt = frames[target] - frames[anchor]
    df = np.abs(bins[target] - bins[anchor])
    ok = (dt >= 1) & (dt <= MAX_DT) & (df <= MAX_DF)
    anchor, target, dt = anchor[ok], target[ok], dt[ok]
    # Keep the first FAN_OUT valid targets of each anchor (anchors are sorted, so runs).
    starts = np.searchsorted(anchor, anchor, side="left")
    keep = (np.arange(anchor.size) - starts) < FAN_OUT
    anchor, target, dt = anchor[keep], target[keep], dt[keep]
    hashes = (bins[anchor].astype(np.int64) << 16) | (bins[target].astype(np.int64) << 6) | dt
    return hashes, frames[anchor]


def fingerprint(y: np.ndarray) -> Fingerprint:
    """Landmark fingerprint of (N,) float audio at FP_SR Hz."""
    spec = spectrogram_db(y)
    frames, bins = constellation(spec)
    hashes, times = landmarks(frames, bins)
    return Fingerprint(hashes, times, spec.shape[1])


def decoded_key(y: np.ndarray, sr: int) -> str:
    """SHA-1 of the decoded samples and rate: equal for the same PCM in any container."""
    digest = hashlib.sha1(np.ascontiguousarray(y, dtype=np.float32).tobytes())
    digest.update(str(int(sr)).encode())
    return digest.hexdigest()


def stop_postings(n_tracks: int) -> int:
    """Postings above which a hash is skipped, for an index of `n_tracks` tracks.

    A hash's postings grow in proportion to the corpus (the share of tracks holding it is a
    property of music, not of corpus size), so a fixed cap would stop more and more of the
    hashes that identify recordings, and recall would fall as the corpus grows. Scaling the
    cap keeps the same hashes stopped at any size; the floor keeps small corpora (the demo,
    GTZAN, FMA-small and -medium) exactly as they were. Cost: a hash with c postings makes
    c^2/2 pair hits, so voting work grows as N^2 times the (fixed) sum of squared hash shares.
    """
    return max(STOP_POSTINGS, math.ceil(STOP_SHARE * n_tracks))


class LandmarkIndex:
    """Inverted index hash -> postings (track, anchor frame), as sorted arrays in RAM.

    With the prints it is built from, ~28 B per landmark (~52 B while sorting): the reference
    implementation, and fine for a few hundred tracks; detect_faults uses the on-disk index
    (genre_core.faults.landmark_index).
    """

    def __init__(self, prints: Sequence[Fingerprint]):
        sizes = np.array([p.hashes.size for p in prints], dtype=np.int64)
        self.sizes = sizes
        self.stop = stop_postings(len(prints))
        self.max_frames = max((p.n_frames for p in prints), default=1)
        hashes = np.concatenate([p.hashes for p in prints]) if prints else np.zeros(0, np.int64)
        tracks = np.repeat(np.arange(len(prints), dtype=np.int32), sizes)
        times = np.concatenate([p.times for p in prints]) if prints else np.zeros(0, np.int32)
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.tracks, self.times = hashes[order], tracks[order], times[order]

    def votes(self, query: int, fp: Fingerprint) -> list[dict]:
        """Candidate duplicates of track `query` among tracks with a higher index.

        Each candidate: other, offset_frames (t_query - t_ref), votes, vote_share, peak_share.
        """
        lo = np.searchsorted(self.hashes, fp.hashes, side="left")
        hi = np.searchsorted(self.hashes, fp.hashes, side="right")
        count = hi - lo
        count[count > self.stop] = 0
        total = int(count.sum())
        if total == 0:
            return []
        # Expand every query hash into its postings without a Python loop.
        first = np.repeat(lo - np.concatenate(([0], np.cumsum(count)[:-1])), count)
        posting = first + np.arange(total)
        q_time = np.repeat(fp.times, count)
        other = self.tracks[posting]
        later = other > query  # each pair once, from its lower index
        other, offset = other[later], q_time[later] - self.times[posting][later]
        return _offset_peaks(query, other.astype(np.int64), offset.astype(np.int64),
                             self.max_frames, self.sizes)


def _offset_peaks(query: int, other: np.ndarray, offset: np.ndarray, span: int,
                  sizes: np.ndarray) -> list[dict]:
    """Vote histogram per (other, offset); a candidate needs a tall peak at one offset.

    The peak's share of all the pair's hits is reported but not required: looped music
    repeats its hashes, so a true duplicate also scores hits at every loop period.
    """
    if other.size == 0:
        return []
    width = 2 * span + 3
    keys, counts = np.unique(other * width + offset + span + 1, return_counts=True)
    # A shift by a fraction of a hop splits votes between neighbouring frames: sum +-1.
    smooth = counts.copy()
    for step in (-1, 1):
        pos = np.searchsorted(keys, keys + step)
        pos = np.minimum(pos, keys.size - 1)
        smooth += np.where(keys[pos] == keys + step, counts[pos], 0)
    owners = keys // width
    hits = np.bincount(owners, weights=counts)
    order = np.lexsort((-smooth, owners))  # by owner, best smoothed bin first
    best = order[np.r_[True, owners[order][1:] != owners[order][:-1]]]
    return voted_candidates(np.full(best.size, query), owners[best], keys[best] % width - span - 1,
                            votes=smooth[best], hits=hits[owners[best]], sizes=sizes)


def voted_candidates(query: np.ndarray, other: np.ndarray, offset: np.ndarray, *, votes: np.ndarray,
                     hits: np.ndarray, sizes: np.ndarray | Sequence[int]) -> list[dict]:
    """Candidates among each pair's best offset: (K,) arrays of the pair's tracks, best offset
    in frames, smoothed votes there and all hits of the pair; `sizes[i]` is track i's landmark
    count. Keeps pairs with MIN_VOTES aligned votes making MIN_VOTE_SHARE of the shorter track."""
    keep = np.asarray(votes) >= MIN_VOTES  # most pairs share a chance hit or two: drop them first
    query, other, offset, votes, hits = (np.asarray(x)[keep] for x in (query, other, offset, votes, hits))
    out = []
    for q, o, off, v, h in zip(query, other, offset, votes, hits):
        share = float(v / max(1, min(sizes[int(q)], sizes[int(o)])))
        if v >= MIN_VOTES and share >= MIN_VOTE_SHARE:
            out.append(dict(other=int(o), offset_frames=int(off), votes=int(v), vote_share=round(share, 4),
                            peak_share=round(float(v / h), 4)))
    return out


def align(q: np.ndarray, r: np.ndarray, offset: int, *, max_lag: int = 2 * HOP, min_overlap: int = 0) -> dict:
    """How well q[n] matches g * r[n - offset - lag] for the best |lag| <= max_lag samples.

    q, r: (N,) audio at one rate; offset in samples (q later than r when positive).
    Returns correlation (gain-invariant, refined to a sub-sample lag), lag in samples,
    gain_db (level of q over r on the overlap) and overlap in samples.
    """
    q, r = np.asarray(q, np.float64), np.asarray(r, np.float64)
    n0, n1 = max(0, offset), min(q.size, r.size + offset)
    if n1 - n0 < max(max_lag * 4, min_overlap):
        return dict(correlation=0.0, lag=0.0, gain_db=0.0, overlap=max(0, n1 - n0))
    q_seg = q[n0:n1]
    r_pad = np.pad(r, (max_lag, max_lag))
    r_win = r_pad[n0 - offset : n1 - offset + 2 * max_lag]  # (L + 2M,)
    n = scipy.fft.next_fast_len(r_win.size + 1, real=True)
    cross = scipy.fft.rfft(r_win, n) * np.conj(scipy.fft.rfft(q_seg, n))  # (n/2+1,)
    corr = scipy.fft.irfft(cross, n)[: 2 * max_lag + 1]  # c[j] = sum_i q[i] r_win[i + j]
    energy = np.concatenate(([0.0], np.cumsum(r_win**2)))
    r_norm = np.sqrt(np.maximum(energy[q_seg.size:] - energy[: -q_seg.size], 1e-20))[: corr.size]
    q_norm = max(float(np.linalg.norm(q_seg)), 1e-10)
    ncc = corr / (q_norm * r_norm)
    j = int(np.argmax(ncc))
    value, frac = _subsample_peak(cross, n, corr, j)
    best = max(float(ncc[j]), value / (q_norm * r_norm[j]))
    # r_win[i + j] is r[n0 + i - offset - (max_lag - j)]: the lag beyond `offset` is max_lag - j.
    return dict(correlation=round(min(best, 1.0), 4), lag=round(max_lag - j - frac, 3) + 0.0,
                gain_db=round(20 * np.log10(q_norm / r_norm[j]), 2), overlap=int(q_seg.size))


def _subsample_peak(cross: np.ndarray, n: int, corr: np.ndarray, j: int) -> tuple[float, float]:
    """Band-limited value of the correlation at the parabola-fitted peak near integer lag j.

    A copy shifted by half a sample (1.3 s at 22050 Hz is 14332.5 samples at 11025 Hz) loses
    much of its treble correlation at integer lags; evaluating the cross-spectrum at the
    fractional lag restores it.
    """
    if j == 0 or j == corr.size - 1:
        return float(corr[j]), 0.0
    a, b, c = corr[j - 1], corr[j], corr[j + 1]
    denom = a - 2 * b + c
    frac = float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5)) if denom < 0 else 0.0
    k = np.arange(cross.size)
    weights = np.full(cross.size, 2.0)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    value = np.sum(weights * (cross * np.exp(2j * np.pi * k * (j + frac) / n)).real) / n
    return float(value), frac


def recording_pairs(prints: Sequence[Fingerprint], load: Callable[[int], np.ndarray],
                    *, skip: Callable[[int, int], bool] = lambda a, b: False, sr: int = FP_SR) -> list[dict]:
    """Confirmed recording-duplicate pairs among `prints` (indices into it).

    `load(i)` returns track i's (N,) audio at `sr` Hz (the rate the prints were made at);
    only voted candidates are loaded.
    `skip(a, b)` drops pairs already known (e.g. exact duplicates). Each pair: a, b, score
    (correlation) and evidence (offset_s, gain_db, matched_hashes, vote_share, correlation).
    The index is held in RAM: the reference for the on-disk index (landmark_index).
    """
    return confirm_pairs(memory_candidates(prints), load, skip=skip, sr=sr)


def memory_candidates(prints: Sequence[Fingerprint]) -> Iterator[tuple[int, dict]]:
    """(a, candidate) for every voted pair a < candidate["other"] of `prints`, by the RAM index."""
    index = LandmarkIndex(prints)
    for a, fp in enumerate(prints):
        for cand in index.votes(a, fp):
            yield a, cand


def confirm_pairs(candidates: Iterable[tuple[int, dict]], load: Callable[[int], np.ndarray],
                  *, skip: Callable[[int, int], bool] = lambda a, b: False, sr: int = FP_SR) -> list[dict]:
    """Voted candidates (a, dict(other, offset_frames, votes, vote_share)) confirmed by waveform
    correlation; `load(i)` gives track i's (N,) audio at `sr` Hz. Pairs as `recording_pairs`."""
    pairs = []
    for a, cand in candidates:
        b = cand["other"]
        if skip(a, b):
            continue
        fit = align(load(a), load(b), cand["offset_frames"] * HOP, min_overlap=int(MIN_OVERLAP_S * sr))
        if fit["correlation"] < MIN_CORRELATION:
            continue
        offset_s = (cand["offset_frames"] * HOP + fit["lag"]) / sr
        pairs.append(dict(a=a, b=b, score=fit["correlation"], evidence=dict(
            offset_s=round(offset_s, 4), gain_db=fit["gain_db"], matched_hashes=cand["votes"],
            vote_share=cand["vote_share"], correlation=fit["correlation"],
            overlap_s=round(fit["overlap"] / sr, 2))))
    return pairs


def connected_groups(n: int, pairs: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Union-find over (a, b) pairs of n items -> groups of >= 2 members, each sorted."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving keeps the trees flat
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(root(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def key_groups(keys: Sequence[Sequence[str | None]]) -> list[list[int]]:
    """Items sharing any non-empty key in a column (e.g. file SHA-1, decoded SHA-1) -> groups."""
    pairs = []
    for column in keys:
        first: dict[str, int] = {}
        for i, key in enumerate(column):
            if key:
                pairs.append((first.setdefault(key, i), i))
    return connected_groups(max((len(c) for c in keys), default=0), [p for p in pairs if p[0] != p[1]])


def duplicate_groups(ids: Sequence[str], file_keys: Sequence[str | None], decoded_keys: Sequence[str | None],
                     prints, load: Callable[[int], np.ndarray], sr: int = FP_SR,
                     progress: bool = False) -> list[dict]:
    """Exact and recording duplicates among tracks `ids` (all arguments parallel to it).

    `prints` is either the on-disk index holding track i's landmarks under i (a
    landmark_index.DiskLandmarkIndex: `indexed(i)`, `candidates(tracks)`) or, in RAM, a
    sequence of Fingerprint-or-None parallel to `ids`; both give the same groups.
    `load(i)` returns track i's (N,) audio at `sr`, read only for voted candidates. Recording
    duplicates are searched among one member per exact group, so a byte copy is reported
    once, as an exact duplicate. Returns rows (track_id, kind, group_id, score, evidence
    dict); a recording duplicate's evidence is measured against its best-matching partner.
    `progress`: a bar over the on-disk index's vote counting.
    """
    rows, rep = [], list(range(len(ids)))
    for g, group in enumerate(key_groups([file_keys, decoded_keys]), 1):
        same_file = len({file_keys[i] for i in group}) == 1
        evidence = dict(members=[ids[i] for i in group],
                        matched_by="identical file (SHA-1)" if same_file else "identical decoded audio")
        rows += [dict(track_id=ids[i], kind="exact_duplicate", group_id=f"exact-{g:02d}", score=1.0,
                      evidence=evidence) for i in group]
        for i in group[1:]:
            rep[i] = group[0]
    on_disk = hasattr(prints, "candidates")
    reps = [i for i in range(len(ids)) if rep[i] == i and (prints.indexed(i) if on_disk else prints[i] is not None)]
    if on_disk:
        candidates = prints.candidates(reps, progress=progress)
    else:  # the RAM index numbers the representatives 0..R-1: back to positions in `ids`
        candidates = ((reps[a], dict(c, other=reps[c["other"]]))
                      for a, c in memory_candidates([prints[i] for i in reps]))
    pairs = confirm_pairs(candidates, load, sr=sr)
    best: dict[int, tuple[float, dict]] = {}
    for p in pairs:
        for mine, other, sign in ((p["a"], p["b"], 1.0), (p["b"], p["a"], -1.0)):
            if mine not in best or p["score"] > best[mine][0]:
                # evidence is measured from the pair's first track; turned round for the second
                best[mine] = (p["score"], dict(p["evidence"], partner=ids[other],
                                               offset_s=sign * p["evidence"]["offset_s"] + 0.0,
                                               gain_db=sign * p["evidence"]["gain_db"] + 0.0))
    for g, group in enumerate(connected_groups(len(ids), [(p["a"], p["b"]) for p in pairs]), 1):
        members = [ids[j] for j in group]
        rows += [dict(track_id=ids[j], kind="recording_duplicate", group_id=f"recording-{g:02d}",
                      score=best[j][0], evidence=dict(best[j][1], members=members)) for j in group]
    return rows
