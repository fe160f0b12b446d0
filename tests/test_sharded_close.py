"""A sharded epoch close gives the bytes of one process (issue 15).

The arithmetic first, with no process group: the stats of a column split add up, through the
very vector the ranks all-reduce, to the stats of the whole, and the aggregate's spans
concatenate to the whole aggregate, for every aggregator and with absent figures (no previous
step, clients without a previous update). Then the real thing: the epoch close of
``bench/fl_scale.py`` run by gloo groups of 2 and 3 processes has the digest (state root and
every write, blobs included) of the plain close.
"""

from __future__ import annotations

import importlib.util
import itertools
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from node.sharded_close import rank_span, stats_from_vector, stats_vector
from stf.fl.aggregate import AggregatePlan, aggregate_blocks
from stf.fl.judge import judge
from stf.fl.rules import Aggregator, EpochRules
from stf.fl.stats import epoch_stats

ROOT = Path(__file__).resolve().parent.parent


def reader(a: np.ndarray[Any, Any]) -> Any:
    return lambda start, stop: a[start:stop]


def epoch(
    n: int, d: int, dtype: Any, with_global: bool, seed: int
) -> tuple[list[Any], Any, list[Any]]:
    """Random rows, a previous step (or none) and own previous updates (every third absent)."""
    rng = np.random.default_rng(seed)
    lim = np.iinfo(dtype).max
    rows = [rng.integers(-lim, lim + 1, d).astype(dtype) for _ in range(n)]
    g = reader(rng.integers(-lim, lim + 1, d).astype(dtype)) if with_global else None
    own = [
        None if i % 3 == 0 else reader(rng.integers(-lim, lim + 1, d).astype(dtype))
        for i in range(n)
    ]
    return [reader(r) for r in rows], g, own


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
@pytest.mark.parametrize("with_global", [True, False])
@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_the_stats_of_a_column_split_add_up_to_the_whole(
    dtype: Any, with_global: bool, world: int
) -> None:
    n, d = 7, 1_001
    rows, g, own = epoch(n, d, dtype, with_global, seed=world)
    dt = np.dtype(dtype)
    # the requester's reference with the previous step (both absent, or both present)
    ref = g
    whole = epoch_stats(rows, d, dt, g, own, reference=ref, budget_bytes=500)
    parts = [
        epoch_stats(
            rows, d, dt, g, own, reference=ref, budget_bytes=300, span=rank_span(d, r, world)
        )
        for r in range(world)
    ]
    summed = [sum(col) for col in zip(*(stats_vector(p) for p in parts), strict=True)]
    back = stats_from_vector(parts[0], summed)
    assert np.array_equal(back.gram, whole.gram)
    assert (back.global_dots, back.global_sq, back.global_support) == (
        whole.global_dots,
        whole.global_sq,
        whole.global_support,
    )
    assert back.own_dots == whole.own_dots and back.own_sq == whole.own_sq
    assert back.own_global_dots == whole.own_global_dots
    assert (back.ref_dots, back.ref_sq) == (whole.ref_dots, whole.ref_sq)
    assert (whole.ref_dots is None) == (not with_global)
    assert back.own_dots[0] is None and back.own_dots[1] is not None  # absent stays absent
    # and the judge sees the same epoch: the same flags, scores, plan and credits
    assert judge(back, EpochRules(f=1)) == judge(whole, EpochRules(f=1))


@pytest.mark.parametrize("kind", [a.value for a in Aggregator] + ["zero", "weighted"])
def test_the_aggregate_of_each_span_is_that_span_of_the_aggregate(kind: str) -> None:
    n, d = 6, 999
    rows, _, _ = epoch(n, d, np.int8, False, seed=3)
    plan = {
        "zero": AggregatePlan("zero"),
        "mean": AggregatePlan("mean", (0, 2, 3, 5)),
        "multi_krum_mean": AggregatePlan("mean", (1, 2, 4)),
        "median": AggregatePlan("median", tuple(range(n))),
        "trimmed_mean": AggregatePlan("trimmed_mean", tuple(range(n)), Fraction(1, 6)),
        # the requester's reference (stf.fl.reference): trust weights over their sum
        "weighted": AggregatePlan("weighted", (0, 1, 4), weights=(3, 2**20, 77), scale=2**20 + 80),
    }[kind]
    dt = np.dtype(np.int8)
    whole = np.concatenate([b for _, _, b in aggregate_blocks(rows, plan, d, dt, budget_bytes=64)])
    for world in (2, 5):
        pieces = []
        for r in range(world):
            span = rank_span(d, r, world)
            blocks = list(aggregate_blocks(rows, plan, d, dt, budget_bytes=40, span=span))
            assert blocks[0][0] == span[0] and blocks[-1][1] == span[1]
            pieces += [b for _, _, b in blocks]
        assert np.array_equal(np.concatenate(pieces), whole)


def test_rank_spans_cover_the_columns_once() -> None:
    for d in (0, 1, 5, 1000):
        for world in (1, 2, 3, 8):
            spans = [rank_span(d, r, world) for r in range(world)]
            assert spans[0][0] == 0 and spans[-1][1] == d
            assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))


def test_a_bad_span_is_refused() -> None:
    rows, _, _ = epoch(3, 10, np.int8, False, seed=1)
    with pytest.raises(ValueError, match="column span"):
        epoch_stats(rows, 10, np.dtype(np.int8), span=(4, 11))


def _have_gloo() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch.distributed as dist

    return bool(dist.is_available() and dist.is_gloo_available())


@pytest.mark.skipif(not _have_gloo(), reason="torch with gloo is not installed")
@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_a_gloo_sharded_close_writes_the_bytes_of_the_plain_close(dtype: str) -> None:
    # 5 MB of int8 updates: chunked blobs (the 4 MiB blob limit), several blocks and broadcast
    # pieces per rank, a client with no previous update (absent figures); then 4 columns over 3
    # ranks (one rank with a single column, one broadcast each)
    cmd = [sys.executable, str(ROOT / "bench" / "fl_scale.py"), "--sizes", "5:1000000,4:4"]
    cmd += ["--budget", "0.5", "--dtype", dtype, "--ranks", "2,3"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    for size in ("d=1e+06", "d=4e+00"):
        rows = [line for line in out.stdout.splitlines() if line.startswith("n=") and size in line]
        assert len(rows) == 3, out.stdout
        digests = {line.split("result digest ")[1].split()[0] for line in rows}
        assert len(digests) == 1, out.stdout
        assert all("identical to the plain close's" in line for line in rows)
    # and each rank read less the more ranks share the columns (reads are whole 4 MiB chunks,
    # and every rank reads the whole base model to write the next one, so not exactly 1/R)
    big = [line for line in out.stdout.splitlines() if "d=1e+06" in line]
    read = [float(line.split("read per rank max ")[1].split()[0].replace(",", "")) for line in big]
    assert read[2] < read[1] < 0.7 * read[0], out.stdout
