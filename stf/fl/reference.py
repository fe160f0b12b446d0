"""The requester's reference update: the aggregate trusts an update by its direction.

Every check of :mod:`stf.fl.checks` reads public statistics, and an attacker who reads them too
can sit under every threshold (ALIE, IPM, min-max, the adaptive sign flip: docs/protocol.md).
What it cannot read is data it does not have. A requester may train the epoch's base model on
held-out data of its own and commit the result, its **reference** ``r``, in the commit phase
(revealed with the clients', so nobody aims at it; :mod:`stf.txtypes.fl`). The epoch's step is
then the trust-weighted mean of the rows the configured aggregator would combine, each row's
trust its cosine to the reference, clipped at 0 (FLTrust's trust, Cao et al. NDSS 2021)::

    step = sum_i trust_i u_i / sum_i trust_i,     trust_i = max(0, cos(u_i, r))

Unlike FLTrust the rows are not rescaled to ``|r|`` or to their median norm: measured on
non-IID digits (bench/detection.py, 20 % attackers, 30 epochs), either rescaling cost 1.4 to 5
points on every row, even where every attacker was caught, while the plain trust-weighted mean
kept every attack but label flipping within 2 points of honest-only FedAvg; an update's norm is
bounded already by KRUM_OUTLIER.

In integers with ``S = REFERENCE_SCALE``: ``t_i = floor(S cos_i) = isqrt(S^2 a^2 //
(|u_i|^2 |r|^2))`` for ``a = <u_i, r> > 0`` (``floor(sqrt(floor x)) = floor(sqrt x)``), 0
otherwise, and the step is ``round_half_even(sum_i t_i u_i / sum_i t_i)``. Every node gets the
same bytes; ``t_i <= S``, so the int64 sums stay below ``n S 2^15 < 2^53``.

**It moves no money.** The judge's flags, verdicts and credits are decided before and without
the reference (:func:`stf.fl.judge.judge`); a reference only weighs the rows of the requester's
own model's step, so one that favours the requester's sybil pays that sybil nothing more. A
reference that trusts no row gives a zero step: the requester said that none of the epoch's
updates improves the model on its data.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import isqrt

from .aggregate import AggregatePlan

REFERENCE_SCALE = 2**20
"""Fixed point of the trust (consensus): a cosine in units of ``1 / 2^20``."""


def trust(sq_norm: int, ref_dot: int, ref_sq: int) -> int:
    """``floor(REFERENCE_SCALE * max(0, cos(u, r)))`` from ``|u|^2``, ``<u, r>``, ``|r|^2``."""
    if ref_dot <= 0 or sq_norm <= 0 or ref_sq <= 0:
        return 0
    s = REFERENCE_SCALE
    return min(s, isqrt(s * s * ref_dot * ref_dot // (sq_norm * ref_sq)))


def reference_plan(
    sq_norms: Sequence[int], ref_dots: Sequence[int], ref_sq: int, rows: Sequence[int]
) -> AggregatePlan:
    """The trust-weighted plan over ``rows`` (ascending); a zero plan when no row is trusted."""
    t = [(i, trust(sq_norms[i], ref_dots[i], ref_sq)) for i in rows]
    kept = [(i, w) for i, w in t if w > 0]
    if not kept:
        return AggregatePlan("zero")
    return AggregatePlan(
        "weighted",
        tuple(i for i, _ in kept),
        weights=tuple(w for _, w in kept),
        scale=sum(w for _, w in kept),
    )
