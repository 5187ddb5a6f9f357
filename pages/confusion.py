"""Confusion: which genres the chosen run mixes up, and the tracks behind every cell."""

import streamlit as st

from genre_core.app import state
from genre_core.app import charts
from genre_core.app import queries as q
from page_frame import enter, figure, require_run

CELL = "genrelens.confusion_cell"  # (run_id, split, true, predicted): survives a trip to Track

ctx = enter("pages/confusion.py")
cached = st.cache_data(show_spinner=False, max_entries=256)

st.title("Confusion matrix")
st.write("Rows are the true genre, columns the genre the model named; the diagonal is right. "
         "Click a cell to list the tracks behind it and open one.")
require_run(ctx)


def confusion_controls() -> tuple[str, bool]:
    """(split, row-normalised?)"""
    box = st.expander("Controls") if ctx.presentation else st.container()
    with box:
        left, right, _ = st.columns([1, 1, 2])
        split = left.radio("Tracks", ["test", "val"], horizontal=True, key="cm_split",
                           help="test: never seen in training; val: used to pick the epoch")
        shown = right.radio("Cells show", ["share of row", "counts"], horizontal=True, key="cm_norm")
    return split, shown == "share of row"


run = cached(q.run_row)(ctx.db, ctx.run_id)
split, normalise = confusion_controls()
cells = cached(q.confusion)(ctx.db, ctx.run_id, split)
if cells.empty or cells.n.sum() == 0:
    st.info(f"Run {ctx.run_id} has no {split} predictions.")
    st.stop()
st.caption(f"Run **{run.model}** ({run.representation or 'own input'}) on **{run.dataset}**, "
           f"{int(cells.n.sum())} {split} tracks · {ctx.run_id}")

stored = st.session_state.get(CELL)
selected = stored[2:] if stored and stored[:2] == (ctx.run_id, split) else None
left, right = st.columns([2, 1], gap="medium")
with left:
    event = st.plotly_chart(figure("confusion_matrix", cells, normalise, ctx.presentation, selected),
                            on_select="rerun", selection_mode="points", key="confusion_chart",
                            theme=None, config=charts.plot_config(ctx.image_format, "confusion"))
clicked = state.clicked_cell(event)
if clicked and clicked != selected:
    st.session_state[CELL] = (ctx.run_id, split, *clicked)
    st.rerun()  # redraw with the clicked cell outlined


def cell_tracks() -> None:
    """The tracks behind the selected cell, and the way into the Track view."""
    if selected is None:
        st.info("Click a cell of the matrix to list its tracks.", icon=":material/touch_app:")
        return
    true, predicted = selected
    rows = state.tracks_in_cell(cached(q.predictions)(ctx.db, ctx.run_id, split), true, predicted)
    verb = "correctly called" if true == predicted else "called"
    st.subheader(f"{len(rows)} {true} track{'s' if len(rows) != 1 else ''} {verb} {predicted}")
    if rows.empty:
        st.info("No track in this cell.")
        return
    selection = state.Selection(f"Confusion: {true} → {predicted}", tuple(rows.track_id), int(run.dataset_id))

    def _open(track_id: str) -> None:
        state.open_track(st.session_state, int(run.dataset_id), track_id, selection)
        st.switch_page("pages/track.py")

    if st.button(f"Open {rows.track_id.iloc[0]} in the Track view", icon=":material/play_arrow:", key="open_first"):
        _open(rows.track_id.iloc[0])
    picked = st.dataframe(
        rows[["track_id", "confidence", "p_true", "faults", "artist"]],
        hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key="cell_tracks",
        column_config={"confidence": st.column_config.ProgressColumn("confidence", format="percent", min_value=0,
                                                                     max_value=1),
                       "p_true": st.column_config.NumberColumn(f"p({true})", format="%.2f"),
                       "faults": "fault flags"})
    order = "Least confident first" if true == predicted else "Most confident mistakes first"
    st.caption(f"{order}. Click a row to open that track.")
    if picked.selection.rows:
        _open(rows.track_id.iloc[picked.selection.rows[0]])


with right:
    cell_tracks()

st.subheader("Per genre")
st.plotly_chart(figure("per_genre_bars", cached(q.per_genre)(ctx.db, ctx.run_id, split), ctx.presentation),
                theme=None, config=charts.plot_config(ctx.image_format, "per_genre"), key="per_genre_bars")
st.caption("Precision: when it says this genre, how often it is right. "
           "Recall: how many songs of this genre it finds. F1: their balance.")
