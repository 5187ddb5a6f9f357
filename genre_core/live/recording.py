"""One recording, as the app's Classify page shows it: decode an upload, label every window
with a run's model, smooth the labels into a timeline, and explain the loudest window with
Grad-CAM."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from genre_core import audio
from genre_core.analysis import explain
from genre_core.features.spectral import display_settings, mel_image
from genre_core.live.streaming import ClassifyResult, classify_array
from genre_core.live.timeline import SILENCE, timeline_frame
from genre_core.models import get_spec
from genre_core.store import Store
from genre_core.train.inference import LoadedRun, load_run

LOUDEST_HOP_S = 0.5  # step of the loudest-window search: finer than any beat that matters here


class RecordingError(ValueError):
    """A recording that cannot be classified: not audio, too short, or silent (a sentence)."""


@dataclass
class LoudestCam:
    """Grad-CAM of the loudest window of a recording for that window's own top genre."""

    start_s: float
    window_s: float  # the run's window length
    window: np.ndarray  # (L,) float32 audio at the model's rate
    cam: np.ndarray  # (F, T) in [0, 1], F = the model's input rows
    target: int
    genre: str
    prob: float
    image: dict | None  # features.spectral.mel_image of the window for mel inputs; None otherwise


@dataclass
class Recording:
    name: str
    result: ClassifyResult
    frame: pd.DataFrame  # live.timeline.timeline_frame: one row per window, sections marked
    loudest: LoudestCam | None  # None for models without a convolutional layer
    representation: str

    def verdict(self) -> tuple[str, float]:
        """(the genre heard longest, silence aside; its share of the recording in [0, 1])."""
        spans: dict[str, float] = {}
        for s in self.result.sections:
            spans[s.genre] = spans.get(s.genre, 0.0) + (s.end_s - s.start_s)
        overall = max((g for g in spans if g != SILENCE), key=spans.get, default=SILENCE)
        return overall, spans.get(overall, 0.0) / max(self.result.seconds_audio, 1e-9)


def load_model(db_path: str | Path, run_id: str, device: str = "cpu") -> LoadedRun:
    """The trained model of a complete run of the database at `db_path`."""
    return load_run(Store(db_path), run_id, device=device)


def decode(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """((N,) float32 mono at the file's own rate, sr) of an uploaded file's bytes; the header is
    checked (rate, channels, length) before decoding. RecordingError if it is not audio."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("upload" + Path(name).suffix.lower())
        path.write_bytes(data)
        try:
            info = audio.probe(path)
            return audio.load(path, sr=None, reject_silent=False), info.sample_rate
        except audio.AudioError as exc:
            raise RecordingError(f"{name} is not audio GenreLens can read: {exc.reason}.") from None


def loudest_window(y: np.ndarray, sr: int, window_s: float, *, hop_s: float) -> tuple[float, np.ndarray]:
    """(start in s, (L,) samples) of the window of (N,) audio with the highest RMS; a clip
    shorter than one window is zero-padded to one."""
    length, hop = int(round(window_s * sr)), max(1, int(round(hop_s * sr)))
    y = np.pad(np.asarray(y, dtype=np.float32), (0, max(0, length - len(y))))
    starts = np.arange(0, len(y) - length + 1, hop)
    energy = np.cumsum(np.concatenate([[0.0], y.astype(np.float64) ** 2]))
    rms = energy[starts + length] - energy[starts]  # (W,) sum of squares per window
    best = int(starts[int(np.argmax(rms))])
    return best / sr, y[best: best + length]


def representation_of(loaded: LoadedRun) -> str:
    """The model input of a run: "logmel", "mfcc", "musicnn" or "handcrafted"."""
    return loaded.config.representation or get_spec(loaded.config.model).input_kind


def loudest_gradcam(loaded: LoadedRun, y: np.ndarray, sr: int) -> LoudestCam | None:
    """Grad-CAM of the loudest window of (N,) audio at `sr` for its own top genre, with the mel
    image it lies over; None for models without a convolutional layer."""
    if loaded.model is None or getattr(loaded.model, "gradcam_layer", None) is None:
        return None
    start, window = loudest_window(audio.resample(y, sr, loaded.sr), loaded.sr, loaded.window_s, hop_s=LOUDEST_HOP_S)
    probs = loaded.predict_windows(window[None])[0][0]  # (C,)
    target = int(probs.argmax())
    cam = explain.gradcam_windows(loaded.model, loaded.frontend, window[None], target=target)[0]  # (F, T)
    representation = representation_of(loaded)
    image = None
    if representation in ("logmel", "musicnn"):
        settings = display_settings(representation, asdict(loaded.config.features))
        image = mel_image(window, **settings)
    return LoudestCam(start, loaded.window_s, window, cam / max(float(cam.max()), 1e-9), target, loaded.classes[target],
                      float(probs[target]), image)


def classify_recording(loaded: LoadedRun, data: bytes, name: str) -> Recording:
    """The genre timeline of an uploaded file's bytes and its loudest window's Grad-CAM.
    RecordingError (a sentence for the person) when it is not audio, too short or silent."""
    y, sr = decode(data, name)
    try:
        result = classify_array(loaded, y, sr, name=name)
    except ValueError as exc:  # too short, silent, or NaN samples
        raise RecordingError(str(exc)) from None
    frame = timeline_frame(result.predictions, result.classes, result.sections)
    return Recording(name, result, frame, loudest_gradcam(loaded, y, sr), representation_of(loaded))
