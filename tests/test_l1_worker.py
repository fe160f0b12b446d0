"""``node.l1.worker``: the L1 services' loop. A cancelled service waits for its step in flight,
so the node can close LevelDB right after stopping the services (a read outliving plyvel's
database crashes the process; a node once died with SIGSEGV on SIGTERM this way), and a failing
L1 is retried with a doubling wait."""

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


async def test_step_forever_backs_off_on_failures_and_steps_again_at_once_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two failures double the wait (counted and logged), a success resets it, and a result
    for which ``after`` says "again" is followed by the next step without a wait."""
    from node.l1 import worker
    from node.metrics import Metrics

    results: list[object] = [RuntimeError("down"), RuntimeError("down"), "again", "idle", "idle"]
    seen: list[str] = []
    sleeps: list[float] = []
    warnings: list[tuple[str, dict[str, object]]] = []

    def step() -> str:
        r = results.pop(0)
        if isinstance(r, Exception):
            raise r
        assert isinstance(r, str)
        return r

    def after(r: str) -> bool:
        seen.append(r)
        return r == "again"

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if not results:
            raise asyncio.CancelledError

    class Log:
        def warning(self, event: str, **kw: object) -> None:
            warnings.append((event, kw))

    monkeypatch.setattr(worker.asyncio, "sleep", fake_sleep)
    metrics = Metrics()
    with pytest.raises(asyncio.CancelledError):
        await worker.step_forever("poster", step, after, 0.1, metrics, Log(), "cannot reach")
    assert seen == ["again", "idle", "idle"]
    assert sleeps == [0.2, 0.4, 0.1, 0.1]  # no wait after "again"
    assert [w[1]["retry_in"] for w in warnings] == [0.2, 0.4]
    errors = metrics.registry.get_sample_value("mps_l1_errors_total", {"service": "poster"})
    assert errors == 2
