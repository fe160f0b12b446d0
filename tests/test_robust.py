"""stf.robust: exact Krum, coordinate-wise aggregates and free-rider checks.

Every result is compared with a plain Python-int (or Fraction) reference, so
"exact" means equal, not close.
"""

from __future__ import annotations

import sys
import time
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from stf import robust

DTYPES = (np.int8, np.int16)
BOUNDS = {np.int8: 127, np.int16: 32767}
PROPS = settings(max_examples=60, deadline=None)


# --------------------------------------------------------------------------- references


def ref_gram(x: np.ndarray[Any, Any]) -> list[list[int]]:
    rows = [[int(v) for v in row] for row in x]
    return [[sum(p * q for p, q in zip(a, b, strict=True)) for b in rows] for a in rows]


def ref_krum(x: np.ndarray[Any, Any], f: int) -> list[int]:
    """Blanchard et al.: sum of the n - f - 2 smallest squared distances, pair by pair."""
    rows = [[int(v) for v in row] for row in x]
    n = len(rows)
    scores = []
    for i in range(n):
        dists = sorted(
            sum((p - q) ** 2 for p, q in zip(rows[i], rows[j], strict=True))
            for j in range(n)
            if j != i
        )
        scores.append(sum(dists[: n - f - 2]))
    return scores


def ref_round(q: Fraction) -> int:
    return round(q)  # Fraction.__round__ rounds half to even


def ref_mean(x: np.ndarray[Any, Any], weights: list[int] | None = None) -> list[int]:
    n, d = x.shape
    w = weights or [1] * n
    return [
        ref_round(Fraction(sum(w[i] * int(x[i, c]) for i in range(n)), sum(w))) for c in range(d)
    ]


def ref_median(x: np.ndarray[Any, Any]) -> list[int]:
    n, d = x.shape
    out = []
    for c in range(d):
        col = sorted(int(v) for v in x[:, c])
        if n % 2:
            out.append(col[n // 2])
        else:
            out.append(ref_round(Fraction(col[n // 2 - 1] + col[n // 2], 2)))
    return out


def ref_trimmed(x: np.ndarray[Any, Any], beta: Fraction) -> list[int]:
    n, d = x.shape
    k = int(beta * n)  # floor, beta >= 0
    out = []
    for c in range(d):
        col = sorted(int(v) for v in x[:, c])[k : n - k]
        out.append(ref_round(Fraction(sum(col), len(col))))
    return out


def ref_cos_ge(dot: int, na2: int, nb2: int, t: Fraction) -> bool:
    """cos >= t via Fractions: compare signs, then squares."""
    if na2 * nb2 == 0:
        return False
    cos_sq = Fraction(dot * dot, na2 * nb2)
    if dot >= 0 and t <= 0:
        return True
    if dot < 0 and t >= 0:
        return False
    if dot >= 0:  # both positive
        return cos_sq >= t * t
    return cos_sq <= t * t  # both negative


# --------------------------------------------------------------------------- strategies


@st.composite
def updates(draw: st.DrawFn, min_n: int = 1, max_n: int = 8, max_d: int = 40) -> Any:
    dtype: Any = draw(st.sampled_from(DTYPES))
    n = draw(st.integers(min_n, max_n))
    d = draw(st.integers(0, max_d))
    info = np.iinfo(dtype)
    # A small value pool makes ties and duplicates common; the full range hits the bounds.
    pool = st.sampled_from([info.min, -BOUNDS[dtype], -1, 0, 1, 2, BOUNDS[dtype]])
    elems = st.one_of(pool, st.integers(int(info.min), int(info.max)))
    return draw(hnp.arrays(dtype, (n, d), elements=elems))


@st.composite
def krum_case(draw: st.DrawFn) -> Any:
    f = draw(st.integers(0, 2))
    x = draw(updates(min_n=2 * f + 3, max_n=2 * f + 6))
    return x, f


# --------------------------------------------------------------------------- Gram and Krum


@PROPS
@given(updates())
def test_gram_matches_python_ints(x: Any) -> None:
    g = robust.gram(x)
    assert g.dtype == np.int64
    assert g.tolist() == ref_gram(x)


@PROPS
@given(krum_case())
def test_krum_scores_match_pairwise_reference(case: Any) -> None:
    x, f = case
    scores = robust.krum_scores(x, f)
    assert scores.dtype == np.int64
    assert scores.tolist() == ref_krum(x, f)


@PROPS
@given(krum_case(), st.data())
def test_permuting_clients_permutes_scores(case: Any, data: st.DataObject) -> None:
    x, f = case
    perm = np.array(data.draw(st.permutations(range(x.shape[0]))))
    assert robust.krum_scores(x[perm], f).tolist() == robust.krum_scores(x, f)[perm].tolist()


@PROPS
@given(updates(max_d=3000), st.data())
def test_chunk_size_does_not_change_the_gram(x: Any, data: st.DataObject) -> None:
    limit = robust.INT8_MAX_CHUNK if x.dtype == np.int8 else 5000
    chunk = data.draw(st.integers(1, limit))
    budget = data.draw(st.integers(1, 1 << 20))
    expected = robust.gram(x)
    assert np.array_equal(robust.gram(x, chunk_cols=chunk), expected)
    assert np.array_equal(robust.gram(x, budget_bytes=budget), expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_chunk_sizes_identical_on_random_data(dtype: Any) -> None:
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    x = rng.integers(info.min, int(info.max) + 1, size=(9, 5000), dtype=dtype)
    exact = x.astype(np.int64) @ x.astype(np.int64).T
    for chunk in (1, 3, 100, 1000, 1024, None):
        for budget in (1, 4096, 1 << 16, robust.DEFAULT_BUDGET_BYTES):
            assert np.array_equal(robust.gram(x, chunk, budget), exact), (chunk, budget)
    scores = {robust.krum_scores(x, 2, chunk_cols=c).tobytes() for c in (1, 17, 1024)}
    assert len(scores) == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_extremes_at_the_clip_bounds(dtype: Any) -> None:
    b = BOUNDS[dtype]
    d = 3001  # int16: 3001 * 32767**2 > 2**24, so a float32 GEMM would be inexact
    rows = [np.full(d, b), np.full(d, -b), np.full(d, b), np.full(d, -b), np.full(d, b)]
    alt = np.full(d, b)
    alt[::2] = -b
    rows.append(alt)
    x = np.array(rows, dtype=dtype)
    g = robust.gram(x)
    assert g[0, 0] == d * b * b
    assert g[0, 1] == -d * b * b
    dist = robust.pairwise_sq_distances(g)
    assert dist[0, 1] == 4 * d * b * b
    assert dist[0, 2] == 0
    assert robust.krum_scores(x, 1).tolist() == ref_krum(x, 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtype_minimum_is_exact(dtype: Any) -> None:
    """-128 / -32768 are outside the clip range but must not break exactness."""
    lo = int(np.iinfo(dtype).min)
    d = robust.INT8_MAX_CHUNK * 3 + 5
    x = np.full((4, d), lo, dtype=dtype)
    x[1] = -lo - 1
    x[2, ::3] = 0
    exact = x.astype(np.int64) @ x.astype(np.int64).T
    assert np.array_equal(robust.gram(x), exact)
    chunk = robust.INT8_MAX_CHUNK if dtype == np.int8 else robust.INT16_MAX_CHUNK
    assert np.array_equal(robust.gram(x, chunk_cols=chunk), exact)


def test_int8_ten_million_columns_is_exact_and_fast() -> None:
    d = 10**7
    x = np.empty((4, d), dtype=np.int8)
    x[0] = 127
    x[1] = -127
    x[2] = 127
    x[2, ::2] = -127
    x[3] = 127
    x[3, :1000] = -127
    start = time.perf_counter()
    scores = robust.krum_scores(x, 0)
    elapsed = time.perf_counter() - start
    # +-127 rows: |u_i - u_j|^2 = 4 * 127^2 * (number of coordinates where they differ)
    diff = [[int(np.count_nonzero(x[i] != x[j])) for j in range(4)] for i in range(4)]
    dist = [[4 * 127 * 127 * v for v in row] for row in diff]
    assert robust.pairwise_sq_distances(robust.gram(x)).tolist() == dist
    expected = [sum(sorted(row[j] for j in range(4) if j != i)[:2]) for i, row in enumerate(dist)]
    assert scores.tolist() == expected
    assert elapsed < 10, f"krum_scores took {elapsed:.1f}s on (4, 10**7)"


def test_krum_needs_more_than_2f_plus_2_clients() -> None:
    x = np.zeros((6, 3), dtype=np.int8)
    robust.krum_scores(x, 1)  # 6 > 4
    with pytest.raises(ValueError, match=r"n > 2f \+ 2"):
        robust.krum_scores(x, 2)  # 6 <= 6
    with pytest.raises(ValueError, match="f must be >= 0"):
        robust.krum_scores(x, -1)
    with pytest.raises(ValueError, match=r"n > 2f \+ 2"):
        robust.krum_scores_from_distances(np.zeros((4, 4), dtype=np.int64), 1)


def test_input_validation() -> None:
    with pytest.raises(TypeError, match="int8 or int16"):
        robust.gram(np.zeros((3, 3), dtype=np.int32))
    with pytest.raises(TypeError, match="int8 or int16"):
        robust.gram(np.zeros((3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        robust.gram(np.zeros(3, dtype=np.int8))
    with pytest.raises(ValueError, match="chunk_cols"):
        robust.gram(np.zeros((3, 3), dtype=np.int8), chunk_cols=1025)
    with pytest.raises(ValueError, match="chunk_cols"):
        robust.gram(np.zeros((3, 3), dtype=np.int16), chunk_cols=2**23 + 1)
    with pytest.raises(ValueError, match="backend"):
        robust.gram(np.zeros((3, 3), dtype=np.int8), backend="cupy")
    with pytest.raises(ValueError, match="column counts"):
        robust.cross_gram(np.zeros((2, 3), dtype=np.int8), np.zeros((2, 4), dtype=np.int8))


def test_empty_columns_give_zero_gram() -> None:
    assert robust.gram(np.zeros((3, 0), dtype=np.int8)).tolist() == [[0] * 3] * 3


@PROPS
@given(updates(max_n=5), updates(max_n=5))
def test_cross_gram_matches_python_ints(a: Any, b: Any) -> None:
    d = min(a.shape[1], b.shape[1])
    a, b = a[:, :d], b[:, :d]
    expected = [[sum(int(p) * int(q) for p, q in zip(r, s, strict=True)) for s in b] for r in a]
    assert robust.cross_gram(a, b).tolist() == expected


def test_scores_overflowing_int64_fall_back_to_python_ints() -> None:
    big = 2**62
    dist = np.array(
        [
            [0, big, big, big, 1],
            [big, 0, big, big, 2],
            [big, big, 0, 3, big],
            [big, big, 3, 0, big],
            [1, 2, big, big, 0],
        ],
        dtype=np.int64,
    )
    scores = robust.krum_scores_from_distances(dist, 0)  # sums of 3 values up to 3 * 2**62
    expected = [
        sum(sorted(int(v) for j, v in enumerate(row) if j != i)[:3]) for i, row in enumerate(dist)
    ]
    assert scores.dtype == object
    assert scores.tolist() == expected
    assert robust.krum_select(scores, 2).tolist() == [4, 0]
    g = np.array([[2**62, -(2**62)], [-(2**62), 2**62]], dtype=np.int64)
    assert robust.pairwise_sq_distances(g).tolist() == [[0, 2**64], [2**64, 0]]


# --------------------------------------------------------------------------- selection


def test_krum_select_breaks_ties_by_lower_index() -> None:
    scores = np.array([5, 3, 3, 9, 3, 1], dtype=np.int64)
    assert robust.krum_select(scores, 1).tolist() == [5]
    assert robust.krum_select(scores, 4).tolist() == [5, 1, 2, 4]
    assert robust.krum_select(scores, 6).tolist() == [5, 1, 2, 4, 0, 3]
    with pytest.raises(ValueError, match="m must be"):
        robust.krum_select(scores, 0)
    with pytest.raises(ValueError, match="m must be"):
        robust.krum_select(scores, 7)


def test_identical_updates_tie_and_select_the_lowest_indices() -> None:
    row = np.arange(-20, 20, dtype=np.int8)
    x = np.stack([row + 1, row, row, row, row + 2, -row])
    scores = robust.krum_scores(x, 1)
    assert scores.tolist() == ref_krum(x, 1)
    assert scores[1] == scores[2] == scores[3]
    assert robust.krum_select(scores, 3).tolist() == [1, 2, 3]


@PROPS
@given(krum_case(), st.data())
def test_multi_krum_mean_is_the_rounded_mean_of_the_selection(
    case: Any, data: st.DataObject
) -> None:
    x, f = case
    n = x.shape[0]
    m = data.draw(st.integers(1, n))
    weights = data.draw(st.none() | st.lists(st.integers(1, 1000), min_size=n, max_size=n))
    scores = ref_krum(x, f)
    chosen = sorted(range(n), key=lambda i: (scores[i], i))[:m]
    w = None if weights is None else [weights[i] for i in chosen]
    expected = ref_mean(x[chosen], w)
    result = robust.multi_krum(x, f, m, weights)
    assert result.selected.tolist() == chosen
    assert result.mean.tolist() == expected
    assert robust.multi_krum_mean(x, f, m, weights).tolist() == expected


# --------------------------------------------------------------------------- coordinate-wise


@PROPS
@given(updates(), st.data())
def test_mean_matches_fraction_reference(x: Any, data: st.DataObject) -> None:
    assert robust.mean(x).tolist() == ref_mean(x)
    n = x.shape[0]
    weights = data.draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n))
    assume(sum(weights) > 0)
    budget = data.draw(st.integers(1, 4096))
    assert robust.mean(x, weights, budget_bytes=budget).tolist() == ref_mean(x, weights)


@PROPS
@given(updates())
def test_median_matches_reference(x: Any) -> None:
    assert robust.coordinate_median(x).tolist() == ref_median(x)
    assert robust.coordinate_median(x, budget_bytes=64).tolist() == ref_median(x)


@PROPS
@given(updates(), st.fractions(min_value=0, max_value=Fraction(49, 100)))
def test_trimmed_mean_matches_reference(x: Any, beta: Fraction) -> None:
    assert robust.trimmed_mean(x, beta).tolist() == ref_trimmed(x, beta)
    assert robust.trimmed_mean(x, beta, budget_bytes=64).tolist() == ref_trimmed(x, beta)


def test_rounding_is_half_to_even() -> None:
    num = np.array([5, 7, -5, -7, 3, -3, 4, 0, 1, -1], dtype=np.int64)
    assert robust.round_half_even_div(num, 2).tolist() == [2, 4, -2, -4, 2, -2, 2, 0, 0, 0]
    assert robust.round_half_even_div(np.array([10, -10, 11]), 4).tolist() == [2, -2, 3]
    x = np.array([[3, 1, -1, 0], [4, 2, 0, 0]], dtype=np.int8)
    assert robust.coordinate_median(x).tolist() == [4, 2, 0, 0]
    assert robust.mean(x).tolist() == [4, 2, 0, 0]
    assert robust.mean(x, [1, 3]).tolist() == [4, 2, 0, 0]  # 15/4, 7/4, -1/4


def test_trimmed_mean_beta_is_an_exact_rational() -> None:
    x = np.arange(100, dtype=np.int8).reshape(100, 1)
    # 0.29 * 100 is 28.999999999999996 in binary floating point; the rule uses 29.
    assert robust.trimmed_mean(x, 0.29).tolist() == ref_trimmed(x, Fraction(29, 100))
    assert robust.trimmed_mean(x, np.float64(0.29)).tolist() == ref_trimmed(x, Fraction(29, 100))
    assert robust.trimmed_mean(x, "29/100").tolist() == ref_trimmed(x, Fraction(29, 100))
    assert robust.trimmed_mean(x, (29, 100)).tolist() == ref_trimmed(x, Fraction(29, 100))
    for bad in (0.5, -0.1, Fraction(1, 2)):
        with pytest.raises(ValueError, match="beta"):
            robust.trimmed_mean(x, bad)
    y = np.array([[1], [100], [2], [-100], [3]], dtype=np.int8)
    assert robust.trimmed_mean(y, Fraction(2, 5)).tolist() == [2]  # keeps only the median


def test_mean_rejects_bad_weights() -> None:
    x = np.zeros((2, 3), dtype=np.int16)
    with pytest.raises(ValueError, match="all be zero"):
        robust.mean(x, [0, 0])
    with pytest.raises(ValueError, match="non-negative"):
        robust.mean(x, [1, -1])
    with pytest.raises(TypeError, match="integers"):
        robust.mean(x, [0.5, 1.0])
    with pytest.raises(ValueError, match="shape"):
        robust.mean(x, [1, 2, 3])
    with pytest.raises(OverflowError):
        robust.mean(x, [2**50, 1])


# --------------------------------------------------------------------------- cosines


ints = st.integers(-(10**25), 10**25)


@settings(max_examples=300, deadline=None)
@given(
    ints, st.integers(0, 10**25), st.integers(0, 10**25), st.integers(-50, 50), st.integers(1, 50)
)
def test_cosine_ge_matches_fractions(dot: int, na2: int, nb2: int, num: int, den: int) -> None:
    got = bool(robust.cosine_ge(dot, na2, nb2, num, den))
    assert got == ref_cos_ge(dot, na2, nb2, Fraction(num, den))


@settings(max_examples=300, deadline=None)
@given(ints, st.integers(0, 10**25), st.integers(0, 10**25), st.integers(0, 50), st.integers(1, 50))
def test_cosine_sq_ge_matches_fractions(dot: int, na2: int, nb2: int, num: int, den: int) -> None:
    p = na2 * nb2
    ok = p > 0 and Fraction(dot * dot, p) >= Fraction(num, den)
    assert bool(robust.cosine_sq_ge(dot, na2, nb2, num, den, signed=False)) == ok
    assert bool(robust.cosine_sq_ge(dot, na2, nb2, num, den)) == (ok and dot > 0)


@PROPS
@given(updates(min_n=2, max_n=6, max_d=12), st.integers(-10, 10), st.integers(1, 10))
def test_cosine_ge_on_real_vectors(x: Any, num: int, den: int) -> None:
    g = robust.gram(x)
    norms = robust.sq_norms(g)
    got = robust.cosine_ge(g, norms[:, None], norms[None, :], num, den)
    n = x.shape[0]
    for i in range(n):
        for j in range(n):
            assert got[i, j] == ref_cos_ge(
                int(g[i, j]), int(norms[i]), int(norms[j]), Fraction(num, den)
            )


def test_cosine_boundaries_are_exact() -> None:
    # a = (3, 4), b = (1, 0): cos = 3/5 exactly
    assert robust.cosine_ge(3, 25, 1, 3, 5)
    assert not robust.cosine_ge(3, 25, 1, 601, 1000)
    assert robust.cosine_ge(-3, 25, 1, -3, 5)
    assert not robust.cosine_ge(-3, 25, 1, -599, 1000)
    assert robust.cosine_sq_ge(3, 25, 1, 9, 25)
    assert not robust.cosine_sq_ge(-3, 25, 1, 9, 25)
    assert robust.cosine_sq_ge(-3, 25, 1, 9, 25, signed=False)
    assert not robust.cosine_ge(0, 0, 5, -1, 1)  # zero vector: no direction
    # values whose squares overflow int64: decided with Python ints
    big = 10**15
    assert robust.cosine_ge(big, big * big, 1, 1, 1)
    assert not robust.cosine_ge(big - 1, big * big, 1, 1, 1)
    arr = robust.cosine_ge(np.array([3, -3, 0]), np.array([25, 25, 25]), 1, 1, 2)
    assert arr.tolist() == [True, False, False]
    with pytest.raises(ValueError, match="den"):
        robust.cosine_ge(1, 1, 1, 1, 0)


def test_zero_updates() -> None:
    x = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0], [2, -2, 1]], dtype=np.int8)
    assert robust.zero_updates(x).tolist() == [0, 2]
    assert robust.zero_updates(x, 1).tolist() == [0, 1, 2]
    g = robust.gram(x)
    assert robust.sq_norms(g).tolist() == [0, 1, 0, 9]
    assert robust.zero_updates(robust.sq_norms(g), 8).tolist() == [0, 1, 2]
    assert robust.zero_updates(x, budget_bytes=1).tolist() == [0, 2]


def test_near_duplicates() -> None:
    rng = np.random.default_rng(3)
    base = rng.integers(-100, 100, size=50).astype(np.int16)
    x = np.stack(
        [
            base,
            rng.integers(-100, 100, size=50).astype(np.int16),
            base,  # exact copy of 0
            base * 2,  # same direction, twice the norm
            np.zeros(50, dtype=np.int16),
            base + np.where(np.arange(50) == 0, 1, 0).astype(np.int16),  # nearly 0
        ]
    )
    g = robust.gram(x)
    assert robust.near_duplicates(g, 999, 1000) == [(0, 2), (0, 5), (2, 5)]
    assert robust.near_duplicates(g, 1, 1) == [(0, 2)]
    assert robust.near_duplicates(g, 1, 1, norm_num=0) == [(0, 2), (0, 3), (2, 3)]


@PROPS
@given(updates(min_n=2, max_n=6, max_d=10))
def test_leave_one_out_matches_direct_sums(x: Any) -> None:
    rows = [[int(v) for v in r] for r in x]
    n = len(rows)
    loo = robust.leave_one_out_cosines(robust.gram(x))
    for i in range(n):
        rest = [sum(rows[j][c] for j in range(n) if j != i) for c in range(len(rows[i]))]
        assert loo.dots[i] == sum(p * q for p, q in zip(rows[i], rest, strict=True))
        assert loo.norms_sq[i] == sum(p * p for p in rows[i])
        assert loo.rest_norms_sq[i] == sum(q * q for q in rest)
    t = Fraction(1, 2)
    expected = [ref_cos_ge(loo.dots[i], loo.norms_sq[i], loo.rest_norms_sq[i], t) for i in range(n)]
    assert loo.cosine_ge(1, 2).tolist() == expected
    assert len(loo.cosines()) == n


def test_leave_one_out_beyond_int64() -> None:
    g = np.full((40, 40), 2**60, dtype=np.int64)  # 40 identical vectors of norm^2 2**60
    loo = robust.leave_one_out_cosines(g)
    assert loo.rest_norms_sq[0] == 39 * 39 * 2**60 > 2**63
    assert loo.dots[0] == 39 * 2**60
    assert loo.cosine_ge(1, 1).all()
    assert loo.cosines()[0] == pytest.approx(1.0)


# --------------------------------------------------------------------------- torch


def test_torch_backend_reports_a_missing_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(ImportError, match="backend='torch' needs PyTorch"):
        robust.gram(np.zeros((2, 2), dtype=np.int8), backend="torch")


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_backend_is_identical_to_numpy(dtype: Any) -> None:
    pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    info = np.iinfo(dtype)
    x = rng.integers(info.min, int(info.max) + 1, size=(7, 3001), dtype=dtype)
    exact = x.astype(np.int64) @ x.astype(np.int64).T
    for backend in ("torch", "torch:cpu"):
        for chunk in (None, 5, 1000):
            assert np.array_equal(robust.gram(x, chunk, backend=backend), exact)
        assert np.array_equal(robust.krum_scores(x, 2, backend=backend), robust.krum_scores(x, 2))
        y = x[:2].astype(np.int8)
        assert np.array_equal(
            robust.cross_gram(x, y, backend=backend), x.astype(np.int64) @ y.astype(np.int64).T
        )


def test_torch_backend_at_the_bounds() -> None:
    pytest.importorskip("torch")
    x = np.full((5, 20000), 127, dtype=np.int8)
    x[1::2] = -128
    assert np.array_equal(robust.gram(x, backend="torch"), robust.gram(x))
