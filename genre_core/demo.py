"""`python -m training demo`: the whole pipeline on the built-in corpus, quick on a 2-core CPU.

synth -> ingest -> k-fold of a fast baseline (out-of-fold predictions for label issues)
-> a CNN on a random split -> analyze the CNN -> dataset faults. Steps whose results are
already in the database are skipped, so a second `make demo` goes straight to the app.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from genre_core.store import Store

DEMO_NAME = "demo"


@dataclass(frozen=True)
class DemoConfig:
    root: Path = Path("data/demo")
    per_genre: int = 24
    seconds: float = 15.0
    epochs: int = 8  # enough for the CNN to beat the baselines on the demo corpus
    kfold_model: str = "logreg"  # the fastest honest model for out-of-fold label checks
    model: str = "cnn"
    device: str = "auto"
    seed: int = 0


def _complete_runs(store: Store, model: str, split_like: str) -> list[str]:
    return list(store.complete_runs(DEMO_NAME, model, split_like).run_id)


def run_demo(store: Store, config: DemoConfig, log: Callable[[str], None] = print) -> str:
    from genre_core.analysis.analyze import analyze
    from genre_core.datasets.synth.corpus import SynthConfig, generate_corpus
    from genre_core.faults.detect import detect_faults
    from genre_core.datasets.ingest import ingest
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit, train_command
    from genre_core.train.pooled import ensure_pooled

    started = time.perf_counter()
    if not (config.root / "metadata.csv").is_file():
        synth = SynthConfig(per_genre=config.per_genre, seconds=config.seconds, seed=config.seed)
        log(generate_corpus(config.root, synth, progress=True).line())
    log(ingest(store, "synth", config.root, name=DEMO_NAME).line(store.path))
    if len(_complete_runs(store, config.kfold_model, "kfold-%")) < 5:
        log(train_command(store, DEMO_NAME, config.kfold_model, split="kfold", seed=config.seed))
    ensure_pooled(store, DEMO_NAME)  # a k-fold experiment is one leaderboard entry
    runs = _complete_runs(store, config.model, "random")
    if runs:
        run_id = runs[-1]
    else:
        train = TrainConfig(dataset=DEMO_NAME, model=config.model, epochs=config.epochs,
                            device=config.device, seed=config.seed)
        result = fit(store, train)
        log(result.summary)
        run_id = result.run_id
    log(analyze(store, run_id).line())
    log(detect_faults(store, DEMO_NAME).line())
    return f"demo ready in {time.perf_counter() - started:.0f} s: open the app with `make app`"


__all__ = ["DemoConfig", "run_demo"]
