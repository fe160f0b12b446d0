"""``mps-client`` as a subprocess against an in-process node (the event loop keeps serving it
while the command runs): one-line errors and exit codes, the commands' output."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from l1_node import FIRST_CLIENT, L1Net, following
from rpc_fixtures import start_node
from test_sdk_client import REQUESTER, D, l1_config, params, run, sdk_net

from client_sdk import MPSClient
from client_sdk.keys import Keypair
from node.l1.chain import save_account
from stf.genesis import GenesisStake

ROOT = Path(__file__).resolve().parent.parent


async def cli(*args: str | Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "client_sdk.cli", *map(str, args),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def one_error(err: str, *words: str) -> None:
    """stderr is a single ``error: ...`` line naming ``words``, no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], err


async def test_cli_client_commands_without_l1(tmp_path: Path) -> None:
    keys = [Keypair.generate() for _ in range(5)]
    files = []
    for i, k in enumerate(keys):
        k.save(tmp_path / f"k{i}.key")
        files.append(tmp_path / f"k{i}.key")
    stranger = tmp_path / "stranger.key"
    Keypair.generate().save(stranger)
    stakes = tuple(GenesisStake(k.public_key, bytes(20), 100) for k in keys)
    async with start_node(tmp_path / "node", produce_blocks=True, genesis_stakes=stakes) as h:
        url = h.url
        requester = MPSClient(url, Keypair.generate())
        task_id = await run(requester.create_task, params(window=50, epochs=1), np.zeros(D), b"s")
        task = "0x" + task_id.hex()

        rc, out, _ = await cli("tasks", "--rpc", url)
        assert rc == 0 and task in out and "'sdk-flow'" in out and "epoch 0/1" in out
        rc, out, err = await cli("--rpc", url, "--key", files[0], "join", task)
        assert rc == 0 and "joined" in out, err
        # the rules in words come first, with this task's numbers
        assert out.index("the rules you join under") < out.index("joined")
        assert "2 strikes bar you from the task" in out and "Krum assumes f = 1" in out
        rc, _, err = await cli("join", task, "--rpc", url, "--key", files[0])
        assert rc == 1
        one_error(err, "AlreadyJoined")
        rc, _, err = await cli("join", task, "--rpc", url, "--key", stranger)
        assert rc == 1
        one_error(err, "NotStaked")
        rc, _, err = await cli("status", task, "--rpc", url)
        assert rc == 2
        one_error(err, "--key")

        for k in keys[1:]:
            await run(MPSClient(url, k).join, task_id)
        rng = np.random.default_rng(1)
        direction = rng.normal(0, 0.03, D)
        # the requester's reference: committed now, revealed once the reveal phase opens
        assert requester.key is not None
        requester.key.save(tmp_path / "requester.key")
        np.save(tmp_path / "reference.npy", direction + rng.normal(0, 0.01, D))
        reference = asyncio.create_task(
            cli("reference", task, tmp_path / "reference.npy", "--rpc", url,
                "--key", tmp_path / "requester.key")
        )  # fmt: skip
        for _ in range(400):
            if (await run(requester.task, task_id))["reference"] is not None:
                break
            await asyncio.sleep(0.05)
        # three clients commit through the SDK; each reveals once the reveal phase opens
        ups = [direction + rng.normal(0, 0.01, D) for _ in keys[1:4]]
        for k, u in zip(keys[1:4], ups, strict=True):
            await run(MPSClient(url, k).commit_update, task_id, 0, u)
        reveals = [
            asyncio.create_task(run(MPSClient(url, k).submit_update, task_id, 0, u))
            for k, u in zip(keys[1:4], ups, strict=True)
        ]
        # the CLI's submit commits, then waits for the reveal phase (the fifth commitment)
        np.save(tmp_path / "delta.npy", direction + rng.normal(0, 0.01, D))
        first = asyncio.create_task(
            cli("submit", task, tmp_path / "delta.npy", "--rpc", url, "--key", files[0])
        )
        # someone waits for the epoch (a progress bar on stderr) while the last update comes
        # in as trained weights (a torch state_dict): its delta to the base is sent
        waiter = asyncio.create_task(cli("wait", task, "0", "--rpc", url))
        torch = pytest.importorskip("torch")
        weights = torch.from_numpy(direction + rng.normal(0, 0.01, D))
        torch.save({"w": weights}, tmp_path / "model.pt")
        await asyncio.sleep(1.0)
        rc, out, err = await cli("submit", task, tmp_path / "model.pt", "--wait", "--rpc", url,
                                 "--key", files[4])  # fmt: skip
        assert rc == 0, err
        assert "epoch 0 closed at block" in out and "<- you" in out
        rc, out, err = await first
        assert rc == 0 and "update for epoch 0 committed and revealed" in out, err
        await asyncio.gather(*reveals)
        rc, out, err = await waiter
        assert rc == 0 and "epoch 0 closed at block" in out, err
        assert "epoch 0 [" in err and "/5 updates" in err  # the bar's last state
        # the same delta file again (issue 14's easy mistake): refused before sending, with
        # what it would cost; forced, it reaches the chain, whose task (one epoch) is over
        rc, _, err = await cli("submit", task, tmp_path / "delta.npy", "--epoch", "0",
                               "--rpc", url, "--key", files[0])  # fmt: skip
        one_error(err, "CertainOffence")
        assert "REPLAY_OWN" in err and "--force" in err
        rc, _, err = await cli("submit", task, tmp_path / "delta.npy", "--epoch", "0", "--force",
                               "--rpc", url, "--key", files[0])  # fmt: skip
        one_error(err, "TaskClosed")
        epoch = await run(requester.epoch, task_id, 0)
        assert len(epoch["records"]) == 5
        rc, out, err = await reference
        assert rc == 0 and "reference for epoch 0 committed and revealed" in out, err
        assert epoch["reference"] is not None  # the close weighed the step by it

        rc, out, err = await cli("status", task, "--rpc", url, "--key", files[0])
        assert rc == 0, err
        assert "standing, 0 strike(s)" in out and "epoch 0: rank" in out
        assert "proofs checked against node" in out
        rc, out, _ = await cli("tasks", "--rpc", url)
        assert "no open tasks" in out
        rc, out, _ = await cli("tasks", "--all", "--rpc", url)
        assert task in out and "finished" in out


def fake_devnet(net: L1Net, datadir: Path, account: int) -> Keypair:
    """What ``mps-node dev`` writes for dev client 0."""
    l1 = datadir / "l1"
    l1.mkdir(parents=True)
    (l1 / "endpoint").write_text(net.anvil.url + "\n")
    deployment: dict[str, Any] = {"addresses": net.addresses, "start_block": 0}
    (l1 / "deployment.json").write_text(json.dumps(deployment))
    save_account(l1 / "client0.key", net.accounts[account].key.hex())
    kp = Keypair.generate()
    kp.save(datadir / "dev-clients" / "client0.key")
    return kp


@pytest.mark.slow
async def test_cli_with_the_l1(tmp_path: Path) -> None:
    async with sdk_net(tmp_path) as net:
        url = net.h.url
        dev = tmp_path / "devnet"
        me = fake_devnet(net, dev, FIRST_CLIENT)
        common = ["--rpc", url, "--devnet", dev, "--account", "client0"]
        async with following(net):
            rc, out, err = await cli("stake", *common)
        assert rc == 0, err
        assert "the rollup sees the stake" in out
        rc, _, err = await cli("stake", "--no-wait", *common)
        one_error(err, "L1 reverted: AlreadyStaked")

        assert net.post_until_idle()[:2] == ["posted", "confirmed"]  # the stake's block
        requester = MPSClient(url, Keypair.generate(), l1_config(net, REQUESTER))
        # the requester's commands, its L1 account named by files: the task is funded first
        save_account(tmp_path / "requester-l1.key", net.accounts[REQUESTER].key.hex())
        np.savez(tmp_path / "init.npz", w=np.zeros(D))
        (tmp_path / "train.py").write_bytes(b"s")
        req = ["--rpc", url, "--key", tmp_path / "requester.key",
               "--l1-rpc", net.anvil.url, "--l1-key-file", tmp_path / "requester-l1.key",
               "--deployment", dev / "l1" / "deployment.json"]  # fmt: skip
        assert (await cli("keygen", tmp_path / "requester.key"))[0] == 0
        # nobody commits here: a long window keeps the task open (it would end by its deadline,
        # EXPIRY_WINDOWS windows of 50 ms blocks, on a slow machine)
        create = ["create-task", "--model", tmp_path / "init.npz", "--script",
                  tmp_path / "train.py", "--name", "sdk-flow", "--window-blocks", "1000",
                  "--shift", "8", "--epochs", "2", "--max-clients", "6"]  # fmt: skip
        rc, _, err = await cli(*create, *req)
        assert rc == 1
        one_error(err, "InvalidArgument", "give a deposit")  # a chain with an L1 needs one
        async with following(net):
            rc, out, err = await cli(*create, *req, "--deposit-wei", "10**15")
        assert rc == 0 and "funded with 1000000000000000 wei" in out, err
        task = out.split()[2]
        task_id = bytes.fromhex(task[2:])
        funding = await run(requester.l1.funding, task_id, net.accounts[REQUESTER].address)
        assert funding == {"deposit": 10**15, "settled": False, "reclaimed": False}
        rc, _, err = await cli("reclaim", task, *req)
        assert rc == 1
        one_error(err, "the task took this funding")  # bound to the task: never reclaimable
        rc, _, err = await cli("refund", task, *req)
        assert rc == 1
        one_error(err, "L1 reverted")  # not settled yet
        rc, out, err = await cli("join", task, *common)
        assert rc == 0, err
        rc, _, err = await cli("status", task, *common)
        assert rc == 1
        one_error(err, "NotOnL1Yet", "is not in L1 batch")
        assert net.post_until_idle()[:2] == ["posted", "confirmed"]
        rc, out, err = await cli("status", task, *common)
        assert rc == 0, err
        assert "standing, 0 strike(s)" in out and "proofs checked against l1 batch" in out
        assert "stake on L1: staked" in out
        rc, out, err = await cli("claim", task, *common)
        one_error(err, "NotOnL1Yet", "not settled")

        # the other way to name the L1: endpoint, key file, deployment file
        files = ["--l1-rpc", net.anvil.url, "--l1-key-file", dev / "l1" / "client0.key",
                 "--deployment", dev / "l1" / "deployment.json"]  # fmt: skip
        key = ["--key", dev / "dev-clients" / "client0.key", "--rpc", url]
        rc, out, err = await cli("unregister", *key, *files)
        assert rc == 0 and "unbonding since L1 block" in out, err
        rc, _, err = await cli("withdraw", *key, *files)
        assert rc == 1
        one_error(err, "NotOnL1Yet", "has not seen the unregister yet")
        rc, _, err = await cli("withdraw", *key, "--l1-rpc", net.anvil.url)
        assert rc == 2
        one_error(err, "--deployment")
        assert me.public_key.hex() in (await cli("status", task, *key, "--trust", "node"))[1]
        # joined, nothing committed: the rollup releases at once; withdrawn once that is final
        await net.follow()
        stake = await run(requester.stake_info, me.public_key)
        assert stake is not None and stake["released"] is not None, stake
        rc, _, err = await cli("withdraw", *key, *files)
        one_error(err, "NotOnL1Yet", "wait for a batch holding it to finalize")
        net.post_through(await net.h.result("mps_blockNumber"))
        rc, out, err = await cli("withdraw", *key, *files)
        assert rc == 0 and "withdrawn on the release in finalized batch" in out, err


async def test_cli_requester_commands_without_l1(tmp_path: Path) -> None:
    """keygen, create-task from a .npz and a script, model download, report: the requester's
    side of the shell (issue 14), on a chain with no L1 (tasks unfunded)."""
    rc, out, err = await cli("keygen", tmp_path / "req.key")
    assert rc == 0 and "0x" in out, err
    assert (tmp_path / "req.key").stat().st_mode & 0o077 == 0
    rc, _, err = await cli("keygen", tmp_path / "req.key")
    assert rc == 1
    one_error(err, "exists")
    rng = np.random.default_rng(3)
    weights = {"layer.w": rng.normal(0, 0.1, (4, 3)), "layer.b": rng.normal(0, 0.1, (3,))}
    np.savez(tmp_path / "init.npz", **weights)
    (tmp_path / "train.py").write_text("print('train')\n")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    async with start_node(tmp_path / "node", produce_blocks=True) as h:
        req = ["--rpc", h.url, "--key", tmp_path / "req.key"]
        create = ["create-task", "--script", tmp_path / "train.py", "--name", "cli-task",
                  "--window-blocks", "50", "--shift", "12"]  # fmt: skip
        rc, _, err = await cli(*create, "--model", tmp_path / "bad.npz", *req)
        assert rc == 1
        one_error(err, "ModelFileError", "not a .npz model file")
        rc, out, err = await cli(*create, "--model", tmp_path / "init.npz", *req)
        assert rc == 0 and "d = 15" in out, err
        task = out.split()[2]
        rc, out, err = await cli("tasks", "--rpc", h.url)
        assert rc == 0 and task in out and "'cli-task'" in out
        rc, out, err = await cli("model", task, "--out", tmp_path / "base.npz", "--rpc", h.url)
        assert rc == 0, err
        with np.load(tmp_path / "base.npz") as got:
            assert got.files == ["layer.w", "layer.b"]  # the layout, in the file's order
            for name, w in weights.items():
                assert got[name].shape == w.shape
                assert np.abs(got[name] - w).max() <= 2.0**-12  # int32 at shift 12
        rc, _, err = await cli("report", task, "0", "0.5", *req)
        assert rc == 1
        one_error(err, "epoch 0")  # not closed yet: a clear refusal, no traceback
        rc, _, err = await cli("report", task, "0", "1.5", *req)
        assert rc == 1
        one_error(err, "accuracy is a fraction")


async def test_a_devnet_without_an_l1_serves_read_only_commands(tmp_path: Path) -> None:
    """Issue 14: on a ``mps-node dev --no-l1`` network even ``tasks`` failed with
    L1ConfigError; read-only commands need no L1, and the ones that do say why."""
    dev = tmp_path / "devnet"
    kp = Keypair.generate()
    kp.save(dev / "dev-clients" / "client0.key")
    stakes = (GenesisStake(kp.public_key, bytes(20), 100),)
    async with start_node(tmp_path / "node", produce_blocks=True, genesis_stakes=stakes) as h:
        (dev / "config.toml").write_text(f"rpc_port = {h.client.port}\n")
        requester = MPSClient(h.url, Keypair.generate())
        task_id = await run(requester.create_task, params(window=50), np.zeros(D), b"s")
        for account in ([], ["--account", "client0"]):
            rc, out, err = await cli("tasks", "--devnet", dev, *account)
            assert rc == 0 and "0x" + task_id.hex() in out, err
        rc, _, err = await cli("stake", "--devnet", dev, "--account", "client0")
        assert rc == 2
        one_error(err, "runs without an L1", "stake, unregister, withdraw, claim")
