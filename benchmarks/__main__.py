"""python -m benchmarks [accuracy] [throughput] [features] [--db PATH] [--epochs N] [--quick]

Builds (or reuses) the demo corpus in its own database under data/bench/, then prints:
- accuracy: track-level test accuracy (95% CI) and macro-F1 of every model family on one
  shared split, including replicas of the published pipelines (handcrafted + MLP, a small
  CNN on 128-band mel images);
- throughput: training and inference windows/second per torch model on this machine;
- features: cold extraction, ours (worker processes, soxr, batched torch log-mel) vs a plain
  librosa load + melspectrogram loop, same files, same output;
- handcrafted: ms per 3-s window of the 57-feature table, librosa vs batched torch;
- faults: detector runtime, precision/recall against the planted faults, fingerprint scaling,
  and accuracy with and without the flagged tracks;
- latency: live classification ms/window and real-time factor per model, and a 60-min mix;
- app: page and query times on a generated database (--app-tracks 10,000 / --app-runs 20 by
  default; --app-browser adds seconds from a sidebar click until charts are drawn, in chromium);
- engines: ingest and faults-scan tracks/s with 1 vs 2 local workers and on Ray;
- probe: musicnn_probe training with cached embeddings vs without;
- explanations: faithfulness of cnn and musicnn_probe Grad-CAM vs random masks (keep-rate,
  masked-in and masked-out probability drops, CIs), and seconds to explain one track;
- variants: the drop of the own genre's probability per musical variant and genre (the demo's
  true stems removed: hiphop and disco move more than classical), and how much of the true
  drum stem HPSS's percussive part holds;
- labels: the label check's flags against the planted mislabels of three synthetic corpora,
  with and without artists, and its own estimate of precision at k beside the real one
  (`--label-kfold` adds a musicnn_probe k-fold run per corpus to the evidence);
- pretraining: one self-supervised `pretrain` on the demo's training audio, then with 100%,
  25% and 10% of the training labels ssl_probe vs the same encoder randomly initialised vs
  cnn from scratch vs musicnn_probe, track accuracy with CIs and McNemar against ssl_probe;
  the same on a corpus of eight genres musicnn was never taught (`--pretraining-corpora`).

It ends with one table: each figure beside its baseline measured in the same run, the
speed-up, and the issue's target where there is one, with the machine's load average.
`--quick` (a few minutes): an 80-clip corpus in data/bench/quick/, one model per family trained
one epoch, and the sections accuracy, features, handcrafted, latency (6-minute mix).

`gpu` runs only when named (`python -m benchmarks gpu`, or `make bench-gpu`): training cnn,
resnet and musicnn_finetune, a one-process torchrun (DDP) launch, analyze with Grad-CAM and
classify of a 60-minute mix, on CUDA beside the same step on the CPU, in windows/s and
speed-ups; without CUDA it exits 2 with one line (`--plan` prints its steps instead).

`scale` runs only when named (`python -m benchmarks scale --tracks N [N ...] --seconds S`):
the whole pipeline on N generated clips of S seconds, one process per stage under
`--ulimit-n` open files, training on a sample (`--train-sample`, default 5,000) while analyze
and faults cover every clip, with wall time, tracks/s, peak PSS and RSS, peak open files and
disk; several sizes add a memory-vs-size table (`--plot` draws it).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from benchmarks import accuracy, app_db, engines, faults, features, handcrafted, latency, probe, scale, throughput
from benchmarks import explanations, gpu
from benchmarks import labels, pretraining, variants
from benchmarks.ratios import Ratios, load_line
from genre_core.store import open_store
from genre_core.workers import bound_heap_growth

SECTIONS = {
    "accuracy": accuracy.run,
    "throughput": throughput.run,
    "features": features.run,
    "handcrafted": handcrafted.run,
    "faults": faults.run,
    "latency": latency.run,
    "app": app_db.run,
    "engines": engines.run,
    "probe": probe.run,
    "explanations": explanations.run,  # faithfulness of cnn / musicnn_probe maps; explain one track
    "variants": variants.run,  # what changes its mind: true-stem removal per genre, HPSS vs the drum stem
    "labels": labels.run,  # label flags vs planted mislabels on three synth corpora, estimated vs real precision at k
    "pretraining": pretraining.run,  # ssl_probe vs a random encoder, cnn, musicnn_probe at 100/25/10% of labels
}
BENCH_ROOT = Path("data/bench")
QUICK_ROOT = BENCH_ROOT / "quick"
# --quick: one model per family (the latency target is per family), and the sections the
# issue's ratios come from; the probe and app sections take minutes on their own.
QUICK_MODELS = ("logreg", "rf_wavelet", "cnn_small", "rnn", "crnn", "transformer")
QUICK_SECTIONS = ("accuracy", "features", "handcrafted", "latency")


def ensure_demo(store, root: Path, per_genre: int, seconds: float) -> None:
    from genre_core.datasets.synth.corpus import SynthConfig, generate_corpus
    from genre_core.datasets.ingest import ingest

    if not (root / "metadata.csv").is_file():
        generate_corpus(root, config=SynthConfig(per_genre=per_genre, seconds=seconds), progress=True)
    if not store.has_dataset("demo"):
        ingest(store, "synth", root, name="demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", default=[],
                        help=f"any of {', '.join(SECTIONS)} (default: all), or scale or gpu (alone)")
    parser.add_argument("--db", type=Path, default=BENCH_ROOT / "bench.duckdb")
    parser.add_argument("--epochs", type=int, default=12, help="epochs per torch model (accuracy)")
    parser.add_argument("--models", nargs="*", help="restrict the accuracy table to these models")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--per-genre", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=15.0, help="clip length (demo corpus, or scale's clips)")
    parser.add_argument("--quick", action="store_true",
                        help="a few minutes: small corpus, one model per family, 1 epoch, the ratio sections")
    parser.add_argument("--threads", type=int, help="torch threads for the whole run (default: torch's; "
                        "1 is faster on a busy machine, where a second thread waits for its partner)")
    scale.add_arguments(parser)
    app_db.add_arguments(parser)
    labels.add_arguments(parser)
    pretraining.add_arguments(parser)
    gpu.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.sections == ["gpu"]:  # first: without CUDA it refuses before any work
        return gpu.run(args)
    bound_heap_growth()  # measure with the heap the CLI runs with
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        quick_settings(args)
    if args.sections == ["scale"]:
        scale.run(args)
        return 0
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {unknown[0]!r} (choose from {', '.join(SECTIONS)})")
    print(f"# GenreLens benchmarks — {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads, cuda={torch.cuda.is_available()}")
    print(load_line())
    store = open_store(args.db)
    ensure_demo(store, args.db.parent / "demo", args.per_genre, args.seconds)  # the corpus lives by its database
    args.ratios = Ratios()
    for name in args.sections or SECTIONS:
        started = time.perf_counter()
        print(f"\n## {name}\n")
        SECTIONS[name](store, args)
        print(f"\n({name}: {time.perf_counter() - started:.0f} s, {load_line()})")
    print("\n## ours vs baseline, measured in this run\n")
    print(args.ratios.table())
    print(f"\n(speedup = baseline / ours; {load_line()})")
    return 0


def quick_settings(args) -> None:
    """--quick: its own small corpus and database, so a full run's results are left alone."""
    if args.db == BENCH_ROOT / "bench.duckdb":
        args.db = QUICK_ROOT / "bench.duckdb"
    args.per_genre = min(args.per_genre, 8)  # minutes, not tens of minutes
    args.epochs = 1
    args.models = args.models or list(QUICK_MODELS)
    args.sections = args.sections or list(QUICK_SECTIONS)


if __name__ == "__main__":
    sys.exit(main())
