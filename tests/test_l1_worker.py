"""``node.l1.worker.in_thread``: a cancelled L1 service waits for its step in flight, so the node
can close LevelDB right after stopping the services (a read outliving plyvel's database
crashes the process; a node once died with SIGSEGV on SIGTERM this way)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from node.l1.worker import in_thread
from node.storage import Storage


async def test_returns_the_result_and_raises_the_error() -> None:
    assert await in_thread(lambda: 41 + 1) == 42

    def fails() -> None:
        raise ValueError("no L1")

    with pytest.raises(ValueError, match="no L1"):
        await in_thread(fails)


async def test_cancelling_waits_for_a_step_reading_leveldb(tmp_path: Path) -> None:
    storage = Storage(tmp_path / "db")
    for i in range(20):
        storage.put_raw(b"leaf/%02d" % i, b"v")
    started = threading.Event()
    seen: list[bytes] = []

    def step() -> None:  # as the aggregator walks its leaves, slowly
        started.set()
        for key, _ in storage.iter_prefix(b"leaf/"):
            seen.append(key)
            time.sleep(0.01)

    task = asyncio.ensure_future(in_thread(step))
    assert await asyncio.to_thread(started.wait, 10)
    task.cancel()
    results = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert len(seen) == 20  # the step ran to its end before the cancellation completed
    storage.close()  # now safe: nothing reads the database any more
