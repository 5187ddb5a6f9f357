"""Ablation sweeps: representation x augmentation x model from one small config file,
each cell an ordinary run (tagged with the sweep id), summarised as one table.

Config (TOML or JSON):

    dataset = "demo"
    models = ["cnn", "crnn", "mlp"]
    representations = ["logmel", "mfcc"]      # optional; torch models only
    reference = "cnn"                          # optional; McNemar p of every cell against it
    [augment]                                  # optional; name -> AugmentConfig fields
    none = {}                                  # {} with name "none" means all off
    default = {gain_db = 6.0}
    [train]                                    # optional TrainConfig overrides
    epochs = 10
    seed = 0
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

import numpy as np

from genre_core.metrics import evaluation
from genre_core.features.augment import AugmentConfig
from genre_core.models import get_spec
from genre_core.store import Store
from genre_core.train.config import TrainConfig
from genre_core.train.fit import fit

REPRESENTATIONS = ("logmel", "mfcc")


@dataclass(frozen=True)
class SweepSpec:
    dataset: str
    models: tuple[str, ...]
    representations: tuple[str | None, ...] = (None,)  # None: each model's own input
    augments: dict[str, AugmentConfig] = field(default_factory=lambda: {"default": AugmentConfig.default()})
    train: dict = field(default_factory=dict)
    # A model of `models` whose cells (one per representation x augmentation) every other cell
    # is compared with: McNemar on the shared test tracks ("which branch buys what").
    reference: str | None = None

    def cells(self) -> list[tuple[str, str | None, str]]:
        """(model, representation, augment name); baselines and pretrained models take only
        their own input, so they appear once per augmentation setting, not per representation."""
        out = []
        for model, rep, aug in itertools.product(self.models, self.representations, self.augments):
            spec = get_spec(model)
            fixed = not spec.is_torch or spec.input_kind in ("musicnn", "fusion")  # their input is their own
            cell = (model, None if fixed else rep, aug)
            if cell not in out:
                out.append(cell)
        return out


def load_sweep(path: Path) -> SweepSpec:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable sweep config ({exc})") from exc
    for key in ("dataset", "models"):
        if key not in raw:
            raise ValueError(f"{path}: missing '{key}'")
    reps = tuple(raw.get("representations") or [None])
    bad = [r for r in reps if r is not None and r not in REPRESENTATIONS]
    if bad:
        raise ValueError(f"{path}: unknown representation {bad[0]!r} (choose from {', '.join(REPRESENTATIONS)})")
    augments = {name: AugmentConfig.none() if name == "none" and not fields
                else dataclasses.replace(AugmentConfig.default(), **_tuples(fields))
                for name, fields in (raw.get("augment") or {"default": {}}).items()}
    for model in raw["models"]:
        if get_spec(model).needs_backbone:  # a sweep would train it on a random encoder, unsaid
            raise ValueError(f"{path}: {model} needs a pretrained encoder, which sweeps do not take: "
                             f"train it with train --model {model} --backbone RUN")
    reference = raw.get("reference")
    if reference is not None and reference not in raw["models"]:
        raise ValueError(f"{path}: reference {reference!r} is not one of the sweep's models")
    try:  # bad [train] values fail here, before any cell inserts a run row
        TrainConfig(dataset=raw["dataset"], model="any", **raw.get("train", {}))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: bad [train] settings ({exc})") from None
    return SweepSpec(raw["dataset"], tuple(raw["models"]), reps, augments, dict(raw.get("train", {})),
                     reference)


def _tuples(fields: dict) -> dict:
    """TOML/JSON give lists where AugmentConfig keeps (low, high) tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


def run_sweep(store: Store, spec: SweepSpec, progress: bool = True) -> pd.DataFrame:
    """Run every cell; a failing cell is recorded (run marked failed) and the sweep goes on."""
    sweep_id = f"sweep-{secrets.token_hex(3)}"
    rows = []
    for model, rep, aug in spec.cells():
        config = TrainConfig(dataset=spec.dataset, model=model, representation=rep,
                             augment=spec.augments[aug], **spec.train)
        row = dict(sweep=sweep_id, model=model, representation=rep or get_spec(model).input_kind,
                   augment=aug)
        try:
            result = fit(store, config, progress=progress, sweep=sweep_id)
            low, high = result.ci.get("accuracy", (None, None))
            row.update(run_id=result.run_id, accuracy=result.report.accuracy, ci_low=low,
                       ci_high=high, macro_f1=result.report.macro_f1, error=None)
        except Exception as exc:  # one broken cell must not sink the other cells' results
            row.update(run_id=None, accuracy=None, ci_low=None, ci_high=None, macro_f1=None,
                       error=f"{type(exc).__name__}: {exc}")
        rows.append(row)
    table = pd.DataFrame(rows)
    return versus_reference(store, table, spec.reference) if spec.reference else table


def versus_reference(store: Store, table: pd.DataFrame, reference: str) -> pd.DataFrame:
    """`table` (run_sweep's) plus `mcnemar_p`: each cell against the reference model's cell of
    the same representation and augmentation (or its only one), on the test tracks both scored;
    NaN for the reference itself, failed cells, or no reference run."""
    def correct(run_id: str) -> pd.Series:
        preds = store.predictions(run_id, "test").set_index("track_id")
        return preds.predicted == preds.label  # (N,) bool by track

    p_values = []
    for row in table.itertuples():
        ref = table[(table.model == reference) & (table.augment == row.augment) & table.run_id.notna()]
        ref = ref[ref.representation == row.representation] if len(ref) > 1 else ref
        if row.model == reference or row.run_id is None or pd.isna(row.run_id) or ref.empty:
            p_values.append(np.nan)
            continue
        ours, theirs = correct(row.run_id), correct(ref.run_id.iloc[0])
        shared = ours.index.intersection(theirs.index)
        p_values.append(evaluation.mcnemar(ours[shared].to_numpy(), theirs[shared].to_numpy()).p_value)
    return table.assign(mcnemar_p=p_values)
