"""The installed package: `make setup` runs `pip install -e .`, which must give a working
`genrelens` command equal to `python -m training`, with the library's version."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import genre_core


def _console_script() -> Path:
    return Path(sys.executable).parent / "genrelens"


def test_distribution_metadata_matches_the_library():
    assert metadata.version("genrelens") == genre_core.__version__
    scripts = {ep.name: ep.value for ep in metadata.entry_points(group="console_scripts")}
    assert scripts.get("genrelens") == "training.cli:main"


def test_genrelens_command_lists_the_same_commands_as_python_m_training():
    script = _console_script()
    assert script.is_file(), f"{script} missing: run `make setup` (pip install -e .)"
    installed = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    module = subprocess.run([sys.executable, "-m", "training", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert installed.returncode == module.returncode == 0, installed.stderr
    for command in ("ingest", "train", "analyze", "faults", "classify", "demo"):
        assert command in installed.stdout
    assert installed.stdout.split("\n", 1)[1] == module.stdout.split("\n", 1)[1]  # usage line names the program


def test_package_ships_its_typing_marker():
    assert (Path(genre_core.__file__).parent / "py.typed").is_file()
