"""HTTP and WebSocket transport for the JSON-RPC dispatcher, plus /health and /metrics."""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from mps_common.version import VERSION
from stf.errors import PARSE_ERROR, Code

from .codec import JSON, MSGPACK, decode_body, encode_body
from .explorer import handle_explorer
from .jsonrpc import Dispatcher, RPCError, approx_size
from .lookup import read_blob
from .openrpc import add_discover
from .ports import RPCMetrics, Served
from .rate import TokenBucket
from .registry import bind
from .subscriptions import Connection, SubscriptionMethods
from .tx_stream import handle_tx_stream

DISPATCHER_KEY = web.AppKey("dispatcher", Dispatcher)
NODE_KEY = web.AppKey("node", Served)
MAX_BODY_KEY = web.AppKey("max_body_size", int)
BODY_TIMEOUT_KEY = web.AppKey("body_timeout", float)
#: the open WebSockets, closed (1001 going away) when the node shuts down: a subscribed client
#: (the SDK keeps one to wake on new heads) must not hold the shutdown for its grace period
WEBSOCKETS_KEY: web.AppKey[weakref.WeakSet[web.WebSocketResponse]] = web.AppKey("websockets")
log = structlog.get_logger("mps.rpc")

DECODE_INLINE_BYTES = 256 * 1024  # larger bodies decode on a worker thread
ENCODE_INLINE_BYTES = 256 * 1024  # and larger answers encode on one
# requests one WebSocket connection may send: a client subscribes a handful of times and asks
# now and then; past the burst, more than WS_RATE a second closes the connection (rpc/rate.py)
WS_RATE = 50.0
WS_BURST = 200.0


class ThrottledCount:
    """Counts an event and logs it at most once per ``every`` seconds, with the count since."""

    def __init__(self, message: str, every: float = 10.0) -> None:
        self.message, self.every = message, every
        self.pending, self._last = 0, float("-inf")

    def note(self) -> None:
        self.pending += 1
        now = time.monotonic()
        if now - self._last >= self.every:
            log.warning(self.message, count=self.pending, rate=WS_RATE, burst=WS_BURST)
            self.pending, self._last = 0, now


WS_REFUSALS = ThrottledCount("websocket clients over their request rate closed")


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
    try:  # a body that trickles in would hold its connection and its buffer for ever
        body = await asyncio.wait_for(request.read(), request.app.get(BODY_TIMEOUT_KEY, 60.0))
    except web.HTTPRequestEntityTooLarge:
        return _too_large(None, max_body, media)
    except TimeoutError:
        timeout = request.app.get(BODY_TIMEOUT_KEY, 60.0)
        err = RPCError(int(Code.BODY_TIMEOUT), f"the request body did not arrive within {timeout}s")
        return _reply({"jsonrpc": "2.0", "id": None, "error": err.to_obj()}, media, 408)
    try:
        if len(body) > DECODE_INLINE_BYTES:  # a big body decodes on a thread: the loop goes on
            payload = await asyncio.to_thread(decode_body, body, media)
        else:
            payload = decode_body(body, media)
    except ValueError as exc:
        err = RPCError(PARSE_ERROR, f"parse error: {exc}")
        return _reply({"jsonrpc": "2.0", "id": None, "error": err.to_obj()}, media)
    result = await d.handle(payload)
    if result is None:
        return web.Response(status=204)
    body = await encoded(result, media)
    return web.Response(body=body, content_type=media)


async def encoded(value: Any, media: str) -> bytes:
    """``value`` encoded; a large answer (a batch of blobs: up to 25 MiB of JSON) on a worker
    thread, so that honest requests do not wait behind it (bench/soak.py: ~130 ms p99 before)."""
    if approx_size(value) > ENCODE_INLINE_BYTES:
        return await asyncio.to_thread(encode_body, value, media)
    return encode_body(value, media)


def _too_large(size: int | None, limit: int, media: str) -> web.Response:
    what = f"{size} bytes" if size is not None else "larger than the limit"
    err = RPCError(int(Code.BODY_TOO_LARGE), f"request body is {what}; limit is {limit} bytes")
    return _reply({"jsonrpc": "2.0", "id": None, "error": err.to_obj()}, media, 413)


def _reply(value: Any, media: str, status: int = 200) -> web.Response:
    return web.Response(body=encode_body(value, media), status=status, content_type=media)


async def handle_ws(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=request.app[MAX_BODY_KEY])
    await ws.prepare(request)
    request.app[WEBSOCKETS_KEY].add(ws)
    conn = Connection(ws, request.app[NODE_KEY].sequencer)
    d = request.app[DISPATCHER_KEY]

    async def pump() -> None:
        while True:
            note = await conn.queue.get()
            await ws.send_str(encode_body(note, JSON).decode())
            if conn.too_slow and conn.queue.empty():  # dropped: what it had is sent
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"consumer too slow")
                return

    pump_task = asyncio.create_task(pump())
    bucket = TokenBucket(WS_RATE, WS_BURST)
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                raw, media = msg.data.encode(), JSON
            elif msg.type == WSMsgType.BINARY:
                raw, media = msg.data, MSGPACK
            else:
                break
            try:
                if len(raw) > DECODE_INLINE_BYTES:  # as over HTTP: off the event loop
                    payload = await asyncio.to_thread(decode_body, raw, media)
                else:
                    payload = decode_body(raw, media)
            except ValueError as exc:
                payload, out = (
                    None,
                    {
                        "jsonrpc": "2.0",
                        "id": None,
                        "error": RPCError(PARSE_ERROR, f"parse error: {exc}").to_obj(),
                    },
                )
            # a batch costs one token per request in it (a frame may carry max_batch of them)
            cost = len(payload) if isinstance(payload, list) and payload else 1
            if not bucket.take(cost):
                WS_REFUSALS.note()
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too many requests")
                break
            if payload is not None:
                out = await d.handle(payload, context=conn)
            if out is not None:
                if media == JSON:
                    await ws.send_str((await encoded(out, JSON)).decode())
                else:
                    await ws.send_bytes(await encoded(out, MSGPACK))
    finally:
        pump_task.cancel()
        conn.close()
    return ws


async def handle_health(request: web.Request) -> web.Response:
    view = request.app[NODE_KEY].health()
    return web.json_response(view, status=200 if view["status"] == "ok" else 503)


BLOB_CHUNK = 256 * 1024  # what one write of a streamed blob sends


async def handle_blob(request: web.Request) -> web.StreamResponse:
    """``GET /blob/0x<sha256>``: a blob's raw bytes, streamed (``application/octet-stream``,
    its sha256 in ``ETag``): a 4 MiB blob is 4 MiB on the wire, not 8 MiB of hex inside a JSON
    answer built in one piece, and a client checks it against the hash it asked for."""
    text = request.match_info["hash"]
    try:
        blob_hash = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        blob_hash = b""
    if len(blob_hash) != 32:
        raise web.HTTPBadRequest(text=f"not a 32-byte hex sha256: {text[:80]!r}")
    node = request.app[NODE_KEY]
    data = await read_blob(node, blob_hash)
    if data is None:
        at = node.pruned_at(blob_hash)
        why = "" if at is None else f" (pruned by this node's blob retention at height {at})"
        raise web.HTTPNotFound(text=f"no blob {blob_hash.hex()}{why}")
    resp = web.StreamResponse(
        headers={"Content-Type": "application/octet-stream", "ETag": f'"{blob_hash.hex()}"'}
    )
    resp.content_length = len(data)
    await resp.prepare(request)
    view = memoryview(data)
    for at in range(0, len(data), BLOB_CHUNK):  # each write waits for the socket to drain
        await resp.write(view[at : at + BLOB_CHUNK])
    await resp.write_eof()
    return resp


async def handle_metrics(request: web.Request) -> web.Response:
    body = request.app[NODE_KEY].metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


def make_dispatcher(max_batch: int, metrics: RPCMetrics, *namespaces: object) -> Dispatcher:
    """A dispatcher serving ``namespaces`` and the subscriptions, recording into ``metrics``."""

    def observe(method: str, seconds: float, code: int | None) -> None:
        metrics.rpc_latency.labels(method).observe(seconds)
        if code is not None:
            metrics.rpc_errors.labels(str(code)).inc()

    d = Dispatcher(max_batch, observe)
    bind(d, *namespaces, SubscriptionMethods())
    add_discover(d, VERSION)
    return d


async def close_websockets(app: web.Application) -> None:
    sockets: weakref.WeakSet[web.WebSocketResponse] = app[WEBSOCKETS_KEY]
    for ws in list(sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"node shutting down")


def add_routes(app: web.Application) -> None:
    app[WEBSOCKETS_KEY] = weakref.WeakSet()
    app.on_shutdown.append(close_websockets)
    app.router.add_post("/", handle_post)
    app.router.add_post("/txs", handle_tx_stream)
    app.router.add_get("/ws", handle_ws)
    app.router.add_get("/health", handle_health)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get("/blob/{hash}", handle_blob, allow_head=False)
    app.router.add_get("/explorer", handle_explorer)
