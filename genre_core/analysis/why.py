"""One sentence of why: a mistake, or a confused genre pair, explained only by findings that
passed their tests.

The findings are a run's significant failure slices (slices.py: a one-sided Fisher exact test
per slice, Benjamini-Hochberg per family), its significant TCAV concepts (concepts.py: a test
against random sets, Benjamini-Hochberg) and, for one track, the musical variant that moves it
toward its true genre (variants.mind_change, which names a variant only when the true genre
rises and the predicted one falls by 0.10 each). Nothing else is said: with no finding, the
functions return None and the app shows no sentence rather than a guess.
"""

from __future__ import annotations

import pandas as pd

from genre_core.analysis.slice_words import p_is


def _significant(slices: pd.DataFrame | None) -> pd.DataFrame:
    if slices is None or slices.empty:
        return pd.DataFrame()
    return slices[slices["significant"].astype(bool)].sort_values("rank")


def _slice_phrase(row) -> str:
    """'all 4 test tracks of the slice “genre disco” (the same tracks: by X, an artist absent
    from training) are wrong' with its test, in words."""
    n, errors = int(row.n), int(row.errors)
    same = [str(s) for s in (row.same_tracks_as if row.same_tracks_as is not None else [])]
    also = f" (the same tracks: {'; '.join(same)})" if same else ""
    share = f"all {n}" if errors == n else f"{errors} of the {n}"
    return (f"{share} {row.split} tracks of the slice “{row.description}”{also} are wrong, against "
            f"{1 - row.rest_accuracy:.0%} of the others (Fisher {p_is('p', row.p_value)}, "
            f"{p_is('q', row.q_value)})")


def _concept_phrase(concepts: pd.DataFrame | None, genre: str) -> str | None:
    if concepts is None or concepts.empty:
        return None
    toward = concepts[concepts["significant"].astype(bool) & (concepts.genre == genre)
                      & (concepts.direction == "toward")].sort_values("q")
    if toward.empty:
        return None
    names = ", ".join(str(c) for c in toward.concept.head(3))
    return f"The model leans toward {genre} on {names} (TCAV, {p_is('q', float(toward.q.iloc[0]))})"


def track_why(track_id: str, *, true: str, predicted: str, slices: pd.DataFrame | None,
              concepts: pd.DataFrame | None = None, pushes: pd.DataFrame | None = None,
              variant_sentence: str | None = None) -> str | None:
    """The sentence for one misclassified track (None for a right one, or with no finding):
    the worst significant slice holding it, the significant concepts present in it that push it
    toward the genre it was given (`pushes`: concept_pushes rows; without them, the concepts
    significant for that genre), and the variant that changes its mind."""
    if true == predicted:
        return None
    parts = []
    holding = _significant(slices)
    holding = holding[[track_id in set(ids) for ids in holding.track_ids]] if len(holding) else holding
    if len(holding):
        parts.append(f"It is one of a pattern: {_slice_phrase(holding.iloc[0])}; the model calls this one {predicted}")
    pushing = pushes[pushes["pushes_to_predicted"].astype(bool)] if pushes is not None and len(pushes) else None
    if pushing is not None and len(pushing):
        names = ", ".join(str(c) for c in pushing.concept.head(3))
        parts.append(f"In this track, {names} push{'es' if len(pushing) == 1 else ''} it toward {predicted} "
                     f"rather than {true} (TCAV, concepts significant for these genres)")
    elif (concept := _concept_phrase(concepts, predicted)) is not None:
        parts.append(concept)
    if variant_sentence:
        parts.append(variant_sentence.rstrip("."))
    return ". ".join(parts) + "." if parts else None


def pair_why(true: str, predicted: str, cell_tracks: list[str], *, slices: pd.DataFrame | None,
             concepts: pd.DataFrame | None = None) -> str | None:
    """The sentence for a confused pair (the tracks of `true` called `predicted`): the
    significant slice covering most of them, and the significant concepts toward `predicted`;
    None with no finding or no such tracks."""
    if true == predicted or not cell_tracks:
        return None
    parts = []
    found = _significant(slices)
    if len(found):
        cell = set(cell_tracks)
        cover = found.track_ids.map(lambda ids: len(cell & set(ids)))
        if cover.max() > 0:
            best = found.loc[cover.idxmax()]
            k = int(cover.max())
            whole = "All" if k == len(cell) else f"{k} of the"
            parts.append(f"{whole} {len(cell)} {true} track{'s' if len(cell) != 1 else ''} called {predicted} "
                         f"belong to one pattern: {_slice_phrase(best)}")
    if (concept := _concept_phrase(concepts, predicted)) is not None:
        parts.append(concept)
    return ". ".join(parts) + "." if parts else None
