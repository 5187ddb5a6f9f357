from pathlib import Path

import numpy as np
import pytest

from genre_core import audio
from tests.helpers import SR, tone, write


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("a.wav", {}),
        ("a.au", {}),
        ("a.flac", {}),
        ("a.ogg", {}),
        ("a.mp3", {}),
        ("u8.wav", {"subtype": "PCM_U8"}),
        ("s24.wav", {"subtype": "PCM_24"}),
        ("f32.wav", {"subtype": "FLOAT"}),
    ],
)
def test_decodes_every_format_to_mono_float32_at_the_asked_rate(tmp_path, name, kwargs):
    path = write(tmp_path / name, tone(2.0), **kwargs)
    y = audio.load(path, sr=16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(y.size - 32000) <= 1200  # mp3 adds encoder delay/padding
    spectrum = np.abs(np.fft.rfft(y[:16000]))
    assert abs(np.argmax(spectrum) * 16000 / 16000 - 440) <= 2  # the tone survives


def test_stereo_48k_is_downmixed_and_resampled(tmp_path):
    left, right = tone(1.5, 440, sr=48000), tone(1.5, 440, sr=48000) * 0.0
    path = write(tmp_path / "st.wav", np.stack([left, right], axis=1), sr=48000)
    y = audio.load(path, sr=SR)
    assert y.size == int(1.5 * SR)
    assert np.max(np.abs(y)) == pytest.approx(0.25, abs=0.02)  # mean of the two channels


def test_probe_reports_header_facts(tmp_path):
    info = audio.probe(write(tmp_path / "p.flac", tone(3.0), subtype="PCM_24"))
    assert (info.sample_rate, info.channels, info.format) == (SR, 1, "FLAC")
    assert info.duration_s == pytest.approx(3.0)


def _truncated(tmp_path: Path) -> Path:
    good = write(tmp_path / "full.wav", tone(2.0)).read_bytes()
    bad = tmp_path / "trunc.wav"
    bad.write_bytes(good[:30])  # cut inside the RIFF header
    return bad


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda d: (d / "zero.wav").write_bytes(b"") and None or d / "zero.wav", "empty file"),
        (lambda d: (d / "text.wav").write_text("hello, not audio") and d / "text.wav", "not decodable"),
        (lambda d: (d / "dir.wav").mkdir() or d / "dir.wav", "is a directory"),
        (_truncated, "not decodable"),
        (lambda d: d / "absent.wav", "no such file"),
        (lambda d: write(d / "short.wav", tone(0.3)), "too short"),
        (lambda d: write(d / "silent.wav", np.zeros(SR * 2, np.float32)), "silent"),
        (lambda d: write(d / "nan.wav", np.full(SR * 2, np.nan, np.float32), subtype="FLOAT"), "NaN"),
    ],
)
def test_bad_input_raises_audio_error_naming_file_and_reason(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(audio.AudioError) as caught:
        audio.load(path)
    assert reason in caught.value.reason
    assert str(path) in str(caught.value)


def test_silent_and_short_errors_say_what_kind_they_are(tmp_path):
    with pytest.raises(audio.AudioError) as silent:
        audio.load(write(tmp_path / "s.wav", np.zeros(SR * 2, np.float32)))
    assert silent.value.kind == "silent"
    with pytest.raises(audio.AudioError) as short:
        audio.load(write(tmp_path / "t.wav", tone(0.2)))
    assert short.value.kind == "too_short"


def test_segment_makes_overlapping_windows_of_real_audio():
    y = np.arange(SR * 10, dtype=np.float32)
    windows, starts = audio.segment(y, SR, window_s=3.0, hop_s=1.5)
    assert windows.shape == (5, 3 * SR)
    assert starts.tolist() == [0.0, 1.5, 3.0, 4.5, 6.0]
    assert windows[1, 0] == y[int(1.5 * SR)]


def test_segment_pads_a_clip_shorter_than_one_window():
    windows, starts = audio.segment(np.ones(SR, np.float32), SR, window_s=3.0)
    assert windows.shape == (1, 3 * SR) and starts.tolist() == [0.0]
    assert windows[0, SR:].sum() == 0


def test_stream_blocks_equals_whole_file_decode(tmp_path):
    path = write(tmp_path / "long.wav", tone(7.3, sr=44100), sr=44100)
    whole = audio.load(path, sr=SR)
    streamed = np.concatenate(list(audio.stream_blocks(path, SR, block_s=0.7)))
    assert abs(streamed.size - whole.size) <= 2
    n = min(streamed.size, whole.size)
    assert np.max(np.abs(streamed[1000 : n - 1000] - whole[1000 : n - 1000])) < 1e-3
