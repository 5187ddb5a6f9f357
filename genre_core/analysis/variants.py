"""What changes its mind: a track's musical variants, re-classified by the run's own model.

Variants of a track `y` (N,) at `sr` Hz, each (N,) float32:

- "percussive" / "harmonic": HPSS as the handcrafted table computes it (librosa's
  decompose.hpss: 2048-point STFT, hop 512, 31-bin median filters along time and along
  frequency, power-2 soft masks, the original phase), the torch/numba median filter of
  genre_core.features; the two parts sum to `y`.
- "no_bass" / "no_treble": everything below BASS_HZ (above TREBLE_HZ) removed with a zero-phase
  Butterworth filter (order FILTER_ORDER, run forward and backward: no time shift, -6 dB at the
  cut, -48 dB an octave past it).
- with the demo's true stems (`demo_stems`): "no_drums", "no_bass_part", "no_chords",
  "no_lead", each the mix minus that true part (the noise floor stays in every variant).

`variant_probs` classifies them the way the run's test tracks were (windows at the run's
eval hop, window log-probabilities averaged, see metrics.evaluation.aggregate_windows), and
`mind_change` turns the result for a mistake into one plain sentence, only where a variant
really moves the decision toward the true genre (both by MIND_MARGIN).

`variant_tables` is analyze's step: the `variant_predictions` rows of its explained tracks,
each track's variants plus an "original" row (the baseline they are compared with).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import signal
from tqdm import tqdm

from genre_core.audio import resample
from genre_core.features.handcrafted_torch import hpss_split
from genre_core.features.windows import window_starts
from genre_core.metrics.evaluation import aggregate_windows
from genre_core.train.inference import batch_size

BASIC_VARIANTS = ("percussive", "harmonic", "no_bass", "no_treble")
STEM_VARIANTS = {"drums": "no_drums", "bass": "no_bass_part", "chords": "no_chords", "lead": "no_lead"}
BASS_HZ = 250.0
TREBLE_HZ = 4000.0
FILTER_ORDER = 8  # per pass; forward + backward squares the response (-96 dB/octave far out)
HPSS_N_FFT, HPSS_HOP = 2048, 512  # the handcrafted table's STFT, so HPSS is the one it uses
# A variant changes the model's mind only if the true genre's probability rises AND the
# predicted genre's falls, each by at least this much (probability units). Re-classifying the
# same audio is deterministic, so the margin is not about noise: it keeps "0.31 -> 0.33" from
# being told as a finding.
MIND_MARGIN = 0.10
# analyze: every misclassified explained track gets variants, and at most this many correct
# ones (seeded, spread over the genres). A 15-s demo track costs ~0.85 s of CPU on one torch
# thread (its stems rendered again ~0.2 s, HPSS and filters ~0.1 s, the rest 8 variants x 9
# windows of the CNN): the demo's 9 mistakes + 5 took 11.9 s (docs/benchmarks.md).
VARIANT_CORRECT_LIMIT = 5
# analyze: a longer track is varied over its middle this many seconds (HPSS holds a few
# copies of the spectrogram: a one-hour mix would need gigabytes); its "original" row is
# that excerpt too, so variants are always compared with the same audio.
VARIANT_MAX_S = 120.0

# How a sentence names a variant: what the listener is hearing.
VARIANT_PHRASES = {
    # HPSS splits attacks from sustained sound, not drums from instruments: on the demo its
    # percussive part holds 0.35 of the true drum stem (docs/benchmarks.md), so say "attacks".
    "percussive": "With only the attacks (HPSS percussive part)",
    "harmonic": "With only the sustained sound (HPSS harmonic part, much of the drums included)",
    "no_bass": f"Without the bass (below {BASS_HZ:.0f} Hz)",
    "no_treble": f"Without the treble (above {TREBLE_HZ / 1000:.0f} kHz)",
    "no_drums": "Without the drums",
    "no_bass_part": "Without the bass line",
    "no_chords": "Without the chords",
    "no_lead": "Without the lead",
}


def hpss(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """(harmonic, percussive) parts of `y` (N,), each (N,) float32, summing to y."""
    window = torch.hann_window(HPSS_N_FFT, periodic=True)
    audio = torch.as_tensor(np.asarray(y, dtype=np.float32))[None]  # (1, N)
    spec = torch.stft(audio, HPSS_N_FFT, HPSS_HOP, window=window, center=True, pad_mode="constant",
                      return_complex=True)  # (1, F, T)
    # The handcrafted table's own HPSS (median filters, soft masks, istft), not a second one.
    with torch.no_grad():
        harmonic, percussive = hpss_split(audio, spec, spec.abs(), window=window, hop_length=HPSS_HOP)  # (1, N)
    return harmonic[0].numpy(), percussive[0].numpy()


def band_cut(y: np.ndarray, sr: int, *, below: float | None = None, above: float | None = None) -> np.ndarray:
    """`y` (N,) without what lies below `below` Hz (a high-pass) or above `above` Hz (a
    low-pass): zero-phase Butterworth, FILTER_ORDER per pass. (N,) float32"""
    kind, cut = ("highpass", below) if below is not None else ("lowpass", above)
    if cut is None or cut >= sr / 2:
        return np.asarray(y, dtype=np.float32).copy()
    sos = signal.butter(FILTER_ORDER, cut, kind, fs=sr, output="sos")
    x = np.asarray(y, dtype=np.float64)
    if len(x) <= 3 * (2 * len(sos) + 1):  # too short for sosfiltfilt's edge padding
        return signal.sosfilt(sos, x).astype(np.float32)
    return signal.sosfiltfilt(sos, x).astype(np.float32)


def musical_variants(y: np.ndarray, sr: int, *, stems: dict[str, np.ndarray] | None = None
                     ) -> dict[str, np.ndarray]:
    """The variants of track `y` (N,) at `sr` Hz (see the module docstring), {name: (N,)
    float32}: BASIC_VARIANTS always; with `stems` ({part: (N,)} at `sr`, e.g. demo_stems),
    also the mix minus each part present (STEM_VARIANTS names them)."""
    y = np.asarray(y, dtype=np.float32)
    harmonic, percussive = hpss(y, sr)
    out = {"percussive": percussive, "harmonic": harmonic,
           "no_bass": band_cut(y, sr, below=BASS_HZ), "no_treble": band_cut(y, sr, above=TREBLE_HZ)}
    for part, name in STEM_VARIANTS.items():
        stem = (stems or {}).get(part)
        if stem is None:
            continue
        if len(stem) != len(y):
            raise ValueError(f"stem {part!r} has {len(stem)} samples, the track {len(y)}")
        out[name] = (y - np.asarray(stem, dtype=np.float32)).astype(np.float32)
    return out


def demo_stems(track_path: str | Path) -> dict[str, np.ndarray] | None:
    """The true parts ("drums", "bass", "chords", "lead": those that play) of a demo-corpus
    clip, {part: (N,) float32} at the clip's own rate, rendered again from the corpus seed;
    None for any other track, or a demo clip with no parts (see datasets/synth/stems.py)."""
    from genre_core.datasets.synth.stems import PARTS, clip_parts

    parts = clip_parts(track_path)
    if parts is None:
        return None
    return {name: parts[name].astype(np.float32) for name in PARTS if name in parts}


def variant_probs(loaded_run, variants: dict[str, np.ndarray], sr: int) -> dict[str, np.ndarray]:
    """Track-level class probabilities (C,) of each variant ((N,) audio at `sr` Hz), as the
    run scored its test tracks: windows of window_s every eval_hop_s (one zero-padded window
    for a short track), the mean of the windows' log-probabilities renormalised (a multi-label
    run: the mean of its per-genre probabilities). All variants' windows share the batches."""
    length = int(round(loaded_run.window_s * loaded_run.sr))
    hop = int(round(loaded_run.config.eval_hop_s * loaded_run.sr))
    audio, index = {}, []  # index: (variant, start sample) of every window
    for name, y in variants.items():
        y = np.asarray(y, dtype=np.float32)
        if sr != loaded_run.sr:
            y = resample(y, sr, loaded_run.sr)
        audio[name] = np.pad(y, (0, max(0, length - len(y))))
        index += [(name, int(start)) for start in window_starts(len(audio[name]), length, hop)]
    if not index:
        return {}
    step = batch_size(loaded_run.device)  # windows are cut a batch at a time: memory stays flat
    probs = np.concatenate([
        loaded_run.predict_windows(np.stack([audio[name][s: s + length] for name, s in index[i: i + step]]))[0]
        for i in range(0, len(index), step)])  # (W, C)
    owners = [name for name, _ in index]
    if loaded_run.config.task == "multilabel":
        owners_arr = np.asarray(owners)
        return {name: probs[owners_arr == name].mean(axis=0) for name in variants}
    ids, log_p = aggregate_windows(owners, np.log(np.maximum(probs, np.finfo(np.float32).tiny)))
    return dict(zip(ids, np.exp(log_p)))


def mind_change(probs: dict[str, np.ndarray], original: np.ndarray, classes: list[str], *,
                true: str, predicted: str) -> str | None:
    """One sentence naming the variant that moves a mistake toward its true genre, e.g.
    "Without the drums the model hears jazz 0.62, not disco 0.20 (the full track: disco 0.71,
    jazz 0.12)." - or None when the track is not a mistake or no variant raises the true
    genre's probability and lowers the predicted one's, each by MIND_MARGIN. Of several, the
    one that makes the true genre the top answer wins, then the largest combined move.
    `probs`: {variant: (C,)} from variant_probs; `original`: (C,) the track's own. The genre
    names are the dataset's: escape the sentence where it is rendered."""
    if true == predicted or true not in classes or predicted not in classes:
        return None
    t, p = classes.index(true), classes.index(predicted)
    original = np.asarray(original, dtype=np.float64)
    best, best_key = None, None
    for name, row in probs.items():
        row = np.asarray(row, dtype=np.float64)
        rise, fall = row[t] - original[t], original[p] - row[p]
        if rise < MIND_MARGIN or fall < MIND_MARGIN:
            continue
        key = (int(np.argmax(row)) == t, rise + fall)
        if best_key is None or key > best_key:
            best, best_key = name, key
    if best is None:
        return None
    row, said = np.asarray(probs[best], dtype=np.float64), VARIANT_PHRASES.get(best, f"As the variant {best!r}")
    before = f"(the full track: {predicted} {original[p]:.2f}, {true} {original[t]:.2f})"
    if best_key[0]:
        return f"{said} the model hears {true} {row[t]:.2f}, not {predicted} {row[p]:.2f} {before}."
    return (f"{said} the model leans toward {true}: {true} {row[t]:.2f}, {predicted} {row[p]:.2f} "
            f"{before}.")


def variant_tables(loaded_run, tracks: pd.DataFrame, explained: pd.DataFrame, cache, *,
                   progress: bool = True, notes: list[str] | None = None,
                   correct_limit: int = VARIANT_CORRECT_LIMIT) -> dict[str, pd.DataFrame]:
    """analyze's step: {"variant_predictions": rows (track_id, variant, probs)} for the
    misclassified tracks of `explained` (columns track_id, label, predicted) and at most
    `correct_limit` correct ones; demo tracks get their stem variants too, and every track an
    "original" row, the baseline its variants are compared with: its stored prediction
    (`explained.probs`, which the same path reproduces), or for a track longer than
    VARIANT_MAX_S its classified excerpt. `tracks` (track_id, path, sha1) says where the audio is; `cache` is the run's
    ShardCache. A line for the summary goes to `notes`."""
    started = time.perf_counter()
    chosen = choose_tracks(explained, correct_limit, seed=loaded_run.config.seed)
    by_id = tracks.set_index("track_id")
    stored = explained.drop_duplicates("track_id").set_index("track_id").get("probs")
    rows, with_stems = [], 0
    for track_id in tqdm(chosen, desc="variants", unit="track", disable=not progress):
        track = by_id.loc[track_id]
        y = np.asarray(cache.load(track.path, track.sha1, loaded_run.sr), dtype=np.float32)  # (N,)
        stems = demo_stems_at(track.path, loaded_run.sr, len(y))
        with_stems += stems is not None
        whole = len(y) <= int(VARIANT_MAX_S * loaded_run.sr) and "probs" in explained
        y, stems = _excerpt(y, stems, int(VARIANT_MAX_S * loaded_run.sr))
        variants = musical_variants(y, loaded_run.sr, stems=stems)
        if not whole:  # the excerpt is the baseline; a whole track's is its stored prediction
            variants = {"original": y, **variants}
        probs = variant_probs(loaded_run, variants, loaded_run.sr)
        if whole:
            probs = {"original": np.asarray(stored[track_id], dtype=np.float32), **probs}
        rows += [dict(track_id=track_id, variant=name, probs=p.astype(np.float32).tolist())
                 for name, p in probs.items()]
    if notes is not None and chosen:
        notes.append(f"musical variants of {len(chosen)} tracks ({with_stems} with their true stems) "
                     f"in {time.perf_counter() - started:.0f} s")
    return {"variant_predictions": pd.DataFrame(rows, columns=["track_id", "variant", "probs"])}


def choose_tracks(explained: pd.DataFrame, correct_limit: int, *, seed: int) -> list[str]:
    """Every misclassified track of `explained`, then up to `correct_limit` correct ones taken
    round-robin over the true genres in a seeded order (so each genre is represented). Rows
    explained only as a mistake's closest correct track (`contrast_only`) are left out."""
    if "contrast_only" in explained:
        explained = explained[~explained.contrast_only.fillna(False).astype(bool)]
    wrong = explained[explained.predicted != explained.label]
    right = explained[explained.predicted == explained.label]
    right = right.iloc[np.random.default_rng(seed).permutation(len(right))]
    rank = right.groupby("label", sort=False).cumcount().to_numpy()  # position within its genre
    right = right.iloc[np.argsort(rank, kind="stable")]
    return list(dict.fromkeys([*wrong.track_id, *right.track_id[:max(0, correct_limit)]]))


def _excerpt(y: np.ndarray, stems: dict[str, np.ndarray] | None, limit: int
             ) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """The middle `limit` samples of y (and of each stem); all of it when it is no longer."""
    if len(y) <= limit:
        return y, stems
    cut = slice((len(y) - limit) // 2, (len(y) - limit) // 2 + limit)
    return y[cut], None if stems is None else {name: stem[cut] for name, stem in stems.items()}


def demo_stems_at(path: str | Path, sr: int, n: int) -> dict[str, np.ndarray] | None:
    """demo_stems of `path` resampled to `sr` and cut or padded to `n` samples (the track as
    the run's cache decoded it), or None."""
    stems = demo_stems(path)
    if stems is None:
        return None
    from genre_core.datasets.synth.stems import corpus_config

    native = corpus_config(Path(path).parent.parent.parent).sr
    out = {}
    for name, stem in stems.items():
        stem = resample(stem, native, sr) if native != sr else stem
        out[name] = np.pad(stem[:n], (0, max(0, n - len(stem))))
    return out
