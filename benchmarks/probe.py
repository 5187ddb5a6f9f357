"""A frozen-backbone probe (musicnn_probe) trained twice on the same data in the same run:
first with no cached embeddings (every window through the backbone), then with them cached
(genre_core.features.embedding_cache): the head alone trains. The decoded audio is cached
before both, in a fresh cache folder, so the difference is the embeddings alone."""

from __future__ import annotations

import os
import tempfile
import time

from genre_core import paths
from genre_core.engine import EngineOptions, chunked, map_chunks
from genre_core.features.extract import cache_tracks, model_rate
from genre_core.train.config import TrainConfig
from genre_core.train.fit import fit

MODEL = "musicnn_probe"


def run(store, args) -> None:
    epochs = 1 if getattr(args, "quick", False) else min(args.epochs, 5)
    config = TrainConfig(dataset="demo", model=MODEL, epochs=epochs, device=args.device, seed=0)
    saved = os.environ.get(paths.CACHE_ENV)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ[paths.CACHE_ENV] = tmp
        try:
            items = list(store.tracks("demo")[["track_id", "path", "sha1"]].itertuples(index=False, name=None))
            for _ in map_chunks(cache_tracks, chunked(items, 8), args=(tmp, model_rate(MODEL)), options=EngineOptions(workers=1)):
                pass
            for _ in range(2):
                started = time.perf_counter()
                fit(store, config, progress=False)
                times.append(time.perf_counter() - started)
        finally:
            if saved is None:
                os.environ.pop(paths.CACHE_ENV, None)
            else:
                os.environ[paths.CACHE_ENV] = saved
    uncached, cached = times
    print(f"{MODEL}, {epochs} epoch(s), {len(items)} tracks, audio already cached:")
    print(f"  embeddings uncached: {uncached:.1f} s   cached: {cached:.1f} s   ({uncached / cached:.2f}x)")
    if (ratios := getattr(args, "ratios", None)) is not None:
        ratios.add(f"{MODEL} training, cached embeddings vs uncached", cached, uncached, "s")
