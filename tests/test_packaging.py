"""The installed package: `make setup` runs `pip install -e .`, which must give a working
`genrelens` command equal to `python -m training`, with the library's version."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import genre_core
from tests.helpers import CHROMIUM, launch_chromium, serving

ROOT = Path(__file__).resolve().parent.parent


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


def test_the_wheel_lists_every_package():
    """pyproject.toml names its packages (the app's folder is mapped, which rules out
    `packages.find`): a new subpackage left off that list would be missing from the wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for package in ("genre_core", "training")
             for p in (ROOT / package).rglob("__init__.py")}
    assert found <= listed
    assert {"genrelens_app", "genrelens_app.pages"} <= listed


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """The project built as a wheel and installed (without dependencies: the venv has them)
    into a folder outside the checkout, which goes first on PYTHONPATH."""
    folder = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools writes build/ and *.egg-info into the tree it builds.
    source = folder / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "data", "artifacts", "build", "*.egg-info", "__pycache__", "tests", "benchmarks"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(folder / "dist"), str(source)], check=True, timeout=300, cwd=folder)
    wheel = next((folder / "dist").glob("genrelens-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                    str(folder / "site"), str(wheel)], check=True, timeout=300, cwd=folder)
    return folder / "site"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)")
def test_genrelens_app_serves_every_page_from_an_installed_wheel(installed_wheel, app_db, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.test_browser import PAGES, no_errors, plots, settle

    env = {**os.environ, "PYTHONPATH": str(installed_wheel)}
    where = subprocess.run([sys.executable, "-c", "import genrelens_app, training; "
                            "print(list(genrelens_app.__path__)[0]); print(training.__file__)"],
                           capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(installed_wheel)) for line in where.stdout.split()), where.stdout
    command = [sys.executable, "-m", "training", "app", "--db", app_db["db"], "--address", "127.0.0.1"]
    with serving(command, tmp_path, env, port_flag="--port") as url, sync_api.sync_playwright() as p:
        browser = launch_chromium(p)
        tab = browser.new_page(viewport={"width": 1400, "height": 950})
        tab.set_default_timeout(60_000)
        for name in PAGES:
            tab.goto(f"{url}/{'' if name == 'overview' else name}")
            tab.wait_for_selector("h1")
            settle(tab)
            no_errors(tab)
            assert tab.inner_text("h1").strip()
            if name == "map":  # its scatter frame and plotly.js are package data, served from the wheel
                plots(tab)
        browser.close()
