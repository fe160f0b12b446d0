"""A verifier that derives the chain from the L1 alone (issue 12): no sequencer RPC, the genesis
from ``mps-node genesis``, every batch's data demanded on the L1 and read from there."""

from __future__ import annotations

import asyncio
import io
import json
import os
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from l1_node import DA_BOND, FIRST_CLIENT, SEQUENCER, VERIFIER, l1_net, send_filler
from rpc_fixtures import CHAIN_ID
from test_l1_forced import censored_tx, user_l1

from client_sdk import put_record
from client_sdk.keys import Keypair
from node import cli
from node.config import NodeConfig, render_toml
from node.l1.data_source import DataUnobtainable
from node.l1.derivation import DerivationChecker
from node.l1.verifier import Verifier
from node.storage import Storage


def genesis_file_of(cfg: NodeConfig, tmp_path: Path) -> dict[str, object]:
    """What ``mps-node genesis --config`` prints for the node's own config."""
    path = tmp_path / "node.toml"
    path.write_text(render_toml(cfg))
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["genesis", "--config", str(path)]) == 0
    spec: dict[str, object] = json.loads(out.getvalue())
    return spec


async def test_a_verifier_rebuilds_every_root_from_the_l1_alone(tmp_path: Path) -> None:
    async with l1_net(tmp_path) as net:
        h, f = net.h, net.c("MPSRollup").functions
        spec = genesis_file_of(h.cfg, tmp_path)
        assert spec == json.loads(json.dumps(await h.result("mps_getGenesis")))
        derivation = DerivationChecker(
            net.w3, net.c("StakingRegistry"), net.c("RewardManager"), inbox=net.c("ForcedInbox")
        )
        storage = Storage(tmp_path / "verifier.db")
        v = Verifier(net.c("MPSRollup"), None, storage, net.w3, net.accounts[VERIFIER], 10**12,
                     derivation=derivation, genesis=spec)  # fmt: skip

        async def verify_live() -> None:
            """As a running verifier does within each batch's data window: demand the data,
            let the sequencer's poster publish it, replay it."""
            for _ in range(6):
                assert await asyncio.to_thread(v.verify_new_batches) is None
                if v.waiting is None:
                    return
                h.node.l1.poster.step()
            raise AssertionError(f"still waiting: {v.waiting}")

        try:
            net.stake(Keypair.generate(), FIRST_CLIENT + 1)  # an L1 deposit
            await net.follow()
            assert net.post_until_idle()[:2] == ["posted", "confirmed"]
            await verify_live()
            user_l1(net).force_transaction(censored_tx(b"forced"))  # a forced transaction
            await net.follow()
            await send_filler(h, os.urandom(100_000))
            await h.seal()
            assert net.post_until_idle()[:2] == ["posted", "confirmed"]
            await verify_live()
            total = f.nextBatchIndex().call()
            assert v.checked == total == 2
            for i in range(total):
                root, _, last, _, _ = f.batch(i).call()
                assert f.dataChallenge(i).call()[3] != 0  # every batch's data came from the L1
                assert storage.header_at(last).state_root == bytes(root)
        finally:
            storage.close()


async def test_a_wrong_genesis_file_is_caught_against_the_l1(tmp_path: Path) -> None:
    async with l1_net(tmp_path) as net:
        spec = genesis_file_of(net.h.cfg, tmp_path)
        spec["limits"]["maxBlockTxs"] += 1  # type: ignore[index]
        with Storage(tmp_path / "verifier.db") as storage:
            v = Verifier(net.c("MPSRollup"), None, storage, genesis=spec)
            bad = await asyncio.to_thread(v.verify_new_batches)
        assert bad is not None and "given genesis state root differs" in bad.why


async def test_with_data_on_l1_a_late_verifier_rebuilds_from_the_l1_alone(tmp_path: Path) -> None:
    """``batch_data_on_l1``: the poster puts every batch's data on the L1 itself (a data
    challenge it answers), so a verifier that starts after every data window has closed, with no
    sequencer RPC and no L1 key to challenge anything, still gets every root."""
    async with l1_net(tmp_path, node={"batch_data_on_l1": True}) as net:
        h, f = net.h, net.c("MPSRollup").functions
        for i in range(2):
            await send_filler(h, os.urandom(70_000 + i))
            await h.seal()
            actions = net.post_until_idle()
            assert actions[:2] == ["posted", "confirmed"], actions
            assert "self-challenged" in actions and "published" in actions, actions
        net.anvil.mine(40)  # every data window (and challenge window) is long over
        spec = genesis_file_of(h.cfg, tmp_path)
        with Storage(tmp_path / "late.db") as storage:
            v = Verifier(net.c("MPSRollup"), None, storage, net.w3, genesis=spec)
            assert await asyncio.to_thread(v.verify_new_batches) is None and v.waiting is None
            assert v.checked == f.nextBatchIndex().call() == 2
            for i in range(2):
                root, _, last, _, _ = f.batch(i).call()
                assert storage.header_at(last).state_root == bytes(root)
        # the bonds came back to the sequencer's account, nothing was lost
        assert f.bondBalance(net.accounts[SEQUENCER].address).call() == 2 * DA_BOND


async def test_a_late_l1_only_verifier_stops_and_challenges_nothing(tmp_path: Path) -> None:
    """Review: a verifier with no sequencer RPC, started after an honest batch's data window
    closed (nobody demanded the data), called it a divergence and challenged it with its bond.
    Its lateness is no fraud: it stops, naming the ways to get the data."""
    async with l1_net(tmp_path) as net:
        h, f = net.h, net.c("MPSRollup").functions
        await h.send_ok(put_record(Keypair.generate(), CHAIN_ID, 0, "n", b"honest"))
        await h.seal()
        assert net.post_until_idle()[:2] == ["posted", "confirmed"]
        net.anvil.mine(10)  # past the data window: nobody asked for the data
        spec = genesis_file_of(h.cfg, tmp_path)
        with Storage(tmp_path / "late.db") as storage:
            v = Verifier(net.c("MPSRollup"), None, storage, net.w3, net.accounts[VERIFIER], 10**12,
                         genesis=spec)  # fmt: skip
            with pytest.raises(DataUnobtainable, match="batch_data_on_l1"):
                await asyncio.to_thread(v.verify_new_batches)
        assert f.firstOpenChallenge().call()[0] is False
