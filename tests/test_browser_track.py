"""The Track page you can listen through, in a real browser (Debian's chromium via playwright):
clicking the player's spectrogram seeks the audio there, a looped window replays, "what the
model heard" plays, the closest-correct panel shows explained tracks, and Presentation mode
cuts nothing. Screenshots go to artifacts/screenshots/ (track_*.png).

The fixture database's toy cnn run has Grad-CAM maps but none of issue 24's tables, so a
writable copy gets them planted: a faithfulness table in which Grad-CAM beats random masks,
the closest correct tracks of one mistake (explained), and its variant predictions.
"""

from __future__ import annotations

import time

import pytest

from tests.helpers import CHROMIUM, serving_app, writable_copy
from tests.test_track_page import plant_explanations
from tests.test_browser import page, screenshot, settle, visit  # noqa: F401  (page: the shared tab fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)"),
]
pytest.importorskip("playwright.sync_api", reason="needs the playwright python package")

PLAYER = 'iframe[title^="Player"]'


@pytest.fixture(scope="module")
def planted(app_db, tmp_path_factory):
    path = writable_copy(app_db["db"], tmp_path_factory.mktemp("track_page"))
    return dict(db=str(path), **plant_explanations(path, app_db["toy_run"]))


@pytest.fixture(scope="module")
def server(planted):
    with serving_app(planted["db"]) as url:
        yield url


def _open_mistake(tab, server: str, app_db, planted) -> None:
    """The toy run chosen in the sidebar, then the Track page on the planted mistake."""
    visit(tab, server, "overview")
    tab.get_by_role("combobox", name="Run").click()
    tab.get_by_role("option", name=app_db["toy_run"]).click()
    settle(tab)
    visit(tab, server, "track")
    assert tab.inner_text("h1") == f"Track {planted['track']}"
    _no_errors(tab)


def _no_errors(tab) -> None:
    errors = tab.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


def _player(tab):
    """The player's frame, once its audio knows its duration."""
    frame = tab.wait_for_selector(PLAYER).content_frame()
    frame.wait_for_function("document.getElementById('audio').readyState >= 1 && "
                            "isFinite(document.getElementById('audio').duration)")
    return frame


def _time(frame) -> float:
    return float(frame.evaluate("document.getElementById('audio').currentTime"))


def test_clicking_the_spectrogram_seeks(page, server, app_db, planted):
    _open_mistake(page, server, app_db, planted)
    frame = _player(page)
    duration = float(frame.evaluate("document.getElementById('audio').duration"))
    assert duration > 1.0
    lane = frame.locator(".lane.spec")
    box = lane.bounding_box()
    for share in (0.7, 0.25):
        lane.click(position={"x": box["width"] * share, "y": box["height"] / 2})
        time.sleep(0.3)
        assert abs(_time(frame) - share * duration) < 0.5, (share, _time(frame), duration)
    head = frame.evaluate("parseFloat(document.getElementById('playhead').style.left)")
    assert abs(head - 25.0) < 100 * 0.5 / duration  # the one playhead follows the audio
    screenshot(page, "track_player")


def test_a_looped_window_replays(page, server, app_db, planted):
    _open_mistake(page, server, app_db, planted)
    frame = _player(page)
    loop = frame.get_by_role("button", name="Loop the surest 3 s")
    assert frame.get_by_role("button", name=f"Loop the window most against {planted['label']}").count() == 1
    loop.click()  # the toy tracks are 4 s long: one window, [0, 3)
    seen, deadline = [], time.monotonic() + 10
    while time.monotonic() < deadline:
        seen.append(_time(frame))
        if len(seen) > 5 and seen[-1] < max(seen) - 1.0:
            break  # jumped back
        time.sleep(0.05)
    peak = max(seen)
    after = seen[seen.index(peak) + 1:]
    assert peak >= 2.6, seen  # played on to the end of the 3-s window [0, 3)
    assert after and min(after) < 0.6, seen  # then back to its start
    assert frame.evaluate("window.glLoops") >= 1
    screenshot(page, "track_looping")
    frame.get_by_role("button", name="Stop looping").click()
    frame.evaluate("document.getElementById('audio').pause()")


def test_what_the_model_heard_plays(page, server, app_db, planted):
    _open_mistake(page, server, app_db, planted)
    section = page.locator(".st-key-heard")
    section.locator("h3", has_text="What the model heard").wait_for()  # Grad-CAM beats random masks here
    assert "beats random masks" in section.inner_text()
    heard = section.locator("audio").nth(1)
    heard.evaluate("a => { a.muted = true; return a.play(); }")
    time.sleep(1.2)
    duration, now = heard.evaluate("a => [a.duration, a.currentTime]")
    assert duration > 1.0 and now > 0.2, (duration, now)
    heard.evaluate("a => a.pause()")
    screenshot(page, "track_heard")


def test_the_closest_correct_tracks_are_explained(page, server, app_db, planted):
    _open_mistake(page, server, app_db, planted)
    panel = page.locator(".st-key-contrast")
    panel.wait_for()
    text = panel.inner_text()
    assert f"Closest correct {planted['label']}" in text and f"Closest correct {planted['predicted']}" in text
    for track in (planted["true_side"], *planted["predicted_side"]):
        assert track in text
    assert panel.locator("img").count() == 3  # a Grad-CAM thumbnail for each: all three explained
    assert panel.locator("audio").count() == 3
    assert text.count("Grad-CAM for") == 3
    variants = page.locator(".st-key-variants")
    assert "Without the bass" in variants.inner_text()  # the mind_change sentence names no_bass
    screenshot(page, "track_contrast")
    panel.get_by_role("button", name="open").first.click()
    page.wait_for_selector(f"h1:has-text('Track {planted['true_side']}')")
    settle(page)
    _no_errors(page)
    page.get_by_role("button", name="◀ previous").click()  # the walk: the mistake, then its neighbours
    page.wait_for_selector(f"h1:has-text('Track {planted['track']}')")
    settle(page)


def test_presentation_mode_cuts_nothing(page, server, app_db, planted):
    _open_mistake(page, server, app_db, planted)
    page.get_by_text("Presentation mode").click()
    settle(page)
    frame = _player(page)
    time.sleep(0.5)  # the frame reports its height, streamlit sizes it
    inner = frame.evaluate("document.documentElement.scrollHeight")
    outer = page.eval_on_selector(PLAYER, "f => f.getBoundingClientRect().height")
    assert outer >= inner - 1, (outer, inner)
    assert frame.evaluate("document.body.scrollWidth <= window.innerWidth + 1")
    assert "Closest correct" in page.locator(".st-key-contrast").inner_text()
    _no_errors(page)
    screenshot(page, "track_presentation")
    page.get_by_text("Presentation mode").click()
    settle(page)
