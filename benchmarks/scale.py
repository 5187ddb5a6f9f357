"""python -m benchmarks scale --tracks N [N ...] --seconds S: the pipeline at a real corpus' size.

Generates N short clips cheaply (16-bit WAV at 16 kHz, one folder per genre, so decoding resamples as it does for
real corpora; a random melody and noise), then runs each stage the way a
user does, as its own `python -m training` process under a file-descriptor limit
(`--ulimit-n`, default 256, below the 1,024 many desktops default to):

    ingest -> train (1 epoch, cnn_small, on a sample) -> analyze -> faults

Training takes `train --sample` of `--train-sample` tracks (default 5,000, capped at N): the
model is fitted on a subset while analyze (embeddings, maps, neighbours, Grad-CAM) and faults
run on all N tracks, so the stages that must scale are measured at full size within hours
rather than a day.

It prints, per stage, wall time, tracks/s, peak PSS and peak RSS (each summed over the whole
process tree, workers included, sampled from /proc), peak open files and the disk the
database, cache and run files use afterwards, then the total of the stages. PSS counts a page
shared by k processes 1/k in each, so the pages forked DataLoader and worker processes share
with their parent count once; the RSS sum counts them in every process. A stage that fails
prints its last error line and stops that corpus.

Several sizes (`--tracks 1000 3000 10000`) run one corpus after another, then print peak PSS
by stage and size with each stage's growth from the smallest size >= 10,000 (else the
smallest) to the largest; `--plot FILE.png` draws the same. Before a corpus of >= 50,000
tracks, a line estimates its time from the largest smaller corpus measured.

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
    # PSS summed over the process tree: a page shared by k processes counts 1/k in each, so a
    # forked DataLoader or worker process's pages shared with its parent count once in total.
    # None in results recorded before PSS was measured.
    peak_pss_gb: float | None = None
    trained_on: int | None = None  # the train stage: tracks of its --sample (None: recorded before samples)
    load: float | None = None  # 1-min load average as the stage ended: the table may show older stages


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


def _pss_bytes(pid: int, rss: int) -> int:
    """Proportional set size of one process (/proc/PID/smaps_rollup); its RSS where that file
    cannot be read (an older kernel, another user's process)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return rss


def _usage(root_pid: int) -> tuple[int, int, int]:
    """(RSS bytes, PSS bytes, open descriptors) summed over root_pid and all its descendants."""
    tree, todo, rss, pss, fds = _children(), [root_pid], 0, 0, 0
    page = os.sysconf("SC_PAGE_SIZE")
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, []))
        try:
            with open(f"/proc/{pid}/statm") as f:
                own = int(f.read().split()[1]) * page
            fds += len(os.listdir(f"/proc/{pid}/fd"))
        except (OSError, IndexError, ValueError):
            continue  # the process ended between listing and reading
        rss += own
        pss += _pss_bytes(pid, own)
    return rss, pss, fds


def measured(cmd: list[str], env: dict[str, str], log: Path) -> tuple[int, float, int, int, int]:
    """Run cmd; (exit status, seconds, peak RSS bytes, peak PSS bytes, peak open files) of its
    process tree (each peak on its own: RSS and PSS may peak at different samples)."""
    started = time.perf_counter()
    peak_rss = peak_pss = peak_fds = 0
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        while proc.poll() is None:
            rss, pss, fds = _usage(proc.pid)
            peak_rss, peak_pss, peak_fds = max(peak_rss, rss), max(peak_pss, pss), max(peak_fds, fds)
            time.sleep(SAMPLE_EVERY_S)
    return proc.returncode, time.perf_counter() - started, peak_rss, peak_pss, peak_fds


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


def stages(args, db: Path, corpus: Path, sample: int) -> list[tuple[str, list[str] | None]]:
    cli = [sys.executable, "-m", "training"]
    plan = [
        ("ingest", cli + ["ingest", "--dataset", "folder", "--root", str(corpus), "--name", "scale", "--db", str(db)]),
        # a sample: the model is fitted on `sample` tracks, analyze and faults cover every track
        ("train", cli + ["train", "--dataset", "scale", "--model", "cnn_small", "--epochs", "1",
                         "--split", "random", "--sample", str(sample), "--db", str(db)]),
        ("analyze", None),  # needs the run id the train stage made
        ("faults", cli + ["faults", "--dataset", "scale", "--db", str(db)]),
    ]
    return [(name, cmd) for name, cmd in plan if name not in args.skip]


STAGES = ("ingest", "train", "analyze", "faults")


def _work(args, tracks: int) -> Path:
    return Path(args.scale_root) / f"{tracks}x{args.seconds:g}"


def run(args) -> None:
    """Entry from `python -m benchmarks scale` (`--seconds` is the clip length here): each
    size of `--tracks` in turn, then the memory-vs-size table (and `--plot`) over them."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (args.ulimit_n, args.ulimit_n))  # inherited by every stage
    by_size = {tracks: run_corpus(args, tracks) for tracks in args.tracks}
    if len(by_size) > 1:
        print(memory_table(by_size))
    if args.plot:
        plot_memory(by_size, Path(args.plot), args.seconds)
        print(f"plot: {args.plot}")


def run_corpus(args, tracks: int) -> dict[str, StageResult]:
    """Generate (or reuse) one corpus, run its stages, print its table; its recorded results."""
    work = _work(args, tracks)
    corpus, db = work / "corpus", work / "scale.duckdb"
    made = generate(corpus, tracks, args.seconds, args.workers)
    print(f"corpus: {tracks} clips x {args.seconds:g} s in {corpus} "
          f"({disk_bytes(corpus) / 1e9:.2f} GB; generated in {made:.0f} s)")
    if args.fresh:
        for stale in (db, db.with_suffix(".duckdb.wal"), work / "cache", work / "runs"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    env = {**os.environ, paths.CACHE_ENV: str(work / "cache"), DTYPE_ENV: args.cache_dtype}
    record = work / "results.json"
    if args.fresh:
        record.unlink(missing_ok=True)
    results = _load_results(record)
    sample = min(args.train_sample, tracks)
    plan = stages(args, db, corpus, sample)
    if tracks >= ESTIMATE_FROM and (line := estimate(args, tracks, sample, [name for name, _ in plan])):
        print(line)
    for name, cmd in plan:
        if name == "analyze":
            cmd = [sys.executable, "-m", "training", "analyze", "--run", _latest_run(db), "--db", str(db)]
        log = work / f"{name}.log"
        status, seconds, rss, pss, fds = measured(cmd, env, log)
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        results = _save_results(record, StageResult(
            name, seconds, tracks / seconds, rss / 2**30, fds,
            disk_bytes(db, work / "cache", work / "runs") / 1e9,
            "ok" if status == 0 else f"exit {status}: {tail[0][:120]}", time.strftime("%Y-%m-%d %H:%M"),
            pss / 2**30, sample if name == "train" else None, os.getloadavg()[0]))
        print(f"{name}: {tail[0][:160]}")
        if status != 0:
            break
    shown = [results[name] for name in STAGES if name in results]
    _print_table(shown, args, tracks, sample)
    return {r.stage: r for r in shown}


ESTIMATE_FROM = 50_000  # a run this large takes hours: say how many before starting


def estimate(args, tracks: int, sample: int, planned: list[str]) -> str | None:
    """'estimated N min ...' for the planned stages at `tracks` (training on `sample`), from
    the largest smaller corpus of the same clip length with all of them recorded: each stage
    scaled linearly in the tracks it works on (the train stage: its sample); None without one."""
    measured_sizes = []
    for record in Path(args.scale_root).glob(f"*x{args.seconds:g}/results.json"):
        size = int(record.parent.name.split("x")[0])
        results = _load_results(record)
        if size < tracks and all(name in results and results[name].status == "ok" for name in planned):
            measured_sizes.append((size, [results[name] for name in planned]))
    if not measured_sizes:
        return None
    size, stages_then = max(measured_sizes, key=lambda item: item[0])
    then = sum(r.seconds for r in stages_then)
    now = sum(r.seconds * (sample / (r.trained_on or size) if r.stage == "train" else tracks / size)
              for r in stages_then)
    return (f"estimated {now / 60:.0f} min from the last measured size ({size:,} tracks: {then / 60:.0f} min "
            f"for {', '.join(planned)}; linear in tracks, the train stage in its sample)")


def _print_table(results: list[StageResult], args, tracks: int, sample: int) -> None:
    import pandas as pd

    if not results:
        print(f"\n{tracks} tracks x {args.seconds:g} s: no stage recorded yet")
        return
    print(f"\n{tracks} tracks x {args.seconds:g} s, trained on a sample of {sample}, ulimit -n {args.ulimit_n}, "
          f"{os.cpu_count()} CPUs, cache {args.cache_dtype}\n")
    frame = pd.DataFrame([vars(r) for r in results]).rename(columns={
        "seconds": "wall s", "tracks_per_s": "tracks/s", "peak_pss_gb": "peak PSS GiB", "peak_rss_gb": "peak RSS GiB",
        "peak_open_files": "peak open files", "disk_gb": "disk GB after"})
    columns = ["stage", "wall s", "tracks/s", "peak PSS GiB", "peak RSS GiB", "peak open files", "disk GB after",
               "status", "measured", "load"]
    print(frame[columns].to_markdown(index=False, floatfmt=".2f"))
    total = sum(r.seconds for r in results)
    print(f"\ntotal of the stages: {total:.0f} s ({total / 60:.1f} min)")


def memory_table(by_size: dict[int, dict[str, StageResult]]) -> str:
    """Peak PSS GiB per stage (rows) and corpus size (columns), then each stage's growth from
    the smallest size >= 10,000 (the issue's bar: 10k -> 100k within 20%), or from the
    smallest size when none is that large, to the largest."""
    import pandas as pd

    sizes = sorted(by_size)
    peaks = {size: [_pss(by_size[size].get(stage)) for stage in STAGES] for size in sizes}
    frame = pd.DataFrame({f"{size:,}": [_gib(v) for v in peaks[size]] for size in sizes}, index=list(STAGES))
    base = min((size for size in sizes if size >= 10_000), default=sizes[0])
    if base != sizes[-1]:
        frame[f"growth {base:,} -> {sizes[-1]:,}"] = [
            f"{top / low - 1:+.0%}" if low and top else "" for low, top in zip(peaks[base], peaks[sizes[-1]])]
    return "\npeak PSS GiB by stage and corpus size (tracks)\n\n" + frame.rename_axis("stage").to_markdown(
        disable_numparse=True, colalign=["left"] + ["right"] * len(frame.columns))


def _gib(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"  # a stage not measured (or failed): an empty cell


def _pss(result: StageResult | None) -> float | None:
    return result.peak_pss_gb if result is not None and result.status == "ok" else None


def plot_memory(by_size: dict[int, dict[str, StageResult]], path: Path, seconds: float) -> None:
    """PNG: peak PSS per stage against corpus size (log x), one line per stage."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    import matplotlib.pyplot as plt

    sizes = sorted(by_size)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for stage in STAGES:
        points = [(size, _pss(by_size[size].get(stage))) for size in sizes]
        points = [(size, gib) for size, gib in points if gib is not None]
        if points:
            ax.plot(*zip(*points), marker="o", label=stage)
    ax.set_xscale("log")
    ax.set_xlabel(f"tracks ({seconds:g}-s clips)")
    ax.set_ylabel("peak PSS, GiB (process tree)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Peak memory per stage vs corpus size")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scale")
    group.add_argument("--tracks", type=int, nargs="+", default=[1000],
                       help="clips to generate; several sizes run in turn, then a memory-vs-size table (scale)")
    group.add_argument("--train-sample", type=int, default=5000,
                       help="train on a sample of this many tracks (capped at the corpus), so analyze and faults "
                            "run on every track with a model fitted on a subset (default 5000)")
    group.add_argument("--plot", help="write a PNG of peak PSS per stage vs corpus size here (scale)")
    group.add_argument("--ulimit-n", type=int, default=256, help="open-file limit for every stage (scale)")
    group.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes generating clips")
    group.add_argument("--scale-root", default="data/bench/scale", help="where corpora and databases go")
    group.add_argument("--skip", nargs="*", default=[], choices=list(STAGES))
    group.add_argument("--fresh", action="store_true", help="drop the database and cache of an earlier run")
    group.add_argument("--cache-dtype", choices=sorted(DTYPES), default="float32",
                       help="waveform cache dtype (float16 halves its disk, as --cache-dtype does)")
