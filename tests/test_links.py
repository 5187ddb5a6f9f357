"""Deep links (genre_core.app.links) as plain functions, the story's choices
(genre_core.app.story), and links opened in the app (AppTest): each restores its view, and a
link naming what is not there gets one line and the default view, never a traceback."""

from __future__ import annotations

import pandas as pd
import pytest

from genre_core.app import links, story
from genre_core.app import queries as q


def test_read_keeps_known_keys_with_printable_short_values():
    got = links.read({"run": "r1", "track": ["old", "blues.00012"], "evil": "x", "t": "",
                      "true": "rock\u202e", "pred": "a" * (links.MAX_VALUE + 1), "step": " 3 "})
    assert got == {"run": "r1", "track": "blues.00012", "step": "3"}


def test_view_orders_and_drops_defaults_and_empties():
    got = links.view("r1", {"split": "test", "true": "blues", "pred": None, "sel": ""}, db=None,
                     defaults={"split": "test"})
    assert got == {"run": "r1", "true": "blues"}
    assert list(links.view("r1", {"track": "x", "t": "4"}, db="b.duckdb")) == ["db", "run", "track", "t"]


def test_only_news_from_outside_is_adopted_and_t_is_soft():
    written = {"run": "r1", "track": "a"}
    assert links.came_from_outside({"run": "r1", "track": "a", "t": "42"}, None)  # a link just opened
    assert not links.came_from_outside({"run": "r1", "track": "a", "t": "42"}, written)  # the player moved t
    assert links.came_from_outside({"run": "r1", "track": "b"}, written)  # history, a typed address
    assert not links.came_from_outside({}, written)  # a page switch clears the parameters
    assert not links.differs({"run": "r1", "track": "a", "t": "9"}, {"run": "r1", "track": "a"})
    assert links.differs({}, {"run": "r1"})


@pytest.mark.parametrize("text, seconds", [("42", 42.0), ("42.5", 42.5), ("1:23", 83.0), ("0:07.5", 7.5),
                                           ("-3", None), ("nan", None), ("inf", None), ("1e9", None),
                                           ("1:2:3", None), ("", None), (None, None), ("999999", None)])
def test_seconds(text, seconds):
    assert links.seconds(text) == seconds


def test_whole_slug_and_choose():
    assert links.whole("3", 1, 5) == 3 and links.whole("0", 1, 5) is None and links.whole("3.0", 1, 5) is None
    assert links.slug("Distortion & silence") == "distortion-silence"
    assert links.from_slug("correct-wrong", ["true genre", "correct / wrong"]) == "correct / wrong"
    assert links.from_slug("../etc", ["x"]) is None
    assert links.choose("b", ["a", "b"], "the run", "the best run") == ("b", None)
    value, message = links.choose("../../etc/passwd" + "x" * 80, ["a"], "the run", "the best run")
    assert value is None and message.startswith("This link asks for the run “../../etc/passwd")
    assert "…" in message and message.endswith("showing the best run instead.") and "\n" not in message
    assert links.choose(None, ["a"], "the run", "x") == (None, None)


def test_selections_round_trip_with_separators_and_percent_signs_inside_ids():
    ids = ["blues.00001", "a~b", "50%~off", "x%7Ey", "c,d"]
    assert links.split_ids(links.join_ids(ids)) == tuple(ids)
    assert links.join_ids([str(i) for i in range(links.MAX_SELECTION + 1)]) is None
    assert links.split_ids(None) == ()


def test_format_seconds():
    assert links.format_seconds(42.0) == "42" and links.format_seconds(7.54) == "7.5"


# -- the story's choices ----------------------------------------------------------------------


def test_the_mistake_to_hear_is_explained_and_in_the_pattern_first():
    preds = pd.DataFrame({"track_id": ["a", "b", "c", "d"], "correct": [False, False, True, False],
                          "confidence": [0.9, 0.8, 0.99, 0.7]})
    pattern = pd.Series({"track_ids": ["d", "c"]})
    assert story.instructive_mistake(preds, pattern, lambda t: True) == "d"
    assert story.instructive_mistake(preds, None, lambda t: t == "b") == "b"
    assert story.instructive_mistake(preds, None, lambda t: False) == "a"
    assert story.instructive_mistake(preds.assign(correct=True), None, lambda t: True) is None


def test_worst_cell_pattern_and_duplicates():
    cells = pd.DataFrame({"label": ["a", "a", "b", "b"], "predicted": ["a", "b", "a", "b"], "n": [5, 1, 3, 2]})
    assert story.worst_cell(cells) == ("b", "a")
    assert story.worst_cell(cells.assign(n=[5, 0, 0, 2])) is None
    slices = pd.DataFrame({"rank": [1, 2], "significant": [False, True], "description": ["x", "y"]})
    assert story.top_pattern(slices).description == "y"
    assert story.top_pattern(slices.assign(significant=False)) is None
    groups = pd.DataFrame({"group_id": ["g1", "g1", "g2", "g2"], "kind": ["recording_duplicate"] * 2
                           + ["exact_duplicate"] * 2, "track_id": list("abcd")})
    assert list(story.duplicate_pair(groups).track_id) == ["c", "d"]


def test_the_story_can_leave_out_every_flagged_test_track(app_db):
    run = app_db["ten_runs"][0]
    flagged = q.predictions(app_db["db"], run, "test").faults != ""
    clean = q.clean_evaluation(app_db["db"], run, n_boot=50, leave_out="flagged")
    assert list(clean.subset) == ["all test tracks", "without flagged tracks"]
    assert int(clean.excluded.iloc[1]) == int(flagged.sum()) > 0
    assert int(clean.n.iloc[1]) == int((~flagged).sum())


# -- links opened in the app --------------------------------------------------------------------


def _open(monkeypatch, db, page: str, **params):
    from streamlit.testing.v1 import AppTest

    from tests.helpers import APP

    monkeypatch.setenv("GENRELENS_DB", str(db))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update(params)
    return at.switch_page(f"pages/{page}.py").run()


def _warnings(at) -> list[str]:
    assert not at.exception, [e.value for e in at.exception]
    return [w.value for w in at.warning]


def test_a_track_link_opens_the_track_at_its_time(monkeypatch, app_db):
    run = app_db["ten_runs"][0]
    track = q.predictions(app_db["db"], run, "test").track_id.iloc[3]
    at = _open(monkeypatch, app_db["db"], "track", run=run, track=track, t="1.5")
    assert not _warnings(at) and at.title[0].value == f"Track {track}"
    assert any('"start": 1.5' in f.proto.srcdoc for f in at.get("iframe"))  # the player starts there
    assert at.query_params["track"] == track and at.query_params["t"] == "1.5"


@pytest.mark.parametrize("params, said", [
    (dict(track="no-such-track"), "the track “no-such-track”"),
    (dict(track="../../../etc/passwd"), "the track “../../../etc/passwd”"),
    (dict(t="soon"), "the time “soon”"),
    (dict(run="nope"), "the run “nope”"),
])
def test_a_track_link_to_nothing_says_so_in_one_line(monkeypatch, app_db, params, said):
    run = app_db["ten_runs"][0]
    track = q.predictions(app_db["db"], run, "test").track_id.iloc[0]
    at = _open(monkeypatch, app_db["db"], "track", **{"run": run, "track": track, **params})
    warnings = _warnings(at)
    assert len(warnings) == 1 and said in warnings[0].replace("\\", "") and "\n" not in warnings[0]
    assert at.title[0].value.startswith("Track ")


def test_a_confusion_link_opens_its_cell_and_a_bad_one_the_bare_matrix(monkeypatch, app_db):
    run = app_db["ten_runs"][0]
    cells = q.confusion(app_db["db"], run)
    true, predicted = cells[(cells.n > 0) & (cells.label != cells.predicted)].iloc[0][["label", "predicted"]]
    at = _open(monkeypatch, app_db["db"], "confusion", run=run, true=true, pred=predicted)
    assert not _warnings(at)
    assert any(true in h.value and predicted in h.value for h in at.subheader)
    bad = _open(monkeypatch, app_db["db"], "confusion", run=run, true="<b>x</b>", pred=predicted)
    assert len(_warnings(bad)) == 1 and "the cell" in bad.warning[0].value
    assert "Click a cell" in " ".join(i.value for i in bad.info)


def test_map_and_faults_links_restore_their_controls(monkeypatch, app_db):
    run = app_db["ten_runs"][0]
    points = q.projection(app_db["db"], run, "tsne")
    chosen = list(points.track_id.iloc[:3])
    at = _open(monkeypatch, app_db["db"], "map", run=run, colour="correct-wrong", sel=links.join_ids(chosen))
    assert not _warnings(at)
    assert at.radio(key="map_colour").value == "correct / wrong"
    assert at.subheader[0].value == "3 selected tracks"
    assert at.query_params["sel"] == links.join_ids(chosen)
    group = q.duplicate_groups(app_db["db"], app_db["ten_id"]).group_id.iloc[-1]
    at = _open(monkeypatch, app_db["db"], "faults", run=run, group=group)
    assert not _warnings(at) and at.selectbox(key="dup_group").value == group
    at = _open(monkeypatch, app_db["db"], "faults", run=run, view="label-issues", group="G999")
    assert len(_warnings(at)) == 1 and at.segmented_control(key="faults_view").value == "Label issues"


def test_the_story_steps_have_their_own_links(monkeypatch, app_db):
    run = app_db["ten_runs"][0]
    for step, title in enumerate(story.STEPS, 1):
        at = _open(monkeypatch, app_db["db"], "story", run=run, step=str(step))
        assert not _warnings(at) and at.title[0].value == title
        assert at.query_params["step"] == str(step)
    at = _open(monkeypatch, app_db["db"], "story", run=run, step="99")
    assert len(_warnings(at)) == 1 and at.title[0].value == story.STEPS[0]
    at.button(key="story_next").click().run()
    assert at.title[0].value == story.STEPS[1] and at.query_params["step"] == "2"
