"""WebSocket subscriptions: a connection's topics, and the methods that manage them."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import structlog
from aiohttp import web

from stf.errors import INVALID_PARAMS, Code

from .codec import to_str
from .jsonrpc import Param, RPCError
from .ports import BlockFeed, Sealed
from .registry import rpc
from .views import block_view

log = structlog.get_logger("mps.rpc")

SUBSCRIPTION_TOPICS = ("newHeads", "epochs")


def topic_results(topic: str, sealed: Sealed) -> list[Any]:
    """What one sealed block announces on ``topic``."""
    if topic == "newHeads":
        return [block_view(sealed.block, False)]
    # epochs: one notification per task whose epoch closed in this block
    return [
        {"task": t, "height": sealed.block.height, "blockHash": sealed.block.hash}
        for t in sealed.closed_epochs
    ]


class Connection:
    """One WebSocket client: its subscriptions end with it."""

    _ids = itertools.count(1)

    def __init__(self, ws: web.WebSocketResponse, feed: BlockFeed) -> None:
        self.ws = ws
        self.feed = feed
        self.subs: dict[str, Callable[[], None]] = {}
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1024)

    def subscribe(self, topic: str) -> str:
        if topic not in SUBSCRIPTION_TOPICS:
            raise RPCError(
                INVALID_PARAMS,
                f"invalid params: unknown topic {topic!r}; known: {', '.join(SUBSCRIPTION_TOPICS)}",
            )
        sid = hex(next(self._ids))

        def on_block(sealed: Sealed) -> None:
            for result in topic_results(topic, sealed):
                self._notify(sid, result)

        self.subs[sid] = self.feed.subscribe(on_block)
        return sid

    def _notify(self, sid: str, result: Any) -> None:
        note = {
            "jsonrpc": "2.0",
            "method": "mps_subscription",
            "params": {"subscription": sid, "result": result},
        }
        try:
            self.queue.put_nowait(note)
        except asyncio.QueueFull:  # a slow client loses notifications; the node goes on
            log.warning("subscriber queue full; dropping notification", subscription=sid)

    def unsubscribe(self, sid: str) -> bool:
        cancel = self.subs.pop(sid, None)
        if cancel is None:
            return False
        cancel()
        return True

    def close(self) -> None:
        for sid in list(self.subs):
            self.unsubscribe(sid)


def _connection(context: Connection | None) -> Connection:
    """The WebSocket connection a call came on; over HTTP there is none to subscribe."""
    if context is None:
        raise RPCError(int(Code.UNSUPPORTED_MEDIA_TYPE), "subscriptions need a WebSocket (/ws)")
    return context


class SubscriptionMethods:
    """Subscriptions live on the connection a call came on (the dispatcher's ``context``)."""

    @rpc(Param("topic", to_str))
    async def mps_subscribe(self, topic: str, context: Connection | None = None) -> str:
        """Subscribe this WebSocket connection to a topic (newHeads)."""
        return _connection(context).subscribe(topic)

    @rpc(Param("subscription", to_str))
    async def mps_unsubscribe(self, sid: str, context: Connection | None = None) -> bool:
        """Cancel a subscription of this connection."""
        return _connection(context).unsubscribe(sid)
