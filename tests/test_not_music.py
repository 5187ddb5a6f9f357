"""Clips that are not music (issue 27, item 4): on a synthetic corpus rendered here, every
planted non-music clip (babble, noise) is flagged, every fingerprint group is still found, the
planted versions are listed as known but not looked for, and the Faults page lists the flagged
clips with a player."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from genre_core.app import queries as q
from genre_core.datasets.ingest import ingest
from genre_core.datasets.synth.corpus import SynthConfig, generate_corpus
from genre_core.faults.detect import detect_faults
from genre_core.faults.kinds import DUPLICATE_KINDS
from genre_core.faults.outliers import outlier_scores
from genre_core.store import open_store
from tests.helpers import open_app


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """124 clips of 10 s (two not music, two version pairs), ingested, faults detected: the outlier score
    needs a corpus of some size to have a typical neighbourhood."""
    root = tmp_path_factory.mktemp("not_music")
    generate_corpus(root / "corpus", config=SynthConfig(per_genre=12, seconds=10.0, seed=3, extras=True), progress=False)
    store = open_store(root / "g.duckdb")
    ingest(store, "synth", root / "corpus", name="planted", progress=False)
    detect_faults(store, "planted", progress=False)
    with open(root / "corpus" / "faults_truth.csv", newline="", encoding="utf-8") as f:
        truth = list(csv.DictReader(f))
    return dict(db=root / "g.duckdb", store=store, detected=store.faults("planted", "detected"), truth=truth)


def test_every_planted_non_music_clip_is_flagged(planted):
    planted_ids = {r["track_id"] for r in planted["truth"] if r["kind"] == "not_music"}
    detected = planted["detected"]
    flagged = detected[detected.kind == "not_music"]
    assert len(planted_ids) == 2 and planted_ids <= set(flagged.track_id)
    assert len(flagged) <= 2 * len(planted_ids)  # a few music clips at most, not a genre's worth
    assert set(flagged.sort_values("score", ascending=False).track_id[:2]) == planted_ids  # the planted ones first


def test_every_fingerprint_group_is_still_found(planted):
    detected = planted["detected"]
    duplicates = detected[detected.kind.isin(DUPLICATE_KINDS)]
    group_of = dict(zip(duplicates.track_id, duplicates.group_id))
    planted_groups = {}
    for r in planted["truth"]:
        if r["kind"] in DUPLICATE_KINDS:
            planted_groups.setdefault(r["group_id"], set()).add(r["track_id"])
    assert planted_groups
    for members in planted_groups.values():
        assert members <= set(group_of) and len({group_of[t] for t in members}) == 1


def test_planted_versions_are_known_and_not_looked_for(planted):
    db = q.DbRef(planted["db"], q.db_version(planted["db"]))
    _, summary, _ = q.known_vs_detected(db, int(planted["store"].dataset("planted")["dataset_id"]))
    summary = summary.set_index("kind")
    assert summary.loc["version", "known"] == 4 and not summary.loc["version", "looked_for"]  # two pairs
    assert np.isnan(summary.loc["version", "recall"])
    row = summary.loc["not_music"]
    assert row.looked_for and (row.known, row.found, row.recall) == (2, 2, 1.0)


def test_a_clip_far_from_a_tight_crowd_scores_high_and_the_crowd_low():
    rng = np.random.default_rng(0)
    table = np.vstack([rng.normal(0, 1, size=(60, 4)), [[8.0, -8.0, 8.0, -8.0]], [[np.nan] * 4]])
    scores, nearest, _ = outlier_scores(table)
    assert scores[60] > 3 * np.nanmax(scores[:60]) and np.nanmax(scores[:60]) < 3.0
    assert np.isnan(scores[61]) and nearest[60] in range(60)


def test_the_faults_page_lists_non_music_clips_with_a_player(monkeypatch, planted):
    at = open_app(monkeypatch, planted["db"]).switch_page("pages/faults.py").run()
    at.segmented_control(key="faults_view").set_value("Not music").run()
    assert not at.exception, [e.value for e in at.exception]
    flagged = set(planted["detected"].track_id[planted["detected"].kind == "not_music"])
    assert any("track_id" in d.value and set(d.value.track_id) == flagged for d in at.dataframe)
    assert any("outlier score" in c.value for c in at.caption)
