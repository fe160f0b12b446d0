"""``POST /txs``: signed transactions streamed as length-prefixed frames, admitted at wire speed.

Model updates are this chain's data plane: a client sends tens of chunk blobs per epoch, an
operator relays thousands of transactions. Over ``POST /`` each one pays a JSON-RPC envelope and an
HTTP round trip, and a batch is run one request after the other, so the node sat at a fifth of
what one core can decode, hash and verify (bench/ingest.py). Here the body is the transactions
themselves, each ``u32 big-endian length || raw signed transaction``, read as it arrives:

* the stateless half of admission (decode, limits, signature) runs on the verify pool in
  chunks of up to 1 MiB or 64 frames, ``window`` chunks at once (hashlib and ed25519 release
  the GIL), so a stream uses more than the event loop's core;
* the stateful half (nonces, pool, state) runs on the event loop **in stream order**, so a
  sender's consecutive nonces go in as they would one request after another; what it admitted
  is journaled in gathered writes off the loop, the last before the answer, so acknowledged
  still means journaled: the same checks and guarantees as ``mps_sendTransaction``;
* the stream **stops at its first refusal**: later frames are read no further and answered with
  1307 (STREAM_STOPPED), so a client's nonce sequence never gets a gap it did not choose;
* memory is bounded by ``window + 1`` chunks (each at most 1 MiB plus one frame of at most
  ``max_tx_size``) and an 8 MiB journal batch, whatever the body's length; at most
  ``max_stream_txs`` frames; each frame must arrive within ``body_timeout``, the whole body
  within ten of them.

The answer is a JSON (or, with ``Accept: application/msgpack``, msgpack) array of JSON-RPC
response objects, one per frame read, ``id`` the frame's index: ``result`` the hash, or ``error``
with the code ``mps_sendTransaction`` would have given. What was admitted before an error stays
admitted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import StreamReader, web

from mps_common.tx_stream import FRAME_PREFIX as _FRAME
from mps_common.tx_stream import TX_STREAM
from stf.errors import INTERNAL_ERROR, Code, MPSError
from stf.tx import Transaction

from .codec import JSON, MSGPACK, encode_body
from .jsonrpc import RPCError
from .ports import StreamAdmission


@dataclass(frozen=True)
class StreamLimits:
    max_tx_size: int
    max_stream_txs: int
    frame_timeout: float
    window: int  # chunks of frames checked at once


@dataclass(frozen=True)
class TxStream:
    """What ``POST /txs`` needs from the node (the app's ``TX_STREAM_KEY``)."""

    admission: StreamAdmission
    limits: StreamLimits


TX_STREAM_KEY = web.AppKey("tx_stream", TxStream)
STREAM_TIMEOUTS = 10
"""A whole stream must arrive within this many ``body_timeout``s (10 min by default)."""
log = structlog.get_logger("mps.rpc")


class _StreamEnd(Exception):
    """The body cannot go on: a malformed or oversized frame, or one that never arrived."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.error = RPCError(code, message)


class _Frames:
    """The body's frames, cut out of the chunks as the socket delivers them: a frame inside one
    chunk is one slice, one across chunks one join. (``readexactly`` joined each read's chunks
    and then the reads: two or three copies of every transaction, each a round of page faults,
    the largest single cost of a 1 MB stream.)"""

    def __init__(self, content: StreamReader, limits: StreamLimits) -> None:
        self._content = content
        self._limits = limits
        self._chunks: deque[bytes] = deque()
        self._offset = 0  # into the first chunk
        self._size = 0  # bytes held, from the offset on
        # the whole body's bound: a frame every body_timeout would hold a socket for days
        self._ends = asyncio.get_running_loop().time() + STREAM_TIMEOUTS * limits.frame_timeout

    async def _fill(self, n: int, deadline: float, index: int) -> bool:
        """Hold at least ``n`` bytes; False at the body's end before that."""
        loop = asyncio.get_running_loop()
        while self._size < n:
            left = min(deadline, self._ends) - loop.time()
            try:
                if left <= 0:
                    raise TimeoutError
                chunk = await asyncio.wait_for(self._content.readany(), left)
            except TimeoutError:
                if loop.time() >= self._ends:
                    whole = STREAM_TIMEOUTS * self._limits.frame_timeout
                    msg = f"the stream did not arrive within {whole:g}s (frame {index})"
                else:
                    msg = f"frame {index} did not arrive within {self._limits.frame_timeout}s"
                raise _StreamEnd(int(Code.BODY_TIMEOUT), msg) from None
            if not chunk:
                return False
            self._chunks.append(chunk)
            self._size += len(chunk)
        return True

    def _take(self, n: int) -> bytes:
        first = self._chunks[0]
        if len(first) - self._offset >= n:
            out = first[self._offset : self._offset + n]
            self._offset += n
        else:
            parts: list[memoryview] = []
            need = n
            while need:
                chunk = self._chunks[0]
                piece = memoryview(chunk)[self._offset : self._offset + need]
                parts.append(piece)
                need -= len(piece)
                self._offset += len(piece)
                if self._offset == len(chunk) and need:
                    self._chunks.popleft()
                    self._offset = 0
            out = b"".join(parts)
        if self._offset == len(self._chunks[0]):
            self._chunks.popleft()
            self._offset = 0
        self._size -= n
        return out

    async def next(self, index: int) -> bytes | None:
        """The next frame's transaction, or None at the body's end."""
        deadline = asyncio.get_running_loop().time() + self._limits.frame_timeout
        if not await self._fill(_FRAME.size, deadline, index):
            if self._size == 0:
                return None
            raise _StreamEnd(
                int(Code.STREAM_MALFORMED), f"frame {index}: the body ends inside a length prefix"
            )
        (length,) = _FRAME.unpack(self._take(_FRAME.size))
        if length == 0 or length > self._limits.max_tx_size:
            raise _StreamEnd(
                int(Code.STREAM_MALFORMED),
                f"frame {index} is {length} bytes; a transaction is 1 to "
                f"{self._limits.max_tx_size} bytes",
            )
        if not await self._fill(length, deadline, index):
            raise _StreamEnd(
                int(Code.STREAM_MALFORMED),
                f"frame {index}: the body ends after {self._size} of its {length} bytes",
            )
        return self._take(length)


def _ok(index: int, tx_hash: bytes, media: str) -> dict[str, Any]:
    result: Any = tx_hash if media == MSGPACK else "0x" + tx_hash.hex()
    return {"jsonrpc": "2.0", "id": index, "result": result}


def _err(index: int, err: RPCError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": index, "error": err.to_obj()}


def _refusal(exc: MPSError) -> RPCError:
    return RPCError(int(exc.code), exc.message, {"name": exc.code.name})


def _stopped(at: int) -> RPCError:
    return RPCError(
        int(Code.STREAM_STOPPED),
        f"not admitted: frame {at} of this stream was refused and the stream stops there",
        {"name": Code.STREAM_STOPPED.name},
    )


JOURNAL_BATCH = 8 * 1024 * 1024
"""Admitted bytes journaled in one write, off the event loop, while the stream goes on."""


class _Journal:
    """A stream's admitted transactions, journaled in batches: one write in flight at a time,
    the last awaited before the stream is answered (acknowledged means journaled)."""

    def __init__(self, adm: StreamAdmission) -> None:
        self._adm = adm
        self._batch: list[bytes] = []
        self._bytes = 0
        self._writing: asyncio.Task[None] | None = None

    async def add(self, raw: bytes) -> None:
        self._batch.append(raw)
        self._bytes += len(raw)
        if self._bytes >= JOURNAL_BATCH:
            await self._flush()

    async def _flush(self) -> None:
        if self._writing is not None:
            await self._writing
        batch, self._batch, self._bytes = self._batch, [], 0
        self._writing = asyncio.ensure_future(self._adm.journal(batch))

    async def done(self) -> None:
        await self._flush()
        assert self._writing is not None
        await self._writing


CHECK_BYTES = 1024 * 1024
CHECK_FRAMES = 64
"""Frames checked in one job on the verify pool: a thread handoff cost ~0.3 ms on this
project's 2-core machines, more than checking a 100 KB transaction, so frames go in chunks."""


async def admit_stream(content: StreamReader, stream: TxStream, media: str) -> list[dict[str, Any]]:
    """Every frame's answer, in order (see the module's docstring)."""
    limits, adm = stream.limits, stream.admission
    answers: list[dict[str, Any]] = []
    checking: deque[tuple[asyncio.Future[list[Transaction | MPSError]], list[bytes]]] = deque()
    chunk: list[bytes] = []
    chunk_bytes = 0
    in_flight = 0  # frames read and not yet answered
    journal = _Journal(adm)
    frames = _Frames(content, limits)
    refused: int | None = None

    def submit() -> None:
        nonlocal chunk, chunk_bytes
        if chunk:
            checking.append((asyncio.ensure_future(adm.check_many(chunk)), chunk))
            chunk, chunk_bytes = [], 0

    async def admit_chunk() -> None:
        nonlocal refused, in_flight
        task, raws = checking.popleft()
        try:
            results = await task
        except MPSError as exc:  # the whole job refused (the node is shutting down): per frame
            results = [exc] * len(raws)
        in_flight -= len(raws)
        for checked, raw in zip(results, raws, strict=True):
            index = len(answers)
            if refused is not None:
                answers.append(_err(index, _stopped(refused)))
                continue
            try:
                if isinstance(checked, MPSError):
                    raise checked
                answers.append(_ok(index, adm.admit(checked, raw, journal=False), media))
            except MPSError as exc:
                refused = index
                answers.append(_err(index, _refusal(exc)))
                continue
            except Exception:  # a bug, not the sender's fault: said as -32603, the stream stops
                log.exception("admitting a streamed transaction failed", frame=index)
                refused = index
                answers.append(_err(index, RPCError(INTERNAL_ERROR, "internal error")))
                continue
            await journal.add(raw)

    tail: RPCError | None = None

    async def read_and_admit() -> None:
        nonlocal tail, chunk_bytes, in_flight
        try:
            while refused is None:
                index = len(answers) + in_flight
                raw = await frames.next(index)
                if raw is None:
                    break
                if index >= limits.max_stream_txs:
                    raise _StreamEnd(
                        int(Code.BATCH_TOO_LARGE),
                        f"a stream holds at most {limits.max_stream_txs} transactions",
                    )
                chunk.append(raw)
                chunk_bytes += len(raw)
                in_flight += 1
                if chunk_bytes >= CHECK_BYTES or len(chunk) >= CHECK_FRAMES:
                    submit()
                while len(checking) >= limits.window:  # bounded: admit the oldest first
                    await admit_chunk()
        except _StreamEnd as end:
            tail = end.error
        submit()
        while checking:  # what was read is answered, in order
            await admit_chunk()

    try:
        await read_and_admit()
    except BaseException:
        # a fault, not a refusal (the journal's disk, a cancelled request): nothing is
        # acknowledged, and nothing is left running against the pool or the journal (a
        # write left in flight could outlive the journal at shutdown: a red team's)
        for task, _ in checking:
            task.cancel()
        with contextlib.suppress(Exception):
            await journal.done()
        raise
    await journal.done()
    if tail is not None and refused is None:
        answers.append(_err(len(answers), tail))
    return answers


async def handle_tx_stream(request: web.Request) -> web.Response:
    media = (
        MSGPACK if request.headers.get("Accept", "") in (MSGPACK, "application/x-msgpack") else JSON
    )
    if request.content_type != TX_STREAM:
        err = RPCError(
            int(Code.UNSUPPORTED_MEDIA_TYPE),
            f"POST /txs takes {TX_STREAM} (u32 big-endian length || raw transaction, repeated), "
            f"not {request.content_type}",
        )
        return web.Response(body=encode_body([_err(0, err)], media), status=415, content_type=media)
    answers = await admit_stream(request.content, request.app[TX_STREAM_KEY], media)
    return web.Response(body=encode_body(answers, media), content_type=media)
