"""What an epoch close decides, as a pure function of integer updates.

:func:`evaluate_epoch` takes the epoch's quantized updates (one row per client,
clients in canonical order: by submission position), the previous epoch's
aggregated update and each client's own previous update, and returns per
client the Krum score, rank, the exact correlation figures, the flags
(:mod:`stf.fl.flags`), and which updates the aggregate may use. Everything is
integer or exact rational arithmetic (see :mod:`stf.robust`), so every node gets
the same bytes. :func:`next_verdict` folds one epoch's flags into a client's
standing in the task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .aggregate import AggregatePlan, aggregate_blocks, plan_aggregate
from .checks import epoch_view, flags_of, krum_f
from .contribution import credits
from .flags import PROVABLE
from .records import NO_EPOCH, Verdict
from .reference import reference_plan
from .rules import EpochRules
from .stats import DEFAULT_BUDGET_BYTES, EpochStats, RowReader, epoch_stats


@dataclass
class ClientResult:
    score: int
    rank: int  # 0 = best Krum score
    sq_norm: int
    loo_dot: int  # <u_i, sum of the Multi-Krum selection without i>
    loo_rest_sq: int  # |that sum|^2
    global_dot: int  # <u_i, previous global step>, 0 without one
    flags: int
    selected: bool  # used by the aggregate
    credit: int = 0  # reward credits of the epoch (stf.fl.contribution), 0 if not used


@dataclass
class EpochResult:
    clients: list[ClientResult]
    aggregate: npt.NDArray[np.int64]  # the next global step, in quantized units
    used: list[int] = field(default_factory=list)


def judge(stats: EpochStats, rules: EpochRules) -> tuple[list[ClientResult], AggregatePlan]:
    """Scores, flags and the aggregate's plan, from the inner products alone.

    With the requester's reference (``stats.ref_dots``) the plan weighs the rows the configured
    aggregator chose by their trust (:mod:`stf.fl.reference`); flags, verdicts and credits are
    decided before it and do not read it."""
    g = stats.gram
    n = g.shape[0]
    f = krum_f(rules.f, n)
    v, rank = epoch_view(g, f)
    gdots = stats.global_dots if stats.global_dots is not None else [0] * n
    results = [
        ClientResult(
            v.scores[i],
            rank[i],
            v.norms[i],
            v.ref_dot[i],
            v.ref_sq[i],
            gdots[i],
            flags_of(v, i, stats, rules),
            False,
        )
        for i in range(n)
    ]
    clean = [i for i in range(n) if results[i].flags == 0]
    for i in clean:
        results[i].selected = True
    plan = plan_aggregate(g, clean, rules, f)
    for i, c in enumerate(credits(stats, plan.rows)):
        results[i].credit = c
    if stats.ref_dots is not None:
        norms = [int(x) for x in g.diagonal().tolist()]
        plan = reference_plan(norms, stats.ref_dots, stats.ref_sq, plan.rows)
    return results, plan


def _row_reader(a: npt.NDArray[Any]) -> RowReader:
    return lambda start, stop: a[start:stop]


def evaluate_epoch(
    updates: npt.NDArray[Any],
    rules: EpochRules,
    prev_global: npt.NDArray[Any] | None = None,
    prev_own: list[npt.NDArray[Any] | None] | None = None,
    *,
    reference: npt.NDArray[Any] | None = None,
    backend: str = "numpy",
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
) -> EpochResult:
    """Score, flag and aggregate one epoch. ``updates`` is ``(n, d)`` int8/int16, n >= 1;
    ``reference`` the requester's (:mod:`stf.fl.reference`), same shape as a row.

    The in-memory form of :func:`epoch_stats` -> :func:`judge` -> :func:`aggregate_blocks`,
    which the epoch close runs on blobs read a block at a time; ``budget_bytes`` sets the
    block width and never changes the result.
    """
    n, d = updates.shape
    rows = [_row_reader(updates[i]) for i in range(n)]
    pg = None if prev_global is None else _row_reader(prev_global.reshape(-1))
    own = None
    if prev_own is not None:
        own = [None if o is None else _row_reader(o.reshape(-1)) for o in prev_own]
    ref = None if reference is None else _row_reader(reference.reshape(-1))
    stats = epoch_stats(
        rows,
        d,
        updates.dtype,
        pg,
        own,
        reference=ref,
        backend=backend,
        budget_bytes=budget_bytes,
    )
    results, plan = judge(stats, rules)
    aggregate = np.zeros(d, dtype=np.int64)
    for start, stop, block in aggregate_blocks(
        rows, plan, d, updates.dtype, budget_bytes=budget_bytes
    ):
        aggregate[start:stop] = block
    return EpochResult(results, aggregate, [i for i, c in enumerate(results) if c.selected])


def next_verdict(prev: Verdict, flags: int, epoch: int, rules: EpochRules) -> Verdict:
    """Fold one epoch's flags into a client's standing (:mod:`stf.fl.flags`).

    A provable offence makes it slashable at once; any other flag is a strike, and
    ``strikes_to_bar`` strikes bar the client from the task. Barred and slashable are final (a
    barred client submits nothing more, so it cannot become slashable). Strikes do not decay:
    measured (bench/detection.py), decay barely changed how many honest clients are barred and
    let a backdoor attacker flagged every other epoch stay in (attack success 0.57 against 0.05).
    """
    if not prev.standing:
        return prev
    if flags & PROVABLE:
        return Verdict(prev.strikes, True, flags & PROVABLE, epoch)
    if not flags:
        return prev
    strikes = prev.strikes + 1
    if strikes >= rules.strikes_to_bar:
        return Verdict(strikes, False, flags, epoch, barred=True)
    return Verdict(strikes, False, 0, NO_EPOCH)
