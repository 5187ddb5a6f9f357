"""Map: the run's track embeddings in 2-D; nearby points sound alike to the model."""

import streamlit as st

from genre_core.app import links, state
from genre_core.app import charts
from genre_core.app import queries as q
from genre_core.untrusted import markdown as md
from page_frame import open_page, table
from page_links import keep, notify, take

COLOUR_BY = {"true genre": "label", "predicted genre": "predicted", "correct / wrong": "outcome",
             "fault kind": "fault"}

SEARCH_LIMIT = 200  # matches ringed on the map; the Track page's search lists any track
# Points drawn at most (a sample above, see state.sample_map). 20,000 by default: each point costs
# the browser ~80 bytes of JSON and WebGL work, and 50,000 took 3-7 s a redraw at 100,000 tracks.
DENSITY = {"20,000": 20_000, "50,000": 50_000, "all": None}
# The projection is read-only on this page: shared, it is not unpickled (100,000 rows) every rerun.
shared = st.cache_resource(show_spinner=False, max_entries=8)

ctx, cached = open_page("pages/map.py", "Map",
    "Each point is a track, placed so that tracks the model finds similar sit close together. "
    "Draw a lasso or box to list tracks; click a point to hear it and open it.", cache_entries=64)
run = cached(q.run_row)(ctx.db, ctx.run_id)
methods = cached(q.projection_methods)(ctx.db, ctx.run_id)
if not methods:
    st.info(f"Run {ctx.run_id} has no map yet. Compute it with `python -m training analyze --run {ctx.run_id}`.")
    st.stop()


def map_controls() -> tuple[str, str, str, int | None]:
    """(projection method, column to colour by, search text, most points to draw; None: all)"""
    box = st.expander("Controls") if ctx.presentation else st.container()
    with box:
        left, middle, right, density = st.columns([1, 2, 2, 1])
        method = left.radio("Projection", methods, horizontal=True, key="map_method",
                            format_func=lambda m: {"tsne": "t-SNE", "umap": "UMAP"}.get(m, m))
        colour = middle.radio("Colour by", list(COLOUR_BY), horizontal=True, key="map_colour")
        text = right.text_input("Find on the map", key="map_search", placeholder="id, artist, genre or file name",
                                help=f"Rings up to {SEARCH_LIMIT} matching tracks; they are always drawn")
        drawn = density.selectbox("Points drawn", list(DENSITY), key="map_density",
                                  help="At most; above, a share of every genre plus all misclassified, searched "
                                       "and selected tracks. More points redraw more slowly.")
    return method, COLOUR_BY[colour], text, DENSITY[drawn]


@st.cache_resource(show_spinner=False, max_entries=8)
def map_figure(db, run_id: str, method: str, colour_by: str, presentation: bool, highlight: tuple,
               keep: tuple, max_points: int | None):
    """(the map figure, points drawn): built once per choice, since 50,000 points take a second
    to lay out, and shared read-only by every session."""
    points = shared(q.projection)(db, run_id, method)
    drawn = state.sample_map(points, max_points=max_points or len(points), keep=keep)
    classes = list(cached(q.run_row)(db, run_id).classes)
    return charts.ready(charts.embedding_map(drawn, colour_by, classes, presentation=presentation, highlight=highlight)), len(drawn)




def linked_view(link: dict) -> None:
    """A link's projection, colouring and selection become the page's; a notice for each part
    that is not here (the page's default stands in for it)."""
    if "proj" in link:
        if link["proj"] in methods:
            st.session_state["map_method"] = link["proj"]
        else:
            notify(links.notice("the projection", link["proj"], methods[0]))
    if "colour" in link:
        colour = links.from_slug(link["colour"], COLOUR_BY)
        if colour:
            st.session_state["map_colour"] = colour
        else:
            notify(links.notice("the colouring", link["colour"], "the true genres"))
    if "sel" in link:
        asked = links.split_ids(link["sel"])
        method = st.session_state.get("map_method", methods[0])
        here = set(shared(q.projection)(ctx.db, ctx.run_id, method).track_id)
        found = tuple(t for t in asked if t in here)
        if len(found) < len(asked) or not found:
            missing = next((t for t in asked if t not in here), link["sel"])
            notify(links.notice("the selected track", missing, "the others" if found else "no selection"))
        st.session_state[state.SELECTION] = state.Selection(f"Map: {len(found)} tracks selected", found,
                                                            int(run.dataset_id))


if link := take("map"):
    linked_view(link)
method, colour_by, search, max_points = map_controls()
points = shared(q.projection)(ctx.db, ctx.run_id, method)
if points.empty:
    st.info("This projection holds no points.")
    st.stop()
found = cached(q.search_tracks)(ctx.db, ctx.run_id, search, SEARCH_LIMIT) if search.strip() else None
highlight = [] if found is None else list(found.track_id)
open_track = [ctx.track[1]] if ctx.track else []
figure, n_drawn = map_figure(ctx.db, ctx.run_id, method, colour_by, ctx.presentation, tuple(highlight),
                             (*highlight, *open_track, *ctx.selection.track_ids), max_points)
if found is not None:
    n_matches = int(found.n_matches.iloc[0]) if len(found) else 0
    shown = int(points.track_id.isin(set(highlight)).sum())
    st.caption(f"{n_matches:,} tracks match “{md(search.strip())}”; {shown} of the first {SEARCH_LIMIT} are on this "
               "map (ringed). Click one to open it.")
event = st.plotly_chart(figure,
                        on_select="rerun", selection_mode=("points", "box", "lasso"), key="map_chart",
                        theme=None, config=charts.plot_config(ctx.image_format, f"map_{method}"))
ids = state.selected_track_ids(event)
dataset_id = int(run.dataset_id)
if state.is_single_click(event):
    current = st.session_state.get(state.SELECTION)
    keep = current if current is not None and ids[0] in current.track_ids else state.Selection(
        f"Map: the 20 tracks nearest {ids[0]}", tuple(state.nearest_on_map(points, ids[0], 20)), dataset_id)
    state.open_track(st.session_state, dataset_id, ids[0], keep, autoplay=True)
    st.switch_page("pages/track.py")
if len(ids) > 1:
    st.session_state[state.SELECTION] = state.Selection(f"Map: {len(ids)} tracks selected", tuple(ids), dataset_id)

chosen = state.context(st.session_state).selection if len(ids) < 2 else st.session_state[state.SELECTION]
on_map = chosen.source.startswith("Map") and len(chosen.track_ids) >= 2
keep({"proj": method, "colour": links.slug(next(k for k, v in COLOUR_BY.items() if v == colour_by)),
      "sel": links.join_ids(chosen.track_ids) if on_map else None},
     defaults={"proj": methods[0], "colour": links.slug(next(iter(COLOUR_BY)))})
if not on_map:
    sampled = "" if n_drawn == len(points) else (
        f" ({n_drawn:,} drawn: a share of every genre, plus all misclassified, searched and selected tracks; "
        "draw more under “Points drawn”)")
    st.caption(f"{len(points):,} tracks{sampled} · {method}. Tip: the lasso and box tools are in the chart's "
               "top-right toolbar.")
    st.stop()
rows = state.filter_tracks(points, chosen.track_ids)
st.subheader(f"{len(rows)} selected tracks")
counts = rows.label.value_counts()
st.caption("True genres: " + ", ".join(f"{md(g)} {n}" for g, n in counts.items())
           + f" · {int((rows.outcome == 'wrong').sum())} misclassified"
           + ("" if len(rows) <= links.MAX_SELECTION else
              f" · a link keeps selections of up to {links.MAX_SELECTION} tracks, not this one"))
if st.button(f"Walk through them in the Track view, from {md(rows.track_id.iloc[0])}", icon=":material/play_arrow:",
             key="map_open"):
    state.open_track(st.session_state, dataset_id, rows.track_id.iloc[0], chosen)
    st.switch_page("pages/track.py")
table(ctx, rows[["track_id", "label", "predicted", "confidence", "outcome", "fault", "split"]], hide_index=True,
             width="stretch", column_config={"confidence": st.column_config.ProgressColumn(
                 "confidence", format="percent", min_value=0, max_value=1)})
