"""Track-level splits. A split is decided on whole tracks (and whole artists when known)
*before* any slicing into windows, so no track's windows ever sit on two sides.

Every function takes parallel sequences (track ids, labels, ...) and returns `Split`s of
track ids; all randomness comes from the `seed` argument. A dataset that cannot be split (one
genre, too few tracks to put every genre on every side) is refused with a DatasetError in our
words, naming the dataset (the `dataset` argument), its numbers and what to do, never
scikit-learn's ("test_size = 4 should be greater or equal to the number of classes = 8").
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from genre_core.datasets.base import DatasetError
from genre_core.untrusted import shortened

SIDES = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    name: str  # "random", "kfold-2/5", "artist", ...
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def side_of(self) -> dict[str, str]:
        """{track_id: "train"|"val"|"test"}."""
        return {t: side for side in SIDES for t in getattr(self, side)}

    def check_disjoint(self) -> None:
        seen = [set(self.train), set(self.val), set(self.test)]
        overlap = (seen[0] & seen[1]) | (seen[0] & seen[2]) | (seen[1] & seen[2])
        if overlap:
            raise AssertionError(f"split {self.name}: tracks on two sides: {sorted(overlap)[:5]}")


def _named(dataset: str | None) -> str:
    return "this dataset" if dataset is None else f"dataset '{shortened(dataset)}'"


def _two_genres(labels: np.ndarray, dataset: str | None) -> None:
    """A classifier of one genre learns nothing and scores 100%: refused before any run exists."""
    genres = np.unique(labels)
    if len(genres) < 2:
        only = f"of one genre ('{shortened(genres[0])}')" if len(genres) else "of no genre"
        raise DatasetError(f"{_named(dataset)} has usable tracks {only} only: a genre classifier needs at "
                           "least 2 genres; ingest tracks of more genres")


@contextmanager
def _small_in_our_words(labels: np.ndarray, dataset: str | None, split: str, per_genre: int) -> Iterator[None]:
    """scikit-learn refuses a split that cannot put every genre on every side (or leaves a side
    empty); say so in our words, with the dataset's numbers and a per-genre count that works
    (`per_genre`, checked for 2 to 29 genres in test_trust_errors)."""
    try:
        yield
    except ValueError as exc:
        genres, counts = np.unique(labels, return_counts=True)
        fewest = int(np.argmin(counts))
        raise DatasetError(
            f"{_named(dataset)} is too small for {split}: {len(labels)} usable tracks in {len(genres)} genres "
            f"(fewest: {counts[fewest]}, of '{shortened(genres[fewest])}'), and each side (train, validation, "
            f"test) needs tracks of every genre; ingest at least {per_genre} tracks per genre") from exc


def _per_genre(smallest_share: float) -> int:
    """Tracks per genre that give the smallest side one track of each genre."""
    return math.ceil(1 / smallest_share - 1e-9)


def _stratify(labels: np.ndarray) -> np.ndarray | None:
    """sklearn refuses to stratify classes with a single member; fall back to unstratified."""
    _, counts = np.unique(labels, return_counts=True)
    return labels if counts.min() >= 2 else None


def random_split(
    track_ids: Sequence[str], labels: Sequence[str], *, val: float = 0.15, test: float = 0.2, seed: int = 0,
    dataset: str | None = None,
) -> Split:
    """Seeded stratified random split of tracks."""
    from sklearn.model_selection import train_test_split  # here: the CLI imports SPLITS, not sklearn

    ids, y = np.asarray(track_ids), np.asarray(labels)
    _two_genres(y, dataset)
    with _small_in_our_words(y, dataset, "a random split", _per_genre(min(val, test))):
        rest, test_ids, y_rest, _ = train_test_split(ids, y, test_size=test, random_state=seed, stratify=_stratify(y))
        train_ids, val_ids = train_test_split(
            rest, test_size=val / (1 - test), random_state=seed + 1, stratify=_stratify(y_rest)
        )
    return _make("random", train_ids, val_ids, test_ids)


def labelled_share(track_ids: Sequence[str], labels: Sequence[str], share: float, *, seed: int = 0) -> tuple[str, ...]:
    """The training tracks whose labels a few-label run may use: `share` of each genre's
    tracks (at least one), drawn with `seed`, in their given order. The rest of the side is
    not used at all (a self-supervised backbone may still have heard it, without labels)."""
    ids, y = np.asarray(track_ids), np.asarray(labels)
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(ids), dtype=bool)
    for genre in np.unique(y):
        members = np.flatnonzero(y == genre)
        keep[rng.choice(members, size=max(1, round(share * len(members))), replace=False)] = True
    return tuple(ids[keep])


def stratified_sample(
    track_ids: Sequence[str], labels: Sequence[str], artists: Sequence[str | None] | None, n: int, *,
    seed: int = 0, dataset: str | None = None,
) -> tuple[str, ...]:
    """`n` of the tracks (train --sample), in their given order: each genre's share of the
    corpus (largest remainders; at least 2 of each genre, so every genre the corpus has stays a
    class of the run), drawn with `seed`. Artist-aware: within a genre whole artists are taken
    in a seeded order (tracks of unknown artist each on their own), so a sample keeps the
    corpus' tracks-per-artist and an artist split inside it still has something to hold apart."""
    ids, y = np.asarray(track_ids), np.asarray(labels)
    genres, counts = np.unique(y, return_counts=True)
    if not 2 * len(genres) <= n <= len(ids):
        raise DatasetError(f"{_named(dataset)} cannot train on a sample of {n} tracks: it has {len(ids)} usable "
                           f"tracks in {len(genres)} genres, and a sample takes 2 per genre up to every track "
                           f"(--sample {2 * len(genres)}..{len(ids)})")
    rng = np.random.default_rng(seed)
    groups = artist_groups(ids, artists if artists is not None else [None] * len(ids))
    names, group_of = np.unique(groups, return_inverse=True)
    group_rank = rng.permutation(len(names))[group_of]
    order = np.lexsort((rng.random(len(ids)), group_rank))  # by artist, in a seeded order
    keep = np.zeros(len(ids), dtype=bool)
    for genre, quota in zip(genres, _quotas(counts, n)):
        keep[order[y[order] == genre][:quota]] = True
    return tuple(ids[keep])


def _quotas(counts: np.ndarray, n: int) -> np.ndarray:
    """(G,) tracks per genre summing to n: 2 each (fewer where a genre has fewer), the rest in
    proportion to what each genre has left, rounded by largest remainder (never above a
    genre's count: a share with a remainder lies below it)."""
    base = np.minimum(counts, 2)
    extra = counts - base
    share = (n - base.sum()) * extra / max(extra.sum(), 1)
    quota = np.floor(share).astype(int)
    quota[np.argsort(quota - share, kind="stable")[:n - base.sum() - quota.sum()]] += 1
    return base + quota


def kfold_splits(
    track_ids: Sequence[str], labels: Sequence[str], *, k: int = 5, val: float = 0.15, seed: int = 0,
    dataset: str | None = None,
) -> list[Split]:
    """Stratified k-fold over tracks; each fold's validation set is carved out of its training part."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    ids, y = np.asarray(track_ids), np.asarray(labels)
    _two_genres(y, dataset)
    folds = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    splits = []
    # every genre in each of the k test folds, and in the validation part (val) of the rest
    with _small_in_our_words(y, dataset, f"a {k}-fold split", max(k, _per_genre(val * (k - 1) / k))):
        for i, (rest_idx, test_idx) in enumerate(folds.split(ids, y)):
            train_ids, val_ids = train_test_split(
                ids[rest_idx], test_size=val, random_state=seed + i, stratify=_stratify(y[rest_idx])
            )
            splits.append(_make(f"kfold-{i + 1}/{k}", train_ids, val_ids, ids[test_idx]))
    return splits


def artist_split(
    track_ids: Sequence[str],
    labels: Sequence[str],
    artists: Sequence[str | None],
    *,
    val: float = 0.15,
    test: float = 0.2,
    seed: int = 0,
    dataset: str | None = None,
) -> Split:
    """No artist on two sides. Tracks with unknown artist each form their own group."""
    ids, y = np.asarray(track_ids), np.asarray(labels)
    _two_genres(y, dataset)
    groups = artist_groups(track_ids, artists)
    if len(set(groups)) < 3:
        raise DatasetError(f"{_named(dataset)} has {len(set(groups))} distinct artist(s): an artist split needs "
                           "at least 3 (one per side); use --split random, or ingest tracks of more artists")
    with _small_in_our_words(y, dataset, "an artist split", _per_genre(min(val, test))):
        rest_idx, test_idx = _group_fold(y, groups, test, seed)
        sub_train, sub_val = _group_fold(y[rest_idx], groups[rest_idx], val / (1 - test), seed + 1)
    return _make("artist", ids[rest_idx][sub_train], ids[rest_idx][sub_val], ids[test_idx])


def artist_groups(track_ids: Sequence[str], artists: Sequence[str | None]) -> np.ndarray:
    """(N,) group per track for grouped folds: its artist, or the track alone when unknown."""
    return np.asarray([a if isinstance(a, str) and a else f"<unknown:{t}>" for t, a in zip(track_ids, artists)])


def _group_fold(y: np.ndarray, groups: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One fold of a StratifiedGroupKFold with about `share` of the tracks held out."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(set(groups))
    largest_class = int(np.unique(y, return_counts=True)[1].max())
    # sklearn refuses more folds than the largest genre has tracks: a small corpus holds out
    # a larger share rather than failing.
    n_splits = int(max(2, min(round(1 / share), n_groups, largest_class)))
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with np.errstate(all="ignore"):
        keep, held = next(folds.split(np.zeros(len(y)), y, groups))
    return keep, held


def fault_filtered_split(track_ids: Sequence[str], *, dataset: str | None = None) -> Split:
    """GTZAN's fault-filtered partition (Kereliuk, Sturm & Larsen 2015: 443/197/290 tracks),
    from the lists torchaudio ships. Tracks of the dataset not in the lists are left out."""
    from torchaudio.datasets import gtzan

    present = set(track_ids)
    lists = [gtzan.filtered_train, gtzan.filtered_valid, gtzan.filtered_test]
    sides = [[t for t in side if t in present] for side in lists]
    if not any(sides):
        raise DatasetError(f"{_named(dataset)} has no GTZAN track ids like 'blues.00029': the fault-filtered "
                           "split is GTZAN's (use --split random or artist)")
    return _make("fault-filtered", *sides)


def official_split(track_ids: Sequence[str], official: Sequence[str | None], *, dataset: str | None = None) -> Split:
    """The corpus' own split (FMA's set.split: train / validation / test)."""
    sides: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    for track_id, side in zip(track_ids, official):
        if side in sides:
            sides[side].append(track_id)
    if not sides["train"] or not sides["test"]:
        raise DatasetError(f"{_named(dataset)} has no official split (it needs train and test tracks); "
                           "use --split random or artist")
    return _make("official", sides["train"], sides["validation"], sides["test"])


def _make(name: str, train, val, test) -> Split:
    split = Split(name, tuple(map(str, train)), tuple(map(str, val)), tuple(map(str, test)))
    split.check_disjoint()
    return split


# name -> function(tracks DataFrame with track_id/label/artist/official_split, seed, dataset name
# for messages) -> Split
SPLITS: dict[str, Callable[..., Split]] = {
    "random": lambda t, seed, dataset=None: random_split(t.track_id, t.label, seed=seed, dataset=dataset),
    "kfold": lambda t, seed, dataset=None: kfold_splits(t.track_id, t.label, seed=seed, dataset=dataset)[0],
    "artist": lambda t, seed, dataset=None: artist_split(t.track_id, t.label, t.artist, seed=seed, dataset=dataset),
    "fault-filtered": lambda t, seed, dataset=None: fault_filtered_split(t.track_id, dataset=dataset),
    "official": lambda t, seed, dataset=None: official_split(t.track_id, t.official_split, dataset=dataset),
}
