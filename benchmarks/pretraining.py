"""Does an encoder pretrained on the corpus's own audio (no labels) pay when labels are few?

On the demo corpus and the demo's protocol (artist split, seed 0): one `pretrain` on the
split's train and val audio (its test tracks unheard), then, with 100%, 25% and 10% of each
genre's training labels, four models scored on the same test tracks: ssl_probe on the
pretrained encoder, ssl_probe on the same encoder randomly initialised (what pretraining
adds), cnn trained from scratch, and musicnn_probe (an encoder pretrained elsewhere, on the
Million Song Dataset). Track accuracy with bootstrap 95% CIs, and McNemar's test of ssl_probe
against each other model on the same tracks.

The same on a second corpus whose genres musicnn was never taught (`synth --recipes unseen`:
polka, waltz, bossa, afrobeat, gamelan, tango, march, drum and bass; 24 clips of 15 s each,
made and ingested as a folder corpus with its artist index beside the demo's database): the
claim there is that ssl_probe closes on, or beats, musicnn_probe.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from genre_core.metrics.evaluation import mcnemar
from genre_core.runs.demo import DemoConfig
from genre_core.train.backbone import resolve_backbone
from genre_core.train.config import PretrainConfig, TrainConfig
from genre_core.train.fit import fit, prepare
from genre_core.train.pretrain import MODEL_LABEL, pretrain

SHARES = (0.1, 0.25, 1.0)  # fewest labels first: the claim under test, and the quickest runs
REFERENCE = "ssl_probe"  # the arm every other is tested against
CORPORA = ("demo", "unseen")  # dataset names in the benchmark database


def run(store, args) -> pd.DataFrame:
    if "unseen" in args.pretraining_corpora:  # the demo's own is made by the benchmarks' entry point
        _ensure_unseen(store, Path(args.db).parent / "unseen", args.per_genre, args.seconds)
    tables = []
    for dataset in args.pretraining_corpora:
        print(f"### {dataset}\n", flush=True)
        tables.append(_corpus_table(store, dataset, args).assign(corpus=dataset))
    return pd.concat(tables, ignore_index=True)


def _ensure_unseen(store, root: Path, per_genre: int, seconds: float) -> None:
    """The unseen-genre corpus, made and ingested once (as a user's folder corpus would be)."""
    from genre_core.datasets.ingest import ingest
    from genre_core.datasets.synth.corpus import SynthConfig
    from genre_core.datasets.synth.unseen import INDEX, generate_unseen

    if not (root / INDEX).is_file():
        generate_unseen(root, config=SynthConfig(per_genre=per_genre, seconds=seconds), progress=True)
    if not store.has_dataset("unseen"):
        ingest(store, "folder", root, name="unseen", artist_index=root / INDEX)


def _corpus_table(store, dataset: str, args) -> pd.DataFrame:
    run_id = _pretrained(store, PretrainConfig(dataset, split=DemoConfig.split, device=args.device, seed=0))
    backbone, features = resolve_backbone(store, run_id)
    arms = {
        REFERENCE: dict(model="ssl_probe", backbone=backbone, features=features),
        "ssl_probe, random encoder": dict(model="ssl_probe", features=features,
                                          backbone={"encoder": backbone["encoder"], "tiny": backbone["tiny"]}),
        "cnn from scratch": dict(model="cnn"),
        "musicnn_probe": dict(model="musicnn_probe"),
    }
    rows = []
    for share in SHARES:
        correct = {}
        for arm, settings in arms.items():
            config = TrainConfig(dataset=dataset, split=DemoConfig.split, epochs=args.epochs, device=args.device,
                                 seed=0, label_share=share, **settings)
            began = time.perf_counter()
            result = fit(store, config, progress=False)
            correct[arm] = _correct(store, result.run_id)
            low, high = result.ci["accuracy"]
            rows.append(dict(labels=f"{share:.0%}", labelled_tracks=len(prepare(store, config).split.train),
                             model=arm, accuracy=result.report.accuracy, ci=f"[{low:.2f}, {high:.2f}]",
                             test_tracks=result.report.n, seconds=time.perf_counter() - began,
                             vs_ssl_probe=_versus(correct, arm)))
            print(f"  {share:>4.0%} {arm:26s} acc {result.report.accuracy:.3f} [{low:.2f}, {high:.2f}] "
                  f"({rows[-1]['seconds']:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    print()
    print(table.to_markdown(index=False, floatfmt=".3f"))
    return table


def _pretrained(store, config: PretrainConfig) -> str:
    """The id of a complete pretraining of `config` (its epochs' seconds printed): the latest
    such run in the database, else a new one; reruns of the section then train the arms only."""
    done = store.complete_runs(config.dataset, MODEL_LABEL, config.split)
    for run_id in reversed(list(done.run_id)):
        if PretrainConfig.from_dict(store.run(run_id)["config"]) == config:
            break
    else:
        run_id = pretrain(store, config, progress=False).run_id
    epochs = store.query("SELECT epoch, train_loss, val_loss, val_acc, seconds FROM epochs WHERE run_id = ? "
                         "ORDER BY epoch", [run_id])
    row = store.run(run_id)
    wall = (row["finished_at"] - row["started_at"]).total_seconds()
    print(f"  pretraining {run_id}: {len(epochs)} epochs, {wall:.0f} s wall ({epochs.seconds.sum():.0f} s in epochs); validation "
          f"NT-Xent {epochs.val_loss.iloc[0]:.3f} -> {epochs.val_loss.min():.3f}, partner found "
          f"{epochs.val_acc.iloc[0]:.0%} -> {epochs.val_acc.max():.0%}", flush=True)
    return run_id


def _correct(store, run_id: str) -> pd.Series:
    """Per test track: was it predicted right? (indexed by track_id, for pairing runs)."""
    frame = store.predictions(run_id, "test")
    return pd.Series((frame.label == frame.predicted).to_numpy(), index=frame.track_id).sort_index()


def _versus(correct: dict[str, pd.Series], arm: str) -> str:
    """McNemar of the reference arm against `arm` on their shared test tracks: 'b/c, p'."""
    if arm == REFERENCE:
        return ""
    a, b = correct[REFERENCE].align(correct[arm], join="inner")
    test = mcnemar(np.asarray(a, dtype=bool), np.asarray(b, dtype=bool))
    return f"{test.b} vs {test.c} discordant, p={test.p_value:.3f}"


def add_arguments(parser) -> None:
    parser.add_argument("--pretraining-corpora", nargs="*", choices=CORPORA, default=list(CORPORA),
                        help="pretraining: which corpora's tables to measure (default: both)")
