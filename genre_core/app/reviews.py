"""The app's one write: a person's verdicts on fault findings (everything else it reads)."""

from __future__ import annotations

from typing import Iterable, Mapping

from genre_core.app.queries._db import DbRef, _path
from genre_core.store import Store


def save_reviews(db: DbRef | str, reviews: Iterable[Mapping]) -> int:
    """Store each review (dataset_id, track_id, kind, decision "confirmed" | "dismissed", note),
    replacing any earlier verdict on the same finding. Returns how many were saved."""
    store = Store(_path(db))
    count = 0
    for review in reviews:
        store.save_review(review["dataset_id"], review["track_id"], review["kind"], decision=review["decision"],
                          note=review.get("note"))
        count += 1
    return count
