"""`python -m training pretrain`: a self-supervised encoder from a dataset's audio, no labels.

Positives are two segments of one track, each augmented on its own (COLA's "segments of one
recording", with the waveform and SpecAugment stages of features/augment); the other tracks
of the batch are the negatives of an NT-Xent loss (SimCLR) on a projection of the encoder's
pooled vector. With B pairs per batch each window must find its partner among 2B - 1
candidates: the epoch's "accuracy" is how often the most similar one is it.

The loop is train/loop.py's Trainer (checkpoints that resume exactly, bf16 autocast on CUDA,
DDP under torchrun, early stopping on the validation loss), given pairs instead of labelled
windows; the run is a row of the runs table like any other (heartbeat, interrupted, resumable),
whose result is a backbone file (train/backbone.py) instead of predictions. Under DDP each
rank contrasts its own share of a batch: its negatives are its local pairs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from genre_core import paths
from genre_core.features.cache import ShardCache
from genre_core.features.pipeline import input_pipeline
from genre_core.features.settings import AugmentConfig
from genre_core.features.windows import WindowSet, build_windows, servable_tracks
from genre_core.models.ssl import ENCODERS, ContrastiveNet, encoder_net
from genre_core.runs.record import new_run_id
from genre_core.store import BACKBONE_REPRESENTATION, Store
from genre_core.train import distributed
from genre_core.train.backbone import save_backbone
from genre_core.train.config import PretrainConfig, TrainConfig
from genre_core.train.fit import (announce, choose_split, epochs_frame, require_checkpoint, resumable_run,
                                  seed_everything)
from genre_core.train.lifecycle import recorded
from genre_core.train.loop import LoopSettings, Trainer, start_device, window_loader

log = logging.getLogger("genrelens")

MODEL_LABEL = "ssl_pretrain"  # runs.model of a pretraining run
NO_MODEL = "a self-supervised backbone, no genre classifier: train one with --model ssl_probe --backbone RUN"


@dataclass
class PretrainResult:
    run_id: str
    status: str
    backbone: Path | None = None
    history: list[dict] = field(default_factory=list)
    summary: str = ""


# -- pairs and the loss ----------------------------------------------------------------------


def segment_pairs(windows: WindowSet, passes: int, generator: torch.Generator) -> np.ndarray:
    """(passes * n_tracks, 2) window rows: per pass every track once, in a fresh random order,
    with two of its segments (distinct when it has more than one)."""
    counts = np.diff(windows.offsets)
    tracks = np.flatnonzero(counts > 0)
    out = []
    for _ in range(passes):
        order = tracks[torch.randperm(len(tracks), generator=generator).numpy()]
        u = torch.rand((len(order), 2), generator=generator, dtype=torch.float64).numpy()
        n = counts[order]
        first = np.floor(u[:, 0] * n).astype(np.int64)
        second = np.floor(u[:, 1] * np.maximum(n - 1, 1)).astype(np.int64)
        second = np.where(n > 1, second + (second >= first), first)  # skip `first` itself
        out.append(windows.offsets[order][:, None] + np.stack([first, second], axis=1))
    return np.concatenate(out) if out else np.zeros((0, 2), dtype=np.int64)


def nt_xent(z: torch.Tensor, temperature: float) -> tuple[torch.Tensor, int]:
    """NT-Xent over (2B, P) projections of B pairs, partners adjacent (rows 2i, 2i + 1): the mean
    cross-entropy of finding each row's partner among the other 2B - 1 rows, and how many rows'
    most similar other row is their partner."""
    z = F.normalize(z, dim=1)
    sim = z @ z.T / temperature  # (2B, 2B) cosine similarities
    sim = sim.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), float("-inf"))
    partner = torch.arange(len(z), device=z.device) ^ 1  # 0 <-> 1, 2 <-> 3, ...
    return F.cross_entropy(sim, partner), int((sim.argmax(1) == partner).sum())


class ContrastiveTrainer(Trainer):
    """The Trainer on pairs: an epoch draws `pairs_per_track` pairs of segments per track from
    its generator (so a resumed run draws what the uninterrupted one would have), a batch holds
    `batch_size` pairs; the validation loss is on one fixed draw of pairs, unaugmented."""

    def __init__(self, *args, temperature: float, pairs_per_track: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.temperature, self.pairs_per_track = temperature, pairs_per_track

    def _train_epoch(self, train: WindowSet, progress: bool) -> list[float]:
        pairs = segment_pairs(train, self.pairs_per_track, self.generator)
        mine, batch_size = distributed.shard(np.arange(len(pairs)), self.settings.batch_size, self.ranks)
        loss_sum, correct, seen = 0.0, 0, 0
        loader = window_loader(train, pairs[mine].reshape(-1), 2 * batch_size, device=self.device)
        for audio, _, _ in tqdm(loader, desc=self._epoch_desc(), unit="batch", disable=not progress, leave=False):
            if len(audio) < 4:  # one pair has no negative to tell its partner from (equal on every rank)
                continue
            x = self._features(audio, train=True)  # each window augmented on its own
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                z = self.net(x)  # (2B, P)
            loss, hits = nt_xent(z.float(), self.temperature)
            self._optimise(loss)
            loss_sum, correct, seen = loss_sum + float(loss.detach()) * len(audio), correct + hits, seen + len(audio)
        return [loss_sum, correct, seen]

    @torch.no_grad()
    def evaluate_loss(self, windows: WindowSet) -> tuple[float, float]:
        """(mean NT-Xent, partner-found rate) on fixed pairs of `windows`; (NaN, NaN) if none."""
        self.model.eval()
        pairs = segment_pairs(windows, 1, torch.Generator().manual_seed(self.settings.seed))
        loss_sum, correct, seen = 0.0, 0, 0
        for audio, _, _ in window_loader(windows, pairs.reshape(-1), 2 * self.settings.batch_size, device=self.device):
            if len(audio) < 4:
                continue
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                z = self.model(self._features(audio, train=False))
            loss, hits = nt_xent(z.float(), self.temperature)
            loss_sum, correct, seen = loss_sum + float(loss) * len(audio), correct + hits, seen + len(audio)
        return (loss_sum / seen, correct / seen) if seen else (float("nan"), float("nan"))


# -- the run ---------------------------------------------------------------------------------


def pretrain(store: Store, config: PretrainConfig, *, run_id: str | None = None, resume: bool = False,
             progress: bool = True, stop_after_epoch: int | None = None) -> PretrainResult:
    """Pretrain an encoder and store the run; it ends 'complete' with its backbone file,
    'failed' when it raises, or 'interrupted' (resumable) on Ctrl-C / SIGTERM."""
    if config.encoder not in ENCODERS:  # before any run row exists
        raise ValueError(f"unknown encoder {config.encoder!r}; valid encoders: {', '.join(ENCODERS)}")
    here, device = start_device(config.device)
    try:
        seed_everything(config.seed)
        sides = _sides(store, config)
        if not here.is_main:  # a follower: trains its share; rank 0 alone writes the run
            run_id = distributed.broadcast_text(None, here)
            _train(store, config, sides, run_id, resume, False, stop_after_epoch, None, device, here)
            return PretrainResult(run_id, "follower", summary=f"rank {here.rank}: trained its share of run {run_id}")
        run_id = distributed.broadcast_text(run_id or new_run_id(MODEL_LABEL), here)
        _start(store, config, sides, run_id, resume, device)
        if progress:
            announce(store, run_id, resume, "pretrain")
        with recorded(store, run_id) as heartbeat:
            trainer = _train(store, config, sides, run_id, resume, progress, stop_after_epoch, heartbeat.nudge,
                             device, here)
            path = paths.run_dir(store.path, run_id) / paths.BACKBONE_FILE
            sha = save_backbone(path, trainer.model.encoder, encoder_name=config.encoder, tiny=config.tiny,
                                features=config.features, window_s=config.window_s, dataset=config.dataset,
                                run_id=run_id)
            with heartbeat.held():
                store.finish_run(run_id, {"epochs": epochs_frame(trainer.state.history)}, files={paths.BACKBONE_FILE: sha})
        history = trainer.state.history
        return PretrainResult(run_id, "complete", path, history, _summary(run_id, config, sides, trainer))
    finally:
        distributed.stop()


def resume_pretraining(store: Store, run_id: str, progress: bool = True) -> PretrainResult:
    """Continue an interrupted pretraining from its last checkpoint, to the weights an
    uninterrupted run would have reached."""
    config = PretrainConfig.from_dict(resumable_run(store, run_id, pretraining=True)["config"])
    require_checkpoint(store, run_id)
    return pretrain(store, config, run_id=run_id, resume=True, progress=progress)


def _sides(store: Store, config: PretrainConfig) -> dict[str, pd.DataFrame]:
    """The tracks to learn from and the few held out to measure the loss on (seeded)."""
    tracks = store.tracks(config.dataset)
    if config.split is not None:  # never the split's test tracks
        split = choose_split(TrainConfig(config.dataset, "cnn", split=config.split, seed=config.seed), tracks)
        tracks = tracks[tracks.track_id.isin(set(split.train) | set(split.val))]
    n_val = max(2, round(config.val_share * len(tracks)))
    if len(tracks) - n_val < 2:
        raise ValueError(f"dataset {config.dataset!r} has {len(tracks)} usable tracks to pretrain on: "
                         "it takes at least 4 (pairs need other tracks as negatives)")
    order = np.random.default_rng(config.seed).permutation(len(tracks))
    return {"train": tracks.iloc[order[n_val:]], "val": tracks.iloc[order[:n_val]]}


def _start(store: Store, config: PretrainConfig, sides: dict[str, pd.DataFrame], run_id: str, resume: bool,
           device: torch.device) -> None:
    if resume:
        store.restart_run(run_id)
        return
    store.start_run(dict(run_id=run_id, dataset_id=int(store.dataset(config.dataset)["dataset_id"]),
                         model=MODEL_LABEL, representation=BACKBONE_REPRESENTATION,
                         split=config.split or "all", config={**config.to_dict(), "no_model": NO_MODEL},
                         device=str(device), seed=config.seed, sweep=None, classes=[]))


def _train(store: Store, config: PretrainConfig, sides: dict[str, pd.DataFrame], run_id: str, resume: bool,
           progress: bool, stop_after_epoch: int | None, on_epoch, device: torch.device,
           here: distributed.Ranks) -> ContrastiveTrainer:
    frontend, sr, n_bins = input_pipeline("logmel", config.features)
    cache = ShardCache(paths.cache_dir(store.path))
    windows = {}
    for side, tracks in sides.items():
        tracks = servable_tracks(tracks, cache, sr=sr, desc=f"load {side}", progress=progress)
        classes = list(dict.fromkeys(tracks["label"]))  # carried by the windows, never read
        windows[side] = build_windows(tracks, classes, cache, sr=sr, window_s=config.window_s, hop_s=config.hop_s,
                                      desc=f"windows {side}", progress=progress)
    net = ContrastiveNet(encoder_net(config.encoder, n_bins, config.tiny), config.proj_dim)
    settings = LoopSettings(config.epochs, config.batch_size, config.lr, config.weight_decay, config.warmup_epochs,
                            config.patience, config.grad_clip, config.augment, config.seed, stop_after_epoch)
    n_pairs = config.pairs_per_track * int((np.diff(windows["train"].offsets) > 0).sum())
    per_rank, local_batch = distributed.shard(np.arange(n_pairs), config.batch_size, here)
    trainer = ContrastiveTrainer(net, frontend, settings, device, -(-len(per_rank) // local_batch), sr, here,
                                 temperature=config.temperature, pairs_per_track=config.pairs_per_track)
    checkpoint = paths.run_dir(store.path, run_id) / paths.CHECKPOINT_FILE
    if resume and checkpoint.is_file():
        trainer.load(checkpoint)
    trainer.fit(windows["train"], windows["val"], 0, checkpoint=checkpoint, progress=progress, on_epoch=on_epoch)
    return trainer


def _summary(run_id: str, config: PretrainConfig, sides: dict[str, pd.DataFrame], trainer: Trainer) -> str:
    best = trainer.state.history[trainer.state.best_epoch - 1] if trainer.state.best_epoch else trainer.state.history[-1]
    return (f"run {run_id}: {config.encoder} encoder pretrained on {len(sides['train'])} tracks of {config.dataset} "
            f"({len(trainer.state.history)} epochs, best {best['epoch']}): validation NT-Xent {best['val_loss']:.3f}, "
            f"partner found for {best['val_acc']:.0%} of held-out segments; use it with "
            f"train --model ssl_probe --backbone {run_id}")


def pretrain_command(store: Store, dataset: str | None, *, out: Path | None = None, tiny: bool = False,
                     augment: bool = True, **overrides) -> str:
    """What `python -m training pretrain` does; returns the one-line summary."""
    if not dataset:
        raise ValueError("pretrain needs --dataset (or --resume RUN_ID)")
    store.dataset(dataset)  # an unknown name fails here, before any run row exists
    if tiny:
        overrides = {"epochs": 2, "tiny": True, **overrides}
    if not augment:
        overrides["augment"] = AugmentConfig.none()
    result = pretrain(store, PretrainConfig(dataset=dataset, **overrides))
    if out is not None and result.backbone is not None:  # None on a torchrun follower
        return f"{result.summary}; backbone copied to {paths.atomic_copy(result.backbone, out)}"
    return result.summary
