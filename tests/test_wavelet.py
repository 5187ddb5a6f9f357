"""Wavelet sub-band features: where a sound's energy sits in octave bands, and baselines that
read them (trained, analysed and classifying live with the same 78 columns)."""

from __future__ import annotations

import numpy as np
import pytest

from genre_core.features.tables import COLUMNS, baseline_table
from genre_core.features.wavelet import BANDS, WAVELET_NAMES, wavelet_table

SR = 22050


def _tone(freq: float, seconds: float = 3.0) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR).astype(np.float32)


@pytest.mark.parametrize("freq, band", [(100, "approx"), (600, "detail5"), (8000, "detail1")])
def test_a_tone_puts_its_energy_in_its_octave_band(freq, band):
    row = wavelet_table(_tone(freq)[None])[0]
    shares = row[2::3]  # every band's energy share
    assert BANDS[int(np.argmax(shares))] == band and shares.sum() == pytest.approx(1.0)


def test_table_columns_and_scale():
    quiet, loud = _tone(440) * 0.1, _tone(440)
    rows = wavelet_table(np.stack([quiet, loud]))
    assert rows.shape == (2, len(WAVELET_NAMES)) == (2, 21)
    np.testing.assert_allclose(rows[1, 0::3], 10 * rows[0, 0::3], rtol=1e-6)  # levels scale with gain
    np.testing.assert_allclose(rows[1, 2::3], rows[0, 2::3], atol=1e-9)  # shares do not
    both = baseline_table(np.stack([quiet, loud]), SR, "handcrafted+wavelet")
    assert both.shape == (2, len(COLUMNS["handcrafted+wavelet"])) == (2, 78)
    np.testing.assert_allclose(both[:, 57:], rows)


def test_a_wavelet_baseline_classifies_live_with_the_columns_it_trained_on(toy_store):
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit
    from genre_core.train.inference import load_run

    run_id = fit(toy_store, TrainConfig.tiny_preset("toy", "rf_wavelet"), progress=False).run_id
    loaded = load_run(toy_store, run_id, "cpu")
    assert loaded.estimator.n_features_in_ == 78
    probs, _ = loaded.predict_windows(np.stack([_tone(200), _tone(2000)]))
    assert probs.shape == (2, len(loaded.classes)) and np.allclose(probs.sum(axis=1), 1.0)
