"""The music engine of the demo corpus: instruments, a drum kit, and one clip.

A clip is a few bars of a genre "song" as synth_styles.py describes it: drums from step
patterns, a chord progression voiced on the genre's instrument, a bass line, sometimes a
pad and a lead, mixed and put in a room. The `Artist` palette (tempo centre, key,
brightness, drive, drum tuning, mix) makes one artist's clips sound alike.

Notes are rendered whole as numpy arrays and cached per clip by (instrument, pitch,
length), so no Python loop runs per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genre_core.datasets.synth.styles import SCALES, STYLES, Artist, Part, Style, parse_chord

TAU = 2 * np.pi
_VELOCITY = {"X": 1.0, "x": 0.7, "o": 0.35}


# ---------------------------------------------------------------- instruments

@dataclass(frozen=True)
class Additive:
    """Struck or plucked string: decaying partials, the high ones dying first."""

    partials: int = 8
    slope: float = 1.2       # amplitude ~ k^-slope at brightness 0.5
    decay: float = 1.2       # e-folding time of the fundamental at 220 Hz, s
    damping: float = 0.4     # extra decay rate per partial index (Karplus-Strong-like)
    pluck: float = 0.0       # pluck position on the string; 0 = no comb notches
    release: float = 0.06    # s
    max_len: float = 1.6     # s; longer notes are cut, they have decayed by then


@dataclass(frozen=True)
class Osc:
    """Sustained oscillator voice (naive waveforms, box-filtered: aliasing is harmless here)."""

    wave: str = "saw"        # saw | square | sine | organ
    voices: int = 1          # detuned copies (ensemble width comes from the artist)
    attack: float = 0.005    # s
    decay: float = 0.3       # s from peak to the sustain level
    sustain: float = 1.0
    release: float = 0.08    # s
    vibrato: float = 0.0     # cents, 5.5 Hz, fading in over 0.4 s
    lowpass: int = 4         # box-filter width in samples at 22.05 kHz (larger = darker)
    snap: float = 0.0        # s; the filter opens at the attack and closes this fast (0 = static)
    drop: float = 0.0        # pitch starts this many times higher and falls in 30 ms (808 sub)
    max_len: float = 30.0    # s


INSTRUMENTS: dict[str, Additive | Osc] = {
    "piano": Additive(partials=8, slope=1.1, decay=1.4, damping=0.45),
    "epiano": Additive(partials=4, slope=1.8, decay=1.8, damping=1.2),   # Rhodes-like, mellow
    "pluck": Additive(partials=12, slope=0.8, decay=0.9, damping=0.35, pluck=0.18),
    "skank": Additive(partials=10, slope=0.9, decay=0.12, damping=0.3, pluck=0.2, release=0.03, max_len=0.3),
    "upright": Additive(partials=5, slope=1.6, decay=0.9, damping=0.8, pluck=0.3),
    "pickbass": Additive(partials=8, slope=1.0, decay=1.2, damping=0.5, pluck=0.25),
    "strings": Osc("saw", 3, attack=0.3, sustain=1.0, release=0.4, vibrato=14, lowpass=6),
    "cello": Osc("saw", 2, attack=0.2, sustain=1.0, release=0.3, vibrato=10, lowpass=10),
    "pad": Osc("saw", 3, attack=0.12, sustain=0.8, release=0.3, vibrato=4, lowpass=8),
    "flute": Osc("sine", 1, attack=0.06, release=0.1, vibrato=18, lowpass=1),
    "horn": Osc("saw", 1, attack=0.04, sustain=0.8, release=0.08, vibrato=12, lowpass=5, snap=0.15),
    "organ": Osc("organ", 1, attack=0.005, release=0.03, lowpass=1),
    "stab": Osc("saw", 2, attack=0.003, decay=0.12, sustain=0.3, release=0.05, lowpass=3, snap=0.08),
    "synthbass": Osc("square", 1, decay=0.25, sustain=0.6, release=0.04, lowpass=8, snap=0.06),
    "synthlead": Osc("square", 2, attack=0.01, release=0.1, vibrato=16, lowpass=3),
    "sub": Osc("sine", 1, decay=0.6, sustain=0.5, release=0.08, lowpass=1, drop=1.5),
    "power": Osc("saw", 2, attack=0.002, decay=0.4, sustain=0.7, release=0.03, lowpass=1),
    "eguitar": Osc("saw", 1, attack=0.004, decay=0.5, sustain=0.6, release=0.06, vibrato=22, lowpass=2),
}
DISTORTED = ("power", "eguitar")  # these play into the guitar bus, which is overdriven


def _lowpass(x: np.ndarray, width: int, passes: int = 2) -> np.ndarray:
    """Cascaded centred moving averages: a cheap linear-phase FIR low-pass with its first null
    at sr / width. Centred, so `x - _lowpass(x)` is a clean high-pass. (N,) -> (N,)"""
    lead = (width - 1) // 2
    for _ in range(passes if width > 1 else 0):
        c = np.cumsum(np.concatenate([np.zeros(width), x, np.zeros(lead)]))
        x = ((c[width:] - c[:-width]) / width)[lead:]
    return x


def _highpass(x: np.ndarray, width: int) -> np.ndarray:
    return x - _lowpass(x, width)


def ring(inst: Additive | Osc, freq: float, n: int, sr: int, tone: Artist) -> np.ndarray:
    """`n` samples of a note held forever (attack and decay, no release), peak about 1. (n,)"""
    t = np.arange(n) / sr
    if isinstance(inst, Additive):
        return _additive(inst, freq, t, sr, tone.brightness)
    f = np.full(n, freq)
    if inst.vibrato:  # 5.5 Hz, fading in over 0.4 s; 2^(c/1200) ~ 1 + c ln2 / 1200 for a few cents
        f *= 1 + inst.vibrato * np.log(2) / 1200 * np.sin(TAU * 5.5 * t) * np.minimum(1.0, t / 0.4)
    if inst.drop:
        f = f * (1 + inst.drop * np.exp(-t / 0.03))
    cycles = np.cumsum(f) / sr
    y = np.zeros(n)
    for v in range(inst.voices):  # detuned copies: the same phase track, scaled
        y += _wave(inst.wave, cycles * 2.0 ** ((v - (inst.voices - 1) / 2) * tone.detune / 1200) + 0.31 * v)
    width = max(1, round(inst.lowpass * (1.5 - tone.brightness) * sr / 22050))
    smooth = _lowpass(y, width)
    if inst.snap:  # filter envelope: bright at the attack, closing towards `smooth`
        smooth = smooth + (y - smooth) * np.exp(-t / inst.snap)
    env = np.minimum(1.0, t / inst.attack)
    if inst.sustain < 1:
        env *= inst.sustain + (1 - inst.sustain) * np.exp(-t / inst.decay)
    return smooth * env / inst.voices


def _wave(kind: str, ph: np.ndarray) -> np.ndarray:
    if kind == "saw":  # (ph - floor(ph)) is ph % 1 for ph >= 0, and much cheaper
        return 2 * (ph - np.floor(ph)) - 1
    if kind == "square":
        return np.where(ph - np.floor(ph) < 0.5, 1.0, -1.0)
    if kind == "organ":  # drawbars 8', 4', 2 2/3', 2'
        return sum(a * np.sin(TAU * k * ph) for k, a in ((1, 1.0), (2, 0.6), (3, 0.35), (4, 0.25)))
    return np.sin(TAU * ph) + 0.08 * np.sin(2 * TAU * ph)


def _additive(inst: Additive, freq: float, t: np.ndarray, sr: int, brightness: float) -> np.ndarray:
    """Partial k decays at rate r0 * (1 + damping * (k - 1)), so every partial is a power of one
    damped phasor z = exp((-r0 * damping + i * 2 pi f) t): a complex multiply per partial."""
    k = np.arange(1, min(inst.partials, int(0.45 * sr / freq)) + 1)
    amps = k ** -(inst.slope * (1.5 - brightness))
    if inst.pluck:  # a string plucked at this point has no partials with a node there
        amps = amps * (0.15 + np.abs(np.sin(np.pi * k * inst.pluck)))
    r0 = (freq / 220) ** 0.4 / inst.decay  # high notes die sooner
    angle = ((TAU * freq * t) % TAU).astype(np.float32)
    damped = np.exp(-r0 * inst.damping * t).astype(np.float32)
    z = np.empty(len(t), dtype=np.complex64)  # single precision: ~10x faster, inaudibly different
    z.real, z.imag = damped * np.cos(angle), damped * np.sin(angle)
    zk, acc = z.copy(), np.zeros(len(t), dtype=np.complex64)
    for amp in amps.astype(np.float32):
        acc += amp * zk
        zk *= z
    envelope = np.exp(-r0 * (1 - inst.damping) * t) * np.minimum(1.0, t / 0.003)
    return acc.imag * envelope / amps.sum() * 2.0


# ---------------------------------------------------------------- drums

def drum_kit(sr: int, rng: np.random.Generator, tone: Artist) -> dict[str, np.ndarray]:
    """One hit per drum, tuned by the artist (kick pitch and length, snare body, brightness)."""

    def base(seconds: float) -> tuple[np.ndarray, np.ndarray]:
        n = int(seconds * sr)
        return np.arange(n) / sr, rng.standard_normal(n)

    hp = max(2, round(2 * sr / 22050))  # high-pass width: what is left sits above ~5 kHz
    t, noise = base(4 * tone.kick_decay)
    f = tone.kick * (1 + 2.5 * np.exp(-t / 0.025))  # the pitch sweep that makes a kick
    kick = np.sin(TAU * np.cumsum(f) / sr) * np.exp(-t / tone.kick_decay)
    kick = np.tanh(1.5 * (kick + 0.5 * _highpass(noise, hp) * np.exp(-t / 0.003)))
    t, noise = base(0.35)
    body = (np.sin(TAU * tone.snare * t) + 0.5 * np.sin(TAU * 1.6 * tone.snare * t)) * np.exp(-t / 0.05)
    snare = 0.6 * body + _highpass(noise, 2 * hp) * np.exp(-t / 0.11)
    t, noise = base(0.6)
    air = _highpass(noise, hp)
    hat = air * np.exp(-t / (0.012 + 0.01 * tone.brightness))
    ohat = air * np.exp(-t / 0.22)
    t, noise = base(0.25)
    rim = np.sin(TAU * 1700 * t) * np.exp(-t / 0.012) + 0.4 * _highpass(noise, hp) * np.exp(-t / 0.006)
    bursts = sum(np.exp(-np.maximum(t - d, 0) / 0.005) * (t >= d) for d in (0, 0.011, 0.022))  # hands
    clap = _highpass(_lowpass(noise, 2), 3) * (bursts + np.exp(-t / 0.08))
    brush = _lowpass(_highpass(noise, 3), 2) * np.minimum(1, t / 0.008) * np.exp(-t / 0.07)
    t, noise = base(1.4)
    ratios = np.array([1.0, 1.342, 1.2312, 1.6532, 1.9523, 2.1523])  # inharmonic squares: 808 metal
    bell = np.sign(np.sin(TAU * np.outer(tone.cymbal * ratios, t))).sum(0)
    ping = 0.15 * _lowpass(_highpass(bell, hp), 2) * np.exp(-t / 0.7)
    ride = ping + 0.1 * _highpass(noise, hp) * np.exp(-t / 0.25)
    crash = _highpass(noise, hp) * np.exp(-t / 0.9) + 0.05 * _highpass(bell, hp) * np.exp(-t / 0.5)
    timp = sum(np.sin(TAU * r * tone.kick * 1.6 * t) * np.exp(-t * d) / (i + 1)
               for i, (r, d) in enumerate(((1, 1.2), (1.5, 2.0), (1.99, 3.0), (2.44, 4.0))))
    kit = dict(kick=kick, snare=snare, hat=hat, ohat=ohat, rim=rim, clap=clap, brush=brush,
               ride=ride, crash=crash, timp=timp)
    return {k: v / np.max(np.abs(v)) for k, v in kit.items()}


# ---------------------------------------------------------------- one clip

def render_clip(genre: str, artist: Artist, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of a `genre` song played by `artist`, float64, unnormalised. (n,)

    A crossover artist (`artist.borrow`) takes each element - progression, drums, chord
    parts, bass, lead - from the neighbouring genre with that probability: this is what
    makes rock/metal, blues/jazz, disco/pop and country/rock hard to tell apart.
    """
    own = STYLES[genre]
    other = STYLES[artist.neighbour] if artist.neighbour else own

    def pick() -> Style:
        return other if rng.random() < artist.borrow else own

    source = pick()
    progressions = artist.progressions if source is own else other.progressions
    clip = _Clip(own, artist, progressions, n, sr, rng)
    clip.drums(pick(), drum_kit(sr, rng, artist))
    for part in pick().chords:
        clip.chord_part(part)
    clip.bass_part(pick().bass)
    source = pick()
    if source.lead is not None and rng.random() < 0.8:
        clip.lead_part(source.lead, source)
    return clip.master(clip.mix())


def _voice(pitch_class: int, intervals: tuple[int, ...], low: int) -> list[int]:
    """Chord notes stacked on the lowest root at or above `low` (MIDI)."""
    root = low + (pitch_class - low) % 12
    return [root + i for i in intervals]


class _Clip:
    """One clip being rendered: its timing, harmony, buses and a note cache."""

    def __init__(self, style: Style, artist: Artist, progressions: tuple[str, ...], n: int, sr: int,
                 rng: np.random.Generator):
        self.style, self.artist, self.n, self.sr, self.rng = style, artist, n, sr, rng
        self.bar = 240.0 / (artist.tempo * np.exp(rng.normal(0, 0.03)))  # s per 4/4 bar
        self.offset = rng.uniform(0, self.bar)  # clips start anywhere, not on a downbeat
        self.n_bars = int((n / sr + self.offset) / self.bar) + 2
        prog = str(rng.choice(progressions)).split()
        turn = int(rng.integers(len(prog)))
        prog = prog[turn:] + prog[:turn]
        self.chords = [parse_chord(prog[i % len(prog)]) for i in range(self.n_bars + 1)]
        self.key = (artist.key + (int(rng.integers(-2, 3)) if rng.random() < 0.25 else 0)) % 12
        self.buses = {name: np.zeros(n) for name in ("drums", "bass", "chords", "lead")}
        self.distorted: set[str] = set()
        self.cache: dict[tuple, np.ndarray] = {}

    def at(self, bar: int, step: float, steps: int) -> int:
        """Sample index of step `step` of `steps` in a bar, swung (straight grids) and humanised."""
        step_len = self.bar / steps
        swing = self.style.swing * step_len * (int(step) % 2) if steps == 16 else 0.0
        t = bar * self.bar + step * step_len + swing + self.rng.normal(0, self.artist.looseness)
        return int(round((t - self.offset) * self.sr))

    def hold(self, steps: float, grid: int, gate: float) -> int:
        """Samples a note of `steps` grid steps is held, shortened by the part's gate."""
        return int(steps * self.bar / grid * gate * self.sr)

    def place(self, bus: str, start: int, wave: np.ndarray, gain: float) -> None:
        lo, hi = max(start, 0), min(start + len(wave), self.n)
        if hi > lo:
            self.buses[bus][lo:hi] += gain * wave[lo - start:hi - start]

    def note(self, inst: str, midi: int, n_hold: int) -> np.ndarray:
        """`n_hold` samples of a note plus its release; one ringing render serves all lengths."""
        key = (inst, midi, n_hold)
        if key not in self.cache:
            spec = INSTRUMENTS[inst]
            n_hold = min(n_hold, int(spec.max_len * self.sr))
            n_release = int(spec.release * self.sr)
            held = self.cache.get((inst, midi))
            if held is None or len(held) < n_hold + n_release:
                n = max(n_hold + n_release, self.sr)  # >= 1 s, so short notes share it
                freq = 440.0 * 2 ** ((midi - 69) / 12)
                held = self.cache[(inst, midi)] = ring(spec, freq, n, self.sr, self.artist)
            wave = held[: n_hold + n_release].copy()
            wave[n_hold:] *= np.linspace(1.0, 0.0, n_release)
            self.cache[key] = wave
        return self.cache[key]

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

    def drums(self, s: Style, kit: dict[str, np.ndarray]) -> None:
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
                    start = self.at(bar, step, len(pattern))
                    self.place("drums", start, kit[drum], _VELOCITY[sym] * rng.uniform(0.8, 1.0))
            for step in range(12, 16) if fill else ():
                self.place("drums", self.at(bar, step, 16), kit["snare"], 0.5 + 0.15 * (step - 12))
            if s.fills and bar % 4 == 0 and rng.random() < 0.7:
                self.place("drums", self.at(bar, 0, 16), kit["crash"], 0.8)

    def chord_part(self, part: Part, bus: str = "chords") -> None:
        if part.inst in DISTORTED:
            self.distorted.add(bus)
        for bar in range(self.n_bars):
            root, intervals = self.chords[bar]
            notes = _voice(self.key + root, intervals, part.low)
            pattern = self.pattern(part.rhythm)
            for step, length, sym in self.hits(pattern):
                n_hold = self.hold(length, len(pattern), part.gate)
                start = self.at(bar, step, len(pattern))
                vel = _VELOCITY.get(sym, 1.0) * part.gain * self.rng.uniform(0.85, 1.0)
                for i, midi in enumerate(notes):  # a strum starts each string a little later
                    wave = self.note(part.inst, midi, n_hold)
                    self.place(bus, start + int(i * part.strum * self.sr), wave, vel)

    def bass_part(self, part: Part) -> None:
        for bar in range(self.n_bars):
            root, intervals = self.chords[bar]
            base = _voice(self.key + root, (0,), part.low)[0]
            follow = _voice(self.key + self.chords[bar + 1][0], (0,), part.low)[0]
            offsets = {"R": 0, "O": 12, "5": 7, "6": 9, "a": follow - 1 - base,
                       "3": intervals[1] if intervals[1] in (3, 4) else 7,
                       "7": next((i for i in intervals if i in (10, 11)), 10)}
            pattern = self.pattern(part.rhythm)
            for step, length, sym in self.hits(pattern):
                wave = self.note(part.inst, base + offsets[sym], self.hold(length, len(pattern), part.gate))
                gain = part.gain * self.rng.uniform(0.8, 1.0)
                self.place("bass", self.at(bar, step, len(pattern)), wave, gain)

    def lead_part(self, part: Part, style: Style) -> None:
        """A random walk over the scale that lands on chord tones on the beats; 2 bars on, 2 off."""
        rng, grid = self.rng, style.grid
        minor = self.chords[0][1][1] == 3 and style.scale in ("major", "penta")
        scale = SCALES["minor" if minor else style.scale]
        pool = [m for m in range(part.low, part.low + 20) if (m - self.key) % 12 in scale]
        lengths, idx = [int(c) for c in part.rhythm], len(pool) // 2
        if part.inst in DISTORTED:
            self.distorted.add("lead")
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
                    wave = self.note(part.inst, pool[idx], n_hold)
                    self.place("lead", self.at(bar, pos, grid), wave, part.gain * rng.uniform(0.7, 1.0))
                pos += length

    def mix(self) -> np.ndarray:
        """Buses levelled to unit RMS, overdriven where a guitar plays, weighted by the artist."""
        a, y = self.artist, np.zeros(self.n)
        for name, weight, artist_gain in zip(self.buses, self.style.levels, a.mix):
            bus = self.buses[name]
            rms = np.sqrt(np.mean(bus**2))
            if rms == 0:
                continue
            bus = bus / rms
            if name in self.distorted:  # amp + cabinet: metal drives harder and sounds darker
                cab = max(1, round((2 + 8 * (1 - a.brightness)) * self.sr / 22050))
                bus = _lowpass(np.tanh(a.drive * bus), cab, passes=3)
                bus /= np.sqrt(np.mean(bus**2)) + 1e-12
            y += weight * artist_gain * bus
        return y

    def master(self, y: np.ndarray) -> np.ndarray:
        """Brightness shelf, a room, then a noise floor. The room is rendered at a quarter of
        the rate: its tail is dark anyway, and the FFTs get four times smaller."""
        a, sr, rng, q = self.artist, self.sr, self.rng, 4
        body = _lowpass(y, max(2, round((6 - 4 * a.brightness) * sr / 22050)))
        y = body + (0.25 + 0.75 * a.brightness) * (y - body)  # darker artists keep less of the top
        rt = 0.4 + 2.5 * a.reverb  # s, time for the tail to fall by 60 dB
        t = np.arange(int(rt * sr / q)) * q / sr
        ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt)
        ir[: int(0.015 * sr / q)] = 0.0  # pre-delay
        ir *= a.reverb / np.sqrt(np.sum(ir**2))
        small = _lowpass(y, q)[::q]
        size = 1 << (len(small) + len(ir) - 1).bit_length()  # no wrap-around of the tail
        wet = np.fft.irfft(np.fft.rfft(small, size) * np.fft.rfft(ir, size), size)[: len(small)]
        y = y + _lowpass(np.repeat(wet, q)[: len(y)], q)
        level = np.sqrt(np.mean(y**2)) * 10 ** (rng.uniform(*self.style.noise_db) / 20)
        return y + level * rng.standard_normal(len(y), dtype=np.float32)
