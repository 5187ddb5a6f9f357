"""Track-level test accuracy of every model family on one shared split of the demo corpus
(the demo's protocol: artist-grouped, seed 0), and of their calibrated ensemble."""

from __future__ import annotations

import time

import pandas as pd

from genre_core.runs.demo import DemoConfig
from genre_core.runs.ensemble import ensemble
from genre_core.models import MODELS
from genre_core.train.config import TrainConfig
from genre_core.train.fit import fit

# The replicas of the published projects' pipelines: the baselines to beat.
REPLICAS = {"mlp": "replica: handcrafted 57 features + MLP", "cnn_small": "replica: small CNN on 128x128 mel"}


def run(store, args) -> pd.DataFrame:
    names = args.models or list(MODELS)
    rows = []
    for name in names:
        spec = MODELS[name]
        if spec.family == "pretrained" and name.endswith("finetune") and args.device != "cuda":
            continue  # whole-network fine-tuning is a GPU job; the probe covers the CPU
        config = TrainConfig(dataset="demo", model=name, split=DemoConfig.split, epochs=args.epochs,
                             device=args.device, seed=0)
        started = time.perf_counter()
        result = fit(store, config, progress=False)
        low, high = result.ci["accuracy"]
        rows.append(dict(model=name, family=spec.family, note=REPLICAS.get(name, ""),
                         accuracy=result.report.accuracy, ci=f"[{low:.2f}, {high:.2f}]",
                         macro_f1=result.report.macro_f1, test_tracks=result.report.n,
                         seconds=time.perf_counter() - started, run_id=result.run_id))
        print(f"  {name:18s} acc {result.report.accuracy:.3f} [{low:.2f}, {high:.2f}]  "
              f"({rows[-1]['seconds']:.0f} s)", flush=True)
    if len(rows) >= 2:  # what the families achieve together, on the same test tracks
        started = time.perf_counter()
        summary = ensemble(store, [r["run_id"] for r in rows])
        low, high = summary.ci
        rows.append(dict(model="ensemble", family="ensemble", note=f"mean of {len(rows)} calibrated runs",
                         accuracy=summary.accuracy, ci=f"[{low:.2f}, {high:.2f}]", macro_f1=_test_metric(
                             store, summary.run_id, "track/macro_f1"),
                         test_tracks=rows[0]["test_tracks"], seconds=time.perf_counter() - started,
                         run_id=summary.run_id))
    table = pd.DataFrame(rows)
    print()
    print(table.drop(columns=["run_id"]).to_markdown(index=False, floatfmt=".3f"))
    return table


def _test_metric(store, run_id: str, name: str) -> float:
    metrics = store.metrics(run_id)
    values = metrics.value[(metrics.split == "test") & (metrics.name == name)]
    return float(values.iloc[0]) if len(values) else float("nan")
