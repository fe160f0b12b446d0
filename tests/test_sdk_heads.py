"""The SDK's waits wake on new heads over the node's WebSocket (client_sdk/heads.py).

A receipt waited for across a one-second block costs a couple of receipt calls, where polling
every 50 ms cost twenty; the subscription is live on both faces; without a WebSocket the waits
fall back to their poll interval; a node shutting down closes its WebSockets instead of waiting
for the subscribed clients.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

from rpc_fixtures import start_node

from client_sdk import AsyncMPSClient, MPSClient, put_record
from client_sdk.heads import HeadWatcher, ws_url
from client_sdk.keys import Keypair


def test_the_websocket_endpoint_sits_beside_the_rpc_one() -> None:
    assert ws_url("http://127.0.0.1:8645/") == "ws://127.0.0.1:8645/ws"
    assert ws_url("http://127.0.0.1:8645") == "ws://127.0.0.1:8645/ws"
    assert ws_url("https://node.example/rpc/") == "wss://node.example/rpc/ws"


async def until_live(heads: Any) -> None:
    """Until the watcher's subscription is answered (5 s at most)."""
    for _ in range(100):
        if heads.live:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the newHeads subscription did not go live")


async def receipt_calls(h: Any) -> float:
    text = await (await h.client.get("/metrics")).text()
    m = re.search(r'mps_rpc_seconds_count\{method="mps_getTransactionReceipt"\} (\S+)', text)
    return float(m.group(1)) if m else 0.0


async def test_a_sync_wait_wakes_on_the_block_not_a_timer(tmp_path: Path) -> None:
    async with start_node(tmp_path / "n", produce_blocks=True, block_time=1.0) as h:
        c = MPSClient(h.url, Keypair.generate())
        chain = await asyncio.to_thread(lambda: c.chain_id)
        await asyncio.to_thread(c.heads.mark)  # subscribe first, as any earlier wait would
        await until_live(c.heads)
        before = await receipt_calls(h)
        for n in range(2):
            tx = put_record(c.require_key(), chain, n, f"r{n}", b"v")
            t0 = time.monotonic()
            h_ = await asyncio.to_thread(c.send, tx)
            rc = await asyncio.to_thread(c.wait_for_receipt, h_)
            assert rc["status"] == 1 and time.monotonic() - t0 < 3.0
        calls = await receipt_calls(h) - before
        assert calls <= 6, calls  # polling every 50 ms: ~20 a block


async def test_an_async_wait_wakes_on_the_block(tmp_path: Path) -> None:
    node = start_node(tmp_path / "n", produce_blocks=True, block_time=1.0)
    async with node as h, AsyncMPSClient(h.url, Keypair.generate()) as c:
        chain = await c.chain_id()
        c.heads.mark()
        await until_live(c.heads)
        before = await receipt_calls(h)
        tx = put_record(c.core.require_key(), chain, 0, "r", b"v")
        rc = await c.wait_for_receipt(await c.send(tx))
        assert rc["status"] == 1
        assert await receipt_calls(h) - before <= 3


def test_without_a_websocket_a_wait_is_the_poll_interval() -> None:
    w = HeadWatcher("http://127.0.0.1:9/")  # nothing listens on the discard port
    mark = w.mark()
    t0 = time.monotonic()
    w.wait(mark, 0.1)
    assert 0.09 <= time.monotonic() - t0 < 1.0 and not w.live


async def test_clients_of_one_node_share_one_subscription(tmp_path: Path) -> None:
    """A node holds at most 64 sockets per address: a process running many clients keeps one
    subscription per node (per event loop for the async face), not one per client."""
    async with start_node(tmp_path / "n") as h:
        a, b = MPSClient(h.url), MPSClient(h.url)
        assert a.heads is b.heads
        x, y = AsyncMPSClient(h.url), AsyncMPSClient(h.url)
        assert x.heads is y.heads
        await x.close()
        assert y.heads._task is None or not y.heads._task.cancelled()  # still y's
        await y.close()
        z = AsyncMPSClient(h.url)  # the last one closed it: a new one starts afresh
        assert z.heads is not y.heads
        await z.close()
