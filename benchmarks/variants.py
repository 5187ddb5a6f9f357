"""variants: what changes the model's mind, and how far to trust HPSS, on the demo corpus.

1. The known answer (issue 24): removing the true drum stem moves hiphop and disco tracks
   more than classical ones. Every clean held-out track of the demo's CNN run (its test and
   val tracks: the model never trained on them; planted faults and crossovers left out) is
   classified whole and as each musical variant, by the run's own path
   (variants.variant_probs); the drop of the track's own genre's probability, per genre:
   mean with a 95% bootstrap CI (1,000 resamples of the genre's tracks).
2. HPSS against the true drum stem, on every clean clip of the corpus (no model involved):
   the least-squares share of the drum stem found in HPSS's percussive part, <P, D> / <D, D>
   (1 = all of it; a mask-weighted share of the drum energy, the other parts being nearly
   uncorrelated with the drums), the same for everything else (the mix minus the drums) in
   the harmonic part, the percussive part's SDR as an estimate of the drum stem
   (10 log10 |D|^2 / |P - D|^2), and the correlation of the two log-magnitude spectrograms.

    python -m benchmarks variants [--db PATH]

Uses the demo database's latest complete CNN run on the demo split (the accuracy section's,
or `make demo`'s); trains one with the demo's settings when there is none.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from genre_core import paths
from genre_core.analysis.variants import demo_stems_at, hpss, musical_variants, variant_probs
from genre_core.datasets.synth.stems import clip_parts, corpus_config
from genre_core.features.cache import ShardCache
from genre_core.metrics.evaluation import bootstrap_ci
from genre_core.runs.demo import DEMO_NAME, DemoConfig
from genre_core.train.inference import load_run

DRUM_GENRES, CALM_GENRE = ("hiphop", "disco"), "classical"  # the known answer: the first move more
SPEC_N_FFT, SPEC_HOP = 2048, 512


def run(store, args) -> None:
    root = Path(store.dataset(DEMO_NAME)["root"])
    clean = clean_clips(root)
    run_id = demo_cnn_run(store, args)
    started = time.perf_counter()
    drops = variant_drops(store, run_id, clean, device=getattr(args, "device", "auto"))
    took = time.perf_counter() - started
    table = drop_table(drops)
    print(f"Drop of each track's own-genre probability when a variant replaces it (CNN run {run_id}; "
          f"{drops.track_id.nunique()} clean held-out tracks, {took:.0f} s):\n")
    print(table.to_markdown(index=False, floatfmt=".3f"))
    no_drums = table[table.variant == "no_drums"].set_index("genre")
    holds = _known_answer_holds(no_drums)
    print(f"\nknown answer (no_drums: {', '.join(DRUM_GENRES)} drop more than {CALM_GENRE}): "
          f"{'holds' if holds else 'DOES NOT HOLD'}")
    agreement = hpss_agreement(root, clean)
    print(f"\nHPSS against the true drum stem ({len(agreement)} clean clips):\n")
    print(agreement_table(agreement).to_markdown(index=False, floatfmt=".3f"))
    ratios = getattr(args, "ratios", None)
    if ratios is not None:
        for genre in DRUM_GENRES:
            if genre in no_drums.index and CALM_GENRE in no_drums.index:
                calm = float(no_drums.mean_drop[CALM_GENRE])
                ratios.add(f"own-genre p drop without the true drums: {genre} minus {CALM_GENRE} ({calm:.3f})",
                           float(no_drums.mean_drop[genre]) - calm, None, "p", target="> 0 (CI low > it)",
                           met=bool(holds))
        ratios.add("drum stem found in the HPSS percussive part (share)",
                   float(agreement.drums_in_percussive.mean()), None, "share")


def clean_clips(root: Path) -> dict[str, tuple[str, Path]]:
    """track_id -> (genre, path) of the corpus clips with no planted fault and one genre."""
    faulty = {row["track_id"] for row in csv.DictReader(open(root / "faults_truth.csv", encoding="utf-8"))}
    out = {}
    for row in csv.DictReader(open(root / "metadata.csv", encoding="utf-8")):
        if row["track_id"] not in faulty and not row.get("also"):
            out[row["track_id"]] = (row["label"], root / "genres_original" / row["label"] / f"{row['track_id']}.wav")
    return out


def demo_cnn_run(store, args) -> str:
    """The latest complete CNN run on the demo split, trained with the demo's settings if none
    (one epoch with --quick)."""
    runs = store.complete_runs(DEMO_NAME, "cnn", DemoConfig.split).run_id
    if len(runs):
        return str(runs.iloc[-1])
    from genre_core.train.config import TrainConfig
    from genre_core.train.fit import fit

    epochs = 1 if getattr(args, "quick", False) else DemoConfig.epochs
    config = TrainConfig(dataset=DEMO_NAME, model="cnn", split=DemoConfig.split, epochs=epochs,
                         device=getattr(args, "device", "auto"), seed=DemoConfig.seed)
    return fit(store, config, progress=False).run_id


@torch.no_grad()
def variant_drops(store, run_id: str, clean: dict[str, tuple[str, Path]], device: str = "auto") -> pd.DataFrame:
    """One row per (held-out clean track, variant): genre, variant, drop of p(own genre)."""
    loaded = load_run(store, run_id, device)
    preds = store.predictions(run_id)
    held_out = preds[preds.split.isin(["test", "val"]) & preds.track_id.isin(list(clean))]
    tracks = store.tracks(DEMO_NAME).set_index("track_id")
    cache = ShardCache(paths.cache_dir(store.path))
    rows = []
    for row in tqdm(held_out.itertuples(), total=len(held_out), desc="variants", unit="track"):
        track = tracks.loc[row.track_id]
        y = np.asarray(cache.load(track.path, track.sha1, loaded.sr), dtype=np.float32)
        stems = demo_stems_at(track.path, loaded.sr, len(y))
        variants = {"original": y, **musical_variants(y, loaded.sr, stems=stems)}
        probs = variant_probs(loaded, variants, loaded.sr)
        own = loaded.classes.index(row.label)
        rows += [dict(track_id=row.track_id, genre=row.label, variant=name,
                      drop=float(probs["original"][own] - p[own])) for name, p in probs.items() if name != "original"]
    return pd.DataFrame(rows)


def drop_table(drops: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Mean drop per (variant, genre) with a 95% bootstrap CI over the genre's tracks."""
    rows = []
    for (variant, genre), group in drops.groupby(["variant", "genre"], sort=True):
        values = group["drop"].to_numpy()
        low, high = bootstrap_ci(values, values, lambda _, x: x.mean(axis=-1), seed=seed)
        rows.append(dict(variant=variant, genre=genre, n=len(values), mean_drop=values.mean(),
                         ci_low=low, ci_high=high))
    return pd.DataFrame(rows)


def _known_answer_holds(no_drums: pd.DataFrame) -> bool:
    """Each drum genre's mean drop above classical's, and its CI's low end above classical's mean."""
    if CALM_GENRE not in no_drums.index or not all(g in no_drums.index for g in DRUM_GENRES):
        return False
    calm = no_drums.mean_drop[CALM_GENRE]
    return all(no_drums.mean_drop[g] > calm and no_drums.ci_low[g] > calm for g in DRUM_GENRES)


def hpss_agreement(root: Path, clean: dict[str, tuple[str, Path]]) -> pd.DataFrame:
    """One row per clean clip with a drum stem: genre and the four measures of the docstring."""
    rows, sr = [], corpus_config(root).sr
    for track_id, (genre, path) in tqdm(sorted(clean.items()), desc="hpss vs drums", unit="clip"):
        parts = clip_parts(path)  # sum: the clip on disk within half a 16-bit step
        if parts is None or "drums" not in parts:
            continue
        mix, drums = sum(parts.values()), parts["drums"]
        rest = mix - drums
        harmonic, percussive = (x.astype(np.float64) for x in hpss(mix, sr))
        rows.append(dict(
            track_id=track_id, genre=genre,
            drums_in_percussive=np.dot(percussive, drums) / np.dot(drums, drums),
            rest_in_harmonic=np.dot(harmonic, rest) / np.dot(rest, rest),
            percussive_sdr_db=10 * np.log10(np.dot(drums, drums) / np.sum((percussive - drums) ** 2)),
            logspec_corr=_logspec_corr(percussive, drums),
        ))
    return pd.DataFrame(rows)


def _logspec_corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two signals' log-magnitude STFTs (dB, floored 80 dB under b's peak)."""
    window = torch.hann_window(SPEC_N_FFT)
    specs = [torch.stft(torch.as_tensor(x, dtype=torch.float32), SPEC_N_FFT, SPEC_HOP, window=window,
                        return_complex=True).abs() for x in (a, b)]
    floor = float(specs[1].max()) * 1e-4
    db = [20 * torch.log10(s.clamp_min(floor)).flatten().numpy() for s in specs]
    return float(np.corrcoef(db[0], db[1])[0, 1])


def agreement_table(agreement: pd.DataFrame) -> pd.DataFrame:
    """Per genre and over all clips: mean of each measure (the drum share with a 95% CI)."""
    rows = []
    for genre, group in [*agreement.groupby("genre", sort=True), ("all", agreement)]:
        share = group.drums_in_percussive.to_numpy()
        low, high = bootstrap_ci(share, share, lambda _, x: x.mean(axis=-1), seed=0)
        rows.append(dict(genre=genre, n=len(group), drums_in_percussive=share.mean(), ci_low=low, ci_high=high,
                         rest_in_harmonic=group.rest_in_harmonic.mean(),
                         percussive_sdr_db=group.percussive_sdr_db.mean(), logspec_corr=group.logspec_corr.mean()))
    return pd.DataFrame(rows)
