"""The demo corpus generator: layout, planted faults, determinism, genres that differ."""

from __future__ import annotations

import collections
import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_core.datasets.synth.corpus import CROSSOVER_SHARE, GENRES, SynthConfig, _plan, generate_corpus
from genre_core.datasets.synth.music import render_clip
from genre_core.datasets.synth.soundfont import ALL_PROGRAMS, DRUM_KEYS, PROGRAMS, sf2_path
from genre_core.datasets.synth.styles import DEMO_STYLES, STYLES, UNSEEN_STYLES, make_artist
from genre_core.faults.kinds import PLANTED_KINDS

CONFIG = SynthConfig(per_genre=5, seconds=4.0, seed=0, extras=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    summary = generate_corpus(out, config=CONFIG, progress=False)
    assert summary.n_files == len(GENRES) * CONFIG.per_genre + _EXTRAS
    return out


_EXTRAS = 2  # at per_genre=5: one version and one non-music clip, numbered after a genre's clips


def _extra_ids(root: Path) -> set[str]:
    return {r["track_id"] for r in _csv(root / "faults_truth.csv")
            if r["kind"] == "not_music" or (r["kind"] == "version" and r["source_track_id"])}


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _wav(root: Path, track_id: str) -> Path:
    return root / "genres_original" / track_id.split(".")[0] / f"{track_id}.wav"


def _faults(root: Path, kind: str) -> list[dict[str, str]]:
    return [r for r in _csv(root / "faults_truth.csv") if r["kind"] == kind]


def _read_int16(path: Path) -> np.ndarray:
    y, sr = sf.read(str(path), dtype="int16")
    assert sr == CONFIG.sr and y.ndim == 1
    return y


def _sha1s(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _aligned_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of `a` and `b` where they overlap at their best lag."""
    a, b = a.astype(float), b.astype(float)
    size = len(a) + len(b)
    xcorr = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    lag = int(np.argmax(xcorr))
    lag = lag - size if lag > len(a) else lag  # b[i] lines up with a[i + lag]
    a_part, b_part = (a[lag:], b) if lag >= 0 else (a, b[-lag:])
    n = min(len(a_part), len(b_part))
    return float(np.corrcoef(a_part[:n], b_part[:n])[0, 1])


def test_every_manifest_row_has_its_file(corpus):
    meta = _csv(corpus / "metadata.csv")
    extras = _extra_ids(corpus)
    assert len(extras) == _EXTRAS and all(int(t.split(".")[1]) >= CONFIG.per_genre for t in extras)
    assert [r["track_id"] for r in meta if r["track_id"] not in extras] == [
        f"{g}.{i:05d}" for g in GENRES for i in range(CONFIG.per_genre)]
    assert [r["track_id"] for r in meta] == sorted(r["track_id"] for r in meta)  # GTZAN order, extras in place
    for r in meta:
        assert r["track_id"].startswith(r["label"] + ".") and _wav(corpus, r["track_id"]).is_file()
    assert len(list((corpus / "genres_original").rglob("*.wav"))) == len(meta)
    index = [line.split(" ::: ") for line in (corpus / "artists.txt").read_text().splitlines()
             if not line.startswith("#")]
    assert index == [[r["track_id"] + ".wav", r["artist"], r["title"]] for r in meta]


def test_artists_have_several_clips_each(corpus):
    meta = _csv(corpus / "metadata.csv")
    clips = collections.Counter(r["artist"] for r in meta)
    assert np.median(list(clips.values())) >= 2  # planted faults may leave an artist one clip
    for genre in GENRES:
        assert len({r["artist"] for r in meta if r["true_genre"] == genre}) >= 2


def test_faults_truth_names_tracks_and_every_kind(corpus):
    tracks = {r["track_id"] for r in _csv(corpus / "metadata.csv")}
    rows = _csv(corpus / "faults_truth.csv")
    assert {r["kind"] for r in rows} == set(PLANTED_KINDS)
    assert all(r["track_id"] in tracks and r["detail"] for r in rows)
    copies = [r for r in rows if r["source_track_id"]]
    originals = {r["track_id"]: r for r in rows if r["group_id"] and not r["source_track_id"]}
    for copy in copies:
        original = originals[copy["source_track_id"]]
        assert (original["group_id"], original["kind"]) == (copy["group_id"], copy["kind"])


def test_exact_duplicates_are_byte_identical(corpus):
    copies = [r for r in _faults(corpus, "exact_duplicate") if r["source_track_id"]]
    assert copies and any(r["track_id"].split(".")[0] != r["source_track_id"].split(".")[0] for r in copies)
    for r in copies:
        assert _wav(corpus, r["track_id"]).read_bytes() == _wav(corpus, r["source_track_id"]).read_bytes()


def test_recording_duplicates_differ_but_correlate(corpus):
    copies = [r for r in _faults(corpus, "recording_duplicate") if r["source_track_id"]]
    assert copies
    for r in copies:
        copy, source = _wav(corpus, r["track_id"]), _wav(corpus, r["source_track_id"])
        assert copy.read_bytes() != source.read_bytes()
        assert _aligned_correlation(_read_int16(source), _read_int16(copy)) > 0.9, r


def test_unreadable_file_does_not_decode(corpus):
    (row,) = _faults(corpus, "unreadable")
    with pytest.raises((sf.LibsndfileError, RuntimeError)):
        sf.read(str(_wav(corpus, row["track_id"])))


def test_silent_file_is_digital_zeros(corpus):
    (row,) = _faults(corpus, "silence")
    y = _read_int16(_wav(corpus, row["track_id"]))
    assert len(y) == CONFIG.n_samples and not y.any()


def test_distortions_are_measurable(corpus):
    rows = _faults(corpus, "distortion")
    clipped = [r for r in rows if r["detail"].startswith("clipping")]
    dropouts = [r for r in rows if r["detail"].startswith("dropouts")]
    assert clipped and dropouts
    for r in clipped:
        y = np.abs(_read_int16(_wav(corpus, r["track_id"])).astype(int))
        level = float(r["detail"].split()[2])
        assert abs(y.max() / 32767 - level) < 0.01
        assert np.mean(y >= y.max() - 1) > 0.01  # a share of samples pinned at the rail
    for r in dropouts:
        y = _read_int16(_wav(corpus, r["track_id"]))
        n_gaps, gap_s = int(r["detail"].split()[1]), float(r["detail"].split()[4])
        edges = np.diff(np.concatenate([[0], (y == 0).astype(int), [0]]))
        runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
        assert np.sum(runs >= 0.9 * gap_s * CONFIG.sr) >= n_gaps


def test_mislabels_are_filed_under_another_genre(corpus):
    meta = {r["track_id"]: r for r in _csv(corpus / "metadata.csv")}
    rows = _faults(corpus, "label_issue")
    assert rows
    for r in rows:
        m = meta[r["track_id"]]
        assert m["label"] != m["true_genre"]
        assert r["detail"] == f"true genre {m['true_genre']} filed as {m['label']}"


def test_clean_clips_have_a_sane_peak(corpus):
    faulty = {r["track_id"] for r in _csv(corpus / "faults_truth.csv") if r["source_track_id"] or
              r["kind"] in ("distortion", "silence", "unreadable", "not_music")}
    for r in _csv(corpus / "metadata.csv"):
        if r["track_id"] not in faulty:
            y = _read_int16(_wav(corpus, r["track_id"]))
            assert len(y) == CONFIG.n_samples
            assert 0.45 <= np.abs(y.astype(int)).max() / 32767 <= 0.95


def test_clean_clips_are_music_not_silence_or_clipping(corpus):
    faulty = {r["track_id"] for r in _csv(corpus / "faults_truth.csv")}
    for r in _csv(corpus / "metadata.csv"):
        if r["track_id"] not in faulty:
            y = _read_int16(_wav(corpus, r["track_id"])).astype(float) / 32767
            rms_db = 10 * np.log10(np.mean(y**2))
            assert -32 < rms_db < -8, (r["track_id"], rms_db)  # loudness-normalised
            assert np.mean(np.abs(y) > 0.95) == 0.0  # the limiter keeps every peak off the rail
            quiet = np.mean(np.abs(y.reshape(-1, CONFIG.sr // 10)).max(1) < 1e-3)
            assert quiet < 0.2, r["track_id"]  # no long gaps: every part keeps playing


def test_each_genre_folder_holds_per_genre_clips_and_its_extras(corpus):
    extras = collections.Counter(t.split(".")[0] for t in _extra_ids(corpus))
    for genre in GENRES:
        assert len(list((corpus / "genres_original" / genre).glob("*.wav"))) == CONFIG.per_genre + extras[genre]


def test_crossovers_name_a_neighbouring_genre_in_also(corpus):
    meta = _csv(corpus / "metadata.csv")
    assert list(meta[0]) == ["track_id", "label", "true_genre", "artist", "title", "also"]
    faulty = {r["track_id"] for r in _csv(corpus / "faults_truth.csv")}
    crossed = [r for r in meta if r["also"]]
    clean = [r for r in meta if r["track_id"] not in faulty]
    assert len(crossed) == round(CROSSOVER_SHARE * len(clean))
    for r in crossed:
        others = r["also"].split(";")
        assert r["track_id"] not in faulty and r["label"] == r["true_genre"]
        assert all(g in GENRES and g != r["label"] and g in STYLES[r["label"]].neighbours for g in others)


def test_soundfont_is_found_and_covers_every_role():
    assert sf2_path().name == "TimGM6mb.sf2" and sf2_path().stat().st_size > 1_000_000
    assert all(0 <= p < 128 for options in ALL_PROGRAMS.values() for p in options)

    def roles(styles) -> set[str]:
        return {part.inst for s in styles.values() for part in (*s.chords, s.bass, s.lead) if part} | {
            role for s in styles.values() for role in s.swap}

    # demo artists draw programs for PROGRAMS' roles only (so the demo's bytes never move)
    assert roles(DEMO_STYLES) <= set(PROGRAMS) and roles(UNSEEN_STYLES) <= set(ALL_PROGRAMS)
    assert {drum for s in STYLES.values() for drum, _ in s.drums} <= set(DRUM_KEYS) | {"timp"}


def test_a_render_does_not_depend_on_the_renders_before_it():
    """The SoundFont player is reused within a process: no voice, bend or program may carry over."""
    def clip(genre: str, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return render_clip(genre, make_artist("x", genre, rng), 2 * CONFIG.sr, sr=CONFIG.sr, rng=rng)

    first = clip("jazz", 7)
    clip("metal", 8)  # dense and distorted, with a long crash in the drum bus
    assert np.array_equal(first, clip("jazz", 7))


def test_fault_counts_scale_with_corpus_size():
    def counts(per_genre: int) -> dict[str, int]:
        slots = _plan(SynthConfig(per_genre=per_genre, extras=True))  # the plan only: nothing is rendered
        return dict(collections.Counter(s.kind for s in slots if s.kind and not s.original))

    assert counts(24) == {"exact_duplicate": 3, "recording_duplicate": 4, "version": 4, "label_issue": 4,
                          "not_music": 3, "distortion": 4, "silence": 1, "unreadable": 1}
    assert counts(48)["version"] == 8 and counts(48)["not_music"] == 6
    assert set(counts(4)) == set(PLANTED_KINDS)
    default = {s.track_id for s in _plan(SynthConfig())}  # the demo corpus: no extras, its 240 clips as ever
    assert len(default) == 240 and {s.track_id for s in _plan(SynthConfig(extras=True))} > default


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    small = SynthConfig(per_genre=4, seconds=3.0, seed=0)
    generate_corpus(tmp_path / "a", config=small, progress=False, workers=1)
    generate_corpus(tmp_path / "b", config=small, progress=False, workers=2)  # worker processes: same bytes
    first = _sha1s(tmp_path / "a")
    assert first == _sha1s(tmp_path / "b")
    # regenerating over an earlier corpus replaces it, other seed: other audio
    generate_corpus(tmp_path / "a", config=SynthConfig(per_genre=4, seconds=3.0, seed=1), progress=False, workers=1)
    other = _sha1s(tmp_path / "a")
    assert other.keys() == first.keys()
    wavs = [k for k in first if k.endswith(".wav")]
    assert sum(first[k] != other[k] for k in wavs) >= len(wavs) - 2  # the silent clips may agree


def _spectra(y: np.ndarray, n_fft: int = 1024, hop: int = 512) -> np.ndarray:
    idx = np.arange(0, len(y) - n_fft, hop)[:, None] + np.arange(n_fft)
    return np.abs(np.fft.rfft(y[idx] * np.hanning(n_fft), axis=1))  # (T, F)


def test_classical_is_tonal_and_drumless_next_to_metal(corpus):
    """Strings (or a piano) are tonal and unhurried; distorted guitars and double kicks are noisy
    and busy - as a rule of the genre, not for every clip."""
    clean = {r["track_id"]: r for r in _csv(corpus / "metadata.csv") if r["label"] == r["true_genre"]}
    for r in _csv(corpus / "faults_truth.csv"):
        clean.pop(r["track_id"], None)
    stats = collections.defaultdict(list)
    for track_id, r in clean.items():
        if r["label"] in ("classical", "metal"):
            S = _spectra(_read_int16(_wav(corpus, track_id)) / 32768)
            power = S**2 + 1e-12
            flatness = np.mean(np.exp(np.mean(np.log(power), 1)) / np.mean(power, 1))
            flux = np.mean(np.maximum(np.diff(np.log1p(100 * S), axis=0), 0).sum(1))
            stats[r["label"]].append((flatness, flux))
    classical, metal = np.array(stats["classical"]), np.array(stats["metal"])
    assert len(classical) >= 2 and len(metal) >= 2
    # tendencies, not a clean cut: the corpus is built so that no single statistic separates genres
    assert np.median(metal[:, 0]) > 3 * np.median(classical[:, 0])
    assert np.median(metal[:, 1]) > 1.15 * np.median(classical[:, 1])


@pytest.mark.parametrize("kwargs", [
    {"per_genre": 3}, {"per_genre": 2.5}, {"per_genre": True}, {"seconds": 1.0}, {"seconds": float("nan")},
    {"seconds": "15"}, {"sr": 100}, {"seed": -1}, {"guests": [("blues.00099", "jazz")]},
    {"guests": [("polka.00001", "jazz")]}, {"guests": [("blues.00001", "polka")]},
])
def test_bad_config_is_a_value_error(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        SynthConfig(**kwargs)


def test_guests_play_clean_clips_only_and_change_no_other_clip():
    """The planted-failure option (test_slices_planted renders it): a guest of another genre on
    the listed clips, every other slot planned as without it; a faulty clip is refused."""
    plain = {s.track_id: s for s in _plan(CONFIG)}
    clean = [t for t, s in plain.items() if t.startswith("blues.") and not s.kind and not s.also][:2]
    guest = {s.track_id: s for s in _plan(SynthConfig(**{**vars(CONFIG), "guests": [(t, "metal") for t in clean]}))}
    assert {guest[t].true_genre for t in clean} == {"metal"} and guest[clean[0]].artist is guest[clean[1]].artist
    assert guest[clean[0]].artist.name not in {s.artist.name for s in plain.values()}
    assert all(vars(guest[t]) == vars(plain[t]) for t in plain if t not in clean)
    faulty = next(t for t, s in plain.items() if s.kind)
    with pytest.raises(ValueError, match="carries a planted fault"):
        _plan(SynthConfig(**{**vars(CONFIG), "guests": ((faulty, "jazz"),)}))


def test_refuses_a_folder_that_is_not_a_synth_corpus(tmp_path):
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="not an earlier synth corpus"):
        generate_corpus(tmp_path, config=SynthConfig(per_genre=4, seconds=3.0), progress=False)
    assert (tmp_path / "thesis.tex").read_text() == "precious"


def test_a_version_plays_its_originals_notes_at_another_tempo_with_other_sounds():
    """What makes a version one to a listener: the same chords, bass line and melody, note for
    note in the bar, by another artist (slower, other instruments)."""
    from genre_core.datasets.synth.corpus import _CLIP
    from genre_core.datasets.synth.music import _arrange

    config = SynthConfig(extras=True)
    versions = [s for s in _plan(config) if s.kind == "version" and not s.original]
    assert len(versions) == 4
    for version in versions:
        original = version.source
        assert version.title == original.title and version.artist.name != original.artist.name
        assert version.artist.tempo <= 0.9 * original.artist.tempo and version.artist.programs != original.artist.programs

        def arranged(artist, **kw):
            rng = np.random.default_rng([config.seed, _CLIP, GENRES.index(original.genre), original.index])
            return _arrange(original.genre, artist, config.n_samples, sr=config.sr, rng=rng, also=None, **kw)

        a, b = arranged(original.artist), arranged(version.artist, bars_at=original.artist.tempo)
        assert a.chords == b.chords and a.key == b.key
        for bus in ("bass", "lead"):  # (sixteenth of the song, MIDI key): the slower version fits fewer bars
            here = {(round((n.start - a.pre) / a.sr / a.bar * 16), n.key) for n in a.notes[bus]}
            there = [(round((n.start - b.pre) / b.sr / b.bar * 16), n.key) for n in b.notes[bus]]
            # humanised timing may round a note to the next sixteenth, never further or to another key
            assert all((t, k) in here or (t - 1, k) in here or (t + 1, k) in here for t, k in there), (version.track_id, bus)
            assert len(there) >= 0.7 * len(here)


def test_non_music_clips_are_not_music(corpus):
    for r in _faults(corpus, "not_music"):
        y = _read_int16(_wav(corpus, r["track_id"])).astype(float) / 32767
        assert len(y) == CONFIG.n_samples and 0.45 <= np.abs(y).max() <= 0.85
        meta = next(m for m in _csv(corpus / "metadata.csv") if m["track_id"] == r["track_id"])
        assert meta["true_genre"] == "" and meta["label"] in GENRES
