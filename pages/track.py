"""Track: hear one track and see what the chosen run heard in it."""

import time

import pandas as pd
import streamlit as st

from genre_core.app import links, state, story
from genre_core.app import charts, evidence, hearing, media, player
from genre_core.app import multilabel as ml_view
from genre_core.app import queries as q
from genre_core.analysis import why
from genre_core.untrusted import markdown as md
from page_frame import NO_RUN, figure, open_page, table
from page_links import keep, notify, take

ctx, cached = open_page("pages/track.py", None, needs_run=False, cache_entries=256)
SEARCH_LIMIT = 50  # tracks the picker lists; the search itself covers the whole dataset
AUTOPLAY_TOKEN = "genrelens.track_autoplay"  # (track_id, token): the player plays once per map click

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


def linked_track(link: dict) -> None:
    """A link's track (and time in it) becomes the page's, or a notice says it is not here."""
    if "track" not in link:
        return
    if cached(q.track)(ctx.db, dataset_id, link["track"]) is None:
        notify(links.notice("the track", link["track"], "the first test track"))
        state.open_track(st.session_state, dataset_id, first.track_id.iloc[0])
        return
    state.open_track(st.session_state, dataset_id, link["track"])
    start = links.seconds(link.get("t"))
    duration = float(cached(q.track)(ctx.db, dataset_id, link["track"]).duration_s or 0)
    if "t" in link and (start is None or (duration and start >= duration)):
        notify(links.notice("the time", link["t"], "the track from its start"))
        start = None
    st.session_state[state.START] = (link["track"], start) if start else None


linked_track(take("track"))
ctx = state.context(st.session_state)
if not ctx.track or ctx.track[0] != dataset_id or cached(q.track)(ctx.db, dataset_id, ctx.track[1]) is None:
    # Nothing chosen yet: open on the run's most instructive explained mistake (as Story's
    # third step), the first test track when it made none.
    state.open_track(st.session_state, dataset_id,
                     cached(story.mistake_to_hear)(ctx.db, ctx.run_id) or first.track_id.iloc[0])
    ctx = state.context(st.session_state)
track_id = ctx.track[1]
start = st.session_state.get(state.START)
start_s = start[1] if start and start[0] == track_id else 0.0  # where the player starts: a link's t=
keep({"track": track_id, "t": links.format_seconds(start_s) if start_s else None})


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


def why_line() -> None:
    """One sentence of why for a mistake, from the run's findings that passed their tests only."""
    if predicted is None or predicted == row.label:
        return
    variant = mind_sentence if source_predicted == predicted else None  # a member's variants speak of its own call
    sentence = why.track_why(track_id, true=row.label, predicted=predicted,
                             slices=cached(q.failure_slices)(ctx.db, ctx.run_id),
                             concepts=cached(q.concept_scores)(ctx.db, ctx.run_id),
                             pushes=cached(q.concept_pushes)(ctx.db, ctx.run_id, track_id), variant_sentence=variant)
    if sentence:
        st.info(f"**Why, as far as the tests go.** {md(sentence)}", icon=":material/lightbulb:")


window_s = float(run.window_s) if pd.notna(run.window_s) and run.window_s > 0 else None  # None: imported
segments = cached(q.segments)(ctx.db, ctx.run_id, track_id)
# Whose explanations: the run's own, or (an ensemble, a pooled k-fold run) a member's, with a note.
source, source_note = cached(q.explanation_source)(ctx.db, ctx.run_id, track_id)
source_run = run if source in (None, ctx.run_id) else cached(q.run_row)(ctx.db, source)
view = source_run if source_run is not None and source_run.representation else run  # the maps' feature image
source_probs = probs if source in (None, ctx.run_id) else cached(q.track_probs)(ctx.db, source, track_id)
source_predicted = source_probs[source_probs.is_predicted].genre.iloc[0] if len(source_probs) else None
attrs = cached(q.attributions)(ctx.db, source, track_id) if source else None
attrs = None if attrs is None else attrs[attrs.method == "gradcam"]
cams = {} if attrs is None else dict(zip(attrs.target, attrs["values"]))
cam_targets = []  # (kind, genre) of the maps to show: the predicted genre's first, one map per genre
if source_predicted in cams:
    cam_targets.append(("predicted" if source_predicted != row.label else "predicted = true", source_predicted))
if row.label in cams and row.label != source_predicted:
    cam_targets.append(("true", row.label))
mel_maps = view.representation in evidence.MEL_REPRESENTATIONS
# The source run's musical variants, and the sentence naming the one that changes its mind:
# read once, said on the why line and in "What changes its mind".
variants_stored = (cached(q.variant_predictions)(ctx.db, source, track_id) if source and source_run is not None
                   else pd.DataFrame())
source_classes = list(source_run.classes) if source_run is not None else []
source_original = hearing.class_probs(source_probs, source_classes)
mind_sentence = (hearing.mind_change(variants_stored, source_original, source_classes, true=row.label,
                                     predicted=source_predicted) if source_predicted is not None else None)
faithful, faith_sentence = cached(hearing.faithfulness_verdict)(cached(q.faithfulness)(ctx.db, source) if source else None)
# Audio renderings are megabytes each: their own small caches, not the page's 256 entries.
heard_audio = st.cache_data(show_spinner="Rendering what the model heard…", max_entries=8)(hearing.heard)
variant_audio = st.cache_data(show_spinner="Rendering the variants…", max_entries=4)(hearing.variants_audio)


@st.cache_resource(show_spinner=False, max_entries=64)
def evidence_figure(build: str, *args, **kwargs):
    """`evidence.<build>(...)` made once and shared read-only, like page_frame.figure for charts."""
    return charts.ready(getattr(evidence, build)(*args, **kwargs))


def player_section() -> None:
    """The player: audio, spectrogram + Grad-CAM, waveform, windows; one playhead, seek, loops."""
    if st.session_state.pop(state.AUTOPLAY, False):  # opened by a map click: play once, not on every rerun
        st.session_state[AUTOPLAY_TOKEN] = (track_id, f"{track_id}@{time.time()}")
    clip = cached(hearing.player_media)(ctx.db, dataset_id, track_id, view.representation or "logmel", view.config)
    if clip is None:
        st.warning(media.NO_AUDIO if row.status == "ok" else  # ok but refused by queries.track_file
                   f"No playable audio: the file is {row.status}" + (f" ({md(row.error)})" if row.error else "") + ".")
        return
    token_track, token = st.session_state.get(AUTOPLAY_TOKEN, (None, None))
    overlays = [cached(player.overlay)(f"{kind} genre: {genre}", cams[genre]) for kind, genre in cam_targets] if mel_maps else []
    windowed = window_s is not None and not segments.empty
    html = player.player_html(
        clip, cells=player.timeline_cells(segments, window_s, charts.genre_colors(list(run.classes)), clip.duration_s)
        if windowed else [],
        loops=player.key_windows(segments, window_s, true=row.label, predicted=predicted, duration_s=clip.duration_s)
        if windowed else [],
        overlays=overlays, presentation=ctx.presentation, autoplay_token=token if token_track == track_id else None,
        start_s=start_s)
    st.iframe(html, height="content", alt="Player: the track's audio over its spectrogram, waveform and windows")
    st.caption("Click the spectrogram, the waveform or the windows to jump there. The window buttons loop "
               f"{window_s:g} s of the track: where the model was surest of its answer, and where it heard the "
               "least of the true genre." if windowed and predicted is not None else
               "Click the spectrogram or the waveform to jump there.")
    if overlays and source != ctx.run_id:
        st.caption(md(f"Grad-CAM over the spectrogram: {source_note}."))


def cam_section() -> None:
    """Grad-CAM for the predicted and the true genre side by side, and where each genre's evidence lies."""
    st.subheader("What the model listened to")
    if source is None:
        st.info(md(source_note))
        return
    if source_note:
        st.caption(md(source_note))
    if not cam_targets:
        st.caption("No Grad-CAM map stored for this track (maps cover the analysed test tracks of CNN-like runs and "
                   f"the closest correct tracks of their mistakes: `python -m training analyze --run {source}`).")
        return
    scales = list(attrs.set_index("target").loc[[g for _, g in cam_targets], "scale"]) if "scale" in attrs else None
    duration = float(row.duration_s or 30.0)
    edges = cached(evidence.mel_edges)(view.representation, hearing.features_of(view.config))
    pair = evidence_figure("cam_pair", [(f"{kind} genre: {genre}", cams[genre]) for kind, genre in cam_targets],
                           duration, edges, scales=scales, ylabel=f"{view.representation or 'feature'} row",
                           presentation=ctx.presentation)
    st.plotly_chart(pair, theme=None, config=charts.plot_config(ctx.image_format, f"{track_id}_gradcam"), key="gradcam_pair")
    same_scale = scales is not None and all(s is not None and s > 0 for s in scales)
    st.caption("Grad-CAM: dark red where the network found the most evidence for the genre above the map. "
               + ("Both maps share one scale (their raw values, the strongest cell of the two = 1)." if same_scale else
                  "One colour scale, but each map was scaled to its own maximum when it was stored: compare where the "
                  "evidence lies in each map, not how strong it is between the two.")
               + ("" if faithful else " Whether these maps show what the model used is not established: see below."))
    bands = cached(q.band_importance)(ctx.db, source)
    profiles = {genre: v for genre, method, v in zip(bands.genre, bands.method, bands["values"])
                if method == "gradcam" and genre in {g for _, g in cam_targets}}
    if profiles:
        names = " and ".join(md(g) for g in profiles)
        with st.expander(f"Where the evidence for {names} usually lies (all explained tracks of this run)",
                         expanded=ctx.presentation):
            st.plotly_chart(evidence_figure("band_profiles", profiles, edges, charts.genre_colors(list(run.classes)),
                                            presentation=ctx.presentation),
                            theme=None, config=charts.plot_config(ctx.image_format, f"{track_id}_bands"), key="bands")


def heard_section() -> None:
    """The listenable map: the top share of the map's time-frequency cells, and the rest, beside the track."""
    if source is None or not cam_targets:
        return
    with st.container(key="heard"):
        st.subheader("What the model heard" if faithful else "Listening to the map")
        (st.success if faithful else st.warning if faithful is False else st.info)(md(faith_sentence))
        if not mel_maps:
            st.caption(f"The maps of a {md(view.representation)} model lie over its feature rows, not over "
                       "frequencies: no part of the sound follows from them.")
            return
        genre = cam_targets[0][1]
        if len(cam_targets) > 1:
            kinds = {g: kind for kind, g in cam_targets}
            genre = st.radio("Mask from the Grad-CAM for", list(kinds), horizontal=True, key="heard_target",
                             format_func=lambda g: md(f"{kinds[g]} genre: {g}"))
        heard = heard_audio(ctx.db, dataset_id, track_id, cams[genre], representation=view.representation,
                            config_json=view.config)
        if heard is None:
            st.caption(media.NO_AUDIO)
            return
        keep = f"{heard.keep:.0%}"
        names = (("What the model heard", "What it ignored") if faithful else
                 (f"The map's top {keep}", f"The other {1 - heard.keep:.0%}"))
        original, kept, rest = st.columns(3)
        original.markdown("**The track**")
        track_clip = cached(media.track_audio)(ctx.db, dataset_id, track_id)
        if track_clip is not None:
            original.audio(track_clip[0], sample_rate=track_clip[1])
        kept.markdown(f"**{names[0]}**")
        kept.audio(heard.heard, sample_rate=heard.sr)
        kept.caption(f"The {keep} of the spectrum's time-frequency cells where the Grad-CAM for {md(genre)} is highest, "
                     f"resynthesised with the original phase; the rest plays {heard.depth_db:.0f} dB quieter (silenced, "
                     "it would sound like nothing the model ever heard).")
        rest.markdown(f"**{names[1]}**")
        rest.audio(heard.ignored, sample_rate=heard.sr)
        rest.caption(f"Everything else in front, the {keep} turned down.")


def variants_section() -> None:
    """What the source run heard in musical variants of the track, each playable, and the variant that changes its mind."""
    stored, classes, original = variants_stored, source_classes, source_original
    if stored.empty:
        return
    with st.container(key="variants"):
        st.subheader("What changes its mind")
        if source_predicted is not None and source_predicted != row.label:
            if mind_sentence:
                st.markdown(f"**{md(mind_sentence)}**")
            else:
                st.caption(f"None of these variants moves it toward {md(row.label)}.")
        variants_shown = evidence.variant_table(stored, original, classes, true=row.label, predicted=source_predicted,
                                                labels=hearing.variant_labels())
        table(ctx, variants_shown, hide_index=True, width="stretch", column_config={
            c: st.column_config.ProgressColumn(c, min_value=0.0, max_value=1.0, format="%.2f")
            for c in variants_shown.columns if c.startswith("p(")})
        if {"percussive", "harmonic"} & set(stored.variant):
            st.caption("HPSS splits a recording into its attacks and its sustained sound, not into drums and the rest: "
                       "on the demo corpus, whose true parts are known, its attacks hold about a third of the drum "
                       "part's energy." + ("" if "no_drums" in set(stored.variant) else
                                           " Only a corpus with true stems (the demo's) can remove the drums themselves."))
        if st.toggle("Listen to the variants", key="variants_listen"):
            rendered = variant_audio(ctx.db, dataset_id, track_id)
            if rendered is None:
                st.caption(media.NO_AUDIO)
                return
            clips, sr = rendered
            labels = hearing.variant_labels()
            for start in range(0, len(clips), 4):
                for col, (name, y) in zip(st.columns(4), list(clips.items())[start:start + 4]):
                    col.markdown(f"**{md(labels.get(name, name.replace('_', ' ')))}**")
                    col.audio(y, sample_rate=sr)


def contrast_section() -> None:
    """Beside a mistake: its closest correctly classified tracks of the true and of the predicted genre."""
    if source is None or source_predicted is None or source_predicted == row.label:
        return
    near = cached(q.contrast_neighbours)(ctx.db, source, track_id)
    if near.empty:
        return
    walk = state.Selection(f"closest correct tracks of {track_id}", (track_id, *near.neighbour_id), dataset_id)
    with st.container(key="contrast"):
        st.subheader("Closest correct tracks")
        st.caption("The correctly classified tracks nearest to this one in the model's embedding space, "
                   "of its true genre and of the genre the model called it." + (f" {md(source_note)}." if source_note else ""))
        for col, side, genre in zip(st.columns(2, gap="large"), ("true", "predicted"), (row.label, source_predicted)):
            with col:
                st.markdown(f"#### Closest correct {md(genre)}")
                part = near[near.side == side]
                if part.empty:
                    st.caption(f"No correctly classified {md(genre)} track to compare with.")
                for other in part.itertuples():
                    contrast_card(other, walk)


def contrast_card(other, walk: state.Selection) -> None:
    with st.container(border=True):
        st.markdown(f"**{md(other.neighbour_id)}** · {md(other.label)} · distance {other.distance:.2f}")
        theirs = cached(q.attributions)(ctx.db, source, other.neighbour_id) if other.explained else None
        cam = dict(zip(theirs.target, theirs["values"])).get(other.label) if theirs is not None else None
        if cam is not None:
            st.image(cached(player.cam_thumbnail)(cam), width="stretch")
            st.caption(f"Grad-CAM for {md(other.label)}: time left to right, low to high bottom to top")
        else:
            st.caption("Not explained (no Grad-CAM stored for it).")
        clip = cached(media.track_audio)(ctx.db, dataset_id, other.neighbour_id) if other.playable else None
        if clip is not None:
            st.audio(clip[0], sample_rate=clip[1])
        st.button("open", key=f"contrast_{other.side}_{other.neighbour_id}", on_click=state.open_track,
                  args=(st.session_state, dataset_id, other.neighbour_id, walk))


why_line()
player_section()
if probs.empty:
    st.info("This run made no prediction for this track: it was on the training side of the split.")
else:
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.subheader("Genre over time")
        st.plotly_chart(figure("window_timeline", segments, window_s or 3.0, list(run.classes), presentation=ctx.presentation),
                        theme=None, config=charts.plot_config(ctx.image_format, f"{track_id}_timeline"),
                        key="timeline")
    with right:
        st.subheader("Overall")
        st.plotly_chart(figure("probability_bars", probs, list(run.classes), ctx.presentation),
                        theme=None, config=charts.plot_config(ctx.image_format, f"{track_id}_probs"), key="probs")
cam_section()
heard_section()
variants_section()
contrast_section()

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
    table(ctx, near, hide_index=True, width="stretch")

if len(faults):
    st.subheader("Fault flags")
    table(ctx, faults[["kind", "source", "score", "group_id", "decision", "evidence"]].assign(
        evidence=faults.evidence.map(lambda e: ", ".join(f"{k}: {v}" for k, v in e.items()))),
        hide_index=True, width="stretch")
