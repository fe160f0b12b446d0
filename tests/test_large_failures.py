"""A large transaction may not fail into a block (issue 13: storage nobody paid for).

A failed transaction is included, so its payload stays in the chain's history for good. Before
this rule a fresh, unstaked key put a 4 MiB ``submit_update`` for a task that does not exist in
every transaction it sent (``TASK_NOT_FOUND``, status 0, included): the upload quotas counted
blobs only. Now a payload over ``failable_payload_bytes`` either succeeds or is invalid (never
included, 1015), the mempool refuses it at once, and a block that carries one is invalid.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import signing_key
from rpc_fixtures import CHAIN_ID as NODE_CHAIN_ID
from rpc_fixtures import start_node
from test_fl import FL, SUBMIT_UPDATE

from stf import encoding
from stf.block import Block, tx_root
from stf.context import Limits
from stf.errors import BlockInvalid, Code
from stf.tx import make_tx
from stf.txtypes.base import failable_payload_bytes

LIMIT = failable_payload_bytes(Limits())
SALT = b"\x05" * 32


def _reveal(fl: FL, nbytes: int) -> object:
    """A reveal, from the outsider (never staked, never joined), of ``nbytes`` of update for a
    task that does not exist: it fails in execution whatever its size."""
    body = b"\x07" * nbytes
    return fl.tx(fl.outsider, SUBMIT_UPDATE, [b"\x99" * 32, 0, body, SALT])


def _payload_of_size(fl: FL, size: int) -> object:
    """A failing reveal whose payload is exactly ``size`` bytes (msgpack headers included)."""
    probe = _reveal(fl, size)
    over = len(probe.payload) - size  # type: ignore[attr-defined]
    fl._nonces.clear()
    return _reveal(fl, size - over)


def test_a_small_failure_is_included_and_a_large_one_is_not() -> None:
    fl = FL(n_clients=2)
    small = _payload_of_size(fl, LIMIT)
    assert len(small.payload) == LIMIT  # type: ignore[attr-defined]
    result = fl.block(small)  # type: ignore[arg-type]
    assert [r.status for r in result.receipts] == [0]
    assert result.receipts[0].code == Code.TASK_NOT_FOUND

    large = _payload_of_size(fl, LIMIT + 1)
    result = fl.block(large)  # type: ignore[arg-type]
    assert result.block.txs == ()
    [(_, exc)] = result.dropped
    assert exc.code == Code.LARGE_TX_FAILED
    assert "is never included failed" in exc.message and "does not exist" in exc.message
    # the nonce it would have used is still free
    assert fl.skip(fl.outsider, 1) == 1


def test_a_block_carrying_a_large_failure_is_invalid() -> None:
    fl = FL(n_clients=2)
    large = _reveal(fl, 1 << 20)
    empty = fl.chain.build([]).block
    header = replace(empty.header, tx_root=tx_root((large,)))  # type: ignore[arg-type]
    forged = Block(header, empty.signature, (large,)).signed(fl.chain.sequencer_key)  # type: ignore[arg-type]
    with pytest.raises(BlockInvalid, match="is never included failed"):
        fl.chain.verify(forged)


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

    def reveal(nonce: int, nbytes: int) -> object:
        value = [b"\x99" * 32, 0, b"\x07" * nbytes, SALT]
        return make_tx(key, NODE_CHAIN_ID, SUBMIT_UPDATE, nonce, encoding.encode(value))

    async with start_node(tmp_path) as node:
        err = (await node.send(reveal(0, 1 << 16)))["error"]  # type: ignore[arg-type]
        assert err["code"] == Code.LARGE_TX_FAILED
        assert "does not exist" in err["message"]
        assert len(node.mempool) == 0
        # the same failure, small: admitted, and included failed (its nonce was still free)
        assert "result" in await node.send(reveal(0, 100))  # type: ignore[arg-type]
        sealed = await node.seal()
        assert [r.status for r in sealed.receipts] == [0]
