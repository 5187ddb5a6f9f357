"""The built-in demo corpus: a seeded synthesizer of a GTZAN-shaped corpus, its parts played
by sampled General-MIDI instruments (TimGM6mb.sf2 through TinySoundFont) and produced with
numpy/scipy effects.

Ten genres in GTZAN's Kaggle layout, each clip played by a made-up artist, with GTZAN's own
kinds of faults planted on purpose and listed in `faults_truth.csv`, so that fault finders
can be scored against the truth:

    out/genres_original/<genre>/<genre>.000NN.wav   16-bit PCM mono
    out/metadata.csv      track_id,label,true_genre,artist,title,also
    out/artists.txt       Sturm's GTZAN index format: file ::: artist ::: title
    out/faults_truth.csv  track_id,kind,group_id,source_track_id,detail

About a tenth of the clean clips are crossovers: they mix their folder genre with a
neighbouring one, and metadata.csv's `also` names the other genre(s), `;`-separated (empty for
single-label clips); the folder stays the primary label.

A systematic failure can be planted on request (SynthConfig.guests, none by default): chosen
clips keep their files and labels but are played by a guest artist of another genre, the way
the demo's disco songs by an artist no model heard are called pop; failure-slice tests find it.

Same config, same bytes, however many worker processes render it: every random draw comes
from a Generator seeded by (seed, genre, clip), never from global state, and the SoundFont
renderer has no clock. The music itself lives in music.py (one clip, its mix and master),
styles.py (what each genre and artist sound like), soundfont.py and effects.py.
"""

from __future__ import annotations

import csv
import math
from dataclasses import replace
import re
import shutil
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from genre_core.datasets.synth.music import render_clip
from genre_core.datasets.synth.styles import STYLES, Artist, artist_name, make_artist, title
from genre_core.engine import EngineOptions, map_chunks
from genre_core.faults.kinds import DUPLICATE_KINDS, PLANTED_KINDS

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")

# Where faults go at the default size, in planting order; smaller corpora take the first few,
# larger ones cycle. Hosts follow GTZAN: metal.00058 is rock.00016, pop and reggae repeat
# themselves, jazz.00054 does not decode.
_EXACT = (("metal", "rock"), ("pop", "pop"), ("reggae", "reggae"))  # (filed in, copied from)
_RECORDING = (("pop", "shift"), ("hiphop", "regain"), ("disco", "resample"), ("reggae", "trim"))
_MISLABEL = (("metal", "rock"), ("blues", "jazz"), ("pop", "disco"), ("rock", "country"))  # (filed as, is)
_CLIPPED, _DROPOUT, _SILENT, _UNREADABLE = ("pop", "metal"), ("classical", "jazz"), "reggae", "jazz"
# Extra clips after a genre's per_genre slots (so every other clip stays byte for byte): versions
# (a clean song of the genre played again by another artist of it: slower, with that artist's
# sounds and production) and clips that are no music at all, filed under a genre.
_VERSION = ("blues", "country", "jazz", "pop")
_NOT_MUSIC = (("classical", "babble"), ("hiphop", "noise"), ("disco", "sweep"))
_DEFAULT_PER_GENRE = 24  # the fault counts above are for this size and scale with per_genre
EXTRAS_NOTE = ", with versions and non-music clips"  # artists.txt's header says so (stems.py reads it)
_PLAN, _ARTIST, _CLIP, _CROSS, _GUEST, _EXTRA = 1, 2, 3, 4, 5, 6  # seed streams: adding draws to one leaves the others alone
VERSION_SLOWER = 0.9  # a version plays at most this share of its original's tempo
CROSSOVER_SHARE = 0.1  # of the clean clips, rendered from two genres and labelled with both
_CHUNK = 4  # clips per task handed to a worker process


@dataclass(frozen=True)
class SynthConfig:
    per_genre: int = 24    # clips per genre (GTZAN has 100); faults are planted among these slots
    seconds: float = 15.0  # clip length (GTZAN: 30 s); 15 s keeps the demo quick
    sr: int = 22050        # GTZAN's rate
    seed: int = 0
    # (track_id, genre) pairs, none by default: each listed clip keeps its file, label and
    # title but is played by the guest artist of `genre` (one made-up artist per genre named
    # here, absent from the rest of the corpus) with `genre`'s recipe, and metadata.csv's
    # true_genre says so. Every other clip stays the same, byte for byte. A clip must be clean
    # (generate_corpus refuses one that carries a planted fault).
    guests: tuple[tuple[str, str], ...] = ()
    # Versions (a song played by another artist of its genre) and non-music clips, as extra
    # slots after each genre's per_genre clips, listed in faults_truth.csv. Off by default:
    # added to the demo they moved its artist split (another test set: CNN 0.57 instead of
    # 0.82, the disco slice gone), and every finding the README reports is on that corpus.
    extras: bool = False

    def __post_init__(self):
        if not _is_int(self.per_genre) or not 4 <= self.per_genre <= 99999:
            raise ValueError(f"per_genre must be an integer from 4 to 99999 (4 leaves room for every kind "
                             f"of planted fault), got {self.per_genre!r}")
        if not isinstance(self.seconds, (int, float)) or not 3.0 <= self.seconds <= 600.0:
            raise ValueError(f"seconds must be a number from 3 to 600, got {self.seconds!r}")
        if not _is_int(self.sr) or not 8000 <= self.sr <= 96000:
            raise ValueError(f"sr must be an integer sample rate from 8000 to 96000 Hz, got {self.sr!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        object.__setattr__(self, "guests", tuple(tuple(g) for g in self.guests))  # hashable, however given
        for track_id, genre in self.guests:
            filed, _, index = str(track_id).partition(".")
            if filed not in GENRES or not index.isdigit() or len(index) != 5 or int(index) >= self.per_genre:
                raise ValueError(f"guests: {track_id!r} is not a clip of this corpus (like 'blues.00003', "
                                 f"numbered below per_genre={self.per_genre})")
            if genre not in GENRES:
                raise ValueError(f"guests: {genre!r} is not a genre of the corpus ({', '.join(GENRES)})")

    @classmethod
    def tiny(cls, seed: int = 0) -> SynthConfig:
        """The smallest corpus with every kind of fault: 40 clips of 3 s, a few seconds to make."""
        return cls(per_genre=4, seconds=3.0, seed=seed)

    @property
    def n_samples(self) -> int:
        return int(round(self.seconds * self.sr))


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass
class SynthSummary:
    out: Path
    n_files: int      # audio files written, the unreadable one included
    n_faults: int     # faulty files planted (the originals of duplicate groups not counted)
    seconds: float    # wall-clock time taken

    def line(self) -> str:
        return (f"wrote {self.n_files} clips ({self.n_faults} planted faults) to {self.out} "
                f"in {self.seconds:.1f} s")


@dataclass
class _Slot:
    """One file of the corpus and, if it is faulty, how."""

    genre: str                  # folder it is filed under: the label
    index: int
    true_genre: str             # what was synthesized
    artist: Artist
    title: str
    kind: str = ""              # one of PLANTED_KINDS, or "" for a clean clip
    variant: str = ""           # regain | shift | resample | trim | clip | dropout | babble | noise | sweep
    source: _Slot | None = None
    group: str = ""
    detail: str = ""
    original: bool = False      # the first of a duplicate group: clean itself, listed with its group
    amount: float = 0.0         # of a recording duplicate's change: dB, s shifted, Hz, s kept
    extra: int = 0              # samples rendered past the end, for a time-shifted copy
    held: bool = False          # keep the render: a recording duplicate is made from it
    also: str = ""              # crossover: the other genre(s) it mixes in, ";"-separated

    @property
    def track_id(self) -> str:
        return f"{self.genre}.{self.index:05d}"

    @property
    def copy(self) -> bool:
        """A duplicate made from its source's file or render (after it, in the main process)."""
        return self.source is not None and self.kind in DUPLICATE_KINDS


def generate_corpus(out: Path, *, config: SynthConfig = SynthConfig(), progress: bool = True,
                    workers: int | None = None) -> SynthSummary:
    """Write the corpus under `out` (see the module docstring) and return what was written.
    `workers` processes render the clips (None: one per CPU; the bytes do not depend on it).

    Raises ValueError when `out` holds something other than an earlier synth corpus.
    """
    start = time.perf_counter()
    out = Path(out)
    _prepare(out)
    slots = _plan(config)
    by_id = {s.track_id: s for s in slots}
    rendered = [s for s in slots if not s.copy]  # copies after their sources, in this process
    chunks = [rendered[i:i + _CHUNK] for i in range(0, len(rendered), _CHUNK)]
    held: dict[str, np.ndarray] = {}  # source track_id -> its longer render, for recording copies
    options = EngineOptions(workers=workers, preload=("genre_core.datasets.synth.music",))
    with tqdm(total=len(slots), desc="synth", unit="clip", disable=not progress) as bar:
        for _, results in map_chunks(_render_chunk, chunks, args=(out, config), options=options):
            for track_id, detail, y in results:
                by_id[track_id].detail = detail
                if y is not None:
                    held[track_id] = y
            bar.update(len(results))
        for slot in slots:
            if slot.copy:
                _write_slot(out, slot, config, held)
                bar.update(1)
    _write_manifests(out, slots, config)
    n_faults = sum(1 for s in slots if s.kind and not s.original)
    return SynthSummary(out, len(slots), n_faults, time.perf_counter() - start)


def _prepare(out: Path) -> None:
    """Make `out`, clearing an earlier synth corpus there; refuse to touch anything else."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    if out.is_dir():
        foreign = [p.name for p in out.iterdir() if p.name not in ("genres_original", *_MANIFESTS)]
        if foreign:
            raise ValueError(f"{out}: holds {foreign[0]!r}, so it is not an earlier synth corpus; "
                             "choose an empty or new --out")
        for genre in GENRES:
            for path in (out / "genres_original" / genre).glob("*.wav"):
                if _TRACK_FILE.match(path.name):
                    path.unlink()
        for name in _MANIFESTS:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


_MANIFESTS = ("metadata.csv", "artists.txt", "faults_truth.csv")
_TRACK_FILE = re.compile(r"^[a-z]+\.\d{5}\.wav$")


def _plan(config: SynthConfig) -> list[_Slot]:
    """Every file of the corpus, in GTZAN order, with its artist and title; faults planted."""
    rng = np.random.default_rng([config.seed, _PLAN])
    names: set[str] = set()
    slots: dict[tuple[str, int], _Slot] = {}
    artists: dict[str, list[Artist]] = {}
    n_artists = max(2, round(config.per_genre / 5))
    for g, genre in enumerate(GENRES):
        palettes = [np.random.default_rng([config.seed, _ARTIST, g, a]) for a in range(n_artists)]
        artists[genre] = [make_artist(artist_name(genre, rng, names), genre, p) for p in palettes]
        # GTZAN files an artist's songs next to each other, so artists are contiguous blocks
        for a, block in enumerate(np.array_split(np.arange(config.per_genre), n_artists)):
            for i in map(int, block):
                slots[genre, i] = _Slot(genre, i, genre, artists[genre][a], title(genre, rng))
    _plant(slots, artists, config, rng)
    _cross(list(slots.values()), config)
    if config.extras:
        _add_extras(slots, artists, config)  # before guests: a guest list changes no version's original
    _invite(slots, config, names)
    return sorted(slots.values(), key=lambda s: (GENRES.index(s.genre), s.index))


def _invite(slots: dict, config: SynthConfig, names: set[str]) -> None:
    """Give each of `config.guests`' clips to its genre's guest artist (their names and palettes
    drawn from their own seed stream, so that no other clip changes)."""
    guests: dict[str, Artist] = {}
    for track_id, genre in config.guests:
        filed, index = track_id.split(".")
        slot = slots[filed, int(index)]
        if slot.kind:
            raise ValueError(f"guests: {track_id} carries a planted fault ({slot.kind}); choose a clean clip")
        if genre not in guests:
            rng = np.random.default_rng([config.seed, _GUEST, GENRES.index(genre)])
            guests[genre] = make_artist(artist_name(genre, rng, names), genre, rng)
        slot.true_genre, slot.artist, slot.also = genre, guests[genre], ""  # played as `genre` alone


def _cross(slots: list[_Slot], config: SynthConfig) -> None:
    """Make CROSSOVER_SHARE of the clean clips crossovers with a neighbouring genre."""
    rng = np.random.default_rng([config.seed, _CROSS])
    clean = [s for s in slots if not s.kind]
    for i in sorted(rng.choice(len(clean), size=round(CROSSOVER_SHARE * len(clean)), replace=False)):
        clean[i].also = str(rng.choice(STYLES[clean[i].genre].neighbours))


def _plant(slots: dict, artists: dict[str, list[Artist]], config: SynthConfig, rng: np.random.Generator
           ) -> None:
    """Turn clean slots into faults, each in a slot no other fault or source uses."""
    free = {genre: list(range(config.per_genre)) for genre in GENRES}

    def take(genre: str) -> _Slot:
        if not free[genre]:
            raise ValueError(f"per_genre={config.per_genre} leaves no room in {genre} for the planted faults")
        return slots[genre, free[genre].pop(int(rng.integers(len(free[genre]))))]

    def count(hosts: tuple) -> range:
        return _count(hosts, config)

    for i in count(_EXACT):
        host, origin = _EXACT[i % len(_EXACT)]
        source, copy = take(origin), take(host)
        detail = f"byte-identical copy of {source.track_id}"
        _duplicate(source, copy, "exact_duplicate", f"exact-{i + 1:02d}", detail)
    for i in count(_RECORDING):
        host, variant = _RECORDING[i % len(_RECORDING)]
        source, copy = take(host), take(host)
        amount, detail = _recording_variant(variant, config, rng)
        _duplicate(source, copy, "recording_duplicate", f"recording-{i + 1:02d}", detail)
        copy.variant, copy.amount, source.held = variant, amount, True
        if variant == "shift":
            source.extra = max(source.extra, round(amount * config.sr))
    for i in count(_MISLABEL):
        host, really = _MISLABEL[i % len(_MISLABEL)]
        slot = take(host)
        slot.true_genre, slot.artist = really, artists[really][int(rng.integers(len(artists[really])))]
        slot.kind, slot.detail = "label_issue", f"true genre {really} filed as {host}"
    for hosts, variant in ((_CLIPPED, "clip"), (_DROPOUT, "dropout")):
        for i in count(hosts):
            slot = take(hosts[i % len(hosts)])
            slot.kind, slot.variant = "distortion", variant  # detail once the damage is measured
    take(_SILENT).kind = "silence"
    take(_UNREADABLE).kind = "unreadable"


def _count(hosts: tuple, config: SynthConfig) -> range:
    """How many of a fault to plant: len(hosts) at the default size, scaled, at least one."""
    return range(max(1, round(len(hosts) * config.per_genre / _DEFAULT_PER_GENRE)))


def _add_extras(slots: dict, artists: dict[str, list[Artist]], config: SynthConfig) -> None:
    """Versions and non-music clips as new slots numbered after each genre's per_genre (their
    draws from their own seed stream, after crossovers are chosen: nothing else moves). A
    version's original is a clean single-genre clip of its genre (a guest may not take it)."""
    rng = np.random.default_rng([config.seed, _EXTRA])
    taken = {genre: config.per_genre for genre in GENRES}

    def new_slot(genre: str, artist: Artist, name: str) -> _Slot:
        slot = _Slot(genre, taken[genre], genre, artist, name)
        taken[genre] += 1
        slots[genre, slot.index] = slot
        return slot

    for i in _count(_VERSION, config):
        genre = _VERSION[i % len(_VERSION)]
        originals = [s for s in slots.values() if s.genre == genre and s.index < config.per_genre and not s.kind
                     and not s.also]
        source = originals[int(rng.integers(len(originals)))]
        others = [a for a in artists[genre] if a is not source.artist]
        cover = _cover(source.artist, others[int(rng.integers(len(others)))])
        version = new_slot(genre, cover, source.title)
        group = f"version-{i + 1:02d}"
        version.kind, version.group, version.source = "version", group, source
        version.detail = (f"{source.title!r} as played by {cover.name}: {cover.tempo:.0f} bpm against "
                          f"{source.artist.tempo:.0f}, other instruments and production")
        source.kind, source.group, source.original = "version", group, True
        source.detail = f"original of {group}"
    for i in _count(_NOT_MUSIC, config):
        genre, variant = _NOT_MUSIC[i % len(_NOT_MUSIC)]
        slot = new_slot(genre, artists[genre][int(rng.integers(len(artists[genre])))], title(genre, rng))
        slot.kind, slot.variant, slot.true_genre = "not_music", variant, ""
        slot.detail = _NOISES[variant]


def _cover(original: Artist, other: Artist) -> Artist:
    """`other` playing `original`'s song: the composition's choices (progressions, neighbour
    and borrowing, drum groove, key: the melody walks over a fixed register, so another key
    would bend it) are the original's, so a render from the original's seed draws the same
    notes; tempo (slower: see render_clip's bars_at), sounds, kit, feel and production are
    `other`'s."""
    return replace(other, progressions=original.progressions, neighbour=original.neighbour,
                   borrow=original.borrow, groove=original.groove, key=original.key,
                   tempo=min(other.tempo, VERSION_SLOWER * original.tempo))


_NOISES = {"babble": "speech-like babble: a voiced buzz through moving vowel formants, in syllables",
           "noise": "broadband noise, pink, slowly swelling",
           "sweep": "a test tone, then a logarithmic sine sweep from 50 Hz to 8 kHz"}


def _duplicate(source: _Slot, copy: _Slot, kind: str, group: str, detail: str) -> None:
    copy.true_genre, copy.artist, copy.title = source.true_genre, source.artist, source.title
    copy.kind, copy.group, copy.source, copy.detail = kind, group, source, detail
    source.kind, source.group, source.original, source.detail = kind, group, True, f"original of {group}"


def _recording_variant(variant: str, config: SynthConfig, rng: np.random.Generator) -> tuple[float, str]:
    """(amount, detail) of another recording of the same rendering: dB, s, Hz or s."""
    if variant == "regain":
        db = -round(float(rng.uniform(3.0, 7.0)), 1)
        return db, f"re-gained {db:.1f} dB"
    if variant == "shift":
        shift = round(float(rng.uniform(0.5, min(2.0, 0.2 * config.seconds))), 2)
        return shift, f"time-shifted {shift:.2f} s"
    if variant == "resample":
        return config.sr / 2, f"resampled via {config.sr // 2} Hz"
    length = math.floor(config.seconds * 2 / 3 * 10) / 10
    return length, f"trimmed to {length:.1f} s"


def _render_chunk(slots: list[_Slot], out: Path, config: SynthConfig) -> list[tuple]:
    """Write clips that copy no other (in a worker process): (track_id, detail, render kept
    for a recording duplicate or None) each."""
    results = []
    for slot in slots:
        held: dict[str, np.ndarray] = {}
        _write_slot(out, slot, config, held)
        results.append((slot.track_id, slot.detail, held.get(slot.track_id)))
    return results


def _write_slot(out: Path, slot: _Slot, config: SynthConfig, held: dict[str, np.ndarray]) -> None:
    path = _path(out, slot)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([config.seed, _CLIP, GENRES.index(slot.genre), slot.index])
    if slot.kind == "unreadable":
        # RIFF/WAVE magic that promises a whole clip, then noise where the fmt and data chunks go
        garbage = rng.bytes(500)
        path.write_bytes(b"RIFF" + (36 + 2 * config.n_samples).to_bytes(4, "little") + b"WAVE" + garbage)
        slot.detail = f"garbled header (no fmt or data chunk), truncated to {len(garbage) + 12} bytes"
        return
    if slot.kind == "exact_duplicate" and not slot.original:
        shutil.copyfile(_path(out, slot.source), path)
        return
    if slot.kind == "recording_duplicate" and not slot.original:
        y = _rerecord(held[slot.source.track_id], slot, config, rng)
    elif slot.kind == "version" and not slot.original:
        y = _render_version(slot, config)
    elif slot.kind == "not_music":
        y = _not_music(slot.variant, config, rng)
    elif slot.kind == "silence":
        y = np.zeros(config.n_samples)
        slot.detail = "digital silence: every sample is 0"
    else:
        # mastered: loudness-normalised by the artist's target, peaks from 0.5 to 0.89
        y = render_clip(slot.true_genre, slot.artist, config.n_samples + slot.extra, sr=config.sr, rng=rng,
                        also=slot.also or None)
        if slot.held:
            held[slot.track_id] = y
        y = y[: config.n_samples]
        if slot.kind == "distortion":
            y = _damage(y.copy(), slot, config.sr, rng)
    _write_wav(path, y, config.sr)


def _render_version(slot: _Slot, config: SynthConfig) -> np.ndarray:
    """The version's song: its original's Generator, so the same composition, in `slot`'s
    artist's hands (see _cover). (N,)"""
    source = slot.source
    rng = np.random.default_rng([config.seed, _CLIP, GENRES.index(source.genre), source.index])
    return render_clip(source.true_genre, slot.artist, config.n_samples, sr=config.sr, rng=rng,
                       bars_at=source.artist.tempo)


def _not_music(variant: str, config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """A clip that is no music, at a music clip's loudness (peak 0.5-0.8). (N,)"""
    n, sr = config.n_samples, config.sr
    t = np.arange(n) / sr
    if variant == "babble":
        y = _babble(n, sr, rng)
    elif variant == "noise":  # pink: white noise with a 1/f power spectrum, swelling twice
        spec = np.fft.rfft(rng.standard_normal(n))
        spec /= np.sqrt(np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0))
        y = np.fft.irfft(spec, n) * (1.2 + np.sin(2 * np.pi * t / config.seconds * 2))
    else:  # a 1-kHz tone for a fifth, then a log sweep 50 Hz -> 8 kHz
        cut = n // 5
        rest = t[cut:] - t[cut]
        span = rest[-1] + 1 / sr
        k = np.log(8000 / 50)
        sweep = np.sin(2 * np.pi * 50 * span / k * (np.exp(k * rest / span) - 1))
        y = np.concatenate([np.sin(2 * np.pi * 1000 * t[:cut]), sweep])
    return y / np.max(np.abs(y)) * rng.uniform(0.5, 0.8)


def _babble(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Speech-like babble: a glottal pulse train (pitch gliding around 120 Hz) through three
    formant resonances that jump between vowels, cut into syllables of 0.1-0.3 s. (N,)"""
    from scipy.signal import lfilter

    vowels = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410))
    y, pos = np.zeros(n), 0
    while pos < n:
        length = min(n - pos, int(sr * rng.uniform(0.1, 0.3)))
        pitch = 120 * np.exp(rng.normal(0, 0.15)) * np.linspace(1.05, 0.95, length)
        phase = np.cumsum(pitch / sr)
        source = np.diff(np.floor(phase), prepend=0.0)  # one pulse per pitch period
        voiced = np.zeros(length)
        for f, bw in zip(vowels[int(rng.integers(len(vowels)))], (80, 100, 120)):
            r = np.exp(-np.pi * bw / sr)  # a two-pole resonance per formant
            voiced += lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / sr), r * r], source)
        envelope = np.sin(np.pi * np.arange(length) / length) ** 0.5
        pause = int(sr * rng.uniform(0.02, 0.15)) if rng.random() < 0.8 else int(sr * rng.uniform(0.2, 0.4))
        y[pos:pos + length] = voiced * envelope
        pos += length + pause
    return y + 0.003 * rng.standard_normal(n) * np.max(np.abs(y))


def _rerecord(y: np.ndarray, slot: _Slot, config: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """A recording duplicate: the source's rendering (with any extra tail) changed as planned. (N,)"""
    n, sr = config.n_samples, config.sr
    if slot.variant == "regain":
        return y[:n] * 10 ** (slot.amount / 20)
    if slot.variant == "shift":
        start = round(slot.amount * sr)
        return y[start:start + n]
    if slot.variant == "resample":  # down to amount Hz and back = an ideal low-pass at amount / 2
        spec = np.fft.rfft(y[:n])
        spec[np.fft.rfftfreq(n, 1 / sr) > slot.amount / 2] = 0
        return np.fft.irfft(spec, n)
    length = round(slot.amount * sr)
    start = int(rng.integers(0, n - length + 1))
    return y[start:start + length]


def _damage(y: np.ndarray, slot: _Slot, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Clip or punch holes into a clip, and say by how much in `slot.detail`. (N,)"""
    if slot.variant == "clip":
        level = round(float(rng.uniform(0.25, 0.45)), 2)
        gain = level / np.quantile(np.abs(y), 1 - rng.uniform(0.03, 0.06))  # 3-6% beyond the rail
        y = np.clip(y * gain, -level, level)
        share = float(np.mean(np.abs(y) >= level))
        slot.detail = f"clipping at {level:.2f} full scale, {100 * share:.1f}% samples clipped"
        return y
    n_gaps, gap = int(rng.integers(2, 5)), round(float(rng.uniform(0.2, 0.5)), 2)
    zone, width = len(y) // n_gaps, round(gap * sr)
    for z in range(n_gaps):  # one gap somewhere in each of n_gaps equal zones: they never overlap
        start = z * zone + int(rng.integers(0, zone - width))
        y[start:start + width] = 0.0
    slot.detail = f"dropouts: {n_gaps} gaps of {gap:.2f} s"
    return y


def _path(out: Path, slot: _Slot) -> Path:
    return out / "genres_original" / slot.genre / f"{slot.track_id}.wav"


def _write_wav(path: Path, y: np.ndarray, sr: int) -> None:
    """16-bit PCM mono via the standard library: no timestamps, so the bytes are reproducible."""
    pcm = np.round(np.clip(y, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sr)
        f.writeframes(pcm.tobytes())


def _write_manifests(out: Path, slots: list[_Slot], config: SynthConfig) -> None:
    """faults_truth.csv and artists.txt, then metadata.csv last: its presence means "complete"."""
    kinds = {kind: i for i, kind in enumerate(PLANTED_KINDS)}
    faulty = sorted((s for s in slots if s.kind),
                    key=lambda s: (kinds[s.kind], s.group, not s.original, s.track_id))
    rows = [(s.track_id, s.kind, s.group, s.source.track_id if s.source else "", s.detail) for s in faulty]
    _write_csv(out / "faults_truth.csv", ("track_id", "kind", "group_id", "source_track_id", "detail"), rows)
    header = [f"## GenreLens synthetic demo corpus: seed {config.seed}, {config.per_genre} clips per genre, "
              f"{config.seconds:g} s at {config.sr} Hz" + (EXTRAS_NOTE if config.extras else ""),
              "## Made-up artists and titles, in the format of B. L. Sturm's GTZAN index (MIRUM 2012)", "##"]
    lines = [f"{s.track_id}.wav ::: {s.artist.name} ::: {s.title}" for s in slots]
    (out / "artists.txt").write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    _write_csv(out / "metadata.csv", ("track_id", "label", "true_genre", "artist", "title", "also"),
               [(s.track_id, s.genre, s.true_genre, s.artist.name, s.title, s.also) for s in slots])


def _write_csv(path: Path, header: tuple[str, ...], rows: list[tuple]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
