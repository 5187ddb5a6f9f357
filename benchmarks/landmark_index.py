"""python -m benchmarks.landmark_index --tracks N [--seconds S] [--pool-tracks P] [--ram]

How the on-disk landmark index scales, without decoding N files: P made-up recordings (the
test suite's `song`: scales, drums, a room-noise floor) are fingerprinted for real, then N tracks' landmarks are drawn at the pool's landmarks per second,
each hash's anchor bin, bin step and time step drawn independently from the pool's (so hash
popularity is music-like without being limited to the pool's few distinct hashes; repetition
within one track is not modelled), and every 500th track is a planted copy of the one before (same
hashes, times shifted by 20 frames). Prints the landmarks, the index file's size, the
postings the stop list removes, the pair hits voted on, wall times, peak RSS, peak open
files and the planted copies found. --ram also runs the in-memory reference on the same
prints (only sensible for small N: ~52 B per landmark at its peak).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from genre_core.faults import fingerprint as fp
from genre_core.faults.landmark_index import DiskLandmarkIndex
from tests.test_fingerprint import song

PLANT_EVERY = 500
PLANT_SHIFT = 20  # frames


class _Peaks:
    """Peak open files of this process, sampled every 50 ms on a thread."""

    def __init__(self):
        self.fds, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        while not self._stop.is_set():
            self.fds = max(self.fds, len(os.listdir("/proc/self/fd")))
            time.sleep(0.05)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.fds


def pool_prints(n_clips: int, seconds: float, seed: int = 0) -> tuple[np.ndarray, float]:
    """Hashes of `n_clips` real fingerprints of made-up recordings, and landmarks per second."""
    prints = [fp.fingerprint(song(seed + i, seconds, artist=i // 2, sr=fp.FP_SR)) for i in range(n_clips)]
    hashes = np.concatenate([p.hashes for p in prints])
    return hashes, hashes.size / (n_clips * seconds)


def drawn_prints(n_tracks: int, seconds: float, hashes: np.ndarray, rate: float, seed: int = 1):
    """Yield (track, Fingerprint) for n_tracks drawn from the pool; planted copies included."""
    rng = np.random.default_rng(seed)
    frames = int(seconds * fp.FP_SR / fp.HOP)
    n = max(1, int(rate * seconds))
    previous = None
    parts = (hashes >> 16, ((hashes >> 6) & 1023) - (hashes >> 16), hashes & 63)
    for track in range(n_tracks):
        if track % PLANT_EVERY == PLANT_EVERY - 1 and previous is not None:
            h, t = previous.hashes, previous.times + PLANT_SHIFT
        else:
            f1, df, dt = (part[rng.integers(0, hashes.size, n)] for part in parts)
            h = (f1 << 16) | (np.clip(f1 + df, fp.MIN_BIN, fp.N_FFT // 2) << 6) | dt
            t = np.sort(rng.integers(0, frames, n)).astype(np.int32)
        previous = fp.Fingerprint(h, t.astype(np.int32), frames)
        yield track, previous


def run(n_tracks: int, seconds: float, pool_tracks: int, ram: bool, folder: Path) -> dict:
    hashes, rate = pool_prints(pool_tracks, seconds)
    planted = {(t - 1, t) for t in range(PLANT_EVERY - 1, n_tracks, PLANT_EVERY) if t >= 1}
    peaks = _Peaks()
    t0, c0 = time.perf_counter(), time.process_time()
    with DiskLandmarkIndex(folder) as index:
        for track, print_ in drawn_prints(n_tracks, seconds, hashes, rate):
            index.add(track, print_)
        landmarks = index.landmarks()
        t1, c1 = time.perf_counter(), time.process_time()
        disk = sum(f.stat().st_size for f in index.dir.rglob("*") if f.is_file())
        stop = fp.stop_postings(n_tracks)
        found = [(a, c["other"]) for a, c in index.candidates(range(n_tracks))]
        t2, c2 = time.perf_counter(), time.process_time()
        stats = index.con.execute("""
            SELECT sum(c) FILTER (WHERE c > ?) AS stopped, sum(c * (c - 1) / 2) FILTER (WHERE c <= ?) AS pair_hits
            FROM (SELECT count(*) AS c FROM postings GROUP BY hash)""", [stop, stop]).fetchone()
    result = dict(tracks=n_tracks, seconds=seconds, landmarks=landmarks, landmarks_per_s=round(rate, 1),
                  index_mb=round(disk / 2**20, 1), bytes_per_landmark=round(disk / max(1, landmarks), 2),
                  stop_postings=stop, stopped_postings=int(stats[0] or 0), pair_hits=int(stats[1] or 0),
                  build_s=round(t1 - t0, 1), vote_s=round(t2 - t1, 1),
                  build_cpu_s=round(c1 - c0, 1), vote_cpu_s=round(c2 - c1, 1), candidates=len(found),
                  planted=len(planted), planted_found=len(planted & set(found)),
                  peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  peak_open_files=peaks.stop())
    if ram:
        prints = [p for _, p in drawn_prints(n_tracks, seconds, hashes, rate)]
        t3, c3 = time.perf_counter(), time.process_time()
        result["ram_equal"] = [(a, c["other"]) for a, c in fp.memory_candidates(prints)] == found
        result["ram_vote_s"] = round(time.perf_counter() - t3, 1)
        result["ram_vote_cpu_s"] = round(time.process_time() - c3, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.landmark_index", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--pool-tracks", type=int, default=200)
    parser.add_argument("--ram", action="store_true", help="also run the in-memory reference")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args(argv)
    result = run(args.tracks, args.seconds, args.pool_tracks, args.ram, args.dir)
    print(", ".join(f"{k}={v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
