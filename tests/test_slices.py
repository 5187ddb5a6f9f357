"""Failure slices: the false discovery rate step on hand-made numbers, a planted failing slice
found on top, no slice passing on errors that ignore every attribute (over seeds), terciles
whose words are true, and the table through the store and its migration."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from genre_core.analysis.descriptors import MAJOR_PROFILE, MINOR_PROFILE, key_mode
from genre_core.analysis.slice_attributes import tag_means, tercile_words, worst_fault
from genre_core.analysis.slice_words import rule_sentence, slice_sentence
from genre_core.analysis.slices import COLUMNS, find_slices, significant_slices, stored_rows
from genre_core.metrics.multiple_testing import benjamini_hochberg, fisher_greater
from genre_core.store import open_store


def test_benjamini_hochberg_on_hand_made_p_values():
    # sorted: 0.005, 0.01, 0.03, 0.04 (m = 4) -> 0.02, 0.02, 0.04, 0.04 after the step-up minimum
    q = benjamini_hochberg([0.01, 0.04, 0.03, 0.005])
    assert q == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # a large p early in the ranking is pulled down by a smaller scaled one after it
    assert benjamini_hochberg([0.04, 0.041, 0.9]) == pytest.approx([0.0615, 0.0615, 0.9])
    assert benjamini_hochberg([0.5, 0.9]) == pytest.approx([0.9, 0.9]) and len(benjamini_hochberg([])) == 0


def test_benjamini_hochberg_matches_scipy_and_leaves_untested_out():
    p = np.random.default_rng(3).uniform(size=200) ** 3
    assert benjamini_hochberg(p) == pytest.approx(stats.false_discovery_control(p, method="bh"))
    with_gaps = benjamini_hochberg([0.01, np.nan, 0.02])
    assert np.isnan(with_gaps[1]) and with_gaps[[0, 2]] == pytest.approx([0.02, 0.02])  # m = 2, not 3


@pytest.mark.parametrize("table", [(4, 4, 13, 49), (2, 5, 10, 60), (0, 3, 5, 20), (7, 7, 7, 30)])
def test_fisher_greater_is_scipys_one_sided_fisher_exact(table):
    errors, n, total_errors, total = table
    expected = stats.fisher_exact([[errors, n - errors], [total_errors - errors, total - total_errors - n + errors]],
                                  alternative="greater").pvalue
    assert fisher_greater(errors, n, total_errors=total_errors, total=total) == pytest.approx(expected)


def _corpus(seed: int, n: int = 240, error_rate: float = 0.25) -> tuple[pd.Series, pd.DataFrame]:
    """Test tracks with attributes (10 genres of 4 artists each, 3 tercile attributes, a mode)
    and errors drawn independently of all of them."""
    rng = np.random.default_rng(seed)
    ids = pd.Index([f"t{i:03d}" for i in range(n)], name="track_id")
    genre = rng.integers(10, size=n)
    attributes = pd.DataFrame({
        "genre": [f"genre g{g}" for g in genre],
        "artist": [f"by artist {g}-{a}" for g, a in zip(genre, rng.integers(4, size=n))],
        "key mode": rng.choice(["in a major key", "in a minor key"], size=n),
    }, index=ids)
    for name in ("tempo", "loudness", "brightness"):
        attributes[name] = tercile_words(pd.Series(rng.normal(size=n), index=ids), name=name,
                                         number="{:.2f}".format, decimals=2)
    return pd.Series(rng.random(n) < error_rate, index=ids), attributes


def _planted_artist(attributes: pd.DataFrame) -> pd.Series:
    """The tracks of the corpus' busiest artist (12 of 240 with seed 0), to be made all wrong."""
    return attributes["artist"] == attributes["artist"].value_counts().index[0]


def test_a_planted_failing_artist_is_found_on_top():
    wrong, attributes = _corpus(0)
    planted = _planted_artist(attributes)
    slices = find_slices(wrong | planted, attributes)
    top = slices.iloc[0]
    assert top.attribute_values == [attributes["artist"][planted].iloc[0]] and top.significant and top.q_value < 0.05
    assert top.errors == top.n == planted.sum() and set(top.track_ids) == set(planted[planted].index)
    assert list(slices.columns) == COLUMNS and list(slices["rank"]) == list(range(1, len(slices) + 1))
    # two families, single values and pairs, each counted and held to half of alpha
    family = slices.attributes.map(len)
    assert (slices.n_tested == family.map(family.value_counts())).all() and (slices.alpha == 0.025).all()
    assert top.run_accuracy == pytest.approx(1 - (wrong | planted).mean())


def test_a_planted_slow_genre_is_found_as_a_pair():
    """"slow blues is called jazz": the slow tracks of one genre fail, its others do not."""
    wrong, attributes = _corpus(1, n=400, error_rate=0.15)
    slow_g2 = (attributes["genre"] == "genre g2") & attributes["tempo"].str.startswith("tempo under")
    slices = find_slices(wrong | slow_g2, attributes)
    found = slices[slices.significant]
    assert found.iloc[0].attribute_values == ["genre g2", attributes["tempo"][slow_g2].iloc[0]]
    assert set(found.iloc[0].track_ids) == set(slow_g2[slow_g2].index)


def test_no_planted_failure_passes_no_more_often_than_alpha_allows():
    """Errors independent of every attribute: a slice passing is a false discovery, and BH
    under the global null bounds the chance of any at alpha per family, alpha / 2 + alpha / 2
    in all. 200 seeds (7 s): at most 16 with a pass (P(>= 17 of 200 | 5%) = 1.3%; measured 3)."""
    passing = [find_slices(*_corpus(seed)).significant.any() for seed in range(200)]
    assert sum(passing) <= 16, sum(passing)


def test_slices_of_identical_tracks_are_tested_once_under_their_first_name():
    ids = pd.Index([f"t{i}" for i in range(12)], name="track_id")
    attributes = pd.DataFrame({"genre": ["genre disco"] * 4 + ["genre pop"] * 8,
                               "artist": ["by Mirrorball"] * 4 + ["by A"] * 4 + ["by B"] * 4}, index=ids)
    slices = find_slices(pd.Series([True] * 4 + [False] * 8, index=ids), attributes)
    disco = slices.iloc[0]
    assert disco.description == "genre disco" and list(disco.same_tracks_as) == ["by Mirrorball"]
    assert not (slices.description == "by Mirrorball").any() and disco.track_ids == ["t0", "t1", "t2", "t3"]


def test_pairs_are_capped_by_size_and_the_cap_is_counted():
    wrong, attributes = _corpus(2)
    every = find_slices(wrong, attributes)
    capped = find_slices(wrong, attributes, max_pairs=5)
    singles = int((every.attributes.map(len) == 1).sum())
    pairs = capped[capped.attributes.map(len) == 2]
    assert len(pairs) == 5 and (pairs.n_tested == 5).all() and (capped[capped.attributes.map(len) == 1].n_tested == singles).all()
    assert capped.n_pairs_left_out.iloc[0] == len(every) - singles - 5 and every.n_pairs_left_out.iloc[0] == 0
    smallest_kept = capped[capped.attributes.map(len) == 2].n.min()
    assert (every[every.attributes.map(len) == 2].n.nlargest(5) >= smallest_kept).all()


def test_a_slice_needs_min_tracks_and_a_rest():
    ids = pd.Index([f"t{i}" for i in range(6)], name="track_id")
    attributes = pd.DataFrame({"genre": ["genre a"] * 2 + ["genre b"] * 4, "all": ["same"] * 6}, index=ids)
    slices = find_slices(pd.Series([True, True, False, False, False, False], index=ids), attributes)
    assert list(slices.description) == ["genre b"]  # 2 tracks: too few; every track: no rest


def test_tercile_words_are_true_of_the_tracks_they_name():
    values = pd.Series([60.4, 72, 88, 95, 101, 118, 120, 133, 150, np.nan], index=list("abcdefghij"))
    words = tercile_words(values, name="tempo", number="{:.0f}".format, unit=" bpm", decimals=0)
    low, high = np.round(np.nanquantile(values, [1 / 3, 2 / 3]))  # 93 and 119 bpm
    assert pd.isna(words["j"]) and words.nunique() == 3
    for value, said in zip(values[:-1], words[:-1]):
        if value < low:
            assert said == f"tempo under {low:.0f} bpm"
        elif value < high:
            assert said == f"tempo {low:.0f}–{high:.0f} bpm"
        else:
            assert said == f"tempo {high:.0f} bpm or more"
    same = tercile_words(pd.Series([30.0] * 4), name="duration", number="{:.1f}".format, unit=" s", decimals=1)
    assert set(same) == {"duration 30.0 s"}


def test_key_mode_of_the_key_profiles_and_of_silence():
    assert key_mode(np.roll(MAJOR_PROFILE, 7)) == "major" and key_mode(np.roll(MINOR_PROFILE, 2)) == "minor"
    assert key_mode(np.zeros(12)) is None


def test_tag_means_and_the_worst_fault_per_track():
    names = ["guitar", "male vocalists", "female vocalists", "rock"]
    rows = pd.DataFrame({"track_id": ["a"], "tag_names": [names], "n_frames": [2],
                         "values": [[0.2, 0.1, 0.7, 0.0, 0.4, 0.3, 0.1, 0.0]]})
    means = tag_means(rows)
    assert means.loc["a", "guitar"] == pytest.approx(0.3) and means.loc["a", "vocals"] == pytest.approx(0.4)
    assert np.isnan(means.loc["a", "acoustic"]) and tag_means(None).empty
    faults = pd.DataFrame({"track_id": ["a", "a", "b"], "kind": ["artist_repeat", "label_issue", "distortion"]})
    assert list(worst_fault(faults, ["a", "b", "c"])) == ["flagged: label issue", "flagged: distortion",
                                                          "no fault flagged"]


def test_the_sentences_state_the_test_and_the_numbers():
    wrong, attributes = _corpus(0)
    planted = _planted_artist(attributes)
    slices = find_slices(wrong | planted, attributes)
    rule = rule_sentence(slices)
    assert "one-sided Fisher exact test" in rule and "Benjamini–Hochberg" in rule
    family = slices.attributes.map(len)
    assert f"tested: {(family == 1).sum()} single values and {(family == 2).sum()} pairs" in rule
    assert "2.5%" in rule and "5% in all" in rule
    top = slice_sentence(slices.iloc[0])
    assert top.startswith(f"0 of {planted.sum()} tracks right (0%)") and "significant at 2.5%" in top


def test_slices_round_trip_through_the_store(tmp_path):
    store = open_store(tmp_path / "s.duckdb")
    wrong, attributes = _corpus(0)
    slices = find_slices(wrong | _planted_artist(attributes), attributes)
    store.replace_run_rows("r1", {"failure_slices": stored_rows(slices, keep_others=10)})
    back = store.failure_slices("r1")
    assert len(back) == int(slices.significant.sum()) + 10 and list(back.columns) == COLUMNS
    first, original = back.iloc[0], slices.iloc[0]
    assert list(first.track_ids) == original.track_ids and list(first.attribute_values) == original.attribute_values
    assert first.p_value == pytest.approx(original.p_value) and bool(first.significant)
    assert list(significant_slices(store, "r1").description) == list(slices[slices.significant].description)
    store.replace_run_rows("r1", {"failure_slices": stored_rows(slices, keep_others=0)})  # analyze again: replaced
    assert len(store.failure_slices("r1")) == int(slices.significant.sum())
    store.delete_run("r1")
    assert store.failure_slices("r1").empty


def test_a_version_2_database_gains_the_failure_slices_table(tmp_path):
    from genre_core.store import SCHEMA_VERSION

    path = tmp_path / "v2.duckdb"
    open_store(path).save_dataset("d", "folder", str(tmp_path), genres=["rock"], tracks=[])
    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE failure_slices")
        con.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    open_store(path)
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        assert con.execute("SELECT count(*) FROM failure_slices").fetchone()[0] == 0
        assert con.execute("SELECT name FROM datasets").fetchone()[0] == "d"


def test_the_training_side_is_the_runs_split_recomputed_or_what_was_not_predicted(toy_store):
    from genre_core.analysis.slices import training_side
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import choose_split

    tracks = toy_store.tracks("toy")
    config = TrainConfig.tiny_preset("toy", "logreg", split="random", seed=3)
    split = choose_split(config, tracks)
    predictions = pd.DataFrame({"track_id": [*split.val, *split.test],
                                "split": ["val"] * len(split.val) + ["test"] * len(split.test)})
    assert training_side({"config": config.to_dict()}, predictions, tracks) == set(split.train)
    # a config that cannot give the split back (imported, pooled runs), or gives back other test
    # tracks than the stored ones (the dataset changed since): every track it did not predict
    assert training_side({"config": {"no_model": "imported"}}, predictions, tracks) == set(split.train)
    partial = predictions[predictions.track_id != split.test[0]]
    assert training_side({"config": config.to_dict()}, partial, tracks) == {*split.train, split.test[0]}


def test_an_attribute_known_for_some_tracks_is_tested_among_those():
    """musicnn tags exist for explained tracks only: a tag slice is compared with the other
    explained tracks, and says so."""
    wrong, attributes = _corpus(4)
    explained = attributes.index[:90]
    tags = pd.Series(np.random.default_rng(4).random(len(explained)), index=explained)
    attributes["musicnn guitar"] = tercile_words(tags.reindex(attributes.index), name="musicnn 'guitar' score",
                                                 number="{:.2f}".format, decimals=2)
    slices = find_slices(wrong, attributes)
    tagged = slices[slices.attributes.map(lambda a: "musicnn guitar" in a)]
    assert len(tagged) and (tagged.tested_among <= 90).all() and (tagged.run_tracks == 240).all()
    assert all(set(ids) <= set(explained) for ids in tagged.track_ids)
    alone = tagged[tagged.attributes.map(len) == 1]
    assert len(alone) == 3 and (alone.tested_among == 90).all()
    assert "(tested among the 90 tracks where it is known)" in slice_sentence(alone.iloc[0])
