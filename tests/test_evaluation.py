"""Evaluation metrics against scikit-learn, plus hand-computed aggregation and McNemar cases."""

from __future__ import annotations

import time
import tracemalloc
from math import comb

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from genre_core.metrics import evaluation as ev

LABELS = ["blues", "classical", "country", "disco", "hiphop"]


@pytest.fixture
def scored():
    """60 items, 5 classes; class 4 ("hiphop") has support but is never predicted."""
    rng = np.random.default_rng(7)
    y_true = rng.integers(0, 5, size=60)
    probs = rng.dirichlet(np.ones(5), size=60)
    probs[:, 4] *= 0.01  # never the argmax, still ranked for top-2 sometimes
    probs /= probs.sum(axis=1, keepdims=True)
    return y_true, probs


def test_report_matches_sklearn(scored):
    y_true, probs = scored
    y_pred = probs.argmax(axis=1)
    assert 4 in y_true and 4 not in y_pred
    report = ev.classification_report(y_true, probs, LABELS)
    p, r, f, s = skm.precision_recall_fscore_support(
        y_true, y_pred, labels=range(5), zero_division=0
    )
    assert report.accuracy == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert report.macro_f1 == pytest.approx(
        skm.f1_score(y_true, y_pred, average="macro", zero_division=0)
    )
    assert report.top2 == pytest.approx(
        skm.top_k_accuracy_score(y_true, probs, k=2, labels=range(5))
    )
    np.testing.assert_allclose(report.precision, p)
    np.testing.assert_allclose(report.recall, r)
    np.testing.assert_allclose(report.f1, f)
    np.testing.assert_array_equal(report.support, s)
    np.testing.assert_array_equal(report.confusion, skm.confusion_matrix(y_true, y_pred))
    assert report.precision[4] == 0 and report.f1[4] == 0


def test_macro_f1_skips_a_class_absent_from_truth_and_predictions():
    y_true = np.array([0, 0, 1, 1, 2])
    probs = np.eye(4)[[0, 1, 1, 1, 2]] + 0.01  # class 3 never occurs nor is predicted
    report = ev.classification_report(y_true, probs, ["a", "b", "c", "d"])
    expected = skm.f1_score(y_true, probs.argmax(1), average="macro", zero_division=0)
    assert report.macro_f1 == pytest.approx(expected)
    assert report.support[3] == 0


def test_confusion_rows_are_true():
    cm = ev.confusion(np.array([0, 0, 1]), np.array([1, 1, 1]), 3)
    assert cm[0, 1] == 2 and cm[1, 1] == 1 and cm.sum() == 3 and cm.shape == (3, 3)
    with pytest.raises(ValueError):
        ev.confusion(np.array([3]), np.array([0]), 3)


def test_aggregate_windows_uses_mean_log_probs():
    # Track "a": the mean of probs picks class 0 (0.340 vs 0.337) on the strength of one
    # confident window; the geometric mean (mean of log-probs) picks class 1 (0.136 vs 0.073),
    # which two of the three windows favour.
    probs = np.array([
        [0.98, 0.01, 0.01],  # "a"
        [0.02, 0.89, 0.09],  # "b"
        [0.02, 0.50, 0.48],  # "a"
        [0.02, 0.50, 0.48],  # "a"
        [0.10, 0.10, 0.80],  # "b"
    ])
    ids = ["a", "b", "a", "a", "b"]
    out_ids, agg = ev.aggregate_windows(ids, np.log(probs))
    assert out_ids == ["a", "b"]  # first-appearance order
    rows_a = np.log(probs[[0, 2, 3]])
    mean_a = rows_a.mean(axis=0)
    # Renormalised: a per-row shift of the mean log-probs, summing to 1 in probability.
    np.testing.assert_allclose(agg[0] - agg[0, 0], mean_a - mean_a[0])
    np.testing.assert_allclose(np.exp(agg).sum(axis=1), 1.0)
    assert probs[[0, 2, 3]].mean(axis=0).argmax() == 0  # mean-of-probs: class 0
    assert agg[0].argmax() == 1  # mean-of-log-probs: class 1


def test_aggregate_windows_order_and_shape_checks():
    ids = ["z", "y", "z"]
    out_ids, agg = ev.aggregate_windows(ids, np.log(np.full((3, 2), 0.5)))
    assert out_ids == ["z", "y"] and agg.shape == (2, 2)
    with pytest.raises(ValueError):
        ev.aggregate_windows(ids, np.zeros((2, 2)))


def test_bootstrap_ci_contains_estimate_narrows_and_is_seeded():
    rng = np.random.default_rng(0)

    def sample(n):
        y = rng.integers(0, 4, size=n)
        pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, 4, size=n))
        return y, pred

    y_small, p_small = sample(100)
    y_big, p_big = sample(2000)
    lo_s, hi_s = ev.bootstrap_ci(y_small, p_small, ev.batch_accuracy, seed=3)
    lo_b, hi_b = ev.bootstrap_ci(y_big, p_big, ev.batch_accuracy, seed=3)
    assert lo_s <= np.mean(y_small == p_small) <= hi_s
    assert lo_b <= np.mean(y_big == p_big) <= hi_b
    assert hi_b - lo_b < (hi_s - lo_s) / 2  # ~1/sqrt(20) as wide
    assert ev.bootstrap_ci(y_small, p_small, ev.batch_accuracy, seed=3) == (lo_s, hi_s)
    assert ev.bootstrap_ci(y_small, p_small, ev.batch_accuracy, seed=4) != (lo_s, hi_s)


def test_bootstrap_vectorised_metrics_match_scalar_metrics(scored):
    y_true, probs = scored
    y_pred = probs.argmax(axis=1)
    pairs = [
        (ev.batch_macro_f1(5), y_pred,
         lambda y, p: skm.f1_score(y, p, average="macro", zero_division=0)),
        (ev.batch_top_k(2), probs,
         lambda y, s: skm.top_k_accuracy_score(y, s, k=2, labels=range(5))),
    ]
    for batched, y_x, scalar in pairs:
        fast = ev.bootstrap_ci(y_true, y_x, batched, n_boot=50, seed=1)
        slow = ev.bootstrap_ci(y_true, y_x, scalar, n_boot=50, seed=1, vectorized=False)
        np.testing.assert_allclose(fast, slow)


def _one_draw_bootstrap(y, y_x, fn, n_boot, seed, alpha=0.05):
    """The bootstrap as it was: every resample drawn at once as one (n_boot, N) index."""
    idx = np.random.default_rng(seed).integers(0, len(y), size=(n_boot, len(y)))
    values = np.asarray(fn(y[idx], y_x[idx]), dtype=np.float64)
    return tuple(float(v) for v in np.quantile(values, [alpha / 2, 1 - alpha / 2]))


def test_bootstrap_chunks_draw_the_resamples_of_one_draw(scored):
    y_true, probs = scored
    y_pred = probs.argmax(axis=1)
    for fn, y_x in ((ev.batch_accuracy, y_pred), (ev.batch_macro_f1(5), y_pred),
                    (ev.batch_top_k(2), probs)):
        whole = _one_draw_bootstrap(y_true, y_x, fn, n_boot=200, seed=5)
        for chunk in (None, 1, 7, 200, 10_000):
            assert ev.bootstrap_ci(y_true, y_x, fn, n_boot=200, seed=5, chunk=chunk) == whole


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_bootstrap_memory_is_bounded_by_the_chunk_not_n_boot():
    rng = np.random.default_rng(2)
    n = 50_000
    y, pred = rng.integers(0, 10, size=n), rng.integers(0, 10, size=n)
    few, many = (_peak_bytes(lambda: ev.bootstrap_ci(y, pred, ev.batch_accuracy, n_boot=r))
                 for r in (100, 1000))
    assert many < 1.2 * few, f"{few / 1e6:.0f} MB at 100 resamples, {many / 1e6:.0f} MB at 1000"
    assert many < 1000 * n * 8 / 3  # one (1000, N) int64 index alone was 400 MB


def test_bootstrap_accuracy_is_fast():
    rng = np.random.default_rng(1)
    y, pred = rng.integers(0, 10, size=1000), rng.integers(0, 10, size=1000)
    start = time.perf_counter()
    ev.bootstrap_ci(y, pred, ev.batch_accuracy, n_boot=1000)
    assert time.perf_counter() - start < 0.5  # typically ~20 ms; generous for a shared CI box


def test_metric_rows_names_and_cis(scored):
    y_true, probs = scored
    report = ev.classification_report(y_true, probs, LABELS)
    rows = ev.metric_rows(report, y_true, probs, split="test", level="track", seed=0, n_boot=200)
    by_name = {r["name"]: r for r in rows}
    assert len(rows) == 3 + 3 * len(LABELS)
    for name in ("accuracy", "macro_f1", "top2"):
        row = by_name[f"track/{name}"]
        assert row["split"] == "test"
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
    assert by_name["track/f1/blues"]["value"] == pytest.approx(report.f1[0])
    assert by_name["track/recall/hiphop"]["ci_low"] is None
    assert set(ev.ci_from_rows(rows)) == {"accuracy", "macro_f1", "top2"}
    with pytest.raises(ValueError):
        ev.metric_rows(report, y_true, probs, split="test", level="song", seed=0)


def _correctness(b, c, both=5, neither=3):
    """Correctness vectors with b (A right, B wrong) and c (A wrong, B right) discordant items."""
    a = [True] * b + [False] * c + [True] * both + [False] * neither
    bb = [False] * b + [True] * c + [True] * both + [False] * neither
    return np.array(a), np.array(bb)


def test_mcnemar_exact_small_counts():
    result = ev.mcnemar(*_correctness(10, 2))
    expected = 2 * (comb(12, 0) + comb(12, 1) + comb(12, 2)) / 2**12  # = 0.0386
    assert (result.b, result.c, result.exact) == (10, 2, True)
    assert result.p_value == pytest.approx(expected)


def test_mcnemar_chi2_large_counts():
    result = ev.mcnemar(*_correctness(40, 20))
    statistic = (abs(40 - 20) - 1) ** 2 / 60
    assert not result.exact
    assert result.statistic == pytest.approx(statistic)
    assert result.p_value == pytest.approx(stats.chi2.sf(statistic, df=1))


def test_mcnemar_identical_classifiers():
    a = np.array([True, False, True, True])
    assert ev.mcnemar(a, a).p_value == 1.0
    assert ev.mcnemar(*_correctness(15, 15)).p_value == pytest.approx(1.0)


def test_kfold_summary():
    mean, std, n = ev.kfold_summary([0.7, 0.8, 0.9])
    assert (mean, n) == (pytest.approx(0.8), 3)
    assert std == pytest.approx(0.1)
    assert np.isnan(ev.kfold_summary([0.5])[1])


def test_format_report(scored):
    y_true, probs = scored
    report = ev.classification_report(y_true, probs, LABELS)
    text = ev.format_report(report, {"accuracy": (0.1, 0.9)})
    assert "95% CI [0.100, 0.900]" in text
    assert "hiphop" in text and " hip" in text  # table row and confusion abbreviation
    assert ev.abbreviations(["Rock", "rock!", "Pop"]) == ["roc1", "roc2", "pop"]
    print(text)
