"""GenreLens: explore genre classifiers, their mistakes and their data. `streamlit run app.py`

The frame around every page: navigation, and a sidebar with the database, the run and the
presentation toggle. Choices live under non-widget session_state keys (see
genre_core.app.state) so they survive page switches; each page reads them via `context()`.
"""

from __future__ import annotations

import importlib
import threading

import streamlit as st

from genre_core.app import state
from genre_core.app import queries as q
from genre_core.store import default_db_path

st.set_page_config(page_title="GenreLens", page_icon="🎧", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/leaderboard:", default=True),
    st.Page("pages/confusion.py", title="Confusion", icon=":material/grid_on:"),
    st.Page("pages/map.py", title="Map", icon=":material/scatter_plot:"),
    st.Page("pages/track.py", title="Track", icon=":material/music_note:"),
    st.Page("pages/faults.py", title="Faults", icon=":material/report:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/classify.py", title="Classify", icon=":material/upload_file:"),
]

PRESENTATION_CSS = """<style>
[data-testid="stMain"] p, [data-testid="stMain"] li, [data-testid="stMain"] label p,
[data-testid="stMain"] [data-testid="stCaptionContainer"] { font-size: 1.35rem !important; }
[data-testid="stMain"] h1 { font-size: 3.4rem !important; }
[data-testid="stMain"] h2, [data-testid="stMain"] h3 { font-size: 2.2rem !important; }
[data-testid="stMain"] [data-testid="stMetricValue"],
[data-testid="stMain"] [data-testid="stMetricValue"] * { font-size: 3.4rem !important; }
</style>"""


def _keep(widget_key: str, key: str) -> None:
    """on_change: copy a widget's value to its non-widget key (widget state dies on page switch)."""
    st.session_state[key] = st.session_state[widget_key]


def _widget_from(key: str, widget_key: str, default) -> None:
    st.session_state.setdefault(key, default)
    st.session_state[widget_key] = st.session_state[key]


def database_picker() -> str:
    _widget_from("genrelens.db_path", "_db_path", str(default_db_path()))
    st.sidebar.text_input("Database", key="_db_path", on_change=_keep, args=("_db_path", "genrelens.db_path"),
                          help="A GenreLens DuckDB file (default: $GENRELENS_DB or data/genrelens.duckdb)")
    return st.session_state["genrelens.db_path"]


@st.cache_data(show_spinner=False, max_entries=16)
def _runs(db: q.DbRef):
    return q.leaderboard(db)


def _default_run(db: q.DbRef, board) -> str:
    """The best run that has been analysed (maps, Grad-CAM to show), else the best run."""
    for run_id in board.run_id.head(10):
        if q.projection_methods(db, run_id):
            return run_id
    return board.run_id.iloc[0]


def run_picker(db: q.DbRef) -> str | None:
    """The chosen complete run (default: the best), kept under state.RUN."""
    board = _runs(db)
    if board.empty:
        return None
    ids = list(board.sort_values("finished_at", ascending=False).run_id)
    if st.session_state.get(state.RUN) not in ids:
        st.session_state[state.RUN] = _default_run(db, board)
    def label(r) -> str:
        accuracy = "–" if r.accuracy != r.accuracy else f"{r.accuracy:.0%}"  # NaN: no test results
        return f"{r.model} · {r.dataset} · {accuracy} · {r.run_id}"

    labels = {r.run_id: label(r) for r in board.itertuples()}
    st.session_state["_run"] = st.session_state[state.RUN]
    st.sidebar.selectbox("Run", ids, key="_run", format_func=labels.get, on_change=_keep, args=("_run", state.RUN),
                         help="Complete runs only, newest first; the label shows test accuracy")
    return st.session_state[state.RUN]


def display_options() -> None:
    _widget_from(state.PRESENTATION, "_presentation", False)
    st.sidebar.toggle("Presentation mode", key="_presentation", on_change=_keep,
                      args=("_presentation", state.PRESENTATION),
                      help="Bigger fonts and charts, page controls folded away: for projectors")
    _widget_from(state.IMAGE_FORMAT, "_image_format", "svg")
    st.sidebar.radio("Chart downloads (camera icon)", ["svg", "png"], key="_image_format", horizontal=True,
                     on_change=_keep, args=("_image_format", state.IMAGE_FORMAT))


@st.cache_resource(show_spinner=False)
def _warm_up() -> bool:
    """Import the audio stack (torch, librosa) once per server process in the background, so
    the first Track page opened does not wait seconds for it."""
    threading.Thread(target=importlib.import_module, args=("genre_core.features.spectral",), daemon=True).start()
    return True


def main() -> None:
    _warm_up()
    page = st.navigation(PAGES)
    path = database_picker()
    db_state, message = q.database_state(path)
    display_options()
    if st.session_state.get(state.PRESENTATION):
        st.html(PRESENTATION_CSS)
    if db_state in ("missing", "empty", "invalid"):
        st.title("GenreLens")
        (st.error if db_state == "invalid" else st.info)(message, icon=":material/database:")
        st.markdown("GenreLens shows how music-genre classifiers behave: leaderboards with "
                    "confidence intervals, clickable confusion matrices, maps of what the "
                    "model hears, Grad-CAM over spectrograms and the faults of the dataset.")
        return
    db = q.DbRef(path, q.db_version(path))
    st.session_state[state.DB] = db
    run_id = run_picker(db)
    st.session_state[state.RUN] = run_id
    if state.RETURN_TO in st.session_state:
        st.switch_page(st.session_state.pop(state.RETURN_TO))
    page.run()


main()
