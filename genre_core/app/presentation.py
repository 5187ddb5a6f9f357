"""Presentation mode: what changes when a lecturer projects the app (streamlit-free, so the
rules can be tested and the app's frame only injects them).

Everything a hall must read grows together: text, headings, metrics, buttons (which wrap
instead of cutting their label with an ellipsis), tables (drawn as HTML tables whose cells
take the larger type; st.dataframe paints its cells on a canvas that page CSS cannot reach),
and the charts (charts.finish takes `presentation`). Tables shown then keep the columns a
lay audience reads, under plain names (`lay_table`).
"""

from __future__ import annotations

from typing import Mapping

import pandas as pd

CSS = """<style>
[data-testid="stMainBlockContainer"] { padding-top: 2.5rem !important; }
[data-testid="stMain"] p, [data-testid="stMain"] li, [data-testid="stMain"] label p,
[data-testid="stMain"] [data-testid="stCaptionContainer"] { font-size: 1.35rem !important; }
[data-testid="stMain"] h1 { font-size: 3.2rem !important; }
[data-testid="stMain"] h2, [data-testid="stMain"] h3 { font-size: 2.1rem !important; }
[data-testid="stMain"] [data-testid="stMetricValue"],
[data-testid="stMain"] [data-testid="stMetricValue"] * { font-size: 3.2rem !important; }
[data-testid="stMain"] button, [data-testid="stMain"] button * {
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important; min-width: 0; }
[data-testid="stMain"] button { height: auto !important; padding-left: 0.5rem !important; padding-right: 0.5rem !important; }
[data-testid="stMain"] button p { font-size: 1.15rem !important; }
[data-testid="stMain"] [data-testid="stTable"] table { width: 100%; table-layout: auto; }
[data-testid="stMain"] [data-testid="stTable"] th,
[data-testid="stMain"] [data-testid="stTable"] td { font-size: 1.3rem !important; padding: 0.45rem 0.6rem !important; }
[data-testid="stMain"] [data-testid="stTable"] th, [data-testid="stMain"] [data-testid="stTable"] th *,
[data-testid="stMain"] [data-testid="stTable"] td, [data-testid="stMain"] [data-testid="stTable"] td * {
  white-space: normal !important; overflow-wrap: anywhere !important; word-break: break-word !important; }
</style>"""


BOOKKEEPING = ("run_id", "run id", "sha1", "path")  # columns a projected table never shows


def headings(columns, column_config: Mapping | None = None) -> dict[str, str]:
    """Column -> the heading a page gave it in st.dataframe's column_config (a string, or a
    column config's label), else the column's name with underscores as spaces."""
    config = column_config or {}

    def heading(column: str) -> str:
        given = config.get(column)
        label = given if isinstance(given, str) else (given or {}).get("label") if isinstance(given, Mapping) else None
        return label or str(column).replace("_", " ")

    return {c: heading(c) for c in columns}


def lay_table(frame: pd.DataFrame, columns: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The table a projected page shows: `columns` (name -> plain heading) in that order when
    given, never a BOOKKEEPING column, columns with no value at all dropped (an empty 'per fold' column says nothing to a
    hall), missing values as '–', and a plain 1..n index hidden by the caller's renderer."""
    kept = [c for c in (columns or frame.columns) if c not in BOOKKEEPING]
    shown = frame[kept].rename(columns=dict(columns or {}))
    shown = shown.loc[:, [c for c in shown.columns if shown[c].replace("", pd.NA).notna().any()]]
    for column in shown.columns:  # numbers as a hall reads them: whole, or two decimals
        if pd.api.types.is_string_dtype(shown[column]) or shown[column].dtype == object:  # identifiers read as words ("musicnn probe")
            shown[column] = shown[column].map(lambda v: v.replace("_", " ") if isinstance(v, str) else v)
        elif pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: "–" if pd.isna(v) else f"{v:.0f}" if float(v).is_integer()
                                              else f"{v:.2f}")
    return shown.astype(object).where(shown.notna(), "–").reset_index(drop=True)


__all__ = ["CSS", "headings", "lay_table"]
