"""Classify recordings of any length (DJ sets, albums, live input) window by window.

Audio arrives in blocks of any size; a fixed-size ring buffer turns them into overlapping
windows, which are batched through the model. Memory is O(window + batch), never O(stream), so
a 2-hour file is never held whole, and the results do not depend on how the stream was cut into
blocks. `classify_file` / `classify_array` add smoothing and sections (genre_core.live.timeline).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from genre_core.audio import SILENCE_DBFS, AudioError, check_header, probe, resample, stream_blocks, to_mono
from genre_core.live.timeline import (DEFAULT_SWITCH_PENALTY, Section, WindowPrediction, check_timeline_target,
                                     segment, write_timeline)
from genre_core.workers import idle_cores

__all__ = ["RingBuffer", "StreamingClassifier", "window_predictor", "WindowPrediction",
           "ClassifyResult", "classify_stream", "classify_blocks", "classify_file", "classify_array"]

Predictor = Callable[[np.ndarray], np.ndarray]  # (B, L) float32 audio -> (B, C) probabilities
_SILENT_PEAK = 10.0 ** (SILENCE_DBFS / 20.0)  # linear amplitude of SILENCE_DBFS


class RingBuffer:
    """The most recent `capacity` samples of a stream, addressed by absolute sample index.

    Every sample is stored twice (at i and i + capacity of a 2 * capacity array), so any span of
    up to `capacity` recent samples is one contiguous slice: windows are read as views, with no
    wrap-around copy. The array is allocated once and never grows.
    """

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self.data = np.zeros(2 * self.capacity, dtype=np.float32)
        self.end = 0  # absolute index one past the newest sample

    def write(self, x: np.ndarray) -> None:
        """Append (n,) samples, n <= capacity; the oldest samples are overwritten."""
        n, cap = len(x), self.capacity
        if n > cap:
            raise ValueError(f"block of {n} samples exceeds the ring's capacity {cap}")
        pos = self.end % cap
        first = min(n, cap - pos)
        for offset in (0, cap):
            self.data[offset + pos: offset + pos + first] = x[:first]
            self.data[offset: offset + n - first] = x[first:]
        self.end += n

    def read(self, start: int, length: int) -> np.ndarray:
        """(length,) view of samples [start, start + length), which must still be held."""
        if start < self.end - self.capacity or start + length > self.end:
            held = (self.end - self.capacity, self.end)
            raise IndexError(f"samples [{start}, {start + length}) are not all held (held: {held})")
        pos = start % self.capacity
        return self.data[pos: pos + length]


class StreamingClassifier:
    """Feed audio blocks, get a `WindowPrediction` for every window they complete.

    Windows of `window_s` start every `hop_s` seconds (sample-exact: window k starts at sample
    k * round(hop_s * sr)), so the output is identical whatever the block sizes. Windows whose
    peak is below SILENCE_DBFS are not sent to the model; they come back `silent` with NaN
    probabilities. `flush()` ends the stream. `predict` receives (b, L) float32 views with
    b <= batch that are only valid during the call.
    """

    def __init__(self, predict: Predictor, sr: int, window_s: float = 3.0, hop_s: float = 1.5,
                 batch: int = 16, n_classes: int | None = None):
        self.length, self.hop = int(round(window_s * sr)), int(round(hop_s * sr))
        if self.length < 1 or self.hop < 1 or batch < 1:
            raise ValueError(f"need window_s, hop_s > 0 at sr={sr} and batch >= 1 "
                             f"(got {window_s}, {hop_s}, {batch})")
        self.predict, self.sr, self.n_classes = predict, sr, n_classes
        # Reading a window never needs more than the window plus what one write adds before
        # the windows it completes are read; feed() writes at most the free space at a time.
        self.ring = RingBuffer(self.length + self.hop)
        self._batch = np.zeros((batch, self.length), dtype=np.float32)  # (B, L)
        self._rows = 0  # filled rows of _batch
        self._pending: list[tuple[int, int, bool]] = []  # (start, end, silent) samples, in order
        self._next = 0  # absolute start sample of the next window
        self._last_end = 0  # end sample of the last queued window
        self._closed = False

    @property
    def seconds_fed(self) -> float:
        return self.ring.end / self.sr

    def feed(self, block: np.ndarray) -> list[WindowPrediction]:
        """(n,) samples at `sr` -> predictions of the windows completed by them, in order."""
        if self._closed:
            raise RuntimeError("feed() after flush(): start a new StreamingClassifier")
        block = np.asarray(block)
        if block.ndim != 1:
            raise ValueError(f"blocks must be mono (n,) arrays, got shape {block.shape}")
        out: list[WindowPrediction] = []
        pos = 0
        while pos < block.size:
            free = self.ring.capacity - max(0, self.ring.end - self._next)
            chunk = block[pos: pos + free]
            self.ring.write(chunk)
            pos += chunk.size
            while (end := self._next + self.length) <= self.ring.end:
                self._queue(self.ring.read(self._next, self.length), self._next, end, out)
                self._next += self.hop
        self._run_batch(out)
        return out

    def flush(self) -> list[WindowPrediction]:
        """End of stream: a last, zero-padded window over the tail, if the tail holds at least
        half a window of audio and audio that no earlier window covered."""
        out: list[WindowPrediction] = []
        tail = self.ring.end - self._next
        if not self._closed and 2 * tail >= self.length and self.ring.end > self._last_end:
            window = np.zeros(self.length, dtype=np.float32)
            window[:tail] = self.ring.read(self._next, tail)
            self._queue(window, self._next, self.ring.end, out)
        self._closed = True
        self._run_batch(out)
        return out

    def _queue(self, window: np.ndarray, start: int, end: int, out: list) -> None:
        silent = float(np.max(np.abs(window))) < _SILENT_PEAK
        if not silent:
            self._batch[self._rows] = window
            self._rows += 1
        self._pending.append((start, end, silent))
        self._last_end = end
        if self._rows == len(self._batch):
            self._run_batch(out)

    def _run_batch(self, out: list) -> None:
        probs = None
        if self._rows:
            probs = np.asarray(self.predict(self._batch[: self._rows]), dtype=np.float64)  # (b, C)
            if probs.ndim != 2 or len(probs) != self._rows:
                raise ValueError(f"predict returned shape {probs.shape} for {self._rows} windows")
            self.n_classes = probs.shape[1]
        elif self._pending and self.n_classes is None:
            # Only silence so far: ask the model once how many classes it has.
            self.n_classes = np.asarray(self.predict(self._batch[:1] * 0)).shape[1]
        row = 0
        for start, end, silent in self._pending:
            if silent:
                p = np.full(self.n_classes, np.nan)
            else:
                p, row = probs[row], row + 1
            out.append(WindowPrediction(start / self.sr, end / self.sr, p, silent))
        self._pending.clear()
        self._rows = 0


def window_predictor(loaded_run, threads: int | None = None) -> Predictor:
    """The run's batched predictor: (B, L) windows -> (B, C) probabilities, under inference
    mode (no autograd bookkeeping at all) and on `threads` torch threads, restored after each
    call so the rest of the process is unaffected.

    By default as many threads as the machine has idle cores when the predictor is made
    (workers.idle_cores), never more than the process allows itself (torch.get_num_threads():
    batch workers pin one, as they are the parallelism): on a busy machine a second thread spin-waits for a descheduled
    partner (2-core box under load ~15: handcrafted baselines 450-480 ms/window wall with one
    thread, 1750-1915 ms with two), while on an idle one the second core helps most models
    (idle, untrained, one vs two threads: musicnn_probe 49-52 -> 29-31 ms/window, crnn
    13.3-14.1 -> 11.3-11.5, logreg 15.2-15.5 -> 14.2-14.3; cnn_small 6.7-6.9 -> 7.1-7.2).
    """
    import torch

    allowed = torch.get_num_threads()
    threads = threads or (1 if allowed == 1 else min(allowed, idle_cores()))

    def predict(windows: np.ndarray) -> np.ndarray:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                return loaded_run.predict_windows(windows)[0]
        finally:
            torch.set_num_threads(before)
    return predict


def classify_blocks(blocks: Iterable[np.ndarray], loaded_run, *, window_s: float | None = None,
                    hop_s: float = 1.5, batch: int = 16) -> Iterator[WindowPrediction]:
    """Mono float32 blocks at `loaded_run.sr` -> window predictions as they complete.
    `window_s` defaults to the window the run was trained on."""
    classifier = StreamingClassifier(window_predictor(loaded_run), loaded_run.sr, window_s or loaded_run.window_s,
                                     hop_s, batch, n_classes=len(loaded_run.classes))
    for block in blocks:
        yield from classifier.feed(block)
    yield from classifier.flush()


def classify_stream(path: Path | str, loaded_run, *, window_s: float | None = None, hop_s: float = 1.5,
                    block_s: float = 10.0, batch: int = 16) -> Iterator[WindowPrediction]:
    """Window predictions of an audio file of any length, decoded `block_s` seconds at a time.
    Raises AudioError (naming the file) when it cannot be decoded or holds NaN/inf samples."""
    return classify_blocks(_checked(path, stream_blocks(path, loaded_run.sr, block_s)),
                           loaded_run, window_s=window_s, hop_s=hop_s, batch=batch)


def _checked(path, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    for block in blocks:
        if not np.isfinite(block).all():
            raise AudioError(path, "contains NaN or infinite samples")
        yield block


@dataclass
class ClassifyResult:
    run_id: str
    classes: list[str]
    predictions: list[WindowPrediction]
    sections: list[Section]
    seconds_audio: float
    seconds_wall: float  # classification only (decode + model + smoothing), not model loading

    def summary(self) -> str:
        genres = len({s.genre for s in self.sections})
        speed = self.seconds_audio / max(self.seconds_wall, 1e-9)
        return (f"{len(self.sections)} sections ({genres} genres) over {self.seconds_audio:.0f} s of "
                f"audio in {self.seconds_wall:.1f} s ({speed:.0f}x real time), run {self.run_id}")


def _classify(blocks: Iterable[np.ndarray], loaded_run, name: str, total_s: float, *, window_s, hop_s,
              method, switch_penalty, out, progress) -> ClassifyResult:
    """Shared tail of classify_file / classify_array: stream, check, segment, write."""
    started = time.perf_counter()
    fed = [0]  # samples, counted as the blocks go by

    def counted():
        with tqdm(total=total_s, unit="s", desc="classify", disable=not progress,
                  bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]") as bar:
            for block in blocks:
                fed[0] += len(block)
                bar.update(len(block) / loaded_run.sr)
                yield block

    predictions = list(classify_blocks(counted(), loaded_run, window_s=window_s, hop_s=hop_s))
    seconds = fed[0] / loaded_run.sr
    if not predictions:
        need = 0.5 * (window_s or loaded_run.window_s)
        raise ValueError(f"{name}: too short to classify ({seconds:.2f} s < {need:.2f} s, half a window)")
    if all(p.silent for p in predictions):
        raise ValueError(f"{name}: no audible audio (peak below {SILENCE_DBFS:.0f} dBFS)")
    sections = segment(predictions, loaded_run.classes, method=method, switch_penalty=switch_penalty,
                       end_s=seconds)
    if out is not None:
        write_timeline(predictions, sections, loaded_run.classes, out=out)
    return ClassifyResult(loaded_run.run_id, list(loaded_run.classes), predictions, sections, seconds,
                          time.perf_counter() - started)


def classify_file(store, path: Path | str, *, run_id: str | None = None, window_s: float | None = None,
                  hop_s: float = 1.5, method: str = "viterbi",
                  switch_penalty: float = DEFAULT_SWITCH_PENALTY, out: Path | str | None = None,
                  progress: bool = True, device: str = "auto") -> ClassifyResult:
    """Genre timeline of an audio file of any length with a complete run (default: the latest).

    Streams the file (never loaded whole), smooths with `method` ("viterbi" | "median" |
    "none"), and writes the timeline to `out` (.csv or .json) when given. Raises AudioError for
    undecodable files, ValueError for silent or too-short ones.
    """
    from genre_core.train.inference import load_run

    if out is not None:
        out = check_timeline_target(out)  # before the work, not after it
    # A forged header (1 Hz, days of audio) is refused here, in milliseconds, before a model loads.
    info = check_header(probe(path))
    loaded = load_run(store, run_id, device=device)
    return classify_path(loaded, path, window_s=window_s, hop_s=hop_s, method=method,
                         switch_penalty=switch_penalty, out=out, progress=progress, info=info)


def classify_path(loaded_run, path: Path | str, *, window_s: float | None = None, hop_s: float = 1.5,
                  method: str = "viterbi", switch_penalty: float = DEFAULT_SWITCH_PENALTY,
                  out: Path | str | None = None, progress: bool = True, info=None) -> ClassifyResult:
    """Timeline of a file with an already loaded run: header checked (unless `info` says it
    was), then streamed in 10-s blocks. Serves `classify FILE` and the batch workers."""
    info = info or check_header(probe(path))
    blocks = _checked(path, stream_blocks(path, loaded_run.sr, 10.0))
    return _classify(blocks, loaded_run, str(path), info.duration_s, window_s=window_s, hop_s=hop_s,
                     method=method, switch_penalty=switch_penalty, out=out, progress=progress)


def classify_array(loaded_run, y: np.ndarray, sr: int, *, window_s: float | None = None,
                   hop_s: float = 1.5, method: str = "viterbi",
                   switch_penalty: float = DEFAULT_SWITCH_PENALTY, out: Path | str | None = None,
                   name: str = "upload", block_s: float = 10.0) -> ClassifyResult:
    """`classify_file` for audio already in memory (the app's uploads): (N,) or (N, channels)
    samples at `sr`, resampled to the run's rate and fed through the same streaming path."""
    y = np.asarray(y, dtype=np.float32)
    if not np.isfinite(y).all():
        raise ValueError(f"{name}: contains NaN or infinite samples")
    y = resample(to_mono(y), sr, loaded_run.sr)
    step = max(1, int(block_s * loaded_run.sr))
    blocks = (y[i: i + step] for i in range(0, len(y), step))
    return _classify(blocks, loaded_run, name, len(y) / loaded_run.sr, window_s=window_s, hop_s=hop_s,
                     method=method, switch_penalty=switch_penalty, out=out, progress=False)
