"""A Flower client, unchanged, takes part in a task (issue 14: Flower users bring their app).

``LinearClient`` below is a ``flwr.client.NumPyClient`` as its users write it, with nothing of
the MPS chain in it; ``client_sdk.runner.run_client`` runs it through the task's epochs (join,
base model, ``fit``, commit and reveal the delta, wait for the close)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rpc_fixtures import start_node
from test_sdk_client import D, params, run

from client_sdk import MPSClient
from client_sdk.keys import Keypair
from client_sdk.runner import run_client
from stf.genesis import GenesisStake

flwr = pytest.importorskip("flwr")  # setup.sh installs it (the `flower` extra)


class LinearClient(flwr.client.NumPyClient):  # type: ignore[misc]
    """Least squares on the client's own data, a few gradient steps per round."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
        return [np.zeros(self.x.shape[1])]

    def fit(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
        w = parameters[0].copy()
        for _ in range(5):
            w -= 0.1 * self.x.T @ (self.x @ w - self.y) / len(self.y)
        return [w], len(self.y), {}

    def evaluate(
        self, parameters: list[np.ndarray], config: dict[str, Any]
    ) -> tuple[float, int, dict[str, Any]]:
        residual = self.x @ parameters[0] - self.y
        return float(residual @ residual / len(self.y)), len(self.y), {}


async def test_an_unchanged_flower_numpy_client_trains_through_run_client(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    truth = rng.normal(0, 0.5, D)
    keys = [Keypair.generate() for _ in range(5)]
    stakes = tuple(GenesisStake(k.public_key, bytes(20), 100) for k in keys)
    async with start_node(tmp_path / "node", produce_blocks=True, genesis_stakes=stakes) as h:
        requester = MPSClient(h.url, Keypair.generate())
        task_id = await run(requester.create_task, params(epochs=2), np.zeros(D), b"# flwr")
        clients = []
        for _ in keys:
            x = rng.normal(0, 1, (40, D))
            clients.append(LinearClient(x, x @ truth))
        closed: list[tuple[int, int]] = []

        def on_epoch(epoch: int, summary: dict[str, Any]) -> None:
            closed.append((epoch, len(summary["records"])))

        await asyncio.gather(
            *(
                run(run_client, c, MPSClient(h.url, k), task_id, 2, on_epoch)
                for c, k in zip(clients, keys, strict=True)
            )
        )
        assert sorted(closed) == [(0, 5)] * 5 + [(1, 5)] * 5  # every client saw both closes
        base = await run(requester.base_model, task_id)
        start, end = np.linalg.norm(truth), np.linalg.norm(base - truth)
        assert end < 0.8 * start, (start, end)  # the chain's aggregate learned
