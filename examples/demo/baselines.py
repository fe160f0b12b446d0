"""The same federation run locally, for comparison with the chain's model.

Plain FedAvg of every update (the same clients and attacks, nobody excluded) shows what the
chain's flags and slashing protect against; FedAvg of the honest clients alone shows the best
the chain could do. Both quantize like the chain, so the three curves differ only in who counts.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from stf.fl.task import TaskParams, quantize

from .attacks import SECOND_WAVE, craft
from .data import F64, Data, Trainer
from .members import Member


class Baselines:
    """The two local models and their held-out accuracy after each epoch."""

    def __init__(self, trainer: Trainer, data: Data, w0: F64) -> None:
        self.trainer = trainer
        self.data = data
        self.w_fa = w0.copy()  # plain FedAvg of every update
        self.w_ho = w0.copy()  # FedAvg of the honest clients alone
        self.acc_fedavg: list[float] = []
        self.acc_honest: list[float] = []
        self.prev_step: npt.NDArray[np.int8] | None = None  # plain FedAvg's last step, int8

    def step(self, e: int, members: list[Member], p: TaskParams) -> tuple[float, float]:
        """Epoch ``e`` of both (the second-wave free riders see the others' updates, as on the
        chain); their accuracies after it."""
        parts, tr = self.data.parts, self.trainer
        scale = float(2**p.shift)
        ups: list[npt.NDArray[np.int64]] = []
        for m in sorted(members, key=lambda m: m.role in SECOND_WAVE):
            delta = craft(m.role, tr, p, self.w_fa, parts[m.index], e, m.index, ups, self.prev_step)
            ups.append(quantize(delta, p.shift).astype(np.int64))
        mean = np.mean(ups, axis=0)
        self.w_fa = self.w_fa + mean / scale
        self.prev_step = np.clip(np.rint(mean), -127, 127).astype(np.int8)
        hon = [
            quantize(tr.local_delta(self.w_ho, parts[m.index], e, m.index, params=p), p.shift)
            for m in members
            if m.honest
        ]
        self.w_ho = self.w_ho + np.mean(np.stack(hon).astype(np.int64), axis=0) / scale
        self.acc_fedavg.append(tr.accuracy(self.w_fa, p))
        self.acc_honest.append(tr.accuracy(self.w_ho, p))
        return self.acc_fedavg[-1], self.acc_honest[-1]
