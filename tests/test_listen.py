"""Listenable maps: an attribution over the mel grid becomes a binary STFT mask and audio,
checked against known answers (a full mask returns the signal; a map over one tone of two
hears that tone and ignores the other)."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from genre_core.analysis.listen import MASK_FLOOR, listenable, stft_cells, top_share_mask

SR = 22050
SECONDS = 2.0
LOW_HZ, HIGH_HZ = 440.0, 4000.0


def _two_tones() -> np.ndarray:
    t = np.arange(int(SR * SECONDS)) / SR
    return (0.3 * np.sin(2 * np.pi * LOW_HZ * t) + 0.3 * np.sin(2 * np.pi * HIGH_HZ * t)).astype(np.float32)


def _band_energy(y: np.ndarray, hz: float, width: float = 60.0) -> float:
    """Energy of y within +-width Hz of `hz` (away from the edges, which the STFT pads)."""
    core = y[SR // 4 : -SR // 4]
    spectrum = np.abs(np.fft.rfft(core * np.hanning(len(core)))) ** 2
    freqs = np.fft.rfftfreq(len(core), 1 / SR)
    return float(spectrum[np.abs(freqs - hz) < width].sum())


def _band_of(hz: float, n_bands: int) -> int:
    """The band (of n_bands uniform on the Slaney mel scale, 0..SR/2) that holds `hz`."""
    return int(librosa.hz_to_mel(hz) / librosa.hz_to_mel(SR / 2) * n_bands)


def test_a_mask_keeping_everything_returns_the_signal():
    y = _two_tones()
    rng = np.random.default_rng(1)
    heard, ignored = listenable(y, SR, rng.random((64, 16)), duration_s=SECONDS, keep=1.0)
    assert heard.shape == y.shape and heard.dtype == np.float32
    # Hann at hop n_fft/4 inverts exactly: the error is float32 rounding (measured ~1e-7)
    assert np.max(np.abs(heard - y)) < 1e-5
    assert np.max(np.abs(ignored - MASK_FLOOR * y)) < 1e-5  # left out means turned down, not silenced


def test_heard_and_ignored_add_up_to_the_input():
    y = (0.1 * np.random.default_rng(2).standard_normal(SR)).astype(np.float32)
    heard, ignored = listenable(y, SR, np.random.default_rng(3).random((32, 8)), duration_s=1.0, keep=0.25)
    assert np.max(np.abs(heard + ignored - (1 + MASK_FLOOR) * y)) < 1e-5
    assert 0.05 < np.sum(heard ** 2) / np.sum(y ** 2) < 0.6  # a quarter of the cells of white noise


def test_a_map_over_one_tone_hears_that_tone_and_ignores_the_other():
    y = _two_tones()
    attribution = np.zeros((64, 16), dtype=np.float32)
    band = _band_of(LOW_HZ, 64)
    attribution[band - 1 : band + 2] = 1.0  # the 440-Hz tone's band and its neighbours, all along
    # keep = the marked share of the map's cells: every marked cell, no unmarked one
    heard, ignored = listenable(y, SR, attribution, duration_s=SECONDS, keep=3 / 64, floor=0.0)  # silenced: the geometry alone
    low, high = _band_energy(y, LOW_HZ), _band_energy(y, HIGH_HZ)
    assert _band_energy(heard, LOW_HZ) > 0.95 * low
    assert _band_energy(heard, HIGH_HZ) < 1e-3 * high
    assert _band_energy(ignored, HIGH_HZ) > 0.99 * high
    assert _band_energy(ignored, LOW_HZ) < 0.05 * low


def test_a_map_over_one_moment_keeps_that_moment():
    y = (0.1 * np.random.default_rng(4).standard_normal(int(4 * SR))).astype(np.float32)
    attribution = np.zeros((16, 32), dtype=np.float32)
    attribution[:, 8:16] = 1.0  # seconds 1-2 of a 4-s track (8 frames per second)
    heard, _ = listenable(y, SR, attribution, duration_s=4.0, keep=0.2, floor=0.0)
    energy = np.array([np.sum(heard[i * SR : (i + 1) * SR] ** 2) for i in range(4)])
    assert energy.argmax() == 1 and energy[1] > 0.9 * energy.sum()


def test_stft_bins_map_to_the_mel_band_holding_them():
    band, frame = stft_cells(8, 4, sr=SR, n_fft=256, n_stft_frames=10, hop_length=64, duration_s=1.0,
                             fmax=5000.0)
    hz = np.arange(129) * SR / 256
    assert (band[hz > 5000] == -1).all() and band[0] == 0 and band[hz <= 5000].max() == 7
    edges = librosa.mel_to_hz(np.linspace(0, librosa.hz_to_mel(5000.0), 9))  # 8 bands uniform on mel
    inside = hz <= 5000
    np.testing.assert_array_equal(band[inside], np.clip(np.searchsorted(edges, hz[inside], side="right") - 1, 0, 7))
    # STFT frame t is centred at t * 64 / SR s: 4 map frames of 0.25 s each
    np.testing.assert_array_equal(frame, np.floor(np.arange(10) * 64 / SR / 0.25).astype(int))


def test_audio_above_fmax_is_never_heard():
    t = np.arange(SR) / SR
    y = (0.3 * np.sin(2 * np.pi * 300 * t) + 0.3 * np.sin(2 * np.pi * 8000 * t)).astype(np.float32)
    heard, ignored = listenable(y, SR, np.ones((16, 8)), duration_s=1.0, keep=1.0, fmax=5000.0, floor=0.0)
    assert _band_energy(heard, 8000.0) < 1e-3 * _band_energy(y, 8000.0)
    assert _band_energy(heard, 300.0) > 0.95 * _band_energy(y, 300.0)


def test_top_share_mask_keeps_the_exact_area_and_is_deterministic():
    values = np.zeros((50, 40))
    values[:5] = 1.0  # 10% of the cells outrank the rest; the other 15% are ties
    mask = top_share_mask(values, 0.25)
    assert mask.sum() == 500 and mask[:5].all()
    assert (mask == top_share_mask(values, 0.25)).all()
    # ties are spread over the remaining rows, not taken from the first ones
    assert 0.05 < mask[5:25].mean() < 0.3 and 0.05 < mask[25:].mean() < 0.3


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros(5)])
def test_bad_maps_are_refused(bad):
    with pytest.raises(ValueError):
        listenable(np.zeros(SR, dtype=np.float32), SR, bad, duration_s=1.0)


# ------------------------------------------------------------------- genrelens explain


@pytest.fixture(scope="module")
def explained_db(toy_store, tmp_path_factory):
    """A copy of the toy database with a tiny cnn run and a logreg run: (db path, cnn run,
    logreg run, a test track id)."""
    from genre_core.store import open_store
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit
    from tests.helpers import writable_copy

    store = open_store(writable_copy(toy_store.path, tmp_path_factory.mktemp("explain")))
    cnn = fit(store, TrainConfig.tiny_preset("toy", "cnn", epochs=2, batch_size=4, seed=2), progress=False).run_id
    logreg = fit(store, TrainConfig.tiny_preset("toy", "logreg"), progress=False).run_id
    track = str(store.predictions(cnn, "test").track_id.iloc[0])
    return store.path, cnn, logreg, track


def test_explain_track_summarises_and_writes_the_audio(explained_db, tmp_path):
    import soundfile as sf

    from genre_core.analysis.explain_track import explain_track
    from genre_core.analysis.variants import BASIC_VARIANTS
    from genre_core.store import open_store

    db, run, _, track = explained_db
    store = open_store(db, create=False)
    result = explain_track(store, run, track, out=tmp_path / "wavs", device="cpu")
    text = "\n".join(result.lines())
    assert f"track {track}: true {result.label}, predicted {result.predicted}" in text
    assert "Faithfulness was not measured" in text  # not analysed: no claim made
    assert text.count(" -> ") == len(BASIC_VARIANTS)  # the toy corpus has no stems
    start, end = result.window
    assert 0 <= start < end <= 4.0 and end - start == pytest.approx(3.0)  # a 3-s window of a 4-s clip
    names = {p.name for p in result.written}
    assert names == {"original.wav", "heard.wav", "ignored.wav", *(f"variant-{v}.wav" for v in BASIC_VARIANTS)}
    audio = {p.stem: sf.read(p, dtype="float32") for p in result.written}
    original, sr = audio["original"]
    assert sr == 22050 and len(original) == 4 * 22050
    heard, ignored = audio["heard"][0], audio["ignored"][0]
    assert np.max(np.abs(heard + ignored - (1 + MASK_FLOOR) * original)) < 1e-5
    assert 0.01 < np.sum(heard ** 2) / np.sum(original ** 2) < 0.999
    assert result.line().startswith(f"explained track {track} with run {run}") and "wrote 7 WAVs" in result.line()


def test_explain_cli_prints_the_summary(explained_db, capsys):
    from training.cli import main

    db, run, _, track = explained_db
    assert main(["explain", "--db", str(db), "--run", run, "--track", track, "--device", "cpu", "-q"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"track {track}: true ") and "variants: percussive -> " in out
    assert out.strip().splitlines()[-1].startswith(f"explained track {track} with run {run}")


@pytest.mark.parametrize("case, expected", [
    ("unknown run", "no run 'nope'"),
    ("unknown track", "no usable track 'nope'"),
    ("baseline run", "has no convolutional network to explain"),
])
def test_explain_bad_input_is_one_line(explained_db, capsys, case, expected):
    from training.cli import main

    db, cnn, logreg, track = explained_db
    run, track = {"unknown run": ("nope", track), "unknown track": (cnn, "nope"),
                  "baseline run": (logreg, track)}[case]
    assert main(["explain", "--db", str(db), "--run", run, "--track", track, "--device", "cpu", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and expected in err
