"""The Faults page's reviews and evidence in chromium (issue 27): on a copy of the fixture
database with a planted recording duplicate (one copy on the chosen run's training side, one on
its test side, 0.8 s apart), a verdict survives a view switch and a reload, clearing it works,
each copy's player starts at the matching moment, and the straddling group is marked."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from genre_core.app import queries as q
from genre_core.store import open_store
from tests.helpers import CHROMIUM, launch_chromium, serving_app, writable_copy

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright python package")
OFFSET = 0.8
GROUP = "recording-planted"


@pytest.fixture(scope="module")
def planted(app_db, tmp_path_factory):
    db = writable_copy(app_db["db"], tmp_path_factory.mktemp("reviews"))
    run, ds = app_db["ten_runs"][0], app_db["ten_id"]
    store = open_store(db)
    preds = q.predictions(db, run, split=None)
    sides = q.split_sides(db, run, list(q.faults(db, ds).track_id) + list(preds.track_id))
    test_track = str(preds[preds.split == "test"].track_id.iloc[0])
    train_track = next(t for t, s in sides.items() if s == "train")
    found = store.query("SELECT * FROM faults WHERE dataset_id = ? AND source = 'detected'", [ds])
    later = dict(offset_s=OFFSET, partner=train_track, correlation=0.97, members=[train_track, test_track])
    planted_rows = [dict(dataset_id=ds, track_id=test_track, kind="recording_duplicate", group_id=GROUP, score=0.97,
                         evidence=json.dumps(later), source="detected"),
                    dict(dataset_id=ds, track_id=train_track, kind="recording_duplicate", group_id=GROUP, score=0.97,
                         evidence=json.dumps(dict(later, offset_s=-OFFSET, partner=test_track)), source="detected")]
    frame = pd.concat([found.assign(evidence=found.evidence.astype(str)), pd.DataFrame(planted_rows)], ignore_index=True)
    store.replace_faults(ds, "detected", frame)
    return db, run, train_track, test_track


@pytest.fixture(scope="module")
def tab(planted):
    from tests.test_browser import choose_run

    with serving_app(planted[0]) as server, sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1400, "height": 950})
        page.set_default_timeout(60_000)
        choose_run(page, server, planted[1])
        yield page, server
        browser.close()


def _verdict(page) -> str:
    return page.locator("[data-testid='stMarkdown']", has_text="Verdict on group").inner_text()


def _view(page, name: str) -> None:
    from tests.test_browser import settle

    page.locator("[data-testid='stButtonGroup'] button", has_text=name).first.click()
    settle(page)


def _start_times(page) -> dict[str, float]:
    """{player title: its audio's currentTime} once each player has loaded its audio."""
    out = {}
    for frame_el in page.query_selector_all('iframe[title^="Player of"]'):
        frame = frame_el.content_frame()
        frame.wait_for_function("document.getElementById('audio').readyState >= 1")
        out[frame_el.get_attribute("title")] = frame.evaluate("document.getElementById('audio').currentTime")
    return out


def test_a_verdict_survives_a_view_switch_and_a_reload_and_clears(tab, planted):
    from tests.test_browser import no_errors, screenshot, settle

    page, server = tab
    _, run, train_track, test_track = planted
    page.goto(f"{server}/faults?run={run}&group={GROUP}")
    page.wait_for_selector("h1")
    settle(page)
    no_errors(page)
    assert "undecided" in _verdict(page)
    # the group straddles the split, and each copy's side is named
    alert = page.locator("[data-testid='stAlert']", has_text="straddle the split")
    assert alert.count() == 1 and train_track in alert.inner_text() and test_track in alert.inner_text()
    main = page.inner_text("[data-testid='stMain']")
    assert "training side" in main and "test side" in main
    # the later copy starts 0.8 s in, the other at 0: both at the matching moment
    starts = _start_times(page)
    assert starts[f"Player of {test_track}"] == pytest.approx(OFFSET, abs=0.05)
    assert starts[f"Player of {train_track}"] == pytest.approx(0.0, abs=0.05)
    screenshot(page, "faults_duplicate_aligned")
    page.get_by_role("button", name="Confirm").click()
    settle(page)
    assert "confirmed" in _verdict(page)  # saved: no Save step
    _view(page, "Label issues")
    assert "label-issues" in page.url
    _view(page, "Duplicates")
    settle(page)
    assert "confirmed" in _verdict(page) and f"group={GROUP}" in page.url
    page.reload()
    page.wait_for_selector("h1")
    settle(page)
    no_errors(page)
    assert "confirmed" in _verdict(page)  # the same group, its verdict read back
    screenshot(page, "faults_duplicate_confirmed")
    page.get_by_role("button", name="Clear verdict").click()
    settle(page)
    assert "undecided" in _verdict(page)
    history = q.review_history(planted[0], open_store(planted[0]).dataset("ten")["dataset_id"], [test_track])
    assert history.decision.fillna("cleared").tolist() == ["cleared", "confirmed"]
