"""The unseen-genre corpus (synth --recipes unseen): genres no pretrained model here was taught,
reproducible bytes, and a folder corpus that ingests with its artists for an artist split."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_core.datasets.ingest import ingest
from genre_core.datasets.splits import artist_split
from genre_core.datasets.synth.corpus import GENRES, SynthConfig
from genre_core.datasets.synth.unseen import INDEX, UNSEEN_GENRES, generate_unseen
from genre_core.models.musicnn.weights import MSD_TAGS, MTT_TAGS
from genre_core.store import open_store
from training.cli import main

SMALL = SynthConfig(per_genre=5, seconds=3.0, seed=0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("unseen") / "corpus"
    generate_unseen(out, config=SMALL, progress=False, workers=1)
    return out


def _sha1s(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_genres_are_none_musicnn_was_taught_nor_the_demo_s():
    taught = {t.lower() for t in MSD_TAGS + MTT_TAGS}
    assert len(UNSEEN_GENRES) == 8
    assert not taught & set(UNSEEN_GENRES) and not set(GENRES) & set(UNSEEN_GENRES)


def test_every_genre_folder_holds_audible_music(corpus):
    assert sorted(p.name for p in corpus.iterdir() if p.is_dir()) == sorted(UNSEEN_GENRES)
    for genre in UNSEEN_GENRES:
        files = sorted((corpus / genre).glob("*.wav"))
        assert [f.name for f in files] == [f"{genre}.{i:05d}.wav" for i in range(SMALL.per_genre)]
        y, sr = sf.read(files[0])
        assert sr == SMALL.sr and len(y) == SMALL.n_samples
        assert 0.02 < np.sqrt(np.mean(y**2)) and np.abs(y).max() < 0.95  # mastered, not silent, not clipped


def test_same_seed_same_bytes_whatever_the_workers_other_seed_other_audio(corpus, tmp_path):
    generate_unseen(tmp_path / "b", config=SMALL, progress=False, workers=2)
    assert _sha1s(tmp_path / "b") == _sha1s(corpus)
    generate_unseen(tmp_path / "b", config=SynthConfig(per_genre=5, seconds=3.0, seed=1), progress=False, workers=1)
    other = _sha1s(tmp_path / "b")
    assert all(other[k] != v for k, v in _sha1s(corpus).items() if k.endswith(".wav"))


def test_ingested_with_its_index_every_track_has_an_artist_and_the_artist_split_holds(corpus, tmp_path):
    store = open_store(tmp_path / "g.duckdb")
    ingest(store, "folder", corpus, name="unseen", artist_index=corpus / INDEX)
    tracks = store.tracks("unseen")
    assert len(tracks) == 8 * SMALL.per_genre and tracks.artist.notna().all()
    assert (tracks.groupby("label").artist.nunique() >= 2).all()  # an artist split has someone to hold out
    split = artist_split(tracks.track_id, tracks.label, tracks.artist, seed=0)
    sides = [set(tracks.set_index("track_id").loc[list(ids)].artist) for ids in (split.train, split.test)]
    assert sides[1] and not sides[0] & sides[1]


def test_cli_writes_it_and_refuses_a_folder_that_is_not_one(tmp_path, capsys):
    out = tmp_path / "u"
    assert main(["synth", "--recipes", "unseen", "--out", str(out), "--per-genre", "4", "--seconds", "3"]) == 0
    assert (out / INDEX).is_file() and len(list(out.rglob("*.wav"))) == 32
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.pdf").write_text("x")
    assert main(["synth", "--recipes", "unseen", "--out", str(tmp_path / "mine"), "--per-genre", "4",
                 "--seconds", "3"]) != 0
    assert "thesis.pdf" in capsys.readouterr().err and (tmp_path / "mine" / "thesis.pdf").is_file()
