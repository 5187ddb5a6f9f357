"""The report's pictures as inline SVG (no script, nothing fetched): the map of tracks with its
mistakes marked, and a Grad-CAM map drawn over its track's spectrogram with time and
frequency axes.

Drawn for a projector and for colour-blind readers: genres take the Okabe-Ito palette, and a
mistake is marked by shape, not by hue: a black ring inside a white halo, which stands out on
light and dark dots alike. The spectrogram and the Grad-CAM overlay are the Track page's own
images (app.player): grey sound, loud dark, evidence orange to yellow; only the map's strongest
cells are coloured, the ones the report's second player lets through, so the picture and the
sound say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from genre_core.app.player import HZ_MARKS
from genre_core.untrusted import html as _e

MAP_MAX_POINTS = 3000  # an SVG of more points is slow to open and no easier to read
# Colour-blind-safe qualitative palette (Okabe-Ito plus greys/extra hues for up to 12 genres).
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000",
           "#999999", "#882255", "#44AA99", "#117733")
# A mistake's marker: 21:1 between them, so one of the two stands >= 4.6:1 against any dot's colour.
HALO, RING = "#FFFFFF", "#000000"
SNIPPET_COLOUR = "#0072B2"  # the frame around the seconds the reader hears
# Figure geometry (SVG user units; the browser scales the whole figure to its column).
FIG_W, FIG_H, LEFT, RIGHT, TOP, BOTTOM = 800, 340, 124, 18, 12, 72
TICK_STROKE = 'stroke="#333" stroke-width="1.5"'


def mistake_marker(x: float, y: float, fill: str, r: float = 5.5) -> str:
    """A misclassified track's dot, ringed: white halo, black ring, the dot in its genre's colour."""
    return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r + 4:.1f}" fill="none" stroke="{HALO}" stroke-width="6"/>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r + 4:.1f}" fill="none" stroke="{RING}" stroke-width="2.5"/>'
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{fill}" stroke="{RING}" stroke-width="1"/>')


def map_svg(points: pd.DataFrame, labels: dict[str, str], wrong: dict[str, str], size: int = 640) -> str:
    """The projection `points` (track_id, x, y) as dots coloured by true genre (`labels`,
    track_id -> genre); the tracks of `wrong` (track_id -> the genre the model said) ringed,
    drawn last so no dot hides them. Returns the SVG and its legend."""
    if points.empty:
        return "<p class=note>No map yet: run <code>analyze</code> for this run to draw one.</p>"
    if len(points) > MAP_MAX_POINTS:  # a random sample keeps the share of mistakes as it is
        points = points.sample(MAP_MAX_POINTS, random_state=0)
    x, y = points.x.to_numpy(), points.y.to_numpy()
    sx = (x - x.min()) / max(np.ptp(x), 1e-9) * (size - 40) + 20
    sy = (1 - (y - y.min()) / max(np.ptp(y), 1e-9)) * (size - 40) + 20
    true = [g if isinstance(g := labels.get(t), str) else "?" for t in points.track_id]  # unlabelled: "?"
    genres = sorted(set(true))
    colour = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(genres)}
    dots, marked = [], []
    for track_id, genre, px, py in zip(points.track_id, true, sx, sy):
        if track_id in wrong:
            marked.append(f'<g class="mistake">{mistake_marker(px, py, colour[genre])}<title>{_e(track_id)}: '
                          f'{_e(genre)}, the model said {_e(wrong[track_id])}</title></g>')
        else:
            dots.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4.5" fill="{colour[genre]}">'
                        f"<title>{_e(track_id)} ({_e(genre)})</title></circle>")
    legend = "".join(f'<span class="key"><i style="background:{c}"></i>{_e(g)}</span>' for g, c in colour.items())
    ring = f'<svg viewBox="0 0 26 26" width="26" height="26">{mistake_marker(13, 13, "#999999", 5)}</svg>'
    return (f'<svg class="map" viewBox="0 0 {size} {size}" width="{size}" height="{size}" role="img" '
            f'aria-label="map of tracks; ringed dots are test songs the model got wrong">{"".join(dots)}'
            f'{"".join(marked)}</svg><div class="legend">{legend}<span class="key">{ring}ringed (black ring, white '
            f"edge): a test song the model got wrong; its colour is its true genre</span></div>")


@dataclass
class Spectrogram:
    """A track's log-mel image as the run's model sees it (features.spectral.mel_image) as a
    PNG data URI, and what its axes span."""

    png: str | None  # data URI; None when the audio could not be read (the map is drawn alone)
    duration_s: float
    fmin: float | None  # Hz of the image's bottom and top edges; None: its rows are not mel bands (MFCC)
    fmax: float | None


def _hz(f: float) -> str:
    return f"{f / 1000:g} kHz" if f >= 1000 else f"{f:g} Hz"


def time_ticks(duration: float) -> list[float]:
    """Round times from 0 to `duration` s, at most 9 of them."""
    step = next((s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if duration / s <= 8), 1200)
    return [float(t) for t in np.arange(0, duration + 1e-9, step)]


def strongest(cam: np.ndarray, keep: float) -> np.ndarray:
    """A map (bands, frames) in [0, 1] with only its top `keep` share of cells left (the cells the
    listenable map keeps: analysis.listen.top_share_mask), rescaled to [0.45, 1] so the weakest
    of them still shows over a spectrogram and the strongest is opaque; the rest 0 (transparent)."""
    from genre_core.analysis.listen import top_share_mask

    mask = top_share_mask(cam, keep)
    kept = cam[mask]
    if not kept.size:
        return np.zeros_like(cam)
    low, span = float(kept.min()), max(float(np.ptp(kept)), 1e-9)
    return np.where(mask, 0.45 + 0.55 * (cam - low) / span, 0.0).astype(np.float32)


def cam_figure(cam_png: str, spec: Spectrogram, *, genre: str, snippet: tuple[float, float] | None,
               keep: float) -> str:
    """The top `keep` share of a Grad-CAM map (`cam_png`, a transparent overlay: app.player.cam_png
    of `strongest`) over its track's spectrogram, in an SVG with a time axis (s) and a frequency
    axis (Hz, on the mel scale the bands are uniform on), the `snippet` (start, end) s the reader
    hears framed; captioned."""
    pw, ph = FIG_W - LEFT - RIGHT, FIG_H - TOP - BOTTOM
    d = max(spec.duration_s, 1e-6)
    box = f'x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"'
    parts = [f'<rect {box} fill="#EEEEEE"/>']
    if spec.png:
        parts.append(f'<image href="{spec.png}" {box} preserveAspectRatio="none"/>')
    parts.append(f'<image href="{cam_png}" {box} preserveAspectRatio="none" opacity="0.8"/>')
    if snippet is not None:
        a, b = (LEFT + pw * min(max(t / d, 0.0), 1.0) for t in snippet)
        parts.append(f'<rect class="snippet" x="{a:.1f}" y="{TOP + 1.5}" width="{max(b - a, 2):.1f}" height="{ph - 3}" '
                     f'fill="none" stroke="{SNIPPET_COLOUR}" stroke-width="3" stroke-dasharray="9 5"/>')
    parts.append(f'<rect {box} fill="none" stroke="#333" stroke-width="1.5"/>')
    hz = spec.fmin is not None and spec.fmax is not None
    last = float("inf")
    for f, share in _hz_ticks(spec.fmin, spec.fmax) if hz else ():
        y = TOP + ph * (1 - share)
        if last - y < 26:  # labels never touch: 100 and 250 Hz lie close on the mel scale
            continue
        last = y
        parts.append(f'<line x1="{LEFT - 7}" x2="{LEFT}" y1="{y:.1f}" y2="{y:.1f}" {TICK_STROKE}/>'
                     f'<text class="tick" x="{LEFT - 11}" y="{y + 6:.1f}" text-anchor="end">{_hz(f)}</text>')
    for t in time_ticks(d):
        x = LEFT + pw * t / d
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + ph}" y2="{TOP + ph + 7}" {TICK_STROKE}/>'
                     f'<text class="tick" x="{x:.1f}" y="{TOP + ph + 27}" text-anchor="middle">{t:g}</text>')
    parts.append(f'<text class="axis" x="{LEFT + pw / 2:.1f}" y="{FIG_H - 8}" text-anchor="middle">time (s)</text>'
                 f'<text class="axis" transform="translate(24 {TOP + ph / 2:.1f}) rotate(-90)" text-anchor="middle">'
                 f'{"frequency (Hz)" if hz else "feature row"}</text>')
    y_axis = (f"frequency (Hz), {_hz(spec.fmin)} to {_hz(spec.fmax)}" if hz else
              "the model's feature rows (not frequencies)")
    under = "the song's spectrogram" if spec.png else "no spectrogram"
    label = f"Grad-CAM for {_e(genre)} over {under}; x axis: time (s), 0 to {d:.1f}; y axis: {y_axis}"
    sound = (", over the song's sound (grey: darker is louder; low pitches at the bottom); the second player keeps "
             "just these parts" if spec.png else "; no spectrogram beneath it here")
    frame = " The dashed blue frame marks the seconds you hear." if snippet is not None else ""
    return (f'<figure><svg class="cam" viewBox="0 0 {FIG_W} {FIG_H}" role="img" aria-label="{label}">{"".join(parts)}'
            f"</svg><figcaption>What pushed it towards {_e(genre)}: in colour, the {keep:.0%} of the map where its "
            f"Grad-CAM evidence is strongest (yellow: the most){sound}.{frame}</figcaption></figure>")


def _hz_ticks(fmin: float, fmax: float) -> list[tuple[float, float]]:
    """(Hz, height as a share of the image) of the round frequencies between fmin and fmax, on
    the front ends' (Slaney) mel scale, on which a map's bands are uniform."""
    import librosa

    marks = [f for f in HZ_MARKS if fmin <= f <= fmax]
    low, high, *at = librosa.hz_to_mel(np.array([fmin, fmax, *marks], dtype=float))
    return [(f, float((m - low) / max(high - low, 1e-9))) for f, m in zip(marks, at)]
