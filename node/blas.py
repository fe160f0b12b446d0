"""How many BLAS threads the STF's linear algebra may use while the node applies blocks.

The epoch close computes exact Gram matrices and dot products with numpy (integer or exactly
representable float64 blocks, so the thread count never changes a byte). OpenBLAS sizes its pool
to the machine and spins its threads: with other work on the machine the 2-thread Gram of
64 x 10^6 took 31 s instead of 0.1 s with one thread (issue 13/15). The node therefore chooses
the count (``blas_threads``, default 1) for the block thread, the replay and the verifier, rather
than leaving it to the library's guess.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from threadpoolctl import threadpool_limits


def blas_threads(n: int) -> AbstractContextManager[Any]:
    """Limit the BLAS pools (OpenBLAS, MKL, ...) to ``n`` threads inside the ``with``."""
    limits: AbstractContextManager[Any] = threadpool_limits(limits=n, user_api="blas")
    return limits
