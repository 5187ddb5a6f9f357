"""The shareable report: one HTML file with everything inside it, for a lay reader. Checked in
the real browser: it renders, every player knows its duration before it is played, the Grad-CAM
figures carry time and frequency axes over a spectrogram, the mistakes on the map are ringed
in contrasting colours, and it makes no request outside the file. A second report, of a run
with faults and a planted failure pattern, shows faults in plain words, the pattern and the
sentences of why."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

from genre_core.analysis.slices import stored_rows
from genre_core.faults.kinds import FAULT_KINDS, fault_words
from genre_core.runs.report import headline, write_report
from genre_core.store import StoreError, open_store
from genre_core.untrusted import html as esc

from tests.helpers import CHROMIUM, launch_chromium, writable_copy
from tests.test_patterns_app import _planted_slices
SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def report(app_db, tmp_path_factory):
    store = open_store(app_db["db"], create=False)
    out = tmp_path_factory.mktemp("report") / "report.html"
    summary = write_report(store, app_db["toy_run"], out)
    return out, summary, store


@pytest.fixture(scope="module")
def planted(app_db, tmp_path_factory):
    """The report of a 10-genre run whose dataset has every fault kind, with a significant
    failure slice stored (its artist's name is HTML)."""
    db = writable_copy(app_db["db"], tmp_path_factory.mktemp("planted"))
    run = app_db["ten_runs"][0]
    store = open_store(db)
    store.replace_run_rows(run, {"failure_slices": stored_rows(_planted_slices(db, run))})
    out = db.parent / "report.html"
    return out, write_report(store, run, out), store, run


def _wrong(store, run):
    preds = store.predictions(run, "test")
    return preds[preds.label != preds.predicted]


def test_report_is_self_contained_and_says_the_result_in_plain_words(report, app_db):
    out, summary, store = report
    text = out.read_text()
    preds = store.predictions(app_db["toy_run"], "test")
    wrong = int((preds.label != preds.predicted).sum())
    assert summary.n_examples == min(6, wrong)
    # each example: its snippet, and what its map points at where it has one; none waits for a click to load
    assert summary.n_examples <= text.count("<audio") <= 2 * summary.n_examples
    assert text.count('preload="metadata"') == text.count("<audio") and 'preload="none"' not in text
    # Nothing to fetch: every src/href is a data: URI, no script at all.
    assert "<script" not in text
    assert all(link.startswith("data:") for link in re.findall(r'(?:src|href)="([^"]+)"', text))
    accuracy = float((preds.label == preds.predicted).mean())
    assert f"for {round(100 * accuracy)} of 100 songs" in text


def test_faults_patterns_and_why_in_plain_words(planted):
    out, summary, store, run = planted
    text = out.read_text()
    kinds = set(store.fault_rows(int(store.run(run)["dataset_id"])).kind)
    assert kinds == set(FAULT_KINDS)  # the fixture has every kind: each must read as words
    for kind in kinds:
        assert kind not in text  # label_issue, exact_duplicate...: never an internal name
        assert esc(fault_words(kind)[0]) in text
    assert "Where it fails systematically" in text and "&lt;b&gt;Band&lt;/b&gt;" in text and "<b>Band</b>" not in text
    # the known faults against the flags, kind by kind, in words (the fixture's known list: duplicates, one missed)
    known = text[text.index("The faults known beforehand"):]
    assert known.count("<tr>") == 1 + 2 and esc(fault_words("recording_duplicate")[0]) in known
    assert "share found" in known and "not looked for" not in known
    # the examples: explained ones (a figure each), each beside its sentence of why where the tests found one
    assert summary.n_examples == 6 and text.count('<svg class="cam"') == 6
    assert text.count("<audio") == 12  # the snippet and what its map points at, for each
    assert "Why, as far as the tests go:" in text and "It is one of a pattern" in text


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


def _luminance(rgb: str) -> float:
    channels = [int(v) / 255 for v in re.findall(r"\d+", rgb)[:3]]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# Each player's duration once its metadata is loaded; NaN when it has not loaded 10 s later (preload="none").
DURATIONS = """async () => Promise.all(Array.from(document.querySelectorAll('audio')).map(a =>
    a.readyState >= 1 ? a.duration : new Promise(done => { setTimeout(() => done(NaN), 10000);
        a.addEventListener('loadedmetadata', () => done(a.duration)); })))"""
MARKERS = """() => Array.from(document.querySelectorAll('svg.map g.mistake')).map(g => Array.from(g.querySelectorAll('circle'))
    .map(c => [getComputedStyle(c).stroke, getComputedStyle(c).fill, c.getBBox().width]))"""
FIGURES = """() => Array.from(document.querySelectorAll('svg.cam')).map(s => ({
    label: s.getAttribute('aria-label'), images: s.querySelectorAll('image').length,
    ticks: Array.from(s.querySelectorAll('text.tick')).map(t => [t.textContent, t.getBBox().width > 0]),
    axes: Array.from(s.querySelectorAll('text.axis')).map(t => t.textContent)}))"""


def _check_page(tab, url: str, store, run: str) -> list:
    tab.goto(url)
    tab.wait_for_load_state("load")
    assert tab.locator("table.cm td").count() > 0
    # Every player knows its duration before anyone presses play (it read 0:00 / 0:00 with preload="none").
    durations = tab.evaluate(DURATIONS)
    assert durations and all(np.isfinite(d) and d > 0 for d in durations), durations
    assert tab.evaluate("() => Array.from(document.querySelectorAll('audio')).every(a => a.paused && a.currentTime === 0)")
    # The mistakes: one ringed marker each, a dark ring in a light halo, so it stands out on any dot.
    markers = tab.evaluate(MARKERS)
    assert len(markers) == _wrong(store, run).track_id.isin(set(store.projections(run).track_id)).sum() > 0
    for (halo, _, width), (ring, _, _), (_, dot, dot_width) in markers:
        assert _contrast(halo, ring) >= 7 and width > 1.5 * dot_width
        assert max(_contrast(dot, halo), _contrast(dot, ring)) >= 4.5
    assert "got wrong" in tab.locator(".legend").inner_text() and tab.locator(".legend svg g, .legend svg circle").count()
    return tab.evaluate(FIGURES)


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)")
def test_report_in_the_browser_plays_audio_and_requests_nothing_outside(report, planted, app_db):
    sync_api = pytest.importorskip("playwright.sync_api")
    from PIL import Image

    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        tab = browser.new_page(viewport={"width": 1280, "height": 800})
        tab.on("request", lambda r: requests.append(r.url))
        _check_page(tab, report[0].as_uri(), report[2], app_db["toy_run"])
        out, summary, store, run = planted
        figures = _check_page(tab, out.as_uri(), store, run)
        # Grad-CAM over its spectrogram (two images), axes named, ticks in seconds and in Hz, all drawn.
        assert len(figures) == summary.n_examples
        for figure in figures:
            assert figure["images"] == 2 and figure["axes"] == ["time (s)", "frequency (Hz)"]
            assert "time (s)" in figure["label"] and "frequency (Hz)" in figure["label"]
            hz = [t for t, shown in figure["ticks"] if shown and t.endswith("Hz")]
            seconds = [t for t, shown in figure["ticks"] if shown and re.fullmatch(r"\d+(\.\d+)?", t)]
            assert len(hz) >= 3 and len(seconds) >= 3 and seconds[0] == "0", figure["ticks"]
        # ... and drawn: the spectrogram's greys and the map's orange both show in the rendered figure.
        pixels = np.asarray(Image.open(io.BytesIO(tab.locator("svg.cam").first.screenshot())).convert("RGB")).reshape(-1, 3)
        grey = (np.ptp(pixels, axis=1) < 12) & (pixels[:, 0] > 40) & (pixels[:, 0] < 220)
        orange = (pixels[:, 0] > 200) & (pixels[:, 2] < 120) & (pixels[:, 0] - pixels[:, 2] > 120)
        assert grey.mean() > 0.2 and orange.mean() > 0.005 and len(np.unique(pixels[grey][:, 0])) > 40
        SHOTS.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(SHOTS / "report.png"), full_page=True)
        browser.close()
    outside = [u for u in requests if not u.startswith(("file://", "data:"))]
    assert outside == []
