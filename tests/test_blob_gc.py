"""Blob retention (issue 13: blobs stayed in LevelDB for good): a sweep drops what no state
names, a blob a block carried comes back when read, and the chain goes on as if nothing was
pruned."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from rpc_fixtures import CHAIN_ID, hx, start_node, unhex
from test_fl_rpc import (
    SCRIPT,
    close_epoch_zero,
    finish_task,
    make_scenario,
    open_task,
    params,
    replay_the_global_step,
    sealed_ok,
)

from client_sdk import fl as sdk
from client_sdk import put_blob
from client_sdk.keys import Keypair
from node.blob_gc import SWEEP_EVERY, live_blobs, sweep
from stf.errors import Code


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


async def test_a_sweep_keeps_what_state_names_and_loses_nothing_a_block_carried(
    tmp_path: Path,
) -> None:
    sc = make_scenario()
    other = (sc.init + 1).astype("<i4").tobytes()  # a model uploaded, then unused for long
    async with start_node(tmp_path / "n", genesis_stakes=sc.stakes()) as h:
        storage = h.node.storage
        await sealed_ok(h, [put_blob(sc.outsider, CHAIN_ID, 0, other)])
        await open_task(h, sc)
        e0 = await close_epoch_zero(h, sc)
        await replay_the_global_step(h, sc, e0)  # epoch 1 closed: epoch 0's blobs are history
        head = h.node.sequencer.head.height
        task = await h.result("mps_getTask", hx(sc.tid))
        named = live_blobs(storage)
        for key in ("baseModel", "previousStep"):
            assert unhex(task[key]) in named
        assert {sha(sc.model), sha(SCRIPT)} <= named
        done = sweep(storage, head, head)
        assert done.pruned >= len(e0.ups) and done.kept_live >= 4
        # still named: untouched
        for blob_id in (unhex(task["baseModel"]), unhex(task["previousStep"]), sha(SCRIPT)):
            assert storage.stored_blob(blob_id) is not None
        # epoch 0's inline updates: gone from the store, read back from their blocks
        old_update = sha(e0.ups[0].tobytes())
        assert storage.stored_blob(old_update) is None
        assert unhex(await h.result("mps_getBlob", hx(old_update))) == e0.ups[0].tobytes()
        assert storage.stored_blob(old_update) is not None  # cached until the next sweep
        # epoch 0's next base was computed: no block carries it, and the RPC says it was pruned
        computed = sha(e0.next_base)
        assert storage.stored_blob(computed) is None and storage.pruned_at(computed) == head
        err = await h.error("mps_getBlob", hx(computed))
        assert err["code"] == Code.NOT_FOUND and "pruned" in err["message"]
        resp = await h.client.get(f"/blob/0x{computed.hex()}")
        assert resp.status == 404 and f"at height {head}" in await resp.text()
        resp = await h.client.get(f"/blob/0x{old_update.hex()}")
        assert resp.status == 200 and await resp.read() == e0.ups[0].tobytes()
        # the STF reads an old upload as if it had never been pruned: a task starts from it
        assert storage.stored_blob(sha(other)) is None
        p = params(other, sc.evaluator.public_key)
        create = sdk.create_task(sc.outsider, CHAIN_ID, 1, p)
        await sealed_ok(h, [create])
        rc = await h.result("mps_getTransactionReceipt", hx(create.hash))
        assert (rc["status"], rc["code"]) == (1, 0)
        assert (await h.result("mps_getTask", hx(create.hash)))["baseModel"] == hx(sha(other))
        # and the first task runs to its end on the pruned store
        await finish_task(h, sc, e0)


async def test_the_sequencer_sweeps_on_its_own_and_counts_it(tmp_path: Path) -> None:
    data = np.random.default_rng(1).bytes(100_000)
    async with start_node(tmp_path / "n", blob_retention_blocks=8) as h:
        await h.send_ok(put_blob(Keypair.generate(), CHAIN_ID, 0, data))
        for _ in range(SWEEP_EVERY):
            await h.node.sequencer.produce_block(idle=True)
        storage = h.node.storage
        assert storage.stored_blob(sha(data)) is None
        assert unhex(await h.result("mps_getBlob", hx(sha(data)))) == data
        text = h.node.metrics.render().decode()
        assert "mps_blobs_pruned_total 1.0" in text
        assert "mps_blob_bytes_pruned_total 100000.0" in text


async def test_retention_zero_keeps_every_blob(tmp_path: Path) -> None:
    data = b"kept"
    async with start_node(tmp_path / "n", blob_retention_blocks=0) as h:
        await h.send_ok(put_blob(Keypair.generate(), CHAIN_ID, 0, data))
        for _ in range(SWEEP_EVERY):
            await h.node.sequencer.produce_block(idle=True)
        assert h.node.storage.stored_blob(sha(data)) == data


async def test_a_forced_upload_is_found_inside_its_deposit_and_the_chain_replays(
    tmp_path: Path,
) -> None:
    """Red team: a put_blob forced through the L1 rides inside an l1_deposit; the carrier search
    looked at top-level payloads only, so the upload was pruned for good, a create_task naming it
    failed here (1110) and succeeded on any node that never pruned: a fork."""
    from node.l1.deposits import L1Event
    from node.replay import replay
    from node.storage import Storage
    from stf import state_keys

    user = Keypair.generate()
    model = np.random.default_rng(9).integers(-500, 500, 1200).astype("<i4").tobytes()
    async with start_node(tmp_path / "n", blob_retention_blocks=8) as h:
        seq, storage = h.node.sequencer, h.node.storage
        await sealed_ok(h, [put_blob(user, CHAIN_ID, 0, SCRIPT)])
        forced = put_blob(user, CHAIN_ID, 1, model).encode()
        seq.queue_l1_events([L1Event(5, 0, "forced", [forced])], (5, b"\x05" * 32))
        sealed = await seq.produce_block(idle=True)
        assert [r.status for r in sealed.receipts] == [1]
        assert storage.state_value(state_keys.blob(sha(model))) is not None  # an upload
        while seq.head.height % SWEEP_EVERY:
            await seq.produce_block(idle=True)
        assert storage.stored_blob(sha(model)) is None  # swept from the store...
        assert storage.blob(sha(model)) == model  # ...and read back out of the deposit
        await sealed_ok(h, [sdk.create_task(user, CHAIN_ID, 2, params(model, user.public_key))])
        target = Storage(tmp_path / "replayed")
        try:
            replay(storage, target, seq.chain, h.cfg.genesis())  # raises on any root mismatch
        finally:
            target.close()


async def test_an_upload_no_block_carries_is_never_pruned(tmp_path: Path) -> None:
    """However the carrier search might miss one, an upload (a blob/ leaf) stays stored."""
    import node.blob_gc as gc

    user = Keypair.generate()
    async with start_node(tmp_path / "n", blob_retention_blocks=8) as h:
        seq, storage = h.node.sequencer, h.node.storage
        await sealed_ok(h, [put_blob(user, CHAIN_ID, 0, SCRIPT)])
        real = gc.carried_bytes
        gc.carried_bytes = lambda block, blob_hash: None  # type: ignore[assignment]
        try:
            while seq.head.height % SWEEP_EVERY:
                await seq.produce_block(idle=True)
        finally:
            gc.carried_bytes = real  # type: ignore[assignment]
        assert storage.stored_blob(sha(SCRIPT)) == SCRIPT


async def test_a_sweep_that_fails_stops_neither_the_head_nor_the_chain(
    tmp_path: Path, monkeypatch
) -> None:
    """Red team: the sweep ran after the block's commit and before the head moved, so its
    exception left the sequencer's head one behind the database and the next block was a
    second one at the same height."""
    import node.sequencer as nseq

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(nseq, "sweep", boom)
    user = Keypair.generate()
    async with start_node(tmp_path / "n", blob_retention_blocks=8) as h:
        seq = h.node.sequencer
        while seq.head.height % SWEEP_EVERY != SWEEP_EVERY - 1:
            await seq.produce_block(idle=True)
        await h.send_ok(put_blob(user, CHAIN_ID, 0, b"x"))
        swept = await seq.produce_block(idle=True)  # the sweep raises inside this one
        assert swept is not None and swept.block.height == SWEEP_EVERY
        assert seq.head.hash == h.node.storage.head().hash == swept.block.hash
        nxt = await seq.produce_block(idle=True)
        assert nxt is not None and nxt.block.height == SWEEP_EVERY + 1
