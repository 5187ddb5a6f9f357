"""Map: the run's track embeddings in 2-D; nearby points sound alike to the model."""

import streamlit as st

from genre_core.app import links, state
from genre_core.app import charts, media, player, segments, tagaxes
from genre_core.app import queries as q
from genre_core.untrusted import markdown as md, plain
from page_frame import open_page, table
from page_links import keep, notify, take
from page_map_frame import scatter

COLOUR_BY = {"true genre": "label", "predicted genre": "predicted", "correct / wrong": "outcome",
             "fault kind": "fault"}

CLIP_S = 3.0  # what a resting hover plays: a window's length at the baselines' and CNNs' setting
SEARCH_LIMIT = 200  # matches ringed on the map; the Track page's search lists any track
# Points drawn at most (a sample above, see state.sample_map). 20,000 by default: each point costs
# the browser ~80 bytes of JSON and WebGL work, and 50,000 took 3-7 s a redraw at 100,000 tracks.
METHOD_NAMES = {"tsne": "t-SNE", "umap": "UMAP", "pca": "PCA", tagaxes.TAGS: "musicnn tags"}
DENSITY = {"20,000": 20_000, "50,000": 50_000, "all": None}


def density_slug(name: str) -> str:
    """A "Points drawn" choice as the link writes it (pts=20000, pts=all)."""
    return name.replace(",", "")
# The projection is read-only on this page: shared, it is not unpickled (100,000 rows) every rerun.
shared = st.cache_resource(show_spinner=False, max_entries=8)

ctx, cached = open_page("pages/map.py", "Map",
    "Each point is a track, placed so that tracks the model finds similar sit close together. Rest the pointer "
    "on a point to hear it, click it to open it there, draw a lasso or box to list tracks. Segments and "
    "Trajectory show each track's 3-s windows; “musicnn tags” places points by two tags instead.",
    cache_entries=64)
run = cached(q.run_row)(ctx.db, ctx.run_id)
methods = cached(q.projection_methods)(ctx.db, ctx.run_id)
if not methods:
    st.info(f"Run {ctx.run_id} has no map yet. Compute it with `python -m training analyze --run {ctx.run_id}`.")
    st.stop()
TAG_NAMES = tagaxes.tag_names(shared(q.taggrams)(ctx.db, ctx.run_id))
# The tag axes stand beside the projections where analyze stored taggrams (its explained tracks).
AXES = methods + ([tagaxes.TAGS] if tagaxes.default_axes(TAG_NAMES) else [])
WINDOW_S = float(run.window_s) if run.window_s == run.window_s and run.window_s else 3.0  # NaN: imported


def method_name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def tag_controls() -> tuple[str, str]:
    """(the tag across, the tag up) of the tag axes."""
    for key, default in zip(("map_tx", "map_ty"), tagaxes.default_axes(TAG_NAMES)):
        if st.session_state.get(key) not in TAG_NAMES:
            st.session_state[key] = default
    across, up, _ = st.columns([1, 1, 2])
    help_text = ("musicnn's probability of the tag, averaged over the track's frames (a window: over the "
                 "frames it covers). Only the tracks analyze explained have taggrams.")
    return (across.selectbox("Across", TAG_NAMES, key="map_tx", format_func=plain, help=help_text),
            up.selectbox("Up", TAG_NAMES, key="map_ty", format_func=plain, help=help_text))


def map_controls() -> tuple[str, tuple | None, str, str, int | None]:
    """(projection method, its tag axes or None, column to colour by, search text, most points
    to draw; None: all)"""
    box = st.expander("Controls") if ctx.presentation else st.container()
    with box:
        left, middle, right, density = st.columns([1, 2, 2, 1])
        method = left.radio("Projection", AXES, horizontal=True, key="map_method",
                            format_func=method_name)
        colour = middle.radio("Colour by", list(COLOUR_BY), horizontal=True, key="map_colour")
        text = right.text_input("Find on the map", key="map_search", placeholder="id, artist, genre or file name",
                                help=f"Rings up to {SEARCH_LIMIT} matching tracks; they are always drawn")
        drawn = density_control(density, "a share of every genre plus all misclassified, searched and selected "
                                          "tracks")
        axes = tag_controls() if method == tagaxes.TAGS else None
    return method, axes, COLOUR_BY[colour], text, drawn


def density_control(column, above: str) -> int | None:
    """The most points to draw (None: all), chosen in `column`; `above` says what is drawn above it."""
    drawn = column.selectbox("Points drawn", list(DENSITY), key="map_density",
                             help=f"At most; above, {above}. More points redraw more slowly.")
    return DENSITY[drawn]


def tagged_tracks(db, run_id: str, x_tag: str, y_tag: str):
    """The tracks with taggrams (rows as q.projection's) placed by two tags' track means."""
    values = tagaxes.track_tags(shared(q.taggrams)(db, run_id), list(dict.fromkeys((x_tag, y_tag))))
    return tagaxes.on_tag_axes(shared(q.projection)(db, run_id, methods[0]), values, x_tag, y_tag)


def tagged_windows(db, run_id: str, method: str, x_tag: str, y_tag: str, window_s: float):
    """The stored windows (rows as q.segment_points' of `method`) of tracks with taggrams,
    placed by two tags' means over the frames each window covers."""
    windows = shared(q.segment_points)(db, run_id, method)
    values = tagaxes.segment_tags(shared(q.taggrams)(db, run_id), windows[["track_id", "start_s"]],
                                  list(dict.fromkeys((x_tag, y_tag))), window_s)
    return tagaxes.on_tag_axes(windows, values, x_tag, y_tag, on=("track_id", "start_s"))


def track_points(db, run_id: str, method: str, axes: tuple | None):
    """The tracks on this map: a projection's, or on the tag axes."""
    return shared(q.projection)(db, run_id, method) if axes is None else shared(tagged_tracks)(db, run_id, *axes)


def window_points(db, run_id: str, method: str, axes: tuple | None):
    """The windows on this map: a projection's, or on the tag axes; None when it holds none."""
    seg_methods = cached(q.segment_methods)(db, run_id)
    if axes is not None and seg_methods:
        return shared(tagged_windows)(db, run_id, seg_methods[0], *axes, WINDOW_S)
    return shared(q.segment_points)(db, run_id, method) if method in seg_methods else None


@st.cache_resource(show_spinner=False, max_entries=8)
def segment_figure(db, run_id: str, method: str, axes: tuple | None, colour_by: str, track: str | None,
                   presentation: bool, keep: tuple, max_points: int | None):
    """(the Segments map, or `track`'s trajectory over the other windows; windows drawn): built
    once per choice and shared read-only, so a rerun (a hover's answer) neither rebuilds nor
    re-serialises 200,000 windows. Above `max_points` a share of every genre is drawn, plus every
    window of the tracks in `keep` and of `track`."""
    points = window_points(db, run_id, method, axes)
    drawn = state.sample_map(points, max_points=max_points or len(points), keep=(*keep, *([track] if track else [])),
                             keep_wrong=False)
    classes = list(cached(q.run_row)(db, run_id).classes)
    figure = (segments.segment_map(drawn, colour_by, classes, window_s=WINDOW_S, presentation=presentation)
              if track is None else
              segments.trajectory_map(drawn, track, classes, window_s=WINDOW_S, presentation=presentation))
    return charts.ready(tagaxes.titled(figure, axes)), len(drawn)


@st.cache_resource(show_spinner=False, max_entries=8)
def map_figure(db, run_id: str, method: str, axes: tuple | None, colour_by: str, presentation: bool,
               highlight: tuple, keep: tuple, max_points: int | None):
    """(the map figure, points drawn): built once per choice, since 50,000 points take a second
    to lay out, and shared read-only by every session."""
    points = track_points(db, run_id, method, axes)
    drawn = state.sample_map(points, max_points=max_points or len(points), keep=keep)
    classes = list(cached(q.run_row)(db, run_id).classes)
    figure = charts.embedding_map(drawn, colour_by, classes, presentation=presentation, highlight=highlight)
    return charts.ready(tagaxes.titled(figure, axes)), len(drawn)


def hover_clip(points, windows) -> callable:
    """What a resting hover plays (page_map_frame.scatter's `clip`): CLIP_S of the track from a
    window's start, or for a track (no start) from its typical moment (segments.typical_start
    among `windows`, else 0)."""
    def clip(track_id: str, start_s: float | None) -> dict:
        if start_s is None:
            row = points[points.track_id == track_id]
            start_s = (segments.typical_start(windows, track_id, float(row.x.iloc[0]), float(row.y.iloc[0]))
                       if windows is not None and len(row) else 0.0)
        y = media.track_clip(ctx.db, int(run.dataset_id), track_id, float(start_s), CLIP_S, player.PLAYER_SR)
        if y is None:
            return {"audio": None, "track": track_id, "start": float(start_s), "said": media.NO_AUDIO}
        data, mime = player.audio_bytes(y, player.PLAYER_SR)
        return {"audio": player.data_uri(data, mime), "track": track_id, "start": float(start_s),
                "said": f"♪ {plain(track_id)} from {segments.clock(start_s)}"}
    return clip




def view_control() -> str:
    """The view (a VIEWS word): tracks, or the run's windows when analyze stored them."""
    if not cached(q.segment_methods)(ctx.db, ctx.run_id):
        return "tracks"
    return st.radio("View", list(segments.VIEWS), horizontal=True, key="map_view", format_func=segments.VIEWS.get,
                    help="Tracks: one point per track. Segments: every stored 3-s window. Trajectory: one track's "
                         "windows joined in time order.")


def segment_controls(view: str, seg_methods: list[str]) -> tuple[str, tuple | None, str, str | None, int | None]:
    """(projection, its tag axes or None, colour column, the trajectory's track or None, most
    windows to draw or None: all) of the segment views."""
    options = seg_methods + [m for m in AXES if m == tagaxes.TAGS]
    if st.session_state.get("map_method") not in options:
        st.session_state["map_method"] = seg_methods[0]  # UMAP cannot place windows (analyze's note)
    left, right, density = st.columns([1, 3, 1])
    method = left.radio("Projection", options, horizontal=True, key="map_method",
                        format_func=method_name)
    drawn = density_control(density, "a share of every genre plus every window of the open, selected and "
                                     "trajectory tracks")
    axes = tag_controls() if method == tagaxes.TAGS else None
    if view == "segments":
        colour = right.radio("Colour by", list(segments.SEGMENT_COLOURS), horizontal=True, key="map_seg_colour")
        return method, axes, segments.SEGMENT_COLOURS[colour], None, drawn
    tracks = trajectory_tracks(method, axes)
    if (asked := st.session_state.get("map_traj")) not in tracks:
        if asked is not None:
            notify(links.notice("the track", asked, "another track"))
        here = ctx.track[1] if ctx.track else None
        st.session_state["map_traj"] = here if here in tracks else tracks.index[0]
    track = right.selectbox("Track", list(tracks.index), key="map_traj", format_func=tracks.get,
                            help="Misclassified test tracks first. Its windows are joined in time order.")
    return method, axes, "predicted", track, drawn


def trajectory_tracks(method: str, axes: tuple | None):
    """Label ("id · true → predicted") by track id of every track with windows on the map,
    misclassified predicted tracks first, then the other predicted ones, then training tracks."""
    rows = shared(q.projection)(ctx.db, ctx.run_id, methods[0] if axes else method)
    here = set(window_points(ctx.db, ctx.run_id, method, axes).track_id)
    rows = rows[rows.track_id.isin(here)].assign(order=lambda r: r.outcome.map({"wrong": 0, "correct": 1}).fillna(2))
    rows = rows.sort_values(["order", "track_id"], kind="stable")
    return (rows.track_id + " · " + rows.label.astype(str) + " → " + rows.predicted.astype(str)).set_axis(rows.track_id)


def segment_view(view: str) -> None:
    """The Segments or Trajectory view; a click opens Track at the window's start."""
    seg_methods = cached(q.segment_methods)(ctx.db, ctx.run_id)
    method, axes, colour_by, track, max_points = segment_controls(view, seg_methods)
    points = window_points(ctx.db, ctx.run_id, method, axes)
    keep({"proj": method, "view": view, "track": track, **tag_link(axes), "pts": drawn_link(),
          "colour": links.slug(next(k for k, v in segments.SEGMENT_COLOURS.items() if v == colour_by))
          if view == "segments" else None},
         defaults={"proj": methods[0], "view": "tracks", "colour": links.slug(next(iter(COLOUR_BY))),
                   "pts": density_slug(next(iter(DENSITY)))})
    figure, n_drawn = segment_figure(ctx.db, ctx.run_id, method, axes, colour_by, track, ctx.presentation,
                                     (*([ctx.track[1]] if ctx.track else []), *ctx.selection.track_ids), max_points)
    event = scatter(figure, key=f"map_{view}_chart", clip=hover_clip(points, points),
                    config=charts.plot_config(ctx.image_format, f"map_{view}_{method}"))
    if (clicked := segments.clicked_segment(event)) is not None:
        state.open_track(st.session_state, int(run.dataset_id), clicked[0], autoplay=True)
        st.session_state[state.START] = clicked
        st.switch_page("pages/track.py")
    sampled = "" if n_drawn == len(points) else (
        f" ({n_drawn:,} drawn: a share of every genre, plus every window of the open, selected and trajectory "
        "tracks; draw more under “Points drawn”)")
    if track is None:
        st.caption(f"{len(points):,} windows of {points.track_id.nunique():,} tracks{sampled} · "
                   f"{method_name(method)}: every window of "
                   "the test and validation tracks, every 4th of the training tracks"
                   + (" that analyze explained (taggrams are stored for those only)." if axes else "."))
        return
    path = segments.trajectory(points, track)
    wrong = int(((path.predicted != segments.NOT_PREDICTED) & (path.predicted != path.label)).sum())
    st.caption(f"{len(path)} windows of {md(track)} from {segments.clock(path.start_s.iloc[0])} to "
               f"{segments.clock(path.start_s.iloc[-1])}; {wrong} predicted other than {md(str(path.label.iloc[0]))} "
               "(ringed red). Its markers are coloured by each window's prediction and point the way the track "
               "goes; other tracks' windows are faint, in their true genre's colour. Click a window to hear it from "
               f"there; double-click the map to see all of it.{sampled}")


def linked_view(link: dict) -> None:
    """A link's projection, colouring and selection become the page's; a notice for each part
    that is not here (the page's default stands in for it)."""
    if "proj" in link:
        if link["proj"] in AXES:
            st.session_state["map_method"] = link["proj"]
        else:
            notify(links.notice("the projection", link["proj"], methods[0]))
    for key, what in (("tx", "map_tx"), ("ty", "map_ty")):
        if key in link and link.get("proj") == tagaxes.TAGS and tagaxes.TAGS in AXES:
            if link[key] in TAG_NAMES:
                st.session_state[what] = link[key]
            else:
                notify(links.notice("the tag", link[key], "the default tags"))
    if "pts" in link:
        chosen = next((name for name in DENSITY if density_slug(name) == link["pts"]), None)
        if chosen:
            st.session_state["map_density"] = chosen
        else:
            notify(links.notice("the number of points drawn", link["pts"], next(iter(DENSITY))))
    if link.get("view") in segments.VIEWS and cached(q.segment_methods)(ctx.db, ctx.run_id):
        st.session_state["map_view"] = link["view"]
    elif "view" in link:
        notify(links.notice("the view", link["view"], "the tracks"))
    if link.get("view") == "trajectory" and "track" in link:
        st.session_state["map_traj"] = link["track"]  # checked against the map's tracks when drawn
    if "colour" in link:
        colour = links.from_slug(link["colour"], COLOUR_BY)
        segment_colour = links.from_slug(link["colour"], segments.SEGMENT_COLOURS)
        if segment_colour:
            st.session_state["map_seg_colour"] = segment_colour
        if colour:
            st.session_state["map_colour"] = colour
        elif not segment_colour:
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


def drawn_link() -> str:
    """The "Points drawn" choice as a link parameter (the default is left out by keep)."""
    return density_slug(st.session_state.get("map_density", next(iter(DENSITY))))


def tag_link(axes: tuple | None) -> dict:
    """The tag axes as link parameters (tx across, ty up); none off the tag axes."""
    return dict(zip(("tx", "ty"), axes)) if axes else {}


if link := take("map"):
    linked_view(link)
if (view := view_control()) != "tracks":
    segment_view(view)
    st.stop()
method, axes, colour_by, search, max_points = map_controls()
points = track_points(ctx.db, ctx.run_id, method, axes)
if points.empty:
    st.info("This projection holds no points.")
    st.stop()
found = cached(q.search_tracks)(ctx.db, ctx.run_id, search, SEARCH_LIMIT) if search.strip() else None
highlight = [] if found is None else list(found.track_id)
open_track = [ctx.track[1]] if ctx.track else []
figure, n_drawn = map_figure(ctx.db, ctx.run_id, method, axes, colour_by, ctx.presentation, tuple(highlight),
                             (*highlight, *open_track, *ctx.selection.track_ids), max_points)
if found is not None:
    n_matches = int(found.n_matches.iloc[0]) if len(found) else 0
    shown = int(points.track_id.isin(set(highlight)).sum())
    st.caption(f"{n_matches:,} tracks match “{md(search.strip())}”; {shown} of the first {SEARCH_LIMIT} are on this "
               "map (ringed). Click one to open it.")
event = scatter(figure, key="map_chart", clip=hover_clip(points, window_points(ctx.db, ctx.run_id, method, axes)),
                config=charts.plot_config(ctx.image_format, f"map_{method}"))
ids = state.selected_track_ids(event)
dataset_id = int(run.dataset_id)
if state.is_single_click(event):
    current = st.session_state.get(state.SELECTION)
    around = current if current is not None and ids[0] in current.track_ids else state.Selection(
        f"Map: the 20 tracks nearest {ids[0]}", tuple(state.nearest_on_map(points, ids[0], 20)), dataset_id)
    state.open_track(st.session_state, dataset_id, ids[0], around, autoplay=True)
    st.switch_page("pages/track.py")
if len(ids) > 1:
    st.session_state[state.SELECTION] = state.Selection(f"Map: {len(ids)} tracks selected", tuple(ids), dataset_id)

chosen = state.context(st.session_state).selection if len(ids) < 2 else st.session_state[state.SELECTION]
on_map = chosen.source.startswith("Map") and len(chosen.track_ids) >= 2
keep({"proj": method, **tag_link(axes), "pts": drawn_link(),
      "colour": links.slug(next(k for k, v in COLOUR_BY.items() if v == colour_by)),
      "sel": links.join_ids(chosen.track_ids) if on_map else None},
     defaults={"proj": methods[0], "colour": links.slug(next(iter(COLOUR_BY))), "pts": density_slug(next(iter(DENSITY)))})
if not on_map:
    sampled = "" if n_drawn == len(points) else (
        f" ({n_drawn:,} drawn: a share of every genre, plus all misclassified, searched and selected tracks; "
        "draw more under “Points drawn”)")
    tagged = " with a taggram (the tracks analyze explained)" if axes else ""
    st.caption(f"{len(points):,} tracks{tagged}{sampled} · {method_name(method)}. Rest the pointer on a point to "
               "hear it (from its most typical window); the lasso and box tools are in the chart's top-right toolbar.")
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
