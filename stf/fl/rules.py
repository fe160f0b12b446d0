"""A task's rule set: every threshold of the epoch close and the aggregator, fixed per task.

They are integers or exact fractions ``(num, den)``, in the task record (``to_list``), so every
node judges with the same numbers. The checks that use them are in :mod:`stf.fl.checks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Any


class Aggregator(StrEnum):
    """How an epoch's unflagged updates become the next step; the value is in the task rules."""

    MEAN = "mean"
    MULTI_KRUM_MEAN = "multi_krum_mean"
    MEDIAN = "median"
    TRIMMED_MEAN = "trimmed_mean"


@dataclass(frozen=True)
class EpochRules:
    """Every threshold, as integers or exact fractions ``(num, den)``. Fixed per task."""

    f: int = 1  # Byzantine clients Krum assumes
    # mean of the unflagged updates (flagged ones are already out); multi_krum_mean would drop
    # the same atypical honest clients every epoch until they look like outliers
    aggregator: str = Aggregator.MEAN  # an Aggregator value (a str on the wire)
    trim_num: int = 1  # trimmed mean: cut num/den of the clients at each end
    trim_den: int = 10
    krum_ratio: tuple[int, int] = (3, 1)  # outlier: score > ratio x largest selected score
    near_zero: tuple[int, int] = (1, 10_000)  # |u|^2 <= ratio x median |u|^2
    near_copy_cos: tuple[int, int] = (999, 1000)
    global_echo_cos: tuple[int, int] = (996, 1000)
    uncorrelated_cos: tuple[int, int] = (2, 100)  # cosine floor (selection and own past)
    strikes_to_bar: int = 2

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
        if self.strikes_to_bar < 1:
            raise ValueError("strikes_to_bar must be at least 1")

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
            self.strikes_to_bar,
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
            "strikes_to_bar",
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


# -- consensus bounds: no rule set may turn normal training into an offence ---------------
#
# A requester chooses the rules, and the part of the pool its rules leave unpaid goes back to
# it, so without bounds it could set a trap (``near_zero = 10^9/1`` flags every update,
# ``strikes_to_bar = 1`` bars a client on one odd epoch). Each bound keeps a threshold on the side
# where it only catches what it names; ``create_task`` refuses a rule set outside them.


@dataclass(frozen=True)
class Bound:
    """The allowed range of one threshold (``None``: open on that side), and why."""

    low: Fraction | None
    high: Fraction | None
    why: str

    def refuse(self, name: str, value: Fraction) -> str | None:
        if self.low is not None and value < self.low:
            return f"{name} must be at least {self.low}: {self.why}"
        if self.high is not None and value > self.high:
            return f"{name} must be at most {self.high}: {self.why}"
        return None


MAX_DENOMINATOR = 10**6  # every meaningful threshold fits; bounds the cost of exact compares
BOUNDS: dict[str, Bound] = {
    "krum_ratio": Bound(
        Fraction(2),
        None,
        "below twice the selection's largest score, honest spread is an outlier",
    ),
    "near_zero": Bound(
        None, Fraction(1, 100), "near zero is at most 1% of the median squared norm"
    ),
    "near_copy_cos": Bound(
        Fraction(99, 100), Fraction(1), "a near copy is within cosine 0.99 of another update"
    ),
    "global_echo_cos": Bound(
        Fraction(99, 100), Fraction(1), "an echo is within cosine 0.99 of the last global step"
    ),
    "uncorrelated_cos": Bound(
        Fraction(0), Fraction(1, 10), "honest non-IID updates can correlate as little as 0.1"
    ),
    "strikes_to_bar": Bound(Fraction(2), None, "one odd epoch must never bar a client"),
}


def check_bounds(rules: EpochRules) -> None:
    """Raise ValueError naming the first threshold outside its consensus bound."""
    for name, bound in BOUNDS.items():
        raw = getattr(rules, name)
        if isinstance(raw, tuple):
            num, den = raw
            if den > MAX_DENOMINATOR:
                raise ValueError(f"{name}: denominator above {MAX_DENOMINATOR}")
            value = Fraction(num, den)
        else:
            value = Fraction(raw)
        why = bound.refuse(name, value)
        if why is not None:
            raise ValueError(why)
