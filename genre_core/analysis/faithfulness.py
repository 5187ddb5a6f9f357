"""Is an explanation faithful? The L-MAC measures of a run's attribution maps, against random masks.

For each of up to `limit` explained test tracks and each k in KS, the track's map for its
predicted genre keeps the top k share of the STFT's cells (genre_core.analysis.listen), and:

- keep_rate: the share of tracks whose masked-in audio ("what the model heard") is still
  classified as the predicted genre;
- drop_in: the mean drop of the predicted genre's probability from the original audio to the
  masked-in audio (small is faithful: the kept part carries the decision);
- drop_out: the mean drop with the masked-out audio ("what it ignored"; large is faithful:
  without the kept part the decision goes).

The same three are measured for random masks of the same area and the same time-frequency
smoothness: white noise on a coarse grid, upsampled bilinearly to the map's grid, its grid
step along each axis chosen so that its lag-1 autocorrelation matches the map's; thresholded
through the very same map -> STFT path, so the area (counted on the map's grid, see
listen.py) is equal to the cell. Probabilities are track-level as the run computes them (the
mean log-probability of its windows, the path of variants.variant_probs), with the windows
side by side instead of at the run's eval hop: half the forward passes, and the original is
scored the same way. A model may call every masked version one genre whatever the mask (masked
audio is out of its training distribution): `collapse_note` says so in analyze's summary. Each
value carries a 95% percentile bootstrap interval over tracks (1,000 resamples).

Cost per track: 4 x len(KS) masked versions of the audio (in and out, explained and random)
plus the original through the model: 13 track classifications, 65 windows for a 15-s track
(~0.7 s of one CPU core with the demo's cnn).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from typing import Sequence

import numpy as np
import pandas as pd
from scipy.ndimage import map_coordinates
from tqdm import tqdm

from genre_core.analysis.listen import masked_audio, stft, stft_masks
from genre_core.metrics.evaluation import bootstrap_ci

KS = (0.10, 0.25, 0.50)  # L-MAC's mask areas; the verdict is read at VERDICT_K
VERDICT_K = 0.25
MEASURES = ("keep_rate", "drop_in", "drop_out")
# Tracks measured per run: 13 classifications each; 40 keep a CPU analysis of the demo to
# seconds for the CNN and give keep-rate intervals of about +-0.15.
FAITHFULNESS_LIMIT = 40
METHOD_NAMES = {"gradcam": "Grad-CAM", "occlusion": "Occlusion"}
_SCALES = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0, 48.0, 64.0)  # noise grid steps, cells


def mel_range(loaded_run) -> tuple[float, float] | None:
    """(fmin, fmax) in Hz of the mel image a run's maps lie on, or None when its maps are not
    over frequency (MFCC rows are cepstral coefficients: no mask on the STFT follows)."""
    from genre_core.features.spectral import MFCC, MusicnnMel

    frontend = loaded_run.frontend
    if frontend is None or isinstance(frontend, MFCC):
        return None
    if isinstance(frontend, MusicnnMel):
        return 0.0, loaded_run.sr / 2  # librosa.filters.mel's defaults, as the wheel uses
    return float(frontend.config.fmin), float(frontend.config.fmax_hz)


# ----------------------------------------------------------------------------- random masks


def _lag1(grid: np.ndarray, axis: int) -> float:
    """Lag-1 autocorrelation of a grid along `axis` (1.0 for a constant grid: perfectly smooth)."""
    x = np.moveaxis(np.asarray(grid, dtype=np.float64), axis, 0)
    if x.shape[0] < 2:
        return 1.0
    x = x - x.mean()
    denom = float(np.sum(x * x))
    return 1.0 if denom <= 0 else float(np.sum(x[1:] * x[:-1]) / denom * x.shape[0] / (x.shape[0] - 1))


@functools.lru_cache(maxsize=None)
def _scale_lag1() -> np.ndarray:
    """Lag-1 autocorrelation of 1-D white noise upsampled linearly by each of _SCALES
    (measured once on 20,000 samples: it depends on the step only)."""
    rng = np.random.default_rng(0)
    out = []
    for scale in _SCALES:
        n = 20_000
        positions = _positions(n, scale, rng)
        coarse = rng.random(int(positions[-1]) + 2)
        out.append(_lag1(np.interp(positions, np.arange(len(coarse)), coarse), 0))
    return np.array(out)


def _positions(n: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Where n cells fall on a noise grid `scale` cells apart, shifted by a random whole number
    of cells (no fixed block edges; at scale 1 the noise stays white)."""
    return (np.arange(n) + rng.integers(0, math.ceil(scale))) / scale


def _matching_scale(grid: np.ndarray, axis: int) -> float:
    target = _lag1(grid, axis)
    return _SCALES[int(np.argmin(np.abs(_scale_lag1() - target)))]


def random_map(attribution: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random map (F, T) float32 as smooth as `attribution` (F, T) along each axis: uniform
    noise on a grid some cells apart (per axis, the step whose lag-1 autocorrelation is
    closest to the map's), at a random offset, upsampled bilinearly."""
    n_bands, n_frames = attribution.shape
    step_f, step_t = _matching_scale(attribution, 0), _matching_scale(attribution, 1)
    rows, cols = _positions(n_bands, step_f, rng), _positions(n_frames, step_t, rng)
    coarse = rng.random((int(rows[-1]) + 2, int(cols[-1]) + 2))
    grid_r, grid_c = np.meshgrid(rows, cols, indexing="ij")
    return map_coordinates(coarse, [grid_r, grid_c], order=1, mode="nearest").astype(np.float32)


# --------------------------------------------------------------------- track probabilities


def track_probs(loaded_run, audios: np.ndarray, *, hop_s: float | None = None) -> np.ndarray:
    """Track-level probabilities of audio versions (M, N) at `loaded_run.sr` -> (M, C), as the
    run scores a track (variants.variant_probs: windows of its length, the mean of the
    windows' log-probabilities, renormalised), with windows every `hop_s` (default: the run's
    eval hop); the versions share forward batches."""
    from genre_core.analysis.variants import variant_probs

    if hop_s is not None:  # a shallow copy: the model and front end are shared, not copied
        loaded_run = copy.copy(loaded_run)
        loaded_run.config = dataclasses.replace(loaded_run.config, eval_hop_s=hop_s)
    audios = np.atleast_2d(np.asarray(audios, dtype=np.float32))
    probs = variant_probs(loaded_run, dict(enumerate(audios)), loaded_run.sr)
    return np.stack([probs[i] for i in range(len(audios))])


# ------------------------------------------------------------------------------- measuring


def track_outcomes(loaded_run, y: np.ndarray, attribution: np.ndarray, target: int, *,
                   rng: np.random.Generator, mel: tuple[float, float],
                   ks: Sequence[float] = KS) -> list[dict]:
    """One track's outcomes: for mask in (explained, random) and k in ks, whether masked-in
    audio keeps class `target` (argmax), and the drops of p(target) in and out. y: (N,) at
    the run's rate; attribution: (F, T) over the track, >= 0."""
    sr = loaded_run.sr
    spec = stft(y)  # (F_stft, T_stft), shared by every mask
    noise = random_map(attribution, rng)
    maps = [attribution] * len(ks) + [noise] * len(ks)
    masks = stft_masks(maps, [*ks, *ks], spec_shape=tuple(spec.shape), sr=sr,
                       duration_s=len(y) / sr, fmin=mel[0], fmax=mel[1])  # (2K, F, T)
    heard, ignored = masked_audio(y, masks, spec=spec)  # (2K, N) each
    # Windows side by side (no overlap): half the forward passes of the run's 1.5-s hop; the
    # original is scored the same way, so every drop compares like with like.
    probs = track_probs(loaded_run, np.concatenate([y[None], heard, ignored]),
                        hop_s=loaded_run.window_s)  # (1 + 4K, C)
    base, n = probs[0, target], len(maps)
    rows = []
    for i, (mask, k) in enumerate([("explained", k) for k in ks] + [("random", k) for k in ks]):
        p_in, p_out = probs[1 + i], probs[1 + n + i]
        rows.append(dict(mask=mask, k=float(k), keep_rate=float(p_in.argmax() == target),
                         drop_in=float(base - p_in[target]), drop_out=float(base - p_out[target]),
                         top_in=int(p_in.argmax())))
    return rows


PAIRED = "explained - random"  # the `mask` of the rows holding the per-track differences


def summarise(outcomes: pd.DataFrame, method: str, *, seed: int = 0, n_boot: int = 1000) -> pd.DataFrame:
    """Per-track outcomes (track_id, mask, k, keep_rate, drop_in, drop_out) -> `faithfulness`
    rows (method, mask, k, measure, value, ci_low, ci_high, n): means over tracks with 95%
    percentile bootstrap intervals (the same resamples for every row: `seed`), for the
    explained masks, the random ones, and (mask PAIRED) the per-track difference of the two:
    each track is its own control, so a small but steady advantage is not lost in the spread
    between tracks."""
    rows = []

    def add(mask: str, k: float, measure: str, values: np.ndarray) -> None:
        low, high = bootstrap_ci(values, values, lambda _, x: x.mean(axis=-1), n_boot=n_boot, seed=seed)
        rows.append(dict(method=method, mask=mask, k=float(k), measure=measure, value=float(values.mean()),
                         ci_low=low, ci_high=high, n=len(values)))

    for (mask, k), group in outcomes.groupby(["mask", "k"], sort=True):
        for measure in MEASURES:
            add(mask, k, measure, group[measure].to_numpy(dtype=np.float64))
    for k, group in outcomes.groupby("k", sort=True):
        for measure in MEASURES:
            pairs = group.pivot_table(index="track_id", columns="mask", values=measure).dropna()
            if {"explained", "random"} <= set(pairs.columns) and len(pairs):
                add(PAIRED, k, measure, (pairs["explained"] - pairs["random"]).to_numpy(dtype=np.float64))
    return pd.DataFrame(rows)


def faithfulness_tables(loaded_run, tracks: pd.DataFrame, explained: pd.DataFrame, cache,
                        attributions: pd.DataFrame, *, limit: int | None = FAITHFULNESS_LIMIT,
                        progress: bool = True, summary=None) -> dict[str, pd.DataFrame]:
    """The `faithfulness` table of a run being analysed (analyze's hook).

    tracks: the run's usable tracks (track_id, path, sha1); explained: predictions of the
    explained split (track_id, label, predicted[, split]); attributions: the maps analyze just
    made (track_id, method, target, n_bands, n_frames, values). At most `limit` tracks (None:
    all), a seeded sample. A run without maps over frequency gets no rows and a note.
    """
    empty = {"faithfulness": pd.DataFrame()}
    notes = summary.notes if summary is not None else []
    mel = mel_range(loaded_run)
    if attributions.empty or mel is None or loaded_run.config.task != "single":
        if not attributions.empty:
            why = "maps over MFCC rows" if mel is None else "multi-label run"
            notes.append(f"no faithfulness ({why}: no time-frequency mask follows)")
        return empty
    chosen = _faithfulness_tracks(explained, attributions, limit, loaded_run.config.seed)
    column = {genre: i for i, genre in enumerate(loaded_run.classes)}
    by_id = tracks.set_index("track_id")
    frames = []
    for method, rows in attributions.groupby("method", sort=True):
        maps = {(r.track_id, r.target): r for r in rows.itertuples()}
        outcomes = []
        for i, row in enumerate(tqdm(chosen.itertuples(), total=len(chosen), desc=f"faithfulness {method}",
                                     unit="track", disable=not progress)):
            if (stored := maps.get((row.track_id, row.predicted))) is None:
                continue
            attribution = np.asarray(stored.values, dtype=np.float32).reshape(int(stored.n_bands),
                                                                              int(stored.n_frames))
            track = by_id.loc[row.track_id]
            y = np.asarray(cache.load(track.path, track.sha1, loaded_run.sr), dtype=np.float32)
            rng = np.random.default_rng([loaded_run.config.seed, i])
            outcomes += [dict(track_id=row.track_id, **o) for o in track_outcomes(
                loaded_run, y, attribution, column[row.predicted], rng=rng, mel=mel)]
        if outcomes:
            frame = pd.DataFrame(outcomes)
            frames.append(summarise(frame, method, seed=loaded_run.config.seed))
            if (note := collapse_note(frame, chosen, loaded_run.classes)) is not None:
                notes.append(f"{METHOD_NAMES.get(method, method)} faithfulness: {note}")
    if not frames:
        return empty
    table = pd.concat(frames, ignore_index=True)
    notes.append(verdict(table))
    return {"faithfulness": table}


def collapse_note(outcomes: pd.DataFrame, chosen: pd.DataFrame, classes: list[str],
                  *, share: float = 0.75) -> str | None:
    """A note when masked audio is out of the model's distribution: at least `share` of all
    masked-in versions (explained and random, every k) are called one genre that fewer than
    half the measured tracks are predicted as. Then no mask keeps a decision, and keep-rates
    say more about the model than about the explanation."""
    if outcomes.empty:
        return None
    counts = outcomes.top_in.value_counts(normalize=True)
    genre, part = classes[int(counts.index[0])], float(counts.iloc[0])
    if part < share or (chosen.predicted == genre).mean() >= 0.5:
        return None
    return (f"masked audio is out of distribution for this model: {part:.0%} of the masked-in versions "
            f"(explained or random) are called {genre}")


def _faithfulness_tracks(explained: pd.DataFrame, attributions: pd.DataFrame, limit: int | None,
                         seed: int) -> pd.DataFrame:
    """Explained tracks of the explained split with a map for their predicted genre, at most
    `limit` of them in a seeded random sample (analyze lists mistakes first: a head() would
    measure mostly mistakes)."""
    if "contrast_only" in explained.columns:  # neighbours of mistakes, explained for comparison
        explained = explained[~explained.contrast_only.fillna(False).astype(bool)]
    mapped = set(zip(attributions.track_id, attributions.target))
    chosen = explained[[(t, p) in mapped for t, p in zip(explained.track_id, explained.predicted)]]
    chosen = chosen.drop_duplicates("track_id").sort_values("track_id")
    if limit is not None and len(chosen) > limit:
        chosen = chosen.iloc[np.sort(np.random.default_rng(seed).permutation(len(chosen))[:limit])]
    return chosen.reset_index(drop=True)


# ---------------------------------------------------------------------------------- verdict


def _value(frame: pd.DataFrame, method: str, mask: str, measure: str, k: float = VERDICT_K) -> pd.Series | None:
    hit = frame[(frame.method == method) & (frame["mask"] == mask) & (frame.measure == measure)
                & np.isclose(frame.k.astype(float), k)]
    return hit.iloc[0] if len(hit) else None


def beats_random(frame: pd.DataFrame, method: str, k: float = VERDICT_K) -> bool | None:
    """Whether `method`'s masks beat random ones at area k: on keep_rate AND drop_out, the
    95% interval of the per-track difference (explained - random, PAIRED rows) lies above 0.
    Tables without PAIRED rows: the explained value above the random masks' interval. None
    when not measured."""
    paired = [_value(frame, method, PAIRED, m, k) for m in ("keep_rate", "drop_out")]
    if all(p is not None for p in paired):
        return all(float(p.ci_low) > 0 for p in paired)
    cells = [(_value(frame, method, "explained", m, k), _value(frame, method, "random", m, k))
             for m in ("keep_rate", "drop_out")]
    if any(e is None or r is None for e, r in cells):
        return None
    return all(float(e.value) > float(r.ci_high) for e, r in cells)


def best_method(frame: pd.DataFrame, k: float = VERDICT_K) -> str | None:
    """The method to ship: one that beats random masks, the largest drop_out margin first;
    else the one closest to it. None for an empty frame."""
    methods = sorted(frame.method.unique()) if len(frame) else []

    def margin(method: str) -> tuple[bool, float]:
        e, r = _value(frame, method, "explained", "drop_out", k), _value(frame, method, "random", "drop_out", k)
        gap = float(e.value - r.value) if e is not None and r is not None else -np.inf
        return bool(beats_random(frame, method, k)), gap

    return max(methods, key=margin) if methods else None


def verdict(frame: pd.DataFrame, method: str | None = None) -> str:
    """One sentence: does the run's explanation (`method`, default the best measured) beat
    random masks of the same area at k = 25%, and by how much (keep-rate and masked-out drop)."""
    if frame is None or frame.empty:
        return "Faithfulness was not measured for this run: its maps are not checked against random masks."
    method = method or best_method(frame)
    name = METHOD_NAMES.get(method, method)
    keep_e, keep_r = _value(frame, method, "explained", "keep_rate"), _value(frame, method, "random", "keep_rate")
    out_e, out_r = _value(frame, method, "explained", "drop_out"), _value(frame, method, "random", "drop_out")
    if any(v is None for v in (keep_e, keep_r, out_e, out_r)):
        return f"{name} was not measured at k = {VERDICT_K:.0%}: its maps are not checked against random masks."
    facts = (f"keeping its top {VERDICT_K:.0%} keeps the decision for {keep_e.value:.0%} of {int(keep_e.n)} "
             f"tracks (random masks {keep_r.value:.0%}) and turning it down lowers the predicted genre's "
             f"probability by {out_e.value:.2f} (random {out_r.value:.2f})")
    keep_d, out_d = _value(frame, method, PAIRED, "keep_rate"), _value(frame, method, PAIRED, "drop_out")
    if keep_d is not None and out_d is not None:
        facts += (f"; per track, {keep_d.value:+.0%} [{keep_d.ci_low:+.0%}, {keep_d.ci_high:+.0%}] and "
                  f"{out_d.value:+.2f} [{out_d.ci_low:+.2f}, {out_d.ci_high:+.2f}] against random, 95% CI")
    if beats_random(frame, method):
        return (f"{name} beats random masks of the same area: {facts}, by {keep_e.value - keep_r.value:+.0%} "
                f"and {out_e.value - out_r.value:+.2f}.")
    return (f"{name} does not beat random masks of the same area on both counts ({facts}): read its map as "
            f"where the evidence may lie, not as what the model listened to.")
