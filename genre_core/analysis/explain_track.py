"""`genrelens explain --run R --track T [--out DIR]`: why one track got its genre, to read and to hear.

For one track and a run with a network: its prediction against its label, the 3-s window
whose Grad-CAM (for the predicted genre) is strongest, the run's faithfulness verdict (from
the `faithfulness` table that analyze stored), "what the model heard" and "what it ignored"
(listen.listenable on the track's Grad-CAM, top KEEP of the STFT), and the prediction for
each musical variant (variants.musical_variants; the demo corpus's true stems too), with the
sentence naming a variant that moves a mistake toward its true genre. Everything is computed
on the spot, so any usable track of the run's dataset can be explained, analysed or not.
With `out`, the audio is written as WAVs (32-bit float, the run's sample rate).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genre_core import paths
from genre_core.store import Store, StoreError

KEEP = 0.25  # share of the STFT "what the model heard" keeps: the faithfulness verdict's k


@dataclass
class Explanation:
    run_id: str
    track_id: str
    label: str
    classes: list[str]
    probs: np.ndarray  # (C,) the track's probabilities, as the run scores a track
    window: tuple[float, float]  # (start_s, end_s) of the window with the strongest Grad-CAM
    verdict: str  # the run's faithfulness verdict (stored by analyze)
    variant_probs: dict[str, np.ndarray]  # {variant: (C,)}
    mind_change: str | None
    sr: int
    audio: dict[str, np.ndarray] = field(default_factory=dict)  # {name: (N,)} what --out writes
    seconds: dict[str, float] = field(default_factory=dict)  # time per step
    written: list[Path] = field(default_factory=list)

    @property
    def predicted(self) -> str:
        return self.classes[int(np.argmax(self.probs))]

    def _p(self, genre: str, probs: np.ndarray | None = None) -> float:
        return float((self.probs if probs is None else probs)[self.classes.index(genre)])

    def lines(self) -> list[str]:
        """The summary a person reads (genre names come from the dataset: print through
        untrusted.plain)."""
        pred, label = self.predicted, self.label
        verdict = "right" if pred == label else "wrong"
        start, end = self.window
        out = [f"track {self.track_id}: true {label}, predicted {pred} {self._p(pred):.2f} "
               f"({label} {self._p(label):.2f}) — {verdict}",
               f"strongest Grad-CAM for {pred}: {start:.1f}-{end:.1f} s",
               self.verdict]
        if self.variant_probs:
            cells = []
            for name, probs in self.variant_probs.items():
                top = self.classes[int(np.argmax(probs))]
                cells.append(f"{name} -> {top} {float(np.max(probs)):.2f}")
            out.append("variants: " + "; ".join(cells))
        if pred != label:
            from genre_core.analysis.variants import MIND_MARGIN

            out.append(self.mind_change or f"No variant moves it toward {label}: none raises {label} "
                                            f"and lowers {pred} by {MIND_MARGIN:.2f} each.")
        return out

    def line(self) -> str:
        took = sum(self.seconds.values())
        wrote = f"; wrote {len(self.written)} WAVs to {self.written[0].parent}" if self.written else ""
        return (f"explained track {self.track_id} with run {self.run_id} in {took:.1f} s "
                f"(Grad-CAM, listenable map, {len(self.variant_probs)} variants){wrote}")


def find_track(store: Store, dataset: str, track_id: str) -> pd.Series:
    """The usable track row `track_id` of `dataset`; ValueError naming it when there is none."""
    tracks = store.tracks(dataset)
    hit = tracks[tracks.track_id == track_id]
    if hit.empty:
        raise ValueError(f"no usable track {track_id!r} in dataset {dataset!r}")
    return hit.iloc[0]


def explain_track(store: Store, run_id: str, track_id: str, *, out: Path | str | None = None,
                  device: str = "auto", keep: float = KEEP, stems: bool = True,
                  loaded=None) -> Explanation:
    """Explain one track with one run (see the module docstring); `loaded`: the run already
    loaded (load_run), to explain several tracks without reloading it. `stems`: add the demo
    corpus's true-stem variants where the track has them. Raises StoreError / ValueError with
    one line for an unknown run or track, or a run without a network."""
    from genre_core.analysis.explain import compact, track_features, track_map
    from genre_core.analysis.faithfulness import mel_range, verdict
    from genre_core.analysis.listen import listenable
    from genre_core.analysis import variants
    from genre_core.features.cache import ShardCache
    from genre_core.train.inference import load_run

    seconds: dict[str, float] = {}
    started = time.perf_counter()
    loaded = loaded or load_run(store, run_id, device)
    if loaded.model is None or getattr(loaded.model, "gradcam_layer", None) is None:
        raise StoreError(f"run {run_id} ({loaded.config.model}) has no convolutional network to explain")
    track = find_track(store, loaded.config.dataset, track_id)
    if track.label not in loaded.classes:
        raise ValueError(f"track {track_id!r} is of a genre run {run_id} does not know")
    y = np.asarray(ShardCache(paths.cache_dir(store.path)).load(track.path, track.sha1, loaded.sr),
                   dtype=np.float32)
    seconds["load"] = _lap(started)

    started = time.perf_counter()
    track_stems = _stems(variants.demo_stems(track.path), int(track.sample_rate), loaded.sr, len(y)) if stems else None
    versions = variants.musical_variants(y, loaded.sr, stems=track_stems)
    probs = variants.variant_probs(loaded, {"original": y, **versions}, loaded.sr)
    original = probs.pop("original")
    predicted = loaded.classes[int(np.argmax(original))]
    mind = variants.mind_change(probs, original, loaded.classes, true=track.label, predicted=predicted)
    seconds["variants"] = _lap(started)

    started = time.perf_counter()
    feats = track_features(loaded, y)
    cam = track_map(loaded.model, feats, loaded.classes.index(predicted))  # (F, T_total)
    window = _strongest_window(cam, feats, loaded.window_s, len(y) / loaded.sr)
    seconds["gradcam"] = _lap(started)

    started = time.perf_counter()
    audio = {"original": y}
    if (mel := mel_range(loaded)) is not None:
        heard, ignored = listenable(y, loaded.sr, compact(cam, feats.frame_rate), duration_s=len(y) / loaded.sr,
                                    keep=keep, fmin=mel[0], fmax=mel[1])
        audio.update(heard=heard, ignored=ignored)
    audio.update({f"variant-{name}": v for name, v in versions.items()})
    seconds["listenable"] = _lap(started)

    result = Explanation(run_id, track_id, str(track.label), list(loaded.classes), original, window,
                         verdict(_faithfulness(store, run_id)), probs, mind, loaded.sr, audio, seconds)
    if out is not None:
        result.written = write_wavs(result.audio, Path(out), loaded.sr)
    return result


def _lap(started: float) -> float:
    return time.perf_counter() - started


def _stems(stems: dict[str, np.ndarray] | None, clip_sr: int, sr: int, n: int) -> dict[str, np.ndarray] | None:
    """Demo stems (at the clip's rate) at the run's rate, cut or zero-padded to the n samples
    the cache decoded (resampling can differ by a sample)."""
    from genre_core.audio import resample

    if not stems:
        return None
    out = {}
    for name, stem in stems.items():
        stem = resample(np.asarray(stem, dtype=np.float32), clip_sr, sr)[:n]
        out[name] = np.pad(stem, (0, n - len(stem)))
    return out


def _strongest_window(cam: np.ndarray, feats, window_s: float, duration_s: float) -> tuple[float, float]:
    """(start_s, end_s) of the run's window (at its eval hop) with the largest mean Grad-CAM."""
    n_frames = feats.x.shape[-1]
    scores = [cam[:, s : s + n_frames].mean() if s < cam.shape[1] else 0.0 for s in feats.starts_frames]
    start = float(feats.starts_frames[int(np.argmax(scores))] / feats.frame_rate)
    return start, min(start + window_s, duration_s)


def _faithfulness(store: Store, run_id: str) -> pd.DataFrame:
    """The run's stored faithfulness rows (the app's query: read-only, empty for an old file)."""
    from genre_core.app.queries.explanations import faithfulness

    return faithfulness(store.path, run_id)


def write_wavs(audio: dict[str, np.ndarray], out: Path, sr: int) -> list[Path]:
    """Each {name: (N,)} as out/<name>.wav (32-bit float: nothing clips), written atomically."""
    import soundfile

    written = []  # atomic_write makes `out` and turns a failed write into one WriteError
    for name, y in audio.items():
        path = out / f"{name}.wav"
        with paths.atomic_write(path) as tmp:
            soundfile.write(tmp, np.asarray(y, dtype=np.float32), sr, subtype="FLOAT", format="WAV")
        written.append(path)
    return written
