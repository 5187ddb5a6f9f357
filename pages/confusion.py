"""Confusion: which genres the chosen run mixes up, and the tracks behind every cell."""

import streamlit as st

from genre_core.analysis import why
from genre_core.app import links, state
from genre_core.app import charts
from genre_core.app import queries as q
from genre_core.untrusted import markdown as md
from page_frame import cell_rows, clickable_matrix, figure, matrix_controls, open_page
from page_links import keep, notify, take

CELL = "genrelens.confusion_cell"  # (run_id, split, true, predicted): survives a trip to Track

ctx, cached = open_page("pages/confusion.py", "Confusion matrix",
    "Rows are the true genre, columns the genre the model named; the diagonal is right. "
    "Click a cell to list the tracks behind it and open one.", cache_entries=256)


def confusion_controls() -> tuple[str, bool]:
    """(split, row-normalised?)"""
    return matrix_controls(ctx, "cm", "test: never seen in training; val: used to pick the epoch")


run = cached(q.run_row)(ctx.db, ctx.run_id)


def linked_cell(link: dict) -> None:
    """A link's split and cell become the page's, or a notice says what is not here."""
    split = link.get("split", "test")
    if split not in ("test", "val"):
        notify(links.notice("the tracks", split, "the test tracks"))
        split = "test"
    st.session_state["cm_split"] = split
    if "true" in link or "pred" in link:
        classes = list(run.classes)
        cell = (link.get("true"), link.get("pred"))
        if all(g in classes for g in cell):
            st.session_state[CELL] = (ctx.run_id, split, *cell)
        else:
            notify(links.notice("the cell", " → ".join(g or "?" for g in cell), "the matrix with no cell chosen"))
            st.session_state.pop(CELL, None)


if link := take("confusion"):
    linked_cell(link)
split, normalise = confusion_controls()
cells = cached(q.confusion)(ctx.db, ctx.run_id, split)
if cells.empty or cells.n.sum() == 0:
    st.info(f"Run {ctx.run_id} has no {split} predictions.")
    st.stop()
st.caption(f"Run **{md(run.model)}** ({run.representation or 'own input'}) on **{md(run.dataset)}**, "
           f"{int(cells.n.sum())} {split} tracks" + ("" if ctx.presentation else f" · {ctx.run_id}"))

selected, right = clickable_matrix(ctx, cells, normalise, CELL, split, "confusion")
keep({"split": split, "true": selected and selected[0], "pred": selected and selected[1]}, defaults={"split": "test"})


def cell_tracks() -> None:
    """The tracks behind the selected cell, and the way into the Track view."""
    rows = cell_rows(selected, lambda t, p: state.tracks_in_cell(cached(q.predictions)(ctx.db, ctx.run_id, split), t, p),
                     lambda n, t, p: f"{n} {md(t)} track{'s' if n != 1 else ''} "
                                     f"{'correctly called' if t == p else 'called'} {md(p)}")
    if rows is None:
        return
    true, predicted = selected
    sentence = why.pair_why(true, predicted, list(rows.track_id), slices=cached(q.failure_slices)(ctx.db, ctx.run_id),
                            concepts=cached(q.concept_scores)(ctx.db, ctx.run_id)) if true != predicted else None
    if sentence:
        st.info(f"**Why, as far as the tests go.** {md(sentence)}", icon=":material/lightbulb:")
    selection = state.Selection(f"Confusion: {true} → {predicted}", tuple(rows.track_id), int(run.dataset_id))

    def _open(track_id: str) -> None:
        state.open_track(st.session_state, int(run.dataset_id), track_id, selection)
        st.switch_page("pages/track.py")

    if st.button(f"Open {md(rows.track_id.iloc[0])} in the Track view", icon=":material/play_arrow:", key="open_first"):
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
