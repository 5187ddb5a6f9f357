"""GenreLens: explore genre classifiers, their mistakes and their data. `streamlit run app.py`

The frame around every page: navigation, and a sidebar with the database, the run and the
presentation toggle. Choices live under non-widget session_state keys (see
genre_core.app.state) so they survive page switches; each page reads them via `context()`.
"""

from __future__ import annotations

import importlib
import logging
import threading
from pathlib import Path

import duckdb
import streamlit as st

from genre_core.app import access, links, presentation, state
from genre_core.app import queries as q
from genre_core.store import Store, StoreBusy, StoreError
from genre_core.workers import bound_heap_growth
from page_links import adopt, copy_link_button, keep, linked_run

log = logging.getLogger("genrelens.app")

st.set_page_config(page_title="GenreLens", page_icon="🎧", layout="wide")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/leaderboard:", default=True),
    st.Page("pages/confusion.py", title="Confusion", icon=":material/grid_on:"),
    st.Page("pages/patterns.py", title="Failure patterns", icon=":material/troubleshoot:"),
    st.Page("pages/map.py", title="Map", icon=":material/scatter_plot:"),
    st.Page("pages/track.py", title="Track", icon=":material/music_note:"),
    st.Page("pages/faults.py", title="Faults", icon=":material/report:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/multilabel.py", title="Multi-label", icon=":material/label:"),
    st.Page("pages/classify.py", title="Classify", icon=":material/upload_file:"),
    st.Page("pages/story.py", title="Story", icon=":material/slideshow:"),
]



def _keep(widget_key: str, key: str) -> None:
    """on_change: copy a widget's value to its non-widget key (widget state dies on page switch)."""
    st.session_state[key] = st.session_state[widget_key]


def _widget_from(key: str, widget_key: str, default) -> None:
    st.session_state.setdefault(key, default)
    st.session_state[widget_key] = st.session_state[key]


def _secret_databases() -> list[str]:
    """`databases = [...]` from .streamlit/secrets.toml, when that file exists."""
    if not st.secrets.load_if_toml_exists():
        return []
    listed = st.secrets.get("databases", [])
    return [listed] if isinstance(listed, str) else [str(p) for p in listed]


def _pick_database() -> None:
    """on_change of the database selectbox: the sidebar's choice replaces a `?db=` link's."""
    st.session_state[state.DB_CHOICE] = st.session_state["_db"]
    if "db" in st.query_params:
        del st.query_params["db"]


def database_picker() -> Path | None:
    """The configured database chosen in the sidebar (or by a `?db=NAME` link, NAME being a
    label the sidebar shows), or None when the choice is not one of them. Visitors pick from
    the operator's list (genre_core.app.access); they never type a path."""
    labels = access.database_labels(access.configured_databases(_secret_databases()))
    if "db" in st.query_params:
        st.session_state[state.DB_CHOICE] = st.query_params["db"]
    chosen = st.session_state.setdefault(state.DB_CHOICE, next(iter(labels)))
    st.session_state[state.LINK_DB] = chosen if len(labels) > 1 else None  # links name it only when it matters
    st.session_state["_db"] = chosen if chosen in labels else None
    st.sidebar.selectbox("Database", list(labels), key="_db", on_change=_pick_database,
                         placeholder="Choose a database",
                         help="The databases whoever runs this app has made available")
    return access.allowed_database(labels, chosen)


def open_database(path: Path | None) -> tuple[q.DbRef | None, str, str]:
    """The app's one place that opens a database: (DbRef or None, state, what to show).

    Anything that is not a usable GenreLens database (not allowed, missing, foreign, corrupt,
    a schema version that is not a number) gets the one neutral `access.REFUSED`, while the
    real reason goes to the server log for the operator.
    """
    if path is None:
        return None, "refused", access.REFUSED
    try:
        db_state, message = q.database_state(path)
        if db_state in ("ok", "no_runs"):
            return q.DbRef(str(path), q.db_version(path)), db_state, message
    except (StoreError, ValueError, duckdb.Error) as exc:  # defensive: a traceback would name paths
        db_state, message = "invalid", f"{path}: {exc}"
    if db_state == "empty":
        return None, db_state, message
    if db_state == "invalid" and _locked(path):  # database_state cannot tell a lock from a bad file
        return None, "busy", BUSY
    log.warning("GenreLens refused database %s: %s", path, message)
    return None, db_state, access.REFUSED


# -- another process holds the database's lock --------------------------------------------------
# An ingest or a training run writing for longer than a read waits (Store.read) keeps every
# reader out. Visitors read that in our words, with no path and no traceback, and can retry;
# the operator finds the details in the server log. Saying "busy" tells a visitor nothing new:
# only a database the operator offers is ever opened.
BUSY = ("This database is busy: another program (an ingest or a training run) is writing to it "
        "right now. Try again in a moment.")


def _busy(exc: BaseException) -> bool:
    """Whether `exc` is a StoreError because the database's lock is held (as the store tells a
    passing lock from a broken file)."""
    return isinstance(exc, StoreBusy)


def _locked(path: Path) -> bool:
    """Whether another process holds the lock of the database at `path` right now."""
    try:
        with Store(path).read(wait_s=0):
            return False
    except (StoreError, ValueError, duckdb.Error) as exc:  # a corrupt file raises DuckDB's own errors
        return _busy(exc)


def _busy_notice() -> None:
    st.warning(BUSY, icon=":material/hourglass_top:")
    st.button("Try again", key="_busy_retry")  # a click reruns the page


@st.cache_data(show_spinner=False, max_entries=16)
def _runs(db: q.DbRef):
    return q.runs(db)  # every complete run, folds of k-fold experiments included


@st.cache_data(show_spinner=False, max_entries=16)
def _board(db: q.DbRef):
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
    if linked := linked_run(ids):  # a link just opened names it
        st.session_state[state.RUN] = linked
    if st.session_state.get(state.RUN) not in ids:
        st.session_state[state.RUN] = _default_run(db, _board(db))  # the best entry, never a fold
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
    the first Track page opened does not wait seconds for it; and run the server's heap as the
    CLI's (its live classification and Grad-CAM reuse buffers; freed memory goes back)."""
    bound_heap_growth()
    threading.Thread(target=importlib.import_module, args=("genre_core.features.spectral",), daemon=True).start()
    return True


def main() -> None:
    _warm_up()
    page = st.navigation(PAGES)
    adopt()
    db, db_state, message = open_database(database_picker())
    display_options()
    if st.session_state.get(state.PRESENTATION):
        st.html(presentation.CSS)
    if db is None:
        st.session_state.pop(state.DB, None)
        st.title("GenreLens")
        if db_state == "busy":
            _busy_notice()
        else:
            (st.info if db_state == "empty" else st.error)(message, icon=":material/database:")
        st.markdown("GenreLens shows how music-genre classifiers behave: leaderboards with "
                    "confidence intervals, clickable confusion matrices, maps of what the "
                    "model hears, Grad-CAM over spectrograms and the faults of the dataset.")
        return
    st.session_state[state.DB] = db
    try:
        run_id = run_picker(db)
        st.session_state[state.RUN] = run_id
        if state.RETURN_TO in st.session_state:
            st.switch_page(st.session_state.pop(state.RETURN_TO), query_params=st.query_params.to_dict())
        copy_link_button()
        if page.url_path not in links.PAGE_KEYS:  # the others put their own view in the URL
            keep()
        page.run()
    except StoreError as exc:  # the lock was taken after the database opened: mid-page
        if not _busy(exc):
            raise
        log.warning("GenreLens database %s is busy: %s", db.path, exc)
        _busy_notice()


main()
