"""End to end on a real anvil: stakes in, a free rider slashed with a proof, rewards out,
an L1 outage with no batch lost or doubled, and a verifier catching a wrong root."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from eth_utils.crypto import keccak
from l1_fixtures import NO_DEADLINE, StateTree, slash_leaf
from l1_node import (
    AGGREGATOR,
    BASE_FEE,
    CHALLENGE_BLOCKS,
    DA_BOND,
    FEE_PER_EPOCH,
    FIRST_CLIENT,
    FUNDING_WINDOW,
    SEQUENCER,
    STAKE,
    VERIFIER,
    L1Net,
    l1_net,
    l1_settings,
    send_filler,
)
from rpc_fixtures import CHAIN_ID, NodeHarness, hx, start_node, unhex
from structlog.testing import capture_logs

from client_sdk import fl, put_blob, put_record
from client_sdk.keys import Keypair
from contracts.anvil import Anvil
from contracts.reverts import ContractRevert
from mps_common.transport import RPCClient, TransportError
from node.l1.aggregator import prove_at
from node.l1.batch_data import (
    DATA_ACTIVE,
    DATA_RESOLVED,
    batch_commitment,
    batch_data,
    split_chunks,
)
from node.l1.chain import L1Error, build_signed
from node.l1.deposits import L1Event
from node.l1.derivation import DerivationChecker
from node.l1.poster import BatchPoster
from node.l1.verifier import Verifier
from node.storage import Storage
from stf import state_keys
from stf.fl.contribution import CREDIT_SCALE
from stf.fl.rules import EpochRules
from stf.fl.settlement import decode_reward_share
from stf.fl.task import TaskParams
from stf.stakes import SLASHED, STAKED, binding_message

pytestmark = pytest.mark.slow

STATUS_SLASHED = 3


REQUESTER_L1 = 15
DEPOSIT = 10**18


def task_params(model: bytes, script: bytes, d: int, shift: int, funder: bytes) -> TaskParams:
    return TaskParams(
        "l1-e2e", (("w", (d,)),), "int8", shift, fl.blob_id(model), fl.blob_id(script),
        2, 990_000, 5, 6, 3, bytes(32), EpochRules(f=1), funder,
    )  # fmt: skip


async def free_ride(h: NodeHarness, task_id: bytes, epoch: int, d: int) -> np.ndarray:
    """Zeros, or from epoch 1 the previous global step read back from the chain."""
    if epoch == 0:
        return np.zeros(d, np.int8)
    step = (await h.result("mps_getTask", hx(task_id)))["previousStep"]
    return np.frombuffer(unhex(await h.result("mps_getBlob", step)), np.int8)


async def staked_clients(net: L1Net, n: int) -> list[Keypair]:
    """``n`` fresh keys, staked from the L1 accounts from FIRST_CLIENT on, seen by the rollup."""
    clients = [Keypair.generate() for _ in range(n)]
    for i, c in enumerate(clients):
        net.stake(c, FIRST_CLIENT + i)
    await net.follow()
    return clients


async def run_federation(
    net: L1Net,
    clients: list[Keypair],
    after_commits: Callable[[int], Awaitable[None]] | None = None,
) -> bytes:
    """Two epochs: five honest clients and one free rider: zeros in epoch 0 (a strike), the
    previous global step in epoch 1 (provable: slashable). ``after_commits(epoch)`` runs once
    every commitment of the epoch is in, before the reveals. The task id is funded on the L1
    (from account REQUESTER_L1, overpaying by 5 wei) before its create_task is sent."""
    h = net.h
    requester = Keypair.generate()
    d, shift = 200, 10
    model = fl.model_blob(np.zeros(d), shift)
    script = b"# one local epoch of SGD\n"
    funder = net.accounts[REQUESTER_L1]
    payer = bytes.fromhex(funder.address[2:])
    params = task_params(model, script, d, shift, payer)
    create = fl.create_task(requester, CHAIN_ID, 2, params)
    rm = net.c("RewardManager").functions
    net.tx(funder, rm.fundTask(create.hash, DEPOSIT), BASE_FEE + DEPOSIT + 5)
    await net.follow()
    # a funded chain takes the task's blobs only now, against the funding (stf.fl.uploads)
    await h.send_ok(put_blob(requester, CHAIN_ID, 0, model, create.hash, payer, create))
    await h.send_ok(put_blob(requester, CHAIN_ID, 1, script, create.hash, payer, create))
    task_id = await h.send_ok(create)
    await h.seal()
    assert (await h.result("mps_getTask", hx(task_id)))["funder"] is not None
    for c in clients:
        await h.send_ok(fl.join_task(c, CHAIN_ID, 0, task_id))
    await h.seal()
    rng = np.random.default_rng(3)
    for epoch in range(2):
        direction = rng.normal(0, 0.03, d)
        ups = []
        for i, c in enumerate(clients):
            u = fl.quantize(direction + rng.normal(0, 0.01, d), shift)
            if i == 5:
                u = await free_ride(h, task_id, epoch, d)
            ups.append(u)
            uid = fl.blob_id(u.tobytes())
            await h.send_ok(fl.commit_update(c, CHAIN_ID, 1 + 2 * epoch, task_id, epoch, uid))
        await h.seal()  # every client committed: the reveal phase opens
        if after_commits is not None:
            await after_commits(epoch)
        for c, u in zip(clients, ups, strict=True):
            await h.send_ok(fl.submit_update(c, CHAIN_ID, 2 + 2 * epoch, task_id, epoch, u))
        await h.seal()
        for _ in range(4):  # a slashed client's update fails: the window closes the epoch
            if (await h.result("mps_getTask", hx(task_id)))["epoch"] > epoch:
                break
            await h.seal()
    task = await h.result("mps_getTask", hx(task_id))
    assert task["status"] == "finished"
    return task_id


async def test_stake_flag_slash_settle_claim(tmp_path: Path) -> None:
    async with l1_net(tmp_path) as net:
        h, w3 = net.h, net.w3
        clients = await staked_clients(net, 6)
        for i, c in enumerate(clients):
            stake = await h.result("mps_getStake", hx(c.public_key))
            assert stake["status"] == STAKED
            assert stake["l1Address"].lower() == net.accounts[FIRST_CLIENT + i].address.lower()

        # the requester funds the task on L1 first, overpaying by 5 wei: the excess comes back
        rm = net.c("RewardManager")
        requester_l1 = net.accounts[REQUESTER_L1]
        before = w3.eth.get_balance(requester_l1.address)
        task_id = await run_federation(net, clients)
        (funded,) = rm.events.TaskFunded().get_logs(from_block=0)
        rc = w3.eth.get_transaction_receipt(funded["transactionHash"])
        spent = before - w3.eth.get_balance(requester_l1.address)
        assert spent == BASE_FEE + DEPOSIT + rc["gasUsed"] * rc["effectiveGasPrice"]
        deposit = DEPOSIT

        # commit, confirm, wait out the challenge window
        assert net.post_until_idle()[:2] == ["posted", "confirmed"]
        status = await h.result("mps_syncStatus")
        assert status["safe"]["height"] == status["unsafe"]["height"]
        assert status["finalized"]["height"] == 0
        net.anvil.mine(CHALLENGE_BLOCKS)
        net.h.node.l1.poster.step()
        status = await h.result("mps_syncStatus")
        assert status["finalized"]["height"] == status["safe"]["height"]

        # the aggregator slashes the free rider with a proof and settles the task; once
        agg = h.node.l1.aggregator
        with capture_logs() as logs:
            assert agg.step() == 2
        slashed = [e for e in logs if e["event"] == "client slashed on L1"]
        assert [e["reason"] for e in slashed] == ["REPLAY_GLOBAL"]  # a name, not a number
        reg = net.c("StakingRegistry")
        assert reg.functions.statusOf(clients[5].public_key).call() == STATUS_SLASHED
        assert w3.eth.get_balance(net.addresses["SlashTreasury"]) == STAKE
        assert [reg.functions.statusOf(c.public_key).call() for c in clients[:5]] == [1] * 5
        assert agg.step() == 0
        # the slash comes back to the rollup through the follower
        await net.follow()
        assert (await h.result("mps_getStake", hx(clients[5].public_key)))["status"] == SLASHED

        # an honest client claims its share against the settled root; the free rider cannot
        fee = min(2 * FEE_PER_EPOCH, deposit)
        pool = fee - fee * 1000 // 10_000
        _, dep, settled, pool_onchain, total, root = rm.functions.task(task_id).call()
        assert settled and pool_onchain == pool and dep == deposit
        storage = h.node.storage
        payee = net.accounts[FIRST_CLIENT]
        shares = []
        for c in clients[:5]:  # the honest five: the settle leaf's total is their credits
            share = prove_at(storage, bytes(root), state_keys.reward_share(task_id, c.public_key))
            assert share is not None
            shares.append(decode_reward_share(share.value))
        assert all(not flagged and credit >= CREDIT_SCALE for credit, flagged in shares)
        assert total == sum(credit for credit, _ in shares)
        ev = prove_at(storage, bytes(root), state_keys.reward_share(task_id, clients[0].public_key))
        assert ev is not None
        accepted, _ = decode_reward_share(ev.value)
        before = w3.eth.get_balance(payee.address)
        claim = rm.functions.claim(task_id, clients[0].public_key, accepted, ev.siblings)
        net.tx(AGGREGATOR, claim)  # anyone may send it; the stake's owner is paid
        assert w3.eth.get_balance(payee.address) - before == pool * accepted // total
        with pytest.raises(ContractRevert):
            net.tx(AGGREGATOR, claim)
        bad = prove_at(
            storage, bytes(root), state_keys.reward_share(task_id, clients[5].public_key)
        )
        assert bad is not None
        with pytest.raises(ContractRevert):
            net.tx(
                AGGREGATOR,
                rm.functions.claim(task_id, clients[5].public_key, 2, bad.siblings),
            )

        # an independent verifier replays every committed batch and agrees
        rollup = net.c("MPSRollup")
        with Storage(tmp_path / "verifier.db") as vstore:
            derivation = DerivationChecker(w3, reg, rm)  # every deposit checked against the L1
            v = Verifier(rollup, RPCClient(h.url), vstore, derivation=derivation)
            assert await asyncio.to_thread(v.verify_new_batches) is None
            assert derivation.height == rollup.functions.lastCommittedBlock().call()
            assert v.checked == rollup.functions.nextBatchIndex().call() >= 1


async def test_the_escape_a_cheater_cannot_leave_with_its_stake(tmp_path: Path) -> None:
    """Issue 11's escape, end to end: the free rider commits the global step (slashable) and
    unregisters at once, before its epoch closes, beside an honest client that leaves too. No
    time lock exists to wait out: the cheater's withdrawal is refused before and after the
    close, and it is slashed; the honest client's stake comes back on the rollup's release."""
    async with l1_net(tmp_path) as net:
        h, w3 = net.h, net.w3
        clients = await staked_clients(net, 6)
        reg = net.c("StakingRegistry").functions
        cheat, honest = clients[5], clients[0]
        cheat_l1, honest_l1 = net.accounts[FIRST_CLIENT + 5], net.accounts[FIRST_CLIENT]

        async def leave(epoch: int) -> None:
            if epoch != 1:
                return
            for acct in (cheat_l1, honest_l1):
                net.tx(acct, reg.unregister())
            await net.follow()
            for c in (cheat, honest):  # both committed to an epoch not closed yet: held back
                stake = await h.result("mps_getStake", hx(c.public_key))
                assert stake["status"] == 1 and stake["releasePending"] is not None, stake
                assert stake["released"] is None

        task_id = await run_federation(net, clients, leave)
        cheat_stake = await h.result("mps_getStake", hx(cheat.public_key))
        assert cheat_stake["released"] is None and unhex(cheat_stake["convictedIn"]) == task_id
        assert (await h.result("mps_getStake", hx(honest.public_key)))["released"] is not None

        assert net.post_until_idle()[:2] == ["posted", "confirmed"]
        net.anvil.mine(CHALLENGE_BLOCKS)
        rollup = net.c("MPSRollup").functions
        batch = rollup.nextBatchIndex().call() - 1
        assert rollup.isFinalized(batch).call()
        root = rollup.finalizedStateRoot(batch).call()
        storage = h.node.storage
        assert prove_at(storage, bytes(root), state_keys.release(cheat.public_key)) is None
        with pytest.raises(ContractRevert, match="NotReleased"):  # however long it waits
            net.tx(cheat_l1, reg.withdrawStake(batch, []))
        # the honest client leaves with its stake, on the proof of its release
        ev = prove_at(storage, bytes(root), state_keys.release(honest.public_key))
        assert ev is not None
        before = w3.eth.get_balance(honest_l1.address)
        rc = net.tx(honest_l1, reg.withdrawStake(batch, ev.siblings))
        gas = rc["gasUsed"] * rc["effectiveGasPrice"]
        assert w3.eth.get_balance(honest_l1.address) == before + STAKE - gas
        # the aggregator slashes the cheater (and settles); its withdrawal stays refused
        h.node.l1.poster.step()  # the node learns what is final
        assert h.node.l1.aggregator.step() >= 1
        assert reg.statusOf(cheat.public_key).call() == STATUS_SLASHED
        with pytest.raises(ContractRevert, match="WrongStatus"):
            net.tx(cheat_l1, reg.withdrawStake(batch, ev.siblings))


async def test_a_front_run_stake_never_counts(tmp_path: Path) -> None:
    """Issue 11's front-running: an attacker sees a client's stake (key and binding) in the L1
    mempool and stakes the key first from its own account. The L1 binds the key to the attacker
    (the client's stake reverts KeyTaken), but the rollup does not count the stake: the key's
    binding names the client's account, not the attacker's. The key can take no part, so the
    attacker earns nothing with it, and gets back only its own deposit."""
    async with l1_net(tmp_path) as net:
        h = net.h
        reg = net.c("StakingRegistry").functions
        victim, attacker = net.accounts[FIRST_CLIENT], net.accounts[FIRST_CLIENT + 1]
        key = Keypair.generate()
        binding = key.sign(binding_message(CHAIN_ID, bytes.fromhex(victim.address[2:])))
        net.tx(attacker, reg.stake(key.public_key, binding), STAKE)  # ordered first
        with pytest.raises(ContractRevert, match="KeyTaken"):
            net.tx(victim, reg.stake(key.public_key, binding), STAKE)
        await net.follow()
        assert await h.result("mps_getStake", hx(key.public_key)) is None
        refused = fl.join_task(key, CHAIN_ID, 0, b"\x01" * 32)
        await h.send_ok(refused)
        await h.seal()
        assert (await h.result("mps_getTransactionReceipt", hx(refused.hash)))["status"] == 0
        # the attacker leaves at once with its own stake, and no more
        net.tx(attacker, reg.unregister())
        await net.follow()
        assert (await h.result("mps_getStake", hx(key.public_key))) is None
        net.post_through(await h.result("mps_blockNumber"))
        rollup = net.c("MPSRollup").functions
        batch = rollup.nextBatchIndex().call() - 1
        root = bytes(rollup.finalizedStateRoot(batch).call())
        ev = prove_at(h.node.storage, root, state_keys.release(key.public_key))
        assert ev is not None
        before = net.w3.eth.get_balance(attacker.address)
        rc = net.tx(attacker, reg.withdrawStake(batch, ev.siblings))
        gas = rc["gasUsed"] * rc["effectiveGasPrice"]
        assert net.w3.eth.get_balance(attacker.address) == before + STAKE - gas


async def test_l1_outage_and_poster_restart_lose_or_double_nothing(tmp_path: Path) -> None:
    state = tmp_path / "anvil-state.json"
    async with l1_net(tmp_path, state_path=state) as net:
        h, anvil = net.h, net.anvil
        rollup = net.c("MPSRollup").functions
        for i in range(3):
            await h.send_ok(put_record(Keypair.generate(), CHAIN_ID, 0, "n", b"x%d" % i))
            await h.seal()
        # a commitment is signed and written ahead, then the poster "crashes" before mining
        anvil.w3().provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
        assert h.node.l1.poster.step() == "posted"
        restarted = BatchPoster(
            net.w3, h.node.l1.deployment, net.accounts[SEQUENCER], h.node.storage,
            h.node.l1.poster.settings,
        )  # fmt: skip
        assert restarted.step() in ("waiting", "resent")
        anvil.mine(1)
        assert restarted.step() == "confirmed"
        assert rollup.nextBatchIndex().call() == 1
        anvil.w3().provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]

        # the L1 goes away: blocks keep coming, the poster only retries
        port = anvil.port
        anvil.stop()
        for i in range(3):
            await h.send_ok(put_record(Keypair.generate(), CHAIN_ID, 0, "n", b"y%d" % i))
            await h.seal()
        with pytest.raises(requests.exceptions.ConnectionError):
            restarted.step()
        # ...and comes back with its chain
        with Anvil(accounts=20, state_path=state, port=port) as back:
            net.anvil = back
            for _ in range(10):
                if restarted.step() == "idle":
                    break
            head = h.node.sequencer.head.height
            n = rollup.nextBatchIndex().call()
            batches = [rollup.batch(i).call() for i in range(n)]
            assert batches[-1][2] == head
            # every block is in exactly one batch, in order, and each data hash matches
            first = 1
            for root, data_hash, last, *_ in batches:
                data = batch_data(h.node.storage, first, last)
                assert batch_commitment(data)[0] == bytes(data_hash)
                assert h.node.storage.header_at(last).state_root == bytes(root)
                first = last + 1


async def test_verifier_catches_a_wrong_root_and_challenges(tmp_path: Path) -> None:
    async with l1_net(tmp_path) as net:
        h, w3 = net.h, net.w3
        for i in range(4):
            await h.send_ok(put_record(Keypair.generate(), CHAIN_ID, 0, "n", b"z%d" % i))
            await h.seal()
        assert net.post_until_idle()[:2] == ["posted", "confirmed"]
        for i in range(3):
            await h.send_ok(put_record(Keypair.generate(), CHAIN_ID, 1, "n", b"w%d" % i))
            await h.seal()
        # the sequencer's L1 key commits blocks 5..7 with a wrong root
        rollup = net.c("MPSRollup")
        f = rollup.functions
        storage = h.node.storage
        last = h.node.sequencer.head.height
        prev_last = f.lastCommittedBlock().call()
        data = batch_commitment(batch_data(storage, prev_last + 1, last))[0]
        call = f.commitBatch(1, f.lastStateRoot().call(), b"\x66" * 32, data, last, NO_DEADLINE)
        raw, _ = build_signed(
            w3,
            net.accounts[SEQUENCER],
            call,
            w3.eth.get_transaction_count(net.accounts[SEQUENCER].address),
            10**12,
        )
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))

        key = net.datadir / "verifier.key"
        key.write_text(net.accounts[VERIFIER].key.hex())
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "node.cli", "verify", "--once",
            "--l1-rpc", net.anvil.url, "--rollup", net.addresses["MPSRollup"],
            "--sequencer-rpc", h.url, "--datadir", str(tmp_path / "verifier"),
            "--l1-key-file", str(key), "--log-format", "json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 1, err.decode()
        assert f"batch 1: first diverging block {last}" in out.decode()
        assert "challenged" in out.decode()
        assert f.batch(1).call()[4] == net.accounts[VERIFIER].address
        assert not f.isFinalized(1).call()
        # the admin resolves it as fraud: the batch is gone and the honest poster re-commits
        net.tx(0, net.c("ResolverCommittee").functions.vote(1, True))  # 1 of 1 here
        assert f.nextBatchIndex().call() == 1
        assert net.post_until_idle()[:2] == ["posted", "confirmed"]
        assert f.batch(1).call()[0] == storage.header_at(last).state_root


@pytest.mark.parametrize("lie", ["forged stake", "withheld stake"])
async def test_verifier_catches_deposits_the_l1_never_made_or_withheld(
    tmp_path: Path, lie: str
) -> None:
    async with l1_net(tmp_path) as net:
        h, seq = net.h, net.h.node.sequencer
        honest = Keypair.generate()
        net.stake(honest, FIRST_CLIENT)
        await net.follow()  # block 1: a real stake
        net.stake(Keypair.generate(), FIRST_CLIENT + 1)
        net.anvil.mine(2)
        top = net.w3.eth.block_number
        origin = (top, bytes(net.w3.eth.get_block(top)["hash"]))
        if lie == "forged stake":  # a stake the L1 never saw, for a key of the sequencer's
            kp, addr = Keypair.generate(), b"\x01" * 20  # bound well: the STF would count it
            binding = kp.sign(binding_message(CHAIN_ID, addr))
            fake = L1Event(top, 0, "stake", [kp.public_key, addr, STAKE, binding])
            seq.queue_l1_events([fake], origin)
        else:  # the origin moves past a real stake that the block leaves out
            seq.queue_l1_events([], origin)
        await seq.produce_block()
        bad_height = seq.head.height
        assert net.post_until_idle()[:2] == ["posted", "confirmed"]
        derivation = DerivationChecker(net.w3, net.c("StakingRegistry"), net.c("RewardManager"))
        with Storage(tmp_path / "verifier.db") as vstore:
            v = Verifier(net.c("MPSRollup"), RPCClient(h.url), vstore, derivation=derivation)
            bad = await asyncio.to_thread(v.verify_new_batches)
        assert bad is not None and bad.block == bad_height, bad
        assert ("withheld" if lie == "withheld stake" else "stake") in bad.why


async def test_a_stuck_commitment_is_re_signed_with_higher_fees_up_to_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With anvil not mining, the poster re-signs the same commitment under the same nonce,
    each time at least 12.5% dearer (anvil's replacement rule), never above its cap; once a
    block is mined exactly one batch is committed, by the latest signature."""
    import dataclasses

    from node.l1 import poster as poster_mod

    monkeypatch.setattr(poster_mod, "RESEND_AFTER", 0.0)
    async with l1_net(tmp_path) as net:
        h, anvil = net.h, net.anvil
        await h.send_ok(put_record(Keypair.generate(), CHAIN_ID, 0, "n", b"stuck"))
        await h.seal()
        anvil.rpc("evm_setAutomine", [False])
        base = int(net.w3.eth.get_block("latest")["baseFeePerGas"])
        cap = 4 * base + 2 * 10**9
        poster = BatchPoster(
            net.w3, h.node.l1.deployment, net.accounts[SEQUENCER], h.node.storage,
            dataclasses.replace(h.node.l1.poster.settings, max_fee_wei=cap),
        )  # fmt: skip
        assert poster.step() == "posted"

        def pending() -> poster_mod.Pending:
            raw = h.node.storage.get(poster_mod.K_PENDING)
            assert raw is not None
            return poster_mod.Pending.decode(raw)

        first = pending()
        fees = [first.max_fee]
        for _ in range(8):
            assert poster.step() == "resent"
            p = pending()
            assert (p.nonce, p.batch_index, p.last_block) == (
                first.nonce, first.batch_index, first.last_block
            )  # fmt: skip
            fees.append(p.max_fee)
        assert fees[0] < cap and fees[-1] == cap
        assert all(b >= a * 1.125 for a, b in itertools.pairwise(fees) if b < cap)
        assert len(p.hashes) == len(set(fees))  # a new signature only when the fee rose
        # anvil's pool holds one commitment for that nonce: the newest
        pool = anvil.rpc("txpool_content")["pending"]
        mine_ = [tx for txs in pool.values() for tx in txs.values()]
        assert [bytes.fromhex(tx["hash"][2:]) for tx in mine_] == [p.hashes[-1]]

        anvil.mine(1)
        assert poster.step() == "confirmed"
        rollup = net.c("MPSRollup").functions
        assert rollup.nextBatchIndex().call() == 1
        assert net.w3.eth.get_transaction_receipt(p.hashes[-1])["status"] == 1
        assert poster.step() == "idle"
        anvil.rpc("evm_setAutomine", [True])


class GenesisLiar:
    """The sequencer's RPC, except that ``mps_getGenesis`` names a larger blob limit."""

    def __init__(self, rpc: RPCClient) -> None:
        self.rpc = rpc

    def call(self, method: str, *params: object) -> object:
        out = self.rpc.call(method, *params)
        if method == "mps_getGenesis":
            assert isinstance(out, dict)
            lim = dict(out["limits"])
            lim["maxBlobSize"] = int(lim["maxBlobSize"]) * 2
            out = {**out, "limits": lim}
        return out


async def test_a_verifier_trusts_the_l1_not_the_sequencer_for_the_limits(tmp_path: Path) -> None:
    """Issue 11: the consensus limits were not in the genesis hash, and ``mps-node verify`` took
    them from the sequencer's RPC, so a sequencer could have a verifier replay under limits of its
    choosing. The genesis state commits them (``chain/spec``) and MPSRollup holds that root: a
    lying ``mps_getGenesis`` is a divergence at genesis; the truthful one verifies."""
    async with l1_net(tmp_path) as net:
        h = net.h
        await h.send_ok(put_record(Keypair.generate(), CHAIN_ID, 0, "n", b"one blob"))
        await h.seal()
        assert net.post_until_idle()[:2] == ["posted", "confirmed"]
        rollup = net.c("MPSRollup")
        with Storage(tmp_path / "liar.db") as vstore:
            v = Verifier(rollup, GenesisLiar(RPCClient(h.url)), vstore)  # type: ignore[arg-type]
            bad = await asyncio.to_thread(v.verify_new_batches)
        assert bad is not None and bad.block == 0 and "genesis state root" in bad.why, bad
        with Storage(tmp_path / "honest.db") as vstore:
            v = Verifier(rollup, RPCClient(h.url), vstore)
            assert await asyncio.to_thread(v.verify_new_batches) is None
            assert v.checked >= 1


async def test_a_node_whose_database_is_behind_the_l1_refuses_to_start(tmp_path: Path) -> None:
    """Issue 13's silent corruption: with LevelDB's CURRENT file deleted the node started a new
    chain at height 0 (and with its head set back served an old one), ready to sign again
    heights the L1 already holds. Against the L1 it now refuses, saying why."""
    async with l1_net(tmp_path) as net:
        await staked_clients(net, 2)
        assert net.post_until_idle()[:2] == ["posted", "confirmed"]
        settled = net.c("MPSRollup").functions.lastCommittedBlock().call()
        assert settled >= 1
        empty = tmp_path / "lost"  # what a node finds with its database gone
        settings = l1_settings(net.anvil, net.addresses, net.datadir)
        with pytest.raises(L1Error, match="head is block 0, but the L1 holds batches up to"):
            async with start_node(empty, **settings):
                pass
        # the same height with other contents (another chain on this L1's rollup)
        other = tmp_path / "other"
        async with start_node(other, chain_id=CHAIN_ID, funding_window_blocks=FUNDING_WINDOW) as h2:
            for n in range(settled):
                await h2.send_ok(put_record(Keypair.generate(), CHAIN_ID, 0, "x", bytes([n])))
                await h2.seal()
        with pytest.raises(L1Error, match="is not the chain this rollup settled"):
            async with start_node(other, **settings):
                pass


async def test_a_node_pricing_data_otherwise_than_its_reward_manager_refuses_to_start(
    tmp_path: Path,
) -> None:
    """The STF caps a task's bytes at what its deposit pays for at the spec's price; a
    RewardManager billing another price would take what the cap never foresaw (issue 13)."""
    async with l1_net(tmp_path) as net:
        settings = l1_settings(net.anvil, net.addresses, net.datadir)
        with pytest.raises(L1Error, match="prices a task's data at 7 wei per MiB, but the"):
            async with start_node(tmp_path / "priced", data_fee_per_mib=7, **settings):
                pass


# -- data availability (issue 12) -------------------------------------------------------------


class WithholdingSequencer:
    """The sequencer's RPC as a withholding sequencer runs it: genesis, but no blocks."""

    def __init__(self, url: str) -> None:
        self._rpc = RPCClient(url)

    def call(self, method: str, *params: Any) -> Any:
        if method == "mps_getRawBlock":
            raise TransportError(0, "withheld")
        return self._rpc.call(method, *params)


def send_as_sequencer(net: L1Net, call: Any) -> None:
    """A transaction signed with the sequencer's L1 key, as the attacker holding it sends one."""
    w3, seq = net.w3, net.accounts[SEQUENCER]
    raw, _ = build_signed(w3, seq, call, w3.eth.get_transaction_count(seq.address), 10**12)
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))


async def test_the_fake_root_attack_is_voided_and_no_honest_stake_moves(tmp_path: Path) -> None:
    """Issue 12's attack, end to end: with the sequencer's L1 key, commit a made-up state root
    holding slash evidence against an honest client, and serve no data for it. The verifier
    cannot get the blocks, so it demands them on the L1; nobody can publish data that does not
    exist, the batch is void once the window passes, and the slash has no finalized root to
    prove against. Before, the batch finalized and anyone could slash the honest stake."""
    async with l1_net(tmp_path) as net:
        h, f = net.h, net.c("MPSRollup").functions
        (honest,) = await staked_clients(net, 1)
        assert net.post_until_idle()[:2] == ["posted", "confirmed"]  # batch 0: the stake
        task = b"\x13" * 32
        key, value = slash_leaf(honest.public_key, task, 0, 2)
        fake = StateTree({key: value})
        last = f.lastCommittedBlock().call() + 5  # blocks that do not exist
        root = f.lastStateRoot().call()
        commit = f.commitBatch(1, root, fake.root, keccak(b"none"), last, NO_DEADLINE)
        send_as_sequencer(net, commit)

        storage = Storage(tmp_path / "verifier.db")
        try:
            v = Verifier(net.c("MPSRollup"), RPCClient(h.url), storage, net.w3,
                         net.accounts[VERIFIER], 10**12)  # fmt: skip
            assert (
                await asyncio.to_thread(v.verify_new_batches) is None
            )  # batch 0 checks; batch 1 has no data
            assert v.checked == 1 and "data challenged" in (v.waiting or "")
            assert f.dataChallenge(1).call()[3] == DATA_ACTIVE
            net.anvil.mine(CHALLENGE_BLOCKS)  # its fraud window passes too: still not final
            assert not f.isFinalized(1).call()
            sm = net.c("SlashingManager").functions
            slash = sm.slash(1, honest.public_key, task, 0, 2, fake.siblings(key))
            with pytest.raises(ContractRevert, match="NotFinalized"):
                net.tx(AGGREGATOR, slash)
            assert (
                await asyncio.to_thread(v.verify_new_batches) is None
            )  # the publication window is over: void it
            assert "voided" in (v.waiting or "")
            assert f.nextBatchIndex().call() == 1
            with pytest.raises(ContractRevert, match="UnknownBatch"):
                net.tx(AGGREGATOR, slash)
            reg = net.c("StakingRegistry").functions
            assert reg.statusOf(honest.public_key).call() == 1  # staked, untouched
            # the verifier's bond came back; the honest chain goes on from batch 0
            assert f.bondBalance(net.accounts[VERIFIER].address).call() == DA_BOND
            await h.send_ok(put_record(Keypair.generate(), CHAIN_ID, 0, "n", b"after"))
            await h.seal()
            assert net.post_until_idle()[:2] == ["posted", "confirmed"]
            assert (
                await asyncio.to_thread(v.verify_new_batches) is None
                and v.waiting is None
                and v.checked == 2
            )
        finally:
            storage.close()


async def test_withheld_data_is_demanded_and_published_on_the_l1(tmp_path: Path) -> None:
    """A verifier the sequencer serves no blocks challenges the batch's data; the sequencer's
    poster publishes it, chunk by chunk, within the window (earning the bond back), and the
    verifier replays what the L1 holds."""
    async with l1_net(tmp_path) as net:
        h, f = net.h, net.c("MPSRollup").functions
        await send_filler(h, os.urandom(150_000))
        await h.seal()
        assert net.post_until_idle()[:2] == ["posted", "confirmed"]
        data = batch_data(h.node.storage, 1, f.batch(0).call()[2])
        chunks = len(split_chunks(data))
        assert chunks == 3
        storage = Storage(tmp_path / "verifier.db")
        try:
            v = Verifier(net.c("MPSRollup"), WithholdingSequencer(h.url), storage, net.w3,
                         net.accounts[VERIFIER], 10**12)  # type: ignore[arg-type]  # fmt: skip
            assert await asyncio.to_thread(v.verify_new_batches) is None and "data challenged" in (
                v.waiting or ""
            )
            assert await asyncio.to_thread(v.verify_new_batches) is None and "0 chunks" in (
                v.waiting or ""
            )
            assert h.node.l1.poster.step() == "published"
            assert f.dataChallenge(0).call()[2:] == [chunks, DATA_RESOLVED]
            assert f.bondBalance(net.accounts[SEQUENCER].address).call() == DA_BOND
            assert (
                await asyncio.to_thread(v.verify_new_batches) is None
                and v.waiting is None
                and v.checked == 1
            )
            assert storage.header_at(1).state_root == h.node.storage.header_at(1).state_root
        finally:
            storage.close()
