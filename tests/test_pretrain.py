"""Self-supervised pretraining (`pretrain`) and the models on its encoder (ssl_probe, ssl_finetune).

Their own database (the toy corpus): pretraining runs must not change what other tests count
in the shared toy store.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genre_core import paths
from genre_core.app import queries as q
from genre_core.app import state
from genre_core.features.settings import AugmentConfig
from genre_core.train.backbone import read_backbone, resolve_backbone
from genre_core.train.fit import resume_run, train_command
from genre_core.train.loop import Interrupted
from genre_core.train.pretrain import PretrainConfig, pretrain, resume_pretraining
from tests.helpers import make_toy_corpus, open_app
from training.cli import main

PAGES = ("overview", "confusion", "map", "track", "compare", "classify")


def _config(**overrides) -> PretrainConfig:
    # batch of 4 pairs: 7 candidates per window on the 22 toy training tracks, 22 steps an epoch
    base = dict(dataset="toy", tiny=True, epochs=3, batch_size=4, pairs_per_track=2, seed=1)
    return PretrainConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from genre_core.datasets.ingest import ingest
    from genre_core.store import open_store

    root = tmp_path_factory.mktemp("ssl")
    store = open_store(root / "db" / "ssl.duckdb")
    ingest(store, "folder", make_toy_corpus(root / "corpus"), name="toy", progress=False)
    return store


@pytest.fixture(scope="module")
def pretrained(store):
    return pretrain(store, _config(epochs=4), progress=False)


@pytest.fixture(scope="module")
def probe_run(store, pretrained) -> str:
    train_command(store, "toy", "ssl_probe", backbone=pretrained.run_id, tiny=True, epochs=3)
    return str(store.complete_runs("toy", "ssl_probe").run_id.iloc[-1])


def _weights(path) -> dict[str, torch.Tensor]:
    return read_backbone(path)["weights"]


def test_pretraining_loss_falls_and_leaves_a_registered_backbone(store, pretrained):
    losses = [h["train_loss"] for h in pretrained.history]
    assert losses[-1] < 0.8 * losses[0], losses
    run = store.run(pretrained.run_id)
    assert run["status"] == "complete" and run["model"] == "ssl_pretrain"
    assert pretrained.backbone == paths.run_dir(store.path, pretrained.run_id) / paths.BACKBONE_FILE
    assert store.run_file_sha256(pretrained.run_id, paths.BACKBONE_FILE) is not None
    epochs = store.query("SELECT * FROM epochs WHERE run_id = ?", [pretrained.run_id])
    assert len(epochs) == len(pretrained.history)
    # An encoder, not a classifier: the app's run lists and `classify` leave it out.
    assert pretrained.run_id not in set(q.runs(store.path).run_id)
    assert pretrained.run_id not in set(store.complete_runs(with_model=True).run_id)


def test_a_killed_pretraining_resumes_to_the_weights_of_an_uninterrupted_one(store):
    config = _config(epochs=3, seed=4, augment=AugmentConfig.default())
    straight = pretrain(store, config, progress=False)
    with pytest.raises(Interrupted):
        pretrain(store, config, run_id="killed-pretraining", progress=False, stop_after_epoch=1)
    assert store.run("killed-pretraining")["status"] == "interrupted"
    with pytest.raises(ValueError, match="pretrain --resume"):  # not train's to continue
        resume_run(store, "killed-pretraining")
    resumed = resume_pretraining(store, "killed-pretraining", progress=False)
    a, b = _weights(straight.backbone), _weights(resumed.backbone)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["train_loss"] for h in straight.history] == [h["train_loss"] for h in resumed.history]


def test_an_ssl_probe_keeps_the_pretrained_encoder_frozen(store, pretrained, probe_run):
    run = store.run(probe_run)
    assert run["config"]["backbone"]["run_id"] == pretrained.run_id
    model = torch.load(paths.run_dir(store.path, probe_run) / paths.MODEL_FILE, weights_only=True)
    encoder = {k.removeprefix("encoder."): v for k, v in model.items() if k.startswith("encoder.")}
    backbone = _weights(pretrained.backbone)
    assert encoder.keys() == backbone.keys()
    assert all(torch.equal(encoder[k], backbone[k]) for k in backbone)


def test_an_ssl_finetune_trains_its_encoder(store, pretrained):
    train_command(store, "toy", "ssl_finetune", backbone=str(pretrained.backbone), tiny=True, epochs=1)
    run_id = str(store.complete_runs("toy", "ssl_finetune").run_id.iloc[-1])
    model = torch.load(paths.run_dir(store.path, run_id) / paths.MODEL_FILE, weights_only=True)
    backbone = _weights(pretrained.backbone)
    assert any(not torch.equal(model[f"encoder.{k}"], v) for k, v in backbone.items() if v.is_floating_point())


def test_an_ssl_probe_run_is_analysed_classified_and_exported(store, probe_run, tmp_path):
    from genre_core.analysis.analyze import analyze
    from genre_core.live.streaming import classify_file
    from genre_core.runs.export import export_run

    summary = analyze(store, probe_run, progress=False, taggrams=False, methods=("pca",), device="cpu")
    assert summary.n_embeddings == len(store.tracks("toy"))
    maps = store.query("SELECT count(*) AS n FROM attributions WHERE run_id = ?", [probe_run])
    assert maps.n[0] > 0  # Grad-CAM on the encoder's last conv block
    track = store.tracks("toy").iloc[0]
    result = classify_file(store, track.path, run_id=probe_run, progress=False, device="cpu")
    assert result.classes == list(store.run(probe_run)["classes"])
    assert result.sections and result.sections[0].genre in result.classes
    out = export_run(store, probe_run, tmp_path / "export")
    assert out.files["embeddings.parquet"] == len(store.tracks("toy"))


def test_an_ssl_probe_run_opens_on_every_page_of_the_app(monkeypatch, store, pretrained, probe_run):
    from genre_core.analysis.analyze import analyze

    analyze(store, probe_run, progress=False, taggrams=False, methods=("pca",), device="cpu")
    at = open_app(monkeypatch, store.path, **{state.RUN: probe_run})
    board = next(d.value for d in at.dataframe if "trained_with" in d.value.columns)  # the leaderboard
    # names the encoder behind the run
    row = board[board.run_id == probe_run].iloc[0]
    assert row.trained_with == f"encoder of pretraining {pretrained.run_id}"
    for page in PAGES:
        at = at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])


def test_what_a_run_was_trained_with_reads_from_its_config():
    from genre_core.app.queries.runs import trained_with

    assert trained_with({"model": "cnn"}) == ""
    assert trained_with({"label_share": 0.25, "backbone": {"encoder": "cnn", "tiny": True}}) == \
        "25% of the labels; random encoder (no pretraining)"
    assert trained_with(json.dumps({"label_share": 1.0, "backbone": {"file": "/x/backbone.pt", "run_id": "r1"}})) == \
        "encoder of pretraining r1"


def test_an_exported_pretraining_carries_its_backbone(store, pretrained, tmp_path):
    from genre_core.runs.export import export_run

    export_run(store, pretrained.run_id, tmp_path / "export")
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert manifest["backbone"]["file"] == paths.BACKBONE_FILE
    # Elsewhere the folder (or its file) is a --backbone: the same encoder, the same features.
    here, features = resolve_backbone(store, pretrained.run_id)
    there, features_there = resolve_backbone(store, str(tmp_path / "export"))
    assert there["sha256"] == here["sha256"] == manifest["backbone"]["sha256"] and features_there == features


@pytest.mark.parametrize("make, reason", [
    (lambda d: d / "missing.pt", "no such backbone file"),
    (lambda d: (d / "notes.pt").write_text("hello") and d / "notes.pt", "not a GenreLens backbone file"),
])
def test_a_bad_backbone_path_is_one_line_naming_the_file(store, tmp_path, capsys, make, reason):
    path = make(tmp_path)
    runs_before = len(store.runs())
    code = main(["train", "--db", str(store.path), "--dataset", "toy", "--model", "ssl_probe",
                 "--backbone", str(path), "--tiny", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert str(path) in err and reason in err
    assert len(store.runs()) == runs_before  # refused before a run row exists


def test_a_pretraining_on_too_few_tracks_is_refused(tmp_path):
    from genre_core.datasets.ingest import ingest
    from genre_core.store import open_store

    small = open_store(tmp_path / "small.duckdb")
    ingest(small, "folder", make_toy_corpus(tmp_path / "corpus", per_genre=1), name="toy", progress=False)
    with pytest.raises(ValueError, match="at least 4"):
        pretrain(small, _config(), progress=False)
    assert small.runs().empty


def test_a_label_share_keeps_that_share_of_each_genres_training_tracks_only(store):
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import prepare

    full = prepare(store, TrainConfig("toy", "cnn", seed=2))
    few = prepare(store, TrainConfig("toy", "cnn", seed=2, label_share=0.5))
    assert set(few.split.train) < set(full.split.train)
    per_genre = full.tracks["train"].label.value_counts()
    kept = few.tracks["train"].label.value_counts().sort_index()
    assert kept.to_dict() == (per_genre * 0.5).round().clip(lower=1).astype(int).sort_index().to_dict()
    assert few.split.val == full.split.val and few.split.test == full.split.test  # scored on the same tracks
    with pytest.raises(ValueError, match="label_share"):
        TrainConfig("toy", "cnn", label_share=0.0)


@pytest.mark.slow
def test_a_two_process_ddp_pretraining_is_stored_once(store, tmp_path):
    from genre_core.store import open_store
    from tests.helpers import writable_copy
    from tests.test_distributed import _cli

    db = writable_copy(store.path, tmp_path)
    before = set(open_store(db, create=False).runs().run_id)
    done = _cli(["pretrain", "--db", str(db), "--dataset", "toy", "--tiny", "--batch-size", "4", "--device", "cpu"],
                world=2)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = open_store(db, create=False).runs()
    runs = runs[~runs.run_id.isin(before)]
    assert len(runs) == 1 and runs.status.iloc[0] == "complete" and runs.model.iloc[0] == "ssl_pretrain"
    backbone = paths.run_dir(db, runs.run_id.iloc[0]) / paths.BACKBONE_FILE
    assert read_backbone(backbone)["run_id"] == runs.run_id.iloc[0]


def test_the_pretrain_command_writes_a_backbone_a_train_command_loads(store, tmp_path, capsys):
    out = tmp_path / "shared" / "encoder.pt"
    code = main(["pretrain", "--db", str(store.path), "--dataset", "toy", "--tiny", "--batch-size", "4",
                 "--out", str(out), "-q"])
    assert code == 0, capsys.readouterr().err
    summary = capsys.readouterr().out
    assert str(out) in summary and "ssl_probe --backbone" in summary
    assert read_backbone(out)["encoder"] == "cnn"
    run_id = read_backbone(out)["run_id"]
    assert main(["pretrain", "--db", str(store.path), "--resume", run_id, "-q"]) == 2  # complete: nothing to resume
    assert "already complete" in capsys.readouterr().err
    assert main(["train", "--db", str(store.path), "--dataset", "toy", "--model", "ssl_probe", "--backbone", str(out),
                 "--tiny", "--epochs", "1", "-q"]) == 0


def test_a_sweep_refuses_the_models_that_need_a_backbone(tmp_path):
    from genre_core.train.sweep import load_sweep

    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"dataset": "toy", "models": ["cnn", "ssl_probe"]}))
    with pytest.raises(ValueError, match="ssl_probe needs a pretrained encoder"):
        load_sweep(path)
