import tracemalloc

import numpy as np
import pytest

from genre_core.audio import AudioError
from genre_core.train.inference import load_run
from benchmarks.latency import latency_benchmark, mix_benchmark
from genre_core.live.recording import loudest_window
from genre_core.live.streaming import (RingBuffer, StreamingClassifier, classify_array, classify_file,
                                       classify_stream)
from genre_core.live.timeline import SILENCE
from genre_core.train.config import TrainConfig
from genre_core.train.fit import fit
from tests.helpers import BANDS, SR, band_clip, write


def band_energy(windows):
    """Stub model: (B, L) -> (B, 3) shares of spectral energy in the low/mid/high BANDS,
    computed row by row so a row's result cannot depend on the batch it came in."""
    rows = []
    for w in windows:
        power = np.abs(np.fft.rfft(w)) ** 2
        freqs = np.fft.rfftfreq(len(w), 1 / SR)
        energy = np.array([power[(freqs >= lo) & (freqs < hi)].sum() for lo, hi in BANDS.values()])
        rows.append(energy / energy.sum())
    return np.array(rows)


def loudness(windows):
    """Cheap stub: (B, L) -> (B, 2) from each row's RMS."""
    rms = np.sqrt(np.mean(np.square(windows, dtype=np.float64), axis=1))
    return np.stack([rms, 1 - rms], axis=1)


def run(blocks, predict=band_energy, sr=SR, **kwargs):
    classifier = StreamingClassifier(predict, sr, **kwargs)
    out = [p for block in blocks for p in classifier.feed(block)]
    return out + classifier.flush()


def cut(y, size):
    return [y[i: i + size] for i in range(0, len(y), size)]


def same(a, b):
    assert [(p.start_s, p.end_s, p.silent) for p in a] == [(p.start_s, p.end_s, p.silent) for p in b]
    assert all(np.array_equal(p.probs, q.probs, equal_nan=True) for p, q in zip(a, b))


@pytest.fixture(scope="module")
def stream():
    """20.3 s: low 5 s, silence 4 s, mid 6 s, high 5.3 s."""
    parts = [band_clip("low", 1, 5.0), np.zeros(4 * SR, np.float32), band_clip("mid", 2, 6.0),
             band_clip("high", 3, 5.3)]
    return np.concatenate(parts)


def test_block_size_does_not_change_the_result(stream):
    reference = run([stream])
    starts = [p.start_s for p in reference]
    assert starts == [k * 1.5 for k in range(len(starts))]
    # Full windows up to 19.5 s, then one zero-padded tail window over the rest.
    assert reference[-2].end_s == 19.5 and reference[-1].end_s == pytest.approx(20.3)
    assert [p.start_s for p in reference if p.silent] == [6.0]  # [6, 9): the only all-silent one
    assert np.isnan(reference[4].probs).all() and reference[4].probs.shape == (3,)
    assert np.argmax(reference[0].probs) == 0 and np.argmax(reference[-1].probs) == 2
    for size in (997, 4096, SR, 7 * SR):
        same(run(cut(stream, size), batch=3), reference)


def test_one_sample_blocks_give_the_same_result():
    sr = 4000  # keeps 12,000 one-sample feeds quick
    y = np.random.default_rng(0).uniform(-0.5, 0.5, 3 * sr).astype(np.float32)
    reference = run([y], loudness, sr, window_s=1.0, hop_s=0.5)
    assert len(reference) == 5
    same(run(cut(y, 1), loudness, sr, window_s=1.0, hop_s=0.5), reference)


def test_windows_are_batched_up_to_batch_rows(stream):
    sizes = []

    def spy(windows):
        sizes.append(len(windows))
        return band_energy(windows)

    same(run([stream], spy, batch=4), run([stream]))
    assert max(sizes) == 4 and sum(sizes) == 12  # 13 windows, one silent, never sent


L, H = 3 * SR, SR * 3 // 2


@pytest.mark.parametrize(
    "samples, expected",
    [(H - 1, []), (H, [(0, H)]), (L, [(0, L)]), (L + 1, [(0, L), (H, L + 1)]),
     (L + H - 1, [(0, L), (H, L + H - 1)])],
)
def test_a_tail_window_needs_half_a_window_of_audio_no_earlier_window_covered(samples, expected):
    y = band_clip("mid", 0, 5.0)[:samples]
    assert [(p.start_s, p.end_s) for p in run(cut(y, 1000))] == [(a / SR, b / SR) for a, b in expected]


def test_ring_buffer_serves_contiguous_spans_across_the_wrap():
    ring = RingBuffer(10)
    data = np.arange(37, dtype=np.float32)
    for block in cut(data, 7)[:3]:
        ring.write(block)
    assert ring.read(11, 10).tolist() == list(range(11, 21))
    with pytest.raises(IndexError):
        ring.read(10, 10)
    with pytest.raises(ValueError):
        ring.write(data[:11])


def test_memory_stays_constant_over_a_30_minute_stream():
    rng = np.random.default_rng(0)
    bank = [(0.3 * rng.standard_normal(SR)).astype(np.float32) for _ in range(3)]
    blocks = (bank[i % 3] for i in range(30 * 60))  # 30 min, generated block by block
    stream_bytes = 30 * 60 * SR * 4
    tracemalloc.start()
    classifier = StreamingClassifier(loudness, SR)
    capacity, ring_bytes = classifier.ring.capacity, classifier.ring.data.nbytes
    windows = 0
    for block in blocks:
        windows += len(classifier.feed(block))
        assert classifier.ring.capacity == capacity and classifier.ring.data.nbytes == ring_bytes
    windows += len(classifier.flush())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert windows == 1199
    # Ring (2 x 4.5 s) + batch (16 x 3 s) of float32 is ~5 MB; the stream is 159 MB.
    assert peak < 8e6 and stream_bytes > 19 * peak


@pytest.fixture(scope="module")
def tiny_run(toy_store):
    """A cnn_small trained on the toy bands: it separates all three confidently in ~2 s (the
    tiny 'cnn' at 8 epochs still confuses 'high' with 'mid' at near-uniform probabilities)."""
    config = TrainConfig.tiny_preset("toy", "cnn_small", epochs=12, batch_size=4, lr=3e-3, seed=1)
    run_id = fit(toy_store, config, progress=False).run_id
    return run_id, load_run(toy_store, run_id, device="cpu")


ORDER = ["mid", "high", "low"]


def test_a_mix_of_toy_genres_gives_its_sections_in_order(toy_store, tiny_run, tmp_path):
    # 44.1 kHz stereo, so the stream is resampled block by block on the way in.
    mono = np.concatenate([band_clip(g, 50 + i, 12.0, sr=44100) for i, g in enumerate(ORDER)])
    path = write(tmp_path / "mix.wav", np.stack([mono, mono], axis=1), sr=44100)
    result = classify_file(toy_store, path, run_id=tiny_run[0], progress=False, out=tmp_path / "mix.json")
    assert [s.genre for s in result.sections] == ORDER
    for section, true_start in zip(result.sections[1:], (12.0, 24.0)):
        assert abs(section.start_s - true_start) <= 3.0
    assert result.sections[-1].end_s == pytest.approx(36.0, abs=0.01)
    assert result.seconds_audio == pytest.approx(36.0, abs=0.01) and (tmp_path / "mix.json").is_file()
    assert min(s.confidence for s in result.sections) > 0.6


def test_mix_benchmark_scores_a_streamed_concatenation(tiny_run, tmp_path):
    clips = [(write(tmp_path / f"{g}{i}.wav", band_clip(g, 70 + i, 12.0)), g)
             for i, g in enumerate(["low", "low", "high", "mid"])]
    report = mix_benchmark(tiny_run[1], clips)
    assert report["n_true_sections"] == 3 and report["n_sections"] == 3  # the two lows merge
    assert report["boundary_error_s"] <= 3.0 and report["section_accuracy"] >= 0.85
    assert report["seconds_audio"] == pytest.approx(48.0)


def test_classify_array_and_file_agree(toy_store, tiny_run, tmp_path):
    gap = np.zeros(6 * SR, np.float32)
    y = np.concatenate([band_clip("high", 5, 10.0), gap, band_clip("low", 6, 10.0)])
    path = write(tmp_path / "a.wav", y, subtype="FLOAT")
    from_file = classify_file(toy_store, path, run_id=tiny_run[0], progress=False)
    from_array = classify_array(tiny_run[1], y, SR)
    same(from_array.predictions, from_file.predictions)
    assert [s.genre for s in from_file.sections] == ["high", SILENCE, "low"]
    streamed = list(classify_stream(path, tiny_run[1], block_s=0.7))  # other blocks, other batches
    np.testing.assert_allclose([p.probs for p in streamed], [p.probs for p in from_file.predictions],
                               atol=1e-5)


def test_silent_file_says_so(toy_store, tiny_run, tmp_path):
    path = write(tmp_path / "silent.wav", np.zeros(8 * SR, np.float32))
    with pytest.raises(ValueError, match=r"silent\.wav: no audible audio \(peak below -60 dBFS\)"):
        classify_file(toy_store, path, run_id=tiny_run[0], progress=False)


def test_too_short_file_says_so(toy_store, tiny_run, tmp_path):
    path = write(tmp_path / "short.wav", band_clip("low", 0, 1.0))
    with pytest.raises(ValueError, match=r"short\.wav: too short to classify"):
        classify_file(toy_store, path, run_id=tiny_run[0], progress=False)


def test_unreadable_file_names_itself(toy_store, tiny_run, tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are not samples\n" * 50)
    with pytest.raises(AudioError, match=r"notes\.wav: not decodable"):
        classify_file(toy_store, path, run_id=tiny_run[0], progress=False)


def test_latency_benchmark_reports_speed(tiny_run):
    report = latency_benchmark(tiny_run[1], minutes=0.5)
    assert report["windows"] == 19  # 30 s: windows at 0, 1.5, ..., 27 s; no tail left over
    assert report["ms_per_window"] > 0 and report["real_time_factor"] < 1
    assert report["speed_x"] == pytest.approx(1 / report["real_time_factor"])


def test_classify_recording_gives_the_timeline_and_the_loudest_windows_gradcam(tiny_run):
    """The Classify page's one call: bytes in, timeline, verdict and loudest-window Grad-CAM out."""
    import io

    import soundfile as sf

    from genre_core.live.recording import RecordingError, classify_recording

    quiet, loud = 0.2 * band_clip("low", 11, 9.0), band_clip("high", 12, 6.0)
    buffer = io.BytesIO()
    sf.write(buffer, np.concatenate([quiet, loud]), SR, format="WAV")
    heard = classify_recording(tiny_run[1], buffer.getvalue(), "mix.wav")
    assert [s.genre for s in heard.result.sections] == ["low", "high"]
    genre, share = heard.verdict()
    assert genre == "low" and share == pytest.approx(9 / 15, abs=0.15)
    assert len(heard.frame) == len(heard.result.predictions)
    cam = heard.loudest
    assert cam.start_s >= 8.0 and cam.genre == "high" and cam.cam.max() == pytest.approx(1.0)
    assert cam.image["mel"].shape[0] == cam.cam.shape[0] == 128 and heard.representation == "logmel"
    with pytest.raises(RecordingError, match="notes.txt is not audio GenreLens can read"):
        classify_recording(tiny_run[1], b"not samples at all" * 40, "notes.txt")


def test_loudest_window():
    sr = 1000
    y = np.zeros(10 * sr, dtype=np.float32)
    y[6 * sr: 7 * sr] = 1.0
    start, window = loudest_window(y, sr, 2.0, hop_s=0.5)
    assert 5.0 <= start <= 6.0 and window.size == 2 * sr and window.max() == 1.0
    start, window = loudest_window(y[:500], sr, 2.0, hop_s=0.5)  # shorter than a window: padded
    assert start == 0.0 and window.size == 2 * sr


def test_display_spectrogram_is_librosas_log_mel():
    """The Track and Classify pages draw features.spectral.mel_image (LogMel), which replaced a
    librosa mel in the query layer: the image is the same to well under a tenth of a dB."""
    import librosa

    from genre_core.features.spectral import mel_image

    y = band_clip("mid", 3, 4.0)
    image = mel_image(y, sr=SR, max_frames=10_000)
    reference = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, n_fft=2048, hop_length=512,
                                                                   n_mels=128), ref=np.max, top_db=80.0)
    np.testing.assert_allclose(image["mel"], reference, atol=0.05)
    assert image["duration_s"] == pytest.approx(4.0) and image["freqs"].shape == (128,)
    assert mel_image(y, sr=SR, max_frames=50)["mel"].shape == (128, 43)  # 173 frames max-pooled by 4
