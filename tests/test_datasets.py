from pathlib import Path

import numpy as np
import pytest

from genre_core.datasets import DatasetError, read_artist_index, scan
from tests.helpers import make_fma_corpus, reference_file, tone, write



def _gtzan(root: Path, layout: str, ext: str, genres=("blues", "rock"), n=3) -> Path:
    for g in genres:
        for i in range(n):
            write(root / layout / g / f"{g}.{i:05d}.{ext}", tone(1.2, 200 + 50 * i))
    return root


@pytest.mark.parametrize("layout, ext", [("genres", "au"), ("genres_original", "wav")])
def test_gtzan_both_layouts_from_the_layout_folder_or_above_it(tmp_path, layout, ext):
    _gtzan(tmp_path / "Data", layout, ext)
    for root in (tmp_path, tmp_path / "Data", tmp_path / "Data" / layout):
        found = scan("gtzan", root)
        assert found.genres == ["blues", "rock"]
        assert [e.track_id for e in found.entries][:2] == ["blues.00000", "blues.00001"]
        assert {e.label for e in found.entries} == {"blues", "rock"}


def test_gtzan_ignores_stray_files_and_rejects_a_foreign_folder(tmp_path):
    root = _gtzan(tmp_path, "genres", "au")
    (root / "genres" / "rock" / "notes.txt").write_text("x")
    (root / "genres" / "rock" / "._rock.00000.au").write_bytes(b"mac resource fork")
    assert len(scan("gtzan", root).entries) == 6
    (tmp_path / "other").mkdir()
    with pytest.raises(DatasetError, match="no GTZAN layout"):
        scan("gtzan", tmp_path / "other")


def test_folder_layout_labels_by_folder_and_keeps_nested_ids_unique(tmp_path):
    write(tmp_path / "techno" / "a.wav", tone(1.2))
    write(tmp_path / "techno" / "live" / "a.wav", tone(1.2))
    write(tmp_path / "ambient" / "b.flac", tone(1.2))
    found = scan("folder", tmp_path)
    assert found.genres == ["ambient", "techno"]
    assert sorted(e.track_id for e in found.entries) == ["ambient/b", "techno/a", "techno/live/a"]


def test_folder_without_audio_is_a_clear_error(tmp_path):
    (tmp_path / "empty_genre").mkdir()
    with pytest.raises(DatasetError, match="no audio files"):
        scan("folder", tmp_path)


def _fma(root: Path) -> Path:
    columns = [("artist", "name"), ("set", "split"), ("set", "subset"), ("track", "genre_top")]
    rows = {
        2: ["AWOL", "training", "small", "Hip-Hop"],
        5: ["AWOL", "test", "small", "Hip-Hop"],
        10: ["Kurt Vile", "validation", "small", "Pop"],
        20: ["Nobody", "training", "small", np.nan],  # no top genre: cannot be labelled
    }
    return make_fma_corpus(root, columns, rows)


def test_fma_top_genre_labels_official_split_and_artists(tmp_path):
    found = scan("fma", _fma(tmp_path))
    by_id = {e.track_id: e for e in found.entries}
    assert sorted(by_id) == ["000002", "000005", "000010"]
    assert by_id["000002"].label == "Hip-Hop" and by_id["000010"].artist == "Kurt Vile"
    assert [by_id[t].official_split for t in sorted(by_id)] == ["train", "test", "validation"]
    assert found.genres == ["Hip-Hop", "Pop"]


def test_fma_without_metadata_says_what_is_missing(tmp_path):
    with pytest.raises(DatasetError, match="tracks.csv not found"):
        scan("fma", tmp_path)


def test_artist_index_in_sturms_format_fills_artists(tmp_path):
    root = _gtzan(tmp_path, "genres", "au")
    index = tmp_path / "index.txt"
    index.write_text(
        "## comment line\nblues.00000.wav ::: John Lee Hooker ::: Sugar Mama\n"
        "blues.00001.wav :::  ::: \nrock.00002.wav ::: Queen ::: \n"
    )
    by_id = {e.track_id: e for e in scan("gtzan", root, artist_index=index).entries}
    assert (by_id["blues.00000"].artist, by_id["blues.00000"].title) == ("John Lee Hooker", "Sugar Mama")
    assert by_id["blues.00001"].artist is None
    assert by_id["rock.00002"].artist == "Queen" and by_id["rock.00002"].title is None


def test_reads_the_real_gtzan_index():
    path = reference_file("GTZANindex.txt")
    if not path.is_file():
        pytest.skip(f"reference index not found: {path}")
    index = read_artist_index(path)
    assert len(index) == 1000
    assert sum(artist is not None for artist, _ in index.values()) == 919
    assert index["blues.00012"][0] == "Robert Johnson"


def test_unknown_dataset_kind_lists_the_known_ones(tmp_path):
    with pytest.raises(DatasetError, match="choose from gtzan"):
        scan("nope", tmp_path)
