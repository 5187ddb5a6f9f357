"""Sampled General-MIDI instruments for the demo corpus: TimGM6mb.sf2 played by TinySoundFont.

The SoundFont is the one the `pretty_midi` wheel ships (MIT package; the SoundFont itself is
Tim Brechbill's TimGM6mb, see docs/datasets.md). We only read the file from the installed package and
never import pretty_midi (it would need mido). Rendering is offline: note events are turned
into sample-exact `noteon`/`noteoff` calls between `generate_simple` blocks, with no audio
device and no sequencer clock, so the same events give the same samples.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SF2_NAME = "TimGM6mb.sf2"
DRUM_BANK = 128
DRUM_CHANNEL = 9

# A role (the instrument names styles.py writes) -> General-MIDI programs an artist picks from.
# Several roles share programs on purpose: a piano is a piano in blues, jazz, pop and classical.
PROGRAMS: dict[str, tuple[int, ...]] = {
    "piano": (0, 1, 2),            # acoustic grand, bright, electric grand
    "epiano": (4, 5, 0),           # Rhodes, FM e-piano, grand
    "pluck": (25, 24, 26),         # steel and nylon acoustic, jazz guitar
    "skank": (27, 28, 26),         # clean, muted and jazz electric guitar
    "upright": (32, 33),           # acoustic bass, finger bass
    "pickbass": (34, 33, 35),      # picked, finger, fretless
    "strings": (48, 49, 50),       # string ensembles 1 and 2, synth strings
    "cello": (42, 43, 32),         # cello, contrabass, acoustic bass
    "pad": (89, 88, 91, 50),       # warm, new-age, choir pad, synth strings
    "flute": (73, 68, 71, 40),     # flute, oboe, clarinet, violin
    "horn": (65, 66, 56, 64),      # alto and tenor sax, trumpet, soprano sax
    "organ": (16, 17, 18),         # drawbar, percussive, rock organ
    "stab": (61, 62, 63),          # brass section, synth brass 1 and 2
    "synthbass": (38, 39, 33),     # synth bass 1 and 2, finger bass
    "synthlead": (80, 81, 87),     # square, saw, bass+lead
    "sub": (38, 39, 33),           # synth basses played low
    "power": (30, 29),             # distortion and overdriven guitar
    "eguitar": (29, 27, 30, 26),   # overdriven, clean, distortion, jazz guitar
    "timp": (47,),                 # timpani, played as a pitched part of the drum bus
}
# Roles only the unseen-genre recipes play (styles.UNSEEN_STYLES). Kept apart from PROGRAMS:
# make_artist draws one program per role in table order, so a role added there would move
# every later draw of every demo artist, and with it every demo clip.
UNSEEN_PROGRAMS: dict[str, tuple[int, ...]] = {
    "accordion": (21, 23, 22),     # accordion, tango accordion, harmonica
    "tuba": (58, 57),              # tuba, trombone
    "nylon": (24, 25),             # nylon and steel acoustic guitar
    "harp": (46, 6, 15),           # harp, harpsichord, dulcimer
    "mallet": (11, 12, 13, 9),     # vibraphone, marimba, xylophone, glockenspiel
    "gongs": (14, 11, 108),        # tubular bells, vibraphone, kalimba
    "violin": (40, 110, 41),       # violin, fiddle, viola
    "brass": (61, 57, 60),         # brass section, trombone, French horn
    "trumpet": (56, 60, 59),       # trumpet, French horn, muted trumpet
}
ALL_PROGRAMS = {**PROGRAMS, **UNSEEN_PROGRAMS}
# Drum kits in bank 128 of TimGM6mb (all present in the file)
KITS = {"standard": 0, "room": 8, "power": 16, "electronic": 24, "808": 25, "jazz": 32, "brush": 40}
# A drum name of styles.py -> GM percussion key
DRUM_KEYS = {"kick": 36, "snare": 38, "hat": 42, "ohat": 46, "ride": 51, "crash": 49, "rim": 37,
             "clap": 39, "brush": 38,
             # hand percussion of the unseen-genre recipes
             "conga": 63, "lowconga": 64, "bongo": 60, "bell": 67, "cowbell": 56, "shaker": 70,
             "tamb": 54, "clave": 75, "block": 76, "tom": 45, "china": 52}


class SoundFontMissing(RuntimeError):
    """tinysoundfont or the SoundFont is not installed (both come with `make setup`)."""


def sf2_path() -> Path:
    """Where the installed pretty_midi package keeps TimGM6mb.sf2, found without importing it."""
    spec = importlib.util.find_spec("pretty_midi")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / SF2_NAME
        if path.is_file():
            return path
    raise SoundFontMissing(f"{SF2_NAME} not found: install it with "
                           "`pip install --no-deps pretty_midi==0.2.10` (or run `make setup`)")


@dataclass(frozen=True)
class Note:
    """One note of a bus, in samples from the start of the render."""

    start: int
    end: int                 # note-off sample (the SoundFont's release rings on after it)
    channel: int             # 0-15; DRUM_CHANNEL plays the kit
    key: int                 # MIDI note
    velocity: int            # 1-127


_SETTLE = 4096  # samples rendered and dropped between renders (a quick release lasts far less)
_SYNTHS: dict[int, tuple[object, int]] = {}  # per process and rate: loading the file takes ~0.1 s


def _synth(sr: int):
    if sr not in _SYNTHS:
        try:
            import tinysoundfont
        except ImportError as exc:
            raise SoundFontMissing("tinysoundfont is not installed: "
                                   "`pip install --no-deps tinysoundfont==0.3.7` (or run `make setup`)") from exc
        synth = tinysoundfont.Synth(samplerate=sr)
        _SYNTHS[sr] = (synth, synth.sfload(str(sf2_path()), max_voices=128))
    return _SYNTHS[sr]


def render_notes(notes: list[Note], programs: dict[int, int], kit: int, *, n: int, sr: int) -> np.ndarray:
    """Mono float64 audio of `notes` (n samples), channel c playing GM program `programs[c]`
    and the drum channel playing bank-128 preset `kit`. Deterministic: no clock, no device. (n,)"""
    synth, sfid = _synth(sr)
    # sounds_off() only starts a quick release: play it out, so that no voice of the previous
    # render is still busy. Voices are summed in slot order, so a slot taken by an old voice
    # would change the float rounding, and the bytes would depend on what this process did before.
    synth.sounds_off()
    synth.generate_simple(_SETTLE)
    for channel, program in programs.items():
        synth.program_select(channel, sfid, 0, program)
    synth.program_select(DRUM_CHANNEL, sfid, DRUM_BANK, kit, True)
    for channel in range(16):
        synth.pitchbend(channel, 8192)  # no state leaks from the previous bus
    events = []  # (sample, 0 = off before 1 = on at the same sample, channel, key, velocity)
    for note in _untangle(notes):
        events.append((note.start, 1, note.channel, note.key, note.velocity))
        events.append((note.end, 0, note.channel, note.key, 0))
    events.sort()
    out, pos = np.zeros(2 * n, dtype=np.float32), 0
    for sample, on, channel, key, velocity in events:
        sample = min(max(sample, 0), n)
        if sample > pos:
            out[2 * pos:2 * sample] = np.frombuffer(synth.generate_simple(sample - pos), dtype=np.float32)
            pos = sample
        if on:
            synth.noteon(channel, key, velocity)
        else:
            synth.noteoff(channel, key)
    if n > pos:
        out[2 * pos:] = np.frombuffer(synth.generate_simple(n - pos), dtype=np.float32)
    return 0.5 * (out[0::2].astype(np.float64) + out[1::2])  # interleaved stereo -> mono


def _untangle(notes: list[Note]) -> list[Note]:
    """Cut each note off where the same key on the same channel strikes again, so a late
    note-off never silences the newer note."""
    notes = sorted(notes, key=lambda m: (m.channel, m.key, m.start))
    out = []
    for a, b in zip(notes, notes[1:] + [None]):
        if b is not None and (b.channel, b.key) == (a.channel, a.key) and a.end > b.start:
            a = Note(a.start, max(a.start, b.start), a.channel, a.key, a.velocity)
        if a.end > a.start:
            out.append(a)
    return out
