"""Overview: the datasets, the leaderboard of complete runs, and one sentence for everyone."""

from functools import partial

import streamlit as st

from genre_core.app import state
from genre_core.app import charts
from genre_core.app import queries as q
from page_frame import figure, open_page, table


ctx, cached = open_page("pages/overview.py", "GenreLens",
    "How well do our genre classifiers work, on which data, and how sure can we be? "
    "Accuracy is measured on test songs no model heard in training, with a 95% confidence interval.",
    needs_run=False, cache_entries=64)

sets = cached(q.datasets)(ctx.db)
board = cached(q.leaderboard)(ctx.db)
run = board[board.run_id == ctx.run_id]
dataset_id = int(run.dataset_id.iloc[0]) if len(run) else int(sets.dataset_id.iloc[0])
mine = board[board.dataset_id == dataset_id]

if len(mine) and mine.accuracy.notna().any():
    st.info(state.plain_summary(mine.iloc[0].to_dict(), len(mine)), icon=":material/campaign:")

st.subheader("Datasets")
table(ctx,
    sets[["name", "kind", "n_tracks", "n_genres", "n_unreadable", "n_missing", "n_faults", "faults", "genres"]],
    lay_columns={"name": "dataset", "kind": "kind", "n_tracks": "songs", "n_genres": "genres",
                 "n_unreadable": "unreadable files", "n_faults": "faults found"},
    hide_index=True, width="stretch",
    column_config={"name": "dataset", "n_tracks": "tracks", "n_genres": "genres", "n_unreadable": "unreadable files",
                   "n_missing": "missing files", "n_faults": "faults found", "faults": "which faults",
                   "genres": st.column_config.TextColumn("genre names", width="large")})

st.subheader("Leaderboard")
if board.empty:
    st.info("No training run has finished yet. Train one with `python -m training train --dataset NAME "
            "--model cnn`, or run `make demo`.")
    st.stop()
st.caption("One entry per experiment, best first per dataset (★): a k-fold experiment is scored on its pooled "
           "out-of-fold predictions (every track once), with the per-fold spread beside it. Entries marked "
           "'other test set' were not tested on the ★ entry's tracks, so their accuracies are not directly "
           "comparable with it. Click a row to make it the run the other pages show.")
leaderboard = board.assign(sweep=board.sweep.fillna(""),
    star=board.best.map({True: "★", False: ""}),
    test_set=board.comparable.map({True: "", False: "other test set"}),
    accuracy_ci=[state.format_pct(a, lo, hi) for a, lo, hi in zip(board.accuracy, board.ci_low, board.ci_high)],
)
columns = ["star", "dataset", "model", "representation", "trained_with", "split", "accuracy_ci", "fold_spread", "test_set",
           "macro_f1", "top2", "n_test", "sweep", "finished_at", "run_id"]


def _highlight(row):
    style = "background-color: #FFF3BF; font-weight: 600" if row.star else ""
    return [style] * len(row)


def _pick(run_ids: list) -> None:
    """on_select: make the clicked leaderboard row the chosen run (only when the click changes)."""
    rows = st.session_state["leaderboard"].selection.rows
    if rows:
        st.session_state[state.RUN] = run_ids[rows[0]]


# Projected, the board keeps what a hall reads (fold spreads, sweeps and run ids are bookkeeping).
LAY_COLUMNS = {"star": "★", "dataset": "dataset", "model": "model", "representation": "listens to",
               "trained_with": "trained with", "split": "split", "accuracy_ci": "accuracy [95% CI]", "macro_f1": "macro-F1", "n_test": "test songs"}
table(ctx,
    leaderboard[columns].style.apply(_highlight, axis=1).format({"macro_f1": "{:.3f}", "top2": "{:.3f}"}, na_rep="–"),
    lay_columns=LAY_COLUMNS,
    hide_index=True, width="stretch", on_select=partial(_pick, list(leaderboard.run_id)), selection_mode="single-row",
    key="leaderboard",
    column_config={"star": st.column_config.TextColumn("", width="small"),
                   "accuracy_ci": "track accuracy [95% CI]", "fold_spread": "per fold (mean ± sd)",
                   "test_set": "comparable?", "trained_with": "trained with", "macro_f1": "macro-F1", "top2": "top-2",
                   "n_test": "test tracks",
                   "finished_at": st.column_config.DatetimeColumn("finished", format="YYYY-MM-DD HH:mm")})

top = mine.head(15).assign(label=lambda f: [state.run_label(m, r, i) for m, r, i in
                                            zip(f.model, f.representation, f.run_id)])
st.plotly_chart(figure("accuracy_ci", top[charts.CI_COLUMNS], highlight=ctx.run_id, presentation=ctx.presentation),
                theme=None, config=charts.plot_config(ctx.image_format, "leaderboard"), key="overview_ci")
st.caption("Dots are accuracies, whiskers their 95% bootstrap intervals over test tracks; "
           "the chosen run is red. Overlapping whiskers: the difference may be luck (see Compare).")
