"""The sync ``MPSClient`` and the async ``AsyncMPSClient`` behave the same: each scenario runs
through both faces, side by side, against a real in-process node.

The sync face runs in a thread (``asyncio.to_thread``) so that the node, served on this event
loop, keeps answering; the async face is awaited on the loop itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rpc_fixtures import NodeHarness, record_tx, start_node

from client_sdk import AsyncMPSClient, Keypair, MPSClient, WaitTimeout, fl, put_record
from client_sdk.errors import InvalidArgument, NonceTooLow, PayloadTooLarge, TaskNotFound
from stf.errors import Code
from stf.fl.rules import EpochRules
from stf.fl.task import TaskParams
from stf.genesis import GenesisStake
from stf.ids import BlobId, ClientKey

D = 3000  # int8 updates of 3,000 bytes and an int32 model of 12,000: both chunked below
LIMITS = {"max_tx_size": 3000, "max_blob_size": 2048}


class Face:
    """One client, either face, called the same way: ``await face("join", task_id)``."""

    def __init__(self, client: MPSClient | AsyncMPSClient) -> None:
        self.client = client

    async def __call__(self, method: str, *args: Any) -> Any:
        fn: Callable[..., Any] = getattr(self.client, method)
        if isinstance(self.client, AsyncMPSClient):
            return await fn(*args)
        return await asyncio.to_thread(fn, *args)

    async def chain_id(self) -> int:
        """A property of the sync face, a coroutine of the async one."""
        client = self.client
        if isinstance(client, AsyncMPSClient):
            return await client.chain_id()
        return await asyncio.to_thread(lambda: client.chain_id)


@asynccontextmanager
async def faces(kind: str, url: str, keys: list[Keypair]) -> AsyncIterator[list[Face]]:
    cls = AsyncMPSClient if kind == "async" else MPSClient
    clients = [cls(url, k, receipt_timeout=20.0) for k in keys]
    try:
        yield [Face(c) for c in clients]
    finally:
        for c in clients:
            if isinstance(c, AsyncMPSClient):
                await c.close()


def params() -> TaskParams:
    return TaskParams(
        "faces", (("w", (D,)),), "int8", 10, BlobId(bytes(32)), BlobId(bytes(32)), 1, 990_000,
        5, 5, 40, ClientKey(bytes(32)), EpochRules(f=1),
    )  # fmt: skip


KINDS = pytest.mark.parametrize("kind", ["sync", "async"])


@KINDS
async def test_failed_receipt_is_returned_and_failed_sends_raise(tmp_path: Path, kind: str) -> None:
    async with (
        start_node(tmp_path / "n", produce_blocks=True) as h,
        faces(kind, h.url, [Keypair.generate()]) as (mps,),
    ):
        key = mps.client.require_key()
        tx = fl.join_task(key, await mps.chain_id(), 0, b"\x07" * 32)  # no such task
        rc = await mps("wait_for_receipt", await mps("send", tx))
        assert rc["status"] == 0 and rc["code"] == Code.TASK_NOT_FOUND
        with pytest.raises(TaskNotFound) as exc:  # the sending methods raise it
            await mps("join", b"\x07" * 32)
        assert exc.value.data["status"] == 0


@KINDS
async def test_wait_for_receipt_times_out(tmp_path: Path, kind: str) -> None:
    async with start_node(tmp_path / "n") as h, faces(kind, h.url, [Keypair.generate()]) as (mps,):
        tx = record_tx(mps.client.require_key(), 0)
        await mps("send", tx)  # never sealed: this node seals on demand only
        with pytest.raises(WaitTimeout):
            await mps("wait_for_receipt", tx.hash, 0.2)
        with pytest.raises(TimeoutError):  # still a TimeoutError for callers
            await mps("wait_for_receipt", tx.hash, 0.1)
        await h.seal()
        assert (await mps("wait_for_receipt", tx.hash, 5))["status"] == 1


@KINDS
async def test_stale_nonce_is_re_read(live_node: NodeHarness, kind: str) -> None:
    kp = Keypair.generate()
    async with faces(kind, live_node.url, [kp]) as (mps,):
        await mps("transact", lambda k, c, n: put_record(k, c, n, "a", b"1"))
        elsewhere = put_record(kp, 4242, 1, "b", b"2")  # nonce 1, sent behind the client's back
        assert (await mps("wait_for_receipt", await mps("send", elsewhere)))["status"] == 1
        with pytest.raises(NonceTooLow):
            await mps("send", put_record(kp, 4242, 1, "c", b"3"))
        await mps("transact", lambda k, c, n: put_record(k, c, n, "c", b"3"))  # kept 1: re-read
        assert await mps("nonce", kp.public_key, False) == 3


def sends_over_rpc(h: NodeHarness) -> float:
    """How many ``mps_sendTransaction`` calls the node has answered (its metrics)."""
    line = 'mps_rpc_seconds_count{method="mps_sendTransaction"}'
    text = h.node.metrics.render().decode()
    return sum(float(row.split()[-1]) for row in text.splitlines() if row.startswith(line))


@KINDS
async def test_send_all_goes_as_one_stream_and_raises_its_first_refusal(
    tmp_path: Path, kind: str
) -> None:
    async with start_node(tmp_path / "n") as h, faces(kind, h.url, [Keypair.generate()]) as (mps,):
        key = mps.client.require_key()

        def records(first: int, *values: bytes) -> list[Any]:
            return [put_record(key, 4242, first + i, f"k{i}", v) for i, v in enumerate(values)]

        hashes = await mps("send_all", lambda n: records(n, *[b"v"] * 5))
        assert len(hashes) == 5 and all(x in h.mempool for x in hashes)
        assert sends_over_rpc(h) == 0  # all five went through POST /txs
        # a refusal mid-stream: the four before it go in, the 4,097-byte record is refused,
        # the one after it is not admitted; the typed error is raised as a send would
        with pytest.raises(PayloadTooLarge):
            await mps("send_all", lambda n: records(n, *[b"w"] * 4, b"x" * 4097, b"after"))
        assert await mps("nonce", key.public_key, True) == 9
        hashes = await mps("send_all", lambda n: records(n, b"again", b"and"))  # nonce re-read
        assert await mps("nonce", key.public_key, True) == 11
        await mps("send", put_record(key, 4242, 11, "one", b"by itself"))
        assert sends_over_rpc(h) == 1  # a single transaction still goes as one call


@KINDS
async def test_chunked_model_and_updates_through_an_epoch(tmp_path: Path, kind: str) -> None:
    keys = [Keypair.generate() for _ in range(5)]
    stakes = tuple(GenesisStake(k.public_key, bytes(20), 100) for k in keys)
    async with start_node(
        tmp_path / "n", produce_blocks=True, genesis_stakes=stakes, **LIMITS
    ) as h:
        init = np.linspace(-1, 1, D)
        async with faces(kind, h.url, [Keypair.generate(), *keys]) as (requester, *clients):
            task_id = await requester("create_task", params(), init, b"# faces\n")
            task = await clients[0]("task", task_id)
            assert len(await clients[0]("blob", task["initModel"])) != 4 * D  # a manifest
            base = await clients[0]("base_model", task_id)
            assert np.allclose(base, init, atol=2.0**-10)
            await asyncio.gather(*(c("join", task_id) for c in clients))
            rng = np.random.default_rng(3)
            updates = [rng.normal(0, 0.03, D) for _ in clients]
            pairs = zip(clients, updates, strict=True)
            await asyncio.gather(*(c("submit_update", task_id, 0, u) for c, u in pairs))
            seen: list[dict[str, Any]] = []
            summary = await clients[0]("wait_for_epoch", task_id, 0, 20.0, seen.append)
            assert len(summary["records"]) == 5
            update = summary["records"][0]["update"]
            assert len(await clients[0]("blob", update)) != D  # chunked too
            after = await clients[1]("base_model", task_id, 0)
            assert np.array_equal(after, base)


@KINDS
async def test_a_second_task_reuses_the_blobs_already_stored(
    live_node: NodeHarness, kind: str
) -> None:
    """The second task's uploads of the same model and script fail (already stored) and the
    task is created anyway: the chain holds the blobs, which the client checks in the state."""
    async with faces(kind, live_node.url, [Keypair.generate()]) as (requester,):
        init = np.linspace(-1, 1, D)
        first = await requester("create_task", params(), init, b"# same\n")
        second = await requester("create_task", params(), init, b"# same\n")
        assert first != second
        a, b = await requester("task", first), await requester("task", second)
        assert (a["initModel"], a["script"]) == (b["initModel"], b["script"])


@KINDS
async def test_trap_rules_are_refused_before_anything_is_sent(
    live_node: NodeHarness, kind: str
) -> None:
    """Rules outside the chain's bounds fail in the client: no blob uploaded, no fee paid."""
    kp = Keypair.generate()
    async with faces(kind, live_node.url, [kp]) as (requester,):
        trap = replace(params(), rules=EpochRules(f=1, strikes_to_bar=1))
        with pytest.raises(InvalidArgument, match="strikes_to_bar must be at least 2"):
            await requester("create_task", trap, np.zeros(D), b"# trap\n")
        assert await requester("nonce", kp.public_key, True) == 0


@pytest.fixture
async def live_node(tmp_path: Path) -> AsyncIterator[NodeHarness]:
    async with start_node(tmp_path / "live", produce_blocks=True, block_time=0.05) as h:
        yield h
