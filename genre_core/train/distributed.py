"""Data-parallel training across processes (PyTorch DDP), launched the standard way:

    torchrun --nproc-per-node N -m training train ...      (or: train ... --gpus N)

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; each rank builds the same track-level split and
the same windows, trains on its own share of every shuffled epoch (`shard`: the k-th batches of
all ranks together are exactly the k-th batch a single process with the same total batch size
would draw), and DDP averages gradients. Rank 0 alone touches the database and the run folder
(run row, heartbeats, checkpoints, predictions): DuckDB has one writer, and a run is stored once.
Backend: NCCL on CUDA, gloo on CPU (how CI tests it). A DDP checkpoint holds the plain model's
weights, so a run resumes in a single process, or in several, from either.
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as torch_dist

log = logging.getLogger("genrelens")


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    # Started by torchrun: in a process group even when alone in it, so a one-GPU launch
    # (`torchrun --nproc-per-node 1`) runs the NCCL/DDP path that N GPUs run.
    launched: bool = False

    @property
    def enabled(self) -> bool:
        return self.launched or self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def ranks() -> Ranks:
    """This process's place, from torchrun's environment (a single process without it)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Ranks()
    return Ranks(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")),
                 launched=True)


def start(device_name: str) -> tuple[Ranks, str]:
    """Join the process group when launched by torchrun; the device name this rank uses."""
    here = ranks()
    if not here.enabled:
        return here, device_name
    cuda = device_name != "cpu" and torch.cuda.is_available()
    if cuda:  # before the group: NCCL binds each rank to the GPU current when it joins
        torch.cuda.set_device(here.local_rank)
    if not torch_dist.is_initialized():
        torch_dist.init_process_group("nccl" if cuda else "gloo")
        if here.is_main:  # the launch's proof that it trains data-parallel (benchmarks gpu checks it)
            log.info(f"data-parallel: {here.world} process(es), {torch_dist.get_backend()} backend")
    return here, f"cuda:{here.local_rank}" if cuda else "cpu"


def stop() -> None:
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def broadcast_text(text: str | None, here: Ranks) -> str:
    """Rank 0's string on every rank (the run id it made)."""
    if not here.enabled:
        return text or ""
    box = [text]
    torch_dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(order: np.ndarray, batch_size: int, here: Ranks) -> tuple[np.ndarray, int]:
    """This rank's part of one epoch's shuffled `order` and its local batch size.

    The order is padded by wrapping (as DistributedSampler does) to a multiple of the world
    size, so every rank runs the same number of steps (DDP needs that), and rank r takes every
    world-th item from r: the k-th local batches of all ranks together are the k-th global batch.
    """
    if not here.enabled:
        return order, batch_size
    per_rank = math.ceil(len(order) / here.world)
    padded = np.resize(order, per_rank * here.world)  # repeats from the start
    return padded[here.rank::here.world], max(1, batch_size // here.world)


def all_sum(values: list[float], here: Ranks) -> list[float]:
    """Element-wise sum over ranks (epoch loss and accuracy over the whole epoch, not one share)."""
    if not here.enabled:
        return values
    # NCCL reduces CUDA tensors only (a CPU tensor is refused); gloo takes CPU ones
    device = f"cuda:{torch.cuda.current_device()}" if torch_dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    torch_dist.all_reduce(tensor)
    return tensor.tolist()


def sync_buffers(model: torch.nn.Module, here: Ranks) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank. DDP broadcasts them at the
    start of each forward, so after an epoch's last step each rank holds statistics updated by
    its own share; evaluation (and early stopping) must see one model everywhere."""
    if here.enabled:
        for buffer in model.buffers():
            torch_dist.broadcast(buffer, src=0)


def wrap(model: torch.nn.Module, device: torch.device, here: Ranks) -> torch.nn.Module:
    """The module the training step calls: DDP around `model` when distributed."""
    if not here.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def torchrun_command(n_processes: int, argv: list[str]) -> list[str]:
    """`python -m training ARGV` under torchrun with N processes on this node."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n_processes}",
            "-m", "training", *argv]


def launch(n_processes: int, argv: list[str]) -> int:
    """`train ... --gpus N`: re-run this command under torchrun with N processes per node."""
    return subprocess.call(torchrun_command(n_processes, argv))
