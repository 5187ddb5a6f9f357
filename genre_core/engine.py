"""Where batch work runs: worker processes on this machine (the default) or a Ray cluster.

`map_chunks(fn, chunks, ...)` calls `fn(chunk, *args)` for every chunk and yields
`(chunk index, result)` in completion order, with a bounded number of chunks in flight, so memory
stays flat whatever the corpus size. Results come back to the caller (the driver), which alone
writes to DuckDB: DuckDB allows one writing process, and a cluster's workers may not even see the
database's disk. With Ray each result crosses the wire as an Arrow table (`fn` returns a list of
row dicts; the driver gets the same list back), which Ray's object store moves without pickling
row by row.

Ray starts a local instance when no address is given (`num_cpus` = workers, no dashboard, no
usage statistics), or joins a running cluster with `ray_address="auto"` / `"HOST:PORT"` (started
by the cluster's own tooling: `ray start`, KubeRay, `ray up`). Every file path a task reads must
be visible to the workers under the same name (shared storage).
"""

from __future__ import annotations

import math
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any, Callable, Iterator, Sequence

from genre_core.workers import init_worker

ENGINES = ("local", "ray")
IN_FLIGHT_PER_WORKER = 4
ITEMS_PER_AUTO_WORKER = 50  # a worker costs ~1 s to start: with fewer items each, in-process wins


@dataclass(frozen=True)
class EngineOptions:
    engine: str = "local"  # local | ray
    workers: int | None = None  # local processes / Ray CPUs; None: one per CPU
    ray_address: str | None = None  # None: a local Ray instance; "auto" or HOST:PORT: a cluster
    preload: tuple[str, ...] = ()  # modules a local forkserver imports once for all workers
    gpus_per_task: float = 0.0  # Ray: GPUs each task asks for (model work on a GPU cluster)

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ValueError(f"--engine must be one of {', '.join(ENGINES)}, not {self.engine!r}")


def default_workers() -> int:
    """One worker per CPU this process may run on (cgroup/affinity aware where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def map_chunks(fn: Callable[..., list[dict]], chunks: Sequence[Any], *, args: tuple = (),
               options: EngineOptions = EngineOptions()) -> Iterator[tuple[int, list[dict]]]:
    """(index, fn(chunks[index], *args)) for every chunk, in completion order."""
    if not chunks:
        return iter(())
    if options.engine == "ray":
        return _ray_map(fn, chunks, args, options)
    workers = min(options.workers or default_workers(), len(chunks))
    if workers <= 1:  # in-process: no start-up cost for small jobs
        return ((i, fn(chunk, *args)) for i, chunk in enumerate(chunks))
    return _local_map(fn, chunks, args, workers, options.preload)


def _local_map(fn, chunks, args, workers: int, preload: tuple[str, ...]) -> Iterator[tuple[int, list[dict]]]:
    pool = ProcessPoolExecutor(workers, mp_context=_context(preload), initializer=init_worker)
    try:
        todo = iter(enumerate(chunks))
        pending = {pool.submit(fn, chunk, *args): i for i, chunk in islice(todo, IN_FLIGHT_PER_WORKER * workers)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield pending.pop(future), future.result()
                for i, chunk in islice(todo, 1):
                    pending[pool.submit(fn, chunk, *args)] = i
    finally:  # on Ctrl-C or an error, drop queued chunks instead of finishing them
        pool.shutdown(wait=True, cancel_futures=True)


def _context(preload: tuple[str, ...]):
    """forkserver where available: workers fork from a clean process (never from one holding
    DuckDB or torch threads) that imported the worker modules once, not once per worker."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["genre_core.workers", *preload])
    return ctx


# -- Ray ---------------------------------------------------------------------------------------

def _as_arrow(fn, chunk, *args):
    """Run on a Ray worker: rows -> one Arrow table (columnar, zero-copy in the object store)."""
    import pyarrow as pa

    rows = fn(chunk, *args)
    # Columns from every row's keys (a failed check may carry fewer), each column's type
    # inferred from all its values; a key a row lacks reads back as None.
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return pa.table({k: [row.get(k) for row in rows] for k in keys})


def ensure_ray(options: EngineOptions):
    """The ray module, connected: to `ray_address`, or to a fresh local instance."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phoning home, here or in CI
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is in requirements.txt
        raise RuntimeError("--engine ray needs the ray package (pip install 'ray[data]')") from exc
    if not ray.is_initialized():
        if options.ray_address:
            ray.init(address=options.ray_address, log_to_driver=False, configure_logging=False)
        else:
            ray.init(num_cpus=options.workers or default_workers(), include_dashboard=False,
                     log_to_driver=False, configure_logging=False,
                     # Workers import genre_core from this checkout, as the local engine's do.
                     runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(
                         filter(None, [_project_root(), os.environ.get("PYTHONPATH")]))}})
    return ray


def _project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ray_map(fn, chunks, args, options: EngineOptions) -> Iterator[tuple[int, list[dict]]]:
    ray = ensure_ray(options)
    task = ray.remote(num_cpus=1, num_gpus=options.gpus_per_task, max_retries=2)(_as_arrow)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    in_flight = max(1, min(len(chunks), IN_FLIGHT_PER_WORKER * cpus))
    todo = iter(enumerate(chunks))
    pending = {task.remote(fn, chunk, *args): i for i, chunk in islice(todo, in_flight)}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                yield pending.pop(ref), ray.get(ref).to_pylist()
                for i, chunk in islice(todo, 1):
                    pending[task.remote(fn, chunk, *args)] = i
    finally:
        for ref in pending:  # Ctrl-C or an error: queued work is dropped, not finished
            ray.cancel(ref, force=True)


def chunked(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def auto_workers(n_items: int, items_per_worker: int = ITEMS_PER_AUTO_WORKER) -> int:
    """Worker processes worth starting for n_items (each costs ~1 s to start)."""
    return min(default_workers(), max(1, math.ceil(n_items / items_per_worker)))


def sized(engine: EngineOptions, n_items: int) -> EngineOptions:
    """`engine` with its worker count filled in for n_items when the caller left it open."""
    return engine if engine.workers is not None else replace(engine, workers=auto_workers(n_items))
