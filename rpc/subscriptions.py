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
MAX_PER_CONNECTION = 32  # a client needs a handful: one per topic, a few for its tasks
MAX_TOTAL = 10_000  # every subscription costs each sealed block a callback
QUEUE_SIZE = 1024  # notifications waiting for one connection before it counts as too slow


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
    total = 0  # subscriptions held by every connection of this process

    def __init__(self, ws: web.WebSocketResponse, feed: BlockFeed) -> None:
        self.ws = ws
        self.feed = feed
        self.subs: dict[str, Callable[[], None]] = {}
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=QUEUE_SIZE)
        self.too_slow = False

    def subscribe(self, topic: str) -> str:
        if topic not in SUBSCRIPTION_TOPICS:
            raise RPCError(
                INVALID_PARAMS,
                f"invalid params: unknown topic {topic!r}; known: {', '.join(SUBSCRIPTION_TOPICS)}",
            )
        if len(self.subs) >= MAX_PER_CONNECTION:
            raise RPCError(
                int(Code.TOO_MANY_SUBSCRIPTIONS),
                f"this connection holds {MAX_PER_CONNECTION} subscriptions, the most allowed",
            )
        if Connection.total >= MAX_TOTAL:
            raise RPCError(
                int(Code.TOO_MANY_SUBSCRIPTIONS),
                f"the node holds {MAX_TOTAL} subscriptions, the most allowed; try later",
            )
        sid = hex(next(self._ids))

        def on_block(sealed: Sealed) -> None:
            for result in topic_results(topic, sealed):
                self._notify(sid, result)

        self.subs[sid] = self.feed.subscribe(on_block)
        Connection.total += 1
        return sid

    def _notify(self, sid: str, result: Any) -> None:
        note = {
            "jsonrpc": "2.0",
            "method": "mps_subscription",
            "params": {"subscription": sid, "result": result},
        }
        if self.too_slow:
            return
        try:
            self.queue.put_nowait(note)
        except asyncio.QueueFull:
            # a consumer this far behind is dropped, with one log line (not one per block and
            # subscription, which grew the log by megabytes a block): its subscriptions end,
            # and the connection closes once the queue it has is sent
            self.too_slow = True
            log.warning("websocket consumer too slow; dropping it", subscriptions=len(self.subs))
            self.close()

    def unsubscribe(self, sid: str) -> bool:
        cancel = self.subs.pop(sid, None)
        if cancel is None:
            return False
        cancel()
        Connection.total -= 1
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
