"""The Map page inside tracks (issue 29 items 2 and 3): the segment and trajectory views on a copy
of the app database whose toy run holds planted windows (4 per predicted track, one of the first
misclassified track's windows predicted wrong) and planted taggrams, the query behind them, the
click, the tag axes (track and window tag means, the choice and its link) and what a hover plays."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from genre_core.app import queries as q
from genre_core.app import media, segments, state, tagaxes
from genre_core.store import open_store

STARTS = (0.0, 1.5, 3.0, 4.5)  # planted windows of each predicted track (a 6-s track at the 1.5-s hop)


def plant_segments(db_path, run_id: str) -> dict:
    """Windows for every track of `run_id` on its t-SNE map: 4 per predicted (test / val) track
    with window predictions (the track's own prediction, except window 3 of the first
    misclassified test track: its true genre), 1 per training track; each a step from its track's
    point, the second window (from 1.5 s) on it. Returns {"track": that first misclassified track, "n": its windows}."""
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
            step = i - 1  # window 2 (from 1.5 s) sits on its track's point: the track's most typical moment
            placed.append(dict(method="tsne", track_id=track_id, start_s=start, x=x + 1.2 * step,
                               y=y + 0.8 * np.sin(step)))
            if len(row):
                genre = row.label.iloc[0] if (track_id == chosen and i == 2) else row.predicted.iloc[0]
                windows.append(dict(track_id=track_id, start_s=start,
                                    probs=[0.9 if g == genre else 0.1 / (len(classes) - 1) for g in classes]))
    store.replace_run_rows(run_id, {"segment_predictions": pd.DataFrame(windows),
                                    "segment_projections": pd.DataFrame(placed)})
    return {"track": chosen, "n": len(STARTS)}


PLANTED_TAGS = ("guitar", "piano", "electronic")
FRAME_S = 187 * 256 / 16000  # one musicnn frame: 187 hops of 256 samples at 16 kHz


class PlantedTags:
    """Taggrams of 2 frames for every predicted track but the last: frame k of the i-th track
    holds, for the j-th tag, 0.1 * (j + 1) + 0.01 * i + 0.4 * k, so every track, tag and frame
    differs."""

    def __init__(self, track_ids):
        self.index = {t: i for i, t in enumerate(track_ids)}

    def frame(self, track_id: str, k: int, tag: str) -> float:
        return 0.1 * (PLANTED_TAGS.index(tag) + 1) + 0.01 * self.index[track_id] + 0.4 * k

    def expected(self, track_id: str, start_s: float, tag: str, window_s: float = 3.0) -> float:
        """A window's value: the frames' values weighted by the seconds each shares with it
        (a window past the frames: the last frame's)."""
        shares = [max(0.0, min(start_s + window_s, (k + 1) * FRAME_S) - max(start_s, k * FRAME_S)) for k in (0, 1)]
        if sum(shares) == 0:
            return self.frame(track_id, 1, tag)
        return sum(s * self.frame(track_id, k, tag) for k, s in enumerate(shares)) / sum(shares)


def plant_taggrams(db_path, run_id: str) -> PlantedTags:
    store = open_store(db_path)
    ids = sorted(store.predictions(run_id).track_id)[:-1]
    planted = PlantedTags(ids)
    rows = [dict(track_id=t, tag_names=list(PLANTED_TAGS), n_frames=2,
                 values=[planted.frame(t, k, tag) for k in (0, 1) for tag in PLANTED_TAGS]) for t in ids]
    store.replace_run_rows(run_id, {"taggrams": pd.DataFrame(rows)})
    return planted


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


def _frame_args(at) -> dict:
    """The arguments of the Map page's scatter (page_map_frame), as its frame receives them."""
    frames = [c for c in at.get("component_instance") if c.proto.component_name.endswith("genrelens_map")]
    assert frames, "no map drawn"
    return json.loads(frames[-1].proto.json_args)


def _figure(at) -> dict:
    return json.loads(_frame_args(at)["figure"])


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


def test_a_windows_tags_are_its_frames_weighted_by_the_seconds_they_share():
    # frames of 2.992 s: a window from 1.5 s shares 1.492 s with the first, 1.508 s with the second
    weights = tagaxes.overlap_weights(np.array([0.0, 1.5, 4.5, 9.0]), 3.0, 2)
    assert weights[0] == pytest.approx([2.992 / 3.0, 0.008 / 3.0], abs=1e-6)  # 0.008 s of it in frame 1
    assert weights[1] == pytest.approx([1.492 / 3.0, 1.508 / 3.0], abs=1e-6)
    assert list(weights[2]) == [0.0, 1.0] and list(weights[3]) == [0.0, 1.0]  # past the end: the last frame


def test_tag_axes_place_tracks_and_windows_by_their_tag_means(planted):
    db, run_id, _ = planted
    tags = plant_taggrams(db, run_id)
    stored = q.taggrams(db, run_id)
    assert tagaxes.tag_names(stored) == list(PLANTED_TAGS)
    assert tagaxes.default_axes(tagaxes.tag_names(stored)) == ("guitar", "electronic")
    means = tagaxes.track_tags(stored, ["guitar", "piano"]).set_index("track_id")
    first = next(iter(tags.index))
    assert means.loc[first, "piano"] == pytest.approx((tags.frame(first, 0, "piano") + tags.frame(first, 1, "piano")) / 2)
    tracks = tagaxes.on_tag_axes(q.projection(db, run_id, "tsne"), means.reset_index(), "guitar", "piano")
    assert set(tracks.track_id) == set(tags.index)  # the track without a taggram is left out
    windows = q.segment_points(db, run_id, "tsne")
    values = tagaxes.segment_tags(stored, windows[["track_id", "start_s"]], ["electronic", "guitar"], 3.0)
    placed = tagaxes.on_tag_axes(windows, values, "electronic", "guitar", on=("track_id", "start_s"))
    assert len(placed) == 4 * len(tags.index)  # 4 windows of each tagged track (all predicted)
    for row in placed.itertuples():
        assert row.x == pytest.approx(tags.expected(row.track_id, row.start_s, "electronic"))
        assert row.y == pytest.approx(tags.expected(row.track_id, row.start_s, "guitar"))
    assert set(placed.predicted) <= set(windows.predicted)  # colouring columns kept


def test_the_tag_axes_are_a_projection_with_a_link(monkeypatch, planted):
    db, run_id, info = planted
    tags = plant_taggrams(db, run_id)
    at = _open(monkeypatch, db, run_id, view="segments", proj="tags", tx="piano", ty="guitar")
    figure = _figure(at)
    assert figure["layout"]["xaxis"]["title"]["text"].startswith("piano")
    assert figure["layout"]["yaxis"]["title"]["text"].startswith("guitar")
    assert sum(_n(t["x"]) for t in figure["data"]) == 4 * len(tags.index)
    at.selectbox(key="map_ty").set_value("electronic").run()
    assert _figure(at)["layout"]["yaxis"]["title"]["text"].startswith("electronic")
    assert (at.query_params["proj"], at.query_params["tx"], at.query_params["ty"]) == ("tags", "piano", "electronic")
    at.radio(key="map_view").set_value("tracks").run()  # the same axes for the tracks
    figure = _figure(at)
    assert sum(_n(t["x"]) for t in figure["data"]) == len(tags.index)
    assert figure["layout"]["xaxis"]["title"]["text"].startswith("piano")
    at = _open(monkeypatch, db, run_id, view="trajectory", track=info["track"], proj="tags", tx="no-such-tag")
    assert any("no-such-tag" in w.value for w in at.warning)
    path = next(t for t in _figure(at)["data"] if t["name"] == "trajectory")
    assert _n(path["x"]) == 4  # the trajectory on the default tags


def test_the_points_drawn_travel_in_the_link(monkeypatch, planted):
    """A shared link keeps "Points drawn": a colleague opening it sees as many points."""
    db, run_id, info = planted
    at = _open(monkeypatch, db, run_id, view="segments", pts="all")
    assert at.selectbox(key="map_density").value == "all"
    assert at.query_params["pts"] == "all"
    at.selectbox(key="map_density").set_value("50,000").run()
    assert at.query_params["pts"] == "50000"
    at.selectbox(key="map_density").set_value("20,000").run()
    assert "pts" not in at.query_params  # the default stays out of the link
    at = _open(monkeypatch, db, run_id, pts="lots")
    assert any("lots" in w.value for w in at.warning)
    assert at.selectbox(key="map_density").value == "20,000"


def test_a_hover_on_a_window_plays_the_track_from_its_start(monkeypatch, planted):
    db, run_id, info = planted
    at = _open(monkeypatch, db, run_id, view="trajectory", track=info["track"])
    key = "map_trajectory_chart"
    figure_id = _frame_args(at)["figure_id"]
    at.session_state[key] = {"kind": "hover", "track": info["track"], "start": 3.0, "n": 1, "has": figure_id}
    at.run()
    args = _frame_args(at)
    assert args["figure"] is None and args["figure_id"] == figure_id  # the frame keeps its plot: only the clip goes
    at.session_state[key] = {"kind": "need", "has": None, "n": 2}  # a new frame under the old key asks for it
    at.run()
    assert json.loads(_frame_args(at)["figure"])["data"] and _frame_args(at)["clip"]["n"] == 1
    clip = args["clip"]
    assert clip["n"] == 1 and clip["start"] == 3.0 and clip["audio"].startswith("data:audio/wav;base64,")
    heard, _ = sf.read(io.BytesIO(base64.b64decode(clip["audio"].split(",", 1)[1])), dtype="float32")
    dataset_id = int(q.run_row(db, run_id).dataset_id)
    whole = media.track_clip(db, dataset_id, info["track"], 0.0, 60.0, 22050)
    from_3s = whole[3 * 22050:6 * 22050]  # up to 3 s of it: the toy tracks are shorter than 6 s
    assert len(heard) == len(from_3s) > 0
    assert np.abs(heard - from_3s).max() < 1e-3  # the track's own samples from 3 s on (16-bit)
    assert np.abs(heard - whole[:len(heard)]).max() > 1e-2  # not its start


def test_a_hover_on_a_track_plays_its_most_typical_window():
    windows = pd.DataFrame({"track_id": ["a", "a", "a", "b"], "start_s": [0.0, 1.5, 3.0, 0.0],
                            "x": [0.0, 5.0, 9.0, 5.0], "y": [0.0, 5.0, 9.0, 5.0]})
    assert segments.typical_start(windows, "a", 4.0, 4.5) == 1.5  # the window nearest the track's point
    assert segments.typical_start(windows, "c", 4.0, 4.5) == 0.0  # no windows: from the start


def test_a_tag_link_to_a_run_without_taggrams_shows_the_map_with_one_notice(monkeypatch, planted):
    db, run_id, _ = planted  # windows, no taggrams
    at = _open(monkeypatch, db, run_id, proj="tags", tx="guitar", ty="electronic")
    assert [w.value for w in at.warning if "tags" in w.value or "guitar" in w.value] == [
        "This link asks for the projection “tags”, which is not here; showing tsne instead."]
    assert "musicnn tags" not in at.radio(key="map_method").options
    assert _figure(at)["data"] and not _figure(at)["layout"]["xaxis"].get("visible", False)


def test_above_the_cap_a_sample_is_drawn_that_keeps_every_window_of_the_selected_tracks(monkeypatch, app_db,
                                                                                         writable_app_db):
    """Issue 29 at size: 25,000 windows (planted, a few hundred per track) are more than the
    default 20,000 drawn; the sample keeps every window of the selected tracks and of the
    trajectory's track, says so, and "all" draws every window."""
    run_id = app_db["toy_run"]
    store = open_store(writable_app_db)
    points = store.projections(run_id)
    points = points[points.method == "tsne"].reset_index(drop=True)
    per_track = -(-25_000 // len(points))
    starts = np.arange(per_track) * 1.5
    store.replace_run_rows(run_id, {"segment_projections": pd.DataFrame({
        "method": "tsne", "track_id": np.repeat(points.track_id.to_numpy(), per_track),
        "start_s": np.tile(starts, len(points)), "x": np.repeat(points.x.to_numpy(), per_track) + np.tile(starts, len(points)) / 100,
        "y": np.repeat(points.y.to_numpy(), per_track)})})
    total = per_track * len(points)
    chosen = tuple(points.track_id.iloc[[3, 7]])
    dataset_id = int(q.run_row(writable_app_db, run_id).dataset_id)
    monkeypatch.setenv("GENRELENS_DB", str(writable_app_db))
    from streamlit.testing.v1 import AppTest

    from tests.helpers import APP

    at = AppTest.from_file(str(APP), default_timeout=180)
    at.query_params.update({"run": run_id, "view": "segments"})
    at.session_state[state.SELECTION] = state.Selection("Map: 2 tracks selected", chosen, dataset_id)
    at = at.switch_page("pages/map.py").run()
    assert not at.exception, [e.value for e in at.exception]

    def drawn(figure) -> list[tuple[str, float]]:
        return [(c[0], c[1]) for t in figure["data"] for c in t.get("customdata") or []]

    windows = drawn(_figure(at))
    assert 19_000 <= len(windows) <= 20_000 < total
    for track_id in chosen:
        assert sorted(s for t, s in windows if t == track_id) == list(starts)
    assert any(c.value.startswith(f"{total:,} windows of {len(points):,} tracks ({len(windows):,} drawn: ")
               for c in at.caption)
    at.selectbox(key="map_density").set_value("all").run()
    assert len(drawn(_figure(at))) == total
    assert not any(" drawn: " in c.value for c in at.caption)

    at.selectbox(key="map_density").set_value("20,000")
    at.radio(key="map_view").set_value("trajectory").run()
    path = next(t for t in _figure(at)["data"] if t["name"] == "trajectory")
    assert [c[1] for c in path["customdata"]] == list(starts)  # the followed track: every window
    assert any(c.value.startswith(f"{per_track} windows of ") and " drawn: " in c.value for c in at.caption), \
        [c.value for c in at.caption]
