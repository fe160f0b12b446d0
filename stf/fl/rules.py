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

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntFlag, StrEnum
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import robust

# the verdict record lives in stf.fl.records; CLEAN is re-exported for the rules' users
from .records import CLEAN as CLEAN
from .records import NO_EPOCH, Verdict


class Aggregator(StrEnum):
    """How an epoch's unflagged updates become the next step; the value is in the task rules."""

    MEAN = "mean"
    MULTI_KRUM_MEAN = "multi_krum_mean"
    MEDIAN = "median"
    TRIMMED_MEAN = "trimmed_mean"


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
    aggregator: str = Aggregator.MEAN  # an Aggregator value (a str on the wire)
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
        if self.aggregator not in set(Aggregator):
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
            str(self.aggregator),
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


def _frac_ge(a: int, b: int, frac: tuple[int, int]) -> bool:
    """a / b >= num / den, exactly, for b > 0."""
    return a * frac[1] >= frac[0] * b


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


def _blocks(d: int, cols: int) -> Iterator[tuple[int, int]]:
    for start in range(0, d, cols):
        yield start, min(d, start + cols)


@dataclass
class EpochStats:
    """Every inner product the rules use, exact, accumulated over column blocks."""

    gram: npt.NDArray[np.int64]  # (n, n): <u_i, u_j>
    global_dots: list[int] | None  # <u_i, previous step>; None without a previous step
    global_sq: int  # |previous step|^2 (0 without one)
    own_dots: list[int | None]  # <u_i, own previous update>; None where there is none
    own_sq: list[int | None]  # |own previous update|^2


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
    backend: str = "numpy",
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
) -> EpochStats:
    """Pass one: read the updates a column block at a time and accumulate the inner products.

    Memory: ``n`` rows of one block of raw values (:func:`block_cols`), plus one row of the
    previous step and of one client's previous update at a time.
    """
    n = len(updates)
    dtype = np.dtype(dtype)
    own = list(prev_own) if prev_own is not None else [None] * n
    max_abs = 2 ** (8 * dtype.itemsize - 1)
    if d * max_abs * max_abs >= 2**63:
        raise OverflowError(f"d = {d} columns can overflow the int64 Gram matrix")
    cols = block_cols(n + 2, dtype.itemsize, budget_bytes)
    buf = np.empty((n, min(cols, d)), dtype=dtype)
    g = np.zeros((n, n), dtype=np.int64)
    gdots = np.zeros(n, dtype=np.int64)
    gsq = 0
    own_dots: list[int | None] = [None if o is None else 0 for o in own]
    own_sq: list[int | None] = [None if o is None else 0 for o in own]
    for start, stop in _blocks(d, cols):
        blk = buf[:, : stop - start]
        for i, read in enumerate(updates):
            blk[i] = read(start, stop)
        g += robust.gram(blk, backend=backend)
        if prev_global is not None:
            p = prev_global(start, stop).reshape(1, -1)
            gdots += robust.cross_gram(blk, p, backend=backend)[:, 0]
            gsq += int(robust.gram(p, backend=backend)[0, 0])
        for i, read_own in enumerate(own):
            if read_own is not None:
                o = read_own(start, stop)
                own_dots[i] = int(own_dots[i] or 0) + _exact_dot(blk[i], o)
                own_sq[i] = int(own_sq[i] or 0) + _exact_dot(o, o)
    return EpochStats(
        g,
        None if prev_global is None else [int(v) for v in gdots.tolist()],
        gsq,
        own_dots,
        own_sq,
    )


@dataclass(frozen=True)
class AggregatePlan:
    """Which rows the aggregate combines, and how (coordinate-wise)."""

    kind: str  # "zero" (no row), "mean", "median" or "trimmed_mean"
    rows: tuple[int, ...] = ()  # ascending update indices
    trim: Fraction = Fraction(0)  # trimmed_mean: the fraction cut at each end


@dataclass(frozen=True)
class _EpochView:
    """What every per-client test of an epoch reads: exact integers from the inner products."""

    gram: list[list[int]]
    norms: list[int]  # |u_i|^2
    scores: list[int]  # Krum scores
    selection: frozenset[int]  # the Multi-Krum selection (the n - f best scores)
    ref_dot: list[int]  # <u_i, sum of the selection without i>
    ref_sq: list[int]  # |that sum|^2
    median_norm: int
    median_score: int

    @property
    def n(self) -> int:
        return len(self.norms)


def _median_low(values: list[int]) -> int:
    return sorted(values)[(len(values) - 1) // 2]


def _krum(g: npt.NDArray[np.int64], f: int) -> list[int]:
    if g.shape[0] < 3:
        return [0] * g.shape[0]
    scores = robust.krum_scores_from_distances(robust.pairwise_sq_distances(g), f)
    return [int(s) for s in np.asarray(scores).tolist()]


def _epoch_view(g: npt.NDArray[np.int64], f: int) -> tuple[_EpochView, list[int]]:
    """The shared view, and each client's rank (0 = best Krum score)."""
    n = g.shape[0]
    norms = [int(v) for v in np.diagonal(g).tolist()]
    scores = _krum(g, f)
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
    view = _EpochView(
        gl, norms, scores, chosen, ref_dot, ref_sq, _median_low(norms), _median_low(scores)
    )
    return view, rank


def _size_flags(v: _EpochView, i: int, rules: EpochRules) -> Flag:
    ni = v.norms[i]
    if ni == 0:
        return Flag.ZERO
    if ni * rules.near_zero[1] <= rules.near_zero[0] * v.median_norm:
        return Flag.NEAR_ZERO
    return Flag.NONE


def _copy_flags(v: _EpochView, i: int, rules: EpochRules) -> Flag:
    """COPY / NEAR_COPY of an earlier submission (only an earlier one can be the original)."""
    ni, flags = v.norms[i], Flag.NONE
    if ni == 0:
        return flags
    for j in range(i):
        gij, nj = v.gram[i][j], v.norms[j]
        if gij == ni == nj:  # |u_i - u_j|^2 = 0
            return flags | Flag.COPY
        if (
            gij > 0
            and bool(robust.cosine_ge(gij, ni, nj, *rules.near_copy_cos))
            and _frac_ge(min(ni, nj), max(ni, nj), (81, 100))
        ):
            flags |= Flag.NEAR_COPY
    return flags


def _replay_flags(v: _EpochView, i: int, stats: EpochStats, rules: EpochRules) -> Flag:
    ni, gnorm, flags = v.norms[i], stats.global_sq, Flag.NONE
    own_dot, own_sq = stats.own_dots[i], stats.own_sq[i]
    # an exact replay only counts when the model moved: after a zero global step, a client
    # with a handful of samples honestly computes the very same full-batch update again.
    # u = own  <=>  |u - own|^2 = |u|^2 + |own|^2 - 2 <u, own> = 0 (exact integers)
    has_own = own_dot is not None and own_sq is not None
    if has_own and ni > 0 and gnorm > 0 and ni + int(own_sq or 0) - 2 * int(own_dot or 0) == 0:
        flags |= Flag.REPLAY_OWN
    if stats.global_dots is not None and ni > 0:
        gdot = stats.global_dots[i]
        if gdot == ni == gnorm:
            flags |= Flag.REPLAY_GLOBAL
        elif bool(robust.cosine_ge(gdot, ni, gnorm, *rules.global_echo_cos)):
            flags |= Flag.GLOBAL_ECHO
    return flags


def _correlation_flags(v: _EpochView, i: int, stats: EpochStats, rules: EpochRules) -> Flag:
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


def _outlier_flag(v: _EpochView, i: int, rules: EpochRules) -> Flag:
    """KRUM_OUTLIER: outside the selection, with a score above krum_ratio x the median."""
    if v.n < 3 or i in v.selection or v.median_score <= 0:
        return Flag.NONE
    num, den = rules.krum_ratio
    within = _frac_ge(num * v.median_score, v.scores[i] * den, (1, 1))
    return Flag.NONE if within else Flag.KRUM_OUTLIER


def _flags(v: _EpochView, i: int, stats: EpochStats, rules: EpochRules) -> int:
    return int(
        _size_flags(v, i, rules)
        | _copy_flags(v, i, rules)
        | _replay_flags(v, i, stats, rules)
        | _correlation_flags(v, i, stats, rules)
        | _outlier_flag(v, i, rules)
    )


def judge(stats: EpochStats, rules: EpochRules) -> tuple[list[ClientResult], AggregatePlan]:
    """Scores, flags and the aggregate's plan, from the inner products alone."""
    g = stats.gram
    n = g.shape[0]
    f = min(rules.f, max(0, (n - 3) // 2))  # Krum needs n > 2f + 2; fewer clients, smaller f
    v, rank = _epoch_view(g, f)
    gdots = stats.global_dots if stats.global_dots is not None else [0] * n
    results = [
        ClientResult(
            v.scores[i],
            rank[i],
            v.norms[i],
            v.ref_dot[i],
            v.ref_sq[i],
            gdots[i],
            _flags(v, i, stats, rules),
            False,
        )
        for i in range(n)
    ]
    clean = [i for i in range(n) if results[i].flags == 0]
    for i in clean:
        results[i].selected = True
    return results, _plan_aggregate(g, clean, rules, f)


def _plan_aggregate(
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
    fk = min(f, max(0, (k - 3) // 2))
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
) -> Iterator[tuple[int, int, npt.NDArray[np.int64]]]:
    """Pass two: ``(start, stop, aggregate[start:stop])`` for consecutive column blocks."""
    dtype = np.dtype(dtype)
    k = len(plan.rows)
    cols = block_cols(k, dtype.itemsize, budget_bytes)
    if plan.kind == "zero":
        for start, stop in _blocks(d, cols):
            yield start, stop, np.zeros(stop - start, dtype=np.int64)
        return
    buf = np.empty((k, min(cols, d)), dtype=dtype)
    for start, stop in _blocks(d, cols):
        blk = buf[:, : stop - start]
        for r, i in enumerate(plan.rows):
            blk[r] = updates[i](start, stop)
        if plan.kind == "mean":
            out = robust.mean(blk)
        elif plan.kind == "median":
            out = robust.coordinate_median(blk)
        elif plan.kind == "trimmed_mean":
            out = robust.trimmed_mean(blk, plan.trim)
        else:  # pragma: no cover - plans come from _plan_aggregate
            raise ValueError(f"unknown aggregate plan {plan.kind!r}")
        yield start, stop, out


def _row_reader(a: npt.NDArray[Any]) -> RowReader:
    return lambda start, stop: a[start:stop]


def evaluate_epoch(
    updates: npt.NDArray[Any],
    rules: EpochRules,
    prev_global: npt.NDArray[Any] | None = None,
    prev_own: list[npt.NDArray[Any] | None] | None = None,
    *,
    backend: str = "numpy",
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
) -> EpochResult:
    """Score, flag and aggregate one epoch. ``updates`` is ``(n, d)`` int8/int16, n >= 1.

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
    stats = epoch_stats(rows, d, updates.dtype, pg, own, backend=backend, budget_bytes=budget_bytes)
    results, plan = judge(stats, rules)
    aggregate = np.zeros(d, dtype=np.int64)
    for start, stop, block in aggregate_blocks(
        rows, plan, d, updates.dtype, budget_bytes=budget_bytes
    ):
        aggregate[start:stop] = block
    return EpochResult(results, aggregate, [i for i, c in enumerate(results) if c.selected])


def next_verdict(prev: Verdict, flags: int, epoch: int, rules: EpochRules) -> Verdict:
    """Fold one epoch's flags into a client's standing; slashable is final."""
    if prev.slashable:
        return prev
    if flags & CERTAIN:
        return Verdict(prev.strikes, True, flags & CERTAIN, epoch)
    strikes = prev.strikes + (1 if flags & STATISTICAL else 0)
    if strikes >= rules.strikes_to_slash:
        return Verdict(strikes, True, flags & STATISTICAL, epoch)
    return Verdict(strikes, False, 0, NO_EPOCH)
