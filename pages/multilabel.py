"""Multi-label: how well a multi-label run finds every genre of a track, and which genres it
names together with which true ones (the tracks behind every cell)."""

import dataclasses

import streamlit as st

from genre_core.app import state
from genre_core.app import multilabel as ml_view
from genre_core.app import queries as q
from genre_core.untrusted import markdown as md
from page_frame import cell_rows, clickable_matrix, matrix_controls, open_page, table

CELL = "genrelens.cooccurrence_cell"  # (run_id, split, true, predicted): survives a trip to Track

ctx, cached = open_page("pages/multilabel.py", "Multi-label genres",
    "For runs trained with `--task multilabel`: a track may have several genres. Rows are a true "
    "genre, columns a genre the model named (probability above the threshold tuned on validation); "
    "click a cell to list its tracks.", cache_entries=256)
run = cached(q.run_row)(ctx.db, ctx.run_id)
if not cached(q.multilabel_runs)(ctx.db, [ctx.run_id]):
    # A single-label run is chosen: show the dataset's multi-label run when it has one.
    other = cached(q.newest_multilabel_run)(ctx.db, int(run.dataset_id))
    if other is None:
        if ctx.presentation:  # a hall needs the fact, not the command
            st.info("The chosen model names one genre per song; this page is for models that name several.")
        else:
            st.info(f"Run {ctx.run_id} is single-label. Train a multi-label one with "
                    f"`python -m training train --dataset {run.dataset} --model cnn --task multilabel`, "
                    "then pick it in the sidebar.")
        st.stop()
    ctx = dataclasses.replace(ctx, run_id=other)
    run = cached(q.run_row)(ctx.db, other)
    st.caption(f"The chosen run names one genre per song; shown here: **{md(run.model)}** trained multi-label on "
               f"the same dataset" + ("." if ctx.presentation else f" (run {other})."))


def multilabel_controls() -> tuple[str, bool]:
    """(split, row-normalised?)"""
    return matrix_controls(ctx, "ml", "test: never seen in training; val: used to pick the epoch and the threshold")


split, normalise = multilabel_controls()
scores = cached(q.multilabel_metrics)(ctx.db, [ctx.run_id], split)
if scores.empty:
    st.info(f"Run {ctx.run_id} has no {split} metrics.")
    st.stop()
m = scores.iloc[0]
cols = st.columns(5)
for col, (name, title) in zip(cols, [("mAP", "mAP"), ("macro_auc", "macro ROC-AUC"), ("micro_f1", "micro-F1"),
                                     ("macro_f1", "macro-F1"), ("hamming_loss", "Hamming loss")]):
    col.metric(title, f"{m[name]:.3f}", help=f"95% CI {m.get(name + '_low', float('nan')):.3f}–"
                                              f"{m.get(name + '_high', float('nan')):.3f} (bootstrap over tracks)")
st.caption(f"Run **{md(run.model)}** on **{md(run.dataset)}** · threshold {m.threshold:.2f} (tuned on validation) · "
           f"{m.cardinality:.2f} true genres per {split} track" + ("" if ctx.presentation else f" · {ctx.run_id}"))

classes = list(run.classes)
cells = cached(q.cooccurrence)(ctx.db, ctx.run_id, classes, split=split)
selected, right = clickable_matrix(ctx, cells, normalise, CELL, split, "cooccurrence")


def cell_tracks() -> None:
    """The tracks behind the selected cell, and the way into the Track view."""
    sets = cached(q.genre_sets)(ctx.db, ctx.run_id, split=split)
    rows = cell_rows(selected, lambda t, p: ml_view.tracks_in_cooccurrence(sets, classes, t, predicted=p),
                     lambda n, t, p: f"{n} {t} track{'s' if n != 1 else ''} {'found as' if t == p else 'also called'} {p}")
    if rows is None:
        return
    true, predicted = selected
    selection = state.Selection(f"Co-occurrence: {true} → {predicted}", tuple(rows.track_id), int(run.dataset_id))
    picked = st.dataframe(
        rows[["track_id", "genres", "predicted", "p_predicted", "p_true", "artist"]],
        hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key="ml_cell_tracks",
        column_config={"genres": "true genres", "predicted": "predicted genres",
                       "p_predicted": st.column_config.NumberColumn(f"p({predicted})", format="%.2f"),
                       "p_true": st.column_config.NumberColumn(f"p({true})", format="%.2f")})
    st.caption("Click a row to open that track.")
    if picked.selection.rows:
        state.open_track(st.session_state, int(run.dataset_id), rows.track_id.iloc[picked.selection.rows[0]],
                         selection)
        st.switch_page("pages/track.py")


with right:
    cell_tracks()

st.subheader("Per genre")
per_genre = cached(q.per_genre_ranking)(ctx.db, ctx.run_id, split)
if per_genre.empty:
    st.info("No per-genre metrics stored.")
else:
    table(ctx, per_genre, hide_index=True, width="stretch",
                 column_config={k: st.column_config.NumberColumn(k, format="%.3f")
                                for k in ("ap", "auc", "precision", "recall", "f1")})
st.caption("AP: average precision (area under the precision-recall curve, threshold-free). AUC: ROC-AUC. "
           "Precision, recall and F1 at the tuned threshold.")
