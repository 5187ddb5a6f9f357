"""Grad-CAM as the Track page compares it: the predicted and the true genre's maps side by side
on one colour scale, and band profiles whose axis is in Hz (the mel band edges of the run's
feature settings), as plotly figures. No streamlit here.

Bands: a run's mel image has n_mels bands whose edges are `librosa.mel_frequencies(n_mels + 2,
fmin, fmax)` (band j spans edges[j] .. edges[j + 2], the Slaney scale LogMel uses). A stored
map pools them to at most 64 rows (adaptive average pooling: row i covers bands
floor(i * M / R) .. ceil((i + 1) * M / R) - 1); a "gradcam" band profile has one value per band.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from genre_core.app.charts import finish
from genre_core.app.player import EVIDENCE_RAMP
from genre_core.untrusted import chart as shown

MEL_REPRESENTATIONS = ("logmel", "musicnn")  # maps over mel bands; MFCC rows are coefficients
HZ_MARKS = (100, 250, 500, 1000, 2000, 4000, 8000)
CAM_SCALE = [[stop, colour] for stop, colour in EVIDENCE_RAMP]


def mel_edges(representation: str | None, features: Mapping | None) -> np.ndarray | None:
    """(n_mels + 2,) mel band edges in Hz of a run's feature image, or None when its rows are
    not mel bands (MFCC, handcrafted). `features`: the run config's "features" dict."""
    if representation not in MEL_REPRESENTATIONS:
        return None
    import librosa

    from genre_core.features.spectral import display_settings

    s = display_settings(representation, features)
    fmax = s["fmax"] if s["fmax"] is not None else s["sr"] / 2
    return librosa.mel_frequencies(s["n_mels"] + 2, fmin=s["fmin"], fmax=fmax)


def row_ranges(edges: np.ndarray, n_rows: int) -> np.ndarray:
    """(n_rows, 2) [low, high] Hz of each row of an image of len(edges) - 2 mel bands pooled
    to `n_rows` rows (adaptive average pooling's bins; n_rows = n_mels: one band a row)."""
    n_bands = len(edges) - 2
    i = np.arange(n_rows)
    first = np.floor(i * n_bands / n_rows).astype(int)
    last = np.ceil((i + 1) * n_bands / n_rows).astype(int) - 1
    return np.stack([edges[first], edges[last + 2]], axis=1)


def _hz(f: float) -> str:
    return f"{f / 1000:.2g} kHz" if f >= 1000 else f"{f:.0f} Hz"


def row_labels(ranges: np.ndarray) -> list[str]:
    """'low–high' text of each row (distinct, so they can serve as a categorical axis)."""
    labels = [f"{_hz(lo)}–{_hz(hi)}" for lo, hi in ranges]
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):  # rounding could make two equal: keep them apart
        seen[label] = seen.get(label, 0) + 1
        if seen[label] > 1:
            labels[i] = f"{label} ({seen[label]})"
    return labels


def _hz_axis(fig: go.Figure, labels: list[str], ranges: np.ndarray, **where) -> None:
    """Categorical rows labelled by their Hz range; ticks only at round frequencies."""
    centres = np.sqrt(np.maximum(ranges[:, 0], 1.0) * ranges[:, 1])
    marks, rows = [], []
    for f in HZ_MARKS:
        row = int(np.argmin(np.abs(np.log(centres / f))))
        if ranges[0, 0] <= f <= ranges[-1, 1] and (not rows or row - rows[-1] >= max(2, len(labels) // 12)):
            marks.append(f)  # round frequencies a few rows apart: low ones share rows on a mel axis
            rows.append(row)
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=labels,
                     tickvals=[labels[r] for r in rows],
                     ticktext=[f"{f // 1000} kHz" if f >= 1000 else f"{f} Hz" for f in marks], **where)


def cam_pair(maps: Sequence[tuple[str, np.ndarray]], duration_s: float, edges: np.ndarray | None, *,
             scales: Sequence[float | None] | None = None, ylabel: str = "coefficient",
             presentation: bool = False) -> go.Figure:
    """Grad-CAM maps (title, (rows, frames) in [0, 1] over the whole track) side by side on ONE
    colour scale (0 = no evidence .. 1). `scales`: each map's raw maximum where known (then the
    maps are put back on their common raw scale, the strongest reaching 1); without them each
    map is shown as stored, scaled to its own maximum. `edges`: mel band edges (mel_edges) for
    a frequency axis in Hz, else rows are `ylabel` indices."""
    known = scales is not None and len(scales) == len(maps) and all(s is not None and s > 0 for s in scales)
    peak = max(scales) if known else 1.0
    fig = make_subplots(rows=1, cols=len(maps), shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[shown(title) for title, _ in maps])
    for i, (title, cam) in enumerate(maps):
        cam = np.asarray(cam, dtype=np.float32) * (scales[i] / peak if known else 1.0)
        n_rows, n_frames = cam.shape
        x = (np.arange(n_frames) + 0.5) * duration_s / n_frames
        if edges is not None:
            ranges = row_ranges(edges, n_rows)
            y = row_labels(ranges)
            hover = "%{x:.1f} s · %{y}<br>evidence %{z:.2f}<extra></extra>"
        else:
            y, hover = np.arange(n_rows), f"%{{x:.1f}} s · {ylabel} %{{y}}<br>evidence %{{z:.2f}}<extra></extra>"
        fig.add_trace(go.Heatmap(z=np.round(cam, 3), x=x, y=y, coloraxis="coloraxis", hovertemplate=hover),
                      row=1, col=i + 1)
        fig.update_xaxes(title="time (s)", range=[0, duration_s], row=1, col=i + 1)
    if edges is not None:
        _hz_axis(fig, row_labels(row_ranges(edges, maps[0][1].shape[0])), row_ranges(edges, maps[0][1].shape[0]))
    else:
        fig.update_yaxes(title=ylabel, row=1, col=1)
    fig.update_layout(coloraxis=dict(colorscale=CAM_SCALE, cmin=0, cmax=1,
                                     colorbar=dict(title=dict(text="evidence", side="right"), thickness=12, len=0.9)))
    return finish(fig, presentation=presentation, height=300)


def band_profiles(profiles: Mapping[str, np.ndarray], edges: np.ndarray | None, colors: Mapping[str, str], *,
                  presentation: bool = False) -> go.Figure:
    """Where each genre's Grad-CAM evidence usually lies: time-averaged evidence per band (one
    line per genre in `profiles`, values in [0, 1], one per band, lowest first), rows in Hz
    when `edges` (mel band edges) are given."""
    fig = go.Figure()
    labels = None
    for genre, values in profiles.items():
        v = np.asarray(values, dtype=np.float32)
        if edges is not None and len(v) == len(edges) - 2:
            labels = row_labels(row_ranges(edges, len(v)))
            y, hover = labels, "%{y}: %{x:.2f}"
        else:
            y, hover = np.arange(len(v)), "band %{y}: %{x:.2f}"
        fig.add_trace(go.Scatter(x=v, y=y, mode="lines", name=genre, line=dict(color=colors.get(genre, "#888"), width=2),
                                 hovertemplate=hover + f"<extra>{shown(genre)}</extra>"))
    if labels is not None:
        _hz_axis(fig, labels, row_ranges(edges, len(labels)))
        fig.update_yaxes(title="frequency band")
    else:
        fig.update_yaxes(title="band (low → high)")
    fig.update_xaxes(title="mean Grad-CAM evidence (all explained tracks of the genre)", range=[0, 1.02])
    fig.update_layout(legend=dict(orientation="h", y=1.08, x=0))
    return finish(fig, presentation=presentation, height=300)


def variant_table(variants: pd.DataFrame, original: np.ndarray, classes: Sequence[str], *, true: str,
                  predicted: str | None, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The stored variant predictions (variant, probs (C,)) as a table a person reads: variant
    (its label), hears (the top genre and its probability), p(<true>), p(<predicted>): the
    original track first (its stored "original" row where there is one, else `original`),
    then the variants in the order of `labels`."""
    index = {g: i for i, g in enumerate(classes)}
    order = {name: i for i, name in enumerate(labels or {})}
    stored = dict(zip(variants.variant, variants.probs))
    rows = [("original", np.asarray(stored.pop("original", original), dtype=np.float32))]
    rows += [((labels or {}).get(v, v.replace("_", " ")), np.asarray(stored[v], dtype=np.float32))
             for v in sorted(stored, key=lambda v: (order.get(v, len(order)), v))]
    out = []
    for name, probs in rows:
        top = int(np.argmax(probs))
        record = {"variant": name, "hears": f"{classes[top]} {probs[top]:.0%}",
                  f"p({true})": float(probs[index[true]]) if true in index else np.nan}
        if predicted is not None and predicted != true and predicted in index:
            record[f"p({predicted})"] = float(probs[index[predicted]])
        out.append(record)
    return pd.DataFrame(out)
