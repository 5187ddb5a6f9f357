"""Failure patterns: groups of test tracks the chosen run gets wrong more often than chance
allows, in musical terms, each opening onto its tracks."""

import pandas as pd
import streamlit as st

from genre_core.analysis.slices import FAMILIES, tested_count
from genre_core.analysis.slice_words import p_text, rule_sentence, same_tracks_sentence, slice_sentence
from genre_core.app import state
from genre_core.app import queries as q
from genre_core.untrusted import markdown as md
from genre_core.untrusted import plain
from page_frame import open_page, table

CHOSEN = "genrelens.patterns_slice"  # (run_id, rank) of the slice whose tracks are listed

ctx, cached = open_page("pages/patterns.py", "Failure patterns",
    "Groups of test tracks sharing a genre, an artist or a musical trait (tempo, key, loudness, brightness, "
    "drums, voices) that the chosen run gets wrong more often than chance would. Click a slice to list its "
    "tracks and open them.")

run = cached(q.run_row)(ctx.db, ctx.run_id)
slices = cached(q.failure_slices)(ctx.db, ctx.run_id)
if slices.empty:
    st.info(f"No failure patterns stored for this run yet: `python -m training analyze --run {md(ctx.run_id)}` "
            "looks for them.")
    st.stop()
st.caption(md(rule_sentence(slices)))
significant, others = slices[slices.significant], slices[~slices.significant]


def slice_table(frame: pd.DataFrame, key: str) -> None:
    """Slices as rows a musicologist reads; a clicked row becomes the chosen slice."""
    shown = pd.DataFrame({
        "slice": [plain(d + (f" (same tracks: {'; '.join(same)})" if len(same) else ""))
                  for d, same in zip(frame.description, frame.same_tracks_as)],
        "right": [f"{int(n - e)} of {int(n)}" for n, e in zip(frame.n, frame.errors)],
        "accuracy": 100 * frame.accuracy, "other tracks": 100 * frame.rest_accuracy,
        "p": frame.p_value.map(p_text), "q": frame.q_value.map(p_text)})
    percent = dict(format="%.0f%%", min_value=0, max_value=100, width="small")
    picked = st.dataframe(
        shown, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key=key,
        column_config={"slice": st.column_config.TextColumn("slice", width="large"),
                       "right": st.column_config.TextColumn("tracks right", width="small"),
                       "accuracy": st.column_config.ProgressColumn("accuracy", **percent),
                       "other tracks": st.column_config.ProgressColumn("the others'", **percent),
                       "p": st.column_config.TextColumn("p (Fisher)", width="small"),
                       "q": st.column_config.TextColumn("q (BH)", width="small")})
    if picked.selection.rows:
        chosen = (ctx.run_id, int(frame["rank"].iloc[picked.selection.rows[0]]))
        if st.session_state.get(CHOSEN) != chosen:
            st.session_state[CHOSEN] = chosen
            st.rerun()


first = slices.iloc[0]
if significant.empty:
    st.info(f"No slice of this run's {int(first.run_tracks)} {md(first.split)} tracks fails more often than "
            f"chance allows at a {FAMILIES * float(first.alpha):.0%} false discovery rate: no pattern to report. The best "
            "ranked slices are below, to look at, not to conclude from.")
else:
    st.subheader(f"{len(significant)} significant slice{'s' if len(significant) != 1 else ''}, worst first")
    slice_table(significant, "significant_slices")
    if (st.session_state.get(CHOSEN) or (None,))[0] != ctx.run_id:  # another run's choice: the worst slice
        st.session_state[CHOSEN] = (ctx.run_id, int(significant["rank"].iloc[0]))
n_others = tested_count(slices) - len(significant)
with st.expander(f"Not significant: the {len(others)} best ranked of {n_others} slices", expanded=significant.empty):
    slice_table(others, "other_slices")


def chosen_slice() -> None:
    """The chosen slice in words, and its tracks, each opening onto the Track page."""
    chosen = st.session_state.get(CHOSEN)
    rows = slices[slices["rank"] == chosen[1]] if chosen and chosen[0] == ctx.run_id else slices.iloc[:0]
    if rows.empty:
        st.info("Click a slice to list its tracks.", icon=":material/touch_app:")
        return
    row = rows.iloc[0]
    st.subheader(md(row.description))
    st.write(md(slice_sentence(row)))
    if same := same_tracks_sentence(row):
        st.caption(md(same))
    track_ids = tuple(str(t) for t in row.track_ids)
    selection = state.Selection(f"Failure pattern: {row.description}", track_ids, int(run.dataset_id))

    def _open(track_id: str) -> None:
        state.open_track(st.session_state, int(run.dataset_id), track_id, selection)
        st.switch_page("pages/track.py")

    if st.button(f"Open its {len(track_ids)} tracks in the Track view", icon=":material/play_arrow:",
                 key="open_slice"):
        _open(track_ids[0])
    tracks = state.filter_tracks(cached(q.predictions)(ctx.db, ctx.run_id, str(row.split)), track_ids)
    picked = st.dataframe(
        tracks[["track_id", "label", "predicted", "confidence", "artist"]], hide_index=True, width="stretch",
        on_select="rerun", selection_mode="single-row", key="slice_tracks",
        column_config={"label": "genre", "predicted": "model says",
                       "confidence": st.column_config.ProgressColumn("confidence", format="percent", min_value=0,
                                                                     max_value=1)})
    st.caption("Click a row to open that track.")
    if picked.selection.rows:
        _open(tracks.track_id.iloc[picked.selection.rows[0]])


chosen_slice()


def concepts_section() -> None:
    """Which musical qualities push the model toward each genre (TCAV), significant ones only."""
    scores = cached(q.concept_scores)(ctx.db, ctx.run_id)
    if scores.empty:
        return
    st.subheader("Musical qualities that push it toward a genre")
    first = scores.iloc[0]
    st.caption(md(f"TCAV (Kim et al., 2018) on the layer before the model's embedding: concepts are the top and "
                  f"bottom third of its training tracks by tempo, brightness, percussive share, loudness, dynamics "
                  f"and noisiness; each concept's effect on a genre is tested against random sets of tracks of the "
                  f"same genres, and Benjamini–Hochberg keeps the false discovery rate at {float(first.alpha):.0%} "
                  f"over the {int(first.n_tested)} (concept, genre) pairs tested."))
    passed = scores[scores.significant]
    if passed.empty:
        best = scores.sort_values("p").iloc[0]
        st.info(md(f"No concept moves a genre more than random sets of tracks of the same genres do: nothing to "
                   f"report. (Closest: {best.concept} {best.direction} {best.genre}, p = {p_text(best.p)}, "
                   f"q = {p_text(best.q)}.)"))
        return
    table(ctx, pd.DataFrame({"genre": passed.genre.map(plain), "concept": passed.concept.map(plain),
                               "direction": passed.direction, "TCAV score": passed.score.round(2),
                               "q": passed.q.map(p_text)}), hide_index=True, width="stretch")


concepts_section()
