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
    nulls = tcav.null_cavs(pool, everyone, PLANTED_TRACKS, settings, rng)
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
