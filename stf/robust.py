"""Exact robust-aggregation primitives on quantized integer updates.

Every node of the chain recomputes the FL rules (Krum scores, the aggregate,
the free-rider checks) and must reach the same bytes, so nothing here may
depend on the BLAS library, its thread count, the summation order or the
hardware. All functions work on integer numpy arrays and return integers
(``int64``, or Python ``int`` where a value can exceed 64 bits); floats appear
only as an internal GEMM accelerator, and only where the result is provably an
exact integer. The module needs numpy alone and can be used without the node.

Updates are quantized deltas: an ``int8`` or ``int16`` array of shape
``(n, d)``, one row per client, the clients in the caller's canonical order
(for example sorted by client key): that order is the final tie-break wherever
one is needed. Scores are always computed on deltas, never on full weights.

Exactness of the Gram matrix
----------------------------
For integer vectors every product and every partial sum of a dot product is an
integer. A binary floating-point format with a ``p``-bit significand represents
every integer of magnitude at most ``2**p`` exactly, so if the *sum of the
absolute values* of all the products of a dot product is at most ``2**p``, each
partial sum that any algorithm can form (any order, any blocking, any number of
threads, with or without FMA) is such an integer, each addition is exact, and
the result is the same bits everywhere:

* ``int8`` (``|q| <= 128``, the dtype minimum included): a product is at most
  ``2**14``, so a float32 GEMM (``p = 24``) over at most ``1,024`` columns stays
  within ``1024 * 2**14 = 2**24``. Its inputs have at most 8 significant bits,
  so this also holds where a GPU rounds float32 inputs to TF32 or bfloat16 and
  accumulates in float32.
* ``int16`` (``|q| <= 32768``): a product is at most ``2**30``; a float64 GEMM
  (``p = 53``) over at most ``2**23 = 8,388,608`` columns stays within
  ``2**53`` (``chunk * 32767**2 < 2**53`` for the symmetric clip range).

The per-chunk results are exact integers; they are converted to ``int64``
(exactly) and summed in ``int64``, which holds ``d * 2**30`` for ``d`` up to
``2**33``. Larger ``d`` raises :class:`OverflowError` rather than wrap.

Memory stays bounded: the columns are processed in blocks whose floating-point
working copy fits ``budget_bytes`` (plus ``O(n**2)`` for the result), so a
``(1000, 10**8)`` array, or a memory-mapped one, is processed block by block.

Rounding and tie-break rules
----------------------------
* Means (plain, weighted, trimmed, multi-Krum) and the median of an even count
  are rationals; they are rounded to the nearest integer, **ties to even**
  (banker's rounding, like Python's ``round``), computed in integers. Unlike
  floor it has no systematic drift of half a quantum per round.
* :func:`krum_select` orders clients by score, then by **lower index** (a
  stable sort): pass clients in canonical order.
* Cosine thresholds are rationals ``num / den`` compared exactly with Python
  integers (see :func:`cosine_ge`).

Backends
--------
Functions that compute a Gram matrix take ``backend``: ``"numpy"`` (default)
or ``"torch"`` (``"torch:cpu"``, ``"torch:cuda:0"``, ...; plain ``"torch"``
picks CUDA when available). torch is imported only when asked for; it runs the
same chunked exact GEMM, so its results are identical to numpy's.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_BUDGET_BYTES",
    "INT8_MAX_CHUNK",
    "INT16_MAX_CHUNK",
    "LeaveOneOut",
    "MultiKrum",
    "coordinate_median",
    "cosine_ge",
    "cosine_sq_ge",
    "cross_gram",
    "gram",
    "krum_scores",
    "krum_scores_from_distances",
    "krum_select",
    "leave_one_out_cosines",
    "mean",
    "multi_krum",
    "multi_krum_mean",
    "near_duplicates",
    "pairwise_sq_distances",
    "round_half_even_div",
    "sq_norms",
    "trimmed_mean",
    "zero_updates",
]

I64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
#: ``int64``, or ``object`` holding Python ints where a value may exceed int64.
ExactArray = npt.NDArray[Any]
Rational = Fraction | float | int | str | tuple[int, int]

#: Working memory for the floating-point copy of one block of columns.
DEFAULT_BUDGET_BYTES = 8 * 2**20
#: Widest float32 chunk that is exact for int8 data: ``1024 * 128**2 == 2**24``.
INT8_MAX_CHUNK = 2**24 // 128**2
#: Widest float64 chunk that is exact for int16 data: ``2**23 * 32768**2 == 2**53``.
INT16_MAX_CHUNK = 2**53 // 32768**2

_INT64_LIMIT = 2**63
_MAX_ABS = {np.dtype(np.int8): 128, np.dtype(np.int16): 32768}


# --------------------------------------------------------------------------- helpers


def _check_updates(updates: npt.ArrayLike, name: str = "updates") -> npt.NDArray[Any]:
    arr = np.asarray(updates)
    if arr.dtype not in _MAX_ABS:
        raise TypeError(f"{name} must be an int8 or int16 array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (n, d), got {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"{name} has no rows")
    return arr


def _check_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    return int(value)


def _check_square(matrix: npt.ArrayLike, name: str) -> npt.NDArray[Any]:
    arr = np.asarray(matrix)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square (n, n) matrix, got shape {arr.shape}")
    if arr.dtype != object and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr


def _absmax(arr: npt.NDArray[Any]) -> int:
    """Largest magnitude in an integer array, as a Python int (0 for an empty one)."""
    if arr.size == 0:
        return 0
    return max(int(arr.max()), -int(arr.min()))


def _to_object(arr: npt.ArrayLike) -> npt.NDArray[Any]:
    """An object array of Python ints (exact, arbitrary precision)."""
    a = np.asarray(arr)
    if a.dtype == object:
        return np.vectorize(int, otypes=[object])(a) if a.size else a
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"expected integers, got dtype {a.dtype}")
    return a.astype(object)


def _as_fraction(value: Rational, name: str) -> Fraction:
    """A threshold as an exact rational; a float means the decimal it prints as."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got bool")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, (int, np.integer)):
        return Fraction(int(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite")
        return Fraction(repr(float(value)))  # np.float64 reprs as "np.float64(...)"
    if isinstance(value, str):
        return Fraction(value)
    if isinstance(value, tuple) and len(value) == 2:
        return Fraction(_check_int(value[0], name), _check_int(value[1], name))
    raise TypeError(f"{name} must be a Fraction, int, float, str or (num, den)")


def _check_backend(backend: str) -> str | None:
    """``None`` for numpy, else the torch device string ('' for automatic)."""
    if backend == "numpy":
        return None
    if backend == "torch":
        return ""
    if backend.startswith("torch:") and len(backend) > 6:
        return backend[6:]
    raise ValueError(f"unknown backend {backend!r}: use 'numpy', 'torch' or 'torch:<device>'")


def _import_torch() -> Any:
    try:
        torch = importlib.import_module("torch")
    except ImportError as exc:
        raise ImportError(
            "backend='torch' needs PyTorch, which is not installed; "
            "install torch or use backend='numpy' (identical results)"
        ) from exc
    return torch


def round_half_even_div(num: npt.ArrayLike, den: int) -> I64Array:
    """``num / den`` rounded to the nearest integer, ties to even, exactly.

    ``num`` is an integer array (``int64`` range) and ``den`` a positive
    integer with ``2 * den < 2**63``. Pure integer arithmetic: ``q = num // den``
    (floor), ``r = num - q * den`` in ``[0, den)``; the result is ``q + 1`` when
    ``2r > den``, or ``2r == den`` and ``q`` is odd, else ``q``.
    """
    den = _check_int(den, "den")
    if den <= 0:
        raise ValueError("den must be positive")
    n = np.asarray(num, dtype=np.int64)
    q = np.floor_divide(n, den)
    r2 = 2 * (n - q * den)
    up = (r2 > den) | ((r2 == den) & ((q & 1) == 1))
    out: I64Array = q + up.astype(np.int64)
    return out


# --------------------------------------------------------------------------- Gram


@dataclass(frozen=True)
class _Plan:
    float_dtype: type[np.floating[Any]]
    chunk: int  # columns per exact GEMM
    block: int  # columns per block (a multiple of chunk)


def _plan(
    dtype_a: np.dtype[Any],
    dtype_b: np.dtype[Any],
    rows: int,
    out_cells: int,
    chunk_cols: int | None,
    budget_bytes: int,
) -> _Plan:
    product = _MAX_ABS[dtype_a] * _MAX_ABS[dtype_b]
    use_f32 = product <= 128 * 128  # both int8
    limit = (2**24 if use_f32 else 2**53) // product
    itemsize = 4 if use_f32 else 8
    budget_bytes = _check_int(budget_bytes, "budget_bytes")
    if budget_bytes <= 0:
        raise ValueError("budget_bytes must be positive")
    if chunk_cols is None:
        chunk = min(limit, max(1, budget_bytes // (itemsize * rows)))
    else:
        chunk = _check_int(chunk_cols, "chunk_cols")
        if not 1 <= chunk <= limit:
            raise ValueError(
                f"chunk_cols must be in [1, {limit}] for an exact "
                f"{'float32' if use_f32 else 'float64'} GEMM on {dtype_a} x {dtype_b} data, "
                f"got {chunk}"
            )
    if use_f32:
        # Several chunks per block, multiplied as one batched GEMM.
        per_chunk = itemsize * (rows * chunk + out_cells)
        block = chunk * max(1, budget_bytes // per_chunk)
        return _Plan(np.float32, chunk, block)
    return _Plan(np.float64, chunk, chunk)


def _fill_batched(buf: npt.NDArray[Any], src: npt.NDArray[Any], chunk: int) -> int:
    """Copy ``src`` (rows, w) into ``buf`` as (k, rows, chunk), zero-padded; return k."""
    rows: int = src.shape[0]
    width: int = src.shape[1]
    full = width // chunk
    if full:
        buf[:full] = src[:, : full * chunk].reshape(rows, full, chunk).transpose(1, 0, 2)
    rest = width - full * chunk
    if rest:
        buf[full, :, :rest] = src[:, full * chunk :]
        buf[full, :, rest:] = 0
        return full + 1
    return full


def _gram_numpy(a: npt.NDArray[Any], b: npt.NDArray[Any] | None, plan: _Plan) -> I64Array:
    na, d = a.shape
    nb = na if b is None else b.shape[0]
    acc = np.zeros((na, nb), dtype=np.int64)
    if d == 0:
        return acc
    if plan.float_dtype is np.float32:
        k = min(plan.block // plan.chunk, -(-d // plan.chunk))
        buf_a = np.empty((k, na, plan.chunk), dtype=np.float32)
        buf_b = buf_a if b is None else np.empty((k, nb, plan.chunk), dtype=np.float32)
        res = np.empty((k, na, nb), dtype=np.float32)
        for start in range(0, d, plan.block):
            stop = min(d, start + plan.block)
            kk = _fill_batched(buf_a, a[:, start:stop], plan.chunk)
            if b is not None:
                _fill_batched(buf_b, b[:, start:stop], plan.chunk)
            # A @ A.T on the same buffer lets numpy use SYRK; every entry is exact.
            np.matmul(buf_a[:kk], buf_b[:kk].transpose(0, 2, 1), out=res[:kk])
            # Each chunk result is an integer <= 2**24; their float64 sum is exact.
            acc += res[:kk].sum(axis=0, dtype=np.float64).astype(np.int64)
        return acc
    width = min(plan.chunk, d)
    fa = np.empty((na, width), dtype=np.float64)
    fb = fa if b is None else np.empty((nb, width), dtype=np.float64)
    out = np.empty((na, nb), dtype=np.float64)
    for start in range(0, d, plan.chunk):
        stop = min(d, start + plan.chunk)
        w = stop - start
        va = fa[:, :w]
        va[...] = a[:, start:stop]
        vb = va
        if b is not None:
            vb = fb[:, :w]
            vb[...] = b[:, start:stop]
        np.matmul(va, vb.T, out=out)
        acc += out.astype(np.int64)  # exact: every entry is an integer <= 2**53
    return acc


def _gram_torch(
    a: npt.NDArray[Any], b: npt.NDArray[Any] | None, plan: _Plan, device: str
) -> I64Array:
    torch = _import_torch()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    tdtype = torch.float32 if plan.float_dtype is np.float32 else torch.float64
    na, d = a.shape
    nb = na if b is None else b.shape[0]
    acc = torch.zeros((na, nb), dtype=torch.int64, device=dev)

    def load(src: npt.NDArray[Any], start: int, stop: int, kk: int) -> Any:
        rows = src.shape[0]
        block = np.ascontiguousarray(src[:, start:stop])
        if not block.flags.writeable:  # torch wants writable memory (blobs are read-only views)
            block = block.copy()
        host = torch.from_numpy(block)
        x = torch.zeros((rows, kk * plan.chunk), dtype=tdtype, device=dev)
        x[:, : stop - start] = host.to(dev).to(tdtype)
        return x.reshape(rows, kk, plan.chunk).permute(1, 0, 2)

    with torch.no_grad():
        for start in range(0, d, plan.block):
            stop = min(d, start + plan.block)
            kk = -(-(stop - start) // plan.chunk)
            xa = load(a, start, stop, kk)
            xb = xa if b is None else load(b, start, stop, kk)
            res = torch.matmul(xa, xb.transpose(1, 2))  # (kk, na, nb), exact integers
            acc += res.to(torch.float64).sum(dim=0).to(torch.int64)
    out: I64Array = acc.cpu().numpy().astype(np.int64, copy=False)
    return out


def _gram_dispatch(
    a: npt.NDArray[Any],
    b: npt.NDArray[Any] | None,
    chunk_cols: int | None,
    budget_bytes: int,
    backend: str,
) -> I64Array:
    device = _check_backend(backend)
    d = a.shape[1]
    if b is not None and b.shape[1] != d:
        raise ValueError(f"column counts differ: {a.shape} vs {b.shape}")
    b_dtype = a.dtype if b is None else b.dtype
    if d * _MAX_ABS[a.dtype] * _MAX_ABS[b_dtype] >= _INT64_LIMIT:
        raise OverflowError(f"d = {d} columns can overflow the int64 Gram matrix")
    rows = a.shape[0] + (0 if b is None else b.shape[0])
    cells = a.shape[0] * (a.shape[0] if b is None else b.shape[0])
    plan = _plan(a.dtype, b_dtype, rows, cells, chunk_cols, budget_bytes)
    if device is None:
        return _gram_numpy(a, b, plan)
    return _gram_torch(a, b, plan, device)


def gram(
    updates: npt.ArrayLike,
    chunk_cols: int | None = None,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
    *,
    backend: str = "numpy",
) -> I64Array:
    """Exact Gram matrix ``G[i, j] = <u_i, u_j>`` of int8/int16 updates, as int64.

    Parameters
    ----------
    updates:
        ``(n, d)`` ``int8`` or ``int16`` array (a memory map works too).
    chunk_cols:
        Columns per floating-point GEMM. ``None`` picks the widest exact chunk
        that fits the budget. int8 allows at most :data:`INT8_MAX_CHUNK`
        (1,024, float32), int16 at most :data:`INT16_MAX_CHUNK` (``2**23``,
        float64); a larger value raises :class:`ValueError`. The result does not
        depend on it.
    budget_bytes:
        Bound on the floating-point working copy of one block of columns.
    backend:
        ``"numpy"``, ``"torch"`` or ``"torch:<device>"``.

    Returns
    -------
    ``(n, n)`` int64, symmetric, exact; the same bits on every machine.

    Why it is exact: each chunk's float GEMM only ever adds integers whose
    absolute sum is at most ``2**24`` (float32, int8) or ``2**53`` (float64,
    int16), all representable, so any BLAS/GPU order gives the exact integer.
    Chunk results are converted to int64 and summed in int64. See the module
    docstring for the bounds. Raises :class:`OverflowError` when ``d`` is so
    large that int64 could overflow (``d >= 2**33`` for int16).
    """
    a = _check_updates(updates)
    return _gram_dispatch(a, None, chunk_cols, budget_bytes, backend)


def cross_gram(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    chunk_cols: int | None = None,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
    *,
    backend: str = "numpy",
) -> I64Array:
    """Exact ``a @ b.T`` (``(na, nb)`` int64) for int8/int16 ``a`` and ``b``.

    For example the dots of this epoch's updates with the previous global
    update (``b`` of one row), or with the same clients' previous updates. Same
    exactness rules as :func:`gram`: float32 chunks only when both are int8,
    otherwise float64 chunks of at most ``2**53 // (max|a| * max|b|)`` columns.
    """
    xa = _check_updates(a, "a")
    xb = _check_updates(b, "b")
    return _gram_dispatch(xa, xb, chunk_cols, budget_bytes, backend)


def sq_norms(g: npt.ArrayLike) -> ExactArray:
    """Squared norms ``|u_i|**2``: the diagonal of a Gram matrix (a copy)."""
    g = _check_square(g, "g")
    return np.array(g.diagonal(), copy=True)


def pairwise_sq_distances(g: npt.ArrayLike) -> ExactArray:
    """Squared Euclidean distances ``|u_i - u_j|**2 = G_ii + G_jj - 2 G_ij``.

    All terms are integers, so the result is exact. It is int64 when
    ``2 max G_ii + 2 max |G_ij| < 2**63`` (always for int8, and for int16 up to
    ``d = 2**31``), otherwise an object array of Python ints.
    """
    g = _check_square(g, "g")
    diag = g.diagonal()
    if g.dtype != object and 2 * _absmax(diag) + 2 * _absmax(g) < _INT64_LIMIT:
        g64 = g.astype(np.int64, copy=False)
        d64 = diag.astype(np.int64)
        out: ExactArray = d64[:, None] + d64[None, :] - 2 * g64
        return out
    go = _to_object(g)
    do = go.diagonal()
    obj: ExactArray = do[:, None] + do[None, :] - 2 * go
    return obj


# --------------------------------------------------------------------------- Krum


def _check_f(n: int, f: int) -> int:
    f = _check_int(f, "f")
    if f < 0:
        raise ValueError(f"f must be >= 0, got {f}")
    if n <= 2 * f + 2:
        raise ValueError(
            f"Krum needs n > 2f + 2 clients: n = {n}, f = {f} (need n >= {2 * f + 3}); "
            "each score sums the n - f - 2 nearest neighbours"
        )
    return f


def krum_scores_from_distances(dist: npt.ArrayLike, f: int) -> ExactArray:
    """Krum scores from a precomputed squared-distance matrix.

    ``score(i)`` is the sum of the ``n - f - 2`` smallest entries of row ``i``
    excluding the diagonal (Blanchard et al., 2017). The sum of the k smallest
    values does not depend on how ties among them are broken, so the scores are
    well defined. int64 when ``(n - f - 2) * max D < 2**63``, otherwise an
    object array of Python ints. Raises :class:`ValueError` unless
    ``n > 2f + 2``.
    """
    d = _check_square(dist, "dist")
    n = d.shape[0]
    f = _check_f(n, f)
    k = n - f - 2
    others = d[~np.eye(n, dtype=bool)].reshape(n, n - 1)
    if d.dtype != object and k * _absmax(others) < _INT64_LIMIT:
        part = np.partition(others.astype(np.int64, copy=False), k - 1, axis=1)[:, :k]
        out: ExactArray = part.sum(axis=1, dtype=np.int64)
        return out
    rows = _to_object(others)
    obj = np.empty(n, dtype=object)
    for i in range(n):
        obj[i] = sum(sorted(rows[i])[:k])
    return obj


def krum_scores(
    updates: npt.ArrayLike,
    f: int,
    *,
    chunk_cols: int | None = None,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
    backend: str = "numpy",
) -> ExactArray:
    """Exact Krum scores of int8/int16 updates (Blanchard et al., 2017).

    ``score(i) = sum of the n - f - 2 smallest |u_i - u_j|**2, j != i``, for at
    most ``f`` Byzantine clients out of ``n``; requires ``n > 2f + 2``
    (:class:`ValueError` otherwise). Lower is better. Computed as
    :func:`gram` -> :func:`pairwise_sq_distances` ->
    :func:`krum_scores_from_distances`, one exact GEMM instead of ``n**2`` norm
    computations. Returns int64 (object array of Python ints only if a score
    could exceed int64, possible for int16 with large ``n * d``). Permuting the
    clients permutes the scores.
    """
    a = _check_updates(updates)
    _check_f(a.shape[0], f)
    g = gram(a, chunk_cols, budget_bytes, backend=backend)
    return krum_scores_from_distances(pairwise_sq_distances(g), f)


def krum_select(scores: npt.ArrayLike, m: int) -> I64Array:
    """Indices of the ``m`` best (lowest) scores, best first.

    Tie-break: lower score first, then **lower client index** (stable sort), so
    pass the clients in a canonical order (e.g. sorted by client key). ``m = 1``
    is Krum, ``m > 1`` Multi-Krum's selection.
    """
    s = np.asarray(scores)
    if s.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {s.shape}")
    m = _check_int(m, "m")
    if not 1 <= m <= s.shape[0]:
        raise ValueError(f"m must be in [1, {s.shape[0]}], got {m}")
    if s.dtype != object and not np.issubdtype(s.dtype, np.integer):
        raise TypeError(f"scores must be integers, got dtype {s.dtype}")
    order = np.argsort(s, kind="stable")
    out: I64Array = order[:m].astype(np.int64)
    return out


@dataclass(frozen=True)
class MultiKrum:
    """Result of :func:`multi_krum`."""

    scores: ExactArray  #: Krum score per client (int64 or Python ints)
    selected: I64Array  #: the m selected client indices, best first
    mean: I64Array  #: rounded (half to even) mean of the selected updates


def multi_krum(
    updates: npt.ArrayLike,
    f: int,
    m: int,
    weights: Sequence[int] | npt.ArrayLike | None = None,
    *,
    chunk_cols: int | None = None,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
    backend: str = "numpy",
) -> MultiKrum:
    """Multi-Krum: scores, the ``m`` best clients, and the mean of their updates.

    ``weights`` (per client, e.g. sample counts) weight the mean of the
    selected clients as in :func:`mean`; ``None`` weights them equally.
    """
    a = _check_updates(updates)
    scores = krum_scores(a, f, chunk_cols=chunk_cols, budget_bytes=budget_bytes, backend=backend)
    selected = krum_select(scores, m)
    order = np.sort(selected)  # read rows in index order; the mean is order-free
    w = None
    if weights is not None:
        w_all = _check_weights(weights, a.shape[0], allow_zero_total=True)
        w = [w_all[i] for i in order.tolist()]
        if sum(w) <= 0:
            raise ValueError("the selected clients' weights are all zero")
    avg = _mean_rows(a, order, w, budget_bytes)
    return MultiKrum(scores=scores, selected=selected, mean=avg)


def multi_krum_mean(
    updates: npt.ArrayLike,
    f: int,
    m: int,
    weights: Sequence[int] | npt.ArrayLike | None = None,
    *,
    chunk_cols: int | None = None,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
    backend: str = "numpy",
) -> I64Array:
    """The Multi-Krum aggregate: the rounded mean of the ``m`` best updates.

    See :func:`multi_krum` (which also returns the scores and the selection).
    """
    return multi_krum(
        updates,
        f,
        m,
        weights,
        chunk_cols=chunk_cols,
        budget_bytes=budget_bytes,
        backend=backend,
    ).mean


# --------------------------------------------------------------------------- coordinate-wise


def _col_block(n: int, budget_bytes: int, itemsize: int = 8) -> int:
    budget_bytes = _check_int(budget_bytes, "budget_bytes")
    if budget_bytes <= 0:
        raise ValueError("budget_bytes must be positive")
    return max(1, budget_bytes // (itemsize * n))


def _check_weights(
    weights: Sequence[int] | npt.ArrayLike, n: int, *, allow_zero_total: bool = False
) -> list[int]:
    arr = np.asarray(weights)
    if arr.shape != (n,):
        raise ValueError(f"weights must have shape ({n},), got {arr.shape}")
    if arr.dtype == object:
        values = [_check_int(w, "weight") for w in arr.tolist()]
    elif np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
        values = [int(w) for w in arr.tolist()]
    else:
        raise TypeError(f"weights must be integers (sample counts), got dtype {arr.dtype}")
    if any(w < 0 for w in values):
        raise ValueError("weights must be non-negative")
    if not allow_zero_total and sum(values) <= 0:
        raise ValueError("weights must not all be zero")
    return values


def mean(
    updates: npt.ArrayLike,
    weights: Sequence[int] | npt.ArrayLike | None = None,
    *,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
) -> I64Array:
    """Coordinate-wise (weighted) mean, rounded half to even, as int64 ``(d,)``.

    ``result[c] = round(sum_i w_i u_ic / sum_i w_i)`` with ``w_i = 1`` when
    ``weights`` is ``None``. Weights are non-negative integers (sample counts),
    not all zero. Computed in int64 (exact); raises :class:`OverflowError` if
    ``sum(w) * 32768`` could exceed ``2**61``.
    """
    a = _check_updates(updates)
    w_list = None if weights is None else _check_weights(weights, a.shape[0])
    return _mean_rows(a, np.arange(a.shape[0]), w_list, budget_bytes)


def _mean_rows(
    a: npt.NDArray[Any], rows: I64Array, w_list: list[int] | None, budget_bytes: int
) -> I64Array:
    """Rounded (weighted) mean of ``a[rows]``, read one column block at a time."""
    n = rows.shape[0]
    d = a.shape[1]
    total = n if w_list is None else sum(w_list)
    if 2 * total * _MAX_ABS[a.dtype] >= 2**62:
        raise OverflowError(f"sum of weights {total} is too large for exact int64 means")
    whole = n == a.shape[0] and bool(np.all(rows == np.arange(n)))
    w64 = None if w_list is None else np.array(w_list, dtype=np.int64)
    out = np.empty(d, dtype=np.int64)
    step = _col_block(n, budget_bytes)
    for start in range(0, d, step):
        stop = min(d, start + step)
        block = a[:, start:stop] if whole else a[rows, start:stop]
        num = block.sum(axis=0, dtype=np.int64) if w64 is None else w64 @ block.astype(np.int64)
        out[start:stop] = round_half_even_div(num, total)
    return out


def _median_block(block_t: npt.NDArray[Any]) -> I64Array:
    n = block_t.shape[1]
    h = n // 2
    if n % 2:
        part = np.partition(block_t, h, axis=1)
        res: I64Array = part[:, h].astype(np.int64)
        return res
    part = np.partition(block_t, (h - 1, h), axis=1)
    pair = part[:, h - 1].astype(np.int64) + part[:, h].astype(np.int64)
    return round_half_even_div(pair, 2)


def coordinate_median(
    updates: npt.ArrayLike, *, budget_bytes: int = DEFAULT_BUDGET_BYTES
) -> I64Array:
    """Coordinate-wise median as int64 ``(d,)``.

    For odd ``n`` the middle value; for even ``n`` the mean of the two middle
    values rounded half to even (``(3 + 4) / 2 -> 4``, ``(1 + 2) / 2 -> 2``,
    ``(-1 + 0) / 2 -> 0``).
    """
    a = _check_updates(updates)
    n, d = a.shape
    out = np.empty(d, dtype=np.int64)
    step = _col_block(n, budget_bytes, 8)
    for start in range(0, d, step):
        stop = min(d, start + step)
        out[start:stop] = _median_block(np.ascontiguousarray(a[:, start:stop].T))
    return out


def _trim_count(n: int, beta: Rational) -> int:
    frac = _as_fraction(beta, "beta")
    if not 0 <= frac < Fraction(1, 2):
        raise ValueError(f"beta must be in [0, 1/2), got {frac}")
    return math.floor(frac * n)


def trimmed_mean(
    updates: npt.ArrayLike,
    beta: Rational,
    *,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
) -> I64Array:
    """Coordinate-wise trimmed mean as int64 ``(d,)``.

    Per coordinate, drop the ``k = floor(beta * n)`` smallest and ``k`` largest
    values and take the mean of the remaining ``n - 2k``, rounded half to even.
    ``beta`` is the fraction trimmed at *each* end, ``0 <= beta < 1/2``, taken
    as an exact rational: a ``Fraction``, ``(num, den)``, a string such as
    ``"1/10"``, or a float read as the decimal it prints as (``0.1`` is
    ``1/10``), so ``k`` never depends on binary float rounding.
    """
    a = _check_updates(updates)
    n, d = a.shape
    k = _trim_count(n, beta)
    keep = n - 2 * k
    out = np.empty(d, dtype=np.int64)
    step = _col_block(n, budget_bytes, 8)
    for start in range(0, d, step):
        stop = min(d, start + step)
        block_t = np.ascontiguousarray(a[:, start:stop].T)
        if k:
            block_t = np.partition(block_t, (k, n - k - 1), axis=1)[:, k : n - k]
        out[start:stop] = round_half_even_div(block_t.sum(axis=1, dtype=np.int64), keep)
    return out


# --------------------------------------------------------------------------- free riders


def cosine_ge(
    dot: npt.ArrayLike, na2: npt.ArrayLike, nb2: npt.ArrayLike, num: int, den: int
) -> BoolArray:
    """Exactly decide ``cos(a, b) >= num / den`` from integers.

    ``cos = dot / sqrt(na2 * nb2)`` with ``dot = <a, b>``, ``na2 = |a|**2``,
    ``nb2 = |b|**2``; the threshold ``t = num / den`` (``den > 0``) may have
    any sign. No floats and no square roots: with ``P = na2 * nb2``,

    * ``t > 0``: ``dot > 0`` and ``dot**2 * den**2 >= num**2 * P``;
    * ``t = 0``: ``dot >= 0``;
    * ``t < 0``: ``dot >= 0`` or ``dot**2 * den**2 <= num**2 * P``.

    A zero vector has no direction: where ``P == 0`` the answer is ``False``.
    Inputs broadcast (scalars give a 0-d array: use ``bool(...)``). The
    products reach ``dot**2 ~ (d * 2**30)**2``, far beyond int64, so they are
    computed on object arrays of Python ints.
    """
    num = _check_int(num, "num")
    den = _check_int(den, "den")
    if den <= 0:
        raise ValueError("den must be positive")
    x, p2a, p2b = np.broadcast_arrays(_to_object(dot), _to_object(na2), _to_object(nb2))
    prod = p2a * p2b
    valid = np.asarray(prod > 0, dtype=bool)
    if num > 0:
        res = (x > 0) & (x * x * (den * den) >= prod * (num * num))
    elif num == 0:
        res = x >= 0
    else:
        res = (x >= 0) | (x * x * (den * den) <= prod * (num * num))
    out: BoolArray = np.asarray(res, dtype=bool) & valid
    return out


def cosine_sq_ge(
    dot: npt.ArrayLike,
    na2: npt.ArrayLike,
    nb2: npt.ArrayLike,
    num: int,
    den: int,
    *,
    signed: bool = True,
) -> BoolArray:
    """Exactly decide ``cos(a, b)**2 >= num / den`` (``num >= 0``, ``den > 0``).

    ``cos**2 >= num/den  <=>  dot**2 * den >= num * na2 * nb2``. With
    ``signed=True`` (default) the cosine must also be positive (``dot > 0``),
    i.e. this tests ``cos >= sqrt(num/den)``, the form for "nearly the same
    direction"; with ``signed=False`` it tests ``|cos| >= sqrt(num/den)``.
    Zero vectors give ``False``. Python-int arithmetic as in :func:`cosine_ge`.
    """
    num = _check_int(num, "num")
    den = _check_int(den, "den")
    if den <= 0 or num < 0:
        raise ValueError("need num >= 0 and den > 0")
    x, p2a, p2b = np.broadcast_arrays(_to_object(dot), _to_object(na2), _to_object(nb2))
    prod = p2a * p2b
    res = np.asarray(x * x * den >= prod * num, dtype=bool) & np.asarray(prod > 0, dtype=bool)
    if signed:
        res &= np.asarray(x > 0, dtype=bool)
    out: BoolArray = res
    return out


def zero_updates(
    updates_or_sq_norms: npt.ArrayLike,
    max_sq_norm: int = 0,
    *,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
) -> I64Array:
    """Indices (ascending) of clients whose ``|u_i|**2 <= max_sq_norm``.

    Pass either the ``(n, d)`` int8/int16 updates (norms computed exactly in
    int64, chunked) or the ``(n,)`` squared norms (e.g. :func:`sq_norms` of a
    Gram matrix already computed). ``max_sq_norm = 0`` finds exact zeros.
    """
    limit = _check_int(max_sq_norm, "max_sq_norm")
    x = np.asarray(updates_or_sq_norms)
    if x.ndim == 2:
        a = _check_updates(x)
        n, d = a.shape
        norms = np.zeros(n, dtype=np.int64)
        step = _col_block(n, budget_bytes, 8)
        for start in range(0, d, step):
            block = a[:, start : min(d, start + step)].astype(np.int64)
            norms += np.einsum("ij,ij->i", block, block)
        x = norms
    elif x.ndim != 1:
        raise ValueError("pass (n, d) updates or (n,) squared norms")
    if x.dtype == object:
        mask = np.array([int(v) <= limit for v in x.tolist()], dtype=bool)
    else:
        mask = x <= limit
    out: I64Array = np.flatnonzero(mask).astype(np.int64)
    return out


def near_duplicates(
    g: npt.ArrayLike,
    num: int,
    den: int,
    *,
    norm_num: int = 9,
    norm_den: int = 10,
) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, of nearly identical non-zero updates.

    A pair is reported when ``cos(u_i, u_j) >= num / den`` (:func:`cosine_ge`)
    and the norms are similar: ``min(|u_i|, |u_j|) / max(|u_i|, |u_j|) >=
    norm_num / norm_den`` (default 9/10; ``norm_num = 0`` disables it), decided
    exactly as ``min**2 * norm_den**2 >= norm_num**2 * max**2``. Zero updates
    are never paired (see :func:`zero_updates`). Sorted lexicographically.
    """
    g = _check_square(g, "g")
    norm_num = _check_int(norm_num, "norm_num")
    norm_den = _check_int(norm_den, "norm_den")
    if norm_den <= 0 or not 0 <= norm_num <= norm_den:
        raise ValueError("need 0 <= norm_num <= norm_den and norm_den > 0")
    n = g.shape[0]
    iu, ju = np.triu_indices(n, k=1)
    diag = _to_object(g.diagonal())
    na2, nb2 = diag[iu], diag[ju]
    ok = cosine_ge(_to_object(g)[iu, ju], na2, nb2, num, den)
    lo = np.minimum(na2, nb2)
    hi = np.maximum(na2, nb2)
    ok &= np.asarray(lo * (norm_den * norm_den) >= hi * (norm_num * norm_num), dtype=bool)
    return [(int(i), int(j)) for i, j in zip(iu[ok], ju[ok], strict=True)]


@dataclass(frozen=True)
class LeaveOneOut:
    """Exact ingredients of ``cos(u_i, sum_{j != i} u_j)`` for every client ``i``.

    ``cos_i = dots[i] / sqrt(norms_sq[i] * rest_norms_sq[i])``. Python ints:
    ``rest_norms_sq`` reaches ``n**2 * d * 2**30``, beyond int64 for int16 data.
    """

    dots: tuple[int, ...]  #: ``<u_i, sum_{j != i} u_j>``
    norms_sq: tuple[int, ...]  #: ``|u_i|**2``
    rest_norms_sq: tuple[int, ...]  #: ``|sum_{j != i} u_j|**2``

    def cosine_ge(self, num: int, den: int) -> BoolArray:
        """Per client, exactly whether the leave-one-out cosine is ``>= num/den``."""
        return cosine_ge(
            np.array(self.dots, dtype=object),
            np.array(self.norms_sq, dtype=object),
            np.array(self.rest_norms_sq, dtype=object),
            num,
            den,
        )

    def cosines(self) -> list[float]:
        """Float approximations (``nan`` for a zero vector), for logs and plots only."""
        out = []
        for dot, a2, b2 in zip(self.dots, self.norms_sq, self.rest_norms_sq, strict=True):
            p = a2 * b2
            out.append(dot / math.sqrt(p) if p > 0 else math.nan)
        return out


def leave_one_out_cosines(g: npt.ArrayLike) -> LeaveOneOut:
    """Each update against the sum of all the others, from the Gram matrix.

    With ``r_i = sum_j G_ij`` and ``T = sum_ij G_ij = |sum_j u_j|**2``:
    ``<u_i, S - u_i> = r_i - G_ii`` and ``|S - u_i|**2 = T - 2 r_i + G_ii``.
    Everything is summed in Python ints (object arrays): ``T`` can exceed
    ``2**63`` (``n**2 * d * 2**30`` for int16). The sum of the others points the
    same way as their mean, so this is the cosine to the leave-one-out mean.
    """
    g = _to_object(_check_square(g, "g"))
    rows = [sum(r) for r in g.tolist()]
    total = sum(rows)
    diag = [int(v) for v in g.diagonal().tolist()]
    return LeaveOneOut(
        dots=tuple(r - gi for r, gi in zip(rows, diag, strict=True)),
        norms_sq=tuple(diag),
        rest_norms_sq=tuple(total - 2 * r + gi for r, gi in zip(rows, diag, strict=True)),
    )
