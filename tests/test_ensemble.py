"""Ensembles: calibrated member probabilities averaged on one shared test set, stored as a run."""

from __future__ import annotations

import numpy as np
import pytest

from genre_core.runs.ensemble import calibrated, ensemble, fit_temperature
from genre_core.store import open_store


@pytest.fixture()
def store(writable_app_db):
    return open_store(writable_app_db, create=False)


def test_temperature_scaling_undoes_overconfidence():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4000, 5)) * 1.5
    true = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(5, p=p) for p in true])
    overconfident = 3.0 * z  # log-probabilities up to a constant per row
    assert fit_temperature(overconfident, y) == pytest.approx(3.0, rel=0.1)
    np.testing.assert_allclose(calibrated(true, 1.0), true, atol=1e-6)


def test_ensemble_of_two_runs_averages_calibrated_probabilities(store, app_db):
    a, b = app_db["ten_runs"][:2]
    summary = ensemble(store, [a, b])
    run = store.run(summary.run_id)
    assert run["status"] == "complete" and run["split"] == store.run(a)["split"]
    mine = store.predictions(summary.run_id, "test").set_index("track_id")
    members = [store.predictions(r, "test").set_index("track_id").reindex(mine.index) for r in (a, b)]
    expected = np.mean([calibrated(np.stack(m.probs.to_numpy()), t)
                        for m, t in zip(members, summary.temperatures)], axis=0)
    np.testing.assert_allclose(np.stack(mine.probs.to_numpy()), expected, atol=1e-5)
    assert summary.accuracy == pytest.approx(float((mine.predicted == mine.label).mean()))
    assert [m for m, _, _ in summary.versus] == [a, b]
    assert all(0 <= p <= 1 for _, _, p in summary.versus)


def test_runs_on_different_test_sets_are_refused(store, app_db):
    with pytest.raises(ValueError, match="different datasets"):
        ensemble(store, [app_db["toy_run"], app_db["ten_runs"][0]])
    with pytest.raises(ValueError, match="two different runs"):
        ensemble(store, [app_db["toy_run"], app_db["toy_run"]])
