"""The Map page's segment views in a real browser (server.py through chromium, as test_browser):
on a copy of the fixture database with planted windows and taggrams (test_segments_app), a
trajectory link draws the chosen track's windows, as many as it has stored, in time order; a
click on one opens Track with its player at that window's start; the Segments view draws every
window; resting the pointer on a window plays that track from the window's start, and leaving it
stops; the tag axes move the points to the chosen tags' values and name them. The map is drawn
in its own frame (page_map_frame), so points are found there and offset by the frame's place.
Screenshots: artifacts/screenshots/map_trajectory.png, map_segments.png, map_tags*.png."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlparse

import pytest

from genre_core.app import queries as q
from genre_core.app import segments
from tests.helpers import CHROMIUM, serving_app, writable_copy
from tests.test_segments_app import plant_segments, plant_taggrams

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)"),
]
pytest.importorskip("playwright.sync_api", reason="needs the playwright python package")
from tests.test_browser import page  # noqa: E402,F401  (the module's chromium tab)

# Where each point of the trace named `name` sits in the map's frame, with its customdata and data
# coordinates, in plot order.
TRACE_JS = """(name) => {
  const gd = document.querySelector('.js-plotly-plot');
  const fl = gd._fullLayout, box = gd.getBoundingClientRect();
  const t = gd._fullData.findIndex(d => d.name === name);
  if (t < 0) return null;
  return gd.calcdata[t].map((c, i) => ({x: box.left + fl.xaxis._offset + fl.xaxis.l2p(c.x),
                                        y: box.top + fl.yaxis._offset + fl.yaxis.l2p(c.y), dx: c.x, dy: c.y,
                                        custom: Array.from(gd._fullData[t].customdata[i]).map(String)}));
}"""
COUNT_JS = "() => document.querySelector('.js-plotly-plot').calcdata.reduce((n, cd) => n + cd.length, 0)"
AXES_JS = "() => [0, 1].map(i => document.querySelectorAll('.g-xtitle, .g-ytitle')[i]?.textContent || '')"
AUDIO_JS = """() => { const a = document.getElementById('audio');
  return {paused: a.paused, time: a.currentTime, start: a.dataset.start, track: a.dataset.track,
          src: (a.getAttribute('src') || '').slice(0, 15), clips: window.glMap.clips}; }"""


@pytest.fixture(scope="module")
def planted(app_db, tmp_path_factory):
    db = writable_copy(app_db["db"], tmp_path_factory.mktemp("segments"))
    info = plant_segments(db, app_db["toy_run"])
    return db, app_db["toy_run"], {**info, "tags": plant_taggrams(db, app_db["toy_run"])}


@pytest.fixture(scope="module")
def server(planted):
    with serving_app(planted[0]) as url:
        yield url


def _map(tab):
    """(the map's frame, its top-left corner in the page), once the map is drawn in it."""
    from tests.test_browser import plots

    tab.wait_for_selector('iframe[src*="genrelens_map"]')
    return plots(tab)


def _trace(tab, name: str) -> list[dict] | None:
    """The points of trace `name` as TRACE_JS finds them, x and y in page coordinates."""
    frame, (left, top) = _map(tab)
    points = frame.evaluate(TRACE_JS, name)
    return points and [{**p, "x": p["x"] + left, "y": p["y"] + top} for p in points]


def _open_map(tab, url: str) -> None:
    from tests.test_browser import no_errors, settle

    tab.goto(url)
    _map(tab)
    settle(tab)
    no_errors(tab)


def test_a_trajectory_is_drawn_in_time_order_and_a_click_opens_track_there(page, server, planted):
    from tests.test_browser import no_errors, screenshot, settle

    tab, (db, run_id, info) = page, planted
    _open_map(tab, f"{server}/map?run={quote(run_id)}&view=trajectory&track={quote(info['track'])}")
    points = _trace(tab, "trajectory")
    stored = q.segment_points(db, run_id, "tsne")
    stored = stored[stored.track_id == info["track"]]
    assert points and len(points) == len(stored) == info["n"]
    starts = [float(p["custom"][1]) for p in points]
    assert starts == sorted(starts) == sorted(stored.start_s)
    assert {p["custom"][0] for p in points} == {info["track"]}
    screenshot(tab, "map_trajectory")
    third = points[2]  # starts at 3 s
    tab.mouse.move(third["x"], third["y"])
    tab.mouse.click(third["x"], third["y"])
    tab.wait_for_url("**/track*")
    settle(tab)
    no_errors(tab)
    assert tab.inner_text("h1").strip() == f"Track {info['track']}"
    # the player started at 3 s and, playing (autoplay), writes its time to the URL as it goes
    t = float(parse_qs(urlparse(tab.url).query)["t"][0])
    assert 3.0 <= t < 6.0, tab.url


def test_the_segment_view_draws_every_window(page, server, planted):
    from tests.test_browser import screenshot

    tab, (db, run_id, _) = page, planted
    _open_map(tab, f"{server}/map?run={quote(run_id)}&view=segments&colour=window-s-predicted-genre")
    assert _map(tab)[0].evaluate(COUNT_JS) == len(q.segment_points(db, run_id, "tsne"))
    screenshot(tab, "map_segments")


def test_resting_on_a_window_plays_it_from_its_start_and_leaving_stops(page, server, planted):
    import time

    tab, (db, run_id, info) = page, planted
    _open_map(tab, f"{server}/map?run={quote(run_id)}&view=trajectory&track={quote(info['track'])}")
    frame, _ = _map(tab)
    tab.mouse.click(5, 5)  # browsers hold back sound until a page has been clicked once
    third = _trace(tab, "trajectory")[2]  # the window from 3 s
    tab.mouse.move(third["x"], third["y"])
    frame.wait_for_function("() => window.glMap.clips > 0 && !document.getElementById('audio').paused")
    time.sleep(0.5)
    heard = frame.evaluate(AUDIO_JS)
    assert heard["track"] == info["track"] and float(heard["start"]) == 3.0
    assert heard["src"].startswith("data:audio/wav") and 0.1 < heard["time"] <= 3.0  # it plays on
    tab.mouse.move(5, 5)  # off the map
    frame.wait_for_function("() => document.getElementById('audio').paused")
    assert frame.evaluate(AUDIO_JS)["clips"] == 1


def test_tag_axes_follow_the_chosen_tags(page, server, planted):
    from tests.test_browser import screenshot

    tab, (db, run_id, info) = page, planted
    tags = info["tags"]
    shown = {}
    for x_tag, y_tag in (("guitar", "electronic"), ("electronic", "piano")):
        _open_map(tab, f"{server}/map?run={quote(run_id)}&view=segments&proj=tags&tx={x_tag}&ty={y_tag}")
        frame, _ = _map(tab)
        titles = frame.evaluate(AXES_JS)
        assert titles[0].startswith(x_tag) and titles[1].startswith(y_tag), titles
        names = frame.evaluate("() => document.querySelector('.js-plotly-plot')._fullData.map(d => d.name)")
        points = [p for name in names for p in (_trace(tab, name) or [])]
        assert points
        for p in points:  # every window sits at its planted tag values
            track, start = p["custom"][0], float(p["custom"][1])
            assert p["dx"] == pytest.approx(tags.expected(track, start, x_tag), abs=1e-5)
            assert p["dy"] == pytest.approx(tags.expected(track, start, y_tag), abs=1e-5)
        shown[(x_tag, y_tag)] = sorted((round(p["dx"], 4), round(p["dy"], 4)) for p in points)
        screenshot(tab, f"map_tags_{x_tag}_{y_tag}")
    assert len(set(map(tuple, shown.values()))) == 2  # other tags, other places


def test_a_box_on_the_track_map_lists_its_tracks(page, server, planted):
    tab, (db, run_id, _) = page, planted
    _open_map(tab, f"{server}/map?run={quote(run_id)}")
    frame, (left, top) = _map(tab)
    frame.click('.modebar-btn[data-val="select"]')  # the box tool
    box = frame.evaluate("""() => { const gd = document.querySelector('.js-plotly-plot'), fl = gd._fullLayout;
      const r = gd.getBoundingClientRect();
      return {x: r.left + fl.xaxis._offset, y: r.top + fl.yaxis._offset, w: fl.xaxis._length, h: fl.yaxis._length}; }""")
    x0, y0 = left + box["x"] + 2, top + box["y"] + 2
    tab.mouse.move(x0, y0)
    tab.mouse.down()
    tab.mouse.move(x0 + box["w"] - 4, y0 + box["h"] - 4, steps=8)  # the whole plot area: every track
    tab.mouse.up()
    n = len(q.projection(db, run_id, "tsne"))
    tab.locator("h3", has_text=f"{n} selected tracks").wait_for()


def test_resting_on_a_track_plays_it_from_its_most_typical_window(page, server, planted):
    tab, (db, run_id, info) = page, planted
    _open_map(tab, f"{server}/map?run={quote(run_id)}")
    frame, _ = _map(tab)
    tab.mouse.click(5, 5)
    names = frame.evaluate("() => document.querySelector('.js-plotly-plot')._fullData.map(d => d.name)")
    point = next(p for name in names for p in (_trace(tab, name) or []) if p["custom"][0] == info["track"])
    tab.mouse.move(point["x"], point["y"])
    frame.wait_for_function("() => window.glMap.clips > 0 && !document.getElementById('audio').paused")
    heard = frame.evaluate(AUDIO_JS)
    windows = q.segment_points(db, run_id, "tsne")
    assert heard["track"] == info["track"]
    assert float(heard["start"]) == segments.typical_start(windows, info["track"], point["dx"], point["dy"]) == 1.5
