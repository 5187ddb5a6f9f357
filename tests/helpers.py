"""Small audio made on the spot for tests, and where the shared reference files live."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

SR = 22050

# The team's reference data (GTZAN index, Sturm's repetition table, musicnn outputs) sits in
# shared/reference beside the checkout; a clone elsewhere names it with $GENRELENS_REFERENCE.
_REFERENCE_DIRS = (os.environ.get("GENRELENS_REFERENCE", ""),
                   str(Path(__file__).resolve().parents[2] / "shared" / "reference"),
                   "/work/shared/reference")


def reference_file(name: str) -> Path:
    """The first existing `name` among the reference folders (the default one if none has it)."""
    candidates = [Path(d) / name for d in _REFERENCE_DIRS if d]
    return next((p for p in candidates if p.is_file()), candidates[0])


def tone(seconds: float = 2.0, freq: float = 440.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path: Path, y: np.ndarray, sr: int = SR, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, sr, **kwargs)
    return path


BANDS = {"low": (80.0, 300.0), "mid": (600.0, 1500.0), "high": (3000.0, 6000.0)}


def band_clip(genre: str | tuple[float, float], seed: int, seconds: float = 4.0, sr: int = SR) -> np.ndarray:
    """A learnable toy 'genre': a few random partials inside the genre's band (a BANDS name or
    (low, high) Hz), plus noise."""
    rng = np.random.default_rng(seed)
    lo, hi = BANDS[genre] if isinstance(genre, str) else genre
    t = np.arange(int(seconds * sr)) / sr
    freqs = rng.uniform(lo, hi, size=4)
    y = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) for f in freqs)
    y = y / 4 * 0.5 + 0.02 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def make_toy_corpus(root: Path, per_genre: int = 8, seconds: float = 4.0) -> Path:
    """`<root>/<genre>/<genre>_NN.wav` for the three BANDS genres."""
    for g_index, genre in enumerate(BANDS):
        for i in range(per_genre):
            write(root / genre / f"{genre}_{i:02d}.wav", band_clip(genre, 100 * g_index + i, seconds))
    return root


def make_crossover_corpus(root: Path, per_genre: int = 8, crossovers: int = 4, seconds: float = 4.0,
                          seed: int = 0) -> Path:
    """A folder corpus with multi-label tracks: `make_toy_corpus` plus, per ordered pair of BANDS
    genres, `crossovers` mixes of one clip of each in the first genre's folder, listed in
    `<root>/labels.csv` (path, also) with the second genre as the extra one."""
    make_toy_corpus(root, per_genre, seconds)
    genres, lines = list(BANDS), ["path,also"]
    rng = np.random.default_rng(seed)
    for a in genres:
        for b in genres:
            if a == b:
                continue
            for i in range(crossovers):
                seeds = rng.integers(1000, 10_000, size=2)
                y = 0.5 * band_clip(a, int(seeds[0]), seconds) + 0.5 * band_clip(b, int(seeds[1]), seconds)
                rel = f"{a}/{a}_{b}_{i:02d}.wav"
                write(root / rel, y)
                lines.append(f"{rel},{b}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def make_fma_corpus(root: Path, columns: list[tuple[str, str]], rows: dict[int, list],
                    subsets: dict[str, list[int]] | None = None, seconds: float = 1.5) -> Path:
    """An FMA layout under `root`: `fma_metadata/tracks.csv` with FMA's two-level header (the
    (group, field) `columns`) and one row per `rows` item (track number: values), and a tone as
    `fma_<subset>/NNN/NNNNNN.mp3` for each track number `subsets` lists (default: all in small)."""
    table = pd.DataFrame.from_dict(rows, orient="index", columns=pd.MultiIndex.from_tuples(columns))
    table.index.name = "track_id"
    (root / "fma_metadata").mkdir(parents=True)
    table.to_csv(root / "fma_metadata" / "tracks.csv")
    for subset, numbers in (subsets or {"small": list(rows)}).items():
        for number in numbers:
            write(root / f"fma_{subset}" / f"{number:06d}"[:3] / f"{number:06d}.mp3", tone(seconds))
    return root


def writable_copy(database: str | Path, folder: Path) -> Path:
    """A copy of `database` (same file name) in `folder`, for a test that writes to it: the
    session's shared databases stay as built."""
    copy = Path(folder) / Path(database).name
    shutil.copyfile(database, copy)
    return copy


def prob_table(preds: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Stored predictions as a table to import: track_id and one prob_<genre> column per class."""
    probs = np.array(preds["probs"].tolist())
    return pd.DataFrame({"track_id": preds["track_id"],
                         **{f"prob_{g}": probs[:, j] for j, g in enumerate(classes)}})


CHROMIUM = Path("/usr/bin/chromium")
# Chromium's own calls home are refused by this machine's closed network, many at a time.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update"]


def launch_chromium(playwright):
    """Debian's chromium, headless, through a playwright instance (`sync_playwright()` as p)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serving_app(db):
    """The app (server.py, behind its Content-Security-Policy) on database `db`, headless: its
    base URL while the with-block runs."""
    import os
    import sys

    command = [sys.executable, "-m", "streamlit", "run", "server.py", "--server.headless", "true",
               "--browser.gatherUsageStats", "false"]
    return serving(command, Path(__file__).resolve().parents[1], {**os.environ, "GENRELENS_DB": str(db)})


@contextmanager
def serving(command: list[str], cwd: Path, env: dict, port_flag: str = "--server.port", timeout_s: float = 60):
    """A Streamlit server started by `command` (plus `port_flag` and a free port), its base URL
    once its health check answers; stopped on exit."""
    port = free_port()
    proc = subprocess.Popen([*command, port_flag, str(port)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError(f"streamlit did not start: {proc.stdout.read().decode()[-2000:]}")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


APP = Path(__file__).resolve().parent.parent / "app.py"


def open_app(monkeypatch, db_path, **session):
    """The app (AppTest) on database `db_path`, with `session` state set, after its first run."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("GENRELENS_DB", str(db_path))
    at = AppTest.from_file(str(APP), default_timeout=90)
    for key, value in session.items():
        at.session_state[key] = value
    return at.run()
