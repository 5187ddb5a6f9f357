"""Story mode and deep links in a real browser (server.py through chromium, as test_browser):
the story followed from step 1 to the last with the arrow keys, each step's address opened
in a fresh browser context showing the same step; a Track link with t= opens the track with
the player at that time; a Confusion link opens its cell's tracks; Copy link copies the
address. Screenshots go to artifacts/screenshots/ (story_step1.png ... )."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from genre_core.app import queries as q
from genre_core.app import story
from tests.helpers import CHROMIUM, launch_chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright python package")
VIEWPORT = {"width": 1400, "height": 950}


from tests.test_browser import server  # noqa: E402,F401  (the app on the fixture database, per module)


@pytest.fixture(scope="module")
def browser(server):
    with sync_api.sync_playwright() as p:
        chromium = launch_chromium(p)
        yield chromium
        chromium.close()


def _fresh(browser, **options):
    """A tab in a new browser context: no cookies, no session, nothing shared with the others."""
    context = browser.new_context(viewport=VIEWPORT, **options)
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    return context, tab


def _params(tab) -> dict[str, str]:
    return {k: v[-1] for k, v in parse_qs(urlparse(tab.url).query).items()}


def _open(tab, server: str, path: str, **params) -> None:
    from tests.test_browser import settle

    tab.goto(f"{server}/{path}?{urlencode(params)}")
    tab.wait_for_selector("h1")
    settle(tab)


def test_the_story_by_arrow_keys_and_each_step_by_its_link(browser, server, app_db):
    from tests.test_browser import no_errors, screenshot, settle

    run = app_db["ten_runs"][0]
    context, tab = _fresh(browser)
    _open(tab, server, "story", run=run)
    urls = []
    for step, title in enumerate(story.STEPS, 1):
        if step > 1:
            tab.keyboard.press("ArrowRight")
            tab.wait_for_selector(f"h1:has-text('{title}')")
            settle(tab)
        no_errors(tab)
        assert tab.inner_text("h1").strip() == title
        assert urlparse(tab.url).path == "/story" and _params(tab) == {"run": run, "step": str(step)}
        assert f"Step {step} of {len(story.STEPS)}" in tab.inner_text("[data-testid='stMain']")
        urls.append(tab.url)
        if step == 3:  # the rendering of what the model heard takes a while: the link below it comes last
            tab.get_by_text("Everything about this song on the Track page").wait_for(timeout=120_000)
            settle(tab)
        screenshot(tab, f"story_step{step}")
    tab.keyboard.press("ArrowRight")  # past the last step: nothing moves
    settle(tab)
    assert _params(tab)["step"] == str(len(story.STEPS))
    tab.keyboard.press("ArrowLeft")
    tab.wait_for_selector(f"h1:has-text('{story.STEPS[-2]}')")
    context.close()

    for step, url in enumerate(urls, 1):  # each step's address, in a browser that never saw the story
        context, tab = _fresh(browser)
        tab.goto(url)
        tab.wait_for_selector(f"h1:has-text('{story.STEPS[step - 1]}')")
        settle(tab)
        no_errors(tab)
        assert f"Step {step} of {len(story.STEPS)}" in tab.inner_text("[data-testid='stMain']")
        assert _params(tab) == {"run": run, "step": str(step)}
        if step == 3:  # the mistake to hear: its player is there
            tab.wait_for_selector('iframe[title^="Player"]')
        context.close()


def test_a_track_link_starts_the_player_there_and_copy_link_copies_it(browser, server, app_db):
    from tests.test_browser import audio_src, no_errors, screenshot

    run = app_db["ten_runs"][0]
    track = q.predictions(app_db["db"], run, "test").track_id.iloc[2]
    context, tab = _fresh(browser, permissions=["clipboard-read", "clipboard-write"])
    _open(tab, server, "track", run=run, track=track, t="2.5")
    no_errors(tab)
    assert tab.inner_text("h1").strip() == f"Track {track}"
    assert audio_src(tab)
    player = tab.wait_for_selector('iframe[title^="Player"]').content_frame()
    player.wait_for_function("document.getElementById('audio').readyState >= 1")
    assert abs(player.evaluate("document.getElementById('audio').currentTime") - 2.5) < 0.05
    assert player.inner_text("#clock").startswith("2.5 /")
    left = player.evaluate("parseFloat(document.getElementById('playhead').style.left)")
    assert left > 0  # the playhead drawn at 2.5 s, not at the start
    assert _params(tab) == {"run": run, "track": track, "t": "2.5"}
    screenshot(tab, "track_deep_link")

    player.evaluate("document.getElementById('audio').currentTime = 1.2")  # a seek writes t= back
    tab.wait_for_function("new URL(location.href).searchParams.get('t') === '1.2'")
    button = tab.frame_locator('iframe[title="Copy a link to this view"]')
    button.locator("#copy").click()
    button.locator("#said").filter(has_text="copied").wait_for()
    copied = tab.evaluate("navigator.clipboard.readText()")
    assert copied == tab.url and "t=1.2" in copied
    context.close()


def test_a_confusion_link_opens_its_cells_tracks(browser, server, app_db):
    from tests.test_browser import no_errors, screenshot

    run = app_db["ten_runs"][0]
    cells = q.confusion(app_db["db"], run)
    cell = cells[(cells.n > 0) & (cells.label != cells.predicted)].sort_values("n").iloc[-1]
    context, tab = _fresh(browser)
    _open(tab, server, "confusion", run=run, true=cell.label, pred=cell.predicted)
    no_errors(tab)
    heading = tab.locator("h3", has_text=f"{cell.label} track")
    heading.wait_for()
    assert cell.predicted in heading.inner_text() and heading.inner_text().startswith(str(int(cell.n)))
    assert tab.get_by_role("button", name="in the Track view").count() == 1
    assert _params(tab) == {"run": run, "true": cell.label, "pred": cell.predicted}
    screenshot(tab, "confusion_deep_link")
    _open(tab, server, "confusion", run=run, true="nope", pred=cell.predicted)  # a cell that is not there
    time.sleep(0.5)
    notice = tab.locator("[data-testid='stAlert']", has_text="This link asks for the cell")
    assert notice.count() == 1 and _params(tab) == {"run": run}
    no_errors(tab)
    context.close()
