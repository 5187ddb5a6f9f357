"""The Failure patterns page in a real browser (server.py through chromium, as test_browser):
on a copy of the fixture database with a planted slice stored, the page lists it with its
test, shows its markdown-laden artist name as text, and opens its tracks on the Track page,
where the sentence of why names the pattern; on a track the run got right no sentence shows."""

from __future__ import annotations

import re

import pytest

from genre_core.analysis.slices import stored_rows
from genre_core.app import queries as q
from genre_core.store import open_store
from tests.helpers import CHROMIUM, launch_chromium, serving_app, writable_copy
from tests.test_patterns_app import EVIL, _planted_slices

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright python package")


@pytest.fixture(scope="module")
def planted(app_db, tmp_path_factory):
    db = writable_copy(app_db["db"], tmp_path_factory.mktemp("patterns"))
    run = app_db["ten_runs"][0]
    slices = _planted_slices(db, run)
    open_store(db).replace_run_rows(run, {"failure_slices": stored_rows(slices)})
    return db, run, slices


@pytest.fixture(scope="module")
def server(planted):
    with serving_app(planted[0]) as url:
        yield url


@pytest.fixture(scope="module")
def tab(server, planted):
    """One chromium tab for the module's tests, the planted run chosen in the sidebar."""
    from tests.test_browser import choose_run

    with sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 950})
        page.set_default_timeout(60_000)
        choose_run(page, server, planted[1])
        yield page
        browser.close()


def _why(tab):
    """The Track page's sentence of why (pages/track.py's why_line), wherever it is shown."""
    return tab.locator("[data-testid='stAlert']", has_text="Why, as far as the tests go")


def test_the_page_lists_a_slice_and_opens_its_tracks(tab, server, planted):
    from tests.test_browser import audio_src, no_errors, screenshot, settle, visit

    slices = planted[2]
    visit(tab, server, "patterns")
    no_errors(tab)
    heading = tab.locator("h3", has_text="Band")
    heading.wait_for()
    assert heading.inner_text().strip() == f"by {EVIL}"  # the name as typed: no image, no bold
    assert tab.locator("[data-testid='stMain'] img").count() == 0
    assert "one-sided Fisher exact test" in tab.inner_text("[data-testid='stMain']")
    screenshot(tab, "patterns")
    tab.get_by_role("button", name="in the Track view").click()
    tab.wait_for_url("**/track*")
    tab.wait_for_selector("h1:has-text('Track ')")
    settle(tab)
    no_errors(tab)
    assert audio_src(tab)
    shown = tab.inner_text("h1").strip().removeprefix("Track ").strip()
    assert shown in set(slices.iloc[0].track_ids)
    why = _why(tab)
    assert why.count() == 1 and "It is one of a pattern" in why.inner_text()  # a mistake in the slice
    screenshot(tab, "track_from_patterns")


def _open_track(tab, track_id: str) -> None:
    """On the Track page: find `track_id` with the search box and pick it."""
    from tests.test_browser import settle

    search = tab.get_by_role("textbox", name="Find a track")
    search.fill(track_id)
    search.press("Enter")
    settle(tab)
    tab.get_by_role("combobox", name=re.compile(r"^Track")).click()
    tab.get_by_role("option", name=re.compile(rf"^{re.escape(track_id)} · ")).click()
    tab.wait_for_selector(f"h1:has-text('Track {track_id}')")
    settle(tab)
    # what the run before drew goes once this one has finished (streamlit marks it stale until then)
    tab.wait_for_function("!document.querySelector('[data-stale=\"true\"]')")


def test_a_right_track_shows_no_sentence_of_why(tab, server, planted):
    """The run's slices are stored and significant (a mistake of the same run shows the
    sentence, first); a test track it got right shows none, on a page that did render."""
    from tests.test_browser import audio_src, no_errors, screenshot, visit

    db, run, slices = planted
    preds = q.predictions(db, run)
    right = str(preds[preds.correct.astype(bool)].track_id.iloc[0])
    wrong = str(slices.iloc[0].track_ids[0])
    visit(tab, server, "track")
    _open_track(tab, wrong)
    no_errors(tab)
    assert _why(tab).count() == 1  # the locator finds it on this run's pages
    _open_track(tab, right)
    no_errors(tab)
    main = tab.inner_text("[data-testid='stMain']")
    label = preds.set_index("track_id").label[right]
    assert tab.inner_text("h1").strip() == f"Track {right}" and f"predicted {label} ✓" in main
    assert audio_src(tab)  # the player is there: the page rendered past the why line
    assert _why(tab).count() == 0 and "Why, as far as the tests go" not in main
    screenshot(tab, "track_right_no_why")
