"""Label flags worth reviewing (issue 27): on the demo corpus and two larger synthetic corpora
(other seeds, 60 clips per genre: >= 10 planted mislabels each), the default label check's
recall of the corpus' misfiled music (metadata.csv: a clip whose true genre is another genre
than its label -- the planted mislabels and the cross-genre exact copies) and its precision (a
flag is right when the label is wrong: misfiled music, or a planted clip that is not music), with
and without the artist evidence, and the precision at k it estimates for itself beside the
real one. `--label-kfold` adds a musicnn_probe k-fold run per corpus (the demo protocol's
strongest model) to the evidence, as a user's `train --split kfold` would.

Each corpus lives in data/bench/labels/<name>/ with its own database and cache; a second run
reuses the audio, the cached tables and embeddings, and the k-fold runs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from genre_core import paths
from genre_core.faults import labels as label_check
from genre_core.faults.known import planted_faults
from genre_core.features.cache import ShardCache
from genre_core.store import open_store

CORPORA = (("demo", 0, 24), ("seed 1", 1, 60), ("seed 2", 2, 60))  # (name, seed, clips per genre)
KS = (5, 10, 20)


def run(store, args) -> None:
    rows, outlook = [], []
    for name, seed, per_genre in CORPORA:
        folder = Path(args.db).parent / "labels" / name.replace(" ", "")
        corpus = _corpus(folder, seed, per_genre, args.seconds)
        started = time.perf_counter()
        evidence = _evidence(corpus, args)
        seconds = time.perf_counter() - started
        truth, not_music = _wrongly_labelled(corpus.dataset("bench")["root"], evidence.track_ids)
        for artists in (False, True):
            flags = label_check.label_issues(evidence, corpus.tracks("bench") if artists else None,
                                             corpus.track_genres("bench"))
            real = flags.track_id.isin(truth | not_music).to_numpy()
            what = "audio + artists" if artists else "audio alone"
            rows.append(dict(corpus=f"{name} ({len(evidence.track_ids)} clips)", evidence=what, mislabelled=len(truth),
                             flags=len(flags), real=int(real.sum()),
                             precision=real.mean() if len(flags) else float("nan"),
                             recall=len(set(flags.track_id) & truth) / max(len(truth), 1),
                             check_s=round(seconds, 1)))
            for r in label_check.expected_real(flags.score, KS).itertuples():
                outlook.append(dict(corpus=name, evidence=what, k=r.k, expected_real=round(r.expected_real, 1),
                                    real=int(real[: r.k].sum())))
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".2f"))
    print("\nprecision at k: the check's own estimate (sum of the top k flags' scores) vs the truth\n")
    print(pd.DataFrame(outlook).to_markdown(index=False))
    sources = "every complete k-fold sweep + the quick check" if args.label_kfold else "the quick check alone"
    print(f"\n(evidence: {sources}; check_s: the label check's seconds, embeddings and tables cached or not)")


def _corpus(folder: Path, seed: int, per_genre: int, seconds: float):
    from genre_core.datasets.ingest import ingest
    from genre_core.datasets.synth.corpus import SynthConfig, generate_corpus

    root = folder / "audio"
    if not (root / "metadata.csv").is_file():
        generate_corpus(root, config=SynthConfig(per_genre=per_genre, seconds=seconds, seed=seed), progress=True)
    store = open_store(folder / "g.duckdb")
    if not store.has_dataset("bench"):
        ingest(store, "synth", root, name="bench")
    return store


def _evidence(store, args) -> label_check.OutOfFold:
    """The out-of-fold evidence `faults` would use: the quick check and, with --label-kfold,
    a musicnn_probe k-fold sweep (trained once, then reused)."""
    cache = ShardCache(paths.cache_dir(store.path))
    quick = label_check.quick_out_of_fold(store.tracks("bench"), cache, device=args.device)
    sources = []
    if args.label_kfold:
        dataset_id = int(store.dataset("bench")["dataset_id"])
        if not label_check.kfold_sources(store.kfold_test_predictions(dataset_id)):
            from genre_core.train.fit import train_command

            train_command(store, "bench", "musicnn_probe", split="kfold", device=args.device)
        sources = label_check.kfold_sources(store.kfold_test_predictions(dataset_id))
    return label_check.combine([*sources, quick])


def _wrongly_labelled(root: str, track_ids: list[str]) -> tuple[set[str], set[str]]:
    """(misfiled music: the corpus' known label issues -- planted mislabels and cross-genre
    copies, faults.known -- the mislabels to find; clips that are not music at all: a flag on
    one is right, but finding them is the not_music check's job)."""
    known = planted_faults(root, track_ids)
    return set(known.track_id[known.kind == "label_issue"]), set(known.track_id[known.kind == "not_music"])


def add_arguments(parser) -> None:
    parser.add_argument("--label-kfold", action="store_true",
                        help="labels: add a musicnn_probe k-fold run per corpus to the label check's evidence")
