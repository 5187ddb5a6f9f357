"""python -m benchmarks [accuracy] [throughput] [features] [--db PATH] [--epochs N]

Builds (or reuses) the demo corpus in its own database under data/bench/, then prints:
- accuracy: track-level test accuracy (95% CI) and macro-F1 of every model family on one
  shared split, including replicas of the published pipelines (handcrafted + MLP, a small
  CNN on 128-band mel images);
- throughput: training and inference windows/second per torch model on this machine;
- features: tracks/second of our pipeline vs a plain librosa load + melspectrogram loop;
- handcrafted: ms per 3-s window of the 57-feature table, librosa vs batched torch;
- faults: detector runtime, precision/recall against the planted faults, fingerprint scaling,
  and accuracy with and without the flagged tracks;
- latency: live classification ms/window and real-time factor per model, and a 60-min mix;
- app: page and query times on a generated database (--app-tracks 10,000 / --app-runs 20 by
  default; --app-browser adds seconds from a sidebar click until charts are drawn, in chromium);
- engines: ingest and faults-scan tracks/s with 1 vs 2 local workers and on Ray.

`scale` runs only when named (`python -m benchmarks scale --tracks N --seconds S`): the
whole pipeline on N generated clips of S seconds, one process per stage under
`--ulimit-n` open files, with wall time, tracks/s, peak RSS, peak open files and disk.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from benchmarks import accuracy, app_db, engines, faults, features, handcrafted, latency, scale, throughput
from genre_core.store import open_store

SECTIONS = {
    "accuracy": accuracy.run,
    "throughput": throughput.run,
    "features": features.run,
    "handcrafted": handcrafted.run,
    "faults": faults.run,
    "latency": latency.run,
    "app": app_db.run,
    "engines": engines.run,
}
BENCH_ROOT = Path("data/bench")


def ensure_demo(store, root: Path, per_genre: int, seconds: float) -> None:
    from genre_core.datasets.synth.corpus import SynthConfig, generate_corpus
    from genre_core.datasets.ingest import ingest

    if not (root / "metadata.csv").is_file():
        generate_corpus(root, SynthConfig(per_genre=per_genre, seconds=seconds), progress=True)
    if not store.has_dataset("demo"):
        ingest(store, "synth", root, name="demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", default=[],
                        help=f"any of {', '.join(SECTIONS)} (default: all), or scale (alone)")
    parser.add_argument("--db", type=Path, default=BENCH_ROOT / "bench.duckdb")
    parser.add_argument("--epochs", type=int, default=12, help="epochs per torch model (accuracy)")
    parser.add_argument("--models", nargs="*", help="restrict the accuracy table to these models")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--per-genre", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=15.0, help="clip length (demo corpus, or scale's clips)")
    scale.add_arguments(parser)
    app_db.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.sections == ["scale"]:
        scale.run(args)
        return 0
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r} (choose from {', '.join(SECTIONS)})")
    print(f"# GenreLens benchmarks — {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, cuda={torch.cuda.is_available()}")
    store = open_store(args.db)
    ensure_demo(store, BENCH_ROOT / "demo", args.per_genre, args.seconds)
    for name in args.sections or SECTIONS:
        started = time.perf_counter()
        print(f"\n## {name}\n")
        SECTIONS[name](store, args)
        print(f"\n({name}: {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
