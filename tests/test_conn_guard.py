"""The RPC server's connection guard on real sockets (issue 13): idle and slowloris sockets are
cut, one address cannot take every connection, refusals are logged once per interval, and a
body that trickles in gets a JSON-RPC error instead of holding its connection."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web
from rpc_fixtures import start_node
from structlog.testing import capture_logs

from node.conn_guard import GUARD_KEY, ConnectionGuard, GuardLimits, guard_requests, serve_guarded
from stf.errors import Code

FAST = GuardLimits(per_address=3, total=100, request_timeout=0.3, idle_timeout=0.3, log_every=5.0)


@asynccontextmanager
async def guarded(limits: GuardLimits = FAST) -> AsyncIterator[tuple[int, ConnectionGuard]]:
    """A server behind the guard, as ``mps-node run`` serves (its one route answers "ok")."""

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[guard_requests])
    guard = app[GUARD_KEY] = ConnectionGuard(limits)
    app.router.add_get("/", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    server = await serve_guarded(runner, "127.0.0.1", 0, guard)
    try:
        yield server.sockets[0].getsockname()[1], guard
    finally:
        server.close()
        await runner.cleanup()


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True if the server closes the connection (EOF or reset) within ``seconds``."""
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def get(port: int) -> str:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/") as resp:
        return await resp.text()


async def test_an_idle_socket_is_cut() -> None:
    """Issue 13: idle sockets never timed out (2,000 locked every honest client out)."""
    async with guarded() as (port, guard):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)
        assert guard.open == 1
        t0 = time.monotonic()
        assert await closed_within(reader, 3.0)
        assert 0.2 < time.monotonic() - t0 < 2.0
        writer.close()
        await asyncio.sleep(0.05)
        assert guard.open == 0 and not guard.open_by_address


async def test_a_slowloris_socket_is_cut_however_it_trickles() -> None:
    async with guarded() as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        header = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        cut = False
        for byte in header:  # one byte every 20 ms: never a complete request
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                cut = True
                break
            await asyncio.sleep(0.02)
        assert cut or await closed_within(reader, 1.0)
        writer.close()


async def test_one_address_cannot_take_every_connection() -> None:
    async with guarded() as (port, guard):
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert guard.open_by_address["127.0.0.1"] == 3
        reader, writer = await asyncio.open_connection("127.0.0.1", port)  # the fourth
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await closed_within(reader, 1.0)  # refused at once, no answer
        await asyncio.sleep(0.5)  # the idle three are cut by their deadline...
        assert await get(port) == "ok"  # ...and an honest request gets in
        for _, w in idle:
            w.close()
        writer.close()


async def test_a_keep_alive_client_is_served_between_its_requests() -> None:
    async with guarded() as (port, _), aiohttp.ClientSession() as s:
        for _ in range(3):  # one connection, within its idle allowance each time
            async with s.get(f"http://127.0.0.1:{port}/") as resp:
                assert await resp.text() == "ok"
            await asyncio.sleep(0.1)


async def test_refusals_are_logged_once_per_interval() -> None:
    """Issue 13: each refused connection wrote a log line (1 GB in 4.5 minutes)."""
    limits = GuardLimits(per_address=1, total=10, request_timeout=5.0, log_every=60.0)
    async with guarded(limits) as (port, guard):
        with capture_logs() as logs:
            held = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(20):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                assert await closed_within(reader, 1.0)
                writer.close()
        lines = [e for e in logs if e["event"] == "connections refused or cut"]
        assert len(lines) == 1 and lines[0]["refused"] == 1
        assert guard.refused == 19  # counted, for the next line
        held[1].close()


async def test_a_trickling_body_gets_a_timeout_error(tmp_path: Path) -> None:
    """Headers in time, then a body that never completes: a JSON-RPC error (1305) with HTTP
    408, instead of a connection and a buffer held for ever."""
    async with start_node(tmp_path / "n", body_timeout=0.3) as h:
        reader, writer = await asyncio.open_connection("127.0.0.1", h.client.port)
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"jsonrpc": "2.0"'
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        assert head.startswith(b"HTTP/1.1 408")
        length = int(next(x for x in head.split(b"\r\n") if x.lower().startswith(b"content-length"))
                     .split(b":")[1])  # fmt: skip
        answer = json.loads(await reader.readexactly(length))
        assert answer["error"]["code"] == Code.BODY_TIMEOUT
        assert "did not arrive within 0.3s" in answer["error"]["message"]
        writer.close()
