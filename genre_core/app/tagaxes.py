"""The Map page in a musician's terms (issue 29 item 3): tracks and windows placed by two musicnn
tags ("guitar" across, "electronic" up) instead of a projection's unnamed axes. Plain data in
(the run's stored taggrams, the map's rows), plain data out, no streamlit.

A taggram holds one row of tag probabilities per musicnn frame: consecutive, non-overlapping
~3-s stretches from the track's start (analyze: `_track_taggram`). A track's value of a tag is
the mean over its frames; a window's (start_s, window_s) is the mean over the frames it
overlaps, each weighted by the seconds it shares with the window, so a window straddling two
frames gets a mix in proportion.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from genre_core.features.settings import MUSICNN_HOP_LENGTH, MUSICNN_SR, MUSICNN_WINDOW_FRAMES
from genre_core.store import taggram_grid
from genre_core.untrusted import chart as shown

TAGS = "tags"  # the projection word (URL proj=tags) for the tag axes
FRAME_S = MUSICNN_WINDOW_FRAMES * MUSICNN_HOP_LENGTH / MUSICNN_SR  # seconds of one taggram frame (2.992)
DEFAULT_AXES = ("guitar", "electronic")  # the example: across, up


def tag_names(taggrams: pd.DataFrame) -> list[str]:
    """The tags of the run's taggrams (rows of queries.taggrams), in the tagger's order; [] for none."""
    return [] if taggrams.empty else [str(t) for t in taggrams.tag_names.iloc[0]]


def default_axes(tags: Sequence[str]) -> tuple[str, str] | None:
    """DEFAULT_AXES where the tagger has both, else its first two tags; None for fewer than two."""
    if all(t in tags for t in DEFAULT_AXES):
        return DEFAULT_AXES
    return (tags[0], tags[1]) if len(tags) >= 2 else None


def _grid(row) -> np.ndarray:
    """One stored taggram as (n_frames, n_tags)."""
    return taggram_grid(row["values"], row["n_frames"], row["tag_names"])


def _columns(taggrams: pd.DataFrame, tags: Sequence[str]) -> list[int]:
    names = tag_names(taggrams)
    missing = [t for t in tags if t not in names]
    if missing:
        raise KeyError(f"no tag {missing[0]!r} in this run's taggrams")
    return [names.index(t) for t in tags]


def track_tags(taggrams: pd.DataFrame, tags: Sequence[str]) -> pd.DataFrame:
    """track_id and one column per tag of `tags`: its mean over the track's frames."""
    cols = _columns(taggrams, tags) if len(taggrams) else []
    rows = [[row["track_id"], *_grid(row)[:, cols].mean(axis=0)] for _, row in taggrams.iterrows()]
    return pd.DataFrame(rows, columns=["track_id", *tags]).astype({t: float for t in tags})


def overlap_weights(starts: np.ndarray, window_s: float, n_frames: int) -> np.ndarray:
    """(W, n_frames): the seconds each window [start, start + window_s) shares with each frame
    [k FRAME_S, (k + 1) FRAME_S), as shares of the window's covered seconds (rows sum to 1;
    a window past the last frame falls back to the last frame)."""
    edges = np.arange(n_frames + 1) * FRAME_S
    lo = np.maximum(starts[:, None], edges[None, :-1])
    hi = np.minimum(starts[:, None] + window_s, edges[None, 1:])
    shared = np.clip(hi - lo, 0.0, None)  # (W, n_frames)
    outside = shared.sum(axis=1) <= 0
    shared[outside, n_frames - 1] = 1.0
    return shared / shared.sum(axis=1, keepdims=True)


def segment_tags(taggrams: pd.DataFrame, windows: pd.DataFrame, tags: Sequence[str],
                 window_s: float) -> pd.DataFrame:
    """The rows of `windows` (track_id, start_s, ...) whose track has a taggram, with one
    column per tag of `tags`: the overlap-weighted mean of the frames the window covers."""
    cols = _columns(taggrams, tags) if len(taggrams) else []
    grids = {row["track_id"]: _grid(row)[:, cols] for _, row in taggrams.iterrows()}  # (F, len(tags)) each
    parts = []
    for track_id, rows in windows[windows.track_id.isin(grids.keys())].groupby("track_id", sort=False):
        weights = overlap_weights(rows.start_s.to_numpy(dtype=float), window_s, len(grids[track_id]))  # (W, F)
        parts.append(rows.assign(**dict(zip(tags, (weights @ grids[track_id]).T))))
    if not parts:
        return windows.iloc[:0].assign(**{t: pd.Series(dtype=float) for t in tags})
    return pd.concat(parts).sort_values(["track_id", "start_s"], kind="stable").reset_index(drop=True)


def on_tag_axes(points: pd.DataFrame, values: pd.DataFrame, x_tag: str, y_tag: str,
                on: Sequence[str] = ("track_id",)) -> pd.DataFrame:
    """`points` (a map's rows: track_id[, start_s], x, y, ...) with x and y replaced by tag
    values (track_tags or segment_tags, joined `on`); rows without tag values dropped."""
    tagged = pd.DataFrame({**{k: values[k] for k in on}, "tag_x": values[x_tag], "tag_y": values[y_tag]})
    merged = points[list(on)].merge(tagged, on=list(on), how="left")  # a left merge keeps points' order
    placed = points.reset_index(drop=True).assign(x=merged.tag_x.to_numpy(), y=merged.tag_y.to_numpy())
    return placed[placed.x.notna() & placed.y.notna()].reset_index(drop=True)


def titled(figure, axes: tuple[str, str] | None):
    """A map figure (its axes hidden: a projection's have no meaning) with the tag axes shown
    and titled by their tags; unchanged when `axes` is None."""
    if axes is None:
        return figure
    for update, tag in ((figure.update_xaxes, axes[0]), (figure.update_yaxes, axes[1])):
        update(visible=True, title=dict(text=f"{shown(tag)} (musicnn tag probability)"), zeroline=False)
    return figure
