"""Faults known from the literature, and how detections compare with a list of faults.

GTZAN (Tzanetakis & Cook 2002) contains excerpts that are the very same audio filed more than
once. Sturm catalogued them in

    B. L. Sturm, "The GTZAN dataset: its contents, its faults, their effects on evaluation,
    and its future use", arXiv:1306.1461, 2013.

The table below restates which excerpt numbers form each exact-repetition group (50 surplus
copies in all, one of them across genres: metal.00058 is rock.00016). It lists facts about the
corpus, written down here for the product; Sturm's paper has the full account, including the
repeated recordings and artists that are not exact copies and are not shipped here.

The demo's synthetic corpus knows its faults exactly: the generator lists every fault it planted
in `faults_truth.csv` beside the audio, and that list is stored as its known faults, so the same
comparison scores detection on GTZAN and on the demo.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from genre_core.faults.kinds import FAULT_KINDS, fault_family

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
TRUTH_FILE = "faults_truth.csv"  # what genre_core.datasets.synth.corpus planted, beside its audio
TRUTH_COLUMNS = ["track_id", "kind", "group_id", "source_track_id", "detail"]
PLANTED = "planted by the GenreLens synthetic corpus generator (faults_truth.csv)"
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


def read_truth(path: Path | str) -> pd.DataFrame:
    """A faults_truth.csv (TRUTH_COLUMNS, every value a string, '' where empty) as a frame."""
    with open(path, newline="", encoding="utf-8") as f:
        return pd.DataFrame(list(csv.DictReader(f)), columns=TRUTH_COLUMNS).fillna("")


def planted_faults(root: Path | str, track_ids: Iterable[str]) -> pd.DataFrame:
    """The faults a synthetic corpus' generator planted among `track_ids`, read from
    `root`/faults_truth.csv (none when it is absent). Every member of a duplicate group is
    listed, its original included, as detection flags them. Returns FAULT_COLUMNS rows."""
    path = Path(root) / TRUTH_FILE
    if not path.is_file():
        return pd.DataFrame(columns=FAULT_COLUMNS)
    truth = read_truth(path)
    truth = truth[truth["track_id"].isin(set(track_ids))]
    rows = [dict(track_id=r.track_id, kind=r.kind, group_id=r.group_id or None, score=1.0,
                 evidence=json.dumps({"detail": r.detail, "copy_of": r.source_track_id or None,
                                      "reference": PLANTED}))
            for r in truth.itertuples()]
    listed = set(truth.loc[truth["kind"] == "label_issue", "track_id"])
    rows += _misfiled_copies(Path(root), set(track_ids) - listed, truth)
    return pd.DataFrame(rows, columns=FAULT_COLUMNS)


def _misfiled_copies(root: Path, track_ids: set[str], truth: pd.DataFrame) -> list[dict]:
    """Label issues the truth file lists under another kind: a clip whose metadata.csv
    true_genre is another of the corpus' genres than its label (a cross-genre exact copy,
    like GTZAN's metal.00058 = rock.00016, or a guest artist's clip) is filed wrongly too,
    and the label check is right to flag it."""
    path = root / "metadata.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        meta = pd.DataFrame(list(csv.DictReader(f)))
    if not {"track_id", "label", "true_genre"} <= set(meta.columns):
        return []
    genres = set(meta["label"])
    wrong = meta[meta["track_id"].isin(track_ids) & meta["true_genre"].isin(genres)
                 & (meta["true_genre"] != meta["label"])]
    copy_of = dict(zip(truth["track_id"], truth["source_track_id"]))
    return [dict(track_id=r.track_id, kind="label_issue", group_id=None, score=1.0,
                 evidence=json.dumps({"detail": f"true genre {r.true_genre} filed as {r.label}",
                                      "copy_of": copy_of.get(r.track_id) or None, "reference": PLANTED}))
            for r in wrong.itertuples()]


def listed_faults(dataset_kind: str, root: Path | str, track_ids: Iterable[str]) -> pd.DataFrame:
    """A dataset's known faults: Sturm's published exact repetitions for GTZAN, the planted
    faults for the synthetic corpus, none for any other kind. FAULT_COLUMNS rows."""
    if dataset_kind == "gtzan":
        return known_faults(track_ids)
    if dataset_kind == "synth":
        return planted_faults(root, track_ids)
    return pd.DataFrame(columns=FAULT_COLUMNS)


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


def comparison_summary(comparison: pd.DataFrame, by: str = "family") -> pd.DataFrame:
    """Per family (or per `by="kind"`: the known kind, a new detection's own kind) of a
    `compare_faults` result: found, missed, new, known, recall, precision, and looked_for
    (False for a kind no detector looks for, in FAULT_KINDS' sense: its recall and precision
    are NaN, not a miss). Recall and precision are NaN where undefined (nothing known, or
    nothing detected)."""
    summary = (comparison.pivot_table(index=by, columns="status", values="track_id",
                                      aggfunc="count", fill_value=0)
               .reindex(columns=["found", "missed", "new"], fill_value=0).reset_index())
    summary.columns.name = None
    summary["known"] = summary.found + summary.missed
    families = {fault_family(kind) for kind in FAULT_KINDS}
    summary["looked_for"] = [name in (FAULT_KINDS if by == "kind" else families) for name in summary[by]]
    measured = summary.looked_for.to_numpy()
    summary["recall"] = np.where(measured & (summary.known > 0), summary.found / summary.known.clip(lower=1), np.nan)
    detected = summary.found + summary.new
    summary["precision"] = np.where(measured & (detected > 0), summary.found / detected.clip(lower=1), np.nan)
    if by == "kind":  # in the one order summaries list kinds, unlisted ones last
        order = {kind: i for i, kind in enumerate(FAULT_KINDS)}
        summary = summary.sort_values(by, key=lambda s: s.map(lambda k: order.get(k, len(order))), kind="stable")
    return summary.reset_index(drop=True)
