"""Every page of the Streamlit app through AppTest, on the fixture database of test_queries.

AppTest cannot click charts; chart clicks are simulated by putting what a click stores into
session_state (their translation into filters is tested in test_queries, the real clicks in
test_browser).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from streamlit.testing.v1 import AppTest

from genre_core.app import state
from genre_core.app import queries as q
from genre_core.store import open_store
from tests.helpers import open_app

APP = Path(__file__).resolve().parent.parent / "app.py"
PAGES = ("overview", "confusion", "patterns", "map", "track", "faults", "compare", "multilabel", "classify")
TITLES = {"overview": "GenreLens", "confusion": "Confusion matrix", "patterns": "Failure patterns", "map": "Map",
          "track": "Track ",
          "faults": "Dataset faults", "compare": "Compare runs", "multilabel": "Multi-label genres",
          "classify": "Classify a recording"}


_app = open_app


def _open(at: AppTest, page: str) -> AppTest:
    return at.switch_page(f"pages/{page}.py").run()


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs(monkeypatch, app_db, page):
    at = _open(_app(monkeypatch, app_db["db"], **{state.RUN: app_db["ten_runs"][0]}), page)
    _ok(at)
    assert at.title[0].value.startswith(TITLES[page])


def test_every_page_runs_on_the_real_toy_run(monkeypatch, app_db):
    at = _app(monkeypatch, app_db["db"], **{state.RUN: app_db["toy_run"]})
    for page in PAGES:
        _ok(_open(at, page))


def test_overview_leaderboard_and_summary(monkeypatch, app_db):
    at = _app(monkeypatch, app_db["db"])
    _ok(at)
    board = next(d.value for d in at.dataframe if "accuracy_ci" in d.value.columns)
    # Complete runs only, and a k-fold experiment once: its pooled entry, never its folds.
    assert len(board) == 3 + len(app_db["ten_runs"])  # toy: cnn, pooled logreg, imported
    assert (board.split == "pooled-kfold/4").sum() == 1 and not board.split.str.startswith("kfold-").any()
    pooled = board[board.split == "pooled-kfold/4"].iloc[0]
    assert "over 4 folds" in pooled.fold_spread
    # The toy cnn was tested on a random split's tracks, the pooled entry on every track.
    toy = board[board.dataset == "toy"].set_index("run_id")
    starred = toy[toy.star == "★"].index[0]
    assert toy.test_set[starred] == "" and toy.test_set[app_db["toy_run"]] == "other test set"
    assert app_db["imported_run"] in toy.index  # a run brought from outside is an entry like any other
    assert (board.star == "★").sum() == 2  # the best of each dataset
    assert any(i.value.startswith("The best model") for i in at.info)
    datasets = at.dataframe[0].value
    assert set(datasets.name) == {"toy", "ten"}


def test_run_picker_lists_complete_runs_and_survives_page_switches(monkeypatch, app_db):
    at = _app(monkeypatch, app_db["db"])
    picker = at.sidebar.selectbox(key="_run")
    # Complete runs only (not the running and the failed one), newest first, labelled with the
    # model, the dataset and the test accuracy.
    ids = [o.rsplit(" · ", 1)[-1] for o in picker.options]
    finished = q.runs(app_db["db"]).set_index("run_id").finished_at
    assert sorted(ids) == sorted(finished.index) and finished[ids].is_monotonic_decreasing
    assert not any("running" in o or "failed" in o for o in picker.options)
    toy = next(o for o in picker.options if o.endswith(app_db["toy_run"]))
    assert toy.startswith("cnn · toy · ") and toy.split(" · ")[2][-1] in "%–"
    other = app_db["ten_runs"][2]
    picker.set_value(other).run()
    assert at.session_state[state.RUN] == other
    _open(at, "compare")
    _open(at, "confusion")
    assert at.session_state[state.RUN] == other
    assert other in at.caption[0].value


@pytest.mark.parametrize("kind", ["missing", "empty"])
def test_empty_database_explains_how_to_fill_it(monkeypatch, tmp_path, kind):
    path = tmp_path / "genrelens.duckdb"
    if kind == "empty":
        open_store(path)
    at = _app(monkeypatch, path)
    _ok(at)
    text = " ".join(m.value for m in [*at.info, *at.error])  # missing: the neutral refusal, which says it too
    assert "make demo" in text
    assert at.title[0].value == "GenreLens" and not at.dataframe


def test_confusion_cell_lists_tracks_and_opens_the_track_view(monkeypatch, app_db):
    run = app_db["ten_runs"][0]
    preds = q.predictions(app_db["db"], run)
    wrong = preds[~preds.correct].iloc[0]
    at = _app(monkeypatch, app_db["db"], **{state.RUN: run})
    at.session_state["genrelens.confusion_cell"] = (run, "test", wrong.label, wrong.predicted)
    _open(at, "confusion")
    _ok(at)
    assert any(f"{wrong.label} track" in h.value and wrong.predicted in h.value for h in at.subheader)
    listed = next(d.value for d in at.dataframe if "p_true" in d.value.columns)
    first = listed.track_id.iloc[0]
    at.button(key="open_first").click().run()
    _ok(at)
    assert at.title[0].value == f"Track {first}"
    assert at.session_state[state.SELECTION].track_ids == tuple(listed.track_id)


def test_track_page_walks_through_the_selection(monkeypatch, app_db):
    run = app_db["ten_runs"][0]
    ids = tuple(q.predictions(app_db["db"], run).track_id[:3])
    selection = state.Selection("Map: 3 tracks selected", ids, app_db["ten_id"])
    at = _app(monkeypatch, app_db["db"],
              **{state.RUN: run, state.TRACK: (app_db["ten_id"], ids[0]), state.SELECTION: selection})
    _open(at, "track")
    _ok(at)
    assert at.title[0].value == f"Track {ids[0]}" and at.button(key="prev").disabled
    at.button(key="next").click().run()
    assert at.title[0].value == f"Track {ids[1]}"
    at.button(key="next").click().run()
    assert at.title[0].value == f"Track {ids[2]}" and at.button(key="next").disabled
    at.button(key="prev").click().run()
    assert at.title[0].value == f"Track {ids[1]}"
    assert at.session_state[state.SELECTION] == selection


def test_track_search_opens_a_match(monkeypatch, app_db):
    run = app_db["ten_runs"][0]
    at = _open(_app(monkeypatch, app_db["db"], **{state.RUN: run}), "track")
    _ok(at)
    at.text_input(key="track_search").input("rock.0001").run()
    _ok(at)
    picker = at.selectbox(key="_track_pick")
    assert "5 matches" in picker.label and len(picker.options) == 6  # the open track, then the matches
    assert all(o.startswith("rock.0001") for o in picker.options[1:])
    chosen = picker.options[3].split(" · ")[0]
    picker.set_value(chosen).run()
    _ok(at)
    assert at.title[0].value == f"Track {chosen}"


def test_map_lists_the_stored_selection(monkeypatch, app_db):
    run = app_db["ten_runs"][0]
    ids = tuple(q.projection(app_db["db"], run, "tsne").track_id[:4])
    selection = state.Selection("Map: 4 tracks", ids, app_db["ten_id"])
    at = _app(monkeypatch, app_db["db"], **{state.RUN: run, state.SELECTION: selection})
    _open(at, "map")
    _ok(at)
    assert any(h.value == "4 selected tracks" for h in at.subheader)


def test_map_search_rings_the_matches(monkeypatch, app_db):
    at = _open(_app(monkeypatch, app_db["db"], **{state.RUN: app_db["ten_runs"][0]}), "map")
    at.text_input(key="map_search").input("metal.0000").run()
    _ok(at)
    assert any(c.value.startswith("10 tracks match “metal.0000”") for c in at.caption)


def test_presentation_mode_folds_controls_and_survives_page_switches(monkeypatch, app_db):
    at = _app(monkeypatch, app_db["db"], **{state.RUN: app_db["ten_runs"][0]})
    at.sidebar.toggle[0].set_value(True).run()
    _open(at, "confusion")
    _ok(at)
    assert at.session_state[state.PRESENTATION] is True
    assert any(e.label == "Controls" for e in at.expander)
    _open(at, "map")
    # (AppTest drops the sidebar's widgets from its tree on reruns; the browser test sees them.)
    assert at.session_state[state.PRESENTATION] is True and any(e.label == "Controls" for e in at.expander)


def test_a_review_is_stored(monkeypatch, app_db, writable_app_db):
    path = writable_app_db
    at = _app(monkeypatch, path, **{state.RUN: app_db["ten_runs"][0]})
    _open(at, "faults")
    _ok(at)
    at.button(key="dup_confirm").click().run()
    _ok(at)
    reviews = open_store(path).query("SELECT * FROM reviews")
    assert len(reviews) >= 2 and set(reviews.decision) == {"confirmed"}
    assert set(reviews.kind) <= {"exact_duplicate", "recording_duplicate"}
    clean = q.clean_evaluation(path, app_db["ten_runs"][0], n_boot=50)
    assert clean.n[1] <= clean.n[0]


def test_classify_rejects_what_is_not_audio(monkeypatch, app_db):
    at = _app(monkeypatch, app_db["db"], **{state.RUN: app_db["toy_run"]})
    _open(at, "classify")
    _ok(at)
    at.file_uploader[0].upload("notes.txt", b"these are not the samples you are looking for", "text/plain").run()
    _ok(at)
    assert any("not audio GenreLens can read" in e.value for e in at.error)


def test_classify_a_recording(monkeypatch, app_db):
    from tests.helpers import band_clip

    buffer = io.BytesIO()
    y = np.concatenate([band_clip("low", 1, 6.0), band_clip("high", 2, 6.0)])
    sf.write(buffer, y, 22050, format="WAV")
    at = _app(monkeypatch, app_db["db"], **{state.RUN: app_db["toy_run"]})
    _open(at, "classify")
    at.file_uploader[0].upload("mix.wav", buffer.getvalue(), "audio/wav").run()
    _ok(at)
    assert any(h.value.startswith("Verdict: ") for h in at.subheader)
    heard = at.session_state["genrelens.classify_result"][2]
    assert heard.name == "mix.wav" and heard.loudest is not None and heard.loudest.image is not None


def test_a_ready_figure_sends_what_the_figure_would(app_db):
    """charts.ready keeps the serialised figure (what st.plotly_chart sends) unchanged, on every
    call; the confusion matrix's colours are a heatmap that takes no clicks, its cells a scatter."""
    import plotly.io as pio

    from genre_core.app import charts

    run = app_db["ten_runs"][0]
    points = q.projection(app_db["db"], run, "tsne")
    classes = list(q.run_row(app_db["db"], run).classes)
    cells = q.confusion(app_db["db"], run)
    for build in (lambda: charts.embedding_map(points, "label", classes, highlight=points.track_id[:3]),
                  lambda: charts.confusion_matrix(cells, normalise=True, presentation=False, selected=(cells.label[0], cells.predicted[1]))):
        expected = pio.to_json(build().to_dict(), validate=False)
        fig = charts.ready(build())
        assert pio.to_json(fig.to_dict(), validate=False) == expected == pio.to_json(fig.to_dict(), validate=False)
    heat, cells_trace = fig.data
    assert heat.type == "heatmap" and heat.hoverinfo == "skip"
    assert cells_trace.type == "scatter" and len(cells_trace.customdata) == len(cells)
    assert len(fig.layout.shapes) == 1  # only the selected cell's outline
