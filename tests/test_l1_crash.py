"""A daemon settling on anvil, SIGKILLed again and again: batches stay contiguous, none is
posted twice, and an independent verifier agrees with every committed root."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from client_sdk.keys import Keypair
from client_sdk.tx import put_record
from contracts.anvil import Anvil
from contracts.transact import contract
from mps_common.transport import RPCClient
from node.l1.verifier import Verifier
from node.storage import Storage

pytestmark = pytest.mark.slow


def start(cfg: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPS_")}
    env.update(MPS_BATCH_BLOCKS="1", MPS_BATCH_SECONDS="0", MPS_L1_POLL_INTERVAL="0.05")
    return subprocess.Popen(
        [sys.executable, "-m", "node.cli", "run", "--config", str(cfg), "--rpc-port", str(port),
         "--block-time", "0.05", "--log-format", "json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip


def wait_rpc(url: str, deadline: float) -> RPCClient:
    rpc = RPCClient(url, timeout=2)
    while time.time() < deadline:
        try:
            rpc.call("mps_blockNumber")
            return rpc
        except Exception:
            time.sleep(0.1)
    raise AssertionError("node did not come up")


def test_sigkill_while_posting_batches(tmp_path: Path) -> None:
    from test_process import free_port  # the same helper the other daemon tests use

    rng = random.Random(7)
    datadir = tmp_path / "node"
    with Anvil(block_time=None) as anvil:
        node = [sys.executable, "-m", "node.cli"]
        assert subprocess.run([*node, "init", "--datadir", str(datadir)]).returncode == 0
        cfg = datadir / "config.toml"
        # the chain prices its state (deploy's data fee): only a backed key may write (a
        # genesis stake here; stf.accounts)
        me = Keypair.generate()
        text = cfg.read_text()
        assert "stakes = [\n]" in text
        cfg.write_text(
            text.replace(
                "stakes = [\n]",
                f'stakes = [\n  {{ client_key = "{me.public_key.hex()}", '
                f'l1_address = "{"00" * 20}", amount = 1 }},\n]',
            )
        )
        key = tmp_path / "l1.key"
        key.write_text(anvil.accounts[0].key.hex())
        deployed = subprocess.run(
            [*node, "deploy", "--config", str(cfg), "--l1-rpc", anvil.url,
             "--l1-chain-id", "31337", "--l1-key-file", str(key), "--challenge-blocks", "4",
             "--da-challenge-blocks", "1", "--da-resolve-blocks", "1", "--dev"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stderr
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        sent = 0
        for _ in range(4):  # run, write, kill at a random instant, restart
            proc = start(cfg, port)
            try:
                rpc = wait_rpc(url, time.time() + 30)
                nonce = rpc.call("mps_getNonce", me.public_key, True)
                for i in range(rng.randint(3, 8)):
                    rpc.call(
                        "mps_sendTransaction",
                        put_record(me, 4242, nonce + i, f"k{sent}", b"v").encode(),
                    )
                    sent += 1
                time.sleep(rng.uniform(0.05, 0.6))
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
        proc = start(cfg, port)  # a last run that settles everything
        try:
            rpc = wait_rpc(url, time.time() + 30)
            deadline = time.time() + 30
            while time.time() < deadline:
                status = rpc.call("mps_syncStatus")
                if (
                    status["safe"]["height"] == status["unsafe"]["height"]
                    and rpc.call("mps_getNonce", me.public_key, False) == sent
                ):
                    break
                time.sleep(0.2)
            assert rpc.call("mps_getNonce", me.public_key, False) == sent  # no acked tx lost
            assert status["safe"]["height"] == status["unsafe"]["height"]
            written = tomllib.loads(cfg.read_text())
            rollup = contract(anvil.w3(), "MPSRollup", written["l1_rollup"])
            n = rollup.functions.nextBatchIndex().call()
            lasts = [rollup.functions.batch(i).call()[2] for i in range(n)]
            assert n >= 2 and lasts == sorted(set(lasts))  # never the same range twice
            assert lasts[-1] == status["safe"]["height"]
            with Storage(tmp_path / "verifier.db") as vstore:
                v = Verifier(rollup, rpc, vstore)
                assert v.verify_new_batches() is None
                assert v.checked == n
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
