"""Export: a run's tables load with pandas as documented, and the projector files follow
TensorBoard's rules (vectors.tsv: tab-separated floats, one per line, no header; metadata.tsv:
a header line when there are several columns, then exactly one line per vector)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from genre_core.runs.export import export_run
from genre_core.store import StoreError, open_store
from tests.helpers import writable_copy
from tests.test_segments_app import plant_segments


@pytest.fixture(scope="module")
def store(app_db, tmp_path_factory):
    """A copy of the app fixture database whose toy run also has stored embeddings and windows
    on its t-SNE map (the fixture's fake analysis writes track maps only)."""
    path = writable_copy(app_db["db"], tmp_path_factory.mktemp("export"))
    run_id = app_db["toy_run"]
    plant_segments(path, run_id)
    store = open_store(path, create=False)
    ids = store.predictions(run_id)["track_id"].unique()
    vectors = np.random.default_rng(0).normal(size=(len(ids), 16)).astype(np.float32)
    store.replace_run_rows(run_id, {"embeddings": pd.DataFrame(
        {"track_id": ids, "kind": "penultimate", "vector": [v.tolist() for v in vectors]})})
    return store


def test_parquet_tables_hold_the_run_as_stored(store, app_db, tmp_path):
    run_id = app_db["toy_run"]
    summary = export_run(store, run_id, tmp_path, fmt="parquet")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    classes = manifest["classes"]
    predictions = pd.read_parquet(tmp_path / "predictions.parquet")
    stored = store.predictions(run_id)
    assert len(predictions) == len(stored) == summary.files["predictions.parquet"]
    assert [c for c in predictions.columns if c.startswith("prob_")] == [f"prob_{g}" for g in classes]
    # Probabilities per row sum to one and the argmax is the stored prediction.
    probs = predictions[[f"prob_{g}" for g in classes]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert (np.array(classes)[probs.argmax(axis=1)] == predictions["predicted"]).all()
    assert (predictions["correct"] == (predictions["label"] == predictions["predicted"])).all()
    tracks = pd.read_parquet(tmp_path / "tracks.parquet")
    assert set(predictions["track_id"]) <= set(tracks["track_id"])
    embeddings = pd.read_parquet(tmp_path / "embeddings.parquet")
    assert len(embeddings) > 0 and len({len(v) for v in embeddings["embedding"]}) == 1
    projections = pd.read_parquet(tmp_path / "projections.parquet")
    assert set(projections["track_id"]) <= set(tracks["track_id"])
    # The run's windows, each placed on a map beside its track, as analyze stored them.
    windows = pd.read_parquet(tmp_path / "segment_projections.parquet")
    stored_windows = store.segment_projections(run_id)
    assert len(windows) == manifest["tables"]["segment_projections"]["rows"] == len(stored_windows) > 0
    pd.testing.assert_frame_equal(windows, stored_windows, check_dtype=False)
    assert set(windows["track_id"]) <= set(projections["track_id"])
    for name, info in manifest["tables"].items():
        assert list(pd.read_parquet(tmp_path / info["file"]).columns) == info["columns"], name


def test_csv_matches_parquet(store, app_db, tmp_path):
    run_id = app_db["toy_run"]
    export_run(store, run_id, tmp_path / "p", fmt="parquet")
    export_run(store, run_id, tmp_path / "c", fmt="csv")
    a = pd.read_parquet(tmp_path / "p" / "predictions.parquet")
    b = pd.read_csv(tmp_path / "c" / "predictions.csv")
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b, check_dtype=False, atol=1e-6)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "p" / "segment_projections.parquet"),
                                  pd.read_csv(tmp_path / "c" / "segment_projections.csv"), check_dtype=False)
    emb = pd.read_csv(tmp_path / "c" / "embeddings.csv")
    first = np.array(emb["embedding"].iloc[0].split(), dtype=np.float32)
    np.testing.assert_allclose(first, pd.read_parquet(tmp_path / "p" / "embeddings.parquet")["embedding"].iloc[0],
                               rtol=1e-6)


def test_tensorboard_projector_files_follow_its_format(store, app_db, tmp_path):
    export_run(store, app_db["toy_run"], tmp_path, fmt="tensorboard")
    vectors = (tmp_path / "vectors.tsv").read_text().splitlines()
    rows = [line.split("\t") for line in vectors]
    assert len({len(r) for r in rows}) == 1 and len(rows[0]) > 1
    np.array(rows, dtype=np.float32)  # every cell a number, no header
    metadata = (tmp_path / "metadata.tsv").read_text().splitlines()
    header = metadata[0].split("\t")
    assert header == ["track_id", "label", "predicted", "split", "correct"]
    assert len(metadata) - 1 == len(vectors)
    assert all(len(line.split("\t")) == len(header) for line in metadata[1:])
    config = (tmp_path / "projector_config.pbtxt").read_text()
    assert 'tensor_path: "vectors.tsv"' in config and 'metadata_path: "metadata.tsv"' in config


def test_unknown_run_and_format_are_refused(store, app_db, tmp_path):
    with pytest.raises(StoreError):
        export_run(store, "no-such-run", tmp_path)
    with pytest.raises(ValueError, match="--format"):
        export_run(store, app_db["toy_run"], tmp_path, fmt="xlsx")
    assert not any(tmp_path.iterdir())
