"""Forced inclusion end to end on anvil (issue 12): a transaction the sequencer will not take is
posted to the ForcedInbox and lands; a batch that leaves it out past the sequencing window is
proved fraud by the verifier and voided."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from l1_node import ADMIN, FIRST_CLIENT, VERIFIER, L1Net, l1_net
from rpc_fixtures import CHAIN_ID, hx
from structlog.testing import capture_logs

from client_sdk.l1 import L1, L1Config
from mps_common.transport import RPCClient
from node.l1.chain import L1Error
from node.l1.derivation import DerivationChecker, DerivationIncomplete
from node.l1.poster import NO_DEADLINE, Pending
from node.l1.verifier import Verifier
from node.storage import Storage
from stf import encoding, state_keys
from stf.tx import make_tx
from stf.txtypes import record
from stf.txtypes.record import PutRecord
from tests.conftest import signing_key

USER = signing_key(51)
WINDOW = 32  # DeployParams.sequencing_window, the tests' deployment


def censored_tx(data: bytes) -> bytes:
    """A put_record the sequencer never sees: it goes to the inbox only. (Not a blob: a chain
    that funds its tasks takes a blob only for a task, and a forced one is no exception.)"""
    return make_tx(USER, CHAIN_ID, PutRecord.TYPE_ID, 0, record.payload("note", data)).encode()


def user_l1(net: L1Net) -> L1:
    key = net.accounts[FIRST_CLIENT].key.hex()
    return L1(L1Config(net.anvil.url, key, net.addresses))


def verifier(net: L1Net, storage: Storage, challenge: bool = False) -> Verifier:
    derivation = DerivationChecker(
        net.w3,
        net.c("StakingRegistry"),
        net.c("RewardManager"),
        inbox=net.c("ForcedInbox"),
    )
    if not challenge:
        return Verifier(net.c("MPSRollup"), RPCClient(net.h.url), storage, derivation=derivation)
    return Verifier(net.c("MPSRollup"), RPCClient(net.h.url), storage, net.w3,
                    net.accounts[VERIFIER], 10**12, derivation=derivation)  # fmt: skip


async def user_nonce(net: L1Net) -> int:
    return int(await net.h.result("mps_getNonce", hx(bytes(USER.verify_key)), False))


async def test_a_censored_transaction_forced_through_the_inbox_lands(tmp_path: Path) -> None:
    async with l1_net(tmp_path) as net:
        sdk = user_l1(net)
        assert sdk.sequencing_window() == WINDOW
        sdk.force_transaction(censored_tx(b"an update the sequencer would not take"))
        await net.follow()
        assert await user_nonce(net) == 1
        key = state_keys.record(bytes(USER.verify_key), "note")
        proof = await net.h.result("mps_getProof", hx(key), "latest")
        assert proof["value"] == hx(b"an update the sequencer would not take")
        assert "posted" in net.post_until_idle()
        with Storage(tmp_path / "verifier.db") as vstore:
            v = verifier(net, vstore)
            assert await asyncio.to_thread(v.verify_new_batches) is None
            assert v.checked == net.c("MPSRollup").functions.nextBatchIndex().call()


async def test_the_poster_holds_a_batch_that_would_leave_a_due_event_out(tmp_path: Path) -> None:
    """An honest sequencer whose follower lags never posts a batch the verifier would prove
    fraud: it waits until its blocks carry the event."""
    async with l1_net(tmp_path) as net:
        user_l1(net).force_transaction(censored_tx(b"late"))
        net.anvil.mine(WINDOW)
        await net.h.node.sequencer.produce_block()  # the follower has not read the L1: old origin
        with capture_logs() as logs:
            assert net.h.node.l1.poster.step() == "held"
        assert any("batch held" in e["event"] for e in logs)
        await net.follow()
        assert "posted" in net.post_until_idle()
        with Storage(tmp_path / "verifier.db") as vstore:
            assert await asyncio.to_thread(verifier(net, vstore).verify_new_batches) is None
        assert await user_nonce(net) == 1


async def test_a_batch_censoring_a_forced_transaction_is_challenged_and_voided(
    tmp_path: Path,
) -> None:
    """The censor: a sequencer that ignores the inbox (its node does not follow it) and keeps
    its L1 origin old, so that no per-block rule catches it. The batch it commits more than a
    sequencing window after the forced transaction is fraud by the derivation rule."""
    async with l1_net(tmp_path, node={"l1_forced_inbox": ""}) as net:
        forced_at = user_l1(net).force_transaction(censored_tx(b"censored"))
        net.anvil.mine(WINDOW)
        await net.h.node.sequencer.produce_block()
        assert net.post_until_idle()[:2] == ["posted", "confirmed"]
        rollup = net.c("MPSRollup").functions
        assert rollup.batch(0).call()[3] >= forced_at + WINDOW  # committed past the window
        with Storage(tmp_path / "verifier.db") as vstore:
            bad = await asyncio.to_thread(verifier(net, vstore, challenge=True).verify_new_batches)
        assert bad is not None and bad.batch_index == 0 and bad.challenged, bad
        assert "forced" in bad.why and "sequencing window" in bad.why
        net.tx(ADMIN, net.c("ResolverCommittee").functions.vote(0, True))  # 1 of 1 here
        assert rollup.nextBatchIndex().call() == 0  # the batch is gone
        assert await user_nonce(net) == 0


async def test_a_capped_batch_takes_the_blocks_that_carry_a_due_event(tmp_path: Path) -> None:
    """Red team: the poster read the L1 cursor of the head, not of the batch's last block, so a
    batch capped at ``batch_max_blocks`` behind a backlog looked complete and was fraud. It now
    reads the cursor under the batch's root, and a batch that would leave a due event out takes
    the later blocks that carry it, past the cap, and no more."""
    async with l1_net(tmp_path, node={"batch_max_blocks": 2}) as net:
        user_l1(net).force_transaction(censored_tx(b"behind a backlog"))
        net.anvil.mine(WINDOW)
        for _ in range(4):  # a backlog sealed while the follower lagged
            await net.h.node.sequencer.produce_block()
        await net.follow()  # the next block carries the forced transaction
        carrying = await net.h.result("mps_blockNumber")
        for _ in range(3):
            await net.h.node.sequencer.produce_block()
        assert net.h.node.l1.poster.step() == "posted"
        assert net.post_until_idle()[0] == "confirmed"
        assert net.c("MPSRollup").functions.batch(0).call()[2] == carrying  # past the cap of 2
        with Storage(tmp_path / "verifier.db") as vstore:
            assert await asyncio.to_thread(verifier(net, vstore).verify_new_batches) is None


async def test_a_verifier_not_following_the_inbox_stops_and_challenges_nothing(
    tmp_path: Path,
) -> None:
    """Red team: a verifier given the registry but not the inbox saw the honest forced deposit
    as one the L1 never made, and challenged an honest batch with its bond."""
    async with l1_net(tmp_path) as net:
        user_l1(net).force_transaction(censored_tx(b"forced"))
        await net.follow()
        assert net.post_until_idle()[:2] == ["posted", "confirmed"]
        derivation = DerivationChecker(net.w3, net.c("StakingRegistry"), net.c("RewardManager"))
        with Storage(tmp_path / "verifier.db") as vstore:
            v = Verifier(net.c("MPSRollup"), RPCClient(net.h.url), vstore, net.w3,
                         net.accounts[VERIFIER], 10**12, derivation=derivation)  # fmt: skip
            with pytest.raises(DerivationIncomplete, match="--forced-inbox"):
                await asyncio.to_thread(v.verify_new_batches)
        assert net.c("MPSRollup").functions.firstOpenChallenge().call()[0] is False  # none


async def test_a_senders_next_transaction_goes_on_after_its_forced_one(tmp_path: Path) -> None:
    """Red team: the pool caches each sender's nonce and refreshed it only for senders whose
    pooled transactions were in the block, so a client that forced nonce 0 and sent nonce 1 the
    usual way had nonce 1 never selected."""
    async with l1_net(tmp_path) as net:
        user_l1(net).force_transaction(censored_tx(b"zero"))
        one = make_tx(USER, CHAIN_ID, PutRecord.TYPE_ID, 1, record.payload("n", b"one")).encode()
        await net.h.result("mps_sendTransaction", hx(one))  # waits behind nonce 0
        await net.follow()  # the forced nonce 0
        assert await user_nonce(net) == 1
        await net.h.node.sequencer.produce_block()
        assert await user_nonce(net) == 2


async def test_a_node_refuses_confirmations_that_leave_no_room_in_the_window(
    tmp_path: Path,
) -> None:
    with pytest.raises(L1Error, match="sequencing window of 32"):
        async with l1_net(tmp_path, node={"l1_confirmations": 14}):
            pass


async def test_a_commitment_mined_past_its_deadline_reverts_and_is_planned_again(
    tmp_path: Path,
) -> None:
    """Red team: a commitment checked against the window when sent, but mined late, would be
    fraud. It carries an l1Deadline: mined later it reverts, and the poster plans the batch
    again (from the blocks it has then, which carry the events)."""
    async with l1_net(tmp_path) as net:
        h, anvil, w3 = net.h, net.anvil, net.w3
        await h.node.sequencer.produce_block()
        poster = h.node.l1.poster
        anvil.rpc("evm_setAutomine", [False])
        real_deadline = poster._deadline
        poster._deadline = lambda: int(w3.eth.block_number) + 1  # type: ignore[method-assign]
        assert poster.step() == "posted"
        anvil.rpc("evm_setBlockGasLimit", [hex(60_000)])  # blocks go by without it
        anvil.mine(3)
        anvil.rpc("evm_setBlockGasLimit", [hex(30_000_000)])
        anvil.mine(1)  # it lands, past its deadline
        assert poster.step() == "reverted"
        assert net.c("MPSRollup").functions.nextBatchIndex().call() == 0
        poster._deadline = real_deadline  # type: ignore[method-assign]
        anvil.rpc("evm_setAutomine", [True])
        assert poster.step() == "posted"
        assert poster.step() == "confirmed"


def test_a_pending_commitment_written_before_deadlines_still_decodes() -> None:
    """The poster's write-ahead record gained the deadline; one written by the former code (a
    node upgraded with a commitment in flight) reads back with no deadline."""
    old = encoding.encode([3, 7, b"raw", [b"h" * 32], 12, 10**9, 1_700_000_000_000])
    p = Pending.decode(old)
    assert (p.batch_index, p.nonce, p.last_block, p.deadline) == (3, 7, 12, NO_DEADLINE)
    assert Pending.decode(p.encode()) == p
