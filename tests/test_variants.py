"""What changes its mind: musical variants (HPSS, band cuts, the demo's true stems), their
classification by a run's own path, and the sentence told about a mistake."""

from __future__ import annotations

import csv
import shutil
import wave
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genre_core.analysis.variants import (
    BASIC_VARIANTS, MIND_MARGIN, band_cut, choose_tracks, demo_stems, hpss, mind_change, musical_variants,
    variant_probs, variant_tables,
)
from genre_core.datasets.synth.corpus import SynthConfig, generate_corpus
from genre_core.datasets.synth.music import render_clip, render_parts
from genre_core.datasets.synth.stems import FILE_TOLERANCE, PARTS, clip_parts
from genre_core.datasets.synth.styles import make_artist
from tests.helpers import SR, tone, write

CLASSES = ["blues", "disco", "jazz", "pop"]


def _energy(x: np.ndarray) -> float:
    return float(np.sum(np.asarray(x, dtype=np.float64) ** 2))


def _clicks(seconds: float = 3.0, every: float = 0.5, seed: int = 0) -> np.ndarray:
    """A drum-only clip: short decaying noise bursts (hits) every `every` s. (N,) float32"""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(seconds * SR))
    n = int(0.08 * SR)
    for start in np.arange(0, seconds - 0.1, every):
        s = int(start * SR)
        y[s: s + n] += rng.standard_normal(n) * np.exp(-np.arange(n) / (0.015 * SR))
    return (0.3 * y).astype(np.float32)


# ---------------------------------------------------------------- the variants themselves

def test_a_drum_only_clip_lands_in_the_percussive_part_and_a_chord_in_the_harmonic():
    drums = _clicks()
    chord = sum(tone(3.0, f, amp=0.2) for f in (220.0, 277.2, 329.6))
    for y, kind in ((drums, "percussive"), (chord, "harmonic")):
        harmonic, percussive = hpss(y, SR)
        assert harmonic.shape == percussive.shape == y.shape and harmonic.dtype == np.float32
        np.testing.assert_allclose(harmonic + percussive, y, atol=1e-5)  # a split, nothing lost
        share = _energy(percussive if kind == "percussive" else harmonic) / (_energy(harmonic) + _energy(percussive))
        assert share > 0.95, (kind, share)  # measured: 0.9998 and 0.9992


def test_hpss_splits_a_mix_of_the_two_back_into_its_parts():
    drums, chord = _clicks(), sum(tone(3.0, f, amp=0.2) for f in (196.0, 246.9, 293.7))
    harmonic, percussive = hpss(drums + chord, SR)
    # the share of each true part found in its HPSS part (least-squares gain): 1 = all of it
    assert np.dot(percussive, drums) / _energy(drums) > 0.8
    assert np.dot(harmonic, chord) / _energy(chord) > 0.9


@pytest.mark.parametrize("freq, variant, kept", [
    (100.0, "no_bass", False), (1000.0, "no_bass", True),
    (1000.0, "no_treble", True), (8000.0, "no_treble", False),
])
def test_band_cuts_remove_their_band_and_keep_the_middle(freq, variant, kept):
    y = tone(3.0, freq)
    out = musical_variants(y, SR)[variant]
    inner = slice(SR // 2, -SR // 2)  # away from the edges
    gain_db = 10 * np.log10(_energy(out[inner]) / _energy(y[inner]))
    if kept:
        assert abs(gain_db) < 0.1
    else:
        assert gain_db < -40


def test_band_cuts_are_zero_phase():
    click = np.zeros(SR, dtype=np.float32)
    click[SR // 2] = 1.0
    for out in (band_cut(click, SR, below=250.0), band_cut(click, SR, above=4000.0)):
        assert int(np.argmax(np.abs(out))) == SR // 2  # no delay: the filter ran both ways


def test_stem_variants_are_the_mix_minus_each_true_part():
    rng = np.random.default_rng(0)
    stems = {part: rng.standard_normal(SR).astype(np.float32) * 0.1 for part in ("drums", "bass", "lead")}
    mix = sum(stems.values())
    out = musical_variants(mix, SR, stems=stems)
    assert set(out) == {*BASIC_VARIANTS, "no_drums", "no_bass_part", "no_lead"}  # no chords stem, no no_chords
    np.testing.assert_allclose(out["no_drums"], stems["bass"] + stems["lead"], atol=1e-6)
    np.testing.assert_allclose(out["no_bass_part"], stems["drums"] + stems["lead"], atol=1e-6)
    assert all(v.dtype == np.float32 and v.shape == mix.shape for v in out.values())
    with pytest.raises(ValueError, match="samples"):
        musical_variants(mix, SR, stems={"drums": stems["drums"][:-1]})


# ---------------------------------------------------------------- the demo's true stems

def test_render_parts_is_render_clip_and_its_parts_sum_to_it():
    artist = make_artist("Test Artist", "disco", np.random.default_rng(5))
    n = 3 * SR
    mix = render_clip("disco", artist, n, sr=SR, rng=np.random.default_rng(7))
    same, parts = render_parts("disco", artist, n, sr=SR, rng=np.random.default_rng(7))
    assert np.array_equal(mix, same)  # the very samples the corpus writes
    assert set(parts) <= {*PARTS, "noise"} and {"drums", "bass", "noise"} <= set(parts)
    np.testing.assert_allclose(sum(parts.values()), mix, rtol=0, atol=1e-12)
    # the noise floor is a part of its own, far below the music (the artists' -40..-70 dB)
    assert _energy(parts["noise"]) < 1e-3 * _energy(mix)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "corpus"
    generate_corpus(root, config=SynthConfig.tiny(seed=2), progress=False, workers=1)
    return root


def _wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as f:
        return np.frombuffer(f.readframes(f.getnframes()), dtype="<i2") / 32767


def test_demo_stems_sum_to_every_clip_on_disk(tiny_corpus):
    faults = {row["track_id"]: row for row in csv.DictReader(open(tiny_corpus / "faults_truth.csv"))}
    truth = {row["track_id"]: row["true_genre"] for row in csv.DictReader(open(tiny_corpus / "metadata.csv"))}
    for path in sorted((tiny_corpus / "genres_original").glob("*/*.wav")):
        kind, detail = faults.get(path.stem, {}).get("kind", ""), faults.get(path.stem, {}).get("detail", "")
        parts = clip_parts(path)
        if kind in ("silence", "unreadable", "not_music") or detail.startswith("clipping"):
            assert parts is None and demo_stems(path) is None, path.stem  # no linear parts
            continue
        assert parts is not None, (path.stem, kind, detail)
        y = _wav(path)
        assert np.max(np.abs(sum(parts.values()) - y)) <= FILE_TOLERANCE  # half a 16-bit step
        stems = demo_stems(path)
        assert set(stems) <= set(PARTS) and {"bass", "chords"} <= set(stems)
        assert "drums" in stems or truth[path.stem] == "classical"  # timpani every 4th bar, some skipped
        assert all(s.dtype == np.float32 and s.shape == y.shape for s in stems.values())
        # without the noise floor, the parts still make the mix to within its hiss
        assert _energy(y - sum(stems.values())) < 1e-3 * _energy(y)


def test_demo_stems_refuse_what_they_cannot_vouch_for(tiny_corpus, tmp_path):
    assert demo_stems(write(tmp_path / "genres_original" / "pop" / "pop.00000.wav", tone(3.0))) is None
    assert demo_stems(tmp_path / "elsewhere.wav") is None
    copy = tmp_path / "copy"
    shutil.copytree(tiny_corpus, copy)
    clip = copy / "genres_original" / "jazz" / "jazz.00000.wav"
    assert demo_stems(clip) is not None
    raw = bytearray(clip.read_bytes())
    raw[-2000] ^= 0x40  # one sample changed by far more than rounding
    clip.write_bytes(bytes(raw))
    assert demo_stems(clip) is None  # parts that no longer add up to the file are not handed out


# ---------------------------------------------------------------- the sentence

def _probs(**by_genre) -> np.ndarray:
    row = np.array([by_genre.get(g, 0.0) for g in CLASSES])
    return row / row.sum()


def test_mind_change_names_the_variant_that_moves_a_mistake_toward_its_true_genre():
    original = _probs(disco=0.71, jazz=0.12, blues=0.1, pop=0.07)
    probs = {"no_bass": _probs(disco=0.65, jazz=0.2, blues=0.1, pop=0.05),  # rises, but disco barely falls
             "no_drums": _probs(disco=0.2, jazz=0.62, blues=0.1, pop=0.08),
             "harmonic": _probs(disco=0.45, jazz=0.35, blues=0.1, pop=0.1)}
    text = mind_change(probs, original, CLASSES, true="jazz", predicted="disco")
    assert text.startswith("Without the drums the model hears jazz 0.62, not disco 0.20")
    assert "disco 0.71" in text  # the full track's answer, for comparison
    # a variant that only leans toward the true genre is told as such
    leaning = mind_change({"harmonic": probs["harmonic"]}, original, CLASSES, true="jazz", predicted="disco")
    assert "leans toward jazz" in leaning and "harmonic" in leaning


def test_mind_change_says_nothing_unless_both_move_by_the_margin():
    original = _probs(disco=0.6, jazz=0.2, blues=0.1, pop=0.1)
    small = original + np.array([0, -(MIND_MARGIN - 0.01), MIND_MARGIN - 0.01, 0])  # just under the margin
    assert mind_change({"no_drums": small}, original, CLASSES, true="jazz", predicted="disco") is None
    away = _probs(disco=0.3, jazz=0.1, blues=0.5, pop=0.1)  # disco falls, but toward blues
    assert mind_change({"no_drums": away}, original, CLASSES, true="jazz", predicted="disco") is None
    right = _probs(disco=0.1, jazz=0.8, blues=0.05, pop=0.05)
    assert mind_change({"no_drums": right}, original, CLASSES, true="jazz", predicted="jazz") is None  # no mistake


# ---------------------------------------------------------------- the run's own classification

@pytest.fixture(scope="module")
def tiny_cnn(toy_store):
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit
    from genre_core.train.inference import load_run

    run_id = fit(toy_store, TrainConfig.tiny_preset("toy", "cnn", epochs=1, seed=3), progress=False).run_id
    return load_run(toy_store, run_id, "cpu")


def test_variant_probs_of_the_track_itself_are_its_stored_prediction(toy_store, tiny_cnn):
    from genre_core import paths
    from genre_core.features.cache import ShardCache

    cache = ShardCache(paths.cache_dir(toy_store.path))
    tracks = toy_store.tracks("toy").set_index("track_id")
    preds = toy_store.predictions(tiny_cnn.run_id)
    for row in preds[preds.split == "test"].head(4).itertuples():
        y = cache.load(tracks.path[row.track_id], tracks.sha1[row.track_id], tiny_cnn.sr)
        out = variant_probs(tiny_cnn, {"same": y, "quiet": 0.5 * y}, tiny_cnn.sr)
        np.testing.assert_allclose(out["same"], row.probs, atol=1e-4)
        assert set(out) == {"same", "quiet"} and out["quiet"].shape == (len(tiny_cnn.classes),)
        # audio at another rate is resampled to the run's before it is cut into windows
        y16 = _resampled(y, tiny_cnn.sr, 16000)
        at_16k = variant_probs(tiny_cnn, {"x": y16}, 16000)["x"]
        np.testing.assert_allclose(at_16k, variant_probs(tiny_cnn, {"x": _resampled(y16, 16000, tiny_cnn.sr)},
                                                         tiny_cnn.sr)["x"], atol=1e-6)


def _resampled(y, sr, to):
    from genre_core.audio import resample

    return resample(np.asarray(y, dtype=np.float32), sr, to)


def test_variant_tables_store_every_mistake_and_a_bounded_few_correct(toy_store, tiny_cnn):
    from genre_core import paths
    from genre_core.features.cache import ShardCache

    preds = toy_store.predictions(tiny_cnn.run_id)
    explained = preds[preds.split == "test"].copy()
    explained["predicted"] = explained.label  # all right but the first two, whatever the tiny model said
    explained.loc[explained.index[:2], "predicted"] = [
        next(c for c in tiny_cnn.classes if c != label) for label in explained.label[:2]]  # two mistakes
    notes: list[str] = []
    out = variant_tables(tiny_cnn, toy_store.tracks("toy"), explained, ShardCache(paths.cache_dir(toy_store.path)),
                         progress=False, notes=notes, correct_limit=1)
    table = out["variant_predictions"]
    assert list(table.columns) == ["track_id", "variant", "probs"]
    chosen = list(dict.fromkeys(table.track_id))
    assert chosen[:2] == list(explained.track_id[:2]) and len(chosen) == 3  # both mistakes, one correct
    third = explained.set_index("track_id").loc[chosen[2]]
    assert third.predicted == third.label
    # toy tracks have no stems; "original" is the stored prediction (the test above: the same path gives it)
    assert table.groupby("track_id").variant.apply(set).map(lambda v: v == {"original", *BASIC_VARIANTS}).all()
    stored = explained.set_index("track_id").probs
    for row in table[table.variant == "original"].itertuples():
        np.testing.assert_allclose(row.probs, stored[row.track_id], atol=1e-4)
    assert all(len(p) == len(tiny_cnn.classes) and abs(sum(p) - 1) < 1e-4 for p in table.probs)
    assert notes and notes[0].startswith("musical variants of 3 tracks (0 with their true stems)")


def test_choose_tracks_takes_mistakes_then_one_correct_track_per_genre_first():
    explained = pd.DataFrame({
        "track_id": [f"t{i}" for i in range(9)],
        "label": ["a", "a", "a", "b", "b", "c", "c", "c", "c"],
        "predicted": ["b", "a", "a", "b", "b", "c", "c", "c", "c"],
        "contrast_only": [False] * 8 + [True],
    })
    chosen = choose_tracks(explained, 3, seed=0)
    assert chosen[0] == "t0" and len(chosen) == 4 and "t8" not in chosen
    assert {explained.set_index("track_id").label[t] for t in chosen[1:]} == {"a", "b", "c"}
    assert choose_tracks(explained, 0, seed=0) == ["t0"]


def test_a_long_track_is_varied_over_its_middle(toy_store, tiny_cnn, monkeypatch):
    from genre_core import paths
    from genre_core.analysis import variants
    from genre_core.features.cache import ShardCache

    monkeypatch.setattr(variants, "VARIANT_MAX_S", 3.0)  # the toy tracks are 4 s long
    preds = toy_store.predictions(tiny_cnn.run_id)
    explained = preds[preds.split == "test"].head(1).assign(predicted="nothing")  # one "mistake"
    cache = ShardCache(paths.cache_dir(toy_store.path))
    table = variant_tables(tiny_cnn, toy_store.tracks("toy"), explained, cache, progress=False, correct_limit=0)
    track = toy_store.tracks("toy").set_index("track_id").loc[explained.track_id.iloc[0]]
    y = cache.load(track.path, track.sha1, tiny_cnn.sr)
    middle = y[len(y) // 2 - int(1.5 * tiny_cnn.sr): len(y) // 2 + int(1.5 * tiny_cnn.sr)]
    original = table["variant_predictions"].set_index("variant").probs["original"]
    np.testing.assert_allclose(original, variant_probs(tiny_cnn, {"x": middle}, tiny_cnn.sr)["x"], atol=1e-5)


@pytest.mark.slow
def test_bench_variants_section_runs_on_a_small_demo(tmp_path, capsys):
    from benchmarks.__main__ import main

    db = tmp_path / "bench.duckdb"
    assert main(["variants", "--quick", "--db", str(db), "--per-genre", "4", "--seconds", "4"]) == 0
    out = capsys.readouterr().out.split("## variants", 1)[1]
    assert "| no_drums " in out and "| percussive " in out  # the per-genre drop table
    assert "known answer (no_drums: hiphop, disco drop more than classical):" in out
    assert "HPSS against the true drum stem" in out and "| all " in out
