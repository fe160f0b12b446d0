"""New heads over the node's WebSocket, so that a waiting client wakes on a block, not a timer.

Every wait of the SDK (a receipt, a stake, the reveal phase, an epoch's close, a funding) is a
check of chain state that can only change when a block is sealed. A flow takes a
:class:`~client_sdk.flow.HeadMark` before it checks and, when the check says "not yet", a
:class:`~client_sdk.flow.NextHead` with that mark: the watcher answers as soon as a head newer
than the mark arrives (``mps_subscribe("newHeads")``), or after a safety interval. A block sealed
between the mark and the wait is not missed, since the mark counts it.

Without a subscription (a node without ``/ws``, a proxy that drops WebSockets, the connection
lost) it waits the flow's poll interval instead, as the SDK always did, and keeps retrying the
subscription in the background. ``MPSClient`` runs the subscription on a daemon thread with its
own event loop, ``AsyncMPSClient`` as a task on its loop; both start it on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable
from urllib.parse import urljoin

import aiohttp

#: The longest wait for a head while subscribed: a safety net for a lost notification (a node
#: seals a block at least every ``block_time`` while anything waits for one).
SUBSCRIBED_WAIT = 2.0
#: Seconds between attempts to (re)subscribe.
RETRY = 2.0

SUBSCRIBE = {"jsonrpc": "2.0", "id": 1, "method": "mps_subscribe", "params": ["newHeads"]}


def ws_url(rpc_url: str) -> str:
    """The node's WebSocket endpoint beside its JSON-RPC one (``http://h:p/`` -> ``ws://h:p/ws``)."""
    url = urljoin(rpc_url if rpc_url.endswith("/") else rpc_url + "/", "ws")
    return "ws" + url.removeprefix("http")


class _Counter:
    """The count of heads seen, and whether a subscription is live."""

    def __init__(self) -> None:
        self.count = 0
        self.live = False


async def _follow(url: str, on_head: Callable[[], None], set_live: Callable[[bool], None]) -> None:
    """Subscribe to new heads at ``url`` and call ``on_head()`` for each, for ever; reconnect."""
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.ws_connect(url, heartbeat=30.0) as ws:
                    await ws.send_str(json.dumps(SUBSCRIBE))
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        body = json.loads(msg.data)
                        if body.get("id") == 1 and "result" in body:
                            set_live(True)
                            on_head()  # anything may have changed while not subscribed
                        elif body.get("method") == "mps_subscription":
                            on_head()
            except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
                pass
            set_live(False)
            await asyncio.sleep(RETRY)


class HeadWatcher:
    """``MPSClient``'s: the subscription on a daemon thread, waits on a condition. One per node
    URL and process (:meth:`shared`): a node holds at most 64 sockets per address, and a process
    running many clients must not spend them on subscriptions."""

    _shared: dict[str, HeadWatcher] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, rpc_url: str) -> HeadWatcher:
        with cls._shared_lock:
            url = ws_url(rpc_url)
            if url not in cls._shared:
                cls._shared[url] = cls(rpc_url)
            return cls._shared[url]

    def __init__(self, rpc_url: str) -> None:
        self.url = ws_url(rpc_url)
        self._state = _Counter()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def live(self) -> bool:
        return self._state.live

    def mark(self) -> int:
        if self._thread is None:
            self._thread = threading.Thread(
                target=lambda: asyncio.run(_follow(self.url, self._on_head, self._set_live)),
                name="mps-sdk-heads",
                daemon=True,
            )
            self._thread.start()
        return self._state.count

    def wait(self, mark: int, poll: float) -> None:
        """Until a head newer than ``mark``; at most ``poll`` s unsubscribed, else a safety net."""
        with self._cond:
            timeout = SUBSCRIBED_WAIT if self._state.live else poll
            self._cond.wait_for(lambda: self._state.count > mark, timeout=timeout)

    def _on_head(self) -> None:
        with self._cond:
            self._state.count += 1
            self._cond.notify_all()

    def _set_live(self, live: bool) -> None:
        with self._cond:
            self._state.live = live
            self._cond.notify_all()


class AsyncHeadWatcher:
    """``AsyncMPSClient``'s: the subscription as a task on the client's loop. One per node URL
    and event loop (:meth:`shared`), ended when the last client using it closes."""

    _shared: dict[tuple[int, str], AsyncHeadWatcher] = {}

    @classmethod
    def shared(cls, rpc_url: str) -> AsyncHeadWatcher:
        """The loop's watcher for this node (callable outside a running loop: it binds to the
        loop of its first wait)."""
        try:
            loop_id = id(asyncio.get_running_loop())
        except RuntimeError:  # made outside a loop: its own, bound at its first wait
            own = cls(rpc_url)
            own._users = 1
            return own
        key = (loop_id, ws_url(rpc_url))
        found = cls._shared.get(key)
        if found is None:
            found = cls._shared[key] = cls(rpc_url)
            found._key = key
        found._users += 1
        return found

    def __init__(self, rpc_url: str) -> None:
        self.url = ws_url(rpc_url)
        self._state = _Counter()
        self._cond: asyncio.Condition | None = None
        self._task: asyncio.Task[None] | None = None
        self._users = 0
        self._key: tuple[int, str] | None = None

    @property
    def live(self) -> bool:
        return self._state.live

    def mark(self) -> int:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.get_loop() is not loop:  # first use, or a new loop
            self._cond = asyncio.Condition()
            self._state.live = False
            self._task = loop.create_task(_follow(self.url, self._on_head, self._set_live))
        return self._state.count

    async def wait(self, mark: int, poll: float) -> None:
        assert self._cond is not None, "mark() first"
        timeout = SUBSCRIBED_WAIT if self._state.live else poll
        async with self._cond:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._cond.wait_for(lambda: self._state.count > mark), timeout
                )

    def _on_head(self) -> None:
        self._state.count += 1
        if self._cond is not None:
            asyncio.get_running_loop().create_task(self._notify())

    def _set_live(self, live: bool) -> None:
        self._state.live = live

    async def _notify(self) -> None:
        assert self._cond is not None
        async with self._cond:
            self._cond.notify_all()

    async def close(self) -> None:
        """One user less; the subscription ends with the last."""
        self._users -= 1
        if self._users > 0:
            return
        if self._key is not None and AsyncHeadWatcher._shared.get(self._key) is self:
            del AsyncHeadWatcher._shared[self._key]
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
