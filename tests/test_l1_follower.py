"""The L1 follower on anvil: confirmations hide shallow reorgs; restarts neither skip nor repeat."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from l1_node import FIRST_CLIENT, l1_net
from rpc_fixtures import hx, unhex

from client_sdk.keys import Keypair
from stf import state_keys
from stf.fl.settlement import decode_funding
from stf.ids import L1Address
from stf.stakes import STAKED, UNBONDING

pytestmark = pytest.mark.slow


async def test_a_reorg_shallower_than_the_confirmations_never_reaches_the_rollup(
    tmp_path: Path,
) -> None:
    async with l1_net(tmp_path) as net:  # the node reads 1 confirmation behind the head
        h, follower = net.h, net.h.node.l1.follower
        kept, dropped = Keypair.generate(), Keypair.generate()
        net.stake(kept, FIRST_CLIENT)
        net.anvil.mine(1)
        assert follower.poll_once() == 1
        snap = net.anvil.snapshot()
        net.stake(dropped, FIRST_CLIENT + 1)  # mined, but not yet confirmed...
        assert follower.poll_once() == 0
        net.anvil.revert(snap)  # ...and reorged away
        net.anvil.mine(3)
        assert follower.poll_once() == 0
        await h.node.sequencer.produce_block()
        assert (await h.result("mps_getStake", hx(kept.public_key)))["status"] == STAKED
        assert await h.result("mps_getStake", hx(dropped.public_key)) is None


async def test_events_arrive_once_and_in_l1_order_across_a_restart(tmp_path: Path) -> None:
    async with l1_net(tmp_path) as net:
        h = net.h
        a = Keypair.generate()
        net.stake(a, FIRST_CLIENT)
        reg = net.c("StakingRegistry").functions
        net.tx(FIRST_CLIENT, reg.unregister())
        net.anvil.mine(2)
        assert h.node.l1.follower.poll_once() == 2
        # the follower's queue is lost before a block consumed it (a crash); a fresh follower
        # re-reads from the rollup's cursor and delivers each event exactly once
        h.node.sequencer._deposits.clear()
        from node.l1.follower import Follower

        old = h.node.l1.follower
        fresh = Follower(
            net.w3,
            h.node.l1.deployment,
            h.node.sequencer.queue_l1_events,
            0,
            old.last_consumed,
            1,
            0.1,
        )
        assert fresh.poll_once() == 2
        assert fresh.poll_once() == 0
        await h.node.sequencer.produce_block()
        stake = await h.result("mps_getStake", hx(a.public_key))
        assert stake["status"] == UNBONDING  # stake then unbond, in L1 order
        # after the block consumed them, re-reading the same range delivers nothing new
        again = Follower(
            net.w3, h.node.l1.deployment, h.node.sequencer.queue_l1_events, 0,
            old.last_consumed, 1, 0.1,
        )  # fmt: skip
        assert again.poll_once() == 0


async def test_the_daemon_runs_the_l1_services_on_its_own(tmp_path: Path) -> None:
    async with l1_net(tmp_path, produce_blocks=True, block_time=0.2) as net:
        h = net.h
        client = Keypair.generate()
        await asyncio.to_thread(net.stake, client, FIRST_CLIENT)
        for _ in range(100):
            stake = await h.result("mps_getStake", hx(client.public_key))
            status = await h.result("mps_syncStatus")
            if stake is not None and status["safe"]["height"] >= 1:
                break
            await asyncio.sleep(0.1)
        assert stake is not None and stake["status"] == STAKED
        assert status["safe"]["height"] >= 1  # committed to MPSRollup without anyone stepping it
        text = await (await h.client.get("/metrics")).text()
        assert 'mps_l1_actions_total{action="event",service="follower"}' in text
        assert 'mps_l1_actions_total{action="posted",service="poster"}' in text


async def test_a_stake_above_2_to_the_64_wei_is_recorded_exactly(tmp_path: Path) -> None:
    """Red-team scenario: a deployment with a stake of 2^64 wei or more halted the chain at the
    first Staked event (the follower could not encode the amount). Amounts are uint256 end to
    end: the rollup records it to the wei, blocks go on, and a funding above 2^64 too."""
    big = 2**64 + 7
    async with l1_net(tmp_path, stake_amount=big) as net:
        h = net.h
        a = Keypair.generate()
        net.stake(a, FIRST_CLIENT)
        await net.follow()
        stake = await h.result("mps_getStake", hx(a.public_key))
        assert stake["status"] == 0 and stake["amount"] == str(big)
        task_id = b"\x42" * 32
        rm = net.c("RewardManager").functions
        base_fee = int(rm.BASE_FEE().call())
        height = await h.result("mps_blockNumber")
        funder = net.accounts[FIRST_CLIENT + 1].address
        net.tx(FIRST_CLIENT + 1, rm.fundTask(task_id, 2**65), base_fee + 2**65)
        await net.follow()
        assert await h.result("mps_blockNumber") == height + 1  # the chain goes on
        key = state_keys.funding(task_id, L1Address(bytes.fromhex(funder[2:])))
        funding = await h.result("mps_getProof", hx(key))
        assert decode_funding(unhex(funding["value"])).deposit == 2**65
