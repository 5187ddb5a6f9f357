"""Faults of a dataset: duplicates, distortions, silence, unreadable files, label issues, clips
that are not music (genre_core.faults.outliers) and artist repetition -- detected, joined by the
published ones, and stored in the faults table.

Every detector returns rows (track_id, kind, group_id, score, evidence) whose evidence says
in numbers why the track was flagged, so a person can judge each one in the app.

Label issues rank tracks by the out-of-fold probability of their own genres (see
genre_core.faults.labels): every stored k-fold experiment of the dataset averaged with a quick
check that needs none, scaled by the genres of each artist's other recordings.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from types import SimpleNamespace

import numpy as np
import pandas as pd
import scipy.fft
from tqdm import tqdm

from genre_core import audio, paths
from genre_core.engine import EngineOptions, chunked, map_chunks, sized
from genre_core.faults import fingerprint as fp
from genre_core.faults.kinds import ARTIST_MAX_SHARE, FAULT_KINDS
from genre_core.faults.known import FAULT_COLUMNS, listed_faults
from genre_core.faults.labels import QUICK_SWEEP, OutOfFold, combine, kfold_sources, label_issues, quick_out_of_fold
from genre_core.faults.landmark_index import DiskLandmarkIndex
from genre_core.faults import outliers
from genre_core.store import Store, to_json
from genre_core.features.cache import ShardCache, worker_cache

CLIP_RUN = 3  # samples pinned at one extreme in a row: a real waveform rarely holds still 3 times
CLIP_MIN_SHARE = 1e-3  # 0.1% of samples: one loud peak of a clean track stays far below this
DROPOUT_MIN_S = 0.2  # a gap shorter than this is a rest or an edit, not a dropout
DROPOUT_DBFS = -80.0  # RMS of ~3 16-bit steps: digital silence or bare dither; rooms are louder
DROPOUT_BELOW_MEDIAN_DB = 40.0  # ... and far below the track's usual level
DROPOUT_CUT_DB = 30.0  # level falls this much from the 30 ms before a gap into it: a cut, not a fade
LOUD_MEDIAN_DBFS = -45.0  # "the rest is loud": a quiet track's pauses are music
DC_MAX = 0.05  # mean sample value, full scale
BAND_LIMIT_SHARE = 0.6  # of Nyquist: 16 kHz MP3 low-pass at 44.1 kHz (0.73) is normal
BAND_ENERGY_DB = -70.0  # energy above the effective bandwidth, re total: the 16-bit floor is ~-90
LOW_BITS = 9.0  # effective bits over the used range; 16-bit music uses 12 or more
KFOLD_HINT = "python -m training train --dataset {name} --model MODEL --split kfold"


def _row(track_id: str, kind: str, group_id: str | None, score: float, evidence: dict) -> dict:
    return dict(track_id=track_id, kind=kind, group_id=group_id, score=float(score),
                evidence=to_json(evidence))


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=FAULT_COLUMNS)


# -- distortions (one track's samples) ------------------------------------------------------

def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, lengths) of the runs of True in a (N,) bool mask."""
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return starts, ends - starts


def clipping(y: np.ndarray) -> dict | None:
    """Samples pinned at the track's extremes in runs of >= CLIP_RUN. y: (N,) in [-1, 1].

    Positive and negative rails are checked separately (a DC offset makes them unequal).
    Evidence: share of samples in such runs, the rail levels (full scale), number of runs.
    """
    y = np.asarray(y, dtype=np.float32)
    clipped, runs, levels = 0, 0, []
    for level, side in ((float(y.max()), 1.0), (float(y.min()), -1.0)):
        tolerance = max(abs(level) * 1e-4, 2.0**-16)  # a 16-bit step survives the float decode
        near = y >= level - tolerance if side > 0 else y <= level + tolerance
        if abs(level) < 1e-3 or np.count_nonzero(near) < CLIP_MIN_SHARE * y.size / 2:
            continue  # too few samples at this rail to matter: skip the run search
        _, lengths = _runs(near)
        long = lengths[lengths >= CLIP_RUN]
        clipped, runs = clipped + int(long.sum()), runs + long.size
        levels.append(round(level, 4))
    share = clipped / max(y.size, 1)
    return None if share < CLIP_MIN_SHARE else dict(
        problem="clipping", score=share, share=round(share, 5), levels=levels, runs=runs)


def _block_dbfs(y: np.ndarray, sr: int, block_s: float = 0.01) -> np.ndarray:
    """(N,) audio -> (B,) RMS level of 10-ms blocks in dBFS (-inf for digital silence)."""
    block = max(1, int(sr * block_s))
    n = y.size // block
    frames = np.asarray(y[: n * block], dtype=np.float32).reshape(n, block)
    power = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / block  # (B,)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(power)


def dropouts(y: np.ndarray, sr: int) -> dict | None:
    """Near-silent gaps of >= DROPOUT_MIN_S that cut into an otherwise loud track.
    y: (N,) at sr Hz.

    Leading and trailing silence is not counted: excerpts and songs start and end quietly.
    A gap must also begin abruptly, since music that stops decays into its rests.
    Evidence: count, total_s, longest_s, starts_s and lengths_s (first five), median_dbfs.
    """
    level = _block_dbfs(y, sr)
    median = float(np.median(level)) if level.size else -np.inf
    if median < LOUD_MEDIAN_DBFS:
        return None
    quiet = (level < DROPOUT_DBFS) & (level < median - DROPOUT_BELOW_MEDIAN_DB)
    starts, lengths = _runs(quiet)
    inside = (starts > 0) & (starts + lengths < level.size) & (lengths * 0.01 >= DROPOUT_MIN_S)
    with np.errstate(invalid="ignore"):  # -inf - -inf: silence after silence is no cut
        fall = np.array([level[max(0, s - 3):s].max() - level[s:s + 3].max() if s else 0.0 for s in starts])
    inside &= fall >= DROPOUT_CUT_DB
    if not inside.any():
        return None
    gaps, lengths = starts[inside] * 0.01, lengths[inside] * 0.01
    total = float(lengths.sum())
    return dict(problem="dropouts", score=total / (level.size * 0.01), count=int(inside.sum()),
                total_s=round(total, 2), longest_s=round(float(lengths.max()), 2),
                starts_s=[round(float(s), 2) for s in gaps[:5]],
                lengths_s=[round(float(n), 2) for n in lengths[:5]], median_dbfs=round(median, 1))


def dc_offset(y: np.ndarray) -> dict | None:
    """Mean sample value beyond DC_MAX of full scale. Evidence: the mean."""
    mean = float(np.mean(y, dtype=np.float64))
    return dict(problem="dc_offset", score=abs(mean), mean=round(mean, 4)) if abs(mean) > DC_MAX else None


def bandwidth(y: np.ndarray, sr: int) -> float:
    """Effective bandwidth in Hz: the lowest frequency above which the long-term spectrum
    holds less than BAND_ENERGY_DB of the total energy. y: (N,) at sr Hz."""
    y = np.pad(np.asarray(y, dtype=np.float32), (0, max(0, 2048 - len(y))))
    # Every other 2048-sample frame: a long-term spectrum needs coverage, not overlap.
    frames = np.lib.stride_tricks.sliding_window_view(y, 2048)[::4096] * np.hanning(2048)  # (K, 2048)
    power = np.mean(np.abs(scipy.fft.rfft(frames.astype(np.float32), axis=1)) ** 2, axis=0)  # (F,)
    above = np.cumsum(power[::-1])[::-1]  # energy at and above each frequency
    inside = np.flatnonzero(above >= max(float(above[0]), 1e-30) * 10 ** (BAND_ENERGY_DB / 10))
    return float(np.fft.rfftfreq(2048, 1 / sr)[inside[-1]]) if inside.size else 0.0


def band_limited(y: np.ndarray, sr: int) -> dict | None:
    """Audio with (almost) nothing above BAND_LIMIT_SHARE of Nyquist. Evidence: bandwidth_hz."""
    width, nyquist = bandwidth(y, sr), sr / 2
    return None if width >= BAND_LIMIT_SHARE * nyquist else dict(
        problem="band_limited", score=1 - width / nyquist, bandwidth_hz=round(width), nyquist_hz=nyquist)


def low_bit(y: np.ndarray, sample: int = 50_000) -> dict | None:
    """Few distinct sample levels: effective bits = log2(range / smallest level step) < LOW_BITS.

    A spread-out subset of the samples is enough to see the step and keeps this cheap.
    Evidence: effective_bits, levels (distinct values in the subset), step (full scale).
    """
    y = np.asarray(y, dtype=np.float32)
    values = np.unique(y[:: max(1, y.size // sample)])
    if values.size < 2:
        return None
    step = float(np.min(np.diff(values)))
    bits = float(np.log2((values[-1] - values[0]) / step))
    return None if bits >= LOW_BITS else dict(problem="low_bit", score=1 - bits / 16, step=step,
                                              effective_bits=round(bits, 2), levels=int(values.size))


def distortions(y: np.ndarray, sr: int) -> list[dict]:
    """Every distortion found in (N,) audio at its native rate sr: dicts with problem, score
    and evidence numbers. Resampled audio would hide clipping plateaus and sample levels."""
    found = [clipping(y), dropouts(y, sr), dc_offset(y), band_limited(y, sr), low_bit(y)]
    return [f for f in found if f is not None]


# -- faults the tracks table already records --------------------------------------------------

def status_faults(tracks: pd.DataFrame) -> pd.DataFrame:
    """Rows for tracks ingest could not use: error_kind 'silent' -> 'silence', else 'unreadable'.

    `tracks` is the full tracks table of a dataset (status, error, error_kind columns).
    Tracks whose file went missing after ingest are not a fault of the dataset: skipped.
    """
    bad = tracks[tracks["status"] == "unreadable"]
    rows = [_row(t.track_id, "silence" if str(t.error_kind) == "silent" else "unreadable", None, 1.0,
                 dict(reason=t.error, error_kind=t.error_kind)) for t in bad.itertuples()]
    return _frame(rows)


def artist_repeats(tracks: pd.DataFrame, max_share: float = ARTIST_MAX_SHARE) -> pd.DataFrame:
    """Rows for every track of an artist holding > max_share of its genre's tracks.

    `tracks` has track_id, label, artist (None when unknown; unknown artists still count in
    the genre's size). Evidence: artist, share, n_tracks of the artist, genre_tracks.
    """
    rows = []
    for genre, group in tracks.groupby("label"):
        counts = group["artist"].dropna().value_counts()
        for artist, n in counts.items():
            share = n / len(group)
            if n < 2 or share <= max_share:
                continue
            evidence = dict(artist=artist, genre=genre, share=round(share, 3), n_tracks=int(n),
                            genre_tracks=len(group))
            rows += [_row(t, "artist_repeat", f"artist:{genre}:{artist}", share, evidence)
                     for t in group.loc[group["artist"] == artist, "track_id"]]
    return _frame(rows)


def _label_rows(oof: OutOfFold, tracks: pd.DataFrame, genres: pd.DataFrame) -> pd.DataFrame:
    issues = label_issues(oof, tracks, genres)
    rows = [_row(t.track_id, "label_issue", f"label:{t.label}->{t.suggested}", t.score,
                 dict(json.loads(t.evidence), label=t.label, sweep=oof.sweep)) for t in issues.itertuples()]
    return _frame(rows)


# -- one pass over the audio ----------------------------------------------------------------------

@dataclass
class _Scan:
    """What one pass over a track's audio leaves: its fingerprint, keys, distortions and the
    not-music check's descriptors (None: too short or silent)."""

    fingerprint: fp.Fingerprint | None = None
    decoded: str | None = None
    findings: list[dict] = field(default_factory=list)
    error: str | None = None
    descriptors: list[float] | None = None


def _native_audio(track, cache: ShardCache) -> tuple[np.ndarray, int]:
    """(N,) samples at the file's own rate, through the cache at that rate (keyed by sha1 and
    rate: a 22,050-Hz file shares the training entry, a 44.1-kHz mp3 is decoded once, ever)."""
    sr = int(track.sample_rate)
    if isinstance(track.sha1, str):
        return cache.load(track.path, track.sha1, sr), sr
    return audio.load(track.path, sr=None), sr


def _scan_track(track, cache: ShardCache, sr: int) -> _Scan:
    try:
        y, native = _native_audio(track, cache)
    except audio.AudioError as exc:  # changed on disk since ingest
        return _Scan(error=exc.reason)
    at_sr = audio.resample(np.asarray(y), native, sr)
    described = outliers.descriptors(at_sr if sr == outliers.OUTLIER_SR else
                                     audio.resample(np.asarray(y), native, outliers.OUTLIER_SR), outliers.OUTLIER_SR)
    return _Scan(fp.fingerprint(at_sr), fp.decoded_key(y, native), distortions(y, native),
                 descriptors=None if described is None else described.tolist())


# -- the whole pass ------------------------------------------------------------------------------

@dataclass
class FaultSummary:
    dataset: str
    counts: dict[str, int]  # kind -> tracks flagged (detected faults)
    known: int  # tracks on the dataset's list of known faults (Sturm's for GTZAN, the demo's planted ones)
    label_sweep: str | None  # the label check's sources, k-fold sweeps + QUICK_SWEEP; None: unchecked
    seconds: float
    detected: pd.DataFrame = field(repr=False, default_factory=lambda: _frame([]))

    def line(self) -> str:
        found = ", ".join(f"{n} {kind}" for kind, n in self.counts.items() if n) or "none found"
        text = f"faults on {self.dataset}: {found} ({self.seconds:.1f} s)"
        if self.known:
            text += f"; {self.known} tracks on the dataset's list of known faults"
        if self.label_sweep is None:
            text += "; label issues: not checked (a genre has fewer than 2 usable tracks)"
        elif self.label_sweep == QUICK_SWEEP:
            text += (f"; label issues from the quick check alone (handcrafted + musicnn logistic regressions; "
                     f"a k-fold run adds your model's view: {KFOLD_HINT.format(name=self.dataset)})")
        return text


def _scan_rows(ids: list[str], file_keys: list[str | None], scans: list[_Scan], index: DiskLandmarkIndex,
               load, sr: int, progress: bool = False) -> pd.DataFrame:
    """Duplicate and distortion rows (a distortion's group_id names the problem), and rows
    for files that no longer decode. `index` holds the scanned tracks' landmarks."""
    rows = [_row(**r) for r in fp.duplicate_groups(ids, file_keys, [s.decoded for s in scans],
                                                   index, load, sr, progress=progress)]
    for track_id, scan in zip(ids, scans):
        for f in scan.findings:
            evidence = {k: v for k, v in f.items() if k != "score"}
            rows.append(_row(track_id, "distortion", f["problem"], f["score"], evidence))
        if scan.error:
            rows.append(_row(track_id, "unreadable", None, 1.0, dict(reason=scan.error)))
    return _frame(rows)


SCAN_CHUNK = 8  # tracks per worker task


def scan_chunk(items: list[tuple[int, str, str | None, int]], cache_root: str, sr: int) -> list[dict]:
    """Worker (a local process or a Ray task): one plain row per (position, path, sha1, rate)
    with the landmarks as lists, so it travels as an Arrow table and the driver alone writes
    the landmark index and the database."""
    cache = worker_cache(cache_root)
    rows = []
    for pos, path, sha1, rate in items:
        scan = _scan_track(SimpleNamespace(path=path, sha1=sha1, sample_rate=rate), cache, sr)
        found = scan.fingerprint
        rows.append({"pos": pos, "decoded": scan.decoded, "error": scan.error,
                     "findings": to_json(scan.findings), "descriptors": scan.descriptors,
                     "hashes": None if found is None else found.hashes.tolist(),
                     "times": None if found is None else found.times.tolist(),
                     "n_frames": None if found is None else int(found.n_frames)})
    return rows


def _scan_all(tracks: pd.DataFrame, cache: ShardCache, sr: int, progress: bool,
              index: DiskLandmarkIndex, engine: EngineOptions) -> list[_Scan]:
    """One _Scan per row of `tracks`; byte-identical files are read once and share it, which
    also keeps two workers from writing the same cache entry at once. Fingerprints go to
    `index` under the row's position as they come (the scans keep none: memory stays flat)."""
    first = {}
    for pos, sha1 in enumerate(tracks["sha1"]):
        first.setdefault(sha1 if isinstance(sha1, str) else f"row-{pos}", pos)
    todo = sorted(first.values())
    items = [(pos, str(tracks.path.iloc[pos]), tracks.sha1.iloc[pos] if isinstance(tracks.sha1.iloc[pos], str)
              else None, int(tracks.sample_rate.iloc[pos])) for pos in todo]
    engine = sized(engine, len(items))
    done: dict[int, _Scan] = {}
    with tqdm(total=len(items), desc="fault scan", unit="track", disable=not progress) as bar:
        for _, rows in map_chunks(scan_chunk, chunked(items, SCAN_CHUNK), args=(str(cache.root), sr), options=engine):
            for row in rows:
                if row["hashes"] is not None:
                    index.add(row["pos"], fp.Fingerprint(np.asarray(row["hashes"], dtype=np.int64),
                                                         np.asarray(row["times"], dtype=np.int32),
                                                         int(row["n_frames"])))
                done[row["pos"]] = _Scan(None, row["decoded"], json.loads(row["findings"]), row["error"],
                                         row["descriptors"])
            bar.update(len(rows))
    return [done[first[sha1 if isinstance(sha1, str) else f"row-{pos}"]]
            for pos, sha1 in enumerate(tracks["sha1"])]


def detect_faults(store: Store, dataset_name: str, *, progress: bool = True, sr: int = fp.FP_SR,
                  engine: EngineOptions = EngineOptions(), device: str = "auto") -> FaultSummary:
    """Run every detector on a dataset and replace its stored faults (detected and known).

    Audio is read once per track, through the cache at the file's own rate; duplicates are
    fingerprinted at `sr` Hz into an on-disk landmark index (bounded memory), distortions
    measured at each file's own rate. Label issues average every complete k-fold experiment's
    out-of-fold predictions with the quick check's (genre_core.faults.labels; its musicnn
    embeddings on `device`). Returns counts per kind and the time taken.
    """
    start = time.perf_counter()
    info = store.dataset(dataset_name)
    dataset_id = int(info["dataset_id"])
    every = store.tracks(dataset_name, usable_only=False)
    usable = every[every["status"] == "ok"].reset_index(drop=True)
    cache = ShardCache(paths.cache_dir(store.path))
    ids = list(usable["track_id"])

    @lru_cache(maxsize=16)
    def load(i: int) -> np.ndarray:
        y, native = _native_audio(usable.iloc[i], cache)
        return audio.resample(np.asarray(y), native, sr)

    file_keys = [k if isinstance(k, str) else None for k in usable["sha1"]]
    with DiskLandmarkIndex(paths.cache_dir(store.path) / "fingerprints") as index:
        scans = _scan_all(usable, cache, sr, progress, index, engine)
        parts = [_scan_rows(ids, file_keys, scans, index, load, sr, progress), status_faults(every),
                 artist_repeats(usable)]
    parts.append(outliers.outlier_faults(ids, [scan.descriptors for scan in scans]))
    quick = quick_out_of_fold(usable, cache, progress=progress, engine=engine, device=device)
    oof = combine([*kfold_sources(store.kfold_test_predictions(dataset_id)), quick])
    if oof is not None:
        parts.append(_label_rows(oof, usable, store.track_genres(dataset_name)))
    detected = pd.concat([p for p in parts if len(p)] or [_frame([])], ignore_index=True)
    known = listed_faults(info["kind"], info["root"], every["track_id"])
    store.replace_faults(dataset_id, "detected", detected)
    store.replace_faults(dataset_id, "known", known)
    counts = {k: int(detected.loc[detected["kind"] == k, "track_id"].nunique()) for k in FAULT_KINDS}
    return FaultSummary(dataset_name, counts, int(known["track_id"].nunique()),
                        oof.sweep if oof else None, time.perf_counter() - start, detected)
