"""The L1 services' loop: a blocking step on a worker thread, again and again, with backoff.

The follower, the poster and the aggregator differ only in their step and in what they count.
Steps read LevelDB (the poster's blocks, the aggregator's leaves and proofs). When the node
stops, it cancels the services and then closes the database; a bare ``asyncio.to_thread``
lets the task end at once while its thread still runs, and plyvel crashes the whole process
(SIGSEGV) when a read or an iterator outlives its database.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..metrics import Metrics

T = TypeVar("T")
MAX_BACKOFF = 30.0  # seconds between tries while the L1 keeps failing


async def in_thread(fn: Callable[[], T]) -> T:
    """``await asyncio.to_thread(fn)``, except that if the caller is cancelled it still waits
    for ``fn`` to return (its result or error dropped) before the cancellation goes on."""
    fut = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await fut
        raise


async def step_forever(
    role: str,
    step: Callable[[], T],
    after: Callable[[T], bool],
    interval: float,
    metrics: Metrics | None,
    log: Any,
    failing: str,
) -> None:
    """Run ``step`` on a worker thread every ``interval`` seconds, then ``after(result)`` on the
    loop (``True``: step again at once). A step that raises (the L1 down or slow) is counted
    under ``role`` and logged as ``failing``, and the wait doubles up to :data:`MAX_BACKOFF`;
    the rollup never waits on the L1."""
    backoff = interval
    while True:
        try:
            again = after(await in_thread(step))
            backoff = interval
            if metrics is not None:
                metrics.l1_round_ok(role, time.time())
            if again:
                continue
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            backoff = min(backoff * 2, MAX_BACKOFF)
            if metrics is not None:
                metrics.l1_round_failed(role, str(exc)[:200])
            log.warning(failing, error=str(exc), retry_in=backoff)
        await asyncio.sleep(backoff)
