"""/health says what is wrong (issue 14): it used to answer ok whatever happened."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from l1_node import l1_net
from rpc_fixtures import record_tx, start_node

from client_sdk.keys import Keypair
from node.health import L1_SILENT_S, health

pytestmark = pytest.mark.slow


async def test_a_working_node_is_ok_and_says_its_figures(tmp_path: Path) -> None:
    async with start_node(tmp_path / "n") as h:
        await h.send_ok(record_tx(Keypair.generate(), 0))
        await h.seal()
        resp = await h.client.get("/health")
        view = await resp.json()
        assert resp.status == 200 and view["status"] == "ok" and view["problems"] == []
        assert view["head"] == 1 and 0 <= view["headAgeSeconds"] < 60
        assert (view["mempool"], view["queued"]) == (0, 0)
        assert "l1" not in view


async def test_a_stalled_head_with_waiting_transactions_is_degraded(tmp_path: Path) -> None:
    async with start_node(tmp_path / "n") as h:
        await h.send_ok(record_tx(Keypair.generate(), 0))
        await h.seal()
        await h.send_ok(record_tx(Keypair.generate(), 0))  # waits; nothing seals it
        later = time.time() + 120
        view = health(h.node, now=later)
        assert view["status"] == "degraded"
        assert view["problems"] == [view["problems"][0]] and "head stalled" in view["problems"][0]
        assert health(h.node)["status"] == "ok"  # now: a block a moment ago
        resp = await h.client.get("/health")
        assert resp.status == 200


async def test_an_l1_service_without_a_round_is_degraded(tmp_path: Path) -> None:
    async with l1_net(tmp_path) as net:
        node = net.h.node
        view = health(node, now=node.started + L1_SILENT_S + 1)  # services never ran here
        assert view["status"] == "degraded"
        assert {p.split(":")[0] for p in view["problems"]} == {
            "l1 follower",
            "l1 poster",
            "l1 aggregator",
        }
        assert set(view["l1"]) == {"safe", "finalized", "unpostedBlocks", "services"}
        now = time.time()
        for role in ("follower", "poster", "aggregator"):
            node.metrics.l1_round_ok(role, now)
        node.metrics.l1_round_failed("poster", "connection refused")
        view = health(node, now=now + 1)
        assert view["status"] == "ok", view
        assert view["l1"]["services"]["poster"] == {
            "lastRoundSecondsAgo": 1.0,
            "lastError": "connection refused",
        }
        view = health(node, now=now + L1_SILENT_S + 5)
        assert any("connection refused" in p for p in view["problems"])
