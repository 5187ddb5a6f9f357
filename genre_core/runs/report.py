"""`genrelens report --run RUN --out report.html`: one self-contained HTML file to share.

Everything is inside the file (inline CSS, inline SVG figures, PNG images and WAV audio as
data: URIs; no script, font or image is fetched), so it opens from an e-mail attachment,
offline, and prints. Written for a lay reader and sized for a projector: large type, high
contrast, one idea per section: the headline in plain words with its interval, the confusion
matrix, the failure patterns that passed their tests, the map (mistakes ringed), mistakes you
can hear (the track, the part its Grad-CAM map points at, the map over the spectrogram with
time and Hz axes, and the sentence of why), the dataset's faults in plain words. The figures
live in report_figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from genre_core import audio, paths
from genre_core.analysis.slice_words import p_text, rule_sentence, same_tracks_sentence
from genre_core.app.player import audio_bytes, cam_png, data_uri, spectrogram_png
from genre_core.faults.kinds import fault_words
from genre_core.faults.known import compare_faults, comparison_summary
from genre_core.runs.report_figures import Spectrogram, cam_figure, map_svg, strongest
from genre_core.store import Store, StoreError
from genre_core.untrusted import html as _e

SNIPPET_S = 6.0
SNIPPET_SR = 16000  # speech-band is enough to hear the genre; keeps each snippet ~190 kB
PAIR_WHYS = 3  # confused pairs explained in words under the patterns, the largest first
CANDIDATES = 50  # the most confident mistakes searched for a Grad-CAM map (explained ones are shown first)


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
    tracks: dict[str, dict]  # track_id -> label, path, duration_s
    faults: pd.DataFrame  # kind, n (detected)
    known: pd.DataFrame  # per kind: detected against the dataset's known faults (faults.known.comparison_summary)
    slices: pd.DataFrame  # the run's stored failure slices (analysis.slices), by rank
    concepts: pd.DataFrame  # its TCAV concept scores
    pushes: pd.DataFrame  # its misclassified tracks' concept pushes


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
    tracks = store.dataset_tracks(dataset_id, ("track_id", "label", "path", "duration_s")).set_index("track_id")
    tracks = tracks.to_dict("index")
    rows = store.fault_rows(dataset_id)
    detected = rows[rows.source == "detected"]
    faults = (detected.groupby("kind").track_id.nunique().rename("n")
              .sort_values(ascending=False, kind="stable").reset_index())
    known = comparison_summary(compare_faults(detected, rows[rows.source == "known"]), by="kind")
    return _Data(store.dataset_name(dataset_id), list(run["classes"]), test, accuracy, points, tracks, faults, known,
                 store.failure_slices(run_id), *store.concept_findings(run_id))


@dataclass
class _Example:
    track_id: str
    label: str
    predicted: str
    confidence: float
    start_s: float  # the snippet's start: where the model was surest of the wrong genre
    end_s: float  # its end: SNIPPET_S later, or the track's end
    wav: bytes | None  # SNIPPET_S of the track
    heard: bytes | None  # the same seconds through the map's top KEEP share (analysis.listen)
    figure: str | None  # the Grad-CAM map over the spectrogram, captioned (report_figures.cam_figure)
    why: str | None  # analysis.why's sentence, from findings that passed their tests only


def _examples(store: Store, run: dict, data: _Data, n: int) -> list[_Example]:
    """The misclassifications a listener learns most from: the most confident wrong calls,
    those with a Grad-CAM map first."""
    from genre_core.analysis.why import track_why

    wrong = data.test[data.test.label != data.test.predicted].copy()
    if wrong.empty or n <= 0:
        return []
    column = {g: i for i, g in enumerate(data.classes)}
    wrong["confidence"] = [p[column[g]] for p, g in zip(wrong.probs, wrong.predicted)]
    wrong = wrong.sort_values("confidence", ascending=False, kind="stable").head(max(n, CANDIDATES))
    cams = [_cam(store, run["run_id"], t, g) for t, g in zip(wrong.track_id, wrong.predicted)]
    order = sorted(range(len(wrong)), key=lambda i: cams[i] is None)[:n]  # stable: surest first within each
    out = []
    for i in order:
        row = wrong.iloc[i]
        start = _surest_wrong_window(store, run["run_id"], row.track_id, column[row.predicted])
        why = track_why(row.track_id, true=row.label, predicted=row.predicted, slices=data.slices,
                        concepts=data.concepts, pushes=data.pushes[data.pushes.track_id == row.track_id])
        out.append(_Example(row.track_id, row.label, row.predicted, float(row.confidence), start,
                            *_sound_and_figure(run, data.tracks.get(row.track_id), cams[i], row.predicted, start),
                            why=why))
    return out


def _cam(store: Store, run_id: str, track_id: str, target: str) -> np.ndarray | None:
    """The stored Grad-CAM map (n_bands, n_frames), band 0 the lowest, or None."""
    rows = store.attribution(run_id, track_id, target)
    if rows.empty:
        return None
    row = rows.iloc[0]
    return np.asarray(row["values"], dtype=np.float32).reshape(int(row.n_bands), int(row.n_frames))


def _surest_wrong_window(store: Store, run_id: str, track_id: str, column: int) -> float:
    """Start (s) of the window where the model was surest of the wrong genre: what to hear."""
    rows = store.segment_predictions(run_id, track_id)
    if rows.empty:
        return 0.0
    return float(rows.start_s.iloc[int(np.argmax([p[column] for p in rows.probs]))])


def _sound_and_figure(run: dict, track: dict | None, cam: np.ndarray | None, genre: str,
                      start_s: float) -> tuple[float, bytes | None, bytes | None, str | None]:
    """(the snippet's end (s), the snippet as WAV, the snippet of what the map points at as WAV,
    the figure) of one track; None for what the audio or the map does not allow."""
    from genre_core.app.evidence import mel_edges
    from genre_core.app.hearing import KEEP
    from genre_core.features.spectral import display_settings, mel_image

    features = (run.get("config") or {}).get("features")
    settings, edges = display_settings(run["representation"], features), mel_edges(run["representation"], features)
    sr = settings["sr"]
    track = track or {}
    y = _audio(track.get("path"), sr)
    duration = len(y) / sr if y is not None else float(track.get("duration_s") or 0.0)
    end_s = min(start_s + SNIPPET_S, duration) if duration > 0 else start_s + SNIPPET_S
    begin, end = int(start_s * sr), int(end_s * sr)
    clip = y[begin:end] if y is not None else np.zeros(0, dtype=np.float32)
    wav = _wav(clip, sr) if clip.size else None
    heard = png = None
    if y is not None and edges is not None and cam is not None:  # a map over mel bands: drawn over them, heard
        png = data_uri(spectrogram_png(mel_image(y, **settings)["mel"]), "image/png")
        if clip.size:
            heard = _wav(_heard(y, sr, cam, begin, end, fmin=float(edges[0]), fmax=float(edges[-1])), sr)
    if cam is None or duration <= 0:
        return end_s, wav, heard, None
    spec = Spectrogram(png, duration, *((float(edges[0]), float(edges[-1])) if edges is not None else (None, None)))
    figure = cam_figure(data_uri(cam_png(strongest(cam, KEEP)), "image/png"), spec, genre=genre,
                        snippet=(start_s, end_s), keep=KEEP)
    return end_s, wav, heard, figure


def _audio(path: str | None, sr: int) -> np.ndarray | None:
    """The track (N,) at `sr`, or None when its file cannot be read here."""
    if not isinstance(path, str):
        return None
    try:
        y = audio.load(path, sr=sr, reject_silent=False, min_seconds=0.0)
    except (audio.AudioError, OSError):
        return None
    return y if y.size else None


def _wav(y: np.ndarray, sr: int) -> bytes:
    """(N,) audio at `sr` as 16-bit mono WAV at SNIPPET_SR."""
    return audio_bytes(audio.resample(y, sr, SNIPPET_SR), SNIPPET_SR)[0]


def _heard(y: np.ndarray, sr: int, cam: np.ndarray, begin: int, end: int, *, fmin: float, fmax: float) -> np.ndarray:
    """Samples [begin, end) of the track `y` through the map's top KEEP share (what the Track page
    plays as "the map's top 25%"), computed over the map's whole cells around them only, so a long
    track costs no more than the snippet."""
    from genre_core.analysis.listen import listenable
    from genre_core.app.hearing import KEEP

    cell = len(y) / cam.shape[1]  # samples per map frame: the map spans the whole track
    first, last = int(begin // cell), min(cam.shape[1], int(np.ceil(min(end, len(y)) / cell)))
    lo, hi = int(round(first * cell)), int(round(last * cell))
    kept, _ = listenable(y[lo:hi], sr, cam[:, first:last], duration_s=(hi - lo) / sr, keep=KEEP, fmin=fmin, fmax=fmax)
    return kept[begin - lo: end - lo]


# -- HTML ----------------------------------------------------------------------------------------

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


def _example_html(example: _Example) -> str:
    truth, said = _e(example.label), _e(example.predicted)
    players = ""
    if example.wav:
        players += (f"<p>Listen: {example.start_s:.1f}–{example.end_s:.1f} s, where it was surest of {said}</p>"
                    f'<audio controls preload="metadata" src="{data_uri(example.wav, "audio/wav")}"></audio>')
    else:
        players += "<p class=note>The audio file cannot be read here.</p>"
    if example.heard:
        from genre_core.analysis.listen import MASK_DEPTH_DB
        from genre_core.app.hearing import KEEP

        players += (f"<p>The same seconds, only what its map points at (the map's top {KEEP:.0%} of the sound in "
                    f"front, the rest {MASK_DEPTH_DB:g} dB quieter)</p>"
                    f'<audio controls preload="metadata" src="{data_uri(example.heard, "audio/wav")}"></audio>')
    figure = example.figure or "<p class=note>No Grad-CAM map is stored for this song.</p>"
    why = f"<p class=why><b>Why, as far as the tests go:</b> {_e(example.why)}</p>" if example.why else ""
    return (f'<div class="example"><h3>A {truth} song heard as {said} <span class=id>{_e(example.track_id)}</span></h3>'
            f"<p>It is <b>{truth}</b>; the model said <b>{said}</b>, {round(100 * example.confidence)}% sure.</p>"
            f"{why}{players}{figure}</div>")


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
    """One sentence per confused genre pair that a significant slice (or concept) explains, for
    the PAIR_WHYS largest such pairs; how many more there are."""
    from genre_core.analysis.why import pair_why

    wrong = data.test[data.test.label != data.test.predicted]
    pairs = sorted(wrong.groupby(["label", "predicted"], sort=True), key=lambda item: -len(item[1]))  # stable
    said = [s for (true, predicted), group in pairs
            if (s := pair_why(true, predicted, list(group.track_id), slices=significant, concepts=data.concepts))]
    more = (f"<p class=note>… and {len(said) - PAIR_WHYS} more confused pairs of genres that these findings "
            "explain.</p>" if len(said) > PAIR_WHYS else "")
    return "".join(f"<p class=why>{_e(s)}</p>" for s in said[:PAIR_WHYS]) + more


def _faults_html(data: _Data) -> str:
    if data.faults.empty:
        return "<p>No faults recorded for this dataset (run <code>faults</code> to look for them).</p>"
    rows = "".join(f"<tr><td class=fault><b>{_e(name)}</b><br><span class=note>{_e(why)}</span></td>"
                   f"<td>{int(r.n)}</td></tr>" for r in data.faults.itertuples() for name, why in [fault_words(r.kind)])
    return f'<table class="faults"><tr><th>what is wrong</th><th>songs</th></tr>{rows}</table>' + _known_html(data)


def _known_html(data: _Data) -> str:
    """How many of the faults known for this collection the checks found, kind by kind."""
    if data.known.empty:
        return ""

    def share(value: float) -> str:
        return "–" if np.isnan(value) else f"{round(100 * value)}%"

    rows = "".join(
        f"<tr><td class=fault><b>{_e(fault_words(r.kind)[0])}</b></td><td>{int(r.known)}</td>"
        + (f"<td>{int(r.found)}</td><td>{int(r.missed)}</td><td>{int(r.new)}</td>"
           f"<td>{share(r.recall)}</td><td>{share(r.precision)}</td>" if r.looked_for else
           "<td colspan=5>not looked for: no check finds this kind</td>") + "</tr>"
        for r in data.known.itertuples())
    return ("<h3>The faults known beforehand: how many the checks found</h3>"
            "<p class=note>Known: faults listed for this collection before any check ran (a published list, or the "
            "faults planted on purpose in a demo collection). Missed: known, not flagged. Extra: flagged, not on the "
            "list (a fault the list lacks, or a false alarm).</p>"
            '<table class="faults"><tr><th>what is wrong</th><th>known</th><th>found</th><th>missed</th>'
            f"<th>extra</th><th>share found</th><th>share of flags that are known</th></tr>{rows}</table>")


STYLE = """
body{font:20px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#111;background:#fff;max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:34px;margin:.2em 0} h2{font-size:26px;margin-top:1.6em;border-bottom:2px solid #ddd} h3{margin:.2em 0 .4em}
.headline{font-size:28px;font-weight:600;background:#f3f7fb;padding:16px 20px;border-left:6px solid #0072B2}
table{border-collapse:collapse} th,td{padding:6px 10px;border:1px solid #ccc;text-align:center}
table.cm td{min-width:44px;font-weight:600} th.corner{font-weight:400;font-size:15px}
.legend{display:flex;flex-wrap:wrap;gap:8px 16px;font-size:18px;align-items:center;max-width:900px}
.key{display:inline-flex;align-items:center}.key i{display:inline-block;width:16px;height:16px;border-radius:50%;margin-right:6px}
.key svg{margin-right:6px;flex:none} svg.map{width:760px;max-width:100%;height:auto}
.examples{display:grid;grid-template-columns:1fr;gap:22px}
.example{border:1px solid #ccc;border-radius:8px;padding:14px 18px} .example p{margin:.4em 0}
span.id{font-weight:400;font-size:16px;color:#555;margin-left:10px}
figure{margin:10px 0 0;max-width:980px} svg.cam{width:100%;height:auto;display:block} figcaption{color:#444;font-size:17px}
svg.cam text{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;fill:#111} svg.cam .tick{font-size:19px} svg.cam .axis{font-size:20px;font-weight:600}
.why{background:#fff8e6;border-left:5px solid #E69F00;padding:8px 12px}
.note{color:#555;font-size:17px} audio{width:100%;max-width:640px;display:block} td.slice,td.fault,table.faults th:first-child,table.patterns th:first-child{text-align:left}
@media print{h2{break-before:page}.example{break-inside:avoid}}
"""


def _page(run: dict, data: _Data, examples: list[_Example]) -> str:
    examples_html = ("".join(_example_html(e) for e in examples)
                     or "<p>No test song was misclassified.</p>")
    wrong = data.test[data.test.label != data.test.predicted]
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
<p class=note>Songs the model hears as similar sit close together; colour is the true genre; a ringed dot is a test song it got wrong.</p>
{map_svg(data.points, {t: r["label"] for t, r in data.tracks.items()}, dict(zip(wrong.track_id, wrong.predicted)))}
<h2>Mistakes you can hear</h2>
<p class=note>Its surest wrong answers (those with a Grad-CAM map first): listen, and see where in the sound it found the wrong genre.</p>
<div class="examples">{examples_html}</div>
<h2>Faults in the dataset itself</h2>
<p class=note>Songs of the collection that are flagged as faulty, by what is wrong with them.</p>
{_faults_html(data)}
</body></html>
"""
