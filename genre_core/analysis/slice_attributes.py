"""The attributes failure slices are made of: for each test track of a run, one value per
attribute, written as the words a slice is named by ("genre disco", "tempo under 95 bpm",
"by Mirrorball Connection, an artist absent from training"), or None where unknown.

Continuous descriptors are cut at their terciles over the run's test tracks, with the edges
rounded and stated in the value itself, so a slice's name says exactly which tracks it holds.
Text in the values (artists, genres) is untrusted and is escaped where it is shown.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from genre_core.faults.kinds import SEVERITY
from genre_core.store import taggram_grid

# Descriptor column (analysis.descriptors) -> (attribute name, how an edge's number is
# written, its unit).
TERCILE_ATTRIBUTES: dict[str, tuple[str, Callable[[float], str], str]] = {
    "tempo_bpm": ("tempo", "{:.0f}".format, " bpm"),
    "loudness_db": ("loudness", "{:.1f}".format, " dBFS"),
    "dynamic_range_db": ("dynamic range", "{:.1f}".format, " dB"),
    "brightness_hz": ("brightness (spectral centroid)", "{:,.0f}".format, " Hz"),
    "percussive_share": ("percussive share", lambda v: f"{100 * v:.0f}", "%"),
    "duration_s": ("duration", "{:.1f}".format, " s"),
}
# Edges are rounded to what their words show (tempo to 1 bpm, shares to 1%), so that the words
# are exactly true of the tracks binned by them.
ROUNDING = {"tempo_bpm": 0, "loudness_db": 1, "dynamic_range_db": 1, "brightness_hz": 0,
            "percussive_share": 2, "duration_s": 1}
TAG_DECIMALS = 2
# What the musicnn tagger (MSD tags, averaged over a track's 3-s windows) says of voices and
# instruments; several tags of one meaning count by their largest score.
TAG_ATTRIBUTES = {
    "vocals": ("female vocalists", "male vocalists", "female vocalist"),
    "guitar": ("guitar",),
    "acoustic": ("acoustic",),
    "electronic": ("electronic", "electronica", "electro"),
}


def tercile_words(values: pd.Series, *, name: str, number: Callable[[float], str], unit: str = "",
                  decimals: int) -> pd.Series:
    """Each value's tercile as words ("tempo under 95 bpm", "tempo 95–120 bpm", "tempo 120 bpm
    or more"); None where the value is missing. Edges are the 1/3 and 2/3 quantiles rounded to
    `decimals` (and so written by `number`); equal edges merge their bins, and all values
    equal make one bin."""
    known = values.dropna()
    out = pd.Series(None, index=values.index, dtype=object)
    if known.empty:
        return out
    edges = np.unique(np.round(np.quantile(known.to_numpy(dtype=float), [1 / 3, 2 / 3]), decimals))
    edges = edges[(edges > known.min()) & (edges <= known.max())]  # an edge nothing falls below: none
    bins = np.searchsorted(edges, known.to_numpy(dtype=float), side="right")  # 0..len(edges)
    if len(edges) == 0:
        words = [f"{name} {number(known.min())}{unit}"]
    else:
        words = [f"{name} under {number(edges[0])}{unit}"]
        # "70–95 bpm", but "-23.1 to -21.4 dBFS": a dash between negative numbers misleads
        words += [f"{name} {number(lo)}{' to ' if lo < 0 else '–'}{number(hi)}{unit}"
                  for lo, hi in zip(edges[:-1], edges[1:])]
        words += [f"{name} {number(edges[-1])}{unit} or more"]
    out[known.index] = [words[b] for b in bins]
    return out


def tag_means(taggrams: pd.DataFrame | None) -> pd.DataFrame:
    """Per-track mean of each TAG_ATTRIBUTES score (index track_id) from taggram rows (track_id,
    tag_names, n_frames, values: n_frames x tags row-major); empty without taggrams."""
    columns = list(TAG_ATTRIBUTES)
    if taggrams is None or taggrams.empty:
        return pd.DataFrame(columns=columns, index=pd.Index([], name="track_id"), dtype=float)
    rows = {}
    for row in taggrams.itertuples():
        names = list(row.tag_names)
        scores = taggram_grid(row.values, row.n_frames, names, dtype=np.float64).mean(axis=0)
        rows[row.track_id] = {attr: max((scores[names.index(t)] for t in tags if t in names), default=np.nan)
                              for attr, tags in TAG_ATTRIBUTES.items()}
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("track_id")


def worst_fault(faults: pd.DataFrame, track_ids) -> pd.Series:
    """Per track, the most damaging fault kind flagged (detected or known; SEVERITY order) as
    words ("flagged: label issue"), or "no fault flagged"."""
    rank = {kind: i for i, kind in enumerate(SEVERITY)}
    flagged = faults.assign(rank=faults["kind"].map(rank).fillna(len(rank))).sort_values("rank", kind="stable")
    worst = flagged.drop_duplicates("track_id").set_index("track_id")["kind"]
    words = pd.Series(list(track_ids), index=list(track_ids)).map(worst)
    return words.map(lambda k: "no fault flagged" if pd.isna(k) else f"flagged: {str(k).replace('_', ' ')}")


def slice_attributes(tests: pd.DataFrame, *, descriptors: pd.DataFrame, training_artists: set[str],
                     faults: pd.DataFrame, tags: pd.DataFrame) -> pd.DataFrame:
    """The attribute values of each test track (index track_id, one column per attribute, in
    the order slices are named by: genre and artist first).

    `tests`: track_id, label, artist, duration_s of the run's test tracks; `descriptors`:
    analysis.descriptors.track_descriptors of them (rows may be missing); `training_artists`:
    artists with a track on the run's training side; `faults`: track_id, kind rows of the
    dataset; `tags`: tag_means (explained tracks only).
    """
    ids = pd.Index(tests["track_id"], name="track_id")
    artist = pd.Series(tests["artist"].to_numpy(), index=ids).where(lambda a: a.notna() & (a != ""))
    unseen = artist.map(lambda a: None if pd.isna(a) else a not in training_artists)
    out = pd.DataFrame(index=ids)
    out["genre"] = [f"genre {g}" for g in tests["label"]]
    out["artist"] = [None if pd.isna(a) else f"by {a}" + (", an artist absent from training" if u else "")
                     for a, u in zip(artist, unseen)]
    out["artist in training"] = unseen.map(
        lambda u: None if u is None else ("artist absent from training" if u else "artist also in training"))
    numbers = descriptors.reindex(ids).assign(duration_s=tests["duration_s"].to_numpy())
    for column in ("tempo_bpm", "loudness_db", "dynamic_range_db", "brightness_hz", "percussive_share"):
        out[TERCILE_ATTRIBUTES[column][0]] = _terciles(numbers[column], column)
    out["key mode"] = numbers["key_mode"].map(lambda m: None if pd.isna(m) else f"in a {m} key")
    for attr in TAG_ATTRIBUTES:
        out[f"musicnn {attr}"] = tercile_words(tags.reindex(ids)[attr], name=f"musicnn '{attr}' score",
                                               number="{:.2f}".format, decimals=TAG_DECIMALS)
    out["duration"] = _terciles(numbers["duration_s"], "duration_s")
    out["fault"] = worst_fault(faults, ids).to_numpy()
    return out


def _terciles(values: pd.Series, column: str) -> pd.Series:
    name, number, unit = TERCILE_ATTRIBUTES[column]
    return tercile_words(values, name=name, number=number, unit=unit, decimals=ROUNDING[column])
