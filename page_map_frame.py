"""The Map page's one scatter: a Streamlit component (genre_core/app/map_frame/index.html) that
draws the page's plotly figure and plays a point's 3 s while the pointer rests on it (a module
beside app.py, like page_links: the streamlit side).

Plotly's hover events never reach Python through st.plotly_chart, so the frame draws the figure
itself, with the installed plotly package's own plotly.min.js served by this app (the
Content-Security-Policy allows scripts from this origin only). A hover that rests ~250 ms is
sent here; this module answers with the clip, made by the page from the dataset's file the way
every page reads audio (only a usable track inside its dataset's root), as a data: URI. Clicks,
boxes and lassos come back shaped as st.plotly_chart's selection, so the page reads them with
the same functions as before.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import plotly
import streamlit as st
import streamlit.components.v1 as components
from plotly.io.json import to_json_plotly

import genre_core.app

_frame = components.declare_component("genrelens_map", path=str(Path(genre_core.app.__file__).parent / "map_frame"))
# Declared only so that the app serves the installed plotly's plotly.min.js (the version the
# figures were built for) from its own origin; never mounted.
_plotly = components.declare_component("genrelens_plotly", path=str(Path(plotly.__file__).parent / "package_data"))


def _figure_json(figure) -> tuple[str, str]:
    """(the figure as JSON, a digest naming it), made once per figure object: a cached 20,000-point
    map is not serialised again on every rerun, and the frame redraws only when the digest changes."""
    made = figure.__dict__.get("_frame_json")
    if made is None:
        text = to_json_plotly(figure.to_dict())
        made = figure.__dict__["_frame_json"] = (text, hashlib.blake2b(text.encode(), digest_size=8).hexdigest())
    return made


def scatter(figure, *, key: str, config: dict, clip: Callable[[str, float | None], dict]) -> dict | None:
    """Draw `figure` (whose points carry customdata [track_id, start_s or more, ...]); returns
    st.plotly_chart's selection shape ({"selection": {"points", "box", "lasso"}}) for a click
    (once) or the latest box or lasso, else None.

    `clip(track_id, start_s or None)` answers a resting hover: {"audio": data URI or None,
    "track", "start" (s in the track), "said" (the status line, plain text)}; made once per hover.
    """
    value = st.session_state.get(key)
    answer = st.session_state.get(f"{key}.clip")
    if isinstance(value, dict) and value.get("kind") == "hover" and (answer or {}).get("n") != value.get("n"):
        answer = st.session_state[f"{key}.clip"] = {**clip(str(value.get("track")), value.get("start")),
                                                   "n": value.get("n")}
    text, figure_id = _figure_json(figure)
    # Streamlit sends a component's arguments whole on every rerun, so a hover's answer would
    # carry the 1.4 MB of a 20,000-point figure again: the frame says which figure it holds
    # ("has"), and while that is this one only its digest goes (a frame that lost it asks anew).
    held = value.get("has") if isinstance(value, dict) else None
    value = _frame(figure=None if held == figure_id else text, figure_id=figure_id, config=config, clip=answer,
                   key=key, default=None, plotly_js=f"../{_plotly.name}/plotly.min.js")
    if not isinstance(value, dict) or value.get("kind") not in ("click", "select"):
        return None
    if value["kind"] == "click":
        if st.session_state.get(f"{key}.done") == value.get("n"):
            return None  # acted on already: a rerun must not open the track again
        st.session_state[f"{key}.done"] = value.get("n")
    return {"selection": {"points": value.get("points") or [], "box": value.get("box") or [],
                          "lasso": value.get("lasso") or []}}
