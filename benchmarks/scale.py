"""python -m benchmarks scale --tracks N --seconds S: the pipeline at a real corpus' size.

Generates N short clips cheaply (16-bit WAV at 16 kHz, one folder per genre, so decoding resamples as it does for
real corpora; a random melody and noise), then runs each stage the way a
user does, as its own `python -m training` process under a file-descriptor limit
(`--ulimit-n`, default 256, below the 1,024 many desktops default to):

    ingest -> train (1 epoch, cnn_small) -> analyze -> faults

and prints, per stage, wall time, tracks/s, peak RSS and peak open files of the whole
process tree (workers included, sampled from /proc), and the disk the database, cache and
run files use afterwards. A stage that fails prints its last error line and stops the run.

Each finished stage is also recorded in `<scale root>/<N>x<S>/results.json`, and the table
shows every recorded stage of that corpus: a 100,000-track run whose stages take hours can be
finished across several invocations (`--skip ingest train`), and the table says when each
stage was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from genre_core import paths
from genre_core.features.cache import DTYPE_ENV, DTYPES

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
SOURCE_SR = 16000
SAMPLE_EVERY_S = 0.05


@dataclass
class StageResult:
    stage: str
    seconds: float
    tracks_per_s: float
    peak_rss_gb: float
    peak_open_files: int
    disk_gb: float
    status: str
    measured: str = ""  # local time the stage finished


def _load_results(path: Path) -> dict[str, StageResult]:
    if not path.is_file():
        return {}
    return {name: StageResult(**row) for name, row in json.loads(path.read_text()).items()}


def _save_results(path: Path, stage: StageResult) -> dict[str, StageResult]:
    """Record one stage's result, keeping every other stage as the file has it now: stages of
    one corpus may run in separate invocations (`--skip`), even at the same time."""
    results = {**_load_results(path), stage.stage: stage}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({name: vars(r) for name, r in results.items()}, indent=1))
    os.replace(tmp, path)
    return results


# --- corpus -----------------------------------------------------------------------------

def _write_clip(job: tuple[Path, int, int, float]) -> None:
    path, genre_index, seed, seconds = job
    rng = np.random.default_rng(seed)
    n, hop = int(seconds * SOURCE_SR), int(SOURCE_SR * 60 / (70 + 10 * genre_index) / 2)  # eighth notes
    # A random melody in a genre-specific register over a genre tempo, with noise hits: every
    # clip is different audio (no false duplicates for the fingerprinter), a CNN has something
    # to learn, and 100,000 clips take minutes to write.
    notes = 440 * 2 ** ((rng.integers(40, 64, size=n // hop + 1) + 2 * genre_index - 69) / 12)
    phase = 2 * np.pi * np.cumsum(np.repeat(notes, hop)[:n]) / SOURCE_SR
    decay = np.exp(-np.tile(np.arange(hop), n // hop + 1)[:n] / (0.15 * SOURCE_SR))
    y = decay * (np.sin(phase) + 0.3 * np.sin(2 * phase)) + (0.02 + 0.01 * genre_index) * rng.standard_normal(n)
    sf.write(path, (0.5 * y / np.abs(y).max()).astype(np.float32), SOURCE_SR, subtype="PCM_16")


def generate(root: Path, n_tracks: int, seconds: float, workers: int) -> float:
    """N clips under root/<genre>/<genre>.<i>.flac (reused when already complete); seconds taken."""
    marker = root / f".complete-{n_tracks}x{seconds:g}"
    if marker.is_file():
        return 0.0
    started = time.perf_counter()
    jobs = []
    for i in range(n_tracks):
        genre = GENRES[i % len(GENRES)]
        path = root / genre / f"{genre}.{i // len(GENRES):06d}.wav"
        if not path.is_file():
            jobs.append((path, i % len(GENRES), i, seconds))
    for genre in GENRES:
        (root / genre).mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool:
        for _ in tqdm(pool.map(_write_clip, jobs, chunksize=64), total=len(jobs), desc="generate clips",
                      unit="clip", mininterval=2):
            pass
    marker.touch()
    return time.perf_counter() - started


# --- measuring a process tree -------------------------------------------------------------

def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(parent, []).append(int(name))
    return tree


def _usage(root_pid: int) -> tuple[int, int]:
    """(RSS bytes, open descriptors) summed over root_pid and all its descendants."""
    tree, todo, rss, fds = _children(), [root_pid], 0, 0
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, []))
        try:
            with open(f"/proc/{pid}/statm") as f:
                rss += int(f.read().split()[1]) * page
            fds += len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, IndexError, ValueError):
            pass  # the process ended between listing and reading
    return rss, fds


def measured(cmd: list[str], env: dict[str, str], log: Path) -> tuple[int, float, int, int]:
    """Run cmd; (exit status, seconds, peak RSS bytes, peak open files) of its process tree."""
    started = time.perf_counter()
    peak_rss = peak_fds = 0
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        while proc.poll() is None:
            rss, fds = _usage(proc.pid)
            peak_rss, peak_fds = max(peak_rss, rss), max(peak_fds, fds)
            time.sleep(SAMPLE_EVERY_S)
    return proc.returncode, time.perf_counter() - started, peak_rss, peak_fds


def disk_bytes(*folders: Path) -> int:
    total = 0
    for folder in folders:
        if folder.is_file():
            total += folder.stat().st_size
        for base, _, files in os.walk(folder):
            for name in files:
                try:
                    total += os.lstat(os.path.join(base, name)).st_size
                except OSError:
                    pass
    return total


# --- the stages ---------------------------------------------------------------------------

def _latest_run(db: Path) -> str:
    from genre_core.store import open_store
    from genre_core.train.inference import latest_complete_run

    return latest_complete_run(open_store(db, create=False))


def stages(args, db: Path, corpus: Path) -> list[tuple[str, list[str] | None]]:
    cli = [sys.executable, "-m", "training"]
    plan = [
        ("ingest", cli + ["ingest", "--dataset", "folder", "--root", str(corpus), "--name", "scale", "--db", str(db)]),
        ("train", cli + ["train", "--dataset", "scale", "--model", "cnn_small", "--epochs", "1",
                         "--split", "random", "--db", str(db)]),
        ("analyze", None),  # needs the run id the train stage made
        ("faults", cli + ["faults", "--dataset", "scale", "--db", str(db)]),
    ]
    return [(name, cmd) for name, cmd in plan if name not in args.skip]


def run(args) -> None:
    """Entry from `python -m benchmarks scale` (`--seconds` is the clip length here)."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (args.ulimit_n, args.ulimit_n))  # inherited by every stage
    work = Path(args.scale_root) / f"{args.tracks}x{args.seconds:g}"
    corpus, db = work / "corpus", work / "scale.duckdb"
    made = generate(corpus, args.tracks, args.seconds, args.workers)
    print(f"corpus: {args.tracks} clips x {args.seconds:g} s in {corpus} "
          f"({disk_bytes(corpus) / 1e9:.2f} GB; generated in {made:.0f} s)")
    if args.fresh:
        for stale in (db, db.with_suffix(".duckdb.wal"), work / "cache", work / "runs"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    env = {**os.environ, paths.CACHE_ENV: str(work / "cache"), DTYPE_ENV: args.cache_dtype}
    record = work / "results.json"
    if args.fresh:
        record.unlink(missing_ok=True)
    results = _load_results(record)
    for name, cmd in stages(args, db, corpus):
        if name == "analyze":
            cmd = [sys.executable, "-m", "training", "analyze", "--run", _latest_run(db), "--db", str(db)]
        log = work / f"{name}.log"
        status, seconds, rss, fds = measured(cmd, env, log)
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        results = _save_results(record, StageResult(
            name, seconds, args.tracks / seconds, rss / 2**30, fds,
            disk_bytes(db, work / "cache", work / "runs") / 1e9,
            "ok" if status == 0 else f"exit {status}: {tail[0][:120]}", time.strftime("%Y-%m-%d %H:%M")))
        print(f"{name}: {tail[0][:160]}")
        if status != 0:
            break
    order = [name for name, _ in stages(argparse.Namespace(skip=[]), db, corpus)]
    _print_table([results[name] for name in order if name in results], args)


def _print_table(results: list[StageResult], args) -> None:
    import pandas as pd

    print(f"\n{args.tracks} tracks x {args.seconds:g} s, ulimit -n {args.ulimit_n}, {os.cpu_count()} CPUs, "
          f"cache {args.cache_dtype}\n")
    frame = pd.DataFrame([vars(r) for r in results]).rename(columns={
        "seconds": "wall s", "tracks_per_s": "tracks/s", "peak_rss_gb": "peak RSS GiB",
        "peak_open_files": "peak open files", "disk_gb": "disk GB after"})
    print(frame.to_markdown(index=False, floatfmt=".2f"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scale")
    group.add_argument("--tracks", type=int, default=1000, help="clips to generate (scale)")
    group.add_argument("--ulimit-n", type=int, default=256, help="open-file limit for every stage (scale)")
    group.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes generating clips")
    group.add_argument("--scale-root", default="data/bench/scale", help="where corpora and databases go")
    group.add_argument("--skip", nargs="*", default=[], choices=["ingest", "train", "analyze", "faults"])
    group.add_argument("--fresh", action="store_true", help="drop the database and cache of an earlier run")
    group.add_argument("--cache-dtype", choices=sorted(DTYPES), default="float32",
                       help="waveform cache dtype (float16 halves its disk, as --cache-dtype does)")
