"""python -m benchmarks.concepts --db PATH [--run RUN_ID] [--repeats R] [--null-sets M] [--seeds A B]

Concepts (TCAV, genre_core.analysis.concepts) on a demo database, checked against what the
synth put there: the cost of each stage, per genre the significant concepts with their p and
q values, which genre recipes of genre_core/datasets/synth/styles.py were recovered and which
were not, what pushes each misclassified test track, and the stability of the scores across
two seeds of the random sets. Reads the database only (the cache may gain descriptor tables). `--tags` adds concepts
from musicnn's 50 tags of each training track (minutes, not part of `analyze`).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import pandas as pd
import torch
from scipy import stats

from genre_core.analysis.concepts import DESCRIPTORS
from genre_core.analysis.tcav import TcavSettings


@dataclass(frozen=True)
class Recipe:
    genre: str
    concept: str
    expected: str  # "toward" | "not toward"
    why: str  # the styles.py fields it comes from


def _concept(column: str, side: str) -> str:
    """The concept the analysis names for one side ("high" | "low") of a descriptor column, so
    a recipe cannot drift from the names concepts.py gives."""
    descriptor = next(d for d in DESCRIPTORS if d.column == column)
    return descriptor.high if side == "high" else descriptor.low


RECIPES = tuple(Recipe(genre, _concept(column, side), expected, why) for genre, column, side, expected, why in (
    ("hiphop", "percussive_share", "high", "toward", "drums the loudest bus (levels 1.1), 808 kits"),
    ("classical", "percussive_share", "high", "not toward", "no drum kit: timpani on one bar in four"),
    ("classical", "percussive_share", "low", "toward", "no drum kit: timpani on one bar in four"),
    ("metal", "tempo", "high", "toward", "tempo 120-200 BPM, the fastest range"),
    ("reggae", "tempo", "low", "toward", "tempo 64-100 BPM"),
    ("hiphop", "tempo", "low", "toward", "tempo 76-104 BPM"),
    ("metal", "noisiness", "high", "toward", "overdriven guitars, drive 1.5-4.0"),
    ("rock", "noisiness", "high", "toward", "overdriven guitars, drive 1.2-3.0"),
    ("pop", "brightness", "high", "toward", "master EQ brightness 0.45-0.9"),
    ("disco", "brightness", "high", "toward", "master EQ brightness 0.45-0.9"),
    ("jazz", "brightness", "low", "toward", "master EQ brightness 0.2-0.65"),
    ("classical", "brightness", "low", "toward", "master EQ brightness 0.2-0.6"),
))
# Recipes no descriptor measures, so TCAV cannot be asked about them here.
UNTESTED = ("swing (hiphop 0.3, reggae 0.15 of a step)", "triplet 12-step grid (blues, jazz)",
            "four-on-the-floor kick (disco)", "reverb (classical 0.25-0.5 wet)")


def descriptor_rank(descriptors: pd.DataFrame, labels: pd.Series, genre: str, concept: str) -> str:
    """Where the genre's mean descriptor ranks among the genres, on the concept's side ("1/10":
    the genre is the most <concept> of all): does the corpus, as measured, carry the recipe?"""
    for d in DESCRIPTORS:
        if concept in (d.high, d.low):
            means = descriptors[d.column].groupby(labels.to_numpy()).mean()
            order = list(means.sort_values(ascending=concept == d.low).index)
            return f"{order.index(genre) + 1}/{len(order)}"
    return "?"


def recipe_check(table: pd.DataFrame, descriptors: pd.DataFrame | None = None,
                 labels: pd.Series | None = None) -> pd.DataFrame:
    """Each recipe beside what the test found: `found` is the direction when significant, else
    "none"; `recovered` whether that matches `expected`; `rank` (with descriptors and their
    tracks' labels) where the genre stands on that descriptor among all genres."""
    rows = []
    for recipe in RECIPES:
        match = table[(table.genre == recipe.genre) & (table.concept == recipe.concept)]
        row = match.iloc[0] if len(match) else None
        found = row.direction if row is not None and row.significant else "none"
        ok = found == "toward" if recipe.expected == "toward" else found != "toward"
        rank = descriptor_rank(descriptors, labels, recipe.genre, recipe.concept) if descriptors is not None else "?"
        rows.append(dict(genre=recipe.genre, concept=recipe.concept, expected=recipe.expected, found=found,
                         recovered=ok, p=None if row is None else row.p, q=None if row is None else row.q,
                         p_paper=None if row is None else row.p_paper, rank=rank, why=recipe.why))
    return pd.DataFrame(rows)


def _print_genres(table: pd.DataFrame) -> None:
    from genre_core.analysis.concepts import genre_concepts

    print("\nsignificant concepts per genre (q < alpha, Benjamini-Hochberg over every concept x genre):")
    for genre, rows in genre_concepts(table).items():
        print(f"  {genre}:")
        for r in rows.itertuples():
            print(f"    {r.direction:6s} {r.concept:34s} score {r.score:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] "
                  f"(random {r.random_score:.2f})  derivative {r.derivative:+.4f} (null {r.null_derivative:+.4f})  "
                  f"p {r.p:.2g}  q {r.q:.2g}  p_paper {r.p_paper:.2g}")
    quiet = sorted(set(table.genre) - set(table.genre[table.significant]))
    if quiet:
        print(f"  no significant concept: {', '.join(quiet)}")


def _print_calibration(inputs, settings) -> None:
    """The same tests on random sets of tracks as large as the concepts (no concept at all):
    how often each test calls them at p < 0.05, where 5 % is right."""
    import numpy as np

    from genre_core.analysis.concepts import concept_tests

    rng = np.random.default_rng(settings.seed)
    size = len(next(iter(inputs.pools.values())))
    fake = {f"random set {i}": rng.choice(inputs.n_train, size=size, replace=False) for i in range(len(inputs.pools))}
    table = concept_tests(type(inputs)(**{**vars(inputs), "pools": fake}), settings).table
    print(f"calibration on {len(fake)} random sets of {size} tracks x {table.genre.nunique()} genres: "
          f"p < 0.05 in {(table.p < 0.05).mean():.0%} of pairs (set-level test), "
          f"{(table.p_paper < 0.05).mean():.0%} (paper's test); q < 0.05: {int(table.significant.sum())}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--run", help="run id (default: the latest complete cnn run)")
    parser.add_argument("--repeats", type=int, default=TcavSettings.repeats)
    parser.add_argument("--null-sets", type=int, default=TcavSettings.null_sets)
    parser.add_argument("--seeds", type=int, nargs=2, default=(0, 1))
    parser.add_argument("--alpha", type=float, default=0.05, help="FDR level (looser only to see the mechanics)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tags", action="store_true", help="add musicnn tag concepts (slow: ~0.3 s per track)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from genre_core import paths
    from genre_core.analysis.concepts import (
        concept_stability, concept_tests, descriptor_table, explain_misclassified, prepare_concepts, track_tags,
    )
    from genre_core.features.cache import ShardCache
    from genre_core.store import open_store
    from genre_core.train.inference import load_run

    store = open_store(args.db, create=False)
    run_id = args.run or str(store.complete_runs(model="cnn").run_id.iloc[-1])
    started = time.perf_counter()
    loaded = load_run(store, run_id, "cpu")
    tracks = store.tracks(loaded.config.dataset)
    tracks = tracks[tracks.label.isin(loaded.classes)].reset_index(drop=True)
    predictions, cache = store.predictions(run_id), ShardCache(paths.cache_dir(args.db))
    tags, tags_s = None, 0.0
    if args.tags:
        began = time.perf_counter()
        tags = track_tags(tracks[~tracks.track_id.isin(predictions.track_id)], cache, progress=False)
        tags_s = time.perf_counter() - began
    inputs = prepare_concepts(loaded, tracks, predictions, cache, tags=tags, progress=False)
    runs = [concept_tests(inputs, TcavSettings(repeats=args.repeats, null_sets=args.null_sets, seed=seed,
                                               alpha=args.alpha)) for seed in args.seeds]
    began = time.perf_counter()
    why = explain_misclassified(inputs, runs[0])
    explain_s = time.perf_counter() - began
    table = runs[0].table
    one_seed = sum(inputs.seconds.values()) + runs[0].seconds + explain_s
    print(f"run {run_id} ({loaded.config.model}): {inputs.n_train} training tracks, {len(inputs.pools)} concepts, "
          f"{len(inputs.wrong)} misclassified test tracks, layer width {inputs.activations.acts.shape[1]}")
    print(f"cost: descriptors {inputs.seconds['descriptors']:.1f} s, activations {inputs.seconds['activations']:.1f} s "
          f"({len(inputs.activations.acts)} windows), tests {runs[0].seconds:.1f} s per seed "
          f"({args.repeats} repeats, {args.null_sets} null sets), explanations {explain_s:.1f} s, tags {tags_s:.1f} s; "
          f"one seed end to end {one_seed:.1f} s (wall with load and both seeds {time.perf_counter() - started:.1f} s)")
    _print_genres(table)
    paper_q = stats.false_discovery_control(table.p_paper.to_numpy(), method="bh")
    print(f"\nsignificant pairs: {int(table.significant.sum())} of {len(table)} by the set-level test; "
          f"{int((paper_q < 0.05).sum())} by the paper's test with the same correction")
    _print_calibration(inputs, TcavSettings(repeats=args.repeats, null_sets=args.null_sets, seed=99))
    train = tracks[~tracks.track_id.isin(predictions.track_id)].reset_index(drop=True)
    checks = recipe_check(table, descriptor_table(train, cache, progress=False), train.label)
    print("\nsynth recipes:")
    for r in checks.itertuples():
        mark = "recovered" if r.recovered else "NOT recovered"
        print(f"  {mark:13s} {r.genre:9s} {r.expected:10s} {r.concept:34s} found {r.found:6s} "
              f"p {r.p:.2g} q {r.q:.2g} p_paper {r.p_paper:.2g}  genre rank on it {r.rank}  ({r.why})")
    print(f"  {int(checks.recovered.sum())} of {len(checks)} recovered; not testable with these descriptors: "
          + "; ".join(UNTESTED))
    print(f"\nstability (seeds {args.seeds[0]} and {args.seeds[1]}): {concept_stability(table, runs[1].table).line()}")
    pushes = why[why.pushes_to_predicted.astype(bool)]
    print(f"\nmisclassified test tracks with a concept pushing them to the predicted genre: "
          f"{pushes.track_id.nunique()} of {len(inputs.wrong)}")
    for track_id, rows in pushes.groupby("track_id", sort=True):
        first = rows.iloc[0]
        concepts = ", ".join(f"{r.concept} ({r.derivative:+.3f})" for r in rows.itertuples())
        print(f"  {track_id}: {first.label} -> {first.predicted}: {concepts}")


if __name__ == "__main__":
    main()
