"""`genrelens classify A B C ... | FOLDER [--engine ray] [--out-dir DIR]`: many files at once.

Files are classified in chunks by worker processes or Ray tasks (genre_core.engine); each
worker loads the run's model once (read-only from the database, on its CPU) and streams its
files exactly as `classify FILE` does. A file that cannot be classified becomes a row with its
reason; the others go on. With `--out-dir` each file's timeline is written there as
`<name>.csv` by the worker that made it (shared storage on a cluster); the driver prints one
summary row per file: its main genre, that genre's share of the non-silent time, and sections.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from genre_core.audio import AUDIO_EXTENSIONS, AudioError
from genre_core.engine import EngineOptions, chunked, map_chunks
from genre_core.live.streaming import classify_path
from genre_core.live.timeline import DEFAULT_SWITCH_PENALTY, SILENCE

FILES_PER_TASK = 4


@dataclass
class BatchResult:
    run_id: str
    table: pd.DataFrame  # path, genre, share, sections, seconds_audio, error
    seconds: float

    def line(self) -> str:
        failed = int(self.table.error.notna().sum())
        audio_s = float(self.table.seconds_audio.fillna(0).sum())
        return (f"classified {len(self.table) - failed} of {len(self.table)} files ({audio_s:.0f} s of audio) "
                f"in {self.seconds:.1f} s with run {self.run_id}" + (f"; {failed} failed" if failed else ""))


def expand(paths: list[Path]) -> list[Path]:
    """Files as given; folders as every audio file under them (sorted)."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
        else:
            out.append(path)
    return out


def classify_many(store, paths: list[Path], *, run_id: str | None = None, out_dir: Path | None = None,
                  engine: EngineOptions = EngineOptions(), window_s: float | None = None, hop_s: float = 1.5,
                  method: str = "viterbi", switch_penalty: float = DEFAULT_SWITCH_PENALTY) -> BatchResult:
    from genre_core.train.inference import latest_complete_run

    started = time.perf_counter()
    run_id = run_id or latest_complete_run(store)
    store.run(run_id)  # an unknown run fails here, once, not in every worker
    files = [str(p) for p in expand(paths)]
    if not files:
        raise ValueError("no audio files to classify (give files or folders holding .wav/.mp3/...)")
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    settings = (str(store.path), run_id, window_s, hop_s, method, switch_penalty,
                None if out_dir is None else str(out_dir))
    rows = [row for _, chunk in map_chunks(classify_chunk, chunked(files, FILES_PER_TASK), args=settings, options=engine)
            for row in chunk]
    table = pd.DataFrame(rows).set_index("path").reindex(files).reset_index()  # the order given
    return BatchResult(run_id, table, time.perf_counter() - started)


def classify_chunk(files: list[str], db_path: str, run_id: str, window_s, hop_s, method, switch_penalty,
                   out_dir: str | None) -> list[dict]:
    """Worker: one summary row per file (and its timeline file under out_dir)."""
    import torch

    from genre_core.train.inference import worker_run

    torch.set_num_threads(1)  # the workers are the parallelism
    loaded = worker_run(db_path, run_id)
    rows = []
    for path in files:
        try:
            out = None if out_dir is None else Path(out_dir) / f"{Path(path).stem}.csv"
            result = classify_path(loaded, path, window_s=window_s, hop_s=hop_s, method=method,
                                   switch_penalty=switch_penalty, out=out, progress=False)
            rows.append({"path": path, **_summary(result.sections), "seconds_audio": result.seconds_audio,
                         "error": None})
        except (AudioError, ValueError, OSError) as exc:  # this file only; the others go on
            rows.append({"path": path, "genre": None, "share": None, "sections": None, "seconds_audio": None,
                         "error": str(exc)})
    return rows


def _summary(sections) -> dict:
    """The genre holding most of the non-silent time, its share, and the section count."""
    time_by_genre: dict[str, float] = defaultdict(float)
    for s in sections:
        if s.genre != SILENCE:
            time_by_genre[s.genre] += s.end_s - s.start_s
    if not time_by_genre:
        return {"genre": SILENCE, "share": 1.0, "sections": len(sections)}
    genre = max(time_by_genre, key=time_by_genre.get)
    return {"genre": genre, "share": time_by_genre[genre] / sum(time_by_genre.values()),
            "sections": len(sections)}
