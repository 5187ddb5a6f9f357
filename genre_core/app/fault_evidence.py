"""What the Faults page lets a person hear and see of a finding's evidence, streamlit-free:
where each copy of a duplicate group starts so that all play from the matching moment, which
side of a run's split each copy is on, and where on a track's waveform the detector found
damage."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

SIDES = ("train", "val", "test")
MARK_MIN_S = 0.05  # a time without a stored length is drawn this wide, so it stays visible


def aligned_starts(members: Sequence[tuple[str, Mapping]]) -> dict[str, float]:
    """{track_id: seconds into that copy where the group's matching moment is} for a duplicate
    group's (track_id, evidence) pairs; the earliest is 0.

    A recording duplicate's evidence holds `offset_s` against its `partner`: the copy at time t
    sounds like the partner at t - offset_s (faults.fingerprint.align), so the copy starts
    offset_s later than its partner. Copies are placed from the first one along these links;
    a copy with no usable link (exact copies, a partner outside the group) starts at 0."""
    ids = [str(t) for t, _ in members]
    links: dict[str, list[tuple[str, float]]] = {t: [] for t in ids}
    for track_id, evidence in members:
        partner, offset = (evidence or {}).get("partner"), (evidence or {}).get("offset_s")
        if partner in links and partner != track_id and _finite(offset):
            links[str(track_id)].append((partner, float(offset)))  # start(me) = start(partner) + offset
            links[partner].append((str(track_id), -float(offset)))
    start: dict[str, float] = {}
    for root in ids:
        if root in start:
            continue
        start[root], todo, part = 0.0, [root], [root]
        while todo:
            here = todo.pop()
            for other, offset in links[here]:
                if other not in start:
                    start[other] = start[here] - offset
                    todo.append(other)
                    part.append(other)
        low = min(start[t] for t in part)  # each linked part shifted so its earliest copy starts at 0
        start.update({t: round(start[t] - low, 4) + 0.0 for t in part})
    return {t: start[t] for t in ids}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and bool(np.isfinite(value))


def straddles(sides: Mapping[str, str | None]) -> bool:
    """Whether copies sit on both the training and the test side of a run's split (the test
    score then rewards remembering a training track)."""
    found = {s for s in sides.values() if s}
    return "train" in found and "test" in found


def side_words(side: str | None) -> str:
    """A copy's split side for its caption."""
    return {"train": "training side", "val": "validation side", "test": "test side"}.get(side or "", "not in the run")


def damage_marks(evidence: Mapping, duration_s: float | None = None) -> list[tuple[float, float, str]]:
    """(start_s, end_s, what) spans of a distortion's evidence to mark on the waveform: the
    dropouts' gaps (`starts_s`, with `lengths_s` where stored, else MARK_MIN_S wide), cut at
    `duration_s`. Findings that store no times (clipping, band limits...) give []."""
    starts = (evidence or {}).get("starts_s") or []
    lengths = (evidence or {}).get("lengths_s") or []
    what = str((evidence or {}).get("problem") or "fault").replace("_", " ")
    marks = []
    for i, start in enumerate(starts):
        if not _finite(start):
            continue
        length = lengths[i] if i < len(lengths) and _finite(lengths[i]) else MARK_MIN_S
        end = float(start) + max(float(length), MARK_MIN_S)
        if duration_s is not None:
            end = min(end, float(duration_s))
        marks.append((float(start), end, f"{what} {float(start):.2f}–{end:.2f} s"))
    return marks
