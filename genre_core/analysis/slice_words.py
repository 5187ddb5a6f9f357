"""Failure slices in sentences a musicologist reads: the rule they were found by, and what
one slice's numbers say. Plain text, unescaped: the page escapes it for markdown, the report
for HTML (slice descriptions hold artist and genre names from the dataset)."""

from __future__ import annotations

import pandas as pd

from genre_core.analysis.slices import FAMILIES, MAX_PAIR_VALUES, MIN_TRACKS, family_counts


def p_text(p: float) -> str:
    """A p- or q-value as people write it: two significant digits, "< 0.0001" below that."""
    if p != p:  # NaN
        return "–"
    return "< 0.0001" if p < 1e-4 else f"{p:.2g}"


def p_is(name: str, p: float) -> str:
    """"p = 0.0034" or "p < 0.0001"."""
    text = p_text(p)
    return f"{name} {text}" if text.startswith("<") else f"{name} = {text}"


def rule_sentence(slices: pd.DataFrame) -> str:
    """How the slices of one run (a failure_slices table, not empty) were found and tested."""
    first = slices.iloc[0]
    alpha, left_out = float(first.alpha), int(first.n_pairs_left_out)
    pairs = f" ({left_out} smaller pairs left untested, to bound the count)" if left_out else ""
    counts = family_counts(slices)
    tested = " and ".join(f"{counts[k]} {name}" for k, name in ((1, "single values"), (2, "pairs")) if k in counts)
    return (f"A slice is every {first.split} track with one attribute value, or with two values of "
            f"different attributes of at most {MAX_PAIR_VALUES} values each, holding at least {MIN_TRACKS} "
            f"tracks{pairs}. Each is compared with the rest of the tracks by a one-sided Fisher exact test "
            f"(does it hold more errors than chance would put there?). Single values and pairs are two "
            f"families, each held by the Benjamini–Hochberg procedure to a false discovery rate of "
            f"{alpha:.1%} ({FAMILIES * alpha:.0%} in all; tested: {tested}): a slice is significant when its "
            f"q-value within its family is at most {alpha:g}.")


def slice_sentence(row) -> str:
    """One slice's numbers in words (a failure_slices row): how many of its tracks the run got
    right against the run and the rest, and its test."""
    right, n = int(row.n - row.errors), int(row.n)
    among = (f" (tested among the {int(row.tested_among)} tracks where it is known)"
             if int(row.tested_among) < int(row.run_tracks) else "")
    verdict = "significant" if bool(row.significant) else "not significant"
    return (f"{right} of {n} track{'s' if n != 1 else ''} right ({row.accuracy:.0%}), against "
            f"{row.run_accuracy:.0%} of all {int(row.run_tracks)} {row.split} tracks and "
            f"{row.rest_accuracy:.0%} of the other tracks{among}. "
            f"One-sided Fisher exact test: {p_is('p', row.p_value)}; after Benjamini–Hochberg over the "
            f"{int(row.n_tested)} {'single values' if len(row.attributes) == 1 else 'pairs'} tested: "
            f"{p_is('q', row.q_value)}, {verdict} at {float(row.alpha):.1%}.")


def same_tracks_sentence(row) -> str:
    """The other names of a slice's tracks ("" when it has none)."""
    others = [str(s) for s in (row.same_tracks_as if row.same_tracks_as is not None else [])]
    return f"The same tracks: {'; '.join(others)}." if others else ""

