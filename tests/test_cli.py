import subprocess
import sys

import pytest

from training.cli import main
from tests.helpers import tone, write


def test_ingest_prints_a_one_line_summary(tmp_path, capsys):
    write(tmp_path / "c" / "dub" / "a.wav", tone(1.5))
    (tmp_path / "c" / "dub" / "b.wav").write_bytes(b"")
    code = main(["ingest", "--dataset", "folder", "--root", str(tmp_path / "c"), "--db", str(tmp_path / "x.duckdb")])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert out[-1].startswith("ingested 2 tracks (1 unreadable) into ")


def test_bad_root_exits_2_with_one_line_naming_it(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "training", "ingest", "--dataset", "gtzan", "--root",
         str(tmp_path / "nowhere"), "--db", str(tmp_path / "x.duckdb")],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'nowhere'}: not a directory"]


def test_db_defaults_to_the_environment_variable(tmp_path, monkeypatch):
    write(tmp_path / "c" / "dub" / "a.wav", tone(1.5))
    env_db = tmp_path / "env.duckdb"
    result = subprocess.run(
        [sys.executable, "-m", "training", "ingest", "--dataset", "folder", "--root", str(tmp_path / "c")],
        capture_output=True, text=True, env={**__import__("os").environ, "GENRELENS_DB": str(env_db)},
    )
    assert result.returncode == 0, result.stderr
    assert env_db.exists() and str(env_db) in result.stdout


def test_classify_prints_sections_and_writes_the_timeline(toy_store, tmp_path, capsys):
    import json

    import numpy as np

    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit
    from tests.helpers import band_clip

    run = fit(toy_store, TrainConfig.tiny_preset("toy", "cnn_small", epochs=3, batch_size=4, lr=3e-3, seed=1),
              progress=False)
    mix = write(tmp_path / "mix.wav", np.concatenate([band_clip("low", 1, 9.0), band_clip("high", 2, 9.0)]))
    out = tmp_path / "timeline.json"
    code = main(["classify", str(mix), "--run", run.run_id, "--db", str(toy_store.path), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "00:00-" in printed and f"run {run.run_id}" in printed
    timeline = json.loads(out.read_text())
    assert len(timeline["windows"]) >= 10 and timeline["sections"]


def test_classify_an_unreadable_file_exits_2_naming_it(toy_store, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    assert main(["classify", str(bad), "--db", str(toy_store.path)]) == 2
    assert str(bad) in capsys.readouterr().err


def _no_model_load(monkeypatch):
    from genre_core.train import inference

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded: the check came too late")

    monkeypatch.setattr(inference, "load_run", refuse)


def test_classify_refuses_a_bad_out_before_classifying(toy_store, tmp_path, capsys, monkeypatch):
    _no_model_load(monkeypatch)
    song = write(tmp_path / "song.wav", tone(4.0))
    (tmp_path / "a_file").write_text("x")
    for out, reason in ((tmp_path / "x.txt", "unknown timeline format '.txt'"),
                        (tmp_path / "a_file" / "t.json", "not a writable folder")):
        assert main(["classify", str(song), "--db", str(toy_store.path), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(out) in err[0] and reason in err[0], err


def test_classify_refuses_a_forged_header_at_once(toy_store, tmp_path, capsys, monkeypatch):
    import time

    import numpy as np
    import soundfile as sf

    _no_model_load(monkeypatch)
    forged = tmp_path / "one_hz.wav"
    sf.write(str(forged), np.zeros(66_150, dtype=np.int16), 1, subtype="PCM_16")  # 132 KB, "18 h"
    started = time.monotonic()
    assert main(["classify", str(forged), "--db", str(toy_store.path)]) == 2
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(forged) in err[0] and "sample rate 1 Hz" in err[0], err


def test_runs_lists_every_run_with_its_status(toy_store, capsys):
    toy_store.start_run(dict(run_id="listed", dataset_id=int(toy_store.dataset("toy")["dataset_id"]),
                             model="cnn", split="random", config={}))
    assert main(["runs", "--db", str(toy_store.path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].split()[:5] == ["run_id", "dataset", "model", "split", "status"]
    assert any(line.split()[:1] == ["listed"] and " running " in line for line in out)
    assert " runs: " in out[-1]


def test_commands_that_need_no_model_start_without_torch():
    """Building the parser and parsing `ingest` must not import torch, sklearn or librosa:
    they cost every command ~3 s and ~0.7 GB before it had parsed its arguments."""
    code = ("import sys, training.cli as cli; "
            "cli.build_parser().parse_args(['ingest', '--dataset', 'folder', '--root', '.']); "
            "print(sorted(m for m in ('torch', 'sklearn', 'librosa') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_model_is_one_line_naming_the_choices(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "--dataset", "demo", "--model", "nosuch"])
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'nosuch'" in err and "musicnn_probe" in err
