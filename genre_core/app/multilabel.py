"""Selection logic of the multi-label views, free of streamlit (tested as plain functions)."""

from __future__ import annotations

from typing import Sequence

import pandas as pd
from genre_core.untrusted import markdown as md


def tracks_in_cooccurrence(sets: pd.DataFrame, classes: Sequence[str], true: str, *, predicted: str) -> pd.DataFrame:
    """The tracks of `genre_sets` behind one co-occurrence cell: `true` among their true genres
    and `predicted` among their predicted ones, with `p_predicted` (the probability of
    `predicted`) and `p_true` (of `true`). On the diagonal the least sure hits come first; off
    it, the surest confusions."""
    if sets.empty:
        return sets.assign(p_predicted=[], p_true=[])
    keep = [true in list(g) and predicted in list(p) for g, p in zip(sets.genres, sets.predicted)]
    rows = sets[keep]
    column = {c: i for i, c in enumerate(classes)}
    rows = rows.assign(p_predicted=[float(p[column[predicted]]) for p in rows.probs],
                       p_true=[float(p[column[true]]) for p in rows.probs],
                       genres=[", ".join(g) for g in rows.genres],
                       predicted=[", ".join(p) for p in rows.predicted])
    return rows.sort_values("p_predicted", ascending=(true == predicted), kind="stable")


def top_genres(probs: Sequence[float], classes: Sequence[str], k: int = 3) -> list[tuple[str, float]]:
    """The k most probable genres of a track, most probable first: [(genre, probability)]."""
    ranked = sorted(zip(classes, map(float, probs)), key=lambda gp: -gp[1])
    return ranked[:k]


def genre_line(row: pd.Series, classes: Sequence[str], k: int = 3) -> str:
    """Markdown for the Track page: the true genres, the predicted ones and the top-k with
    their probabilities (a ✓ on each that is true)."""
    true = list(row.genres)
    top = ", ".join(f"{md(g)} {p:.0%}" + (" ✓" if g in true else "") for g, p in top_genres(row.probs, classes, k))
    predicted = ", ".join(map(md, row.predicted)) or "none above the threshold"
    return (f"Multi-label run · true genres **{', '.join(map(md, true))}** · predicted **{predicted}** · "
            f"top {k}: {top}")


def metrics_table(metrics: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """`multilabel_metrics` rows as text for a table: run, then each headline with its CI."""

    def cell(row, name: str) -> str:
        low, high = row.get(f"{name}_low"), row.get(f"{name}_high")
        ci = f" [{low:.3f}–{high:.3f}]" if pd.notna(low) and pd.notna(high) else ""
        return f"{row[name]:.3f}{ci}" if pd.notna(row[name]) else "–"

    names = {"mAP": "mAP", "macro_auc": "macro ROC-AUC", "micro_f1": "micro-F1", "macro_f1": "macro-F1",
             "hamming_loss": "Hamming loss"}
    rows = [{"run": labels.get(r.run_id, r.run_id), **{title: cell(r, n) for n, title in names.items()},
             "threshold": f"{r.threshold:.2f}"} for _, r in metrics.iterrows()]
    return pd.DataFrame(rows, columns=["run", *names.values(), "threshold"])
