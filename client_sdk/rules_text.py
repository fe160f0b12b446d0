"""A task's rules in words: what a client's update is judged by, and what each verdict costs.

A client should know before it joins what can cost it a reward, a place in the task or its
stake; the rules are numbers in the task record, so this turns them into sentences (the CLI's
``join`` prints them first). The wording follows docs/protocol.md ("Verdicts", "Rewards").
"""

from __future__ import annotations

from fractions import Fraction

from stf.fl.checks import MIN_PROVABLE_SUPPORT
from stf.fl.rules import Aggregator, EpochRules

__all__ = ["describe_data_budget", "describe_rules"]


def _f(pair: tuple[int, int]) -> str:
    return f"{float(Fraction(*pair)):g}"


def _aggregation(r: EpochRules) -> str:
    if r.aggregator == Aggregator.MEDIAN:
        how = "the coordinate-wise median"
    elif r.aggregator == Aggregator.TRIMMED_MEAN:
        how = f"the mean after cutting {_f((r.trim_num, r.trim_den))} of the updates at each end"
    elif r.aggregator == Aggregator.MULTI_KRUM_MEAN:
        how = "the mean of the Multi-Krum selection"
    else:
        how = "the mean"
    return (
        f"the next model adds {how} of the epoch's unflagged updates (Krum assumes f = {r.f}); "
        "in an epoch where the requester sends a reference update (its own training, committed "
        "before anyone's update is seen), those updates are weighed by their cosine to it "
        "instead, and one pointing against it gets no weight: this never changes a flag, a "
        "verdict or a reward"
    )


def _flags(r: EpochRules) -> list[str]:
    return [
        f"outlier: outside the Multi-Krum selection with a Krum score above "
        f"{_f(r.krum_ratio)} x the largest score inside the selection",
        f"near zero: squared norm at most {_f(r.near_zero)} x the median's",
        f"near copy: cosine at least {_f(r.near_copy_cos)} to another update of this epoch "
        "(whatever its scale; both are flagged)",
        f"echo: cosine at least {_f(r.global_echo_cos)} to the last global step",
        f"uncorrelated: cosine below {_f(r.uncorrelated_cos)} both to the others' selection "
        "and to your own last update",
        "exact: all zeros, the same as another update this epoch, your own last update again",
        "a commitment you do not reveal in the reveal phase",
    ]


def describe_rules(rules: EpochRules) -> list[str]:
    """One line per rule, in the order a client meets them."""
    return [
        _aggregation(rules),
        "each epoch you first commit to your update (a hash), then reveal it once every "
        "commitment is in: nobody sees an update before all are fixed",
        "an update is flagged if it is any of:",
        *(f"  - {line}" for line in _flags(rules)),
        "a flagged update is left out of that epoch's model and reward, and is a strike",
        f"{rules.strikes_to_bar} strikes bar you from the task: no more updates and your share "
        "of its pool is forfeit; strikes never touch your stake",
        "your L1 stake can be slashed only for a provable offence: sending the chain's last "
        f"global step back exactly (when it has at least {MIN_PROVABLE_SUPPORT} nonzero "
        "coordinates and is not your own last update repeated)",
        "rewards: the pool is split over the clients never barred nor slashable, pro rata to "
        "their credits: an unflagged update earns up to 1,000 as far as what it adds beyond "
        "the last global step persists from your previous update (a first update after "
        "epoch 0 earns none)",
    ]


def describe_data_budget(budget: dict[str, object] | None) -> str | None:
    """``mps_getTask.dataBudget`` in words (None on a chain that does not price a task's
    bytes): a commitment reserves your upload quota within what the deposit still pays for,
    and one it cannot pay for fails without a strike; the bill is paid before the epochs' fee,
    so it is what the clients' pool may lose to data."""
    if budget is None:
        return None
    allowance, used, reserved = (int(str(budget[k])) for k in ("allowance", "bytes", "reserved"))
    return (
        f"data: the funder pays {budget['feePerMib']} wei per MiB of the task's bytes, before "
        f"the epochs' fee; {used:,} of the {allowance:,} bytes its deposit pays for are billed "
        f"and {reserved:,} reserved this epoch (a commitment reserves your upload quota, and "
        "one the deposit cannot pay for fails without a strike)"
    )
