"""The L1-checked leaves and their keys read back exactly as they were written.

The aggregator acts on what the decoders return, and the Solidity contracts read the same bytes at
fixed offsets: a decoder that disagreed with its encoder would slash or settle with wrong
arguments, which the L1's proof check rejects. ``struct`` spells the contracts' layouts
independently of stf/fl/settlement.py.
"""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st

from stf import state_keys
from stf.fl import settlement
from stf.fl.settlement import FundingLeaf, Settlement, SlashEvidence
from stf.ids import ClientKey, L1Address, TaskId

U32 = st.integers(0, 2**32 - 1)
U64 = st.integers(0, 2**64 - 1)
ID32 = st.binary(min_size=32, max_size=32)
ADDRESS = st.binary(min_size=20, max_size=20)


@given(epoch=U32, reason=U32)
def test_slash_evidence_round_trips(epoch: int, reason: int) -> None:
    raw = settlement.encode_slash_evidence(epoch, reason)
    assert raw == struct.pack(">II", epoch, reason)
    assert settlement.decode_slash_evidence(raw) == SlashEvidence(epoch, reason)


@given(
    status=st.sampled_from([settlement.SETTLE_COMPLETE, settlement.SETTLE_FINISHED]),
    epochs=U32,
    total=U64,
    funder=ADDRESS,
    data=U64,
)
def test_settlement_round_trips(
    status: int, epochs: int, total: int, funder: bytes, data: int
) -> None:
    leaf = Settlement(status, epochs, total, L1Address(funder), data)
    raw = settlement.encode_settlement(leaf)
    assert raw == struct.pack(">BIQ20sQ", status, epochs, total, funder, data)
    assert settlement.decode_settlement(raw) == leaf


@given(deposit=st.integers(0, 2**256 - 1), bind_by=U64, bound=st.booleans())
def test_funding_round_trips(deposit: int, bind_by: int, bound: bool) -> None:
    leaf = FundingLeaf(deposit, bind_by, bound)
    raw = settlement.encode_funding(leaf)
    assert raw == struct.pack(">32sQB", deposit.to_bytes(32, "big"), bind_by, bound)
    assert settlement.decode_funding(raw) == leaf


@given(accepted=U32, flagged=st.booleans())
def test_reward_share_round_trips(accepted: int, flagged: bool) -> None:
    raw = settlement.encode_reward_share(accepted, flagged)
    assert raw == struct.pack(">IB", accepted, flagged)
    assert settlement.decode_reward_share(raw) == (accepted, flagged)


@given(client=ID32, task=ID32)
def test_leaf_keys_parse_back(client: bytes, task: bytes) -> None:
    c, t = ClientKey(client), TaskId(task)
    assert state_keys.parse_slash_evidence(state_keys.slash_evidence(c, t)) == (c, t)
    assert state_keys.parse_settlement(state_keys.settlement(t)) == t
    assert state_keys.settlement(t).startswith(state_keys.SETTLE_PREFIX)


def test_other_keys_are_not_leaf_keys() -> None:
    t = TaskId(bytes(32))
    funding = state_keys.funding(t, L1Address(bytes(20)))
    for key in (state_keys.task(t), state_keys.settlement(t)[:-1], funding):
        assert state_keys.parse_settlement(key) is None
    assert state_keys.parse_slash_evidence(state_keys.settlement(t)) is None
    assert state_keys.parse_settlement(state_keys.slash_evidence(ClientKey(bytes(32)), t)) is None
