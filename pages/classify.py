"""Classify: any recording through the chosen run, as a genre timeline."""

import tempfile
from pathlib import Path

import streamlit as st

from genre_core.app import state as S
from genre_core.app import charts
from genre_core.app import queries as q
from page_frame import enter, require_run
from genre_core.store import Store

MAX_MB = 200
RESULT = "genrelens.classify_result"  # (upload key, run_id, name, result, timeline frame, loudest-window cam)

ctx = enter("pages/classify.py")
cached = st.cache_data(show_spinner=False, max_entries=32)

st.title("Classify a recording")
st.write(f"Upload any audio file (up to {MAX_MB} MB) or record one: the chosen run labels every few "
         "seconds, and a smoothed timeline shows where the genre changes.")
require_run(ctx)
try:
    from genre_core.live import streaming, timeline
    from genre_core.train.inference import load_run
except ImportError as exc:
    st.info(f"Live classification is not available in this installation ({exc}).")
    st.stop()


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def model_of(db_path: str, run_id: str):
    return load_run(Store(db_path), run_id, device="cpu")


def classify_controls():
    """The upload (or recording), or None."""
    left, right = st.columns([3, 2])
    upload = left.file_uploader("Audio file", type=None, max_upload_size=MAX_MB, key="upload",
                                help="wav, mp3, flac, ogg, au, aiff…")
    recording = right.audio_input("…or record", key="record")
    return upload or recording


def decode(data: bytes, name: str):
    """((N,) float32 mono at the file's own rate, sr) or raise AudioError."""
    from genre_core import audio

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("upload" + Path(name).suffix.lower())
        path.write_bytes(data)
        info = audio.probe(path)
        return audio.load(path, sr=None, reject_silent=False), info.sample_rate


def loudest_gradcam(loaded, y, sr) -> dict | None:
    """Grad-CAM of the loudest window for its own top genre, or None for models without a
    convolutional layer (or without genre_core.analysis.explain)."""
    try:
        from genre_core.analysis import explain
    except ImportError:
        return None
    if loaded.model is None or getattr(loaded.model, "gradcam_layer", None) is None:
        return None
    from genre_core.audio import resample

    start, window = S.loudest_window(resample(y, sr, loaded.sr), loaded.sr, loaded.window_s, 0.5)
    probs = loaded.predict_windows(window[None])[0][0]  # (C,)
    target = int(probs.argmax())
    cam = explain.gradcam_windows(loaded.model, loaded.frontend, window[None], target)[0]  # (F, T)
    return dict(start=start, window=window, cam=cam / max(float(cam.max()), 1e-9), target=target,
                prob=float(probs[target]))


given = classify_controls()
stored = st.session_state.get(RESULT)
if given is not None:
    key = (given.file_id, ctx.run_id)
    if stored is None or stored[0] != key:
        if given.size > MAX_MB * 1024 * 1024:
            st.error(f"{given.name} is {given.size / 2**20:.0f} MB; the limit is {MAX_MB} MB. "
                     "Cut it shorter first.")
            st.stop()
        from genre_core.audio import AudioError

        try:
            y, sr = decode(given.getvalue(), given.name)
        except AudioError as exc:
            st.error(f"{given.name} is not audio GenreLens can read: {exc.reason}.", icon=":material/block:")
            st.stop()
        try:
            loaded = model_of(ctx.db.path, ctx.run_id)
        except Exception as exc:  # a run whose model file is gone, or a model family not loadable here
            st.warning(f"The model of run {ctx.run_id} cannot be loaded: {exc}")
            st.stop()
        with st.spinner("Listening…"):
            try:
                result = streaming.classify_array(loaded, y, sr, name=given.name)
            except ValueError as exc:  # too short or silent
                st.error(str(exc))
                st.stop()
            frame = timeline.timeline_frame(result.predictions, result.classes, result.sections)
            cam = loudest_gradcam(loaded, y, sr)
        stored = (key, ctx.run_id, given.name, result, frame, cam)
        st.session_state[RESULT] = stored
elif stored is None:
    st.info("Upload a file or record something to see its genre timeline.", icon=":material/upload_file:")
    st.stop()

_, run_id, name, result, frame, cam = stored
spans = {}
for s in result.sections:
    spans[s.genre] = spans.get(s.genre, 0.0) + (s.end_s - s.start_s)
overall = max((g for g in spans if g != timeline.SILENCE), key=spans.get, default=timeline.SILENCE)
share = spans.get(overall, 0.0) / max(result.seconds_audio, 1e-9)
st.subheader(f"Verdict: {overall}")
st.write(f"**{name}**: {overall} for {share:.0%} of its {result.seconds_audio:.0f} s "
         f"({len(result.sections)} section{'s' if len(result.sections) != 1 else ''}); "
         f"classified in {result.seconds_wall:.1f} s by run {run_id}.")
st.plotly_chart(charts.sections_timeline(frame, result.classes, ctx.presentation),
                theme=None, config=charts.plot_config(ctx.image_format, "timeline"), key="classify_timeline")
st.code(timeline.format_sections(result.sections), language=None)
st.download_button("Download the timeline (CSV)", frame.to_csv(index=False),
                   file_name=f"{Path(name).stem}_timeline.csv", mime="text/csv", icon=":material/download:")

st.subheader("What the model heard in the loudest moment")
if cam is None:
    st.caption("Grad-CAM needs a convolutional network; this run's model has none.")
    st.stop()
loaded = model_of(ctx.db.path, run_id)
genre = result.classes[cam["target"]]
representation = cached(q.run_row)(ctx.db, run_id).representation or "logmel"
if representation in ("logmel", "musicnn"):
    if representation == "musicnn":
        settings = q.mel_settings(None, "musicnn")
    else:
        features = loaded.config.features
        settings = dict(n_mels=cam["cam"].shape[0], fmin=features.f_min, fmax=features.f_max)
    settings.pop("sr", None)
    fig = charts.spectrogram(q.mel_image(cam["window"], loaded.sr, **settings), cam["cam"], 0.6, genre,
                             ctx.presentation)
    fig.update_xaxes(title=f"seconds after {cam['start']:.1f} s")
else:
    fig = charts.attribution_grid(cam["cam"], loaded.window_s, f"{representation} coefficient",
                                  ctx.presentation)
st.plotly_chart(fig, theme=None, config=charts.plot_config(ctx.image_format, "loudest_gradcam"),
                key="classify_cam")
st.caption(f"The {loaded.window_s:.0f}-s window starting at {cam['start']:.1f} s, where the recording is "
           f"loudest; bright regions are the evidence for **{genre}** ({cam['prob']:.0%}).")
