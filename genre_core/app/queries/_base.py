"""Shared pieces of the app's queries: the database reference and one read-only query."""


from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple, Sequence

import pandas as pd

from genre_core.store import Store

BROWSER_AUDIO = (".wav", ".mp3", ".ogg", ".flac")  # played as-is; others (.au, .aiff) decoded
DUPLICATE_KINDS = ("exact_duplicate", "recording_duplicate")
# Which fault a map point is coloured by when a track has several: the most damaging first.
SEVERITY = ("unreadable", "exact_duplicate", "recording_duplicate", "label_issue", "distortion", "silence",
            "artist_repeat")
FILL_COMMAND = "make demo"  # or: python -m training demo


class DbRef(NamedTuple):
    """A database path plus a version stamp; hashable, so it keys st.cache_data."""

    path: str
    version: tuple = ()


def _path(db: DbRef | str | Path) -> Path:
    return Path(db.path if isinstance(db, DbRef) else db)


def _df(db, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
    with Store(_path(db)).read() as con:
        return con.execute(sql, list(params)).df()




_REVIEWS = """reviewed AS (
    SELECT dataset_id, track_id, kind, arg_max(decision, decided_at) AS decision,
           arg_max(note, decided_at) AS note
    FROM reviews GROUP BY ALL)"""


