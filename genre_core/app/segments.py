"""The Map page inside tracks (issue 29): every stored window of a run as a point on the track
map (segments), and one track's windows joined in time order (its trajectory). Plain data in
(rows of queries.segment_points), `go.Figure` out, no streamlit.

Every point carries customdata [track_id, start_s, ...], so a click says which track to open
and where its player starts (Track's `t=`).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from genre_core.app import charts, state
from genre_core.untrusted import chart as shown

VIEWS = {"tracks": "Tracks", "segments": "Segments", "trajectory": "Trajectory"}  # URL word -> label
SEGMENT_COLOURS = {"true genre": "label", "window's predicted genre": "predicted"}
NOT_PREDICTED = "–"  # a training track's window: the run stored no window prediction for it
WRONG = "#D62728"


def clock(seconds: float) -> str:
    """0:05, 1:23: a time in a track as a musician reads it."""
    whole = int(round(float(seconds)))
    return f"{whole // 60}:{whole % 60:02d}"


def trajectory(points: pd.DataFrame, track_id: str) -> pd.DataFrame:
    """One track's windows of `points` in time order (index reset); empty when it has none."""
    rows = points[points.track_id == track_id]
    return rows.sort_values("start_s", kind="stable").reset_index(drop=True)


def typical_start(windows: pd.DataFrame, track_id: str, x: float, y: float) -> float:
    """The start (s) of the track's window that sits nearest its own point (x, y) on the same
    map: the moment most like the track as a whole, what a hover on the track plays; 0 when
    the map holds none of its windows."""
    mine = windows[windows.track_id == track_id]
    if mine.empty:
        return 0.0
    distance = np.hypot(mine.x.to_numpy(float) - x, mine.y.to_numpy(float) - y)
    return float(mine.start_s.iloc[int(np.argmin(distance))])


def clicked_segment(event: Any) -> tuple[str, float] | None:
    """(track_id, start_s) of a single click on a segment or trajectory point; None otherwise
    (nothing clicked, a box or lasso, a point without a time)."""
    data = state.clicked_data(event)
    if len(data) < 2:
        return None
    try:
        return str(data[0]), float(data[1])
    except (TypeError, ValueError):
        return None


def _trace(trace, part: pd.DataFrame, name: str, marker: dict, window_s: float, **more):
    """Segment points; customdata [track_id, start_s, shown id, shown true, shown predicted, span]."""
    ids = part.track_id.astype(str).to_numpy(dtype=object)
    escape = np.vectorize(shown, otypes=[object])
    span = [f"{clock(s)}–{clock(s + window_s)}" for s in part.start_s]
    custom = np.stack([ids, part.start_s.to_numpy(dtype=float).astype(object),
                       *(escape(part[c].astype(str).to_numpy(dtype=object)) if len(part) else np.array([], object)
                         for c in ("track_id", "label", "predicted")),
                       np.asarray(span, dtype=object)], axis=1) if len(part) else None
    return trace(x=part.x.to_numpy(np.float32), y=part.y.to_numpy(np.float32), name=name, marker=marker,
                 customdata=custom, hovertemplate=("<b>%{customdata[2]}</b> %{customdata[5]}<br>true "
                                                   "%{customdata[3]} · this window: %{customdata[4]}<extra></extra>"),
                 **more)


def _groups(points: pd.DataFrame, colour_by: str, classes: Sequence[str]) -> list[str]:
    present = set(points[colour_by].astype(str))
    return [g for g in classes if g in present] + sorted(present - set(classes))


def segment_map(points: pd.DataFrame, colour_by: str, classes: Sequence[str], *, window_s: float = 3.0,
                presentation: bool = False) -> go.Figure:
    """Every window a point, one trace per colour group: `colour_by` "label" (the track's true
    genre) or "predicted" (the window's own prediction; training tracks' windows grey)."""
    if points.empty:
        return charts.empty("No segments stored for this map (run: python -m training analyze --run RUN_ID)")
    colors = {**charts.genre_colors(classes), NOT_PREDICTED: "#9A9A9A"}
    trace = go.Scattergl if len(points) > charts.BIG_MAP else go.Scatter
    size = 6 if len(points) > 2000 else 8
    fig = go.Figure()
    for group in _groups(points, colour_by, classes):
        unknown = group == NOT_PREDICTED  # hollow: the palette's grey (rock) stays a genre
        name = "training track (no window prediction)" if unknown else group
        fig.add_trace(_trace(trace, points[points[colour_by].astype(str) == group], name,
                             dict(size=size + (2 if presentation else 0), color=colors.get(group, "#888"),
                                  opacity=0.8, symbol="circle-open" if unknown else "circle",
                                  line=dict(width=1 if unknown else 0, color=colors.get(group, "#888"))),
                             window_s, mode="markers"))
    return _finish(fig, colour_by, presentation)


def trajectory_map(points: pd.DataFrame, track_id: str, classes: Sequence[str], *, window_s: float = 3.0,
                   presentation: bool = False) -> go.Figure:
    """`track_id`'s windows joined in time order (trace "trajectory": markers point the way
    it goes), start and end labelled, windows predicted other than the track's genre ringed
    red; every other window faint behind, coloured by its track's true genre."""
    path = trajectory(points, track_id)
    if path.empty:
        return charts.empty("This track has no stored windows on this map")
    fig = segment_map(points[points.track_id != track_id], "label", classes, window_s=window_s,
                      presentation=presentation)
    fig.update_traces(marker_opacity=0.25)
    colors = {**charts.genre_colors(classes), NOT_PREDICTED: "#555"}
    fig.add_trace(_trace(go.Scatter, path, "trajectory", dict(
        size=14 if presentation else 11, color=[colors.get(p, "#555") for p in path.predicted.astype(str)],
        symbol="arrow", angleref="previous", line=dict(width=1, color="#222")), window_s,
        mode="lines+markers", line=dict(color="#222", width=1.5)))
    wrong = path[(path.predicted.astype(str) != NOT_PREDICTED) & (path.predicted.astype(str) != path.label.astype(str))]
    if len(wrong):
        fig.add_trace(_trace(go.Scatter, wrong, "window predicted wrong", dict(
            size=(24 if presentation else 20), color="rgba(0,0,0,0)", line=dict(width=2.5, color=WRONG)),
            window_s, mode="markers"))
    ends = path.iloc[[0, -1]] if len(path) > 1 else path.iloc[[0]]
    words = [f"start {clock(path.start_s.iloc[0])}", f"end {clock(path.start_s.iloc[-1])}"][: len(ends)]
    fig.add_trace(go.Scatter(x=ends.x.to_numpy(np.float32), y=ends.y.to_numpy(np.float32), mode="text",
                             text=words, textposition=["top left", "bottom right"][: len(ends)],
                             name="start / end", hoverinfo="skip", showlegend=False,
                             textfont=dict(size=18 if presentation else 14, color="#111")))
    _finish(fig, "trajectory", presentation)
    # Zoomed onto the track with its neighbourhood: a track's windows often sit close together
    # (t-SNE places each by the same nearest tracks); a double click shows the whole map.
    mine, every = path[["x", "y"]].to_numpy(), points[["x", "y"]].to_numpy()
    pad = max(0.6 * float(np.ptp(mine, axis=0).max()), 0.015 * float(np.ptp(every, axis=0).max() or 1.0))
    fig.update_xaxes(range=[float(mine[:, 0].min()) - pad, float(mine[:, 0].max()) + pad])
    fig.update_yaxes(range=[float(mine[:, 1].min()) - pad, float(mine[:, 1].max()) + pad])
    return fig


def _finish(fig: go.Figure, colour_by: str, presentation: bool) -> go.Figure:
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    charts.finish(fig, presentation=presentation, height=620)
    title = {"label": "true genre", "predicted": "window's prediction",
             "trajectory": "genre (faint: true genre of other tracks' windows)"}[colour_by]
    fig.update_layout(dragmode="pan", clickmode="event+select", legend=dict(itemsizing="constant", title=title))
    return fig
