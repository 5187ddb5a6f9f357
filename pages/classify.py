"""Classify: any recording through the chosen run, as a genre timeline."""

import logging
from pathlib import Path

import streamlit as st

from genre_core.app import charts, classify, media
from genre_core.untrusted import markdown as md
from page_frame import open_page

log = logging.getLogger("genrelens.app")
RESULT = "genrelens.classify_result"  # (upload key, run_id, live.recording.Recording)

ctx, _ = open_page("pages/classify.py", "Classify a recording",
    f"Upload any audio file (up to {media.MAX_UPLOAD_MB} MB) or record one: the chosen run labels every few "
    "seconds, and a smoothed timeline shows where the genre changes.")


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def model_of(db_path: str, run_id: str):
    return classify.load_model(db_path, run_id)


def classify_controls():
    """The upload (or recording), or None."""
    left, right = st.columns([3, 2])
    upload = left.file_uploader("Audio file", type=None, max_upload_size=media.MAX_UPLOAD_MB, key="upload",
                                help="wav, mp3, flac, ogg, au, aiff…")
    recorded = right.audio_input("…or record", key="record")
    return upload or recorded


given = classify_controls()
stored = st.session_state.get(RESULT)
if given is not None:
    key = (given.file_id, ctx.run_id)
    if stored is None or stored[0] != key:
        # Before the model loads and before a byte is decoded: size, rate, channels, duration.
        problem = media.upload_problem(given.getvalue(), given.name)
        if problem:
            st.error(problem, icon=":material/block:")
            st.stop()
        try:
            loaded = model_of(ctx.db.path, ctx.run_id)
        except Exception:  # a run whose model file is gone, or a model family not loadable here
            log.warning("run %s: model not loadable", ctx.run_id, exc_info=True)  # the details stay on the server
            st.warning(f"The model of run {md(ctx.run_id)} cannot be loaded here: its model file is missing, "
                       "damaged or of a kind this machine cannot run. The server's log says which.")
            st.stop()
        with st.spinner("Listening…"):
            try:
                heard = classify.classify_upload(loaded, given.getvalue(), given.name)
            except classify.Rejected as exc:  # not audio, too short or silent
                st.error(str(exc), icon=":material/block:")
                st.stop()
        stored = (key, ctx.run_id, heard)
        st.session_state[RESULT] = stored
elif stored is None:
    st.info("Upload a file or record something to see its genre timeline.", icon=":material/upload_file:")
    st.stop()

_, run_id, heard = stored
result, frame, cam = heard.result, heard.frame, heard.loudest
overall, share = heard.verdict()
st.subheader(f"Verdict: {md(overall)}")
st.write(f"**{md(heard.name)}**: {md(overall)} for {share:.0%} of its {result.seconds_audio:.0f} s "
         f"({len(result.sections)} section{'s' if len(result.sections) != 1 else ''}); "
         f"classified in {result.seconds_wall:.1f} s by run {md(run_id)}.")
st.plotly_chart(charts.sections_timeline(frame, result.classes, ctx.presentation),
                theme=None, config=charts.plot_config(ctx.image_format, "timeline"), key="classify_timeline")
st.code(classify.format_sections(result.sections), language=None)
st.download_button("Download the timeline (CSV)", classify.timeline_csv(frame),
                   file_name=f"{Path(heard.name).stem}_timeline.csv", mime="text/csv", icon=":material/download:")

st.subheader("What the model heard in the loudest moment")
if cam is None:
    st.caption("Grad-CAM needs a convolutional network; this run's model has none.")
    st.stop()
if cam.image is not None:
    fig = charts.spectrogram(cam.image, cam=cam.cam, opacity=0.6, target=cam.genre, presentation=ctx.presentation)
    fig.update_xaxes(title=f"seconds after {cam.start_s:.1f} s")
else:
    fig = charts.attribution_grid(cam.cam, cam.window_s, f"{heard.representation} coefficient", presentation=ctx.presentation)
st.plotly_chart(fig, theme=None, config=charts.plot_config(ctx.image_format, "loudest_gradcam"),
                key="classify_cam")
st.caption(f"The {cam.window_s:.0f}-s window starting at {cam.start_s:.1f} s, where the recording is "
           f"loudest; bright regions are the evidence for **{md(cam.genre)}** ({cam.prob:.0%}).")
