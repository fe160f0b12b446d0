"""Each check of an update, as a small exact test over one shared view of the epoch.

All integers or exact fractions (see :mod:`stf.robust`): the view holds the Gram matrix's
entries, the Krum scores and the correlation references, and each test reads only those.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .. import robust
from .flags import Flag
from .rules import EpochRules
from .stats import EpochStats


def frac_ge(a: int, b: int, frac: tuple[int, int]) -> bool:
    """a / b >= num / den, exactly, for b > 0."""
    return a * frac[1] >= frac[0] * b


@dataclass(frozen=True)
class EpochView:
    """What every per-client test of an epoch reads: exact integers from the inner products."""

    gram: list[list[int]]
    norms: list[int]  # |u_i|^2
    scores: list[int]  # Krum scores
    selection: frozenset[int]  # the Multi-Krum selection (the n - f best scores)
    ref_dot: list[int]  # <u_i, sum of the selection without i>
    ref_sq: list[int]  # |that sum|^2
    median_norm: int
    selection_max_score: int  # the largest Krum score inside the selection: the outlier reference

    @property
    def n(self) -> int:
        return len(self.norms)


def median_low(values: list[int]) -> int:
    return sorted(values)[(len(values) - 1) // 2]


def krum_f(f: int, n: int) -> int:
    """The ``f`` Krum uses among ``n`` updates: the rules' ``f``, smaller when ``n <= 2f + 2``
    (Krum needs ``n > 2f + 2``)."""
    return min(f, max(0, (n - 3) // 2))


def krum_scores(g: npt.NDArray[np.int64], f: int) -> list[int]:
    if g.shape[0] < 3:
        return [0] * g.shape[0]
    scores = robust.krum_scores_from_distances(robust.pairwise_sq_distances(g), f)
    return [int(s) for s in np.asarray(scores).tolist()]


def epoch_view(g: npt.NDArray[np.int64], f: int) -> tuple[EpochView, list[int]]:
    """The shared view, and each client's rank (0 = best Krum score)."""
    n = g.shape[0]
    norms = [int(v) for v in np.diagonal(g).tolist()]
    scores = krum_scores(g, f)
    order = sorted(range(n), key=lambda i: (scores[i], i))
    rank = [0] * n
    for r, i in enumerate(order):
        rank[i] = r
    selection = order[: max(1, n - f)]
    chosen = frozenset(selection)
    # correlation reference: the Multi-Krum selection without the client itself. Against all
    # the others, a large group of sign flippers would drag the reference away from the honest
    # clients and get them flagged (measured by bench/detection.py).
    gl = [[int(x) for x in row] for row in g.tolist()]
    sel_rows = [sum(gl[i][j] for j in selection) for i in range(n)]
    sel_total = sum(sel_rows[j] for j in selection)
    ref_dot = [sel_rows[i] - (norms[i] if i in chosen else 0) for i in range(n)]
    ref_sq = [sel_total - ((2 * sel_rows[i] - norms[i]) if i in chosen else 0) for i in range(n)]
    view = EpochView(
        gl,
        norms,
        scores,
        chosen,
        ref_dot,
        ref_sq,
        median_low(norms),
        max(scores[j] for j in selection),
    )
    return view, rank


def size_flags(v: EpochView, i: int, rules: EpochRules) -> Flag:
    ni = v.norms[i]
    if ni == 0:
        return Flag.ZERO
    if ni * rules.near_zero[1] <= rules.near_zero[0] * v.median_norm:
        return Flag.NEAR_ZERO
    return Flag.NONE


def copy_flags(v: EpochView, i: int, rules: EpochRules) -> Flag:
    """COPY / NEAR_COPY of another update of the epoch, flagged on every one of the group.

    Updates were committed before any was revealed (:mod:`stf.fl.commit`), so no position in
    the epoch marks an original: identical or parallel reveals are collusion (or a leak) and
    all of them are out. NEAR_COPY is the direction alone (scale-invariant): a free rider that
    resends 0.85 x a leaked update is as much a copy as one that resends it whole."""
    ni, flags = v.norms[i], Flag.NONE
    if ni == 0:
        return flags
    for j in range(v.n):
        if j == i:
            continue
        gij, nj = v.gram[i][j], v.norms[j]
        if gij == ni == nj:  # |u_i - u_j|^2 = 0
            return flags | Flag.COPY
        if gij > 0 and bool(robust.cosine_ge(gij, ni, nj, *rules.near_copy_cos)):
            flags |= Flag.NEAR_COPY
    return flags


#: The previous global step must have this many nonzero coordinates before resending it exactly
#: is a provable offence (docs/protocol.md): a sparse step is what a converged federation's
#: honest clients can produce themselves. Below it, an exact resend is a GLOBAL_ECHO (cosine 1).
MIN_PROVABLE_SUPPORT = 64


def replay_flags(v: EpochView, i: int, stats: EpochStats, rules: EpochRules) -> Flag:
    ni, gnorm, flags = v.norms[i], stats.global_sq, Flag.NONE
    own_dot, own_sq = stats.own_dots[i], stats.own_sq[i]
    # an exact replay only counts when the model moved: after a zero global step, a client
    # with a handful of samples honestly computes the very same full-batch update again.
    # u = own  <=>  |u - own|^2 = |u|^2 + |own|^2 - 2 <u, own> = 0 (exact integers)
    has_own = own_dot is not None and own_sq is not None
    same_as_own = has_own and ni + int(own_sq or 0) - 2 * int(own_dot or 0) == 0
    if same_as_own and ni > 0 and gnorm > 0:
        flags |= Flag.REPLAY_OWN
    if stats.global_dots is not None and ni > 0:
        gdot = stats.global_dots[i]
        # not proof when the client merely repeated itself: the step can equal its own last
        # update (it alone was clean, or sybils shaped the mean onto it), and a converged
        # honest client's int8 update can repeat byte for byte (docs/protocol.md)
        provable = stats.global_support >= MIN_PROVABLE_SUPPORT and not same_as_own
        if gdot == ni == gnorm and provable:
            flags |= Flag.REPLAY_GLOBAL
        elif bool(robust.cosine_ge(gdot, ni, gnorm, *rules.global_echo_cos)):
            flags |= Flag.GLOBAL_ECHO
    return flags


def correlation_flags(v: EpochView, i: int, stats: EpochStats, rules: EpochRules) -> Flag:
    """UNCORRELATED with the selection, unless correlated with the client's own past.

    Honest clients' consecutive updates stay correlated (cosine >= 0.43 on non-IID digits, 31k
    client-epochs), noise does not (~3/sqrt(d)): a low cosine to the others alone is not enough
    to flag a converging honest client.
    """
    ni = v.norms[i]
    if v.n < 3 or ni == 0:
        return Flag.NONE
    own_dot, own_sq = stats.own_dots[i], stats.own_sq[i]
    if (
        own_dot is not None
        and own_sq is not None
        and bool(robust.cosine_ge(int(own_dot), ni, int(own_sq), *rules.uncorrelated_cos))
    ):
        return Flag.NONE
    if bool(robust.cosine_ge(v.ref_dot[i], ni, v.ref_sq[i], *rules.uncorrelated_cos)):
        return Flag.NONE
    return Flag.UNCORRELATED


def outlier_flag(v: EpochView, i: int, rules: EpochRules) -> Flag:
    """KRUM_OUTLIER: outside the selection, with a score above krum_ratio x the largest score
    inside it.

    Not the median score: m <= f attackers in a tight cluster have the lowest scores and pull the
    median down to the honest clients' ~30th percentile (f = 0.3 n), so every big honest client
    crossed it, and as those were barred the attackers' share and the effect grew. The largest
    score of the n - f selected is at worst the (n - 2f)-th honest score, above the honest
    median; measured (bench/detection.py): honest bars halved, ALIE, IPM and Fang no longer
    leave honest clients out (docs/protocol.md).
    """
    if v.n < 3 or i in v.selection or v.selection_max_score <= 0:
        return Flag.NONE
    num, den = rules.krum_ratio
    within = frac_ge(num * v.selection_max_score, v.scores[i] * den, (1, 1))
    return Flag.NONE if within else Flag.KRUM_OUTLIER


def flags_of(v: EpochView, i: int, stats: EpochStats, rules: EpochRules) -> int:
    return int(
        size_flags(v, i, rules)
        | copy_flags(v, i, rules)
        | replay_flags(v, i, stats, rules)
        | correlation_flags(v, i, stats, rules)
        | outlier_flag(v, i, rules)
    )
