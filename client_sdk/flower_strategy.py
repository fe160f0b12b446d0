"""``ChainStrategy``: a Flower ``Strategy`` whose aggregation is the MPS chain's epoch close.

A requester who runs its federation with Flower keeps its server app; the strategy replaces the
aggregation: round ``r`` is the task's epoch ``r - 1``. ``configure_fit`` hands the chain's base
model of that epoch to whatever Flower clients the app still drives (the chain's clients fetch it
themselves, e.g. with :func:`client_sdk.runner.run_client`) and, with ``reference_fn``, sends the
requester's reference update for it (docs/protocol.md "The requester's reference"; for the later
epochs ``aggregate_fit`` sends it as soon as the previous epoch closed, the earliest moment);
``aggregate_fit`` ignores the results Flower gathered (the chain takes updates only from staked
clients, through commit-reveal) and returns the model the chain's close made, with that close's
figures as metrics; ``evaluate`` runs ``evaluate_fn`` on it and reports its ``accuracy`` on the
chain, so a task with a target accuracy completes by it. The chain, not this process, decides
every flag, verdict and reward.

Needs ``flwr`` (the ``flower`` extra); imported only by who uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt
from flwr.common import (
    EvaluateIns,
    EvaluateRes,
    FitIns,
    FitRes,
    Parameters,
    Scalar,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.strategy import Strategy

from .client import MPSClient
from .train import join_parameters, split_parameters

__all__ = ["ChainStrategy"]

NDArrays = list[npt.NDArray[Any]]
#: ``evaluate_fn(server_round, parameters, config) -> (loss, metrics)`` as Flower's own
EvaluateFn = Callable[[int, NDArrays, dict[str, Scalar]], tuple[float, dict[str, Scalar]] | None]
#: ``reference_fn(parameters) -> trained parameters``: the requester's own training of the base
ReferenceFn = Callable[[NDArrays], NDArrays]


class ChainStrategy(Strategy):
    """Flower's ``Strategy`` over a task of the MPS chain, driven by its requester's client."""

    def __init__(
        self,
        requester: MPSClient,
        task_id: bytes,
        *,
        evaluate_fn: EvaluateFn | None = None,
        reference_fn: ReferenceFn | None = None,
        report: bool = True,
        timeout: float = 600.0,
    ) -> None:
        super().__init__()
        self.mps = requester
        self.task_id = task_id
        self.params = requester.task_params(task_id)
        self.evaluate_fn = evaluate_fn
        self.reference_fn = reference_fn
        self.report = report
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="mps-reference")
        self._reference: Future[bytes] | None = None
        self._sent = -1  # the last epoch whose reference was sent

    def __repr__(self) -> str:
        return f"ChainStrategy(task=0x{self.task_id.hex()[:16]}…)"

    def _model(self, epoch: int | None) -> Parameters:
        base = self.mps.base_model(self.task_id, epoch)
        return ndarrays_to_parameters(split_parameters(base, self.params))

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        """The task's initial model (epoch 0's base)."""
        return self._model(0)

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        """Epoch ``server_round - 1``'s base model for every available Flower client, after the
        requester's reference for it is committed (unless ``aggregate_fit`` sent it already)."""
        epoch = server_round - 1
        base = self.mps.base_model(self.task_id, epoch)
        if self._sent != epoch:
            self._send_reference(epoch, base)
        ins = FitIns(
            ndarrays_to_parameters(split_parameters(base, self.params)),
            {"task": "0x" + self.task_id.hex(), "epoch": epoch},
        )
        return [(c, ins) for c in client_manager.all().values()]

    def _send_reference(self, epoch: int, base: npt.NDArray[np.float64]) -> None:
        """Train and commit the reference of ``epoch`` (its reveal follows in the background,
        once the reveal phase opens). The chain waits for it in the commit phase after an epoch
        that had one; the first must be committed before the last client commits."""
        self._sent = epoch
        if self.reference_fn is None:
            return
        trained = self.reference_fn(split_parameters(base, self.params))
        delta = join_parameters(list(trained), self.params) - base
        self.mps.commit_reference(self.task_id, epoch, delta)  # included when this returns
        self._reference = self._pool.submit(
            self.mps.submit_reference, self.task_id, epoch, delta, self.timeout
        )

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        """The chain's aggregate: waits for epoch ``server_round - 1`` to close and returns the
        next base model it made (Flower's ``results`` are not used: the chain takes updates
        only from its staked clients), with that close's figures."""
        epoch = server_round - 1
        summary = self.mps.wait_for_epoch(self.task_id, epoch, self.timeout)
        if self._reference is not None:
            self._reference.result()
            self._reference = None
        task = self.mps.task(self.task_id)
        if task["status"] == "open" and int(task["epoch"]) == epoch + 1:
            self._send_reference(epoch + 1, self.mps.base_model(self.task_id, epoch + 1))
        records = summary["records"]
        metrics: dict[str, Scalar] = {
            "updates": len(records),
            "flagged": sum(1 for r in records if r["flags"]),
            "used": sum(1 for r in records if r["selected"]),
            "referenced": summary["reference"] is not None,
        }
        return self._model(epoch + 1), metrics

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, EvaluateIns]]:
        """None: the requester evaluates on its own held-out data (``evaluate``)."""
        return []

    def aggregate_evaluate(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, EvaluateRes]],
        failures: list[tuple[ClientProxy, EvaluateRes] | BaseException],
    ) -> tuple[float | None, dict[str, Scalar]]:
        return None, {}

    def evaluate(
        self, server_round: int, parameters: Parameters
    ) -> tuple[float, dict[str, Scalar]] | None:
        """``evaluate_fn`` on the model; its ``accuracy`` (a fraction) is reported on the chain
        for epoch ``server_round - 1`` (round 0, the initial model, is not an epoch)."""
        if self.evaluate_fn is None:
            return None
        out = self.evaluate_fn(server_round, parameters_to_ndarrays(parameters), {})
        if out is None:
            return None
        loss, metrics = out
        acc = metrics.get("accuracy")
        if self.report and server_round >= 1 and isinstance(acc, int | float):
            self.mps.report_evaluation(self.task_id, server_round - 1, float(np.clip(acc, 0, 1)))
        return loss, metrics
