"""Duplicate search: every planted copy found, no two different recordings grouped."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks.faults import fingerprint_benchmark
from genre_core import audio
from genre_core.faults import fingerprint as fp
from genre_core.faults import landmark_index
from genre_core.faults.landmark_index import DiskLandmarkIndex

SR = 22050


def song(seed: int, seconds: float = 7.0, artist: int = 0, sr: int = SR) -> np.ndarray:
    """A made-up recording: notes on the artist's scale, tempo and timbre, the artist's drum
    kit and pattern (played, not looped), a crescendo, a fade-out and a room-noise floor.
    Same artist, other seed: a different recording that sounds alike. (N,) float32, peak 0.8."""
    style, rng = np.random.default_rng([7, artist]), np.random.default_rng([11, seed])
    beat = 60.0 / style.uniform(80, 140)
    harmonics = style.uniform(0.1, 1.0, size=5)
    decay = style.uniform(1.5, 4.0)
    scale = style.integers(40, 52) + np.array([0, 2, 4, 5, 7, 9, 11, 12, 14, 16])
    n = int(seconds * sr)
    y = np.zeros(n)
    start = 0.0
    while start < seconds:
        length = beat * rng.choice([0.5, 1, 1, 2])
        for voice in range(int(rng.integers(0, 4))):  # 0 voices: a rest
            f = 440 * 2 ** ((rng.choice(scale) - 69 + 12 * voice) / 12)
            s, e = int(start * sr), min(n, int((start + length + 0.3) * sr))
            t = np.arange(e - s) / sr
            release = np.clip((t[-1] - t) / 0.1, 0, 1) if t.size else t  # no click at the end
            y[s:e] += rng.uniform(0.2, 1) * np.exp(-decay * t) * release * sum(
                h * np.sin(2 * np.pi * f * (k + 1) * t) for k, h in enumerate(harmonics))
        start += length
    kick_t = np.arange(int(0.15 * sr)) / sr
    kick = np.sin(2 * np.pi * (50 + 80 * np.exp(-30 * kick_t)) * kick_t) * np.exp(-20 * kick_t)
    hat_t = np.arange(int(0.05 * sr)) / sr
    hat = np.diff(style.standard_normal(hat_t.size), prepend=0) * np.exp(-80 * hat_t)
    pattern = style.integers(0, 2, size=8)
    for step, at in enumerate(np.arange(0, seconds, beat / 2)):
        s = max(0, int((at + rng.normal(0, 0.004)) * sr))  # a drummer, not a loop: timing and
        part = (kick if step % 2 == 0 else hat * pattern[step % 8]) * rng.uniform(0.6, 1.0)  # force vary
        y[s:s + part.size] += 2.0 * part[: max(0, min(part.size, n - s))]
    y *= np.linspace(0.4, 1.0, n) * np.clip((n - np.arange(n)) / (0.5 * sr), 0, 1)  # crescendo, fade
    y += 0.002 * rng.standard_normal(n)
    return (0.8 * y / np.abs(y).max()).astype(np.float32)


def pcm16(y: np.ndarray) -> np.ndarray:
    """What a 16-bit file decodes to."""
    return (np.round(np.clip(y, -1, 1) * 32767) / 32768).astype(np.float32)


@pytest.fixture(scope="module")
def corpus() -> dict[str, np.ndarray]:
    # Eight recordings, two per "artist" (same tempo, timbre, drum kit and pattern), and copies.
    clips = {f"song{i}": pcm16(song(i, artist=i // 2)) for i in range(8)}
    clips["byte_copy"] = clips["song0"].copy()
    clips["regain"] = pcm16(clips["song1"] * 10 ** (-6 / 20))
    clips["regain_shift"] = pcm16(0.7 * clips["song1"][int(0.45 * SR):])  # a third member
    clips["shifted"] = clips["song2"][int(1.3 * SR):]
    n = clips["song3"].size
    clips["trimmed"] = clips["song3"][int(0.2 * n): int(0.9 * n)]  # 70%, from inside
    clips["resampled"] = pcm16(audio.resample(audio.resample(clips["song4"], SR, 16000), 16000, SR))
    clips["reencoded"] = reencoded(clips["song5"])
    return clips


def reencoded(y: np.ndarray) -> np.ndarray:
    """y through a lossy codec (MP3 where libsndfile has it, else Ogg Vorbis), decoded again."""
    formats = sf.available_formats()
    fmt, subtype = ("MP3", "MPEG_LAYER_III") if "MP3" in formats else ("OGG", "VORBIS")
    buffer = io.BytesIO()
    sf.write(buffer, y, SR, format=fmt, subtype=subtype)
    buffer.seek(0)
    return sf.read(buffer, dtype="float32")[0]


EXPECTED = [{"song0", "byte_copy"}, {"song1", "regain", "regain_shift"}, {"song2", "shifted"}, {"song3", "trimmed"},
            {"song4", "resampled"}, {"song5", "reencoded"}]


@pytest.fixture(scope="module")
def found(corpus):
    names = list(corpus)
    at_fp = [audio.resample(corpus[k], SR, fp.FP_SR) for k in names]
    prints = [fp.fingerprint(y) for y in at_fp]
    loads = []
    pairs = fp.recording_pairs(prints, lambda i: loads.append(i) or at_fp[i])
    return names, prints, pairs, loads


def test_every_planted_copy_is_grouped_and_nothing_else(found):
    names, _, pairs, _ = found
    groups = fp.connected_groups(len(names), [(p["a"], p["b"]) for p in pairs])
    assert sorted(map(sorted, ({names[i] for i in g} for g in groups))) == sorted(map(sorted, EXPECTED))


def test_same_artist_recordings_are_not_duplicates(found):
    names, _, pairs, _ = found
    grouped = {(names[p["a"]], names[p["b"]]) for p in pairs}
    for i in range(0, 8, 2):
        assert (f"song{i}", f"song{i + 1}") not in grouped
    assert not any(a.startswith("song") and b.startswith("song") for a, b in grouped)


def test_evidence_measures_the_change(found):
    names, _, pairs, _ = found
    by_copy = {names[p["b"]]: p for p in pairs}
    assert by_copy["regain"]["evidence"]["gain_db"] == pytest.approx(6.0, abs=0.1)  # song1 is louder
    assert by_copy["shifted"]["evidence"]["offset_s"] == pytest.approx(1.3, abs=0.002)
    assert by_copy["trimmed"]["evidence"]["offset_s"] == pytest.approx(0.2 * 7.0, abs=0.002)
    for p in pairs:
        assert p["score"] >= fp.MIN_CORRELATION
        assert p["evidence"]["matched_hashes"] >= fp.MIN_VOTES


def test_only_voted_candidates_are_loaded(found):
    names, _, pairs, loads = found
    # 15 tracks make 105 pairs; waveforms are read (two per check) only for the few pairs that
    # share aligned landmarks: the copies and a few same-artist look-alikes.
    assert len(pairs) <= len(loads) // 2 <= 20


def test_exact_duplicates_by_file_or_decoded_audio(corpus):
    names = list(corpus)
    decoded = [fp.decoded_key(corpus[k], SR) for k in names]
    files = [f"file-{i}" for i in range(len(names))]
    files[names.index("regain")] = files[names.index("song1")]  # pretend: same file bytes
    groups = fp.key_groups([files, decoded])
    assert [{names[i] for i in g} for g in groups] == [{"song0", "byte_copy"}, {"song1", "regain"}]


def test_connected_groups_are_components():
    assert fp.connected_groups(6, [(0, 1), (4, 3), (1, 2), (2, 0)]) == [[0, 1, 2], [3, 4]]
    assert fp.connected_groups(3, []) == []


def test_fingerprint_ignores_gain():
    y = audio.resample(pcm16(song(3)), SR, fp.FP_SR)
    a, b = fp.fingerprint(y), fp.fingerprint(y * 0.1)
    assert np.array_equal(a.hashes, b.hashes) and a.hashes.size > 20 * 7


def test_align_finds_a_half_sample_shift():
    y = song(5, seconds=4.0, sr=fp.FP_SR * 2).astype(np.float64)
    late = y[1001:]  # 500.5 samples at FP_SR once both are halved
    q, r = audio.resample(y.astype(np.float32), 2 * fp.FP_SR, fp.FP_SR), audio.resample(
        (0.3 * late).astype(np.float32), 2 * fp.FP_SR, fp.FP_SR)
    fit = fp.align(q, r, 512)
    assert fit["correlation"] > 0.99
    assert 512 + fit["lag"] == pytest.approx(500.5, abs=0.15)
    assert fit["gain_db"] == pytest.approx(20 * np.log10(1 / 0.3), abs=0.05)


def test_benchmark_runs_and_finds_its_planted_copy():
    result = fingerprint_benchmark(n_tracks=27, seconds=6.0)
    assert result["planted"] == 1 and result["found"] == 1 and result["false_pairs"] == 0
    assert result["tracks_per_s"] > 0


# -- the on-disk index against the RAM one ------------------------------------------------------

def _disk_candidates(prints, folder, tracks=None, order=None) -> list:
    with DiskLandmarkIndex(folder) as index:
        for i in order if order is not None else range(len(prints)):
            index.add(i, prints[i])
        return list(index.candidates(range(len(prints)) if tracks is None else tracks))


def test_disk_index_votes_exactly_as_the_ram_index(found, tmp_path):
    _, prints, _, _ = found
    ram = list(fp.memory_candidates(prints))
    assert len(ram) >= 7  # the planted copies, at least
    assert _disk_candidates(prints, tmp_path, order=reversed(range(len(prints)))) == ram


def test_disk_index_agrees_through_a_small_stop_list_and_many_passes(found, tmp_path, monkeypatch):
    # A stop list that bites and a voting pass per track exercise both on the small fixture.
    _, prints, _, _ = found
    unstopped = len(list(fp.memory_candidates(prints)))
    monkeypatch.setattr(fp, "STOP_POSTINGS", 4)
    monkeypatch.setattr(landmark_index, "QUERY_LANDMARKS", 1)  # one track per pass
    monkeypatch.setattr(landmark_index, "FLUSH_LANDMARKS", 500)
    assert fp.stop_postings(len(prints)) == 4
    ram = list(fp.memory_candidates(prints))
    assert 0 < len(ram) < unstopped  # the stop list removed some candidates, not all
    assert _disk_candidates(prints, tmp_path) == ram


def test_disk_and_ram_duplicate_groups_are_identical(corpus, tmp_path):
    names = list(corpus)
    at_fp = [audio.resample(corpus[k], SR, fp.FP_SR) for k in names]
    prints = [fp.fingerprint(y) for y in at_fp]
    prints[names.index("song7")] = None  # a track that did not decode
    decoded = [fp.decoded_key(corpus[k], SR) for k in names]
    files = [f"file-{i}" for i in range(len(names))]
    args = (names, files, decoded)
    ram = fp.duplicate_groups(*args, prints, lambda i: at_fp[i])
    with DiskLandmarkIndex(tmp_path) as index:
        for i, p in enumerate(prints):
            if p is not None:
                index.add(i, p)
        disk = fp.duplicate_groups(*args, index, lambda i: at_fp[i])
    assert disk == ram
    groups = {r["group_id"]: set(r["evidence"]["members"]) for r in disk}
    assert sorted(map(sorted, groups.values())) == sorted(map(sorted, EXPECTED))
    assert not list(tmp_path.iterdir())  # the scratch database is gone


def test_stop_list_scales_with_the_corpus():
    assert fp.stop_postings(240) == fp.stop_postings(25_600) == fp.STOP_POSTINGS
    assert fp.stop_postings(100_000) == 1_000
    assert fp.stop_postings(106_574) / 106_574 == pytest.approx(fp.STOP_SHARE, rel=1e-3)


def test_a_killed_run_s_scratch_index_is_removed(tmp_path):
    orphan = tmp_path / "landmarks-999999999-abc"  # no such pid
    orphan.mkdir()
    (orphan / "index.duckdb").write_bytes(b"left by a killed run")
    with DiskLandmarkIndex(tmp_path) as index:
        assert not orphan.exists() and index.dir.exists()
    assert not index.dir.exists()


def test_fault_scan_decodes_a_file_once_at_its_own_rate_across_runs(tmp_path, monkeypatch):
    from genre_core.datasets.ingest import ingest
    from genre_core.faults import detect
    from genre_core.store import open_store

    folder = tmp_path / "corpus" / "genres" / "rock"
    folder.mkdir(parents=True)
    rates = (44100, 22050, 44100)
    for i, rate in enumerate(rates):
        sf.write(str(folder / f"rock.{i:05d}.wav"), pcm16(song(i, seconds=5.0, artist=i, sr=rate)), rate)
    copy = 0.5 * song(0, seconds=5.0, artist=0, sr=44100)[int(0.3 * 44100):]  # -6 dB, 0.3 s later
    sf.write(str(folder / "rock.00003.wav"), pcm16(copy), 44100)
    store = open_store(tmp_path / "db" / "gl.duckdb")
    ingest(store, "folder", tmp_path / "corpus" / "genres", name="rates", progress=False)
    decoded = []
    real_load = audio.load
    monkeypatch.setattr(audio, "load", lambda path, sr=audio.DEFAULT_SR, **kw: decoded.append(
        (Path(path).name, sr)) or real_load(path, sr=sr, **kw))
    summary = detect.detect_faults(store, "rates", progress=False)
    assert sorted(decoded) == sorted((f"rock.{i:05d}.wav", rate) for i, rate in enumerate(rates + (44100,)))
    assert set(summary.detected.loc[summary.detected.kind == "recording_duplicate", "track_id"]) == {
        "rock/rock.00000", "rock/rock.00003"}
    decoded.clear()
    detect.detect_faults(store, "rates", progress=False)
    assert decoded == []  # the second run reads the cache only
    assert not list((tmp_path / "db" / "cache" / "fingerprints").iterdir())  # scratch index removed
