"""The Track page's player page and its Grad-CAM figures, as plain functions (the clicks
themselves are tested in a real browser: test_browser_track)."""

from __future__ import annotations

import base64
import io
import re

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

from genre_core.app import evidence, player

SR = 22050
EVIL = '<img src=x onerror=alert(1)></script>'


def _decode(uri: str) -> bytes:
    head, data = uri.split(",", 1)
    assert head.endswith(";base64")
    return base64.b64decode(data)


def _image(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)))


def _segments(rows: dict[float, dict[str, float]]) -> pd.DataFrame:
    return pd.DataFrame([dict(start_s=s, genre=g, prob=p) for s, probs in rows.items() for g, p in probs.items()])


@pytest.mark.parametrize("seconds, mime", [(4.0, "audio/wav"), (player.WAV_MAX_S + 5, "audio/mpeg")])
def test_audio_bytes_keep_the_duration(seconds, mime):
    y = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * SR)) / SR).astype(np.float32)
    data, kind = player.audio_bytes(y, SR)
    assert kind == mime
    back, rate = sf.read(io.BytesIO(data))
    assert rate == SR and abs(len(back) / rate - seconds) < 0.1
    if mime == "audio/mpeg":
        assert len(data) < len(y) * 2 / 5  # compressed: well under 16-bit PCM


def test_spectrogram_png_puts_low_bands_at_the_bottom_and_loud_dark():
    mel = np.full((8, 20), -80.0, dtype=np.float32)
    mel[0] = 0.0  # the lowest band at the peak
    pixels = _image(player.spectrogram_png(mel))
    assert pixels.shape == (8, 20)
    assert pixels[-1].max() < 40 and pixels[0].min() > 200  # bottom row dark, top row light


def test_cam_overlay_is_transparent_without_evidence():
    cam = np.zeros((4, 5), dtype=np.float32)
    cam[0, 2] = 1.0  # the strongest cell, in the lowest band
    rgba = player.cam_rgba(cam)
    assert rgba.shape == (4, 5, 4)
    assert tuple(rgba[-1, 2]) == (255, 200, 0, 255)  # band 0 is the image's last row
    assert rgba[:-1, :, 3].max() == 0 and rgba[-1, 0, 3] == 0


def test_waveform_png_of_silence_is_its_zero_line():
    pixels = _image(player.waveform_png(np.zeros(SR, dtype=np.float32), size=(50, 11)))
    drawn = pixels[:, :, 3] > 0
    assert drawn[5].all() and drawn.sum() == 50
    loud = _image(player.waveform_png(np.ones(SR, dtype=np.float32), size=(50, 11)))
    assert (loud[0, :, 3] > 0).all()


def test_key_windows_are_the_surest_and_the_most_against_the_true_genre():
    segments = _segments({0.0: {"pop": 0.5, "jazz": 0.5}, 1.5: {"pop": 0.9, "jazz": 0.1},
                          3.0: {"pop": 0.6, "jazz": 0.4}, 4.5: {"pop": 0.2, "jazz": 0.8}})
    surest, against = player.key_windows(segments, 3.0, true="jazz", predicted="pop", duration_s=6.0)
    assert (surest.key, surest.start_s, surest.end_s) == ("surest", 1.5, 4.5)
    assert surest.label == "Loop the surest 3 s" and "pop 90%" in surest.note
    assert (against.start_s, against.end_s) == (1.5, 4.5)  # jazz 10%: the least jazz
    assert against.label == "Loop the window most against jazz"
    late = player.key_windows(segments, 3.0, true="pop", predicted="jazz", duration_s=6.0)
    assert late[0].start_s == 4.5 and late[0].end_s == 6.0  # cut at the track's end
    assert player.key_windows(segments.iloc[0:0], 3.0, true="pop", predicted="pop") == []
    assert player.key_windows(segments, 3.0, true="pop", predicted=None) == []  # a training track


def test_timeline_cells_run_from_window_to_window():
    segments = _segments({0.0: {"pop": 0.7, "jazz": 0.3}, 1.5: {"pop": 0.2, "jazz": 0.8}})
    cells = player.timeline_cells(segments, 3.0, {"pop": "#111111", "jazz": "#222222"}, 4.0)
    assert [(c["start_s"], c["end_s"], c["genre"], c["color"]) for c in cells] == [
        (0.0, 1.5, "pop", "#111111"), (1.5, 4.0, "jazz", "#222222")]


def _media(seconds: float = 4.0) -> player.PlayerMedia:
    y = (0.2 * np.random.default_rng(0).standard_normal(int(seconds * SR))).astype(np.float32)
    mel = {"mel": np.full((16, 40), -30.0, dtype=np.float32), "duration_s": seconds,
           "freqs": np.geomspace(60, 10_000, 16)}
    return player.player_media(y, SR, mel)


def test_player_page_is_self_contained_and_escapes_dataset_text():
    segments = _segments({0.0: {EVIL: 0.8, "jazz": 0.2}, 1.0: {EVIL: 0.3, "jazz": 0.7}})
    cells = player.timeline_cells(segments, 3.0, {}, 4.0)
    loops = player.key_windows(segments, 3.0, true=EVIL, predicted="jazz", duration_s=4.0)
    html = player.player_html(_media(), cells=cells, loops=loops,
                              overlays=[player.overlay(f"true genre: {EVIL}", np.ones((4, 8)))],
                              autoplay_token=EVIL)
    assert EVIL not in html and "<img src=x" not in html  # as text (&lt;img) or in a JS string (\u003cimg)
    assert html.count("</script>") == 1  # the dataset's "</script>" stays inside its JSON string
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing from another origin
    assert html.count("<audio") == 1 and 'src="data:audio/wav;base64,' in html
    assert html.count('id="playhead"') == 1
    assert html.count('class="loop"') == 2 and "Stop looping" in html
    assert html.count('class="cell"') == 2


def test_player_page_without_windows_or_maps_has_no_loop_buttons():
    html = player.player_html(_media())
    assert 'class="loop"' not in html and "Stop looping" not in html and 'name="cam"' not in html
    assert 'data-lane="spectrogram"' in html and 'data-lane="waveform"' in html


def test_presentation_mode_enlarges_the_player():
    plain, big = player.player_html(_media()), player.player_html(_media(), presentation=True)
    size = lambda html: int(re.search(r"font: (\d+)px", html).group(1))  # noqa: E731
    assert size(big) > size(plain)


# -- evidence -----------------------------------------------------------------------------------


def test_mel_edges_follow_the_run_settings():
    edges = evidence.mel_edges("logmel", {"sr": 22050, "n_mels": 128, "fmin": 0.0, "fmax": None})
    assert len(edges) == 130 and edges[0] == 0.0 and abs(edges[-1] - 11025) < 1
    assert np.all(np.diff(edges) > 0)
    assert abs(evidence.mel_edges("logmel", {"sr": 22050, "n_mels": 64, "fmax": 8000.0})[-1] - 8000) < 1
    assert len(evidence.mel_edges("musicnn", None)) == 96 + 2
    assert evidence.mel_edges("mfcc", {}) is None and evidence.mel_edges("handcrafted", {}) is None


def test_row_ranges_pool_bands_like_the_stored_maps():
    edges = np.arange(130, dtype=float)  # band j spans edges[j] .. edges[j + 2]
    pooled = evidence.row_ranges(edges, 64)  # two bands a row
    assert pooled.shape == (64, 2)
    assert tuple(pooled[0]) == (0.0, 3.0) and tuple(pooled[-1]) == (126.0, 129.0)
    one_each = evidence.row_ranges(edges, 128)
    assert tuple(one_each[5]) == (5.0, 7.0)


def test_cam_pair_shares_one_colour_scale():
    strong, weak = np.ones((4, 6), dtype=np.float32), np.ones((4, 6), dtype=np.float32)
    fig = evidence.cam_pair([("a", strong), ("b", weak)], 3.0, None)
    assert [float(np.max(t.z)) for t in fig.data] == [1.0, 1.0]  # stored: each scaled to its own maximum
    assert all(t.coloraxis == "coloraxis" for t in fig.data)
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0, 1)
    raw = evidence.cam_pair([("a", strong), ("b", weak)], 3.0, None, scales=[2.0, 0.5])
    assert [float(np.max(t.z)) for t in raw.data] == [1.0, 0.25]  # back on the raw scale


def test_cam_pair_and_band_profiles_speak_hz():
    edges = evidence.mel_edges("logmel", {"sr": 22050, "n_mels": 128})
    fig = evidence.cam_pair([("a", np.random.default_rng(0).random((64, 10)))], 3.0, edges)
    axis = fig.layout.yaxis
    assert "1 kHz" in axis.ticktext and "100 Hz" in axis.ticktext
    assert all("Hz" in y for y in fig.data[0].y)  # the hover names each row's band in Hz
    profile = evidence.band_profiles({"pop": np.linspace(0, 1, 128)}, edges, {"pop": "#123456"})
    assert "4 kHz" in profile.layout.yaxis.ticktext and len(profile.data[0].y) == 128
    assert evidence.band_profiles({"pop": np.ones(16)}, edges, {}).layout.yaxis.title.text == "band (low → high)"


def test_variant_table_reads_the_stored_probabilities():
    classes = ["jazz", "disco", "pop"]
    stored = pd.DataFrame({"variant": ["no_drums"], "probs": [np.array([0.62, 0.2, 0.18], dtype=np.float32)]})
    table = evidence.variant_table(stored, np.array([0.1, 0.71, 0.19]), classes, true="jazz", predicted="disco",
                                   labels={"no_drums": "Without the drums"})
    assert list(table.variant) == ["original", "Without the drums"]
    assert list(table.hears) == ["disco 71%", "jazz 62%"]
    assert table["p(jazz)"].round(2).tolist() == [0.1, 0.62] and table["p(disco)"].round(2).tolist() == [0.71, 0.2]


def test_variant_table_takes_the_stored_original_and_the_labels_order():
    classes = ["jazz", "disco"]
    stored = pd.DataFrame({"variant": ["original", "no_bass", "harmonic"],
                           "probs": [np.array([0.3, 0.7]), np.array([0.6, 0.4]), np.array([0.1, 0.9])]})
    table = evidence.variant_table(stored, np.array([0.2, 0.8]), classes, true="jazz", predicted="disco",
                                   labels={"harmonic": "Harmonic only", "no_bass": "No bass"})
    assert list(table.variant) == ["original", "Harmonic only", "No bass"]  # once, then as `labels` orders them
    assert table["p(jazz)"].round(2).tolist() == [0.3, 0.1, 0.6]


def test_cam_thumbnail_is_white_without_evidence_and_dark_red_at_the_most():
    cam = np.zeros((8, 10), dtype=np.float32)
    cam[0] = 1.0  # the lowest band
    pixels = _image(player.cam_thumbnail(cam, size=(10, 8)))
    assert pixels.shape == (8, 10, 3)
    assert tuple(pixels[0, 5]) == (255, 255, 255) and tuple(pixels[-1, 5]) == (0x7F, 0, 0)
