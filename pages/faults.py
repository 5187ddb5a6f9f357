"""Faults: what is wrong with the dataset itself, and a person's verdict on each finding."""

from functools import partial

import pandas as pd
import streamlit as st

from genre_core.app import links, state
from genre_core.app import charts, fault_evidence, hearing, media, player, reviews
from genre_core.app import queries as q
from genre_core.faults.kinds import artist_rule
from genre_core.untrusted import markdown as md
from genre_core.untrusted import plain
from page_frame import figure, open_page, table
from page_links import keep, notify, take

EVIDENCE_WORDS = {"offset_s": "offset (s)", "matched_s": "matched (s)", "gain_db": "gain (dB)",
                  "similarity": "similarity", "partner": "copy of", "matched_by": "matched by",
                  "suggested": "suggested genre", "given": "given genre", "given_prob": "p(given)",
                  "suggested_prob": "p(suggested)", "audio_given_prob": "p(given) from the audio alone",
                  "artist_other_genres": "the artist's other songs", "own_genres": "its genres",
                  "sources": "evidence from", "outlier_score": "outlier score",
                  "nearest": "nearest clip", "robust_z": "robust z"}
HIDDEN_EVIDENCE = ("members", "reference", "rule", "label", "sweep")

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
    return ", ".join(f"{EVIDENCE_WORDS.get(k, k.replace('_', ' '))}: {_value_text(v)}" for k, v in evidence.items()
                     if v is not None and k not in HIDDEN_EVIDENCE)


def _value_text(value) -> str:
    """{'rock': 5} -> 'rock 5'; lists joined; anything else as it is."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


# The finding chosen in each view ({view slug: track_id, "duplicates": group_id}) and notes typed
# before a verdict: plain keys, not widgets', so neither is dropped when the view is switched.
PICK, DRAFTS = "faults_pick", "faults_note_drafts"
st.session_state.setdefault(PICK, {})
st.session_state.setdefault(DRAFTS, {})
SIDE_BADGE = {"train": ":blue-badge[training side]", "val": ":gray-badge[validation side]",
              "test": ":orange-badge[test side]"}
VERDICT_BADGE = {"confirmed": ":red-badge[:material/check: confirmed]",
                 "dismissed": ":green-badge[:material/close: dismissed]"}


def decide(rows: list[dict], decision: str | None, note_key: str) -> None:
    """A verdict button's callback: the verdict (None: cleared) of every finding in `rows` is
    stored at once, with the note typed for them."""
    note = (st.session_state.get(note_key) or "").strip() or None
    saved = reviews.save_reviews(ctx.db, [dict(r, decision=decision, note=note) for r in rows])
    # the stamp that keys every cached query, renewed here: the page's next run reads the verdict
    st.session_state[state.DB] = q.DbRef(ctx.db.path, q.db_version(ctx.db.path))
    if decision is None:
        st.session_state[note_key] = ""
    st.session_state[DRAFTS].pop(note_key, None)
    word = {"confirmed": "Confirmed", "dismissed": "Dismissed", None: "Cleared"}[decision]
    st.toast(f"{word}: {saved} finding{'s' if saved != 1 else ''} saved.", icon=":material/check:")


def noted(rows: list[dict], current: str | None, note_key: str) -> None:
    """The note's callback: saved with the verdict given, else kept as a draft for the verdict."""
    if current is None:
        st.session_state[DRAFTS][note_key] = st.session_state.get(note_key, "")
    else:
        decide(rows, current, note_key)


def group_verdict(decisions) -> str | None:
    """One verdict for several findings: theirs when all share it, None (undecided) otherwise."""
    given = {d for d in decisions if isinstance(d, str) and d}
    return given.pop() if len(given) == 1 and all(isinstance(d, str) and d for d in decisions) else None


def verdict_panel(found: pd.DataFrame, key: str, what: str) -> None:
    """The verdict on one finding, or on a duplicate group's findings together: shown, and
    given, changed or cleared with one click, each saved at once and kept in the history."""
    rows = [dict(dataset_id=int(r.dataset_id), track_id=str(r.track_id), kind=str(r.kind)) for r in found.itertuples()]
    current = group_verdict(list(found.decision))
    partly = current is None and found.decision.notna().any()
    note_key = "note_" + "~".join(f"{r['track_id']}|{r['kind']}" for r in rows)  # a note per finding
    if note_key not in st.session_state:
        stored = found.note.dropna()
        st.session_state[note_key] = st.session_state[DRAFTS].get(note_key, stored.iloc[0] if len(stored) else "")
    shown = VERDICT_BADGE.get(current, ":gray-badge[partly decided]" if partly else ":gray-badge[undecided]")
    st.markdown(f"**Verdict on {md(what)}:** {shown}")
    ok, no, clear, note = st.columns([1, 1, 1, 3], vertical_alignment="bottom")
    ok.button("Confirm", key=f"{key}_confirm", icon=":material/check:", disabled=current == "confirmed",
              on_click=decide, args=(rows, "confirmed", note_key), width="stretch",
              help="A real fault: saved at once, and left out of the fairer evaluation.")
    no.button("Dismiss", key=f"{key}_dismiss", icon=":material/close:", disabled=current == "dismissed",
              on_click=decide, args=(rows, "dismissed", note_key), width="stretch",
              help="A false alarm: saved at once.")
    clear.button("Clear verdict", key=f"{key}_clear", icon=":material/undo:",
                 disabled=not found.decision.notna().any(), on_click=decide, args=(rows, None, note_key),
                 width="stretch", help="Back to undecided; the history keeps the clearing.")
    note.text_input("Note", key=note_key, on_change=noted, args=(rows, current, note_key),
                    placeholder="optional; saved with the verdict")
    history = cached(q.review_history)(ctx.db, dataset_id, [r["track_id"] for r in rows])
    history = history[history.kind.isin({r["kind"] for r in rows})]
    if len(history):
        with st.expander(f"History ({len(history)} change{'s' if len(history) != 1 else ''})"):
            table(ctx, history.assign(decision=history.decision.fillna("cleared"), note=history.note.map(plain),
                                      decided_by=history.decided_by.map(plain)),
                  hide_index=True, width="stretch",
                  column_config={"decided_at": st.column_config.DatetimeColumn("when", format="YYYY-MM-DD HH:mm:ss"),
                                 "decided_by": "who", "decision": "verdict"})


def choose(pick: str, ids: list[str], table_key: str) -> None:
    """A findings table's row-click callback: the clicked row's id becomes the view's choice."""
    rows = st.session_state[table_key].selection.rows
    if rows:
        st.session_state[PICK][pick] = ids[rows[0]]
        if pick == "duplicates":
            st.session_state["dup_group"] = ids[rows[0]]


def findings_table(frame: pd.DataFrame, columns: list[str], key: str, pick: str, pick_by: str = "track_id") -> None:
    """Findings, one a row, with their verdicts; clicking a row makes it the view's choice (its
    player and verdict below). The id and verdict columns stay put while the rest scrolls."""
    shown = frame.assign(verdict=frame.decision.map(reviews.verdict_text), note=frame.note.map(plain),
                         evidence=frame.evidence.map(evidence_text)).reset_index(drop=True)
    for column in ("label", "artist", "predicted", "suggested"):
        if column in shown:
            shown[column] = shown[column].map(lambda v: plain(v) if isinstance(v, str) else v)
    order = ["track_id", "verdict"] + [c for c in columns if c not in ("track_id", "verdict")] + ["note"]
    config = {"track_id": st.column_config.TextColumn("track", pinned=True),
              "verdict": st.column_config.TextColumn("verdict", pinned=True),
              "evidence": st.column_config.TextColumn("evidence", width="large"),
              "score": st.column_config.NumberColumn("score", format="%.2f")}
    if ctx.presentation:
        table(ctx, shown[order], hide_index=True, width="stretch", column_config=config)
        return
    st.dataframe(shown[order], key=key, hide_index=True, width="stretch", column_config=config,
                 on_select=partial(choose, pick, list(shown[pick_by].astype(str)), key), selection_mode="single-row")


def chosen(pick: str, ids: list[str], labels: dict[str, str] | None = None) -> str:
    """The view's chosen finding: the last row clicked (or picked in the box, or named by a link),
    else the first; the box shows it, and picks too (keyboard, presentation mode)."""
    current = st.session_state[PICK].get(pick)
    st.session_state[PICK][pick] = current = current if current in ids else ids[0]
    box = f"{pick}_box"
    st.session_state[box] = current
    st.selectbox("Finding", ids, key=box, format_func=lambda t: (labels or {}).get(t, t),
                 on_change=lambda: st.session_state[PICK].update({pick: st.session_state[box]}))
    return current


def play(track_id: str, *, start_s: float = 0.0, spots=(), key: str) -> float | None:
    """A track's player (spectrogram, waveform, one playhead); its duration in seconds, None
    when it cannot be played."""
    clip = cached(hearing.player_media)(ctx.db, dataset_id, track_id)
    if clip is None:
        st.warning(media.NO_AUDIO)
        return None
    html = player.player_html(clip, presentation=ctx.presentation, start_s=start_s, spots=list(spots), link_time=False)
    st.iframe(html, height="content", alt=f"Player of {plain(track_id)}")
    return clip.duration_s


def open_button(track_ids: list[str], track_id: str, key: str) -> None:
    if st.button("Open in Track view", key=f"{key}_open", icon=":material/open_in_new:"):
        state.open_track(st.session_state, dataset_id, track_id, state.Selection(f"Faults: {key}", tuple(track_ids),
                                                                                 dataset_id))
        st.switch_page("pages/track.py")


def group_labels(db, dataset: int, run: str | None) -> dict[str, str]:
    """{group_id: "id · kind · a ↔ b · verdict [· train + test]"} for the group picker;
    column-wise, since a Python loop over a thousand groups took a second at 100,000 tracks."""
    dups = cached(q.duplicate_groups)(db, dataset)
    sides = cached(q.split_sides)(db, run, tuple(dups.track_id)) if run else {}
    dups = dups.assign(side=dups.track_id.map(sides))
    groups = dups.groupby("group_id", sort=False)
    verdict = groups.decision.agg(lambda d: reviews.verdict_text(group_verdict(list(d))))
    straddle = groups.side.agg(lambda s: fault_evidence.straddles(dict(enumerate(s))))
    text = (groups.group_id.first() + " · " + groups.kind.first().str.replace("_", " ") + " · "
            + groups.track_id.agg(" ↔ ".join) + " · " + verdict + straddle.map({True: " · ⚠ train + test",
                                                                                False: ""}))
    return dict(zip(text.index, text))


def duplicates_view() -> None:
    """Duplicate groups one at a time, to hear (aligned at the matching moment) and judge, and
    every finding in a table."""
    dups = cached(q.duplicate_groups)(ctx.db, dataset_id)
    if dups.empty:
        st.info("No duplicates detected.")
        return
    groups = dups.groupby("group_id", sort=False)
    a, b, c = st.columns(3)
    a.metric("duplicate groups", groups.ngroups)
    b.metric("tracks involved", dups.track_id.nunique())
    c.metric("of them exact copies", int(dups[dups.kind == "exact_duplicate"].group_id.nunique()))
    labels = cached(group_labels)(ctx.db, dataset_id, run_id)
    picked = st.session_state.get("dup_group", st.session_state[PICK].get("duplicates"))
    st.session_state["dup_group"] = picked if picked in labels else next(iter(labels))
    group = st.selectbox("Group", list(labels), format_func=labels.get, key="dup_group")
    st.session_state[PICK]["duplicates"] = group
    members = dups[dups.group_id == group]
    sides = cached(q.split_sides)(ctx.db, run_id, tuple(members.track_id))
    if fault_evidence.straddles(sides):
        st.error(md(f"These copies straddle the split of run {run_id}: "
                    + ", ".join(f"{t} on the {fault_evidence.side_words(s)}" for t, s in sides.items())
                    + ". The run was tested on audio it trained on, so its test score is flattered."),
                 icon=":material/call_split:")
    starts = fault_evidence.aligned_starts(list(zip(members.track_id, members.evidence)))
    aligned = any(v > 0 for v in starts.values())
    st.caption("Each player starts at the matching moment the detector found (blue mark): press play on "
               "both to hear them side by side." if aligned else "The copies line up from their start.")
    for col, member in zip(st.columns(min(len(members), 3)), members.itertuples()):
        with col:
            side = sides.get(member.track_id)
            st.markdown(f"**{md(member.track_id)}** · labelled {md(member.label)} · "
                        f"{md(member.artist) if member.artist else 'unknown artist'} · "
                        + (SIDE_BADGE[side] if side in SIDE_BADGE else ":gray-badge[no run chosen]"
                           if run_id is None else ":gray-badge[not in the run]"))
            start = starts.get(member.track_id, 0.0)
            moment = [player.Spot(start, start, "matching moment", f"the matching moment, {start:.2f} s",
                                  "#1565C0")] if aligned else []
            play(member.track_id, start_s=start, spots=moment, key=f"dup_{member.track_id}")
            st.caption(md(evidence_text(member.evidence)) or "no alignment evidence stored")
    verdict_panel(members, "dup", f"group {group} (all {len(members)} copies)")
    with st.expander("All duplicate findings (click a row to open its group)"):
        findings_table(dups, ["group_id", "kind", "label", "score", "evidence"], "dup_table", "duplicates",
                       pick_by="group_id")


def label_view() -> None:
    """Tracks whose label the detector doubts, with the chosen run's opinion."""
    issues = cached(q.label_issues)(ctx.db, dataset_id, run_id)
    st.caption("Most suspicious first. The model's opinion comes from the chosen run"
               + ("" if run_id else " (none: the chosen run is on another dataset)") + ". Click a row to "
               "hear it and give your verdict below; verdicts are saved as you give them.")
    if issues.empty:
        st.info("No label issues detected.")
        return
    issues = issues.assign(suggested=issues.evidence.map(lambda e: e.get("suggested")),
                           p_suggested=issues.evidence.map(lambda e: e.get("suggested_prob")))
    findings_table(issues, ["label", "suggested", "p_suggested", "score", "predicted", "confidence", "p_given",
                            "evidence"], "label_table", "label-issues")
    st.caption("score: the chance the label is wrong by the detector's out-of-fold evidence (its sources and the "
               "artist's other songs); suggested / p_suggested: the genre it hears instead; predicted / "
               "confidence / p_given: the chosen run's opinion, where it predicted the track (its validation and "
               "test sides).")
    st.markdown(md(q.label_flag_outlook(issues.score)))
    ids = list(issues.track_id)
    track = chosen("label-issues", ids, {r.track_id: f"{r.track_id} · labelled {r.label}"
                                         + (f", model says {r.predicted}" if isinstance(r.predicted, str) else "")
                                         for r in issues.itertuples()})
    play(track, key="label")
    verdict_panel(issues[issues.track_id == track].head(1), "label", f"{track}'s label")
    open_button(ids, track, "label")


def damage_view() -> None:
    """Distorted, silent and unreadable files, the damage marked where the detector found it."""
    damaged = cached(q.faults)(ctx.db, dataset_id, kinds=["distortion", "silence", "unreadable"], source="detected")
    if damaged.empty:
        st.info("Nothing found of this kind.")
        return
    findings_table(damaged, ["kind", "group_id", "label", "score", "status", "evidence"], "damage_table",
                   "distortion-silence")
    ids = list(dict.fromkeys(damaged.track_id))
    track = chosen("distortion-silence", ids)
    found = damaged[damaged.track_id == track]
    if (found.status == "ok").any():
        spots = [player.Spot(a, b, "where it was found", note)
                 for ev in found.evidence for a, b, note in fault_evidence.damage_marks(ev)]
        play(track, spots=spots, key="damage")
        if not spots:
            st.caption("The detector stored no times for this finding (it concerns the whole file).")
    else:
        st.warning(md(f"{track} cannot be played: {found.status.iloc[0]}."))
    for finding in found.itertuples():
        verdict_panel(found[found.kind == finding.kind].head(1), f"damage_{finding.kind}",
                      f"{track}'s {finding.kind}")
    open_button(ids, track, "damage")


def not_music_view() -> None:
    """Clips that sound like no music (speech, noise, test tones), each with its player and verdict."""
    odd = cached(q.faults)(ctx.db, dataset_id, kinds=["not_music"], source="detected")
    if odd.empty:
        st.info("No clip stands out as not music.")
        return
    st.caption("Clips far from every other clip in how noisy, pulsed and pitched they sound (outlier score: "
               "distance to their nearest clips over the corpus' usual distance). Most outlying first.")
    findings_table(odd, ["label", "score", "evidence"], "not_music_table", "not-music")
    track = chosen("not-music", list(odd.track_id))
    play(track, key="not_music")
    verdict_panel(odd[odd.track_id == track].head(1), "not_music", f"{track}: not music")
    open_button(list(odd.track_id), track, "not_music")


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
    table(ctx, shown.assign(artist=shown.artist.map(plain), top_share=100 * shown.top_share), hide_index=True,
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
        repeats = cached(q.faults)(ctx.db, dataset_id, kinds=["artist_repeat"], source="detected")
        if repeats.empty:
            st.info("No artist is flagged.")
        else:
            findings_table(repeats, ["group_id", "label", "artist", "evidence"], "artist_table", "artist-repetition")
            track = chosen("artist-repetition", list(repeats.track_id))
            verdict_panel(repeats[repeats.track_id == track].head(1), "artist", f"{track}'s artist repeat")


def known_view() -> None:
    """Detected faults against the dataset's list of known ones, kind by kind."""
    detail, summary, reference = cached(q.known_vs_detected)(ctx.db, dataset_id)
    if summary.empty:
        st.info("No list of known faults is stored for this dataset (GTZAN gets Sturm's published list, the demo "
                "corpus the faults it planted, when its faults are looked for).")
        return
    st.caption(f"Known: {md(reference or 'a list of faults stored for this corpus')}. Found: known and detected; "
               "missed: known, not detected; new: detected, not on the list (a fault the list lacks, or a false "
               "alarm). A duplicate counts as found under either duplicate kind.")
    table(ctx, summary[["fault", "kind", "known", "found", "missed", "new", "recall", "precision", "note"]],
          hide_index=True, width="stretch",
          column_config={"recall": st.column_config.NumberColumn(format="%.2f"),
                         "precision": st.column_config.NumberColumn(format="%.2f")})
    status = st.radio("Show", ["missed", "new", "found"], horizontal=True, key="kvd_status")
    table(ctx, detail[detail.status == status], hide_index=True, width="stretch")


def fair_view() -> None:
    """The chosen run's test accuracy with and without the tracks confirmed faulty."""
    if run_id is None:
        st.info("Choose a run on this dataset in the sidebar to re-score it without the confirmed faulty tracks.")
    else:
        # Nothing confirmed yet among the test tracks: what leaving out the flagged ones would change.
        clean = cached(q.clean_evaluation)(ctx.db, run_id, leave_out="confirmed or flagged")
        if len(clean) and clean.subset.iloc[-1] == "without flagged tracks":
            left_out = ("every track with an open fault flag (no one has confirmed a fault yet: confirm or dismiss "
                        "them in the other views to narrow this down)")
        else:
            left_out = "the tracks a person confirmed faulty (any kind) on this page"
        who = "" if ctx.presentation else f" · {md(run_id)}"
        st.caption(f"Run {md(run.model)}{who}: test accuracy on all test tracks, and without {left_out}.")
        st.plotly_chart(figure("accuracy_ci", clean.assign(label=clean.subset), presentation=ctx.presentation),
                        theme=None, config=charts.plot_config(ctx.image_format, "fair_evaluation"), key="clean_ci")
        table(ctx, clean.assign(accuracy=[state.format_pct(a, lo, hi) for a, lo, hi in
                                            zip(clean.accuracy, clean.ci_low, clean.ci_high)])
                     [["subset", "n", "excluded", "accuracy", "macro_f1"]],
                     hide_index=True, width="stretch",
                     column_config={"accuracy": "accuracy [95% CI]",
                                    "macro_f1": st.column_config.NumberColumn("macro-F1", format="%.3f")})


VIEWS = {"Duplicates": duplicates_view, "Label issues": label_view, "Not music": not_music_view,
         "Distortion & silence": damage_view, "Artist repetition": artist_view, "Known vs detected": known_view,
         "Fairer evaluation": fair_view}


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
            st.session_state[PICK]["duplicates"] = group
    if "track" in link and view not in (None, "Duplicates"):
        track, message = links.choose(link["track"], set(findings.track_id), "the track", "the first finding")
        if message:
            notify(message)
        if track:
            st.session_state[PICK][links.slug(view)] = track


if link := take("faults"):
    linked_view(link)
# One view at a time: st.tabs ran (and sent) all six (now seven) on every rerun, 3-7 s at 100,000 tracks.
st.session_state.setdefault("faults_view", "Duplicates")  # not default=: a link may set the view
view = st.segmented_control("View", list(VIEWS), key="faults_view",
                            label_visibility="collapsed") or "Duplicates"
VIEWS[view]()
slug = links.slug(view)
keep({"view": slug, "group": st.session_state[PICK].get("duplicates") if view == "Duplicates" else None,
      "track": None if view == "Duplicates" else st.session_state[PICK].get(slug)}, defaults={"view": "duplicates"})
