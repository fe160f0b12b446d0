"""KRUM_OUTLIER's reference is the largest Krum score inside the selection, not the median score.

A tight cluster of attackers near the origin has the lowest scores and drags the median score
down: with the median as reference a big honest client (1.6x the median norm, the spread that
log-normal data sizes give) crossed ``krum_ratio`` x the median and was flagged in every epoch
(then barred). The largest score of the ``n - f`` selected stays an honest one. A loudly scaled
update is still an outlier.
"""

from __future__ import annotations

import numpy as np
import pytest

from stf import robust
from stf.fl.checks import epoch_view, median_low
from stf.fl.flags import Flag
from stf.fl.judge import evaluate_epoch
from stf.fl.rules import EpochRules

HONEST_NORMS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4, 1.6)  # the last one is "big"
BIG = len(HONEST_NORMS) - 1
F = 4


def epoch(seed: int, cluster: int = F, d: int = 400) -> np.ndarray:
    """Honest updates sharing half their direction, then ``cluster`` near-identical small ones."""
    rng = np.random.default_rng(seed)
    common = rng.normal(0, 1, d)
    common /= np.linalg.norm(common)
    rows = []
    for s in HONEST_NORMS:
        u = rng.normal(0, 1, d)
        u = 0.5 * common + 0.5 * u / np.linalg.norm(u)
        rows.append(u * (30 * s / np.linalg.norm(u)))
    rows += [6 * common + rng.normal(0, 0.3, d) for _ in range(cluster)]
    return np.clip(np.round(np.stack(rows)), -127, 127).astype(np.int8)


@pytest.mark.parametrize("seed", range(4))
def test_a_tight_cluster_does_not_make_a_big_honest_client_an_outlier(seed: int) -> None:
    q = epoch(seed)
    view, _ = epoch_view(robust.gram(q), F)
    # the cluster drags the median score down: the former reference would have flagged it
    assert view.scores[BIG] > 3 * median_low(view.scores)
    out = evaluate_epoch(q, EpochRules(f=F))
    assert not out.clients[BIG].flags & Flag.KRUM_OUTLIER
    assert all(c.flags == 0 for c in out.clients[: len(HONEST_NORMS)])


@pytest.mark.parametrize("seed", range(4))
def test_a_scaled_update_is_still_an_outlier(seed: int) -> None:
    q = epoch(seed)
    q[5] = np.clip(q[5].astype(np.int64) * 5, -127, 127)  # a typical client, sent 5x
    out = evaluate_epoch(q, EpochRules(f=F))
    assert out.clients[5].flags == Flag.KRUM_OUTLIER
    assert [i for i, c in enumerate(out.clients) if c.flags] == [5]


def test_the_reference_is_the_largest_selected_score() -> None:
    q = epoch(0)
    view, _ = epoch_view(robust.gram(q), F)
    selected = [view.scores[i] for i in view.selection]
    assert view.selection_max_score == max(selected)
    assert len(selected) == q.shape[0] - F
    assert all(
        view.scores[i] >= view.selection_max_score
        for i in range(q.shape[0])
        if i not in view.selection
    )
