"""Story: five steps a lecturer clicks through (Next / Previous, or the arrow keys), each with
its own address (`/story?step=3`): how good the model is, where it fails, one mistake to
hear, what the data gets wrong, what honest evaluation changes. What each step shows is
chosen in genre_core.app.story; the pieces are the other pages' (charts, player, queries)."""

import streamlit as st

from genre_core.analysis import why
from genre_core.analysis.slice_words import slice_sentence
from genre_core.app import charts, evidence, hearing, links, media, player, state, story
from genre_core.app import queries as q
from genre_core.untrusted import markdown as md
from page_frame import figure, open_page
from page_links import keep, notify, take

STEP = "genrelens.story_step"  # 1-based step shown
# The arrow keys press Previous / Next. The handler is made in the app's own window (not this
# frame's), so it outlives a rerun that replaces the frame, and is replaced, not added, each time.
KEYS = """<!doctype html><html><body><script>
(function () {
  const top = window.parent;
  const body = 'const t = e.target; if (e.altKey || e.ctrlKey || e.metaKey || e.shiftKey) return;' +
    'if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;' +
    'const key = {ArrowRight: "next", ArrowLeft: "prev"}[e.key]; if (!key) return;' +
    'const b = document.querySelector(".st-key-story_" + key + " button"); if (!b || b.disabled) return;' +
    'e.preventDefault(); b.click();';
  if (top.glStoryKeys) top.document.removeEventListener("keydown", top.glStoryKeys);
  top.glStoryKeys = new top.Function("e", body);
  top.document.addEventListener("keydown", top.glStoryKeys);
})();
</script></body></html>"""

ctx, cached = open_page("pages/story.py", None)
run = cached(q.run_row)(ctx.db, ctx.run_id)
dataset_id = int(run.dataset_id)

if "step" in (link := take("story")):
    linked = links.whole(link["step"], 1, len(story.STEPS))
    if linked is None:
        notify(links.notice("the step", link["step"], "the first step"))
    st.session_state[STEP] = linked or 1
step = st.session_state.setdefault(STEP, 1)
keep({"step": step})


def _go(n: int) -> None:
    st.session_state[STEP] = n


def story_controls() -> None:
    """Previous / where we are / Next; the arrow keys press the buttons."""
    back, where, forward = st.columns([1, 4, 1], vertical_alignment="center")
    back.button("◀ Previous", key="story_prev", on_click=_go, args=(step - 1,), disabled=step == 1, width="stretch")
    forward.button("Next ▶", key="story_next", on_click=_go, args=(step + 1,), disabled=step == len(story.STEPS),
                   width="stretch")
    where.caption(f"Step {step} of {len(story.STEPS)} · {md(run.model)} on {md(run.dataset)} · "
                  "← → keys move between steps")
    st.iframe(KEYS, height=1, alt="Arrow keys for the story")


def how_good() -> None:
    chance = 1 / max(1, int(run.n_classes))
    right, interval, guess = st.columns(3)
    right.metric("Right on unseen test songs", "–" if run.accuracy != run.accuracy else f"{run.accuracy:.0%}")
    interval.metric("95% confidence interval", "–" if run.ci_low != run.ci_low else
                    f"{run.ci_low:.0%} – {run.ci_high:.0%}")
    guess.metric(f"Guessing among {int(run.n_classes)} genres", f"{chance:.0%}")
    st.write(md(story.headline(run)))
    st.plotly_chart(figure("accuracy_ci", story.chance_rows(run), highlight=run.run_id, presentation=ctx.presentation),
                    theme=None, config=charts.plot_config(ctx.image_format, "story_accuracy"), key="story_ci")


def where_it_fails() -> None:
    cells = cached(q.confusion)(ctx.db, ctx.run_id, "test")
    cell = story.worst_cell(cells)
    pattern = story.top_pattern(cached(q.failure_slices)(ctx.db, ctx.run_id))
    left, right = st.columns([3, 2], gap="large")
    left.plotly_chart(figure("confusion_matrix", cells, normalise=True, presentation=ctx.presentation, selected=cell),
                      theme=None, config=charts.plot_config(ctx.image_format, "story_confusion"), key="story_cm")
    with right:
        if cell is None:
            st.success("It makes no mistake on the test songs.")
        else:
            true, predicted = cell
            rows = state.tracks_in_cell(cached(q.predictions)(ctx.db, ctx.run_id, "test"), true, predicted)
            total = int(cells[cells.label == true].n.sum())
            st.subheader(f"Most often: {md(true)} heard as {md(predicted)}")
            st.write(f"{len(rows)} of {total} {md(true)} test songs (the outlined cell).")
            sentence = why.pair_why(true, predicted, list(rows.track_id), slices=cached(q.failure_slices)(ctx.db, ctx.run_id),
                                    concepts=cached(q.concept_scores)(ctx.db, ctx.run_id))
            if sentence:
                st.info(f"**Why, as far as the tests go.** {md(sentence)}", icon=":material/lightbulb:")
            st.page_link("pages/confusion.py", label="Open this cell's songs", icon=":material/grid_on:",
                         query_params=links.view(ctx.run_id, {"true": true, "pred": predicted}))
        st.subheader("The top failure pattern")
        if pattern is None:
            st.write("No group of test songs (a genre, an artist, a tempo, a key…) fails more often than chance "
                     "allows: no pattern to report.")
        else:
            st.markdown(f"**{md(pattern.description)}**")
            st.write(md(slice_sentence(pattern)))


def one_mistake() -> None:
    track_id = cached(story.mistake_to_hear)(ctx.db, ctx.run_id)
    if track_id is None:
        st.success("It makes no mistake on the test songs: nothing to hear here.")
        return
    row = cached(q.track)(ctx.db, dataset_id, track_id)
    probs = cached(q.track_probs)(ctx.db, ctx.run_id, track_id)
    predicted = probs[probs.is_predicted].genre.iloc[0]
    st.markdown(f"**{md(track_id)}** is **{md(row.label)}**; the model says **{md(predicted)}**, "
                f"{probs.prob.max():.0%} sure.")
    sentence = why.track_why(track_id, true=row.label, predicted=predicted,
                             slices=cached(q.failure_slices)(ctx.db, ctx.run_id),
                             concepts=cached(q.concept_scores)(ctx.db, ctx.run_id),
                             pushes=cached(q.concept_pushes)(ctx.db, ctx.run_id, track_id))
    if sentence:
        st.info(f"**Why, as far as the tests go.** {md(sentence)}", icon=":material/lightbulb:")
    source, maps = cached(story.explained_maps)(ctx.db, ctx.run_id, track_id)
    source_run = cached(q.run_row)(ctx.db, source) if source else None
    view = source_run if source_run is not None and source_run.representation else run
    mel = view.representation in evidence.MEL_REPRESENTATIONS
    cam = maps.get(predicted) if mel else None
    clip = cached(hearing.player_media)(ctx.db, dataset_id, track_id, view.representation or "logmel", view.config)
    if clip is None:
        st.warning(media.NO_AUDIO)
    else:
        overlays = [cached(player.overlay)(f"what made it say {predicted}", cam)] if cam is not None else []
        st.iframe(player.player_html(clip, overlays=overlays, presentation=ctx.presentation), height="content",
                  alt="Player: the track's audio over its spectrogram")
    heard = (st.cache_data(show_spinner="Rendering what the model heard…", max_entries=4)(hearing.heard)(
        ctx.db, dataset_id, track_id, cam, representation=view.representation, config_json=view.config)
        if cam is not None else None)
    if heard is not None:
        faithful, faith = cached(hearing.faithfulness_verdict)(cached(q.faithfulness)(ctx.db, source))
        kept, rest = st.columns(2)
        kept.markdown("**What the model heard**" if faithful else f"**The map's top {heard.keep:.0%}**")
        kept.audio(heard.heard, sample_rate=heard.sr)
        rest.markdown("**What it ignored**" if faithful else "**The rest**")
        rest.audio(heard.ignored, sample_rate=heard.sr)
        st.caption(md(faith))
    st.page_link("pages/track.py", label="Everything about this song on the Track page", icon=":material/music_note:",
                 query_params=links.view(ctx.run_id, {"track": track_id}))


def data_faults() -> None:
    pair = story.duplicate_pair(cached(q.duplicate_groups)(ctx.db, dataset_id))
    issues = cached(q.label_issues)(ctx.db, dataset_id, ctx.run_id)
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("The same recording, twice")
        if pair.empty:
            st.write("No duplicate found in this dataset.")
        for member in pair.itertuples():
            st.markdown(f"**{md(member.track_id)}** · labelled {md(member.label)}")
            _play(member.track_id)
        if len(pair):
            st.caption("A copy split between training and test lets a model score by remembering, not by hearing.")
    with right:
        st.subheader("A label to doubt")
        if issues.empty:
            st.write("No label the detector doubts.")
        else:
            issue = issues.iloc[0]
            suggested = issue.evidence.get("suggested")
            st.markdown(f"**{md(issue.track_id)}** is labelled **{md(issue.label)}**"
                        + (f"; models that never trained on it hear **{md(suggested)}**." if suggested else "."))
            _play(issue.track_id)
    st.page_link("pages/faults.py", label="All faults of this dataset", icon=":material/report:",
                 query_params=links.view(ctx.run_id, {"group": pair.group_id.iloc[0]} if len(pair) else {}))


def _play(track_id: str) -> None:
    clip = cached(media.track_audio)(ctx.db, dataset_id, track_id)
    if clip is None:
        st.caption("This file cannot be played.")
    else:
        st.audio(clip[0], sample_rate=clip[1])


def honest() -> None:
    pair = story.honest_pair(cached(q.leaderboard)(ctx.db), run)
    if len(pair):
        leaky, fair = pair.accuracy.iloc[0], pair.accuracy.iloc[1]
        st.write(f"Keeping each artist's songs on one side of the split moves the accuracy from {leaky:.0%} to "
                 f"{fair:.0%}: the difference is what the model learnt about artists rather than genres.")
        st.plotly_chart(figure("accuracy_ci", pair, presentation=ctx.presentation), theme=None,
                        config=charts.plot_config(ctx.image_format, "story_honest"), key="story_honest")
    artists = cached(q.artists_across_split)(ctx.db, dataset_id, ctx.run_id)
    leaks = int(artists.leak.sum()) if len(artists) and "leak" in artists else 0
    if leaks:
        st.write(f"In this run's split, {leaks} artist{'s have' if leaks != 1 else ' has'} songs on both the training "
                 "and the test side: the model may recognise the artist rather than the genre.")
    # What a person confirmed faulty, else every flag.
    clean = cached(q.clean_evaluation)(ctx.db, ctx.run_id, leave_out="confirmed or flagged")
    confirmed = len(clean) == 2 and clean.subset.iloc[1] == "without confirmed faulty tracks"
    if len(clean) == 2 and int(clean.excluded.iloc[1]):
        which = "a person confirmed faulty" if confirmed else ("that carry a fault flag (a duplicate, a doubtful label, damaged "
                                                             "audio, an artist repeated across the split)")
        st.write(f"Leaving out the {int(clean.excluded.iloc[1])} test songs {which}: accuracy "
                 f"{clean.accuracy.iloc[0]:.0%} becomes {clean.accuracy.iloc[1]:.0%}.")
        st.plotly_chart(figure("accuracy_ci", clean.assign(label=clean.subset, run_id=clean.subset),
                               presentation=ctx.presentation),
                        theme=None, config=charts.plot_config(ctx.image_format, "story_clean"), key="story_clean")
    if not len(pair) and not leaks and not (len(clean) == 2 and int(clean.excluded.iloc[1])):
        st.write("Nothing stored for this run yet shows what a stricter evaluation changes: no artist-split run of "
                 "the same model, no artist on both sides of its split, no test song confirmed faulty.")
    st.page_link("pages/faults.py", label="Judge the faults and re-score without them", icon=":material/report:",
                 query_params=links.view(ctx.run_id, {"view": links.slug("Fairer evaluation")}))


st.title(story.STEPS[step - 1])
story_controls()
(how_good, where_it_fails, one_mistake, data_faults, honest)[step - 1]()
