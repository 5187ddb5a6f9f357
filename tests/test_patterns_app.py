"""The Failure patterns page, the report's section and Faults -> Artist repetition, through
AppTest on a copy of the app's fixture database with failure slices stored for one run (one
planted slice by an artist whose name is markdown and HTML: shown as text everywhere)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genre_core.analysis.slices import find_slices, stored_rows
from genre_core.app import state
from genre_core.app import queries as q
from genre_core.store import open_store
from genre_core.untrusted import markdown as md
from tests.helpers import open_app

EVIL = "![x](http://evil.example/p.png) <b>Band</b>"


def _planted_slices(db, run_id: str) -> pd.DataFrame:
    """Slices of the run's test tracks, where every wrong one (up to 12) is by EVIL's band."""
    preds = q.predictions(db, run_id)
    wrong = pd.Series(~preds.correct.to_numpy(dtype=bool), index=pd.Index(preds.track_id, name="track_id"))
    planted = wrong[wrong].index[:12]
    rng = np.random.default_rng(0)
    attributes = pd.DataFrame({"genre": [f"genre {g}" for g in preds.label],
                               "artist": [f"by {EVIL}" if t in planted else f"by artist {rng.integers(6)}"
                                          for t in preds.track_id]}, index=wrong.index)
    return find_slices(wrong & wrong.index.isin(planted), attributes)


@pytest.fixture
def patterns_db(writable_app_db, app_db):
    run = app_db["ten_runs"][0]
    slices = _planted_slices(writable_app_db, run)
    assert slices.iloc[0].significant and slices.iloc[0].description == f"by {EVIL}"
    open_store(writable_app_db).replace_run_rows(run, {"failure_slices": stored_rows(slices)})
    return writable_app_db, run, slices


def _open(monkeypatch, db, run: str, page: str):
    at = open_app(monkeypatch, db, **{state.RUN: run}).switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_page_lists_significant_slices_first_with_the_rule(monkeypatch, patterns_db):
    db, run, slices = patterns_db
    at = _open(monkeypatch, db, run, "patterns")
    assert at.title[0].value == "Failure patterns"
    rule = " ".join(c.value for c in at.caption)
    assert "one-sided Fisher exact test" in rule and "Benjamini–Hochberg" in rule
    assert f"tested\\: {int(slices.n_tested.iloc[0])} single values" in rule and "2.5%" in rule
    significant = at.dataframe(key="significant_slices").value
    assert significant.slice.iloc[0] == f"by {EVIL}" and len(significant) == int(slices.significant.sum())
    assert at.expander[0].label.startswith("Not significant")
    # the chosen slice (the worst, by default) in words, its markdown escaped
    assert at.subheader[-1].value == md(f"by {EVIL}")  # shows as typed: no image fetched, no bold
    said = " ".join(m.value for m in at.markdown)
    assert md("One-sided Fisher exact test: p < 0.0001; after Benjamini–Hochberg over") in said
    assert md("significant at 2.5%") in said


def test_a_slice_opens_its_tracks_on_the_track_page(monkeypatch, patterns_db):
    db, run, slices = patterns_db
    at = _open(monkeypatch, db, run, "patterns")
    listed = at.dataframe(key="slice_tracks").value
    top = slices.iloc[0]
    assert set(listed.track_id) == set(top.track_ids) and not (listed.label == listed.predicted).any()
    at.button(key="open_slice").click().run()
    assert not at.exception
    assert at.title[0].value.startswith("Track ")
    selection = at.session_state[state.SELECTION]
    assert set(selection.track_ids) == set(top.track_ids) and selection.source == f"Failure pattern: by {EVIL}"


def test_a_run_without_slices_says_how_to_get_them(monkeypatch, app_db):
    at = _open(monkeypatch, app_db["db"], app_db["ten_runs"][0], "patterns")
    assert "python -m training analyze" in at.info[0].value


def test_the_report_lists_the_significant_slices_escaped(patterns_db, tmp_path):
    from genre_core.runs.report import write_report

    db, run, slices = patterns_db
    out = tmp_path / "report.html"
    write_report(open_store(db), run, out, n_examples=0)
    text = out.read_text()
    assert "Where it fails systematically" in text and "one-sided Fisher exact test" in text
    assert "&lt;b&gt;Band&lt;/b&gt;" in text and "<b>Band</b>" not in text


def test_artist_repetition_lists_every_artist_across_the_split(monkeypatch, app_db):
    run, dataset = app_db["ten_runs"][0], app_db["ten_id"]
    artists = q.artists_across_split(app_db["db"], dataset, run)
    preds = q.predictions(app_db["db"], run, None)
    assert len(artists) > artists.flagged.sum() >= 1  # every artist with several tracks, not only flagged ones
    assert (artists.train + artists.val + artists.test == artists.n_tracks).all()
    tested = preds[preds.split == "test"].track_id
    assert artists.test.sum() == sum(t in set(tested) for ids in artists.track_ids for t in ids)
    at = _open(monkeypatch, app_db["db"], run, "faults")
    at.segmented_control(key="faults_view").set_value("Artist repetition").run()
    assert not at.exception
    assert "more than 25% of one genre's tracks" in " ".join(c.value for c in at.caption)
    assert at.metric[0].value == str(len(artists))
    shown = next(d.value for d in at.dataframe if "train" in d.value.columns)
    assert len(shown) == len(artists) and {"val", "test", "leak"} <= set(shown.columns)


def _track_page(monkeypatch, db, run: str, track_id: str):
    dataset_id = int(q.run_row(db, run).dataset_id)
    at = open_app(monkeypatch, db, **{state.RUN: run, state.TRACK: (dataset_id, track_id)})
    at = at.switch_page("pages/track.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_track_says_why_for_a_mistake_in_a_significant_slice_and_not_for_a_right_track(monkeypatch, patterns_db):
    db, run, slices = patterns_db
    preds = q.predictions(db, run)
    wrong = str(slices.iloc[0].track_ids[0])
    right = str(preds[preds.correct.astype(bool)].track_id.iloc[0])
    said = [i.value for i in _track_page(monkeypatch, db, run, wrong).info if "Why, as far as the tests go" in i.value]
    assert len(said) == 1 and "It is one of a pattern" in said[0] and "q \\<" in said[0]  # q < 0.0001, escaped
    assert "by " in said[0] and "![" not in said[0].replace("\\![", "")  # the artist's markdown stays escaped
    assert not [i for i in _track_page(monkeypatch, db, run, right).info if "Why, as far" in i.value]


def test_confusion_says_why_beside_a_cell_a_slice_explains(monkeypatch, patterns_db):
    db, run, slices = patterns_db
    preds = q.predictions(db, run)
    first = preds[preds.track_id == str(slices.iloc[0].track_ids[0])].iloc[0]
    at = open_app(monkeypatch, db, **{state.RUN: run})
    at.session_state["genrelens.confusion_cell"] = (run, "test", first.label, first.predicted)
    at = at.switch_page("pages/confusion.py").run()
    assert not at.exception, [e.value for e in at.exception]
    said = [i.value for i in at.info if "Why, as far as the tests go" in i.value]
    assert len(said) == 1 and "belong to one pattern" in said[0]
