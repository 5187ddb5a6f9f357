"""Concepts: which musical qualities push a run's model toward each genre, and which push a
misclassified track toward the genre it was wrongly given (TCAV, see `tcav` for the math and
the test). Concepts come from the corpus itself: the training tracks in the top and bottom
quantile of each per-track descriptor (tempo, brightness, percussive share, loudness,
dynamics, noisiness) and, when a tag table is given, of each musicnn tag.

The layer: the input of the model's `head` (for the cnn family the 512-d pooled conv
features that the embedding layer turns into the 128-d embedding). At the embedding itself
the logits are one Linear away, so the gradient of a logit is the same vector for every
input and every TCAV score is 0 or 1 (`layer="embedding"` computes that degenerate case);
one layer down, the embedding layer's ReLU makes each window's gradient its own, and the
backward pass still never touches the convolutions, so the gradients of every window cost
one small matrix product. Models without a `head` module (transformer) are refused.

API (what `analyze` and the app call; nothing here reads or writes the database):

    inputs = prepare_concepts(loaded_run, tracks, predictions, cache)      # the forward pass: most of the cost
        tracks: the run's usable tracks (track_id, path, sha1, label);
        predictions: store.predictions(run_id) (its val/test rows; the rest are training tracks);
        optional descriptors= a per-track table (track_id + numeric columns: DESCRIPTORS' get
        their plain names, any other, e.g. the failure slices' key mode as 0/1, "<column>: high"
        / "<column>: low"), tags= a per-track musicnn tag table (track_id + 50 tag columns, see
        `track_tags`; too slow for analyze's budget, so not computed by default).
    tests = concept_tests(inputs, TcavSettings(seed=0))                    # CAVs and tests, ~10 s
        -> ConceptTests: .table, one row per (concept, genre): score, ci_low, ci_high,
           random_score, p_paper, derivative, null_derivative, t, p, q, significant,
           direction ("toward" | "away"); concepts are named in plain words ("fast tempo");
           plus .cavs (name -> tcav.Cavs), .seconds
    genre_concepts(tests.table)     -> the significant rows, per genre, most significant first
    explain_misclassified(inputs, tests) -> per misclassified test track and concept that is
           significant for its true or predicted genre: derivative of logit(predicted) -
           logit(true) along the concept (mean over repeats), agreement (share of repeats
           with that sign), presence (share of its windows on the concept side), and
           pushes_to_predicted (derivative > 0, agreement >= 0.8, presence >= 0.5)
    concept_stability(tests_a.table, tests_b.table) -> Stability (two seeds, STABILITY_TOLERANCE)

Only rows with `significant` may be said (DESIGN: findings that passed a test with
multiple-testing control); `genre_concepts` and `explain_misclassified` already keep to them.
benchmarks/concepts.py runs all of it on a demo database against the synth's recipes.

On the demo (cnn run, 152 training tracks from ~30 artists, this shared 2-core CPU at load
5-6): descriptors 0.1-0.3 s (cached tables), activations 16-29 s (483 windows), tests 6.6 s
per seed, explanations < 0.1 s: 23-36 s in all for one seed. No (concept, genre) pair passes
q < 0.05; the lowest p-values follow the recipes (slow tempo -> reggae p 0.02, fast tempo ->
metal p 0.03-0.1) but a random set of as many tracks of the same genres moves a genre logit
about as much. On random sets the test gives p < 0.05 in 4-6 % of pairs; the paper's test
in 60 %. In `analyze` the forward pass is shared with the embedding pass (HeadInputTap: a
forward pre-hook on `model.head` keeps 3 evenly spaced windows of each track), so there the
activations cost nothing extra.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from genre_core.analysis import tcav
from genre_core.analysis.tcav import Cavs, TcavSettings, WindowPool
from genre_core.features.cache import ShardCache
from genre_core.features.windows import build_windows, handcrafted_windows
from genre_core.train.inference import LoadedRun, batch_size

# Concept sets: the top and bottom third of the training tracks by a descriptor. Measured on
# the demo (152 training tracks): thirds gave the smallest p-values; fifths (30 tracks) left
# sets too small to stand out from random sets of the same genres.
QUANTILE = 1 / 3
WINDOWS_PER_TRACK = 3  # windows forwarded per track (evenly spaced): TcavSettings draws 3
# The stated tolerance of stability: each (concept, genre) mean TCAV score moves by at most
# this between two seeds of the random sets (scores are shares, in [0, 1]). Measured on the
# demo: at most 0.28 (one pair; 95 % of pairs within 0.2) at 20 repeats and at 40; the
# derivative the test uses moved by at most 0.03 (derivatives of 0.1-0.2).
STABILITY_TOLERANCE = 0.3
PUSH_AGREEMENT, PUSH_PRESENCE = 0.8, 0.5  # what `pushes_to_predicted` asks of a concept


@dataclass(frozen=True)
class Descriptor:
    column: str  # in the descriptor table
    high: str  # the concept of its top quantile, in plain words
    low: str  # ... of its bottom quantile
    unit: str


DESCRIPTORS = (
    Descriptor("tempo", "fast tempo", "slow tempo", "BPM"),
    Descriptor("brightness", "bright (high spectral centroid)", "dark (low spectral centroid)", "Hz"),
    Descriptor("percussive_share", "percussive (HPSS)", "little percussion (HPSS)", "share"),
    Descriptor("loudness", "loud", "quiet", "dB"),
    Descriptor("dynamics", "wide dynamics", "flat dynamics", "dB"),
    Descriptor("noisiness", "noisy (zero-crossing rate)", "tonal (zero-crossing rate)", "crossings/sample"),
)


def descriptor_table(tracks: pd.DataFrame, cache: ShardCache, *, progress: bool = True) -> pd.DataFrame:
    """Per-track DESCRIPTORS from the cached handcrafted table (the baselines' 3-s windows, so
    a dataset a baseline trained on costs no audio): track_id plus tempo (BPM, mean of windows),
    brightness (spectral centroid, Hz), percussive_share (percussive / (harmonic + percussive)
    energy of HPSS), loudness (dB RMS), dynamics (spread of the windows' loudness, dB s.d.),
    noisiness (zero-crossing rate)."""
    from genre_core.analysis.embeddings import track_means
    from genre_core.features.handcrafted import HANDCRAFTED_NAMES
    from genre_core.train.config import TrainConfig

    config = TrainConfig(dataset="", model="logreg")  # the baselines' window, hop and rate
    classes = sorted(tracks.label.unique())
    windows = build_windows(tracks, classes, cache, sr=config.features.sr, window_s=config.window_s,
                            hop_s=config.window_s, desc="descriptor audio", progress=progress)
    table = handcrafted_windows(windows, list(tracks.sha1), cache, progress=progress)  # (W, 57)
    column = {name: i for i, name in enumerate(HANDCRAFTED_NAMES)}
    window_db = 20 * np.log10(np.maximum(table[:, column["rms_mean"]], 1e-6))  # (W,)
    # The HPSS parts are zero-mean signals: their variance is their energy.
    harmonic, percussive = table[:, column["harmony_var"]], table[:, column["perceptr_var"]]
    per_window = np.stack([table[:, column["tempo"]], table[:, column["spectral_centroid_mean"]],
                           percussive / np.maximum(harmonic + percussive, 1e-12), window_db,
                           window_db ** 2, table[:, column["zero_crossing_rate_mean"]]], axis=1)
    means = track_means(windows.index[:, 0], per_window, len(tracks)).astype(np.float64)  # (N, 6)
    spread = np.sqrt(np.maximum(means[:, 4] - means[:, 3] ** 2, 0.0))
    return pd.DataFrame({"track_id": list(tracks.track_id), "tempo": means[:, 0], "brightness": means[:, 1],
                         "percussive_share": means[:, 2], "loudness": means[:, 3], "dynamics": spread,
                         "noisiness": means[:, 5]})


TAG_BATCH = 16  # 3-s windows per tagger forward


@torch.no_grad()
def track_tags(tracks: pd.DataFrame, cache: ShardCache, *, progress: bool = True) -> pd.DataFrame | None:
    """musicnn's 50 MSD tag probabilities of one 3-s window from the middle of each track:
    track_id + one column per tag; None when the musicnn weights are not installed.

    Not part of the default analysis: ~0.26 s per window on this 2-core CPU (1.3 s for a whole
    15-s track), so even one window per training track (~40 s on the demo) would use most of
    analyze's budget for this issue. Pass its result to `prepare_concepts(tags=...)`."""
    from genre_core.features.spectral import MUSICNN_SR, MusicnnMel
    from genre_core.models.musicnn.net import WINDOW_FRAMES, load_tagger
    from genre_core.models.musicnn.weights import MusicnnWeightsMissing, tag_names

    try:
        tagger = load_tagger("MSD_musicnn")
    except MusicnnWeightsMissing:
        return None
    mel, length = MusicnnMel(), 3 * MUSICNN_SR + MUSICNN_SR // 10  # a little over 187 frames
    images = []
    for track in tqdm(tracks.itertuples(), total=len(tracks), desc="tags", unit="track", disable=not progress):
        y = np.asarray(cache.load(track.path, track.sha1, MUSICNN_SR), dtype=np.float32)
        start = max(0, (len(y) - length) // 2)
        piece = np.pad(y[start: start + length], (0, max(0, length - len(y))))
        images.append(mel(torch.from_numpy(piece))[..., :WINDOW_FRAMES])  # (1, 1, 96, 187)
    probs = [tagger(torch.cat(images[i: i + TAG_BATCH])).tags.numpy() for i in range(0, len(images), TAG_BATCH)]
    table = pd.DataFrame(np.concatenate(probs), columns=list(tag_names("MSD_musicnn")))
    return table.assign(track_id=list(tracks.track_id))[["track_id", *table.columns]]


def concept_pools(values: pd.DataFrame, train_ids: list[str], *, quantile: float = QUANTILE,
                  names: dict[str, tuple[str, str]] | None = None) -> dict[str, np.ndarray]:
    """Concept name -> positions (in `train_ids`) of the training tracks in the top or bottom
    `quantile` of each column of `values` (track_id + numeric columns). Every pool has the same
    size, k = round(quantile x tracks with a value), so one null distribution serves all.
    `names`: column -> (high concept, low concept); default "<column>: high" / "<column>: low"."""
    frame = values.set_index("track_id").reindex(train_ids)
    pools = {}
    for column in frame.columns:
        known = np.flatnonzero(np.isfinite(frame[column].to_numpy(dtype=np.float64)))
        k = int(round(quantile * len(known)))
        if k < 2 or np.ptp(frame[column].to_numpy()[known]) == 0:
            continue  # a constant column (a tag never sung) makes no concept
        order = known[np.argsort(frame[column].to_numpy()[known], kind="stable")]
        high, low = (names or {}).get(column, (f"{column}: high", f"{column}: low"))
        pools[high], pools[low] = order[-k:], order[:k]
    return pools


@dataclass
class RunActivations:
    """Activations at the TCAV layer of every window of some tracks, and how to get logits."""

    track_ids: list[str]
    labels: np.ndarray  # (n_tracks,) class index
    acts: np.ndarray  # (W, D) float32
    owners: np.ndarray  # (W,) track position of each row
    logits_of: object  # (B, D) tensor -> (B, C) logits: the rest of the model after the layer

    def subset(self, track_ids: list[str]) -> "RunActivations":
        """The rows of `track_ids` (each must be here), in that order of tracks."""
        position = {t: i for i, t in enumerate(self.track_ids)}
        old = np.array([position[t] for t in track_ids], dtype=np.int64)
        new_of_old = np.full(len(self.track_ids), -1, dtype=np.int64)
        new_of_old[old] = np.arange(len(old))
        owners = new_of_old[self.owners]
        rows = np.flatnonzero(owners >= 0)
        rows = rows[np.argsort(owners[rows], kind="stable")]
        return RunActivations(list(track_ids), self.labels[old], self.acts[rows], owners[rows], self.logits_of)


def _layer_functions(model: torch.nn.Module, layer: str):
    """(activation at `layer` from the head's input, logits from that activation)."""
    head = getattr(model, "head", None)
    if head is None:
        raise ValueError(f"{type(model).__name__} has no `head` module to take concepts at")
    logits = (lambda out: out.logits if hasattr(out, "logits") else out)
    if layer == "head_input":
        return (lambda a: a), (lambda a: logits(head(a)))
    if layer == "embedding" and hasattr(head, "embed") and hasattr(head, "classify"):
        return head.embed, head.classify
    raise ValueError(f"layer must be 'head_input' or 'embedding' (for an EmbeddingHead), got {layer!r}")


def spread_rows(offsets: np.ndarray, per_track: int) -> np.ndarray:
    """Rows of up to `per_track` evenly spaced windows of each track, from a WindowSet's
    offsets (n_tracks + 1,): the start, the end and between, in track order."""
    picks = [np.unique(np.linspace(start, stop - 1, min(per_track, stop - start)).round().astype(np.int64))
             for start, stop in zip(offsets[:-1], offsets[1:]) if stop > start]
    return np.concatenate(picks) if picks else np.zeros(0, np.int64)


@torch.no_grad()
def run_activations(loaded: LoadedRun, tracks: pd.DataFrame, cache: ShardCache, *, layer: str = "head_input",
                    windows_per_track: int = WINDOWS_PER_TRACK, progress: bool = True) -> RunActivations:
    """Forward up to `windows_per_track` evenly spaced, non-overlapping windows of each of
    `tracks` and keep the activation at `layer`. The forward pass is the cost of concepts
    (~50 ms a window on this shared 2-core CPU), and a concept set never uses more windows
    of a track than TcavSettings.windows_per_track."""
    if loaded.model is None:
        raise ValueError(f"run {loaded.run_id} is a scikit-learn baseline: no layer to take concepts at")
    to_layer, logits_of = _layer_functions(loaded.model, layer)
    windows = build_windows(tracks, loaded.classes, cache, sr=loaded.sr, window_s=loaded.window_s,
                            hop_s=loaded.window_s, desc="concept audio", progress=progress)
    rows = spread_rows(windows.offsets, windows_per_track)
    captured: list[torch.Tensor] = []
    hook = loaded.model.head.register_forward_pre_hook(lambda _module, args: captured.append(args[0].float()))
    owners, step = [], batch_size(loaded.device)
    try:
        for start in tqdm(range(0, len(rows), step), desc="concept activations", unit="batch", disable=not progress):
            audio, _, owner = windows.batch(rows[start: start + step])
            loaded.model(loaded.frontend(torch.from_numpy(audio).to(loaded.device)))
            owners.append(owner)
    finally:
        hook.remove()
    acts = torch.cat(captured) if captured else torch.zeros(0)
    return RunActivations(windows.track_ids, windows.labels, to_layer(acts).cpu().numpy(),
                          np.concatenate(owners) if owners else np.zeros(0, np.int64), logits_of)


class HeadInputTap:
    """Concept activations taken during another pass that forwards every window of a
    WindowSet in order (analyze's embedding pass): a forward pre-hook on `model.head` keeps
    the input of up to `windows_per_track` evenly spaced windows of each track, so concepts
    need no forward pass of their own. After the pass, `activations` is the RunActivations
    of every track of that set (None if the pass did not see every window)."""

    def __init__(self, windows_per_track: int = WINDOWS_PER_TRACK):
        self.windows_per_track = windows_per_track
        self.activations: RunActivations | None = None

    @contextmanager
    def attached(self, model: torch.nn.Module, windows) -> Iterator[None]:
        keep = np.zeros(len(windows), dtype=bool)
        keep[spread_rows(windows.offsets, self.windows_per_track)] = True
        owners = np.repeat(np.arange(len(windows.track_ids)), np.diff(windows.offsets))
        captured: list[torch.Tensor] = []
        seen = 0

        def keep_batch(_module, args) -> None:
            nonlocal seen
            batch = args[0]
            wanted = torch.from_numpy(keep[seen: seen + len(batch)]).to(batch.device)
            captured.append(batch[wanted].float().cpu())
            seen += len(batch)

        to_layer, logits_of = _layer_functions(model, "head_input")
        hook = model.head.register_forward_pre_hook(keep_batch)
        try:
            yield
        finally:
            hook.remove()
        if seen == len(windows):
            acts = torch.cat(captured).numpy() if captured else np.zeros((0, 0), np.float32)
            self.activations = RunActivations(list(windows.track_ids), windows.labels, acts, owners[keep], logits_of)


@dataclass
class ConceptInputs:
    """Everything the test needs, computed once and shared by every seed."""

    classes: list[str]
    activations: RunActivations  # training tracks first, then misclassified test tracks
    n_train: int
    pools: dict[str, np.ndarray]  # concept -> training-track positions
    wrong: pd.DataFrame  # misclassified test predictions (track_id, label, predicted)
    seconds: dict[str, float] = field(default_factory=dict)


def prepare_concepts(loaded: LoadedRun, tracks: pd.DataFrame, predictions: pd.DataFrame, cache: ShardCache,
                     *, descriptors: pd.DataFrame | None = None, tags: pd.DataFrame | None = None,
                     quantile: float = QUANTILE, layer: str = "head_input", progress: bool = True,
                     activations: RunActivations | None = None) -> ConceptInputs:
    """Concept pools from the run's training tracks (`tracks` without a val/test row in
    `predictions`) and activations of those tracks and of the misclassified test tracks:
    taken from `activations` (a HeadInputTap's, covering them) when given, else forwarded."""
    seconds, started = {}, time.perf_counter()
    held_out = set(predictions.track_id)
    train = tracks[~tracks.track_id.isin(held_out)].reset_index(drop=True)
    test = predictions[(predictions.split == "test") & predictions.track_id.isin(tracks.track_id)]
    wrong = test[test.label != test.predicted][["track_id", "label", "predicted"]].reset_index(drop=True)
    if descriptors is None:
        descriptors = descriptor_table(train, cache, progress=progress)
    seconds["descriptors"] = time.perf_counter() - started
    names = {d.column: (d.high, d.low) for d in DESCRIPTORS}
    train_ids = list(train.track_id)
    # Any other numeric column a caller's table brings (key mode as 0/1, duration) is a concept too.
    numeric = [c for c in descriptors.columns if c != "track_id" and pd.api.types.is_numeric_dtype(descriptors[c])]
    pools = concept_pools(descriptors[["track_id", *numeric]], train_ids, quantile=quantile, names=names)
    if tags is not None:
        tag_names = {c: (f"tag {c}", f"no tag {c}") for c in tags.columns if c != "track_id"}
        pools.update(concept_pools(tags, train_ids, quantile=quantile, names=tag_names))
    started = time.perf_counter()
    explained = pd.concat([train, tracks.set_index("track_id").loc[list(wrong.track_id)].reset_index()],
                          ignore_index=True)
    if activations is not None and layer == "head_input":
        activations = activations.subset(list(explained.track_id))
    else:
        activations = run_activations(loaded, explained, cache, layer=layer, progress=progress)
    seconds["activations"] = time.perf_counter() - started
    return ConceptInputs(list(loaded.classes), activations, len(train), pools, wrong, seconds)


@dataclass
class ConceptTests:
    table: pd.DataFrame  # tcav.significance's columns
    cavs: dict[str, Cavs]
    settings: TcavSettings
    seconds: float


def _genre_gradients(inputs: ConceptInputs, settings: TcavSettings, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Genre -> gradients of its logit at (up to max_inputs of) its training windows."""
    run = inputs.activations
    in_train = run.owners < inputs.n_train
    out = {}
    for k, genre in enumerate(inputs.classes):
        rows = np.flatnonzero(in_train & (run.labels[run.owners] == k))
        if len(rows) == 0:
            continue
        rows = rng.choice(rows, size=min(settings.max_inputs, len(rows)), replace=False)
        out[genre] = tcav.logit_gradients(run.logits_of, run.acts[rows], np.full(len(rows), k))
    return out


def concept_tests(inputs: ConceptInputs, settings: TcavSettings = TcavSettings()) -> ConceptTests:
    """TCAV of every concept for every genre: CAVs against random training tracks of the same
    genres, tested against null sets of random tracks with the concept's genre make-up (see
    tcav.significance); `settings.seed` draws every random set."""
    started = time.perf_counter()
    rng = np.random.default_rng(settings.seed)
    run = inputs.activations
    train = run.owners < inputs.n_train
    strata = run.labels[: inputs.n_train] if settings.match_genres else None
    pool = WindowPool(run.acts[train], run.owners[train], strata=strata)
    everyone = np.arange(inputs.n_train)
    cavs = {name: tcav.concept_cavs(pool, tracks, everyone, settings, rng) for name, tracks in inputs.pools.items()}
    nulls = {name: tcav.null_cavs(pool, tracks, everyone, settings, rng) for name, tracks in inputs.pools.items()}
    scores = tcav.score_table(cavs, nulls, _genre_gradients(inputs, settings, rng))
    table = tcav.significance(scores, alpha=settings.alpha)
    return ConceptTests(table, cavs, settings, time.perf_counter() - started)


def genre_concepts(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Genre -> its significant concepts (toward and away), most significant first."""
    significant = table[table.significant]
    return {genre: rows.reset_index(drop=True) for genre, rows in significant.groupby("genre", sort=True)}


EXPLANATION_COLUMNS = ["track_id", "label", "predicted", "concept", "derivative", "agreement", "presence",
                       "pushes_to_predicted"]


def explain_misclassified(inputs: ConceptInputs, tests: ConceptTests) -> pd.DataFrame:
    """Per misclassified test track, each concept significant for its true or predicted genre:
    the directional derivative of logit(predicted) - logit(true) along the concept's CAVs
    (mean over the track's windows, then over repeats; > 0: the concept pushes the track
    toward the genre it was wrongly given), agreement (share of repeats with the mean's
    sign), presence (share of windows x repeats on the concept side of the boundary) and
    pushes_to_predicted. Sorted by track, strongest push first."""
    run, column = inputs.activations, {g: i for i, g in enumerate(inputs.classes)}
    significant = tests.table[tests.table.significant]
    rows = []
    for i, wrong in enumerate(inputs.wrong.itertuples(index=False)):
        concepts = sorted(set(significant.concept[significant.genre.isin([wrong.label, wrong.predicted])]))
        mine = run.acts[run.owners == inputs.n_train + i]  # (w, D)
        if not concepts or len(mine) == 0:
            continue
        toward = tcav.logit_gradients(run.logits_of, mine, np.full(len(mine), column[wrong.predicted]))
        away = tcav.logit_gradients(run.logits_of, mine, np.full(len(mine), column[wrong.label]))
        for concept in concepts:
            per_repeat = tcav.directional_derivatives(toward - away, tests.cavs[concept]).mean(axis=0)  # (R,)
            derivative = float(per_repeat.mean())
            agreement = float(np.mean(np.sign(per_repeat) == np.sign(derivative)))
            present = float(tcav.presence(mine, tests.cavs[concept]).mean())
            rows.append(dict(track_id=wrong.track_id, label=wrong.label, predicted=wrong.predicted, concept=concept,
                             derivative=derivative, agreement=agreement, presence=present,
                             pushes_to_predicted=bool(derivative > 0 and agreement >= PUSH_AGREEMENT
                                                      and present >= PUSH_PRESENCE)))
    frame = pd.DataFrame(rows, columns=EXPLANATION_COLUMNS).astype({"pushes_to_predicted": bool})
    return frame.sort_values(["track_id", "derivative"], ascending=[True, False], ignore_index=True)


@dataclass(frozen=True)
class Stability:
    max_score_change: float  # largest |score_a - score_b| over (concept, genre)
    share_within: float  # share of pairs whose score moved by <= tolerance / 2
    max_derivative_change: float  # largest |derivative_a - derivative_b|: what the test reads
    significant_a: int
    significant_b: int
    significant_both: int
    tolerance: float = STABILITY_TOLERANCE

    @property
    def stable(self) -> bool:
        return self.max_score_change <= self.tolerance

    def line(self) -> str:
        verdict = "within" if self.stable else "OUTSIDE"
        return (f"scores moved by at most {self.max_score_change:.3f} between seeds, {verdict} the tolerance "
                f"{self.tolerance} ({self.share_within:.0%} of pairs within {self.tolerance / 2:g}); "
                f"derivatives by at most {self.max_derivative_change:.4f}; significant: "
                f"{self.significant_a} and {self.significant_b}, {self.significant_both} in both")


def concept_stability(table_a: pd.DataFrame, table_b: pd.DataFrame, *,
                      tolerance: float = STABILITY_TOLERANCE) -> Stability:
    """Two `concept_tests` tables of the same inputs under different seeds, compared."""
    both = table_a.merge(table_b, on=["concept", "genre"], suffixes=("_a", "_b"))
    if both.empty:
        return Stability(0.0, 1.0, 0.0, 0, 0, 0, tolerance)
    change = (both.score_a - both.score_b).abs()
    return Stability(float(change.max()), float((change <= tolerance / 2).mean()),
                     float((both.derivative_a - both.derivative_b).abs().max()),
                     int(both.significant_a.sum()), int(both.significant_b.sum()),
                     int((both.significant_a & both.significant_b).sum()), tolerance)


CONCEPT_COLUMNS = ["concept", "genre", "score", "ci_low", "ci_high", "derivative", "null_derivative", "p", "q",
                   "significant", "direction", "n_tested", "alpha"]


def concept_tables(loaded: LoadedRun, tracks: pd.DataFrame, predictions: pd.DataFrame, cache: ShardCache, *,
                   progress: bool = True, notes: list[str] | None = None,
                   activations: RunActivations | None = None) -> dict[str, pd.DataFrame]:
    """analyze's hook: the `concept_scores` table of a run (one row per concept and genre,
    CONCEPT_COLUMNS), its `concept_pushes` (explain_misclassified: per misclassified test
    track, the significant concepts' push toward its predicted genre), and a note saying how
    many pairs passed. `activations`: a HeadInputTap's from the embedding pass (else
    the activations are forwarded here). A run whose model has no
    `head` (transformer, sklearn baselines) or no training tracks gets no rows and a note."""
    notes = notes if notes is not None else []
    empty = {"concept_scores": pd.DataFrame(columns=CONCEPT_COLUMNS),
             "concept_pushes": pd.DataFrame(columns=EXPLANATION_COLUMNS)}
    if loaded.model is None or getattr(loaded.model, "head", None) is None or loaded.config.task != "single":
        notes.append("no concepts (TCAV needs a network with a `head` layer and a single-label run)")
        return empty
    try:
        inputs = prepare_concepts(loaded, tracks, predictions, cache, progress=progress, activations=activations)
        tests = concept_tests(inputs, TcavSettings(seed=loaded.config.seed))
    except ValueError as exc:  # too few training tracks for concept sets, a degenerate layer
        notes.append(f"no concepts ({exc})")
        return empty
    table = tests.table.assign(n_tested=len(tests.table), alpha=tests.settings.alpha)
    passed = int(table.significant.sum())
    notes.append(f"concepts (TCAV): {passed} of {len(table)} (concept, genre) pairs pass FDR "
                 f"{tests.settings.alpha:.0%}")
    return {"concept_scores": table[CONCEPT_COLUMNS], "concept_pushes": explain_misclassified(inputs, tests)}
