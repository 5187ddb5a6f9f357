"""argparse -> config -> one genre_core call per command. Bad input exits 2 with one line."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path

from genre_core import paths, untrusted
from genre_core.audio import AudioError
from genre_core.datasets import DATASETS, DatasetError
from genre_core.datasets.splits import SPLITS
from genre_core.live.timeline import DEFAULT_SWITCH_PENALTY
from genre_core.store import StoreError, default_db_path, open_store
from genre_core.train.config import TrainConfig
from genre_core.train.lifecycle import interrupt_on_sigterm
from genre_core.workers import bound_heap_growth

# BadImport is a ValueError; WriteError says what could not be written and why (a full disk)
USER_ERRORS = (AudioError, DatasetError, StoreError, paths.WriteError, ValueError, FileNotFoundError)
# An --out or --db naming a file where a folder must be (or the reverse): bad input, one line.
BAD_PATHS = (FileExistsError, NotADirectoryError, IsADirectoryError)
ERROR_LINE = 600  # characters of an error line; the rest is counted, not printed
SIGPIPE_STATUS = 141  # 128 + SIGPIPE: how `cat`, `grep`... end when their reader goes away


def cmd_synth(args: argparse.Namespace) -> str:
    from genre_core.datasets.synth.corpus import SynthConfig, generate_corpus

    config = SynthConfig(per_genre=args.per_genre, seconds=args.seconds, seed=args.seed, extras=args.extras)
    if args.recipes == "unseen":
        from genre_core.datasets.synth.unseen import generate_unseen

        return generate_unseen(Path(args.out), config=config, progress=True).line()
    return generate_corpus(Path(args.out), config=config, progress=True).line()


def cmd_ingest(args: argparse.Namespace) -> str:
    from genre_core.datasets.ingest import IngestOptions, check_request, ingest

    check_request(args.dataset, args.root, args.name)  # a bad request creates no database file
    store = open_store(args.db)
    given = {k: getattr(args, k) for k in ("workers", "batch_size", "subset", "max_seconds", "engine",
                                           "ray_address") if getattr(args, k)}
    options = IngestOptions(validate=args.validate, **given)
    summary = ingest(store, args.dataset, Path(args.root), name=args.name, artist_index=args.artist_index,
                     options=options)
    return summary.line(store.path)


def _engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="where per-file work runs: worker processes here (default) or Ray tasks")
    p.add_argument("--ray-address", help="with --engine ray: 'auto' or HOST:PORT of a running cluster "
                                         "(default: start a local Ray instance)")


def _relaunched(gpus: int) -> str | None:
    """`--gpus N` outside torchrun: this command re-run under torchrun with N processes; its
    summary line. None when there is nothing to relaunch (one process, or already a rank)."""
    from genre_core.train import distributed

    if gpus <= 1 or distributed.ranks().enabled:
        return None
    code = distributed.launch(gpus, _without_option(sys.argv[1:], "--gpus"))
    if code:
        raise ValueError(f"torchrun with {gpus} processes exited with status {code}")
    return f"trained with {gpus} processes (torchrun; rank 0 stored the run)"


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    """The options among `names` given on the command line: config overrides of the defaults."""
    return {k: getattr(args, k) for k in names if getattr(args, k) is not None}


def cmd_train(args: argparse.Namespace) -> str:
    from genre_core.train.fit import resume_run, train_command

    if relaunched := _relaunched(args.gpus):
        return relaunched
    store = open_store(args.db)
    if args.resume:
        return resume_run(store, args.resume).summary
    overrides = _given(args, ("split", "epochs", "device", "seed", "batch_size", "lr", "k", "window_s", "hop_s",
                              "representation", "task", "label_share", "sample"))
    return train_command(store, args.dataset, args.model, fold=args.fold, tiny=args.tiny,
                         augment=not args.no_augment, backbone=args.backbone, **overrides)


def cmd_pretrain(args: argparse.Namespace) -> str:
    from genre_core.train.pretrain import pretrain_command, resume_pretraining

    if relaunched := _relaunched(args.gpus):
        return relaunched
    store = open_store(args.db)
    if args.resume:
        return resume_pretraining(store, args.resume).summary
    overrides = _given(args, ("encoder", "split", "epochs", "batch_size", "lr", "device", "seed", "window_s",
                              "temperature", "pairs_per_track"))
    return pretrain_command(store, args.dataset, out=args.out, tiny=args.tiny, augment=not args.no_augment,
                            **overrides)


def _without_option(argv: list[str], name: str) -> list[str]:
    """argv minus `name VALUE` / `name=VALUE`."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == name:
            skip = True
        elif not item.startswith(name + "="):
            out.append(item)
    return out


def cmd_sweep(args: argparse.Namespace) -> str:
    from genre_core.train.sweep import load_sweep, run_sweep

    table = run_sweep(open_store(args.db), load_sweep(args.config))
    _print_table(table.drop(columns=["sweep"]), float_format="%.3f")
    failed = int(table.run_id.isna().sum())
    return f"sweep {table.sweep.iloc[0]}: {len(table) - failed} runs complete, {failed} failed"


def _say(text: str) -> None:
    """A result on stdout: names in it came from files, so no escape sequence gets through."""
    print(untrusted.plain(text, keep_lines=True))


def _print_table(frame, **format) -> None:
    _say(frame.to_string(index=False, **format))


def cmd_runs(args: argparse.Namespace) -> str:
    store = open_store(args.db, create=False)
    runs = store.runs(args.dataset)
    if args.status:
        runs = runs[runs.status == args.status]
    if runs.empty:
        return f"{args.db}: no runs" + (f" with status {args.status}" if args.status else "")
    runs = runs.merge(store.test_accuracy(), on="run_id", how="left")
    runs["test accuracy [95% CI]"] = [
        "" if a != a else f"{a:.3f} [{lo:.3f}-{hi:.3f}]" for a, lo, hi in zip(runs.accuracy, runs.ci_low, runs.ci_high)]
    shown = runs[["run_id", "dataset", "model", "split", "status", "test accuracy [95% CI]", "finished_at"]]
    _print_table(shown)
    counts = runs.status.value_counts()
    return f"{len(runs)} runs: " + ", ".join(f"{n} {status}" for status, n in counts.items())


def cmd_datasets(args: argparse.Namespace) -> str:
    table = open_store(args.db, create=False).dataset_overview()
    if table.empty:
        return f"{args.db}: no datasets yet (python -m training ingest ...)"
    _print_table(table)
    return f"{len(table)} datasets, {int(table.tracks.sum())} tracks"


def cmd_export(args: argparse.Namespace) -> str:
    from genre_core.runs.export import export_run

    return export_run(open_store(args.db, create=False), args.run, args.out, fmt=args.format).line()


def cmd_import_predictions(args: argparse.Namespace) -> str:
    from genre_core.runs.imported import import_predictions

    store = open_store(args.db, create=False)
    return import_predictions(store, args.dataset, args.file, model=args.model, embeddings=args.embeddings).line()


def cmd_report(args: argparse.Namespace) -> str:
    from genre_core.runs.report import write_report

    return write_report(open_store(args.db, create=False), args.run, args.out, n_examples=args.examples).line()


def cmd_ensemble(args: argparse.Namespace) -> str:
    from genre_core.runs.ensemble import ensemble

    return ensemble(open_store(args.db, create=False), args.runs, label=args.label).line()


def cmd_classify(args: argparse.Namespace) -> str:
    from genre_core.live.streaming import classify_file
    from genre_core.live.timeline import format_sections

    store = open_store(args.db, create=False)
    paths = [Path(f) for f in args.file]
    if len(paths) > 1 or paths[0].is_dir() or args.engine == "ray" or args.workers or args.out_dir:
        return _classify_many(store, paths, args)
    result = classify_file(store, paths[0], run_id=args.run, window_s=args.window, hop_s=args.hop,
                           switch_penalty=args.switch_penalty,
                           method=args.smoothing, out=args.out, device=args.device)
    _say(format_sections(result.sections))
    return result.summary()


def _classify_many(store, paths: list[Path], args: argparse.Namespace) -> str:
    from genre_core.engine import EngineOptions
    from genre_core.live.batch import classify_many

    if args.out is not None:
        raise ValueError("with several files, write timelines with --out-dir DIR (one CSV per file)")
    result = classify_many(store, paths, run_id=args.run, out_dir=args.out_dir, engine=EngineOptions(args.engine, args.workers,
                                                                                args.ray_address),
                           window_s=args.window, hop_s=args.hop, method=args.smoothing,
                           switch_penalty=args.switch_penalty)
    _print_table(result.table, float_format="%.2f")
    return result.line()


def cmd_analyze(args: argparse.Namespace) -> str:
    from genre_core.analysis.analyze import analyze

    limits = {} if args.gradcam_limit is None else {"gradcam_limit": args.gradcam_limit or None}  # 0: all
    from genre_core.engine import EngineOptions

    engine = (EngineOptions(args.engine, args.workers, args.ray_address, gpus_per_task=args.gpus_per_task)
              if args.engine == "ray" or args.workers else None)  # default: embed in this process
    return analyze(open_store(args.db, create=False), args.run, methods=args.methods, device=args.device,
                   k=args.neighbours, taggrams=not args.no_taggrams, engine=engine, **limits).line()


def cmd_explain(args: argparse.Namespace) -> str:
    """One track, one run: the summary (prediction, strongest window, faithfulness, variants)
    on stdout, and with --out the audio to hear it (see genre_core.analysis.explain_track)."""
    from genre_core.analysis.explain_track import explain_track

    result = explain_track(open_store(args.db, create=False), args.run, args.track, out=args.out,
                           device=args.device)
    _say("\n".join(result.lines()))
    return result.line()


def _methods(text: str) -> tuple[str, ...]:
    """--methods "umap,tsne" -> ("umap", "tsne"); "none" -> () (neighbours only)."""
    from genre_core.analysis.embeddings import METHODS

    names = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    if names == ("none",):
        return ()
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown projection {', '.join(unknown) or repr(text)} "
            f"(choose from {', '.join(METHODS)}, comma-separated, or none)")
    return names


def cmd_extract(args: argparse.Namespace) -> str:
    from genre_core.engine import EngineOptions
    from genre_core.features.extract import extract, model_rate

    sr = args.sr or model_rate(args.model)
    engine = EngineOptions(args.engine, args.workers, args.ray_address)
    return extract(open_store(args.db, create=False), args.dataset, sr, engine=engine).line()


def cmd_faults(args: argparse.Namespace) -> str:
    from genre_core.faults.detect import detect_faults

    from genre_core.engine import EngineOptions

    engine = EngineOptions(args.engine, args.workers, args.ray_address)
    return detect_faults(open_store(args.db, create=False), args.dataset, engine=engine, device=args.device).line()


def cmd_cache(args: argparse.Namespace) -> str:
    from genre_core import paths
    from genre_core.features.cache import ShardCache

    cache = ShardCache(paths.cache_dir(args.db))
    if not cache.root.is_dir():
        return f"cache {cache.root}: empty (nothing cached yet)"
    if args.prune:
        keep = open_store(args.db, create=False).file_sha1s()
        if not keep:
            raise ValueError(f"{args.db} lists no tracks: refusing to prune the whole cache")
        _say(cache.prune(keep).line())
    stats = cache.stats()
    _say("\n".join(stats.lines()[1:]))
    return stats.lines()[0]


def demo_root(args: argparse.Namespace) -> Path:
    """--out, or demo/ beside the database: the corpus stays with the database that lists it."""
    return Path(args.out) if args.out else Path(args.db).parent / "demo"


def cmd_demo(args: argparse.Namespace) -> str:
    """The whole pipeline on the built-in corpus (see genre_core.runs.demo)."""
    from genre_core.runs.demo import DemoConfig, run_demo

    config = DemoConfig(root=demo_root(args), per_genre=args.per_genre, seconds=args.seconds,
                        epochs=args.epochs, device=args.device)
    return run_demo(open_store(args.db), config, log=print)


def cmd_app(args: argparse.Namespace) -> str:
    """The Streamlit app on --db (see training.serve); does not return while it serves."""
    from training.serve import serve

    serve(args.db, port=args.port, address=args.address)
    return ""


DESCRIPTION = """GenreLens: train music-genre classifiers honestly and see why they fail.

A typical session: ingest a corpus, train a model (track-level splits, accuracy with a 95%
interval), analyze the run (maps, neighbours, Grad-CAM), look for the dataset's faults, then
explore everything in the app (genrelens app, or make app). Every command takes --db (default $GENRELENS_DB or
data/genrelens.duckdb); bad input exits 2 with one line."""


def program_name() -> str:
    """`genrelens` when run through the console script, else the module form."""
    return "genrelens" if Path(sys.argv[0]).name == "genrelens" else "python -m training"


def _pretrain_parser(command) -> None:
    from genre_core.train.config import PretrainConfig

    defaults = PretrainConfig(dataset="")
    p = command("pretrain", cmd_pretrain, "self-supervised pretraining of an encoder on a dataset's audio, "
                                          "no labels (for train --model ssl_probe --backbone RUN)")
    _cache_args(p)
    p.add_argument("--dataset", help="dataset name in the database (see: datasets)")
    p.add_argument("--encoder", type=_encoder_name, metavar="ENCODER",
                   help=f"a CNN-family model of the list under train --help: cnn_small, cnn, vgg, resnet "
                        f"(default {defaults.encoder})")
    p.add_argument("--split", choices=[s for s in SPLITS if s != "kfold"],
                   help="learn only from this split's train and val tracks, never its test tracks "
                        "(default: every track)")
    p.add_argument("--epochs", type=_positive_int, help=f"maximum epochs, early stopping on the held-out "
                                                         f"contrastive loss (default {defaults.epochs})")
    p.add_argument("--batch-size", type=lambda text: _int_at_least(text, 2), help=f"pairs of segments per batch; the other pairs are "
                                                            f"the negatives (default {defaults.batch_size})")
    p.add_argument("--pairs-per-track", type=_positive_int,
                   help=f"pairs drawn from each track per epoch (default {defaults.pairs_per_track})")
    p.add_argument("--temperature", type=_positive_float, help=f"NT-Xent temperature (default {defaults.temperature:g})")
    p.add_argument("--lr", type=_positive_float, help=f"peak learning rate of AdamW (default {defaults.lr:g})")
    p.add_argument("--window", dest="window_s", type=_positive_float,
                   help=f"segment length in s (default {defaults.window_s:g})")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"],
                   help="auto: CUDA when present (bf16 autocast), else CPU (default auto)")
    p.add_argument("--seed", type=_nonnegative_int, help=f"seeds the pairs, weights and augmentation "
                                                         f"(default {defaults.seed})")
    p.add_argument("--gpus", type=_positive_int, default=1,
                   help="data-parallel processes (DDP via torchrun); --batch-size stays the total (default 1)")
    p.add_argument("--tiny", action="store_true", help="tiny encoder, 2 epochs: a smoke run in seconds")
    p.add_argument("--no-augment", action="store_true", help="pairs differ only in where the segments start")
    p.add_argument("--out", type=Path, help="also write the backbone file here (load it with --backbone PATH)")
    p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted pretraining from its checkpoint")


def build_parser() -> argparse.ArgumentParser:
    from genre_core import __version__

    parser = _OneLineParser(prog=program_name(), description=DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func, help_text: str, epilog: str | None = None,
                db: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if db:  # every command but synth (which writes only audio files)
            p.add_argument("--db", type=Path, default=default_db_path(),
                           help="DuckDB file (default: $GENRELENS_DB or data/genrelens.duckdb)")
        talk = p.add_mutually_exclusive_group()
        talk.add_argument("-q", "--quiet", action="store_true", help="only warnings, errors and the summary line")
        talk.add_argument("-v", "--verbose", action="store_true", help="debug messages too")
        p.set_defaults(func=func)
        return p

    p = command("synth", cmd_synth, "generate the demo corpus (GTZAN layout, planted faults)", db=False)
    p.add_argument("--out", required=True, type=Path, help="folder to write the corpus into")
    _corpus_size_args(p)
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="the corpus is a function of the seed (default 0)")
    p.add_argument("--extras", action="store_true",
                   help="also plant versions and non-music clips (extra clips after each genre's; not in the demo)")
    p.add_argument("--recipes", choices=["demo", "unseen"], default="demo",
                   help="demo: the ten GTZAN genres with planted faults (default); unseen: eight genres no "
                        "pretrained model here was taught (polka ... drum and bass), clean, folder layout with "
                        "artists.txt (ingest --dataset folder --artist-index OUT/artists.txt)")

    p = command("ingest", cmd_ingest, "scan a corpus, check every file, store its tracks")
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    p.add_argument("--root", required=True, type=Path)
    p.add_argument("--name", help="dataset name in the database (default: the --dataset kind)")
    p.add_argument("--artist-index", type=Path, help="Sturm-format index: file ::: artist ::: title")
    p.add_argument("--subset", choices=["small", "medium", "large", "full"],
                   help="FMA only: which fma_<subset>/ folder (default: the smallest present)")
    p.add_argument("--workers", type=_positive_int, help="worker processes (default: one per CPU)")
    p.add_argument("--validate", action="store_true",
                   help="decode every file fully (default: header + a ~4 s strided read)")
    p.add_argument("--batch-size", type=_positive_int,
                   help="tracks per commit; a killed ingest resumes after the last one (default 500)")
    p.add_argument("--max-seconds", type=_positive_float,
                   help="refuse files longer than this, from their header (default 14400 = 4 h, "
                        "or $GENRELENS_MAX_SECONDS)")
    _engine_args(p)

    defaults = TrainConfig(dataset="", model="")
    p = command("train", cmd_train, "train and evaluate one model (k-fold: one run per fold)")
    p.epilog_from = _model_list
    _cache_args(p)
    p.add_argument("--dataset", help="dataset name in the database (see: datasets)")
    p.add_argument("--model", type=_model_name, metavar="MODEL", help="model name (listed below)")
    p.add_argument("--split", choices=list(SPLITS),
                   help=f"how tracks are split before windowing (default {defaults.split}): random, "
                        "kfold (k runs), artist (no artist on two sides), fault-filtered (known duplicates "
                        "and mislabels removed), official (the dataset's own split)")
    # Checked here, before the database is opened: a bad value never leaves a run row behind.
    p.add_argument("--fold", type=_positive_int, help="with --split kfold: run only this fold (1-based)")
    p.add_argument("--epochs", type=_positive_int, help=f"maximum epochs, early stopping on validation "
                                                         f"loss (default {defaults.epochs})")
    p.add_argument("--batch-size", type=_positive_int, help=f"windows per batch (default {defaults.batch_size})")
    p.add_argument("--lr", type=_positive_float, help=f"peak learning rate of AdamW (default {defaults.lr:g})")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"],
                   help="auto: CUDA when present (bf16 autocast), else CPU (default auto)")
    p.add_argument("--seed", type=_nonnegative_int, help=f"seeds the split, weights and augmentation "
                                                         f"(default {defaults.seed})")
    p.add_argument("--k", type=_positive_int, help=f"folds with --split kfold (default {defaults.k})")
    p.add_argument("--window", dest="window_s", type=_positive_float,
                   help=f"window length in s the model sees (default {defaults.window_s:g})")
    p.add_argument("--hop", dest="hop_s", type=_positive_float,
                   help=f"hop between training windows in s (default {defaults.hop_s:g})")
    p.add_argument("--representation", choices=["logmel", "mfcc"],
                   help="override a torch model's input features (default: the model's own)")
    p.add_argument("--gpus", type=_positive_int, default=1,
                   help="data-parallel processes (DDP via torchrun; one per GPU, gloo on CPU); --batch-size "
                        "stays the total batch (default 1)")
    p.add_argument("--task", choices=["single", "multilabel"],
                   help="single: one genre per track (softmax); multilabel: every genre of a track "
                        "(sigmoid + binary cross-entropy, mAP / F1 at a validation-tuned threshold) "
                        f"(default {defaults.task})")
    p.add_argument("--multilabel", dest="task", action="store_const", const="multilabel",
                   help="the same as --task multilabel")
    p.add_argument("--tiny", action="store_true", help="tiny model, 2 epochs: a smoke run in seconds")
    p.add_argument("--no-augment", action="store_true", help="switch every augmentation off")
    p.add_argument("--label-share", type=_share, help="use the labels of only this share of each genre's "
                                                       "training tracks, e.g. 0.1 (default 1)")
    p.add_argument("--sample", type=_positive_int, metavar="N",
                   help="train, validate and test on a seeded, genre-stratified sample of N of the dataset's "
                        "tracks (whole artists where known; split inside it); analyze still covers every track")
    p.add_argument("--backbone", metavar="RUN|PATH",
                   help="ssl_probe / ssl_finetune: the pretrained encoder, a pretrain run id or backbone file")
    p.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run from its checkpoint")

    _pretrain_parser(command)

    p = command("sweep", cmd_sweep, "ablation sweep: representation x augmentation x model")
    _cache_args(p)
    p.add_argument("--config", required=True, type=Path, help="TOML or JSON sweep file")

    p = command("runs", cmd_runs, "every run: model, split, status, test accuracy with its 95%% CI "
                                  "(a killed run shows as interrupted)")
    p.add_argument("--dataset", help="only the runs of this dataset")
    p.add_argument("--status", choices=["complete", "running", "interrupted", "failed"],
                   help="only runs with this status")

    command("datasets", cmd_datasets, "every dataset: kind, genres, tracks by status, root")

    p = command("export", cmd_export, "a run's tables as parquet/CSV, or TensorBoard projector files",
                epilog="tables: tracks, predictions (prob_<genre> columns), metrics, embeddings, "
                       "projections, faults, reviews, and manifest.json (see docs/cli.md, Export)")
    p.add_argument("--run", required=True, help="run id (see: runs)")
    p.add_argument("--out", required=True, type=Path, help="folder to write (created)")
    p.add_argument("--format", choices=["parquet", "csv", "tensorboard"], default="parquet",
                   help="parquet (default), csv, or tensorboard (vectors.tsv, metadata.tsv, projector_config.pbtxt)")

    p = command("import-predictions", cmd_import_predictions,
                "make a complete run from any model's predictions (CSV or parquet)",
                epilog="columns: track_id, then prob_<genre> for every genre (rows sum to 1) or predicted; "
                       "optional split (test|val). Embeddings: track_id + an embedding list column or "
                       "one numeric column per dimension.")
    p.add_argument("--dataset", required=True, help="dataset the predictions are about")
    p.add_argument("--file", required=True, type=Path, help="predictions table (.csv, .tsv or .parquet)")
    p.add_argument("--embeddings", type=Path, help="optional embeddings table: maps and neighbours are drawn")
    p.add_argument("--model", required=True, help="a label for the model (letters, digits, _.+-)")

    p = command("report", cmd_report, "one self-contained HTML report of a run, to share or present")
    p.add_argument("--run", required=True, help="run id (see: runs)")
    p.add_argument("--out", required=True, type=Path, help="the .html file to write")
    p.add_argument("--examples", type=_positive_int, default=6,
                   help="misclassified tracks to include with audio and Grad-CAM (default 6)")

    p = command("ensemble", cmd_ensemble, "average the calibrated probabilities of runs on one test set")
    p.add_argument("--runs", required=True, nargs="+", metavar="RUN", help="two or more complete runs")
    p.add_argument("--label", default="ensemble", help="model label of the stored run (default ensemble)")

    p = command("classify", cmd_classify, "genre timeline of any audio file, of any length")
    p.add_argument("file", nargs="+", help="audio file(s) (wav, au, flac, ogg, mp3, aiff) or folders of them")
    p.add_argument("--run", help="run whose model classifies (default: the latest complete run)")
    p.add_argument("--window", type=_positive_float, help="window length in s (default: the run's, 3 s)")
    p.add_argument("--hop", type=_positive_float, default=1.5, help="hop between windows in s (default 1.5)")
    p.add_argument("--smoothing", choices=["viterbi", "median", "none"], default="viterbi",
                   help="how window predictions become sections (default viterbi)")
    p.add_argument("--switch-penalty", type=_positive_float, default=DEFAULT_SWITCH_PENALTY,
                   help="viterbi: log-probability cost of a genre change; higher, fewer sections (default 10)")
    p.add_argument("--out", type=Path, help="one file: write its full timeline here (.csv or .json)")
    p.add_argument("--out-dir", type=Path, help="several files: write each timeline as DIR/<name>.csv; a name "
                                                "already taken in the batch gets -2, -3... (a/song.wav: song.csv, "
                                                "b/song.wav: song-2.csv), as the table's timeline column shows")
    p.add_argument("--workers", type=_positive_int, help="several files: worker processes / Ray CPUs")
    _engine_args(p)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")

    p = command("analyze", cmd_analyze, "embeddings, projections, neighbours, Grad-CAM of a run")
    _cache_args(p)
    p.add_argument("--run", required=True, help="run id (see the app's Overview or the runs table)")
    p.add_argument("--gradcam-limit", type=_nonnegative_int, metavar="N",
                   help="explain at most N test tracks, misclassified first (0: all; default 300)")
    p.add_argument("--methods", type=_methods, default="tsne,umap",
                   help="2-D maps to draw, comma-separated from tsne, umap, pca, or none "
                        "(default tsne,umap; t-SNE is skipped with a note above 250,000 tracks)")
    p.add_argument("--neighbours", type=_positive_int, default=10, help="nearest neighbours kept per track (default 10)")
    p.add_argument("--no-taggrams", action="store_true", help="skip the musicnn taggrams of explained tracks")
    p.add_argument("--workers", type=_positive_int,
                   help="embed tracks in this many CPU worker processes / Ray CPUs (default: in this process)")
    p.add_argument("--gpus-per-task", type=float, default=0.0,
                   help="with --engine ray: GPUs each embedding task asks for (GPU actors on a cluster; default 0)")
    _engine_args(p)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default auto")

    p = command("explain", cmd_explain, "why one track got its genre: summary, and the audio to hear it")
    _cache_args(p)
    p.add_argument("--run", required=True, help="run id of a run with a network (see genrelens runs)")
    p.add_argument("--track", required=True, help="track id in the run's dataset (see the app's Track page)")
    p.add_argument("--out", type=Path, help="write original.wav, heard.wav, ignored.wav and one "
                                            "variant-<name>.wav per musical variant to this folder")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="default auto")

    p = command("extract", cmd_extract, "decode a dataset into the cache ahead of training, in parallel")
    _cache_args(p)
    p.add_argument("--dataset", required=True, help="dataset name in the database")
    p.add_argument("--model", type=_model_name, metavar="MODEL", default="cnn",
                   help="cache at the sample rate this model reads (default cnn: 22,050 Hz)")
    p.add_argument("--sr", type=_positive_int, help="cache at this sample rate instead")
    p.add_argument("--workers", type=_positive_int, help="worker processes / Ray CPUs (default: one per CPU)")
    _engine_args(p)

    p = command("faults", cmd_faults, "duplicates, label issues, distortions, artist repetition")
    _cache_args(p)
    p.add_argument("--dataset", required=True, help="dataset name in the database")
    p.add_argument("--workers", type=_positive_int, help="worker processes / Ray CPUs (default: one per CPU)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where the label check's musicnn embeddings are computed (default auto)")
    _engine_args(p)

    p = command("cache", cmd_cache, "size of the decoded-audio and feature cache; --prune compacts it")
    _cache_args(p)
    p.add_argument("--prune", action="store_true",
                   help="drop entries whose file is in no dataset of --db, then compact the shards "
                        "(do not prune a cache that several databases share)")

    p = command("demo", cmd_demo, "synth -> ingest -> train -> analyze -> faults on the demo corpus")
    p.add_argument("--out", type=Path, help="where the demo corpus lives (default: demo/ beside --db)")
    _corpus_size_args(p)
    p.add_argument("--epochs", type=_positive_int, default=8, help="epochs of the demo's CNN (default 8)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    _cache_args(p)

    p = command("app", cmd_app, "the Streamlit app on --db (the same as `make app` in a checkout)")
    p.add_argument("--port", type=_positive_int, help="port to serve on (default: Streamlit's, 8501)")
    p.add_argument("--address", help="address to listen on (default: Streamlit's, all interfaces)")
    return parser


def _model_name(text: str) -> str:
    from genre_core.models import get_spec  # here, not at import: the registry imports torch

    try:
        return get_spec(text).name
    except ValueError as exc:  # names the valid models
        raise argparse.ArgumentTypeError(str(exc)) from None


def _share(text: str) -> float:
    value = _positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1], got {value}")
    return value


def _encoder_name(text: str) -> str:
    from genre_core.models.ssl import ENCODERS  # here, not at import: the registry imports torch

    if text not in ENCODERS:
        raise argparse.ArgumentTypeError(f"unknown encoder {text!r}; valid encoders: {', '.join(ENCODERS)}")
    return text


def _model_list() -> str:
    from genre_core.models import MODELS

    width = max(len(name) for name in MODELS)
    return "models:\n" + "\n".join(f"  {name:<{width}}  {spec.description}" for name, spec in sorted(MODELS.items()))


def _cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", type=Path,
                   help="decoded-audio and feature cache (default: $GENRELENS_CACHE_DIR or <db dir>/cache)")
    p.add_argument("--cache-dtype", choices=["float32", "float16"],
                   help="sample type of newly cached audio (default: $GENRELENS_CACHE_DTYPE or float32)")


def _apply_cache_args(args: argparse.Namespace) -> None:
    """--cache-dir / --cache-dtype reach every module (and worker) through the environment."""
    from genre_core import paths
    from genre_core.features.cache import DTYPE_ENV

    if getattr(args, "cache_dir", None) is not None:
        os.environ[paths.CACHE_ENV] = str(args.cache_dir.expanduser().resolve())
    if getattr(args, "cache_dtype", None) is not None:
        os.environ[DTYPE_ENV] = args.cache_dtype


class _OneLineParser(argparse.ArgumentParser):
    """Bad arguments exit 2 with one line (the CLI contract), not argparse's usage block.
    `epilog_from` makes the epilog only when help is printed: the model list imports torch,
    which every command would otherwise pay for (~3 s) before parsing its arguments."""

    epilog_from = None

    def format_help(self) -> str:
        if self.epilog_from is not None:
            self.epilog = self.epilog_from()
        return super().format_help()

    def error(self, message: str):
        # argparse echoes the bad value ("invalid choice: '...'"): cut, as main's error lines
        self.exit(2, f"error: {self.prog}: {untrusted.shortened(message, limit=ERROR_LINE)} (see --help)\n")


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def _nonnegative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _corpus_size_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--per-genre", type=_positive_int, default=24, help="clips per genre (default 24)")
    p.add_argument("--seconds", type=_positive_float, default=15.0, help="clip length (default 15 s)")


class _PlainFormatter(logging.Formatter):
    """Log lines name tracks, files and datasets: printed without control characters."""

    def format(self, record: logging.LogRecord) -> str:
        return untrusted.plain(super().format(record), keep_lines=True)


def _setup_logging(args: argparse.Namespace) -> None:
    """Progress and reports go to stderr through the `genrelens` logger; stdout keeps the
    command's result (the summary line, tables), so it can be piped."""
    level = logging.WARNING if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PlainFormatter("%(message)s"))
    log = logging.getLogger("genrelens")
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    if args.quiet:
        os.environ["TQDM_DISABLE"] = "1"  # tqdm reads it for every bar it makes


def _reader_gone() -> int:
    """stdout's reader closed the pipe (`genrelens runs | head -1`): stop without a word. What
    is still buffered for stdout goes to /dev/null, or Python's exit would complain about it."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return SIGPIPE_STATUS


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bound_heap_growth()  # long runs over many tracks: freed batch buffers go back to the OS
    _setup_logging(args)
    _apply_cache_args(args)
    interrupt_on_sigterm()  # `kill PID` stops a run like Ctrl-C: marked interrupted, resumable
    try:
        # names in the result (datasets, genres, labels) came from files: no escape sequence
        # reaches the terminal, tables keep their lines
        _say(args.func(args))
        sys.stdout.flush()  # a reader that went away (| head) shows here, inside the try
    except BrokenPipeError:
        return _reader_gone()
    except USER_ERRORS as exc:
        # one line, cut to a readable length: a message may echo a value from a file or argv
        print(f"error: {untrusted.shortened(exc, limit=ERROR_LINE)}", file=sys.stderr)
        return 2
    except OSError as exc:  # the machine's state that no stage put in words (a full disk): one line too
        if paths.write_errno(exc) is None and not isinstance(exc, BAD_PATHS):
            raise  # anything else is a bug: its traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{os.strerror(exc.errno)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing half-written was stored", file=sys.stderr)
        return 130
    return 0
