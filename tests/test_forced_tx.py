"""stf.forced: a signed transaction forced in through the L1 inbox (issue 12's forced inclusion).

Anyone can post any bytes to the ForcedInbox and the sequencer must carry every such event, so
the rule under test is: whatever the bytes, the block carrying them is valid, and the forced
transaction applies exactly as if the sequencer had included it (a failure in execution uses its
nonce, as in a block), or, if it cannot apply at all, changes nothing.
"""

from __future__ import annotations

import hashlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from node.l1.deposits import L1Event, deposit_tx
from stf import encoding, state_keys
from stf.block import Receipt, receipts_root
from stf.errors import Code
from stf.records import L1Cursor
from stf.state import State
from stf.transition import expected_nonce
from stf.tx import ZERO_SENDER, ZERO_SIGNATURE, Transaction, make_tx
from stf.txtypes import blob, l1_deposit
from stf.txtypes.base import REGISTRY
from stf.txtypes.blob import PutBlob
from stf.txtypes.l1_deposit import L1Deposit
from tests.conftest import CHAIN_ID, Chain, signing_key

USER = signing_key(41)


def put_blob(
    data: bytes, nonce: int = 0, key: SigningKey = USER, chain_id: int = CHAIN_ID
) -> bytes:
    return make_tx(key, chain_id, PutBlob.TYPE_ID, nonce, blob.payload(data)).encode()


def force(chain: Chain, *raws: bytes) -> list[tuple[int, int, str]]:
    """Bring ``raws`` in as forced deposits in one block (replayed by the chain's verify);
    ``(status, code, message)`` per deposit."""
    state = State(chain.store, chain.head.header.state_root)
    first = expected_nonce(state, deposit_tx(CHAIN_ID, 0, L1Event(0, 0, "slash", [])), True)
    cursor = state.get(state_keys.L1_LAST_EVENT)
    base = 1 if cursor is None else L1Cursor.decode(cursor).block + 1  # events only move on
    txs = [
        deposit_tx(CHAIN_ID, first + i, L1Event(base, i, "forced", [raw]))
        for i, raw in enumerate(raws)
    ]
    result = chain.build_and_commit(txs)
    assert [r.tx_hash for r in result.receipts] == [tx.hash for tx in txs], "a deposit was dropped"
    return [(r.status, r.code, r.message) for r in result.receipts]


def nonce_of(chain: Chain, key: SigningKey) -> int:
    raw = State(chain.store, chain.head.header.state_root).get(
        state_keys.nonce(bytes(key.verify_key))
    )
    return 0 if raw is None else int(encoding.decode(raw))


def blob_stored(chain: Chain, data: bytes) -> bool:
    key = state_keys.blob(hashlib.sha256(data).digest())
    return State(chain.store, chain.head.header.state_root).get(key) is not None


def test_a_forced_transaction_applies_as_an_included_one_would(chain: Chain) -> None:
    assert force(chain, put_blob(b"censored update")) == [(1, 0, "")]
    assert blob_stored(chain, b"censored update")
    assert nonce_of(chain, USER) == 1
    # the sender goes on with its next nonce, through the sequencer as usual
    tx = Transaction.decode(put_blob(b"next", nonce=1))
    assert chain.build_and_commit([tx]).receipts[0].status == 1


def test_a_forced_transaction_cannot_be_replayed(chain: Chain) -> None:
    raw = put_blob(b"once")
    force(chain, raw)
    [(status, code, message)] = force(chain, raw)  # anyone may post it again: it is public
    assert (status, code) == (0, Code.FORCED_TX_INVALID)
    assert "NONCE_TOO_LOW" in message
    assert nonce_of(chain, USER) == 1


def test_a_forced_transaction_already_included_by_the_sequencer_fails_harmlessly(
    chain: Chain,
) -> None:
    raw = put_blob(b"both ways")
    chain.build_and_commit([Transaction.decode(raw)])
    [(status, code, _)] = force(chain, raw)
    assert (status, code) == (0, Code.FORCED_TX_INVALID)
    assert nonce_of(chain, USER) == 1


def test_a_forged_signature_changes_nothing(chain: Chain) -> None:
    tx = Transaction.decode(put_blob(b"forged"))
    forged = Transaction(tx.chain_id, tx.tx_type, tx.sender, tx.nonce, tx.payload, bytes(64))
    [(status, code, message)] = force(chain, forged.encode())
    assert (status, code) == (0, Code.FORCED_TX_INVALID)
    assert "INVALID_SIGNATURE" in message
    assert not blob_stored(chain, b"forged")
    assert nonce_of(chain, USER) == 0


def test_a_forced_transaction_for_another_chain_fails(chain: Chain) -> None:
    [(status, code, message)] = force(chain, put_blob(b"elsewhere", chain_id=CHAIN_ID + 1))
    assert (status, code) == (0, Code.FORCED_TX_INVALID)
    assert "WRONG_CHAIN_ID" in message


def test_a_privileged_transaction_cannot_be_forced(chain: Chain) -> None:
    """A forced ``l1_deposit`` would let anyone mint a stake: it must never apply."""
    fake_stake = l1_deposit.payload(0, 0, "stake", [bytes(32), bytes(20), 10**18, bytes(64)])
    inner = Transaction(CHAIN_ID, L1Deposit.TYPE_ID, ZERO_SENDER, 1, fake_stake, ZERO_SIGNATURE)
    [(status, code, message)] = force(chain, inner.encode())
    assert (status, code) == (0, Code.FORCED_TX_INVALID)
    assert "PRIVILEGED_TX" in message


def test_no_receipt_quotes_the_forced_bytes(chain: Chain) -> None:
    """Red team: a forced ``l1_deposit`` with a user-chosen kind made the receipt quote its
    ``repr``, which differs between Python versions (3.11 and 3.12 computed two receipts
    roots), and msgpack's error text differs between its versions; a 4 MiB payload made a
    16 MB message. The receipts root commits to codes, not messages, and messages stay short."""
    odd_kind = l1_deposit.payload(0, 0, "\U0001fae8" * 1000, [bytes(32)])
    inner = Transaction(CHAIN_ID, L1Deposit.TYPE_ID, ZERO_SENDER, 1, odd_kind, ZERO_SIGNATURE)
    [(_, code, message)] = force(chain, inner.encode())
    [(_, _, message2)] = force(chain, b"\xc1" * 10_000)  # msgpack's "unknown header"
    assert code == Code.FORCED_TX_INVALID
    assert "\U0001fae8" not in message and "c1" not in message2.lower()
    assert len(message) <= 300 and len(message2) <= 300
    a = Receipt(bytes(32), 1, 0, 0, int(code), "one text")
    b = Receipt(bytes(32), 1, 0, 0, int(code), "another text")
    assert receipts_root([a]) == receipts_root([b])
    assert receipts_root([a]) != receipts_root([Receipt(bytes(32), 1, 0, 0, 1, "one text")])


def test_a_forced_transaction_that_fails_in_execution_uses_its_nonce(chain: Chain) -> None:
    """As in a block: else its signed bytes, public on the L1, could be replayed by anyone once
    they would succeed (red team: a forced join that failed joined the client later)."""
    force(chain, put_blob(b"twice"))
    other = signing_key(42)
    raw = put_blob(b"twice", key=other)
    [(status, code, _)] = force(chain, raw)  # already stored
    assert (status, code) == (0, Code.BLOB_ALREADY_STORED)
    assert nonce_of(chain, other) == 1  # the nonce is used; nothing else changed
    [(status, code, message)] = force(chain, raw)  # replayed: refused on its nonce
    assert (status, code) == (0, Code.FORCED_TX_INVALID) and "NONCE_TOO_LOW" in message


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=300))
def test_no_bytes_posted_to_the_inbox_make_the_block_invalid(chain: Chain, raw: bytes) -> None:
    """``force`` builds the block and replays it as a verifier: any failure there is the bug."""
    [(status, _, _)] = force(chain, raw)
    assert status == 0  # random bytes are never a validly signed transaction


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    type_id=st.sampled_from(sorted(t for t, c in REGISTRY.items() if not c.PRIVILEGED)),
    body=st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.binary(max_size=40)
        | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=6),
        max_leaves=12,
    ),
    nonce=st.integers(0, 2),
)
def test_validly_signed_forced_payloads_of_every_type_never_break_a_block(
    chain: Chain, type_id: int, body: object, nonce: int
) -> None:
    """Review: random bytes nearly always fail at their first byte; these are transactions of
    every type, signed, with canonical payloads of random shape. Whatever their fate, the block
    builds and replays identically (``force`` checks both)."""
    raw = make_tx(USER, CHAIN_ID, type_id, nonce, encoding.encode(body)).encode()
    [(status, code, _)] = force(chain, raw)
    assert status in (0, 1) and (status == 1) == (code == 0)


def test_a_large_forced_transaction_that_fails_still_uses_its_nonce(chain: Chain) -> None:
    """A large transaction that would fail is invalid in a block (its bytes would be stored for
    nobody's money), but a forced one paid L1 gas for them and must use its nonce: else its
    public signed bytes could be replayed once they would succeed (a red team's)."""
    from stf.context import Limits
    from stf.txtypes.base import failable_payload_bytes

    key = signing_key(43)
    from test_fl import task_params

    layout = tuple((f"{i:03d}" + "x" * 60, (1,)) for i in range(100))
    payload = encoding.encode(task_params(b"\x01" * 32, b"\x02" * 32, layout=layout))
    assert len(payload) > failable_payload_bytes(Limits())
    raw = make_tx(key, CHAIN_ID, 3, 0, payload).encode()  # a create_task naming no blob
    [(status, code, _)] = force(chain, raw)
    assert status == 0 and code != Code.FORCED_TX_INVALID, code
    assert nonce_of(chain, key) == 1
