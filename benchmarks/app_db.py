"""The app at scale: a generated database (10,000 tracks / 20 runs by default; `--app-tracks
100000` is the issue's scale, ~8 min to build on 2 shared cores), every page's queries timed,
and every page run through streamlit's AppTest (cold cache, then warm); `--app-browser` adds
`benchmarks.app_browser`'s table, the time a person waits in a real browser. Target: < 1.5 s
per page, warm.

`build()` writes a plausible synthetic dataset (real WAV files, a few shared by many tracks),
complete runs with predictions, per-window predictions, metrics and epochs, the analysis
tables (projections, neighbours, Grad-CAM maps, band importance, taggrams) and faults; the
app tests build their small fixture database with it too.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from genre_core.metrics import evaluation
from genre_core.store import Store, open_store

GENRES10 = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
MODELS = (("cnn", "logmel"), ("crnn", "logmel"), ("cnn", "mfcc"), ("transformer", "logmel"),
          ("mlp", "handcrafted"), ("musicnn_probe", "musicnn"))
SR = 22050
TAGS = tuple(f"tag{i:02d}" for i in range(50))


def write_audio(root: Path, genres, per_genre: int, seconds: float, seed: int = 0) -> dict[str, list[str]]:
    """`per_genre` WAV files per genre: a few partials in a genre-specific band, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    out: dict[str, list[str]] = {}
    for g, genre in enumerate(genres):
        for i in range(per_genre):
            path = root / genre / f"{genre}_{i:02d}.wav"
            if not path.is_file():
                base = 110.0 * 2 ** (g / 2.5)
                y = sum(np.sin(2 * np.pi * base * k * t * rng.uniform(0.98, 1.02)) / k for k in (1, 2, 3, 5))
                y *= 0.5 + 0.5 * np.sin(2 * np.pi * t * rng.uniform(0.5, 2.0)) ** 2  # a beat-ish envelope
                y = 0.3 * y / np.max(np.abs(y)) + 0.01 * rng.standard_normal(t.size)
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(path), y.astype(np.float32), SR)
            out.setdefault(genre, []).append(str(path.resolve()))
    return out


def _tracks(name: str, genres, n_tracks: int, files: dict[str, list[str]], seconds: float,
            rng: np.random.Generator) -> pd.DataFrame:
    labels = np.array(genres)[np.arange(n_tracks) % len(genres)]
    counts: dict[str, int] = {}
    rows = []
    for label in labels:
        i = counts[label] = counts.get(label, -1) + 1
        rows.append(dict(track_id=f"{label}.{i:05d}", path=files[label][i % len(files[label])], label=label,
                         artist=f"{label} artist {i // 5:03d}", title=None, duration_s=seconds,
                         sample_rate=SR, channels=1, status="ok", error=None, error_kind=None,
                         sha1=f"{name}-{label}-{i}", official_split=None))
    frame = pd.DataFrame(rows)
    bad = rng.choice(len(frame), size=max(1, n_tracks // 200), replace=False)
    frame.loc[bad, "status"], frame.loc[bad, "error"] = "unreadable", "not decodable audio (truncated header)"
    frame.loc[bad, "error_kind"] = "unreadable"
    return frame


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _probs(y: np.ndarray, n_classes: int, skill: float, rng: np.random.Generator) -> np.ndarray:
    """(N, C) probabilities right about `skill` of the time; errors go to 'neighbour' genres."""
    right = rng.random(y.size) < skill
    confusable = (y + rng.choice([1, 3, n_classes - 1], size=y.size)) % n_classes
    guess = np.where(right, y, confusable)
    logits = rng.normal(0, 0.8, (y.size, n_classes))
    logits[np.arange(y.size), guess] += rng.uniform(1.0, 4.0, y.size)
    logits[np.arange(y.size), y] += 0.8
    return _softmax(logits).astype(np.float32)


def _run_results(tracks: pd.DataFrame, split: dict, classes, skill: float, seconds: float,
                 window_s: float, rng: np.random.Generator, n_epochs: int) -> dict[str, pd.DataFrame]:
    preds, segs, metrics = [], [], []
    for side in ("test", "val"):
        part = tracks[tracks.track_id.isin(split[side])]
        y = part.label.map({g: i for i, g in enumerate(classes)}).to_numpy()
        probs = _probs(y, len(classes), skill, rng)
        report = evaluation.classification_report(y, probs, classes)
        metrics += evaluation.metric_rows(report, y, probs, side, "track", seed=0, n_boot=300)
        preds.append(pd.DataFrame({"track_id": part.track_id.to_numpy(), "split": side, "label": part.label.to_numpy(),
                                   "predicted": np.array(classes)[probs.argmax(1)], "probs": list(probs)}))
        starts = np.arange(0, max(seconds - window_s, 0) + 1e-9, 1.5)
        noisy = _softmax(np.log(probs)[:, None, :] + rng.normal(0, 0.9, (len(part), len(starts), len(classes))))
        flat = noisy.reshape(-1, len(classes)).astype(np.float32)
        segs.append(pd.DataFrame({"track_id": np.repeat(part.track_id.to_numpy(), len(starts)),
                                  "start_s": np.tile(starts, len(part)), "probs": list(flat)}))
        wy = np.repeat(y, len(starts))
        metrics += evaluation.metric_rows(evaluation.classification_report(wy, flat, classes), wy, flat,
                                          side, "window", seed=0, n_boot=50)
    e = np.arange(1, n_epochs + 1)
    epochs = pd.DataFrame({"epoch": e, "train_loss": 2.2 * np.exp(-e / 6) + 0.1, "val_loss": 2.2 * np.exp(-e / 8) + 0.4,
                           "train_acc": 1 - 0.9 * np.exp(-e / 5), "val_acc": skill * (1 - 0.8 * np.exp(-e / 4)),
                           "lr": 1e-3 * np.ones(n_epochs), "seconds": 12.0})
    return {"epochs": epochs, "metrics": pd.DataFrame(metrics), "predictions": pd.concat(preds, ignore_index=True),
            "segment_predictions": pd.concat(segs, ignore_index=True)}


def fake_analysis(tracks: pd.DataFrame, preds: pd.DataFrame, classes, seconds: float, n_explained: int,
                  taggrams: bool, rng: np.random.Generator, segments_per_track: int = 0) -> dict[str, pd.DataFrame]:
    """The analysis tables of one run; with `segments_per_track`, that many windows of every
    track (from 0 s at the 1.5-s hop, so test and validation windows have their predictions)
    on the t-SNE map, scattered around their track's point (segment_projections)."""
    ok = tracks[tracks.status == "ok"].reset_index(drop=True)
    g = ok.label.map({c: i for i, c in enumerate(classes)}).to_numpy()
    angle = 2 * np.pi * g / len(classes)
    projections = []
    for method, spread in (("tsne", 1.0), ("umap", 0.6)):
        xy = np.stack([np.cos(angle), np.sin(angle)], 1) * 10 + rng.normal(0, 2.5 * spread, (len(ok), 2))
        projections.append(pd.DataFrame({"method": method, "track_id": ok.track_id, "x": xy[:, 0], "y": xy[:, 1]}))
    neighbours = []
    for i in range(len(classes)):  # up to 10 distinct others of the same genre per track, vectorised
        pool = ok.track_id[g == i].to_numpy()
        k = min(10, len(pool) - 1)
        if k < 1:
            continue
        gaps = rng.integers(1, max(1, (len(pool) - 1) // k) + 1, size=(len(pool), k))
        pick = pool[(np.arange(len(pool))[:, None] + np.cumsum(gaps, axis=1)) % len(pool)]  # (P, k), never self
        neighbours.append(pd.DataFrame({"track_id": np.repeat(pool, k), "rank": np.tile(np.arange(1, k + 1), len(pool)),
                                        "neighbour_id": pick.ravel(),
                                        "distance": np.sort(rng.uniform(0.1, 0.6, (len(pool), k)), axis=1).ravel()}))
    test = preds[(preds.split == "test") & preds.track_id.isin(ok.track_id)].head(n_explained)
    bands, frames = 64, int(seconds * 8)
    yy, xx = np.mgrid[0:bands, 0:frames]
    maps = []
    for row in test.itertuples():
        for target in dict.fromkeys([row.predicted, row.label]):
            cy, cx = rng.uniform(5, bands - 5), rng.uniform(0, frames)
            blob = np.exp(-((yy - cy) / 8) ** 2 - ((xx - cx) / (frames / 4)) ** 2)
            maps.append(dict(track_id=row.track_id, method="gradcam", target=target, n_bands=bands,
                             n_frames=frames, values=(blob / blob.max()).astype(np.float32).ravel()))
    band_rows = [dict(genre=c, method=m, values=rng.random(n).astype(np.float32))
                 for c in classes for m, n in (("gradcam", 128), ("occlusion", 16))]
    out = {"projections": pd.concat(projections, ignore_index=True),
           "neighbours": pd.concat(neighbours, ignore_index=True),
           "attributions": pd.DataFrame(maps), "band_importance": pd.DataFrame(band_rows)}
    if taggrams:
        n_windows = max(1, int(seconds // 3))
        out["taggrams"] = pd.DataFrame([dict(track_id=t, tag_names=list(TAGS), n_frames=n_windows,
                                             values=rng.random(n_windows * len(TAGS)).astype(np.float32))
                                        for t in test.track_id])
    if segments_per_track:
        tsne, k = projections[0], segments_per_track
        out["segment_projections"] = pd.DataFrame({
            "method": "tsne", "track_id": np.repeat(tsne.track_id.to_numpy(), k),
            "start_s": np.tile(np.arange(k) * 1.5, len(tsne)),
            "x": np.repeat(tsne.x.to_numpy(), k) + rng.normal(0, 1.0, len(tsne) * k),
            "y": np.repeat(tsne.y.to_numpy(), k) + rng.normal(0, 1.0, len(tsne) * k)})
    return out


def _faults(tracks: pd.DataFrame, dataset_id: int, rng: np.random.Generator) -> pd.DataFrame:
    ok = tracks[tracks.status == "ok"].track_id.to_numpy()
    pick = iter(rng.permutation(ok))
    rows = []
    n = max(2, len(ok) // 100)
    for k in range(n):  # duplicate pairs, the first few also on the "known" list
        a, b = next(pick), next(pick)
        kind = "exact_duplicate" if k % 2 == 0 else "recording_duplicate"
        ev = dict(offset_s=round(float(rng.uniform(0, 5)), 2), matched_s=round(float(rng.uniform(10, 30)), 1),
                  similarity=round(float(rng.uniform(0.8, 1.0)), 3), partner=None)
        for t, other in ((a, b), (b, a)):
            rows.append(dict(track_id=t, kind=kind, group_id=f"dup-{k:03d}", score=ev["similarity"],
                             evidence=json.dumps({**ev, "partner": other}), source="detected"))
            if k < n // 2:
                rows.append(dict(track_id=t, kind="exact_duplicate", group_id=f"known-{k:03d}", score=1.0,
                                 evidence=json.dumps({"note": "published repetition"}), source="known"))
    for k in range(n):
        t = next(pick)
        rows.append(dict(track_id=t, kind="label_issue", group_id=None, score=float(rng.uniform(0.5, 1)),
                         evidence=json.dumps({"given": None, "suggested": None,
                                              "out_of_fold_p_given": round(float(rng.uniform(0, 0.2)), 3)}),
                         source="detected"))
    for kind in ("distortion", "silence"):
        for _ in range(max(1, n // 2)):
            rows.append(dict(track_id=next(pick), kind=kind, group_id=None, score=float(rng.uniform(0.3, 1)),
                             evidence=json.dumps({"clipped_fraction": round(float(rng.uniform(0.01, 0.2)), 3)}
                                                 if kind == "distortion" else {"silent_s": 4.0}), source="detected"))
    missed = next(pick)  # a known fault the detectors missed
    rows.append(dict(track_id=missed, kind="recording_duplicate", group_id="known-missed", score=1.0,
                     evidence=json.dumps({"note": "published"}), source="known"))
    for t in tracks[tracks.status == "unreadable"].track_id:
        rows.append(dict(track_id=t, kind="unreadable", group_id=None, score=1.0,
                         evidence=json.dumps({"error": "truncated header"}), source="detected"))
    artists = tracks[tracks.status == "ok"].groupby("artist").track_id.apply(list)
    for artist, members in list(artists.items())[: max(1, n // 2)]:
        for t in members:
            rows.append(dict(track_id=t, kind="artist_repeat", group_id=f"artist:{artist}", score=float(len(members)),
                             evidence=json.dumps({"artist": artist, "tracks": len(members)}), source="detected"))
    rows.append(dict(track_id=next(pick), kind="not_music", group_id=None, score=4.0,  # after every draw above
                     evidence=json.dumps({"outlier_score": 4.0, "threshold": 3.0}), source="detected"))
    frame = pd.DataFrame(rows)
    frame.insert(0, "dataset_id", dataset_id)
    label_of = dict(zip(tracks.track_id, tracks.label))
    fixed = []
    for ev, t, kind in zip(frame.evidence, frame.track_id, frame.kind):
        if kind == "label_issue":
            d = json.loads(ev)
            d.update(given=label_of[t], suggested=sorted(set(label_of.values()) - {label_of[t]})[0])
            ev = json.dumps(d)
        fixed.append(ev)
    frame["evidence"] = fixed
    return frame


def build(store: Store, name: str = "bench", genres=GENRES10, n_tracks: int = 10_000, n_runs: int = 20,
          audio_dir: Path | None = None, seconds: float = 30.0, files_per_genre: int = 4,
          n_explained: int = 60, seed: int = 0, segments_per_track: int = 0) -> pd.DataFrame:
    """Add dataset `name` with `n_runs` complete runs (plus one running, one failed) and their
    analysis (with `segments_per_track` windows of every track on each run's t-SNE map) and
    faults to `store`. Returns the runs it wrote (run_id, model, sweep)."""
    rng = np.random.default_rng(seed)
    # Absolute: the app serves audio only from inside a dataset's absolute root (app.access).
    audio_dir = Path(audio_dir or store.path.parent / f"{name}_audio").resolve()
    files = write_audio(audio_dir, genres, files_per_genre, seconds, seed)
    tracks = _tracks(name, genres, n_tracks, files, seconds, rng)
    dataset_id, _ = store.save_dataset(name, "synth", str(audio_dir), genres=list(genres), tracks=tracks.to_dict("records"))
    usable = tracks[tracks.status == "ok"].track_id.to_numpy()
    shuffled = np.random.default_rng(seed + 1).permutation(usable)
    n_test, n_val = len(usable) // 5, len(usable) // 10
    split = {"test": set(shuffled[:n_test]), "val": set(shuffled[n_test:n_test + n_val])}
    written = []
    sweep = f"{name}-sweep"
    for r in range(n_runs):
        model, rep = MODELS[r % len(MODELS)]
        in_sweep = r >= n_runs // 2
        run_id = f"{name}{r:02d}-{model}-{int(rng.integers(0, 16 ** 4)):04x}"  # like training.new_run_id
        config = dict(dataset=name, model=model, split="random", representation=rep, epochs=20 + r % 3 * 10,
                      lr=1e-3 if r % 2 else 3e-4, window_s=3.0, hop_s=1.5, eval_hop_s=1.5, seed=0, tiny=False,
                      features=dict(sr=SR, n_fft=2048, hop_length=512, n_mels=128, fmin=0.0, fmax=None),
                      augment=dict(gain_db=6.0 if r % 2 else 0.0, mixup=0.0))
        store.start_run(dict(run_id=run_id, dataset_id=dataset_id, model=model, representation=rep, split="random",
                             config=config, device="cpu", seed=0, sweep=sweep if in_sweep else None,
                             classes=list(genres)))
        skill = 0.45 + 0.4 * rng.random()
        results = _run_results(tracks, split, list(genres), skill, seconds, 3.0, rng, n_epochs=8 + r % 5)
        store.finish_run(run_id, results)
        torchy = rep != "handcrafted"  # sklearn baselines have no Grad-CAM
        store.replace_run_rows(run_id, fake_analysis(tracks, results["predictions"], list(genres), seconds,
                                                 n_explained if torchy else 0, rep == "musicnn", rng,
                                                 segments_per_track))
        written.append(dict(run_id=run_id, model=model, sweep=sweep if in_sweep else None))
    store.start_run(dict(run_id=f"{name}-running", dataset_id=dataset_id, model="cnn", split="random",
                         config={}, seed=0, classes=list(genres)))
    store.start_run(dict(run_id=f"{name}-failed", dataset_id=dataset_id, model="cnn", split="random",
                         config={}, seed=0, classes=list(genres)))
    store.fail_run(f"{name}-failed", "RuntimeError: out of memory")
    frame = _faults(tracks, dataset_id, rng)
    for source in ("detected", "known"):
        store.replace_faults(dataset_id, source, frame[frame.source == source])
    return pd.DataFrame(written)


# -- timing --------------------------------------------------------------------------------


def page_queries(db, run_id: str, dataset_id: int, track_id: str) -> dict[str, list]:
    """The uncached reads each page makes on first open (what st.cache_data saves later)."""
    from genre_core.app import media
    from genre_core.app import queries as q

    return {
        "app (sidebar)": [("database_state", q.database_state, (db,)), ("db_version", q.db_version, (db,)),
                          ("runs", q.runs, (db,))],
        "Overview": [("datasets", q.datasets, (db,)), ("leaderboard", q.leaderboard, (db,))],
        "Confusion": [("confusion", q.confusion, (db, run_id)), ("predictions", q.predictions, (db, run_id)),
                      ("per_genre", q.per_genre, (db, run_id))],
        "Map": [("projection_methods", q.projection_methods, (db, run_id)),
                ("projection", q.projection, (db, run_id, "tsne"))],
        "Track": [("search_tracks", q.search_tracks, (db, run_id, "jazz")),
                  ("track", q.track, (db, dataset_id, track_id)),
                  ("track_audio", media.track_audio, (db, dataset_id, track_id)),
                  ("track_waveform", media.track_waveform, (db, dataset_id, track_id)),
                  ("track_mel", media.track_mel, (db, dataset_id, track_id)),
                  ("track_probs", q.track_probs, (db, run_id, track_id)),
                  ("segments", q.segments, (db, run_id, track_id)),
                  ("attributions", q.attributions, (db, run_id, track_id)),
                  ("taggram", q.taggram, (db, run_id, track_id)),
                  ("neighbours", q.neighbours, (db, run_id, track_id)),
                  ("band_importance", q.band_importance, (db, run_id)),
                  ("track_faults", q.track_faults, (db, dataset_id, track_id))],
        "Faults": [("duplicate_groups", q.duplicate_groups, (db, dataset_id)),
                   ("label_issues", q.label_issues, (db, dataset_id, run_id)),
                   ("faults", q.faults, (db, dataset_id)),
                   ("known_vs_detected", q.known_vs_detected, (db, dataset_id)),
                   ("clean_evaluation", q.clean_evaluation, (db, run_id))],
        "Compare": [("leaderboard", q.leaderboard, (db, dataset_id)),
                    ("per_genre x8", q.per_genre, (db, list(q.runs(db).run_id[:8]))),
                    ("epochs x8", q.epochs, (db, list(q.runs(db).run_id[:8]))),
                    ("mcnemar", q.mcnemar, (db, run_id, q.runs(db).run_id.iloc[-1])),
                    ("sweeps", q.sweeps, (db,)), ("ablation", q.ablation, (db, q.sweeps(db).sweep.iloc[0])),
                    ("sweep_summary", q.sweep_summary, (db, q.sweeps(db).sweep.iloc[0]))],
    }


PAGES = ("overview", "confusion", "map", "track", "faults", "compare", "classify")


def time_app(db_path: Path, run_id: str, track: tuple[int, str]) -> pd.DataFrame:
    """Seconds per AppTest run of each page: `first_s` in this fresh process (imports and
    empty caches), `cold_s` after clearing st.cache_data (every query runs), `warm_s` from
    the caches (what a person sees on every later visit or rerun)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from genre_core.app import state

    os.environ["GENRELENS_DB"] = str(db_path)
    app = Path(__file__).resolve().parent.parent / "app.py"
    at = AppTest.from_file(str(app), default_timeout=120)
    at.session_state[state.RUN] = run_id
    at.session_state[state.TRACK] = track
    at.run()
    times: dict[str, list[float]] = {page: [] for page in PAGES}
    errors: dict[str, int] = {}
    for attempt in range(3):
        if attempt == 1:
            st.cache_data.clear()
        for page in PAGES:
            at.switch_page(f"pages/{page}.py")
            started = time.perf_counter()
            at.run()
            times[page].append(time.perf_counter() - started)
            errors[page] = errors.get(page, 0) + len(at.exception)
    return pd.DataFrame([dict(page=p, first_s=t[0], cold_s=t[1], warm_s=t[2], errors=errors[p])
                         for p, t in times.items()])


def add_arguments(parser) -> None:
    group = parser.add_argument_group("app")
    group.add_argument("--app-tracks", type=int, default=10_000, help="tracks of the generated app database")
    group.add_argument("--app-runs", type=int, default=20, help="complete runs of the generated app database")
    group.add_argument("--app-db", help="default: data/bench/app_<tracks>x<runs>.duckdb (built when missing)")
    group.add_argument("--app-browser", type=int, default=0, metavar="ROUNDS",
                       help="also click through every page ROUNDS times in chromium (benchmarks.app_browser)")


def run(store, args) -> pd.DataFrame:
    from genre_core.app import queries as q

    n_tracks = getattr(args, "app_tracks", 10_000)
    n_runs = getattr(args, "app_runs", 20)
    path = Path(getattr(args, "app_db", None) or Path("data/bench") / f"app_{n_tracks}x{n_runs}.duckdb")
    if not path.is_file():
        started = time.perf_counter()
        build(open_store(path), "bench", n_tracks=n_tracks, n_runs=n_runs)
        print(f"built {path} ({n_tracks} tracks, {n_runs} runs) in {time.perf_counter() - started:.0f} s")
    db = q.DbRef(str(path), q.db_version(path))
    # The best run with Grad-CAM maps, and one of its explained tracks: the heaviest Track page.
    pick = Store(path).query("""SELECT a.run_id, a.track_id, r.dataset_id FROM attributions a
                                JOIN runs r USING (run_id) LIMIT 1""")
    run_id, track_id, dataset_id = pick.run_id[0], pick.track_id[0], int(pick.dataset_id[0])
    pages = time_app(path, run_id, (dataset_id, track_id))
    print("AppTest page runs (s):")
    print(pages.to_markdown(index=False, floatfmt=".2f"))
    rows = []
    for page, calls in page_queries(db, run_id, dataset_id, track_id).items():
        for name, fn, fn_args in calls:
            started = time.perf_counter()
            fn(*fn_args)
            rows.append(dict(page=page, query=name, ms=1000 * (time.perf_counter() - started)))
    queries_table = pd.DataFrame(rows)
    print("\nqueries, uncached (ms; each opens the database read-only):")
    print(queries_table.to_markdown(index=False, floatfmt=".0f"))
    print()
    print(queries_table.groupby("page", sort=False).ms.sum().rename("total ms").to_frame()
          .to_markdown(floatfmt=".0f"))
    if getattr(args, "app_browser", 0):
        from benchmarks.app_browser import print_table, time_pages

        print()
        print_table(path, time_pages(path, args.app_browser), args.app_browser)
    return pages
