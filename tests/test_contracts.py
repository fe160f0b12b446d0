"""The L1 contracts, rule by rule, on anvil and on eth-tester (see tests/l1_fixtures.py).

Proofs are real: leaves are laid out as the L1 spec says, put in the project's own sparse Merkle
tree (stf.smt) next to unrelated keys, and proven against a committed and finalized batch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from eth_utils.crypto import keccak
from l1_fixtures import (
    BINDING,
    ETHER,
    GENESIS_ROOT,
    L1,
    NO_DEADLINE,
    PARAMS,
    StateTree,
    funding_leaf,
    key32,
    l1_deployed_fixture,  # noqa: F401
    l1_fixture,  # noqa: F401
    release_leaf,
    reverts,
    reward_leaf,
    settle_leaf,
    slash_leaf,
)
from web3.logs import DISCARD
from web3.types import TxReceipt

from contracts import build
from contracts.anvil import Anvil, AnvilError, find_binary
from contracts.deploy import DeployParams, deploy, deploy_all
from contracts.reverts import ContractRevert, decode_revert
from contracts.transact import contract
from stf.smt import key_path, leaf_hash, value_hash

STAKE = PARAMS.stake_amount
CB = PARAMS.challenge_blocks
BOND = PARAMS.challenge_bond
DA_CB, DA_RB, DA_BOND = PARAMS.da_challenge_blocks, PARAMS.da_resolve_blocks, PARAMS.da_bond
BASE_FEE = PARAMS.base_fee
FEE = PARAMS.fee_per_epoch
BPS = PARAMS.protocol_share_bps
REPO = Path(__file__).resolve().parent.parent

ALICE, BOB, CAROL = key32("client alice"), key32("client bob"), key32("client carol")
TASK, TASK2 = key32("task one"), key32("task two")
ROOT1, ROOT2, ROOT3 = (key32(f"root {i}") for i in range(1, 4))

STAKED, UNBONDING, SLASHED, WITHDRAWN = 1, 2, 3, 4
ZERO_ADDRESS = "0x" + "00" * 20


def flip(b: bytes) -> bytes:
    return bytes([b[0] ^ 1]) + b[1:]


# == StakingRegistry ===============================================================================
def test_stake_records_the_key_and_emits(l1: L1) -> None:
    user = l1.user(0)
    receipt = l1.stake(user, ALICE)
    assert l1.events(receipt, "StakingRegistry", "Staked") == [
        {"staker": user.address, "clientKey": ALICE, "amount": STAKE, "binding": BINDING}
    ]
    reg = l1.registry.functions
    assert l1.call(reg.statusOf(ALICE)) == STAKED
    assert l1.call(reg.stakeOf(ALICE)) == STAKE
    assert l1.call(reg.stakerOf(ALICE)) == user.address
    assert l1.call(reg.keyOf(user.address)) == ALICE
    assert l1.call(reg.STAKE_AMOUNT()) == STAKE
    assert l1.call(reg.rollup()) == l1.addresses["MPSRollup"]
    assert l1.call(reg.admin()) == l1.admin.address
    assert l1.balance(l1.registry.address) == STAKE


@pytest.mark.parametrize("sent", [STAKE - 1, STAKE + 1, 0])
def test_stake_must_be_exact(l1: L1, sent: int) -> None:
    with reverts("WrongStakeAmount") as exc:
        l1.tx(l1.user(0), l1.registry.functions.stake(ALICE, BINDING), sent)
    assert exc.value.error_args == (sent, STAKE)


@pytest.mark.parametrize("length", [0, 63, 65])
def test_a_binding_is_a_64_byte_signature(l1: L1, length: int) -> None:
    """The L1 does not check the signature (the rollup does, before the stake counts), only
    its length, so that a client's mistake fails here and costs no stake."""
    with reverts("BadBindingLength") as exc:
        l1.tx(l1.user(0), l1.registry.functions.stake(ALICE, bytes(length)), STAKE)
    assert exc.value.error_args == (length,)


def test_zero_key_rejected(l1: L1) -> None:
    with reverts("ZeroKey"):
        l1.stake(l1.user(0), bytes(32))


def test_double_stake_and_one_key_per_staker(l1: L1) -> None:
    user = l1.user(0)
    l1.stake(user, ALICE)
    with reverts("AlreadyStaked"):
        l1.stake(user, ALICE)
    with reverts("StakerHasOtherKey") as exc:
        l1.stake(user, BOB)
    assert exc.value.error_args == (ALICE,)


def test_key_cannot_be_reused_by_another_staker(l1: L1) -> None:
    l1.stake(l1.user(0), ALICE)
    with reverts("KeyTaken") as exc:
        l1.stake(l1.user(1), ALICE)
    assert exc.value.error_args == (ALICE, l1.user(0).address)
    # not even once the first staker has withdrawn: the key stays bound to it
    l1.unbond_and_withdraw(l1.user(0), ALICE)
    with reverts("KeyTaken"):
        l1.stake(l1.user(1), ALICE)


def test_unregister_starts_unbonding(l1: L1) -> None:
    user = l1.user(0)
    with reverts("WrongStatus"):  # nothing staked
        l1.tx(user, l1.registry.functions.unregister())
    l1.stake(user, ALICE)
    receipt = l1.tx(user, l1.registry.functions.unregister())
    at = receipt["blockNumber"]
    assert l1.events(receipt, "StakingRegistry", "UnbondingStarted") == [
        {"staker": user.address, "clientKey": ALICE, "unbondBlock": at}
    ]
    assert l1.call(l1.registry.functions.statusOf(ALICE)) == UNBONDING
    assert l1.call(l1.registry.functions.unbondBlockOf(ALICE)) == at
    with reverts("WrongStatus") as exc:
        l1.tx(user, l1.registry.functions.unregister())
    assert exc.value.error_args == (ALICE, UNBONDING)
    with reverts("AlreadyStaked"):  # still bonded while unbonding
        l1.stake(user, ALICE)


def test_withdraw_only_on_the_rollups_finalized_release(l1: L1) -> None:
    """No time lock to race: the stake comes back only on proof of the rollup's release of this
    very unbonding under a finalized root (issue 11's escape)."""
    user = l1.user(0)
    reg = l1.registry.functions
    l1.stake(user, ALICE)
    batch, siblings = l1.release(ALICE, 0)
    with reverts("WrongStatus"):  # not unbonding
        l1.tx(user, reg.withdrawStake(batch, siblings))
    at = l1.tx(user, reg.unregister())["blockNumber"]
    l1.mine(1000)  # however long it waits: time alone releases nothing
    tree = StateTree(dict([slash_leaf(BOB, TASK, 1, 1)]))  # a finalized root without the release
    other = l1.commit_final(tree)
    with reverts("NotReleased") as exc:
        l1.tx(user, reg.withdrawStake(other, tree.siblings(slash_leaf(BOB, TASK, 1, 1)[0])))
    assert exc.value.error_args == (ALICE, at)
    for wrong in (at - 1, at + 1):  # a release of another unbonding of the key
        with reverts("NotReleased"):
            l1.tx(user, reg.withdrawStake(*l1.release(ALICE, wrong)))
    key, value = release_leaf(ALICE, at)
    pending = StateTree({key: value})
    index = l1.commit(pending.root)  # the release, still inside its challenge window
    with reverts("NotFinalized"):
        l1.tx(user, reg.withdrawStake(index, pending.siblings(key)))
    with reverts("UnknownBatch"):
        l1.tx(user, reg.withdrawStake(index + 1, pending.siblings(key)))
    l1.finalize()
    assert l1.call(reg.stakeOf(ALICE)) == STAKE
    l1.stake(l1.user(1), BOB)
    l1.tx(l1.user(1), reg.unregister())
    with reverts("NotReleased"):  # the right proof, but of someone else's release
        l1.tx(l1.user(1), reg.withdrawStake(index, pending.siblings(key)))

    before = l1.balance(user.address)
    receipt = l1.tx(user, reg.withdrawStake(index, pending.siblings(key)))
    assert l1.balance(user.address) == before + STAKE - l1.cost(receipt)
    assert l1.events(receipt, "StakingRegistry", "Withdrawn") == [
        {"staker": user.address, "clientKey": ALICE, "amount": STAKE}
    ]
    assert l1.call(reg.statusOf(ALICE)) == WITHDRAWN
    assert l1.call(reg.stakeOf(ALICE)) == 0
    assert l1.call(reg.stakerOf(ALICE)) == user.address  # rewards still go there
    assert l1.balance(l1.registry.address) == STAKE  # bob's, untouched
    with reverts("WrongStatus"):  # only once
        l1.tx(user, reg.withdrawStake(index, pending.siblings(key)))
    # the same address may stake the same key again; the old release does not pay the new stake
    l1.stake(user, ALICE)
    assert l1.call(reg.statusOf(ALICE)) == STAKED
    assert l1.call(reg.unbondBlockOf(ALICE)) == 0
    l1.tx(user, reg.unregister())
    with reverts("NotReleased"):
        l1.tx(user, reg.withdrawStake(index, pending.siblings(key)))
    l1.tx(user, reg.withdrawStake(*l1.release(ALICE)))
    assert l1.call(reg.statusOf(ALICE)) == WITHDRAWN


def test_the_rollup_is_wired_once(l1: L1) -> None:
    """Whoever could re-point the registry at another rollup could release any stake."""
    reg = l1.registry.functions
    with reverts("RollupAlreadySet") as exc:
        l1.tx(l1.admin, reg.setRollup(l1.user(0).address))
    assert exc.value.error_args == (l1.addresses["MPSRollup"],)
    # releases and slashes are proven against the same rollup's roots
    assert l1.call(l1.slashing.functions.rollup()) == l1.call(reg.rollup())
    fresh = l1.deploy("StakingRegistry", STAKE, l1.admin.address)
    l1.tx(l1.user(0), fresh.functions.stake(ALICE, BINDING), STAKE)
    l1.tx(l1.user(0), fresh.functions.unregister())
    with reverts("RollupNotSet"):
        l1.tx(l1.user(0), fresh.functions.withdrawStake(0, []))
    with reverts("NotAdmin"):
        l1.tx(l1.user(0), fresh.functions.setRollup(l1.addresses["MPSRollup"]))
    with reverts("ZeroAddress"):
        l1.tx(l1.admin, fresh.functions.setRollup("0x" + "00" * 20))


def test_registry_access_control(l1: L1) -> None:
    user = l1.user(0)
    reg = l1.registry.functions
    l1.stake(user, ALICE)
    for caller in (user, l1.admin):  # not even the admin: only the SlashingManager
        with reverts("NotSlasher"):
            l1.tx(caller, reg.slash(ALICE, bytes(32)))
    for fn in (
        reg.setSlasher(user.address),
        reg.setSlashTreasury(user.address),
        reg.setRollup(user.address),
        reg.transferAdmin(user.address),
    ):
        with reverts("NotAdmin") as exc:
            l1.tx(user, fn)
        assert exc.value.error_args == (user.address,)
    with reverts("ZeroAddress"):
        l1.tx(l1.admin, reg.setSlasher("0x" + "00" * 20))
    assert l1.call(reg.slasher()) == l1.addresses["SlashingManager"]
    assert l1.call(reg.slashTreasury()) == l1.addresses["SlashTreasury"]


def test_registry_slash_directly(l1: L1) -> None:
    """A registry whose slasher is an account: the slash rules without proofs."""
    reg = l1.deploy("StakingRegistry", STAKE, l1.admin.address)
    slasher = l1.user(5)
    l1.tx(l1.admin, reg.functions.setSlasher(slasher.address))
    l1.tx(l1.user(0), reg.functions.stake(ALICE, BINDING), STAKE)
    with reverts("SlashTreasuryNotSet"):
        l1.tx(slasher, reg.functions.slash(ALICE, b"\x07" * 32))
    treasury = l1.addresses["SlashTreasury"]
    l1.tx(l1.admin, reg.functions.setSlashTreasury(treasury))
    before = l1.balance(treasury)
    receipt = l1.tx(slasher, reg.functions.slash(ALICE, b"\x07" * 32))
    assert l1.balance(treasury) == before + STAKE
    assert [e["amount"] for e in l1.events(receipt, "SlashTreasury", "Received")] == [STAKE]
    with reverts("WrongStatus") as exc:  # a key is slashed once
        l1.tx(slasher, reg.functions.slash(ALICE, b"\x08" * 32))
    assert exc.value.error_args == (ALICE, SLASHED)
    with reverts("WrongStatus"):  # never staked
        l1.tx(slasher, reg.functions.slash(BOB, b"\x08" * 32))


def test_transfer_admin(l1: L1) -> None:
    reg = l1.registry.functions
    new = l1.user(3)
    receipt = l1.tx(l1.admin, reg.transferAdmin(new.address))
    assert l1.events(receipt, "StakingRegistry", "AdminTransferred") == [
        {"previousAdmin": l1.admin.address, "newAdmin": new.address}
    ]
    with reverts("NotAdmin"):
        l1.tx(l1.admin, reg.setSlasher(new.address))
    l1.tx(new, reg.setSlasher(new.address))


# == MPSRollup: commitments ========================================================================
def test_commit_batches_chain(l1: L1) -> None:
    ro = l1.rollup.functions
    assert l1.call(ro.nextBatchIndex()) == 0
    assert l1.call(ro.lastStateRoot()) == GENESIS_ROOT
    assert l1.call(ro.genesisStateRoot()) == GENESIS_ROOT
    assert l1.call(ro.lastCommittedBlock()) == 0
    assert l1.call(ro.sequencer()) == l1.admin.address
    assert l1.call(ro.CHALLENGE_BLOCKS()) == CB
    assert l1.call(ro.CHALLENGE_BOND()) == BOND

    receipt = l1.tx(l1.admin, ro.commitBatch(0, GENESIS_ROOT, ROOT1, b"\xd1" * 32, 10, NO_DEADLINE))
    assert l1.events(receipt, "MPSRollup", "BatchCommitted") == [
        {
            "batchIndex": 0,
            "prevStateRoot": GENESIS_ROOT,
            "newStateRoot": ROOT1,
            "dataHash": b"\xd1" * 32,
            "lastBlock": 10,
        }
    ]
    assert l1.call(ro.batch(0)) == [
        ROOT1,
        b"\xd1" * 32,
        10,
        receipt["blockNumber"],
        "0x" + "00" * 20,
    ]
    l1.tx(l1.admin, ro.commitBatch(1, ROOT1, ROOT2, b"\xd2" * 32, 11, NO_DEADLINE))
    assert l1.call(ro.nextBatchIndex()) == 2
    assert l1.call(ro.lastStateRoot()) == ROOT2
    assert l1.call(ro.lastCommittedBlock()) == 11
    with reverts("UnknownBatch"):
        l1.call(ro.batch(2))


def test_commit_rules(l1: L1) -> None:
    ro = l1.rollup.functions
    with reverts("NotSequencer"):
        l1.tx(l1.user(0), ro.commitBatch(0, GENESIS_ROOT, ROOT1, ROOT1, 1, NO_DEADLINE))
    with reverts("WrongBatchIndex") as exc:
        l1.tx(l1.admin, ro.commitBatch(1, GENESIS_ROOT, ROOT1, ROOT1, 1, NO_DEADLINE))
    assert exc.value.error_args == (1, 0)
    with reverts("WrongPrevStateRoot") as exc:
        l1.tx(l1.admin, ro.commitBatch(0, ROOT3, ROOT1, ROOT1, 1, NO_DEADLINE))
    assert exc.value.error_args == (ROOT3, GENESIS_ROOT)
    with reverts("NonIncreasingLastBlock"):  # the first batch covers at least block 1
        l1.tx(l1.admin, ro.commitBatch(0, GENESIS_ROOT, ROOT1, ROOT1, 0, NO_DEADLINE))
    l1.tx(l1.admin, ro.commitBatch(0, GENESIS_ROOT, ROOT1, ROOT1, 5, NO_DEADLINE))
    for last in (5, 4):
        with reverts("NonIncreasingLastBlock") as exc:
            l1.tx(l1.admin, ro.commitBatch(1, ROOT1, ROOT2, ROOT2, last, NO_DEADLINE))
        assert exc.value.error_args == (last, 5)
    with reverts("WrongBatchIndex"):  # no re-commit of an index
        l1.tx(l1.admin, ro.commitBatch(0, GENESIS_ROOT, ROOT1, ROOT1, 6, NO_DEADLINE))
    with reverts("WrongPrevStateRoot"):
        l1.tx(l1.admin, ro.commitBatch(1, GENESIS_ROOT, ROOT2, ROOT2, 6, NO_DEADLINE))


def test_commit_gas_does_not_depend_on_batch_size(l1: L1) -> None:
    l1.commit(ROOT1)
    small = l1.tx(l1.admin, l1.rollup.functions.commitBatch(1, ROOT1, ROOT2, ROOT2, 2, NO_DEADLINE))
    large = l1.tx(
        l1.admin,
        l1.rollup.functions.commitBatch(2, ROOT2, ROOT3, ROOT3, 2 + 1_000_000, NO_DEADLINE),
    )
    # the same storage writes; only calldata differs (16 gas per non-zero byte of lastBlock)
    assert abs(small["gasUsed"] - large["gasUsed"]) <= 3 * 12


def test_sequencer_rotation(l1: L1) -> None:
    ro = l1.rollup.functions
    new = l1.user(0)
    with reverts("NotAdmin"):
        l1.tx(new, ro.setSequencer(new.address))
    receipt = l1.tx(l1.admin, ro.setSequencer(new.address))
    assert l1.events(receipt, "MPSRollup", "SequencerSet") == [{"sequencer": new.address}]
    with reverts("NotSequencer"):
        l1.tx(l1.admin, ro.commitBatch(0, GENESIS_ROOT, ROOT1, ROOT1, 1, NO_DEADLINE))
    l1.tx(new, ro.commitBatch(0, GENESIS_ROOT, ROOT1, ROOT1, 1, NO_DEADLINE))


# == MPSRollup: finality and challenges ============================================================
def test_finality_after_the_window(l1: L1) -> None:
    ro = l1.rollup.functions
    committed = l1.tx(l1.admin, ro.commitBatch(0, GENESIS_ROOT, ROOT1, ROOT1, 1, NO_DEADLINE))[
        "blockNumber"
    ]
    assert not l1.call(ro.isFinalized(0))
    with reverts("NotFinalized"):
        l1.call(ro.finalizedStateRoot(0))
    l1.mine(committed + CB - 1 - l1.block())  # views read the latest block
    assert not l1.call(ro.isFinalized(0))
    l1.mine(1)
    assert l1.block() == committed + CB
    assert l1.call(ro.isFinalized(0))
    assert l1.call(ro.finalizedStateRoot(0)) == ROOT1
    assert not l1.call(ro.isFinalized(1))
    with reverts("UnknownBatch"):
        l1.call(ro.finalizedStateRoot(1))


def test_challenge_rules(l1: L1) -> None:
    ro = l1.rollup.functions
    committed = l1.tx(l1.admin, ro.commitBatch(0, GENESIS_ROOT, ROOT1, ROOT1, 1, NO_DEADLINE))[
        "blockNumber"
    ]
    for bond in (BOND - 1, BOND + 1, 0):
        with reverts("WrongBond") as exc:
            l1.tx(l1.verifier, ro.challenge(0), bond)
        assert exc.value.error_args == (bond, BOND)
    with reverts("UnknownBatch"):
        l1.tx(l1.verifier, ro.challenge(1), BOND)
    receipt = l1.tx(l1.verifier, ro.challenge(0), BOND)
    assert l1.events(receipt, "MPSRollup", "BatchChallenged") == [
        {"batchIndex": 0, "challenger": l1.verifier.address}
    ]
    assert l1.call(ro.batch(0))[4] == l1.verifier.address
    assert l1.call(ro.firstOpenChallenge()) == [True, 0]
    assert l1.balance(l1.rollup.address) == BOND
    with reverts("AlreadyChallenged") as exc:
        l1.tx(l1.verifier, ro.challenge(0), BOND)
    assert exc.value.error_args == (0, l1.verifier.address)
    l1.mine(committed + CB - l1.block())
    assert not l1.call(ro.isFinalized(0))  # the window is over, but the challenge is open
    with reverts("NotFinalized"):
        l1.call(ro.finalizedStateRoot(0))


def test_challenge_window(l1: L1) -> None:
    ro = l1.rollup.functions
    committed = l1.tx(l1.admin, ro.commitBatch(0, GENESIS_ROOT, ROOT1, ROOT1, 1, NO_DEADLINE))[
        "blockNumber"
    ]
    l1.mine(committed + CB - 2 - l1.block())  # the next transaction runs in committed + CB - 1
    receipt = l1.tx(l1.verifier, ro.challenge(0), BOND)  # the last block of the window
    assert receipt["blockNumber"] == committed + CB - 1
    l1.resolve(0, False)  # runs in committed + CB
    with reverts("ChallengeWindowClosed") as exc:
        l1.tx(l1.verifier, ro.challenge(0), BOND)
    assert exc.value.error_args == (0, committed + CB)


def test_anyone_may_challenge(l1: L1) -> None:
    """Issue 12: only admin-approved verifiers could challenge, so whoever approved them decided
    who could dispute a root. Any account may now, with the bond."""
    ro = l1.rollup.functions
    l1.commit(ROOT1)
    l1.commit(ROOT2)
    stranger = l1.user(5)
    receipt = l1.tx(stranger, ro.challenge(0), BOND)
    assert l1.events(receipt, "MPSRollup", "BatchChallenged") == [
        {"batchIndex": 0, "challenger": stranger.address}
    ]
    l1.tx(l1.user(6), ro.challengeData(1), DA_BOND)


def test_resolve_no_fraud_keeps_the_commit_block(l1: L1) -> None:
    ro = l1.rollup.functions
    l1.commit(ROOT1)
    l1.commit(ROOT2)
    l1.tx(l1.verifier, ro.challenge(0), BOND)
    with reverts("NotResolver"):  # only the committee decides, not even the admin directly
        l1.tx(l1.admin, ro.resolveChallenge(0, False))
    with reverts("NoOpenChallenge"):
        l1.resolve(1, False)
    with reverts("UnknownBatch"):
        l1.resolve(2, False)
    l1.mine(CB)
    assert not l1.call(ro.isFinalized(1))  # behind the open challenge on batch 0
    receipt = l1.resolve(0, False)
    assert l1.events(receipt, "MPSRollup", "ChallengeResolved") == [
        {"batchIndex": 0, "fraud": False}
    ]
    assert l1.call(ro.isFinalized(0)) and l1.call(ro.isFinalized(1))  # windows were over already
    assert l1.call(ro.nextBatchIndex()) == 2
    assert l1.call(ro.batch(0))[4] == "0x" + "00" * 20
    assert l1.call(ro.firstOpenChallenge()) == [False, 0]
    # the bond goes to the sequencer, the party wrongly accused, never to the admin that decides
    # (here one account is both: the fixture's admin commits batches too)
    assert l1.call(ro.sequencer()) == l1.admin.address
    assert l1.call(ro.bondBalance(l1.verifier.address)) == 0
    assert l1.call(ro.bondBalance(l1.admin.address)) == BOND
    new_sequencer = l1.user(7)
    l1.tx(l1.admin, ro.setSequencer(new_sequencer.address))
    l1.tx(new_sequencer, ro.commitBatch(2, ROOT2, ROOT3, ROOT3, 3, NO_DEADLINE))
    l1.tx(l1.verifier, ro.challenge(2), BOND)
    l1.resolve(2, False)
    assert l1.call(ro.bondBalance(new_sequencer.address)) == BOND
    assert l1.call(ro.bondBalance(l1.admin.address)) == BOND  # unchanged
    before = l1.balance(l1.admin.address)
    receipt = l1.tx(l1.admin, ro.withdrawBond())
    assert l1.balance(l1.admin.address) == before + BOND - l1.cost(receipt)
    with reverts("NothingToWithdraw"):
        l1.tx(l1.admin, ro.withdrawBond())
    with reverts("NoOpenChallenge"):
        l1.resolve(0, False)


def test_resolve_fraud_discards_the_batch_and_later_ones(l1: L1) -> None:
    ro = l1.rollup.functions
    for root in (ROOT1, ROOT2, ROOT3):
        l1.commit(root)  # lastBlock 1, 2, 3
    l1.tx(l1.verifier, ro.challenge(1), BOND)
    receipt = l1.resolve(1, True)
    assert l1.events(receipt, "MPSRollup", "ChallengeResolved") == [
        {"batchIndex": 1, "fraud": True}
    ]
    assert l1.events(receipt, "MPSRollup", "BatchesDiscarded") == [
        {"fromBatchIndex": 1, "count": 2}
    ]
    assert l1.call(ro.nextBatchIndex()) == 1
    assert l1.call(ro.lastStateRoot()) == ROOT1
    assert l1.call(ro.lastCommittedBlock()) == 1
    for i in (1, 2):
        with reverts("UnknownBatch"):
            l1.call(ro.batch(i))
    l1.mine(CB)
    assert l1.call(ro.isFinalized(0)) and not l1.call(ro.isFinalized(1))
    with reverts("UnknownBatch"):
        l1.call(ro.finalizedStateRoot(1))
    assert l1.call(ro.bondBalance(l1.verifier.address)) == BOND
    before = l1.balance(l1.verifier.address)
    receipt = l1.tx(l1.verifier, ro.withdrawBond())
    assert l1.balance(l1.verifier.address) == before + BOND - l1.cost(receipt)
    # the sequencer recommits from batch 0's root and block
    with reverts("WrongPrevStateRoot"):
        l1.tx(l1.admin, ro.commitBatch(1, ROOT2, ROOT3, ROOT3, 2, NO_DEADLINE))
    l1.tx(l1.admin, ro.commitBatch(1, ROOT1, ROOT3, ROOT3, 2, NO_DEADLINE))
    assert l1.call(ro.batch(1))[0] == ROOT3


def test_fraud_at_the_first_batch_returns_to_genesis(l1: L1) -> None:
    ro = l1.rollup.functions
    l1.commit(ROOT1)
    l1.tx(l1.verifier, ro.challenge(0), BOND)
    l1.resolve(0, True)
    assert l1.call(ro.nextBatchIndex()) == 0
    assert l1.call(ro.lastStateRoot()) == GENESIS_ROOT
    assert l1.call(ro.lastCommittedBlock()) == 0
    l1.tx(l1.admin, ro.commitBatch(0, GENESIS_ROOT, ROOT2, ROOT2, 1, NO_DEADLINE))


def test_several_open_challenges(l1: L1) -> None:
    """Challenges opened out of order: finality stops at the earliest open one."""
    ro = l1.rollup.functions
    other = l1.user(0)
    for i in range(5):
        l1.commit(key32(f"batch {i}"))
    l1.tx(l1.verifier, ro.challenge(3), BOND)
    l1.tx(other, ro.challenge(1), BOND)
    l1.tx(other, ro.challenge(4), BOND)
    l1.tx(l1.verifier, ro.challenge(2), BOND)
    l1.mine(CB)
    assert l1.call(ro.firstOpenChallenge()) == [True, 1]
    assert [l1.call(ro.isFinalized(i)) for i in range(5)] == [True, False, False, False, False]
    l1.resolve(2, False)  # from the middle
    assert l1.call(ro.firstOpenChallenge()) == [True, 1]
    l1.resolve(1, False)  # the head
    assert l1.call(ro.firstOpenChallenge()) == [True, 3]
    assert [l1.call(ro.isFinalized(i)) for i in range(5)] == [True, True, True, False, False]
    # fraud at 3 discards 4 too, with its open challenge: its bond is credited back on release
    l1.resolve(3, True)
    assert l1.call(ro.firstOpenChallenge()) == [False, 0]
    assert l1.call(ro.bondBalance(l1.verifier.address)) == BOND
    assert l1.call(ro.bondBalance(other.address)) == 0
    with reverts("NotVoided"):  # live batch
        l1.tx(other, ro.releaseVoidedBond(2))
    receipt = l1.tx(other, ro.releaseVoidedBond(4))
    assert l1.events(receipt, "MPSRollup", "ChallengeVoided") == [
        {"batchIndex": 4, "challenger": other.address}
    ]
    assert l1.call(ro.bondBalance(other.address)) == BOND
    with reverts("NotVoided"):  # once
        l1.tx(other, ro.releaseVoidedBond(4))
    assert l1.call(ro.bondBalance(l1.admin.address)) == 2 * BOND
    # the list still works after the truncation
    l1.commit(ROOT1)
    l1.tx(other, ro.challenge(3), BOND)
    assert l1.call(ro.firstOpenChallenge()) == [True, 3]
    l1.resolve(3, False)
    assert l1.call(ro.firstOpenChallenge()) == [False, 0]


def test_recommit_voids_a_discarded_challenge(l1: L1) -> None:
    ro = l1.rollup.functions
    other = l1.user(0)
    l1.commit(ROOT1)
    l1.commit(ROOT2)
    l1.tx(other, ro.challenge(1), BOND)
    l1.tx(l1.verifier, ro.challenge(0), BOND)
    l1.resolve(0, True)  # discards 1 and its challenge
    l1.commit(ROOT3)  # index 0
    receipt = l1.tx(
        l1.admin, ro.commitBatch(1, ROOT3, ROOT1, ROOT1, 2, NO_DEADLINE)
    )  # reuses index 1
    assert l1.events(receipt, "MPSRollup", "ChallengeVoided") == [
        {"batchIndex": 1, "challenger": other.address}
    ]
    assert l1.call(ro.bondBalance(other.address)) == BOND
    assert l1.call(ro.batch(1))[4] == "0x" + "00" * 20
    l1.tx(other, ro.challenge(1), BOND)  # the new batch 1 can be challenged afresh


def test_a_committee_of_resolvers_decides_by_threshold(l1: L1) -> None:
    """Issue 12: one admin key decided every challenge (and took the lost bonds). Now a committee
    of k-of-m resolvers does, each voting once per challenge; nobody decides alone, not even the
    admin, and votes on one challenge never count for a later one on the same batch index."""
    a, b, c = l1.user(0), l1.user(1), l1.user(2)
    windows = (CB, BOND, DA_CB, DA_RB, DA_BOND)
    rollup = l1.deploy("MPSRollup", l1.admin.address, *windows, GENESIS_ROOT, l1.admin.address)
    abc = [a.address, b.address, c.address]
    for members, k, error in (
        (abc, 1, "BadThreshold"),  # not a majority
        (abc, 4, "BadThreshold"),
        ([], 0, "BadThreshold"),
        ([a.address, a.address, b.address], 2, "BadResolver"),
        ([a.address, "0x" + "00" * 20, b.address], 2, "BadResolver"),
    ):
        with reverts(error):
            l1.deploy("ResolverCommittee", rollup.address, members, k)
    committee = l1.deploy("ResolverCommittee", rollup.address, abc, 2)
    ro, cm = rollup.functions, committee.functions

    def resolved(receipt: TxReceipt) -> list[dict[str, Any]]:  # this rollup's, not the fixture's
        logs = rollup.events.ChallengeResolved().process_receipt(receipt, errors=DISCARD)
        return [dict(e["args"]) for e in logs]

    with reverts("NotAdmin"):
        l1.tx(a, ro.setResolver(committee.address))
    l1.tx(l1.admin, ro.setResolver(committee.address))
    with reverts("ResolverAlreadySet"):  # whoever could re-point it would decide everything
        l1.tx(l1.admin, ro.setResolver(a.address))
    l1.tx(l1.admin, ro.commitBatch(0, GENESIS_ROOT, ROOT1, ROOT1, 1, NO_DEADLINE))
    l1.tx(l1.verifier, ro.challenge(0), BOND)
    with reverts("NotResolver"):
        l1.tx(l1.admin, cm.vote(0, True))
    with reverts("NotResolver"):  # nor directly on the rollup
        l1.tx(a, ro.resolveChallenge(0, True))
    l1.tx(a, cm.vote(0, False))
    with reverts("AlreadyVoted"):
        l1.tx(a, cm.vote(0, True))
    l1.tx(b, cm.vote(0, True))  # one each way: undecided
    assert l1.call(ro.batch(0))[4] == l1.verifier.address
    receipt = l1.tx(c, cm.vote(0, True))  # the second vote for fraud decides
    assert resolved(receipt) == [{"batchIndex": 0, "fraud": True}]
    assert l1.call(ro.nextBatchIndex()) == 0
    # the reused index, challenged afresh: the earlier votes do not count, a may vote again
    l1.tx(l1.admin, ro.commitBatch(0, GENESIS_ROOT, ROOT2, ROOT2, 1, NO_DEADLINE))
    l1.tx(l1.verifier, ro.challenge(0), BOND)
    l1.tx(a, cm.vote(0, False))
    receipt = l1.tx(c, cm.vote(0, False))
    assert resolved(receipt) == [{"batchIndex": 0, "fraud": False}]
    with reverts("NoOpenChallenge"):
        l1.tx(b, cm.vote(0, True))


# -- data availability: a batch's data demanded on the L1 ------------------------------------------
def chunked(data: bytes, size: int = 1000) -> tuple[bytes, list[bytes], list[bytes]]:
    """``(dataHash, chunk hashes, chunks)``: keccak256 of the chunks' keccak256 hashes."""
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    hashes = [keccak(c) for c in chunks]
    return keccak(b"".join(hashes)), hashes, chunks


def test_challenged_data_is_published_chunk_by_chunk(l1: L1) -> None:
    ro = l1.rollup.functions
    data_hash, hashes, chunks = chunked(os.urandom(2500))  # 3 chunks
    committed = l1.tx(l1.admin, ro.commitBatch(0, GENESIS_ROOT, ROOT1, data_hash, 4, NO_DEADLINE))[
        "blockNumber"
    ]
    publish = ro.publishChunk
    with reverts("NoActiveDataChallenge"):
        l1.tx(l1.admin, publish(0, hashes, 0, chunks[0]))
    for bond in (DA_BOND - 1, DA_BOND + 1):
        with reverts("WrongBond"):
            l1.tx(l1.verifier, ro.challengeData(0), bond)
    receipt = l1.tx(l1.verifier, ro.challengeData(0), DA_BOND)
    start = receipt["blockNumber"]
    assert l1.events(receipt, "MPSRollup", "DataChallenged") == [
        {"batchIndex": 0, "challenger": l1.verifier.address}
    ]
    assert l1.call(ro.dataChallenge(0)) == [l1.verifier.address, start, 0, 1]
    assert l1.call(ro.firstOpenChallenge()) == [True, 0]
    with reverts("AlreadyChallenged"):
        l1.tx(l1.user(0), ro.challengeData(0), DA_BOND)
    # every field is checked against the commitment: the hash list, the index, the bytes
    with reverts("WrongChunkHashes"):
        l1.tx(l1.admin, publish(0, hashes[:2], 0, chunks[0]))
    with reverts("WrongChunkHashes"):
        l1.tx(l1.admin, publish(0, [hashes[1], hashes[0], hashes[2]], 1, chunks[0]))
    with reverts("ChunkOutOfRange"):
        l1.tx(l1.admin, publish(0, hashes, 3, b""))
    with reverts("WrongChunk"):
        l1.tx(l1.admin, publish(0, hashes, 1, chunks[0]))
    receipt = l1.tx(l1.user(1), publish(0, hashes, 1, chunks[1]))  # anyone holding the data
    assert l1.events(receipt, "MPSRollup", "ChunkPublished") == [
        {"batchIndex": 0, "index": 1, "chunk": chunks[1]}
    ]
    with reverts("ChunkAlreadyPublished"):
        l1.tx(l1.admin, publish(0, hashes, 1, chunks[1]))
    l1.tx(l1.admin, publish(0, hashes, 0, chunks[0]))
    assert l1.call(ro.chunkPublished(0, 0)) and not l1.call(ro.chunkPublished(0, 2))
    with reverts("ResolveWindowOpen"):
        l1.tx(l1.user(2), ro.expireData(0))
    # the last chunk resolves the challenge; its publisher earns the bond
    receipt = l1.tx(l1.user(3), publish(0, hashes, 2, chunks[2]))
    assert l1.events(receipt, "MPSRollup", "DataChallengeResolved") == [
        {"batchIndex": 0, "publisher": l1.user(3).address}
    ]
    assert l1.call(ro.dataChallenge(0))[2:] == [3, 2]
    assert l1.call(ro.bondBalance(l1.user(3).address)) == DA_BOND
    assert l1.call(ro.bondBalance(l1.verifier.address)) == 0
    assert l1.call(ro.firstOpenChallenge()) == [False, 0]
    # what the data shows may still be disputed: the fraud window outlasts the data windows
    assert l1.block() < committed + CB - 1
    l1.mine(committed + CB - l1.block())
    assert l1.call(ro.isFinalized(0))


def test_resolve_window(l1: L1) -> None:
    ro = l1.rollup.functions
    data_hash, hashes, chunks = chunked(b"one chunk")
    l1.tx(l1.admin, ro.commitBatch(0, GENESIS_ROOT, ROOT1, data_hash, 1, NO_DEADLINE))
    start = l1.tx(l1.verifier, ro.challengeData(0), DA_BOND)["blockNumber"]
    l1.mine(start + DA_RB - 1 - l1.block())  # the next transaction runs at the deadline
    with reverts("ResolveWindowClosed") as exc:
        l1.tx(l1.admin, ro.publishChunk(0, hashes, 0, chunks[0]))
    assert exc.value.error_args == (0, start + DA_RB)


def test_withheld_data_voids_the_batch_and_later_ones(l1: L1) -> None:
    """The withholding attack: a root nobody can check (its data never shown) must not finalize,
    whoever committed it. Challenged and not published in time, it is void, and so is every
    batch built on it; the challengers' bonds come back."""
    ro = l1.rollup.functions
    for root in (ROOT1, ROOT2, ROOT3):
        l1.commit(root)
    start = l1.tx(l1.verifier, ro.challengeData(1), DA_BOND)["blockNumber"]
    l1.tx(l1.user(0), ro.challengeData(2), DA_BOND)
    l1.tx(l1.user(1), ro.challenge(2), BOND)
    with reverts("ResolveWindowOpen") as exc:
        l1.tx(l1.user(2), ro.expireData(1))
    assert exc.value.error_args == (1, start + DA_RB)
    l1.mine(start + DA_RB - 1 - l1.block())
    receipt = l1.tx(l1.user(2), ro.expireData(1))  # anyone may call it
    assert l1.events(receipt, "MPSRollup", "DataChallengeExpired") == [{"batchIndex": 1}]
    assert l1.events(receipt, "MPSRollup", "BatchesDiscarded") == [
        {"fromBatchIndex": 1, "count": 2}
    ]
    assert l1.call(ro.nextBatchIndex()) == 1 and l1.call(ro.lastStateRoot()) == ROOT1
    assert l1.call(ro.bondBalance(l1.verifier.address)) == DA_BOND
    l1.mine(CB)
    assert l1.call(ro.isFinalized(0))
    for i in (1, 2):
        with reverts("UnknownBatch"):
            l1.call(ro.finalizedStateRoot(i))
    # batch 2's two challenges were voided with it: both bonds back, once
    receipt = l1.tx(l1.user(3), ro.releaseVoidedBond(2))
    assert l1.events(receipt, "MPSRollup", "ChallengeVoided") == [
        {"batchIndex": 2, "challenger": l1.user(1).address},
        {"batchIndex": 2, "challenger": l1.user(0).address},
    ]
    assert l1.call(ro.bondBalance(l1.user(0).address)) == DA_BOND
    assert l1.call(ro.bondBalance(l1.user(1).address)) == BOND
    with reverts("NotVoided"):
        l1.tx(l1.user(3), ro.releaseVoidedBond(2))
    # the reused index starts afresh: no data challenge of its own, and it can be challenged
    l1.tx(l1.admin, ro.commitBatch(1, ROOT1, ROOT2, ROOT2, 2, NO_DEADLINE))
    assert l1.call(ro.dataChallenge(1)) == ["0x" + "00" * 20, 0, 0, 0]
    l1.tx(l1.user(4), ro.challengeData(1), DA_BOND)
    assert l1.call(l1.rollup.functions.firstOpenChallenge()) == [True, 1]


def test_data_challenge_window(l1: L1) -> None:
    ro = l1.rollup.functions
    committed = l1.tx(l1.admin, ro.commitBatch(0, GENESIS_ROOT, ROOT1, ROOT1, 1, NO_DEADLINE))[
        "blockNumber"
    ]
    l1.mine(committed + DA_CB - 1 - l1.block())  # the next transaction runs at the window's end
    with reverts("ChallengeWindowClosed") as exc:
        l1.tx(l1.verifier, ro.challengeData(0), DA_BOND)
    assert exc.value.error_args == (0, committed + DA_CB)
    with reverts("UnknownBatch"):
        l1.tx(l1.verifier, ro.challengeData(1), DA_BOND)


def test_the_data_windows_nest_inside_the_fraud_window(l1: L1) -> None:
    """Published at the last moment, data still leaves time to fraud-challenge what it shows."""
    args = (l1.admin.address, 10, BOND)
    for da_challenge, da_resolve in ((5, 5), (9, 1), (0, 3), (3, 0)):
        with reverts("BadWindows"):
            l1.deploy("MPSRollup", *args, da_challenge, da_resolve, DA_BOND, GENESIS_ROOT,
                      l1.admin.address)  # fmt: skip
    l1.deploy("MPSRollup", *args, 5, 4, DA_BOND, GENESIS_ROOT, l1.admin.address)


# == SlashingManager ===============================================================================
def _evidence(
    client: bytes = ALICE, task: bytes = TASK, epoch: int = 3, reason: int = 2
) -> tuple[StateTree, list[bytes]]:
    """A tree holding one slash evidence leaf among filler keys, and the leaf's proof."""
    tree = StateTree(dict([slash_leaf(client, task, epoch, reason)]))
    key, _ = slash_leaf(client, task, epoch, reason)
    return tree, tree.siblings(key)


def test_slash_with_a_valid_proof(l1: L1) -> None:
    user = l1.user(0)
    l1.stake(user, ALICE)
    tree, siblings = _evidence()
    assert len(siblings) >= 5  # a realistic depth, not a lone leaf
    batch = l1.commit_final(tree)
    treasury = l1.addresses["SlashTreasury"]
    receipt = l1.tx(l1.user(4), l1.slashing.functions.slash(batch, ALICE, TASK, 3, 2, siblings))
    offence = keccak(ALICE + TASK)
    assert l1.call(l1.slashing.functions.offenceId(ALICE, TASK)) == offence
    assert l1.events(receipt, "SlashingManager", "SlashExecuted") == [
        {
            "clientKey": ALICE,
            "taskId": TASK,
            "epoch": 3,
            "reason": 2,
            "amount": STAKE,
            "batchIndex": batch,
        }
    ]
    assert l1.events(receipt, "StakingRegistry", "Slashed") == [
        {"staker": user.address, "clientKey": ALICE, "amount": STAKE, "offence": offence}
    ]
    assert l1.call(l1.slashing.functions.slashed(offence))
    assert l1.call(l1.registry.functions.statusOf(ALICE)) == SLASHED
    assert l1.call(l1.registry.functions.stakeOf(ALICE)) == 0
    assert l1.call(l1.registry.functions.stakerOf(ALICE)) == user.address
    assert l1.balance(treasury) == STAKE
    assert l1.balance(l1.registry.address) == 0
    # a slashed stake cannot be withdrawn, and the key is burned
    with reverts("WrongStatus"):
        l1.tx(user, l1.registry.functions.unregister())
    with reverts("WrongStatus"):
        l1.tx(user, l1.registry.functions.withdrawStake(*l1.release(ALICE)))
    with reverts("KeyBurned"):
        l1.stake(user, ALICE)


def test_slash_during_unbonding(l1: L1) -> None:
    user = l1.user(0)
    l1.stake(user, ALICE)
    l1.tx(user, l1.registry.functions.unregister())
    tree, siblings = _evidence()
    batch = l1.commit_final(tree)
    l1.tx(l1.user(4), l1.slashing.functions.slash(batch, ALICE, TASK, 3, 2, siblings))
    assert l1.call(l1.registry.functions.statusOf(ALICE)) == SLASHED
    with reverts("WrongStatus") as exc:  # even with a release (the STF never writes both)
        l1.tx(user, l1.registry.functions.withdrawStake(*l1.release(ALICE)))
    assert exc.value.error_args == (ALICE, SLASHED)


def test_forged_proofs_are_rejected(l1: L1) -> None:
    l1.stake(l1.user(0), ALICE)
    l1.stake(l1.user(1), BOB)
    tree, siblings = _evidence()
    tree.put(dict([slash_leaf(CAROL, TASK, 1, 1)]))  # another client's evidence in the same tree
    key, _ = slash_leaf(ALICE, TASK, 3, 2)
    siblings = tree.siblings(key)
    batch = l1.commit_final(tree)
    sm = l1.slashing.functions
    forged = {
        "wrong sibling": (ALICE, TASK, 3, 2, [siblings[0], flip(siblings[1]), *siblings[2:]]),
        "wrong epoch": (ALICE, TASK, 4, 2, siblings),
        "wrong reason": (ALICE, TASK, 3, 1, siblings),
        "wrong task": (ALICE, TASK2, 3, 2, siblings),
        "wrong client": (BOB, TASK, 3, 2, siblings),
        "short proof": (ALICE, TASK, 3, 2, siblings[:-1]),
        "long proof": (ALICE, TASK, 3, 2, [*siblings, bytes(32)]),
        "no proof": (ALICE, TASK, 3, 2, []),
    }
    for name, args in forged.items():
        with reverts("InvalidProof"):
            l1.tx(l1.user(4), sm.slash(batch, *args))
            pytest.fail(name)
    assert l1.call(l1.registry.functions.statusOf(ALICE)) == STAKED
    assert l1.call(l1.registry.functions.statusOf(BOB)) == STAKED


def test_stale_proofs_are_rejected(l1: L1) -> None:
    l1.stake(l1.user(0), ALICE)
    tree, siblings = _evidence()
    sm = l1.slashing.functions
    with reverts("UnknownBatch"):  # nothing committed
        l1.tx(l1.user(4), sm.slash(0, ALICE, TASK, 3, 2, siblings))
    batch = l1.commit(tree.root)
    with reverts("NotFinalized"):  # within its window
        l1.tx(l1.user(4), sm.slash(batch, ALICE, TASK, 3, 2, siblings))
    with reverts("UnknownBatch"):
        l1.tx(l1.user(4), sm.slash(batch + 1, ALICE, TASK, 3, 2, siblings))
    # discarded by a fraud resolution: the root is gone, even after its window
    l1.tx(l1.verifier, l1.rollup.functions.challenge(batch), BOND)
    l1.resolve(batch, True)
    l1.mine(CB)
    with reverts("UnknownBatch"):
        l1.tx(l1.user(4), sm.slash(batch, ALICE, TASK, 3, 2, siblings))
    # the index reused by another root: the old proof does not fit it
    l1.commit_final(StateTree())
    with reverts("InvalidProof"):
        l1.tx(l1.user(4), sm.slash(batch, ALICE, TASK, 3, 2, siblings))
    assert l1.call(l1.registry.functions.statusOf(ALICE)) == STAKED


def test_double_slash(l1: L1) -> None:
    l1.stake(l1.user(0), ALICE)
    tree = StateTree(dict([slash_leaf(ALICE, TASK, 3, 2), slash_leaf(ALICE, TASK2, 4, 1)]))
    batch = l1.commit_final(tree)
    sm = l1.slashing.functions
    siblings = tree.siblings(slash_leaf(ALICE, TASK, 3, 2)[0])
    l1.tx(l1.user(4), sm.slash(batch, ALICE, TASK, 3, 2, siblings))
    with reverts("AlreadySlashed") as exc:
        l1.tx(l1.user(4), sm.slash(batch, ALICE, TASK, 3, 2, siblings))
    assert exc.value.error_args == (keccak(ALICE + TASK),)
    # a second offence of a burned key: the registry refuses (the error bubbles up)
    siblings2 = tree.siblings(slash_leaf(ALICE, TASK2, 4, 1)[0])
    with reverts("WrongStatus"):
        l1.tx(l1.user(4), sm.slash(batch, ALICE, TASK2, 4, 1, siblings2))
    assert not l1.call(sm.slashed(keccak(ALICE + TASK2)))


def test_slash_of_an_unstaked_key(l1: L1) -> None:
    tree, siblings = _evidence()
    batch = l1.commit_final(tree)
    with reverts("WrongStatus") as exc:
        l1.tx(l1.user(4), l1.slashing.functions.slash(batch, ALICE, TASK, 3, 2, siblings))
    assert exc.value.error_args == (ALICE, 0)


# == Treasuries ====================================================================================
def send_ether(l1: L1, to: str, amount: int) -> TxReceipt:
    """A plain ether transfer into ``to``'s receive()."""
    tx = {
        "to": to,
        "value": amount,
        "nonce": l1.w3.eth.get_transaction_count(l1.user(0).address),
        "gas": 100_000,
        "maxFeePerGas": l1.w3.eth.gas_price * 2,
        "maxPriorityFeePerGas": 1,
        "chainId": l1.w3.eth.chain_id,
    }
    signed = l1.user(0).sign_transaction(tx)
    return l1.w3.eth.wait_for_transaction_receipt(
        l1.w3.eth.send_raw_transaction(signed.raw_transaction)
    )


def test_slashed_stakes_are_burned(l1: L1) -> None:
    """Issue 12: the admin, which decides fraud challenges, withdrew the SlashTreasury, so it
    profited from the slashes it ruled on. Nothing leaves the SlashTreasury now: no withdrawal
    exists, for the admin or anyone."""
    treasury = l1.c("SlashTreasury")
    receipt = send_ether(l1, treasury.address, 5 * ETHER)
    assert l1.events(receipt, "SlashTreasury", "Received") == [
        {"from": l1.user(0).address, "amount": 5 * ETHER}
    ]
    names = {entry.get("name") for entry in treasury.abi if entry.get("type") == "function"}
    assert names == set()  # no function at all: only receive()
    assert l1.balance(treasury.address) == 5 * ETHER


def test_reward_treasury(l1: L1) -> None:
    name = "RewardTreasury"
    treasury = l1.c(name)
    receipt = send_ether(l1, treasury.address, 5 * ETHER)
    assert l1.events(receipt, name, "Received") == [
        {"from": l1.user(0).address, "amount": 5 * ETHER}
    ]
    to = l1.user(1).address
    with reverts("NotAdmin"):
        l1.tx(l1.user(1), treasury.functions.withdraw(to, ETHER))
    with reverts("InsufficientBalance") as exc:
        l1.tx(l1.admin, treasury.functions.withdraw(to, 6 * ETHER))
    assert exc.value.error_args == (6 * ETHER, 5 * ETHER)
    with reverts("ZeroAddress"):
        l1.tx(l1.admin, treasury.functions.withdraw("0x" + "00" * 20, ETHER))
    before = l1.balance(to)
    receipt = l1.tx(l1.admin, treasury.functions.withdraw(to, 2 * ETHER))
    assert l1.events(receipt, name, "Withdrawal") == [{"to": to, "amount": 2 * ETHER}]
    assert l1.balance(to) == before + 2 * ETHER
    assert l1.balance(treasury.address) == 3 * ETHER


# == RewardManager =================================================================================
# The RewardManager's leaves, written from the L1 spec by hand (not from stf.fl.settlement) so that
# the contract and the STF are checked against each other.
def addr20(address: str) -> bytes:
    return bytes.fromhex(address.removeprefix("0x"))


def same(a: str, b: str) -> bool:
    """Addresses equal whatever their case (decoded revert arguments come lower-case)."""
    return a.lower() == b.lower()


def last_block(l1: L1, batch: int) -> int:
    return int(l1.call(l1.rollup.functions.batch(batch))[2])


def test_fund_task_fees_and_refund(l1: L1) -> None:
    rm = l1.rewards.functions
    requester = l1.user(0)
    assert l1.call(rm.BASE_FEE()) == BASE_FEE
    assert l1.call(rm.FEE_PER_EPOCH()) == FEE
    assert l1.call(rm.PROTOCOL_SHARE_BPS()) == BPS
    treasury = l1.addresses["RewardTreasury"]
    deposit = ETHER // 10
    with reverts("InsufficientPayment") as exc:
        l1.tx(requester, rm.fundTask(TASK, deposit), BASE_FEE + deposit - 1)
    assert exc.value.error_args == (BASE_FEE + deposit - 1, BASE_FEE + deposit)
    with reverts("ZeroDeposit"):
        l1.tx(requester, rm.fundTask(TASK, 0), BASE_FEE + 1)
    with reverts("DepositTooLarge"):  # 2^128 wei is far more than there is: a deposit fits 128 bits
        l1.tx(requester, rm.fundTask(TASK, 2**128), BASE_FEE + 1)
    before = l1.balance(requester.address)
    receipt = l1.tx(requester, rm.fundTask(TASK, deposit), BASE_FEE + deposit + 7 * ETHER)
    assert l1.balance(requester.address) == before - BASE_FEE - deposit - l1.cost(receipt)
    assert l1.balance(treasury) == BASE_FEE
    assert l1.balance(l1.rewards.address) == deposit
    assert l1.events(receipt, "RewardManager", "TaskFunded") == [
        {"taskId": TASK, "requester": requester.address, "deposit": deposit}
    ]
    assert l1.call(rm.funding(TASK, requester.address)) == [deposit, False, False]
    assert l1.call(rm.task(TASK)) == [ZERO_ADDRESS, 0, False, 0, 0, bytes(32)]  # not settled
    # one funding per (task, funder)
    with reverts("FundingExists") as exc:
        l1.tx(requester, rm.fundTask(TASK, 1), BASE_FEE + 1)
    assert exc.value.error_args[0] == TASK and same(exc.value.error_args[1], requester.address)
    # another funder may fund the same task id: a funding of its own, at its own BASE_FEE
    # (exact payment: nothing refunded)
    other = l1.user(1)
    receipt = l1.tx(other, rm.fundTask(TASK, 1), BASE_FEE + 1)
    assert l1.events(receipt, "RewardManager", "TaskFunded") == [
        {"taskId": TASK, "requester": other.address, "deposit": 1}
    ]
    assert l1.call(rm.funding(TASK, other.address)) == [1, False, False]
    assert l1.call(rm.funding(TASK, requester.address)) == [deposit, False, False]
    assert l1.call(rm.funding(TASK, l1.user(2).address)) == [0, False, False]
    l1.tx(other, rm.fundTask(TASK2, 1), BASE_FEE + 1)
    assert l1.balance(l1.rewards.address) == deposit + 2
    assert l1.balance(treasury) == 3 * BASE_FEE


def _task_tree(
    status: int,
    epochs: int,
    shares: dict[bytes, tuple[int, int]],
    funder: str,
    task: bytes = TASK,
    extra: dict[bytes, bytes] | None = None,
    data_bytes: int = 0,
) -> StateTree:
    """A tree holding the task's settlement naming ``funder`` and its clients' shares
    (accepted, flagged), and any ``extra`` leaves."""
    total = sum(a for a, f in shares.values() if f == 0)
    leaves = dict([settle_leaf(task, status, epochs, total, funder, data_bytes)])
    leaves.update(reward_leaf(task, c, a, f) for c, (a, f) in shares.items())
    leaves.update(extra or {})
    return StateTree(leaves)


def _settle(
    l1: L1,
    tree: StateTree,
    batch: int,
    status: int,
    epochs: int,
    total: int,
    funder: str,
    task: bytes = TASK,
    data_bytes: int = 0,
) -> Any:
    siblings = tree.siblings(settle_leaf(task, status, epochs, total, funder, data_bytes)[0])
    rm = l1.rewards.functions
    fn = rm.settle(batch, task, funder, status, epochs, total, data_bytes, siblings)
    return l1.tx(l1.user(5), fn)


def _claim(
    l1: L1, tree: StateTree, client: bytes, accepted: int, flagged: int = 0, task: bytes = TASK
) -> Any:
    siblings = tree.siblings(reward_leaf(task, client, accepted, flagged)[0])
    return l1.tx(l1.user(5), l1.rewards.functions.claim(task, client, accepted, siblings))


def _reclaim(
    l1: L1, tree: StateTree, batch: int, funder: Any, deposit: int, bind_by: int, bound: int = 0
) -> Any:
    siblings = tree.siblings(funding_leaf(TASK, funder.address, deposit, bind_by, bound)[0])
    return l1.tx(funder, l1.rewards.functions.reclaim(batch, TASK, bind_by, siblings))


def _fund(l1: L1, funder: Any, deposit: int, task: bytes = TASK) -> Any:
    return l1.tx(funder, l1.rewards.functions.fundTask(task, deposit), BASE_FEE + deposit)


def test_settle_and_claim(l1: L1) -> None:
    rm = l1.rewards.functions
    requester = l1.user(0)
    r = requester.address
    stakers = {ALICE: l1.user(1), BOB: l1.user(2), CAROL: l1.user(3)}
    for key, account in stakers.items():
        l1.stake(account, key)
    deposit = ETHER // 10  # 100 epochs' worth
    _fund(l1, requester, deposit)
    shares = {ALICE: (7, 0), BOB: (3, 0), CAROL: (9, 1)}  # carol was flagged
    epochs, total = 9, 10
    tree = _task_tree(2, epochs, shares, r)
    batch = l1.commit(tree.root)
    with reverts("NotSettled"):
        _claim(l1, tree, ALICE, 7)
    with reverts("NotFinalized"):
        _settle(l1, tree, batch, 2, epochs, total, r)
    l1.finalize()
    settle_key = settle_leaf(TASK, 2, epochs, total, r)[0]
    siblings = tree.siblings(settle_key)
    for args in ((1, epochs, total, 0), (2, epochs + 1, total, 0), (2, epochs, total + 1, 0)):
        with reverts("InvalidProof"):
            l1.tx(l1.user(5), rm.settle(batch, TASK, r, *args, siblings))
    with reverts("InvalidProof"):  # a bill the leaf does not hold: less data than it says
        l1.tx(l1.user(5), rm.settle(batch, TASK, r, 2, epochs, total, 1, siblings))
    with reverts("InvalidStatus"):
        l1.tx(l1.user(5), rm.settle(batch, TASK, r, 3, epochs, total, 0, siblings))
    with reverts("UnknownFunding") as exc:  # no funding of TASK2 at all
        l1.tx(l1.user(5), rm.settle(batch, TASK2, r, 2, epochs, total, 0, siblings))
    assert exc.value.error_args[0] == TASK2 and same(exc.value.error_args[1], r)
    with reverts("UnknownFunding"):  # a funder that never funded TASK (the zero address too)
        l1.tx(l1.user(5), rm.settle(batch, TASK, l1.user(4).address, 2, epochs, total, 0, siblings))
    with reverts("UnknownFunding"):
        l1.tx(l1.user(5), rm.settle(batch, TASK, ZERO_ADDRESS, 2, epochs, total, 0, siblings))

    treasury_before = l1.balance(l1.addresses["RewardTreasury"])
    receipt = _settle(l1, tree, batch, 2, epochs, total, r)
    fee = epochs * FEE
    protocol = fee * BPS // 10_000
    pool = fee - protocol
    refund = deposit - fee
    assert l1.events(receipt, "RewardManager", "TaskSettled") == [
        {
            "taskId": TASK,
            "status": 2,
            "epochsTrained": epochs,
            "fee": fee,
            "pool": pool,
            "refund": refund,
            "dataFee": 0,
        }
    ]
    assert l1.balance(l1.addresses["RewardTreasury"]) == treasury_before + protocol
    assert l1.call(rm.task(TASK)) == [r, deposit, True, pool, total, tree.root]
    assert l1.call(rm.funding(TASK, r)) == [deposit, True, False]
    assert l1.call(rm.refundOf(TASK)) == [refund, False]
    with reverts("AlreadySettled"):
        _settle(l1, tree, batch, 2, epochs, total, r)
    # the settled funding is spent: nothing to reclaim, whatever the proof
    with reverts("FundingSettled"):
        l1.tx(requester, rm.reclaim(batch, TASK, 0, siblings))

    # a forged share
    with reverts("InvalidProof"):
        l1.tx(
            l1.user(5), rm.claim(TASK, ALICE, 8, tree.siblings(reward_leaf(TASK, ALICE, 7, 0)[0]))
        )
    # claims: pool * accepted / total, to the staker, once; anyone may submit them
    paid = 0
    for key, accepted in ((ALICE, 7), (BOB, 3)):
        payee = stakers[key].address
        before = l1.balance(payee)
        receipt = _claim(l1, tree, key, accepted)
        amount = pool * accepted // total
        paid += amount
        assert l1.balance(payee) == before + amount
        assert l1.events(receipt, "RewardManager", "RewardClaimed") == [
            {"taskId": TASK, "clientKey": key, "payee": payee, "amount": amount}
        ]
        assert l1.call(rm.claimed(TASK, key))
        with reverts("AlreadyClaimed"):
            _claim(l1, tree, key, accepted)
    # the flagged client cannot claim: its leaf says flagged = 1, and claims prove flagged = 0
    with reverts("InvalidProof"):
        l1.tx(
            l1.user(5), rm.claim(TASK, CAROL, 9, tree.siblings(reward_leaf(TASK, CAROL, 9, 1)[0]))
        )
    assert not l1.call(rm.claimed(TASK, CAROL))

    # the refund: the settled funder only, once
    with reverts("NotFunder"):
        l1.tx(l1.user(1), rm.withdrawRefund(TASK))
    before = l1.balance(r)
    receipt = l1.tx(requester, rm.withdrawRefund(TASK))
    assert l1.balance(r) == before + refund - l1.cost(receipt)
    assert l1.events(receipt, "RewardManager", "Refunded") == [
        {"taskId": TASK, "requester": r, "amount": refund}
    ]
    assert l1.call(rm.refundOf(TASK)) == [refund, True]
    with reverts("AlreadyRefunded"):
        l1.tx(requester, rm.withdrawRefund(TASK))
    assert l1.balance(l1.rewards.address) == pool - paid  # only rounding dust and carol's share


def test_a_front_run_funding_is_harmless(l1: L1) -> None:
    """An attacker who sees the victim's task id funds it first with 1 wei: the victim's funding
    still goes through, the settlement naming the victim settles the victim's funding, the
    attacker's can never be settled in its place, and the attacker gets its 1 wei back only once
    its funding has provably lapsed (having paid BASE_FEE for nothing)."""
    rm = l1.rewards.functions
    victim, attacker = l1.user(0), l1.user(3)
    v, a = victim.address, attacker.address
    l1.stake(l1.user(1), ALICE)
    treasury = l1.addresses["RewardTreasury"]
    treasury_before = l1.balance(treasury)
    _fund(l1, attacker, 1)
    deposit = ETHER // 10
    receipt = _fund(l1, victim, deposit)  # no TaskExists any more
    assert l1.events(receipt, "RewardManager", "TaskFunded") == [
        {"taskId": TASK, "requester": v, "deposit": deposit}
    ]
    assert l1.balance(l1.rewards.address) == deposit + 1
    bind_by = 3
    attacker_leaf = funding_leaf(TASK, a, 1, bind_by, 0)
    # the rollup bound the victim's funding (the create_task names it); the attacker's never
    early = StateTree(dict([attacker_leaf, funding_leaf(TASK, v, deposit, bind_by, 1)]))
    early_batch = l1.commit(early.root, blocks=bind_by - 1)
    l1.finalize()
    assert last_block(l1, early_batch) == bind_by - 1
    with reverts("FundingNotLapsed") as exc:  # a later height could still bind it
        _reclaim(l1, early, early_batch, attacker, 1, bind_by)
    assert exc.value.error_args == (bind_by, bind_by - 1)

    leaves = dict([attacker_leaf, funding_leaf(TASK, v, deposit, bind_by, 1)])
    tree = _task_tree(1, 4, {ALICE: (4, 0)}, v, extra=leaves)
    batch = l1.commit_final(tree)
    assert last_block(l1, batch) == bind_by
    # settling the attacker's funding with the victim's leaf: the leaf names the victim
    siblings = tree.siblings(settle_leaf(TASK, 1, 4, 4, v)[0])
    with reverts("InvalidProof"):
        l1.tx(l1.user(5), rm.settle(batch, TASK, a, 1, 4, 4, 0, siblings))
    _settle(l1, tree, batch, 1, 4, 4, v)
    assert l1.call(rm.task(TASK))[:3] == [v, deposit, True]
    assert l1.call(rm.funding(TASK, v)) == [deposit, True, False]
    assert l1.call(rm.funding(TASK, a)) == [1, False, False]
    with reverts("AlreadySettled"):  # a task settles once, whichever funding
        l1.tx(l1.user(5), rm.settle(batch, TASK, a, 1, 4, 4, 0, siblings))
    with reverts("NotFunder"):  # the refund is the settled funder's
        l1.tx(attacker, rm.withdrawRefund(TASK))
    with reverts("FundingSettled"):  # the victim's funding is spent
        _reclaim(l1, tree, batch, victim, deposit, bind_by, bound=1)

    # the attacker's funding lapsed unbound: it takes back its own deposit, not the BASE_FEE
    before = l1.balance(a)
    receipt = _reclaim(l1, tree, batch, attacker, 1, bind_by)
    assert l1.balance(a) == before + 1 - l1.cost(receipt)
    assert l1.events(receipt, "RewardManager", "FundingReclaimed") == [
        {"taskId": TASK, "funder": a, "amount": 1}
    ]
    assert l1.call(rm.funding(TASK, a)) == [1, False, True]
    fee = 4 * FEE
    protocol = fee * BPS // 10_000
    assert l1.balance(treasury) == treasury_before + 2 * BASE_FEE + protocol  # both base fees kept
    # the victim's task pays out as if the attacker had never been there
    _claim(l1, tree, ALICE, 4)
    l1.tx(victim, rm.withdrawRefund(TASK))
    assert l1.balance(l1.rewards.address) == 0


def test_reclaim_rules(l1: L1) -> None:
    rm = l1.rewards.functions
    funder = l1.user(0)
    f = funder.address
    deposit = ETHER // 10
    _fund(l1, funder, deposit)
    bind_by = 5
    leaf = funding_leaf(TASK, f, deposit, bind_by, 0)
    tree = StateTree(dict([leaf]))
    short = l1.commit(tree.root, blocks=bind_by - 1)  # the state after rollup block 4
    l1.finalize()
    with reverts("FundingNotLapsed") as exc:
        _reclaim(l1, tree, short, funder, deposit, bind_by)
    assert exc.value.error_args == (bind_by, bind_by - 1)
    # naming an earlier bindBy than the leaf's does not make it lapse: that is not the leaf
    with reverts("InvalidProof"):
        l1.tx(funder, rm.reclaim(short, TASK, bind_by - 1, tree.siblings(leaf[0])))

    batch = l1.commit(tree.root, blocks=1)  # the state after rollup block 5, not final yet
    assert last_block(l1, batch) == bind_by
    with reverts("NotFinalized"):
        _reclaim(l1, tree, batch, funder, deposit, bind_by)
    with reverts("UnknownBatch"):
        _reclaim(l1, tree, batch + 1, funder, deposit, bind_by)
    l1.finalize()
    siblings = tree.siblings(leaf[0])
    with reverts("UnknownFunding") as exc:  # only the funder reclaims, and only its own funding
        l1.tx(l1.user(1), rm.reclaim(batch, TASK, bind_by, siblings))
    assert exc.value.error_args[0] == TASK and same(exc.value.error_args[1], l1.user(1).address)
    with reverts("UnknownFunding"):
        l1.tx(funder, rm.reclaim(batch, TASK2, bind_by, siblings))
    with reverts("InvalidProof"):  # no leaf holds a bindBy wider than 64 bits
        l1.tx(funder, rm.reclaim(batch, TASK, 2**64 + bind_by, siblings))

    # a bound funding's leaf says bound = 1: it proves nothing, whatever the height
    bound = StateTree(dict([funding_leaf(TASK, f, deposit, bind_by, 1)]))
    bound_batch = l1.commit_final(bound)
    with reverts("InvalidProof"):
        _reclaim(l1, bound, bound_batch, funder, deposit, bind_by, bound=1)
    # the deposit proven is the contract's own: a leaf recording another amount proves nothing
    other = StateTree(dict([funding_leaf(TASK, f, deposit + 1, bind_by)]))
    other_batch = l1.commit_final(other)
    with reverts("InvalidProof"):
        _reclaim(l1, other, other_batch, funder, deposit + 1, bind_by)

    held = l1.balance(l1.rewards.address)
    before = l1.balance(f)
    receipt = _reclaim(l1, tree, batch, funder, deposit, bind_by)  # a later final batch is fine
    assert l1.balance(f) == before + deposit - l1.cost(receipt)
    assert l1.balance(l1.rewards.address) == held - deposit == 0
    assert l1.events(receipt, "RewardManager", "FundingReclaimed") == [
        {"taskId": TASK, "funder": f, "amount": deposit}
    ]
    assert l1.call(rm.funding(TASK, f)) == [deposit, False, True]
    with reverts("AlreadyReclaimed"):
        _reclaim(l1, tree, batch, funder, deposit, bind_by)
    # a reclaimed funding is never settled (the STF never binds a lapsed funding; defensive)
    settled = _task_tree(2, 1, {ALICE: (1, 0)}, f)
    sb = l1.commit_final(settled)
    with reverts("AlreadyReclaimed"):
        _settle(l1, settled, sb, 2, 1, 1, f)
    # and it is not renewed: the rollup's record of that funding stays the only one
    with reverts("FundingExists"):
        _fund(l1, funder, deposit)


def test_claims_prove_against_the_settlement_root(l1: L1) -> None:
    """A later batch changing the shares does not change what a settled task pays."""
    l1.stake(l1.user(1), ALICE)
    r = l1.user(0).address
    _fund(l1, l1.user(0), ETHER)
    tree = _task_tree(1, 4, {ALICE: (4, 0)}, r)
    _settle(l1, tree, l1.commit_final(tree), 1, 4, 4, r)
    later = StateTree(dict([reward_leaf(TASK, ALICE, 40, 0)]))
    l1.commit_final(later)
    with reverts("InvalidProof"):
        _claim(l1, later, ALICE, 40)
    _claim(l1, tree, ALICE, 4)


def test_fee_is_capped_by_the_deposit(l1: L1) -> None:
    requester = l1.user(0)
    r = requester.address
    l1.stake(l1.user(1), ALICE)
    deposit = 5 * FEE + 123
    _fund(l1, requester, deposit)
    tree = _task_tree(2, 50, {ALICE: (50, 0)}, r)
    receipt = _settle(l1, tree, l1.commit_final(tree), 2, 50, 50, r)
    protocol = deposit * BPS // 10_000
    (event,) = l1.events(receipt, "RewardManager", "TaskSettled")
    assert (event["fee"], event["pool"], event["refund"]) == (deposit, deposit - protocol, 0)
    with reverts("NothingToRefund"):
        l1.tx(requester, l1.rewards.functions.withdrawRefund(TASK))
    before = l1.balance(l1.user(1).address)
    _claim(l1, tree, ALICE, 50)
    assert l1.balance(l1.user(1).address) == before + deposit - protocol
    assert l1.balance(l1.rewards.address) == 0


DATA_FEE = PARAMS.data_fee_per_mib
MIB = 1 << 20


def test_the_data_fee_is_billed_first_and_all_to_the_treasury(l1: L1) -> None:
    """Issue 13: a task's bytes cost its funder DATA_FEE_PER_MIB per MiB (rounded up), all to
    the treasury (never to the pool, which a requester's own sybils would collect), before the
    epochs' fee; the rest is refunded."""
    requester = l1.user(0)
    r = requester.address
    l1.stake(l1.user(1), ALICE)
    deposit = ETHER // 10
    _fund(l1, requester, deposit)
    data = 3 * MIB + 1
    tree = _task_tree(2, 4, {ALICE: (4, 0)}, r, data_bytes=data)
    batch = l1.commit_final(tree)
    with reverts("InvalidProof"):  # a smaller bill than the leaf's
        _settle(l1, tree, batch, 2, 4, 4, r)
    treasury_before = l1.balance(l1.addresses["RewardTreasury"])
    receipt = _settle(l1, tree, batch, 2, 4, 4, r, data_bytes=data)
    data_fee = 3 * DATA_FEE + -(-DATA_FEE // MIB)  # ceil(data * price / 2^20)
    fee = 4 * FEE
    share = fee * BPS // 10_000
    (event,) = l1.events(receipt, "RewardManager", "TaskSettled")
    assert (event["dataFee"], event["fee"], event["pool"], event["refund"]) == (
        data_fee,
        fee,
        fee - share,
        deposit - data_fee - fee,
    )
    assert l1.balance(l1.addresses["RewardTreasury"]) == treasury_before + data_fee + share
    before = l1.balance(l1.user(1).address)
    _claim(l1, tree, ALICE, 4)
    assert l1.balance(l1.user(1).address) == before + fee - share


def test_the_data_fee_comes_before_the_epochs_and_is_capped_by_the_deposit(l1: L1) -> None:
    requester = l1.user(0)
    r = requester.address
    l1.stake(l1.user(1), ALICE)
    deposit = 2 * DATA_FEE + FEE // 2  # two MiB and half an epoch
    _fund(l1, requester, deposit)
    tree = _task_tree(2, 3, {ALICE: (3, 0)}, r, data_bytes=2 * MIB)
    receipt = _settle(l1, tree, l1.commit_final(tree), 2, 3, 3, r, data_bytes=2 * MIB)
    (event,) = l1.events(receipt, "RewardManager", "TaskSettled")
    share = (FEE // 2) * BPS // 10_000
    assert (event["dataFee"], event["fee"], event["refund"]) == (2 * DATA_FEE, FEE // 2, 0)
    assert event["pool"] == FEE // 2 - share
    # a bill over the deposit (a rollup whose price differs) takes the deposit and no more
    tree = _task_tree(2, 3, {ALICE: (3, 0)}, r, task=TASK2, data_bytes=2**60)
    _fund(l1, requester, deposit, TASK2)
    receipt = _settle(l1, tree, l1.commit_final(tree), 2, 3, 3, r, task=TASK2, data_bytes=2**60)
    (event,) = l1.events(receipt, "RewardManager", "TaskSettled")
    assert (event["dataFee"], event["fee"], event["pool"], event["refund"]) == (deposit, 0, 0, 0)
    assert l1.call(l1.rewards.functions.DATA_FEE_PER_MIB()) == DATA_FEE


def test_a_pool_with_no_clean_client_goes_to_the_protocol_not_the_requester(l1: L1) -> None:
    """If every client ended barred or slashable, the requester must not get the pool back: it
    would then gain by getting every client flagged (its own rules, its own sybils)."""
    requester = l1.user(0)
    r = requester.address
    l1.stake(l1.user(1), ALICE)
    deposit = ETHER // 100
    _fund(l1, requester, deposit)
    tree = _task_tree(2, 3, {ALICE: (3, 1)}, r)  # the only client was excluded: total clean 0
    treasury_before = l1.balance(l1.addresses["RewardTreasury"])
    receipt = _settle(l1, tree, l1.commit_final(tree), 2, 3, 0, r)
    fee = 3 * FEE
    (event,) = l1.events(receipt, "RewardManager", "TaskSettled")
    assert (event["fee"], event["pool"], event["refund"]) == (fee, 0, deposit - fee)
    assert l1.balance(l1.addresses["RewardTreasury"]) == treasury_before + fee  # all of it
    with reverts("InvalidProof"):  # an excluded client's leaf never proves a claim
        _claim(l1, tree, ALICE, 3, flagged=1)
    before = l1.balance(r)
    receipt = l1.tx(requester, l1.rewards.functions.withdrawRefund(TASK))
    assert l1.balance(r) == before + deposit - fee - l1.cost(receipt)
    assert l1.balance(l1.rewards.address) == 0


def test_claim_edge_cases(l1: L1) -> None:
    rm = l1.rewards.functions
    r = l1.user(0).address
    l1.stake(l1.user(1), ALICE)
    _fund(l1, l1.user(0), ETHER)
    tree = _task_tree(1, 2, {ALICE: (2, 0), BOB: (1, 0), CAROL: (0, 0)}, r)
    batch = l1.commit_final(tree)
    with reverts("NotSettled"):
        l1.tx(l1.user(0), rm.withdrawRefund(TASK))
    _settle(l1, tree, batch, 1, 2, 3, r)
    with reverts("NoPayee"):  # bob never staked on L1: nowhere to pay
        _claim(l1, tree, BOB, 1)
    with reverts("NothingToClaim"):  # carol recorded no update
        _claim(l1, tree, CAROL, 0)
    with reverts("NotSettled"):  # a task nobody funded
        l1.tx(l1.user(0), rm.withdrawRefund(TASK2))
    # a slashed (or withdrawn) key still receives what it earned cleanly elsewhere
    evidence = StateTree(dict([slash_leaf(ALICE, TASK2, 1, 1)]))
    sb = l1.commit_final(evidence)
    key = slash_leaf(ALICE, TASK2, 1, 1)[0]
    l1.tx(l1.user(4), l1.slashing.functions.slash(sb, ALICE, TASK2, 1, 1, evidence.siblings(key)))
    before = l1.balance(l1.user(1).address)
    _claim(l1, tree, ALICE, 2)
    assert l1.balance(l1.user(1).address) > before


def test_reward_manager_constructor_checks(l1: L1) -> None:
    args = [l1.registry.address, l1.rollup.address, l1.addresses["RewardTreasury"], 1, 1, 1]
    with reverts("InvalidShare"):
        l1.deploy("RewardManager", *args, 10_001, l1.admin.address)
    with reverts("ZeroAddress"):
        l1.deploy("RewardManager", *args, 0, "0x" + "00" * 20)
    with reverts("ZeroBaseFee"):  # red team: a free slot lets one key fill them all again
        l1.deploy("RewardManager", *args[:3], 0, 1, 1, 0, l1.admin.address)
    l1.deploy("RewardManager", *args, 10_000, l1.admin.address)


# == Reentrancy ====================================================================================
REENTRANCY = keccak(text="Reentrancy()")[:4]


def test_reentrant_claim_fails_and_loses_nothing(l1: L1) -> None:
    claimer = l1.deploy("ReentrantClaimer")
    rm = l1.rewards.functions
    r = l1.user(0).address
    l1.tx(l1.user(1), claimer.functions.stake(l1.registry.address, ALICE), STAKE)
    assert l1.call(l1.registry.functions.stakerOf(ALICE)) == claimer.address
    _fund(l1, l1.user(0), ETHER)
    tree = _task_tree(1, 10, {ALICE: (5, 0), BOB: (5, 0)}, r)
    _settle(l1, tree, l1.commit_final(tree), 1, 10, 10, r)
    siblings = tree.siblings(reward_leaf(TASK, ALICE, 5, 0)[0])
    again = rm.claim(TASK, ALICE, 5, siblings)._encode_transaction_data()
    l1.tx(l1.user(1), claimer.functions.arm(l1.rewards.address, again))
    held = l1.balance(l1.rewards.address)

    receipt = l1.tx(l1.user(1), rm.claim(TASK, ALICE, 5, siblings))
    amount = l1.call(rm.task(TASK))[3] * 5 // 10
    assert l1.call(claimer.functions.reentryAttempted())
    assert not l1.call(claimer.functions.reentrySucceeded())
    assert l1.call(claimer.functions.reentryRevertData()) == REENTRANCY
    assert l1.call(claimer.functions.paymentsReceived()) == 1
    assert l1.balance(claimer.address) == amount
    assert l1.balance(l1.rewards.address) == held - amount
    assert len(l1.events(receipt, "RewardManager", "RewardClaimed")) == 1


def test_reentrant_withdraw_fails_and_loses_nothing(l1: L1) -> None:
    claimer = l1.deploy("ReentrantClaimer")
    reg = l1.registry.functions
    l1.stake(l1.user(0), BOB)  # someone else's stake is in the registry too
    l1.tx(l1.user(1), claimer.functions.stake(l1.registry.address, ALICE), STAKE)
    l1.tx(l1.user(1), claimer.functions.unregister(l1.registry.address))
    batch, siblings = l1.release(ALICE)
    again = reg.withdrawStake(batch, siblings)._encode_transaction_data()
    l1.tx(l1.user(1), claimer.functions.arm(l1.registry.address, again))
    l1.tx(l1.user(1), claimer.functions.withdrawStake(l1.registry.address, batch, siblings))
    assert not l1.call(claimer.functions.reentrySucceeded())
    assert l1.call(claimer.functions.reentryRevertData()) == REENTRANCY
    assert l1.balance(claimer.address) == STAKE
    assert l1.balance(l1.registry.address) == STAKE  # bob's, untouched
    assert l1.call(reg.statusOf(ALICE)) == WITHDRAWN


def test_payee_rejecting_ether_keeps_the_claim(l1: L1) -> None:
    claimer = l1.deploy("ReentrantClaimer")
    rm = l1.rewards.functions
    r = l1.user(0).address
    l1.tx(l1.user(1), claimer.functions.stake(l1.registry.address, ALICE), STAKE)
    _fund(l1, l1.user(0), ETHER)
    tree = _task_tree(1, 10, {ALICE: (5, 0)}, r)
    _settle(l1, tree, l1.commit_final(tree), 1, 10, 5, r)
    l1.tx(l1.user(1), claimer.functions.setRejectPayments(True))
    with reverts("TransferFailed"):
        _claim(l1, tree, ALICE, 5)
    assert not l1.call(rm.claimed(TASK, ALICE))
    l1.tx(l1.user(1), claimer.functions.setRejectPayments(False))
    _claim(l1, tree, ALICE, 5)
    assert l1.call(rm.claimed(TASK, ALICE))


# == SparseMerkle against stf.smt ==================================================================
def test_sparse_merkle_matches_stf(l1: L1) -> None:
    harness = l1.deploy("SparseMerkleHarness")
    leaves = {f"key {i}".encode(): f"value {i}".encode() * (i % 3) for i in range(40)}
    tree = StateTree(leaves, filler=200)
    for key in list(leaves)[:8]:
        siblings = tree.siblings(key)
        assert l1.call(harness.functions.verify(tree.root, key, leaves[key], siblings))
        assert not l1.call(harness.functions.verify(tree.root, key, leaves[key] + b"!", siblings))
        assert not l1.call(harness.functions.verify(flip(tree.root), key, leaves[key], siblings))
        path = key_path(key)
        leaf = leaf_hash(path, value_hash(leaves[key]))
        assert l1.call(harness.functions.computeRoot(path, leaf, siblings)) == tree.root
    # a one-leaf tree: the root is the leaf, the proof is empty
    single = StateTree({b"only": b"one"}, filler=0)
    assert single.siblings(b"only") == []
    assert l1.call(harness.functions.verify(single.root, b"only", b"one", []))
    # more than 256 siblings is never a valid proof
    assert not l1.call(harness.functions.verify(single.root, b"only", b"one", [bytes(32)] * 257))


def test_a_commitment_past_its_l1_deadline_reverts(l1: L1) -> None:
    """The poster checks the sequencing window for the block its commitment lands in by a
    deadline; mined later, the commitment reverts instead of being fraud (red team)."""
    ro = l1.rollup.functions
    deadline = l1.block() + 1  # the next block is the last that may carry it
    l1.mine(1)
    with reverts("PastDeadline"):
        l1.tx(l1.admin, ro.commitBatch(0, GENESIS_ROOT, ROOT1, ROOT1, 1, deadline))
    l1.tx(l1.admin, ro.commitBatch(0, GENESIS_ROOT, ROOT1, ROOT1, 1, l1.block() + 1))
    assert l1.call(ro.nextBatchIndex()) == 1


# == ForcedInbox ===================================================================================
def test_the_inbox_logs_any_signed_bytes_within_its_size_limit(l1: L1) -> None:
    inbox = l1.deploy("ForcedInbox", 100, 8)
    limit = 100
    receipt = l1.tx(l1.user(1), inbox.functions.forceTx(b"\x01" * limit))
    logs = inbox.events.TxForced().process_receipt(receipt)
    assert [dict(e["args"]) for e in logs] == [
        {"sender": l1.user(1).address, "rawTx": b"\x01" * limit}
    ]
    with reverts("TxTooLarge"):
        l1.tx(l1.user(1), inbox.functions.forceTx(b"\x01" * (limit + 1)))
    with reverts("EmptyTx"):
        l1.tx(l1.user(1), inbox.functions.forceTx(b""))


@pytest.mark.parametrize(("size", "window"), [(0, 8), (100, 0)])
def test_the_inbox_refuses_a_zero_limit_or_window(l1: L1, size: int, window: int) -> None:
    with pytest.raises(ContractRevert, match="BadParameters"):
        l1.deploy("ForcedInbox", size, window)


# == glue ==========================================================================================
def test_decode_revert() -> None:
    data = keccak(text="NotFinalized(uint256)")[:4] + (7).to_bytes(32, "big")
    exc = decode_revert("0x" + data.hex())
    assert (exc.error, exc.error_args) == ("NotFinalized", (7,))
    assert str(exc) == "reverted: NotFinalized(7)"
    assert decode_revert(b"\x12\x34\x56\x78").error == ""
    assert decode_revert(None).error == ""
    assert isinstance(exc, ContractRevert)


def test_deploy_all_hands_the_registry_to_another_admin(l1: L1) -> None:
    admin, sequencer = l1.user(6), l1.user(7)
    params = DeployParams(admin=admin.address, sequencer=sequencer.address)
    addresses = deploy_all(l1.w3, l1.user(5), params)
    assert set(addresses) == {
        "StakingRegistry",
        "MPSRollup",
        "SlashingManager",
        "SlashTreasury",
        "RewardManager",
        "RewardTreasury",
        "ResolverCommittee",
        "ForcedInbox",
    }
    inbox = contract(l1.w3, "ForcedInbox", addresses["ForcedInbox"]).functions
    assert l1.call(inbox.SEQUENCING_WINDOW()) == params.sequencing_window
    assert l1.call(inbox.MAX_TX_BYTES()) == params.max_forced_tx_bytes
    for name in ("StakingRegistry", "MPSRollup", "RewardTreasury", "RewardManager"):
        assert l1.call(contract(l1.w3, name, addresses[name]).functions.admin()) == admin.address
    reg = contract(l1.w3, "StakingRegistry", addresses["StakingRegistry"])
    assert l1.call(reg.functions.slasher()) == addresses["SlashingManager"]
    assert l1.call(reg.functions.slashTreasury()) == addresses["SlashTreasury"]
    rollup = contract(l1.w3, "MPSRollup", addresses["MPSRollup"])
    assert l1.call(rollup.functions.sequencer()) == sequencer.address
    assert l1.call(rollup.functions.genesisStateRoot()) == bytes(32)
    # the committee decides challenges; without resolvers given it is the admin alone (1 of 1)
    assert l1.call(rollup.functions.resolver()) == addresses["ResolverCommittee"]
    committee = contract(l1.w3, "ResolverCommittee", addresses["ResolverCommittee"]).functions
    assert l1.call(committee.isResolver(admin.address)) and l1.call(committee.members()) == 1


def test_anvil_state_survives_a_restart(tmp_path: Path) -> None:
    try:
        find_binary()
    except AnvilError as exc:
        pytest.skip(str(exc))
    state = tmp_path / "anvil-state.json"
    with Anvil(state_path=state, accounts=2) as node:
        w3 = node.w3()
        user = node.accounts[1]
        address = deploy(w3, user, "SlashTreasury")
        node.mine(5)
        height = w3.eth.block_number
    assert state.exists()
    with Anvil(state_path=state, accounts=2) as node:
        w3 = node.w3()
        assert w3.eth.block_number >= height
        assert len(w3.eth.get_code(address)) > 0


def test_anvil_state_survives_its_owner_killed(tmp_path: Path) -> None:
    """The dev L1 is a child of ``mps-node dev``. When the node dies, even by SIGKILL, anvil gets
    SIGTERM (PR_SET_PDEATHSIG) and dumps its chain on exit: blocks mined just before the kill,
    well inside the one-second dump interval, are there after a restart."""
    try:
        find_binary()
    except AnvilError as exc:
        pytest.skip(str(exc))
    state = tmp_path / "anvil-state.json"
    owner = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from contracts.anvil import Anvil\n"
        "node = Anvil(state_path=Path(sys.argv[1]), accounts=2).start()\n"
        "node.mine(42)\n"
        "print(node.w3().eth.block_number, node.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", owner, str(state)],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    height, pid = map(int, proc.stdout.split())
    assert height == 42
    status = Path(f"/proc/{pid}/status")
    deadline = time.monotonic() + 20
    while status.exists() and "\tZ" not in status.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)  # anvil writes its dump as it exits
    assert not status.exists() or "\tZ" in status.read_text(), "anvil outlived its owner"
    with Anvil(state_path=state, accounts=2) as node:
        assert node.w3().eth.block_number == height


def test_anvil_missing_binary_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import contracts.anvil as anvil_module

    monkeypatch.setattr(anvil_module, "NODE_MODULES", tmp_path)
    with pytest.raises(AnvilError, match=r"bash scripts/setup\.sh"):
        Anvil().start()


@pytest.mark.skipif(
    not build.SOLCJS.exists(), reason="solcjs is not installed (run bash scripts/setup.sh)"
)
def test_artifacts_match_the_sources() -> None:
    """`python -m contracts.build --check`: the committed artifacts are the sources compiled."""
    proc = subprocess.run(
        [sys.executable, "-m", "contracts.build", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
