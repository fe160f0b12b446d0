"""``MPSClient`` end to end: a node with auto-sealed blocks, a real anvil L1 whose services the
test steps, clients and a requester driving everything through the SDK.

The SDK is synchronous (urllib, web3): its calls run in threads (``asyncio.to_thread``) so that
the node, served on this event loop, keeps answering.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from l1_node import CHALLENGE_BLOCKS, FEE_PER_EPOCH, FIRST_CLIENT, L1Net, deploy_for, l1_settings
from rpc_fixtures import start_node

from client_sdk import L1Config, MPSClient, NotOnL1Yet, ProofError, SDKError, put_record
from client_sdk.errors import DuplicateUpdate, NotFound, NotJoined, NotStaked, WrongEpoch
from client_sdk.keys import Keypair
from contracts.anvil import Anvil
from contracts.reverts import ContractRevert
from rpc.server import DISPATCHER_KEY
from stf.fl.rules import EpochRules
from stf.fl.task import TaskParams
from stf.genesis import GenesisStake

T = TypeVar("T")
D, SHIFT = 120, 10
REQUESTER = 15


def run(fn: Callable[..., T], *args: Any) -> Any:
    return asyncio.to_thread(fn, *args)


def params(window: int = 40, epochs: int = 2) -> TaskParams:
    """init_model and script are placeholders: create_task puts the uploaded blobs' ids.

    The window (2 s of 50 ms blocks) must outlast six concurrent submissions on a loaded 2-core
    CI machine: each epoch closes as soon as every client that can still submit is in.
    """
    return TaskParams(
        "sdk-flow", (("w", (D,)),), "int8", SHIFT, bytes(32), bytes(32), epochs, 990_000,
        5, 6, window, bytes(32), EpochRules(f=1),
    )  # fmt: skip


@asynccontextmanager
async def sdk_net(tmp_path: Path) -> AsyncIterator[L1Net]:
    """anvil, the contracts, a node sealing a block every 50 ms; its L1 services are stepped."""
    with Anvil(accounts=20) as anvil:
        w3 = anvil.w3()
        accounts = list(anvil.accounts)
        datadir = tmp_path / "node"
        addresses = deploy_for(w3, accounts, datadir)
        settings = l1_settings(anvil, addresses, datadir)
        async with start_node(datadir, **settings) as h:
            h.node.sequencer.start()
            yield L1Net(anvil, w3, accounts, addresses, h, datadir)


def l1_config(net: L1Net, account: int) -> L1Config:
    return L1Config(net.anvil.url, net.accounts[account].key.hex(), net.addresses)


def follow(net: L1Net) -> None:
    """The L1 events so far reach the sequencer (sealed by its own loop)."""
    net.anvil.mine(2)
    net.h.node.l1.follower.poll_once()


def tamper(net: L1Net, method: str, change: Callable[[Any], Any], latest: bool = False) -> Any:
    """Make the node answer ``method`` with ``change(honest answer)`` (with ``latest``: at the
    head, whatever block was asked for); returns the undo."""
    d = net.h.client.server.app[DISPATCHER_KEY]
    honest = d.methods[method]

    async def lying(*args: Any) -> Any:
        if not latest:
            return change(await honest.handler(*args))
        resp = await honest.handler(*args[:-1], "latest")
        if isinstance(args[-1], int):
            resp["height"] = args[-1]  # and says it is the state asked for
        return change(resp)

    d.methods[method] = dataclasses.replace(honest, handler=lying)
    return lambda: d.methods.__setitem__(method, honest)


@pytest.mark.slow
async def test_client_and_requester_flow_with_a_lying_node(tmp_path: Path) -> None:
    async with sdk_net(tmp_path) as net:
        h = net.h
        requester = MPSClient(h.url, Keypair.generate(), l1_config(net, REQUESTER))
        clients = [
            MPSClient(h.url, Keypair.generate(), l1_config(net, FIRST_CLIENT + i)) for i in range(6)
        ]
        honest, rider = clients[0], clients[5]

        # stake on the L1; the node's follower turns the events into stakes on the rollup
        await asyncio.gather(*(run(c.stake) for c in clients))
        assert await run(honest.l1.status, honest.key.public_key) == "staked"  # type: ignore[union-attr]
        follow(net)
        for c in clients:
            assert (await run(c.wait_for_stake, 10))["status"] == 0

        # the requester uploads, creates and funds the task (fee + deposit paid on L1)
        deposit = 10**18
        before = await run(requester.l1.balance)
        task_id = await run(requester.create_task, params(), np.zeros(D), b"# sgd\n", deposit)
        assert before - await run(requester.l1.balance) >= deposit
        assert (await run(requester.l1.task, task_id))["deposit"] == deposit
        listed = await run(honest.tasks)
        assert [t["id"] for t in listed] == [task_id]
        follow(net)  # the TaskFunded event reaches the rollup

        await asyncio.gather(*(run(c.join, task_id) for c in clients))
        rng = np.random.default_rng(5)
        for epoch in range(2):
            base = await run(honest.base_model, task_id)
            assert base.shape == (D,)
            direction = rng.normal(0, 0.03, D)
            subs = [
                run(c.submit_update, task_id, epoch, direction + rng.normal(0, 0.01, D))
                for c in clients[:5]
            ]
            if epoch == 0:
                subs.append(run(rider.submit_update, task_id, 0, np.zeros(D)))
            else:  # the free rider is slashable: the node refuses its update, and the epoch
                # closes as soon as the five others are in (it does not wait for the rider)
                with pytest.raises(NotStaked):
                    await run(rider.submit_update, task_id, 1, np.zeros(D))
            await asyncio.gather(*subs)
            summary = await run(honest.wait_for_epoch, task_id, epoch, 20.0)
            assert summary["epoch"] == epoch
        assert (await run(honest.task, task_id))["status"] == "finished"

        # before any batch: nothing to check against
        with pytest.raises(NotOnL1Yet):
            await run(honest.slashing_state, task_id)
        assert net.post_until_idle()[:2] == ["posted", "confirmed"]
        batch = await run(honest.l1.committed_batch)
        assert batch is not None

        # the slashing state, every proof checked against the root the L1 holds
        good = await run(honest.slashing_state, task_id)
        assert good.verified_against == f"l1 batch {batch[0]}"
        assert (good.height, good.state_root) == (batch[2], batch[1])
        assert not good.slashable and good.strikes == 0
        assert [(r["epoch"], r["flags"]) for r in good.records] == [(0, 0), (1, 0)]
        bad = await run(rider.slashing_state, task_id)
        assert bad.slashable and "ZERO" in bad.reason_names and bad.slash_epoch == 0
        assert [r["epoch"] for r in bad.records] == [0]
        assert (await run(honest.slashing_state, task_id, None, "node")).verified_against == "node"

        # a lying node: a tampered record, a left-out record, the state at another height
        def flip_a_byte(resp: dict[str, Any]) -> dict[str, Any]:
            rec = resp["records"][0]
            rec["value"] = bytes([rec["value"][0] ^ 1]) + rec["value"][1:]
            return resp

        def drop_records(resp: dict[str, Any]) -> dict[str, Any]:
            resp["records"] = resp["records"][1:]
            return resp

        for lie, says in ((flip_a_byte, "does not verify"), (drop_records, "left out")):
            undo = tamper(net, "mps_getSlashingState", lie)
            with pytest.raises(ProofError, match=says):
                await run(honest.slashing_state, task_id)
            undo()
        note = put_record(requester.key, requester.chain_id, 3, "after", b"the batch")
        await run(requester.wait_for_receipt, await run(requester.send, note))  # state moves on
        undo = tamper(net, "mps_getSlashingState", lambda r: r, latest=True)
        with pytest.raises(ProofError, match="different state root"):  # not the L1's root
            await run(honest.slashing_state, task_id)
        # checked against the node's own root, the same answer passes: only the L1 catches it
        assert (await run(honest.slashing_state, task_id, None, "node")).verified_against == "node"
        undo()

        # finality, then the aggregator slashes the free rider and settles the task
        with pytest.raises(NotOnL1Yet):
            await run(honest.claim_rewards, task_id)
        net.anvil.mine(CHALLENGE_BLOCKS)
        h.node.l1.poster.step()
        assert await run(honest.l1.finalized_batch) is not None
        assert h.node.l1.aggregator.step() == 2
        assert await run(rider.l1.status, rider.key.public_key) == "slashed"  # type: ignore[union-attr]

        fee = min(2 * FEE_PER_EPOCH, deposit)
        pool = fee - fee * 1000 // 10_000
        paid = await run(honest.claim_rewards, task_id)
        assert paid == pool * 2 // 10  # 2 of the 10 clean updates
        with pytest.raises(ContractRevert) as exc:
            await run(honest.claim_rewards, task_id)
        assert exc.value.error == "AlreadyClaimed"
        with pytest.raises(SDKError, match="flagged"):
            await run(rider.claim_rewards, task_id)
        refund = await run(requester.l1.withdraw_refund, task_id)
        assert refund == deposit - fee

        # leaving: unbond, too early to withdraw, then withdraw
        await run(honest.unregister)
        assert await run(honest.l1.status, honest.key.public_key) == "unbonding"  # type: ignore[union-attr]
        with pytest.raises(ContractRevert) as exc:
            await run(honest.withdraw)
        assert exc.value.error == "StillUnbonding"
        net.anvil.mine(5)
        await run(honest.withdraw)
        assert await run(honest.l1.status, honest.key.public_key) == "withdrawn"  # type: ignore[union-attr]


async def test_typed_errors_for_node_rejections(tmp_path: Path) -> None:
    """No L1: two keys staked in genesis, one not staked."""
    staked = [Keypair.generate() for _ in range(5)]
    stranger = Keypair.generate()
    stakes = tuple(GenesisStake(k.public_key, bytes(20), 100) for k in staked)
    async with start_node(tmp_path / "node", produce_blocks=True, genesis_stakes=stakes) as h:
        requester = MPSClient(h.url, Keypair.generate())
        task_id = await run(requester.create_task, params(window=50), np.zeros(D), b"x")
        a, b = (MPSClient(h.url, k) for k in staked[:2])
        with pytest.raises(NotStaked) as exc:
            await run(MPSClient(h.url, stranger).join, task_id)
        assert exc.value.data["status"] == 0 and "NOT_STAKED" in str(exc.value)
        with pytest.raises(NotJoined):
            await run(a.submit_update, task_id, 0, np.zeros(D))
        await run(a.join, task_id)
        with pytest.raises(WrongEpoch):
            await run(a.submit_update, task_id, 3, np.ones(D) * 0.01)
        await run(a.submit_update, task_id, 0, np.ones(D) * 0.01)
        with pytest.raises(DuplicateUpdate):
            await run(a.submit_update, task_id, 0, np.ones(D) * 0.02)
        with pytest.raises(NotFound):
            await run(b.task, bytes(32))
        with pytest.raises(ValueError, match="values"):
            await run(a.submit_update, task_id, 0, np.zeros(D + 1))
        # the nonce kept by the client survives a transaction sent with its key elsewhere
        await run(b.join, task_id)
        assert b.key is not None
        elsewhere = put_record(b.key, b.chain_id, await run(b.nonce, b.key.public_key), "n", b"1")
        await run(b.wait_for_receipt, await run(b.send, elsewhere))
        await run(b.submit_update, task_id, 0, np.ones(D) * 0.01)  # stale local nonce: re-read
        state = await run(a.slashing_state, task_id, None, "node")
        assert state.records == [] and not state.slashable
        with pytest.raises(SDKError):  # no L1 configured
            await run(a.slashing_state, task_id)
        assert len(await run(a.tasks, False)) == 1


def test_sdk_imports_without_torch_or_web3() -> None:
    import subprocess
    import sys

    code = (
        "import sys, client_sdk, client_sdk.train, client_sdk.l1;"
        "assert 'torch' not in sys.modules and 'web3' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_torch_clients_through_run_client_with_chunked_arrays(tmp_path: Path) -> None:
    """Four Flower-style clients in threads and one module submitted directly; the chain's
    transactions are small, so the model and every update travel as chunks."""
    torch = pytest.importorskip("torch")
    from client_sdk.runner import run_client
    from client_sdk.train import (
        LayoutError,
        TorchClient,
        flatten,
        layout_of,
        train_update,
        unflatten_into,
    )

    torch.manual_seed(0)

    def model() -> Any:
        return torch.nn.Sequential(
            torch.nn.Linear(20, 150), torch.nn.ReLU(), torch.nn.Linear(150, 3)
        )

    init = model()
    layout = layout_of(init)
    d = sum(int(np.prod(s)) for _, s in layout)
    assert d == 3603  # int8 updates of 3,603 bytes, an int32 model of 14,412
    p = TaskParams(
        "torch", layout, "int8", 12, bytes(32), bytes(32), 1, 990_000, 5, 5, 20, bytes(32),
        EpochRules(f=1),
    )  # fmt: skip
    keys = [Keypair.generate() for _ in range(5)]
    stakes = tuple(GenesisStake(k.public_key, bytes(20), 100) for k in keys)
    w = torch.randn(20, 3)

    def loader(seed: int) -> list[tuple[Any, Any]]:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(64, 20, generator=g)
        return [(x[i : i + 16], (x[i : i + 16] @ w).argmax(dim=1)) for i in range(0, 64, 16)]

    async with start_node(
        tmp_path / "node", produce_blocks=True, genesis_stakes=stakes,
        max_tx_size=3000, max_blob_size=2048,
    ) as h:  # fmt: skip
        requester = MPSClient(h.url, Keypair.generate())
        task_id = await run(requester.create_task, p, flatten(init), b"# torch\n")
        mps = [MPSClient(h.url, k) for k in keys]
        base = await run(mps[0].base_model, task_id)
        assert np.abs(base - flatten(init)).max() <= 2.0**-13  # int32 at shift 12
        seen: list[int] = []
        runners = [
            run(
                run_client,
                TorchClient(model(), loader(i), p, test_loader=loader(99)),
                mps[i],
                task_id,
                1,
                lambda epoch, summary: seen.append(len(summary["records"])),
            )
            for i in range(4)
        ]
        fifth = model()
        await run(mps[4].join, task_id)
        await run(mps[4].load_base_model, task_id, fifth)
        assert np.array_equal(flatten(fifth), flatten(fifth, p))
        delta = train_update(fifth, loader(4), p, base)
        assert delta.shape == (d,) and np.abs(delta).max() > 0
        await run(mps[4].submit_update, task_id, 0, fifth)  # a module: its delta to the base
        await asyncio.gather(*runners)
        assert seen == [5, 5, 5, 5]
        task = await run(mps[0].task, task_id)
        assert task["status"] == "finished"
        after = await run(mps[0].base_model, task_id)
        assert not np.array_equal(after, base)
        # the model and the updates went as chunk manifests, not as one blob each
        update = (await run(mps[0].epoch, task_id, 0))["records"][0]["update"]
        assert len(await run(mps[0].blob, update)) != d
        assert len(await run(mps[0].blob, task["initModel"])) != 4 * d
        check = model()
        unflatten_into(check, after, p)
        assert np.allclose(flatten(check, p), after, atol=1e-6)
        _, n, metrics = TorchClient(check, [], p, loader(99)).evaluate(
            [t.detach().numpy() for t in check.state_dict().values()], {}
        )
        assert n == 64 and 0 <= metrics["accuracy"] <= 1

        with pytest.raises(LayoutError, match="shape"):
            flatten(
                torch.nn.Sequential(
                    torch.nn.Linear(20, 10), torch.nn.ReLU(), torch.nn.Linear(10, 3)
                ),
                p,
            )
        with pytest.raises(LayoutError, match="not in the task layout"):
            flatten(torch.nn.Sequential(*model(), torch.nn.Linear(3, 3)), p)


async def test_async_client_joins_submits_and_waits(tmp_path: Path) -> None:
    from client_sdk import AsyncMPSClient

    keys = [Keypair.generate() for _ in range(5)]
    stakes = tuple(GenesisStake(k.public_key, bytes(20), 100) for k in keys)
    async with start_node(tmp_path / "node", produce_blocks=True, genesis_stakes=stakes) as h:
        requester = MPSClient(h.url, Keypair.generate())
        init = np.linspace(-1, 1, D)
        task_id = await run(requester.create_task, params(epochs=1), init, b"s")
        clients = [AsyncMPSClient(h.url, k) for k in keys]
        try:
            assert [t["id"] for t in await clients[0].tasks()] == [task_id]
            assert np.allclose(await clients[0].base_model(task_id), init, atol=2.0**-SHIFT)
            await asyncio.gather(*(c.join(task_id) for c in clients))
            rng = np.random.default_rng(2)
            await asyncio.gather(
                *(c.submit_update(task_id, 0, rng.normal(0, 0.03, D)) for c in clients[:4])
            )
            with pytest.raises(DuplicateUpdate):
                await clients[0].submit_update(task_id, 0, np.zeros(D))
            await clients[4].submit_update(task_id, 0, rng.normal(0, 0.03, D))  # closes it
            summary = await clients[0].wait_for_epoch(task_id, 0, 10.0)
            assert len(summary["records"]) == 5
            after = await clients[1].base_model(task_id)
            assert not np.array_equal(after, await clients[1].base_model(task_id, 0))
        finally:
            for c in clients:
                await c.close()
