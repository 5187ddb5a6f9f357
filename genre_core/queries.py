"""Every read the app makes, as pandas DataFrames (a few audio views return numpy arrays).

Each function takes `db` first: a `DbRef` (path + a cheap version stamp, so caches keyed on
the arguments refresh when a run finishes) or a plain path. Each opens the file read-only
for one query through `Store.read()`, which retries while a training process holds the
write lock, so the app keeps working while `python -m training train` writes. The app
shows complete runs only. SQL is parameterized; nothing here takes a file path from a user:
audio is found by (dataset_id, track_id) in the tracks table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import pandas as pd

from genre_core import evaluation
from genre_core.store import SCHEMA_VERSION, Store

BROWSER_AUDIO = (".wav", ".mp3", ".ogg", ".flac")  # played as-is; others (.au, .aiff) decoded
DUPLICATE_KINDS = ("exact_duplicate", "recording_duplicate")
# Which fault a map point is coloured by when a track has several: the most damaging first.
SEVERITY = ("unreadable", "exact_duplicate", "recording_duplicate", "label_issue", "distortion", "silence",
            "artist_repeat")
FILL_COMMAND = "make demo"  # or: python -m training demo


class DbRef(NamedTuple):
    """A database path plus a version stamp; hashable, so it keys st.cache_data."""

    path: str
    version: tuple = ()


def _path(db: DbRef | str | Path) -> Path:
    return Path(db.path if isinstance(db, DbRef) else db)


def _df(db, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
    with Store(_path(db)).read() as con:
        return con.execute(sql, list(params)).df()


# -- the database itself --------------------------------------------------------------------


def database_state(db) -> tuple[str, str]:
    """("ok" | "missing" | "invalid" | "empty" | "no_runs", a sentence saying what to do)."""
    path = _path(db)
    fill = f"Fill it with one command: `{FILL_COMMAND}` (or `python -m training demo --db {path}`)."
    if not path.is_file():
        return "missing", f"There is no database at `{path}` yet. {fill}"
    try:
        version = _df(path, "SELECT value FROM meta WHERE key = 'schema_version'")
        counts = _df(path, "SELECT (SELECT count(*) FROM datasets) AS d, "
                           "(SELECT count(*) FROM runs WHERE status = 'complete') AS r")
    except Exception as exc:  # not DuckDB, or not ours: say so rather than crash
        return "invalid", f"`{path}` is not a GenreLens database ({str(exc).splitlines()[0]})."
    if version.empty or int(version.value[0]) != SCHEMA_VERSION:
        found = None if version.empty else version.value[0]
        return "invalid", f"`{path}` has schema version {found}, this GenreLens expects {SCHEMA_VERSION}."
    if int(counts.d[0]) == 0:
        return "empty", f"The database `{path}` holds no dataset yet. {fill}"
    if int(counts.r[0]) == 0:
        return "no_runs", ("No training run has finished yet. Train one with "
                           "`python -m training train --dataset NAME --model cnn`, or run "
                           f"`{FILL_COMMAND}`.")
    return "ok", ""


def db_version(db) -> tuple:
    """A cheap stamp that changes whenever a run finishes, analysis or faults are written or a
    review is saved: the cache key of every other query."""
    path = _path(db)
    if not path.is_file():
        return ("missing",)
    row = _df(path, """
        SELECT (SELECT max(finished_at) FROM runs)::VARCHAR, (SELECT count(*) FROM runs),
               (SELECT max(updated_at) FROM datasets)::VARCHAR, (SELECT count(*) FROM tracks),
               (SELECT count(*) FROM projections), (SELECT count(*) FROM attributions),
               (SELECT count(*) FROM faults), (SELECT max(decided_at) FROM reviews)::VARCHAR,
               (SELECT count(*) FROM reviews)""")
    return tuple(None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in row.iloc[0])


# -- datasets and runs ---------------------------------------------------------------------

_REVIEWS = """reviewed AS (
    SELECT dataset_id, track_id, kind, arg_max(decision, decided_at) AS decision,
           arg_max(note, decided_at) AS note
    FROM reviews GROUP BY ALL)"""


def datasets(db) -> pd.DataFrame:
    """One row per dataset: tracks, genres, unreadable/missing files, faults found."""
    return _df(db, f"""
        WITH {_REVIEWS},
        t AS (SELECT dataset_id, count(*) AS n_tracks,
                     count(*) FILTER (WHERE status = 'unreadable') AS n_unreadable,
                     count(*) FILTER (WHERE status = 'missing') AS n_missing
              FROM tracks GROUP BY dataset_id),
        k AS (SELECT f.dataset_id, f.kind, count(DISTINCT f.track_id) AS n
              FROM faults f LEFT JOIN reviewed r USING (dataset_id, track_id, kind)
              WHERE f.source = 'detected' AND coalesce(r.decision, '') != 'dismissed'
              GROUP BY ALL),
        f AS (SELECT dataset_id, sum(n)::BIGINT AS n_faults,
                     string_agg(n || ' ' || replace(kind, '_', ' '), ', ' ORDER BY n DESC) AS faults
              FROM k GROUP BY dataset_id)
        SELECT d.dataset_id, d.name, d.kind, len(d.genres) AS n_genres,
               array_to_string(d.genres, ', ') AS genres, coalesce(t.n_tracks, 0) AS n_tracks,
               coalesce(t.n_unreadable, 0) AS n_unreadable, coalesce(t.n_missing, 0) AS n_missing,
               coalesce(f.n_faults, 0) AS n_faults, coalesce(f.faults, '') AS faults
        FROM datasets d LEFT JOIN t USING (dataset_id) LEFT JOIN f USING (dataset_id)
        ORDER BY d.name""")


def runs(db) -> pd.DataFrame:
    """Complete runs, newest first, with their test-set track-level headline metrics."""
    return _df(db, """
        WITH m AS (
            SELECT run_id,
                   max(value) FILTER (WHERE name = 'track/accuracy') AS accuracy,
                   max(ci_low) FILTER (WHERE name = 'track/accuracy') AS ci_low,
                   max(ci_high) FILTER (WHERE name = 'track/accuracy') AS ci_high,
                   max(value) FILTER (WHERE name = 'track/macro_f1') AS macro_f1,
                   max(ci_low) FILTER (WHERE name = 'track/macro_f1') AS f1_low,
                   max(ci_high) FILTER (WHERE name = 'track/macro_f1') AS f1_high,
                   max(value) FILTER (WHERE name = 'track/top2') AS top2
            FROM metrics WHERE split = 'test' GROUP BY run_id),
        n AS (SELECT run_id, count(*) AS n_test FROM predictions WHERE split = 'test' GROUP BY run_id)
        SELECT r.run_id, r.dataset_id, d.name AS dataset, r.model,
               coalesce(r.representation, '') AS representation, r.split, r.sweep, r.seed,
               r.device, r.finished_at, r.classes, len(r.classes) AS n_classes,
               CAST(r.config->>'window_s' AS DOUBLE) AS window_s, r.config,
               m.accuracy, m.ci_low, m.ci_high, m.macro_f1, m.f1_low, m.f1_high, m.top2,
               coalesce(n.n_test, 0) AS n_test
        FROM runs r JOIN datasets d USING (dataset_id)
        LEFT JOIN m USING (run_id) LEFT JOIN n USING (run_id)
        WHERE r.status = 'complete'
        ORDER BY r.finished_at DESC, r.run_id""")


def leaderboard(db, dataset_id: int | None = None) -> pd.DataFrame:
    """Complete runs ranked by test accuracy (per dataset), `best` marking each dataset's top."""
    frame = runs(db)
    if dataset_id is not None:
        frame = frame[frame.dataset_id == dataset_id]
    frame = frame.sort_values(["dataset", "accuracy", "macro_f1"], ascending=[True, False, False],
                              na_position="last", kind="stable")
    frame["rank"] = frame.groupby("dataset").cumcount() + 1
    frame["best"] = (frame["rank"] == 1) & frame["accuracy"].notna()
    return frame.reset_index(drop=True)


def run_row(db, run_id: str) -> pd.Series | None:
    """The complete run's row from `runs()` (classes, window_s, metrics), or None."""
    frame = runs(db)
    frame = frame[frame.run_id == run_id]
    return None if frame.empty else frame.iloc[0]


# -- predictions and the confusion matrix --------------------------------------------------


def predictions(db, run_id: str, split: str | None = "test") -> pd.DataFrame:
    """Track-level predictions of a run (split None: every split) with confidence (max prob),
    p_true (prob of the true label), artist, and the track's open fault kinds."""
    return _df(db, f"""
        WITH {_REVIEWS},
        run AS (SELECT dataset_id, classes FROM runs WHERE run_id = ?),
        f AS (SELECT f.track_id, string_agg(DISTINCT f.kind, ', ' ORDER BY f.kind) AS faults
              FROM faults f JOIN run USING (dataset_id)
              LEFT JOIN reviewed r USING (dataset_id, track_id, kind)
              WHERE coalesce(r.decision, '') != 'dismissed' GROUP BY f.track_id)
        SELECT p.track_id, p.split, p.label, p.predicted, p.label = p.predicted AS correct,
               list_max(p.probs) AS confidence,
               p.probs[list_position(run.classes, p.label)] AS p_true,
               t.artist, t.duration_s, coalesce(f.faults, '') AS faults
        FROM predictions p CROSS JOIN run
        LEFT JOIN tracks t ON t.dataset_id = run.dataset_id AND t.track_id = p.track_id
        LEFT JOIN f ON f.track_id = p.track_id
        WHERE p.run_id = ? AND (? IS NULL OR p.split = ?)
        ORDER BY p.split DESC, p.track_id""", [run_id, run_id, split, split])


def confusion(db, run_id: str, split: str = "test") -> pd.DataFrame:
    """Every (true, predicted) cell of the run's confusion matrix in class order, with the
    count `n`, the true genre's total `row_total` and the row-normalised `rate`."""
    frame = _df(db, """
        WITH c AS (SELECT unnest(classes) AS genre, generate_subscripts(classes, 1) AS i
                   FROM runs WHERE run_id = ?),
        x AS (SELECT label, predicted, count(*) AS n FROM predictions
              WHERE run_id = ? AND split = ? GROUP BY ALL)
        SELECT t.genre AS label, p.genre AS predicted, t.i AS true_index, p.i AS pred_index,
               coalesce(x.n, 0) AS n
        FROM c t CROSS JOIN c p
        LEFT JOIN x ON x.label = t.genre AND x.predicted = p.genre
        ORDER BY t.i, p.i""", [run_id, run_id, split])
    frame["row_total"] = frame.groupby("label")["n"].transform("sum")
    frame["rate"] = np.where(frame.row_total > 0, frame.n / frame.row_total.clip(lower=1), 0.0)
    return frame


def per_genre(db, run_ids: str | Sequence[str], split: str = "test") -> pd.DataFrame:
    """Track-level precision / recall / F1 per genre (run_id, genre, precision, recall, f1,
    support), genres in each run's class order."""
    ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
    frame = _df(db, """
        WITH c AS (SELECT run_id, unnest(classes) AS genre, generate_subscripts(classes, 1) AS i
                   FROM runs WHERE list_contains(?, run_id)),
        m AS (SELECT run_id, regexp_extract(name, '^track/(precision|recall|f1)/', 1) AS metric,
                     regexp_extract(name, '^track/(precision|recall|f1)/(.*)$', 2) AS genre, value
              FROM metrics WHERE split = ? AND list_contains(?, run_id)
                AND regexp_matches(name, '^track/(precision|recall|f1)/')),
        s AS (SELECT run_id, label AS genre, count(*) AS support FROM predictions
              WHERE split = ? AND list_contains(?, run_id) GROUP BY ALL)
        SELECT c.run_id, c.genre, c.i,
               max(m.value) FILTER (WHERE m.metric = 'precision') AS precision,
               max(m.value) FILTER (WHERE m.metric = 'recall') AS recall,
               max(m.value) FILTER (WHERE m.metric = 'f1') AS f1,
               coalesce(max(s.support), 0) AS support
        FROM c LEFT JOIN m USING (run_id, genre) LEFT JOIN s USING (run_id, genre)
        GROUP BY c.run_id, c.genre, c.i ORDER BY c.run_id, c.i""", [ids, split, ids, split, ids])
    return frame.drop(columns="i")


# -- the map ------------------------------------------------------------------------------


def projection_methods(db, run_id: str) -> list[str]:
    frame = _df(db, "SELECT DISTINCT method FROM projections WHERE run_id = ? ORDER BY method", [run_id])
    return list(frame.method)


def projection(db, run_id: str, method: str) -> pd.DataFrame:
    """2-D points of the run's track embeddings with true/predicted genre, correctness and
    the first open fault kind; tracks the run never predicted (training side) say so."""
    frame = _df(db, f"""
        WITH {_REVIEWS},
        run AS (SELECT dataset_id FROM runs WHERE run_id = ?),
        f AS (SELECT f.track_id, arg_min(f.kind, list_position(?, f.kind)) AS fault
              FROM faults f JOIN run USING (dataset_id)
              LEFT JOIN reviewed r USING (dataset_id, track_id, kind)
              WHERE coalesce(r.decision, '') != 'dismissed' GROUP BY f.track_id)
        SELECT pr.track_id, pr.x, pr.y, t.label, coalesce(p.predicted, '–') AS predicted,
               coalesce(p.split, 'train') AS split, list_max(p.probs) AS confidence,
               CASE WHEN p.track_id IS NULL THEN 'training track'
                    WHEN p.label = p.predicted THEN 'correct' ELSE 'wrong' END AS outcome,
               coalesce(f.fault, 'none') AS fault
        FROM projections pr CROSS JOIN run
        LEFT JOIN tracks t ON t.dataset_id = run.dataset_id AND t.track_id = pr.track_id
        LEFT JOIN predictions p ON p.run_id = pr.run_id AND p.track_id = pr.track_id
        LEFT JOIN f ON f.track_id = pr.track_id
        WHERE pr.run_id = ? AND pr.method = ?
        ORDER BY pr.track_id""", [run_id, list(SEVERITY), run_id, method])
    return frame.drop_duplicates("track_id")


# -- one track ------------------------------------------------------------------------------


def track_list(db, run_id: str) -> pd.DataFrame:
    """Tracks of the run's dataset with the run's prediction where it made one; test first."""
    return _df(db, """
        WITH run AS (SELECT dataset_id FROM runs WHERE run_id = ?)
        SELECT t.dataset_id, t.track_id, t.label, t.status, p.predicted, coalesce(p.split, 'train') AS split
        FROM tracks t JOIN run USING (dataset_id)
        LEFT JOIN predictions p ON p.run_id = ? AND p.track_id = t.track_id
        ORDER BY CASE coalesce(p.split, 'train') WHEN 'test' THEN 0 WHEN 'val' THEN 1 ELSE 2 END,
                 t.track_id""", [run_id, run_id])


def track(db, dataset_id: int, track_id: str) -> pd.Series | None:
    frame = _df(db, "SELECT * FROM tracks WHERE dataset_id = ? AND track_id = ?", [dataset_id, track_id])
    return None if frame.empty else frame.iloc[0]


def track_file(db, dataset_id: int, track_id: str) -> Path | None:
    """The audio file of a usable track in the database, or None: the only way the app finds
    a file to read, so nothing outside the corpus can be served."""
    row = track(db, dataset_id, track_id)
    if row is None or row["status"] != "ok":
        return None
    path = Path(row["path"])
    return path if path.is_file() else None


def track_audio(db, dataset_id: int, track_id: str) -> tuple[Any, int | None] | None:
    """What st.audio needs: (path, None) for formats browsers play, else ((N,) float32, sr)."""
    path = track_file(db, dataset_id, track_id)
    if path is None:
        return None
    if path.suffix.lower() in BROWSER_AUDIO:
        return path, None
    from genre_core import audio

    return audio.load(path, sr=None, reject_silent=False), audio.probe(path).sample_rate


def _signal(db, dataset_id: int, track_id: str, sr: int) -> np.ndarray | None:
    from genre_core import audio

    path = track_file(db, dataset_id, track_id)
    if path is None:
        return None
    try:
        return audio.load(path, sr=sr, reject_silent=False, min_seconds=0.0)
    except audio.AudioError:
        return None


def track_waveform(db, dataset_id: int, track_id: str, n_points: int = 1200) -> pd.DataFrame:
    """Min/max envelope of the track in `n_points` buckets: time_s, low, high."""
    y = _signal(db, dataset_id, track_id, 22050)
    if y is None or y.size == 0:
        return pd.DataFrame(columns=["time_s", "low", "high"])
    buckets = np.array_split(y, min(n_points, y.size))
    sizes = np.cumsum([0] + [b.size for b in buckets[:-1]])
    return pd.DataFrame({"time_s": sizes / 22050, "low": [b.min() for b in buckets],
                         "high": [b.max() for b in buckets]})


def track_mel(db, dataset_id: int, track_id: str, sr: int = 22050, n_mels: int = 128,
              fmin: float = 0.0, fmax: float | None = None, max_frames: int = 900) -> dict | None:
    """Log-mel spectrogram of a track for display (see `mel_image`), None when unplayable.
    Pass the run's feature settings so a Grad-CAM map lines up with its bands."""
    y = _signal(db, dataset_id, track_id, sr)
    if y is None or y.size == 0:
        return None
    return mel_image(y, sr, n_mels, fmin, fmax, max_frames)


def mel_image(y: np.ndarray, sr: int, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None,
              max_frames: int = 900, hop_length: int = 512) -> dict:
    """{"mel": (n_mels, T) dB below the peak, "duration_s", "freqs": (n_mels,) band centres
    in Hz} of (N,) audio at `sr`; frames are max-pooled to at most `max_frames` columns so the
    figure stays light."""
    import librosa

    fmax = fmax or sr / 2
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=hop_length,
                                         n_mels=n_mels, fmin=fmin, fmax=fmax)
    mel_db = librosa.power_to_db(mel, ref=np.max, top_db=80.0).astype(np.float32)  # (M, T)
    factor = int(np.ceil(mel_db.shape[1] / max_frames))
    if factor > 1:
        cut = mel_db.shape[1] // factor * factor
        mel_db = mel_db[:, :cut].reshape(n_mels, -1, factor).max(axis=2)
    freqs = librosa.mel_frequencies(n_mels + 2, fmin=fmin, fmax=fmax)[1:-1]
    return {"mel": mel_db, "duration_s": y.size / sr, "freqs": freqs}


def mel_settings(config_json: str | None, representation: str | None) -> dict:
    """track_mel keyword arguments matching a run's input image (sr, n_mels, fmin, fmax)."""
    if representation == "musicnn":
        return dict(sr=16000, n_mels=96, fmin=0.0, fmax=8000.0)
    features = (json.loads(config_json) if config_json else {}).get("features", {})
    return dict(sr=int(features.get("sr", 22050)), n_mels=int(features.get("n_mels", 128)),
                fmin=float(features.get("f_min", 0.0)), fmax=features.get("f_max"))


def track_probs(db, run_id: str, track_id: str) -> pd.DataFrame:
    """The run's track-level probabilities for one track: genre, prob, is_true, is_predicted,
    split (empty when the run made no prediction for it)."""
    # Filter first, then unnest: a lateral range() join over the whole table is 100x slower.
    return _df(db, """
        WITH p AS (SELECT label, predicted, split, probs FROM predictions WHERE run_id = ? AND track_id = ?),
        c AS (SELECT classes FROM runs WHERE run_id = ?)
        SELECT genre, prob, genre = label AS is_true, genre = predicted AS is_predicted, split
        FROM (SELECT unnest(c.classes) AS genre, unnest(p.probs) AS prob, p.label, p.predicted, p.split
              FROM p, c)
        ORDER BY prob DESC""", [run_id, track_id, run_id])


def segments(db, run_id: str, track_id: str) -> pd.DataFrame:
    """Per-window probabilities, long: start_s, genre, prob (window length: runs.window_s)."""
    return _df(db, """
        WITH s AS (SELECT start_s, probs FROM segment_predictions WHERE run_id = ? AND track_id = ?),
        c AS (SELECT classes FROM runs WHERE run_id = ?)
        SELECT start_s, genre, prob
        FROM (SELECT s.start_s, unnest(c.classes) AS genre, unnest(s.probs) AS prob,
                     generate_subscripts(s.probs, 1) AS i FROM s, c)
        ORDER BY start_s, i""", [run_id, track_id, run_id])


def attributions(db, run_id: str, track_id: str) -> pd.DataFrame:
    """Grad-CAM maps of the track: target, n_bands, n_frames, values ((n_bands, n_frames)
    array, band 0 lowest, normalised to [0, 1], spanning the whole track)."""
    frame = _df(db, """SELECT target, method, n_bands, n_frames, "values" FROM attributions
                       WHERE run_id = ? AND track_id = ? ORDER BY target""", [run_id, track_id])
    frame["values"] = [np.asarray(v, dtype=np.float32).reshape(b, f)
                       for v, b, f in zip(frame["values"], frame.n_bands, frame.n_frames)]
    return frame


def taggram(db, run_id: str, track_id: str) -> dict | None:
    """{"tags": [...], "values": (n_frames, n_tags)} of the pretrained tagger, or None."""
    frame = _df(db, """SELECT tag_names, n_frames, "values" FROM taggrams
                       WHERE run_id = ? AND track_id = ? LIMIT 1""", [run_id, track_id])
    if frame.empty:
        return None
    row = frame.iloc[0]
    tags = list(row.tag_names)
    return {"tags": tags, "values": np.asarray(row["values"], dtype=np.float32).reshape(int(row.n_frames), len(tags))}


def neighbours(db, run_id: str, track_id: str) -> pd.DataFrame:
    """Nearest tracks in the run's embedding space: rank, neighbour_id, distance, label,
    predicted (by this run, if it predicted it), playable."""
    return _df(db, """
        WITH run AS (SELECT dataset_id FROM runs WHERE run_id = ?)
        SELECT n.rank, n.neighbour_id, n.distance, t.label, p.predicted,
               coalesce(t.status = 'ok', false) AS playable
        FROM neighbours n CROSS JOIN run
        LEFT JOIN tracks t ON t.dataset_id = run.dataset_id AND t.track_id = n.neighbour_id
        LEFT JOIN predictions p ON p.run_id = n.run_id AND p.track_id = n.neighbour_id
        WHERE n.run_id = ? AND n.track_id = ? ORDER BY n.rank""", [run_id, run_id, track_id])


def band_importance(db, run_id: str) -> pd.DataFrame:
    return _df(db, """SELECT genre, method, "values" FROM band_importance WHERE run_id = ?
                      ORDER BY genre, method""", [run_id])


# -- faults and reviews ---------------------------------------------------------------------


def faults(db, dataset_id: int, kinds: Sequence[str] | None = None, source: str | None = None) -> pd.DataFrame:
    """Findings with the track's label, artist, status and the latest review (decision, note)."""
    frame = _df(db, f"""
        WITH {_REVIEWS}
        SELECT f.dataset_id, f.track_id, f.kind, f.group_id, f.score, f.evidence, f.source,
               t.label, t.artist, t.status, r.decision, r.note
        FROM faults f LEFT JOIN tracks t USING (dataset_id, track_id)
        LEFT JOIN reviewed r USING (dataset_id, track_id, kind)
        WHERE f.dataset_id = ? AND (? IS NULL OR list_contains(?, f.kind))
          AND (? IS NULL OR f.source = ?)
        ORDER BY f.kind, f.score DESC NULLS LAST, f.group_id, f.track_id""",
        [dataset_id, None if kinds is None else list(kinds), None if kinds is None else list(kinds),
         source, source])
    frame["evidence"] = [_evidence(e) for e in frame.evidence]
    return frame


def _evidence(value: Any) -> dict:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return {}
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return {"text": str(value)}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def track_faults(db, dataset_id: int, track_id: str) -> pd.DataFrame:
    frame = faults(db, dataset_id)
    return frame[frame.track_id == track_id].reset_index(drop=True)


def duplicate_groups(db, dataset_id: int) -> pd.DataFrame:
    """Detected duplicate findings, one row per member track, ordered by group."""
    frame = faults(db, dataset_id, DUPLICATE_KINDS, source="detected")
    return frame.sort_values(["group_id", "track_id"], kind="stable").reset_index(drop=True)


def label_issues(db, dataset_id: int, run_id: str | None) -> pd.DataFrame:
    """Detected label issues, most suspicious first, with the chosen run's opinion of each
    track: what it predicts, how sure it is, and how much it believes the given label."""
    frame = faults(db, dataset_id, ["label_issue"], source="detected")
    if run_id is None or frame.empty:
        return frame.assign(predicted=None, confidence=np.nan, p_given=np.nan)
    preds = predictions(db, run_id, split=None).drop_duplicates("track_id")
    opinion = preds[["track_id", "predicted", "confidence", "p_true"]].rename(columns={"p_true": "p_given"})
    return frame.merge(opinion, on="track_id", how="left")


def artist_repeats(db, dataset_id: int, run_id: str | None = None) -> pd.DataFrame:
    """One row per artist with several tracks: n_tracks, genres, and (given a run on this
    dataset) the sides of its split they fell on; `leak` marks artists on both the training
    and the test side, whose songs let a model score by recognising the artist."""
    frame = faults(db, dataset_id, ["artist_repeat"], source="detected")
    columns = ["group_id", "artist", "n_tracks", "genres", "splits", "leak", "track_ids"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    if run_id is not None:
        sides = predictions(db, run_id, split=None).drop_duplicates("track_id").set_index("track_id").split
        frame["split"] = frame.track_id.map(sides).fillna("train")
    else:
        frame["split"] = "?"
    grouped = frame.groupby("group_id", sort=False).agg(
        artist=("artist", "first"), n_tracks=("track_id", "nunique"),
        genres=("label", lambda s: ", ".join(sorted(set(s.dropna())))),
        splits=("split", lambda s: ", ".join(sorted(set(s)))), track_ids=("track_id", list)).reset_index()
    grouped["leak"] = grouped.splits.str.contains("train") & grouped.splits.str.contains("test")
    return grouped[columns].sort_values(["leak", "n_tracks"], ascending=False).reset_index(drop=True)


def fault_family(kind: str) -> str:
    return "duplicate" if kind in DUPLICATE_KINDS else kind


def known_vs_detected(db, dataset_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Known faults (a published list) against detected ones, matched on (track, family) with
    the two duplicate kinds as one family, for the families the known list covers. Returns
    (per-track rows with status found | missed | new, per-family summary with counts,
    precision and recall)."""
    frame = faults(db, dataset_id)
    frame = frame[frame.track_id.notna()].assign(family=lambda f: f.kind.map(fault_family))
    # Only the families a known list covers can be scored against it.
    frame = frame[frame.family.isin(set(frame[frame.source == "known"].family))]
    known = set(zip(*[frame[frame.source == "known"][c] for c in ("track_id", "family")]))
    found = set(zip(*[frame[frame.source == "detected"][c] for c in ("track_id", "family")]))
    rows = [dict(track_id=t, family=k, status="found" if (t, k) in known and (t, k) in found
                 else "missed" if (t, k) in known else "new")
            for t, k in sorted(known | found)]
    detail = pd.DataFrame(rows, columns=["track_id", "family", "status"])
    summary = (detail.pivot_table(index="family", columns="status", values="track_id",
                                  aggfunc="count", fill_value=0)
               .reindex(columns=["found", "missed", "new"], fill_value=0).reset_index())
    summary.columns.name = None
    summary["known"] = summary.found + summary.missed
    summary["recall"] = np.where(summary.known > 0, summary.found / summary.known.clip(lower=1), np.nan)
    detected = summary.found + summary.new
    summary["precision"] = np.where(detected > 0, summary.found / detected.clip(lower=1), np.nan)
    return detail, summary


def confirmed_faulty(db, dataset_id: int) -> set[str]:
    """Tracks a person confirmed as faulty (any kind, latest decision wins)."""
    frame = _df(db, f"""WITH {_REVIEWS} SELECT DISTINCT track_id FROM reviewed
                        WHERE dataset_id = ? AND decision = 'confirmed'""", [dataset_id])
    return set(frame.track_id)


def clean_evaluation(db, run_id: str, n_boot: int = 1000) -> pd.DataFrame:
    """The run's test accuracy and macro-F1 (bootstrap 95% CI) on all test tracks and on the
    test tracks minus those confirmed faulty: subset, n, accuracy, ci_low, ci_high, macro_f1."""
    row = run_row(db, run_id)
    if row is None:
        return pd.DataFrame(columns=["subset", "n", "excluded", "accuracy", "ci_low", "ci_high", "macro_f1"])
    classes = list(row.classes)
    probs = _df(db, "SELECT track_id, label, probs FROM predictions WHERE run_id = ? AND split = 'test'", [run_id])
    bad = confirmed_faulty(db, int(row.dataset_id))
    out = []
    for subset, keep in (("all test tracks", np.ones(len(probs), bool)),
                         ("without confirmed faulty tracks", ~probs.track_id.isin(bad).to_numpy())):
        part = probs[keep]
        stats = dict(subset=subset, n=len(part), excluded=int((~keep).sum()), accuracy=np.nan,
                     ci_low=np.nan, ci_high=np.nan, macro_f1=np.nan)
        if len(part):
            y = np.array([classes.index(label) for label in part.label])
            p = np.stack(part.probs.map(np.asarray))  # (N, C)
            report = evaluation.classification_report(y, p, classes)
            low, high = evaluation.bootstrap_ci(y, p.argmax(1), evaluation.batch_accuracy, n_boot=n_boot)
            stats.update(accuracy=report.accuracy, ci_low=low, ci_high=high, macro_f1=report.macro_f1)
        out.append(stats)
    return pd.DataFrame(out)


# -- comparing runs ------------------------------------------------------------------------


def epochs(db, run_ids: Sequence[str]) -> pd.DataFrame:
    return _df(db, "SELECT * FROM epochs WHERE list_contains(?, run_id) ORDER BY run_id, epoch", [list(run_ids)])


def mcnemar(db, run_a: str, run_b: str, split: str = "test") -> pd.DataFrame:
    """McNemar's test on the test tracks both runs predicted: n_shared, acc_a, acc_b,
    only_a (A right, B wrong), only_b, p_value, test. Empty when they share no track."""
    both = _df(db, """
        SELECT a.label = a.predicted AS ok_a, b.label = b.predicted AS ok_b
        FROM predictions a JOIN predictions b USING (track_id)
        WHERE a.run_id = ? AND b.run_id = ? AND a.split = ? AND b.split = ?""",
               [run_a, run_b, split, split])
    if both.empty:
        return pd.DataFrame(columns=["n_shared", "acc_a", "acc_b", "only_a", "only_b", "p_value", "test"])
    result = evaluation.mcnemar(both.ok_a.to_numpy(bool), both.ok_b.to_numpy(bool))
    return pd.DataFrame([dict(n_shared=len(both), acc_a=both.ok_a.mean(), acc_b=both.ok_b.mean(),
                              only_a=result.b, only_b=result.c, p_value=result.p_value,
                              test="exact binomial" if result.exact else "chi-square (corrected)")])


def sweeps(db) -> pd.DataFrame:
    return _df(db, """SELECT sweep, count(*) AS n_runs, max(finished_at) AS finished_at FROM runs
                      WHERE status = 'complete' AND sweep IS NOT NULL
                      GROUP BY sweep ORDER BY finished_at DESC""")


def ablation(db, sweep: str) -> pd.DataFrame:
    """One row per run of a sweep: the config settings that differ between its runs, then
    test accuracy (CI) and macro-F1, best first."""
    frame = _df(db, "SELECT run_id, config FROM runs WHERE sweep = ? AND status = 'complete'", [sweep])
    if frame.empty:
        return frame
    config = pd.json_normalize([json.loads(c) if c else {} for c in frame.config])
    config.columns = [c.replace("augment.", "aug.").replace("features.", "feat.") for c in config.columns]
    varying = [c for c in config.columns
               if config[c].astype(str).nunique() > 1
               and c not in ("dataset", "device", "model", "representation")]
    table = pd.concat([frame[["run_id"]], config[varying]], axis=1)
    metrics = runs(db)[["run_id", "model", "representation", "accuracy", "ci_low", "ci_high", "macro_f1"]]
    table = table.merge(metrics, on="run_id", how="left")
    return table[["run_id", "model", "representation", *varying, "accuracy", "ci_low", "ci_high",
                  "macro_f1"]].sort_values(
        "accuracy", ascending=False, na_position="last").reset_index(drop=True)


def sweep_summary(db, sweep: str) -> pd.DataFrame:
    """Mean and sample standard deviation of test accuracy over a sweep's runs (the k-fold
    estimate when the sweep is one model's folds): n_runs, mean, sd, kfold (bool)."""
    frame = runs(db)
    frame = frame[(frame.sweep == sweep) & frame.accuracy.notna()]
    if frame.empty:
        return pd.DataFrame(columns=["n_runs", "mean", "sd", "kfold"])
    mean, sd, n = evaluation.kfold_summary(frame.accuracy.to_numpy())
    return pd.DataFrame([dict(n_runs=n, mean=mean, sd=sd, kfold=bool(frame.split.str.startswith("kfold").all()))])
