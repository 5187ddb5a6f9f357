"""Decode, resample, downmix and segment audio.

Every failure is an `AudioError` that names the file and says why, so ingest can record the
reason (`tracks.error`) and carry on with the rest of the corpus.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
DEFAULT_SR = 22050  # GTZAN's native rate: no resampling for the reference corpus
MIN_SECONDS = 1.0  # shorter clips cannot fill even a third of a 3-s window
SILENCE_DBFS = -60.0  # peak below this is "silent": 16-bit dither sits near -90 dBFS
# Header sanity bounds: decoded size is checked before decoding (a forged header must not
# make us allocate gigabytes). 4 kHz covers old telephone-band recordings, 384 kHz the
# highest studio rates; 8 channels is 7.1; 4 h is far beyond any track (a DJ mix is ~2 h).
SAMPLE_RATE_RANGE = (4_000, 384_000)
MAX_CHANNELS = 8
MAX_SECONDS_ENV = "GENRELENS_MAX_SECONDS"  # raise (or lower) the duration cap for a whole session


def _seconds_from_env(default: float = 4 * 3600.0) -> float:
    """The duration cap: $GENRELENS_MAX_SECONDS when it is a positive number, else `default`.
    A bad value warns instead of raising: it is read at import, before any CLI error handling."""
    text = os.environ.get(MAX_SECONDS_ENV, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and np.isfinite(value)):
        warnings.warn(f"${MAX_SECONDS_ENV}={text!r} is not a positive number of seconds; "
                      f"using {default:.0f}")
        return default
    return value


MAX_SECONDS = _seconds_from_env()


class AudioError(Exception):
    """A file that cannot serve as audio. `kind` is "unreadable", "silent" or "too_short"."""

    def __init__(self, path: Path | str, reason: str, kind: str = "unreadable"):
        self.path = Path(path)
        self.reason = reason
        self.kind = kind
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str  # container, e.g. "WAV", "AU", "MP3"
    subtype: str  # sample encoding, e.g. "PCM_16", "FLOAT"

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _check_file(path: Path) -> None:
    if _regular_file(path).st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")


def _regular_file(path: Path) -> os.stat_result:
    """The stat of a regular file, or AudioError saying what the path is instead - found
    without opening it (opening a FIFO would block)."""
    try:
        st = path.stat()  # follows symlinks: the target is what would be read
    except OSError as exc:
        raise AudioError(path, _stat_failure(path, exc)) from exc
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(path, "is a directory, not an audio file")
    if not stat.S_ISREG(st.st_mode):
        raise AudioError(path, f"not a regular file (a {_file_type(st.st_mode)}), not an audio file")
    return st


def _stat_failure(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop (the link never reaches a file)"
    if path.is_symlink():
        return "broken symlink (its target does not exist)"
    if exc.errno == errno.ENOENT:
        return "no such file"
    return f"cannot read file ({exc.strerror or type(exc).__name__})"


def _file_type(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
             (stat.S_ISBLK, "block device"))
    return next((name for test, name in kinds if test(mode)), "special file")


def probe(path: Path | str) -> AudioInfo:
    """Header facts of an audio file without decoding it."""
    path = Path(path)
    _check_file(path)
    if (kind := _what_it_is(path, text=False)) is not None:  # libsndfile may half-parse these
        raise AudioError(path, f"not decodable audio ({kind})")
    try:
        with _quiet_stderr(path.suffix.lower() == ".mp3"):  # libmpg123 narrates failed resyncs
            info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(path, f"not decodable audio ({_what_it_is(path) or _short(exc)})") from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(path, "header declares no audio frames")
    return AudioInfo(path, info.samplerate, info.channels, info.frames, info.format, info.subtype)


def check_header(info: AudioInfo, max_seconds: float | None = MAX_SECONDS) -> AudioInfo:
    """Reject a header whose sample rate, channel count or duration is not sane audio.

    Raises AudioError ("unreadable") naming the file and the offending value, so nothing is
    decoded from a forged or garbled header. `max_seconds=None` skips the duration bound
    (streaming readers never hold the whole file).
    """
    low, high = SAMPLE_RATE_RANGE
    if not low <= info.sample_rate <= high:
        raise AudioError(info.path, f"header says sample rate {info.sample_rate} Hz "
                                    f"(sane: {low}..{high} Hz)")
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise AudioError(info.path, f"header says {info.channels} channels (sane: 1..{MAX_CHANNELS})")
    if max_seconds is not None and info.duration_s > max_seconds:
        raise AudioError(info.path, f"header says {_span(info.duration_s)} of audio "
                                    f"(sane: <= {_span(max_seconds)})")
    return info


def _span(seconds: float) -> str:
    """7.0 s, 12.5 min, 5.0 h: a cap set in seconds must not print as "0.0 h"."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def quick_check(
    path: Path | str, *, n_blocks: int = 8, block_s: float = 0.5, min_seconds: float = MIN_SECONDS,
    info: AudioInfo | None = None,
) -> AudioInfo:
    """Validate a file from its header plus a bounded, strided read: at most ~4 s of audio
    decoded, whatever the file's length. `info`: the file's `probe`, when the caller has it.

    Reads `n_blocks` blocks of `block_s` seconds spread evenly over the file, the last one
    ending at the final frame (so a body shorter than its header promises fails here). A clip
    at most twice that long is decoded whole instead (one read costs less than many seeks).
    Raises AudioError like `load` for a bad header, too-short, non-finite or undecodable audio.
    When every sampled block is below SILENCE_DBFS the file is decoded fully, so a quiet intro
    never marks a track silent; only a file silent throughout raises "silent". Corruption
    between the sampled blocks goes unseen: ingest's `validate` option decodes every file.
    """
    info = info or check_header(probe(path))
    if info.duration_s < min_seconds:
        raise AudioError(info.path, f"too short: {info.duration_s:.2f} s < {min_seconds:.2f} s",
                         "too_short")
    if info.duration_s <= 2 * n_blocks * block_s:
        _validate(_decode(info), info.sample_rate, None, info.path, min_seconds, True)
        return info
    block = max(1, min(info.frames, int(block_s * info.sample_rate)))
    starts = np.linspace(0, info.frames - block, num=max(1, n_blocks)).astype(np.int64)
    peak = 0.0
    try:
        with sf.SoundFile(str(info.path)) as f, _quiet_stderr(info.format == "MP3"):
            for start in np.unique(starts):
                f.seek(int(start))
                data = f.read(block, dtype="float32", always_2d=True)
                if len(data) < block:
                    raise AudioError(info.path, f"decoded {int(start) + len(data)} of "
                                                f"{info.frames} frames (truncated file?)")
                if not np.all(np.isfinite(data)):
                    raise AudioError(info.path, "contains NaN or infinite samples")
                peak = max(peak, float(np.max(np.abs(data))))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(info.path, f"decoding failed ({_short(exc)})") from exc
    if peak <= 0 or 20.0 * np.log10(peak) < SILENCE_DBFS:  # confirm (raises "silent") or clear
        _validate(_decode(info), info.sample_rate, None, info.path, min_seconds, True)
    return info


@contextmanager
def _quiet_stderr(enabled: bool) -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for a moment. libmpg123 prints "part2_3_length ...
    too large" for the first frame after every seek (its bit reservoir starts empty); the
    audio is fine, and a corpus of mp3s would otherwise flood the terminal."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    # libsndfile prefixes its messages with the path we already report.
    text = text.split(": ", 1)[-1] if text.startswith("Error opening") else text
    # libsndfile's mpg123 path says this of any regular file it cannot parse as MP3.
    return "unrecognised format" if "possibly a pipe?" in text else text


# First bytes of files people mistake for (or rename to) audio: refused before libsndfile
# sees them (it may half-parse an archive as raw audio), named for what they are.
_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive"), (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"), (b"Rar!", "a RAR archive"),
    (b"%PDF", "a PDF document"), (b"\x7fELF", "an executable"), (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"), (b"MThd", "a MIDI score"),
)


def _what_it_is(path: Path, text: bool = True) -> str | None:
    """'the bytes are a ZIP archive, not audio'-style reason, or None when the first bytes are
    nothing we recognise. `text`: also recognise plain text (only once libsndfile refused the
    file: some raw encodings are printable by chance)."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return None
    kind = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
    if kind is None and text and _looks_like_text(head):
        kind = "text"
    return f"the bytes are {kind}, not audio" if kind else None


def _looks_like_text(head: bytes) -> bool:
    text = head.decode("utf-8", errors="replace")  # a character cut at byte 512 costs one U+FFFD
    printable = sum((c.isprintable() and c != "\ufffd") or c in "\r\n\t" for c in text)
    return len(head) >= 16 and printable >= 0.95 * len(text)  # 4 bytes of "RIFF" are no text


def to_mono(y: np.ndarray) -> np.ndarray:
    """(frames, channels) or (frames,) -> (frames,) by averaging channels."""
    return y if y.ndim == 1 else y.mean(axis=1)


def resample(y: np.ndarray, orig_sr: int, sr: int) -> np.ndarray:
    """(N,) at orig_sr -> (N * sr / orig_sr,) at sr, float32 (soxr high quality)."""
    if orig_sr == sr:
        return y.astype(np.float32, copy=False)
    return soxr.resample(y, orig_sr, sr, quality="HQ").astype(np.float32, copy=False)


def peak_dbfs(y: np.ndarray) -> float:
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else float("-inf")


def load(
    path: Path | str,
    *, sr: int | None = DEFAULT_SR,
    min_seconds: float = MIN_SECONDS,
    reject_silent: bool = True,
    max_seconds: float | None = MAX_SECONDS,
) -> np.ndarray:
    """Decode any supported file to mono float32 at `sr` (None: the file's own rate).
    Returns (N,) samples in [-1, 1].

    Raises AudioError for a header that fails `check_header` (`max_seconds`: its duration
    cap), undecodable, truncated, non-finite, too short or silent audio.
    """
    info = check_header(probe(path), max_seconds)
    return _validate(_decode(info), info.sample_rate, sr, info.path, min_seconds, reject_silent)


DECODE_BLOCK_FRAMES = 1 << 20


def _decode(info: AudioInfo) -> np.ndarray:
    """The whole file as mono float32 (frames,) at its own rate.

    Decoded block by block and mixed to mono as it goes, so peak memory is the mono signal
    (4 bytes per frame) whatever the channel count: an 8-channel header cannot multiply it.
    The header's frame count is only a hint (compressed formats may lie): blocks are appended
    until the decoder stops.
    """
    blocks = []
    try:
        with sf.SoundFile(str(info.path)) as f:
            while True:
                block = f.read(DECODE_BLOCK_FRAMES, dtype="float32", always_2d=True)
                if not len(block):
                    break
                blocks.append(to_mono(block))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(info.path, f"decoding failed ({_short(exc)})") from exc
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)


def _validate(
    y: np.ndarray, native_sr: int, sr: int | None, path: Path, min_seconds: float, reject_silent: bool
) -> np.ndarray:
    if y.size == 0:
        raise AudioError(path, "decoded to zero samples (truncated file?)")
    if not np.all(np.isfinite(y)):
        raise AudioError(path, "contains NaN or infinite samples")
    seconds = y.size / native_sr
    if seconds < min_seconds:
        raise AudioError(path, f"too short: {seconds:.2f} s < {min_seconds:.2f} s", "too_short")
    if reject_silent and peak_dbfs(y) < SILENCE_DBFS:
        raise AudioError(path, f"silent: peak {peak_dbfs(y):.1f} dBFS", "silent")
    return resample(y, native_sr, sr or native_sr)


def segment(
    y: np.ndarray, sr: int, *, window_s: float = 3.0, hop_s: float = 1.5
) -> tuple[np.ndarray, np.ndarray]:
    """Slice (N,) samples into fixed windows: returns ((W, L) windows, (W,) start times in s).

    A clip shorter than one window is zero-padded to one window; the tail after the last
    full window is dropped (at most one hop of audio), so every window is real audio.
    """
    length, hop = int(round(window_s * sr)), int(round(hop_s * sr))
    if y.size < length:
        y = np.pad(y, (0, length - y.size))
    n_windows = 1 + (y.size - length) // hop
    starts = np.arange(n_windows) * hop
    windows = np.lib.stride_tricks.sliding_window_view(y, length)[starts]  # (W, L)
    return np.ascontiguousarray(windows), starts / sr


def stream_blocks(path: Path | str, sr: int, block_s: float = 10.0) -> Iterator[np.ndarray]:
    """Yield mono float32 blocks at `sr` from a file of any length, never loading it whole."""
    info = check_header(probe(path), max_seconds=None)
    resampler = None if info.sample_rate == sr else soxr.ResampleStream(
        info.sample_rate, sr, 1, dtype="float32", quality="HQ"
    )
    block_frames = max(1, int(block_s * info.sample_rate))
    try:
        with sf.SoundFile(str(info.path)) as f:
            while True:
                data = f.read(block_frames, dtype="float32", always_2d=True)
                last = len(data) < block_frames
                mono = to_mono(data)
                yield mono if resampler is None else resampler.resample_chunk(mono, last=last)
                if last:
                    return
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(info.path, f"decoding failed ({_short(exc)})") from exc


def check_file(path: Path | str, *, validate: bool = False, known_sha1: str | None = None,
               max_seconds: float = MAX_SECONDS) -> dict:
    """What ingest records of one file, from plain arguments (a worker process needs nothing
    but this module): size, mtime_ns and sha1 (None when absent), header facts (sample_rate,
    channels, duration_s) and status 'ok', or status 'unreadable' with `error` (the reason)
    and `error_kind` ('unreadable' | 'silent' | 'too_short'); `validated` echoes `validate`.

    `validate`: decode the whole file (`load`) instead of `quick_check`. `known_sha1`: the
    hash stored for this file before; when the bytes still hash to it, the audio is not
    looked at and status is None, meaning "the stored facts still hold". `max_seconds`: the
    duration cap checked from the header. Never raises for a bad file: the reason is returned.
    """
    facts = {**_NO_FACTS, "status": "ok", "error": None, "error_kind": None, "validated": validate}
    try:
        return _check(Path(path), facts, validate, known_sha1, max_seconds)
    except AudioError as exc:
        return unusable(exc.reason, exc.kind, facts)
    except OSError as exc:  # e.g. a file we may not read, or one that vanished mid-check
        return unusable(f"cannot read file ({exc.strerror or type(exc).__name__})", "unreadable", facts)
    except Exception as exc:  # noqa: BLE001 - one file's surprise must not abort a whole ingest
        return unusable(f"check failed ({type(exc).__name__}: {_short(exc)})", "unreadable", facts)


_NO_FACTS = {"size": None, "mtime_ns": None, "sha1": None, "sample_rate": None, "channels": None,
             "duration_s": None}


def unusable(reason: str, kind: str, facts: dict | None = None) -> dict:
    """`check_file`'s answer for a file that cannot be used: `facts` (what was learnt of it
    before the problem showed: size, sha1, header) plus status 'unreadable' and the reason."""
    return {**_NO_FACTS, "validated": False, **(facts or {}), "status": "unreadable",
            "error": reason, "error_kind": kind}


def _check(path: Path, facts: dict, validate: bool, known_sha1: str | None,
           max_seconds: float) -> dict:
    """`check_file`'s work; fills `facts` in place, raising at the first problem."""
    st = _regular_file(path)  # before hashing: never open a FIFO or a directory
    facts.update(size=st.st_size, mtime_ns=st.st_mtime_ns, sha1=file_sha1(path))
    if known_sha1 is not None and facts["sha1"] == known_sha1:
        return {**facts, "status": None}
    info = check_header(probe(path), max_seconds)  # header facts are kept even when the body is bad
    facts.update(sample_rate=info.sample_rate, channels=info.channels, duration_s=info.duration_s)
    if validate:
        load(path, sr=None, max_seconds=max_seconds)  # full decode: corruption anywhere shows here
    else:
        quick_check(path, info=info)  # header + <= ~4 s strided read
    return facts


def check_files(items: list[tuple[str, str | None]], validate: bool = False,
                max_seconds: float = MAX_SECONDS) -> list[dict]:
    """`check_file` over (path, known_sha1) pairs: one worker task of ingest."""
    return [check_file(path, validate=validate, known_sha1=known_sha1, max_seconds=max_seconds) for path, known_sha1 in items]


def file_sha1(path: Path | str) -> str:
    """SHA-1 of the file's bytes: identical files are exact duplicates whatever their names."""
    return file_digest(path, "sha1")


def file_digest(path: Path | str, algorithm: str, chunk: int = 1 << 20) -> str:
    """Hex digest of the file's bytes by `algorithm` (a hashlib name), read in `chunk`-byte blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
