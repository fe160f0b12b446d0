"""A large transaction may not fail into a block for free (issue 13: storage nobody paid for).

A failed transaction is included, so its payload stays in the chain's history for good. Before
these rules a fresh, unstaked key put a 4 MiB ``submit_update`` for a task that does not exist in
every transaction it sent (``TASK_NOT_FOUND``, status 0, included): the upload quotas counted
blobs only. Now a payload over ``failable_payload_bytes`` either succeeds or is invalid (never
included, 1015), unless its sender paid for its bytes first: a ``put_blob`` charges its quota, a
reveal is taken only from a sender of its task and charges the same quota. The mempool refuses
at once, and a block that carries such a transaction is invalid.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import signing_key
from rpc_fixtures import CHAIN_ID as NODE_CHAIN_ID
from rpc_fixtures import start_node
from test_fl import CREATE_TASK, FL, SUBMIT_UPDATE, pub, sha, task_params

from stf import encoding, state_keys
from stf.block import Block, tx_root
from stf.context import Limits
from stf.errors import BlockInvalid, Code
from stf.ids import TaskId
from stf.tx import Transaction, make_tx
from stf.txtypes.base import failable_payload_bytes

LIMIT = failable_payload_bytes(Limits())
SALT = b"\x05" * 32
WINDOW = 6


def _create(fl: FL, tensors: int) -> Transaction:
    """A create_task from the outsider naming blobs nobody uploaded (it fails BLOB_NOT_FOUND),
    its payload grown by a layout of ``tensors`` long-named tensors."""
    layout = tuple((f"{i:03d}" + "x" * 60, (1,)) for i in range(tensors))
    return fl.create(task_params(sha(b"no model"), sha(b"no script"), layout=layout), fl.outsider)


def _reveal(fl: FL, nbytes: int, key=None, task: bytes = b"\x99" * 32, epoch: int = 0):  # type: ignore[no-untyped-def]
    """A reveal of ``nbytes`` of update (by default from the outsider, for no task)."""
    return fl.tx(key or fl.outsider, SUBMIT_UPDATE, [task, epoch, b"\x07" * nbytes, SALT])


def test_a_small_failure_is_included_and_a_large_one_is_not() -> None:
    fl = FL(n_clients=2)
    small, large = _create(fl, 60), _create(fl, 100)
    assert len(small.payload) <= LIMIT < len(large.payload)
    result = fl.block(small)
    assert [(r.status, r.code) for r in result.receipts] == [(0, Code.BLOB_NOT_FOUND)]
    result = fl.block(large)
    assert result.block.txs == ()
    [(_, exc)] = result.dropped
    assert exc.code == Code.LARGE_TX_FAILED
    assert "is never included failed" in exc.message and "not uploaded" in exc.message
    assert fl.skip(fl.outsider, 1) == 1  # the nonce it would have used is still free


def test_a_large_reveal_from_outside_its_task_is_never_included() -> None:
    fl = FL(n_clients=2)
    result = fl.block(_reveal(fl, 1 << 20))
    [(_, exc)] = result.dropped
    assert exc.code == Code.LARGE_TX_FAILED and "only from a client that joined it" in exc.message
    small = fl.block(_reveal(fl, 100))  # small: failed, with its reason
    assert [(r.status, r.code) for r in small.receipts] == [(0, Code.TASK_NOT_FOUND)]


def test_a_block_carrying_a_large_failure_is_invalid() -> None:
    fl = FL(n_clients=2)
    for make in (lambda: _create(fl, 100), lambda: _reveal(fl, 1 << 20)):
        large = make()
        empty = fl.chain.build([]).block
        header = replace(empty.header, tx_root=tx_root((large,)))
        forged = Block(header, empty.signature, (large,)).signed(fl.chain.sequencer_key)
        with pytest.raises(BlockInvalid, match="bytes would be stored for nobody's money"):
            fl.chain.verify(forged)
        fl._nonces.clear()


def test_a_joined_clients_large_reveal_that_fails_is_included_and_charged() -> None:
    """An honest reveal can fail in its block (its epoch closed at the window's end, its task
    completed in the same block): dropping it would drop the sender's later transactions
    behind it (a red team's: a REVEAL_MISSING strike in another task). So it is included
    failed, as before, and its bytes count against the sender's quota for the task."""
    fl = FL(n_clients=5, funding_window=WINDOW)
    d = 8000  # int8: a sender's quota is 16,000 bytes, room for a late 15 KB reveal
    model, script = np.zeros(d, dtype="<i4").tobytes(), b"s"
    first = fl.skip(fl.requester, 2)
    params = task_params(
        sha(model), sha(script), layout=(("w", (d,)),), min_clients=5, funder=b"\xaa" * 20
    )
    create = fl.create(params)
    fl.block(fl.deposit("fund", [create.hash, b"\xaa" * 20, 10**18]))
    fl.block(
        fl.put_blob(fl.requester, model, create.hash, b"\xaa" * 20, first, create),
        fl.put_blob(fl.requester, script, create.hash, b"\xaa" * 20, first + 1, create),
    )
    fl.block(create)
    tid = create.hash
    fl.join_all(tid, fl.clients)
    late = _reveal(fl, 3 * LIMIT, fl.clients[0], tid, epoch=7)  # wrong epoch: it fails
    after = fl.tx(fl.clients[0], SUBMIT_UPDATE, [tid, 0, b"\x01", SALT])  # its next nonce
    result = fl.block(late, after)
    assert not result.dropped, result.dropped
    assert [(r.status, r.code) for r in result.receipts] == [
        (0, Code.WRONG_EPOCH),
        (0, Code.WRONG_PHASE),
    ]
    counter = fl.get(state_keys.upload(TaskId(tid), pub(fl.clients[0])))  # type: ignore[arg-type]
    assert counter is not None
    assert encoding.decode(counter) == [0, len(late.payload) + len(after.payload)]


def test_a_large_reveal_that_succeeds_is_included() -> None:
    """The rule costs an honest client nothing: its inline reveal succeeds."""
    d = 4 * LIMIT  # an int8 update well over the limit, revealed inline
    fl = FL(n_clients=5)
    task = fl.new_task(init=np.zeros(d, dtype=np.int32), layout=(("w", (d,)),), epochs=2)
    fl.join_all(task, fl.clients)
    rng = np.random.default_rng(3)
    updates = [(c, rng.integers(-20, 20, d, dtype=np.int8)) for c in fl.clients]
    result = fl.submit_all(task, 0, updates)
    assert all(len(tx.payload) > LIMIT for tx in result.block.txs)
    assert [r.status for r in result.receipts] == [1] * len(updates)


def test_a_large_upload_that_fails_is_still_included() -> None:
    """put_blob charges its sender's quota before it runs, so its bytes were paid for: a
    second upload of a stored blob still fails into the block (the SDK counts on it)."""
    fl = FL(n_clients=2)
    data = b"\x01" * (2 * LIMIT)
    assert [r.status for r in fl.block(fl.put_blob(fl.requester, data)).receipts] == [1]
    again = fl.block(fl.put_blob(fl.requester, data))
    assert [(r.status, r.code) for r in again.receipts] == [(0, Code.BLOB_ALREADY_STORED)]


async def test_the_mempool_refuses_a_large_failure_at_once(tmp_path: Path) -> None:
    key = signing_key(41)

    def create(nonce: int, tensors: int) -> Transaction:
        layout = tuple((f"{i:03d}" + "x" * 60, (1,)) for i in range(tensors))
        params = task_params(sha(b"none"), sha(b"none"), layout=layout)
        return make_tx(key, NODE_CHAIN_ID, CREATE_TASK, nonce, encoding.encode(params))

    def reveal(nonce: int, nbytes: int) -> Transaction:
        value = [b"\x99" * 32, 0, b"\x07" * nbytes, SALT]
        return make_tx(key, NODE_CHAIN_ID, SUBMIT_UPDATE, nonce, encoding.encode(value))

    async with start_node(tmp_path) as node:
        for tx, why in ((create(0, 100), "not uploaded"), (reveal(0, 1 << 16), "joined it")):
            err = (await node.send(tx))["error"]
            assert err["code"] == Code.LARGE_TX_FAILED and why in err["message"], err
        assert len(node.mempool) == 0
        # the same failure, small: admitted, and included failed (its nonce was still free)
        assert "result" in await node.send(create(0, 60))
        sealed = await node.seal()
        assert [r.status for r in sealed.receipts] == [0]
