"""Live classification: ms per window and real-time factor per trained model family, and the
end-to-end classification of a 60-minute mix of demo test clips of known genres."""

from __future__ import annotations

import pandas as pd

from genre_core.train.inference import load_run
from genre_core.live.streaming import latency_benchmark, mix_benchmark

MIX_MINUTES = 60
SECTION_CLIPS = 6  # consecutive clips per genre section: 90-s sections of 15-s clips


def run(store, args) -> None:
    runs = store.query("SELECT r.run_id, r.model FROM runs r JOIN datasets d USING (dataset_id) "
                       "WHERE d.name = 'demo' AND r.status = 'complete' AND r.split = 'random' "
                       "ORDER BY r.finished_at").drop_duplicates("model", keep="last")
    if runs.empty:
        print("no complete demo runs: run the accuracy section first")
        return
    rows = []
    for run in runs.itertuples():
        loaded = load_run(store, run.run_id, device=args.device)
        stats = latency_benchmark(loaded, minutes=2.0)
        rows.append(dict(model=run.model, device=str(loaded.device), ms_per_window=stats["ms_per_window"],
                         real_time_factor=stats["real_time_factor"], live_latency_ms=stats["live_latency_ms"]))
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g"))
    best = store.query("SELECT m.run_id FROM metrics m JOIN runs r USING (run_id) WHERE r.run_id IN "
                       f"({', '.join('?' * len(runs))}) AND m.split = 'test' AND m.name = 'track/accuracy' "
                       "ORDER BY m.value DESC LIMIT 1", list(runs.run_id)).run_id[0]
    print(f"\n{MIX_MINUTES}-minute mix of demo test clips, classified by run {best}:")
    result = mix_benchmark(load_run(store, best, device=args.device), _mix_clips(store, best))
    print(", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()))


def _mix_clips(store, run_id: str) -> list[tuple[str, str]]:
    """Test clips (never trained on) grouped into same-genre sections, cycled to 60 minutes."""
    tracks = store.query("SELECT t.path, t.label, t.duration_s FROM predictions p JOIN runs r USING (run_id) "
                         "JOIN tracks t ON t.dataset_id = r.dataset_id AND t.track_id = p.track_id "
                         "WHERE p.run_id = ? AND p.split = 'test' ORDER BY t.label, t.track_id", [run_id])
    by_genre = {g: list(group.itertuples()) for g, group in tracks.groupby("label")}
    clips, seconds, turn = [], 0.0, 0
    while seconds < MIX_MINUTES * 60:
        for genre, items in by_genre.items():
            for k in range(SECTION_CLIPS):
                track = items[(turn * SECTION_CLIPS + k) % len(items)]
                clips.append((track.path, genre))
                seconds += track.duration_s
        turn += 1
    return clips
