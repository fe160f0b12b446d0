"""Baseline aggregators for ``bench/detection.py``, on the same int8 updates the STF sees.

* ``fedavg``: the unweighted mean of every submitted update (what the STF's ``mean``
  aggregator computes with no flag raised; the chain does not weight by data size);
* Flower's own functions from ``flwr.server.strategy.aggregate`` when ``flwr`` is importable
  (the ``bench`` extra): ``krum`` (``aggregate_krum``, ``to_keep = 0``), ``multikrum``
  (``to_keep = n - f``), ``median`` (``aggregate_median``), ``trimmed`` (``aggregate_trimmed_avg``
  cutting f / n at each end), all with ``num_malicious = f`` of the rules and equal weights;
* ``fltrust`` (Cao et al., NDSS 2021): the requester trains the current model on a root data
  set of its own (``fl_sim.ROOT_SIZE`` samples drawn uniformly) for a reference update ``g0``;
  each update gets the trust ``relu(cos(u_i, g0))``, is rescaled to ``|g0|``, and the step is
  the trust-weighted mean. ``reftrust``: the same trust, every update rescaled to the median
  norm of the epoch's updates instead of ``|g0|`` (a 100-sample root update is shorter than a
  typical client's, and the paper's rescaling slowed training on non-IID splits). Floating
  point: measurements of a direction for the chain's rules, not the chain's rule.

Each takes the epoch's rows in quantized units (float) and returns the global step.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Aggregate = Callable[[F64, int], F64]  # (rows (n, d), f) -> step (d,)


class FLTrust:
    """FLTrust's aggregate; ``fl_run.run`` passes the requester's reference update."""

    needs_reference = True

    def __init__(self, to_median_norm: bool = False) -> None:
        self.to_median_norm = to_median_norm

    def __call__(self, rows: F64, f: int, ref: F64) -> F64:
        rn = float(np.linalg.norm(ref))
        norms = np.linalg.norm(rows, axis=1)
        ok = norms > 0
        if rn == 0.0 or not ok.any():
            return np.zeros(rows.shape[1])
        trust = np.zeros(rows.shape[0])
        trust[ok] = np.maximum(0.0, rows[ok] @ ref / (norms[ok] * rn))
        if trust.sum() == 0.0:
            return np.zeros(rows.shape[1])
        target = float(np.median(norms)) if self.to_median_norm else rn
        scaled = rows[ok] * (target / norms[ok])[:, None]
        return np.asarray(trust[ok] @ scaled / trust.sum())


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
    """FedAvg and the two FLTrusts always; Flower's four when asked and importable."""
    out: dict[str, Aggregate] = {
        "fedavg": fedavg,
        "fltrust": FLTrust(),
        "reftrust": FLTrust(to_median_norm=True),
    }
    if with_flower and have_flwr():
        out.update(flower_aggregators())
    return out
