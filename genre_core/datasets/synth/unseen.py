"""A second synthetic corpus, of genres no pretrained model here was taught: polka, waltz,
bossa, afrobeat, gamelan, tango, march and drum and bass (styles.UNSEEN_STYLES), made by the
demo's music engine. It asks whether an encoder pretrained on a user's own audio (`pretrain`)
closes on one pretrained elsewhere (musicnn, on the Million Song Dataset's tags) where the
genres are not the ones that encoder learned.

A plain folder-per-genre corpus, clean (no planted faults, no crossovers), ingested like any
user's corpus, with the made-up artists from its index:

    out/<genre>/<genre>.000NN.wav   16-bit PCM mono
    out/artists.txt                 Sturm's index format, keyed by the folder dataset's ids

    genrelens synth --recipes unseen --out data/unseen
    genrelens ingest --dataset folder --root data/unseen --artist-index data/unseen/artists.txt --name unseen

Same arguments, same bytes: each clip's draws come from a Generator seeded by (seed, genre,
clip), as in the demo corpus, in a stream of their own.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from genre_core.datasets.synth.corpus import SynthConfig, SynthSummary, _write_wav
from genre_core.datasets.synth.music import render_clip
from genre_core.datasets.synth.styles import UNSEEN_STYLES, Artist, artist_name, make_artist, title
from genre_core.engine import EngineOptions, map_chunks

UNSEEN_GENRES = tuple(UNSEEN_STYLES)
INDEX = "artists.txt"
_STREAM = 7  # seed stream of this corpus: none of the demo corpus' streams (corpus._PLAN ... _EXTRA)
_CHUNK = 4  # clips per task handed to a worker process


def generate_unseen(out: Path, *, config: SynthConfig = SynthConfig(), progress: bool = True,
                    workers: int | None = None) -> SynthSummary:
    """Write the corpus under `out` (clips per genre, length, rate and seed from `config`; its
    fault and guest settings do not apply). Refuses an `out` holding anything but an earlier
    corpus of this kind."""
    if config.extras or config.guests:
        raise ValueError("the unseen-genre corpus plants no faults: --extras and guests do not apply")
    start = time.perf_counter()
    out = Path(out)
    _prepare(out)
    clips = _plan(config)
    chunks = [clips[i:i + _CHUNK] for i in range(0, len(clips), _CHUNK)]
    options = EngineOptions(workers=workers, preload=("genre_core.datasets.synth.music",))
    with tqdm(total=len(clips), desc="synth (unseen genres)", unit="clip", disable=not progress) as bar:
        for _, written in map_chunks(_render_chunk, chunks, args=(out, config), options=options):
            bar.update(written)
    header = [f"## GenreLens synthetic unseen-genre corpus: seed {config.seed}, {config.per_genre} clips per "
              f"genre, {config.seconds:g} s at {config.sr} Hz", "## Made-up artists and titles: file ::: artist ::: title"]
    lines = [f"{genre}/{_stem(genre, i)} ::: {artist.name} ::: {name}" for genre, i, artist, name in clips]
    (out / INDEX).write_text("\n".join(header + lines) + "\n", encoding="utf-8")  # last: its presence means complete
    return SynthSummary(out, len(clips), 0, time.perf_counter() - start)


def _plan(config: SynthConfig) -> list[tuple[str, int, Artist, str]]:
    """(genre, clip index, artist, title) of every clip; artists own contiguous blocks, as in
    the demo corpus, so an artist-aware split keeps each artist on one side."""
    rng = np.random.default_rng([config.seed, _STREAM])
    names: set[str] = set()
    n_artists = max(2, round(config.per_genre / 5))
    clips = []
    for g, genre in enumerate(UNSEEN_GENRES):
        artists = [make_artist(artist_name(genre, rng, names), genre, np.random.default_rng([config.seed, _STREAM, g, a]))
                   for a in range(n_artists)]
        for a, block in enumerate(np.array_split(np.arange(config.per_genre), n_artists)):
            clips += [(genre, int(i), artists[a], title(genre, rng)) for i in block]
    return clips


def _render_chunk(clips: list[tuple[str, int, Artist, str]], out: Path, config: SynthConfig) -> int:
    for genre, i, artist, _ in clips:
        rng = np.random.default_rng([config.seed, _STREAM, UNSEEN_GENRES.index(genre), i, 1])
        path = out / genre / f"{_stem(genre, i)}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_wav(path, render_clip(genre, artist, config.n_samples, sr=config.sr, rng=rng), config.sr)
    return len(clips)


def _stem(genre: str, index: int) -> str:
    return f"{genre}.{index:05d}"


def _prepare(out: Path) -> None:
    """Make `out`, clearing an earlier corpus of this kind; refuse to touch anything else."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    if out.is_dir():
        foreign = [p.name for p in out.iterdir() if p.name not in (*UNSEEN_GENRES, INDEX)]
        if foreign:
            raise ValueError(f"{out}: holds {foreign[0]!r}, so it is not an earlier unseen-genre corpus; "
                             "choose an empty or new --out")
        for genre in UNSEEN_GENRES:
            shutil.rmtree(out / genre, ignore_errors=True)
        (out / INDEX).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
