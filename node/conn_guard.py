"""Connection limits for the RPC server: caps per address and in all, and deadlines for requests.

aiohttp closes idle keep-alive connections, but a connection that never completes a request is
held for ever: an idle socket, or a slowloris one sending a header byte every few seconds. At a
1,024-descriptor limit, 2,000 such sockets locked every honest client out, and each refused
connection logged a line (1 GB of log in 4.5 minutes; issue 13). Here every accepted socket
must start a request within ``request_timeout`` of connecting and within ``idle_timeout`` of its
last response, one address holds at most ``per_address`` sockets and the node ``total``, and
what is refused or cut is counted and logged at most once per ``log_every`` seconds.

The guard wraps aiohttp's protocol factory (``serve_guarded``); a middleware (``guard_requests``)
tells it when a request starts and ends. A WebSocket is one long request: never cut while open.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

log = structlog.get_logger("mps.rpc.connections")

GUARD_KEY: web.AppKey[ConnectionGuard] = web.AppKey("connection_guard")


@dataclass(frozen=True)
class GuardLimits:
    per_address: int = 64
    total: int = 1000
    request_timeout: float = 10.0  # from connect to the first request's headers
    idle_timeout: float = 60.0  # from a response to the next request's headers
    log_every: float = 10.0


@dataclass
class _Conn:
    address: str
    timer: asyncio.TimerHandle | None = None
    busy: int = 0


@dataclass
class ConnectionGuard:
    limits: GuardLimits = field(default_factory=GuardLimits)
    open_by_address: Counter[str] = field(default_factory=Counter)
    refused: int = 0  # since the last log line
    cut: int = 0
    _conns: dict[Any, _Conn] = field(default_factory=dict)
    _logged_at: float = 0.0

    @property
    def open(self) -> int:
        return len(self._conns)

    def protocol_factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], Any]:
        return lambda: _GuardedProtocol(self, inner())

    # -- called by the protocol wrapper ------------------------------------------------------
    def admit(self, transport: asyncio.Transport) -> bool:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "?"
        if (
            self.open >= self.limits.total
            or self.open_by_address[address] >= self.limits.per_address
        ):
            self.refused += 1
            self._maybe_log()
            return False
        conn = _Conn(address)
        self._conns[transport] = conn
        self.open_by_address[address] += 1
        self._arm(transport, conn, self.limits.request_timeout)
        return True

    def release(self, transport: asyncio.Transport) -> None:
        conn = self._conns.pop(transport, None)
        if conn is None:
            return
        if conn.timer is not None:
            conn.timer.cancel()
        self.open_by_address[conn.address] -= 1
        if self.open_by_address[conn.address] <= 0:
            del self.open_by_address[conn.address]

    # -- called by the middleware --------------------------------------------------------------
    def request_started(self, transport: Any) -> None:
        conn = self._conns.get(transport)
        if conn is None:
            return
        conn.busy += 1
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None

    def request_finished(self, transport: Any) -> None:
        conn = self._conns.get(transport)
        if conn is None:
            return
        conn.busy -= 1
        if conn.busy == 0:
            self._arm(transport, conn, self.limits.idle_timeout)

    # -- internals -----------------------------------------------------------------------------
    def _arm(self, transport: asyncio.Transport, conn: _Conn, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        conn.timer = loop.call_later(seconds, self._expire, transport)

    def _expire(self, transport: asyncio.Transport) -> None:
        conn = self._conns.get(transport)
        if conn is None or conn.busy:
            return
        self.cut += 1
        transport.abort()  # connection_lost follows, and releases it
        self._maybe_log()

    def _maybe_log(self) -> None:
        now = time.monotonic()
        if now - self._logged_at < self.limits.log_every:
            return
        self._logged_at = now
        log.warning(
            "connections refused or cut",
            refused=self.refused,
            cut_without_request=self.cut,
            open=self.open,
            busiest=self.open_by_address.most_common(1),
        )
        self.refused = self.cut = 0


class _GuardedProtocol(asyncio.Protocol):
    """aiohttp's request handler, admitted and released by the guard."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._admitted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if not self._guard.admit(transport):
            transport.abort()
            return
        self._admitted = True
        self._transport = transport
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        self._guard.release(self._transport)
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._admitted:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def guard_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the guard a request is under way on its connection (no guard: nothing to tell)."""
    guard = request.app.get(GUARD_KEY)
    if guard is None:
        return await handler(request)
    transport = request.transport
    guard.request_started(transport)
    try:
        return await handler(request)
    finally:
        guard.request_finished(transport)


async def serve_guarded(
    runner: web.AppRunner, host: str, port: int, guard: ConnectionGuard
) -> asyncio.Server:
    """Listen with aiohttp's handler behind ``guard`` (in place of ``web.TCPSite``); the caller
    closes the returned server before ``runner.cleanup()``."""
    assert runner.server is not None, "runner.setup() first"
    loop = asyncio.get_running_loop()
    return await loop.create_server(guard.protocol_factory(runner.server), host, port)
