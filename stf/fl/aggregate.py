"""Pass two of an epoch close: which rows the aggregate combines, and the aggregate itself,
block by block (coordinate-wise, so a block of the aggregate is the aggregate of the block)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import robust
from .checks import krum_f
from .rules import Aggregator, EpochRules
from .stats import DEFAULT_BUDGET_BYTES, RowReader, Span, block_cols, check_span, column_blocks


@dataclass(frozen=True)
class AggregatePlan:
    """Which rows the aggregate combines, and how (coordinate-wise)."""

    kind: str  # "zero" (no row), "mean", "median", "trimmed_mean" or "weighted"
    rows: tuple[int, ...] = ()  # ascending update indices
    trim: Fraction = Fraction(0)  # trimmed_mean: the fraction cut at each end
    # weighted (stf.fl.reference): round_half_even(sum_r weights[r] * row_r / scale); the
    # caller bounds the int64 sum
    weights: tuple[int, ...] = ()
    scale: int = 1


def plan_aggregate(
    g: npt.NDArray[np.int64], clean: list[int], rules: EpochRules, f: int
) -> AggregatePlan:
    if not clean:
        return AggregatePlan("zero")
    k = len(clean)
    if rules.aggregator == Aggregator.MEAN or k < 3:
        return AggregatePlan("mean", tuple(clean))
    if rules.aggregator == Aggregator.MEDIAN:
        return AggregatePlan("median", tuple(clean))
    if rules.aggregator == Aggregator.TRIMMED_MEAN:
        return AggregatePlan("trimmed_mean", tuple(clean), Fraction(rules.trim_num, rules.trim_den))
    # multi_krum_mean: Multi-Krum among the clean updates (their Gram matrix is a block of g),
    # then the mean of its selection
    fk = krum_f(f, k)
    sub = g[np.ix_(clean, clean)]
    scores = robust.krum_scores_from_distances(robust.pairwise_sq_distances(sub), fk)
    chosen = sorted(int(j) for j in robust.krum_select(scores, max(1, k - fk)).tolist())
    return AggregatePlan("mean", tuple(clean[j] for j in chosen))


def aggregate_blocks(
    updates: Sequence[RowReader],
    plan: AggregatePlan,
    d: int,
    dtype: np.dtype[Any],
    *,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
    span: Span | None = None,
) -> Iterator[tuple[int, int, npt.NDArray[np.int64]]]:
    """Pass two: ``(start, stop, aggregate[start:stop])`` for consecutive column blocks
    (of ``span`` only, if given: the aggregate is coordinate-wise, so shards concatenate)."""
    dtype = np.dtype(dtype)
    k = len(plan.rows)
    cols = block_cols(k, dtype.itemsize, budget_bytes)
    lo, hi = check_span(span, d)
    if plan.kind == "zero":
        for start, stop in column_blocks(hi, cols, lo):
            yield start, stop, np.zeros(stop - start, dtype=np.int64)
        return
    buf = np.empty((k, min(cols, max(1, hi - lo))), dtype=dtype)
    for start, stop in column_blocks(hi, cols, lo):
        blk = buf[:, : stop - start]
        for r, i in enumerate(plan.rows):
            blk[r] = updates[i](start, stop)
        if plan.kind == "mean":
            out = robust.mean(blk)
        elif plan.kind == "median":
            out = robust.coordinate_median(blk)
        elif plan.kind == "trimmed_mean":
            out = robust.trimmed_mean(blk, plan.trim)
        elif plan.kind == "weighted":
            w = np.asarray(plan.weights, dtype=np.int64)
            num = np.einsum("rc,r->c", blk, w, dtype=np.int64)
            out = robust.round_half_even_div(num, plan.scale)
        else:  # pragma: no cover - plans come from plan_aggregate
            raise ValueError(f"unknown aggregate plan {plan.kind!r}")
        yield start, stop, out
