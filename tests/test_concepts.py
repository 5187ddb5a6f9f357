"""Concepts (TCAV): the math on synthetic activations with a planted concept direction, and
the whole analysis on the toy cnn run of the app fixture database."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from genre_core.analysis import tcav
from genre_core.analysis.tcav import TcavSettings, WindowPool

D, N_TRACKS, WINDOWS = 64, 120, 3
PLANTED_TRACKS = 30  # tracks 0..29 carry the planted concept


def _planted_world(seed: int):
    """Windows of N_TRACKS tracks in D dimensions; the first PLANTED_TRACKS are shifted along a
    unit direction `u`, and the head's genre-0 logit grows along `u` (genre 1's falls), with a
    ReLU layer that makes each window's gradient its own."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(D)
    u /= np.linalg.norm(u)
    owners = np.repeat(np.arange(N_TRACKS), WINDOWS)
    acts = rng.standard_normal((len(owners), D)).astype(np.float32)
    acts[owners < PLANTED_TRACKS] += 2.0 * u.astype(np.float32)
    hidden = torch.tensor(rng.standard_normal((8, D)), dtype=torch.float32)
    mix = torch.tensor(rng.standard_normal((2, 8)) * 0.2, dtype=torch.float32)
    direction = torch.tensor(u, dtype=torch.float32)

    def head(a: torch.Tensor) -> torch.Tensor:
        along = a @ direction  # (B,)
        return torch.stack([along, -along], dim=1) + torch.relu(a @ hidden.T) @ mix.T  # (B, 2)

    return acts, owners, head, u


def _planted_tests(seed: int, settings: TcavSettings) -> pd.DataFrame:
    acts, owners, head, _ = _planted_world(seed)
    pool, rng = WindowPool(acts, owners), np.random.default_rng(settings.seed)
    everyone = np.arange(N_TRACKS)
    # A null concept: tracks drawn like the random ones (the unplanted ones alone would be a
    # concept too: the absence of the planted one).
    null_tracks = np.random.default_rng(seed + 1000).choice(everyone, PLANTED_TRACKS, replace=False)
    concepts = {"planted": np.arange(PLANTED_TRACKS), "null": null_tracks}
    cavs = {name: tcav.concept_cavs(pool, tracks, everyone, settings, rng) for name, tracks in concepts.items()}
    nulls = {name: tcav.null_cavs(pool, tracks, everyone, settings, rng) for name, tracks in concepts.items()}
    inputs = acts[owners >= PLANTED_TRACKS]
    gradients = {genre: tcav.logit_gradients(head, inputs, np.full(len(inputs), k))
                 for k, genre in enumerate(["zero", "one"])}
    return tcav.significance(tcav.score_table(cavs, nulls, gradients), alpha=settings.alpha)


def _row(table: pd.DataFrame, concept: str, genre: str) -> pd.Series:
    return table[(table.concept == concept) & (table.genre == genre)].iloc[0]


def test_planted_concept_is_found_and_points_the_right_way():
    table = _planted_tests(0, TcavSettings(repeats=10, null_sets=20, tracks_per_set=20))
    toward, away = _row(table, "planted", "zero"), _row(table, "planted", "one")
    assert toward.significant and toward.direction == "toward" and toward.score > 0.9
    assert away.significant and away.direction == "away" and away.score < 0.1
    assert toward.ci_low <= toward.score <= toward.ci_high


def test_null_concept_passes_no_more_often_than_the_test_allows():
    # 8 worlds x 2 genres: a null concept passing in more than 2 of 16 tests at q < 0.05
    # would mean the test (or the correction) is too lenient; the planted one must pass in
    # most of them, or the test has no power.
    settings = TcavSettings(repeats=10, null_sets=10, tracks_per_set=20)
    tables = [_planted_tests(seed, settings) for seed in range(8)]
    null = [bool(_row(table, "null", genre).significant) for table in tables for genre in ("zero", "one")]
    planted = [bool(_row(table, "planted", genre).significant) for table in tables for genre in ("zero", "one")]
    assert sum(null) <= 2 and sum(planted) >= 12, (null, planted)


def test_cav_points_along_the_planted_direction():
    acts, owners, _, u = _planted_world(1)
    vector, offset, accuracy = tcav.fit_cav(acts[owners < PLANTED_TRACKS], acts[owners >= PLANTED_TRACKS])
    assert float(vector @ u) > 0.8  # cosine with the planted direction
    assert accuracy > 0.75 and np.isclose(np.linalg.norm(vector), 1.0)


def test_constant_scores_on_both_sides_give_p_one_or_zero():
    same = tcav._welch(np.ones(5), np.ones(5))
    apart = tcav._welch(np.ones(5), np.zeros(5))
    assert same == (0.0, 1.0) and apart[1] == 0.0 and apart[0] > 0


def test_settings_refuse_nonsense():
    with pytest.raises(ValueError, match="repeats"):
        TcavSettings(repeats=1)
    with pytest.raises(ValueError, match="alpha"):
        TcavSettings(alpha=1.5)


# ---------------------------------------------------------------- corpus side, on the planted world

def _planted_inputs(seed: int = 0):
    """ConceptInputs of the planted world: its tracks are the training tracks (genre by parity),
    then two misclassified test tracks: one carrying the concept, labelled "one" and called
    "zero" (the concept pushes it there), one without it, labelled "zero" and called "one"."""
    from genre_core.analysis.concepts import ConceptInputs, RunActivations

    acts, owners, head, u = _planted_world(seed)
    rng = np.random.default_rng(seed + 7)
    extra = rng.standard_normal((2 * WINDOWS, D)).astype(np.float32)
    extra[:WINDOWS] += 3.0 * u.astype(np.float32)
    run = RunActivations([f"t{i}" for i in range(N_TRACKS + 2)], np.r_[np.arange(N_TRACKS) % 2, 1, 0],
                         np.concatenate([acts, extra]),
                         np.r_[owners, np.repeat([N_TRACKS, N_TRACKS + 1], WINDOWS)], head)
    wrong = pd.DataFrame({"track_id": [f"t{N_TRACKS}", f"t{N_TRACKS + 1}"], "label": ["one", "zero"],
                          "predicted": ["zero", "one"]})
    null_tracks = np.random.default_rng(seed + 1000).choice(N_TRACKS, PLANTED_TRACKS, replace=False)
    pools = {"planted": np.arange(PLANTED_TRACKS), "null": null_tracks}
    return ConceptInputs(["zero", "one"], run, N_TRACKS, pools, wrong)


def test_concepts_on_inputs_find_the_planted_one_and_explain_the_errors():
    from genre_core.analysis.concepts import concept_tests, explain_misclassified, genre_concepts

    inputs = _planted_inputs()
    tests = concept_tests(inputs, TcavSettings(repeats=10, null_sets=20))
    per_genre = genre_concepts(tests.table)
    assert list(per_genre["zero"].concept) == ["planted"] and per_genre["zero"].direction[0] == "toward"
    why = explain_misclassified(inputs, tests).set_index("track_id")
    carrying, lacking = why.loc[f"t{N_TRACKS}"], why.loc[f"t{N_TRACKS + 1}"]
    assert carrying.pushes_to_predicted and carrying.derivative > 0 and carrying.presence > 0.9
    assert not lacking.pushes_to_predicted and lacking.derivative < 0


def test_stability_compares_scores_and_findings():
    from genre_core.analysis.concepts import concept_stability

    a = pd.DataFrame({"concept": ["x", "y"], "genre": ["g", "g"], "score": [0.9, 0.5], "derivative": [0.1, 0.2],
                      "significant": [True, False]})
    b = a.assign(score=[0.85, 0.75], derivative=[0.1, 0.15], significant=[True, True])
    result = concept_stability(a, b, tolerance=0.2)
    assert np.isclose(result.max_score_change, 0.25) and result.share_within == 0.5 and not result.stable
    assert np.isclose(result.max_derivative_change, 0.05)
    assert (result.significant_a, result.significant_b, result.significant_both) == (1, 2, 1)


def test_concept_pools_take_equal_top_and_bottom_quantiles():
    from genre_core.analysis.concepts import concept_pools

    values = pd.DataFrame({"track_id": [f"t{i}" for i in range(10)], "tempo": np.arange(10.0),
                           "flat": np.ones(10), "gaps": [np.nan] * 5 + list(range(5))})
    pools = concept_pools(values, [f"t{i}" for i in range(10)], quantile=0.2, names={"tempo": ("fast", "slow")})
    assert sorted(pools["fast"]) == [8, 9] and sorted(pools["slow"]) == [0, 1]
    assert "flat: high" not in pools  # a constant column is no concept
    assert "gaps: high" not in pools  # 5 known values: a fifth is one track, too few for a set


# ---------------------------------------------------------------- a real run: the toy cnn

@pytest.fixture(scope="module")
def toy_run(toy_store, tmp_path_factory):
    """A tiny cnn trained one epoch on a copy of the toy corpus (the shared store stays as built)."""
    from genre_core.store import open_store
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit
    from tests.helpers import writable_copy

    store = open_store(writable_copy(toy_store.path, tmp_path_factory.mktemp("concepts")))
    run = fit(store, TrainConfig.tiny_preset("toy", "cnn", epochs=1), progress=False)
    return store, run.run_id


def test_concepts_run_end_to_end_on_a_trained_cnn(toy_run):
    from genre_core import paths
    from genre_core.analysis.concepts import DESCRIPTORS, concept_tests, explain_misclassified, prepare_concepts
    from genre_core.features.cache import ShardCache
    from genre_core.train.inference import load_run

    store, run_id = toy_run
    loaded = load_run(store, run_id, "cpu")
    inputs = prepare_concepts(loaded, store.tracks("toy"), store.predictions(run_id),
                              ShardCache(paths.cache_dir(store.path)), progress=False)
    assert len(inputs.pools) == 2 * len(DESCRIPTORS)
    assert inputs.activations.acts.shape[1] == 2 * 32  # the tiny cnn's pooled mean+max of 32 channels
    table = concept_tests(inputs, TcavSettings(repeats=4, null_sets=4)).table
    assert len(table) == len(inputs.pools) * len(loaded.classes)
    assert table.p.between(0, 1).all() and (table.q >= table.p - 1e-12).all()
    explained = explain_misclassified(inputs, concept_tests(inputs, TcavSettings(repeats=4, null_sets=4)))
    assert set(explained.track_id) <= set(inputs.wrong.track_id)


def test_descriptors_know_the_toy_bands(toy_store):
    # Known answer: the toy genres are partials in low, mid and high bands; their spectral
    # centroid and zero-crossing rate must come out in that order.
    from genre_core import paths
    from genre_core.analysis.concepts import descriptor_table
    from genre_core.features.cache import ShardCache

    tracks = toy_store.tracks("toy")
    table = descriptor_table(tracks, ShardCache(paths.cache_dir(toy_store.path)), progress=False)
    by_genre = table.assign(label=list(tracks.label)).groupby("label").mean(numeric_only=True)
    assert by_genre.brightness["low"] < by_genre.brightness["mid"] < by_genre.brightness["high"]
    assert by_genre.noisiness["low"] < by_genre.noisiness["mid"] < by_genre.noisiness["high"]
    assert table.percussive_share.between(0, 1).all()


def test_gradients_at_the_embedding_are_one_vector_per_genre(toy_run):
    # Why concepts are taken at the head's input: one Linear after the embedding, the gradient
    # of a logit is the same for every window, so every TCAV score there is 0 or 1.
    from genre_core.analysis.concepts import _layer_functions
    from genre_core.train.inference import load_run

    store, run_id = toy_run
    model = load_run(store, run_id, "cpu").model
    rng = np.random.default_rng(0)
    for layer, constant in (("embedding", True), ("head_input", False)):
        to_layer, logits_of = _layer_functions(model, layer)
        with torch.no_grad():
            acts = to_layer(torch.tensor(np.abs(rng.standard_normal((8, 64))), dtype=torch.float32)).numpy()
        grads = tcav.logit_gradients(logits_of, acts, np.zeros(8, dtype=np.int64))
        assert np.allclose(grads, grads[0], atol=1e-6) == constant


def test_track_tags_give_fifty_probabilities_per_track(toy_store):
    from genre_core import paths
    from genre_core.analysis.concepts import track_tags
    from genre_core.features.cache import ShardCache

    tracks = toy_store.tracks("toy").head(3)
    table = track_tags(tracks, ShardCache(paths.cache_dir(toy_store.path)), progress=False)
    if table is None:
        pytest.skip("musicnn weights not installed")
    assert list(table.track_id) == list(tracks.track_id) and table.shape == (3, 51)
    assert table.drop(columns="track_id").stack().between(0, 1).all()


def test_the_embedding_pass_taps_the_same_activations_concepts_would_forward(toy_run):
    # analyze shares its embedding pass with concepts (HeadInputTap): the tapped rows must be
    # the head's input for exactly the windows concepts pick, and for the tracks asked for.
    from genre_core import paths
    from genre_core.analysis.concepts import HeadInputTap, spread_rows
    from genre_core.analysis.embeddings import track_embeddings
    from genre_core.features.cache import ShardCache
    from genre_core.features.windows import build_windows
    from genre_core.train.inference import load_run

    store, run_id = toy_run
    loaded, cache = load_run(store, run_id, "cpu"), ShardCache(paths.cache_dir(store.path))
    tracks = store.tracks("toy")
    tap = HeadInputTap()
    track_embeddings(loaded, tracks, cache, progress=False, tap=tap)
    windows = build_windows(tracks, loaded.classes, cache, sr=loaded.sr, window_s=loaded.window_s,
                            hop_s=loaded.config.eval_hop_s, progress=False)
    rows = spread_rows(windows.offsets, 3)
    expected = []
    hook = loaded.model.head.register_forward_pre_hook(lambda _m, args: expected.append(args[0]))
    with torch.no_grad():
        loaded.model(loaded.frontend(torch.from_numpy(windows.batch(rows)[0])))
    hook.remove()
    assert tap.activations is not None and len(tap.activations.acts) == len(rows)
    np.testing.assert_allclose(tap.activations.acts, expected[0].numpy(), rtol=1e-4, atol=1e-5)
    assert (np.bincount(tap.activations.owners) == np.minimum(3, np.diff(windows.offsets))).all()
    # A subset in another order keeps each track's own rows.
    wanted = list(tracks.track_id[::-2])
    part = tap.activations.subset(wanted)
    assert part.track_ids == wanted and (np.diff(part.owners) >= 0).all()
    first = tap.activations.track_ids.index(wanted[0])
    np.testing.assert_array_equal(part.acts[part.owners == 0], tap.activations.acts[tap.activations.owners == first])
