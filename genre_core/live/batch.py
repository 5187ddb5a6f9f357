"""`genrelens classify A B C ... | FOLDER [--engine ray] [--out-dir DIR]`: many files at once.

Files are classified in chunks by worker processes or Ray tasks (genre_core.engine); each
worker loads the run's model once (read-only from the database, on its CPU) and streams its
files exactly as `classify FILE` does. A file that cannot be classified becomes a row with its
reason; the others go on. With `--out-dir` each file's timeline is written there as
`<name>.csv` by the worker that made it (shared storage on a cluster); the driver prints one
summary row per file: its main genre, that genre's share of the non-silent time, and sections.

Timeline names never collide: the driver names every file's CSV before the work is spread
(`timeline_names`). The first file of a name keeps `<name>.csv`; a later one whose name is taken
(a/song.wav and b/song.wav, song.wav and song.flac, Song.wav and song.wav on a case-insensitive
disk) gets `<name>-2.csv`, `-3`, ..., a name no file of the batch has. The table's `timeline`
column and the summary line say which.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from genre_core.audio import AUDIO_EXTENSIONS, AudioError
from genre_core.engine import EngineOptions, chunked, map_chunks
from genre_core.live.streaming import classify_path
from genre_core.live.timeline import DEFAULT_SWITCH_PENALTY, SILENCE, check_timeline_target

FILES_PER_TASK = 4


@dataclass
class BatchResult:
    run_id: str
    table: pd.DataFrame  # path, genre, share, sections, seconds_audio, error (+ timeline with an out_dir)
    seconds: float
    renamed: list[str] = field(default_factory=list)  # timelines named <name>-N.csv: their name was taken

    def line(self) -> str:
        failed = int(self.table.error.notna().sum())
        audio_s = float(self.table.seconds_audio.fillna(0).sum())
        return (f"classified {len(self.table) - failed} of {len(self.table)} files ({audio_s:.0f} s of audio) "
                f"in {self.seconds:.1f} s with run {self.run_id}" + (f"; {failed} failed" if failed else "")
                + self._renamed())

    def _renamed(self) -> str:
        if not self.renamed:
            return ""
        shown = ", ".join(self.renamed[:3]) + (", ..." if len(self.renamed) > 3 else "")
        return f"; {len(self.renamed)} renamed (name taken by another file): {shown}"


def timeline_names(files: list[str]) -> list[str]:
    """The CSV name of each file's timeline, all different: `<stem>.csv`, or `<stem>-N.csv`
    (N = 2, 3, ...) when an earlier file of the batch has the stem. Names are compared
    case-insensitively (macOS and Windows disks are), and a -N name is never one that another
    file of the batch has as its own, so no file's timeline takes another's."""
    stems = [Path(f).stem for f in files]
    taken = {stem.casefold() for stem in stems}
    first: dict[str, int] = {}
    next_n: dict[str, int] = {}  # per stem, where the search for a free -N resumes (O(N) in all)
    names = []
    for i, stem in enumerate(stems):
        key = stem.casefold()
        if first.setdefault(key, i) != i:
            n = next_n.get(key, 2)
            while f"{key}-{n}" in taken:
                n += 1
            taken.add(f"{key}-{n}")
            next_n[key] = n + 1
            stem = f"{stem}-{n}"
        names.append(f"{stem}.csv")
    return names


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
    names = timeline_names(files) if out_dir is not None else [None] * len(files)
    if out_dir is not None:
        check_timeline_target(Path(out_dir) / names[0])  # a file, or no write access: one line, before the work
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    settings = (str(store.path), run_id, window_s, hop_s, method, switch_penalty,
                None if out_dir is None else str(out_dir))
    done = map_chunks(classify_chunk, chunked(list(zip(files, names)), FILES_PER_TASK), args=settings, options=engine)
    rows = [row for _, chunk in sorted(done, key=lambda item: item[0]) for row in chunk]  # the order given
    table = pd.DataFrame(rows)
    if out_dir is None:
        table = table.drop(columns="timeline")
    renamed = [name for path, name in zip(files, names) if name is not None and name != f"{Path(path).stem}.csv"]
    return BatchResult(run_id, table, time.perf_counter() - started, renamed)


def classify_chunk(files: list[tuple[str, str | None]], db_path: str, run_id: str, window_s, hop_s, method,
                   switch_penalty, out_dir: str | None) -> list[dict]:
    """Worker: one summary row per (file, timeline name) (and the timeline under out_dir)."""
    import torch

    from genre_core.train.inference import worker_run

    torch.set_num_threads(1)  # the workers are the parallelism
    loaded = worker_run(db_path, run_id)
    rows = []
    for path, name in files:
        try:
            out = None if out_dir is None else Path(out_dir) / name
            result = classify_path(loaded, path, window_s=window_s, hop_s=hop_s, method=method,
                                   switch_penalty=switch_penalty, out=out, progress=False)
            rows.append({"path": path, **_summary(result.sections), "seconds_audio": result.seconds_audio,
                         "timeline": name, "error": None})
        except (AudioError, ValueError, OSError) as exc:  # this file only; the others go on
            rows.append({"path": path, "genre": None, "share": None, "sections": None, "seconds_audio": None,
                         "timeline": None, "error": str(exc)})
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
