"""Exact tests and false-discovery-rate control for many findings at once (failure slices,
concepts): whatever is shown as a pattern passed one of these, so that testing hundreds of
slices does not crown one that failed by chance. Pure numpy/scipy."""

from __future__ import annotations

import numpy as np
from scipy import stats

DEFAULT_ALPHA = 0.05  # the false discovery rate allowed among everything reported as significant


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini–Hochberg q-values (adjusted p-values) of `p_values` (m,), in their order.

    A finding with q <= alpha is reported at false discovery rate alpha: among all findings
    so reported, the expected share of false ones is at most alpha (independent or positively
    dependent tests, as overlapping slices of one set of predictions are). q_(i) is the
    smallest m p_(j) / j over j >= i in ascending order, capped at 1. NaN p-values (nothing
    tested) stay NaN and do not count in m.
    """
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    if m == 0:
        return q
    order = tested[np.argsort(p[tested], kind="stable")]
    scaled = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return q


def fisher_greater(errors, n, *, total_errors, total) -> np.ndarray:
    """One-sided Fisher exact p-values that subsets hold more errors than chance would put there.

    Each subset has `n` members of which `errors` are errors, drawn from `total` items with
    `total_errors` errors in all (subset against the rest, margins fixed): P(X >= errors) for X
    hypergeometric. The same as scipy.stats.fisher_exact(alternative="greater") on the 2x2 table
    [[errors, n - errors], [total_errors - errors, total - total_errors - (n - errors)]],
    vectorised over subsets (each may have its own totals). Arrays of one shape in (or scalars),
    p-values of that shape out.
    """
    errors, n = np.asarray(errors), np.asarray(n)
    return stats.hypergeom.sf(errors - 1, total, total_errors, n)
