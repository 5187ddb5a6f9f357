"""Plotly figure builders for the app: plain data in, `go.Figure` out, no streamlit.

Every figure goes through `finish()`, which sets one readable style (and bigger fonts in
presentation mode, for lecture halls). Genres keep one colour on every chart (`genre_colors`).
Charts a person clicks on carry track ids (or [true, predicted]) in `customdata`, since
plotly's point indices restart with every trace.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from genre_core.untrusted import chart as shown

# Tableau 10, then more distinct hues: readable on projectors and for most colour-blind eyes.
PALETTE = ("#4E79A7", "#F28E2B", "#E15759", "#76B7B2", "#59A14F", "#EDC948", "#B07AA1",
           "#FF9DA7", "#9C755F", "#BAB0AC", "#1F77B4", "#2CA02C", "#D62728", "#9467BD")
OUTCOME_COLORS = {"correct": "#59A14F", "wrong": "#E15759", "training track": "#BAB0AC"}
FONT = "Source Sans Pro, Helvetica, Arial, sans-serif"
BIG_MAP = 2000  # above this many points the map draws with WebGL

# Every GenreLens chart is drawn on plotly_white. As plotly's default it is attached to each new
# figure without validation (~1 ms); set per figure in finish() it was deep-copied and validated
# again (~30 ms a chart, 0.1 s under load: a visible share of the Track page's six charts).
pio.templates.default = "plotly_white"


class ReadyFigure(go.Figure):
    """A finished figure whose plain dict (what st.plotly_chart serialises on every rerun) is made
    once: plotly's to_dict deep-copies every array on every call, 0.5 s a rerun for a 20,000-point
    map. Only for figures nobody changes any more (see `ready`)."""

    def to_dict(self) -> dict:
        plain = self.__dict__.get("_plain")
        if plain is None:
            plain = self.__dict__["_plain"] = _plain(super().to_dict())
        return plain


def _plain(value):
    """Arrays as lists, once, so the JSON encoder has no numpy left to convert on each rerun."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def ready(fig: go.Figure) -> go.Figure:
    """Mark a finished figure that is cached and shared read-only (st.cache_resource): its dict is
    computed on first display and reused, so later changes to it would not be shown."""
    fig.__class__ = ReadyFigure  # same layout, no copy: copying a 20,000-point figure costs a second
    return fig


def plot_config(image_format: str = "svg", filename: str = "genrelens") -> dict:
    """st.plotly_chart config: the camera button saves SVG (or PNG at 3x) in the browser."""
    return {"displaylogo": False,
            "toImageButtonOptions": {"format": image_format, "filename": filename,
                                     "scale": 3 if image_format == "png" else 1}}


def genre_colors(classes: Sequence[str]) -> dict[str, str]:
    return {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(classes)}


def _shown_values(values):
    """Category labels (strings) escaped for plotly's pseudo-HTML; numbers untouched."""
    if values is None or isinstance(values, (int, float)):
        return values
    if isinstance(values, str):
        return shown(values)
    if getattr(values, "dtype", np.dtype(object)).kind in "fiub":  # coordinates: nothing to escape
        return values
    array = np.asarray(values, dtype=object)
    if array.ndim != 1 or not any(isinstance(v, str) for v in array):
        return values
    return [shown(v) if isinstance(v, str) else v for v in array]


def _untrusted_labels(fig: go.Figure) -> None:
    """Genre, artist, track and run names are untrusted: where plotly shows them as labels
    (trace names and text, categorical axes, tick texts) they go through untrusted.chart, so
    `<a href>` in a genre folder's name is text, and a bidi override cannot reorder it.
    customdata is left raw: clicks report it back as ids (hovertemplates show escaped copies)."""
    for trace in fig.data:
        for attr in ("name", "text", "x", "y"):
            if attr in trace and getattr(trace, attr) is not None:
                setattr(trace, attr, _shown_values(getattr(trace, attr)))
    fig.for_each_xaxis(lambda axis: axis.update(ticktext=_shown_values(axis.ticktext)))
    fig.for_each_yaxis(lambda axis: axis.update(ticktext=_shown_values(axis.ticktext)))


def finish(fig: go.Figure, *, presentation: bool = False, height: int | None = None,
           title: str | None = None) -> go.Figure:
    _untrusted_labels(fig)
    size = 20 if presentation else 14
    fig.update_layout(
        font=dict(family=FONT, size=size, color="#222"),
        title=dict(text=title, font=dict(size=size + 4)) if title else None,
        margin=dict(l=10, r=10, t=50 if title else 20, b=10),
        legend=dict(font=dict(size=size - 1)), hoverlabel=dict(font_size=size),
    )
    if height:
        fig.update_layout(height=int(height * (1.25 if presentation else 1)))
    if presentation:  # at the hall's type size the first x and y tick labels meet in the corner
        fig.update_xaxes(ticklabelstandoff=6)
        fig.update_yaxes(ticklabelstandoff=6)
    return fig


def empty(message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font=dict(size=16))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return finish(fig, height=200)


# -- runs ------------------------------------------------------------------------------------


CI_COLUMNS = ["run_id", "label", "accuracy", "ci_low", "ci_high"]  # what accuracy_ci reads


def accuracy_ci(runs: pd.DataFrame, *, label: str = "label", highlight: str | None = None,
                presentation: bool = False) -> go.Figure:
    """Test accuracy of runs as dots with 95% CI whiskers, best at the top. `runs` has
    `label`, accuracy, ci_low, ci_high (and run_id for the highlight)."""
    frame = runs.dropna(subset=["accuracy"]).sort_values("accuracy")
    if frame.empty:
        return empty("No run has test results yet")
    low = (frame.accuracy - frame.ci_low.fillna(frame.accuracy)).clip(lower=0)
    high = (frame.ci_high.fillna(frame.accuracy) - frame.accuracy).clip(lower=0)
    colors = ["#E15759" if r == highlight else "#4E79A7" for r in frame.get("run_id", [None] * len(frame))]
    fig = go.Figure(go.Scatter(
        x=100 * frame.accuracy, y=frame[label], mode="markers",
        marker=dict(size=14, color=colors),
        error_x=dict(type="data", symmetric=False, array=100 * high, arrayminus=100 * low,
                     thickness=2.5, width=6, color="#555"),
        hovertemplate="%{y}<br>accuracy %{x:.1f}%<extra></extra>",
    ))
    fig.update_xaxes(title="track-level test accuracy (%), 95% CI", range=[0, 100], ticksuffix="%")
    fig.update_yaxes(title=None, automargin=True)
    return finish(fig, presentation=presentation, height=max(220, 60 + 38 * len(frame)))


def f1_heatmap(per_genre: pd.DataFrame, labels: Mapping[str, str],
               presentation: bool = False) -> go.Figure:
    """F1 per genre (columns) and run (rows) with the value written in each cell."""
    if per_genre.empty:
        return empty("No per-genre scores stored")
    genres = list(dict.fromkeys(per_genre.genre))
    table = per_genre.pivot_table(index="run_id", columns="genre", values="f1").reindex(columns=genres)
    rows = [labels.get(r, r) for r in table.index]
    fig = go.Figure(go.Heatmap(
        z=table.values, x=genres, y=rows, zmin=0, zmax=1, colorscale="Blues",
        text=np.vectorize(lambda v: "" if np.isnan(v) else f"{v:.2f}")(table.values),
        texttemplate="%{text}", textfont=dict(size=18 if presentation else 12),
        hovertemplate="%{y}<br>%{x}: F1 %{z:.2f}<extra></extra>",
        colorbar=dict(title="F1"),
    ))
    fig.update_yaxes(autorange="reversed", automargin=True)
    return finish(fig, presentation=presentation, height=max(220, 90 + 40 * len(rows)))


def training_curves(epochs: pd.DataFrame, labels: Mapping[str, str],
                    presentation: bool = False) -> go.Figure:
    """Loss (train solid, val dashed) and validation accuracy per epoch, one colour per run."""
    if epochs.empty:
        return empty("No epochs stored for these runs")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "validation accuracy"))
    for i, (run_id, part) in enumerate(epochs.groupby("run_id", sort=False)):
        color, name = PALETTE[i % len(PALETTE)], labels.get(run_id, run_id)
        for column, dash, col in (("train_loss", "solid", 1), ("val_loss", "dash", 1), ("val_acc", "solid", 2)):
            if part[column].notna().any():
                fig.add_trace(go.Scatter(
                    x=part.epoch, y=part[column], mode="lines+markers", legendgroup=run_id,
                    name=name, line=dict(color=color, dash=dash),
                    showlegend=bool(column == "val_acc" or (column == "train_loss" and part.val_acc.isna().all())),
                    hovertemplate=f"{shown(name)}<br>{column} %{{y:.3f}} at epoch %{{x}}<extra></extra>",
                ), row=1, col=col)
    fig.update_xaxes(title="epoch")
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    finish(fig, presentation=presentation, height=420)
    fig.update_layout(legend=dict(orientation="h", y=-0.25, x=0))
    return fig


# -- confusion -------------------------------------------------------------------------------


def confusion_matrix(cells: pd.DataFrame, *, normalise: bool = True, presentation: bool = False,
                     selected: tuple[str, str] | None = None) -> go.Figure:
    """The confusion matrix, clickable: rows = true genre (first at the top), columns =
    predicted genre, colour = row-normalised rate or count.

    Plotly heatmaps do not report clicks to streamlit, so each cell is a point of a scatter
    (customdata = [true, predicted]) drawn over a heatmap that only paints the colours (in data
    coordinates, so it scales with the figure, unlike marker sizes in pixels); with
    hoverdistance -1 a click anywhere in a cell picks that cell's point. One heatmap image, not a
    rectangle shape per cell: 100 SVG shapes were most of the page's second in the browser.
    """
    if cells.empty:
        return empty("No test predictions for this run")
    classes = list(dict.fromkeys(cells.label))
    n = len(classes)
    value = (cells.rate if normalise else cells.n).to_numpy(dtype=float)
    vmax = max(float(value.max()), 1e-9)
    xi, yi = cells.pred_index.to_numpy() - 1, cells.true_index.to_numpy() - 1
    grid = np.full((n, n), np.nan)
    grid[yi, xi] = value
    # Blues between 4% and 96%: no white cell on the white background, no black-blue text trap.
    stops = np.linspace(0, 1, 11)
    fills = [[float(t), c] for t, c in zip(stops, sample_colorscale("Blues", list(stops * 0.92 + 0.04)))]
    shapes = []
    if selected in set(zip(cells.label, cells.predicted)):
        x, y = classes.index(selected[1]), classes.index(selected[0])
        shapes.append(dict(type="rect", x0=x - 0.5, x1=x + 0.5, y0=y - 0.5, y1=y + 0.5,
                           line=dict(color="#E15759", width=4)))
    colours = go.Heatmap(z=grid, x=np.arange(n), y=np.arange(n), zmin=0, zmax=vmax, colorscale=fills,
                         showscale=False, xgap=1, ygap=1, hoverinfo="skip")
    text = [("" if c == 0 else f"{100 * r:.0f}%" if normalise else str(c)) for r, c in zip(cells.rate, cells.n)]
    fig = go.Figure([colours, go.Scatter(
        x=xi, y=yi, mode="markers+text", text=text,
        textfont=dict(color=np.where(value > 0.55 * vmax, "white", "#222").tolist(),
                      size=(20 if presentation else 13) if n <= 8 else (16 if presentation else 11)),
        marker=dict(size=2, opacity=0, color=value, colorscale="Blues", cmin=0, cmax=vmax, showscale=True,
                    colorbar=dict(title=dict(text="share of row" if normalise else "tracks", side="right"),
                                  tickformat=".0%" if normalise else "d", thickness=14, len=0.75)),
        # [0], [1]: what a click reports; [3], [4]: the same names as the hover shows them
        customdata=np.stack([cells.label, cells.predicted,
                             [f"{c} of {t}" for c, t in zip(cells.n, cells.row_total)],
                             [shown(g) for g in cells.label], [shown(g) for g in cells.predicted]], axis=1),
        hovertemplate=("true <b>%{customdata[3]}</b> → predicted <b>%{customdata[4]}</b><br>"
                       "%{customdata[2]} tracks · click to list them<extra></extra>"),
    )])
    ticks = dict(tickmode="array", tickvals=list(range(n)), ticktext=classes, showgrid=False, zeroline=False,
                 fixedrange=True, ticks="", range=[-0.5, n - 0.5])
    fig.update_xaxes(title="predicted genre", tickangle=-40 if n > 5 else 0, **ticks)
    fig.update_yaxes(title="true genre", autorange=False, scaleanchor="x", constrain="domain",
                     **{**ticks, "range": [n - 0.5, -0.5]})
    fig.update_xaxes(constrain="domain")
    finish(fig, presentation=presentation)
    cell = (58 if presentation else 46) if n <= 12 else 30
    fig.update_layout(shapes=shapes, width=cell * n + 260, height=cell * n + 140, plot_bgcolor="white",
                      hovermode="closest", hoverdistance=-1, clickmode="event+select", dragmode=False,
                      margin=dict(l=10, r=10, t=10, b=10))
    return fig


def per_genre_bars(per_genre: pd.DataFrame, presentation: bool = False) -> go.Figure:
    """Precision, recall and F1 per genre as grouped bars."""
    if per_genre.empty:
        return empty("No per-genre scores stored for this run")
    fig = go.Figure()
    for metric, color in (("precision", "#4E79A7"), ("recall", "#F28E2B"), ("f1", "#59A14F")):
        fig.add_trace(go.Bar(x=per_genre.genre, y=per_genre[metric], name=metric.replace("f1", "F1"),
                             marker_color=color, hovertemplate="%{x}: %{y:.2f}<extra>" + metric + "</extra>"))
    fig.update_yaxes(range=[0, 1], title=None)
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=1.12, x=0))
    return finish(fig, presentation=presentation, height=340)


# -- map -------------------------------------------------------------------------------------


def _map_trace(trace, part: pd.DataFrame, name: str, marker: dict):
    """One group of map points; customdata[0] = track_id is what a click or lasso reports."""
    # Column-wise: a per-point Python loop over 50,000 Arrow-backed strings costs seconds.
    percent = (part.confidence * 100).round().astype("Int64").astype(str)
    said = np.where(part.confidence.notna(), " (" + percent + "%)", " (training track)")
    columns = [part[c].astype(str).to_numpy(dtype=object) for c in ("track_id", "label", "predicted")]
    # [0] is what a click reports (raw); the hover shows [5], the id as text (escaped)
    columns[1:] = [np.vectorize(shown, otypes=[object])(c) if len(c) else c for c in columns[1:]]
    faults = part.fault.astype(str).to_numpy(dtype=object)
    ids_shown = np.vectorize(shown, otypes=[object])(columns[0]) if len(part) else columns[0]
    return trace(
        # float32 halves the coordinates' share of the payload (plotly sends numpy arrays as binary);
        # a map needs no more precision.
        x=part.x.to_numpy(np.float32), y=part.y.to_numpy(np.float32), mode="markers", name=name, marker=marker,
        customdata=np.stack([*columns, said.astype(object), faults, ids_shown], axis=1),
        hovertemplate=("<b>%{customdata[5]}</b><br>true %{customdata[1]} · predicted "
                       "%{customdata[2]}%{customdata[3]}<br>fault: %{customdata[4]}<extra></extra>"))


def embedding_map(points: pd.DataFrame, colour_by: str, classes: Sequence[str],
                  *, presentation: bool = False, highlight: Sequence[str] = ()) -> go.Figure:
    """2-D map of track embeddings, one trace per colour group, customdata[0] = track_id.
    `colour_by` is a column of `points`: label, predicted, outcome or fault. Tracks in
    `highlight` (a search's matches) are ringed in a trace of their own, drawn on top."""
    if points.empty:
        return empty("No projection stored for this run (run: python -m training analyze --run RUN_ID)")
    present = set(points[colour_by].unique())
    if colour_by in ("label", "predicted"):
        colors = genre_colors(classes)
        groups = [g for g in classes if g in present] + sorted(present - set(classes))
    elif colour_by == "outcome":
        colors, groups = OUTCOME_COLORS, [g for g in OUTCOME_COLORS if g in present]
    else:
        kinds = sorted(present - {"none"})
        colors = {"none": "#D0D0D0", **{k: PALETTE[i % len(PALETTE)] for i, k in enumerate(kinds)}}
        groups = ["none", *kinds] if "none" in present else kinds
    trace = go.Scattergl if len(points) > BIG_MAP else go.Scatter
    size = (9 if presentation else 7) if len(points) > 500 else (14 if presentation else 11)
    fig = go.Figure()
    for group in groups:
        fig.add_trace(_map_trace(trace, points[points[colour_by] == group], str(group),
                                 dict(size=size, color=colors.get(group, "#888"), line=dict(width=0.5, color="white"),
                                      opacity=0.55 if group == "none" else 0.9)))
    found = points[points.track_id.isin(set(highlight))]
    if len(found):
        ring = dict(size=size + 8, color="#111", symbol="circle-open", line=dict(width=2.5, color="#111"))
        fig.add_trace(_map_trace(trace, found, "search", ring))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    finish(fig, presentation=presentation, height=620)
    fig.update_layout(dragmode="pan", clickmode="event+select",
                      legend=dict(itemsizing="constant", title=colour_by.replace("label", "true genre")))
    return fig


# -- one track -------------------------------------------------------------------------------


def waveform(envelope: pd.DataFrame, presentation: bool = False) -> go.Figure:
    if envelope.empty:
        return empty("No audio to draw")
    fig = go.Figure([
        go.Scatter(x=envelope.time_s, y=envelope.high, mode="lines", line=dict(width=0.6, color="#4E79A7"),
                   hoverinfo="skip", showlegend=False),
        go.Scatter(x=envelope.time_s, y=envelope.low, mode="lines", fill="tonexty",
                   line=dict(width=0.6, color="#4E79A7"), fillcolor="rgba(78,121,167,0.6)",
                   hovertemplate="%{x:.1f} s<extra></extra>", showlegend=False),
    ])
    fig.update_xaxes(title="time (s)")
    fig.update_yaxes(range=[-1, 1], title=None, showticklabels=False)
    return finish(fig, presentation=presentation, height=150)


def spectrogram(mel: Mapping, *, cam: np.ndarray | None = None, opacity: float = 0.5,
                target: str | None = None, presentation: bool = False) -> go.Figure:
    """Log-mel spectrogram (grey) with an optional Grad-CAM map (n_bands, n_frames) in [0, 1]
    spanning the whole track laid over it in transparent-to-red, `opacity` in [0, 1]."""
    image = np.asarray(mel["mel"])  # (M, T) dB
    n_mels, n_frames = image.shape
    duration = float(mel["duration_s"])
    times = (np.arange(n_frames) + 0.5) * duration / n_frames
    # Whole dB in one byte each: hover shows whole dB anyway, and the image is a quarter of the
    # float32 payload (the largest part of the Track page).
    whole_db = np.clip(np.round(image), -128, 127).astype(np.int8)
    fig = go.Figure(go.Heatmap(z=whole_db, x=times, y=np.arange(n_mels), colorscale="gray_r", showscale=False,
                               hovertemplate="%{x:.1f} s<br>band %{y}<br>%{z:.0f} dB<extra></extra>"))
    if cam is not None:
        bands, frames = cam.shape
        fig.add_trace(go.Heatmap(
            z=cam, x=(np.arange(frames) + 0.5) * duration / frames,
            y=(np.arange(bands) + 0.5) * n_mels / bands - 0.5, zmin=0, zmax=1, opacity=opacity,
            colorscale=[[0, "rgba(255,60,0,0)"], [0.35, "rgba(255,60,0,0.25)"], [1, "rgba(255,200,0,1)"]],
            colorbar=dict(title=f"Grad-CAM<br>{shown(target or '')}", thickness=12, len=0.8),
            hovertemplate="%{x:.1f} s<br>evidence %{z:.2f}<extra>" + shown(target or "") + "</extra>"))
    freqs = mel.get("freqs")
    if freqs is not None:
        marks = [f for f in (100, 250, 500, 1000, 2000, 4000, 8000) if f < freqs[-1]]
        fig.update_yaxes(tickvals=[int(np.searchsorted(freqs, f)) for f in marks],
                         ticktext=[f"{f // 1000} kHz" if f >= 1000 else f"{f} Hz" for f in marks])
    fig.update_xaxes(title="time (s)", range=[0, duration])
    fig.update_yaxes(title="mel band (low → high)")
    return finish(fig, presentation=presentation, height=360)


def attribution_grid(cam: np.ndarray, duration: float, ylabel: str, *, presentation: bool = False) -> go.Figure:
    """A Grad-CAM map on its own (for inputs that are not mel images, e.g. MFCCs)."""
    bands, frames = cam.shape
    fig = go.Figure(go.Heatmap(z=cam, x=(np.arange(frames) + 0.5) * duration / frames, y=np.arange(bands),
                               colorscale="YlOrRd", zmin=0, zmax=1, colorbar=dict(title="Grad-CAM")))
    fig.update_xaxes(title="time (s)")
    fig.update_yaxes(title=ylabel)
    return finish(fig, presentation=presentation, height=260)


def window_timeline(segments: pd.DataFrame, window_s: float, classes: Sequence[str],
                    *, presentation: bool = False) -> go.Figure:
    """Per-window genre probabilities as stacked bars, one bar per window at its start time
    and one hop wide (short tracks have a single window, which an area chart cannot draw)."""
    if segments.empty:
        return empty("No per-window predictions stored for this track")
    starts = np.unique(segments.start_s)
    hop = float(np.median(np.diff(starts))) if len(starts) > 1 else window_s
    colors = genre_colors(classes)
    fig = go.Figure()
    for genre in [g for g in classes if g in set(segments.genre)]:
        part = segments[segments.genre == genre]
        fig.add_trace(go.Bar(
            x=part.start_s + hop / 2, y=part.prob, width=hop * 0.92, name=genre, marker_color=colors[genre],
            hovertemplate=shown(genre) + " %{y:.0%} around %{x:.1f} s<extra></extra>"))
    fig.update_xaxes(title=f"time (s); each bar is a {window_s:g}-s window")
    fig.update_yaxes(range=[0, 1], tickformat=".0%", title=None)
    fig.update_layout(barmode="stack", bargap=0, legend=dict(orientation="h", y=-0.3, x=0))
    return finish(fig, presentation=presentation, height=320)


def probability_bars(probs: pd.DataFrame, classes: Sequence[str], presentation: bool = False) -> go.Figure:
    """Horizontal bars of a track's genre probabilities; the true genre outlined in black."""
    if probs.empty:
        return empty("This run made no prediction for this track (a training track)")
    frame = probs.sort_values("prob")
    colors = genre_colors(classes)
    fig = go.Figure(go.Bar(
        x=frame.prob, y=[f"{g}  ✓ true" if t else g for g, t in zip(frame.genre, frame.is_true)],
        orientation="h", marker=dict(color=[colors.get(g, "#888") for g in frame.genre],
                                     line=dict(color=["#111" if t else "rgba(0,0,0,0)" for t in frame.is_true],
                                               width=3)),
        text=[f"{p:.0%}" for p in frame.prob], textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    fig.update_xaxes(range=[0, 1.12], tickformat=".0%", title=None)
    fig.update_yaxes(automargin=True)
    return finish(fig, presentation=presentation, height=max(200, 40 + 26 * len(frame)))


def taggram(tags: Mapping, window_s: float = 3.0, top: int = 15, presentation: bool = False) -> go.Figure:
    """The pretrained tagger's tag probabilities over time (top tags by mean)."""
    values = np.asarray(tags["values"])  # (W, n_tags)
    order = np.argsort(values.mean(axis=0))[::-1][:top]
    fig = go.Figure(go.Heatmap(
        z=values[:, order].T, x=np.arange(values.shape[0]) * window_s + window_s / 2,
        y=[tags["tags"][i] for i in order], colorscale="Viridis", zmin=0, zmax=max(0.05, float(values.max())),
        colorbar=dict(title="p"), hovertemplate="%{y} %{z:.2f} at %{x:.0f} s<extra></extra>"))
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(title="time (s)")
    return finish(fig, presentation=presentation, height=max(260, 24 * len(order) + 80))


def band_profile(values: Sequence[float], genre: str, presentation: bool = False) -> go.Figure:
    v = np.asarray(values)
    fig = go.Figure(go.Bar(x=v, y=np.arange(len(v)), orientation="h", marker_color="#F28E2B",
                           hovertemplate="band %{y}: %{x:.2f}<extra></extra>"))
    fig.update_yaxes(title="band (low → high)")
    fig.update_xaxes(title=f"Grad-CAM evidence for {shown(genre)}")
    return finish(fig, presentation=presentation, height=260)


# -- classify --------------------------------------------------------------------------------


def sections_timeline(frame: pd.DataFrame, classes: Sequence[str], presentation: bool = False) -> go.Figure:
    """Top: smoothed sections as coloured bands; bottom: stacked window probabilities.
    `frame` is timeline.timeline_frame output (start_s, end_s, one column per genre, genre)."""
    colors = {**genre_colors(classes), "silence": "#DDDDDD"}
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.25, 0.75], vertical_spacing=0.06)
    centre = (frame.start_s + frame.end_s) / 2
    runs = (frame.genre != frame.genre.shift()).cumsum()
    for _, part in frame.groupby(runs, sort=False):
        genre = part.genre.iloc[0]
        fig.add_trace(go.Bar(x=[part.end_s.max() - part.start_s.min()], base=[part.start_s.min()], y=["verdict"],
                             orientation="h", marker_color=colors.get(genre, "#888"), name=str(genre),
                             text=str(genre), textposition="inside", insidetextanchor="middle",
                             showlegend=False, hovertemplate=f"{shown(genre)}<extra></extra>"), row=1, col=1)
    for genre in classes:
        if genre in frame:
            fig.add_trace(go.Scatter(x=centre, y=frame[genre], name=genre, stackgroup="p", mode="lines",
                                     line=dict(width=0.5, color=colors[genre]),
                                     hovertemplate=shown(genre) + " %{y:.0%} at %{x:.1f} s<extra></extra>"), row=2, col=1)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=2, col=1)
    fig.update_xaxes(title="time (s)", row=2, col=1)
    fig.update_layout(barmode="overlay")
    return finish(fig, presentation=presentation, height=420)
