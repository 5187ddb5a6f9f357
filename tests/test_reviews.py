"""Reviews that never lose work and the evidence a curator listens to (issue 27, items 1-2):
verdicts saved as given, cleared and kept in a history; duplicate copies aligned at the
detected offset; split sides; damage spans from a detector's times. The Faults page through
AppTest; its clicks in chromium are tests/test_reviews_browser.py."""

from __future__ import annotations

import getpass

import duckdb
import pytest

from genre_core.app import fault_evidence, reviews, state
from genre_core.app import queries as q
from genre_core.store import SCHEMA_VERSION, open_store


def test_a_verdict_is_replaced_cleared_and_every_change_is_in_the_history(writable_app_db, app_db):
    ds = app_db["ten_id"]
    finding = dict(dataset_id=ds, track_id="blues.00000", kind="label_issue")
    assert reviews.save_reviews(writable_app_db, [dict(finding, decision="dismissed", note="fine")]) == 1
    reviews.save_reviews(writable_app_db, [dict(finding, decision="confirmed", note="wrong")])
    store = open_store(writable_app_db)
    assert store.reviews(ds).decision.tolist() == ["confirmed"]  # the current verdict stays in reviews
    reviews.save_reviews(writable_app_db, [dict(finding, decision=None, note="ignored")])
    assert store.reviews(ds).empty  # cleared: undecided again
    history = q.review_history(writable_app_db, ds, ["blues.00000"])
    assert history.decision.fillna("cleared").tolist() == ["cleared", "confirmed", "dismissed"]  # newest first
    assert history.note.fillna("").tolist() == ["", "wrong", "fine"]
    assert set(history.decided_by) == {getpass.getuser()}
    assert history.decided_at.is_monotonic_decreasing
    with pytest.raises(ValueError):
        store.save_review(ds, "blues.00000", "label_issue", decision="maybe")


def test_a_version_3_database_keeps_the_history_of_its_first_verdict(writable_app_db, app_db):
    """The app may save a verdict into a file no writer has upgraded yet: the save makes the
    history table itself; the next open_store upgrades the version number."""
    with duckdb.connect(str(writable_app_db)) as con:
        con.execute("DROP TABLE review_history; UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    assert q.review_history(writable_app_db, app_db["ten_id"]).empty  # readers check first
    finding = dict(dataset_id=app_db["ten_id"], track_id="rock.00001", kind="distortion", decision="confirmed")
    reviews.save_reviews(writable_app_db, [finding])
    assert q.review_history(writable_app_db, app_db["ten_id"]).decision.tolist() == ["confirmed"]
    open_store(writable_app_db)
    with duckdb.connect(str(writable_app_db), read_only=True) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)


def test_copies_start_at_the_matching_moment():
    # b sounds like a 0.8 s later (offset +0.8 against a), c like b 0.5 s earlier
    members = [("a", {"offset_s": -0.8, "partner": "b"}), ("b", {"offset_s": 0.8, "partner": "a"}),
               ("c", {"offset_s": -0.5, "partner": "b"})]
    assert fault_evidence.aligned_starts(members) == {"a": 0.0, "b": 0.8, "c": 0.3}
    assert fault_evidence.aligned_starts([("x", {"matched_by": "identical file"}), ("y", {})]) == {"x": 0.0, "y": 0.0}
    assert fault_evidence.aligned_starts([("x", {"offset_s": float("nan"), "partner": "y"}), ("y", None)]) == {
        "x": 0.0, "y": 0.0}


def test_sides_straddle_and_damage_spans(app_db):
    run = app_db["ten_runs"][0]
    preds = q.predictions(app_db["db"], run, split=None)
    test_track = str(preds[preds.split == "test"].track_id.iloc[0])
    sides = q.split_sides(app_db["db"], run, [test_track, "no-such-track"])
    assert sides == {test_track: "test", "no-such-track": None}
    assert q.split_sides(app_db["db"], None, ["x"]) == {"x": None}
    assert fault_evidence.straddles({"a": "train", "b": "test"})
    assert not fault_evidence.straddles({"a": "train", "b": "val"}) and not fault_evidence.straddles({"a": None})
    marks = fault_evidence.damage_marks({"problem": "dropouts", "starts_s": [1.0, 2.5], "lengths_s": [0.46]}, 2.52)
    assert marks == [(1.0, 1.46, "dropouts 1.00–1.46 s"), (2.5, 2.52, "dropouts 2.50–2.52 s")]
    assert fault_evidence.damage_marks({"problem": "clipping", "share": 0.1}) == []


def _faults_page(monkeypatch, db, run, **params):
    from streamlit.testing.v1 import AppTest

    from tests.helpers import APP

    monkeypatch.setenv("GENRELENS_DB", str(db))
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state[state.RUN] = run
    at.query_params.update(params)
    at = at.switch_page("pages/faults.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_verdict_is_saved_at_once_survives_a_view_switch_and_clears(monkeypatch, app_db, writable_app_db):
    at = _faults_page(monkeypatch, writable_app_db, app_db["ten_runs"][0])
    group = at.session_state["dup_group"]
    _ok(at.button(key="dup_confirm").click().run())
    members = q.duplicate_groups(writable_app_db, app_db["ten_id"])
    members = members[members.group_id == group]
    assert set(members.decision) == {"confirmed"}  # stored with no Save step
    assert any("confirmed" in m.value for m in at.markdown if "Verdict on group" in m.value)
    _ok(at.segmented_control(key="faults_view").set_value("Label issues").run())
    _ok(at.segmented_control(key="faults_view").set_value("Duplicates").run())
    assert at.session_state["dup_group"] == group  # the chosen group came back with the view
    assert "confirmed" in at.selectbox(key="dup_group").format_func(group)
    _ok(at.button(key="dup_clear").click().run())
    assert q.duplicate_groups(writable_app_db, app_db["ten_id"]).set_index("track_id").decision[
        list(members.track_id)].isna().all()
    history = q.review_history(writable_app_db, app_db["ten_id"], list(members.track_id))
    assert history.decision.isna().sum() == len(members) and (history.decision == "confirmed").sum() == len(members)


def test_a_link_names_the_chosen_finding(monkeypatch, app_db):
    issues = q.label_issues(app_db["db"], app_db["ten_id"], None)
    second = str(issues.track_id.iloc[1])
    at = _faults_page(monkeypatch, app_db["db"], app_db["ten_runs"][0], view="label-issues", track=second)
    assert at.selectbox(key="label-issues_box").value == second
    assert at.query_params.get("track") in (second, [second])
    assert any(second in m.value for m in at.markdown if "Verdict on" in m.value)
