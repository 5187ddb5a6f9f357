"""Sliding-window median filter in torch, exact and batched: HPSS's kernel (librosa runs
`scipy.ndimage.median_filter` over the spectrogram, 31 bins wide along time and along frequency).

`torch.median` over an unfolded (..., T, 31) view takes one selection per output (~1 us each on
this CPU, slower than scipy); here the windows share their sorting work instead. Every
position's sorted run of h = (k + 1) / 2 samples is built by merging the sorted runs of half
that length (Batcher's odd-even merge, elementwise min/max over whole tensors), and the median
of the window is read from two overlapping runs. Only min and max touch the data, so the result
is bit-exact, on any device. That network is the GPU path; on a CPU a numba loop that keeps
each window sorted (one bisection and a few moves per output) does the same selection ~2x
faster than the network (measured: 19.6 vs 33 ms of CPU per 3-s window for HPSS's two filters).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import reduce

import numba
import numpy as np
import torch

# Elements per chunk of rows. Small enough that the ~40 live (rows, L) tensors stay in the CPU
# cache (~4x faster per element than one pass over a whole batch), and under torch's parallel
# grain (32768) so that each of the ~140 min/max ops runs on one thread: measured on 2 busy
# cores, 2^16 made every op wait for a descheduled second thread and ran 14x slower.
_CHUNK_ELEMENTS = 1 << 14

_MIN_ROWS_PER_THREAD = 64  # below this a thread's start-up outweighs its share

Run = list  # sorted run: tensors (R, n) of the 1st, 2nd, ... smallest; None = +inf (padding)


def median_filter(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Median of every `size`-long window along `dim` of `x` (any shape), same shape as `x`.

    Equals `scipy.ndimage.median_filter(x, size=(1, .., size, .., 1), mode="reflect")`: the
    edges are extended by mirror images that repeat the edge sample (d c b a | a b c d).
    `size` must be odd.
    """
    if size % 2 != 1:
        raise ValueError(f"median_filter needs an odd window, got {size}")
    moved = x.movedim(dim, -1)  # (..., L)
    half = size // 2
    length = moved.shape[-1]
    if half > length:
        raise ValueError(f"window {size} is longer than twice the axis ({length})")
    if not moved.is_cuda and moved.dtype in (torch.float32, torch.float64) and bool(torch.isfinite(moved).all()):
        # On a CPU a sorted window updated one sample at a time beats the merge network (no
        # tensor per comparator); it pads each row itself, so no padded copy is made.
        rows = moved.detach().reshape(-1, length).contiguous().numpy()  # (R, L)
        return torch.from_numpy(_threaded_median_rows(rows, size)).reshape(moved.shape).movedim(-1, dim)
    padded = torch.cat([moved[..., :half].flip(-1), moved, moved[..., length - half:].flip(-1)], -1)
    rows = padded.reshape(-1, padded.shape[-1])  # (R, L + size - 1)
    # A GPU has no such cache or thread trouble, only a launch cost per op: one chunk there.
    step = len(rows) if rows.is_cuda else max(1, _CHUNK_ELEMENTS // rows.shape[-1])
    out = torch.cat([sliding_median(chunk, size) for chunk in rows.split(step)])  # (R, L)
    return out.reshape(moved.shape).movedim(-1, dim)


def _threaded_median_rows(rows: np.ndarray, size: int) -> np.ndarray:
    """`_sliding_median_rows` split by rows over torch's intra-op thread count (the loop
    releases the GIL): HPSS's filters were 30% of a baseline table's time on one core while
    the rest of it ran torch ops on two. A worker process set to one thread stays on one."""
    threads = min(torch.get_num_threads(), len(rows) // _MIN_ROWS_PER_THREAD)
    if threads <= 1:
        return _sliding_median_rows(rows, size)
    parts = np.array_split(rows, threads)
    with ThreadPoolExecutor(threads) as pool:
        return np.concatenate(list(pool.map(lambda part: _sliding_median_rows(part, size), parts)))


@numba.njit(cache=True, nogil=True)
def _sliding_median_rows(x: np.ndarray, size: int) -> np.ndarray:
    """(R, L) finite values -> (R, L) medians of the `size`-long window centred on each sample,
    the row extended by mirror images as `median_filter` (size odd, size // 2 <= L).

    Keeps the window sorted: each step finds the outgoing sample by bisection and slides the
    incoming one into place, moving only the values between them. Selection, so bit-exact."""
    rows, length = x.shape
    half = size // 2
    out = np.empty((rows, length), dtype=x.dtype)
    window = np.empty(size, dtype=x.dtype)
    row = np.empty(length + 2 * half, dtype=x.dtype)  # the padded row
    for r in range(rows):
        for i in range(half):
            row[i] = x[r, half - 1 - i]
            row[half + length + i] = x[r, length - 1 - i]
        row[half: half + length] = x[r]
        for i in range(size):  # insertion sort of the first window
            value, j = row[i], i
            while j > 0 and window[j - 1] > value:
                window[j] = window[j - 1]
                j -= 1
            window[j] = value
        out[r, 0] = window[half]
        for i in range(1, length):
            old, new = row[i - 1], row[i + size - 1]
            lo, hi = 0, size
            while lo < hi:  # the first index holding `old` (it is in the window)
                mid = (lo + hi) >> 1
                if window[mid] < old:
                    lo = mid + 1
                else:
                    hi = mid
            j = lo
            if new >= old:
                while j + 1 < size and window[j + 1] < new:
                    window[j] = window[j + 1]
                    j += 1
            else:
                while j > 0 and window[j - 1] > new:
                    window[j] = window[j - 1]
                    j -= 1
            window[j] = new
            out[r, i] = window[half]
    return out


def sliding_median(x: torch.Tensor, size: int) -> torch.Tensor:
    """(R, L) -> (R, L - size + 1): the median of x[:, i : i + size] at column i (size odd)."""
    h = (size + 1) // 2
    n = x.shape[-1] - size + 1
    runs: dict[int, Run] = {1: [x]}
    first, last = _shift(_sorted_run(runs, h), 0, n), _shift(_sorted_run(runs, h), h - 1, n)
    # The two runs cover the window with its middle sample c counted twice; call their sorted
    # union u (size + 1 values). The window's median w_h is u_(h+1) if c <= u_h, else u_h:
    # the extra copy of c shifts w_h up one place exactly when c sits at or below it.
    u_h, u_h1 = _kth_of_union(first, last, h), _kth_of_union(first, last, h + 1)
    middle = x[:, h - 1: h - 1 + n]
    return torch.where(middle <= u_h, u_h1, u_h)


def _sorted_run(runs: dict[int, Run], m: int) -> Run:
    """Sorted values of x[:, i : i + m] for every i, as m tensors (R, L - m + 1); memoised."""
    if m not in runs:
        head = m // 2
        n = runs[1][0].shape[-1] - m + 1
        runs[m] = _merge(_shift(_sorted_run(runs, head), 0, n), _shift(_sorted_run(runs, m - head), head, n))
    return runs[m]


def _shift(run: Run, start: int, n: int) -> Run:
    return [t[:, start: start + n] for t in run]


def _merge(a: Run, b: Run) -> Run:
    """Sorted union of two sorted runs (any lengths): odd-even merge padded with +inf."""
    size = 1 << (max(len(a), len(b)) - 1).bit_length()
    merged = _odd_even_merge(a + [None] * (size - len(a)), b + [None] * (size - len(b)))
    return merged[: len(a) + len(b)]  # the padding sorts last


def _odd_even_merge(a: Run, b: Run) -> Run:
    """Batcher's merge of two sorted runs of the same power-of-two length."""
    if len(a) == 1:
        return list(_exchange(a[0], b[0]))
    even, odd = _odd_even_merge(a[0::2], b[0::2]), _odd_even_merge(a[1::2], b[1::2])
    out = [even[0]]
    for i in range(len(odd) - 1):
        out.extend(_exchange(odd[i], even[i + 1]))
    out.append(odd[-1])
    return out


def _exchange(a, b):
    """(min, max) of two tensors, where None is +inf (a comparator against padding is free)."""
    if a is None or b is None:
        return (b, None) if a is None else (a, None)
    return torch.minimum(a, b), torch.maximum(a, b)


def _kth_of_union(a: Run, b: Run, k: int) -> torch.Tensor:
    """k-th smallest (1-based) of the union of two sorted runs: the least, over every way to take
    k values as the i smallest of a and the k - i smallest of b, of the largest value taken."""
    terms = []
    for i in range(max(0, k - len(b)), min(k, len(a)) + 1):
        taken = [t for t in (a[i - 1] if i else None, b[k - i - 1] if k - i else None) if t is not None]
        terms.append(taken[0] if len(taken) == 1 else torch.maximum(*taken))
    return reduce(torch.minimum, terms)
