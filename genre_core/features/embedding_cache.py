"""Per-window embeddings of a frozen backbone, extracted once and kept in the shard cache.

A frozen backbone maps a window to the same vector in every epoch, fold and run, so a probe
(frozen backbone + trainable head) trains its head on these vectors: one backbone forward
per window for the life of the cache instead of one per window per epoch per fold.
Tables are keyed by (backbone, file sha1, sample rate, window length, window starts): a
second run, every k-fold fold and another process reuse them. An `EmbeddingSet` serves them
with the `.batch(rows)` interface of the `WindowSet` it was built from, row for row.
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from genre_core.features.cache import ShardCache
from genre_core.features.windows import WindowSet

EMBEDDING_VERSION = 1  # bump when a backbone's weights or front end change its output
# Embedding sets larger than this are memory-mapped (see _assemble): 1.5-s hops of GTZAN's
# 1,000 clips take 15 MB, FMA-full's 106,574 about 15 GB.
IN_RAM_BYTES = 1 << 30


def embedding_key(backbone_id: str, sha1: str, sr: int, *, window_len: int, starts: np.ndarray) -> str:
    """Cache key of one track's (n_windows, D) table; the starts encode the hop."""
    hop = int(starts[1] - starts[0]) if len(starts) > 1 else 0
    return (f"embedding-v{EMBEDDING_VERSION}-{backbone_id}-{sha1}-{sr}-{window_len}-"
            f"{hop}-{int(starts[0])}-{len(starts)}")


@dataclass
class EmbeddingSet:
    """The windows of a `WindowSet` as backbone embeddings, in the same row order.

    (W, D) float32, 800 bytes per musicnn window: in memory up to IN_RAM_BYTES (15 MB for
    GTZAN at 1.5-s hops), so batches need no cache reads (and no loader workers); a
    memory-mapped scratch file above it.
    """

    windows: WindowSet
    vectors: np.ndarray  # (W, D) float32
    in_memory = True  # tells window_loader that worker processes would only add cost

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def track_ids(self) -> list[str]:
        return self.windows.track_ids

    @property
    def labels(self) -> np.ndarray:
        return self.windows.labels

    @property
    def index(self) -> np.ndarray:
        return self.windows.index

    def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows -> ((B, D) float32 embeddings, (B,) labels, (B,) track positions)."""
        rows = np.asarray(rows)
        tracks = self.windows.index[rows, 0]
        return self.vectors[rows], self.windows.labels[tracks], tracks


def embed_windows(model: nn.Module, frontend: nn.Module, windows: WindowSet, *, shas: Sequence[str],
                  cache: ShardCache, device: torch.device, batch_size: int,
                  progress: bool = True, desc: str = "embed") -> EmbeddingSet:
    """Every window of `windows` through `frontend` and `model.embed`, extracted only for tracks
    not yet cached. `shas[p]` is track p's file sha1; `model` follows the frozen-backbone
    protocol of genre_core.models.base.GenreModel."""
    backbone_id = model.backbone_id  # once: an ssl encoder's id is a digest of its weights
    keys = [embedding_key(backbone_id, sha1, windows.sr, window_len=windows.window_len,
                          starts=windows.index[windows.rows_of(pos), 1]) for pos, sha1 in enumerate(shas)]
    todo = [pos for pos, key in enumerate(keys) if not cache.has_table(key)]
    if todo:
        _extract(model, frontend, windows, todo, keys, shas, cache, device, batch_size, progress, desc)
    tables = (cache.table(key, _vanished, sha1=sha1) for key, sha1 in zip(keys, shas))
    return EmbeddingSet(windows, _assemble(tables, len(windows), cache.root))


def _assemble(tables: Iterator[np.ndarray], n_rows: int, scratch: Path) -> np.ndarray:
    """The tracks' (n_windows, D) tables stacked into one (n_rows, D) float32 array, read one
    table at a time. Up to IN_RAM_BYTES it is an ordinary array; above, a memory-mapped file in
    `scratch` (unlinked at once, so nothing is left behind), so that the page cache, not the
    process, holds FMA-full's ~15 GB of musicnn windows."""
    first = next(tables, None)
    if first is None:
        return np.zeros((0, 0), dtype=np.float32)
    shape = (n_rows, first.shape[1])
    if shape[0] * shape[1] * 4 <= IN_RAM_BYTES:
        vectors = np.empty(shape, dtype=np.float32)
    else:
        scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=scratch, prefix="embedding-set-") as file:
            vectors = np.memmap(file, dtype=np.float32, mode="w+", shape=shape)  # maps the open file
    row = 0
    for table in itertools.chain([first], tables):
        vectors[row : row + len(table)] = table
        row += len(table)
    return vectors


@torch.no_grad()
def _extract(model, frontend, windows: WindowSet, todo: list[int], keys: list[str], shas, cache,
             device: torch.device, batch_size: int, progress: bool, desc: str) -> None:
    """Embed the windows of tracks `todo`, batched across tracks; each track's table is cached
    as soon as its last window is done, so an interrupted extraction keeps finished tracks."""
    was_training = model.training
    model.to(device).eval()  # pretrained batch-norm statistics, no dropout
    frontend = frontend.to(device).eval()
    rows = np.concatenate([np.arange(windows.offsets[p], windows.offsets[p + 1]) for p in todo])
    pending: dict[int, list[np.ndarray]] = {}
    with tqdm(total=len(rows), desc=desc, unit="window", disable=not progress, leave=False) as bar:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            audio, _, tracks = windows.batch(chunk)  # (B, L)
            x = frontend(torch.from_numpy(audio).to(device))  # (B, 1, F, T)
            vectors = model.embed(x).float().cpu().numpy()  # (B, D)
            for pos in np.unique(tracks):
                pending.setdefault(int(pos), []).append(vectors[tracks == pos])
            _flush_finished(pending, windows, chunk[-1], keys, shas, cache)
            bar.update(len(chunk))
    model.train(was_training)


def _flush_finished(pending: dict[int, list[np.ndarray]], windows: WindowSet, last_row: int,
                    keys: list[str], shas, cache: ShardCache) -> None:
    """Cache every pending track whose rows all lie at or before `last_row`."""
    for pos in [p for p in pending if windows.offsets[p + 1] - 1 <= last_row]:
        table = np.concatenate(pending.pop(pos))  # (n_windows, D)
        cache.table(keys[pos], lambda table=table: table, sha1=shas[pos])


def _vanished() -> np.ndarray:
    raise RuntimeError("embedding table vanished from the cache while in use")
