"""Bring your own predictions: a model trained anywhere becomes a complete GenreLens run.

Input: a CSV or parquet table with one row per track and
    track_id                 a track id of the dataset (`track` is accepted too)
    prob_<genre> | <genre>   one probability column per genre of the dataset (rows sum to 1), or
    predicted                the predicted genre only (stored as a one-hot probability)
    split                    optional: test | val (default test)
and optionally an embeddings table: track_id plus either an `embedding` list column or numeric
columns (one per dimension). Everything is validated before anything is written; the run is
then stored in one transaction with track-level metrics and bootstrap CIs computed exactly as
for native runs, and, with embeddings, t-SNE/UMAP maps and neighbours. Such a run has no model
file: Grad-CAM, taggrams and live classification are not available for it (the run's config
says why).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from genre_core.runs.record import SEED, SPLITS, check_label, store_prediction_run
from genre_core.store import Store
from genre_core.untrusted import shortened

PROB_TOLERANCE = 1e-3  # float32 probabilities written as text round to ~1e-7 per value

class BadImport(ValueError):
    """Bad input file: the message names the file and the reason (CLI exit 2)."""


@dataclass
class ImportSummary:
    run_id: str
    n_tracks: int
    accuracy: float
    ci: tuple[float, float]
    n_embeddings: int
    notes: list[str]

    def line(self) -> str:
        low, high = self.ci
        text = (f"imported run {self.run_id}: {self.n_tracks} test tracks, track accuracy "
                f"{self.accuracy:.3f} [95% CI {low:.3f}-{high:.3f}], {self.n_embeddings} embeddings")
        return text + "".join(f"; {note}" for note in self.notes)


def read_table(path: Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise BadImport(f"{path}: no such file")
    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        if path.suffix.lower() in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
    except Exception as exc:  # pandas/pyarrow raise many types for a malformed file
        raise BadImport(f"{path}: not a readable table ({type(exc).__name__}: {shortened(exc)})") from exc
    raise BadImport(f"{path}: unsupported format (use .csv, .tsv or .parquet)")


def import_predictions(store: Store, dataset: str, file: Path, *, model: str,
                       embeddings: Path | None = None, progress: bool = True) -> ImportSummary:
    """Validate `file` (and `embeddings`) against `dataset` and store them as a complete run."""
    try:
        check_label(model, "--model")  # before any file is read
    except ValueError as exc:
        raise BadImport(str(exc)) from None
    info = store.dataset(dataset)  # StoreError names an unknown dataset
    labels = store.tracks(dataset).set_index("track_id")["label"]
    classes = sorted(labels.unique())  # as native runs: the genres of the usable tracks
    predictions = _predictions(read_table(file), Path(file), classes, labels)
    vectors = _embeddings(read_table(embeddings), Path(embeddings), labels) if embeddings else None
    return _store_run(store, int(info["dataset_id"]), dataset, model, classes, predictions, vectors,
                      Path(file), progress)


# -- validation ------------------------------------------------------------------------------

def _shown(values, quoted: bool = True) -> str:
    """Values from the file (ids, genres, column names) as an error echoes them: cut short."""
    return shortened(", ".join(repr(str(v)) if quoted else str(v) for v in values))


def _track_column(frame: pd.DataFrame, path: Path) -> pd.Series:
    name = "track_id" if "track_id" in frame.columns else "track" if "track" in frame.columns else None
    if name is None:
        raise BadImport(f"{path}: no track_id column (columns: {_shown(frame.columns[:8])})")
    if frame.empty:
        raise BadImport(f"{path}: no rows, only a header")
    ids = frame[name].astype(str)
    if ids.duplicated().any():
        raise BadImport(f"{path}: track {_shown(ids[ids.duplicated()].head(1))} appears more than once")
    return ids


def _known(ids: pd.Series, labels: pd.Series, path: Path) -> None:
    unknown = ids[~ids.isin(labels.index)]
    if len(unknown):
        raise BadImport(f"{path}: {len(unknown)} track(s) not in the dataset (usable tracks), "
                        f"e.g. {_shown(unknown.head(3))}")


def _probabilities(frame: pd.DataFrame, path: Path, classes: list[str]) -> np.ndarray:
    """(N, C) probabilities in `classes` order from prob_<genre>/<genre> or `predicted`."""
    prefixed = {c[len("prob_"):]: c for c in frame.columns if str(c).startswith("prob_")}
    plain = {c: c for c in frame.columns if c in classes}
    columns = prefixed or plain
    if columns:
        unknown = sorted(set(prefixed) - set(classes))
        missing = [g for g in classes if g not in columns]
        if unknown:
            raise BadImport(f"{path}: probability columns for genres the dataset lacks: {_shown(unknown, quoted=False)}")
        if missing:
            raise BadImport(f"{path}: no probability column for genre(s) {', '.join(missing)}")
        probs = frame[[columns[g] for g in classes]].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1) | (probs > 1).any(axis=1)
        if bad.any():
            raise BadImport(f"{path}: {int(bad.sum())} row(s) with probabilities outside [0, 1] or missing")
        off = np.abs(probs.sum(axis=1) - 1) > PROB_TOLERANCE
        if off.any():
            row = int(np.argmax(off))
            raise BadImport(f"{path}: {int(off.sum())} row(s) whose probabilities do not sum to 1 "
                               f"(row {row + 1} sums to {probs[row].sum():.4f})")
        return probs
    if "predicted" not in frame.columns:
        raise BadImport(f"{path}: needs prob_<genre> columns (one per genre) or a predicted column")
    predicted = frame["predicted"].astype(str)
    wrong = predicted[~predicted.isin(classes)]
    if len(wrong):
        raise BadImport(f"{path}: predicted genre {_shown(wrong.head(1))} is not one of {', '.join(classes)}")
    return np.eye(len(classes))[predicted.map({g: i for i, g in enumerate(classes)}).to_numpy()]


def _predictions(frame: pd.DataFrame, path: Path, classes: list[str], labels: pd.Series) -> pd.DataFrame:
    ids = _track_column(frame, path)
    _known(ids, labels, path)
    probs = _probabilities(frame, path, classes)
    split = frame["split"].astype(str) if "split" in frame.columns else pd.Series("test", index=frame.index)
    if not split.isin(SPLITS).all():
        raise BadImport(f"{path}: split must be one of {', '.join(SPLITS)}, found {_shown(split[~split.isin(SPLITS)].head(1))}")
    if not (split == "test").any():
        raise BadImport(f"{path}: no test rows to score")
    return pd.DataFrame({"track_id": ids.to_numpy(), "split": split.to_numpy(),
                         "label": labels.reindex(ids).to_numpy(), "probs": list(probs)})


def _embeddings(frame: pd.DataFrame, path: Path, labels: pd.Series) -> tuple[list[str], np.ndarray]:
    ids = _track_column(frame, path)
    _known(ids, labels, path)
    if "embedding" in frame.columns:
        vectors = _embedding_cells(frame["embedding"], path)
    else:
        numeric = frame.drop(columns=[c for c in ("track_id", "track") if c in frame.columns])
        numeric = numeric.select_dtypes("number")
        if numeric.shape[1] == 0:
            raise BadImport(f"{path}: needs an embedding column or numeric columns, one per dimension")
        vectors = numeric.to_numpy(dtype=np.float64)
    if not np.isfinite(vectors).all():
        raise BadImport(f"{path}: embeddings hold NaN or infinite values")
    if not vectors.any() or (len(vectors) > 1 and (vectors == vectors[0]).all()):
        # t-SNE/UMAP of one point repeated is a blank map, and its neighbours are chance
        what = "all zero" if not vectors.any() else "the same vector"
        raise BadImport(f"{path}: the embeddings are {what} in every row ({len(vectors):,}): a map or "
                        "neighbours of them would show nothing (was the embedding layer exported?)")
    return ids.tolist(), vectors.astype(np.float32)


def _embedding_cells(cells: pd.Series, path: Path) -> np.ndarray:
    """(N, D) from an `embedding` column: lists or arrays (parquet), space-separated numbers (CSV)."""
    rows = []
    for i, cell in enumerate(cells):
        if cell is None or (isinstance(cell, float) and cell != cell) or (isinstance(cell, str) and not cell.strip()):
            raise BadImport(f"{path}: row {i + 1} has no embedding (an empty cell)")
        try:
            row = np.atleast_1d(np.asarray(cell.split() if isinstance(cell, str) else cell, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise BadImport(f"{path}: row {i + 1}: the embedding is not a list of numbers ({shortened(exc)})") from None
        if row.ndim != 1:
            raise BadImport(f"{path}: row {i + 1}: the embedding is not a list of numbers (it has {row.ndim} dimensions)")
        rows.append(row)
    if len({len(r) for r in rows}) != 1:
        raise BadImport(f"{path}: embeddings of different lengths")
    return np.stack(rows)


# -- the run ---------------------------------------------------------------------------------

def _store_run(store: Store, dataset_id: int, dataset: str, model: str, classes: list[str],
               predictions: pd.DataFrame, vectors: tuple[list[str], np.ndarray] | None,
               file: Path, progress: bool) -> ImportSummary:
    # The map code brings torch; imported here so that the run package stays torch-free to import.
    from genre_core.analysis.analyze import AnalyzeSummary, map_tables
    from genre_core.analysis.embeddings import DEFAULT_METHODS

    summary = AnalyzeSummary("")
    extra = {}
    if vectors is not None:
        ids, table = vectors
        extra = map_tables(ids, {"imported": table}, "imported", methods=DEFAULT_METHODS, k=10, seed=SEED, progress=progress, summary=summary)
    config = {"dataset": dataset, "model": model, "split": "imported", "imported_from": file.name,
              "no_model": "predictions imported from a file: no model to run Grad-CAM or classify with"}
    stored = store_prediction_run(store, dataset_id, model, representation="imported", split="imported", classes=classes, predictions=predictions,
                                  config=config, extra=extra)
    return ImportSummary(stored.run_id, stored.report.n, stored.report.accuracy, stored.ci,
                         summary.n_embeddings, summary.notes)
