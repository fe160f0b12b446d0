"""Reward credits (stf.fl.contribution): the persistence of a client's innovation, exactly."""

from __future__ import annotations

import importlib.util
from fractions import Fraction
from math import isqrt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays

from stf.fl.contribution import CREDIT_SCALE
from stf.fl.judge import evaluate_epoch
from stf.fl.rules import EpochRules

D = 512
RULES = EpochRules(f=1)


def int8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), -127, 127).astype(np.int8)


def reference_credit(u: np.ndarray, own: np.ndarray, g: np.ndarray | None) -> int:
    """floor(1000 cos(r_u, r_own)) clipped at 0, from the innovation vectors in exact fractions
    (an independent path: the rule's integer algebra is not used)."""

    def innovation(x: np.ndarray) -> list[Fraction]:
        xs = [Fraction(int(v)) for v in x]
        if g is None or not np.any(g):
            return xs
        gs = [int(v) for v in g]
        k = Fraction(sum(a * b for a, b in zip(xs, gs, strict=True)), sum(b * b for b in gs))
        return [a - k * b for a, b in zip(xs, gs, strict=True)]

    ru, ro = innovation(u), innovation(own)
    dot = sum(a * b for a, b in zip(ru, ro, strict=True))
    nu, no = sum(a * a for a in ru), sum(a * a for a in ro)
    if dot <= 0 or nu == 0 or no == 0:
        return 0
    cos_sq = dot * dot / (nu * no)
    c = isqrt(int(CREDIT_SCALE**2 * cos_sq))
    assert Fraction(c * c) <= CREDIT_SCALE**2 * cos_sq < Fraction((c + 1) ** 2)
    return min(c, CREDIT_SCALE)


def two_epochs(rng: np.random.Generator, n: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Previous updates, the previous global step (their mean), and this epoch's updates: each
    client a private direction it keeps (its data) plus a common one and fresh noise."""
    common = rng.normal(0, 20, D)
    private = rng.normal(0, 20, (n, D))
    prev = int8(common + private + rng.normal(0, 4, (n, D)))
    g = int8(prev.astype(np.float64).mean(axis=0))
    now = int8(0.9 * common + private + rng.normal(0, 4, (n, D)))
    return prev, g, now


def test_the_first_epoch_pays_every_used_update_in_full() -> None:
    rng = np.random.default_rng(1)
    _, _, now = two_epochs(rng)
    out = evaluate_epoch(now, RULES)
    assert [c.credit for c in out.clients] == [CREDIT_SCALE] * len(out.clients)


def test_a_flagged_update_and_a_first_update_after_epoch_0_earn_nothing() -> None:
    rng = np.random.default_rng(2)
    prev, g, now = two_epochs(rng)
    now[0] = 0  # ZERO: flagged, not used
    own: list[np.ndarray | None] = [p for p in prev]
    own[1] = None  # client 1 joined this epoch: no past of its own
    out = evaluate_epoch(now, RULES, g, own)
    assert out.clients[0].flags and not out.clients[0].selected and out.clients[0].credit == 0
    assert out.clients[1].selected and out.clients[1].credit == 0
    for i in range(2, len(now)):
        assert out.clients[i].selected
        assert out.clients[i].credit == reference_credit(now[i], prev[i], g) > 900


def test_an_echo_of_the_last_step_with_fresh_noise_earns_little() -> None:
    """The threshold-aware free rider: the last global step, turned to cosine 0.9 by noise it
    draws afresh each epoch. Its innovation is that noise, which does not persist."""
    rng = np.random.default_rng(3)
    prev, g, now = two_epochs(rng, n=8)

    def echo() -> np.ndarray:
        gf = g.astype(np.float64)
        noise = rng.normal(0, 1, D)
        noise -= (noise @ gf) / (gf @ gf) * gf
        noise *= np.tan(np.arccos(0.9)) * np.linalg.norm(gf) / np.linalg.norm(noise)
        return int8(gf + noise)

    prev[7], now[7] = echo(), echo()
    out = evaluate_epoch(now, RULES, g, list(prev))
    assert out.clients[7].selected  # no check flags it: only the credit tells
    assert out.clients[7].credit == reference_credit(now[7], prev[7], g) < 100
    honest = [out.clients[i].credit for i in range(7)]
    assert min(honest) > 900


def test_credit_is_scale_free_and_zero_when_the_innovation_turns_back() -> None:
    rng = np.random.default_rng(4)
    prev, g, now = two_epochs(rng)
    now = np.clip(now, -60, 60).astype(np.int8)
    doubled = now.copy()
    doubled[2] = now[2] * 2  # exactly twice: the same cosines
    a = evaluate_epoch(now, RULES, g, list(prev))
    b = evaluate_epoch(doubled, RULES, g, list(prev))
    assert a.clients[2].credit == b.clients[2].credit > 0
    turned = now.copy()
    turned[3] = int8(-(now[3].astype(np.float64)) + 2 * g)  # its innovation negated
    c = evaluate_epoch(turned, RULES, g, list(prev))
    assert c.clients[3].selected and c.clients[3].credit == 0


@settings(max_examples=60, deadline=None)
@given(
    u=arrays(np.int8, 24),
    own=arrays(np.int8, 24),
    g=arrays(np.int8, 24),
)
def test_the_integer_rule_is_the_exact_cosine_of_the_innovations(
    u: np.ndarray, own: np.ndarray, g: np.ndarray
) -> None:
    """Against the fractions reference, on arbitrary int8 vectors (one used client alone)."""
    from stf.fl.contribution import credits
    from stf.fl.stats import epoch_stats

    def reader(a: np.ndarray):  # type: ignore[no-untyped-def]
        return lambda start, stop: a[start:stop]

    stats = epoch_stats([reader(u)], 24, np.dtype(np.int8), reader(g), [reader(own)])
    assert credits(stats, [0]) == [reference_credit(u, own, g)]


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_credits_are_the_same_on_numpy_and_torch() -> None:
    rng = np.random.default_rng(5)
    prev, g, now = two_epochs(rng, n=10)
    a = evaluate_epoch(now, RULES, g, list(prev), backend="numpy")
    b = evaluate_epoch(now, RULES, g, list(prev), backend="torch", budget_bytes=4096)
    assert [c.credit for c in a.clients] == [c.credit for c in b.clients]
