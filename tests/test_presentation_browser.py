"""Presentation mode in the real browser, as a lecturer projects it: at 1920x1080 and at a
projector's 1280x720, every page with Presentation mode on, and no visible text cut or
overlapping: labels, buttons, headings, captions and table cells must fit their boxes
(scrollWidth <= clientWidth), HTML tables must not scroll sideways, and no two chart labels
(axis ticks, titles, legends, colour bars) may overlap -- rotated tick labels are compared in
their own rotated frame, so a slanted genre axis only fails when the words really touch. Run
ids stay out of the projected pages. Screenshots of every page at both sizes are saved."""

from __future__ import annotations

import time

import pytest

from tests.helpers import CHROMIUM, launch_chromium, serving_app

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright python package")

SIZES = ((1920, 1080), (1280, 720))
PAGES = ("Overview", "Confusion", "Failure patterns", "Map", "Track", "Faults", "Compare", "Multi-label",
         "Classify", "Story")

# Every problem a hall would see, as one line each.
PROBLEMS_JS = r"""() => {
  const main = document.querySelector('[data-testid="stMain"]') || document.body;  // or the Map's frame
  const bad = [];
  const visible = el => { const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
  const boxes = '[data-testid="stTable"], [data-testid="stTable"] > div, button, label, th, td, h1, h2, h3, '
    + '[data-testid="stMetricValue"], [data-testid="stMetricLabel"], [data-testid="stMarkdownContainer"], '
    + '[data-testid="stCaptionContainer"]';
  for (const el of main.querySelectorAll(boxes)) {
    if (visible(el) && el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1)
      bad.push(`cut: ${el.tagName.toLowerCase()} "${el.innerText.trim().slice(0, 60)}" (${el.scrollWidth} > ${el.clientWidth} px)`);
  }
  const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  for (const svg of main.querySelectorAll('svg.main-svg')) {
    const labels = [...svg.querySelectorAll('.xtick text, .ytick text, .g-xtitle text, .g-ytitle text, '
                                            + '.legendtext, .cbaxis text, .cbtitle text, .gtitle')]
      .filter(visible).map(t => {
        const r = t.getBoundingClientRect(), b = t.getBBox();
        const m = /rotate\((-?[\d.]+)/.exec(t.getAttribute('transform') || '');
        return {text: t.textContent, r, w: b.width, h: b.height, a: (m ? parseFloat(m[1]) : 0) * Math.PI / 180,
                cx: (r.left + r.right) / 2, cy: (r.top + r.bottom) / 2};
      });
    for (let i = 0; i < labels.length; i++) for (let j = i + 1; j < labels.length; j++) {
      const p = labels[i], q = labels[j];
      let touch;
      if (Math.abs(p.a - q.a) > 1e-3) touch = hit(p.r, q.r);
      else {  // same angle: compare in the labels' own frame
        const dx = q.cx - p.cx, dy = q.cy - p.cy;
        const along = Math.abs(dx * Math.cos(p.a) + dy * Math.sin(p.a));
        const across = Math.abs(-dx * Math.sin(p.a) + dy * Math.cos(p.a));
        touch = along < (p.w + q.w) / 2 - 1 && across < (p.h + q.h) / 2 - 1;
      }
      if (touch) bad.push(`overlap: "${p.text}" and "${q.text}"`);
    }
    const figure = svg.getBoundingClientRect();
    for (const l of labels)
      if (l.r.left < figure.left - 1 || l.r.right > figure.right + 1) bad.push(`outside its chart: "${l.text}"`);
  }
  return bad;
}"""


def _settle(tab) -> None:
    from tests.test_browser import settle

    settle(tab)
    time.sleep(1.0)  # plotly lays its labels out after the script has finished


def _page_problems(tab, width: int, height: int) -> list[str]:
    """Problems of the whole page: the window grows to the page's height first, so that what
    lies below the fold is laid out and checked too."""
    full = tab.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    tab.set_viewport_size({"width": width, "height": int(min(max(height, full + 20), 8000))})
    time.sleep(1.0)
    try:  # the Map draws its chart in a frame of its own (page_map_frame): checked there
        return [line for where in (tab, *(f for f in tab.frames if "genrelens_map" in f.url))
                for line in where.evaluate(PROBLEMS_JS)]
    finally:
        tab.set_viewport_size({"width": width, "height": height})


@pytest.fixture(scope="module")
def server(app_db):
    with serving_app(app_db["db"]) as url:
        yield url


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_page_fits_in_presentation_mode(server, app_db, size):
    from tests.test_browser import SHOTS, no_errors

    width, height = size
    with sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        tab = browser.new_page(viewport={"width": width, "height": height})
        tab.goto(server)
        tab.wait_for_selector("h1")
        _settle(tab)
        tab.locator('[data-testid="stSidebar"]').get_by_text("Presentation mode").click()
        _settle(tab)
        run_id = tab.evaluate("() => new URLSearchParams(location.search).get('run')") or ""
        found = {}
        for title in PAGES:
            tab.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
            tab.wait_for_selector("h1")
            _settle(tab)
            no_errors(tab)
            assert tab.locator('[data-testid="stMain"] h1').count() >= 1, title  # the page rendered
            problems = _page_problems(tab, width, height)
            text = tab.locator('[data-testid="stMain"]').inner_text()
            if run_id and run_id in text:
                problems.append(f"run id {run_id} shown")
            if problems:
                found[title] = problems
            SHOTS.mkdir(parents=True, exist_ok=True)
            full = tab.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
            tab.set_viewport_size({"width": width, "height": int(min(max(height, full + 20), 8000))})
            time.sleep(0.5)
            tab.screenshot(path=str(SHOTS / f"presentation_{title.lower().replace(' ', '_')}_{width}.png"))
            tab.set_viewport_size({"width": width, "height": height})
        browser.close()
    assert not found, "\n".join(f"{page}: {line}" for page, lines in found.items() for line in lines)
