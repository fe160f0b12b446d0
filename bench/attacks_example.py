"""Example ``--attack-file``: a free rider that resends the mean of the last epoch, flipped.

Run: ``python bench/detection.py --quick --attack-file bench/attacks_example.py``.
"""

import numpy as np


def attack(view):  # view: bench.attacks.View; returns the update in quantized units
    """Negated mean of the last epoch's public updates, at its median norm; honest at first."""
    if not view.history:
        return view.train()  # nothing public yet: train honestly once
    ups = np.stack([u.astype(np.float64) for u in view.history[-1].values()])
    mean = ups.mean(axis=0)
    norm = np.median(np.linalg.norm(ups, axis=1))
    return -mean * norm / max(np.linalg.norm(mean), 1e-12) + view.rng.normal(0, 1, view.d)
