"""Story mode (pages/story.py): five steps a lecturer clicks through, from how good the model
is to what honest evaluation changes. What each step shows is chosen here, as plain
functions of the run's tables, so it is tested without streamlit.
"""

from __future__ import annotations

from typing import Callable

import pandas as pd

from genre_core.app import queries as q

STEPS = ("How good is the model?", "Where does it fail?", "One mistake you can hear",
         "What the data gets wrong", "What honest evaluation changes")
MISTAKES_LOOKED_AT = 30  # the most confident mistakes searched for one with a map to hear


def headline(run: pd.Series) -> str:
    """Step 1 in one sentence: the run's test accuracy, its 95% CI and chance (plain text)."""
    n_classes = max(1, int(run.n_classes))
    if pd.isna(run.accuracy):
        return f"This run has no test results: nothing to say about how good it is. Chance is {1 / n_classes:.0%}."
    ci = (f" (95% confidence interval {run.ci_low:.0%} to {run.ci_high:.0%})"
          if pd.notna(run.ci_low) and pd.notna(run.ci_high) else "")
    return (f"On {int(run.n_test)} test songs it never heard in training, the model names the right genre "
            f"{run.accuracy:.0%} of the time{ci}. Guessing among its {n_classes} genres would be right "
            f"{1 / n_classes:.0%} of the time.")


def chance_rows(run: pd.Series) -> pd.DataFrame:
    """The run and chance as accuracy_ci rows (charts.CI_COLUMNS)."""
    chance = 1 / max(1, int(run.n_classes))
    return pd.DataFrame({"run_id": [run.run_id, "chance"], "label": [f"{run.model}", "guessing"],
                         "accuracy": [run.accuracy, chance], "ci_low": [run.ci_low, chance],
                         "ci_high": [run.ci_high, chance]})


def top_pattern(slices: pd.DataFrame) -> pd.Series | None:
    """The run's worst significant failure slice (failure_slices rows), None when none passed."""
    passed = slices[slices.significant] if len(slices) else slices
    return None if passed.empty else passed.sort_values("rank").iloc[0]


def worst_cell(cells: pd.DataFrame) -> tuple[str, str] | None:
    """(true, predicted) of the confusion's largest off-diagonal cell (confusion rows: label,
    predicted, n), None when there is no mistake."""
    off = cells[(cells.label != cells.predicted) & (cells.n > 0)]
    if off.empty:
        return None
    row = off.sort_values("n", ascending=False, kind="stable").iloc[0]
    return str(row.label), str(row.predicted)


def instructive_mistake(predictions: pd.DataFrame, pattern: pd.Series | None,
                        explained: Callable[[str], bool]) -> str | None:
    """The mistake to hear: among the MISTAKES_LOOKED_AT most confident wrong test tracks
    (predictions: track_id, correct, confidence), those in the top failure pattern first, the
    first one `explained` (it has a map of what the model heard); else the most confident
    mistake; None when the run made none."""
    wrong = predictions[~predictions.correct.astype(bool)].sort_values("confidence", ascending=False, kind="stable")
    if wrong.empty:
        return None
    in_pattern = set(pattern.track_ids) if pattern is not None else set()
    order = sorted(wrong.track_id.head(MISTAKES_LOOKED_AT), key=lambda t: t not in in_pattern)
    return next((t for t in order if explained(t)), str(wrong.track_id.iloc[0]))


def duplicate_pair(groups: pd.DataFrame) -> pd.DataFrame:
    """Two members of one duplicate group to hear (duplicate_groups rows), exact copies first;
    empty when the dataset has none."""
    if groups.empty:
        return groups
    first = groups.sort_values(["kind", "group_id"], key=lambda c: c != "exact_duplicate" if c.name == "kind" else c,
                               kind="stable").group_id.iloc[0]
    return groups[groups.group_id == first].head(2)


def honest_pair(board: pd.DataFrame, run: pd.Series) -> pd.DataFrame:
    """The run and an artist-split run of the same model on the same dataset (leaderboard
    rows, labelled for accuracy_ci), or empty when no such pair is stored."""
    same = board[(board.dataset_id == run.dataset_id) & (board.model == run.model) & board.accuracy.notna()]
    artist = same[same.split == "artist"]
    leaky = same[same.split != "artist"]
    if artist.empty or leaky.empty:
        return board.iloc[:0]
    chosen = leaky[leaky.run_id == run.run_id]
    pair = pd.concat([chosen if len(chosen) else leaky.head(1), artist.head(1)])
    words = {"artist": "artists kept apart (honest)"}
    return pair.assign(label=[f"{words.get(s, f'{s} split: an artist on both sides')}" for s in pair.split])


def explained_maps(db, run_id: str, track_id: str) -> tuple[str | None, dict]:
    """(the run whose maps explain the track, {genre: Grad-CAM map}); (None, {}) without any."""
    source, _ = q.explanation_source(db, run_id, track_id)
    if source is None:
        return None, {}
    maps = q.attributions(db, source, track_id)
    maps = maps[maps.method == "gradcam"]
    return source, dict(zip(maps.target, maps["values"]))


def mistake_to_hear(db, run_id: str) -> str | None:
    """The run's most instructive explained mistake (instructive_mistake over its stored test
    predictions and failure slices): where the Story's third step and the Track page open."""
    pattern = top_pattern(q.failure_slices(db, run_id))
    return instructive_mistake(q.predictions(db, run_id, "test"), pattern,
                               lambda t: bool(explained_maps(db, run_id, t)[1]))
