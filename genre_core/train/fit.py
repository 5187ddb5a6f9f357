"""fit(config) -> RunResult: split tracks, slice windows, train, evaluate per track, store.

Tracks are split first (by track, or by artist), then sliced into windows, so no track's
windows ever sit on two sides. Evaluation aggregates window log-probabilities to one
prediction per track; the stored metrics are track-level with bootstrap 95% CIs.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import torch

from genre_core import paths
from genre_core.metrics import evaluation, multilabel as ml_metrics
from genre_core.engine import EngineOptions
from genre_core.features.augment import AugmentConfig
from genre_core.features.pipeline import input_pipeline
from genre_core.datasets.base import DatasetError
from genre_core.datasets.splits import SPLITS, Split, kfold_splits, labelled_share, stratified_sample
from genre_core.models import build_model, get_spec
from genre_core.runs.record import new_run_id
from genre_core.store import BACKBONE_REPRESENTATION, Store
from genre_core.train import distributed, multilabel, probe
from genre_core.train.backbone import load_encoder_weights, resolve_backbone
from genre_core.train.config import TrainConfig
from genre_core.train.inference import file_sha256
from genre_core.train.lifecycle import Heartbeat, recorded
from genre_core.train.loop import LoopSettings, Trainer, save_file, start_device
from genre_core.features.cache import ShardCache
from genre_core.features.windows import WindowSet, build_windows, handcrafted_sides, servable_tracks

log = logging.getLogger("genrelens")  # the CLI shows INFO on stderr (--quiet / --verbose)


@dataclass
class RunResult:
    run_id: str
    status: str
    report: evaluation.Report | ml_metrics.MultiLabelReport | None = None
    ci: dict = field(default_factory=dict)
    summary: str = ""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def choose_split(config: TrainConfig, tracks: pd.DataFrame) -> Split:
    if config.split == "kfold":
        folds = kfold_splits(tracks.track_id, tracks.label, k=config.k, seed=config.seed, dataset=config.dataset)
        if not 1 <= config.fold <= config.k:
            raise ValueError(f"--fold must be in 1..{config.k}")
        return folds[config.fold - 1]
    if config.split not in SPLITS:
        raise ValueError(f"unknown split {config.split!r} (choose from {', '.join(SPLITS)})")
    return SPLITS[config.split](tracks, config.seed, dataset=config.dataset)


@dataclass
class Sides:
    classes: list[str]
    split: Split
    tracks: dict[str, pd.DataFrame]  # side -> tracks of that side
    genres: dict[str, tuple[str, ...]] = field(default_factory=dict)  # multi-label: track_id -> genres


def prepare(store: Store, config: TrainConfig) -> Sides:
    tracks = store.tracks(config.dataset)
    if tracks.empty:
        raise ValueError(f"dataset {config.dataset!r} has no usable tracks")
    if config.sample is not None:
        tracks = _sampled(tracks, config)
    split = _split_of_sample(config, tracks)
    if config.label_share < 1:
        train = tracks.set_index("track_id").loc[list(split.train)]
        split = dataclasses.replace(split, train=labelled_share(train.index, train.label, config.label_share,
                                                                seed=config.seed))
    by_id = tracks.set_index("track_id", drop=False)
    sides = {side: by_id.loc[list(getattr(split, side))] for side in ("train", "val", "test")}
    if sides["train"].empty or sides["test"].empty:
        raise ValueError(f"split {split.name} left no training or no test tracks")
    if config.task == "multilabel":
        genres = multilabel.genre_sets(store, config.dataset, tracks)
        return Sides(multilabel.classes_of(genres), split, sides, genres)
    return Sides(sorted(tracks.label.unique()), split, sides)


def _sampled(tracks: pd.DataFrame, config: TrainConfig) -> pd.DataFrame:
    """The tracks of train --sample (splits.stratified_sample), in the dataset's order."""
    chosen = stratified_sample(tracks.track_id, tracks.label, tracks.get("artist"), config.sample,
                               seed=config.seed, dataset=config.dataset)
    return tracks[tracks.track_id.isin(chosen)].reset_index(drop=True)


def _split_of_sample(config: TrainConfig, tracks: pd.DataFrame) -> Split:
    """choose_split; a sample too small for the split says that the sample is, not the dataset."""
    try:
        return choose_split(config, tracks)
    except DatasetError as exc:
        if config.sample is None:
            raise
        raise DatasetError(f"{exc} (the run's --sample {config.sample} is that set: take a larger sample)") from exc


def fit(store: Store, config: TrainConfig, *, run_id: str | None = None, resume: bool = False,
        progress: bool = True, stop_after_epoch: int | None = None, sweep: str | None = None) -> RunResult:
    """Train and evaluate one model; the run ends 'complete' with all results, 'failed' when it
    raises, or 'interrupted' (resumable) on Ctrl-C / SIGTERM."""
    spec = get_spec(config.model)
    here, device = start_device(config.device)
    if here.enabled and not spec.is_torch:
        distributed.stop()
        raise ValueError(f"{config.model} is a scikit-learn baseline: train it in one process, not under torchrun")
    try:
        seed_everything(config.seed)
        data = prepare(store, config)
        if not here.is_main:  # a follower: trains its share; rank 0 alone writes the run
            run_id = distributed.broadcast_text(None, here)
            cache, run_dir = ShardCache(paths.cache_dir(store.path)), paths.run_dir(store.path, run_id)
            _fit_torch(config, data, cache, run_dir, resume, False, stop_after_epoch, None, device, here)
            return RunResult(run_id, "follower", summary=f"rank {here.rank}: trained its share of run {run_id}")
        run_id = distributed.broadcast_text(run_id or new_run_id(config.model), here)
        return _fit_and_store(store, config, spec, data, run_id, resume, progress, stop_after_epoch, sweep,
                              device, here)
    finally:
        distributed.stop()


def _fit_and_store(store: Store, config: TrainConfig, spec, data: Sides, run_id: str, resume: bool,
                   progress: bool, stop_after_epoch: int | None, sweep: str | None, device: torch.device,
                   here: distributed.Ranks) -> RunResult:
    _start(store, config, data, run_id, resume, sweep, device)
    if progress:
        announce(store, run_id, resume, "train")
    with recorded(store, run_id) as heartbeat:
        cache = ShardCache(paths.cache_dir(store.path))
        run_dir = paths.run_dir(store.path, run_id)
        if spec.is_torch:
            outputs = _fit_torch(config, data, cache, run_dir, resume, progress, stop_after_epoch,
                                 heartbeat.nudge, device, here)
        else:
            outputs = _fit_baseline(config, data, cache, run_dir, progress)
        return _evaluate_and_store(store, run_id, config, data, outputs, heartbeat)


def announce(store: Store, run_id: str, resume: bool, command: str) -> None:
    """Printed as the run starts, so a run that is killed can still be found and resumed."""
    how = ("started" if not resume else "resumed" if _checkpoint(store, run_id).is_file()
           else "resumed from epoch 1 (it stopped before its first checkpoint)")
    log.info(f"run {run_id}: {how} (if stopped, continue with: python -m training {command} --resume {run_id})")


def _start(store: Store, config: TrainConfig, data: Sides, run_id: str, resume: bool,
           sweep: str | None, device: torch.device) -> None:
    """Insert the run row (or claim the resumed one) for this process."""
    if resume:
        store.restart_run(run_id)
        return
    store.start_run(dict(run_id=run_id, dataset_id=int(store.dataset(config.dataset)["dataset_id"]),
                         model=config.model, representation=_representation(config),
                         split=data.split.name, config=config.to_dict(),
                         device=str(device), seed=config.seed, sweep=sweep,
                         classes=data.classes))


def _representation(config: TrainConfig) -> str:
    return config.representation or get_spec(config.model).input_kind


@dataclass
class Outputs:
    """Window-level predictions of the fitted model on val and test."""

    epochs: list[dict]
    windows: dict[str, WindowSet]  # side -> windows
    log_probs: dict[str, np.ndarray]  # side -> (W, C)
    files: dict[str, str]  # name of each file the run leaves -> its sha256, checked on load


def _fit_torch(config, data: Sides, cache, run_dir: Path, resume, progress, stop_after_epoch,
               on_epoch, device: torch.device, here: distributed.Ranks) -> Outputs:
    frontend, sr, n_bins = input_pipeline(_representation(config), config.features)
    windows = _windows(data, cache, sr, config, progress)
    if config.task == "multilabel":  # labels become (n_tracks, C) multi-hot targets
        windows = multilabel.multi_hot_windows(windows, data.genres, data.classes)
    model = build_model(config.model, len(data.classes), n_bins, tiny=config.tiny, backbone=config.backbone)
    if config.backbone and config.backbone.get("file"):  # a pretrained encoder, not a random one
        load_encoder_weights(model, config.backbone)
    settings = LoopSettings(config.epochs, config.batch_size, config.lr, config.weight_decay,
                            config.warmup_epochs, config.patience, config.grad_clip,
                            config.augment, config.seed, stop_after_epoch)
    net, inputs = model, windows
    if model.frozen_backbone:  # the head trains on embeddings extracted once (train/probe.py)
        shas = {side: list(data.tracks[side].sha1) for side in windows}
        net, frontend, inputs, settings = probe.head_training(model, frontend, windows, shas=shas, cache=cache,
                                                              settings=settings, device=device, progress=progress)
    per_rank, local_batch = distributed.shard(np.arange(len(inputs["train"])), config.batch_size, here)
    steps = -(-len(per_rank) // local_batch)
    trainer_class = multilabel.MultiLabelTrainer if config.task == "multilabel" else Trainer
    trainer = trainer_class(net, frontend, settings, device, steps, sr, here)
    checkpoint = run_dir / paths.CHECKPOINT_FILE
    # Killed before its first checkpoint: nothing was kept, so resuming starts at epoch 1 (the
    # seeds make that the very run an uninterrupted one would have been).
    if resume and checkpoint.is_file():
        trainer.load(checkpoint)
    state = trainer.fit(inputs["train"], inputs["val"], len(data.classes), checkpoint=checkpoint, progress=progress,
                        on_epoch=on_epoch)
    if not here.is_main:
        return Outputs(state.history, windows, {}, {})
    model_file = run_dir / paths.MODEL_FILE
    save_file(model.state_dict(), model_file)  # the full network, also when only its head trained
    log_probs = {side: trainer.predict(inputs[side], progress)[0] for side in ("val", "test")}
    return Outputs(state.history, windows, log_probs, {model_file.name: file_sha256(model_file)})


def _windows(data: Sides, cache, sr: int, config: TrainConfig, progress: bool) -> dict[str, WindowSet]:
    """Each side's windows; tracks whose audio the cache refuses are first left out of `data`."""
    hops = {"train": config.hop_s, "val": config.eval_hop_s, "test": config.eval_hop_s}
    data.tracks = {side: servable_tracks(tracks, cache, sr=sr, desc=f"load {side}", progress=progress)
                   for side, tracks in data.tracks.items()}
    if data.tracks["train"].empty or data.tracks["test"].empty:
        raise ValueError("no training or no test tracks are left whose audio is as ingested: re-run ingest")
    return {
        side: build_windows(data.tracks[side], data.classes, cache, sr=sr, window_s=config.window_s,
                            hop_s=hops[side], desc=f"windows {side}", progress=progress)
        for side in ("train", "val", "test")
    }


def training_windows(store: Store, config: TrainConfig) -> int:
    """Windows one epoch of a torch run of `config` trains on (all ranks together): the same
    split and windowing as fit, read from the cache the run filled (benchmarks gpu divides
    epoch seconds by it)."""
    data = prepare(store, config)
    _, sr, _ = input_pipeline(_representation(config), config.features)
    return len(_windows(data, ShardCache(paths.cache_dir(store.path)), sr, config, progress=False)["train"])


def _fit_baseline(config: TrainConfig, data: Sides, cache, run_dir: Path, progress: bool) -> Outputs:
    started = time.perf_counter()
    # The handcrafted table has no use for overlap: one feature row per 3-s window.
    hopless = dataclasses.replace(config, hop_s=config.window_s, eval_hop_s=config.window_s)
    windows = _windows(data, cache, config.features.sr, hopless, progress)
    multi = config.task == "multilabel"
    if multi:  # labels become (n_tracks, C) multi-hot rows: one binary classifier per genre
        windows = multilabel.multi_hot_windows(windows, data.genres, data.classes)
    kind = get_spec(config.model).input_kind  # handcrafted, or handcrafted+wavelet
    # Missing tables are computed in worker processes when the sides together have enough tracks to pay
    # for their start (engine.auto_workers); small sets stay in this process.
    tables = handcrafted_sides(windows, {side: list(data.tracks[side].sha1) for side in windows}, cache,
                               progress=progress, kind=kind, engine=EngineOptions())
    labels = {side: w.labels[w.index[:, 0]] for side, w in windows.items()}
    estimator = build_model(config.model, len(data.classes), tables["train"].shape[1], seed=config.seed)
    if multi:
        estimator = multilabel.one_vs_rest(estimator)
    estimator.fit(tables["train"], labels["train"])
    model_file = run_dir / paths.BASELINE_FILE
    with paths.atomic_write(model_file) as tmp:
        joblib.dump(estimator, tmp)
    if multi:
        log_probs = {side: multilabel.baseline_log_probs(estimator, tables[side]) for side in ("val", "test")}
        train_lp = multilabel.baseline_log_probs(estimator, tables["train"])
        scores = {side: multilabel.window_scores(lp, labels[side]) for side, lp in
                  (("train", train_lp), ("val", log_probs["val"]))}
    else:
        log_probs = {side: _full_log_proba(estimator, tables[side], len(data.classes)) for side in ("val", "test")}
        val = log_probs["val"]
        scores = {"train": (None, float((estimator.predict(tables["train"]) == labels["train"]).mean())),
                  "val": (float(-val[np.arange(len(val)), labels["val"]].mean()) if len(val) else None,
                          float((val.argmax(1) == labels["val"]).mean()) if len(val) else None)}
    epoch = dict(epoch=1, train_loss=None, train_acc=scores["train"][1], lr=None, val_loss=scores["val"][0],
                 val_acc=scores["val"][1], seconds=time.perf_counter() - started)
    return Outputs([epoch], windows, log_probs, {model_file.name: file_sha256(model_file)})


def _full_log_proba(estimator, table: np.ndarray, n_classes: int) -> np.ndarray:
    """(W, C) log-probabilities over all classes, even ones absent from the training set."""
    probs = np.full((len(table), n_classes), 1e-6)
    if len(table):
        probs[:, estimator.classes_] = np.maximum(estimator.predict_proba(table), 1e-6)
    probs /= probs.sum(axis=1, keepdims=True)
    return np.log(probs)


def _evaluate_and_store(store: Store, run_id: str, config: TrainConfig, data: Sides,
                        outputs: Outputs, heartbeat: Heartbeat) -> RunResult:
    epochs = epochs_frame(outputs.epochs)
    if config.task == "multilabel":
        primary = {t: lab for side in data.tracks.values() for t, lab in zip(side.track_id, side.label)}
        tables, report, ci = multilabel.results(outputs.windows, outputs.log_probs, data.classes, primary=primary,
                                                seed=config.seed)
        with heartbeat.held():
            store.finish_run(run_id, {"epochs": epochs, **tables}, files=outputs.files)
        return RunResult(run_id, "complete", report, ci, multilabel.summary_line(
            run_id, config.model, config.dataset, split=data.split.name, rep=report, ci=ci))
    predictions, segments, metrics = [], [], []
    report, ci = None, {}
    for side in ("test", "val"):
        w = outputs.windows[side]
        if len(w) == 0:
            continue
        window_tracks = [w.track_ids[t] for t in w.index[:, 0]]
        ids, track_lp = evaluation.aggregate_windows(window_tracks, outputs.log_probs[side])
        label_of = dict(zip(w.track_ids, w.labels))
        y_true = np.array([label_of[t] for t in ids])
        probs = np.exp(track_lp)
        side_report = evaluation.classification_report(y_true, probs, data.classes)
        metrics += evaluation.metric_rows(side_report, y_true, probs, side, "track", config.seed)
        window_probs = np.exp(outputs.log_probs[side])
        window_y = w.labels[w.index[:, 0]]
        metrics += evaluation.metric_rows(evaluation.classification_report(window_y, window_probs, data.classes),
                                          window_y, window_probs, side, "window", config.seed, n_boot=200)
        predictions += [dict(track_id=t, split=side, label=data.classes[y], predicted=data.classes[p.argmax()],
                             probs=p.astype(np.float32).tolist()) for t, y, p in zip(ids, y_true, probs)]
        segments += [dict(track_id=t, start_s=float(s), probs=p.astype(np.float32).tolist())
                     for t, s, p in zip(window_tracks, w.start_seconds(), window_probs)]
        if side == "test":
            report = side_report
            # Track-level rows only: the window-level CIs (ten times more items) are narrower
            # and would misstate how sure we are about per-track accuracy.
            ci = evaluation.ci_from_rows([m for m in metrics if m["split"] == "test"
                                          and m["name"].startswith("track/")])
    with heartbeat.held():
        store.finish_run(run_id, {
            "epochs": epochs, "metrics": pd.DataFrame(metrics),
            "predictions": pd.DataFrame(predictions), "segment_predictions": pd.DataFrame(segments),
        }, files=outputs.files)
    return RunResult(run_id, "complete", report, ci, _summary_line(run_id, config, report, ci))


def epochs_frame(history: list[dict]) -> pd.DataFrame:
    """The loop's per-epoch history as rows of the epochs table."""
    return pd.DataFrame(history, columns=["epoch", "train_loss", "val_loss", "train_acc", "val_acc", "lr", "seconds"])


def _summary_line(run_id: str, config: TrainConfig, report, ci: dict) -> str:
    low, high = ci.get("accuracy", (float("nan"), float("nan")))
    return (f"run {run_id}: {config.model} on {config.dataset} ({config.split}) — track accuracy "
            f"{report.accuracy:.3f} [95% CI {low:.3f}-{high:.3f}] on {report.n} test tracks, "
            f"macro-F1 {report.macro_f1:.3f}")


def resume_run(store: Store, run_id: str, progress: bool = True) -> RunResult:
    """Continue an interrupted (or failed) run from its last checkpoint (from the start when
    it was stopped before its first one); refused while the run's process is alive."""
    config = TrainConfig.from_dict(resumable_run(store, run_id, pretraining=False)["config"])
    if get_spec(config.model).is_torch:
        require_checkpoint(store, run_id)
    return fit(store, config, run_id=run_id, resume=True, progress=progress)


def resumable_run(store: Store, run_id: str, *, pretraining: bool) -> dict:
    """The row of a run `train --resume` (`pretrain --resume` when `pretraining`) may continue:
    not complete, of that command, and not running in another process."""
    row = store.run(run_id)
    if row["status"] == "complete":
        raise ValueError(f"run {run_id} is already complete")
    if (row.get("representation") == BACKBONE_REPRESENTATION) != pretraining:
        raise ValueError(f"run {run_id} is a {'pretraining' if not pretraining else 'training'} run: continue it "
                         f"with {'pretrain' if not pretraining else 'train'} --resume {run_id}")
    # Two processes must never write one run's checkpoint (torchrun followers only read it).
    if row["status"] == "running" and distributed.ranks().is_main:
        raise ValueError(f"run {run_id} is still running (pid {int(row['pid'])} on {row['host']}); "
                         "stop it first")
    return row


def require_checkpoint(store: Store, run_id: str) -> None:
    """The run's folder is made by its first checkpoint (Trainer.save): a folder without one
    means the checkpoint was removed, and quietly training from epoch 1 under the word
    "resumed" would pass a new run off as the old one. No folder: it stopped before its first
    checkpoint, and epoch 1 is where it continues (the seeds make that the same run)."""
    checkpoint = _checkpoint(store, run_id)
    if checkpoint.parent.is_dir() and not checkpoint.is_file():
        raise ValueError(f"cannot resume run {run_id}: its checkpoint is missing (expected at {checkpoint}); "
                         "start a new run instead")


def _checkpoint(store: Store, run_id: str) -> Path:
    return paths.run_dir(store.path, run_id) / paths.CHECKPOINT_FILE


def train_command(store: Store, dataset: str | None, model: str | None, *, fold: int | None = None,
                  tiny: bool = False, augment: bool = True, backbone: str | None = None, **overrides) -> str:
    """What `python -m training train` does: one run, or one run per fold for k-fold.
    Prints the compact report of each run; returns the one-line summary."""
    if not dataset or not model:
        raise ValueError("train needs --dataset and --model (or --resume RUN_ID)")
    spec = get_spec(model)  # fail fast on an unknown name, before touching the data
    if spec.needs_backbone != bool(backbone):
        raise ValueError(f"{model} needs --backbone RUN|PATH (a pretraining run or backbone file: see pretrain)"
                         if spec.needs_backbone else f"--backbone is for the ssl_* models, not {model}")
    if backbone and overrides.get("representation") not in (None, "logmel"):
        raise ValueError(f"{model} reads log-mel images, as its encoder was pretrained on: drop --representation")
    if backbone:  # the encoder is read with the log-mel settings it was pretrained on
        overrides["backbone"], overrides["features"] = resolve_backbone(store, backbone)
    if not augment:
        overrides["augment"] = AugmentConfig.none()
    make = TrainConfig.tiny_preset if tiny else TrainConfig
    base = make(dataset=dataset, model=model, **overrides)
    if base.split != "kfold" or fold is not None:
        result = fit(store, dataclasses.replace(base, fold=fold or 1))
        if isinstance(result.report, ml_metrics.MultiLabelReport):
            log.info(ml_metrics.format_report(result.report, result.ci))
        elif result.report is not None:  # None on a torchrun follower rank
            log.info(evaluation.format_report(result.report, result.ci))
        return result.summary
    sweep = f"kfold-{secrets.token_hex(3)}"
    accuracies = []
    for k in range(1, base.k + 1):
        result = fit(store, dataclasses.replace(base, fold=k), sweep=sweep)
        log.info(result.summary)
        if result.report is not None:
            accuracies.append(result.report.accuracy)
    if not accuracies:
        return f"rank {distributed.ranks().rank}: trained its share of {base.k} folds ({sweep})"
    mean, std, n = evaluation.kfold_summary(accuracies)
    from genre_core.runs.pooled import pool_kfold

    pooled = pool_kfold(store, sweep)  # the experiment's one leaderboard entry
    low, high = pooled.ci
    return (f"{model} on {dataset}, {n}-fold ({sweep}): pooled out-of-fold track accuracy "
            f"{pooled.report.accuracy:.3f} [95% CI {low:.3f}-{high:.3f}] on {pooled.report.n} tracks "
            f"(run {pooled.run_id}); per fold {mean:.3f} ± {std:.3f} (mean ± sd)")
