"""The demo's cast and what each cheater sends: the roles, their descriptions, and ``craft``.

Both the chain run (:mod:`.federation`) and the local comparison (:mod:`.baselines`) build
every client's update here, so the two see the very same attacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from stf.fl.task import TaskParams

from .data import F64, Trainer

ROLES = ("honest",) * 6 + ("signflip", "gauss", "labelflip", "fr_replay", "fr_copy", "fr_noise")
N_CLIENTS = len(ROLES)
ATTACKS = {
    "signflip": "sends -4 x its honest update",
    "gauss": "sends Gaussian noise, 10 x the honest RMS per coordinate",
    "labelflip": "trains on flipped labels (9 - y)",
    "fr_replay": "free rider: resends the last global step, read from the chain (zeros at first)",
    "fr_copy": "free rider: copies another client's update of the epoch, read from the chain",
    "fr_noise": "free rider: sends noise scaled to the others' update norm (read from the chain)",
}
#: what bench/detection.py measures for each attack with these rules
EXPECTED = {
    "signflip": "KRUM_OUTLIER (or UNCORRELATED) strikes, barred after 2",
    "gauss": "KRUM_OUTLIER strikes, barred after 2",
    "labelflip": "KRUM_OUTLIER strikes; the slowest on non-IID data (3-8 epochs)",
    "fr_replay": "ZERO strike in epoch 0, then REPLAY_GLOBAL: provable, slashable at once",
    "fr_copy": "COPY strikes (evidence, not proof: order decides who is the copy), barred after 2",
    "fr_noise": "UNCORRELATED strikes, barred after 2",
}
#: free riders that need the others' updates of the epoch: they send once those are sealed
SECOND_WAVE = ("fr_copy", "fr_noise")

SIGNFLIP_K = 4.0
GAUSS_SCALE = 10.0


def pick_copy(peers: Sequence[npt.NDArray[Any]]) -> int | None:
    """The copier's pick: the most typical non-zero update (median norm), which looks like
    honest work."""
    nonzero = [k for k, p in enumerate(peers) if np.any(p)]
    if not nonzero:
        return None
    norms = [float(np.linalg.norm(peers[k].astype(np.float64))) for k in nonzero]
    return nonzero[int(np.argsort(norms)[len(norms) // 2])]


def median_norm(peers: Sequence[npt.NDArray[Any]]) -> float:
    """The median norm of the non-zero ``peers``: the noise free rider's target, so its noise
    is as large as real work."""
    norms = [float(np.linalg.norm(p.astype(np.float64))) for p in peers if np.any(p)]
    return float(np.median(norms)) if norms else 0.0


def craft(
    role: str,
    trainer: Trainer,
    params: TaskParams,
    base: F64,
    idx: npt.NDArray[np.int64],
    epoch: int,
    client: int,
    peers: Sequence[npt.NDArray[Any]] = (),
    prev_step: npt.NDArray[Any] | None = None,
) -> F64:
    """A client's float delta for this epoch. ``peers``: the integer updates already sent
    this epoch (what the second-wave free riders read from the chain); ``prev_step``: the
    last global step (integers, public on the chain), None in the first epoch."""
    scale = float(2**params.shift)
    rng = np.random.default_rng([trainer.seed, epoch, client, 7])
    if role == "honest":
        return trainer.local_delta(base, idx, epoch, client, params=params)
    if role == "signflip":
        return -SIGNFLIP_K * trainer.local_delta(base, idx, epoch, client, params=params)
    if role == "gauss":
        own = trainer.local_delta(base, idx, epoch, client, params=params)
        rms = float(np.sqrt(np.mean(own**2)))
        return rng.normal(0.0, GAUSS_SCALE * rms, params.d)
    if role == "labelflip":
        return trainer.local_delta(base, idx, epoch, client, flip_labels=True, params=params)
    if role == "fr_replay":
        if prev_step is None:
            return np.zeros(params.d)
        return prev_step.astype(np.float64) / scale  # quantizes back to the very same integers
    if role == "fr_copy":
        k = pick_copy(peers)
        if k is None:
            return np.zeros(params.d)
        return peers[k].astype(np.float64) / scale  # quantizes back to the very same integers
    if role == "fr_noise":
        v = rng.normal(0.0, 1.0, params.d)
        return v * (median_norm(peers) / float(np.linalg.norm(v))) / scale
    raise ValueError(f"unknown role {role!r}")
