"""The app in a real browser: `streamlit run server.py` (app.py behind its Content-Security-Policy) on the fixture database, driven through
Debian's chromium by playwright. Visits every page, clicks a confusion-matrix cell and a map
point, checks the Track view plays audio, and saves screenshots to artifacts/screenshots/."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


from tests.helpers import CHROMIUM, launch_chromium, serving_app
ROOT = Path(__file__).resolve().parent.parent
NETWORK_IDLE_MS = 5_000
SHOTS = ROOT / "artifacts" / "screenshots"
PAGES = ("overview", "confusion", "patterns", "map", "track", "faults", "compare", "multilabel", "classify", "story")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright python package")
PlaywrightTimeout = sync_api.TimeoutError

# The centre of a point of a plotly chart in page coordinates: markers may be drawn with WebGL or
# as shapes, so locate points through plotly's own axes rather than through SVG elements.
POINT_JS = """([plot, nonEmpty]) => {
  const gd = document.querySelectorAll('.js-plotly-plot')[plot];
  const fl = gd._fullLayout, box = gd.getBoundingClientRect();
  for (let t = 0; t < gd.calcdata.length; t++) {
    const cd = gd.calcdata[t], fd = gd._fullData[t];
    for (let i = 0; i < cd.length; i++) {
      if (nonEmpty && !cd[i].tx) continue;
      return {x: box.left + fl.xaxis._offset + fl.xaxis.l2p(cd[i].x),
              y: box.top + fl.yaxis._offset + fl.yaxis.l2p(cd[i].y),
              custom: Array.from(fd.customdata[i]).map(String)};
    }
  }
  return null;
}"""


@pytest.fixture(scope="module")
def server(app_db):
    with serving_app(app_db["db"]) as url:
        yield url


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        tab = browser.new_page(viewport={"width": 1400, "height": 950})
        tab.set_default_timeout(60_000)
        yield tab
        browser.close()


def settle(tab) -> None:
    """Wait until streamlit has finished running the script (no 'Running…' widget) and the
    network is idle -- for at most NETWORK_IDLE_MS: once the Track page's player has loaded its
    audio, playwright's network-idle state of the tab may never come back although no request
    is pending (checked through CDP), and a full run timed out there."""
    time.sleep(0.8)
    tab.wait_for_function("!document.querySelector('[data-testid=\"stStatusWidget\"]')")
    try:
        tab.wait_for_load_state("networkidle", timeout=NETWORK_IDLE_MS)
    except PlaywrightTimeout:
        pass
    time.sleep(0.5)


def no_errors(tab) -> None:
    errors = tab.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


def screenshot(tab, name: str) -> None:
    """The whole page: the main area scrolls inside the window, so grow the window to fit it."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = tab.evaluate("() => Math.max(...Array.from(document.querySelectorAll("
                          "'[data-testid=\"stMain\"], [data-testid=\"stMain\"] *')).map(e => e.scrollHeight))")
    tab.set_viewport_size({"width": 1400, "height": int(min(max(950, height + 40), 8000))})
    time.sleep(0.8)
    tab.screenshot(path=str(SHOTS / f"{name}.png"))
    tab.set_viewport_size({"width": 1400, "height": 950})


def choose_run(tab, server: str, run_id: str) -> None:
    """Make `run_id` the chosen run by typing it into the sidebar's run picker (on Overview)."""
    visit(tab, server, "overview")
    picker = tab.get_by_role("combobox", name="Run")
    picker.click()
    picker.fill(run_id)
    tab.keyboard.press("Enter")
    settle(tab)


def visit(tab, server: str, name: str) -> None:
    """Open a page through the sidebar (same session) or, on first use, by its URL."""
    if tab.url.startswith(server):
        label = {"multilabel": "Multi-label"}.get(name, name.capitalize())  # the sidebar's title
        tab.locator('[data-testid="stSidebarNav"] a', has_text=label).first.click()
        tab.wait_for_url(f"{server}/{'' if name == 'overview' else name}*")
    else:
        tab.goto(f"{server}/{'' if name == 'overview' else name}")
    tab.wait_for_selector("h1")
    settle(tab)


def plots(tab):
    """(the document holding the page's plotly charts, its top-left corner in the page): the page
    itself, or on the Map page the frame its scatter is drawn in (page_map_frame)."""
    tab.wait_for_selector('.js-plotly-plot, iframe[src*="genrelens_map"]')
    element = tab.query_selector('iframe[src*="genrelens_map"]')
    if element is None:
        return tab, (0.0, 0.0)
    frame = element.content_frame()
    frame.wait_for_selector(".js-plotly-plot .scatterlayer")
    box = element.bounding_box()
    return frame, (box["x"], box["y"])


def click_point(tab, plot: int = 0, non_empty: bool = False) -> dict:
    where, (left, top) = plots(tab)
    point = where.evaluate(POINT_JS, [plot, non_empty])
    assert point, "no point to click"
    point = {**point, "x": point["x"] + left, "y": point["y"] + top}
    tab.mouse.move(point["x"], point["y"])
    time.sleep(0.3)
    tab.mouse.click(point["x"], point["y"])
    settle(tab)
    return point


def audio_src(tab) -> str:
    """The src of the Track page's player audio (inside the player's frame)."""
    frame = tab.wait_for_selector('iframe[title^="Player"]').content_frame()
    frame.wait_for_selector("audio")
    return frame.get_attribute("audio", "src") or ""


def test_a_deep_link_on_a_fresh_server(page, server):
    """Until app.py has run once, streamlit serves pages/x.py on its own (the old pages/
    folder mode); the page must hand over to app.py and come back, not fail without it."""
    page.goto(f"{server}/map")
    page.wait_for_selector("h1:has-text('Map')")
    settle(page)
    no_errors(page)
    assert page.get_by_role("combobox", name="Run").count() == 1  # app.py's sidebar ran
    assert page.locator('[data-testid="stSidebarNav"] a').count() == len(PAGES)


def test_every_page_renders(page, server):
    for name in PAGES:
        visit(page, server, name)
        no_errors(page)
        assert page.inner_text("h1").strip()
        screenshot(page, name)


def test_a_confusion_cell_opens_its_tracks(page, server):
    visit(page, server, "confusion")
    point = click_point(page, 0, non_empty=True)
    true, predicted = point["custom"][:2]
    heading = page.locator("h3", has_text=f"{true} track")
    heading.wait_for()
    assert predicted in heading.inner_text()
    settle(page)
    screenshot(page, "confusion_cell")
    page.get_by_role("button", name="in the Track view").click()
    page.wait_for_url("**/track*")
    page.wait_for_selector("h1:has-text('Track ')")
    settle(page)
    assert audio_src(page)
    no_errors(page)
    screenshot(page, "track_from_confusion")


def test_a_map_click_plays_and_opens_the_track(page, server):
    visit(page, server, "map")
    point = click_point(page, 0)
    page.wait_for_url("**/track*")
    settle(page)
    assert page.inner_text("h1") == f"Track {point['custom'][0]}"
    assert audio_src(page)
    no_errors(page)
    screenshot(page, "track_from_map")


def test_presentation_mode(page, server):
    visit(page, server, "confusion")
    page.get_by_text("Presentation mode").click()
    settle(page)
    visit(page, server, "compare")
    assert page.locator('[data-testid="stExpander"]').count() >= 1
    no_errors(page)
    screenshot(page, "compare_presentation")
    page.get_by_text("Presentation mode").click()
    settle(page)


def test_classify_an_upload(page, server, app_db):
    from tests.helpers import band_clip

    buffer = io.BytesIO()
    sf.write(buffer, np.concatenate([band_clip("low", 1, 8.0), band_clip("high", 2, 8.0)]), 22050, format="WAV")
    visit(page, server, "overview")
    page.get_by_role("combobox", name="Run").click()  # choose the toy run: the one with a model file
    page.get_by_role("option", name=app_db["toy_run"]).click()
    settle(page)
    visit(page, server, "classify")
    page.locator('input[type="file"]').set_input_files(
        files=[{"name": "mix.wav", "mimeType": "audio/wav", "buffer": buffer.getvalue()}])
    page.wait_for_selector("h3:has-text('Verdict')", timeout=120_000)
    settle(page)
    no_errors(page)
    screenshot(page, "classify_result")


def test_an_imported_run_is_in_the_leaderboard_and_compare(page, server, app_db):
    """A run made from another model's predictions: chosen in the sidebar, it is in the
    Overview's interval chart and among Compare's runs, labelled as imported. (Late: it
    leaves the imported run chosen, which has no map for the tests above.)"""
    choose_run(page, server, app_db["imported_run"])
    tail = app_db["imported_run"].rsplit("-", 1)[-1]
    page.locator(".js-plotly-plot text", has_text=f"outside · imported · {tail}").first.wait_for()  # drawn
    visit(page, server, "compare")
    chips = page.locator('[data-testid="stMultiSelect"]').first.inner_text()
    assert f"outside · imported · {tail}" in chips
    no_errors(page)
    screenshot(page, "compare_imported")


def test_a_kfold_experiment_is_one_pooled_entry(page, server, app_db):
    """The toy k-fold logreg appears once, as its pooled run, in the Overview's interval chart
    and among Compare's runs; none of its folds is shown on its own anywhere there."""
    choose_run(page, server, app_db["pooled_run"])
    labels = page.locator(".js-plotly-plot text")
    labels.filter(has_text=app_db["pooled_run"].rsplit("-", 1)[-1]).first.wait_for()  # drawn, then:
    for fold in app_db["fold_runs"]:
        assert labels.filter(has_text=fold.rsplit("-", 1)[-1]).count() == 0
    visit(page, server, "compare")
    chips = page.locator('[data-testid="stMultiSelect"]').first.inner_text()
    assert "pooled-kfold/4" in chips and "· kfold-" not in chips
    no_errors(page)
    screenshot(page, "compare_pooled")
