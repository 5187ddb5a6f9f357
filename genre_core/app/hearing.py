"""What the Track page lets a person hear, streamlit-free: the track itself for the player,
"what the model heard" and "what it ignored" (genre_core.analysis.listen), the musical
variants that may change its mind (genre_core.analysis.variants), and the faithfulness
verdict that says whether a map may be presented as an explanation at all.

torch, librosa and the analysis modules are imported inside the functions that need them, so
opening the app costs nothing until a track is heard. Audio is found only through
`queries.track_file` (a usable track inside its registered root), like every read of the app.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from genre_core import audio
from genre_core.app import player
from genre_core.app.evidence import MEL_REPRESENTATIONS
from genre_core.app.queries.tracks import track_file

KEEP = 0.25  # share of the time-frequency cells "what the model heard" keeps (faithfulness.VERDICT_K)
HEARD_MAX_S = 600.0  # longer tracks are heard over their first 10 minutes (memory: the STFT mask)


def features_of(config_json: str | None) -> dict:
    """The "features" settings in a run's config JSON ({} when absent)."""
    try:
        config = json.loads(config_json) if config_json else {}
    except ValueError:
        return {}
    return dict(config.get("features") or {}) if isinstance(config, dict) else {}


def settings(representation: str | None, config_json: str | None) -> dict:
    """`features.spectral.display_settings` of a run: sr, n_fft, hop_length, n_mels, fmin, fmax."""
    from genre_core.features.spectral import display_settings

    return display_settings(representation, features_of(config_json))


def track_signal(db, dataset_id: int, track_id: str, sr: int = player.PLAYER_SR,
                 max_s: float | None = None) -> np.ndarray | None:
    """The track as (N,) float32 mono at `sr` (at most `max_s` seconds), or None when it has no
    servable, decodable file."""
    path = track_file(db, dataset_id, track_id)
    if path is None:
        return None
    try:
        y = audio.load(path, sr=sr, reject_silent=False, min_seconds=0.0)
    except audio.AudioError:
        return None
    return y if max_s is None else y[: int(max_s * sr)]


def player_media(db, dataset_id: int, track_id: str, representation: str | None = "logmel",
                 config_json: str | None = None) -> player.PlayerMedia | None:
    """The heavy part of the track's player (audio, spectrogram as the run's model sees it,
    waveform) as data URIs; None without playable audio."""
    from genre_core.features.spectral import mel_image

    y = track_signal(db, dataset_id, track_id, player.PLAYER_SR)
    if y is None or y.size == 0:
        return None
    s = settings(representation, config_json)
    seen = y if s["sr"] == player.PLAYER_SR else track_signal(db, dataset_id, track_id, s["sr"])
    return player.player_media(y, player.PLAYER_SR, mel_image(seen, **s))


@dataclass(frozen=True)
class Heard:
    """What the model heard (the top KEEP share of its map's time-frequency cells, original
    phase, the rest MASK_DEPTH_DB quieter) and what it ignored (the rest in front, the top share
    quieter), (N,) float32 each at `sr`."""

    heard: np.ndarray
    ignored: np.ndarray
    sr: int
    keep: float
    depth_db: float  # how much quieter the part a mask leaves out plays (listen.MASK_DEPTH_DB)


def heard(db, dataset_id: int, track_id: str, cam: np.ndarray, *, representation: str | None,
          config_json: str | None, keep: float = KEEP) -> Heard | None:
    """The listenable map of Grad-CAM `cam` ((bands, frames) over the whole track, as stored in
    `attributions`) on the track's audio at the run's sample rate, through
    `analysis.listen.listenable`. None when the track has no audio or the map's rows are not
    mel bands (an MFCC run: no mask on the spectrum follows from it)."""
    if representation not in MEL_REPRESENTATIONS or cam is None:
        return None
    from genre_core.analysis.listen import MASK_DEPTH_DB, listenable

    s = settings(representation, config_json)
    y = track_signal(db, dataset_id, track_id, s["sr"])
    if y is None or y.size == 0:
        return None
    full = len(y) / s["sr"]
    y = y[: int(HEARD_MAX_S * s["sr"])]
    cam = np.asarray(cam, dtype=np.float32)
    if len(y) / s["sr"] < full:  # the map spans the whole track: keep the frames of the part heard
        cam = cam[:, : max(1, int(round(cam.shape[1] * len(y) / s["sr"] / full)))]
    fmax = s["fmax"] if s["fmax"] is not None else s["sr"] / 2
    kept, ignored = listenable(y, s["sr"], cam, duration_s=len(y) / s["sr"], keep=keep, fmin=s["fmin"], fmax=fmax)
    return Heard(kept, ignored, s["sr"], keep, MASK_DEPTH_DB)


def faithfulness_verdict(frame: pd.DataFrame, method: str = "gradcam") -> tuple[bool | None, str]:
    """(does `method` beat random masks of the same area at k = 25% on keep-rate and masked-out
    drop — None when not measured, the sentence that says so with the numbers)."""
    from genre_core.analysis.faithfulness import beats_random, verdict

    if frame is None or frame.empty or method not in set(frame.method):
        return None, verdict(frame.iloc[0:0] if frame is not None else None)
    return beats_random(frame, method), verdict(frame, method)


# -- what changes its mind --------------------------------------------------------------------


def variants_audio(db, dataset_id: int, track_id: str) -> tuple[dict[str, np.ndarray], int] | None:
    """Every musical variant of the track, ({name: (N,) float32}, sample rate): its first
    HEARD_MAX_S seconds at the file's own rate (`analysis.variants.musical_variants`, with the
    demo's true stems where the track is a demo-corpus track, rendered at that same rate);
    None without audio."""
    from genre_core.analysis.variants import demo_stems, musical_variants

    path = track_file(db, dataset_id, track_id)
    if path is None:
        return None
    try:
        sr = audio.probe(path).sample_rate
        y = audio.load(path, sr=sr, reject_silent=False, min_seconds=0.0)[: int(HEARD_MAX_S * sr)]
    except audio.AudioError:
        return None
    if y.size == 0:
        return None
    stems = demo_stems(path)
    if stems is not None:
        stems = {name: _fit(part, len(y)) for name, part in stems.items()}
    return musical_variants(y, sr, stems=stems), sr


def variant_labels() -> dict[str, str]:
    """{variant name: what a listener hears}, e.g. "no_drums": "Without the drums"."""
    from genre_core.analysis import variants

    return dict(variants.VARIANT_PHRASES)  # the sentences' own wording, so table and sentence agree


def _fit(y: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)[:n]
    return np.pad(y, (0, n - len(y)))


def mind_change(variants: pd.DataFrame, original: np.ndarray, classes: list[str], *, true: str,
                predicted: str) -> str | None:
    """The sentence naming the variant that moves a mistake toward its true genre
    (`analysis.variants.mind_change` over the stored variant predictions, measured against
    their stored "original" row where there is one, else `original`), or None."""
    if variants.empty or predicted == true:
        return None
    from genre_core.analysis.variants import mind_change as sentence

    probs = {v: np.asarray(p, dtype=np.float32) for v, p in zip(variants.variant, variants.probs)}
    base = probs.pop("original", np.asarray(original, dtype=np.float32))
    return sentence(probs, base, classes, true=true, predicted=predicted)


def class_probs(track_probs: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """queries.track_probs (genre, prob) -> (C,) float32 in the run's class order."""
    by_genre: Mapping[str, float] = dict(zip(track_probs.genre, track_probs.prob))
    return np.array([by_genre.get(g, 0.0) for g in classes], dtype=np.float32)
