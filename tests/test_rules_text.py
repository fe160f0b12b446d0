"""A task's rules in words say this task's numbers and what each verdict costs."""

from __future__ import annotations

from client_sdk.rules_text import describe_rules
from stf.fl.checks import MIN_PROVABLE_SUPPORT
from stf.fl.rules import EpochRules


def test_the_words_carry_the_task_s_numbers() -> None:
    rules = EpochRules(
        f=2,
        aggregator="trimmed_mean",
        trim_num=1,
        trim_den=5,
        krum_ratio=(4, 1),
        near_zero=(1, 1000),
        near_copy_cos=(995, 1000),
        global_echo_cos=(999, 1000),
        uncorrelated_cos=(1, 20),
        strikes_to_bar=3,
    )
    text = "\n".join(describe_rules(rules))
    for piece in (
        "cutting 0.2 of the updates at each end",
        "Krum assumes f = 2",
        "above 4 x the largest score inside the selection",
        "at most 0.001 x the median",
        "cosine at least 0.995 to another update of this epoch",
        "first commit to your update",
        "a commitment you do not reveal",
        "cosine at least 0.999 to the last global step",
        "cosine below 0.05",
        "3 strikes bar you from the task",
        f"at least {MIN_PROVABLE_SUPPORT} nonzero",
    ):
        assert piece in text, piece
    assert "never touch your stake" in text


def test_each_aggregator_is_named() -> None:
    names = {
        "mean": "the mean of",
        "median": "coordinate-wise median",
        "multi_krum_mean": "Multi-Krum selection",
        "trimmed_mean": "after cutting",
    }
    for agg, words in names.items():
        assert words in describe_rules(EpochRules(aggregator=agg))[0], agg


def test_the_requesters_reference_is_explained_with_its_limit() -> None:
    """A client joins knowing that a reference may weigh its update, and that it moves no pay."""
    first = describe_rules(EpochRules())[0]
    assert "reference update" in first and "weighed by their cosine" in first
    assert "never changes a flag, a verdict or a reward" in first


def test_the_data_budget_in_words() -> None:
    from client_sdk.rules_text import describe_data_budget

    assert describe_data_budget(None) is None
    budget = {
        "bytes": 8041,
        "reserved": 4000,
        "allowance": 1048576,
        "feePerMib": "25",
        "feeWei": "1",
    }
    text = describe_data_budget(budget)
    assert text is not None
    assert "25 wei per MiB" in text and "8,041 of the 1,048,576 bytes" in text
    assert "4,000 reserved" in text and "without a strike" in text
