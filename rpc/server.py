"""HTTP and WebSocket transport for the JSON-RPC dispatcher, plus /health and /metrics."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from stf.errors import Code

from .codec import JSON, MSGPACK, decode_body, encode_body, to_str
from .fl_methods import register_fl_methods
from .jsonrpc import INVALID_PARAMS, PARSE_ERROR, Dispatcher, Param, RPCError
from .methods import NodeView, register_methods
from .views import block_view

log = structlog.get_logger("mps.rpc")

DISPATCHER_KEY = web.AppKey("dispatcher", Dispatcher)
NODE_KEY = web.AppKey("node", NodeView)
MAX_BODY_KEY = web.AppKey("max_body_size", int)
SUBSCRIPTION_TOPICS = ("newHeads", "epochs")


def _media(request: web.Request) -> str:
    ctype = request.content_type
    return MSGPACK if ctype in (MSGPACK, "application/x-msgpack") else JSON


async def handle_post(request: web.Request) -> web.Response:
    d = request.app[DISPATCHER_KEY]
    max_body: int = request.app[MAX_BODY_KEY]
    media = _media(request)
    if request.content_type not in (
        JSON,
        MSGPACK,
        "application/x-msgpack",
        "application/octet-stream",
        "",
    ):
        err = RPCError(
            int(Code.UNSUPPORTED_MEDIA_TYPE),
            f"unsupported content type {request.content_type}; use {JSON} or {MSGPACK}",
        )
        return _reply({"jsonrpc": "2.0", "id": None, "error": err.to_obj()}, JSON, 415)
    if request.content_length is not None and request.content_length > max_body:
        return _too_large(request.content_length, max_body, media)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _too_large(None, max_body, media)
    try:
        payload = decode_body(body, media)
    except ValueError as exc:
        err = RPCError(PARSE_ERROR, f"parse error: {exc}")
        return _reply({"jsonrpc": "2.0", "id": None, "error": err.to_obj()}, media)
    result = await d.handle(payload)
    if result is None:
        return web.Response(status=204)
    return _reply(result, media)


def _too_large(size: int | None, limit: int, media: str) -> web.Response:
    what = f"{size} bytes" if size is not None else "larger than the limit"
    err = RPCError(int(Code.BODY_TOO_LARGE), f"request body is {what}; limit is {limit} bytes")
    return _reply({"jsonrpc": "2.0", "id": None, "error": err.to_obj()}, media, 413)


def _reply(value: Any, media: str, status: int = 200) -> web.Response:
    return web.Response(body=encode_body(value, media), status=status, content_type=media)


class Connection:
    """One WebSocket client: its subscriptions end with it."""

    _ids = itertools.count(1)

    def __init__(self, ws: web.WebSocketResponse, node: NodeView) -> None:
        self.ws = ws
        self.node = node
        self.subs: dict[str, Any] = {}
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1024)

    def subscribe(self, topic: str) -> str:
        if topic not in SUBSCRIPTION_TOPICS:
            raise RPCError(
                INVALID_PARAMS,
                f"invalid params: unknown topic {topic!r}; known: {', '.join(SUBSCRIPTION_TOPICS)}",
            )
        sid = hex(next(self._ids))

        def on_block(sealed: Any) -> None:
            if topic == "newHeads":
                results: list[Any] = [block_view(sealed.block, False)]
            else:  # epochs: one notification per task whose epoch closed in this block
                results = [
                    {"task": t, "height": sealed.block.height, "blockHash": sealed.block.hash}
                    for t in sealed.closed_epochs
                ]
            for result in results:
                note = {
                    "jsonrpc": "2.0",
                    "method": "mps_subscription",
                    "params": {"subscription": sid, "result": result},
                }
                try:
                    self.queue.put_nowait(note)
                except asyncio.QueueFull:  # a slow client loses notifications; the node goes on
                    log.warning("subscriber queue full; dropping notification", subscription=sid)

        self.subs[sid] = self.node.sequencer.subscribe(on_block)
        return sid

    def unsubscribe(self, sid: str) -> bool:
        cancel = self.subs.pop(sid, None)
        if cancel is None:
            return False
        cancel()
        return True

    def close(self) -> None:
        for sid in list(self.subs):
            self.unsubscribe(sid)


async def handle_ws(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=request.app[MAX_BODY_KEY])
    await ws.prepare(request)
    conn = Connection(ws, request.app[NODE_KEY])
    d = request.app[DISPATCHER_KEY]

    async def pump() -> None:
        while True:
            note = await conn.queue.get()
            await ws.send_str(encode_body(note, JSON).decode())

    pump_task = asyncio.create_task(pump())
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                raw, media = msg.data.encode(), JSON
            elif msg.type == WSMsgType.BINARY:
                raw, media = msg.data, MSGPACK
            else:
                break
            try:
                payload = decode_body(raw, media)
            except ValueError as exc:
                out: Any = {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": RPCError(PARSE_ERROR, f"parse error: {exc}").to_obj(),
                }
            else:
                out = await d.handle(payload, context=conn)
            if out is not None:
                if media == JSON:
                    await ws.send_str(encode_body(out, JSON).decode())
                else:
                    await ws.send_bytes(encode_body(out, MSGPACK))
    finally:
        pump_task.cancel()
        conn.close()
    return ws


async def handle_health(request: web.Request) -> web.Response:
    seq = request.app[NODE_KEY].sequencer
    return web.json_response({"status": "ok", "head": seq.head.height, "mempool": len(seq.mempool)})


async def handle_metrics(request: web.Request) -> web.Response:
    body = request.app[NODE_KEY].metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


def make_dispatcher(node: NodeView, max_batch: int, metrics: Any) -> Dispatcher:
    def observe(method: str, seconds: float, code: int | None) -> None:
        metrics.rpc_latency.labels(method).observe(seconds)
        if code is not None:
            metrics.rpc_errors.labels(str(code)).inc()

    d = Dispatcher(max_batch, observe)
    register_methods(d, node)
    register_fl_methods(d, node)

    async def mps_subscribe(topic: str, context: Any = None) -> str:
        """Subscribe this WebSocket connection to a topic (newHeads)."""
        if context is None:
            raise RPCError(int(Code.UNSUPPORTED_MEDIA_TYPE), "subscriptions need a WebSocket (/ws)")
        return str(context.subscribe(topic))

    async def mps_unsubscribe(sid: str, context: Any = None) -> bool:
        """Cancel a subscription of this connection."""
        if context is None:
            raise RPCError(int(Code.UNSUPPORTED_MEDIA_TYPE), "subscriptions need a WebSocket (/ws)")
        return bool(context.unsubscribe(sid))

    d.add("mps_subscribe", mps_subscribe, Param("topic", to_str))
    d.add("mps_unsubscribe", mps_unsubscribe, Param("subscription", to_str))
    return d


def add_routes(app: web.Application) -> None:
    app.router.add_post("/", handle_post)
    app.router.add_get("/ws", handle_ws)
    app.router.add_get("/health", handle_health)
    app.router.add_get("/metrics", handle_metrics)
