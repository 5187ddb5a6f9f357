"""python -m benchmarks gpu (= make bench-gpu): what one CUDA GPU buys, each step beside the
same step on this machine's CPU, from the checkout and the demo corpus alone.

Steps, each run as the user runs it (`python -m training ...` in a subprocess, the command
printed), on `cuda` and then on `cpu`:

- train cnn, resnet and musicnn_finetune (bf16 autocast on CUDA): training windows per second
  over the run's epochs (epochs.seconds, which include each epoch's validation pass);
- the same cnn training launched data-parallel by torchrun with one process (NCCL on CUDA,
  gloo on CPU): what the DDP path costs or gains on one device;
- analyze of the cuda cnn run (embeddings, maps, Grad-CAM of GRADCAM_TRACKS test tracks):
  tracks per second, from analyze's own timing;
- classify of a mix of demo test clips played back to back (60 minutes on CUDA): windows per
  second, from classify's own timing (model loading excluded) and its per-window timeline.

The CPU side is sized small (CPU_SIZES: fewer epochs, a shorter mix); windows/s (tracks/s for
analyze) is the figure that compares. Designed to finish in under 8 minutes on one datacenter
GPU with its host's cores. A failed step is reported with its command's last error line and
the others still run (exit 1). Without CUDA it refuses in one line, exit 2, before any work;
`--plan` prints the steps and their commands without running them (no CUDA needed).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pandas as pd
import soundfile as sf
import torch

from benchmarks.ratios import load_line
from genre_core import paths
from genre_core.audio import stream_blocks
from genre_core.features.spectral import FeatureConfig
from genre_core.runs.demo import DemoConfig
from genre_core.store import open_store
from genre_core.train.config import TrainConfig
from genre_core.train.distributed import torchrun_command
from genre_core.train.fit import training_windows

REFUSAL = "error: benchmarks gpu needs a CUDA device; torch.cuda.is_available() is False on this machine"
ROOT = Path("data/bench/gpu")  # default home of its database, demo corpus and mixes
TRAINED = ("cnn", "resnet", "musicnn_finetune")
GRADCAM_TRACKS = 16  # explained tracks per analyze, on both devices: the same work either side
DATASET = "demo"


@dataclass(frozen=True)
class Sizes:
    epochs: int
    mix_minutes: float


# CUDA: enough epochs that the first (cuDNN autotune, allocator) does not dominate; CPU: one
# epoch and a 15-minute mix, so the comparison costs minutes, not the hour a CPU would need.
# The mix is whole rounds of genre sections, 10 genres x 6 clips x 15 s = 15 minutes a round:
# a shorter one would be rounded up to 15 anyway.
GPU_SIZES = Sizes(epochs=4, mix_minutes=60)
CPU_SIZES = Sizes(epochs=1, mix_minutes=15)


@dataclass
class Bench:
    """Where the steps run: the database (dataset `dataset` ingested), a folder for the mixes."""

    db: Path
    work: Path
    dataset: str = DATASET
    split: str = DemoConfig.split  # the demo's protocol (artist); tests' toy corpus has no artists
    commands: list[str] = field(default_factory=list)  # every command run, in order

    def cli(self, cmd: list[str]) -> subprocess.CompletedProcess:
        """Run `python -m training ARGV` (or a full command, such as torchrun's); a failure
        raises with the command's last line of stderr."""
        if cmd[0] != sys.executable:
            cmd = [sys.executable, "-m", "training", *cmd]
        self.commands.append(shown(cmd))
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise RuntimeError(f"{shown(cmd)} exited with status {done.returncode}: {last}")
        return done


@dataclass
class Measure:
    step: str
    device: str
    count: int  # units processed
    unit: str
    seconds: float
    run_id: str = ""  # the run a train step made

    @property
    def rate(self) -> float:
        return self.count / self.seconds


def shown(cmd: list[str]) -> str:
    """The command as a user would type it (the interpreter as `python`)."""
    return " ".join(["python", *cmd[1:]] if cmd and cmd[0] == sys.executable else cmd)


def _summary(done: subprocess.CompletedProcess) -> str:
    return done.stdout.strip().splitlines()[-1]


def _text(pattern: str, line: str) -> str:
    """The first group of `pattern` in a command's summary line (a changed line fails loudly)."""
    found = re.search(pattern, line)
    if found is None:
        raise RuntimeError(f"no {pattern!r} in the command's summary: {line[:200]}")
    return found.group(1)


def _number(pattern: str, line: str) -> float:
    return float(_text(pattern, line))


# --- steps: each takes the device, so a CPU test runs the code the GPU run runs -------------

def train_argv(bench: Bench, model: str, device: str, epochs: int) -> list[str]:
    return ["train", "--dataset", bench.dataset, "--model", model, "--split", bench.split,
            "--epochs", str(epochs), "--device", device, "--seed", "0", "--db", str(bench.db)]


def analyze_argv(bench: Bench, run_id: str, device: str) -> list[str]:
    return ["analyze", "--run", run_id, "--device", device, "--gradcam-limit", str(GRADCAM_TRACKS),
            "--db", str(bench.db)]


def classify_argv(bench: Bench, mix: Path, run_id: str, device: str) -> list[str]:
    return ["classify", str(mix), "--run", run_id, "--device", device,
            "--out", str(bench.work / f"timeline-{device}.csv"), "--db", str(bench.db)]


def train(bench: Bench, model: str, device: str, epochs: int, *, ddp: bool = False) -> Measure:
    """Train `model` for `epochs` on `device` (ddp: under torchrun, one process): training
    windows/s over its epochs, with the run's id."""
    argv = train_argv(bench, model, device, epochs)
    done = bench.cli(torchrun_command(1, argv) if ddp else argv)
    if ddp and "data-parallel: 1 process(es)" not in done.stderr:
        raise RuntimeError(f"{bench.commands[-1]} trained without joining a process group")
    run_id = _text(r"^run (\S+):", _summary(done))
    store = open_store(bench.db, create=False)
    seconds = store.query("SELECT seconds FROM epochs WHERE run_id = ?", [run_id]).seconds
    windows = training_windows(store, TrainConfig.from_dict(store.run(run_id)["config"]))
    name = f"train {model}" + (" (torchrun, 1 process)" if ddp else "")
    return Measure(name, device, windows * len(seconds), "training windows", float(seconds.sum()), run_id)


def analyze(bench: Bench, run_id: str, device: str) -> Measure:
    """analyze with Grad-CAM of GRADCAM_TRACKS tracks: tracks embedded per second."""
    line = _summary(bench.cli(analyze_argv(bench, run_id, device)))
    tracks = int(_number(r"(\d+) embeddings", line))
    return Measure(f"analyze ({GRADCAM_TRACKS} Grad-CAM tracks)", device, tracks, "tracks",
                   _number(r" in ([\d.]+) s", line))


def classify(bench: Bench, run_id: str, device: str, minutes: float) -> Measure:
    """classify of a `minutes`-long mix of demo test clips: windows classified per second."""
    argv = classify_argv(bench, mix_file(bench, run_id, minutes), run_id, device)
    line = _summary(bench.cli(argv))
    windows = len(pd.read_csv(argv[argv.index("--out") + 1]))  # the timeline: one row per window
    # One name on every device (the mix's length is in its command): the table pairs steps by name.
    return Measure("classify a mix", device, windows, "windows", _number(r" in ([\d.]+) s", line))


def mix_file(bench: Bench, run_id: str, minutes: float) -> Path:
    """A WAV of the run's test clips played back to back in genre sections (benchmarks.latency's
    mix), at least `minutes` long; made once per length."""
    from benchmarks.latency import _mix_clips

    path = bench.work / f"mix-{minutes:g}min.wav"
    if path.is_file():
        return path
    sr = FeatureConfig().sr
    with paths.atomic_write(path) as tmp, sf.SoundFile(tmp, "w", samplerate=sr, channels=1, format="WAV",
                                                       subtype="PCM_16") as out:
        for clip, _ in _mix_clips(open_store(bench.db, create=False), run_id, minutes):
            for block in stream_blocks(clip, sr):
                out.write(block)
    return path


# --- the whole check --------------------------------------------------------------------------

def plan(bench: Bench, sizes: dict[str, Sizes]) -> list[tuple[str, str]]:
    """(device, command) in the order `measure_all` runs them; RUN stands for the cuda cnn run."""
    rows = [(d, [sys.executable, "-m", "training", *train_argv(bench, model, d, s.epochs)])
            for model in TRAINED for d, s in sizes.items()]
    rows += [(d, torchrun_command(1, train_argv(bench, "cnn", d, s.epochs))) for d, s in sizes.items()]
    rows += [(d, [sys.executable, "-m", "training", *analyze_argv(bench, "RUN", d)]) for d in sizes]
    rows += [(d, [sys.executable, "-m", "training",
                  *classify_argv(bench, bench.work / f"mix-{s.mix_minutes:g}min.wav", "RUN", d)])
             for d, s in sizes.items()]
    return [(d, shown(cmd)) for d, cmd in rows]


def measure_all(bench: Bench, sizes: dict[str, Sizes]) -> tuple[list[Measure], list[str]]:
    """Every step on every device of `sizes`, in `plan`'s order (the first device's cnn run is
    analysed and classifies); (measures, one line per failed step). A step that fails is
    reported and the rest still run: one broken path on a first GPU must not cost the others."""
    measures, failures = [], []
    first = next(iter(sizes))

    def cnn_run() -> str:
        found = [m.run_id for m in measures if m.step == "train cnn" and m.device == first]
        if not found:
            raise RuntimeError(f"no cnn run trained on {first} to analyze or classify with")
        return found[0]

    steps = [(d, partial(train, bench, model, d, s.epochs)) for model in TRAINED for d, s in sizes.items()]
    steps += [(d, partial(train, bench, "cnn", d, s.epochs, ddp=True)) for d, s in sizes.items()]
    steps += [(d, lambda d=d: analyze(bench, cnn_run(), d)) for d in sizes]
    steps += [(d, lambda d=d, s=s: classify(bench, cnn_run(), d, s.mix_minutes)) for d, s in sizes.items()]
    for device, step in steps:
        try:
            m = step()
        except (RuntimeError, ValueError, OSError) as exc:
            failures.append(f"{device}: {exc}")
            print(f"  FAILED on {failures[-1]}", flush=True)
            continue
        measures.append(m)
        print(f"  {m.step} on {m.device}: {m.rate:.1f} {m.unit}/s ({m.count} in {m.seconds:.1f} s)", flush=True)
    return measures, failures


def table(measures: list[Measure]) -> str:
    """One row per step: rate on each device and the speed-up of cuda over cpu."""
    frame = pd.DataFrame([dict(step=m.step, unit=f"{m.unit}/s", device=m.device, rate=m.rate) for m in measures])
    wide = frame.pivot_table(index=["step", "unit"], columns="device", values="rate", sort=False).reset_index()
    if {"cuda", "cpu"} <= set(wide.columns):
        wide["speed-up"] = wide["cuda"] / wide["cpu"]
    return wide.to_markdown(index=False, floatfmt=".3g")


def run(args) -> int:
    """Entry from `python -m benchmarks gpu`; 2 without CUDA (unless `--plan`), before any work."""
    from benchmarks.__main__ import BENCH_ROOT, ensure_demo

    db = ROOT / "bench.duckdb" if args.db == BENCH_ROOT / "bench.duckdb" else args.db  # its own corpus and runs
    bench, sizes = Bench(db, db.parent), {"cuda": GPU_SIZES, "cpu": CPU_SIZES}
    if args.plan:
        print(pd.DataFrame(plan(bench, sizes), columns=["device", "command"]).to_markdown(index=False))
        return 0
    if not torch.cuda.is_available():
        print(REFUSAL, file=sys.stderr)
        return 2
    started = time.perf_counter()
    ensure_demo(open_store(db), db.parent / "demo", args.per_genre, args.seconds)
    print(f"# GPU check — {torch.cuda.get_device_name(0)}, {os.cpu_count()} CPUs, demo corpus in {db.parent / 'demo'}")
    measures, failures = measure_all(bench, sizes)
    if measures:
        print("\n" + table(measures))
    print("\ncommands run:\n" + "\n".join(f"  {c}" for c in bench.commands))
    if failures:
        print("\nfailed steps:\n" + "\n".join(f"  {f}" for f in failures))
    print(f"\n(whole check: {time.perf_counter() - started:.0f} s, {load_line()})")
    return 1 if failures else 0


def add_arguments(parser) -> None:
    group = parser.add_argument_group("gpu")
    group.add_argument("--plan", action="store_true", help="gpu: print the steps and commands, run nothing")
