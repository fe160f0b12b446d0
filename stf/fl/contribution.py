"""Reward credits: how much of an update is new information that persists.

A free rider has no data, so everything it sends is a function of what is public: the base
model, the earlier global steps, earlier epochs' updates. Its best imitation of an honest update
is the last global step (the federation's direction turns slowly) plus noise to escape the echo
and copy checks. What it cannot produce is the part of an update the past does not predict, and
for an honest client that part **persists**: its data pull the model the same way epoch after
epoch (cosine 0.95-0.98 on non-IID digits, bench/detection.py). So a client's credit for an
epoch is the cosine between its update's **innovation** and its previous update's, both taken
orthogonal to the previous global step ``g``, clipped at 0, in units of ``1 / CREDIT_SCALE``::

    r(x) = x - (<x, g> / |g|^2) g        (no step yet: r(x) = x)
    credit = floor(CREDIT_SCALE * max(0, cos(r(u), r(own previous update))))

Exact: with ``A = |g|^2 <u, o> - <u, g><o, g>``, ``B = |g|^2 |u|^2 - <u, g>^2`` and
``C = |g|^2 |o|^2 - <o, g>^2`` (integers: the factors of ``|g|^2`` cancel in the cosine) the
credit is ``isqrt(CREDIT_SCALE^2 A^2 // (B C))`` for ``A > 0``, since
``floor(sqrt(floor(x))) = floor(sqrt(x))``. Every node and backend gets the same credits. It is
scale-free (a larger update earns no more) and 0 for a flagged (unused) update. What it does not
stop (a free rider keeping a private direction of its own) is in docs/protocol.md ("Reward
credits"), with the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import isqrt

from .stats import EpochStats

CREDIT_SCALE = 1000
"""Credits one update can earn in an epoch (consensus: the reward leaf sums them; at most
10,000 epochs x 1,000 fits its uint32 ``accepted`` field)."""


def _innovation_cos_sq(
    u_sq: int, o_sq: int, uo: int, ug: int, og: int, g_sq: int
) -> tuple[int, int] | None:
    """``cos(r_u, r_o)^2`` as ``(num, den)`` with the sign of the cosine kept in ``num``; the
    innovations ``r = x - (<x, g>/|g|^2) g`` (``g_sq = 0``: no step, ``r = x``)."""
    if g_sq > 0:
        a = g_sq * uo - ug * og  # |g|^2 <r_u, r_o>
        b = g_sq * u_sq - ug * ug  # |g|^2 |r_u|^2
        c = g_sq * o_sq - og * og  # |g|^2 |r_o|^2
    else:
        a, b, c = uo, u_sq, o_sq
    if b <= 0 or c <= 0:
        return None
    return (a * abs(a), b * c)


def credits(stats: EpochStats, used: Sequence[int]) -> list[int]:
    """Each update's credit for the epoch: 0 for one the aggregate did not use. A client's first
    update has no past to persist: in the task's first epoch (no global step yet: nothing public
    to imitate, and an unflagged update correlates with the others) it earns ``CREDIT_SCALE``;
    later its first update earns nothing (a fresh key could echo the last step)."""
    n = stats.gram.shape[0]
    out = [0] * n
    g_sq = stats.global_sq  # 0 without a previous step
    for i in used:
        uo, o_sq, og = stats.own_dots[i], stats.own_sq[i], stats.own_global_dots[i]
        if uo is None or o_sq is None:
            out[i] = CREDIT_SCALE if stats.global_dots is None else 0
            continue
        ug = stats.global_dots[i] if stats.global_dots is not None else 0
        cs = _innovation_cos_sq(int(stats.gram[i, i]), o_sq, uo, ug, 0 if og is None else og, g_sq)
        if cs is None or cs[0] <= 0:
            continue
        out[i] = min(CREDIT_SCALE, isqrt(CREDIT_SCALE * CREDIT_SCALE * cs[0] // cs[1]))
    return out
