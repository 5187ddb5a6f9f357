"""The Track page's player: one self-contained HTML page (no streamlit here; the page shows it
with `st.iframe`) holding the track's audio, its spectrogram with Grad-CAM overlays, the
waveform and the window timeline, with ONE playhead over all three, click-to-seek, and
buttons that loop a chosen window (the one the model was surest about, the one most against
the true genre).

The app's Content-Security-Policy allows media and images from its own origin and data:
URLs only, and no script from elsewhere, so everything travels inside the page: audio and
images as data: URIs (images drawn here with PIL), a few lines of plain JavaScript, no
library. Every string that came from a dataset (genre names) goes through `untrusted.html`.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image

from genre_core.app.player_page import PAGE
from genre_core.untrusted import html as esc

PLAYER_SR = 22050  # what the player embeds: the rate the CNNs hear, mono
WAV_MAX_S = 60.0  # up to this long the audio is 16-bit WAV (exact timing); longer goes as MP3
SPEC_PX = (1200, 256)  # (width, height) of the spectrogram image; the browser stretches it
WAVE_PX = (1200, 72)
CAM_RAMP = ((0.0, (255, 60, 0, 0)), (0.35, (255, 60, 0, 64)), (1.0, (255, 200, 0, 255)))  # as charts.spectrogram
HZ_MARKS = (100, 250, 500, 1000, 2000, 4000, 8000)
# Grad-CAM on a white ground (thumbnails here, heat maps in evidence): white to dark red.
EVIDENCE_RAMP = ((0.0, "#FFFFFF"), (0.2, "#FEE8A6"), (0.5, "#FD9A44"), (0.8, "#E03B24"), (1.0, "#7F0000"))


@dataclass(frozen=True)
class Loop:
    """A window a button loops: `label` on the button, [start_s, end_s) of the track, and what
    the model said there (`note`, shown while it loops). Plain text (escaped where drawn)."""

    key: str  # "surest" | "against"
    label: str
    start_s: float
    end_s: float
    note: str
    color: str


@dataclass(frozen=True)
class Spot:
    """A span marked on the waveform lane, [start_s, end_s): where a detector found damage, or
    a duplicate's matching moment; `label` its legend words, `note` its tooltip (plain text)."""

    start_s: float
    end_s: float
    label: str
    note: str
    color: str = "#C62828"


@dataclass(frozen=True)
class Overlay:
    """A Grad-CAM map drawn over the spectrogram: `label` on its radio button, `png` a data URI."""

    label: str
    png: str


@dataclass(frozen=True)
class PlayerMedia:
    """The heavy part of a player, made once per track (cache it): audio and images as data
    URIs, the track's duration in seconds, the spectrogram's band centres in Hz (low first)."""

    audio: str
    duration_s: float
    spectrogram: str
    waveform: str
    freqs_hz: tuple[float, ...]


# -- media as data URIs ------------------------------------------------------------------------


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def audio_bytes(y: np.ndarray, sr: int) -> tuple[bytes, str]:
    """(encoded audio, MIME type) of mono (N,) float audio: 16-bit WAV up to WAV_MAX_S (sample
    exact, every browser), MP3 beyond (a tenth of the size; a 10-min track is ~5 MB)."""
    y = np.clip(np.nan_to_num(np.asarray(y, dtype=np.float32)), -1.0, 1.0)
    buffer = io.BytesIO()
    if len(y) <= WAV_MAX_S * sr:
        sf.write(buffer, y, sr, format="WAV", subtype="PCM_16")
        return buffer.getvalue(), "audio/wav"
    sf.write(buffer, y, sr, format="MP3", subtype="MPEG_LAYER_III")
    return buffer.getvalue(), "audio/mpeg"


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")  # optimize=True: 5% smaller, 3x the time
    return buffer.getvalue()


def _columns(values: np.ndarray, width: int, reduce) -> np.ndarray:
    """(R, T) -> (R, <= width) by `reduce` (np.max, np.min...) over equal column groups."""
    if values.shape[1] <= width:
        return values
    edges = np.linspace(0, values.shape[1], width + 1).astype(int)
    return reduce.reduceat(values, edges[:-1], axis=1)


def spectrogram_png(mel_db: np.ndarray, *, top_db: float = 80.0, width: int = SPEC_PX[0]) -> bytes:
    """A log-mel image (M, T) in dB below its loudest bin -> grey PNG, loud dark and quiet
    light, the lowest band at the bottom, at most `width` columns (max-pooled)."""
    db = _columns(np.asarray(mel_db, dtype=np.float32), width, np.maximum)
    level = np.clip((db + top_db) / top_db, 0.0, 1.0)  # 0 = top_db below the peak, 1 = the peak
    grey = (255 * (1.0 - level ** 1.4) * 0.92 + 10).astype(np.uint8)  # a little darker than paper
    return png_bytes(Image.fromarray(grey[::-1], mode="L"))


def cam_rgba(cam: np.ndarray) -> np.ndarray:
    """A map (bands, frames) in [0, 1] -> (bands, frames, 4) uint8 on CAM_RAMP (transparent
    for no evidence, orange to opaque yellow for the most), the lowest band last (image row 0
    is the top)."""
    v = np.clip(np.nan_to_num(np.asarray(cam, dtype=np.float32)), 0.0, 1.0)[::-1]
    stops = np.array([s for s, _ in CAM_RAMP])
    colours = np.array([c for _, c in CAM_RAMP], dtype=np.float32)  # (S, 4)
    out = np.stack([np.interp(v, stops, colours[:, ch]) for ch in range(4)], axis=-1)
    return np.round(out).astype(np.uint8)


def cam_png(cam: np.ndarray) -> bytes:
    """A Grad-CAM map as a small transparent PNG (one pixel per cell: the browser smooths it
    when it stretches it over the spectrogram)."""
    return png_bytes(Image.fromarray(cam_rgba(cam), mode="RGBA"))


def cam_thumbnail(cam: np.ndarray, size: tuple[int, int] = (320, 96)) -> bytes:
    """A small picture of a Grad-CAM map (bands, frames) in [0, 1], lowest band at the bottom,
    on EVIDENCE_RAMP (white: no evidence, dark red: the most; the Track page's Grad-CAM charts
    use the same), as PNG bytes of `size` (width, height) pixels."""
    v = np.clip(np.nan_to_num(np.asarray(cam, dtype=np.float32)), 0.0, 1.0)[::-1]
    stops = [s for s, _ in EVIDENCE_RAMP]
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for _, c in EVIDENCE_RAMP], dtype=np.float32)
    image = np.stack([np.interp(v, stops, rgb[:, ch]) for ch in range(3)], axis=-1)
    return png_bytes(Image.fromarray(np.round(image).astype(np.uint8), mode="RGB").resize(size, Image.BILINEAR))


def waveform_png(y: np.ndarray, *, size: tuple[int, int] = WAVE_PX, color=(78, 121, 167)) -> bytes:
    """The min/max envelope of (N,) audio as a PNG of `size` (width, height), transparent
    behind, full scale [-1, 1] top to bottom."""
    width, height = size
    y = np.asarray(y, dtype=np.float32)
    image = np.zeros((height, width, 4), dtype=np.uint8)
    if y.size:
        edges = np.linspace(0, y.size, width + 1).astype(int)
        starts = np.minimum(edges[:-1], y.size - 1)
        high, low = np.maximum.reduceat(y, starts), np.minimum.reduceat(y, starts)
        rows = np.arange(height)[:, None]  # (H, 1): row 0 is +1, the last row -1
        top = np.round((1 - np.clip(high, -1, 1)) / 2 * (height - 1))[None, :]
        bottom = np.round((1 - np.clip(low, -1, 1)) / 2 * (height - 1))[None, :]
        inside = (rows >= top) & (rows <= bottom)
        image[inside] = (*color, 230)
        image[height // 2, :] = (*color, 255)  # the zero line, so silence still shows a trace
    return png_bytes(Image.fromarray(image, mode="RGBA"))


def player_media(y: np.ndarray, sr: int, mel: Mapping) -> PlayerMedia:
    """Everything heavy of a track's player: its audio (N,) at `sr`, and its `mel`
    (features.spectral.mel_image: "mel" (M, T) dB, "duration_s", "freqs")."""
    data, mime = audio_bytes(y, sr)
    return PlayerMedia(audio=data_uri(data, mime), duration_s=float(len(y) / sr),
                       spectrogram=data_uri(spectrogram_png(mel["mel"]), "image/png"),
                       waveform=data_uri(waveform_png(y), "image/png"),
                       freqs_hz=tuple(float(f) for f in mel["freqs"]))


def overlay(label: str, cam: np.ndarray) -> Overlay:
    return Overlay(label, data_uri(cam_png(cam), "image/png"))


# -- which windows -----------------------------------------------------------------------------


def key_windows(segments: pd.DataFrame, window_s: float, *, true: str, predicted: str | None,
                duration_s: float | None = None) -> list[Loop]:
    """The windows worth looping, from the run's per-window probabilities (`segments`: long
    start_s, genre, prob): the window where the model was surest of the genre it predicted for
    the track, and the window most against the true genre (lowest probability of `true`).
    Each is [start_s, start_s + window_s), cut at `duration_s`. Empty without segments."""
    if segments.empty or predicted is None:
        return []
    wide = segments.pivot_table(index="start_s", columns="genre", values="prob", aggfunc="first")
    loops = []
    for key, genre, pick, colour in (("surest", predicted, "idxmax", "#2E7D32"),
                                     ("against", true, "idxmin", "#C62828")):
        if genre not in wide:
            continue
        start = float(getattr(wide[genre], pick)())
        end = start + float(window_s)
        if duration_s is not None:
            end = min(end, float(duration_s))
        top = wide.loc[start].idxmax()
        said = f"{genre} {wide.loc[start, genre]:.0%}" + (
            "" if top == genre else f", top {top} {wide.loc[start, top]:.0%}")
        label = (f"Loop the surest {window_s:g} s" if key == "surest"
                 else f"Loop the window most against {true}")
        loops.append(Loop(key, label, start, end, f"{start:.1f}–{end:.1f} s: {said}", colour))
    return loops


def timeline_cells(segments: pd.DataFrame, window_s: float, colors: Mapping[str, str],
                   duration_s: float) -> list[dict]:
    """One cell per window for the timeline lane: from its start to the next window's start
    (windows overlap; the last runs to its end), coloured by its top genre, with what the
    model said there: [{start_s, end_s, genre, prob, color}]."""
    if segments.empty:
        return []
    wide = segments.pivot_table(index="start_s", columns="genre", values="prob", aggfunc="first").sort_index()
    starts = wide.index.to_numpy(dtype=float)
    ends = np.append(starts[1:], min(starts[-1] + window_s, duration_s))
    cells = []
    for start, end, (_, probs) in zip(starts, ends, wide.iterrows()):
        genre = probs.idxmax()
        cells.append(dict(start_s=float(start), end_s=float(max(end, start)), genre=str(genre),
                          prob=float(probs[genre]), color=colors.get(genre, "#888888")))
    return cells


# -- the page ----------------------------------------------------------------------------------


def _hz(f: float) -> str:
    return f"{f / 1000:g} kHz" if f >= 1000 else f"{f:g} Hz"


def _percent(t: float, duration: float) -> str:
    return f"{100.0 * t / duration:.4f}%" if duration > 0 else "0%"


def _ticks(duration: float) -> list[float]:
    step = next(s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if duration / s <= 12)
    return [float(t) for t in np.arange(0, duration + 1e-9, step)]


def _hz_labels(freqs_hz: Sequence[float]) -> str:
    """Frequency labels beside the spectrogram lane, at round frequencies, never overlapping."""
    freqs, out, last = np.asarray(freqs_hz), "", -100.0
    for f in HZ_MARKS:
        height = 100.0 * (np.searchsorted(freqs, f) + 0.5) / max(1, len(freqs))
        if len(freqs) and freqs[0] <= f < freqs[-1] and height - last >= 8.0:
            out += f'<span class="hz" style="bottom:{height:.3f}%">{_hz(f)}</span>'
            last = height
    return out


def _overlay_html(overlays: Sequence[Overlay], opacity: float) -> tuple[str, str]:
    """(the overlay images, the radio buttons that choose one)."""
    images = "".join(
        f'<img class="cam" data-cam="{i}" src="{o.png}" alt="" style="opacity:{opacity if i == 0 else 0}">'
        for i, o in enumerate(overlays))
    if not overlays:
        return images, ""
    radios = "".join(
        f'<label><input type="radio" name="cam" value="{i}"{" checked" if i == 0 else ""}> {esc(o.label)}</label>'
        for i, o in enumerate(overlays))
    return images, (f'<span class="group">Grad-CAM over the spectrogram: {radios}'
                    f'<label><input type="radio" name="cam" value="-1"> none</label>'
                    f'<label class="opacity">opacity <input id="opacity" type="range" min="0" max="1" step="0.05" '
                    f'value="{opacity}"></label></span>')


def _timeline_html(cells: Sequence[dict], loops: Sequence[Loop], d: float) -> tuple[str, str]:
    """(the window lane: cells and the loopable windows' frames, its legend)."""
    if not cells:
        return "", ""
    divs = "".join(
        f'<div class="cell" style="left:{_percent(c["start_s"], d)};width:{_percent(c["end_s"] - c["start_s"], d)};'
        f'background:{c["color"]};opacity:{0.35 + 0.65 * c["prob"]:.2f}" '
        f'title="{c["start_s"]:.1f} s: {esc(c["genre"])} {c["prob"]:.0%}"></div>'
        for c in cells)
    divs += "".join(  # the first window's frame in the lane's top half, the second's in its bottom half
        f'<div class="mark" style="left:{_percent(lp.start_s, d)};width:{_percent(lp.end_s - lp.start_s, d)};'
        f'{"top:0;bottom:45%" if i % 2 == 0 else "top:45%;bottom:0"};border-color:{lp.color}" title="{esc(lp.note)}"></div>'
        for i, lp in enumerate(loops))
    shown = dict.fromkeys((c["genre"], c["color"]) for c in cells)
    legend = "windows coloured by the genre the model heard most in each:" + "".join(
        f'<i style="background:{color}"></i>{esc(genre)}' for genre, color in shown)
    return f'<div class="lane timeline" data-lane="timeline">{divs}</div>', legend


def _spots_html(spots: Sequence[Spot], d: float) -> tuple[str, str]:
    """(the spans over the waveform, their legend)."""
    divs = "".join(
        f'<div class="spot" data-start="{sp.start_s:.3f}" style="left:{_percent(sp.start_s, d)};'
        f'width:{_percent(max(sp.end_s - sp.start_s, 0.0), d)};border-color:{sp.color};background:{sp.color}33" '
        f'title="{esc(sp.note)}"></div>' for sp in spots)
    shown = dict.fromkeys((sp.label, sp.color) for sp in spots)
    legend = "".join(f'<i style="background:{color}"></i>{esc(note)}' for note, color in shown)
    return divs, (f"marked on the waveform: {legend}" if spots else "")


def _buttons_html(loops: Sequence[Loop]) -> str:
    if not loops:
        return ""
    return "".join(
        f'<button class="loop" data-loop="{i}" style="border-color:{lp.color}" title="{esc(lp.note)}">⟳ {esc(lp.label)}</button>'
        for i, lp in enumerate(loops)) + '<button id="stop" disabled>■ Stop looping</button>'


def player_html(media: PlayerMedia, *, cells: Sequence[dict] = (), loops: Sequence[Loop] = (),
                overlays: Sequence[Overlay] = (), opacity: float = 0.6, presentation: bool = False,
                autoplay_token: str | None = None, start_s: float = 0.0, spots: Sequence[Spot] = (),
                link_time: bool = True) -> str:
    """The player as one HTML document (for `st.iframe(..., height="content")`).

    Lanes, top to bottom, on one time axis: spectrogram (with the `overlays`, one shown at a
    time, chosen by radio buttons), waveform, window timeline (`cells` from
    `timeline_cells`). One playhead crosses all three; a click anywhere on them seeks there;
    each of `loops` gets a button that loops its window (a seek outside it stops the loop).
    `autoplay_token`: play once on load, unless a player with the same token already did in
    this browser tab (a rerun must not restart the music). `start_s`: where the playhead
    starts (a link's `t=`); as it plays, pauses and seeks, the player writes its time back into
    the page's address as `t=` (genre_core.app.links), for the address bar and "Copy link"
    (`link_time` False: it does not, where the page's link names no single track). `spots`:
    spans marked on the waveform lane (damage found there, a duplicate's matching moment).
    """
    d = media.duration_s
    images, radios = _overlay_html(overlays, opacity)
    lane, legend = _timeline_html(cells, loops, d)
    spot_divs, spot_legend = _spots_html(spots, d)
    legend = " · ".join(part for part in (legend, spot_legend) if part)
    ticks = "".join(f'<span class="tick" style="left:{_percent(t, d)};transform:translateX({-100 * min(t / d, 1) if d else 0:.0f}%)">'
                    f'{t:g} s</span>' for t in _ticks(d))  # shifted left by their share: none sticks out
    script_data = json.dumps({"duration": d, "loops": [[lp.start_s, lp.end_s, lp.note] for lp in loops],
                              "token": autoplay_token, "linkTime": bool(link_time),
                              "start": max(0.0, min(float(start_s), d)), "freqs": [round(f) for f in media.freqs_hz]})
    scale = 1.35 if presentation else 1.0
    return PAGE.format(
        font=round(14 * scale), spec_h=round(200 * scale), wave_h=round(56 * scale), time_h=round(30 * scale),
        audio=media.audio, spectrogram=media.spectrogram, waveform=media.waveform, hz_labels=_hz_labels(media.freqs_hz),
        overlays=images, cam_choice=radios, buttons=_buttons_html(loops), timeline=lane, spots=spot_divs,
        timeline_label='<div class="g timeline"><span class="lanelabel">windows</span></div>' if cells else "",
        legend=legend, ticks=ticks, total=f"{d:.1f}",
        data=script_data.replace("<", "\\u003c"))  # no "</script>" or "<!--" inside the script
