import subprocess
import sys

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
