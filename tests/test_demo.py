"""The demo federation end to end: a real ``mps-node dev`` (anvil, contracts, staked dev
clients) and ``python -m examples.demo --quick`` against it, both as subprocesses."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from devnet_process import dev_env, dev_node

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
FREE_RIDERS = {"fr_replay", "fr_copy", "fr_noise"}


def test_demo_catches_the_cheaters_and_pays_the_honest(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    devnet = tmp_path / "devnet"
    devnet.mkdir()
    log = devnet / "node.log"
    with dev_node(devnet, log) as node:
        demo = subprocess.run(
            [sys.executable, "-m", "examples.demo", "--devnet", str(devnet), "--rpc", node.url,
             "--quick", "--out", str(tmp_path / "out")],
            cwd=ROOT, env=dev_env(), capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        text = demo.stdout + demo.stderr
        assert demo.returncode == 0, text[-5000:]
    assert node.proc.returncode == 0, log.read_text()[-3000:]

    assert (tmp_path / "out" / "demo.png").stat().st_size > 10_000
    result = json.loads((tmp_path / "out" / "demo.json").read_text())
    clients = result["clients"]
    honest = [c for c in clients if c["role"] == "honest"]
    cheats = [c for c in clients if c["role"] != "honest"]
    assert len(honest) == 6 and len(cheats) == 6

    # the printed verdicts: every honest client clean; the provable offender slashable, the
    # others barred from the task by their strikes (their stakes untouched)
    verdicts = text[text.index("## verdicts") : text.index("## L1: slashes")]
    for c in honest:
        assert re.search(rf"^  {c['name']}\s+honest\s+clean", verdicts, re.M), verdicts
    reasons = {c["role"]: set(c["reason"]) for c in cheats if c["slashable"] or c["barred"]}
    by_role = {c["role"]: c for c in cheats}
    assert reasons.get("fr_replay") == {"REPLAY_GLOBAL"} and by_role["fr_replay"]["slashable"]
    assert [c["role"] for c in cheats if c["slashable"]] == ["fr_replay"]  # the only proof
    # commit-reveal: the copier's stolen reveal is refused, so its copied commitment is never
    # opened (a REVEAL_MISSING strike each epoch); the victim's epoch is not touched
    assert reasons.get("fr_copy") == {"REVEAL_MISSING"}, reasons
    assert "COMMITMENT_MISMATCH" in text or "do not hash to the client's commitment" in text
    # noise of 3 x the last step's norm, zeros in epoch 0 (it has no step to scale to yet)
    assert reasons.get("fr_noise", set()) & {"UNCORRELATED", "KRUM_OUTLIER"}, reasons
    for role in ("gauss", "signflip"):  # Krum outliers (or uncorrelated) over two strikes
        assert reasons.get(role, set()) & {"KRUM_OUTLIER", "UNCORRELATED"}, (role, reasons)
    for c in cheats:
        word = "SLASHABLE" if c["slashable"] else "BARRED" if c["barred"] else None
        if word:
            assert re.search(rf"^  {c['name']}\s+{c['role']}\s+{word}", verdicts, re.M)
    assert "honest clients slashed or barred: none" in text
    assert result["honest_slashed"] == []
    # label flipping on non-IID data may need more than --quick's 6 epochs; everything else
    # is caught, and the free riders in the epochs bench/detection.py measures
    assert set(result["caught"]) >= FREE_RIDERS | {"gauss", "signflip"}
    # zeros in epoch 0 are a strike; resending epoch 0's step in epoch 1 is the proof
    assert by_role["fr_replay"]["slash_epoch"] == 1 and by_role["fr_copy"]["barred_epoch"] == 1

    # on the L1: the slashable clients were slashed, the honest ones still staked and paid
    for c in cheats:
        assert c["l1_status"] == ("slashed" if c["slashable"] else "staked"), c  # barred: kept
        assert c["reward_wei"] is None
    assert all(c["l1_status"] == "staked" for c in honest)
    assert all(c["reward_wei"] and c["reward_wei"] > 0 for c in honest)
    assert result["paid_wei"] == sum(c["reward_wei"] for c in honest) > 0

    # the robust model learns, and beats plain FedAvg of every update
    acc, fedavg = result["accuracy"], result["fedavg_all"]
    assert len(acc) == 6
    assert acc[-1] > 0.7 and acc[-1] > fedavg[-1] + 0.15, (acc, fedavg)
