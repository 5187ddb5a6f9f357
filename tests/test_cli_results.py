"""The CLI around results: list what the database holds, move results in and out, share them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.cli import main


@pytest.fixture()
def db(writable_app_db):
    return str(writable_app_db)


def test_version_and_datasets_and_runs(db, app_db, capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.split()[-1][0].isdigit()
    assert main(["datasets", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "toy" in out and "ten" in out and out.strip().endswith("tracks")
    assert main(["runs", "--db", db, "--status", "complete"]) == 0
    out = capsys.readouterr().out
    assert app_db["toy_run"] in out and "[" in out  # accuracy with its interval
    assert main(["runs", "--db", db, "--status", "failed"]) == 0
    assert "ten-failed" in capsys.readouterr().out
    assert main(["runs", "--db", db, "--dataset", "toy", "--status", "failed"]) == 0
    assert "no runs with status failed" in capsys.readouterr().out


def test_export_import_report_and_ensemble_round_trip(db, app_db, tmp_path, capsys):
    run = app_db["toy_run"]
    assert main(["export", "--run", run, "--out", str(tmp_path / "x"), "--db", db, "-q"]) == 0
    preds = pd.read_parquet(tmp_path / "x" / "predictions.parquet")
    test = preds[preds.split == "test"].drop(columns=["label", "predicted", "correct"])
    test.to_csv(tmp_path / "mine.csv", index=False)
    assert main(["import-predictions", "--dataset", "toy", "--file", str(tmp_path / "mine.csv"),
                 "--model", "elsewhere", "--db", db]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    imported = line.split()[2].rstrip(":")
    assert line.startswith("imported run") and "elsewhere" in imported
    assert main(["ensemble", "--runs", *app_db["ten_runs"][:3], "--db", db]) == 0
    assert "McNemar" in capsys.readouterr().out
    assert main(["report", "--run", imported, "--out", str(tmp_path / "r.html"), "--db", db]) == 0
    assert "<audio" in (tmp_path / "r.html").read_text() or "No test song" in (tmp_path / "r.html").read_text()


def test_bad_import_exits_2_with_one_line_naming_the_file(db, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"track_id": ["ghost"], "predicted": ["low"]}).to_csv(bad, index=False)
    assert main(["import-predictions", "--dataset", "toy", "--file", str(bad), "--model", "m", "--db", db]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and "not in the dataset" in err[0]


def test_quiet_keeps_only_the_result_on_stdout(db, app_db, tmp_path, capsys):
    assert main(["export", "--run", app_db["toy_run"], "--out", str(tmp_path / "q"), "--format", "csv",
                 "--db", db, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.count("\n") == 1
    assert np.isfinite(pd.read_csv(tmp_path / "q" / "metrics.csv").value).all()


def test_options_that_lived_only_in_code_are_on_the_command_line(tmp_path, capsys):
    from training.cli import build_parser, demo_root

    parser = build_parser()
    train = parser.parse_args(["train", "--dataset", "d", "--model", "cnn", "--k", "3", "--window", "2.5",
                               "--hop", "1", "--representation", "mfcc"])
    assert (train.k, train.window_s, train.hop_s, train.representation) == (3, 2.5, 1.0, "mfcc")
    analyze = parser.parse_args(["analyze", "--run", "r", "--neighbours", "5", "--no-taggrams", "--device", "cpu"])
    assert (analyze.neighbours, analyze.no_taggrams, analyze.device) == (5, True, "cpu")
    spread = parser.parse_args(["analyze", "--run", "r", "--engine", "ray", "--workers", "2"])
    assert (spread.engine, spread.workers) == ("ray", 2)
    assert parser.parse_args(["classify", "x.wav", "--switch-penalty", "3"]).switch_penalty == 3.0
    # demo keeps its corpus beside its database; synth writes no database, so takes no --db
    assert demo_root(parser.parse_args(["demo", "--db", str(tmp_path / "elsewhere" / "g.duckdb")])) == \
        tmp_path / "elsewhere" / "demo"
    with pytest.raises(SystemExit) as done:
        parser.parse_args(["synth", "--out", str(tmp_path), "--db", "x.duckdb"])
    assert done.value.code == 2 and "--db" in capsys.readouterr().err
