import dataclasses
import json

import numpy as np
import pytest

from genre_core.features.spectral import FeatureConfig
from genre_core.models import MODELS
from genre_core.store import to_json
from genre_core.train.config import TrainConfig
from genre_core.train.fit import fit, prepare, resume_run
from genre_core.train.loop import Interrupted

TORCH_MODELS = [n for n, s in MODELS.items() if s.is_torch]
BASELINES = [n for n, s in MODELS.items() if not s.is_torch]


def _complete_run(store, run_id, n_test):
    run = store.run(run_id)
    assert run["status"] == "complete"
    preds = store.query("SELECT * FROM predictions WHERE run_id = ? AND split = 'test'", [run_id])
    assert len(preds) == n_test and preds.track_id.is_unique
    assert np.allclose([sum(p) for p in preds.probs], 1.0, atol=1e-4)
    metrics = store.query("SELECT * FROM metrics WHERE run_id = ?", [run_id]).set_index("name")
    acc = metrics[metrics.split == "test"].loc["track/accuracy"]
    assert acc.ci_low <= acc.value <= acc.ci_high
    return run, preds


@pytest.mark.parametrize("model", TORCH_MODELS + BASELINES)
def test_every_model_completes_a_tiny_run_with_a_prediction_per_test_track(toy_store, model):
    config = TrainConfig.tiny_preset("toy", model, epochs=1)
    result = fit(toy_store, config, progress=False)
    n_test = len(prepare(toy_store, config).split.test)
    _complete_run(toy_store, result.run_id, n_test)
    epochs = toy_store.query("SELECT * FROM epochs WHERE run_id = ?", [result.run_id])
    assert len(epochs) == 1


def test_the_reported_ci_is_the_track_level_one(toy_store):
    result = fit(toy_store, TrainConfig.tiny_preset("toy", "logreg"), progress=False)
    stored = toy_store.query(
        "SELECT ci_low, ci_high FROM metrics WHERE run_id = ? AND split = 'test' AND name = 'track/accuracy'",
        [result.run_id])
    assert result.ci["accuracy"] == (stored.ci_low[0], stored.ci_high[0])
    assert result.report.n == len(prepare(toy_store, TrainConfig("toy", "logreg")).split.test)


def test_a_track_never_has_windows_on_two_sides(toy_store):
    data = prepare(toy_store, TrainConfig("toy", "cnn", split="random"))
    sides = [set(data.tracks[s].track_id) for s in ("train", "val", "test")]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert sum(map(len, sides)) == 24


def test_the_cnn_learns_the_toy_task(toy_store):
    config = TrainConfig.tiny_preset("toy", "cnn", epochs=8, batch_size=4, lr=3e-3, seed=1)
    result = fit(toy_store, config, progress=False)
    assert result.report.accuracy >= 0.8
    epochs = toy_store.query("SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", [result.run_id])
    assert epochs.train_loss.iloc[-1] < epochs.train_loss.iloc[0]


def test_resume_gives_the_same_result_as_an_uninterrupted_run(toy_store):
    config = TrainConfig.tiny_preset("toy", "cnn_small", epochs=3, seed=3)
    straight = fit(toy_store, config, progress=False)
    with pytest.raises(Interrupted):
        fit(toy_store, config, run_id="resume-me", progress=False, stop_after_epoch=1)
    assert toy_store.run("resume-me")["status"] == "interrupted"  # resumable, never shown as complete
    resumed = resume_run(toy_store, "resume-me", progress=False)

    def table(run_id, sql):
        return toy_store.query(sql, [run_id])

    a = table(straight.run_id, "SELECT epoch, train_loss, val_loss FROM epochs WHERE run_id = ? ORDER BY epoch")
    b = table(resumed.run_id, "SELECT epoch, train_loss, val_loss FROM epochs WHERE run_id = ? ORDER BY epoch")
    assert np.allclose(a.to_numpy(), b.to_numpy(), atol=1e-6)
    pa = table(straight.run_id, "SELECT track_id, probs FROM predictions WHERE run_id = ? ORDER BY track_id")
    pb = table(resumed.run_id, "SELECT track_id, probs FROM predictions WHERE run_id = ? ORDER BY track_id")
    assert np.allclose(np.stack(pa.probs), np.stack(pb.probs), atol=1e-5)


def test_a_run_that_crashes_is_marked_failed(toy_store, monkeypatch):
    from genre_core.train import loop as torch_loop

    def boom(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(torch_loop.Trainer, "fit", boom)
    with pytest.raises(RuntimeError):
        fit(toy_store, TrainConfig.tiny_preset("toy", "cnn"), run_id="doomed", progress=False)
    run = toy_store.run("doomed")
    assert run["status"] == "failed" and "out of memory" in run["error"]
    assert toy_store.query("SELECT * FROM predictions WHERE run_id = 'doomed'").empty


def test_training_is_reproducible_under_a_seed(toy_store):
    config = TrainConfig.tiny_preset("toy", "crnn", seed=5, augment=TrainConfig("x", "y").augment)
    a, b = fit(toy_store, config, progress=False), fit(toy_store, config, progress=False)
    q = "SELECT train_loss FROM epochs WHERE run_id = ? ORDER BY epoch"
    assert np.allclose(toy_store.query(q, [a.run_id]).train_loss, toy_store.query(q, [b.run_id]).train_loss)


def test_config_round_trips_through_json(toy_store):
    config = TrainConfig.tiny_preset("toy", "cnn", seed=9)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert dataclasses.asdict(TrainConfig.from_dict(config.to_dict())) == dataclasses.asdict(config)


def test_configs_stored_before_the_fmin_rename_still_load():
    config = TrainConfig.tiny_preset("toy", "cnn", features=FeatureConfig(fmin=30.0, fmax=8000.0))
    stored = json.loads(to_json(config.to_dict()))  # as runs.config holds it
    old = dict(stored, features={("f_" + k[1:] if k in ("fmin", "fmax") else k): v
                                 for k, v in stored["features"].items()})
    assert "f_min" in old["features"] and "fmin" not in old["features"]
    assert TrainConfig.from_dict(old) == TrainConfig.from_dict(stored) == config
    assert FeatureConfig.from_dict(old["features"]).fmax_hz == 8000.0


@pytest.mark.parametrize("model", ["cnn_small", "logreg"])
def test_a_loaded_run_reproduces_its_stored_window_predictions(toy_store, model):
    from genre_core import audio
    from genre_core.train.inference import load_run

    result = fit(toy_store, TrainConfig.tiny_preset("toy", model, epochs=1), progress=False)
    seg = toy_store.query(
        "SELECT s.track_id, s.start_s, s.probs, t.path FROM segment_predictions s JOIN tracks t "
        "USING (track_id) WHERE s.run_id = ? ORDER BY s.track_id, s.start_s LIMIT 1", [result.run_id])
    loaded = load_run(toy_store, result.run_id, device="cpu")
    y = audio.load(seg.path[0], sr=loaded.sr)
    window = y[int(seg.start_s[0] * loaded.sr):][: int(loaded.window_s * loaded.sr)]
    probs, _ = loaded.predict_windows(window[None, :])
    assert np.allclose(probs[0], seg.probs[0], atol=1e-4)
    assert loaded.classes == ["high", "low", "mid"]


class _Planted:
    """A pickle that, if ever unpickled, creates `marker` (stands for any shell command)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _plant(path, marker):
    import pickle

    path.write_bytes(pickle.dumps(_Planted(marker), protocol=2))


def test_a_planted_checkpoint_is_refused_on_resume_and_never_runs(toy_store, tmp_path, capsys):
    from genre_core import paths
    from training.cli import main

    config = TrainConfig.tiny_preset("toy", "cnn_small", epochs=2)
    with pytest.raises(Interrupted):
        fit(toy_store, config, run_id="planted", progress=False, stop_after_epoch=1)
    marker = tmp_path / "pwned"
    _plant(paths.run_dir(toy_store.path, "planted") / paths.CHECKPOINT_FILE, marker)
    capsys.readouterr()
    assert main(["train", "--resume", "planted", "--db", str(toy_store.path)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert not marker.exists()
    assert len(err) == 1 and "checkpoint.pt: refusing to resume" in err[0], err  # (besides progress bars)
    assert toy_store.run("planted")["status"] == "failed"


def test_a_replaced_baseline_file_is_refused_and_never_runs(toy_store, tmp_path):
    from genre_core import paths
    from genre_core.store import StoreError
    from genre_core.train.inference import load_run

    run = fit(toy_store, TrainConfig.tiny_preset("toy", "logreg"), progress=False)
    assert load_run(toy_store, run.run_id, device="cpu").estimator is not None  # the genuine file loads
    marker = tmp_path / "pwned"
    _plant(paths.run_dir(toy_store.path, run.run_id) / paths.BASELINE_FILE, marker)
    with pytest.raises(StoreError, match="sha256 differs"):
        load_run(toy_store, run.run_id, device="cpu")
    with toy_store.write() as con:  # a run without a recorded checksum: refused all the same
        con.execute("DELETE FROM run_files WHERE run_id = ?", [run.run_id])
    with pytest.raises(StoreError, match="no checksum recorded"):
        load_run(toy_store, run.run_id, device="cpu")
    assert not marker.exists()


BAD_TRAIN_OPTIONS = [["--epochs", "0"], ["--epochs", "-1"], ["--batch-size", "0"], ["--batch-size", "-4"],
                     ["--lr", "0"], ["--lr", "-1e-3"], ["--lr", "nan"], ["--lr", "inf"], ["--fold", "0"],
                     ["--seed", "-1"], ["--epochs", "two"]]


@pytest.mark.parametrize("bad", BAD_TRAIN_OPTIONS, ids=" ".join)
def test_nonsense_hyperparameters_are_refused_before_any_run_row(toy_store, capsys, bad):
    from training.cli import main

    before = len(toy_store.query("SELECT run_id FROM runs"))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--dataset", "toy", "--model", "cnn", "--db", str(toy_store.path), *bad])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and bad[0] in err[0], err
    assert len(toy_store.query("SELECT run_id FROM runs")) == before


@pytest.mark.parametrize("field, value", [("epochs", 0), ("batch_size", -4), ("lr", 0.0), ("fold", 6),
                                          ("hop_s", float("nan")), ("patience", -1)])
def test_a_config_with_nonsense_values_cannot_be_built(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig("toy", "cnn", **{field: value})


def test_ctrl_c_marks_the_run_interrupted_and_resumable(toy_store, monkeypatch):
    from genre_core.train import loop as torch_loop

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch_loop.Trainer, "fit", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        fit(toy_store, TrainConfig.tiny_preset("toy", "cnn_small", epochs=1), run_id="ctrl-c", progress=False)
    run = toy_store.run("ctrl-c")
    assert run["status"] == "interrupted" and "--resume ctrl-c" in run["error"]
    monkeypatch.undo()
    assert resume_run(toy_store, "ctrl-c", progress=False).status == "complete"  # no checkpoint: from epoch 1


def test_a_run_whose_process_is_alive_cannot_be_resumed_twice(toy_store):
    dataset_id = int(toy_store.dataset("toy")["dataset_id"])
    config = TrainConfig.tiny_preset("toy", "cnn_small").to_dict()
    toy_store.start_run(dict(run_id="alive", dataset_id=dataset_id, model="cnn_small", split="random",
                             config=config))  # owned by this (living) process
    assert toy_store.run("alive")["status"] == "running"
    with pytest.raises(ValueError, match="still running"):
        resume_run(toy_store, "alive", progress=False)
