"""Client data splits for ``bench/detection.py``: realistic size and label heterogeneity.

The built-in split (``lognormal``) draws, per client ``i``:

* a size ``n_i = max(min_size, round(N * w_i))`` with ``w = lognormal(0, sigma) / sum``, so
  sizes are log-normal around ``N / n`` (sigma 1.0 by default: the largest of 20 clients
  holds ~5-10x the median, the smallest the floor);
* a label mix ``p_i ~ Dirichlet(alpha)`` over the classes (alpha 0.1: one or two classes per
  client; 10: close to the global mix) and ``n_i`` labels ``~ Multinomial(n_i, p_i)``.

The indices of each class are drawn from a shuffled pool without replacement; a client that
asks a class for more samples than the pool has left gets what is left and the rest from the
classes that still have data. ``equal`` is the old equal-size IID split (for comparison only:
it hides the heterogeneity problems).

Bring your own split with ``--split-file PATH``: a Python file defining
``split(y: np.ndarray, n_clients: int, rng: np.random.Generator) -> list[np.ndarray]`` that
returns one array of training-set indices per client (non-empty; overlaps allowed), e.g.::

    import numpy as np

    def split(y, n_clients, rng):
        \"\"\"Client k holds the labels k mod 10 and (k + 1) mod 10, all equal sized.\"\"\"
        return [np.flatnonzero((y == k % 10) | (y == (k + 1) % 10)) for k in range(n_clients)]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from plugin import load_function

Idx = npt.NDArray[np.int64]
SplitFn = Callable[[npt.NDArray[np.int64], int, np.random.Generator], list[Idx]]


def lognormal_sizes(
    total: int, n: int, sigma: float, min_size: int, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """Log-normal client sizes summing to about ``total`` (before the ``min_size`` floor)."""
    w = rng.lognormal(0.0, sigma, n)
    w /= w.sum()
    return np.maximum(min_size, np.round(total * w)).astype(np.int64)


def lognormal_dirichlet(
    y: npt.NDArray[np.int64],
    n: int,
    alpha: float,
    sigma: float,
    rng: np.random.Generator,
    min_size: int = 8,
) -> list[Idx]:
    """Log-normal sizes, Dirichlet(alpha) label mixes (see the module docstring)."""
    classes = np.unique(y)
    pools = {int(c): list(rng.permutation(np.flatnonzero(y == c))) for c in classes}
    sizes = lognormal_sizes(len(y), n, sigma, min_size, rng)
    parts: list[Idx] = []
    for size in sizes:
        want = rng.multinomial(int(size), rng.dirichlet(np.full(len(classes), alpha)))
        got: list[int] = []
        short = 0
        for c, k in zip(classes, want, strict=True):
            pool = pools[int(c)]
            take = min(int(k), len(pool))
            got.extend(pool[:take])
            del pool[:take]
            short += int(k) - take
        for c in rng.permutation(classes):  # a drained class: fill from the others
            pool = pools[int(c)]
            take = min(short, len(pool))
            got.extend(pool[:take])
            del pool[:take]
            short -= take
        if not got:  # every pool drained: reuse a random sample (overlap across clients)
            got = rng.choice(len(y), size=min_size, replace=False).tolist()
        parts.append(np.array(sorted(got), dtype=np.int64))
    return parts


def equal_iid(y: npt.NDArray[np.int64], n: int, rng: np.random.Generator) -> list[Idx]:
    """The old benchmark's split: a permutation cut into equal parts."""
    return [np.sort(p).astype(np.int64) for p in np.array_split(rng.permutation(len(y)), n)]


def load_split_file(path: str) -> SplitFn:
    """The ``split`` function of a user's file (see the module docstring)."""
    return checked(load_function(path, "--split-file", "split", "split(y, n_clients, rng)"))


def checked(fn: SplitFn) -> SplitFn:
    """Wraps a user's split so that a malformed result fails with a clear message."""

    def run(y: npt.NDArray[np.int64], n: int, rng: np.random.Generator) -> list[Idx]:
        parts = [np.asarray(p, dtype=np.int64) for p in fn(y, n, rng)]
        if len(parts) != n or any(p.size == 0 for p in parts):
            raise SystemExit(f"split file: want {n} non-empty index arrays, got {len(parts)}")
        if any(p.min() < 0 or p.max() >= len(y) for p in parts):
            raise SystemExit("split file: an index is outside the training set")
        return parts

    return run
