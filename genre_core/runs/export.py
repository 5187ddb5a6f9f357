"""A run's results as plain files other tools load: one tidy table per concept (parquet or
CSV) and the TensorBoard projector layout.

Tables (parquet column types in brackets; CSV writes lists as space-separated numbers):

    tracks       track_id, path, label, artist, title, duration_s, sample_rate, channels,
                 status, error, sha1                              (the run's dataset, every track)
    predictions  track_id, split, label, predicted, correct [bool], prob_<genre> [float32]
                 one column per genre, in the run's class order
    metrics      split, name, value, ci_low, ci_high
    embeddings   track_id, kind, embedding [list<float32>]      (written by `analyze`)
    projections  method, track_id, x, y                           (t-SNE / UMAP maps)
    segment_projections  method, track_id, start_s, x, y          (the run's windows on those
                 maps, by start time in the track: written by `analyze`)
    faults       track_id, kind, group_id, score, source, evidence [JSON text]
    reviews      track_id, kind, decision, note, decided_at

`manifest.json` names the run, its model, dataset and classes, and each table's file, rows and
columns. A pretraining run (`pretrain`) also exports its encoder, backbone.pt, which
`train --model ssl_probe --backbone PATH` loads (PATH: the file or this folder). Tables with no rows (a run not analysed yet) are written empty with their columns, so a
reader's code does not depend on what happened to be computed.

The projector layout (`--format tensorboard`): vectors.tsv (one embedding per line, tab-separated,
no header), metadata.tsv (a header line, then one line per vector: track, label, predicted, split,
correct) and projector_config.pbtxt naming both; point `tensorboard --logdir DIR` at the folder.

Every file is written beside its name and renamed into place. manifest.json (projector_config.pbtxt)
is removed first and written last, so a folder that has it holds a finished export; a write that
fails (a full disk) says which file in one line and leaves no temporary file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genre_core import paths, untrusted
from genre_core.audio import file_digest
from genre_core.store import Store, StoreError

FORMATS = ("parquet", "csv", "tensorboard")
# Per format, the file written last: it exists only when every other file was written.
COMPLETE_FILE = {"parquet": "manifest.json", "csv": "manifest.json", "tensorboard": "projector_config.pbtxt"}
TRACK_EXPORT_COLUMNS = ("track_id", "path", "label", "artist", "title", "duration_s", "sample_rate",
                        "channels", "status", "error", "sha1")


@dataclass
class ExportSummary:
    run_id: str
    out: Path
    format: str
    files: dict[str, int] = field(default_factory=dict)  # file name -> rows

    def line(self) -> str:
        rows = ", ".join(f"{name} {n}" for name, n in self.files.items())
        return f"exported run {self.run_id} as {self.format} to {self.out}: {rows}"


def export_run(store: Store, run_id: str, out: Path, *, fmt: str = "parquet") -> ExportSummary:
    """Write run `run_id`'s tables (or its projector files) under `out` (created)."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    run = store.run(run_id)  # StoreError names an unknown run
    if run["status"] != "complete":
        raise StoreError(f"run {run_id} is {run['status']}, not complete: nothing to export")
    out = Path(out)
    with paths.writing(out):
        out.mkdir(parents=True, exist_ok=True)
        # The file written last says the folder is complete: an earlier export's must not
        # vouch for tables this one may not finish (a full disk, Ctrl-C).
        (out / COMPLETE_FILE[fmt]).unlink(missing_ok=True)
    tables = run_tables(store, run)
    summary = ExportSummary(run_id, out, fmt)
    if fmt == "tensorboard":
        summary.files = write_projector(tables["embeddings"], tables["predictions"], out, run_id=run_id)
    else:
        for name, frame in tables.items():
            path = out / f"{name}.{fmt}"
            _write_table(frame, path, fmt)
            summary.files[path.name] = len(frame)
        backbone = _copy_backbone(store, run_id, out)
        if backbone is not None:
            summary.files[paths.BACKBONE_FILE] = 1
        _write_manifest(out, run, tables, fmt, backbone)
    return summary


def run_tables(store: Store, run: dict) -> dict[str, pd.DataFrame]:
    """The tidy tables of one run (see the module docstring), as data frames."""
    run_id, dataset_id, classes = run["run_id"], int(run["dataset_id"]), list(run["classes"])
    return {
        "tracks": store.dataset_tracks(dataset_id, TRACK_EXPORT_COLUMNS),
        "predictions": _predictions(store.predictions(run_id), classes),
        "metrics": store.metrics(run_id),
        "embeddings": _embeddings(store.embedding_rows(run_id)),
        "projections": store.projections(run_id),
        "segment_projections": store.segment_projections(run_id),
        "faults": store.fault_rows(dataset_id),
        "reviews": store.reviews(dataset_id),
    }


def _predictions(frame: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """One row per (track, split); the probability list spread into prob_<genre> columns."""
    probs = np.array(frame["probs"].tolist(), dtype=np.float32).reshape(len(frame), len(classes))
    out = frame.drop(columns="probs").assign(correct=frame["label"] == frame["predicted"])
    for j, genre in enumerate(classes):
        out[f"prob_{genre}"] = probs[:, j]
    return out


def _embeddings(frame: pd.DataFrame) -> pd.DataFrame:
    vectors = [np.asarray(v, dtype=np.float32) for v in frame["vector"]]
    return pd.DataFrame({"track_id": frame["track_id"], "kind": frame["kind"], "embedding": vectors})


def _write_table(frame: pd.DataFrame, path: Path, fmt: str) -> None:
    """Atomically: a reader never sees half a file, a failed write leaves no temp file."""
    with paths.atomic_write(path) as tmp:
        _write_frame(frame, tmp, fmt)


def _write_frame(frame: pd.DataFrame, tmp: Path, fmt: str) -> None:
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if "embedding" in frame.columns:
            table = table.set_column(table.schema.get_field_index("embedding"), "embedding",
                                     pa.array(frame["embedding"].tolist(), type=pa.list_(pa.float32())))
        pq.write_table(table, tmp)
    else:
        flat = frame.copy()
        if "embedding" in flat.columns:
            flat["embedding"] = [" ".join(f"{x:.7g}" for x in v) for v in flat["embedding"]]
        untrusted.cells(flat).to_csv(tmp, index=False)  # names a spreadsheet must not run as formulas


def _copy_backbone(store: Store, run_id: str, out: Path) -> dict | None:
    """A pretraining run's backbone file copied to `out` (load it with --backbone PATH), checked
    against the sha256 the run recorded; its manifest entry. None for a run without one."""
    expected = store.run_file_sha256(run_id, paths.BACKBONE_FILE)
    if expected is None:
        return None
    source = paths.run_dir(store.path, run_id) / paths.BACKBONE_FILE
    if not source.is_file():
        raise StoreError(f"run {run_id}: its backbone file {source} is missing")
    if file_digest(source, "sha256") != expected:
        raise StoreError(f"{source}: refusing to export: its sha256 differs from the one recorded "
                         "when the run completed (file replaced or damaged)")
    paths.atomic_copy(source, out / paths.BACKBONE_FILE)
    return {"file": paths.BACKBONE_FILE, "sha256": expected}


def _write_manifest(out: Path, run: dict, tables: dict[str, pd.DataFrame], fmt: str,
                    backbone: dict | None = None) -> None:
    manifest = {
        "run_id": run["run_id"], "model": run["model"], "split": run["split"],
        "dataset_id": int(run["dataset_id"]), "classes": list(run["classes"]),
        "tables": {name: {"file": f"{name}.{fmt}", "rows": len(frame), "columns": list(frame.columns)}
                   for name, frame in tables.items()},
    }
    if backbone is not None:
        manifest["backbone"] = backbone
    with paths.atomic_write(out / COMPLETE_FILE[fmt]) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1))


def write_projector(embeddings: pd.DataFrame, predictions: pd.DataFrame, out: Path,
                    *, run_id: str) -> dict[str, int]:
    """vectors.tsv + metadata.tsv + projector_config.pbtxt for the run's main embedding kind."""
    if embeddings.empty:
        raise StoreError(f"run {run_id} has no embeddings yet: run `analyze --run {run_id}` first")
    kind = embeddings["kind"].value_counts().index[0]  # the network's embedding, not extras
    chosen = embeddings[embeddings["kind"] == kind]
    # A k-fold track is predicted once per fold it was tested in: label it by its test row.
    meta = (predictions.sort_values("split", key=lambda s: s != "test")
            .drop_duplicates("track_id").set_index("track_id"))
    meta = meta.reindex(chosen["track_id"])
    with paths.atomic_write(out / "vectors.tsv") as tmp, open(tmp, "w") as f:
        for vector in chosen["embedding"]:
            f.write("\t".join(f"{x:.7g}" for x in vector) + "\n")
    columns = ["track_id", "label", "predicted", "split", "correct"]
    with paths.atomic_write(out / "metadata.tsv") as tmp, open(tmp, "w") as f:
        f.write("\t".join(columns) + "\n")
        for track_id, row in zip(chosen["track_id"], meta.itertuples()):
            values = [track_id, row.label, row.predicted, row.split, row.correct]
            f.write("\t".join(_tsv_value(v) for v in values) + "\n")
    with paths.atomic_write(out / COMPLETE_FILE["tensorboard"]) as tmp:
        tmp.write_text("embeddings {\n"
                       f'  tensor_name: "{run_id}/{kind}"\n'
                       '  tensor_path: "vectors.tsv"\n'
                       '  metadata_path: "metadata.tsv"\n'
                       "}\n")
    return {"vectors.tsv": len(chosen), "metadata.tsv": len(chosen), "projector_config.pbtxt": 1}


def _tsv_value(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return untrusted.cell(str(value))  # one line, no tab, no formula
