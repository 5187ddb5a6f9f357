"""The table `make bench` ends with: each of our figures beside its baseline measured in the same
run, the ratio, and the target where the issue states one. Sections add rows as they measure."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Ratios:
    rows: list[dict] = field(default_factory=list)

    def add(self, what: str, ours: float, baseline: float | None, unit: str, target: str = "",
            met: bool | None = None, higher_is_better: bool = False) -> None:
        """One figure. ratio = baseline / ours for times (higher is better either way)."""
        ratio = None
        if baseline is not None and ours and baseline:
            ratio = ours / baseline if higher_is_better else baseline / ours
        self.rows.append(dict(what=what, ours=ours, baseline=baseline, unit=unit,
                              speedup=ratio, target=target,
                              met="" if met is None else ("yes" if met else "NO")))

    def table(self) -> str:
        if not self.rows:
            return "(no ratios measured)"
        frame = pd.DataFrame(self.rows)
        for column in ("ours", "baseline", "speedup"):  # blank, not nan, where there is none
            frame[column] = [f"{v:.3g}" if v is not None and v == v else "" for v in frame[column]]
        return frame.to_markdown(index=False)


def load_line() -> str:
    """The machine's load average when a figure was taken: timings on a shared box are only
    comparable inside one run."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"
