"""Pass one of an epoch close: every inner product the rules use, exact, over column blocks."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import robust

# -- streaming over column blocks ------------------------------------------------------
#
# An epoch is evaluated in two passes over column blocks of the n x d updates, so that no
# more than one block is ever in memory: the first accumulates every inner product the rules
# use (the Gram matrix, the dots with the previous global step and with each client's own
# previous update), all exact integers, and the decisions need nothing else; the second
# computes the coordinate-wise aggregate of the chosen rows, block by block. Sums of exact
# integers do not depend on how the columns are split, and a coordinate-wise aggregate of a
# block is that block of the aggregate, so the block width (from a memory budget, not
# consensus) never changes a result.

#: Default memory budget for one block of raw update values (not consensus: every value gives
#: the same results).
DEFAULT_BUDGET_BYTES = 256 * 2**20
#: Bytes per column, besides the raw values, for the per-column temporaries (int64 sums, the
#: base model and the two outputs of a block).
_PER_COLUMN = 64

#: ``read(start, stop)``: values ``[start, stop)`` of one row (an update, or the previous step).
RowReader = Callable[[int, int], npt.NDArray[Any]]


def block_cols(rows: int, itemsize: int, budget_bytes: int) -> int:
    """Columns per block so that ``rows`` rows of raw values and the temporaries fit the budget."""
    if budget_bytes <= 0:
        raise ValueError("budget_bytes must be positive")
    return max(1, budget_bytes // (max(1, rows) * itemsize + _PER_COLUMN))


#: ``(start, stop)``: the columns ``[start, stop)`` one process reads (a shard of the close).
Span = tuple[int, int]


def column_blocks(d: int, cols: int, start: int = 0) -> Iterator[tuple[int, int]]:
    """Consecutive ``(start, stop)`` blocks of ``cols`` columns from ``start`` up to ``d``."""
    for lo in range(start, d, cols):
        yield lo, min(d, lo + cols)


def check_span(span: Span | None, d: int) -> Span:
    """The whole ``[0, d)`` for ``None``; else a valid sub-range, or ValueError."""
    if span is None:
        return 0, d
    lo, hi = span
    if not 0 <= lo <= hi <= d:
        raise ValueError(f"column span {span} is not within [0, {d}]")
    return lo, hi


@dataclass
class EpochStats:
    """Every inner product the rules use, exact, accumulated over column blocks."""

    gram: npt.NDArray[np.int64]  # (n, n): <u_i, u_j>
    global_dots: list[int] | None  # <u_i, previous step>; None without a previous step
    global_sq: int  # |previous step|^2 (0 without one)
    global_support: int  # nonzero coordinates of the previous step (0 without one)
    own_dots: list[int | None]  # <u_i, own previous update>; None where there is none
    own_sq: list[int | None]  # |own previous update|^2
    own_global_dots: list[int | None]  # <own previous update, previous step>; None if either lacks
    ref_dots: list[int] | None = None  # <u_i, the requester's reference>; None without one
    ref_sq: int = 0  # |reference|^2 (0 without one)


def _exact_dot(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> int:
    """``<a, b>`` of two int8/int16 vectors, summed in int64 (exact: no float involved)."""
    return int(np.einsum("i,i->", a, b, dtype=np.int64))


def epoch_stats(
    updates: Sequence[RowReader],
    d: int,
    dtype: np.dtype[Any],
    prev_global: RowReader | None = None,
    prev_own: Sequence[RowReader | None] | None = None,
    *,
    reference: RowReader | None = None,
    backend: str = "numpy",
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
    span: Span | None = None,
) -> EpochStats:
    """Pass one: read the updates a column block at a time and accumulate the inner products.

    Memory: ``n`` rows of one block of raw values (:func:`block_cols`), plus one row of the
    previous step, of the requester's ``reference`` (:mod:`stf.fl.reference`) and of one
    client's previous update at a time. ``span`` reads only those
    columns: every figure is a sum over columns, so the stats of a split of ``[0, d)`` add up
    exactly to the stats of the whole (what a sharded close all-reduces).
    """
    n = len(updates)
    dtype = np.dtype(dtype)
    own = list(prev_own) if prev_own is not None else [None] * n
    max_abs = 2 ** (8 * dtype.itemsize - 1)
    if d * max_abs * max_abs >= 2**63:
        raise OverflowError(f"d = {d} columns can overflow the int64 Gram matrix")
    cols = block_cols(n + 3, dtype.itemsize, budget_bytes)
    buf = np.empty((n, min(cols, d)), dtype=dtype)
    g = np.zeros((n, n), dtype=np.int64)
    gdots = np.zeros(n, dtype=np.int64)
    rdots = np.zeros(n, dtype=np.int64)
    rsq = 0
    gsq = 0
    gsupport = 0
    own_dots: list[int | None] = [None if o is None else 0 for o in own]
    own_sq: list[int | None] = [None if o is None else 0 for o in own]
    own_gdots: list[int | None] = [None if o is None or prev_global is None else 0 for o in own]
    lo, hi = check_span(span, d)
    for start, stop in column_blocks(hi, cols, lo):
        blk = buf[:, : stop - start]
        for i, read in enumerate(updates):
            blk[i] = read(start, stop)
        g += robust.gram(blk, backend=backend)
        p = None
        if prev_global is not None:
            p = prev_global(start, stop).reshape(1, -1)
            gdots += robust.cross_gram(blk, p, backend=backend)[:, 0]
            gsq += int(robust.gram(p, backend=backend)[0, 0])
            gsupport += int(np.count_nonzero(p))
        if reference is not None:
            r = reference(start, stop).reshape(1, -1)
            rdots += robust.cross_gram(blk, r, backend=backend)[:, 0]
            rsq += int(robust.gram(r, backend=backend)[0, 0])
        for i, read_own in enumerate(own):
            if read_own is not None:
                o = read_own(start, stop)
                own_dots[i] = int(own_dots[i] or 0) + _exact_dot(blk[i], o)
                own_sq[i] = int(own_sq[i] or 0) + _exact_dot(o, o)
                if p is not None:
                    own_gdots[i] = int(own_gdots[i] or 0) + _exact_dot(o, p[0])
    return EpochStats(
        g,
        None if prev_global is None else [int(v) for v in gdots.tolist()],
        gsq,
        gsupport,
        own_dots,
        own_sq,
        own_gdots,
        None if reference is None else [int(v) for v in rdots.tolist()],
        rsq,
    )
