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

ROLES = ("honest",) * 6 + (
    "signflip", "gauss", "labelflip", "fr_replay", "fr_copy", "fr_noise", "stealth",
)  # fmt: skip
N_CLIENTS = len(ROLES)
ATTACKS = {
    "signflip": "sends -4 x its honest update",
    "gauss": "sends Gaussian noise, 10 x the honest RMS per coordinate",
    "labelflip": "trains on flipped labels (9 - y)",
    "fr_replay": "free rider: resends the last global step, read from the chain (zeros at first)",
    "fr_copy": "free rider: copies another client's commitment (all the chain shows during the"
    " commit phase), then tries to open it with that client's revealed update and salt",
    "fr_noise": "free rider: sends noise scaled to the last global step's norm, read from the"
    " chain (zeros at first)",
    "stealth": "honest in epoch 0, then its honest update negated at its honest norm: a sign"
    " flip of ordinary size whose own past correlates, which the statistics rarely flag",
}
#: what bench/detection.py measures for each attack with these rules
EXPECTED = {
    "signflip": "KRUM_OUTLIER (or UNCORRELATED) strikes, barred after 2",
    "gauss": "KRUM_OUTLIER or UNCORRELATED strikes, barred after 2",
    "labelflip": "KRUM_OUTLIER strikes; the slowest on non-IID data (3-8 epochs)",
    "fr_replay": "ZERO strike in epoch 0, then REPLAY_GLOBAL: provable, slashable at once",
    "fr_copy": "its stolen reveal fails (COMMITMENT_MISMATCH): REVEAL_MISSING strikes, barred"
    " after 2",
    "fr_noise": "ZERO strike in epoch 0, then KRUM_OUTLIER or UNCORRELATED: barred after 2",
    "stealth": "rarely flagged (bench/detection.py, digits alpha 0.1, 20 %: recall 0.12); the"
    " requester's reference gives it trust 0, so it no longer moves the model (+0.3 points"
    " against -7.9 without a reference), but unflagged it is paid like an honest client (0.85):"
    " the open gap of docs/protocol.md",
}
#: the free rider that needs the others' commitments of the epoch: it commits once those are
#: sealed (in a federation without commit-reveal, the plain FedAvg baseline, it copies updates)
SECOND_WAVE = ("fr_copy",)
#: the noise free rider's norm, in multiples of the last global step's: the step is a mean of
#: non-IID updates, shorter than each of them
NOISE_GAIN = 3.0

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
    this epoch (what a copier could read in a federation without commit-reveal: the plain
    FedAvg baseline); ``prev_step``: the last global step (integers, public on the chain), None
    in the first epoch."""
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
    if role == "stealth":  # honest while it has no past of its own to correlate with
        honest = trainer.local_delta(base, idx, epoch, client, params=params)
        return honest if epoch == 0 else -honest
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
        if prev_step is None:
            return np.zeros(params.d)
        v = rng.normal(0.0, 1.0, params.d)
        target = NOISE_GAIN * float(np.linalg.norm(prev_step.astype(np.float64)))
        return v * (target / float(np.linalg.norm(v))) / scale
    raise ValueError(f"unknown role {role!r}")
