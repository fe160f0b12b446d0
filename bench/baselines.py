"""Baseline aggregators for ``bench/detection.py``, on the same int8 updates the STF sees.

* ``fedavg``: the unweighted mean of every submitted update (what the STF's ``mean``
  aggregator computes with no flag raised; the chain does not weight by data size);
* Flower's own functions from ``flwr.server.strategy.aggregate`` when ``flwr`` is importable
  (the ``bench`` extra): ``krum`` (``aggregate_krum``, ``to_keep = 0``), ``multikrum``
  (``to_keep = n - f``), ``median`` (``aggregate_median``), ``trimmed`` (``aggregate_trimmed_avg``
  cutting f / n at each end), all with ``num_malicious = f`` of the rules and equal weights.

Each takes the epoch's rows in quantized units (float) and returns the global step.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Aggregate = Callable[[F64, int], F64]  # (rows (n, d), f) -> step (d,)


def have_flwr() -> bool:
    return importlib.util.find_spec("flwr") is not None


def fedavg(rows: F64, f: int) -> F64:
    return np.asarray(rows.mean(axis=0))


def flower_aggregators() -> dict[str, Aggregate]:
    """Flower's server-side robust aggregators, wrapped to one flat vector per client."""
    from flwr.server.strategy.aggregate import (
        aggregate_krum,
        aggregate_median,
        aggregate_trimmed_avg,
    )

    def results(rows: F64) -> list[tuple[list[F64], int]]:
        return [([r], 1) for r in rows]

    def krum(rows: F64, f: int) -> F64:
        return np.asarray(aggregate_krum(results(rows), num_malicious=f, to_keep=0)[0])

    def multikrum(rows: F64, f: int) -> F64:
        keep = max(1, rows.shape[0] - f)
        return np.asarray(aggregate_krum(results(rows), num_malicious=f, to_keep=keep)[0])

    def median(rows: F64, f: int) -> F64:
        return np.asarray(aggregate_median(results(rows))[0])

    def trimmed(rows: F64, f: int) -> F64:
        cut = min(0.49, f / rows.shape[0])
        return np.asarray(aggregate_trimmed_avg(results(rows), cut)[0])

    return {"krum": krum, "multikrum": multikrum, "median": median, "trimmed": trimmed}


def aggregators(with_flower: bool) -> dict[str, Aggregate]:
    """FedAvg always; Flower's four when asked and importable."""
    out: dict[str, Aggregate] = {"fedavg": fedavg}
    if with_flower and have_flwr():
        out.update(flower_aggregators())
    return out
