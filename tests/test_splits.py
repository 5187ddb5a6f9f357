from collections import Counter

import numpy as np
import pytest
from torchaudio.datasets import gtzan

from genre_core.datasets import DatasetError
from genre_core.datasets.splits import (
    artist_split,
    fault_filtered_split,
    kfold_splits,
    official_split,
    random_split,
)

GENRES = ["blues", "jazz", "metal", "rock", "pop"]
IDS = [f"{GENRES[i % 5]}.{i:05d}" for i in range(200)]
LABELS = [GENRES[i % 5] for i in range(200)]
ARTISTS = [f"artist{i % 5}-{(i // 5) % 8}" for i in range(200)]  # 8 artists per genre


def _sides(split):
    return [set(split.train), set(split.val), set(split.test)]


def _assert_partition(split, ids=IDS):
    train, val, test = _sides(split)
    assert not (train & val or train & test or val & test)
    assert train | val | test == set(ids)


def test_random_split_is_a_stratified_partition():
    split = random_split(IDS, LABELS, val=0.15, test=0.2, seed=3)
    _assert_partition(split)
    assert len(split.test) == 40
    per_genre = Counter(t.split(".")[0] for t in split.test)
    assert set(per_genre.values()) == {8}  # 20% of each genre's 40 tracks


def test_splits_are_deterministic_under_a_seed_and_change_with_it():
    assert random_split(IDS, LABELS, seed=1) == random_split(IDS, LABELS, seed=1)
    assert random_split(IDS, LABELS, seed=1).test != random_split(IDS, LABELS, seed=2).test
    assert artist_split(IDS, LABELS, ARTISTS, seed=4) == artist_split(IDS, LABELS, ARTISTS, seed=4)


def test_artist_split_never_puts_an_artist_on_two_sides():
    split = artist_split(IDS, LABELS, ARTISTS, seed=0)
    _assert_partition(split)
    artist_of = dict(zip(IDS, ARTISTS))
    sides = [{artist_of[t] for t in side} for side in _sides(split)]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert 0.1 < len(split.test) / len(IDS) < 0.3
    assert len({t.split(".")[0] for t in split.test}) == 5  # every genre is tested


def test_artist_split_treats_unknown_artists_as_singletons():
    artists = [a if i % 3 else None for i, a in enumerate(ARTISTS)]
    _assert_partition(artist_split(IDS, LABELS, artists, seed=0))


def test_kfold_tests_every_track_exactly_once():
    folds = kfold_splits(IDS, LABELS, k=5, seed=0)
    assert len(folds) == 5
    tested = Counter(t for f in folds for t in f.test)
    assert set(tested) == set(IDS) and set(tested.values()) == {1}
    for fold in folds:
        _assert_partition(fold)


def test_fault_filtered_split_has_the_published_sizes():
    all_ids = gtzan.filtered_train + gtzan.filtered_valid + gtzan.filtered_test
    split = fault_filtered_split(all_ids + ["blues.00099-not-in-lists"])
    assert (len(split.train), len(split.val), len(split.test)) == (443, 197, 290)
    split.check_disjoint()


def test_fault_filtered_split_rejects_non_gtzan_ids():
    with pytest.raises(DatasetError, match="GTZAN track ids"):
        fault_filtered_split(["000002", "000005"])


def test_official_split_follows_the_corpus():
    split = official_split(["a", "b", "c", "d"], ["train", "test", "validation", None])
    assert (split.train, split.val, split.test) == (("a",), ("c",), ("b",))
    with pytest.raises(DatasetError, match="no official split"):
        official_split(["a"], [None])


def test_side_of_maps_every_track():
    split = random_split(IDS, LABELS, seed=0)
    sides = split.side_of()
    assert len(sides) == 200 and set(sides.values()) == {"train", "val", "test"}
    assert np.all([sides[t] == "test" for t in split.test])
