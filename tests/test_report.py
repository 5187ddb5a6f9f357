"""The shareable report: one HTML file with everything inside it. Checked in the real browser:
it renders, its audio plays from data: URIs, and it makes no request outside the file."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from genre_core.runs.report import headline, write_report
from genre_core.store import StoreError, open_store

from tests.helpers import CHROMIUM, launch_chromium
SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def report(app_db, tmp_path_factory):
    store = open_store(app_db["db"], create=False)
    out = tmp_path_factory.mktemp("report") / "report.html"
    summary = write_report(store, app_db["toy_run"], out)
    return out, summary, store


def test_report_is_self_contained_and_says_the_result_in_plain_words(report, app_db):
    out, summary, store = report
    text = out.read_text()
    preds = store.predictions(app_db["toy_run"], "test")
    wrong = int((preds.label != preds.predicted).sum())
    assert summary.n_examples == min(6, wrong)
    assert text.count("<audio") == summary.n_examples
    # Nothing to fetch: every src/href is a data: URI, no script at all.
    assert "<script" not in text
    assert all(link.startswith("data:") for link in re.findall(r'(?:src|href)="([^"]+)"', text))
    accuracy = float((preds.label == preds.predicted).mean())
    assert f"for {round(100 * accuracy)} of 100 songs" in text


def test_headline_reads_like_a_sentence():
    line = headline("cnn", (0.734, 0.68, 0.79), 200, n_classes=10)
    assert line == ("cnn names the right genre for 73 of 100 songs it never heard in training "
                    "(95% confidence interval 68–79), measured on 200 test songs; guessing would get about 10.")
    assert "confidence interval" not in headline("cnn", (0.5, np.nan, np.nan), 10, n_classes=2)


def test_report_refuses_a_non_html_name_and_an_unknown_run(app_db, tmp_path):
    store = open_store(app_db["db"], create=False)
    with pytest.raises(ValueError, match=".html"):
        write_report(store, app_db["toy_run"], tmp_path / "r.pdf")
    with pytest.raises(StoreError):
        write_report(store, "nope", tmp_path / "r.html")
    assert not any(tmp_path.iterdir())


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)")
def test_report_in_the_browser_plays_audio_and_requests_nothing_outside(report):
    sync_api = pytest.importorskip("playwright.sync_api")
    out, summary, _ = report
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        tab = browser.new_page(viewport={"width": 1280, "height": 800})
        tab.on("request", lambda r: requests.append(r.url))
        tab.goto(out.as_uri())
        tab.wait_for_load_state("load")
        assert tab.locator("svg circle").count() > 0
        assert tab.locator("table.cm td").count() > 0
        durations = tab.evaluate("""async () => Promise.all(Array.from(document.querySelectorAll('audio'))
            .map(a => new Promise(done => { a.preload = 'auto';
                a.addEventListener('loadedmetadata', () => done(a.duration)); a.load(); })))""")
        assert len(durations) == summary.n_examples and all(d > 1 for d in durations)
        SHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(SHOTS / "report.png"), full_page=True)
        browser.close()
    outside = [u for u in requests if not u.startswith(("file://", "data:"))]
    assert outside == []
