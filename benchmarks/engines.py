"""Engines side by side: tracks/s of ingest (file checks), extraction (decode + resample into
the cache at 22,050 Hz) and the faults scan (decode at the file's rate, fingerprint,
distortions) with 1 and 2 local worker processes and 2 Ray CPUs, on the same generated clips,
each configuration with a fresh database and cache (cold).

    python -m benchmarks engines [--tracks N] [--seconds S]
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.scale import generate
from genre_core import paths
from genre_core.datasets.ingest import IngestOptions, ingest
from genre_core.engine import EngineOptions
from genre_core.faults.detect import detect_faults
from genre_core.features.extract import extract, model_rate
from genre_core.store import open_store

CONFIGS = (("local", 1), ("local", 2), ("ray", 2))


def measure(corpus: Path, work: Path, engine: str, workers: int) -> dict:
    db = work / f"{engine}-{workers}" / "engines.duckdb"
    os.environ[paths.CACHE_ENV] = str(db.parent / "cache")
    store = open_store(db)
    started = time.perf_counter()
    summary = ingest(store, "folder", corpus, name="clips", progress=False,
                     options=IngestOptions(workers=workers, engine=engine))
    ingest_s = time.perf_counter() - started
    started = time.perf_counter()
    extract(store, "clips", model_rate("cnn"), engine=EngineOptions(engine, workers), progress=False)
    extract_s = time.perf_counter() - started
    started = time.perf_counter()
    detect_faults(store, "clips", progress=False, engine=EngineOptions(engine, workers))
    faults_s = time.perf_counter() - started
    n = summary.n_tracks
    return {"engine": engine, "workers": workers, "tracks": n, "ingest tracks/s": n / ingest_s,
            "extract tracks/s": n / extract_s, "faults scan tracks/s": n / faults_s}


def run(store, args) -> None:
    # --tracks is scale's list of sizes: engines measures one corpus, of the first size
    n, seconds = args.tracks[0], args.seconds if args.seconds != 15.0 else 5.0  # 15 s: the demo default
    work = Path(tempfile.mkdtemp(prefix="genrelens-engines-"))
    saved = os.environ.get(paths.CACHE_ENV)
    try:
        corpus = work / "corpus"
        generate(corpus, n, seconds, workers=os.cpu_count() or 1)
        rows = []
        for engine, workers in CONFIGS:
            try:
                rows.append(measure(corpus, work, engine, workers))
            except ImportError as exc:  # ray missing: say so, keep the local rows
                rows.append({"engine": engine, "workers": workers, "tracks": 0, "error": str(exc)})
        print(f"{n} clips x {seconds:g} s (16-bit WAV at 16 kHz), cold cache each time, "
              f"{os.cpu_count()} CPUs\n")
        print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".1f"))
    finally:
        if saved is None:
            os.environ.pop(paths.CACHE_ENV, None)
        else:
            os.environ[paths.CACHE_ENV] = saved
        shutil.rmtree(work, ignore_errors=True)
