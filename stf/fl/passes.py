"""How an epoch close runs its two passes over the updates: here, or split across processes.

The close's decisions need only pass one's exact sums (:class:`EpochStats`) and its model only
pass two's coordinate-wise blocks, so *where* the columns are read is not consensus. The block
hook uses :class:`LocalPasses` (one process); a caller of ``close_epoch`` may pass a sharded
implementation instead (``node.sharded_close.ShardedPasses``: column ranges over
``torch.distributed`` ranks, int64 sums all-reduced; used by ``bench/fl_scale.py``, not yet by
the node's daemon); both give the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from .aggregate import AggregatePlan, aggregate_blocks
from .stats import DEFAULT_BUDGET_BYTES, EpochStats, RowReader, epoch_stats

Blocks = Iterator[tuple[int, int, npt.NDArray[np.int64]]]


class EpochPasses(Protocol):
    def stats(
        self,
        updates: Sequence[RowReader],
        d: int,
        dtype: np.dtype[Any],
        prev_global: RowReader | None,
        prev_own: Sequence[RowReader | None],
        reference: RowReader | None = None,
    ) -> EpochStats:
        """Pass one over all ``d`` columns: the exact inner products of the whole epoch
        (``reference``: the requester's, :mod:`stf.fl.reference`)."""
        ...

    def aggregate(
        self, updates: Sequence[RowReader], plan: AggregatePlan, d: int, dtype: np.dtype[Any]
    ) -> Blocks:
        """Pass two: every column block of the aggregate, in column order, from 0 to ``d``."""
        ...


@dataclass(frozen=True)
class LocalPasses:
    """Both passes in this process, one column block of ``budget_bytes`` at a time."""

    backend: str = "numpy"
    budget_bytes: int = DEFAULT_BUDGET_BYTES

    def stats(
        self,
        updates: Sequence[RowReader],
        d: int,
        dtype: np.dtype[Any],
        prev_global: RowReader | None,
        prev_own: Sequence[RowReader | None],
        reference: RowReader | None = None,
    ) -> EpochStats:
        return epoch_stats(
            updates,
            d,
            dtype,
            prev_global,
            prev_own,
            reference=reference,
            backend=self.backend,
            budget_bytes=self.budget_bytes,
        )

    def aggregate(
        self, updates: Sequence[RowReader], plan: AggregatePlan, d: int, dtype: np.dtype[Any]
    ) -> Blocks:
        return aggregate_blocks(updates, plan, d, dtype, budget_bytes=self.budget_bytes)
