"""Maps, neighbours and bootstrap CIs at corpus size, before (exact) vs after (scalable).

One configuration per process, so that peak RSS can be read from outside:

    /work/shared/tools/resources .venv/bin/python -m benchmarks.analysis maps --n 10000 --impl after
    /work/shared/tools/resources .venv/bin/python -m benchmarks.analysis maps --n 100000 --impl before --methods umap
    /work/shared/tools/resources .venv/bin/python -m benchmarks.analysis bootstrap --n 1000000 --impl after

maps: N random 200-d embeddings (clustered, like a classifier's) -> the neighbours table
(k = 10) and the asked 2-D maps, timing each step. "before" is the code as it was: an exact
O(N^2 D) search for UMAP and another for the neighbours table, sklearn's t-SNE; "after" is
analyze's path today: one graph (pynndescent above ANN_THRESHOLD), openTSNE.
bootstrap: the three window-level CIs of `metric_rows` (1,000 resamples) over N windows of
10 genres; "before" draws every resample at once as one (n_boot, N) int64 index.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from genre_core.metrics import evaluation as ev
from genre_core.analysis import embeddings as emb

DIM = 200  # musicnn's penultimate width, the widest stored embedding used for maps


def clustered(n: int, dim: int = DIM, n_genres: int = 16, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 ReLU-like embeddings around one centre per genre."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_genres, dim)) * 1.5
    x = centres[rng.integers(0, n_genres, size=n)] + rng.standard_normal((n, dim))
    return np.maximum(x, 0).astype(np.float32)


def maps(n: int, impl: str, methods: tuple[str, ...], k: int = 10) -> dict[str, float]:
    """Seconds per step of neighbours + maps for n embeddings under `impl`."""
    vectors, ids = clustered(n), [f"t{i}" for i in range(n)]
    times: dict[str, float] = {}

    def timed(name, fn):
        started = time.perf_counter()
        out = fn()
        times[name] = time.perf_counter() - started
        print(f"  {name:<12} {times[name]:8.1f} s", flush=True)
        return out

    if impl == "after":
        graph = timed("knn graph", lambda: emb.knn_graph(vectors, max(k, emb.UMAP_NEIGHBOURS - 1)))
        timed("neighbours", lambda: emb.nearest_neighbours(ids, vectors, k=k, knn=graph))
        for method in methods:
            timed(method, lambda: emb.project(vectors, method=method, knn=graph))
        return times
    x = emb.unit_rows(vectors)
    timed("neighbours", lambda: emb.nearest_neighbours(ids, vectors, k=k,
                                                       knn=emb.knn_graph(x, k, threshold=n)))
    for method in methods:
        if method == "umap":  # the old project(): its own exact search, then UMAP
            timed("umap", lambda: emb.project(
                x, method="umap", knn=emb.knn_graph(x, emb.UMAP_NEIGHBOURS - 1, threshold=n)))
        elif method == "tsne":
            from sklearn.manifold import TSNE

            timed("tsne", lambda: TSNE(n_components=2, perplexity=30.0, init="pca",
                                       random_state=0).fit_transform(x))
        else:
            timed(method, lambda: emb.project(x, method=method))
    return times


def _one_draw_ci(y_true, y_x, metric_fn, n_boot=1000, alpha=0.05, seed=0):
    """bootstrap_ci as it was: all n_boot resamples drawn at once, then scored in chunks."""
    n = len(y_true)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))  # (R, N) int64
    per_row = n * max(1, int(np.prod(y_x.shape[1:])))
    chunk = max(1, ev._BOOT_CHUNK_ELEMENTS // per_row)
    values = np.concatenate([np.asarray(metric_fn(y_true[part], y_x[part])).reshape(-1)
                             for part in np.array_split(idx, -(-n_boot // chunk))])
    return tuple(np.quantile(values, [alpha / 2, 1 - alpha / 2]))


def bootstrap(n: int, impl: str, n_boot: int = 1000, n_classes: int = 10,
              metrics: tuple[str, ...] = ("accuracy", "macro_f1", "top2")) -> dict[str, tuple]:
    """The window-level CIs of metric_rows (accuracy, macro-F1, top-2) for n windows."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, n_classes, size=n)
    probs = rng.dirichlet(np.ones(n_classes), size=n)  # (N, C)
    probs[np.arange(n), y] += 0.3  # a classifier right ~60% of the time
    y_pred = probs.argmax(axis=1)
    ci = ev.bootstrap_ci if impl == "after" else _one_draw_ci
    out = {}
    for name, fn, y_x in (("accuracy", ev.batch_accuracy, y_pred),
                          ("macro_f1", ev.batch_macro_f1(n_classes), y_pred),
                          ("top2", ev.batch_top_k(2), probs)):
        if name not in metrics:
            continue
        started = time.perf_counter()
        out[name] = ci(y, y_x, fn, n_boot=n_boot, seed=0)
        print(f"  {name:<9} [{out[name][0]:.4f}, {out[name][1]:.4f}] "
              f"{time.perf_counter() - started:6.1f} s", flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.analysis", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["maps", "bootstrap"])
    parser.add_argument("--n", type=int, required=True, help="embeddings (maps) or windows")
    parser.add_argument("--impl", choices=["before", "after"], default="after")
    parser.add_argument("--methods", default="tsne,umap",
                        help="maps: comma-separated ('' = neighbours only)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap: resamples")
    parser.add_argument("--metrics", default="accuracy,macro_f1,top2",
                        help="bootstrap: comma-separated")
    args = parser.parse_args(argv)
    print(f"{args.what} n={args.n:,} impl={args.impl}", flush=True)
    started = time.perf_counter()
    if args.what == "maps":
        maps(args.n, args.impl, tuple(m for m in args.methods.split(",") if m))
    else:
        bootstrap(args.n, args.impl, n_boot=args.n_boot, metrics=tuple(args.metrics.split(",")))
    print(f"  total        {time.perf_counter() - started:8.1f} s")


if __name__ == "__main__":
    main()
