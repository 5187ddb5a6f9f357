"""`genrelens report --run RUN --out report.html`: one self-contained HTML file to share.

Everything is inside the file (inline CSS, inline SVG charts, PNG Grad-CAM images and WAV audio
snippets as data: URIs; no script, font or image is fetched), so it opens from an e-mail
attachment, offline, and prints. Sized for a projector: large type, high contrast, one idea
per section: the headline in plain words with its interval, the confusion matrix, the map, the
most instructive misclassifications (listen + Grad-CAM), the dataset's faults.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from genre_core import audio, paths, untrusted
from genre_core.analysis.slice_words import p_text, rule_sentence, same_tracks_sentence
from genre_core.store import Store, StoreError

SNIPPET_S = 6.0
SNIPPET_SR = 16000  # speech-band is enough to hear the genre; keeps each snippet ~190 kB
MAP_MAX_POINTS = 3000  # an SVG of more points is slow to open and no easier to read
# Colour-blind-safe qualitative palette (Okabe-Ito plus greys/extra hues for up to 12 genres).
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000",
           "#999999", "#882255", "#44AA99", "#117733")


@dataclass
class ReportSummary:
    run_id: str
    out: Path
    n_examples: int
    n_bytes: int

    def line(self) -> str:
        return (f"report for run {self.run_id}: {self.out} ({self.n_bytes / 1e6:.1f} MB, "
                f"{self.n_examples} misclassified examples with audio)")


def write_report(store: Store, run_id: str, out: Path, *, n_examples: int = 6) -> ReportSummary:
    run = store.run(run_id)
    if run["status"] != "complete":
        raise StoreError(f"run {run_id} is {run['status']}, not complete: no report")
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"{out}: the report is an HTML file (name it .html)")
    data = _gather(store, run)
    examples = _examples(store, run, data, n_examples)
    page = _page(run, data, examples)
    with paths.atomic_write(out) as tmp:  # never half a report; a full disk: one line, no temp file
        tmp.write_text(page, encoding="utf-8")
    return ReportSummary(run_id, out, len(examples), out.stat().st_size)


# -- data ----------------------------------------------------------------------------------------

@dataclass
class _Data:
    dataset: str
    classes: list[str]
    test: pd.DataFrame  # track_id, label, predicted, probs
    accuracy: tuple[float, float, float]  # value, ci_low, ci_high
    points: pd.DataFrame  # method, track_id, x, y (one method)
    labels: pd.Series  # track_id -> true genre
    paths: pd.Series  # track_id -> audio file
    faults: pd.DataFrame  # kind, n
    slices: pd.DataFrame  # the run's stored failure slices (analysis.slices), by rank


def _gather(store: Store, run: dict) -> _Data:
    run_id, dataset_id = run["run_id"], int(run["dataset_id"])
    preds = store.predictions(run_id)
    test = preds[preds.split == "test"].reset_index(drop=True)
    if test.empty:
        raise StoreError(f"run {run_id} has no test predictions: nothing to report")
    metrics = store.metrics(run_id)
    acc = metrics[(metrics.split == "test") & (metrics.name == "track/accuracy")][["value", "ci_low", "ci_high"]]
    accuracy = tuple(float(v) for v in acc.iloc[0]) if len(acc) else (float((test.label == test.predicted).mean()),
                                                                     float("nan"), float("nan"))
    maps = store.projections(run_id)
    method = "umap" if (maps.method == "umap").any() else (maps.method.iloc[0] if len(maps) else None)
    points = maps[maps.method == method].reset_index(drop=True)
    tracks = store.dataset_tracks(dataset_id, ("track_id", "label", "path")).set_index("track_id")
    faults = (store.fault_rows(dataset_id).groupby("kind").track_id.nunique().rename("n")
              .sort_values(ascending=False, kind="stable").reset_index())
    name = store.dataset_name(dataset_id)
    return _Data(name, list(run["classes"]), test, accuracy, points,
                 tracks["label"], tracks["path"], faults, store.failure_slices(run_id))


@dataclass
class _Example:
    track_id: str
    label: str
    predicted: str
    confidence: float
    start_s: float
    wav: bytes | None
    gradcam_png: bytes | None


def _examples(store: Store, run: dict, data: _Data, n: int) -> list[_Example]:
    """The misclassifications a listener learns most from: the most confident wrong calls."""
    wrong = data.test[data.test.label != data.test.predicted].copy()
    if wrong.empty:
        return []
    column = {g: i for i, g in enumerate(data.classes)}
    wrong["confidence"] = [p[column[g]] for p, g in zip(wrong.probs, wrong.predicted)]
    wrong = wrong.sort_values("confidence", ascending=False).head(n)
    out = []
    for row in wrong.itertuples():
        start = _loudest_wrong_window(store, run["run_id"], row.track_id, column[row.predicted])
        out.append(_Example(row.track_id, row.label, row.predicted, float(row.confidence), start,
                            _snippet(data.paths.get(row.track_id), start),
                            _gradcam_png(store, run["run_id"], row.track_id, row.predicted)))
    return out


def _loudest_wrong_window(store: Store, run_id: str, track_id: str, column: int) -> float:
    """Start (s) of the window where the model was surest of the wrong genre: what to hear."""
    rows = store.segment_predictions(run_id, track_id)
    if rows.empty:
        return 0.0
    return float(rows.start_s.iloc[int(np.argmax([p[column] for p in rows.probs]))])


def _snippet(path: str | None, start_s: float) -> bytes | None:
    """SNIPPET_S seconds from start_s as 16-bit mono WAV, or None when the file cannot be read."""
    if path is None:
        return None
    try:
        y = audio.load(path, sr=SNIPPET_SR, reject_silent=False)
    except (audio.AudioError, OSError):
        return None
    begin = int(start_s * SNIPPET_SR)
    clip = y[begin: begin + int(SNIPPET_S * SNIPPET_SR)]
    buffer = io.BytesIO()
    sf.write(buffer, clip, SNIPPET_SR, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _gradcam_png(store: Store, run_id: str, track_id: str, target: str) -> bytes | None:
    rows = store.attribution(run_id, track_id, target)
    if rows.empty:
        return None
    row = rows.iloc[0]
    cam = np.asarray(row["values"], dtype=np.float32).reshape(int(row.n_bands), int(row.n_frames))
    return heatmap_png(cam[::-1])  # low bands at the bottom, as on a spectrogram


def heatmap_png(values: np.ndarray, height: int = 160, width: int = 480) -> bytes:
    """(F, T) values in [0, 1] -> a PNG (magma-like ramp), nearest-neighbour scaled."""
    from PIL import Image

    v = np.clip(np.nan_to_num(values), 0, 1)
    rows = (np.arange(height) * v.shape[0] // height)[:, None]
    cols = (np.arange(width) * v.shape[1] // width)[None, :]
    v = v[rows, cols]
    # Black -> purple -> orange -> pale yellow: readable on a projector and in greyscale print.
    stops = np.array([[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]], float)
    position = v * (len(stops) - 1)
    low = np.floor(position).astype(int).clip(0, len(stops) - 2)
    frac = (position - low)[..., None]
    rgb = (stops[low] * (1 - frac) + stops[low + 1] * frac).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


# -- HTML ----------------------------------------------------------------------------------------

def _e(text) -> str:
    return untrusted.html(text)


def _data_uri(kind: str, payload: bytes) -> str:
    return f"data:{kind};base64,{base64.b64encode(payload).decode('ascii')}"


def headline(model: str, accuracy: tuple[float, float, float], n_test: int, *, n_classes: int) -> str:
    value, low, high = accuracy
    ci = "" if np.isnan(low) else f" (95% confidence interval {round(100 * low)}–{round(100 * high)})"
    return (f"{model} names the right genre for {round(100 * value)} of 100 songs it never heard in "
            f"training{ci}, measured on {n_test} test songs; guessing would get about "
            f"{100 / max(1, n_classes):.0f}.")


def _confusion_html(data: _Data) -> str:
    index = {g: i for i, g in enumerate(data.classes)}
    cm = np.zeros((len(index), len(index)), dtype=int)
    for true, pred in zip(data.test.label, data.test.predicted):
        cm[index[true], index[pred]] += 1
    totals = cm.sum(axis=1, keepdims=True).clip(min=1)
    head = "".join(f"<th>{_e(g)}</th>" for g in data.classes)
    body = []
    for i, genre in enumerate(data.classes):
        cells = []
        for j in range(len(data.classes)):
            share = cm[i, j] / totals[i, 0]
            colour = f"rgba(0,114,178,{share:.2f})" if i == j else f"rgba(213,94,0,{share:.2f})"
            ink = "#fff" if share > 0.55 else "#111"
            cells.append(f'<td style="background:{colour};color:{ink}">{cm[i, j] or ""}</td>')
        body.append(f"<tr><th>{_e(genre)}</th>{''.join(cells)}</tr>")
    return (f'<table class="cm"><tr><th class="corner">true ↓ / predicted →</th>{head}</tr>'
            f"{''.join(body)}</table>")


def _map_svg(data: _Data, size: int = 640) -> str:
    points = data.points
    if points.empty:
        return "<p class=note>No map yet: run <code>analyze</code> for this run to draw one.</p>"
    if len(points) > MAP_MAX_POINTS:
        points = points.sample(MAP_MAX_POINTS, random_state=0)
    x, y = points.x.to_numpy(), points.y.to_numpy()
    sx = (x - x.min()) / max(np.ptp(x), 1e-9) * (size - 40) + 20
    sy = (1 - (y - y.min()) / max(np.ptp(y), 1e-9)) * (size - 40) + 20
    genres = sorted(data.labels.reindex(points.track_id).fillna("?").unique())
    colour = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(genres)}
    wrong = set(data.test.track_id[data.test.label != data.test.predicted])
    dots = []
    for track_id, px, py in zip(points.track_id, sx, sy):
        genre = data.labels.get(track_id, "?")
        ring = ' stroke="#000" stroke-width="1.5"' if track_id in wrong else ""
        dots.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{colour[genre]}"{ring}>'
                    f"<title>{_e(track_id)} ({_e(genre)})</title></circle>")
    legend = "".join(f'<span class="key"><i style="background:{c}"></i>{_e(g)}</span>' for g, c in colour.items())
    return (f'<svg viewBox="0 0 {size} {size}" width="{size}" height="{size}" role="img" '
            f'aria-label="map of tracks">{"".join(dots)}</svg><div class="legend">{legend}'
            f'<span class="key"><i class="ring"></i>misclassified test track</span></div>')


def _example_html(example: _Example) -> str:
    sound = (f'<audio controls preload="none" src="{_data_uri("audio/wav", example.wav)}"></audio>'
             if example.wav else "<p class=note>audio file not readable here</p>")
    cam = (f'<img alt="Grad-CAM for {_e(example.predicted)}" src="{_data_uri("image/png", example.gradcam_png)}">'
           if example.gradcam_png else "<p class=note>no Grad-CAM map stored for this track</p>")
    return (f'<div class="example"><h3>{_e(example.track_id)}</h3>'
            f"<p>is <b>{_e(example.label)}</b>, the model said <b>{_e(example.predicted)}</b> "
            f"({round(100 * example.confidence)}% sure). Listen from {example.start_s:.1f} s, where it was surest:</p>"
            f"{sound}{cam}<p class=note>bright = the time-frequency regions that pushed the model towards "
            f"{_e(example.predicted)} (low pitches at the bottom)</p></div>")


def _patterns_html(data: _Data) -> str:
    """The significant failure slices, with the rule that found them; only a statement when none passed."""
    slices = data.slices
    if slices.empty:
        return "<p class=note>No failure patterns stored: run <code>analyze</code> for this run to look for them.</p>"
    rule = f"<p class=note>{_e(rule_sentence(slices))}</p>"
    significant = slices[slices.significant.astype(bool)]
    if significant.empty:
        return (f"<p>No group of test songs (a genre, an artist, a tempo, a key...) fails more often than chance "
                f"allows.</p>{rule}")
    rows = "".join(
        f"<tr><td class=slice>{_e(r.description)}<br><span class=note>{_e(same_tracks_sentence(r))}</span></td>"
        f"<td>{int(r.n - r.errors)} of {int(r.n)}</td><td>{r.accuracy:.0%}</td><td>{r.rest_accuracy:.0%}</td>"
        f"<td>{_e(p_text(r.p_value))}</td><td>{_e(p_text(r.q_value))}</td></tr>" for r in significant.itertuples())
    return (f'<table class="patterns"><tr><th>songs</th><th>right</th><th>accuracy</th><th>other songs</th>'
            f"<th>p (Fisher)</th><th>q (BH)</th></tr>{rows}</table>{_pair_whys(data, significant)}{rule}")


def _pair_whys(data: _Data, significant: pd.DataFrame) -> str:
    """One sentence per confused genre pair that a significant slice explains."""
    from genre_core.analysis.why import pair_why

    wrong = data.test[data.test.label != data.test.predicted]
    said = [pair_why(true, predicted, list(group.track_id), slices=significant)
            for (true, predicted), group in wrong.groupby(["label", "predicted"], sort=True)]
    return "".join(f"<p class=why>{_e(s)}</p>" for s in said if s)


def _faults_html(data: _Data) -> str:
    if data.faults.empty:
        return "<p>No faults recorded for this dataset (run <code>faults</code> to look for them).</p>"
    rows = "".join(f"<tr><td>{_e(r.kind)}</td><td>{int(r.n)}</td></tr>" for r in data.faults.itertuples())
    return f'<table class="faults"><tr><th>fault</th><th>tracks</th></tr>{rows}</table>'


STYLE = """
body{font:20px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#111;background:#fff;max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:34px;margin:.2em 0} h2{font-size:26px;margin-top:1.6em;border-bottom:2px solid #ddd}
.headline{font-size:28px;font-weight:600;background:#f3f7fb;padding:16px 20px;border-left:6px solid #0072B2}
table{border-collapse:collapse} th,td{padding:6px 10px;border:1px solid #ccc;text-align:center}
table.cm td{min-width:44px;font-weight:600} th.corner{font-weight:400;font-size:15px}
.legend{display:flex;flex-wrap:wrap;gap:12px;font-size:17px}.key i{display:inline-block;width:14px;height:14px;border-radius:50%;margin-right:5px;vertical-align:middle}
.key i.ring{border:2px solid #000;background:#fff}
.examples{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:20px}
.example{border:1px solid #ddd;border-radius:8px;padding:12px}.example img{width:100%;image-rendering:pixelated}
.note{color:#555;font-size:16px} audio{width:100%} td.slice{text-align:left}
@media print{h2{break-before:page}.example{break-inside:avoid}}
"""


def _page(run: dict, data: _Data, examples: list[_Example]) -> str:
    examples_html = ("".join(_example_html(e) for e in examples)
                     or "<p>No test song was misclassified.</p>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>GenreLens report: {_e(run['model'])} on {_e(data.dataset)}</title>
<style>{STYLE}</style></head>
<body>
<h1>{_e(run['model'])} on {_e(data.dataset)}</h1>
<p class=note>run {_e(run['run_id'])} · split {_e(run['split'])} · {len(data.classes)} genres</p>
<p class="headline">{_e(headline(run['model'], data.accuracy, len(data.test), n_classes=len(data.classes)))}</p>
<h2>Which genres it confuses</h2>
<p class=note>Each row is a true genre; a cell counts its test songs by the genre the model named. Blue: right; orange: wrong.</p>
{_confusion_html(data)}
<h2>Where it fails systematically</h2>
<p class=note>Groups of test songs the model gets wrong more often than chance would, worst first.</p>
{_patterns_html(data)}
<h2>How it hears the collection</h2>
<p class=note>Songs the model hears as similar sit close together; colour is the true genre.</p>
{_map_svg(data)}
<h2>Its most confident mistakes</h2>
<div class="examples">{examples_html}</div>
<h2>Faults in the dataset itself</h2>
{_faults_html(data)}
</body></html>
"""
