"""JSON-RPC clients for the node, sync (standard library only) and async (aiohttp).

Both speak msgpack by default, so transactions and blobs travel as raw bytes;
``media="json"`` switches to JSON with ``0x`` hex. Errors raise the typed
exceptions of :mod:`client_sdk.errors`.
"""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.request
from typing import Any

import msgpack

from .errors import TransportError, from_error_object

MEDIA = {"msgpack": "application/msgpack", "json": "application/json"}


def _encode(req: Any, media: str) -> bytes:
    if media == "msgpack":
        packed: bytes = msgpack.packb(req, use_bin_type=True)
        return packed
    return json.dumps(req, default=lambda b: "0x" + b.hex()).encode()


def _decode(body: bytes, media: str) -> Any:
    try:
        if media == "msgpack":
            return msgpack.unpackb(body, raw=False, strict_map_key=False)
        return json.loads(body)
    except Exception as exc:
        raise TransportError(0, f"node answered something that does not parse: {exc}") from None


def _unwrap(resp: Any) -> Any:
    if not isinstance(resp, dict) or resp.get("jsonrpc") != "2.0":
        raise TransportError(0, f"not a JSON-RPC response: {resp!r:.200}")
    if "error" in resp:
        raise from_error_object(resp["error"])
    return resp.get("result")


def _prep(value: Any, media: str) -> Any:
    """bytes go as-is in msgpack and as 0x hex in JSON."""
    if media == "json" and isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_prep(v, media) for v in value]
    return value


class RPCClient:
    def __init__(self, url: str, media: str = "msgpack", timeout: float = 30.0) -> None:
        if media not in MEDIA:
            raise ValueError("media must be 'msgpack' or 'json'")
        self.url = url
        self.media = media
        self.timeout = timeout
        self._ids = itertools.count(1)

    def call(self, method: str, *params: Any) -> Any:
        req = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": method,
            "params": _prep(list(params), self.media),
        }
        http = urllib.request.Request(
            self.url,
            data=_encode(req, self.media),
            method="POST",
            headers={"Content-Type": MEDIA[self.media], "Accept": MEDIA[self.media]},
        )
        try:
            with urllib.request.urlopen(http, timeout=self.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
            if not body:
                raise TransportError(exc.code, f"HTTP {exc.code} from {self.url}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise TransportError(0, f"cannot reach {self.url}: {exc}") from None
        return _unwrap(_decode(body, self.media))


class AsyncRPCClient:
    def __init__(self, url: str, media: str = "msgpack", timeout: float = 30.0) -> None:
        import aiohttp

        if media not in MEDIA:
            raise ValueError("media must be 'msgpack' or 'json'")
        self.url = url
        self.media = media
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> AsyncRPCClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, *params: Any) -> Any:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        req = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": method,
            "params": _prep(list(params), self.media),
        }
        try:
            async with self._session.post(
                self.url,
                data=_encode(req, self.media),
                headers={"Content-Type": MEDIA[self.media]},
            ) as resp:
                body = await resp.read()
        except aiohttp.ClientError as exc:
            raise TransportError(0, f"cannot reach {self.url}: {exc}") from None
        return _unwrap(_decode(body, self.media))
