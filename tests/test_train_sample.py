"""train --sample N: a seeded, genre-stratified sample of the dataset (whole artists where
known), split inside the sample; analyze of such a run still covers every track."""

from __future__ import annotations

import numpy as np
import pytest

from genre_core.analysis.analyze import analyze
from genre_core.datasets.base import DatasetError
from genre_core.datasets.splits import stratified_sample
from genre_core.train.config import TrainConfig
from genre_core.train.fit import fit, prepare
from training.cli import main

pytestmark = pytest.mark.usefixtures("scratch_cache_dir")


def _corpus(per_genre: dict[str, int], tracks_per_artist: int | None = None):
    ids, labels, artists = [], [], []
    for genre, count in per_genre.items():
        for i in range(count):
            ids.append(f"{genre}.{i:03d}")
            labels.append(genre)
            artists.append(f"{genre}-artist{i // tracks_per_artist}" if tracks_per_artist else None)
    return ids, labels, artists


def test_a_sample_keeps_each_genres_share_and_exactly_n_tracks():
    ids, labels, artists = _corpus({"rock": 60, "jazz": 30, "blues": 10})
    chosen = stratified_sample(ids, labels, artists, 20, seed=0)
    genres = [g.split(".")[0] for g in chosen]
    assert len(chosen) == len(set(chosen)) == 20
    assert {g: genres.count(g) for g in set(genres)} == {"rock": 11, "jazz": 6, "blues": 3}
    assert list(chosen) == [t for t in ids if t in set(chosen)]  # the dataset's order, not the draw's


def test_a_small_genre_keeps_two_tracks_so_it_stays_a_class_of_the_run():
    ids, labels, artists = _corpus({"rock": 300, "jazz": 300, "blues": 3})
    chosen = stratified_sample(ids, labels, artists, 30, seed=0)
    assert sum(c.startswith("blues") for c in chosen) == 2 and len(chosen) == 30


def test_a_sample_is_seeded():
    ids, labels, artists = _corpus({"rock": 50, "jazz": 50})
    assert stratified_sample(ids, labels, artists, 20, seed=3) == stratified_sample(ids, labels, artists, 20, seed=3)
    assert stratified_sample(ids, labels, artists, 20, seed=3) != stratified_sample(ids, labels, artists, 20, seed=4)


def test_a_sample_takes_whole_artists_where_artists_are_known():
    ids, labels, artists = _corpus({"rock": 40, "jazz": 40}, tracks_per_artist=4)
    artist_of = dict(zip(ids, artists))
    for seed in range(5):
        chosen = stratified_sample(ids, labels, artists, 24, seed=seed)
        taken = [artist_of[t] for t in chosen]
        counts = {a: taken.count(a) for a in set(taken)}
        # 12 tracks per genre = 3 whole artists of 4 each: no artist cut in two
        assert sorted(counts.values()) == [4] * 6, counts


def test_an_artist_split_inside_a_sample_keeps_every_artist_on_one_side():
    from genre_core.datasets.splits import artist_split

    ids, labels, artists = _corpus({"rock": 60, "jazz": 60, "blues": 60}, tracks_per_artist=3)
    chosen = set(stratified_sample(ids, labels, artists, 90, seed=1))
    kept = [i for i, t in enumerate(ids) if t in chosen]
    split = artist_split([ids[i] for i in kept], [labels[i] for i in kept], [artists[i] for i in kept], seed=1)
    artist_of = dict(zip(ids, artists))
    sides = [{artist_of[t] for t in getattr(split, side)} for side in ("train", "val", "test")]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert set(split.train) | set(split.val) | set(split.test) == chosen


@pytest.mark.parametrize("n", [5, 102])
def test_a_sample_outside_two_per_genre_to_every_track_is_refused_naming_the_dataset(n):
    ids, labels, artists = _corpus({"rock": 60, "jazz": 30, "blues": 11})
    with pytest.raises(DatasetError, match=rf"dataset 'fma' cannot train on a sample of {n} tracks: "
                                           r"it has 101 usable tracks in 3 genres.*--sample 6\.\.101"):
        stratified_sample(ids, labels, artists, n, seed=0, dataset="fma")


def test_the_split_is_made_inside_the_sample(toy_store):
    data = prepare(toy_store, TrainConfig("toy", "cnn", seed=1, sample=18))
    sides = [set(getattr(data.split, side)) for side in ("train", "val", "test")]
    sample = set().union(*sides)
    assert len(sample) == 18 and sum(map(len, sides)) == 18  # disjoint sides, all inside the sample
    assert sample < set(toy_store.tracks("toy").track_id)
    assert data.classes == sorted(toy_store.tracks("toy").label.unique())  # 6 of each of the toy's 3 genres
    assert all((data.tracks[side].label.value_counts() > 0).all() for side in ("train", "val", "test"))


def test_bad_sample_sizes_are_one_line_and_store_no_run(toy_store, capsys):
    runs_before = len(toy_store.runs())
    for n, reason in (("5", "cannot train on a sample of 5 tracks"), ("25", "a sample of 25 tracks"),
                      ("6", "the run's --sample 6 is that set")):
        code = main(["train", "--db", str(toy_store.path), "--dataset", "toy", "--model", "cnn", "--tiny",
                     "--sample", n, "-q"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and "'toy'" in err and reason in err, err
    assert len(toy_store.runs()) == runs_before


@pytest.fixture(scope="module")
def sampled_run(toy_store):
    config = TrainConfig.tiny_preset("toy", "cnn", epochs=1, batch_size=8, seed=1, sample=18)
    run_id = fit(toy_store, config, progress=False).run_id
    analyze(toy_store, run_id, progress=False, device="cpu", taggrams=False)
    return run_id


def test_a_run_on_a_sample_is_analysed_over_every_track(toy_store, sampled_run):
    every = set(toy_store.tracks("toy").track_id)
    split = prepare(toy_store, TrainConfig.from_dict(toy_store.run(sampled_run)["config"])).split
    sample = set(split.train) | set(split.val) | set(split.test)
    predicted = set(toy_store.predictions(sampled_run).track_id)
    assert len(sample) == 18 and predicted == set(split.val) | set(split.test)  # scored inside its sample
    rows = {t: toy_store.query(f"SELECT * FROM {t} WHERE run_id = ?", [sampled_run])
            for t in ("embeddings", "projections", "neighbours")}
    assert set(rows["embeddings"].track_id) == every  # the 6 tracks outside the sample are embedded too
    assert rows["projections"].groupby("method").track_id.apply(set).to_dict() == {"tsne": every, "umap": every}
    unseen = every - sample
    near = rows["neighbours"]
    assert set(near.track_id) == every and near.neighbour_id.isin(unseen).any()  # unseen tracks are neighbours
    assert np.isfinite(np.stack(rows["embeddings"].vector.to_numpy())).all()


def test_the_leaderboard_says_a_run_was_trained_on_a_sample(toy_store, sampled_run):
    from genre_core.app.queries.runs import trained_with

    assert trained_with(toy_store.run(sampled_run)["config"]) == "sample of 18 tracks"
    assert trained_with({"sample": 5000, "label_share": 0.1}) == "sample of 5,000 tracks; 10% of the labels"
