"""Known vs detected on a synthetic corpus (issue 27, item 5): the faults the generator planted
(its faults_truth.csv) are stored as the dataset's known faults when faults are detected, and
the per-kind comparison (found, missed, new, recall, precision) matches numbers computed here
straight from the truth file; the Faults page and the report show it kind by kind."""

from __future__ import annotations

import csv
import math

import numpy as np
import pandas as pd
import pytest

from genre_core.app import queries as q
from genre_core.datasets.ingest import ingest
from genre_core.datasets.synth.corpus import SynthConfig, generate_corpus
from genre_core.faults.detect import detect_faults
from genre_core.faults.kinds import DUPLICATE_KINDS, FAULT_KINDS
from genre_core.faults.known import compare_faults, comparison_summary, listed_faults
from genre_core.store import open_store
from tests.helpers import open_app


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A 120-clip synthetic corpus (4-s clips), ingested and with its faults detected (the
    smallest size at which the label check has enough of each genre to judge: at 50 clips it
    missed the cross-genre copy)."""
    root = tmp_path_factory.mktemp("planted")
    generate_corpus(root / "corpus", config=SynthConfig(per_genre=12, seconds=4.0, seed=3, extras=True), progress=False)
    store = open_store(root / "g.duckdb")
    ingest(store, "synth", root / "corpus", name="planted", progress=False)
    summary = detect_faults(store, "planted", progress=False)
    with open(root / "corpus" / "faults_truth.csv", newline="", encoding="utf-8") as f:
        truth = list(csv.DictReader(f))
    with open(root / "corpus" / "metadata.csv", newline="", encoding="utf-8") as f:
        meta = list(csv.DictReader(f))
    # A clip whose true genre is another genre than its label is misfiled whatever else it is
    # (a cross-genre exact copy, like GTZAN's metal.00058 = rock.00016): a label issue too.
    listed = {r["track_id"] for r in truth if r["kind"] == "label_issue"}
    genres = {r["label"] for r in meta}  # a non-music clip has no true genre: not misfiled music
    misfiled = [dict(track_id=r["track_id"], kind="label_issue") for r in meta
                if r["true_genre"] in genres - {r["label"]} and r["track_id"] not in listed]
    assert misfiled  # the corpus holds such a copy
    truth += misfiled
    return dict(db=root / "g.duckdb", store=store, truth=truth, summary=summary)


def _family(kind: str) -> tuple[str, ...]:
    return DUPLICATE_KINDS if kind in DUPLICATE_KINDS else (kind,)


def test_the_planted_faults_are_the_known_list(planted):
    known = planted["store"].faults("planted", "known")
    assert sorted(zip(known.track_id, known.kind)) == sorted((r["track_id"], r["kind"]) for r in planted["truth"])
    assert "tracks on the dataset's list of known faults" in planted["summary"].line()
    assert listed_faults("folder", "/nowhere", ["a"]).empty and listed_faults("synth", "/nowhere", ["a"]).empty


def test_known_vs_detected_per_kind_matches_the_truth_file(planted):
    db = q.DbRef(planted["db"], q.db_version(planted["db"]))
    store, truth = planted["store"], planted["truth"]
    _, summary, reference = q.known_vs_detected(db, int(store.dataset("planted")["dataset_id"]))
    assert "planted" in reference
    summary = summary.set_index("kind")
    detected = store.faults("planted", "detected")
    flagged = {kind: set(detected.track_id[detected.kind == kind]) for kind in set(detected.kind)}
    planted_kinds = {r["kind"] for r in truth}
    assert set(summary.index) == planted_kinds  # every planted kind, nothing detection alone found (artists)
    for kind in planted_kinds:
        want = {r["track_id"] for r in truth if r["kind"] == kind}
        if kind not in FAULT_KINDS:  # planted, but no detector looks for it (versions): no recall, no miss
            row = summary.loc[kind]
            assert row.known == len(want) and not row.looked_for and np.isnan(row.recall)
            continue
        family_truth = {r["track_id"] for r in truth if r["kind"] in _family(kind)}
        family_flags = set().union(*(flagged.get(k, set()) for k in _family(kind)))
        # a new duplicate counts under the first of the two kinds it was detected as
        earlier = set().union(*(flagged.get(k, set()) for k in _family(kind)[:_family(kind).index(kind)]))
        found, new = len(want & family_flags), len(flagged.get(kind, set()) - family_truth - earlier)
        row = summary.loc[kind]
        assert (row.known, row.found, row.missed, row.new) == (len(want), found, len(want) - found, new), kind
        assert row.looked_for and row.recall == pytest.approx(found / len(want))
        assert (math.isnan(row.precision) if found + new == 0 else row.precision == pytest.approx(found / (found + new)))


def test_a_kind_no_detector_looks_for_is_not_a_miss():
    known = pd.DataFrame(dict(track_id=["a", "b", "c"], kind=["silence", "hum", "hum"], group_id=None))
    detected = pd.DataFrame(dict(track_id=["a", "d"], kind=["silence", "silence"], group_id=None))
    summary = comparison_summary(compare_faults(detected, known), by="kind").set_index("kind")
    assert list(summary.index) == ["silence", "hum"]  # FAULT_KINDS' order, unlisted kinds last
    assert (summary.loc["silence", "recall"], summary.loc["silence", "precision"]) == (1.0, 0.5)
    row = summary.loc["hum"]
    assert not row.looked_for and row.known == 2 and np.isnan(row.recall) and np.isnan(row.precision)


def test_the_faults_page_shows_known_vs_detected_kind_by_kind(monkeypatch, planted):
    at = open_app(monkeypatch, planted["db"]).switch_page("pages/faults.py").run()
    at.segmented_control(key="faults_view").set_value("Known vs detected").run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "recall" in d.value.columns)
    planted_counts = pd.Series([r["kind"] for r in planted["truth"]]).value_counts()
    assert dict(zip(table.kind, table.known)) == planted_counts.to_dict()
    assert {"fault", "found", "missed", "new", "precision", "note"} <= set(table.columns)
    assert "Damaged sound" in set(table.fault)
    assert any("planted" in c.value for c in at.caption)


def test_the_label_view_says_how_many_top_flags_are_expected_real(monkeypatch, planted):
    """Each flag's score is the evidence's chance that the label is wrong; the view sums them."""
    store = planted["store"]
    flags = store.faults("planted", "detected").query("kind == 'label_issue'")
    assert len(flags) and (flags.score > 0.9).all()
    at = open_app(monkeypatch, planted["db"]).switch_page("pages/faults.py").run()
    at.segmented_control(key="faults_view").set_value("Label issues").run()
    assert not at.exception, [e.value for e in at.exception]
    outlook = next(m.value for m in at.markdown if "expected real" in m.value)
    assert f"top {len(flags)}: ~{flags.score.sum():.1f} expected real" in outlook.replace("\\", "")  # markdown-escaped


def test_the_default_label_check_flags_every_misfiled_clip_and_little_else(planted):
    """No k-fold run: the quick check and the artists' other songs find every clip filed under
    the wrong genre (planted mislabels and the cross-genre copy), with few false flags."""
    misfiled = {r["track_id"] for r in planted["truth"] if r["kind"] == "label_issue"}
    flags = planted["store"].faults("planted", "detected").query("kind == 'label_issue'")
    assert len(misfiled) >= 3 and misfiled <= set(flags.track_id)
    assert len(misfiled) / len(flags) >= 0.6
