"""Reads for explaining a prediction (issue 24): each mistake's closest correct tracks, the
faithfulness of a run's explanation method, the predictions of a track's musical variants,
and which run's explanations a run without a network of its own shows.

A database made before these tables existed has none of them: every read then returns an
empty frame (explanation_source still answers from the runs and attributions tables).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from genre_core.app.queries._db import _df

__all__ = ["contrast_neighbours", "faithfulness", "variant_predictions", "explanation_source"]

CONTRAST_COLUMNS = ["side", "rank", "neighbour_id", "distance", "label", "predicted", "explained", "playable"]
FAITHFULNESS_COLUMNS = ["method", "mask", "k", "measure", "value", "ci_low", "ci_high", "n"]
VARIANT_COLUMNS = ["variant", "probs"]


def _has_table(db, name: str) -> bool:
    return bool(_df(db, "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = ?",
                    [name]).n.iloc[0])


def contrast_neighbours(db, run_id: str, track_id: str) -> pd.DataFrame:
    """A misclassified track's closest correctly classified tracks in the run's embedding
    space: side ("true": of its true genre, listed first; "predicted": of the genre the run
    called it), rank (1 = closest), neighbour_id, distance (cosine), label, predicted (by this
    run), explained (the run stored Grad-CAM for it), playable (its file is usable). Empty for
    a correctly classified track, a run analysed before contrast tracks existed, or a run
    without a network of its own (ask its `explanation_source` run instead)."""
    if not _has_table(db, "contrast_neighbours"):
        return pd.DataFrame(columns=CONTRAST_COLUMNS)
    return _df(db, """
        WITH run AS (SELECT dataset_id FROM runs WHERE run_id = ?)
        SELECT c.side, c.rank, c.neighbour_id, c.distance, t.label, p.predicted,
               EXISTS (SELECT 1 FROM attributions a
                       WHERE a.run_id = c.run_id AND a.track_id = c.neighbour_id) AS explained,
               coalesce(t.status = 'ok', false) AS playable
        FROM contrast_neighbours c CROSS JOIN run
        LEFT JOIN tracks t ON t.dataset_id = run.dataset_id AND t.track_id = c.neighbour_id
        LEFT JOIN predictions p ON p.run_id = c.run_id AND p.track_id = c.neighbour_id
        WHERE c.run_id = ? AND c.track_id = ?
        ORDER BY c.side = 'predicted', c.rank""", [run_id, run_id, track_id])


def faithfulness(db, run_id: str) -> pd.DataFrame:
    """The run's faithfulness table: method, mask ("explained" | "random" | "explained - random",
    the per-track difference), k (share of the
    attribution kept: 0.10, 0.25, 0.50), measure ("keep_rate" | "drop_in" | "drop_out"),
    value, ci_low, ci_high (bootstrap 95% CI), n (tracks), by method, measure, k, mask."""
    if not _has_table(db, "faithfulness"):
        return pd.DataFrame(columns=FAITHFULNESS_COLUMNS)
    return _df(db, """SELECT method, mask, k, measure, value, ci_low, ci_high, n FROM faithfulness
                      WHERE run_id = ? ORDER BY method, measure, k, mask""", [run_id])


def variant_predictions(db, run_id: str, track_id: str) -> pd.DataFrame:
    """The run's track-level probabilities for the track's musical variants: variant, probs
    ((C,) float32 array in the run's class order), by variant name."""
    if not _has_table(db, "variant_predictions"):
        return pd.DataFrame(columns=VARIANT_COLUMNS)
    frame = _df(db, """SELECT variant, probs FROM variant_predictions
                       WHERE run_id = ? AND track_id = ? ORDER BY variant""", [run_id, track_id])
    frame["probs"] = [np.asarray(p, dtype=np.float32) for p in frame.probs]
    return frame


# -- which run's explanations to show -------------------------------------------------------


def explanation_source(db, run_id: str, track_id: str | None = None) -> tuple[str | None, str]:
    """(the run whose explanations to show for `run_id`, the note the page shows beside them).

    A run with a network of its own and Grad-CAM maps: (run_id, ""). An ensemble: its best
    member by test accuracy that has maps. A pooled k-fold run: the fold that tested
    `track_id` when given and explained, else the best explained fold. (None, why) when there
    is nothing to show: an imported run, a run not analysed yet, a model without a conv layer.
    """
    runs = _runs(db, [run_id])
    if runs.empty:
        return None, f"Run {run_id} is not a complete run of this database."
    run = runs.iloc[0]
    config = _config(run.config)
    if not config.get("no_model"):
        if run.explained:
            return run_id, ""
        return None, _unexplained(run)
    if config.get("members"):
        return _from_ensemble(db, [str(m) for m in config["members"]])
    if config.get("folds"):
        return _from_folds(db, [str(f) for f in config["folds"]], track_id)
    return None, f"No explanations: {config['no_model']}."


def _runs(db, run_ids: list[str], track_id: str | None = None) -> pd.DataFrame:
    """Complete runs among `run_ids`, in that order: run_id, model, split, config, accuracy
    (test), explained (has Grad-CAM), analysed (has embeddings), tested (track_id in its test
    split)."""
    frame = _df(db, """
        SELECT r.run_id, r.model, r.representation, r.split, r.config,
               (SELECT max(m.value) FROM metrics m WHERE m.run_id = r.run_id AND m.split = 'test'
                   AND m.name = 'track/accuracy') AS accuracy,
               EXISTS (SELECT 1 FROM attributions a WHERE a.run_id = r.run_id) AS explained,
               EXISTS (SELECT 1 FROM embeddings e WHERE e.run_id = r.run_id) AS analysed,
               EXISTS (SELECT 1 FROM predictions p WHERE p.run_id = r.run_id AND p.split = 'test'
                   AND p.track_id = ?) AS tested
        FROM runs r WHERE list_contains(?, r.run_id) AND r.status = 'complete'""", [track_id, run_ids])
    order = {r: i for i, r in enumerate(run_ids)}
    return frame.sort_values("run_id", key=lambda s: s.map(order)).reset_index(drop=True)


def _config(value) -> dict:
    try:
        parsed = json.loads(value) if isinstance(value, str) else (value or {})
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _unexplained(run: pd.Series) -> str:
    if run.representation == "handcrafted":  # a baseline on a feature table: no spectrogram to map
        return (f"No explanations: run {run.run_id} ({run.model}) classifies handcrafted features, "
                "so there is no spectrogram for Grad-CAM to map.")
    if run.analysed:
        return (f"No explanations: run {run.run_id} ({run.model}) was analysed, but its model has no "
                "convolutional layer for Grad-CAM.")
    return (f"No explanations yet: run {run.run_id} has not been analysed "
            f"(`genrelens analyze --run {run.run_id}`).")


def _best_first(members: pd.DataFrame) -> pd.DataFrame:
    # Stable: equal accuracies keep the recorded member order.
    return members.sort_values("accuracy", ascending=False, na_position="last", kind="stable")


def _from_ensemble(db, member_ids: list[str]) -> tuple[str | None, str]:
    members = _best_first(_runs(db, member_ids))
    explained = members[members.explained]
    if explained.empty:
        names = ", ".join(f"{m.model} (run {m.run_id})" for m in members.itertuples()) or "none complete"
        return None, ("No explanations: the ensemble has no network of its own, and none of its "
                      f"members has Grad-CAM maps ({names}; analyse one with `genrelens analyze --run`).")
    chosen = explained.iloc[0]
    same_model = (members.model == chosen.model).sum() > 1
    name = f"{chosen.model} (run {chosen.run_id})" if same_model else str(chosen.model)
    which = "best member" if chosen.run_id == members.run_id.iloc[0] else "best member with explanations"
    return str(chosen.run_id), (f"Explanations from member {name} (the ensemble's {which}): "
                                "the ensemble has no network of its own")


def _fold_name(split: str, position: int, k: int) -> str:
    found = re.fullmatch(r"kfold-(\d+)/(\d+)", split or "")
    return f"fold {found[1]} of {found[2]}" if found else f"fold {position} of {k}"


def _from_folds(db, fold_ids: list[str], track_id: str | None) -> tuple[str | None, str]:
    folds = _runs(db, fold_ids, track_id)
    folds["name"] = [_fold_name(s, fold_ids.index(r) + 1, len(fold_ids)) for s, r in zip(folds.split, folds.run_id)]
    own = " the pooled k-fold result has no network of its own"
    tester = folds[folds.tested]
    if len(tester) and tester.explained.iloc[0]:
        fold = tester.iloc[0]
        return str(fold.run_id), (f"Explanations from {fold.name} ({fold.model}, run {fold.run_id}), "
                                  f"the fold that tested this track:{own}")
    explained = _best_first(folds[folds.explained])
    if explained.empty:
        return None, f"No explanations: none of the {len(fold_ids)} folds has Grad-CAM maps, and{own}."
    fold = explained.iloc[0]
    note = f"Explanations from {fold.name} ({fold.model}, run {fold.run_id}), the best fold with explanations:{own}"
    if len(tester):  # that fold's model saw this track in training or validation: say so
        note += (f"; {tester.name.iloc[0]}, which tested this track, has none, so this model saw "
                 "the track while it was trained")
    return str(fold.run_id), note
