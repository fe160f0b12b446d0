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


async def test_a_flower_strategy_whose_aggregation_is_the_chains_close(tmp_path: Path) -> None:
    """``ChainStrategy`` driven as Flower's server loop drives it: round r is epoch r - 1, the
    parameters it returns are the chain's next base, the requester's reference goes in every
    epoch, and its evaluation is reported on the chain."""
    from flwr.common import parameters_to_ndarrays
    from flwr.server.client_manager import SimpleClientManager

    from client_sdk.flower_strategy import ChainStrategy

    rng = np.random.default_rng(8)
    truth = rng.normal(0, 0.5, D)
    keys = [Keypair.generate() for _ in range(5)]
    stakes = tuple(GenesisStake(k.public_key, bytes(20), 100) for k in keys)
    async with start_node(tmp_path / "node", produce_blocks=True, genesis_stakes=stakes) as h:
        requester = MPSClient(h.url, Keypair.generate())
        task_id = await run(requester.create_task, params(epochs=2), np.zeros(D), b"# flwr")
        x_root = rng.normal(0, 1, (40, D))
        root = LinearClient(x_root, x_root @ truth)
        trained: list[int] = []

        def reference_fn(p: list[np.ndarray]) -> list[np.ndarray]:
            trained.append(1)
            return root.fit(p, {})[0]

        def evaluate_fn(rnd: int, p: list[np.ndarray], config: dict[str, Any]) -> Any:
            loss = root.evaluate(p, {})[0]
            return loss, {"accuracy": 0.5 + 0.1 * rnd}

        strategy = await run(
            lambda: ChainStrategy(
                requester, task_id, evaluate_fn=evaluate_fn, reference_fn=reference_fn
            )
        )
        manager = SimpleClientManager()

        def server() -> list[dict[str, Any]]:
            """Flower's fit rounds, without its transport (the chain carries the updates)."""
            p = strategy.initialize_parameters(manager)
            out = []
            for rnd in (1, 2):
                assert strategy.configure_fit(rnd, p, manager) == []  # no Flower clients here
                p, metrics = strategy.aggregate_fit(rnd, [], [])
                strategy.evaluate(rnd, p)
                out.append({"metrics": metrics, "params": parameters_to_ndarrays(p)})
            return out

        srv = asyncio.ensure_future(run(server))
        for _ in range(200):  # the first reference is committed before the clients start
            if (await run(requester.task, task_id))["reference"] is not None:
                break
            await asyncio.sleep(0.05)
        clients = []
        for _ in keys:
            x = rng.normal(0, 1, (40, D))
            clients.append(LinearClient(x, x @ truth))  # instant: the chain waits for the
            # requester's reference of epoch 1 because it sent one in epoch 0
        pairs = zip(clients, keys, strict=True)
        await asyncio.gather(
            *(run(run_client, c, MPSClient(h.url, k), task_id, 2) for c, k in pairs)
        )
        rounds = await srv
        assert [r["metrics"]["updates"] for r in rounds] == [5, 5]
        assert [r["metrics"]["referenced"] for r in rounds] == [True, True] and len(trained) == 2
        for e, r in enumerate(rounds):  # the strategy's parameters are the chain's next base
            assert np.allclose(r["params"][0], await run(requester.base_model, task_id, e + 1))
            epoch = await run(requester.epoch, task_id, e)
            assert epoch["accuracyPpm"] == round((0.6 + 0.1 * e) * 1e6)  # reported
            assert epoch["reference"] is not None
