"""Reads about the database, datasets, runs, predictions, maps and run comparisons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from genre_core.metrics import evaluation
from genre_core.app.queries._db import _REVIEWS, _df, _path
from genre_core.faults.kinds import SEVERITY
from genre_core.store import BACKBONE_REPRESENTATION, SCHEMA_VERSION

# -- the database itself --------------------------------------------------------------------

FILL_COMMAND = "make demo"  # or: python -m training demo


def _schema_version(frame: pd.DataFrame) -> int | None:
    """The stored schema version; None when absent or not an integer (a damaged or foreign
    meta table must read as "not a GenreLens database", not crash the app)."""
    try:
        return None if frame.empty else int(frame.value.iloc[0])
    except (TypeError, ValueError):
        return None


def database_state(db) -> tuple[str, str]:
    """("ok" | "missing" | "invalid" | "empty" | "no_runs", a sentence saying what to do).
    The sentences of "missing" and "invalid" name the file: they are for the operator (the
    app shows visitors `access.REFUSED` instead)."""
    path = _path(db)
    fill = f"Fill it with one command: `{FILL_COMMAND}` (or `python -m training demo --db PATH`)."
    if not path.is_file():
        return "missing", f"There is no database at `{path}` yet. {fill}"
    # The app asks on every rerun of every page, and opening a 1 GB database twice cost ~0.3 s of
    # each page switch: ask the file again only when it changed since the last answer.
    files = _file_state(path)
    seen = _STATES.get(str(path))
    if seen is None or seen[0] != files:
        seen = (files, _database_state(path, fill))
        if seen[1][0] != "invalid":  # maybe a passing lock or a half-written file: look again next time
            _STATES[str(path)] = seen
    return seen[1]


_STATES: dict[str, tuple[tuple, tuple[str, str]]] = {}  # path -> (file state, answer) of the last look


def _database_state(path, fill: str) -> tuple[str, str]:
    try:
        version = _df(path, "SELECT value FROM meta WHERE key = 'schema_version'")
        counts = _df(path, "SELECT (SELECT count(*) FROM datasets) AS d, "
                           "(SELECT count(*) FROM runs WHERE status = 'complete' "
                           "AND coalesce(representation, '') != ?) AS r", [BACKBONE_REPRESENTATION])
    except Exception as exc:  # not DuckDB, or not ours: say so rather than crash
        return "invalid", f"`{path}` is not a GenreLens database ({str(exc).splitlines()[0]})."
    found_version = _schema_version(version)
    if found_version is not None and 1 <= found_version < SCHEMA_VERSION:
        return "invalid", (f"`{path}` was made by an older GenreLens (schema version {found_version}). "
                           f"Any command upgrades it in place, e.g. `genrelens runs --db {path}`.")
    if found_version != SCHEMA_VERSION:
        found = None if version.empty else version.value.iloc[0]
        return "invalid", f"`{path}` has schema version {found!r}, this GenreLens expects {SCHEMA_VERSION}."
    if int(counts.d[0]) == 0:
        return "empty", f"This database holds no dataset yet. {fill}"
    if int(counts.r[0]) == 0:
        return "no_runs", ("No training run has finished yet. Train one with "
                           "`python -m training train --dataset NAME --model cnn`, or run "
                           f"`{FILL_COMMAND}`.")
    return "ok", ""


def _file_state(path) -> tuple:
    """Size and modification time of the database and of its write-ahead log: every commit
    changes one of them, and reading them costs microseconds."""
    files = [path, path.with_name(path.name + ".wal")]
    return tuple((f.stat().st_size, f.stat().st_mtime_ns) if f.is_file() else None for f in files)


_VERSIONS: dict[str, tuple[tuple, tuple]] = {}  # path -> (file state, stamp) of the last look


def db_version(db) -> tuple:
    """A cheap stamp that changes whenever a run finishes, analysis or faults are written or a
    review is saved: the cache key of every other query. The app asks on every rerun, so the
    query (~0.2 s on a 1 GB database) runs only when the files changed since the last look."""
    path = _path(db)
    if not path.is_file():
        return ("missing",)
    state = _file_state(path)
    seen = _VERSIONS.get(str(path))
    if seen is None or seen[0] != state:
        _VERSIONS[str(path)] = seen = (state, _version_row(path))
    return seen[1]


def _version_row(path) -> tuple:
    row = _df(path, """
        SELECT (SELECT max(finished_at) FROM runs)::VARCHAR, (SELECT count(*) FROM runs),
               (SELECT max(updated_at) FROM datasets)::VARCHAR, (SELECT count(*) FROM tracks),
               (SELECT count(*) FROM projections), (SELECT count(*) FROM attributions),
               (SELECT count(*) FROM faults), (SELECT max(decided_at) FROM reviews)::VARCHAR,
               (SELECT count(*) FROM reviews)""")
    return tuple(None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in row.iloc[0])




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
    """Complete runs, newest first, with their test-set track-level headline metrics (genre
    classifiers: not pretraining runs, whose result is an encoder)."""
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
        -- test_set: an order-free signature of the run's test tracks (equal sets, equal values)
        n AS (SELECT run_id, count(*) AS n_test, bit_xor(hash(track_id)) AS test_set
              FROM predictions WHERE split = 'test' GROUP BY run_id)
        SELECT r.run_id, r.dataset_id, d.name AS dataset, r.model,
               coalesce(r.representation, '') AS representation, r.split, r.sweep, r.seed,
               r.device, r.finished_at, r.classes, len(r.classes) AS n_classes,
               CAST(r.config->>'window_s' AS DOUBLE) AS window_s, r.config,
               m.accuracy, m.ci_low, m.ci_high, m.macro_f1, m.f1_low, m.f1_high, m.top2,
               coalesce(n.n_test, 0) AS n_test, n.test_set
        FROM runs r JOIN datasets d USING (dataset_id)
        LEFT JOIN m USING (run_id) LEFT JOIN n USING (run_id)
        WHERE r.status = 'complete' AND coalesce(r.representation, '') != ?
        ORDER BY r.finished_at DESC, r.run_id""", [BACKBONE_REPRESENTATION])


def leaderboard(db, dataset_id: int | None = None) -> pd.DataFrame:
    """One entry per experiment, ranked by test accuracy per dataset; `best` marks each
    dataset's top. A k-fold experiment is its pooled run (every track predicted once, CI over
    all tracks, `fold_spread` beside it), never one of its folds, so no lucky fold is starred.
    `comparable`: the entry was tested on exactly the best entry's test tracks; other entries'
    accuracies are not directly comparable with it."""
    frame = runs(db)
    frame = frame[~frame.split.str.startswith("kfold-")]  # folds: represented by their pooled run
    if dataset_id is not None:
        frame = frame[frame.dataset_id == dataset_id]
    frame = frame.sort_values(["dataset", "accuracy", "macro_f1"], ascending=[True, False, False],
                              na_position="last", kind="stable")
    frame["rank"] = frame.groupby("dataset").cumcount() + 1
    frame["best"] = (frame["rank"] == 1) & frame["accuracy"].notna()
    best_set = frame[frame.best].set_index("dataset_id")["test_set"]
    frame["comparable"] = frame["test_set"].eq(frame["dataset_id"].map(best_set)).to_numpy()
    frame["fold_spread"] = [_fold_spread(c) for c in frame["config"]]
    frame["trained_with"] = [trained_with(c) for c in frame["config"]]
    return frame.reset_index(drop=True)


def trained_with(config) -> str:
    """What sets a run apart beyond its model's name: the sample of the dataset it was fitted
    and tested on (train --sample), the share of training labels it saw (train --label-share)
    and, for the ssl_* models, whose encoder ('pretraining 20261208-...' or a random one, the
    benchmark's control); '' for a plain run."""
    config = json.loads(config) if isinstance(config, str) else (config or {})
    parts = [f"sample of {int(config['sample']):,} tracks"] if config.get("sample") else []
    share = config.get("label_share")
    if share is not None and float(share) < 1:
        parts.append(f"{float(share):.0%} of the labels")
    backbone = config.get("backbone")
    if isinstance(backbone, dict):
        if backbone.get("file"):
            source = backbone.get("run_id") or Path(str(backbone["file"])).name
            parts.append(f"encoder of pretraining {source}")
        else:
            parts.append("random encoder (no pretraining)")
    return "; ".join(parts)


def _fold_spread(config) -> str:
    """'0.899 ± 0.031 over 5 folds' for a pooled k-fold run, '' otherwise."""
    config = json.loads(config) if isinstance(config, str) else (config or {})
    if "fold_accuracies" not in config:
        return ""
    return f"{config['fold_mean']:.3f} ± {config['fold_sd']:.3f} over {config['k']} folds"


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


def segment_methods(db, run_id: str) -> list[str]:
    """The maps holding the run's windows (segment_projections; none before analyze stored them)."""
    frame = _df(db, "SELECT DISTINCT method FROM segment_projections WHERE run_id = ? ORDER BY method", [run_id])
    return list(frame.method)


def segment_points(db, run_id: str, method: str) -> pd.DataFrame:
    """Every stored window of the run on map `method`, by track and start: track_id, start_s,
    x, y, label (the track's true genre), predicted (the window's predicted genre from
    segment_predictions; '–' where the run stored none: training tracks), split ('train'
    for those), outcome ('correct' / 'wrong' for the window, 'training track')."""
    # start_s rounded to the millisecond on both sides: both are sample / sr, but written by
    # two processes (train, analyze).
    return _df(db, """
        WITH run AS (SELECT dataset_id, classes FROM runs WHERE run_id = ?),
        sp AS (SELECT track_id, round(start_s, 3) AS at, probs FROM segment_predictions WHERE run_id = ?),
        p AS (SELECT track_id, any_value(split) AS split FROM predictions WHERE run_id = ? GROUP BY track_id)
        SELECT s.track_id, s.start_s, s.x, s.y, t.label,
               coalesce(run.classes[list_position(sp.probs, list_max(sp.probs))], '–') AS predicted,
               coalesce(p.split, 'train') AS split,
               CASE WHEN sp.probs IS NULL THEN 'training track'
                    WHEN run.classes[list_position(sp.probs, list_max(sp.probs))] = t.label THEN 'correct'
                    ELSE 'wrong' END AS outcome
        FROM segment_projections s CROSS JOIN run
        LEFT JOIN tracks t ON t.dataset_id = run.dataset_id AND t.track_id = s.track_id
        LEFT JOIN sp ON sp.track_id = s.track_id AND sp.at = round(s.start_s, 3)
        LEFT JOIN p ON p.track_id = s.track_id
        WHERE s.run_id = ? AND s.method = ?
        ORDER BY s.track_id, s.start_s""", [run_id, run_id, run_id, run_id, method])


def taggrams(db, run_id: str) -> pd.DataFrame:
    """Every stored musicnn taggram of the run (analyze keeps them for its explained tracks):
    track_id, tag_names, n_frames, values (n_frames x tags, row-major), by track."""
    return _df(db, """SELECT track_id, tag_names, n_frames, "values" FROM taggrams WHERE run_id = ?
                      ORDER BY track_id""", [run_id]).drop_duplicates("track_id")


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
                      WHERE status = 'complete' AND sweep IS NOT NULL AND split NOT LIKE 'pooled-%'
                      GROUP BY sweep ORDER BY finished_at DESC""")


def ablation(db, sweep: str) -> pd.DataFrame:
    """One row per run of a sweep: the config settings that differ between its runs, then
    test accuracy (CI) and macro-F1, best first."""
    frame = _df(db, "SELECT run_id, config FROM runs WHERE sweep = ? AND status = 'complete' "
                    "AND split NOT LIKE 'pooled-%'", [sweep])  # a k-fold sweep's pooled run is no setting
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
    frame = frame[(frame.sweep == sweep) & frame.accuracy.notna() & ~frame.split.str.startswith("pooled-")]
    if frame.empty:
        return pd.DataFrame(columns=["n_runs", "mean", "sd", "kfold"])
    mean, sd, n = evaluation.kfold_summary(frame.accuracy.to_numpy())
    return pd.DataFrame([dict(n_runs=n, mean=mean, sd=sd, kfold=bool(frame.split.str.startswith("kfold").all()))])
