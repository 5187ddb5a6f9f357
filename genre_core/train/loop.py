"""The torch training loop: epochs, early stopping, checkpoints that resume exactly, and
batched prediction. Device-agnostic; bf16 autocast on CUDA only (CPU autocast is slower)."""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from genre_core import paths
from genre_core.features.augment import AugmentConfig, augment_waveform, mixup, spec_augment
from genre_core.features.windows import WindowSet
from genre_core.models.base import fold_batch_norms, load_weights
from genre_core.train import distributed
from genre_core.train.distributed import Ranks
from genre_core.train.lifecycle import Interrupted, NonFiniteLoss  # noqa: F401 (raised here; tests import it here)

WORKERS_ENV = "GENRELENS_LOADER_WORKERS"  # override the automatic DataLoader worker count
MIN_BATCHES_FOR_WORKERS = 8  # fewer batches than this: forking workers costs more than it saves


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda when available, else cpu; an explicit "cuda" without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device (use --device auto)")
    return torch.device(name)


def start_device(name: str) -> tuple[Ranks, torch.device]:
    """This process's place among torchrun's ranks (joining their group) and its device."""
    here, device_name = distributed.start(name)
    return here, torch.device(device_name) if here.enabled else resolve_device(name)


class _WindowBatches(torch.utils.data.Dataset):
    """Item i of a list of row arrays -> one batch of windows read from the cache shards.

    Whole batches per item: one message per batch between a worker and the main process.
    Workers read only (descriptors per worker bounded by the cache's LRU); the order and every
    random draw stay in the main process, so results do not depend on the worker count.
    """

    def __init__(self, windows: WindowSet, batches: list[np.ndarray]):
        self.windows, self.batches = windows, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int):
        audio, labels, tracks = self.windows.batch(self.batches[i])
        return torch.from_numpy(audio), torch.from_numpy(labels), torch.from_numpy(tracks)


def loader_workers(n_batches: int) -> int:
    """Worker processes for a loader of n_batches: min(4, cores - 1); 0 on tiny sets."""
    configured = os.environ.get(WORKERS_ENV)
    if configured is not None:
        return max(0, int(configured))
    if n_batches < MIN_BATCHES_FOR_WORKERS:
        return 0
    return max(0, min(4, (os.cpu_count() or 1) - 1))


def window_loader(windows: WindowSet, order: np.ndarray, batch_size: int,
                  *, device: torch.device) -> torch.utils.data.DataLoader:
    """Batches of `windows` in `order` (B rows each): ((B, L) audio, (B,) labels, (B,) tracks)."""
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    # In-memory sets (a probe's cached embeddings) have nothing for a worker to read.
    workers = 0 if getattr(windows, "in_memory", False) else loader_workers(len(batches))
    return torch.utils.data.DataLoader(
        _WindowBatches(windows, batches), batch_size=None, shuffle=False, num_workers=workers,
        pin_memory=device.type == "cuda", prefetch_factor=2 if workers else None,
        persistent_workers=False,
        # Its own generator: the loader's worker seed must not draw from the global torch RNG
        # (dropout's), so a run's numbers do not depend on how its batches were loaded.
        generator=torch.Generator().manual_seed(0))


def warmup_cosine(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LR multiplier: linear warm-up to 1, then cosine decay to 0 at `total_steps`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


@dataclass
class LoopSettings:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_epochs: float
    patience: int
    grad_clip: float
    augment: AugmentConfig
    seed: int
    stop_after_epoch: int | None = None  # for tests of resume: simulate a kill after this epoch


@dataclass
class LoopState:
    epoch: int = 0
    best_val_loss: float = float("inf")
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)


CHECKPOINT_KEYS = {"model", "best", "optimizer", "scheduler", "generator", "torch_rng", "state"}


def load_reason(exc: Exception) -> str:
    """The part of a torch.load error that says why: what follows "WeightsUnpickler error:"
    (the refused global or opcode); torch's own first line would suggest weights_only=False."""
    text = str(exc)
    _, found, after = text.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (after if found else text).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(exc).__name__


def save_file(payload, path: Path) -> None:
    """torch.save `payload` to `path` atomically (paths.atomic_write: a failed write leaves
    neither a temp file nor half a file, and raises WriteError naming `path`). Written through
    a Python file: torch's own writer reports a full disk only as "unexpected pos N vs M"."""
    with paths.atomic_write(path) as tmp, open(tmp, "wb") as f:
        torch.save(payload, f)


def _require_finite(train_loss: float, epoch: int) -> None:
    """Checked on the epoch's loss summed over every rank, so all ranks of a torchrun stop
    together (one rank raising alone would leave the others waiting in a collective)."""
    if not math.isfinite(train_loss):
        raise NonFiniteLoss(f"training loss became {'NaN' if math.isnan(train_loss) else 'infinite'} at epoch "
                            f"{epoch}: the model diverged or its inputs are not finite (a lower --lr may help)")


class Trainer:
    """Owns model, front end (waveform -> features), optimiser, schedule and RNG streams."""

    def __init__(self, model: nn.Module, frontend: nn.Module, settings: LoopSettings,
                 device: torch.device, steps_per_epoch: int, sr: int, ranks: Ranks = Ranks()):
        self.model, self.frontend = model.to(device), frontend.to(device)
        self.settings, self.device, self.sr, self.ranks = settings, device, sr, ranks
        # What the training step calls: DDP around the model when launched by torchrun (it
        # averages gradients); the plain model serves prediction, checkpoints and weights.
        self.net = distributed.wrap(self.model, device, ranks)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
        total = max(1, settings.epochs * steps_per_epoch)
        warmup = int(settings.warmup_epochs * steps_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, warmup_cosine(warmup, total))
        # One explicit generator for shuffling and augmentation: saved in checkpoints, so a
        # resumed run draws exactly the numbers the uninterrupted run would have drawn.
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.state = LoopState()
        self.best_weights = copy.deepcopy(model.state_dict())
        self.autocast = device.type == "cuda"

    # -- one batch -------------------------------------------------------------------------

    def _features(self, audio: torch.Tensor | np.ndarray, train: bool) -> torch.Tensor:
        y = torch.as_tensor(audio)
        if self.device.type == "cuda" and not y.is_pinned():
            y = y.pin_memory()
        y = y.to(self.device, non_blocking=True)  # (B, L)
        if train:
            y = augment_waveform(y, self.sr, self.settings.augment, generator=self.generator)
        with torch.autocast(self.device.type, enabled=False):
            x = self.frontend(y.float())  # (B, 1, F, T), features in fp32
        if train:
            x = spec_augment(x, self.settings.augment, self.generator,
                             image_bands=getattr(self.model, "image_bands", None),
                             fill_per_row=getattr(self.frontend, "rows_on_own_scales", False))
        return x

    def _train_step(self, audio: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
        x = self._features(audio, train=True)
        labels = torch.as_tensor(labels).cpu()
        target = self._target(labels).to(self.device)
        if self.settings.augment.mixup_alpha > 0:
            x, target = mixup(x, target, self.settings.augment.mixup_alpha, generator=self.generator)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits = self.net(x).logits
        loss = self._loss(logits.float(), target)
        self._optimise(loss)
        return float(loss.detach()) * len(labels), self._correct(logits.detach().cpu(), labels)

    def _optimise(self, loss: torch.Tensor) -> None:
        """One optimiser step on `loss`: gradients clipped, the schedule advanced."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.grad_clip)
        self.optimizer.step()
        self.scheduler.step()

    # The task: one genre per window (softmax). train/multilabel.py overrides these four.
    def _target(self, labels: torch.Tensor) -> torch.Tensor:
        """(B,) class indices -> (B, C) training target."""
        return F.one_hot(labels, self._n_classes).float()

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target)

    def _correct(self, logits: torch.Tensor, labels: torch.Tensor) -> int:
        return int((logits.argmax(1) == labels).sum())

    def _window_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, C) logits -> (B, C) log-probabilities."""
        return F.log_softmax(logits, dim=1)

    # -- epochs ----------------------------------------------------------------------------

    def fit(self, train: WindowSet, val: WindowSet, n_classes: int, *, checkpoint: Path | None,
            progress: bool = True, on_epoch: Callable[[], None] | None = None) -> LoopState:
        """Train until `epochs` or early stopping; `on_epoch` is called after each checkpoint."""
        self._n_classes = n_classes
        s = self.settings
        while self.state.epoch < s.epochs:
            started = time.perf_counter()
            self.model.train()
            loss_sum, correct, seen = distributed.all_sum(self._train_epoch(train, progress), self.ranks)
            _require_finite(loss_sum / seen, self.state.epoch + 1)  # before this epoch's checkpoint
            distributed.sync_buffers(self.model, self.ranks)
            val_loss, val_acc = self.evaluate_loss(val)  # every rank: one model, one answer
            self._end_epoch(loss_sum / seen, correct / seen, val_loss, val_acc,
                            time.perf_counter() - started)
            if progress and self.ranks.is_main:
                h = self.state.history[-1]
                tqdm.write(f"epoch {h['epoch']:>3}: train loss {h['train_loss']:.3f} acc {h['train_acc']:.3f} | "
                           f"val loss {h['val_loss']:.3f} acc {h['val_acc']:.3f} | {h['seconds']:.0f} s")
            if checkpoint is not None and self.ranks.is_main:  # one writer of the run folder
                self.save(checkpoint)
            if on_epoch is not None:
                on_epoch()
            if s.stop_after_epoch is not None and self.state.epoch >= s.stop_after_epoch:
                raise Interrupted(f"stopped after epoch {self.state.epoch}")
            if self.state.bad_epochs >= s.patience:
                break
        self.model.load_state_dict(self.best_weights)
        return self.state

    def _train_epoch(self, train: WindowSet, progress: bool) -> list[float]:
        """One pass over this rank's share of a shuffled epoch: [loss sum, correct, items]."""
        order = torch.randperm(len(train), generator=self.generator).numpy()
        mine, batch_size = distributed.shard(order, self.settings.batch_size, self.ranks)
        loss_sum, correct = 0.0, 0
        for audio, labels, _ in tqdm(window_loader(train, mine, batch_size, device=self.device),
                                     desc=self._epoch_desc(), unit="batch", disable=not progress, leave=False):
            batch_loss, batch_correct = self._train_step(audio, labels)
            loss_sum, correct = loss_sum + batch_loss, correct + batch_correct
        return [loss_sum, correct, len(mine)]

    def _epoch_desc(self) -> str:
        return f"epoch {self.state.epoch + 1}/{self.settings.epochs}"

    def _end_epoch(self, train_loss, train_acc, val_loss, val_acc, seconds) -> None:
        st = self.state
        st.epoch += 1
        st.history.append(dict(epoch=st.epoch, train_loss=train_loss, val_loss=val_loss,
                               train_acc=train_acc, val_acc=val_acc,
                               lr=self.optimizer.param_groups[0]["lr"], seconds=seconds))
        if val_loss < st.best_val_loss - 1e-4:
            st.best_val_loss, st.best_epoch, st.bad_epochs = val_loss, st.epoch, 0
            self.best_weights = copy.deepcopy(self.model.state_dict())
        else:
            st.bad_epochs += 1

    def evaluate_loss(self, windows: WindowSet) -> tuple[float, float]:
        """Window-level mean cross-entropy and accuracy (NaN, NaN for an empty set)."""
        if len(windows) == 0:
            return float("nan"), float("nan")
        log_probs, _ = self.predict(windows, progress=False)
        labels = windows.labels[windows.index[:, 0]]
        loss = -log_probs[np.arange(len(labels)), labels].mean()
        return float(loss), float((log_probs.argmax(1) == labels).mean())

    @torch.no_grad()
    def predict(self, windows: WindowSet, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Every window -> ((W, C) log-probabilities, (W, D) embeddings), in index order."""
        self.model.eval()
        model = fold_batch_norms(copy.deepcopy(self.model))  # as load_run serves it, ~20% faster
        out_lp, out_emb = [], []
        bs = self.settings.batch_size * 2  # no gradients: twice the batch fits
        loader = window_loader(windows, np.arange(len(windows)), bs, device=self.device)
        for audio, _, _ in tqdm(loader, desc="predict", unit="batch", disable=not progress, leave=False):
            x = self._features(audio, train=False)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                out = model(x)
            out_lp.append(self._window_scores(out.logits.float()).cpu().numpy())
            out_emb.append(out.embedding.float().cpu().numpy())
        return np.concatenate(out_lp), np.concatenate(out_emb)

    # -- checkpoints -----------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Everything needed to continue exactly where we are (written atomically).

        Only tensors, dicts, lists, numbers and strings, so `load` can read it with
        weights_only=True (the optimizer/scheduler state dicts and LoopState are just that;
        LambdaLR stores None for its function, which __init__ rebuilds)."""
        payload = dict(model=self.model.state_dict(), best=self.best_weights,
                       optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
                       generator=self.generator.get_state(), torch_rng=torch.get_rng_state(),
                       state=dict(self.state.__dict__))
        save_file(payload, path)

    def load(self, path: Path) -> None:
        """Continue from a checkpoint written by `save`. Anything else (a planted pickle, a
        damaged file) is refused with a one-line ValueError and nothing in it runs."""
        try:
            with warnings.catch_warnings():  # e.g. "unusual pickle protocol": one line is enough
                warnings.simplefilter("ignore")
                payload = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:  # weights_only refuses code; any other failure: unusable too
            raise ValueError(f"{path}: refusing to resume from it: not a GenreLens checkpoint "
                             f"({load_reason(exc)})") from None
        if not isinstance(payload, dict) or not CHECKPOINT_KEYS <= payload.keys():
            raise ValueError(f"{path}: refusing to resume from it: not a GenreLens checkpoint")
        load_weights(self.model, payload["model"], f"{path}: refusing to resume from it")
        self.best_weights = payload["best"]
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.generator.set_state(payload["generator"])
        torch.set_rng_state(payload["torch_rng"])
        self.state = LoopState(**payload["state"])
