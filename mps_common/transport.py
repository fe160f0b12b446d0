"""JSON-RPC clients for a node, sync (standard library only) and async (aiohttp).

Shared by the SDK and the node's own tools (``mps-node verify`` reads another node), so it lives
outside both. Both speak msgpack by default, so transactions and blobs travel as raw bytes;
``media="json"`` switches to JSON with ``0x`` hex. Errors raise the typed exceptions of
:mod:`mps_common.errors` (re-exported by :mod:`client_sdk.errors`).
"""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any, TypeAlias

import msgpack

from .errors import InvalidArgument, RPCError, TransportError, from_error_object
from .hexutil import from_hex, to_hex
from .tx_stream import TX_STREAM, frame

MEDIA = {"msgpack": "application/msgpack", "json": "application/json"}


def _check_media(media: str) -> None:
    if media not in MEDIA:
        raise InvalidArgument("media must be 'msgpack' or 'json'")


def _encode(req: Any, media: str) -> bytes:
    if media == "msgpack":
        packed: bytes = msgpack.packb(req, use_bin_type=True)
        return packed
    return json.dumps(req, default=to_hex).encode()


def _request(req_id: int, method: str, params: tuple[Any, ...], media: str) -> bytes:
    """One JSON-RPC request body, bytes parameters in the media's form."""
    req = {"jsonrpc": "2.0", "id": req_id, "method": method, "params": _prep(list(params), media)}
    return _encode(req, media)


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
        return to_hex(value)
    if isinstance(value, list | tuple):
        return [_prep(v, media) for v in value]
    return value


def stream_url(url: str) -> str:
    """``POST /txs`` beside the node's JSON-RPC endpoint (a path prefix of a proxy kept)."""
    return urllib.parse.urljoin(url if url.endswith("/") else url + "/", "txs")


Admitted: TypeAlias = bytes | RPCError
"""One streamed transaction's answer: its hash, or the error the node gave it."""


def _stream_answers(body: bytes, media: str, sent: int) -> list[Admitted]:
    answers = _decode(body, media)
    if not isinstance(answers, list) or len(answers) > sent:
        raise TransportError(0, f"not a POST /txs answer: {answers!r:.200}")
    out: list[Admitted] = []
    for i, answer in enumerate(answers):
        if not isinstance(answer, dict) or answer.get("id") != i:
            raise TransportError(0, f"POST /txs answer {i} is out of order: {answer!r:.200}")
        try:
            result = _unwrap(answer)
        except RPCError as exc:
            out.append(exc)
            continue
        out.append(result if isinstance(result, bytes) else from_hex(str(result)))
    return out


class RPCClient:
    """Blocking calls over urllib: for scripts, threads, and the node's synchronous tools."""

    def __init__(self, url: str, media: str = "msgpack", timeout: float = 30.0) -> None:
        _check_media(media)
        self.url = url
        self.media = media
        self.timeout = timeout
        self._ids = itertools.count(1)

    def call(self, method: str, *params: Any) -> Any:
        http = urllib.request.Request(
            self.url,
            data=_request(next(self._ids), method, params, self.media),
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

    def send_stream(self, raws: Sequence[bytes]) -> list[Admitted]:
        """Send signed transactions in one ``POST /txs`` stream; an answer per transaction the
        node read (it stops at the first refusal: the rest are :class:`StreamStopped`)."""
        http = urllib.request.Request(
            stream_url(self.url),
            data=frame(raws),
            method="POST",
            headers={"Content-Type": TX_STREAM, "Accept": MEDIA[self.media]},
        )
        try:
            with urllib.request.urlopen(http, timeout=self.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            raise TransportError(exc.code, f"HTTP {exc.code} from {http.full_url}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise TransportError(0, f"cannot reach {self.url}: {exc}") from None
        return _stream_answers(body, self.media, len(raws))


class AsyncRPCClient:
    """Calls over one aiohttp session, opened on first use; close it (or ``async with``)."""

    def __init__(self, url: str, media: str = "msgpack", timeout: float = 30.0) -> None:
        import aiohttp

        _check_media(media)
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
        body = _request(next(self._ids), method, params, self.media)
        try:
            async with self._session.post(
                self.url,
                data=body,
                headers={"Content-Type": MEDIA[self.media]},
            ) as resp:
                body = await resp.read()
        except aiohttp.ClientError as exc:
            raise TransportError(0, f"cannot reach {self.url}: {exc}") from None
        return _unwrap(_decode(body, self.media))

    async def send_stream(self, raws: Sequence[bytes]) -> list[Admitted]:
        """:meth:`RPCClient.send_stream`, over this client's session."""
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = stream_url(self.url)
        try:
            async with self._session.post(
                url,
                data=frame(raws),
                headers={"Content-Type": TX_STREAM, "Accept": MEDIA[self.media]},
            ) as resp:
                if resp.status != 200:
                    raise TransportError(resp.status, f"HTTP {resp.status} from {url}")
                body = await resp.read()
        except aiohttp.ClientError as exc:
            raise TransportError(0, f"cannot reach {self.url}: {exc}") from None
        return _stream_answers(body, self.media, len(raws))
