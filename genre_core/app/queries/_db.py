"""The database reference every query takes, the one read-only query they all run through,
and the SQL fragment several of them share."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Sequence

import pandas as pd

from genre_core.store import Store


class DbRef(NamedTuple):
    """A database path plus a version stamp; hashable, so it keys st.cache_data."""

    path: str
    version: tuple = ()


def _path(db: DbRef | str | Path) -> Path:
    return Path(db.path if isinstance(db, DbRef) else db)


def _df(db, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
    with Store(_path(db)).read() as con:
        return con.execute(sql, list(params)).df()


# The latest verdict per finding: a person may change their mind, the last decision counts.
_REVIEWS = """reviewed AS (
    SELECT dataset_id, track_id, kind, arg_max(decision, decided_at) AS decision,
           arg_max(note, decided_at) AS note
    FROM reviews GROUP BY ALL)"""
