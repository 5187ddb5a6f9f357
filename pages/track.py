"""Track: hear one track and see what the chosen run heard in it."""

import streamlit as st

from genre_core.app import state
from genre_core.app import charts, media
from genre_core.app import multilabel as ml_view
from genre_core.app import queries as q
from genre_core.untrusted import markdown as md
from page_frame import NO_RUN, figure, open_page

ctx, cached = open_page("pages/track.py", None, needs_run=False, cache_entries=256)
SEARCH_LIMIT = 50  # tracks the picker lists; the search itself covers the whole dataset

if ctx.run_id is None:
    st.title("Track")
    st.info(NO_RUN)
    st.stop()
run = cached(q.run_row)(ctx.db, ctx.run_id)
dataset_id = int(run.dataset_id)
first = cached(q.search_tracks)(ctx.db, ctx.run_id, "", 1)  # test tracks first
if first.empty:
    st.title("Track")
    st.info(f"Dataset {md(run.dataset)} has no tracks.")
    st.stop()
if not ctx.track or ctx.track[0] != dataset_id or cached(q.track)(ctx.db, dataset_id, ctx.track[1]) is None:
    state.open_track(st.session_state, dataset_id, first.track_id.iloc[0])
    ctx = state.context(st.session_state)
track_id = ctx.track[1]


def _go(track: str) -> None:
    state.open_track(st.session_state, dataset_id, track)


def _picked() -> None:
    _go(st.session_state["_track_pick"])


def _label(track: str, label: str, predicted) -> str:
    return f"{track} · {label}" + (f" → {predicted}" if isinstance(predicted, str) else " (train)")


def track_controls() -> None:
    """Prev/next through the selection, and a search over every track of the dataset whose
    matches the picker lists; their callbacks move state.TRACK before the page runs, so
    there is nothing to return."""
    previous, following, position = state.step(ctx.selection, track_id)
    nav = st.columns([1, 2, 3, 1], vertical_alignment="bottom")
    nav[0].button("◀ previous", on_click=_go, args=(previous,), disabled=previous is None, key="prev",
                  width="stretch")
    nav[3].button("next ▶", on_click=_go, args=(following,), disabled=following is None, key="next", width="stretch")
    text = nav[1].text_input("Find a track", key="track_search", placeholder="id, artist, genre or file name",
                             help=f"Searches all tracks of {md(run.dataset)}; the picker lists the first {SEARCH_LIMIT}")
    found = cached(q.search_tracks)(ctx.db, ctx.run_id, text, SEARCH_LIMIT)
    labels = {track_id: _label(track_id, row.label, predicted)}
    labels.update({r.track_id: _label(r.track_id, r.label, r.predicted) for r in found.itertuples()})
    n = int(found.n_matches.iloc[0]) if len(found) else 0
    where = "" if position is None else f" ({position + 1} of {len(ctx.selection.track_ids)} · {ctx.selection.source})"
    listed = f", first {SEARCH_LIMIT} listed" if n > SEARCH_LIMIT else ""
    matches = f" · {n:,} match{'es' if n != 1 else ''}{listed}" if text.strip() else ""
    st.session_state["_track_pick"] = track_id
    nav[2].selectbox(md(f"Track{where}{matches}"), list(labels), key="_track_pick", format_func=labels.get,
                     on_change=_picked, help="Test tracks first, then validation, then training")


def cam_controls() -> tuple[str, float]:
    """(Grad-CAM target: "predicted" | "true", overlay opacity)"""
    box = st.expander("Grad-CAM settings") if ctx.presentation else st.container()
    with box:
        target, opacity = st.columns([2, 1])
        chosen = target.radio("Grad-CAM for", ["predicted", "true"], horizontal=True, key="cam_target",
                              format_func=lambda t: f"{t} genre")
        alpha = opacity.slider("Overlay opacity", 0.0, 1.0, 0.6, 0.05, key="cam_opacity")
    return chosen, alpha


row = cached(q.track)(ctx.db, dataset_id, track_id)
probs = cached(q.track_probs)(ctx.db, ctx.run_id, track_id)
faults = cached(q.track_faults)(ctx.db, dataset_id, track_id)
predicted = probs[probs.is_predicted].genre.iloc[0] if len(probs) else None

st.title(f"Track {md(track_id)}")
verdict = ("not predicted by this run (a training track)" if predicted is None else
           f"predicted **{md(predicted)}** " + (":green[✓]" if predicted == row.label else ":red[✗]")
           + f" ({probs.prob.max():.0%})")
flags = " ".join(f":orange-badge[{k.replace('_', ' ')}]" for k in dict.fromkeys(faults.kind)) if len(faults) else ""
st.markdown(f"True genre **{md(row.label)}** · {verdict} · artist {md(row.artist) if row.artist else 'unknown'} · "
            f"{(row.duration_s or 0):.0f} s · {probs.split.iloc[0] if len(probs) else 'train'} {flags}")
genre_set = cached(q.track_genre_set)(ctx.db, ctx.run_id, track_id)
if genre_set is not None:  # a multi-label run: every genre of the track, not one
    st.markdown(ml_view.genre_line(genre_set, list(run.classes)))
track_controls()

audio = cached(media.track_audio)(ctx.db, dataset_id, track_id)
if audio is None:
    st.warning(media.NO_AUDIO if row.status == "ok" else  # ok but refused by queries.track_file
               f"No playable audio: the file is {row.status}" + (f" ({md(row.error)})" if row.error else "") + ".")
else:
    st.audio(audio[0], sample_rate=audio[1], autoplay=bool(st.session_state.pop(state.AUTOPLAY, False)))
    envelope = cached(media.track_waveform)(ctx.db, dataset_id, track_id)
    st.plotly_chart(figure("waveform", envelope, ctx.presentation),
                    theme=None, config=charts.plot_config(ctx.image_format, f"{track_id}_waveform"), key="waveform")

st.subheader("What the model listened to")
target_kind, opacity = cam_controls()
genre = (predicted or row.label) if target_kind == "predicted" else row.label
attrs = cached(q.attributions)(ctx.db, ctx.run_id, track_id)
cam_row = attrs[attrs.target == genre]
cam = cam_row["values"].iloc[0] if len(cam_row) else None
overlay = run.representation in ("logmel", "musicnn")
mel = cached(media.track_mel)(ctx.db, dataset_id, track_id, run.representation, run.config) if audio else None
if mel is not None:
    st.plotly_chart(figure("spectrogram", mel, cam=cam if overlay else None, opacity=opacity, target=genre, presentation=ctx.presentation),
                    theme=None, config=charts.plot_config(ctx.image_format, f"{track_id}_spectrogram"),
                    key="spectrogram")
if cam is not None and not overlay:
    st.plotly_chart(figure("attribution_grid", cam, float(row.duration_s or (mel["duration_s"] if mel else 30.0)),
                                            f"{run.representation} coefficient", presentation=ctx.presentation),
                    theme=None, config=charts.plot_config(ctx.image_format, f"{track_id}_gradcam"), key="gradcam_grid")
if cam is not None:
    st.caption(f"Grad-CAM: bright regions are where the network found evidence for **{md(genre)}**.")
    bands = cached(q.band_importance)(ctx.db, ctx.run_id)
    profile = bands[(bands.genre == genre) & (bands.method == "gradcam")]
    if len(profile):
        with st.expander(f"Where the evidence for {md(genre)} usually lies (all explained tracks of this run)"):
            st.plotly_chart(figure("band_profile", profile["values"].iloc[0], genre, ctx.presentation), theme=None,
                            config=charts.plot_config(ctx.image_format, f"{genre}_bands"), key="bands")
elif len(attrs) == 0:
    st.caption("No Grad-CAM map stored for this track (maps cover the analysed test tracks of CNN-like runs: "
               f"`python -m training analyze --run {ctx.run_id}`).")
else:
    st.caption(f"No Grad-CAM map for {md(genre)} (stored for: {', '.join(map(md, attrs.target))}).")

segments = cached(q.segments)(ctx.db, ctx.run_id, track_id)
if probs.empty:
    st.info("This run made no prediction for this track: it was on the training side of the split.")
else:
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.subheader("Genre over time")
        st.plotly_chart(figure("window_timeline", segments, float(run.window_s or 3.0), list(run.classes),
                                               presentation=ctx.presentation),
                        theme=None, config=charts.plot_config(ctx.image_format, f"{track_id}_timeline"),
                        key="timeline")
    with right:
        st.subheader("Overall")
        st.plotly_chart(figure("probability_bars", probs, list(run.classes), ctx.presentation),
                        theme=None, config=charts.plot_config(ctx.image_format, f"{track_id}_probs"), key="probs")

tags = cached(q.taggram)(ctx.db, ctx.run_id, track_id)
if tags is not None:
    st.subheader("Tags a pretrained model hears")
    st.plotly_chart(figure("taggram", tags, presentation=ctx.presentation),
                    theme=None, config=charts.plot_config(ctx.image_format, f"{track_id}_taggram"), key="taggram")

near = cached(q.neighbours)(ctx.db, ctx.run_id, track_id)
if len(near):
    st.subheader("Sounds closest to it (for this model)")
    walk = state.Selection(f"neighbours of {track_id}", (track_id, *near.neighbour_id), dataset_id)
    for col, other in zip(st.columns(4), near.head(4).itertuples()):
        with col:
            said = f" → {md(other.predicted)}" if isinstance(other.predicted, str) else ""
            st.markdown(f"**{md(other.neighbour_id)}** · {md(other.label)}{said}")
            clip = cached(media.track_audio)(ctx.db, dataset_id, other.neighbour_id) if other.playable else None
            if clip is not None:
                st.audio(clip[0], sample_rate=clip[1])
            st.button("open", key=f"nb_{other.neighbour_id}", on_click=state.open_track,
                      args=(st.session_state, dataset_id, other.neighbour_id, walk))
    st.dataframe(near, hide_index=True, width="stretch")

if len(faults):
    st.subheader("Fault flags")
    st.dataframe(faults[["kind", "source", "score", "group_id", "decision", "evidence"]].assign(
        evidence=faults.evidence.map(lambda e: ", ".join(f"{k}: {v}" for k, v in e.items()))),
        hide_index=True, width="stretch")
