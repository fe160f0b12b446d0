"""An epoch close sharded by columns over the ranks of a ``torch.distributed`` process group.

Every rank holds the same state (a replica: the same blocks and blobs) and runs the same
:func:`stf.fl.epoch.close_epoch` with :class:`ShardedPasses`. Rank ``r`` of ``R`` reads only
the columns ``[d r / R, d (r + 1) / R)`` of every update:

* pass one: its column range's exact integer sums (the Gram matrix, the dots with the previous
  step and with each client's own previous update), then one ``all_reduce(SUM)`` of them as
  int64. Integer addition is exact and associative, so every rank gets the bytes one process
  computes (:func:`stf.fl.stats.epoch_stats` over ``[0, d)``), and judges identically;
* pass two: the coordinate-wise aggregate of its range, then each range is broadcast from its
  rank in column order, so every rank writes the same next model and step, hence the same
  state root.

Before each pass the ranks check that they close the same epoch (the same shape, absent
figures and plan: :meth:`ShardedPasses._agree`), so ranks that fell out of step fail loudly on
every rank instead of summing unrelated figures. A rank that fails must exit (or abort the
group): the others then fail at their next collective, at the latest after the group's timeout.
gloo runs it on CPUs, NCCL on GPUs (the int64 sums are the same; docs/protocol.md "A sharded
epoch close"). torch is imported only here, when a sharded close is asked for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from stf.fl.aggregate import AggregatePlan, aggregate_blocks
from stf.fl.passes import Blocks
from stf.fl.stats import DEFAULT_BUDGET_BYTES, EpochStats, RowReader, Span, epoch_stats

#: The most columns per broadcast of pass two (8 bytes each: 32 MiB; fewer with a block budget
#: under 256 MiB), so no rank holds more than its own range plus one such piece of another's.
BROADCAST_COLS = 2**22


def rank_span(d: int, rank: int, world: int) -> Span:
    """The columns rank ``rank`` of ``world`` reads: contiguous, sizes differing by at most 1."""
    return d * rank // world, d * (rank + 1) // world


def stats_vector(s: EpochStats) -> list[int]:
    """Every sum of ``s`` in a fixed order (absent figures as 0: which are absent does not
    depend on the columns, so every rank's vector has the same layout)."""
    n = s.gram.shape[0]
    out = [int(x) for x in s.gram.reshape(-1).tolist()]
    out += [int(x) for x in (s.global_dots or [0] * n)]
    out += [s.global_sq, s.global_support]
    for column in (s.own_dots, s.own_sq, s.own_global_dots):
        out += [0 if x is None else int(x) for x in column]
    out += [int(x) for x in (s.ref_dots or [0] * n)] + [s.ref_sq]
    return out


def stats_from_vector(like: EpochStats, v: Sequence[int]) -> EpochStats:
    """The stats whose sums are ``v``, with ``like``'s absent figures (the inverse of
    :func:`stats_vector`)."""
    n = like.gram.shape[0]
    pos = n * n
    gram = np.array(v[:pos], dtype=np.int64).reshape(n, n)
    gdots = None if like.global_dots is None else [int(x) for x in v[pos : pos + n]]
    pos += n
    gsq, gsupport = int(v[pos]), int(v[pos + 1])
    pos += 2
    columns: list[list[int | None]] = []
    for column in (like.own_dots, like.own_sq, like.own_global_dots):
        columns.append([None if x is None else int(v[pos + i]) for i, x in enumerate(column)])
        pos += n
    rdots = None if like.ref_dots is None else [int(x) for x in v[pos : pos + n]]
    rsq = int(v[pos + n])
    return EpochStats(gram, gdots, gsq, gsupport, columns[0], columns[1], columns[2], rdots, rsq)


def _fingerprint(*parts: object) -> int:
    """A 62-bit digest of ``parts`` (their ``repr``): equal on ranks that agree."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big") >> 2


def _dist() -> Any:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("a sharded close needs an initialised torch.distributed process group")
    return dist


class ShardedPasses:
    """:class:`stf.fl.passes.EpochPasses` over the ranks of ``group`` (the default group)."""

    def __init__(
        self,
        group: Any = None,
        backend: str = "numpy",
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        device: str = "cpu",
    ) -> None:
        """``backend``: the kernels' (``"torch:cuda"`` on GPUs; every one gives the same
        bytes); ``device``: where the collectives' tensors live (``"cuda"`` for NCCL, ``"cpu"``
        for gloo)."""
        dist = _dist()
        self.group = group
        self.device = device
        self.rank: int = dist.get_rank(group)
        self.world: int = dist.get_world_size(group)
        self.backend = backend
        self.budget_bytes = budget_bytes

    def stats(
        self,
        updates: Sequence[RowReader],
        d: int,
        dtype: np.dtype[Any],
        prev_global: RowReader | None,
        prev_own: Sequence[RowReader | None],
        reference: RowReader | None = None,
    ) -> EpochStats:
        import torch

        part = epoch_stats(
            updates,
            d,
            dtype,
            prev_global,
            prev_own,
            reference=reference,
            backend=self.backend,
            budget_bytes=self.budget_bytes,
            span=rank_span(d, self.rank, self.world),
        )
        absent = (prev_global is None, reference is None, tuple(o is None for o in prev_own))
        self._agree("pass one", [len(updates), d, np.dtype(dtype).itemsize, _fingerprint(absent)])
        sums = torch.tensor(stats_vector(part), dtype=torch.int64, device=self.device)
        _dist().all_reduce(sums, group=self.group)  # SUM: exact in int64 (epoch_stats bounds d)
        return stats_from_vector(part, sums.cpu().tolist())

    def aggregate(
        self, updates: Sequence[RowReader], plan: AggregatePlan, d: int, dtype: np.dtype[Any]
    ) -> Blocks:
        import torch

        plan_id = _fingerprint(plan.kind, plan.rows, plan.trim, plan.weights, plan.scale)
        self._agree("pass two", [len(updates), d, np.dtype(dtype).itemsize, plan_id])
        lo, hi = rank_span(d, self.rank, self.world)
        mine: npt.NDArray[np.int64] = np.empty(hi - lo, dtype=np.int64)
        spans = aggregate_blocks(
            updates, plan, d, dtype, budget_bytes=self.budget_bytes, span=(lo, hi)
        )
        for start, stop, block in spans:
            mine[start - lo : stop - lo] = block
        dist = _dist()
        piece_cols = max(1, min(BROADCAST_COLS, self.budget_bytes // 64))
        for r in range(self.world):
            rlo, rhi = rank_span(d, r, self.world)
            for start in range(rlo, rhi, piece_cols):
                stop = min(rhi, start + piece_cols)
                if r == self.rank:
                    piece = torch.from_numpy(mine[start - lo : stop - lo]).to(self.device)
                else:
                    piece = torch.empty(stop - start, dtype=torch.int64, device=self.device)
                dist.broadcast(piece, src=self._global_rank(r), group=self.group)
                yield start, stop, piece.cpu().numpy()

    def _agree(self, what: str, header: list[int]) -> None:
        """Raise on every rank unless every rank is about to run the same pass."""
        import torch

        mine = torch.tensor(header, dtype=torch.int64, device=self.device)
        every = [torch.empty_like(mine) for _ in range(self.world)]
        _dist().all_gather(every, mine, group=self.group)
        seen = [t.cpu().tolist() for t in every]
        if any(h != seen[0] for h in seen):
            raise RuntimeError(f"sharded close: the ranks disagree on {what}: {seen}")

    def _global_rank(self, r: int) -> int:
        """Broadcast names its source by its rank in the default group."""
        if self.group is None:
            return r
        return int(_dist().get_global_rank(self.group, r))
