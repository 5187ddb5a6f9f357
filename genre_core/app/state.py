"""The app's selection logic, free of streamlit so it can be tested as plain functions.

Streamlit drops widget state on a page switch, so every choice that must survive one (the
run, the track, the current selection, presentation mode) lives under the non-widget keys
below; the pages read them through `context()` and move between tracks with `step()`.
Chart selections arrive as plotly point dicts; the helpers here turn them into filters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, MutableMapping, Sequence

import numpy as np
import pandas as pd

# Non-widget session_state keys (widgets use the same names with a leading underscore).
DB = "genrelens.db"  # queries.DbRef of the open database
DB_CHOICE = "genrelens.db_choice"  # label of the chosen database (access.database_labels), not a path
RUN = "genrelens.run_id"  # the run chosen in the sidebar
PRESENTATION = "genrelens.presentation"  # bool: big fonts, controls folded away
IMAGE_FORMAT = "genrelens.image_format"  # "svg" | "png": what a chart's camera button saves
TRACK = "genrelens.track"  # (dataset_id, track_id) shown on the Track page
SELECTION = "genrelens.selection"  # Selection: the tracks prev/next walks through
AUTOPLAY = "genrelens.autoplay"  # bool: start the Track page's player (set by a map click)
RETURN_TO = "genrelens.return_to"  # page a deep link asked for before app.py had run
LINK = "genrelens.link"  # dict: the parameters of a link opened in this run (genre_core.app.links), else absent
LINK_WRITTEN = "genrelens.link_written"  # dict: the parameters this session last put in the URL
LINK_DB = "genrelens.link_db"  # label of the database for links; None when only one is offered
START = "genrelens.start"  # (track_id, seconds): where a link asked the Track page's player to start

DECISIONS = ("confirmed", "dismissed")


@dataclass(frozen=True)
class Selection:
    """An ordered set of tracks picked on a chart, with where they came from (for the caption)."""

    source: str
    track_ids: tuple[str, ...] = ()
    dataset_id: int | None = None


@dataclass(frozen=True)
class Context:
    """What every page needs from the sidebar, read from session_state."""

    db: Any  # queries.DbRef
    run_id: str | None
    presentation: bool = False
    image_format: str = "svg"
    track: tuple[int, str] | None = None
    selection: Selection = field(default_factory=lambda: Selection("nothing selected yet"))


def context(state: Mapping[str, Any]) -> Context:
    return Context(
        db=state.get(DB),
        run_id=state.get(RUN),
        presentation=bool(state.get(PRESENTATION, False)),
        image_format=state.get(IMAGE_FORMAT, "svg"),
        track=state.get(TRACK),
        selection=state.get(SELECTION) or Selection("nothing selected yet"),
    )


def open_track(state: MutableMapping[str, Any], dataset_id: int, track_id: str,
               selection: Selection | None = None, autoplay: bool = False) -> None:
    """Make `track_id` the Track page's track; a new selection replaces the old one unless
    the track is outside it, in which case the old selection is kept only if it holds it."""
    state[TRACK] = (int(dataset_id), str(track_id))
    state[AUTOPLAY] = autoplay
    if selection is not None:
        state[SELECTION] = selection
    else:
        current = state.get(SELECTION)
        if current is None or str(track_id) not in current.track_ids:
            state[SELECTION] = Selection("single track", (str(track_id),), int(dataset_id))


def step(selection: Selection, track_id: str | None) -> tuple[str | None, str | None, int | None]:
    """(previous, next, 0-based position) of `track_id` in the selection; None at the ends
    and when the track is not in it (then position is None too)."""
    ids = selection.track_ids
    if track_id not in ids:
        return None, None, None
    i = ids.index(track_id)
    return (ids[i - 1] if i > 0 else None), (ids[i + 1] if i + 1 < len(ids) else None), i


# -- chart selections ----------------------------------------------------------------------


def _points(selection: Any) -> list[dict]:
    """The point dicts of a st.plotly_chart selection state (or of its `selection` part)."""
    if selection is None:
        return []
    inner = selection.get("selection", selection) if hasattr(selection, "get") else selection
    points = inner.get("points", []) if hasattr(inner, "get") else []
    return list(points or [])


def _custom(point: Mapping[str, Any]) -> list:
    data = point.get("customdata")
    if data is None:
        return []
    return list(data) if isinstance(data, (list, tuple)) else [data]


def clicked_cell(selection: Any) -> tuple[str, str] | None:
    """(true genre, predicted genre) of a click on the confusion matrix, whose square markers
    carry customdata [true, predicted]; None when nothing (or no cell) is selected."""
    for point in _points(selection):
        data = _custom(point)
        if len(data) >= 2:
            return str(data[0]), str(data[1])
    return None


def selected_track_ids(selection: Any) -> list[str]:
    """Track ids (customdata[0] of each point) of a click, box or lasso selection, in the
    order plotly reports them, without repeats."""
    seen: dict[str, None] = {}
    for point in _points(selection):
        data = _custom(point)
        if data:
            seen.setdefault(str(data[0]), None)
    return list(seen)


def clicked_data(selection: Any) -> list:
    """The customdata of the one point a plain click chose ([] for none, a box or a lasso)."""
    return _custom(_points(selection)[0]) if is_single_click(selection) else []


def is_single_click(selection: Any) -> bool:
    """True for a plain click (one point, no box or lasso drawn)."""
    if selection is None:
        return False
    inner = selection.get("selection", selection) if hasattr(selection, "get") else {}
    drawn = (inner.get("box") or []) + (inner.get("lasso") or []) if hasattr(inner, "get") else []
    return len(_points(selection)) == 1 and not drawn


def tracks_in_cell(predictions: pd.DataFrame, true: str, predicted: str) -> pd.DataFrame:
    """The rows of `predictions` (label, predicted, confidence, ...) behind one confusion
    cell, least confident first on the diagonal and most confident first off it (the
    confidently wrong ones are the interesting ones)."""
    rows = predictions[(predictions["label"] == true) & (predictions["predicted"] == predicted)]
    return rows.sort_values("confidence", ascending=(true == predicted), kind="stable")


def nearest_on_map(points: pd.DataFrame, track_id: str, k: int = 20) -> list[str]:
    """The `k` tracks nearest `track_id` on a 2-D map (x, y columns), itself first: what
    prev/next walks through after a click on a lone point."""
    here = points[points["track_id"] == track_id]
    if here.empty:
        return [track_id]
    d = (points["x"] - here["x"].iloc[0]) ** 2 + (points["y"] - here["y"].iloc[0]) ** 2
    order = np.argsort(d.to_numpy(), kind="stable")[:k]
    ids = list(points["track_id"].iloc[order])
    return [track_id] + [t for t in ids if t != track_id][: k - 1]


MAP_MAX_POINTS = 50_000  # above this a browser's WebGL map stutters on pan and lasso
MAP_MIN_PER_LABEL = 200  # a rare genre keeps at least this many sampled points (or all it has)


def sample_map(points: pd.DataFrame, *, max_points: int = MAP_MAX_POINTS, keep: Iterable[str] = (),
               seed: int = 0, keep_wrong: bool = True) -> pd.DataFrame:
    """The points of a map to draw: all of them up to `max_points`; above, every point of the
    tracks in `keep` (the open track, search matches, the current selection) and, with
    `keep_wrong`, every misclassified one, plus a random share of each true genre in proportion
    to its size, at least MAP_MIN_PER_LABEL of each, so the map keeps its shape and every genre.
    Rows keep their order; same seed, same sample. (The segment views pass keep_wrong=False:
    a third of 200,000 windows can be predicted wrong, more than a browser should draw.)"""
    if len(points) <= max_points:
        return points
    forced = points["track_id"].isin(set(keep)).to_numpy()
    if keep_wrong:
        forced = forced | (points["outcome"] == "wrong").to_numpy()
    rest = np.flatnonzero(~forced)
    budget = max(0, max_points - int(forced.sum()))
    labels = points["label"].fillna("?").to_numpy()[rest]
    rng = np.random.default_rng(seed)
    chosen = forced.copy()
    for label in np.unique(labels):
        members = rest[labels == label]
        n = min(len(members), max(MAP_MIN_PER_LABEL, budget * len(members) // len(rest)))  # floor: within the cap
        chosen[rng.choice(members, size=n, replace=False)] = True
    return points[chosen]


def filter_tracks(frame: pd.DataFrame, track_ids: Iterable[str]) -> pd.DataFrame:
    """Rows of `frame` whose track_id is in `track_ids`, in the selection's order."""
    order = {t: i for i, t in enumerate(track_ids)}
    rows = frame[frame["track_id"].isin(order)]
    return rows.iloc[rows["track_id"].map(order).argsort(kind="stable")]


# -- reviews --------------------------------------------------------------------------------


def review_changes(before: pd.DataFrame, after: pd.DataFrame) -> list[dict]:
    """The reviews to save after a person edited the `decision` (and `note`) columns of a
    findings table.

    Both frames have dataset_id, track_id, kind, decision (and optionally note), row-aligned.
    Returns one dict per row whose decision became, or stayed with a new note, "confirmed" or
    "dismissed"; clearing a decision is not a review and is ignored.
    """
    n = min(len(before), len(after))
    # Column-wise: the page asks on every rerun, and iterrows over 4,000 findings took 1.4 s.
    decision, note = _texts(after, "decision", n), _texts(after, "note", n)
    changed = np.isin(decision, DECISIONS) & ((decision != _texts(before, "decision", n))
                                              | (note != _texts(before, "note", n)))
    rows = after.iloc[np.flatnonzero(changed)]
    return [dict(dataset_id=int(d), track_id=str(t), kind=str(k), decision=c, note=m or None)
            for d, t, k, c, m in zip(rows["dataset_id"], rows["track_id"], rows["kind"], decision[changed],
                                     note[changed])]


def _texts(frame: pd.DataFrame, column: str, n: int) -> np.ndarray:
    """The first `n` values of a column as text ("" for None, NaN or a missing column)."""
    if column not in frame:
        return np.full(n, "", dtype=object)
    return np.array(["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                     for v in frame[column].iloc[:n]], dtype=object).reshape(n)


# -- words for non-experts ----------------------------------------------------------------


def plain_summary(best: Mapping[str, Any], n_runs: int) -> str:
    """One sentence a non-expert can read off the leaderboard's best row."""
    acc, low, high = best.get("accuracy"), best.get("ci_low"), best.get("ci_high")
    if acc is None or pd.isna(acc):
        return "No finished run has test results yet."
    ci = ""
    if low is not None and high is not None and not (pd.isna(low) or pd.isna(high)):
        ci = f" (95% CI {round(100 * low)}–{round(100 * high)})"
    n_test = best.get("n_test")
    on = f" on {int(n_test)} test songs it never heard in training" if n_test and not pd.isna(n_test) else ""
    chance = 100 / max(1, int(best.get("n_classes") or 1))
    others = f" The other {n_runs - 1} run{'s' if n_runs != 2 else ''} score lower." if n_runs > 1 else ""
    return (
        f"The best model, {best['model']}, names the right genre for {round(100 * acc)} of 100 "
        f"test songs{ci}{on}; picking genres at random would get about {chance:.0f}.{others}"
    )


def run_label(model: str, representation: str | None, run_id: str) -> str:
    """Short chart label of a run: model · input · the run id's last part (its random tag)."""
    tail = run_id.rsplit("-", 1)[-1] if "-" in run_id else run_id
    return f"{model} · {representation or '–'} · {tail}"


def format_pct(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None or pd.isna(value):
        return "–"
    text = f"{100 * value:.1f}%"
    if low is not None and high is not None and not (pd.isna(low) or pd.isna(high)):
        text += f" [{100 * low:.1f}–{100 * high:.1f}]"
    return text


def shorten(values: Sequence[str], width: int = 28) -> list[str]:
    return [v if len(v) <= width else v[: width - 1] + "…" for v in values]
