"""The Map page's segment views in a real browser (server.py through chromium, as test_browser):
on a copy of the fixture database with planted windows (test_segments_app.plant_segments), a
trajectory link draws the chosen track's windows, as many as it has stored, in time order; a
click on one opens Track with its player at that window's start; the Segments view draws every
window. Screenshots: artifacts/screenshots/map_trajectory.png, map_segments.png."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlparse

import pytest

from genre_core.app import queries as q
from tests.helpers import CHROMIUM, serving_app, writable_copy
from tests.test_segments_app import plant_segments

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)"),
]
pytest.importorskip("playwright.sync_api", reason="needs the playwright python package")
from tests.test_browser import page  # noqa: E402,F401  (the module's chromium tab)

# Where each point of the trace named `name` sits in the page, with its customdata, in plot order.
TRACE_JS = """(name) => {
  const gd = document.querySelector('.js-plotly-plot');
  const fl = gd._fullLayout, box = gd.getBoundingClientRect();
  const t = gd._fullData.findIndex(d => d.name === name);
  if (t < 0) return null;
  return gd.calcdata[t].map((c, i) => ({x: box.left + fl.xaxis._offset + fl.xaxis.l2p(c.x),
                                        y: box.top + fl.yaxis._offset + fl.yaxis.l2p(c.y),
                                        custom: Array.from(gd._fullData[t].customdata[i]).map(String)}));
}"""
COUNT_JS = "() => document.querySelector('.js-plotly-plot').calcdata.reduce((n, cd) => n + cd.length, 0)"


@pytest.fixture(scope="module")
def planted(app_db, tmp_path_factory):
    db = writable_copy(app_db["db"], tmp_path_factory.mktemp("segments"))
    return db, app_db["toy_run"], plant_segments(db, app_db["toy_run"])


@pytest.fixture(scope="module")
def server(planted):
    with serving_app(planted[0]) as url:
        yield url


def _open_map(tab, url: str) -> None:
    from tests.test_browser import no_errors, settle

    tab.goto(url)
    tab.wait_for_selector(".js-plotly-plot")
    settle(tab)
    no_errors(tab)


def test_a_trajectory_is_drawn_in_time_order_and_a_click_opens_track_there(page, server, planted):
    from tests.test_browser import no_errors, screenshot, settle

    tab, (db, run_id, info) = page, planted
    _open_map(tab, f"{server}/map?run={quote(run_id)}&view=trajectory&track={quote(info['track'])}")
    points = tab.evaluate(TRACE_JS, "trajectory")
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
    assert tab.evaluate(COUNT_JS) == len(q.segment_points(db, run_id, "tsne"))
    screenshot(tab, "map_segments")
