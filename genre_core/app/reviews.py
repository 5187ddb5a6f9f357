"""The app's one write: a person's verdicts on fault findings (everything else it reads).

A verdict is saved the moment it is given, and a cleared one (back to undecided) too; every
change also goes to the review history with the app server's user name (no accounts: who ran
the server is who reviewed) and the time."""

from __future__ import annotations

import getpass
from typing import Iterable, Mapping

from genre_core.app.queries._db import DbRef, _path
from genre_core.store import Store


def reviewer() -> str:
    """Who the history names: the server's user, or "unknown" where the OS cannot say."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no USER variable and no passwd entry (a bare container)
        return "unknown"


def save_reviews(db: DbRef | str, reviews: Iterable[Mapping]) -> int:
    """Store each review (dataset_id, track_id, kind, decision "confirmed" | "dismissed" | None
    to clear, note) in one transaction, replacing any earlier verdict on the same finding, and
    record each change in the history. Returns how many were saved."""
    rows = [dict(review) for review in reviews]
    return Store(_path(db)).save_reviews(rows, by=reviewer()) if rows else 0


def verdict_text(decision: str | None) -> str:
    """A verdict in words for a finding's line: "confirmed", "dismissed" or "undecided"."""
    return decision if isinstance(decision, str) and decision else "undecided"
