"""What each track sounds like, in a musician's words and units: tempo, key mode, loudness,
dynamic range, brightness and percussive share, one value per track.

Read from the cached handcrafted table (genre_core.features.handcrafted: 3-s windows, no
overlap, the windows the baselines and the label check already cached), so most tracks cost
nothing; the key mode needs a chromagram of the whole track, cached per file as well. Failure
slices bin these into terciles; concept tests can take their quantiles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from genre_core.features.cache import ShardCache
from genre_core.features.handcrafted import HANDCRAFTED_NAMES

# column -> what it measures (the words slices and pages use)
DESCRIPTORS = {
    "tempo_bpm": "tempo (bpm; median of the 3-s windows' estimates, which halve or double at times)",
    "key_mode": "key mode (major or minor: the chroma profile's best Krumhansl-Kessler key)",
    "loudness_db": "loudness (dB below full scale, mean RMS)",
    "dynamic_range_db": "dynamic range (dB between the quietest and loudest tenth of 3-s windows)",
    "brightness_hz": "brightness (spectral centroid, Hz)",
    "percussive_share": "percussive share of the energy (harmonic/percussive separation)",
}
MIN_WINDOWS_FOR_RANGE = 3  # fewer 3-s windows say nothing about loud and quiet passages
CHROMA_VERSION = 1  # bump when _chroma_profile changes its output

# Krumhansl & Kessler (1982) key profiles, C first: how well each pitch class fits the key.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _column(name: str) -> int:
    return HANDCRAFTED_NAMES.index(name)


def track_descriptors(tracks: pd.DataFrame, cache: ShardCache, *, progress: bool = True) -> pd.DataFrame:
    """One row of DESCRIPTORS per track of `tracks` (track_id, path, sha1, label), indexed by
    track_id; tracks whose audio cannot be served are left out (servable_tracks says which)."""
    from genre_core.features.windows import build_windows, handcrafted_windows, servable_tracks
    from genre_core.train.config import TrainConfig

    config = TrainConfig(dataset="", model="logreg")  # the baselines' window and rate: cached tables hit
    sr = config.features.sr
    tracks = tracks[tracks["sha1"].notna()].sort_values("track_id")
    tracks = servable_tracks(tracks, cache, sr=sr, desc="descriptor audio", progress=progress).reset_index(drop=True)
    columns = list(DESCRIPTORS)
    if tracks.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="track_id"))
    windows = build_windows(tracks, sorted(tracks["label"].unique()), cache, sr=sr, window_s=config.window_s,
                            hop_s=config.window_s, desc="descriptor windows", progress=progress)
    table = handcrafted_windows(windows, list(tracks["sha1"]), cache, progress=progress)  # (W, 57)
    rows = [_summarise(table[windows.offsets[p]:windows.offsets[p + 1]]) for p in range(len(tracks))]
    frame = pd.DataFrame(rows, index=pd.Index(tracks["track_id"], name="track_id"))
    frame["key_mode"] = [key_mode(_chroma_profile(cache, t, sr)) for t in tracks.itertuples()]
    return frame[columns]


def _summarise(windows: np.ndarray) -> dict:
    """DESCRIPTORS but the key mode, from one track's handcrafted rows (w, 57)."""
    rms = windows[:, _column("rms_mean")]  # (w,) mean frame RMS per window, amplitude
    harmonic = windows[:, _column("harmony_var")].sum()  # variance of a zero-mean signal: its power
    percussive = windows[:, _column("perceptr_var")].sum()
    decibels = 20 * np.log10(np.maximum(rms, 1e-10))
    low, high = np.percentile(decibels, [10, 90]) if len(rms) >= MIN_WINDOWS_FOR_RANGE else (np.nan, np.nan)
    return dict(
        tempo_bpm=float(np.median(windows[:, _column("tempo")])),
        loudness_db=float(20 * np.log10(max(rms.mean(), 1e-10))),
        dynamic_range_db=float(high - low),
        brightness_hz=float(windows[:, _column("spectral_centroid_mean")].mean()),
        percussive_share=float(percussive / (harmonic + percussive)) if harmonic + percussive > 0 else np.nan,
    )


def _chroma_profile(cache: ShardCache, track, sr: int) -> np.ndarray:
    """The track's mean chroma (12,), C first; cached per audio file."""
    def compute() -> np.ndarray:
        from genre_core.features.handcrafted import chroma

        return chroma(cache.load(track.path, track.sha1, sr), sr=sr).mean(axis=1)  # (12,)

    return cache.table(f"chroma-mean-v{CHROMA_VERSION}-{track.sha1}-{sr}", compute, sha1=track.sha1)


def key_mode(profile: np.ndarray) -> str | None:
    """"major" or "minor": the mode of the key whose Krumhansl-Kessler profile, over the 12
    transpositions, correlates best with a chroma profile (12,); None for a flat profile
    (silence, noise: no key to speak of)."""
    profile = np.asarray(profile, dtype=np.float64)
    if not np.isfinite(profile).all() or profile.std() < 1e-9:
        return None
    best = {mode: max(np.corrcoef(profile, np.roll(template, shift))[0, 1] for shift in range(12))
            for mode, template in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE))}
    return max(best, key=best.get)
