"""Reads about where a run fails systematically: its stored failure slices."""

from __future__ import annotations

import pandas as pd

from genre_core.app.queries._db import _df


def failure_slices(db, run_id: str) -> pd.DataFrame:
    """The run's failure slices (genre_core.analysis.slices: every failure_slices column but
    run_id) by rank, significant ones first; empty before `analyze` stored any."""
    frame = _df(db, "SELECT * EXCLUDE (run_id) FROM failure_slices WHERE run_id = ? ORDER BY rank", [run_id])
    frame["significant"] = frame["significant"].astype(bool)
    return frame


def concept_scores(db, run_id: str) -> pd.DataFrame:
    """The run's TCAV concept scores (genre_core.analysis.concepts.CONCEPT_COLUMNS), significant
    first; empty before `analyze` stored any (or in a database without the table)."""
    frame = _df(db, "SELECT * EXCLUDE (run_id) FROM concept_scores WHERE run_id = ? ORDER BY significant DESC, q",
                [run_id])
    frame["significant"] = frame["significant"].astype(bool)
    return frame


def concept_pushes(db, run_id: str, track_id: str) -> pd.DataFrame:
    """The significant concepts' push on one misclassified test track toward its predicted
    genre (genre_core.analysis.concepts.explain_misclassified), strongest first."""
    return _df(db, """SELECT concept, derivative, agreement, presence, pushes_to_predicted FROM concept_pushes
                      WHERE run_id = ? AND track_id = ? ORDER BY derivative DESC""", [run_id, track_id])
