"""node.app's resources: opened in order, closed in reverse (L1 services, block loop, LevelDB),
and a resource that fails to open closes those opened before it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rpc_fixtures import start_node

import node.l1.service
from node.sequencer import Sequencer
from node.storage import Storage, StorageError


class FakeL1:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def start(self) -> None:
        self.events.append("l1 start")

    async def stop(self) -> None:
        self.events.append("l1 stop")


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the node's resources did, in order."""
    seen: list[str] = []
    seq_start, seq_stop, close = Sequencer.start, Sequencer.stop, Storage.close

    def start(self: Sequencer) -> None:
        seen.append("block loop start")
        seq_start(self)

    async def stop(self: Sequencer) -> None:
        seen.append("block loop stop")
        await seq_stop(self)

    def closed(self: Storage) -> None:
        seen.append("db close")
        close(self)

    monkeypatch.setattr(Sequencer, "start", start)
    monkeypatch.setattr(Sequencer, "stop", stop)
    monkeypatch.setattr(Storage, "close", closed)
    return seen


def with_l1(monkeypatch: pytest.MonkeyPatch, build: Any) -> dict[str, Any]:
    monkeypatch.setattr(node.l1.service, "build_l1_services", build)
    return {"l1_rpc": "http://l1.invalid"}


async def test_shutdown_stops_l1_then_the_block_loop_then_closes_the_db(
    tmp_path: Path, events: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    l1 = with_l1(monkeypatch, lambda *_: FakeL1(events))
    async with start_node(tmp_path / "n", produce_blocks=True, **l1) as h:
        assert isinstance(h.node.l1, FakeL1)
        assert events == ["block loop start", "l1 start"]
    assert events[2:] == ["l1 stop", "block loop stop", "db close"]


async def test_a_node_without_production_still_stops_its_sequencer(
    tmp_path: Path, events: list[str]
) -> None:
    async with start_node(tmp_path / "n") as h:
        assert h.node.l1 is None
    assert events == ["block loop stop", "db close"]


async def test_an_l1_that_fails_to_connect_closes_the_sequencer_and_the_db(
    tmp_path: Path, events: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*_: Any) -> None:
        raise RuntimeError("L1 unreachable")

    l1 = with_l1(monkeypatch, unreachable)
    with pytest.raises(RuntimeError, match="L1 unreachable"):
        async with start_node(tmp_path / "n", produce_blocks=True, **l1):
            pass
    assert events == ["block loop stop", "db close"]  # never started producing
    Storage(tmp_path / "n" / "chain.db").close()  # the LevelDB lock is free


async def test_a_database_of_another_chain_is_closed_again(
    tmp_path: Path, events: list[str]
) -> None:
    async with start_node(tmp_path / "n", chain_id=1):
        pass
    events.clear()
    with pytest.raises(StorageError, match="genesis"):
        async with start_node(tmp_path / "n", chain_id=2):
            pass
    assert events == ["db close"]
    Storage(tmp_path / "n" / "chain.db").close()
