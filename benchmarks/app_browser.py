"""The app as a person meets it: seconds from a click in the sidebar until the page's charts are
drawn, in a real browser (Debian's chromium through playwright) against `streamlit run app.py`.

    python -m benchmarks.app_browser [--db PATH] [--tracks 100000] [--runs 20] [--rounds 3]
    python -m benchmarks.app_browser --tracks 20000 --runs 2 --segments 10 --map-views

Builds the database with `benchmarks.app_db.build` when it is missing (`--segments N`: N windows
of every track on each run's map). `--map-views` times, instead of the sidebar, the Map page's
View radio: a click on Segments, then on Tracks, until that view's figure is drawn in its frame,
and reports the streamlit process's peak resident memory (VmHWM). The first round runs on
a fresh server (every query uncached); later rounds hit st.cache_data, as every later visit
does. Target: every page < 1.5 s warm.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd

from benchmarks.app_db import build
from genre_core.store import open_store

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update"]
PAGES = {"overview": "GenreLens", "confusion": "Confusion matrix", "map": "Map", "track": "Track ",
         "faults": "Dataset faults", "compare": "Compare runs", "classify": "Classify a recording"}
# Drawn: the new page's title is up, its script has finished (streamlit's own e2e signal), no
# placeholder or element of the previous run is left, and every plotly chart has laid itself out.
DRAWN_JS = """(title) => {
  const h1 = document.querySelector('h1');
  if (!h1 || !h1.innerText.startsWith(title)) return false;
  if (!document.querySelector('[data-testid="stApp"][data-test-script-state="notRunning"]')) return false;
  if (document.querySelector('[data-testid="stStatusWidget"], [data-testid="stSkeleton"]')) return false;
  if (document.querySelector('[data-stale="true"]')) return false;
  const plots = Array.from(document.querySelectorAll('.js-plotly-plot'));
  // the Map draws its chart in a frame of its own (page_map_frame; same origin, so readable here)
  for (const frame of document.querySelectorAll('iframe[src*="genrelens_map"]')) {
    const doc = frame.contentDocument, gd = doc && doc.querySelector('.js-plotly-plot');
    if (!gd) return false;
    plots.push(gd);
  }
  return plots.every(gd => gd._fullLayout && gd.querySelector('.main-svg'));
}"""


def _serve(db_path: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
                            cwd=ROOT, env={**os.environ, "GENRELENS_DB": str(db_path)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("streamlit did not start within 120 s")


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _busy_s(cdp) -> float:
    """Seconds the page's main thread has spent on tasks (script, layout, paint) so far."""
    return next(m["value"] for m in cdp.send("Performance.getMetrics")["metrics"] if m["name"] == "TaskDuration")


def _click(tab, cdp, server_pid: int, name: str) -> tuple[float, float, float]:
    """(seconds from a click on the page's sidebar link until its charts are drawn, CPU seconds
    the server spent meanwhile, seconds the browser tab's main thread was busy meanwhile). On a
    shared machine the wall time queues behind other work; the two CPU figures do not, and say
    which side a slow page should be cut on."""
    link = tab.locator('[data-testid="stSidebarNav"] a', has_text=name.capitalize()).first
    cpu, busy = _cpu_s(server_pid), _busy_s(cdp)
    started = time.perf_counter()
    link.click()
    tab.wait_for_function(DRAWN_JS, arg=PAGES[name], timeout=180_000, polling=50)
    wall = time.perf_counter() - started
    return wall, _cpu_s(server_pid) - cpu, _busy_s(cdp) - busy


MAP_VIEWS = ("Segments", "Tracks")
# The frame holds the figure it drew last (glMap.figureId): a view is drawn once that changed.
FIGURE_JS = """() => { const f = document.querySelector('iframe[src*="genrelens_map"]');
  const w = f && f.contentWindow; return (w && w.glMap && w.glMap.figureId) || null; }"""


def _click_view(tab, cdp, server_pid: int, view: str) -> tuple[float, float, float]:
    """As `_click`, for a click on the Map page's View radio: until the new view is drawn."""
    before = tab.evaluate(FIGURE_JS)
    cpu, busy = _cpu_s(server_pid), _busy_s(cdp)
    started = time.perf_counter()
    tab.locator('[data-testid="stRadio"] label', has_text=view).first.click()
    tab.wait_for_function(f"(before) => ({FIGURE_JS})() !== before", arg=before, timeout=180_000, polling=50)
    tab.wait_for_function(DRAWN_JS, arg=PAGES["map"], timeout=180_000, polling=50)
    wall = time.perf_counter() - started
    return wall, _cpu_s(server_pid) - cpu, _busy_s(cdp) - busy


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (MB; Linux VmHWM: psutil reports only the current)."""
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def time_pages(db_path: Path, rounds: int = 3, map_views: bool = False) -> pd.DataFrame:
    """Per page: the deep link (first open of a fresh server), the first click (cold caches) and
    the median of the later clicks (warm), in seconds; for the warm clicks also the median CPU
    seconds of the server and busy seconds of the browser tab (see `_click`)."""
    from playwright.sync_api import sync_playwright

    proc, url = _serve(db_path)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            tab = browser.new_page(viewport={"width": 1400, "height": 950})
            cdp = tab.context.new_cdp_session(tab)
            cdp.send("Performance.enable")
            started = time.perf_counter()
            tab.goto(url)
            tab.wait_for_function(DRAWN_JS, arg=PAGES["overview"], timeout=300_000, polling=50)
            deep_link = time.perf_counter() - started
            if map_views:
                _click(tab, cdp, proc.pid, "map")
            names = MAP_VIEWS if map_views else [*list(PAGES)[1:], "overview"]
            times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in names}
            for _ in range(rounds):
                for name in names:
                    times[name].append(_click_view(tab, cdp, proc.pid, name) if map_views
                                       else _click(tab, cdp, proc.pid, name))
            browser.close()
        peak_mb = _peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    rows = [dict(page=name, cold_s=t[0][0], **{column: _warm(t, i) for i, column in
                                                 enumerate(["warm_s", "server_cpu_s", "browser_busy_s"])})
            for name, t in times.items()]
    frame = pd.DataFrame(rows)
    frame.attrs["deep_link_s"] = deep_link
    frame.attrs["peak_rss_mb"] = peak_mb
    return frame


def _warm(clicks: list[tuple[float, ...]], i: int) -> float:
    """Median of field `i` over the warm clicks (all but the first)."""
    return statistics.median(c[i] for c in clicks[1:]) if len(clicks) > 1 else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.app_browser", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--db", type=Path, help="default: data/bench/app_<tracks>x<runs>.duckdb")
    parser.add_argument("--rounds", type=int, default=3, help="visits per page (the first is cold)")
    parser.add_argument("--segments", type=int, default=0, help="windows per track on each run's map (built)")
    parser.add_argument("--map-views", action="store_true", help="time the Map page's views, not the pages")
    args = parser.parse_args(argv)
    seg = f"_seg{args.segments}" if args.segments else ""
    path = args.db or Path("data/bench") / f"app_{args.tracks}x{args.runs}{seg}.duckdb"
    if not path.is_file():
        started = time.perf_counter()
        build(open_store(path), "bench", n_tracks=args.tracks, n_runs=args.runs, segments_per_track=args.segments)
        print(f"built {path} ({args.tracks} tracks, {args.runs} runs) in {time.perf_counter() - started:.0f} s")
    print_table(path, time_pages(path, args.rounds, args.map_views), args.rounds)
    return 0


def print_table(path: Path, frame: pd.DataFrame, rounds: int) -> None:
    """The table, headed by what it measured and the machine's load (timings queue behind it)."""
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{path}: seconds from a click until the page's (view's) charts are drawn, warm = median of "
          f"{rounds - 1} later clicks; deep link to a fresh server {frame.attrs['deep_link_s']:.1f} s; "
          f"server peak RSS {frame.attrs['peak_rss_mb']:,.0f} MB; load average {load} on {os.cpu_count()} cores")
    print(frame.to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    sys.exit(main())
