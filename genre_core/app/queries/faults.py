"""Reads about dataset faults, people's reviews of them, and evaluation without them."""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
import pandas as pd

from genre_core.metrics import evaluation
from genre_core.app.queries._db import _REVIEWS, _df
from genre_core.faults.kinds import DUPLICATE_KINDS, fault_words
from genre_core.faults.known import compare_faults, comparison_summary
from genre_core.faults.labels import expected_real
from genre_core.app.queries.runs import predictions, run_row

# -- faults and reviews ---------------------------------------------------------------------


def faults(db, dataset_id: int, *, kinds: Sequence[str] | None = None, source: str | None = None) -> pd.DataFrame:
    """Findings with the track's label, artist, status and the latest review (decision, note)."""
    frame = _df(db, f"""
        WITH {_REVIEWS}
        SELECT f.dataset_id, f.track_id, f.kind, f.group_id, f.score, f.evidence, f.source,
               t.label, t.artist, t.status, r.decision, r.note
        FROM faults f LEFT JOIN tracks t USING (dataset_id, track_id)
        LEFT JOIN reviewed r USING (dataset_id, track_id, kind)
        WHERE f.dataset_id = ? AND (? IS NULL OR list_contains(?, f.kind))
          AND (? IS NULL OR f.source = ?)
        ORDER BY f.kind, f.score DESC NULLS LAST, f.group_id, f.track_id""",
        [dataset_id, None if kinds is None else list(kinds), None if kinds is None else list(kinds),
         source, source])
    frame["evidence"] = [_evidence(e) for e in frame.evidence]
    return frame


def _evidence(value: Any) -> dict:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return {}
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return {"text": str(value)}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def track_faults(db, dataset_id: int, track_id: str) -> pd.DataFrame:
    frame = faults(db, dataset_id)
    return frame[frame.track_id == track_id].reset_index(drop=True)


def duplicate_groups(db, dataset_id: int) -> pd.DataFrame:
    """Detected duplicate findings, one row per member track, ordered by group."""
    frame = faults(db, dataset_id, kinds=DUPLICATE_KINDS, source="detected")
    return frame.sort_values(["group_id", "track_id"], kind="stable").reset_index(drop=True)


def review_history(db, dataset_id: int, track_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Every verdict change on the dataset's findings (of `track_ids` when given), newest first:
    track_id, kind, decision (None: cleared), note, decided_at, decided_by. Empty before the
    first change (a database no writer has brought to schema version 4 has no history table)."""
    columns = ["track_id", "kind", "decision", "note", "decided_at", "decided_by"]
    if not _df(db, "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'review_history'").n[0]:
        return pd.DataFrame(columns=columns)
    return _df(db, f"""SELECT {", ".join(columns)} FROM review_history
                       WHERE dataset_id = ? AND (? IS NULL OR list_contains(?, track_id))
                       ORDER BY decided_at DESC""",
               [dataset_id, None if track_ids is None else list(track_ids),
                None if track_ids is None else list(track_ids)])


def split_sides(db, run_id: str | None, track_ids: Sequence[str]) -> dict[str, str | None]:
    """{track_id: "train" | "val" | "test"} of the run's split (train: a usable track of the
    run's dataset it did not validate or test on); None for every track without a run, and
    for a track the run's dataset does not hold as usable."""
    ids = [str(t) for t in track_ids]
    if run_id is None or not ids:
        return dict.fromkeys(ids)
    frame = _df(db, """
        SELECT t.track_id, coalesce(p.split, 'train') AS side
        FROM tracks t JOIN runs r ON r.dataset_id = t.dataset_id AND r.run_id = ?
        LEFT JOIN (SELECT DISTINCT track_id, split FROM predictions WHERE run_id = ?) p USING (track_id)
        WHERE t.status = 'ok' AND list_contains(?, t.track_id)""", [run_id, run_id, ids])
    sides = dict(zip(frame.track_id, frame.side))
    return {t: sides.get(t) for t in ids}


def label_issues(db, dataset_id: int, run_id: str | None) -> pd.DataFrame:
    """Detected label issues, most suspicious first, with the chosen run's opinion of each
    track: what it predicts, how sure it is, and how much it believes the given label."""
    frame = faults(db, dataset_id, kinds=["label_issue"], source="detected")
    if run_id is None or frame.empty:
        return frame.assign(predicted=None, confidence=np.nan, p_given=np.nan)
    preds = predictions(db, run_id, split=None).drop_duplicates("track_id")
    opinion = preds[["track_id", "predicted", "confidence", "p_true"]].rename(columns={"p_true": "p_given"})
    return frame.merge(opinion, on="track_id", how="left")


def label_flag_outlook(scores: Sequence[float]) -> str:
    """How many of the top flags are expected to be real mislabels, in one sentence (each
    flag's score is the evidence's probability that its label is wrong; faults.labels)."""
    table = expected_real(scores)
    if table.empty:
        return ""
    parts = [f"top {r.k}: ~{r.expected_real:.1f} expected real" for r in table.itertuples()]
    return ("Expected mislabels among the flags, if the evidence's probabilities are calibrated: "
            + "; ".join(parts) + ". On planted corpora this estimate ran high for the audio alone and held "
            "with artists known (docs/datasets.md, label issues).")


def artists_across_split(db, dataset_id: int, run_id: str | None = None) -> pd.DataFrame:
    """Every artist with two or more usable tracks in the dataset, most tracks first: n_tracks,
    genres, top_share (their largest share of one genre's tracks), flagged (an artist_repeat
    finding: the rule of faults.kinds.artist_rule), and, given a run on this dataset, how their
    tracks fall across its split: train / val / test counts (train: every usable track the run
    did not validate or test on) and `leak` when both training and test hold some."""
    tracks = _df(db, """
        SELECT t.track_id, t.label, t.artist, p.split, f.track_id IS NOT NULL AS flagged
        FROM tracks t
        LEFT JOIN (SELECT track_id, split FROM predictions WHERE run_id = ?) p USING (track_id)
        LEFT JOIN (SELECT DISTINCT track_id FROM faults WHERE dataset_id = ? AND kind = 'artist_repeat') f
            USING (track_id)
        WHERE t.dataset_id = ? AND t.status = 'ok' AND coalesce(t.artist, '') != ''
        ORDER BY t.track_id""", [run_id, dataset_id, dataset_id])
    columns = ["artist", "n_tracks", "genres", "top_share", "flagged", "train", "val", "test", "leak", "track_ids"]
    genre_size = tracks.label.value_counts()
    several = tracks[tracks.artist.map(tracks.artist.value_counts()) >= 2]
    if several.empty:
        return pd.DataFrame(columns=columns)
    side = several.split.fillna("train") if run_id is not None else pd.Series(None, index=several.index)
    grouped = several.assign(side=side).groupby("artist", sort=False)
    out = grouped.agg(n_tracks=("track_id", "size"), genres=("label", lambda s: ", ".join(sorted(set(s)))),
                      flagged=("flagged", "any"), track_ids=("track_id", list)).reset_index()
    out["top_share"] = [max(n / genre_size[g] for g, n in group.label.value_counts().items())
                        for _, group in grouped]
    for name in ("train", "val", "test"):
        out[name] = list(grouped.side.agg(lambda s, name=name: int((s == name).sum()))) if run_id else None
    out["leak"] = (out.train > 0) & (out.test > 0) if run_id else False
    return out[columns].sort_values(["n_tracks", "artist"], ascending=[False, True], kind="stable").reset_index(drop=True)


def known_vs_detected(db, dataset_id: int) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Known faults (Sturm's published list for GTZAN, the planted ones for the demo corpus)
    against detected ones, matched on (track, family) with the two duplicate kinds as one
    family, for the families the known list covers (`faults.known.compare_faults`). Returns
    (per-track rows with status found | missed | new, per-kind summary with counts, precision,
    recall, looked_for, the kind in words (fault) and a note for a kind no detector looks for,
    where the list comes from in words: '' when none is stored)."""
    frame = faults(db, dataset_id)
    known = frame[frame.source == "known"]
    detail = compare_faults(frame[frame.source == "detected"], known)
    references = sorted({str(e["reference"]) for e in known.evidence if e.get("reference")})
    summary = comparison_summary(detail, by="kind")
    summary["fault"] = [fault_words(kind)[0] for kind in summary.kind]
    summary["note"] = ["" if looked else "no detector looks for this kind" for looked in summary.looked_for]
    return detail[["track_id", "kind", "status"]], summary, "; ".join(references)


def confirmed_faulty(db, dataset_id: int) -> set[str]:
    """Tracks a person confirmed as faulty (any kind, latest decision wins)."""
    frame = _df(db, f"""WITH {_REVIEWS} SELECT DISTINCT track_id FROM reviewed
                        WHERE dataset_id = ? AND decision = 'confirmed'""", [dataset_id])
    return set(frame.track_id)


def clean_evaluation(db, run_id: str, n_boot: int = 1000, leave_out: str = "confirmed") -> pd.DataFrame:
    """The run's test accuracy and macro-F1 (bootstrap 95% CI) on all test tracks and on the
    test tracks minus those confirmed faulty (`leave_out` "confirmed") or minus every track
    with an open fault flag, detected or known and not dismissed ("flagged"), or the confirmed
    ones when any test track is confirmed and else the flagged ones ("confirmed or flagged":
    the second row's `subset` says which): subset, n, excluded, accuracy, ci_low, ci_high,
    macro_f1."""
    row = run_row(db, run_id)
    if row is None:
        return pd.DataFrame(columns=["subset", "n", "excluded", "accuracy", "ci_low", "ci_high", "macro_f1"])
    classes = list(row.classes)
    probs = _df(db, "SELECT track_id, label, probs FROM predictions WHERE run_id = ? AND split = 'test'", [run_id])
    bad, without = confirmed_faulty(db, int(row.dataset_id)), "without confirmed faulty tracks"
    if leave_out == "flagged" or (leave_out == "confirmed or flagged" and not probs.track_id.isin(bad).any()):
        flags = predictions(db, run_id, "test")
        bad, without = set(flags.track_id[flags.faults != ""]), "without flagged tracks"
    out = []
    for subset, keep in (("all test tracks", np.ones(len(probs), bool)),
                         (without, ~probs.track_id.isin(bad).to_numpy())):
        part = probs[keep]
        stats = dict(subset=subset, n=len(part), excluded=int((~keep).sum()), accuracy=np.nan,
                     ci_low=np.nan, ci_high=np.nan, macro_f1=np.nan)
        if len(part):
            y = np.array([classes.index(label) for label in part.label])
            p = np.stack(part.probs.map(np.asarray))  # (N, C)
            report = evaluation.classification_report(y, p, classes)
            low, high = evaluation.bootstrap_ci(y, p.argmax(1), evaluation.batch_accuracy, n_boot=n_boot)
            stats.update(accuracy=report.accuracy, ci_low=low, ci_high=high, macro_f1=report.macro_f1)
        out.append(stats)
    return pd.DataFrame(out)


