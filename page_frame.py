"""What every page of the app does first (a module beside app.py: pages import it, and
genre_core stays free of streamlit)."""

import streamlit as st

from genre_core.app import charts, state

NO_RUN = "No complete run yet: train one (`python -m training train ...`) or run `make demo`."


def enter(page_file: str) -> state.Context:
    """The shared context of the app; a deep link served before app.py ran (streamlit's
    pages/ mode) is first handed to app.py, which comes back to `page_file`."""
    if state.DB not in st.session_state:
        st.session_state[state.RETURN_TO] = page_file
        st.switch_page("app.py")
    return state.context(st.session_state)


def require_run(ctx: state.Context) -> None:
    """Stop the page with the one command that helps when no complete run exists."""
    if ctx.run_id is None:
        st.info(NO_RUN)
        st.stop()


@st.cache_resource(show_spinner=False, max_entries=128)
def figure(build: str, *args, **kwargs):
    """`charts.<build>(*args, **kwargs)`, built once per data and shared read-only by every session
    (`charts.ready`): plotly validates every property it is given and deep-copies every array
    for each display, a tenth of a second to half a second a chart on a busy machine."""
    return charts.ready(getattr(charts, build)(*args, **kwargs))
