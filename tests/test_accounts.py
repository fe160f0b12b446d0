"""Only backed keys write to a chain that prices its state (issue 13: free state).

A fresh key's 4 KiB ``put_record`` was stored for nothing, about 4 MB of state per
1,000-transaction block, and a failed small transaction still left its sender's nonce entry.
On a chain that prices its data, a sender must be staked or open its account with the
``create_task`` (or pre-task upload) of a task it funded, and holds at most 64 records.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import signing_key
from nacl.signing import SigningKey
from rpc_fixtures import CHAIN_ID as NODE_CHAIN_ID
from rpc_fixtures import start_node
from test_data_budget import ALICE, FEE, WINDOW, funded_task
from test_fl import CREATE_TASK, FL, init_model, pub, sha, task_params
from test_fl import SCRIPT as FL_SCRIPT
from test_forced_tx import force

from stf import encoding, state_keys
from stf.accounts import MAX_RECORDS_PER_SENDER
from stf.block import Block, tx_root
from stf.errors import BlockInvalid, Code
from stf.tx import Transaction, make_tx

PUT_RECORD = 1


def priced() -> FL:
    return FL(n_clients=5, funding_window=WINDOW, data_fee=FEE)


def put(fl: FL, key: SigningKey, name: str, value: bytes) -> Transaction:
    return fl.tx(key, PUT_RECORD, [name, value])


def test_an_unbacked_key_writes_nothing_on_a_priced_chain() -> None:
    fl = priced()
    result = fl.block(put(fl, fl.outsider, "x", b"4" * 4096))
    assert result.block.txs == ()
    [(_, exc)] = result.dropped
    assert exc.code == Code.UNBACKED_SENDER
    assert fl.get(state_keys.nonce(pub(fl.outsider))) is None  # its nonce stays free
    assert fl.get(state_keys.record(pub(fl.outsider), "x")) is None


def test_a_block_that_carries_an_unbacked_write_is_invalid() -> None:
    fl = priced()
    tx = put(fl, fl.outsider, "x", b"v")
    empty = fl.chain.build([]).block
    header = replace(empty.header, tx_root=tx_root((tx,)))
    forged = Block(header, empty.signature, (tx,)).signed(fl.chain.sequencer_key)
    with pytest.raises(BlockInvalid, match="nothing on the L1 backs this key"):
        fl.chain.verify(forged)


def test_a_staked_client_writes_and_an_unpriced_chain_stays_open() -> None:
    fl = priced()
    assert [r.status for r in fl.block(put(fl, fl.clients[0], "x", b"v")).receipts] == [1]
    assert fl.get(state_keys.record(pub(fl.clients[0]), "x")) == b"v"
    free = FL(n_clients=5)  # no data fee: every key may write, as before
    assert [r.status for r in free.block(put(free, free.outsider, "x", b"v")).receipts] == [1]
    assert free.get(state_keys.record_count(pub(free.outsider))) is None  # nothing counted


def test_a_requester_opens_its_account_with_its_funded_task() -> None:
    fl = priced()
    tid = funded_task(fl, 10**15)  # its first transactions: pre-task uploads, then the create
    assert fl.get(state_keys.task(tid)) is not None
    assert [r.status for r in fl.block(put(fl, fl.requester, "notes", b"v")).receipts] == [1]


def test_an_unbacked_key_s_first_transaction_must_succeed() -> None:
    fl = priced()
    model = init_model().tobytes()
    params = task_params(sha(model), sha(FL_SCRIPT), funder=ALICE)
    create = fl.tx(fl.requester, CREATE_TASK, params)  # no funding, no blobs: it would fail
    result = fl.block(create)
    assert result.block.txs == ()
    assert result.dropped[0][1].code == Code.UNBACKED_SENDER
    assert "would fail" in result.dropped[0][1].message
    assert fl.get(state_keys.nonce(pub(fl.requester))) is None
    # a failed create_task of a backed key is still included failed, as before
    result = fl.block(fl.tx(fl.clients[0], CREATE_TASK, params))
    assert [r.status for r in result.receipts] == [0]


def test_a_forced_transaction_of_an_unbacked_key_is_applied() -> None:
    """Its bytes paid L1 gas, and a forced transaction must use its nonce (stf.forced)."""
    fl = priced()
    tx = put(fl, fl.outsider, "x", b"v")
    assert [s for s, _, _ in force(fl.chain, tx.encode())] == [1]
    fl._nonces.clear()
    assert fl.get(state_keys.record(pub(fl.outsider), "x")) == b"v"


def test_a_sender_holds_at_most_its_quota_of_records() -> None:
    fl = priced()
    me = fl.clients[0]
    for start in range(0, MAX_RECORDS_PER_SENDER, 32):
        txs = [put(fl, me, f"r{i}", b"v") for i in range(start, start + 32)]
        assert {r.status for r in fl.block(*txs).receipts} == {1}
    count = fl.get(state_keys.record_count(pub(me)))
    assert count is not None and encoding.decode(count) == MAX_RECORDS_PER_SENDER
    [over] = fl.block(put(fl, me, "one-more", b"v")).receipts
    assert (over.status, over.code) == (0, Code.RECORD_QUOTA_EXCEEDED)
    assert fl.get(state_keys.record(pub(me), "one-more")) is None
    # overwriting costs nothing, deleting frees a slot, deleting a missing name changes nothing
    receipts = fl.block(
        put(fl, me, "r0", b"new"), put(fl, me, "r1", b""), put(fl, me, "missing", b"")
    ).receipts
    assert [r.status for r in receipts] == [1, 1, 1]
    assert encoding.decode(fl.get(state_keys.record_count(pub(me)))) == (MAX_RECORDS_PER_SENDER - 1)
    assert [r.status for r in fl.block(put(fl, me, "one-more", b"v")).receipts] == [1]
    for i in range(2, MAX_RECORDS_PER_SENDER):
        fl.block(put(fl, me, f"r{i}", b""))
    fl.block(put(fl, me, "r0", b""), put(fl, me, "one-more", b""))
    assert fl.get(state_keys.record_count(pub(me))) is None  # no entry left behind at zero
    fl.replay_from_genesis()  # every block replays with state_transition alone


async def test_the_node_refuses_an_unbacked_key_at_once(tmp_path: Path) -> None:
    key = signing_key(43)

    def tx(tx_type: int, nonce: int, value: Any) -> Transaction:
        return make_tx(key, NODE_CHAIN_ID, tx_type, nonce, encoding.encode(value))

    params = task_params(sha(b"none"), sha(b"none"), funder=ALICE)
    async with start_node(tmp_path, funding_window_blocks=WINDOW, data_fee_per_mib=FEE) as node:
        for first, why in (
            (tx(PUT_RECORD, 0, ["x", b"v"]), "nothing on the L1 backs this key"),
            (tx(CREATE_TASK, 0, params), "would fail"),  # an opening that fails
        ):
            err = (await node.send(first))["error"]
            assert err["code"] == Code.UNBACKED_SENDER and why in err["message"], err
        assert len(node.mempool) == 0
        # a later nonce waits behind its gap (its first transaction may yet open the account)
        assert "result" in await node.send(tx(PUT_RECORD, 1, ["x", b"v"]))
        assert len(node.mempool) == 1


def test_a_pretask_upload_of_a_stored_blob_still_opens_the_account() -> None:
    """Its consume proved the funding: a script another task already stored must not strand a
    fresh requester's signed create_task behind a refused first nonce."""
    fl = priced()
    funded_task(fl, 10**15)  # stores the model and FL_SCRIPT
    newcomer = signing_key(44)
    model = (init_model() + 1).tobytes()
    first = fl.skip(newcomer, 2)
    create = fl.create(
        task_params(sha(model), sha(FL_SCRIPT), min_clients=5, max_clients=5, funder=ALICE),
        newcomer,
    )
    fl.block(fl.deposit("fund", [create.hash, ALICE, 10**15]))
    receipts = fl.block(
        fl.put_blob(newcomer, FL_SCRIPT, create.hash, ALICE, first, create),
        fl.put_blob(newcomer, model, create.hash, ALICE, first + 1, create),
    ).receipts
    assert [(r.status, r.code) for r in receipts] == [(0, Code.BLOB_ALREADY_STORED), (1, 0)]
    assert [r.status for r in fl.block(create).receipts] == [1]
