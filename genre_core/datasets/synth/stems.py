"""The true parts of a demo clip, rendered again on demand: no stem is kept on disk.

The corpus is deterministic per clip (every draw comes from a Generator seeded by the corpus
seed, the genre and the slot, see corpus.py), and `artists.txt` names the corpus's config in
its header, so a clip's parts can be rendered again from its path alone: `music.render_parts`
plays each bus (drums, bass, chords, lead) through the very production the mix went through
(one room, the mix's compressor and limiter gains), and the noise floor is a part of its own.
The planted faults are replayed on every part when they are linear (duplicates, re-gain,
shift, trim, the resampling low-pass, dropouts); a clipped, silent or unreadable clip has no
parts. Before they are returned, the parts are checked against the file: their sum must be
the clip's samples within half a 16-bit step, so parts that do not add up to what is on disk
(another corpus version, an edited file) are never handed out.

Cost: one render of the clip and the production of each part, ~0.2 s of CPU for a 15-s clip
(measured on the demo corpus); nothing on disk.
"""

from __future__ import annotations

import re
import wave
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from genre_core.datasets.synth.corpus import _CLIP, EXTRAS_NOTE, GENRES, SynthConfig, _damage, _plan, _rerecord, _Slot
from genre_core.datasets.synth.music import render_parts

PARTS = ("drums", "bass", "chords", "lead")  # the musical parts; "noise" is the noise floor
# The sum of the parts against the 16-bit file: half a step of rounding, and float rounding
# (~1e-15) on top.
FILE_TOLERANCE = 0.5 / 32767 + 1e-9
_HEADER = re.compile(r"## GenreLens synthetic demo corpus: seed (\d+), (\d+) clips per genre, "
                     r"([0-9.eE+-]+) s at (\d+) Hz(" + re.escape(EXTRAS_NOTE) + ")?")


def corpus_config(root: str | Path) -> SynthConfig | None:
    """The config a synth corpus under `root` was made with (from its artists.txt header), or
    None when `root` is not one."""
    try:
        with open(Path(root) / "artists.txt", encoding="utf-8") as f:
            match = _HEADER.fullmatch(f.readline().strip())
    except (OSError, UnicodeDecodeError):
        return None
    if match is None:
        return None
    try:
        return SynthConfig(per_genre=int(match[2]), seconds=float(match[3]), sr=int(match[4]), seed=int(match[1]),
                           extras=bool(match[5]))
    except ValueError:
        return None


def clip_parts(path: str | Path) -> dict[str, np.ndarray] | None:
    """The parts of demo clip `path` ({part: (N,) float64} at the corpus rate, N the clip's
    samples; PARTS that played, plus "noise"), summing to the clip on disk within
    FILE_TOLERANCE; None for a file of no synth corpus, a clip with no parts (clipped, silent,
    unreadable) or parts that do not add up to the file."""
    path = Path(path)
    if path.suffix != ".wav" or path.parent.parent.name != "genres_original":
        return None
    config = corpus_config(path.parent.parent.parent)
    slot = _slots(config).get(path.stem) if config is not None else None
    if slot is None or slot.genre != path.parent.name:
        return None
    parts = _slot_parts(slot, config)
    if parts is None:
        return None
    samples = _read_wav(path, config.sr)
    if samples is None or len(samples) != len(next(iter(parts.values()))):
        return None
    if np.max(np.abs(samples - sum(parts.values()))) > FILE_TOLERANCE:
        return None
    return parts


@lru_cache(maxsize=4)
def _slots(config: SynthConfig) -> dict[str, _Slot]:
    return {slot.track_id: slot for slot in _plan(config)}


def _seeded(slot: _Slot, config: SynthConfig) -> np.random.Generator:
    """The Generator corpus._write_slot gives this slot."""
    return np.random.default_rng([config.seed, _CLIP, GENRES.index(slot.genre), slot.index])


def _slot_parts(slot: _Slot, config: SynthConfig) -> dict[str, np.ndarray] | None:
    """What corpus._write_slot wrote for `slot`, part by part (None where it is not linear)."""
    if slot.kind in ("unreadable", "silence", "not_music") or (slot.kind == "distortion" and slot.variant == "clip"):
        return None
    if slot.kind == "exact_duplicate" and not slot.original:
        return _slot_parts(slot.source, config)
    if slot.kind == "recording_duplicate" and not slot.original:
        parts, _ = _render(slot.source, config)
        # _rerecord is linear in the audio; its one draw (where a trim starts) comes from the
        # copy's own fresh Generator, the same for every part
        return {name: _rerecord(part, slot, config, _seeded(slot, config)) for name, part in parts.items()}
    parts, rng = _render(slot, config)
    parts = {name: part[: config.n_samples] for name, part in parts.items()}
    if slot.kind == "distortion":  # dropouts: the same gaps in every part
        state = rng.bit_generator.state
        parts = {name: _damage(part.copy(), replace(slot), config.sr, _generator(state))
                 for name, part in parts.items()}
    return parts


def _render(slot: _Slot, config: SynthConfig) -> tuple[dict[str, np.ndarray], np.random.Generator]:
    """The slot's parts as rendered before any fault (n_samples + extra long), and its
    Generator after the render (where a dropout's draws continue)."""
    if slot.kind == "version" and not slot.original:  # the original's draws (corpus._render_version)
        rng = _seeded(slot.source, config)
        _, parts = render_parts(slot.source.true_genre, slot.artist, config.n_samples, sr=config.sr, rng=rng,
                                bars_at=slot.source.artist.tempo)
        return parts, rng
    rng = _seeded(slot, config)
    _, parts = render_parts(slot.true_genre, slot.artist, config.n_samples + slot.extra, sr=config.sr,
                            rng=rng, also=slot.also or None)
    return parts, rng


def _generator(state: dict) -> np.random.Generator:
    bits = np.random.PCG64()
    bits.state = state
    return np.random.Generator(bits)


def _read_wav(path: Path, sr: int) -> np.ndarray | None:
    """A corpus clip as written (16-bit mono PCM / 32767), or None if it is not one at `sr`."""
    try:
        with wave.open(str(path), "rb") as f:
            if (f.getnchannels(), f.getsampwidth(), f.getframerate()) != (1, 2, sr):
                return None
            pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
    except (OSError, EOFError, RuntimeError, wave.Error):  # RuntimeError: a chunk past the end
        return None
    return pcm.astype(np.float64) / 32767
