"""Reliability under bad input (issue 12): one ingest over a corpus of every kind of broken,
lying or hostile file we could think of, plus good files in unusual shapes. Whatever the
input, ingest must not crash, must store a reason that names the problem for every bad file,
must keep every good file, and its summary must count what the database holds.

Each bad kind is one `Bad(name, make, reason)`: `make(folder)` creates the input and returns
the track id ingest should store it under; `reason` is a regex the stored error must match.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import socket
import struct
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from genre_core import audio
from genre_core.datasets import scan
from genre_core.datasets.ingest import IngestOptions, ingest
from genre_core.store import open_store
from tests.helpers import tone, write

SR = 8000  # tiny files: 1.5 s of 16-bit mono is 24 kB
CAP_S = 6.0  # the ingest duration cap used here, so "longer than the cap" costs 7 s of audio
REPO = Path(__file__).resolve().parents[1]


def _pcm16(seconds: float = 1.5, channels: int = 1) -> bytes:
    y = np.repeat(tone(seconds, 440.0, SR)[:, None], channels, axis=1)
    return (y * 32767).astype("<i2").tobytes()


def wav_bytes(data: bytes, rate: int = SR, channels: int = 1, bits: int = 16, tag: int = 1,
              block_align: int | None = None, data_size: int | None = None) -> bytes:
    """A hand-made RIFF/WAVE file whose header says whatever it is told to."""
    align = block_align if block_align is not None else channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _bytes(name: str, content: bytes) -> Callable[[Path], str]:
    def make(folder: Path) -> str:
        (folder / name).write_bytes(content)
        return f"bad/{Path(name).stem}"
    return make


def _audio(name: str, y: np.ndarray, sr: int = SR, **kwargs) -> Callable[[Path], str]:
    def make(folder: Path) -> str:
        write(folder / name, y, sr, **kwargs)
        return f"bad/{Path(name).stem}"
    return make


def _cut(name: str, keep: float, **kwargs) -> Callable[[Path], str]:
    """A valid file of `name`'s format cut to `keep` of its bytes."""
    def make(folder: Path) -> str:
        full = folder / f"_full{Path(name).suffix}"
        write(full, tone(2.0, sr=SR), SR, **kwargs)
        data = full.read_bytes()
        full.unlink()
        (folder / name).write_bytes(data[: int(len(data) * keep)])
        return f"bad/{Path(name).stem}"
    return make


def _symlink(name: str, target: str | Path) -> Callable[[Path], str]:
    def make(folder: Path) -> str:
        os.symlink(target, folder / name)
        return f"bad/{Path(name).stem}"
    return make


def _mutual(folder: Path) -> str:
    os.symlink("ping_b.wav", folder / "ping_a.wav")
    os.symlink("ping_a.wav", folder / "ping_b.wav")
    return "bad/ping_a"  # ping_b is checked by its own (same) reason below


def _fifo(folder: Path) -> str:
    os.mkfifo(folder / "fifo.wav")
    return "bad/fifo"


def _socket(folder: Path) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(folder / "sock.wav"))
    return "bad/sock"


def _dir(folder: Path) -> str:
    (folder / "folder.wav").mkdir()
    return "bad/folder"


def _outside(folder: Path) -> str:
    secret = folder.parents[1] / "outside" / "secret.wav"  # beside the corpus root, not in it
    write(secret, tone(1.5, sr=SR), SR)
    os.symlink(secret, folder / "secret.wav")
    return "bad/secret"


def _non_utf8(folder: Path) -> str:
    os.close(os.open(os.fsencode(folder) + b"/caf\xe9.wav", os.O_CREAT | os.O_WRONLY))
    return "bad/caf\ufffd"


def _unreadable(folder: Path) -> str:
    write(folder / "unreadable.wav", tone(1.5, sr=SR), SR)  # root reads anything: see _deny_reads
    return "bad/unreadable"


def _locked(folder: Path) -> str:
    write(folder / "locked" / "inside.wav", tone(1.5, sr=SR), SR)  # listing denied: see _deny_reads
    return "bad/locked/"


def _loop_folder(folder: Path) -> str:
    os.symlink("..", folder / "again")
    return "bad/again/"


def _zip(inner: bytes, name: str = "x.wav") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr(name, inner)
    return buffer.getvalue()


def _too_long(folder: Path) -> str:
    write(folder / "longer_than_cap.wav", tone(CAP_S + 1, sr=SR), SR, subtype="PCM_U8")
    return "bad/longer_than_cap"


@dataclass(frozen=True)
class Bad:
    name: str
    make: Callable[[Path], str]
    reason: str  # regex the stored error must match


NOT_AUDIO = r"not decodable audio"
TEXT = r"the bytes are text, not audio"
SILENT = np.zeros(SR * 2, np.float32)

BAD = [
    Bad("empty file", _bytes("empty.wav", b""), r"empty file \(0 bytes\)"),
    Bad("RIFF magic only", _bytes("riff_only.wav", b"RIFF"), NOT_AUDIO),
    Bad("truncated header", _cut("cut_header.wav", 0.001), NOT_AUDIO),
    Bad("header, no data", _bytes("no_data.wav", wav_bytes(b"")), r"no audio frames|not decodable"),
    Bad("truncated data (header says more)", _bytes("cut_data.wav", wav_bytes(_pcm16(0.3), data_size=SR * 2 * 2)),
        r"too short"),
    Bad("truncated FLAC", _cut("cut_flac.flac", 0.3, format="FLAC"), r"decod|truncated|too short"),
    Bad("truncated OGG", _cut("cut_ogg.ogg", 0.2, format="OGG"), r"decod|truncated|too short"),
    Bad("MP3 cut to 100 bytes", _cut("cut_mp3.mp3", 0.004, format="MP3"), NOT_AUDIO + "|too short"),
    Bad("text as .wav", _bytes("text_wav.wav", b"hello, this is not audio\n" * 20), TEXT),
    Bad("text as .mp3", _bytes("text_mp3.mp3", b"Title: my song\nArtist: me\n" * 20), TEXT),
    Bad("text as .flac", _bytes("text_flac.flac", b"fLaC is not enough\n" * 20), NOT_AUDIO),
    Bad("HTML page saved as .mp3", _bytes("page.mp3", b"<!doctype html><html><body>404</body></html>\n"), TEXT),
    Bad("JSON as .ogg", _bytes("data.ogg", b'{"error": "not found"}\n'), TEXT),
    Bad("random bytes as .wav", _bytes("noise_bytes.wav", np.random.default_rng(0).bytes(4096)), NOT_AUDIO),
    Bad("ZIP named .flac", _bytes("archive.flac", _zip(b"x" * 100)), r"ZIP archive"),
    Bad("nested archive named .flac", _bytes("nested.flac", _zip(_zip(wav_bytes(_pcm16())), "in.zip")), r"ZIP archive"),
    Bad("gzip named .ogg", _bytes("packed.ogg", gzip.compress(wav_bytes(_pcm16()))), r"gzip archive"),
    Bad("PDF named .aiff", _bytes("paper.aiff", b"%PDF-1.4\n" + bytes(300)), r"PDF document"),
    Bad("executable named .au", _bytes("program.au", b"\x7fELF\x02\x01\x01" + bytes(300)), r"executable"),
    Bad("PNG named .wav", _bytes("cover.wav", b"\x89PNG\r\n\x1a\n" + bytes(300)), r"PNG image"),
    Bad("MIDI named .mp3", _bytes("score.mp3", b"MThd\x00\x00\x00\x06\x00\x01" + bytes(100)), r"MIDI score"),
    Bad("zero channels", _bytes("zero_channels.wav", wav_bytes(_pcm16(), channels=0, block_align=2)), NOT_AUDIO + "|channels"),
    Bad("16 channels", _bytes("sixteen_channels.wav", wav_bytes(_pcm16(0.2, 16), channels=16)), r"16 channels"),
    Bad("65535 channels", _bytes("max_channels.wav", wav_bytes(_pcm16(), channels=65535, block_align=2)),
        NOT_AUDIO + "|channels"),
    Bad("1 Hz header", _bytes("one_hz.wav", wav_bytes(_pcm16(), rate=1)), r"sample rate 1 Hz"),
    Bad("3999 Hz header", _bytes("rate_3999.wav", wav_bytes(_pcm16(), rate=3999)), r"sample rate 3999 Hz"),
    Bad("10 MHz header", _bytes("ten_mhz.wav", wav_bytes(_pcm16(), rate=10_000_000)), r"sample rate 10000000 Hz"),
    Bad("zero rate header", _bytes("zero_rate.wav", wav_bytes(_pcm16(), rate=0)), NOT_AUDIO + "|sample rate 0"),
    Bad("longer than the duration cap", _too_long, r"header says 7.0 s of audio \(sane: <= 6.0 s\)"),
    Bad("unknown format tag", _bytes("tag_1234.wav", wav_bytes(_pcm16(), tag=0x1234)), NOT_AUDIO),
    Bad("zero bits per sample", _bytes("zero_bits.wav", wav_bytes(_pcm16(), bits=0, block_align=2)), NOT_AUDIO),
    Bad("float WAV of NaN", _audio("nan.wav", np.full(SR * 2, np.nan, np.float32), subtype="FLOAT"), r"NaN"),
    Bad("float WAV of inf", _audio("inf.wav", np.full(SR * 2, np.inf, np.float32), subtype="FLOAT"), r"infinite"),
    Bad("one NaN in a double WAV", _audio("one_nan.wav", np.where(np.arange(SR * 2) == 100, np.nan, 0.3),
                                          subtype="DOUBLE"), r"NaN"),
    Bad("all silent", _audio("silent.wav", SILENT), r"silent: peak"),
    Bad("silent FLAC", _audio("silent_flac.flac", SILENT, format="FLAC"), r"silent: peak"),
    Bad("too short", _audio("short.wav", tone(0.3, sr=SR)), r"too short: 0.30 s"),
    Bad("one frame", _audio("one_frame.wav", np.array([0.5], np.float32)), r"too short"),
    Bad("symlink to itself", _symlink("self.wav", "self.wav"), r"symlink loop"),
    Bad("two symlinks to each other", _mutual, r"symlink loop"),
    Bad("dangling symlink", _symlink("dangling.wav", "gone.wav"), r"broken symlink"),
    Bad("symlink out of the root", _outside, r"outside the corpus root"),
    Bad("symlink to /dev/zero", _symlink("zero_device.wav", "/dev/zero"), r"outside the corpus root"),
    Bad("directory named x.wav", _dir, r"is a directory"),
    Bad("FIFO named .wav", _fifo, r"not a regular file \(a FIFO\)"),
    Bad("socket named .wav", _socket, r"not a regular file \(a socket\)"),
    Bad("unreadable file", _unreadable, r"cannot read file \(Permission denied\)"),
    Bad("sub-folder that cannot be listed", _locked, r"folder cannot be listed \(Permission denied\)"),
    Bad("sub-folder symlinked back up", _loop_folder, r"symlink loop"),
    Bad("file name not UTF-8", _non_utf8, r"not valid UTF-8"),
]

GOOD = {  # file name -> (samples, write kwargs): unusual but valid audio, all must be 'ok'
    "pcm16.wav": (tone(1.5, sr=SR), {}),
    "u8.wav": (tone(1.5, sr=SR), {"subtype": "PCM_U8"}),
    "s24.wav": (tone(1.5, sr=SR), {"subtype": "PCM_24"}),
    "s32.wav": (tone(1.5, sr=SR), {"subtype": "PCM_32"}),
    "f32.wav": (tone(1.5, sr=SR), {"subtype": "FLOAT"}),
    "f64.wav": (tone(1.5, sr=SR), {"subtype": "DOUBLE"}),
    "eight_channels.wav": (np.repeat(tone(1.5, sr=SR)[:, None], 8, axis=1), {}),
    "flac.flac": (tone(1.5, sr=SR), {"format": "FLAC"}),
    "ogg.ogg": (tone(1.5, sr=SR), {"format": "OGG"}),
    "au.au": (tone(1.5, sr=SR), {"format": "AU"}),
    "aiff.aiff": (tone(1.5, sr=SR), {"format": "AIFF"}),
    "wav_named.flac": (tone(1.5, sr=SR), {"format": "WAV"}),  # wrong extension: content decides
    "LOUD.WAV": (tone(1.5, sr=SR), {}),
    "with spaces & ünïcode – ♫.wav": (tone(1.5, sr=SR), {}),
    "x" * 200 + ".wav": (tone(1.5, sr=SR), {}),
    "song.wav": (tone(1.5, sr=SR), {}),  # with song.flac: two tracks, not one
    "song.flac": (tone(1.6, sr=SR), {"format": "FLAC"}),
    "nested/deeper/deep.wav": (tone(1.5, sr=SR), {}),
    "almost_silent.wav": (0.01 * tone(1.5, sr=SR), {}),  # -46 dBFS: quiet, not silent
}
# Headers that lie in ways libsndfile corrects from the file itself: the audio is fine, so 'ok'.
LENIENT = {
    "huge_claim.wav": wav_bytes(_pcm16(), data_size=0xFFFFFFF0),  # 4 GB claimed, size wins
    "width_mismatch.wav": wav_bytes(_pcm16(), bits=16, block_align=7),  # block size ignored
}
GOOD_IDS = {"song.wav": "good/song.wav", "song.flac": "good/song.flac"}  # the rest: good/<stem>


def _deny_reads(monkeypatch, locked: Path | None = None, unreadable: Path | None = None) -> None:
    """Tests run as root, which ignores chmod: make the 'forbidden' paths fail as a non-root
    user would see them (a denied listing of folder `locked`, a denied open of `unreadable`)."""
    real_scandir, real_sha1 = os.scandir, audio.file_sha1

    def scandir(path="."):
        if Path(os.fsdecode(path)) == locked:
            raise PermissionError(13, "Permission denied", os.fsdecode(path))
        return real_scandir(path)

    def file_sha1(path, *args, **kwargs):
        if Path(path) == unreadable:
            raise PermissionError(13, "Permission denied", str(path))
        return real_sha1(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(audio, "file_sha1", file_sha1)


@pytest.fixture
def hostile_corpus(tmp_path) -> tuple[Path, dict[str, Bad]]:
    """<root>/bad/ (one input per Bad), <root>/good/, and a genre folder that loops (`loop -> .`)."""
    root = tmp_path / "corpus"
    (root / "bad").mkdir(parents=True)
    expected = {bad.make(root / "bad"): bad for bad in BAD}
    expected["bad/ping_b"] = expected["bad/ping_a"]
    os.symlink(".", root / "loop")
    expected["loop/"] = Bad("genre folder that loops", None, r"symlink loop")
    for name, (y, kwargs) in GOOD.items():
        write(root / "good" / name, y, SR, **kwargs)
    for name, content in LENIENT.items():
        (root / "good" / name).write_bytes(content)
    return root, expected


def test_one_ingest_of_every_bad_input_stores_a_reason_for_each_and_keeps_the_good(
        tmp_path, hostile_corpus, monkeypatch):
    root, expected = hostile_corpus
    _deny_reads(monkeypatch, root / "bad" / "locked", root / "bad" / "unreadable.wav")
    store = open_store(tmp_path / "r.duckdb")
    summary = ingest(store, "folder", root, name="hostile", progress=False,
                     options=IngestOptions(workers=1, max_seconds=CAP_S))  # in-process: sees _deny_reads
    rows = store.tracks("hostile", usable_only=False).set_index("track_id")

    wrong = {tid: (bad.name, rows.error.get(tid)) for tid, bad in expected.items()
             if tid not in rows.index or rows.status[tid] == "ok"
             or not re.search(bad.reason, str(rows.error[tid]))}
    assert not wrong, f"bad inputs without the expected reason: {wrong}"
    good_ids = {GOOD_IDS.get(n, f"good/{Path(n).with_suffix('').as_posix()}") for n in [*GOOD, *LENIENT]}
    assert set(rows.index) == set(expected) | good_ids  # nothing dropped, nothing invented
    good = rows.loc[sorted(good_ids)]
    assert (good.status == "ok").all(), good[good.status != "ok"].error
    assert store.dataset("hostile")["genres"].tolist() == ["bad", "good"]  # no "loop"

    assert summary.n_tracks == len(rows) and summary.n_unreadable == (rows.status != "ok").sum()
    if os.environ.get("GENRELENS_SHOW_REASONS"):
        print("\n".join(f"{tid!r:34} {rows.error[tid]}" for tid in sorted(expected)))
    assert summary.n_new == len(good_ids) and summary.n_failed == len(expected)
    kinds = len(BAD) + 1  # + the looping genre folder
    print(f"\nbad inputs tried {len(expected)} ({kinds} kinds) / handled with a recorded reason "
          f"{len(expected) - len(wrong)} / crashes 0")
    assert kinds >= 40


def test_a_rerun_over_the_same_bad_inputs_changes_nothing(tmp_path, hostile_corpus, monkeypatch):
    root, expected = hostile_corpus
    _deny_reads(monkeypatch, root / "bad" / "locked", root / "bad" / "unreadable.wav")
    store = open_store(tmp_path / "r.duckdb")
    options = IngestOptions(workers=1, max_seconds=CAP_S)
    first = ingest(store, "folder", root, name="h", progress=False, options=options)
    probed, real = [], audio.probe
    monkeypatch.setattr(audio, "probe", lambda path: probed.append(path) or real(path))
    again = ingest(store, "folder", root, name="h", progress=False, options=options)
    assert again.n_tracks == first.n_tracks == len(store.tracks("h", usable_only=False))
    assert again.n_unreadable == first.n_unreadable and again.n_missing == 0
    assert again.n_new == again.n_updated == 0
    assert probed == []  # bad files with a stored reason are not looked at again


# --- one regression test per defect of the probe (issue 12) --------------------------------

def _two_genres(root: Path) -> Path:
    write(root / "jazz" / "a.wav", tone(1.5, sr=SR), SR)
    write(root / "rock" / "b.wav", tone(1.5, sr=SR), SR)
    return root


def _ingest_rows(tmp_path: Path, root: Path, **options):
    store = open_store(tmp_path / "d.duckdb")
    summary = ingest(store, "folder", root, name="d", progress=False,
                     options=IngestOptions(workers=1, **options))
    return summary, store.tracks("d", usable_only=False).set_index("track_id")


@pytest.mark.parametrize("links", [{"self.wav": "self.wav"}, {"a2.wav": "b2.wav", "b2.wav": "a2.wav"}])
def test_d1_symlink_loops_are_recorded_and_the_rest_ingested(tmp_path, links):
    root = _two_genres(tmp_path / "c")
    for name, target in links.items():
        os.symlink(target, root / "jazz" / name)
    summary, rows = _ingest_rows(tmp_path, root)
    assert (rows.status == "ok").sum() == 2 and summary.n_tracks == len(rows) == 2 + len(links)
    for name in links:
        assert "symlink loop" in rows.error[f"jazz/{Path(name).stem}"]


def test_d1_a_file_that_cannot_be_read_is_recorded_not_fatal(tmp_path, monkeypatch):
    root = _two_genres(tmp_path / "c")
    _deny_reads(monkeypatch, unreadable=root / "rock" / "b.wav")
    _, rows = _ingest_rows(tmp_path, root)
    assert rows.status["jazz/a"] == "ok"
    assert rows.error["rock/b"] == "cannot read file (Permission denied)"


def test_d1_a_folder_that_cannot_be_listed_is_reported(tmp_path, monkeypatch):
    root = _two_genres(tmp_path / "c")
    write(root / "rock" / "locked" / "c.wav", tone(1.5, sr=SR), SR)
    _deny_reads(monkeypatch, locked=root / "rock" / "locked")
    _, rows = _ingest_rows(tmp_path, root)
    assert rows.error["rock/locked/"] == "folder cannot be listed (Permission denied)"
    assert rows.path["rock/locked/"] == str(root / "rock" / "locked")
    assert (rows.status == "ok").sum() == 2


@pytest.mark.parametrize("rate, reason", [(1, "sample rate 1 Hz"), (10_000_000, "sample rate 10000000 Hz")])
def test_d2_an_absurd_header_rate_is_refused_before_decoding(tmp_path, monkeypatch, rate, reason):
    root = _two_genres(tmp_path / "c")
    (root / "jazz" / "lie.wav").write_bytes(wav_bytes(_pcm16(), rate=rate))
    decoded, real = [], audio._decode
    monkeypatch.setattr(audio, "_decode", lambda info: decoded.append(info.path.name) or real(info))
    _, rows = _ingest_rows(tmp_path, root, validate=True)
    assert rows.status["jazz/lie"] == "unreadable" and reason in rows.error["jazz/lie"]
    assert sorted(decoded) == ["a.wav", "b.wav"]  # the liar was never decoded


def test_d2_the_duration_cap_is_an_option_and_an_environment_variable(tmp_path, monkeypatch):
    root = _two_genres(tmp_path / "c")
    write(root / "jazz" / "long.wav", tone(8.0, sr=SR), SR, subtype="PCM_U8")
    _, rows = _ingest_rows(tmp_path, root, max_seconds=5.0)
    assert rows.error["jazz/long"] == "header says 8.0 s of audio (sane: <= 5.0 s)"
    monkeypatch.setenv(audio.MAX_SECONDS_ENV, "3600")
    assert audio._seconds_from_env() == 3600.0
    monkeypatch.setenv(audio.MAX_SECONDS_ENV, "-1")
    with pytest.warns(UserWarning, match="not a positive number"):
        assert audio._seconds_from_env() == 4 * 3600.0


def test_d4_a_symlink_out_of_the_root_is_refused(tmp_path):
    root = _two_genres(tmp_path / "c")
    write(tmp_path / "private" / "secret.wav", tone(1.5, sr=SR), SR)
    os.symlink(tmp_path / "private" / "secret.wav", root / "jazz" / "secret.wav")
    os.symlink("../rock/b.wav", root / "jazz" / "inside.wav")  # a link within the root is fine
    _, rows = _ingest_rows(tmp_path, root)
    assert rows.error["jazz/secret"] == "symlink target lies outside the corpus root"
    assert "private" not in rows.path["jazz/secret"]  # the outside path is never stored
    assert rows.status["jazz/inside"] == "ok"


def test_d5_same_stem_different_extension_are_two_tracks(tmp_path):
    root = _two_genres(tmp_path / "c")
    write(root / "jazz" / "song.wav", tone(1.5, sr=SR), SR)
    write(root / "jazz" / "song.flac", tone(1.6, sr=SR), SR, format="FLAC")
    summary, rows = _ingest_rows(tmp_path, root)
    assert sorted(rows.index) == ["jazz/a", "jazz/song.flac", "jazz/song.wav", "rock/b"]
    assert summary.n_tracks == len(rows) == 4 and summary.n_new == 4


def test_d5_gtzan_ids_stay_stable_and_clashes_keep_the_extension(tmp_path):
    for i in range(2):
        write(tmp_path / "genres" / "blues" / f"blues.{i:05d}.au", tone(1.5, sr=SR), SR)
        write(tmp_path / "genres" / "rock" / f"rock.{i:05d}.au", tone(1.5, sr=SR), SR)
    write(tmp_path / "genres" / "rock" / "rock.00001.wav", tone(1.5, sr=SR), SR)
    ids = [e.track_id for e in scan("gtzan", tmp_path).entries]
    assert ids == ["blues.00000", "blues.00001", "rock.00000", "rock.00001.au", "rock.00001.wav"]


def test_d9_a_genre_folder_that_loops_is_no_genre(tmp_path):
    root = _two_genres(tmp_path / "c")
    os.symlink(".", root / "loop")
    summary, rows = _ingest_rows(tmp_path, root)
    assert sorted(rows.index) == ["jazz/a", "loop/", "rock/b"]
    assert "symlink loop" in rows.error["loop/"]
    assert scan("folder", root).genres == ["jazz", "rock"]


def test_d9_text_named_mp3_gets_an_honest_reason_and_no_decoder_noise(tmp_path, capfd):
    (tmp_path / "notes.mp3").write_text("these are my notes\n" * 30)
    with pytest.raises(audio.AudioError) as caught:
        audio.probe(tmp_path / "notes.mp3")
    assert caught.value.reason == "not decodable audio (the bytes are text, not audio)"
    assert "pipe" not in caught.value.reason and capfd.readouterr().err == ""


@pytest.mark.parametrize("args, message", [
    (["--name", ""], "error: the dataset name must not be empty (--name)"),
    (["--name", "  "], "error: the dataset name must not be empty (--name)"),
    (["--root", "{tmp}/nowhere"], "error: {tmp}/nowhere: not a directory"),
])
def test_d9_a_bad_ingest_request_fails_in_one_line_and_creates_no_database(tmp_path, args, message):
    root = _two_genres(tmp_path / "c")
    db = tmp_path / "never.duckdb"
    argv = ["--dataset", "folder", "--root", str(root), "--db", str(db)]
    argv += [a.format(tmp=tmp_path) for a in args]
    result = subprocess.run([sys.executable, "-m", "training", "ingest", *argv], capture_output=True,
                            text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [message.format(tmp=tmp_path)]
    assert not db.exists() and not list(tmp_path.glob("never.duckdb*"))
