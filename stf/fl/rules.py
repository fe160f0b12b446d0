"""What an epoch close decides, as a pure function of integer updates.

:func:`evaluate_epoch` takes the epoch's quantized updates (one row per client,
clients in canonical order: by submission position), the previous epoch's
aggregated update and each client's own previous update, and returns per
client the Krum score, rank, the exact correlation figures, the flags with
their reasons, and which updates the aggregate may use. Everything is integer
or exact rational arithmetic (see :mod:`stf.robust`), so every node gets the
same bytes.

Flags come in two strengths:

* **certain** offences need no statistics and slash at once: an exactly zero
  update, an exact copy of an update submitted earlier in the epoch, or an exact
  replay of the client's own previous update or of the last global step;
* **statistical** flags are evidence: a Krum outlier (outside the Multi-Krum
  selection and with a score above ``krum_ratio`` x the median), a near-zero
  update, a near copy, an update nearly parallel to the last global step (a
  "delta" free rider), an update uncorrelated both with the Multi-Krum selection
  and with its own last update (a disguised free rider sending noise). A client
  becomes slashable for them only after ``strikes_to_slash`` flagged epochs, so
  a non-IID client that looks odd for one epoch is never slashed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntFlag
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import robust


class Flag(IntFlag):
    NONE = 0
    ZERO = 1  # certain: all coordinates zero
    COPY = 2  # certain: equals an update submitted earlier this epoch
    REPLAY_OWN = 4  # certain: equals the client's own previous update
    REPLAY_GLOBAL = 8  # certain: equals the previous global step
    KRUM_OUTLIER = 16  # statistical
    NEAR_ZERO = 32  # statistical
    NEAR_COPY = 64  # statistical
    GLOBAL_ECHO = 128  # statistical: nearly parallel to the previous global step
    UNCORRELATED = 256  # statistical: uncorrelated with the selection and with its own past


CERTAIN = Flag.ZERO | Flag.COPY | Flag.REPLAY_OWN | Flag.REPLAY_GLOBAL
STATISTICAL = (
    Flag.KRUM_OUTLIER | Flag.NEAR_ZERO | Flag.NEAR_COPY | Flag.GLOBAL_ECHO | Flag.UNCORRELATED
)


def flag_names(flags: int) -> list[str]:
    return [f.name for f in Flag if f and flags & f and f.name is not None]


@dataclass(frozen=True)
class EpochRules:
    """Every threshold, as integers or exact fractions ``(num, den)``. Fixed per task."""

    f: int = 1  # Byzantine clients Krum assumes
    # mean of the unflagged updates (flagged ones are already out); multi_krum_mean would drop
    # the same atypical honest clients every epoch until they look like outliers
    aggregator: str = "mean"  # or multi_krum_mean, median, trimmed_mean
    trim_num: int = 1  # trimmed mean: cut num/den of the clients at each end
    trim_den: int = 10
    krum_ratio: tuple[int, int] = (3, 1)  # outlier: score > ratio x median score
    near_zero: tuple[int, int] = (1, 10_000)  # |u|^2 <= ratio x median |u|^2
    near_copy_cos: tuple[int, int] = (999, 1000)
    global_echo_cos: tuple[int, int] = (996, 1000)
    uncorrelated_cos: tuple[int, int] = (2, 100)  # cosine floor (selection and own past)
    strikes_to_slash: int = 2

    def validate(self, max_clients: int) -> None:
        if self.f < 0:
            raise ValueError("f must be >= 0")
        if max_clients <= 2 * self.f + 2:
            raise ValueError(f"Krum needs more than 2f + 2 = {2 * self.f + 2} clients")
        if self.aggregator not in ("multi_krum_mean", "mean", "median", "trimmed_mean"):
            raise ValueError(f"unknown aggregator {self.aggregator!r}")
        if not 0 <= 2 * self.trim_num < self.trim_den:
            raise ValueError("trim fraction must be in [0, 1/2)")
        for name in (
            "krum_ratio",
            "near_zero",
            "near_copy_cos",
            "global_echo_cos",
            "uncorrelated_cos",
        ):
            num, den = getattr(self, name)
            if den <= 0 or num < 0:
                raise ValueError(f"{name} must be a non-negative fraction")
        if self.strikes_to_slash < 1:
            raise ValueError("strikes_to_slash must be at least 1")

    def to_list(self) -> list[Any]:
        return [
            self.f,
            self.aggregator,
            self.trim_num,
            self.trim_den,
            list(self.krum_ratio),
            list(self.near_zero),
            list(self.near_copy_cos),
            list(self.global_echo_cos),
            list(self.uncorrelated_cos),
            self.strikes_to_slash,
        ]

    @classmethod
    def from_list(cls, v: list[Any]) -> EpochRules:
        """Parse the wire form; raise ValueError naming a field of the wrong type."""
        names = (
            "f",
            "aggregator",
            "trim_num",
            "trim_den",
            "krum_ratio",
            "near_zero",
            "near_copy_cos",
            "global_echo_cos",
            "uncorrelated_cos",
            "strikes_to_slash",
        )
        for i, name in enumerate(names):
            x = v[i]
            if name == "aggregator":
                ok = isinstance(x, str)
            elif i in (4, 5, 6, 7, 8):
                ok = (
                    isinstance(x, list)
                    and len(x) == 2
                    and all(isinstance(y, int) and not isinstance(y, bool) for y in x)
                )
            else:
                ok = isinstance(x, int) and not isinstance(x, bool)
            if not ok:
                raise ValueError(f"rule {name} has the wrong type")
        return cls(
            v[0],
            v[1],
            v[2],
            v[3],
            tuple(v[4]),
            tuple(v[5]),
            tuple(v[6]),
            tuple(v[7]),
            tuple(v[8]),
            v[9],
        )


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


@dataclass
class EpochResult:
    clients: list[ClientResult]
    aggregate: npt.NDArray[np.int64]  # the next global step, in quantized units
    used: list[int] = field(default_factory=list)


def _self_correlated(
    u: npt.NDArray[Any], own: npt.NDArray[Any] | None, u_sq: int, floor: tuple[int, int]
) -> bool:
    """Whether ``u`` correlates with the client's own previous update (cosine >= floor).

    Honest clients' consecutive updates stay correlated (cosine >= 0.43 on non-IID digits, 31k
    client-epochs), noise does not (~3/sqrt(d)): a low cosine to the others alone is not enough
    to flag a converging honest client.
    """
    if own is None:
        return False
    a, b = u.astype(np.int64), own.astype(np.int64)
    return bool(robust.cosine_ge(int(a @ b), u_sq, int(b @ b), *floor))


def _frac_ge(a: int, b: int, frac: tuple[int, int]) -> bool:
    """a / b >= num / den, exactly, for b > 0."""
    return a * frac[1] >= frac[0] * b


def evaluate_epoch(
    updates: npt.NDArray[Any],
    rules: EpochRules,
    prev_global: npt.NDArray[Any] | None = None,
    prev_own: list[npt.NDArray[Any] | None] | None = None,
    *,
    backend: str = "numpy",
) -> EpochResult:
    """Score, flag and aggregate one epoch. ``updates`` is ``(n, d)`` int8/int16, n >= 1."""
    n = updates.shape[0]
    g = robust.gram(updates, backend=backend)
    norms = [int(v) for v in np.diagonal(g).tolist()]
    f = min(rules.f, max(0, (n - 3) // 2))  # Krum needs n > 2f + 2; fewer clients, smaller f
    if n >= 3:
        scores = [
            int(s)
            for s in np.asarray(
                robust.krum_scores_from_distances(robust.pairwise_sq_distances(g), f)
            ).tolist()
        ]
    else:
        scores = [0] * n
    order = sorted(range(n), key=lambda i: (scores[i], i))
    rank = [0] * n
    for r, i in enumerate(order):
        rank[i] = r
    m = max(1, n - f)
    selection = order[:m]
    in_selection = set(selection)
    # correlation reference: the Multi-Krum selection without the client itself. Against all
    # the others, a large group of sign flippers would drag the reference away from the honest
    # clients and get them flagged (measured by bench/detection.py).
    gl = g.tolist()
    sel_rows = [sum(int(gl[i][j]) for j in selection) for i in range(n)]
    sel_total = sum(sel_rows[j] for j in selection)
    ref_dot = [sel_rows[i] - (norms[i] if i in in_selection else 0) for i in range(n)]
    ref_sq = [
        sel_total - ((2 * sel_rows[i] - norms[i]) if i in in_selection else 0) for i in range(n)
    ]
    gdots = [0] * n
    gnorm = 0
    if prev_global is not None:
        gd = robust.cross_gram(updates, prev_global.reshape(1, -1), backend=backend)
        gdots = [int(v) for v in gd[:, 0].tolist()]
        gnorm = int(robust.gram(prev_global.reshape(1, -1), backend=backend)[0, 0])
    sorted_norms = sorted(norms)
    median_norm = sorted_norms[(n - 1) // 2]
    sorted_scores = sorted(scores)
    median_score = sorted_scores[(n - 1) // 2]
    results = []
    for i in range(n):
        flags = Flag.NONE
        ni = norms[i]
        if ni == 0:
            flags |= Flag.ZERO
        elif ni * rules.near_zero[1] <= rules.near_zero[0] * median_norm:
            flags |= Flag.NEAR_ZERO
        for j in range(i):  # only an earlier submission can be the original
            if ni == 0:
                break
            gij = int(g[i, j])
            if gij == ni == norms[j]:  # |u_i - u_j|^2 = 0
                flags |= Flag.COPY
                break
            if (
                gij > 0
                and bool(robust.cosine_ge(gij, ni, norms[j], *rules.near_copy_cos))
                and _frac_ge(min(ni, norms[j]), max(ni, norms[j]), (81, 100))
            ):
                flags |= Flag.NEAR_COPY
        own = prev_own[i] if prev_own is not None else None
        # an exact replay only counts when the model moved: after a zero global step, a client
        # with a handful of samples honestly computes the very same full-batch update again
        if own is not None and ni > 0 and gnorm > 0 and np.array_equal(updates[i], own):
            flags |= Flag.REPLAY_OWN
        if prev_global is not None and ni > 0:
            if gdots[i] == ni == gnorm:
                flags |= Flag.REPLAY_GLOBAL
            elif bool(robust.cosine_ge(gdots[i], ni, gnorm, *rules.global_echo_cos)):
                flags |= Flag.GLOBAL_ECHO
        if (
            n >= 3
            and ni > 0
            and not bool(robust.cosine_ge(ref_dot[i], ni, ref_sq[i], *rules.uncorrelated_cos))
            and not _self_correlated(updates[i], own, ni, rules.uncorrelated_cos)
        ):
            flags |= Flag.UNCORRELATED
        if (
            n >= 3
            and i not in in_selection
            and median_score > 0
            and not _frac_ge(
                rules.krum_ratio[0] * median_score, scores[i] * rules.krum_ratio[1], (1, 1)
            )
        ):
            flags |= Flag.KRUM_OUTLIER
        results.append(
            ClientResult(
                scores[i],
                rank[i],
                ni,
                ref_dot[i],
                ref_sq[i],
                gdots[i],
                int(flags),
                False,
            )
        )
    clean = [i for i in range(n) if results[i].flags == 0]
    aggregate = _aggregate(updates, clean, rules, f, backend)
    for i in clean:
        results[i].selected = True
    return EpochResult(results, aggregate, clean)


def _aggregate(
    updates: npt.NDArray[Any], clean: list[int], rules: EpochRules, f: int, backend: str
) -> npt.NDArray[np.int64]:
    d = updates.shape[1]
    if not clean:
        return np.zeros(d, dtype=np.int64)
    rows = updates[clean]
    k = len(clean)
    if rules.aggregator == "mean" or k < 3:
        return robust.mean(rows)
    if rules.aggregator == "median":
        return robust.coordinate_median(rows)
    if rules.aggregator == "trimmed_mean":
        from fractions import Fraction

        return robust.trimmed_mean(rows, Fraction(rules.trim_num, rules.trim_den))
    fk = min(f, max(0, (k - 3) // 2))
    return robust.multi_krum_mean(rows, fk, max(1, k - fk), backend=backend)


@dataclass(frozen=True)
class Verdict:
    strikes: int  # epochs with a statistical flag so far
    slashable: bool
    reason: int  # the flags that made it slashable (0 if not)
    epoch: int  # the epoch of the verdict (-1 if not slashable)


def next_verdict(prev: Verdict, flags: int, epoch: int, rules: EpochRules) -> Verdict:
    """Fold one epoch's flags into a client's standing; slashable is final."""
    if prev.slashable:
        return prev
    if flags & CERTAIN:
        return Verdict(prev.strikes, True, flags & CERTAIN, epoch)
    strikes = prev.strikes + (1 if flags & STATISTICAL else 0)
    if strikes >= rules.strikes_to_slash:
        return Verdict(strikes, True, flags & STATISTICAL, epoch)
    return Verdict(strikes, False, 0, -1)


CLEAN = Verdict(0, False, 0, -1)
