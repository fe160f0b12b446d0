"""node.l1.deposits: L1 events as the STF's ``l1_deposit`` transactions, and the L1 origin choice.

The sequencer builds the deposits and the verifier's derivation reads them back, so the round trip
through the STF's own parser must give back the event exactly, for every kind of event.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.l1.deposits import L1Event, deposit_tx, deposit_txs, event_of, select_l1_origin
from stf.block import Header
from stf.errors import TxInvalid
from stf.hashing import ZERO_HASH
from stf.transition import ChainConfig, check_tx
from stf.tx import ZERO_SENDER, Transaction
from stf.txtypes import l1_deposit
from stf.txtypes.l1_deposit import L1Deposit

CHAIN_ID = 77
CHAIN = ChainConfig(CHAIN_ID, bytes(32))
U64 = st.integers(0, 2**64 - 1)
AMOUNT = st.integers(1, 2**64 - 1)
ID32 = st.binary(min_size=32, max_size=32)
ADDRESS = st.binary(min_size=20, max_size=20)

BINDING = st.binary(min_size=64, max_size=64)  # the STF checks the signature when it applies
ARGS = st.one_of(  # (kind, *args), as the follower decodes them from the L1's logs
    st.tuples(st.just("stake"), ID32, ADDRESS, AMOUNT, BINDING),
    st.tuples(st.just("fund"), ID32, ADDRESS, AMOUNT),
    st.tuples(st.sampled_from(["unbond", "withdraw", "slash"]), ID32),
)
EVENTS = st.builds(lambda b, i, ka: L1Event(b, i, ka[0], list(ka[1:])), U64, U64, ARGS)


@settings(max_examples=200, deadline=None)
@given(event=EVENTS, nonce=U64)
def test_an_event_survives_the_deposit_tx_and_the_stf_parser(event: L1Event, nonce: int) -> None:
    tx = Transaction.decode(deposit_tx(CHAIN_ID, nonce, event).encode())
    assert (tx.tx_type, tx.sender, tx.nonce) == (L1Deposit.TYPE_ID, ZERO_SENDER, nonce)
    assert tx.payload == l1_deposit.payload(event.block, event.log_index, event.kind, event.args)
    _, parsed = check_tx(tx, CHAIN, verify_signature=False)
    assert L1Event(parsed[0], parsed[1], parsed[2], list(parsed[3])) == event
    assert event_of(tx) == event


def test_a_malformed_event_is_dropped_without_shifting_the_nonces_after_it() -> None:
    good = [L1Event(1, i, "slash", [bytes([i]) * 32]) for i in range(3)]
    bad = L1Event(1, 9, "stake", [bytes(32), bytes(20), 0, bytes(64)])  # a stake of 0: no event
    txs = deposit_txs(CHAIN, 5, [good[0], bad, good[1], good[2]])
    assert [tx.nonce for tx in txs] == [5, 6, 7]
    assert [event_of(tx) for tx in txs] == good


def test_a_payload_the_stf_rejects_is_no_event() -> None:
    tx = deposit_tx(CHAIN_ID, 0, L1Event(1, 0, "mint", [bytes(32)]))
    with pytest.raises(TxInvalid):
        event_of(tx)


# -- select_l1_origin -------------------------------------------------------------------------


def header(height: int, origin_number: int, origin_hash: bytes) -> Header:
    return Header(
        CHAIN_ID, height, bytes(32), 0, origin_number, origin_hash, bytes(32), bytes(32), bytes(32),
        bytes(32),
    )  # fmt: skip


PARENT = header(4, 10, b"\x0a" * 32)
NEWER = (12, b"\x0c" * 32)


def test_a_block_taking_every_queued_event_claims_the_newer_origin() -> None:
    assert select_l1_origin(PARENT, NEWER, queued=3, included=3) == NEWER
    assert select_l1_origin(PARENT, NEWER, queued=0, included=0) == NEWER


def test_a_block_leaving_events_queued_keeps_the_parents_origin() -> None:
    assert select_l1_origin(PARENT, NEWER, queued=5, included=3) == (10, b"\x0a" * 32)


@pytest.mark.parametrize("number", [10, 9, 0])
def test_the_origin_never_goes_backwards_nor_repeats_with_another_hash(number: int) -> None:
    assert select_l1_origin(PARENT, (number, b"\xff" * 32), 1, 1) == (10, b"\x0a" * 32)


def test_on_genesis_the_kept_origin_has_the_zero_hash() -> None:
    genesis = header(0, 7, b"\x07" * 32)
    assert select_l1_origin(genesis, (7, b"\x08" * 32), 0, 0) == (7, ZERO_HASH)
    assert select_l1_origin(genesis, NEWER, 2, 1) == (7, ZERO_HASH)
    assert select_l1_origin(genesis, NEWER, 2, 2) == NEWER
