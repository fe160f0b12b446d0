"""`mps-node deploy` then `mps-node run` against a real anvil, as an operator would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from contracts.anvil import Anvil
from contracts.transact import contract
from mps_common.transport import RPCClient

pytestmark = pytest.mark.slow


def mps_node(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_deploy_writes_the_addresses_and_run_settles_on_them(tmp_path: Path) -> None:
    datadir = tmp_path / "node"
    with Anvil(block_time=None) as anvil:
        assert mps_node("init", "--datadir", str(datadir)).returncode == 0
        cfg = datadir / "config.toml"
        key = tmp_path / "l1.key"
        key.write_text(anvil.accounts[0].key.hex())
        bad = mps_node("deploy", "--config", str(cfg), "--l1-rpc", anvil.url,
                       "--l1-chain-id", "1", "--l1-key-file", str(key))  # fmt: skip
        assert bad.returncode == 2 and "chain id 31337" in bad.stderr
        # issue 12: the admin may not be the sequencer, nor decide challenges alone
        resolvers = [x for a in anvil.accounts[2:5] for x in ("--resolver", a.address)]
        both = mps_node("deploy", "--config", str(cfg), "--l1-rpc", anvil.url,
                        "--l1-chain-id", "31337", "--l1-key-file", str(key),
                        *resolvers)  # fmt: skip
        assert both.returncode == 2 and "the admin would be the sequencer" in both.stderr
        admin = anvil.accounts[1].address
        alone = mps_node("deploy", "--config", str(cfg), "--l1-rpc", anvil.url,
                         "--l1-chain-id", "31337", "--l1-key-file", str(key),
                         "--admin-address", admin)  # fmt: skip
        assert alone.returncode == 2 and "committee of independent resolvers" in alone.stderr
        done = mps_node("deploy", "--config", str(cfg), "--l1-rpc", anvil.url,
                        "--l1-chain-id", "31337", "--l1-key-file", str(key),
                        "--admin-address", admin, *resolvers)  # fmt: skip
        assert done.returncode == 0, done.stderr
        written = tomllib.loads(cfg.read_text())
        for name in (
            "l1_staking_registry",
            "l1_rollup",
            "l1_slashing_manager",
            "l1_reward_manager",
        ):
            assert anvil.w3().eth.get_code(written[name])
        assert written["l1_chain_id"] == 31337
        printed = dict(line.split() for line in done.stdout.splitlines() if line.count(" 0x") == 1)
        committee = contract(anvil.w3(), "ResolverCommittee", printed["ResolverCommittee"])
        assert (committee.functions.members().call(), committee.functions.threshold().call()) == (
            3,
            2,
        )

        proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "run", "--config", str(cfg), "--rpc-port", "0",
             "--log-format", "json", "--empty-blocks", "--block-time", "0.2"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "MPS_BATCH_BLOCKS": "2", "MPS_L1_POLL_INTERVAL": "0.2"},
        )  # fmt: skip
        try:
            url = None
            lines = []
            deadline = time.time() + 60
            while url is None and time.time() < deadline:
                line = proc.stdout.readline() if proc.stdout else ""
                lines.append(line)
                if '"rpc listening"' in line:
                    url = json.loads(line)["url"]
            assert url is not None, "".join(lines)
            assert any('"l1 connected"' in x for x in lines)
            rpc = RPCClient(url)
            safe = 0
            while safe < 1 and time.time() < deadline:
                anvil.mine(1)
                safe = rpc.call("mps_syncStatus")["safe"]["height"]
                time.sleep(0.2)
            assert safe >= 1  # the node's own poster committed a batch on the deployed rollup
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        assert proc.returncode == 0
