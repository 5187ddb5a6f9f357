"""What every page of the app does first (a module beside app.py: pages import it, and
genre_core stays free of streamlit)."""

import streamlit as st

from genre_core.app import charts, presentation, state

NO_RUN = "No complete run yet: train one (`python -m training train ...`) or run `make demo`."


def enter(page_file: str) -> state.Context:
    """The shared context of the app; a deep link served before app.py ran (streamlit's
    pages/ mode) is first handed to app.py, which comes back to `page_file`."""
    if state.DB not in st.session_state:
        st.session_state[state.RETURN_TO] = page_file
        st.switch_page("app.py", query_params=st.query_params.to_dict())  # a link's view comes along
    return state.context(st.session_state)


def open_page(page_file: str, title: str | None, help_text: str | None = None, *, needs_run: bool = True,
              cache_entries: int = 128):
    """Every page's opening: (the shared context, the page's `st.cache_data` decorator), after
    the title, the sentence of help and, when `needs_run`, a stop with the helpful command if
    no complete run exists. `title` None: the page writes its own."""
    ctx = enter(page_file)
    if title is not None:
        st.title(title)
    if help_text:
        st.write(help_text)
    if needs_run:
        require_run(ctx)
    return ctx, st.cache_data(show_spinner=False, max_entries=cache_entries)


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


def clickable_matrix(ctx: state.Context, cells, normalise: bool, cell_key: str, split: str, name: str):
    """A genre x genre matrix (charts.confusion_matrix) in the left of two columns, its clicked
    cell kept under `cell_key` as (run_id, split, row genre, column genre). Returns
    ((row genre, column genre) or None, the right column)."""
    stored = st.session_state.get(cell_key)
    selected = stored[2:] if stored and stored[:2] == (ctx.run_id, split) else None
    # Projected, the matrix takes the page's width (its cells and labels need the room) and
    # the cell's tracks follow below it.
    left, right = (st.container(), st.container()) if ctx.presentation else st.columns([2, 1], gap="medium")
    with left:
        event = st.plotly_chart(figure("confusion_matrix", cells, normalise=normalise, presentation=ctx.presentation, selected=selected),
                                on_select="rerun", selection_mode="points", key=f"{name}_chart",
                                theme=None, config=charts.plot_config(ctx.image_format, name))
    clicked = state.clicked_cell(event)
    if clicked and clicked != selected:
        st.session_state[cell_key] = (ctx.run_id, split, *clicked)
        st.rerun()  # redraw with the clicked cell outlined
    return selected, right


def matrix_controls(ctx: state.Context, prefix: str, split_help: str) -> tuple[str, bool]:
    """(split, row-normalised?) for a clickable genre matrix; widget keys `<prefix>_split`,
    `<prefix>_norm`."""
    box = st.expander("Controls") if ctx.presentation else st.container()
    with box:
        left, right, _ = st.columns([1, 1, 2])
        split = left.radio("Tracks", ["test", "val"], horizontal=True, key=f"{prefix}_split", help=split_help)
        shown = right.radio("Cells show", ["share of row", "counts"], horizontal=True, key=f"{prefix}_norm")
    return split, shown == "share of row"


def cell_rows(selected: tuple[str, str] | None, rows_of, heading):
    """The tracks behind the selected matrix cell (`rows_of(row genre, column genre)`) under a
    subheader `heading(n, row genre, column genre)`; None, with a message, when no cell is
    selected or the cell is empty."""
    if selected is None:
        st.info("Click a cell of the matrix to list its tracks.", icon=":material/touch_app:")
        return None
    rows = rows_of(*selected)
    st.subheader(heading(len(rows), *selected))
    if rows.empty:
        st.info("No track in this cell.")
        return None
    return rows


def table(ctx: state.Context, frame, *, lay_columns: dict[str, str] | None = None, **dataframe_kwargs):
    """st.dataframe(frame, **dataframe_kwargs), and its return value; in presentation mode
    the lay table instead (presentation.lay_table: `lay_columns` under plain names, empty
    columns dropped) as an HTML table in the hall's type size, nothing to select (None)."""
    if ctx.presentation:
        raw = frame.data if hasattr(frame, "data") else frame  # a Styler: its data
        headings = presentation.headings(raw.columns, dataframe_kwargs.get("column_config"))
        st.table(presentation.lay_table(raw, lay_columns or headings).style.hide(axis="index"))
        return None
    return st.dataframe(frame, **dataframe_kwargs)
