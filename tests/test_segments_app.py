"""The Map page inside tracks (issue 29 item 2): the segment and trajectory views on a copy of
the app database whose toy run holds planted windows (4 per predicted track, one of the first
misclassified track's windows predicted wrong), the query behind them and the click."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest

from genre_core.app import queries as q
from genre_core.app import segments, state
from genre_core.store import open_store

STARTS = (0.0, 1.5, 3.0, 4.5)  # planted windows of each predicted track (a 6-s track at the 1.5-s hop)


def plant_segments(db_path, run_id: str) -> dict:
    """Windows for every track of `run_id` on its t-SNE map: 4 per predicted (test / val) track
    with window predictions (the track's own prediction, except window 3 of the first
    misclassified test track: its true genre), 1 per training track; each a step from its track's
    point. Returns {"track": that first misclassified track, "n": its windows}."""
    store = open_store(db_path)
    classes = list(store.run(run_id)["classes"])
    preds = store.predictions(run_id)
    points = store.projections(run_id)
    points = points[points.method == "tsne"].set_index("track_id")
    wrong = preds[(preds.split == "test") & (preds.label != preds.predicted)].sort_values("track_id")
    chosen = wrong.track_id.iloc[0] if len(wrong) else preds.track_id.sort_values().iloc[0]
    windows, placed = [], []
    for track_id, (x, y) in points[["x", "y"]].iterrows():
        row = preds[preds.track_id == track_id]
        starts = STARTS if len(row) else STARTS[:1]
        for i, start in enumerate(starts):
            placed.append(dict(method="tsne", track_id=track_id, start_s=start, x=x + 1.2 * i, y=y + 0.8 * np.sin(i)))
            if len(row):
                genre = row.label.iloc[0] if (track_id == chosen and i == 2) else row.predicted.iloc[0]
                windows.append(dict(track_id=track_id, start_s=start,
                                    probs=[0.9 if g == genre else 0.1 / (len(classes) - 1) for g in classes]))
    store.replace_run_rows(run_id, {"segment_predictions": pd.DataFrame(windows),
                                    "segment_projections": pd.DataFrame(placed)})
    return {"track": chosen, "n": len(STARTS)}


@pytest.fixture
def planted(app_db, writable_app_db):
    return writable_app_db, app_db["toy_run"], plant_segments(writable_app_db, app_db["toy_run"])


def _open(monkeypatch, db, run_id, **params):
    from streamlit.testing.v1 import AppTest

    from tests.helpers import APP

    monkeypatch.setenv("GENRELENS_DB", str(db))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update({"run": run_id, **params})
    at = at.switch_page("pages/map.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _figure(at) -> dict:
    charts = at.get("plotly_chart")
    assert charts, "no chart drawn"
    return json.loads(charts[-1].proto.spec)


def _n(values) -> int:
    """How many values a figure's array holds: a list, or plotly's typed binary {dtype, bdata}."""
    if isinstance(values, dict):
        return len(base64.b64decode(values["bdata"])) // np.dtype(values["dtype"]).itemsize
    return len(values)


def test_segment_points_carry_each_windows_prediction(planted):
    db, run_id, info = planted
    points = q.segment_points(db, run_id, "tsne")
    mine = segments.trajectory(points, info["track"])
    assert list(mine.start_s) == list(STARTS) and q.segment_methods(db, run_id) == ["tsne"]
    assert list(mine.outcome) == ["wrong", "wrong", "correct", "wrong"]  # window 3 heard its true genre
    training = points[points.split == "train"]
    assert len(training) and set(training.predicted) == {"–"} and set(training.outcome) == {"training track"}


def test_the_segment_view_draws_every_window(monkeypatch, planted):
    db, run_id, _ = planted
    at = _open(monkeypatch, db, run_id)
    at.radio(key="map_view").set_value("segments").run()
    assert not at.exception, [e.value for e in at.exception]
    figure = _figure(at)
    n = len(q.segment_points(db, run_id, "tsne"))
    assert sum(_n(t["x"]) for t in figure["data"]) == n
    assert any(c.value.startswith(f"{n:,} windows of") for c in at.caption)
    assert at.query_params["view"] == "segments"
    at.radio(key="map_seg_colour").set_value("window's predicted genre").run()
    names = {t["name"] for t in _figure(at)["data"]}
    assert "training track (no window prediction)" in names


def test_the_trajectory_view_joins_a_tracks_windows_in_time_order(monkeypatch, planted):
    db, run_id, info = planted
    at = _open(monkeypatch, db, run_id, view="trajectory", track=info["track"])
    path = next(t for t in _figure(at)["data"] if t["name"] == "trajectory")
    assert [c[1] for c in path["customdata"]] == list(STARTS) and path["mode"] == "lines+markers"
    ringed = next(t for t in _figure(at)["data"] if t["name"] == "window predicted wrong")
    assert [c[1] for c in ringed["customdata"]] == [0.0, 1.5, 4.5]
    ends = next(t for t in _figure(at)["data"] if t["name"] == "start / end")
    assert ends["text"] == ["start 0:00", "end 0:04"]
    assert any(c.value.startswith("4 windows of ") and " from 0:00 to 0:04; 3 predicted other than" in c.value
               for c in at.caption)
    assert at.query_params["view"] == "trajectory" and at.query_params["track"] == info["track"]


def test_an_unknown_trajectory_track_falls_back_with_a_notice(monkeypatch, planted):
    db, run_id, _ = planted
    at = _open(monkeypatch, db, run_id, view="trajectory", track="no-such-track")
    assert any("no-such-track" in w.value for w in at.warning)
    assert any(t["name"] == "trajectory" for t in _figure(at)["data"])


def test_a_click_on_a_segment_names_its_track_and_time():
    click = {"selection": {"points": [{"customdata": ["blues.00003", 4.5, "blues.00003", "blues", "rock", ""]}],
                           "box": [], "lasso": []}}
    assert segments.clicked_segment(click) == ("blues.00003", 4.5)
    box = {"selection": {"points": click["selection"]["points"], "box": [{"x": [0, 1]}], "lasso": []}}
    assert segments.clicked_segment(box) is None and segments.clicked_segment(None) is None
    assert state.clicked_data(click)[0] == "blues.00003"
