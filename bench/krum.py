#!/usr/bin/env python
"""Krum benchmark: exact chunked-GEMM scores against a float GEMM and a pairwise loop.

Usage: ``python bench/krum.py [--quick] [--sizes N:D,N:D...] [--pair-seconds S]``

For each ``(n, d)`` (default ``(16, 10**6)``, ``(64, 10**6)``, ``(128, 10**7)``;
``--quick``: ``(16, 10**5)``, ``(64, 10**5)``, ``(128, 10**6)``) on random int8
updates in ``[-127, 127]``, on the CPU, it prints:

1. ``krum_scores``: :func:`stf.robust.krum_scores` end to end (float32 GEMMs
   over 1,024-column chunks, summed exactly in int64, distances, scores).
2. The bare float64 GEMM of the same data, ``np.dot(y, y.T)`` on a float64
   copy ``y``: once with the int8 -> float64 cast included, once excluded.
3. A Flower-style loop (``flwr.server.strategy.aggregate._compute_distances``):
   the float32 updates, and for every ordered pair ``(i, j)``
   ``np.linalg.norm(w_i - w_j) ** 2``, then Flower's argsort scoring. The
   float32 copy is made beforehand (Flower receives float arrays), so its cast
   is not timed. When the ``n**2`` pairs would take longer than
   ``--pair-seconds``, a prefix of the pairs (in Flower's loop order) is timed
   and the per-pair time is extrapolated to ``n**2``; the output says so.

Then the ratios, against the targets: ``krum_scores`` at most 1.5x the bare
float64 GEMM (cast included: both start from the int8 updates), and at least
10x faster than the pairwise loop at ``(64, 10**6)``. It also checks that the
scores equal the ones derived from the float64 Gram (exact for int8 at these
sizes), so the speed is not bought with a different answer.

Memory: ``(128, 10**7)`` int8 is 1.28 GB, its float64 copy 10.24 GB and its
float32 copy 5.12 GB; they are made one at a time. Timings are the best of
``--repeat`` runs (1 for the largest size).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from stf import robust  # noqa: E402

DEFAULT_SIZES = [(16, 10**6), (64, 10**6), (128, 10**7)]
QUICK_SIZES = [(16, 10**5), (64, 10**5), (128, 10**6)]
TARGET_GEMM_RATIO = 1.5
TARGET_LOOP_SPEEDUP = 10.0
TARGET_AT = (64, 10**6)


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best = float("inf")
    value: Any = None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def make_updates(n: int, d: int, seed: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), dtype=np.int8)
    for i in range(n):  # row by row: no int64 temporary of the whole array
        out[i] = rng.integers(-127, 128, size=d, dtype=np.int8)
    return out


def gemm_with_cast(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    y = x.astype(np.float64)
    out: np.ndarray[Any, Any] = np.dot(y, y.T)
    return out


def gemm_without_cast(x: np.ndarray[Any, Any], repeat: int) -> float:
    y = x.astype(np.float64)
    return best_of(lambda: np.dot(y, y.T), repeat)[0]


def flower_loop(
    w: np.ndarray[Any, Any], f: int, pair_seconds: float
) -> tuple[float, int, np.ndarray[Any, Any] | None]:
    """Flower's distance matrix, then its scores; returns (seconds, pairs timed, scores)."""
    n = w.shape[0]
    total = n * n
    dist = np.zeros((n, n))
    done = 0
    start = time.perf_counter()
    for i in range(n):
        for j in range(n):
            delta = w[i] - w[j]
            norm = np.linalg.norm(delta)
            dist[i, j] = norm**2
            done += 1
            if done % 16 == 0 and time.perf_counter() - start > pair_seconds:
                break
        else:
            continue
        break
    elapsed = time.perf_counter() - start
    if done < total:
        return elapsed * total / done, done, None
    num_closest = max(1, n - f - 2)
    t0 = time.perf_counter()
    scores = np.array([np.sum(dist[i, np.argsort(dist[i])[1 : num_closest + 1]]) for i in range(n)])
    return elapsed + time.perf_counter() - t0, done, scores


def run_size(n: int, d: int, repeat: int, pair_seconds: float) -> dict[str, Any]:
    f = (n - 3) // 2 // 2  # a quarter of the clients Byzantine; n > 2f + 2 holds
    print(f"\n(n, d) = ({n}, {d:,}), f = {f}: int8 updates, {n * d / 1e9:.2f} GB")
    x = make_updates(n, d, seed=n * 1000 + d % 997)

    t_krum, scores = best_of(lambda: robust.krum_scores(x, f), repeat)
    print(f"  krum_scores (exact, chunked float32 GEMM): {t_krum * 1e3:10.1f} ms")

    t_cast, g64 = best_of(lambda: gemm_with_cast(x), repeat)
    exact = robust.krum_scores_from_distances(robust.pairwise_sq_distances(g64.astype(np.int64)), f)
    same = bool(np.array_equal(scores, exact))
    del g64
    gc.collect()
    t_gemm = gemm_without_cast(x, repeat)
    gc.collect()
    print(f"  float64 GEMM np.dot(y, y.T), cast included: {t_cast * 1e3:9.1f} ms")
    print(f"  float64 GEMM np.dot(y, y.T), cast excluded: {t_gemm * 1e3:9.1f} ms")

    w = x.astype(np.float32)
    t_loop, pairs, loop_scores = flower_loop(w, f, pair_seconds)
    del w
    gc.collect()
    how = (
        f"all {pairs:,} pairs"
        if pairs == n * n
        else f"EXTRAPOLATED from {pairs:,} of {n * n:,} pairs"
    )
    print(f"  Flower-style pair loop (float32 norms):    {t_loop * 1e3:10.1f} ms  ({how})")
    if loop_scores is not None:
        rel = float(
            np.max(np.abs(loop_scores - exact.astype(np.float64)) / exact.astype(np.float64))
        )
        print(f"    its float32 scores differ from the exact ones by up to {rel:.1e} (relative)")

    print(f"  scores identical to the float64-Gram scores: {same}")
    print(f"  ratio krum / GEMM (cast incl.): {t_krum / t_cast:5.2f}x")
    print(f"  ratio krum / GEMM (cast excl.): {t_krum / t_gemm:5.2f}x")
    print(f"  speed-up vs pair loop:          {t_loop / t_krum:5.1f}x")
    return {
        "n": n,
        "d": d,
        "krum": t_krum,
        "gemm_cast": t_cast,
        "gemm": t_gemm,
        "loop": t_loop,
        "extrapolated": pairs < n * n,
        "same": same,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--sizes", help="comma-separated N:D pairs, e.g. 32:1000000")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument(
        "--pair-seconds",
        type=float,
        default=None,
        help="time budget for the pair loop before extrapolating (default 20, quick 5)",
    )
    args = parser.parse_args()
    if args.sizes:
        sizes = [(int(a), int(b)) for a, b in (s.split(":") for s in args.sizes.split(","))]
    else:
        sizes = QUICK_SIZES if args.quick else DEFAULT_SIZES
    pair_seconds = args.pair_seconds or (5.0 if args.quick else 20.0)

    print("Krum benchmark (bench/krum.py)")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"
    )
    start = time.perf_counter()
    results = []
    for n, d in sizes:
        repeat = 1 if n * d > 2 * 10**8 else args.repeat
        results.append(run_size(n, d, repeat, pair_seconds))

    print("\nSummary (ms)")
    print(f"{'n':>5} {'d':>12} {'krum':>9} {'gemm+cast':>10} {'gemm':>9} {'loop':>11}  ratios")
    ok = True
    for r in results:
        loop = f"{r['loop'] * 1e3:10.0f}{'*' if r['extrapolated'] else ' '}"
        print(
            f"{r['n']:>5} {r['d']:>12,} {r['krum'] * 1e3:9.1f} {r['gemm_cast'] * 1e3:10.1f} "
            f"{r['gemm'] * 1e3:9.1f} {loop}  krum/gemm+cast {r['krum'] / r['gemm_cast']:.2f}, "
            f"krum/gemm {r['krum'] / r['gemm']:.2f}, loop/krum {r['loop'] / r['krum']:.0f}"
        )
        ok = ok and r["same"]
    if any(r["extrapolated"] for r in results):
        print("  * pair loop extrapolated from a timed prefix of the pairs")
    for r in results:
        ratio = r["krum"] / r["gemm_cast"]
        verdict = "met" if ratio <= TARGET_GEMM_RATIO else "MISSED"
        print(
            f"target krum <= {TARGET_GEMM_RATIO}x GEMM (cast incl.) at ({r['n']}, {r['d']:,}): "
            f"{ratio:.2f}x {verdict}"
        )
        if (r["n"], r["d"]) == TARGET_AT:
            speed = r["loop"] / r["krum"]
            verdict = "met" if speed >= TARGET_LOOP_SPEEDUP else "MISSED"
            print(
                f"target >= {TARGET_LOOP_SPEEDUP:.0f}x faster than the pair loop at "
                f"(64, 1,000,000): {speed:.1f}x {verdict}"
            )
    print(f"exact scores everywhere: {ok}; total {time.perf_counter() - start:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
