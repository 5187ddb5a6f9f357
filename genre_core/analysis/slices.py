"""Failure slices: where a run fails systematically, in musical terms.

A slice is every test track with one attribute value ("genre disco", "tempo under 95 bpm") or
with two values of different attributes ("genre blues and tempo under 95 bpm"); attributes are
in slice_attributes. Each slice is tested against the rest of the tracks where its attributes
are known with a one-sided Fisher exact test (more errors than chance would put there), and
the Benjamini-Hochberg procedure controls the false discovery rate, so a slice of 3 unlucky
tracks does not top the list by chance. Single values and pairs are two families, each given
half of alpha (FAMILIES): the pairs outnumber the single values about 7 to 1 on the demo, and
one pooled correction let them drown the single values they refine (the demo's 4 disco test
tracks, every one by an artist absent from training and every one wrong, p = 0.0006: q = 0.10
among 342 pooled slices, 0.025 among its 42 single values). Halving alpha per family keeps the
chance that any slice passes when nothing is wrong at alpha or less (Bonferroni over the two);
decided after seeing that demo result, and measured on null data over 200 seeds (tests). Slices are ranked significant
first, then by how far their accuracy falls below the run's (below that of the tracks they were
tested among, where an attribute is known for some tracks only).

`find_slices` is the pure statistics; `slice_tables` gathers a run's inputs and is what
`analyze` stores (table failure_slices); `significant_slices` reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from genre_core.metrics.multiple_testing import DEFAULT_ALPHA, benjamini_hochberg, fisher_greater

MIN_TRACKS = 3  # smaller slices cannot reach significance among many; pair members need as many
MAX_PAIR_VALUES = 20  # attributes with more values (artists) form slices alone, not in pairs
FAMILIES = 2  # single values, pairs: each tested at alpha / FAMILIES (see the module docstring)
MAX_PAIRS = 300  # pairs tested at most, the largest first (chosen by size, never by errors)
KEEP_NOT_SIGNIFICANT = 100  # rows stored beyond the significant ones, best ranked first
SPLIT = "test"  # the tracks sliced: never seen in training, never used to pick an epoch

COLUMNS = ["rank", "attributes", "attribute_values", "description", "same_tracks_as", "n", "errors",
           "accuracy", "rest_accuracy", "run_accuracy", "run_tracks", "tested_among", "p_value", "q_value",
           "significant", "n_tested", "n_pairs_left_out", "alpha", "split", "track_ids"]


@dataclass
class _Candidate:
    members: tuple[tuple[str, str], ...]  # (attribute, value words), one or two
    tracks: np.ndarray  # (n,) positions of its tracks
    population: np.ndarray  # (N,) bool: tracks where every attribute of the slice is known
    same_as: list[str]  # other single attributes selecting exactly these tracks


def find_slices(wrong: pd.Series, attributes: pd.DataFrame, *, alpha: float = DEFAULT_ALPHA,
                min_tracks: int = MIN_TRACKS, max_pairs: int = MAX_PAIRS) -> pd.DataFrame:
    """Every slice tested, ranked (COLUMNS; `rank` 1 first).

    `wrong` (index track_id, bool): whether the run got each track wrong; `attributes`
    (index track_id, one column per attribute, value words or None): slice_attributes. A
    slice needs `min_tracks` tracks and fewer than all where it is known; a pair joins two
    attributes of at most MAX_PAIR_VALUES values each, both members with `min_tracks`. Slices
    holding the same tracks are tested once, under the first name (singles before pairs, in
    column order), the others listed in `same_tracks_as`. At most `max_pairs` pairs are tested,
    the largest; `n_pairs_left_out` says how many were not. `n_tested` counts every slice
    tested, the m of the false discovery rate control.
    """
    attributes = attributes.reindex(wrong.index)
    errors = wrong.to_numpy(dtype=bool)
    factorized = {a: pd.factorize(attributes[a]) for a in attributes.columns}  # (codes, -1: unknown), words
    codes, words = ({a: f[i] for a, f in factorized.items()} for i in (0, 1))
    singles, seen = _singles(codes, words, min_tracks)
    pairs = _pairs(codes, words, min_tracks, seen)
    families = [_tested(errors, family, alpha / FAMILIES, wrong.index) for family in (singles, pairs[:max_pairs])
                if family]
    frame = _ranked(pd.concat(families, ignore_index=True) if families else _tested(errors, [], alpha, wrong.index))
    frame["n_pairs_left_out"] = max(0, len(pairs) - max_pairs)
    return frame[COLUMNS]


def _singles(codes: dict, words: dict, min_tracks: int) -> tuple[list[_Candidate], dict[bytes, _Candidate]]:
    seen: dict[bytes, _Candidate] = {}
    out = []
    for attr, code in codes.items():
        known = code >= 0
        for value in range(len(words[attr])):
            tracks = np.flatnonzero(code == value)
            if not min_tracks <= len(tracks) < known.sum():
                continue
            key = tracks.tobytes()
            if key in seen:  # e.g. a genre whose test tracks are one artist's
                seen[key].same_as.append(str(words[attr][value]))
                continue
            seen[key] = _Candidate(((attr, str(words[attr][value])),), tracks, known, [])
            out.append(seen[key])
    return out, seen


def _pairs(codes: dict, words: dict, min_tracks: int, seen: dict[bytes, _Candidate]) -> list[_Candidate]:
    """Pairs of values of two attributes, largest first, without those equal to a slice before."""
    few = [a for a in codes if len(words[a]) <= MAX_PAIR_VALUES]
    found = []
    for a, b in combinations(few, 2):
        ca, cb = codes[a], codes[b]
        known = (ca >= 0) & (cb >= 0)
        size_a = np.bincount(ca[ca >= 0], minlength=len(words[a]))
        size_b = np.bincount(cb[cb >= 0], minlength=len(words[b]))
        cell = np.where(known, ca * len(words[b]) + cb, -1)
        counts = np.bincount(cell[known], minlength=len(words[a]) * len(words[b]))
        for flat in np.flatnonzero(counts >= min_tracks):
            va, vb = divmod(int(flat), len(words[b]))
            if size_a[va] >= min_tracks and size_b[vb] >= min_tracks and counts[flat] < known.sum():
                found.append((-int(counts[flat]), len(found), a, va, b, vb, known))
    out = []
    for _, _, a, va, b, vb, known in sorted(found, key=lambda f: f[:2]):
        tracks = np.flatnonzero((codes[a] == va) & (codes[b] == vb))
        if tracks.tobytes() in seen:
            continue
        seen[tracks.tobytes()] = candidate = _Candidate(
            ((a, str(words[a][va])), (b, str(words[b][vb]))), tracks, known, [])
        out.append(candidate)
    return out


def _tested(errors: np.ndarray, candidates: list[_Candidate], alpha: float, ids: pd.Index) -> pd.DataFrame:
    if not candidates:
        return pd.DataFrame(columns=[c for c in COLUMNS if c != "n_pairs_left_out"])
    n = np.array([len(c.tracks) for c in candidates])
    wrong_in = np.array([errors[c.tracks].sum() for c in candidates])
    among = np.array([c.population.sum() for c in candidates])
    wrong_among = np.array([errors[c.population].sum() for c in candidates])
    p = fisher_greater(wrong_in, n, total_errors=wrong_among, total=among)
    q = benjamini_hochberg(p)
    run_accuracy = 1 - errors.mean()
    frame = pd.DataFrame({
        "attributes": [[a for a, _ in c.members] for c in candidates],
        "attribute_values": [[v for _, v in c.members] for c in candidates],
        "description": [" and ".join(v for _, v in c.members) for c in candidates],
        "same_tracks_as": [list(c.same_as) for c in candidates],
        "n": n, "errors": wrong_in, "accuracy": 1 - wrong_in / n,
        "rest_accuracy": 1 - (wrong_among - wrong_in) / (among - n), "run_accuracy": run_accuracy,
        "run_tracks": len(errors),
        "tested_among": among, "p_value": p, "q_value": q, "significant": q <= alpha,
        "n_tested": len(candidates), "alpha": alpha, "split": SPLIT,
        "track_ids": [list(ids[c.tracks].astype(str)) for c in candidates],
    })
    # Below the accuracy of the tracks it was tested among: the run's, unless its attribute is
    # known for some tracks only (taggrams of a sample that takes misclassified tracks first).
    frame["gap"] = (1 - wrong_among / among) - frame["accuracy"]
    return frame


def _ranked(frame: pd.DataFrame) -> pd.DataFrame:
    """Significant first, then by the gap below the tracks tested among; `rank` from 1."""
    if frame.empty:
        return frame.assign(rank=pd.Series(dtype=int))
    frame = frame.sort_values(["significant", "gap", "p_value", "n"], ascending=[False, False, True, False],
                              kind="stable").reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame.drop(columns="gap")


def stored_rows(slices: pd.DataFrame, keep_others: int = KEEP_NOT_SIGNIFICANT) -> pd.DataFrame:
    """What is stored of a ranked slice table: every significant slice and the `keep_others`
    best ranked of the rest (n_tested still counts them all)."""
    significant = slices[slices["significant"].astype(bool)]
    return pd.concat([significant, slices[~slices["significant"].astype(bool)].head(keep_others)])


# -- a run's slices, from the store -----------------------------------------------------------


def run_slices(store, run_id: str, *, taggrams: pd.DataFrame | None = None, cache=None,
               progress: bool = False, alpha: float = DEFAULT_ALPHA) -> pd.DataFrame:
    """Every slice of the run's test tracks, tested and ranked (find_slices' COLUMNS); empty
    when the run has no test predictions. `taggrams`: this analysis' taggram rows when they are
    not stored yet (default: the stored ones); `cache`: the database's feature cache."""
    from genre_core import paths
    from genre_core.analysis.descriptors import track_descriptors
    from genre_core.analysis.slice_attributes import slice_attributes, tag_means
    from genre_core.features.cache import ShardCache

    run = store.run(run_id)
    predictions = store.predictions(run_id)
    tests = predictions[predictions["split"] == SPLIT]
    if tests.empty:
        return pd.DataFrame(columns=COLUMNS)
    dataset = store.dataset_name(int(run["dataset_id"]))
    tracks = store.tracks(dataset)
    tests = tests[["track_id", "label", "predicted"]].merge(
        tracks[["track_id", "path", "sha1", "artist", "duration_s"]], on="track_id", how="inner")
    trained = training_side(run, predictions, tracks)
    cache = cache if cache is not None else ShardCache(paths.cache_dir(store.path))
    attributes = slice_attributes(
        tests, descriptors=track_descriptors(tests, cache, progress=progress),
        training_artists=set(tracks.loc[tracks["track_id"].isin(trained), "artist"].dropna()),
        faults=store.fault_rows(int(run["dataset_id"]))[["track_id", "kind"]],
        tags=tag_means(taggrams if taggrams is not None else store.taggrams(run_id)))
    wrong = pd.Series((tests["label"] != tests["predicted"]).to_numpy(), index=pd.Index(tests["track_id"]))
    return find_slices(wrong, attributes, alpha=alpha)


def training_side(run: dict, predictions: pd.DataFrame, tracks: pd.DataFrame) -> set[str]:
    """Track ids the run trained on: its split recomputed from its stored config when that gives
    back its stored test tracks, else every usable track without a stored prediction (which
    also counts tracks a split left out, e.g. GTZAN's fault-filtered one, as trained on)."""
    from genre_core.datasets.base import DatasetError
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import choose_split

    try:
        split = choose_split(TrainConfig.from_dict(run["config"]), tracks)
    except (KeyError, TypeError, ValueError, ImportError, DatasetError):  # imported, pooled, ensemble runs
        split = None
    if split is not None and set(split.test) == set(predictions.track_id[predictions["split"] == SPLIT]):
        return set(split.train)
    return set(tracks["track_id"]) - set(predictions["track_id"])


def slice_tables(store, run_id: str, *, taggrams: pd.DataFrame | None = None, cache=None,
                 progress: bool = False, notes: list[str] | None = None) -> dict[str, pd.DataFrame]:
    """{"failure_slices": rows to store} for `analyze`; one line about them added to `notes`."""
    slices = run_slices(store, run_id, taggrams=taggrams, cache=cache, progress=progress)
    if notes is not None:
        notes.append(summary_line(slices))
    return {"failure_slices": stored_rows(slices)}


def family_counts(slices: pd.DataFrame) -> dict[int, int]:
    """{attributes per slice (1: single values, 2: pairs): slices tested in that family}; each
    stored row carries its own family's count."""
    return {len(a): int(n) for a, n in zip(slices.attributes, slices.n_tested)}


def tested_count(slices: pd.DataFrame) -> int:
    """Slices tested in both families."""
    return sum(family_counts(slices).values())


def summary_line(slices: pd.DataFrame) -> str:
    """What analyze's summary says of the slices: how many passed, of how many, and the worst."""
    if slices.empty:
        return "no failure slices (no test tracks to slice, or none with 3 tracks)"
    passed = slices[slices["significant"].astype(bool)]
    alpha, tested = FAMILIES * float(slices["alpha"].iloc[0]), tested_count(slices)
    if passed.empty:
        return f"failure slices: none of {tested} tested passes FDR {alpha:.0%}"
    top = passed.iloc[0]
    return (f"failure slices: {len(passed)} of {tested} tested pass FDR {alpha:.0%}, worst: "
            f"{top.description} ({int(top.n - top.errors)}/{int(top.n)} right, q = {top.q_value:.2g})")


def significant_slices(store, run_id: str) -> pd.DataFrame:
    """The stored slices of a run that passed the false discovery rate control, worst first:
    what patterns and sentences may be built from (empty when none passed or none are stored)."""
    slices = store.failure_slices(run_id)
    return slices[slices["significant"].astype(bool)].reset_index(drop=True)
