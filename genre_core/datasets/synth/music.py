"""The music engine of the demo corpus: one clip, from note patterns to a mastered mix.

A clip is a few bars of a genre "song" as styles.py describes it: drums from step patterns,
a chord progression voiced on the genre's (or the artist's swapped-in) instrument, a bass
line, sometimes a lead. Each part becomes note events on its bus (drums, bass, chords,
lead); each bus is played by sampled General-MIDI instruments (soundfont.py), and the buses
are mixed and produced with effects.py: overdrive on guitars, EQ, compression, a room,
a noise floor and loudness normalisation. The `Artist` palette (tempo centre, key, GM
programs, drum kit, EQ, room, mix) makes one artist's clips sound alike.
"""

from __future__ import annotations

import numpy as np

from genre_core.datasets.synth import effects
from genre_core.datasets.synth.soundfont import DRUM_CHANNEL, DRUM_KEYS, Note, render_notes
from genre_core.datasets.synth.styles import SCALES, STYLES, Artist, Part, Style, parse_chord

_VELOCITY = {"X": 1.0, "x": 0.7, "o": 0.35}
DISTORTED = ("power", "eguitar")  # roles whose bus goes through the overdrive
_PREROLL = 0.5     # s rendered before the clip starts, so it opens mid-song, not on silence
_TIMPANI = 8       # channel of the pitched timpani inside the drum bus
_DRUM_LEN = {"crash": 1.5, "ride": 0.8, "ohat": 0.4, "timp": 1.2}  # s held; other drums 0.3 s


def render_clip(genre: str, artist: Artist, n: int, *, sr: int, rng: np.random.Generator,
                also: str | None = None, bars_at: float | None = None) -> np.ndarray:
    """`n` samples of a `genre` song played by `artist`, mastered, float64 (peaks < 0.9). (n,)

    An artist with a neighbour genre borrows each element - progression, drums, chord parts,
    bass, lead - from it with probability `artist.borrow` (genres share material). A crossover
    (`also` = another genre) takes two or three of the five elements from `also` for certain.

    `bars_at` (bpm, None: the artist's tempo) sets how many bars are composed: a version (the
    same song by another, slower artist, from a Generator seeded like the original's) composes
    as many bars as the original, so it draws the very same numbers - the same chords, bass
    and drum pattern choices and melody - and plays them at its own tempo, key and sounds.
    """
    clip = _arrange(genre, artist, n, sr=sr, rng=rng, also=also, bars_at=bars_at)
    return clip.master(clip.mix())


def render_parts(genre: str, artist: Artist, n: int, *, sr: int, rng: np.random.Generator,
                 also: str | None = None, bars_at: float | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """`render_clip` (the very same samples, same rng draws) and its true parts, each (n,)
    float64 through the same production: "drums", "bass", "chords", "lead" (the buses that
    played) and "noise" (the noise floor). The room, EQ and filters are linear and the
    compressor and limiter gains are the mix's, applied to every part, so the parts sum to the
    mix up to float rounding (~1e-15 of full scale)."""
    clip = _arrange(genre, artist, n, sr=sr, rng=rng, also=also, bars_at=bars_at)
    buses = clip.buses()
    y = np.zeros(n)
    for bus in buses.values():  # the order and arithmetic of mix(): the same samples
        y += bus
    return clip.mastered(y, buses)


def _arrange(genre: str, artist: Artist, n: int, *, sr: int, rng: np.random.Generator,
             also: str | None, bars_at: float | None = None) -> _Clip:
    """Every note of the clip, on its bus (see render_clip); nothing rendered yet."""
    own = STYLES[genre]
    if also is not None:
        borrowed = set(rng.permutation(5)[: int(rng.integers(2, 4))].tolist())
        sources = [STYLES[also] if i in borrowed else own for i in range(5)]
    else:
        other = STYLES[artist.neighbour] if artist.neighbour else own
        sources = [other if rng.random() < artist.borrow else own for _ in range(5)]
    progressions = artist.progressions if sources[0] is own else sources[0].progressions
    clip = _Clip(own, artist, progressions, n, sr, rng, bars_at)
    clip.drums(sources[1])
    for i, part in enumerate(sources[2].chords):
        if i == 0 and sources[2] is own and artist.swap:  # the artist's own instrument instead
            part = Part(artist.swap, part.rhythm, part.gate, part.low, part.gain, part.strum)
        clip.chord_part(part, channel=i)
    clip.bass_part(sources[3].bass)
    lead = sources[4]
    if lead.lead is not None and rng.random() < 0.8:
        clip.lead_part(lead.lead, lead)
    return clip


def _voice(pitch_class: int, intervals: tuple[int, ...], low: int) -> list[int]:
    """Chord notes stacked on the lowest root at or above `low` (MIDI)."""
    root = low + (pitch_class - low) % 12
    return [root + i for i in intervals]


def _midi_velocity(level: float) -> int:
    """A 0..1+ loudness to a MIDI velocity; ghost notes stay audible."""
    return min(127, max(1, round(25 + 100 * level)))


class _Clip:
    """One clip being rendered: its timing, harmony and the notes of each bus."""

    def __init__(self, style: Style, artist: Artist, progressions: tuple[str, ...], n: int, sr: int,
                 rng: np.random.Generator, bars_at: float | None = None):
        self.style, self.artist, self.n, self.sr, self.rng = style, artist, n, sr, rng
        jitter = np.exp(rng.normal(0, 0.03))
        self.bar = 240.0 / (artist.tempo * jitter)  # s per 4/4 bar
        self.offset = rng.uniform(0, self.bar)  # clips start anywhere, not on a downbeat
        self.n_bars = int((n / sr + self.offset) / self.bar) + 2
        if bars_at is not None:  # as many bars as the same draws give at that tempo
            bar = 240.0 / (bars_at * jitter)
            self.n_bars = int((n / sr + self.offset / self.bar * bar) / bar) + 2
        prog = str(rng.choice(progressions)).split()
        turn = int(rng.integers(len(prog)))
        prog = prog[turn:] + prog[:turn]
        self.chords = [parse_chord(prog[i % len(prog)]) for i in range(self.n_bars + 1)]
        self.key = (artist.key + (int(rng.integers(-2, 3)) if rng.random() < 0.25 else 0)) % 12
        self.pre = int(_PREROLL * sr)
        self.notes: dict[str, list[Note]] = {name: [] for name in ("drums", "bass", "chords", "lead")}
        self.programs: dict[str, dict[int, int]] = {name: {} for name in self.notes}
        self.distorted: set[str] = set()

    def at(self, bar: int, step: float, steps: int) -> int:
        """Sample index (pre-roll included) of step `step` of `steps` in a bar, swung and humanised."""
        step_len = self.bar / steps
        swing = self.style.swing * step_len * (int(step) % 2) if steps == 16 else 0.0
        t = bar * self.bar + step * step_len + swing + self.rng.normal(0, self.artist.looseness)
        return int(round((t - self.offset) * self.sr)) + self.pre

    def hold(self, steps: float, grid: int, gate: float) -> int:
        """Samples a note of `steps` grid steps is held, shortened by the part's gate."""
        return max(1, int(steps * self.bar / grid * gate * self.sr))

    def play(self, bus: str, start: int, length: int, *, channel: int, key: int, level: float) -> None:
        if start + length > 0 and start < self.n + self.pre:
            self.notes[bus].append(Note(start, start + length, channel, int(key), _midi_velocity(level)))

    def use(self, bus: str, channel: int, role: str) -> None:
        self.programs[bus][channel] = self.artist.program(role)
        if role in DISTORTED:
            self.distorted.add(bus)

    def pattern(self, options: str, signature: bool = False) -> str:
        """One bar's pattern: the artist's own option most of the time when `signature`."""
        opts = options.split("|")
        if signature and self.rng.random() < 0.85:
            return opts[self.artist.groove % len(opts)]
        return opts[int(self.rng.integers(len(opts)))]

    def hits(self, pattern: str):
        """(step, steps until the next hit, symbol) for each non-rest step of a bar."""
        steps = [i for i, c in enumerate(pattern) if c != "."]
        for i, step in zip(steps, steps[1:] + [len(pattern)]):
            yield i, step - i, pattern[i]

    def hit(self, drum: str, start: int, level: float) -> None:
        length = int(_DRUM_LEN.get(drum, 0.3) * self.sr)
        if drum == "timp":  # tuned to the tonic, low
            self.use("drums", _TIMPANI, "timp")
            self.play("drums", start, length, channel=_TIMPANI, key=41 + (self.key - 5) % 12, level=level)
        else:
            self.play("drums", start, length, channel=DRUM_CHANNEL, key=DRUM_KEYS[drum], level=level)

    def drums(self, s: Style) -> None:
        rng = self.rng
        for bar in range(self.n_bars):
            if bar % s.drum_every or (s.drum_every > 1 and rng.random() < 0.3):
                continue
            fill = s.fills and bar % 4 == 3 and rng.random() < 0.6
            for drum, options in s.drums:
                pattern = self.pattern(options, signature=True)
                for step, _, sym in self.hits(pattern):
                    if rng.random() < 0.04 or (fill and 4 * step >= 3 * len(pattern) and drum != "kick"):
                        continue  # a dropped hit now and then; the fill replaces the last beat
                    self.hit(drum, self.at(bar, step, len(pattern)), _VELOCITY[sym] * rng.uniform(0.8, 1.0))
            for step in range(12, 16) if fill else ():
                self.hit("snare", self.at(bar, step, 16), 0.5 + 0.15 * (step - 12))
            if s.fills and bar % 4 == 0 and rng.random() < 0.7:
                self.hit("crash", self.at(bar, 0, 16), 0.8)

    def chord_part(self, part: Part, channel: int) -> None:
        self.use("chords", channel, part.inst)
        for bar in range(self.n_bars):
            root, intervals = self.chords[bar]
            notes = _voice(self.key + root, intervals, part.low)
            pattern = self.pattern(part.rhythm)
            for step, length, sym in self.hits(pattern):
                n_hold = self.hold(length, len(pattern), part.gate)
                start = self.at(bar, step, len(pattern))
                level = _VELOCITY.get(sym, 1.0) * part.gain * self.rng.uniform(0.85, 1.0)
                for i, midi in enumerate(notes):  # a strum starts each string a little later
                    self.play("chords", start + int(i * part.strum * self.sr), n_hold, channel=channel, key=midi, level=level)

    def bass_part(self, part: Part) -> None:
        self.use("bass", 0, part.inst)
        for bar in range(self.n_bars):
            root, intervals = self.chords[bar]
            base = _voice(self.key + root, (0,), part.low)[0]
            follow = _voice(self.key + self.chords[bar + 1][0], (0,), part.low)[0]
            offsets = {"R": 0, "O": 12, "5": 7, "6": 9, "a": follow - 1 - base,
                       "3": intervals[1] if intervals[1] in (3, 4) else 7,
                       "7": next((i for i in intervals if i in (10, 11)), 10)}
            pattern = self.pattern(part.rhythm)
            for step, length, sym in self.hits(pattern):
                n_hold = self.hold(length, len(pattern), part.gate)
                level = part.gain * self.rng.uniform(0.7, 0.9)
                self.play("bass", self.at(bar, step, len(pattern)), n_hold, channel=0, key=base + offsets[sym], level=level)

    def lead_part(self, part: Part, style: Style) -> None:
        """A random walk over the scale that lands on chord tones on the beats; 2 bars on, 2 off."""
        rng, grid = self.rng, style.grid
        self.use("lead", 0, part.inst)
        minor = self.chords[0][1][1] == 3 and style.scale in ("major", "penta")
        scale = SCALES["minor" if minor else style.scale]
        pool = [m for m in range(part.low, part.low + 20) if (m - self.key) % 12 in scale]
        lengths, idx = [int(c) for c in part.rhythm], len(pool) // 2
        for bar in range(self.n_bars):
            if (bar // 2) % 2:
                continue
            root, intervals = self.chords[bar]
            chord = {(self.key + root + i) % 12 for i in intervals}
            tones = [j for j, m in enumerate(pool) if m % 12 in chord]
            pos = 0
            while pos < grid:
                length = lengths[int(rng.integers(len(lengths)))]
                idx = int(np.clip(idx + rng.choice((-2, -1, -1, 0, 1, 1, 2, 3, -3)), 0, len(pool) - 1))
                if pos % (grid // 4) == 0 and tones:
                    idx = min(tones, key=lambda j: abs(j - idx))
                if rng.random() > 0.2:
                    n_hold = self.hold(min(length, grid - pos), grid, part.gate)
                    self.play("lead", self.at(bar, pos, grid), n_hold, channel=0, key=pool[idx], level=part.gain * rng.uniform(0.6, 0.9))
                pos += length

    def mix(self) -> np.ndarray:
        """Each bus played by the SoundFont, levelled to unit RMS, overdriven where a guitar plays,
        weighted by the genre and the artist. (n,)"""
        y = np.zeros(self.n)
        for bus in self.buses().values():
            y += bus
        return y

    def buses(self) -> dict[str, np.ndarray]:
        """The weighted buses `mix` sums, by name, in mix order; a silent bus is left out. (n,) each"""
        a, sr, out = self.artist, self.sr, {}
        for name, weight, artist_gain in zip(self.notes, self.style.levels, a.mix):
            if not self.notes[name]:
                continue
            bus = render_notes(self.notes[name], self.programs[name], a.kit, n=self.n + self.pre, sr=sr)[self.pre:]
            rms = np.sqrt(np.mean(bus**2))
            if rms < 1e-6:
                continue
            bus = bus / rms
            if name in self.distorted:  # amp + cabinet: darker artists get a darker cabinet
                bus = effects.overdrive(bus, sr, a.drive, cabinet_hz=2500 + 3500 * a.brightness)
            out[name] = weight * artist_gain * bus
        return out

    def master(self, y: np.ndarray) -> np.ndarray:
        """Room, EQ, bus compression, a noise floor, loudness: the artist's production. (n,)"""
        return self.mastered(y, {})[0]

    def mastered(self, y: np.ndarray, parts: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """`master(y)` and `parts` (whose sum is y) through the same production, plus the noise
        floor as part "noise" (only when parts are asked for): the gains are y's. (n,) each"""
        a, sr, rng = self.artist, self.sr, self.rng
        ir = effects.room_ir(sr, a.room, wet=a.reverb, damping_hz=3000 + 5000 * a.brightness, rng=rng)
        y = self._colour(effects.room(y, ir, wet=a.reverb))
        rms_db = 10 * np.log10(np.mean(y**2) + 1e-12)
        squash = effects.compress_gain(y, sr, rms_db - 2.0, ratio=a.squash)
        y = y * squash
        noise = np.sqrt(np.mean(y**2)) * 10 ** (a.noise_db / 20) * rng.standard_normal(len(y))
        y, level = effects.levelled(y + noise, sr, a.loud)
        if not parts:
            return y, {}
        out = {name: self._colour(effects.room(part, ir, wet=a.reverb)) * squash * level
               for name, part in parts.items()}
        return y, {**out, "noise": noise * level}

    def _colour(self, y: np.ndarray) -> np.ndarray:
        """The artist's EQ after the room: rumble cut, warmth and brightness shelves (linear)."""
        a, sr = self.artist, self.sr
        y = effects.highpass(y, sr, 30.0)
        y = effects.shelf(y, sr, 200.0, gain_db=a.warmth, high=False)
        return effects.shelf(y, sr, 3000.0, gain_db=12 * a.brightness - 6, high=True)
