"""Faults: what is wrong with the dataset itself, and a person's verdict on each finding."""

import pandas as pd
import streamlit as st

from genre_core.app import links, state
from genre_core.app import charts, media, reviews
from genre_core.app import queries as q
from genre_core.faults.kinds import artist_rule
from genre_core.untrusted import markdown as md
from genre_core.untrusted import plain
from page_frame import figure, open_page
from page_links import keep, notify, take

EVIDENCE_WORDS = {"offset_s": "offset (s)", "matched_s": "matched (s)", "gain_db": "gain (dB)",
                  "similarity": "similarity", "partner": "copy of", "matched_by": "matched by",
                  "suggested": "suggested genre", "given": "given genre", "given_prob": "p(given)",
                  "suggested_prob": "p(suggested)"}

ctx, cached = open_page("pages/faults.py", "Dataset faults",
    "Duplicates, doubtful labels, damaged audio and artists repeated across the split all make "
    "accuracy look better or worse than it is. Mark each finding confirmed or dismissed; confirmed "
    "faulty tracks can then be left out of the evaluation.", needs_run=False)

sets = cached(q.datasets)(ctx.db)
run = cached(q.run_row)(ctx.db, ctx.run_id) if ctx.run_id else None


def faults_controls() -> int:
    """The dataset to inspect (default: the chosen run's)."""
    names = dict(zip(sets.dataset_id, sets.name))
    ids = list(names)
    default = ids.index(int(run.dataset_id)) if run is not None and int(run.dataset_id) in ids else 0
    box = st.expander("Controls") if ctx.presentation else st.container()
    with box:
        left, _ = st.columns([1, 2])
        return left.selectbox("Dataset", ids, index=default, format_func=names.get, key="faults_dataset")


dataset_id = int(faults_controls())
run_id = ctx.run_id if run is not None and int(run.dataset_id) == dataset_id else None
findings = cached(q.faults)(ctx.db, dataset_id)
if findings.empty:
    st.info("No faults recorded for this dataset yet. Look for them with "
            f"`python -m training faults --dataset {dict(zip(sets.dataset_id, sets.name))[dataset_id]}`.")
    st.stop()


def evidence_text(evidence: dict) -> str:
    return ", ".join(f"{EVIDENCE_WORDS.get(k, k.replace('_', ' '))}: {v}" for k, v in evidence.items()
                     if v is not None and k not in ("members", "reference"))


def save(changes: list[dict]) -> None:
    saved = reviews.save_reviews(ctx.db, changes)
    st.toast(f"Saved {saved} review{'s' if saved != 1 else ''}.", icon=":material/check:")


def review_table(frame: pd.DataFrame, columns: list[str], key: str) -> None:
    """Findings with editable decision and note columns and a button that stores the changes."""
    if frame.empty:
        st.info("Nothing found of this kind.")
        return
    shown = frame.assign(decision=frame.decision.where(frame.decision.notna(), None),
                         note=frame.note.fillna(""), evidence=frame.evidence.map(evidence_text)).reset_index(drop=True)
    base = ["dataset_id", "track_id", "kind"]
    edited = st.data_editor(
        shown[base + [c for c in columns if c not in base] + ["decision", "note"]], key=key, hide_index=True,
        width="stretch", disabled=base + columns, column_order=["track_id"] + columns + ["decision", "note"],
        column_config={"decision": st.column_config.SelectboxColumn("decision", options=list(state.DECISIONS)),
                       "note": st.column_config.TextColumn("note"),
                       "evidence": st.column_config.TextColumn("evidence", width="large"),
                       "score": st.column_config.NumberColumn("score", format="%.2f")})
    changes = state.review_changes(shown, edited)
    if st.button(f"Save {len(changes)} review{'s' if len(changes) != 1 else ''}", key=f"{key}_save",
                 disabled=not changes, icon=":material/save:"):
        save(changes)
        st.rerun()


def listen(track_ids: list[str], key: str, labels: dict | None = None) -> None:
    """A player for one track of a list, and a way to open it in the Track view."""
    if not track_ids:
        return
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    chosen = left.selectbox("Listen to", track_ids, key=key, format_func=lambda t: (labels or {}).get(t, t))
    if right.button("Open in Track view", key=f"{key}_open", icon=":material/open_in_new:"):
        walk = state.Selection(f"Faults: {key}", tuple(track_ids), dataset_id)
        state.open_track(st.session_state, dataset_id, chosen, walk)
        st.switch_page("pages/track.py")
    clip = cached(media.track_audio)(ctx.db, dataset_id, chosen)
    if clip is None:
        st.warning("This file cannot be played (unreadable or missing).")
    else:
        st.audio(clip[0], sample_rate=clip[1])


def group_labels(db, dataset: int) -> dict[str, str]:
    """{group_id: "id · kind · a ↔ b · decision"} for the group picker; column-wise, since a
    Python loop over a thousand groups took a second at 100,000 tracks."""
    groups = cached(q.duplicate_groups)(db, dataset).groupby("group_id", sort=False)
    decision = groups.decision.first()  # the first one given, as nulls are skipped
    text = (groups.group_id.first() + " · " + groups.kind.first().str.replace("_", " ") + " · "
            + groups.track_id.agg(" ↔ ".join) + (" · " + decision).fillna(""))
    return dict(zip(text.index, text))


def duplicates_view() -> None:
    """Duplicate groups one at a time, to hear and judge, and every finding in a table."""
    dups = cached(q.duplicate_groups)(ctx.db, dataset_id)
    if dups.empty:
        st.info("No duplicates detected.")
    else:
        groups = dups.groupby("group_id", sort=False)
        a, b, c = st.columns(3)
        a.metric("duplicate groups", groups.ngroups)
        b.metric("tracks involved", dups.track_id.nunique())
        c.metric("of them exact copies", int(dups[dups.kind == "exact_duplicate"].group_id.nunique()))
        labels = cached(group_labels)(ctx.db, dataset_id)
        group = st.selectbox("Group", list(labels), format_func=labels.get, key="dup_group")
        members = dups[dups.group_id == group]
        for col, member in zip(st.columns(min(len(members), 3)), members.itertuples()):
            with col:
                st.markdown(f"**{md(member.track_id)}** · labelled {md(member.label)} · "
                            f"{md(member.artist) if member.artist else 'unknown artist'}")
                clip = cached(media.track_audio)(ctx.db, dataset_id, member.track_id)
                if clip is not None:
                    st.audio(clip[0], sample_rate=clip[1])
                st.caption(md(evidence_text(member.evidence)) or "no alignment evidence stored")
        ok, no, _ = st.columns([1, 1, 3])
        verdict = None
        if ok.button("Confirm: same audio", key="dup_confirm", icon=":material/check:"):
            verdict = "confirmed"
        if no.button("Dismiss: different", key="dup_dismiss", icon=":material/close:"):
            verdict = "dismissed"
        if verdict:
            save([dict(dataset_id=dataset_id, track_id=m.track_id, kind=m.kind, decision=verdict, note=None)
                  for m in members.itertuples()])
            st.rerun()
        with st.expander("All duplicate findings"):
            review_table(dups, ["group_id", "label", "score", "evidence"], "dup_table")


def label_view() -> None:
    """Tracks whose label the detector doubts, with the chosen run's opinion."""
    issues = cached(q.label_issues)(ctx.db, dataset_id, run_id)
    st.caption("Most suspicious first. The model's opinion comes from the chosen run"
               + ("" if run_id else " (none: the chosen run is on another dataset)") + ".")
    if len(issues):
        issues = issues.assign(suggested=issues.evidence.map(lambda e: e.get("suggested")),
                               p_suggested=issues.evidence.map(lambda e: e.get("suggested_prob")))
        review_table(issues, ["label", "suggested", "p_suggested", "score", "predicted", "confidence", "p_given",
                              "evidence"], "label_table")
        st.caption("suggested / p_suggested: the detector's out-of-fold opinion; predicted / confidence / "
                   "p_given: the chosen run's, where it predicted the track (its validation and test sides).")
        listen(list(issues.track_id), "label_listen",
               {r.track_id: f"{r.track_id} · labelled {r.label}"
                + (f", model says {r.predicted}" if isinstance(r.predicted, str) else "") for r in issues.itertuples()})
    else:
        st.info("No label issues detected.")


def damage_view() -> None:
    """Distorted, silent and unreadable files."""
    damaged = cached(q.faults)(ctx.db, dataset_id, kinds=["distortion", "silence", "unreadable"], source="detected")
    review_table(damaged, ["kind", "label", "score", "status", "evidence"], "damage_table")
    if len(damaged):
        listen(list(damaged[damaged.status == "ok"].track_id), "damage_listen")


def artist_view() -> None:
    """Every artist with several tracks, the fault rule, and how the chosen run's split places them."""
    artists = cached(q.artists_across_split)(ctx.db, dataset_id, run_id)
    st.caption(f"The rule: {artist_rule()}. Below, every artist with two or more tracks, flagged or not, and "
               "where the chosen run's split put their tracks: songs by one artist on both the training and "
               "the test side let a model score by recognising the artist rather than the genre, and an "
               "artist absent from training tests whether the genre was learnt at all. Train with "
               "`--split artist` to keep artists apart.")
    if artists.empty:
        st.info("No artist has two or more tracks (or this dataset names no artists).")
        return
    a, b, c = st.columns(3)
    a.metric("artists with several tracks", len(artists))
    b.metric("flagged by the rule", int(artists.flagged.sum()))
    c.metric("on both sides of the chosen run's split", int(artists.leak.sum()) if run_id else "–")
    shown = artists.drop(columns="track_ids") if run_id else artists.drop(columns=["track_ids", "train", "val",
                                                                                      "test", "leak"])
    st.dataframe(shown.assign(artist=shown.artist.map(plain), top_share=100 * shown.top_share), hide_index=True,
                 width="stretch",
                 column_config={"n_tracks": "tracks", "top_share": st.column_config.NumberColumn(
                                    "largest share of a genre", format="%.0f%%"),
                                "flagged": st.column_config.CheckboxColumn("flagged"),
                                "train": "train", "val": "validation", "test": "test",
                                "leak": st.column_config.CheckboxColumn("train + test")})
    st.caption("train / validation / test: the chosen run's split (train counts every track it did not validate "
               "or test on)." if run_id else "Choose a run on this dataset in the sidebar to see how its split "
               "places these artists.")
    with st.expander("Review artist findings per track"):
        review_table(cached(q.faults)(ctx.db, dataset_id, kinds=["artist_repeat"], source="detected"),
                     ["group_id", "label", "artist", "evidence"], "artist_table")


def known_view() -> None:
    """Detected faults against the list published for the corpus."""
    detail, summary = cached(q.known_vs_detected)(ctx.db, dataset_id)
    if summary.empty:
        st.info("No list of known faults is stored for this dataset (GTZAN gets Sturm's list on ingest).")
    else:
        st.caption("Known: faults published for this corpus. Found: detected and known; missed: known, not "
                   "detected; new: detected, not on the list (a new fault, or a false alarm).")
        st.dataframe(summary[["family", "known", "found", "missed", "new", "recall", "precision"]], hide_index=True,
                     width="stretch", column_config={"recall": st.column_config.NumberColumn(format="%.2f"),
                                                     "precision": st.column_config.NumberColumn(format="%.2f")})
        status = st.radio("Show", ["missed", "new", "found"], horizontal=True, key="kvd_status")
        st.dataframe(detail[detail.status == status], hide_index=True, width="stretch")


def fair_view() -> None:
    """The chosen run's test accuracy with and without the tracks confirmed faulty."""
    if run_id is None:
        st.info("Choose a run on this dataset in the sidebar to re-score it without the confirmed faulty tracks.")
    else:
        clean = cached(q.clean_evaluation)(ctx.db, run_id)
        st.caption(f"Run {md(run.model)} · {md(run_id)}: test accuracy on all test tracks, and without the tracks a person "
                   "confirmed faulty (any kind) on this page.")
        st.plotly_chart(figure("accuracy_ci", clean.assign(label=clean.subset), presentation=ctx.presentation),
                        theme=None, config=charts.plot_config(ctx.image_format, "fair_evaluation"), key="clean_ci")
        st.dataframe(clean.assign(accuracy=[state.format_pct(a, lo, hi) for a, lo, hi in
                                            zip(clean.accuracy, clean.ci_low, clean.ci_high)])
                     [["subset", "n", "excluded", "accuracy", "macro_f1"]],
                     hide_index=True, width="stretch",
                     column_config={"accuracy": "accuracy [95% CI]",
                                    "macro_f1": st.column_config.NumberColumn("macro-F1", format="%.3f")})


VIEWS = {"Duplicates": duplicates_view, "Label issues": label_view, "Distortion & silence": damage_view,
         "Artist repetition": artist_view, "Known vs detected": known_view, "Fairer evaluation": fair_view}


def linked_view(link: dict) -> None:
    """A link's view and duplicate group become the page's, or a notice says what is not here."""
    view = links.from_slug(link.get("view", "duplicates"), VIEWS)
    if view is None:
        notify(links.notice("the view", link["view"], "the duplicates"))
    st.session_state["faults_view"] = view or "Duplicates"
    if "group" in link:
        groups = set(cached(q.duplicate_groups)(ctx.db, dataset_id).group_id)
        group, message = links.choose(link["group"], groups, "the duplicate group", "the first group")
        if message:
            notify(message)
        if group:
            st.session_state.update({"faults_view": "Duplicates", "dup_group": group})


if link := take("faults"):
    linked_view(link)
# One view at a time: st.tabs ran (and sent) all six on every rerun, 3-7 s at 100,000 tracks.
st.session_state.setdefault("faults_view", "Duplicates")  # not default=: a link may set the view
view = st.segmented_control("View", list(VIEWS), key="faults_view",
                            label_visibility="collapsed") or "Duplicates"
VIEWS[view]()
keep({"view": links.slug(view), "group": st.session_state.get("dup_group") if view == "Duplicates" else None},
     defaults={"view": "duplicates"})
