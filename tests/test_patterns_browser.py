"""The Failure patterns page in a real browser (server.py through chromium, as test_browser):
on a copy of the fixture database with a planted slice stored, the page lists it with its
test, shows its markdown-laden artist name as text, and opens its tracks on the Track page,
where the sentence of why names the pattern (its absence on a right track: test_patterns_app)."""

from __future__ import annotations

import pytest

from genre_core.analysis.slices import stored_rows
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


def test_the_page_lists_a_slice_and_opens_its_tracks(server, planted):
    from tests.test_browser import audio_src, choose_run, no_errors, screenshot, settle, visit

    db, run, slices = planted
    with sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        tab = browser.new_page(viewport={"width": 1400, "height": 950})
        tab.set_default_timeout(60_000)
        choose_run(tab, server, run)
        visit(tab, server, "patterns")
        no_errors(tab)
        heading = tab.locator("h3", has_text="Band")
        heading.wait_for()
        assert heading.inner_text().strip() == f"by {EVIL}"  # the name as typed: no image, no bold
        assert tab.locator("[data-testid='stMain'] img").count() == 0
        assert "one-sided Fisher exact test" in tab.inner_text("[data-testid='stMain']")
        screenshot(tab, "patterns")
        tab.get_by_role("button", name="in the Track view").click()
        tab.wait_for_url("**/track")
        tab.wait_for_selector("h1:has-text('Track ')")
        settle(tab)
        no_errors(tab)
        assert audio_src(tab)
        shown = tab.inner_text("h1").strip().removeprefix("Track ").strip()
        assert shown in set(slices.iloc[0].track_ids)
        why = tab.locator("[data-testid='stAlert']", has_text="Why, as far as the tests go")
        assert why.count() == 1 and "It is one of a pattern" in why.inner_text()  # a mistake in the slice
        screenshot(tab, "track_from_patterns")
        browser.close()
