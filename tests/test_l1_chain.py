"""``node.l1.chain.send_and_wait``: the node's one way to act on the L1 (aggregator slashes and
settles, verifier challenges). It must hold the operator's fee cap and report a revert with the
contract's error decoded, on anvil and on py-evm."""

from __future__ import annotations

import pytest
from l1_fixtures import (
    BINDING,
    L1,
    key32,
    l1_deployed_fixture,  # noqa: F401
    l1_fixture,  # noqa: F401
    reverts,
)

from node.l1.chain import GWEI, PRIORITY_FEE, L1Error, send_and_wait

CLIENT = key32("client")


def base_fee(l1: L1) -> int:
    return int(l1.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)


def test_sends_within_the_fee_cap(l1: L1) -> None:
    user = l1.user(0)
    cap = base_fee(l1) + PRIORITY_FEE + 1  # room for the tip, not for twice the base fee
    stake = l1.registry.functions.stake(CLIENT, BINDING)
    receipt = send_and_wait(l1.w3, user, stake, cap, l1.params.stake_amount)
    assert receipt["status"] == 1
    tx = l1.w3.eth.get_transaction(receipt["transactionHash"])
    assert tx["maxFeePerGas"] == cap and tx["maxPriorityFeePerGas"] == PRIORITY_FEE
    assert l1.call(l1.registry.functions.stakerOf(CLIENT)) == user.address


def test_refuses_when_the_base_fee_is_above_the_cap(l1: L1) -> None:
    user = l1.user(0)
    nonce = l1.w3.eth.get_transaction_count(user.address)
    cap = base_fee(l1) + PRIORITY_FEE - 1
    with pytest.raises(L1Error, match="above the cap"):
        send_and_wait(l1.w3, user, l1.registry.functions.stake(CLIENT, BINDING), cap)
    assert l1.w3.eth.get_transaction_count(user.address) == nonce  # nothing was sent


def test_a_revert_names_the_contract_error(l1: L1) -> None:
    user = l1.user(0)
    stake = l1.registry.functions.stake(CLIENT, BINDING)
    send_and_wait(l1.w3, user, stake, 100 * GWEI, l1.params.stake_amount)
    with reverts("AlreadyStaked"):
        send_and_wait(l1.w3, user, stake, 100 * GWEI, l1.params.stake_amount)
