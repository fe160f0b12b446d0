"""The explorer page (rpc/explorer.py) in a real headless Chromium against a real node.

The node has a task whose epoch 0 closed with one client sending zeros (a ZERO strike); the
page, loaded once, must show the task, the epoch's records with their flags and credits, every
client's verdict, and say it is live over the WebSocket (its ``mps_subscribe`` answered). A
screenshot is kept beside the test's temporary files and its path printed.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import pytest
from rpc_fixtures import hx, start_node
from test_fl_rpc import close_epoch_zero, make_scenario, open_task

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=15000", "--window-size=1200,1400",
)  # fmt: skip


async def chromium(profile: Path, *args: str) -> str:
    """Run headless Chromium (a fresh ``profile`` directory) without blocking the node's event
    loop."""
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    return out.decode(errors="replace")


async def test_the_explorer_is_served_as_a_page(tmp_path: Path) -> None:
    async with start_node(tmp_path / "n") as h:
        resp = await h.client.get("/explorer")
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
        assert "<title>MPS chain explorer</title>" in page and "mps_subscribe" in page
        assert "default-src 'self'" in resp.headers["Content-Security-Policy"]


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (scripts/setup.sh installs Debian's where apt-get runs)",
)
async def test_the_explorer_shows_tasks_epochs_and_verdicts_in_chromium(tmp_path: Path) -> None:
    sc = make_scenario()
    async with start_node(tmp_path / "n", genesis_stakes=sc.stakes()) as h:
        await open_task(h, sc)
        await close_epoch_zero(h, sc)
        url = str(h.client.make_url("/explorer"))
        dom = await chromium(tmp_path / "profile-dom", "--dump-dom", url)
        shot = tmp_path / "explorer.png"
        await chromium(tmp_path / "profile-shot", f"--screenshot={shot}", url)
    assert "live over the WebSocket" in dom, dom[-3000:]
    assert hx(sc.tid)[:12] in dom and "rpc-task" in dom
    epoch = dom[dom.index("Epoch 0:") :]
    assert epoch.startswith("Epoch 0: 6 updates") and "without a reference" in epoch[:200]
    assert epoch.count("ZERO") == 1  # the zero sender's record
    clients = dom[dom.index('class="clients"') : dom.index("Epoch 0:")]
    assert clients.count(">clean<") == 5 and clients.count("1 strike(s)") == 1
    assert re.search(r">1000<", epoch), epoch[:2000]  # an honest first-epoch credit
    assert shot.stat().st_size > 20_000
    print(f"explorer screenshot: {shot}")
