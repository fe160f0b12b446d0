"""``MPSClient`` end to end: a node with auto-sealed blocks, a real anvil L1 whose services the
test steps, clients and a requester driving everything through the SDK.

The SDK is synchronous (urllib, web3): its calls run in threads (``asyncio.to_thread``) so that
the node, served on this event loop, keeps answering.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from l1_node import (
    CHALLENGE_BLOCKS,
    FEE_PER_EPOCH,
    FIRST_CLIENT,
    L1Net,
    deploy_for,
    following,
    l1_settings,
)
from rpc_fixtures import hx, start_node, unhex

from client_sdk import L1Config, MPSClient, NotOnL1Yet, ProofError, SDKError, fl, put_record
from client_sdk.answers import as_bytes
from client_sdk.errors import (
    CertainOffence,
    CommitmentMismatch,
    DuplicateUpdate,
    NotAuthorized,
    NotFound,
    NotJoined,
    NotStaked,
    WrongEpoch,
    WrongPhase,
)
from client_sdk.keys import Keypair
from contracts.anvil import Anvil
from contracts.reverts import ContractRevert
from rpc.server import DISPATCHER_KEY
from stf import state_keys
from stf.fl.contribution import CREDIT_SCALE
from stf.fl.rules import EpochRules
from stf.fl.settlement import decode_funding
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


@dataclasses.dataclass(frozen=True)
class Flow:
    """The network, the requester and the six clients of the lying-node scenario."""

    net: L1Net
    requester: MPSClient
    clients: list[MPSClient]
    deposit: int = 10**18

    @property
    def honest(self) -> MPSClient:
        return self.clients[0]

    @property
    def rider(self) -> MPSClient:
        """The free rider: zeros in epoch 0 (a strike), then the previous global step in epoch 1,
        a public vector: provable, and slashed for it."""
        return self.clients[5]


def make_flow(net: L1Net) -> Flow:
    requester = MPSClient(net.h.url, Keypair.generate(), l1_config(net, REQUESTER))
    clients = [
        MPSClient(net.h.url, Keypair.generate(), l1_config(net, FIRST_CLIENT + i)) for i in range(6)
    ]
    return Flow(net, requester, clients)


async def l1_status(client: MPSClient) -> str:
    status: str = await run(client.l1.status, client.key.public_key)  # type: ignore[union-attr]
    return status


async def stake_all(flow: Flow) -> None:
    """Stake on the L1; the node's follower turns the events into stakes on the rollup."""
    await asyncio.gather(*(run(c.stake) for c in flow.clients))
    assert await l1_status(flow.honest) == "staked"
    follow(flow.net)
    for c in flow.clients:
        assert (await run(c.wait_for_stake, 10))["status"] == 0


async def create_funded_task(flow: Flow) -> bytes:
    """The requester uploads, funds the task id on the L1 (fee + deposit) and, once the rollup
    has the funding (the follower runs meanwhile), creates the task naming its account."""
    requester, deposit = flow.requester, flow.deposit
    before = await run(requester.l1.balance)
    async with following(flow.net):
        task_id: bytes = await run(
            requester.create_task, params(), np.zeros(D), b"# sgd\n", deposit
        )
    assert before - await run(requester.l1.balance) >= deposit
    assert (await run(requester.l1.funding, task_id))["deposit"] == deposit
    listed = await run(flow.honest.tasks)
    assert [t["id"] for t in listed] == [task_id]
    funder = bytes.fromhex(requester.l1.account.address[2:])  # type: ignore[union-attr]
    assert as_bytes((await run(flow.honest.task, task_id))["funder"]) == funder
    return task_id


async def train_two_epochs(flow: Flow, task_id: bytes) -> None:
    await asyncio.gather(*(run(c.join, task_id) for c in flow.clients))
    rng = np.random.default_rng(5)
    for epoch in range(2):
        await train_epoch(flow, task_id, epoch, rng)
    assert (await run(flow.honest.task, task_id))["status"] == "finished"


async def train_epoch(flow: Flow, task_id: bytes, epoch: int, rng: np.random.Generator) -> None:
    base = await run(flow.honest.base_model, task_id)
    assert base.shape == (D,)
    direction = rng.normal(0, 0.03, D)
    subs = [
        run(c.submit_update, task_id, epoch, direction + rng.normal(0, 0.01, D))
        for c in flow.clients[:5]
    ]
    ride = await free_ride(flow, task_id)
    subs.append(run(flow.rider.submit_update, task_id, epoch, ride, 600.0, True))  # forced
    await asyncio.gather(*subs)
    summary = await run(flow.honest.wait_for_epoch, task_id, epoch, 20.0)
    assert summary["epoch"] == epoch


async def free_ride(flow: Flow, task_id: bytes) -> np.ndarray:
    """Zeros, or once there is one the previous global step, read back from the chain (the
    SDK quantizes it back to the very same integers)."""
    task = await run(flow.rider.task, task_id)
    if task["previousStep"] is None:
        return np.zeros(D)
    step = np.frombuffer(await run(flow.rider.blob, task["previousStep"]), np.int8)
    return step.astype(np.float64) / 2 ** int(task["shift"])


async def post_first_batch(flow: Flow, task_id: bytes) -> tuple[int, bytes, int]:
    """Before any batch there is nothing to check against; returns the committed batch."""
    with pytest.raises(NotOnL1Yet):
        await run(flow.honest.slashing_state, task_id)
    assert flow.net.post_until_idle()[:2] == ["posted", "confirmed"]
    batch: tuple[int, bytes, int] | None = await run(flow.honest.l1.committed_batch)
    assert batch is not None
    return batch


async def check_slashing_states(flow: Flow, task_id: bytes, batch: tuple[int, bytes, int]) -> None:
    """Every proof is checked against the root the L1 holds."""
    honest = flow.honest
    good = await run(honest.slashing_state, task_id)
    assert good.verified_against == f"l1 batch {batch[0]}"
    assert (good.height, good.state_root) == (batch[2], batch[1])
    assert not good.slashable and good.strikes == 0
    assert [(r["epoch"], r["flags"]) for r in good.records] == [(0, 0), (1, 0)]
    bad = await run(flow.rider.slashing_state, task_id)
    assert bad.slashable and bad.reason_names == ["REPLAY_GLOBAL"] and bad.slash_epoch == 1
    assert bad.strikes == 1 and not bad.barred  # the zeros of epoch 0: a strike, no more
    assert [r["epoch"] for r in bad.records] == [0, 1]
    assert "ZERO" in bad.records[0]["flagNames"]
    assert "REPLAY_GLOBAL" in bad.records[1]["flagNames"]
    assert (await run(honest.slashing_state, task_id, None, "node")).verified_against == "node"


def flip_a_byte(resp: dict[str, Any]) -> dict[str, Any]:
    rec = resp["records"][0]
    rec["value"] = bytes([rec["value"][0] ^ 1]) + rec["value"][1:]
    return resp


def drop_records(resp: dict[str, Any]) -> dict[str, Any]:
    resp["records"] = resp["records"][1:]
    return resp


async def check_lies_are_caught(flow: Flow, task_id: bytes) -> None:
    """A lying node: a tampered record, a left-out record, the state at another height."""
    honest, requester = flow.honest, flow.requester
    for lie, says in ((flip_a_byte, "does not verify"), (drop_records, "left out")):
        undo = tamper(flow.net, "mps_getSlashingState", lie)
        with pytest.raises(ProofError, match=says):
            await run(honest.slashing_state, task_id)
        undo()
    note = put_record(requester.key, requester.chain_id, 3, "after", b"the batch")
    await run(requester.wait_for_receipt, await run(requester.send, note))  # state moves on
    undo = tamper(flow.net, "mps_getSlashingState", lambda r: r, latest=True)
    with pytest.raises(ProofError, match="different state root"):  # not the L1's root
        await run(honest.slashing_state, task_id)
    # checked against the node's own root, the same answer passes: only the L1 catches it
    assert (await run(honest.slashing_state, task_id, None, "node")).verified_against == "node"
    undo()


async def finalize_and_slash(flow: Flow, task_id: bytes) -> None:
    """Rewards wait for finality; then the aggregator slashes the free rider and settles."""
    net, honest, rider = flow.net, flow.honest, flow.rider
    with pytest.raises(NotOnL1Yet):
        await run(honest.claim_rewards, task_id)
    net.anvil.mine(CHALLENGE_BLOCKS)
    net.h.node.l1.poster.step()
    assert await run(honest.l1.finalized_batch) is not None
    assert net.h.node.l1.aggregator.step() == 2
    assert await l1_status(rider) == "slashed"


async def claim_and_refund(flow: Flow, task_id: bytes) -> None:
    """Clean updates share the fee less the protocol's cut; the rest of the deposit goes back."""
    honest, deposit = flow.honest, flow.deposit
    fee = min(2 * FEE_PER_EPOCH, deposit)
    pool = fee - fee * 1000 // 10_000
    share = await run(honest.reward_share, task_id)
    total = (await run(honest.l1.task, task_id))["totalCleanUpdates"]
    assert share["accepted"] >= CREDIT_SCALE and not share["flagged"]  # epoch 0 pays in full
    paid = await run(honest.claim_rewards, task_id)
    assert paid == pool * share["accepted"] // total  # its credits, of all the clean credits
    with pytest.raises(ContractRevert) as exc:
        await run(honest.claim_rewards, task_id)
    assert exc.value.error == "AlreadyClaimed"
    with pytest.raises(SDKError, match="flagged"):
        await run(flow.rider.claim_rewards, task_id)
    refund = await run(flow.requester.l1.withdraw_refund, task_id)
    assert refund == deposit - fee


async def leave(flow: Flow) -> None:
    """Unbond; no withdrawal before the rollup's release is in a finalized batch; then one."""
    honest, net = flow.honest, flow.net
    # the honest key with another client's L1 account: that account's stake would unbond
    mixed = MPSClient(net.h.url, honest.key, l1_config(net, FIRST_CLIENT + 1))
    with pytest.raises(SDKError, match=r"staked client key .*not this client's key"):
        await run(mixed.unregister)
    assert await l1_status(flow.clients[1]) == "staked"
    await run(honest.unregister)
    assert await l1_status(honest) == "unbonding"
    with pytest.raises(NotOnL1Yet, match="has not seen the unregister yet"):
        await run(honest.withdraw)
    await net.follow()  # its task is over: the rollup releases the stake at once
    stake = await run(honest.stake_info)
    assert stake is not None and stake["released"] is not None, stake
    with pytest.raises(NotOnL1Yet, match="wait for a batch holding it to finalize"):
        await run(honest.withdraw)
    head = await net.h.result("mps_blockNumber")
    net.post_through(head)
    release = await run(honest.withdraw)
    assert release["height"] >= head
    assert await l1_status(honest) == "withdrawn"


@pytest.mark.slow
async def test_client_and_requester_flow_with_a_lying_node(tmp_path: Path) -> None:
    async with sdk_net(tmp_path) as net:
        flow = make_flow(net)
        await stake_all(flow)
        task_id = await create_funded_task(flow)
        await train_two_epochs(flow, task_id)
        batch = await post_first_batch(flow, task_id)
        await check_slashing_states(flow, task_id, batch)
        await check_lies_are_caught(flow, task_id)
        await finalize_and_slash(flow, task_id)
        await claim_and_refund(flow, task_id)
        await leave(flow)


@pytest.mark.slow
async def test_a_front_run_funding_is_harmless_and_reclaimed(tmp_path: Path) -> None:
    """Issue 11's front-run, end to end: Mallory sees the requester's task id funded on the L1
    and funds it first with 1 wei (the former first-come ``createTask`` then reverted the
    victim's funding, TaskExists, and the rollup recorded Mallory's 1 wei). Now the victim's
    funding goes through, its task binds it, and Mallory's lapses: reclaimed after its window,
    less the BASE_FEE it paid."""
    async with sdk_net(tmp_path) as net:
        requester = MPSClient(net.h.url, Keypair.generate(), l1_config(net, REQUESTER))
        mallory = MPSClient(net.h.url, Keypair.generate(), l1_config(net, REQUESTER - 1))
        victim_l1, mallory_l1 = requester.l1, mallory.l1
        assert victim_l1 is not None and mallory_l1 is not None
        honest_fund = victim_l1.fund_task

        def front_run(task_id: bytes, deposit: int) -> None:
            mallory_l1.fund_task(task_id, 1)  # ordered first on the L1
            honest_fund(task_id, deposit)

        victim_l1.fund_task = front_run  # type: ignore[method-assign]
        async with following(net):
            task_id = await run(requester.create_task, params(window=1000), np.zeros(D), b"s", 7)
        task = await run(requester.task, task_id)
        assert as_bytes(task["funder"]) == victim_l1.address_bytes
        assert (await run(victim_l1.funding, task_id))["deposit"] == 7
        assert (await run(mallory_l1.funding, task_id))["deposit"] == 1
        # the victim's funding is the task's: settlement pays it out, never a reclaim
        with pytest.raises(SDKError, match="the task took this funding"):
            await run(requester.reclaim_funding, task_id)
        with pytest.raises(NotOnL1Yet, match="may be bound until rollup height"):
            await run(mallory.reclaim_funding, task_id)
        leaf = await net.h.result(
            "mps_getProof", hx(state_keys.funding(task_id, mallory_l1.address_bytes))
        )
        bind_by = decode_funding(unhex(leaf["value"])).bind_by
        for _ in range(200):  # the node seals a block every 50 ms
            if await net.h.result("mps_blockNumber") >= bind_by:
                break
            await asyncio.sleep(0.05)
        net.post_through(bind_by)
        before = await run(mallory_l1.balance)
        assert await run(mallory.reclaim_funding, task_id) == 1
        assert (await run(mallory_l1.funding, task_id))["reclaimed"]
        assert await run(mallory_l1.balance) < before + 1  # the gas; the BASE_FEE stays paid
        with pytest.raises(SDKError, match="paid out already"):
            await run(mallory.reclaim_funding, task_id)


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
            await run(a.commit_update, task_id, 0, np.ones(D) * 0.03)
        await run(a.join, task_id)
        with pytest.raises(WrongEpoch):
            await run(a.commit_update, task_id, 3, np.ones(D) * 0.01)
        await run(a.commit_update, task_id, 0, np.ones(D) * 0.01)
        with pytest.raises(DuplicateUpdate):
            await run(a.commit_update, task_id, 0, np.ones(D) * 0.02)
        with pytest.raises(WrongPhase):  # the commit phase runs (four of five to come)
            await run(a.reveal_update, task_id, 0, np.ones(D) * 0.01)
        with pytest.raises(NotFound):
            await run(b.task, bytes(32))
        with pytest.raises(ValueError, match="values"):
            await run(a.commit_update, task_id, 0, np.zeros(D + 1))
        # the nonce kept by the client survives a transaction sent with its key elsewhere
        await run(b.join, task_id)
        assert b.key is not None
        elsewhere = put_record(b.key, b.chain_id, await run(b.nonce, b.key.public_key), "n", b"1")
        await run(b.wait_for_receipt, await run(b.send, elsewhere))
        await run(b.commit_update, task_id, 0, np.ones(D) * 0.01)  # stale local nonce: re-read
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


def torch_mlp(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(nn.Linear(20, 150), nn.ReLU(), nn.Linear(150, 3))


@dataclasses.dataclass(frozen=True)
class TorchTask:
    """The torch test's model shape, task and data, shared by its phases.

    ``torch`` is passed around rather than imported because the test skips without it.
    """

    torch: Any
    w: Any  # the linear teacher that labels every loader's inputs
    p: TaskParams
    d: int

    def model(self) -> Any:
        return torch_mlp(self.torch)

    def loader(self, seed: int) -> list[tuple[Any, Any]]:
        g = self.torch.Generator().manual_seed(seed)
        x = self.torch.randn(64, 20, generator=g)
        return [(x[i : i + 16], (x[i : i + 16] @ self.w).argmax(dim=1)) for i in range(0, 64, 16)]


def make_torch_task(torch: Any) -> tuple[TorchTask, Any]:
    """Returns the task and its initial model; the seed fixes every model the test builds."""
    from client_sdk.train import layout_of

    torch.manual_seed(0)
    init = torch_mlp(torch)
    layout = layout_of(init)
    d = sum(int(np.prod(s)) for _, s in layout)
    assert d == 3603  # int8 updates of 3,603 bytes, an int32 model of 14,412
    p = TaskParams(
        "torch", layout, "int8", 12, bytes(32), bytes(32), 1, 990_000, 5, 5, 20, bytes(32),
        EpochRules(f=1),
    )  # fmt: skip
    return TorchTask(torch, torch.randn(20, 3), p, d), init


def flower_runners(
    tt: TorchTask, mps: list[MPSClient], task_id: bytes, seen: list[int]
) -> list[Awaitable[Any]]:
    """Four clients through run_client; they start only when awaited."""
    from client_sdk.runner import run_client
    from client_sdk.train import TorchClient

    return [
        run(
            run_client,
            TorchClient(tt.model(), tt.loader(i), tt.p, test_loader=tt.loader(99)),
            mps[i],
            task_id,
            1,
            lambda epoch, summary: seen.append(len(summary["records"])),
        )
        for i in range(4)
    ]


async def submit_a_module(tt: TorchTask, client: MPSClient, task_id: bytes, base: Any) -> None:
    """The fifth client hands submit_update a module: its delta to the base is what goes."""
    from client_sdk.train import flatten, train_update

    fifth = tt.model()
    await run(client.join, task_id)
    await run(client.load_base_model, task_id, fifth)
    assert np.array_equal(flatten(fifth), flatten(fifth, tt.p))
    delta = train_update(fifth, tt.loader(4), tt.p, base)
    assert delta.shape == (tt.d,) and np.abs(delta).max() > 0
    await run(client.submit_update, task_id, 0, fifth)  # a module: its delta to the base


async def check_trained_model(tt: TorchTask, client: MPSClient, task_id: bytes, base: Any) -> None:
    """The model moved, went as chunk manifests, and loads back into a module that evaluates."""
    from client_sdk.train import TorchClient, flatten, unflatten_into

    task = await run(client.task, task_id)
    assert task["status"] == "finished"
    after = await run(client.base_model, task_id)
    assert not np.array_equal(after, base)
    # the model and the updates went as chunk manifests, not as one blob each
    update = (await run(client.epoch, task_id, 0))["records"][0]["update"]
    assert len(await run(client.blob, update)) != tt.d
    assert len(await run(client.blob, task["initModel"])) != 4 * tt.d
    check = tt.model()
    unflatten_into(check, after, tt.p)
    assert np.allclose(flatten(check, tt.p), after, atol=1e-6)
    _, n, metrics = TorchClient(check, [], tt.p, tt.loader(99)).evaluate(
        [t.detach().numpy() for t in check.state_dict().values()], {}
    )
    assert n == 64 and 0 <= metrics["accuracy"] <= 1


def check_layout_errors(tt: TorchTask) -> None:
    from client_sdk.train import LayoutError, flatten

    nn = tt.torch.nn
    with pytest.raises(LayoutError, match="shape"):
        flatten(nn.Sequential(nn.Linear(20, 10), nn.ReLU(), nn.Linear(10, 3)), tt.p)
    with pytest.raises(LayoutError, match="not in the task layout"):
        flatten(nn.Sequential(*tt.model(), nn.Linear(3, 3)), tt.p)


async def test_torch_clients_through_run_client_with_chunked_arrays(tmp_path: Path) -> None:
    """Four Flower-style clients in threads and one module submitted directly; the chain's
    transactions are small, so the model and every update travel as chunks."""
    torch = pytest.importorskip("torch")
    from client_sdk.train import flatten

    tt, init = make_torch_task(torch)
    keys = [Keypair.generate() for _ in range(5)]
    stakes = tuple(GenesisStake(k.public_key, bytes(20), 100) for k in keys)
    async with start_node(
        tmp_path / "node", produce_blocks=True, genesis_stakes=stakes,
        max_tx_size=3000, max_blob_size=2048,
    ) as h:  # fmt: skip
        requester = MPSClient(h.url, Keypair.generate())
        task_id = await run(requester.create_task, tt.p, flatten(init), b"# torch\n")
        mps = [MPSClient(h.url, k) for k in keys]
        base = await run(mps[0].base_model, task_id)
        assert np.abs(base - flatten(init)).max() <= 2.0**-13  # int32 at shift 12
        seen: list[int] = []
        runners = flower_runners(tt, mps, task_id, seen)
        # commit-reveal: every submit waits for the others' commitments, so all run at once
        await asyncio.gather(submit_a_module(tt, mps[4], task_id, base), *runners)
        assert seen == [5, 5, 5, 5]
        await check_trained_model(tt, mps[0], task_id, base)
        check_layout_errors(tt)


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
            ups = [rng.normal(0, 0.03, D) for _ in clients]
            await asyncio.gather(
                *(c.commit_update(task_id, 0, u) for c, u in zip(clients, ups, strict=True))
            )
            with pytest.raises(DuplicateUpdate):
                await clients[0].commit_update(task_id, 0, np.ones(D) * 0.01)
            with pytest.raises(CommitmentMismatch):  # the reveal phase opened: all committed
                await clients[0].reveal_update(task_id, 0, np.zeros(D))
            # submit_update finds each commitment on chain and only reveals; the last closes it
            await asyncio.gather(
                *(c.submit_update(task_id, 0, u) for c, u in zip(clients, ups, strict=True))
            )
            summary = await clients[0].wait_for_epoch(task_id, 0, 10.0)
            assert len(summary["records"]) == 5
            after = await clients[1].base_model(task_id)
            assert not np.array_equal(after, await clients[1].base_model(task_id, 0))
        finally:
            for c in clients:
                await c.close()


async def test_certain_offences_are_refused_before_sending(tmp_path: Path) -> None:
    """Issue 14: sending the same delta file twice (or the last global step, which slashes) was
    one easy mistake away. The SDK refuses, before anything is sent, an update the STF will
    certainly flag, saying what it would cost; ``force=True`` sends it anyway."""
    keys = [Keypair.generate() for _ in range(5)]
    stakes = tuple(GenesisStake(k.public_key, bytes(20), 100) for k in keys)
    async with start_node(tmp_path / "node", produce_blocks=True, genesis_stakes=stakes) as h:
        requester = MPSClient(h.url, Keypair.generate())
        task_id = await run(requester.create_task, params(epochs=3), np.zeros(D), b"s")
        mps = [MPSClient(h.url, k) for k in keys]
        await asyncio.gather(*(run(c.join, task_id) for c in mps))
        with pytest.raises(CertainOffence, match="all zeros: flagged ZERO"):
            await run(mps[0].commit_update, task_id, 0, np.zeros(D))
        rng = np.random.default_rng(9)
        direction = rng.normal(0, 0.03, D)
        ups = [direction + rng.normal(0, 0.01, D) for _ in mps]
        await asyncio.gather(
            *(run(c.submit_update, task_id, 0, u) for c, u in zip(mps, ups, strict=True))
        )
        await run(mps[0].wait_for_epoch, task_id, 0, 20.0)
        task = await run(mps[0].task, task_id)
        step = np.frombuffer(await run(mps[0].blob, task["previousStep"]), np.int8)
        assert np.count_nonzero(step) >= 64  # dense: resending it is provable
        replay = step.astype(np.float64) / 2**SHIFT  # quantizes back to the very same step
        with pytest.raises(CertainOffence, match=r"REPLAY_GLOBAL.*slashed on the L1"):
            await run(mps[0].submit_update, task_id, 1, replay)
        with pytest.raises(CertainOffence, match=r"your last update.*REPLAY_OWN"):
            await run(mps[1].commit_update, task_id, 1, ups[1])  # the same delta file twice
        assert (await run(mps[0].task, task_id))["committed"] == []  # nothing was sent
        await run(mps[0].commit_update, task_id, 1, replay, True)  # forced: it goes
        committed = (await run(mps[0].task, task_id))["committed"]
        assert [as_bytes(c) for c in committed] == [keys[0].public_key]


async def test_the_requester_sends_its_reference_through_the_sdk(tmp_path: Path) -> None:
    """``submit_reference`` commits while the clients commit, waits for the reveal phase and
    reveals; the close waits for it, uses it (``mps_getEpoch`` names it) and the clients'
    records are as they would be without it. A client's key is refused (NotAuthorized)."""
    keys = [Keypair.generate() for _ in range(5)]
    stakes = tuple(GenesisStake(k.public_key, bytes(20), 100) for k in keys)
    async with start_node(tmp_path / "node", produce_blocks=True, genesis_stakes=stakes) as h:
        requester = MPSClient(h.url, Keypair.generate())
        task_id = await run(requester.create_task, params(epochs=1), np.zeros(D), b"s")
        mps = [MPSClient(h.url, k) for k in keys]
        await asyncio.gather(*(run(c.join, task_id) for c in mps))
        rng = np.random.default_rng(4)
        direction = rng.normal(0, 0.03, D)
        ups = [direction + rng.normal(0, 0.01, D) for _ in mps]
        reference = direction + rng.normal(0, 0.01, D)
        with pytest.raises(NotAuthorized, match="requester"):
            await run(mps[0].submit_reference, task_id, 0, reference, 5.0)
        sent = asyncio.ensure_future(run(requester.submit_reference, task_id, 0, reference))
        for _ in range(400):  # committed before any client is done committing
            if (await run(requester.task, task_id))["reference"] is not None:
                break
            await asyncio.sleep(0.05)
        await asyncio.gather(
            *(run(c.submit_update, task_id, 0, u) for c, u in zip(mps, ups, strict=True))
        )
        await sent
        epoch = await run(mps[0].wait_for_epoch, task_id, 0, 20.0)
        q = fl.quantize(reference, SHIFT)
        assert as_bytes(epoch["reference"]) == fl.blob_id(q.tobytes())
        assert all(r["flags"] == 0 and r["credit"] == 1000 for r in epoch["records"])
