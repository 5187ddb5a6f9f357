"""What makes each genre of the demo corpus itself, and what each artist adds to it.

Patterns are one 4/4 bar of steps (16 = straight sixteenths, 12 = swung/shuffled triplet
eighths). Drum steps: X loud, x medium, o ghost, . rest. Bass steps name the interval:
R root, 3 third, 5 fifth, 6 sixth, 7 seventh, O octave, a chromatic approach to the next
root. Options separated by "|" vary per artist (drums) or per bar (everything else).
Progressions are roman numerals relative to the key, one chord per bar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from genre_core.datasets.synth.soundfont import ALL_PROGRAMS, KITS, PROGRAMS

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10), "penta": (0, 2, 4, 7, 9), "blues": (0, 3, 5, 6, 7, 10),
}
_QUALITIES = {
    "": (0, 4, 7), "m": (0, 3, 7), "7": (0, 4, 7, 10), "m7": (0, 3, 7, 10),
    "maj7": (0, 4, 7, 11), "9": (0, 4, 10, 14), "m9": (0, 3, 10, 14), "maj9": (0, 4, 11, 14),
    "5": (0, 7, 12),
}
_DEGREES = {"I": 0, "II": 2, "III": 4, "IV": 5, "V": 7, "VI": 9, "VII": 11}


def parse_chord(symbol: str) -> tuple[int, tuple[int, ...]]:
    """'bVII7' -> (10, (0, 4, 7, 10)): root in semitones above the key, chord intervals."""
    flat, numeral, suffix = re.fullmatch(r"(b?)([IViv]+)(.*)", symbol).groups()
    quality = suffix if suffix in ("5", "maj7", "maj9") else ("m" if numeral.islower() else "") + suffix
    return (_DEGREES[numeral.upper()] - len(flat)) % 12, _QUALITIES[quality]


@dataclass(frozen=True)
class Part:
    inst: str                # a role of soundfont.PROGRAMS: the artist picks the GM program
    rhythm: str              # bar pattern(s); for a lead: the note lengths it picks from, in steps
    gate: float = 1.0        # note length as a share of the gap to the next hit (0.3 = staccato)
    low: int = 48            # MIDI note at the bottom of the register
    gain: float = 1.0        # level inside its bus
    strum: float = 0.0       # s between chord notes (a strummed guitar)


@dataclass(frozen=True)
class Style:
    tempo: tuple[float, float]        # range of artist tempo centres, bpm (ranges overlap on purpose)
    grid: int                         # steps per bar
    drums: tuple[tuple[str, str], ...]
    progressions: tuple[str, ...]
    scale: str                        # a key of SCALES, for the lead
    chords: tuple[Part, ...]
    bass: Part
    lead: Part | None = None
    swing: float = 0.0                # delay of every second step, as a share of a step
    drum_every: int = 1               # drums only on the first bar of each n (classical timpani)
    fills: bool = False               # crash + snare fill at 4-bar phrase boundaries
    kits: tuple[str, ...] = ("standard", "room")  # keys of soundfont.KITS an artist picks from
    # chord instruments an artist may play instead of the genre's first chord part: instruments
    # are shared across genres, so instrumentation alone does not give the genre away
    swap: tuple[str, ...] = ("piano", "epiano", "organ", "pluck", "pad")
    drive: tuple[float, float] = (1.0, 1.0)    # guitar-bus overdrive gain range (1 = clean)
    bright: tuple[float, float] = (0.3, 0.8)   # artist brightness range: the master EQ tilt
    reverb: tuple[float, float] = (0.05, 0.3)  # wet energy share range
    levels: tuple[float, ...] = (1.0, 0.8, 0.8, 0.6)  # drums, bass, chords, lead (each bus at unit RMS)
    neighbours: tuple[str, ...] = ()  # genres a crossover borrows from (and is labelled `also`)


_BACKBEAT = "....X.......X..."
DEMO_STYLES: dict[str, Style] = {  # the ten GTZAN genres of the demo corpus
    "blues": Style(
        tempo=(62, 120), grid=12,
        drums=(("kick", "X.....X.....|X.....X..x.."), ("snare", "...X.....X..|...X.....X.o"),
               ("hat", "X.xX.xX.xX.x|X.xX.xX.xX.x")),
        progressions=("I7 I7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7", "I7 IV7 I7 I7 IV7 IV7 I7 I7 V7 IV7 I7 V7",
                      "i7 i7 i7 i7 iv7 iv7 i7 i7 bVI7 V7 i7 V7"),
        scale="blues", chords=(Part("piano", "x.xx.xx.xx.x|X.xX.x......", 0.9, 55, 0.8),),
        bass=Part("upright", "R.R3.35.56.6|R..3..5..6..", 0.9, 28),
        lead=Part("eguitar", "3336612", 0.9, 62, 0.8), drive=(1.0, 2.5), bright=(0.25, 0.7),
        kits=("standard", "room", "jazz"), swap=("organ", "epiano", "skank"),
        reverb=(0.08, 0.3), neighbours=("jazz", "rock")),
    "jazz": Style(
        tempo=(90, 180), grid=12,
        drums=(("ride", "X..X.xX..X.x|X..X.xX..X.x"), ("hat", "...x.....x.."),
               ("kick", "o.....o.....|o..o..o..o.."), ("snare", "........o..o|.....o......|...........o")),
        progressions=("ii9 V9 Imaj9 Imaj9", "ii9 V9 Imaj9 vi9", "iii7 vi7 ii9 V9", "Imaj9 vi9 ii9 V9"),
        scale="major",
        chords=(Part("piano", "X....x......|..X.....x...|X.......x...|...x......x.", 0.8, 53, 0.7),),
        bass=Part("upright", "R..3..5..a..|R..5..6..a..|R..O..5..a..", 0.95, 28),
        lead=Part("horn", "3336621", 0.85, 60, 0.7), bright=(0.2, 0.65), reverb=(0.1, 0.35),
        kits=("jazz", "brush", "room"), swap=("epiano", "skank", "organ"),
        levels=(0.55, 0.9, 0.8, 0.7), neighbours=("blues", "hiphop")),
    "classical": Style(
        tempo=(56, 132), grid=16, drums=(("timp", "X.......X.......|X..............."),),
        progressions=("I IV V I", "I vi IV V", "I V vi iii IV I IV V", "i iv V i", "i VI iv V"),
        scale="major", chords=(Part("strings", "X.......X.......|X...............|X...X...X...X...", 1.0, 55),),
        bass=Part("cello", "R...............|R.......5.......", 1.0, 36),
        lead=Part("flute", "448228", 0.95, 67, 0.7), drum_every=4, bright=(0.2, 0.6),
        kits=("standard",), swap=("piano", "piano", "pad"),
        levels=(0.4, 0.7, 1.0, 0.7), reverb=(0.25, 0.5), neighbours=("pop",)),
    "country": Style(
        tempo=(90, 150), grid=16,
        drums=(("kick", "X.......X.......|X.......X.x....."), ("brush", "ooooXoooooooXooo|oxoxXxoxoxoxXxox")),
        progressions=("I I IV IV V V I I", "I IV I V", "I IV V I", "I I V V IV IV I I"),
        scale="penta", chords=(Part("pluck", _BACKBEAT + "|....X.x.....X.x.|X.x.X.x.X.x.X.x.", 0.8, 55, 1.0, 0.012),),
        bass=Part("pickbass", "R.......5.......|R.......5.....3.", 0.8, 33),
        lead=Part("pluck", "2224", 0.8, 64, 0.6), drive=(1.0, 1.8), bright=(0.4, 0.85),
        kits=("brush", "standard", "room"), swap=("piano", "skank", "organ"), neighbours=("rock", "pop")),
    "disco": Style(
        tempo=(108, 134), grid=16,
        drums=(("kick", "X...X...X...X..."), ("clap", _BACKBEAT),
               ("hat", "x.o.x.o.x.o.x.o.|xooox.ooxooox.oo"), ("ohat", "..X...X...X...X.")),
        progressions=("i7 iv7 i7 iv7", "ii7 V7 Imaj7 vi7", "vi7 ii7 V7 Imaj7", "I V vi IV"),
        scale="dorian", chords=(Part("stab", "..x...x...x...x.|x..x..x...x..x..", 0.4, 58),
                                Part("strings", "X...............", 1.0, 62, 0.5)),
        bass=Part("synthbass", "R.O.R.O.R.O.R.O.|R.ORR.O.R.ORR.O.", 0.7, 33),
        fills=True, bright=(0.45, 0.9), kits=("standard", "electronic", "room"),
        swap=("skank", "epiano", "piano", "organ"), neighbours=("pop", "hiphop")),
    "hiphop": Style(
        tempo=(76, 104), grid=16, swing=0.3,
        drums=(("kick", "X.........X.....|X......X..X.....|X.X.......X..x.."),
               ("snare", _BACKBEAT + "|....X.......X..o"), ("hat", "x.x.x.x.x.x.x.x.|xxx.xxx.xxx.xxx.")),
        progressions=("i7 iv7", "i9 bVImaj7 iv7 V7", "ii9 V9", "i7 i7 bVII7 bVI7"),
        scale="dorian", chords=(Part("epiano", "X.......X.......|X.....X.........", 1.0, 55),),
        bass=Part("sub", "R.........R.....|R......R..R.....", 1.0, 26),
        lead=Part("flute", "2448", 0.9, 67, 0.5),
        bright=(0.2, 0.6), kits=("808", "electronic", "standard"), swap=("piano", "strings", "pad", "horn"),
        levels=(1.1, 1.0, 0.7, 0.5), neighbours=("jazz", "reggae")),
    "metal": Style(
        tempo=(120, 200), grid=16,
        drums=(("kick", "XxXxXxXxXxXxXxXx|XxXx..XxXxXx..Xx|X.X.X.X.X.X.X.X."), ("snare", _BACKBEAT),
               ("ride", "X...x...X...x..."), ("hat", "x.x.x.x.x.x.x.x.")),
        progressions=("i5 bVI5 bVII5 i5", "i5 bII5 i5 bVII5", "i5 i5 bV5 iv5", "i5 bVII5 bVI5 bVII5"),
        scale="minor", chords=(Part("power", "XxxxXxxxXxxxXxxx|XxxxXx.xXxxxXxx.|X.x.X.x.X.x.X.x.", 0.55, 35),),
        bass=Part("pickbass", "RRRRRRRRRRRRRRRR|R.R.R.R.R.R.R.R.", 0.55, 23), fills=True,
        lead=Part("eguitar", "2224", 0.9, 62, 0.5),
        drive=(1.5, 4.0), bright=(0.2, 0.6), reverb=(0.03, 0.2), kits=("power", "standard", "room"),
        swap=("power", "power", "organ", "strings"), levels=(0.9, 0.6, 1.0, 0.6), neighbours=("rock",)),
    "pop": Style(
        tempo=(90, 130), grid=16,
        drums=(("kick", "X.....x.X.......|X.......X.x....."), ("clap", _BACKBEAT),
               ("hat", "x.x.x.x.x.x.x.x.")),
        progressions=("I V vi IV", "vi IV I V", "I vi IV V", "IV I V vi"),
        scale="major", chords=(Part("piano", "x.x.x.x.x.x.x.x.|X..x..x.X..x..x.", 0.9, 57),
                               Part("pad", "X...............", 1.0, 60, 0.4)),
        bass=Part("synthbass", "R...R.R.R...R.R.|R.R.R.R.R.R.R.R.", 0.7, 33),
        lead=Part("synthlead", "22448", 0.9, 64, 0.8), fills=True, bright=(0.45, 0.9),
        kits=("standard", "electronic", "808", "power"), swap=("pluck", "epiano", "strings", "skank"),
        neighbours=("disco", "country")),
    "reggae": Style(
        tempo=(64, 100), grid=16, swing=0.15,
        drums=(("kick", "........X.......|X.......X......."), ("rim", "........X......."),
               ("hat", "x.x.x.x.x.x.x.x.|x.xxx.xxx.xxx.xx")),
        progressions=("i iv", "I IV V IV", "i bVII", "i iv bVII i"),
        scale="minor",
        chords=(Part("skank", _BACKBEAT, 0.3, 57), Part("organ", "..x...x...x...x.", 0.35, 60, 0.5)),
        bass=Part("synthbass", "R..R..5.R.......|R.....3.5..O....", 0.85, 28),
        lead=Part("horn", "2448", 0.85, 62, 0.5),
        bright=(0.25, 0.7), reverb=(0.1, 0.35), kits=("standard", "room", "electronic"),
        swap=("piano", "epiano", "pluck"), levels=(0.8, 1.1, 0.7, 0.6), neighbours=("hiphop", "pop")),
    "rock": Style(
        tempo=(100, 160), grid=16,
        drums=(("kick", "X.......X.x.....|X.x.....X......."), ("snare", _BACKBEAT),
               ("hat", "x.x.x.x.x.x.x.x.|X.x.X.x.X.x.X.x.")),
        progressions=("I5 bVII5 IV5 I5", "I5 IV5 V5 IV5", "i5 bVI5 bVII5 i5", "I5 V5 IV5 IV5"),
        scale="blues", chords=(Part("power", "X.x.x.x.X.x.x.x.|X.x.x.x.x.x.X.x.", 0.95, 40),),
        bass=Part("pickbass", "R.R.R.R.R.R.R.R.", 0.9, 28), fills=True,
        lead=Part("eguitar", "22448", 0.9, 62, 0.6),
        drive=(1.2, 3.0), bright=(0.35, 0.8), kits=("standard", "room", "power"),
        swap=("pluck", "skank", "organ", "piano"), neighbours=("metal", "country", "blues")),
}


# Genres of the unseen-genre corpus (synth/unseen.py): new instrument, tempo and rhythm
# combinations, none of them a Million Song Dataset or MagnaTagATune tag musicnn was trained to
# name (its tags include rock, jazz, electronic, dance, country, blues, reggae, hip-hop...), so a
# probe on its embeddings cannot lean on a genre it was taught. A waltz is three 4-step beats in
# the engine's 12-step bar (its tempo: bars' worth of 4/4 beats, so 150-210 is 112-158 beats a
# minute); a tango has no drums.
UNSEEN_STYLES: dict[str, Style] = {
    "polka": Style(
        tempo=(104, 136), grid=16,
        drums=(("kick", "X...X...X...X..."), ("snare", "..X...X...X...X.|..X...X...X.X.X."),
               ("tamb", "..x...x...x...x.")),
        progressions=("I V V I", "I I V V I I V I", "I IV V I", "I I IV V"),
        scale="major", chords=(Part("accordion", "..x...x...x...x.", 0.4, 60),),
        bass=Part("tuba", "R...5...R...5...|R...5...R...3...", 0.5, 34),
        lead=Part("accordion", "2222224", 0.8, 67, 0.8), bright=(0.45, 0.85), reverb=(0.05, 0.2),
        kits=("standard", "room"), swap=("piano", "brass", "nylon"), neighbours=("march", "waltz")),
    "waltz": Style(
        tempo=(150, 210), grid=12,
        drums=(("kick", "X..........."), ("brush", "....o...o...")),
        progressions=("I I V7 V7 V7 V7 I I", "I IV V7 I", "i iv V7 i", "I vi ii V7"),
        scale="major", chords=(Part("strings", "....x...x...", 0.6, 60), Part("harp", "X...........", 1.0, 55, 0.5)),
        bass=Part("cello", "R...........|R.......5...", 1.0, 36),
        lead=Part("violin", "4488", 0.95, 67, 0.8), bright=(0.2, 0.6), reverb=(0.2, 0.45),
        kits=("brush", "jazz"), swap=("piano", "accordion", "harp"), levels=(0.3, 0.8, 1.0, 0.8),
        neighbours=("tango", "polka")),
    "bossa": Style(
        tempo=(118, 150), grid=16,
        drums=(("rim", "X..X..X...X..X..|X..X...X..X..X.."), ("kick", "X..xX..xX..xX..x"),
               ("shaker", "oxoxoxoxoxoxoxox")),
        progressions=("Imaj9 Imaj9 II9 II9 ii9 V9 Imaj9 V9", "ii9 V9 Imaj9 Imaj9", "i9 iv9 V9 i9", "Imaj7 vi9 ii9 V9"),
        scale="major", chords=(Part("nylon", "X..X..X...X..X..|X..X...X..X..X..", 0.5, 55),),
        bass=Part("upright", "R..5R..5R..5R..5|R.....5.R.....5.", 0.9, 30),
        lead=Part("flute", "2448", 0.9, 67, 0.6), bright=(0.25, 0.65), reverb=(0.1, 0.3),
        kits=("brush", "jazz", "room"), swap=("epiano", "harp", "mallet"), levels=(0.6, 0.9, 1.0, 0.7),
        neighbours=("tango", "waltz")),
    "afrobeat": Style(
        tempo=(100, 130), grid=16,
        drums=(("kick", "X.....X...X.....|X...X.....X..X.."), ("snare", "....X..o.o..X..o"),
               ("hat", "x.xxx.xxx.xxx.xx"), ("bell", "X.X.X..X.X.X.X..|X.X.XX.X.X.X..X."),
               ("conga", "..x...xx..x...xx")),
        progressions=("i7 i7 iv7 i7", "i9 bVII9", "i7 iv7", "i9 i9 i9 bVII7"),
        scale="dorian", chords=(Part("skank", "x.xx.x.xx.x.x.xx", 0.3, 60), Part("organ", "X...............", 1.0, 60, 0.4)),
        bass=Part("pickbass", "R..R..5.O..R.5..|R.....R.5.R..7..", 0.7, 28),
        lead=Part("trumpet", "2244", 0.8, 62, 0.7), bright=(0.4, 0.8),
        kits=("standard", "room"), swap=("epiano", "mallet", "brass"), levels=(1.0, 1.0, 0.8, 0.6),
        neighbours=("bossa", "dnb")),
    "gamelan": Style(
        tempo=(60, 96), grid=16,
        drums=(("conga", "X..x.x..X..x.x..|X.x..x.xX.x..x.x"), ("lowconga", "..X.......X....."),
               ("china", "X...............")),
        progressions=("I5 I5 IV5 V5", "I5 V5", "vi5 I5 V5 I5", "I5 II5 V5 I5"),
        scale="penta", chords=(Part("mallet", "x.x.x.x.x.x.x.x.|xxxxxxxxxxxxxxxx", 0.5, 60),),
        bass=Part("gongs", "R...............|R.......5.......", 1.0, 40),
        lead=Part("mallet", "1122", 0.6, 72, 0.7), bright=(0.35, 0.8), reverb=(0.2, 0.5),
        kits=("standard",), swap=("harp", "gongs", "mallet"), levels=(0.6, 0.8, 1.0, 0.8),
        neighbours=("waltz",)),
    "tango": Style(
        tempo=(108, 132), grid=16, drums=(),
        progressions=("i iv V7 i", "i V7 V7 i", "iv i V7 i", "i bVI V7 i"),
        scale="minor",
        chords=(Part("accordion", "X...X...X...X...|X..X..X.X..X..X.", 0.35, 55), Part("strings", "X.......X.......", 0.9, 62, 0.5)),
        bass=Part("upright", "R..5..R.R..5..R.", 0.5, 28),
        lead=Part("violin", "2248", 0.9, 64, 0.7), bright=(0.25, 0.65), reverb=(0.1, 0.3),
        swap=("piano", "nylon", "harp"), levels=(0.5, 0.9, 1.0, 0.8), neighbours=("waltz", "bossa")),
    "march": Style(
        tempo=(108, 126), grid=16,
        drums=(("kick", "X.......X......."), ("snare", "X.xxX.x.X.xxX.xx|x.x.x.x.xxxxX..."),
               ("crash", "....X.......X...")),
        progressions=("I IV I V", "I I V V", "I IV V I", "I vi IV V"),
        scale="major", chords=(Part("brass", "..X...X...X...X.", 0.5, 55),),
        bass=Part("tuba", "R.......5.......|R...5...R...5...", 0.7, 33),
        lead=Part("trumpet", "2244", 0.9, 64, 0.8), fills=True, bright=(0.4, 0.8), reverb=(0.1, 0.35),
        kits=("standard", "room"), swap=("accordion", "organ", "brass"), neighbours=("polka",)),
    "dnb": Style(
        tempo=(160, 180), grid=16,
        drums=(("kick", "X.........X.....|X.........XX...."), ("snare", "....X.......X...|....X..X.o..X..o"),
               ("hat", "x.x.x.x.x.x.x.x.|xxx.xxx.xxx.xxx."), ("ohat", "..X.......X.....")),
        progressions=("i7 i7 bVImaj7 bVII7", "i9 iv9", "i7 v7", "i9 bVImaj7"),
        scale="minor", chords=(Part("pad", "X...............", 1.0, 58, 0.6),),
        bass=Part("sub", "R.........R.....|R.......R.....R.", 1.0, 24),
        lead=Part("mallet", "2448", 0.8, 72, 0.5), bright=(0.3, 0.75), reverb=(0.1, 0.4),
        kits=("electronic", "808"), swap=("epiano", "strings", "gongs"), levels=(1.2, 1.1, 0.6, 0.5),
        neighbours=("afrobeat",)),
}
STYLES: dict[str, Style] = {**DEMO_STYLES, **UNSEEN_STYLES}  # every recipe, by genre name


@dataclass(frozen=True)
class Artist:
    """An artist's palette: every clip of the artist is rendered through it."""

    name: str
    genre: str
    tempo: float              # bpm; clips jitter a few percent around it
    key: int                  # pitch class of the tonic, 0 = C
    brightness: float         # 0 dark .. 1 bright: the master high shelf, -6 .. +6 dB
    warmth: float             # master low shelf, dB
    drive: float              # guitar-bus overdrive gain (1 = clean)
    looseness: float          # timing jitter, s
    reverb: float             # wet energy share
    room: float               # reverb time RT60, s
    squash: float             # mix-bus compression ratio
    loud: float               # loudness target, dBFS (weighted RMS)
    noise_db: float           # noise floor (tape hiss, vinyl) relative to the mix, dB
    mix: tuple[float, ...]    # drums, bass, chords, lead
    neighbour: str | None     # the genre this artist sometimes borrows an element from
    borrow: float             # chance of taking each element from that genre
    groove: int               # the artist's drum-pattern option
    progressions: tuple[str, ...]
    kit: int                  # GM drum kit preset (bank 128)
    programs: tuple[tuple[str, int], ...]  # role -> GM program, the artist's own sounds
    swap: str | None          # the role played instead of the genre's first chord part

    def program(self, role: str) -> int:
        return dict(self.programs).get(role, ALL_PROGRAMS[role][0])


def make_artist(name: str, genre: str, rng: np.random.Generator) -> Artist:
    """A palette drawn inside the genre's ranges; its clips then vary around it."""
    s = STYLES[genre]
    u = rng.uniform
    n_prog = len(s.progressions)
    favourite = rng.choice(n_prog, size=min(n_prog, 2), replace=False)
    roles = PROGRAMS if genre in DEMO_STYLES else ALL_PROGRAMS  # the demo's draws exactly as they were
    programs = tuple((role, int(rng.choice(options))) for role, options in roles.items())
    return Artist(
        name=name, genre=genre, tempo=u(*s.tempo), key=int(rng.integers(12)), brightness=u(*s.bright),
        warmth=u(-3, 4), drive=u(*s.drive), looseness=u(0.002, 0.012), reverb=u(*s.reverb),
        room=u(0.6, 2.4), squash=u(1.5, 5.0), loud=u(-20, -14), noise_db=u(-70, -40),
        mix=tuple(10 ** (rng.normal(0, 3.0, size=4) / 20)), groove=int(rng.integers(6)),
        neighbour=str(rng.choice(s.neighbours)) if s.neighbours else None,
        borrow=u(0.0, 0.15) if s.neighbours else 0.0,
        progressions=tuple(s.progressions[i] for i in sorted(favourite)),
        kit=KITS[str(rng.choice(s.kits))], programs=programs,
        swap=str(rng.choice(s.swap)) if rng.random() < 0.35 else None,
    )


# ---------------------------------------------------------------- names (all made up)

_FIRST = ("Otis", "Mae", "Clarence", "Ida", "Lonnie", "Hattie", "Rufus", "Viola", "Earl", "Della",
          "Amos", "Nell", "Cyrus", "Opal", "Jasper", "Lila", "Marcus", "Tess", "Felix", "Nina",
          "Oscar", "Ruby", "Silas", "June", "Hugo", "Iris", "Dexter", "Cleo", "Wendell", "Pearl")
_LAST = ("Calloway", "Whitlock", "Barrow", "Finch", "Hollis", "Mercer", "Tolliver", "Ashby", "Crane",
         "Dunmore", "Everly", "Fairbanks", "Greer", "Holloway", "Ingram", "Jessup", "Kincaid", "Lowell",
         "Marlowe", "Norwood", "Oakes", "Pruitt", "Rainey", "Sutter", "Thorne", "Vance", "Wexley")
_WORDS = {  # per genre: name templates, then the word pools {a} and {b} draw from
    "blues": (("{a} {f} {l}", "{f} '{b}' {l}"), ("Blind", "Big", "Little", "Slim", "Sweet", "Howlin'"),
              ("Catfish", "Gravel", "Mudbone", "Ninefinger", "Smokestack")),
    "jazz": (("The {f} {l} {a}", "{f} {l} {a}"), ("Trio", "Quartet", "Quintet", "Sextet", "Big Band"), ()),
    "classical": (("{a} {b}",), ("Anton", "Clara", "Johann", "Ottilie", "Leopold", "Fanny", "Ignaz"),
                  ("Havlicek", "Brenner", "Moravec", "Lindqvist", "Aubert", "Sollier", "Vandermeer")),
    "country": (("{f} {l}", "The {a} {b}"), ("Red River", "Cumberland", "Dust Bowl", "Silver Creek", "Pecos"),
                ("Ramblers", "Drifters", "Pickers", "Wranglers", "Playboys")),
    "disco": (("{a} {b}", "{f} {l} & the {a} {b}"), ("Starlight", "Velvet", "Mirrorball", "Satin", "Neon"),
              ("Express", "Machine", "Sisters", "Connection", "Affair")),
    "hiphop": (("{b} {a}", "{b} {f}"), ("Kestrel", "Deuce", "Cipher", "Onyx", "Static", "Tundra", "Verbal"),
               ("MC", "Lil", "DJ", "Young", "Grand")),
    "metal": (("{a} {b}",), ("Iron", "Obsidian", "Grave", "Molten", "Ashen", "Dread", "Hollow"),
              ("Sepulchre", "Monolith", "Wyrm", "Cathedral", "Tyrant", "Furnace", "Oath")),
    "pop": (("{a} {l}", "{a}"), ("Kayla", "Jordan", "Skye", "Leo", "Maya", "Troy", "Ava", "Zane"), ()),
    "reggae": (("{f} {l}", "{f} {l} & the {a}"), ("Roots Rockers", "Dub Lions", "Irie Band"), ()),
    "rock": (("The {a} {b}",), ("Electric", "Rusty", "Wild", "Midnight", "Broken", "Loud", "Crimson"),
             ("Wolves", "Engines", "Saints", "Rivals", "Vultures", "Radios", "Hearts")),
    "polka": (("{f} {l} & the {a} {b}", "The {a} {b}"), ("Happy", "Lakeside", "Old Town", "Jolly", "Mill Creek"),
              ("Polka Band", "Squeezebox Boys", "Tanzmusik", "Oompah Brass")),
    "waltz": (("The {a} {b}", "{f} {l} and the {a} {b}"), ("Salon", "Kursaal", "Palm Court", "Ballroom", "Riverside"),
              ("Orchestra", "Ensemble", "Strings", "Players")),
    "bossa": (("{f} {l}", "{f} {l} {a}"), ("Trio", "Quarteto", "Conjunto"), ()),
    "afrobeat": (("{f} {l} & the {a} {b}", "{a} {b}"), ("Lagos", "Koola", "Shrine", "Highlife", "Eko"),
                 ("Arkestra", "Ensemble", "Movement", "Collective")),
    "gamelan": (("Gamelan {a}", "{a} {b}"), ("Sekar", "Tirta", "Kencana", "Puspa", "Mega", "Sari"),
                ("Ensemble", "Group", "Orchestra")),
    "tango": (("Orquesta {f} {l}", "{f} {l} {a}"), ("Quinteto", "Sexteto", "Cuarteto"), ()),
    "march": (("The {a} {b}",), ("Royal", "Regimental", "Harbour", "County", "Garrison"),
              ("Band", "Brass Band", "Guards", "Fusiliers")),
    "dnb": (("{b} {a}", "{a}"), ("Vortex", "Sub Zero", "Halogen", "Riot", "Breakline", "Tessellate"),
            ("DJ", "MC", "Dr.")),
}
_TITLE = {  # per genre: title templates; {a} an adjective, {n} a noun
    "blues": ("{n} Blues", "{a} {n} Blues", "Goin' Down to the {n}"),
    "jazz": ("{a} {n}", "Blue {n}", "{n} in {k}"),
    "classical": ("Sonata No. {i} in {k}", "Nocturne in {k}", "Suite No. {i}: {a} Dance", "Serenade No. {i}"),
    "country": ("{a} {n}", "That {a} Old {n}", "{n} Road Home"),
    "disco": ("{a} {n}", "Dance the {n}", "{n} Fever"),
    "hiphop": ("{a} {n}", "{n} Theory", "Back to the {n}"),
    "metal": ("{a} {n}", "Throne of the {n}", "{n} Unbound"),
    "pop": ("{a} {n}", "{n} Tonight", "You and the {n}"),
    "reggae": ("{a} {n}", "{n} Dub", "Rise Up {n}"),
    "rock": ("{a} {n}", "{n} Highway", "Born of the {n}"),
    "polka": ("{a} {n} Polka", "{n} Polka", "Polka for the {n}"),
    "waltz": ("{a} {n} Waltz", "Waltz No. {i}", "The {n} Waltz"),
    "bossa": ("{a} {n}", "{n} at Dawn", "Samba of the {n}"),
    "afrobeat": ("{a} {n}", "{n} Talk", "Water and the {n}"),
    "gamelan": ("Gending {n}", "{a} {n}", "Lancaran No. {i}"),
    "tango": ("{a} {n}", "Tango of the {n}", "{n} Milonga"),
    "march": ("The {a} {n}", "{n} March", "March No. {i} in {k}"),
    "dnb": ("{a} {n}", "{n} Pressure", "{n} Run"),
}
_ADJECTIVES = ("Lonesome", "Midnight", "Golden", "Crooked", "Silver", "Restless", "Hollow", "Burning",
               "Quiet", "Electric", "Broken", "Faded", "Wild", "Velvet", "Crimson", "Distant")
_NOUNS = ("River", "Train", "Moon", "Highway", "Heart", "Rain", "Mirror", "Fire", "Garden", "Shadow",
          "Station", "Harbor", "Mountain", "Letter", "Signal", "Morning")
_KEYS = ("C major", "D minor", "E-flat major", "F minor", "G major", "A minor", "B-flat major")


def artist_name(genre: str, rng: np.random.Generator, taken: set[str]) -> str:
    """A made-up artist name in the genre's manner, not yet in `taken` (which it joins)."""
    templates, a_words, b_words = _WORDS[genre]
    for attempt in range(200):
        name = str(rng.choice(templates)).format(
            f=rng.choice(_FIRST), l=rng.choice(_LAST), a=rng.choice(a_words),
            b=rng.choice(b_words) if b_words else "")
        name = name if attempt < 100 else f"{name} {attempt}"  # a huge corpus runs out of names
        if name not in taken:
            taken.add(name)
            return name
    raise RuntimeError("no free artist name")  # unreachable: numbered names are unique


def title(genre: str, rng: np.random.Generator) -> str:
    return str(rng.choice(_TITLE[genre])).format(
        a=rng.choice(_ADJECTIVES), n=rng.choice(_NOUNS), k=rng.choice(_KEYS), i=int(rng.integers(1, 13)))
