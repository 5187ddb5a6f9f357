"""`python -m training demo`: the whole pipeline on the built-in corpus, quick on a 2-core CPU.

synth -> ingest -> every demo model on ONE split (artist-grouped, seeded), so the leaderboard
compares them on the same test tracks, and a multi-label baseline on it -> their ensemble -> analyze the deep model (the run the
app opens first) -> dataset faults (label issues from the faults pass's own out-of-fold model,
so no k-fold experiment with another protocol is needed). Steps whose results are already in
the database are skipped, so a second `make demo` goes straight to the app.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from genre_core.store import Store

DEMO_NAME = "demo"
ENSEMBLE_LABEL = "ensemble"


@dataclass(frozen=True)
class DemoConfig:
    root: Path = Path("data/demo")
    per_genre: int = 24
    seconds: float = 15.0
    split: str = "artist"  # no artist on two sides: the protocol every demo model shares
    baselines: tuple[str, ...] = ("logreg", "rf")  # seconds each on the cached handcrafted tables
    model: str = "cnn"  # the deep model: analysed, so the app opens on its maps and Grad-CAM
    # Multi-label (every genre of the crossover clips): a baseline on the cached tables takes
    # seconds, so the Multi-label page has a run without a second deep model's minutes.
    multilabel: str = "logreg"
    epochs: int = 8  # enough for the CNN to learn the demo corpus (see docs/benchmarks.md: demo profile)
    device: str = "auto"
    seed: int = 0

    @property
    def models(self) -> tuple[str, ...]:
        return (*self.baselines, self.model)


class Steps:
    """Timed demo steps: each logs its result line and how long it took (the demo profile)."""

    def __init__(self, log: Callable[[str], None]):
        self.log, self.seconds = log, {}

    def __call__(self, name: str, work: Callable[[], str]) -> None:
        started = time.perf_counter()
        line = work()
        self.seconds[name] = time.perf_counter() - started
        self.log(f"{line}  [{name}: {self.seconds[name]:.0f} s]")


def _latest_complete(store: Store, model: str, split: str, task: str = "single") -> str | None:
    runs = [r for r in store.complete_runs(DEMO_NAME, model, split).run_id
            if store.run(r)["config"].get("task", "single") == task]
    return str(runs[-1]) if runs else None


def _train(store: Store, config: DemoConfig, model: str, task: str = "single") -> str:
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit

    done = _latest_complete(store, model, config.split, task)
    if done:
        return f"{model}{' (multi-label)' if task != 'single' else ''}: run {done} already complete"
    train = TrainConfig(dataset=DEMO_NAME, model=model, split=config.split, epochs=config.epochs,
                        device=config.device, seed=config.seed, task=task)
    return fit(store, train).summary


def _ensemble(store: Store, config: DemoConfig) -> str:
    from genre_core.runs.ensemble import ensemble

    done = _latest_complete(store, ENSEMBLE_LABEL, config.split)
    if done:
        return f"ensemble: run {done} already complete"
    members = [_latest_complete(store, model, config.split) for model in config.models]
    return ensemble(store, [m for m in members if m], label=ENSEMBLE_LABEL).line()


def run_demo(store: Store, config: DemoConfig, log: Callable[[str], None] = print) -> str:
    from genre_core.analysis.analyze import analyze
    from genre_core.datasets.ingest import ingest
    from genre_core.datasets.synth.corpus import SynthConfig, generate_corpus
    from genre_core.faults.detect import detect_faults

    started = time.perf_counter()
    step = Steps(log)
    if not (config.root / "metadata.csv").is_file():
        synth = SynthConfig(per_genre=config.per_genre, seconds=config.seconds, seed=config.seed)
        step("synth", lambda: generate_corpus(config.root, config=synth, progress=True).line())
    step("ingest", lambda: ingest(store, "synth", config.root, name=DEMO_NAME).line(store.path))
    for model in config.models:
        step(f"train {model}", lambda model=model: _train(store, config, model))
    step(f"train {config.multilabel} multi-label", lambda: _train(store, config, config.multilabel, "multilabel"))
    step("ensemble", lambda: _ensemble(store, config))
    step(f"analyze {config.model}",
         lambda: analyze(store, _latest_complete(store, config.model, config.split)).line())
    step("faults", lambda: detect_faults(store, DEMO_NAME).line())
    profile = ", ".join(f"{name} {s:.0f} s" for name, s in step.seconds.items())
    return (f"demo ready in {time.perf_counter() - started:.0f} s ({profile}): "
            f"open the app with `make app`")


__all__ = ["DemoConfig", "run_demo"]
