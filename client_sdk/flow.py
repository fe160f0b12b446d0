"""The steps the shared client core asks for, and the loops that take them.

:class:`~client_sdk.core.ClientCore` writes each operation once, as a generator that yields what
it needs done (a node call, a pause, a blocking L1 call, a section under the send lock) and is
sent the answer. :class:`~client_sdk.client.MPSClient` takes the steps with urllib and
``time.sleep``, :class:`~client_sdk.async_client.AsyncMPSClient` with aiohttp and asyncio: the
logic has one copy, so the two faces cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
S = TypeVar("S")
R = TypeVar("R")


@dataclass(frozen=True)
class Call:
    """A JSON-RPC call to the node; the flow is sent its result or has its error raised."""

    method: str
    params: tuple[Any, ...]


@dataclass(frozen=True)
class Stream:
    """Signed transactions sent in one ``POST /txs`` stream; the flow is sent an answer per
    transaction the node read, each a hash or the error the node gave it."""

    raws: tuple[bytes, ...]


@dataclass(frozen=True)
class Sleep:
    """A pause between polls (``time.sleep`` or ``asyncio.sleep``)."""

    seconds: float


@dataclass(frozen=True)
class HeadMark:
    """The count of new heads the client has seen: take it before checking chain state, then
    wait with :class:`NextHead` (:mod:`client_sdk.heads`)."""


@dataclass(frozen=True)
class NextHead:
    """A wait for a head newer than ``mark`` (over the node's WebSocket), or ``poll`` seconds
    where no subscription is live."""

    mark: int
    poll: float


@dataclass(frozen=True)
class Blocking:
    """A call that cannot be split into steps (web3 on the L1): the async face runs it in a
    thread so that its event loop keeps going."""

    fn: Callable[[], Any]


@dataclass(frozen=True)
class Exclusive:
    """A sub-flow run under the client's send lock: concurrent senders take distinct nonces."""

    flow: Flow[Any]


Step = Call | Stream | Sleep | HeadMark | NextHead | Blocking | Exclusive
Flow = Generator[Step, Any, T]


def call(method: str, *params: Any) -> Flow[Any]:
    """``answer = yield from call(...)``: one node call inside a flow."""
    return (yield Call(method, params))


def stream(raws: Sequence[bytes]) -> Flow[list[Any]]:
    """``answers = yield from stream(raws)``: transactions sent in one stream inside a flow."""
    answers: list[Any] = yield Stream(tuple(raws))
    return answers


def head_mark() -> Flow[int]:
    """``mark = yield from head_mark()``, before a check of chain state."""
    mark: int = yield HeadMark()
    return mark


def next_head(mark: int, poll: float) -> Flow[None]:
    """``yield from next_head(mark, poll)``: after a check that said "not yet"."""
    yield NextHead(mark, poll)


def blocking(fn: Callable[[], T]) -> Flow[T]:
    """``value = yield from blocking(fn)``: a blocking call inside a flow."""
    result: T = yield Blocking(fn)
    return result


def drive(flow: Generator[S, Any, T], take: Callable[[S], Any]) -> T:
    """Run ``flow`` to its end, answering each step with ``take(step)``. What ``take`` raises
    is raised inside the flow at that step, so the flow's own ``try`` blocks see it."""
    answer: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = flow.send(answer) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        try:
            answer, error = take(step), None
        except BaseException as exc:  # cancellation too: the flow resets its nonce on it
            answer, error = None, exc


async def drive_async(flow: Generator[S, Any, T], take: Callable[[S], Awaitable[Any]]) -> T:
    """:func:`drive` with an awaited ``take``."""
    answer: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = flow.send(answer) if error is None else flow.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        try:
            answer, error = await take(step), None
        except BaseException as exc:
            answer, error = None, exc


def nested(flow: Generator[R, Any, T], answer: Callable[[R], Flow[Any]]) -> Flow[T]:
    """Run a flow that asks for something else (a blob by id, a proof by key) inside a client
    flow, each request answered by the client flow ``answer(request)``."""
    value: Any = None
    while True:
        try:
            request = flow.send(value)
        except StopIteration as stop:
            result: T = stop.value
            return result
        value = yield from answer(request)
