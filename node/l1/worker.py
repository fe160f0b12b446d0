"""Blocking L1 steps on a worker thread that a cancellation waits for instead of abandoning.

The services' steps read LevelDB (the poster's blocks, the aggregator's leaves and proofs).
When the node stops, it cancels the services and then closes the database; a bare
``asyncio.to_thread`` lets the task end at once while its thread still runs, and plyvel
crashes the whole process (SIGSEGV) when a read or an iterator outlives its database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


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
