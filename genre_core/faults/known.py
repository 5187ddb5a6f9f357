"""Faults known from the literature, and how detections compare with a list of faults.

GTZAN (Tzanetakis & Cook 2002) contains excerpts that are the very same audio filed more than
once. Sturm catalogued them in

    B. L. Sturm, "The GTZAN dataset: its contents, its faults, their effects on evaluation,
    and its future use", arXiv:1306.1461, 2013.

The table below restates which excerpt numbers form each exact-repetition group (50 surplus
copies in all, one of them across genres: metal.00058 is rock.00016). It lists facts about the
corpus, written down here for the product; Sturm's paper has the full account, including the
repeated recordings and artists that are not exact copies and are not shipped here.
"""

from __future__ import annotations

import json
import re
from typing import Iterable

import numpy as np
import pandas as pd

from genre_core.faults.kinds import fault_family

CITATION = ('B. L. Sturm, "The GTZAN dataset: its contents, its faults, their effects on '
            'evaluation, and its future use", arXiv:1306.1461, 2013')

# Per genre, groups of excerpt numbers that hold the same audio (genre.000NN).
EXACT_REPETITIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "disco": ((50, 51, 70), (55, 60, 89), (71, 74), (98, 99)),
    "hiphop": ((39, 45), (76, 78)),
    "jazz": ((33, 51), (34, 53), (35, 55), (36, 58), (37, 60), (38, 62), (39, 65), (40, 67),
             (42, 68), (43, 69), (44, 70), (45, 71), (46, 72)),
    "metal": ((4, 13), (34, 94), (40, 61), (41, 62), (42, 63), (43, 64), (44, 65), (45, 66)),
    "pop": ((15, 22), (30, 31), (45, 46), (47, 80), (52, 57), (54, 60), (56, 59), (67, 71),
            (87, 90)),
    "reggae": ((3, 54), (5, 56), (8, 57), (10, 60), (13, 58), (41, 69), (73, 74), (80, 81, 82),
               (75, 91, 92)),
}
CROSS_GENRE_REPETITIONS: tuple[tuple[str, ...], ...] = (("metal.00058", "rock.00016"),)

FAULT_COLUMNS = ["track_id", "kind", "group_id", "score", "evidence"]
_GTZAN_ID = re.compile(r"^[a-z]+\.\d{5}$")


def exact_repetition_groups() -> dict[str, tuple[str, ...]]:
    """group_id -> member track ids, e.g. 'sturm-jazz-03' -> ('jazz.00035', 'jazz.00055')."""
    groups = {}
    for genre, members in EXACT_REPETITIONS.items():
        for n, group in enumerate(members, 1):
            groups[f"sturm-{genre}-{n:02d}"] = tuple(f"{genre}.{i:05d}" for i in group)
    for n, group in enumerate(CROSS_GENRE_REPETITIONS, 1):
        groups[f"sturm-cross-{n:02d}"] = group
    return groups


def known_faults(track_ids: Iterable[str]) -> pd.DataFrame:
    """Published GTZAN exact repetitions among `track_ids` (GTZAN-style ids, e.g. 'jazz.00035').

    A group is listed when at least two of its members are present; ids of another form
    are ignored. Returns FAULT_COLUMNS rows, kind 'exact_duplicate', evidence a JSON string.
    """
    present = {t for t in track_ids if isinstance(t, str) and _GTZAN_ID.match(t)}
    rows = []
    for group_id, members in exact_repetition_groups().items():
        here = [m for m in members if m in present]
        if len(here) < 2:
            continue
        evidence = json.dumps({"members": list(members), "reference": CITATION,
                               "note": "exact repetition (the same audio filed more than once)"})
        rows += [dict(track_id=t, kind="exact_duplicate", group_id=group_id, score=1.0,
                      evidence=evidence) for t in here]
    return pd.DataFrame(rows, columns=FAULT_COLUMNS)


def compare_faults(detected: pd.DataFrame, known: pd.DataFrame) -> pd.DataFrame:
    """Per (track, kind family) whether a known fault was found, missed, or a detection is new.

    Both frames have track_id, kind, group_id (rows without a track are ignored). Only the
    families the known list covers are compared, exact and recording duplicates counting as one
    family ('duplicate'). Returns track_id, family, kind, status ('found' | 'missed' | 'new'),
    known_group, detected_kind, detected_group, ordered by track_id and family.
    """
    known_at, detected_at = _first_by_family(known), _first_by_family(detected)
    families = {family for _, family in known_at}
    detected_at = {key: v for key, v in detected_at.items() if key[1] in families}
    rows = []
    for track, family in sorted(known_at.keys() | detected_at.keys()):
        k, d = known_at.get((track, family)), detected_at.get((track, family))
        status = "found" if k and d else "missed" if k else "new"
        rows.append(dict(track_id=track, family=family, kind=(k or d)[0], status=status,
                         known_group=k[1] if k else None, detected_kind=d[0] if d else None,
                         detected_group=d[1] if d else None))
    return pd.DataFrame(rows, columns=["track_id", "family", "kind", "status", "known_group",
                                       "detected_kind", "detected_group"])


def _first_by_family(frame: pd.DataFrame) -> dict[tuple[str, str], tuple[str, str]]:
    """(track_id, family) -> (kind, group_id) of its first row; rows without a track skipped."""
    first = {}
    for track, kind, group in zip(frame["track_id"], frame["kind"], frame["group_id"]):
        if pd.notna(track):
            first.setdefault((track, fault_family(kind)), (kind, group))
    return first


def comparison_summary(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per family of a `compare_faults` result: found, missed, new, known, recall, precision
    (NaN where undefined: nothing known, or nothing detected)."""
    summary = (comparison.pivot_table(index="family", columns="status", values="track_id",
                                      aggfunc="count", fill_value=0)
               .reindex(columns=["found", "missed", "new"], fill_value=0).reset_index())
    summary.columns.name = None
    summary["known"] = summary.found + summary.missed
    summary["recall"] = np.where(summary.known > 0, summary.found / summary.known.clip(lower=1), np.nan)
    detected = summary.found + summary.new
    summary["precision"] = np.where(detected > 0, summary.found / detected.clip(lower=1), np.nan)
    return summary
