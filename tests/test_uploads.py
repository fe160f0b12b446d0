"""Who may upload a blob and how much (issue 13: free blobs from fresh keys filled the disk).

On a chain that funds its tasks on the L1 every blob is uploaded for a task, by its requester or
a client that may reveal in it, or before the task against a recorded funding; a refusal is
never included (so it costs no block space) and the mempool says so at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rpc_fixtures import CHAIN_ID, start_node
from test_fl import CREATE_TASK, FL, SCRIPT, init_model, pub, sha, task_params

from client_sdk import put_blob
from client_sdk.keys import Keypair
from stf import encoding, state_keys
from stf.context import Limits
from stf.errors import Code, TxInvalid
from stf.fl.uploads import UploadContext, admit_upload, pretask_quota, quota_of
from stf.ids import TaskId
from stf.state import State

WINDOW = 6
ALICE = b"\xaa" * 20


def dropped(result) -> list[int]:  # type: ignore[no-untyped-def]
    return [int(exc.code) for _, exc in result.dropped]


def test_a_funded_chain_takes_no_bare_blob_and_a_free_chain_does() -> None:
    funded, free = FL(n_clients=5, funding_window=WINDOW), FL(n_clients=5)
    result = funded.block(funded.put_blob(funded.outsider, b"free storage"))
    assert dropped(result) == [Code.BLOB_NOT_ALLOWED] and result.block.txs == ()
    assert "funds its tasks on the L1" in str(result.dropped[0][1])
    assert funded.get(state_keys.blob(sha(b"free storage"))) is None
    result = free.block(free.put_blob(free.outsider, b"free storage"))
    assert [r.status for r in result.receipts] == [1]


def test_pretask_uploads_draw_on_a_bindable_funding() -> None:
    fl = FL(n_clients=5, funding_window=WINDOW)
    model = init_model().astype("<i4").tobytes()
    first = fl.skip(fl.requester, 2)
    create = fl.create(task_params(sha(model), sha(SCRIPT), funder=ALICE))
    tid = create.hash
    # no funding yet: refused, and the nonces stay free
    early = fl.block(fl.put_blob(fl.requester, model, tid, ALICE, first, create))
    assert dropped(early) == [Code.BLOB_NOT_ALLOWED]
    assert "none is recorded" in str(early.dropped[0][1])
    fl.block(fl.deposit("fund", [tid, ALICE, 7]))
    ok = fl.block(
        fl.put_blob(fl.requester, model, tid, ALICE, first, create),
        fl.put_blob(fl.requester, SCRIPT, tid, ALICE, first + 1, create),
    )
    assert [r.status for r in ok.receipts] == [1, 1]
    counter = encoding.decode(fl.get(state_keys.upload(TaskId(tid), ALICE)))  # type: ignore[arg-type]
    assert counter == [0, len(model) + len(SCRIPT)]
    assert [r.status for r in fl.block(create).receipts] == [1]
    # once the task exists the funding form is refused; a stranger's task form too
    late = fl.block(fl.put_blob(fl.requester, b"more", tid, ALICE, create=create))
    assert dropped(late) == [Code.BLOB_NOT_ALLOWED] and "exists" in str(late.dropped[0][1])
    stranger = fl.block(fl.put_blob(fl.outsider, b"more", tid))
    assert dropped(stranger) == [Code.BLOB_NOT_ALLOWED]


def test_only_the_requester_uploads_before_its_task_exists() -> None:
    """Red team: the pre-task quota was keyed by the funding alone, so anyone who saw
    ``TaskFunded`` on the L1 could fill it with junk and the requester could never upload its
    model. Now the upload carries the create_task's body, which names its signer."""
    fl = FL(n_clients=5, funding_window=WINDOW)
    model = init_model().astype("<i4").tobytes()
    first = fl.skip(fl.requester, 2)
    create = fl.create(task_params(sha(model), sha(SCRIPT), funder=ALICE))
    tid = create.hash
    fl.block(fl.deposit("fund", [tid, ALICE, 7]))
    # a watcher with the funded id and a body of its own, or a copy of the requester's body
    own = fl.tx(fl.outsider, CREATE_TASK, task_params(sha(b"junk"), sha(SCRIPT)), nonce=99)
    forged = fl.block(fl.put_blob(fl.outsider, b"junk" * 10, tid, ALICE, create=own))
    assert dropped(forged) == [Code.BLOB_NOT_ALLOWED]
    assert "does not hash to" in str(forged.dropped[0][1])
    copied = fl.block(fl.put_blob(fl.outsider, b"junk" * 10, tid, ALICE, create=create))
    assert dropped(copied) == [Code.BLOB_NOT_ALLOWED]
    assert "only the requester" in str(copied.dropped[0][1])
    assert fl.get(state_keys.upload(TaskId(tid), ALICE)) is None  # nothing was charged
    ok = fl.block(
        fl.put_blob(fl.requester, model, tid, ALICE, first, create),
        fl.put_blob(fl.requester, SCRIPT, tid, ALICE, first + 1, create),
    )
    assert [r.status for r in ok.receipts] == [1, 1]
    assert [r.status for r in fl.block(create).receipts] == [1]


def test_a_lapsed_funding_takes_no_upload() -> None:
    fl = FL(n_clients=5, funding_window=WINDOW)
    create = fl.tx(
        fl.outsider, CREATE_TASK, task_params(sha(b"m"), sha(SCRIPT), funder=ALICE), nonce=99
    )
    tid = create.hash  # a task never created
    fl.block(fl.deposit("fund", [tid, ALICE, 7]))
    fl.empty(WINDOW)
    result = fl.block(fl.put_blob(fl.outsider, b"squat", tid, ALICE, create=create))
    assert dropped(result) == [Code.BLOB_NOT_ALLOWED]
    assert "can no longer be bound" in str(result.dropped[0][1])


def test_task_uploads_by_role_within_two_updates_per_epoch() -> None:
    fl = FL(n_clients=6)
    tid = fl.new_task(min_clients=5, max_clients=6)
    fl.join_all(tid, fl.clients[:5])
    nbytes = fl.task(tid).params.d  # int8
    quota = quota_of(nbytes)
    rng = np.random.default_rng(1)
    c = fl.clients[0]
    ok = fl.block(
        fl.put_blob(c, rng.bytes(nbytes), tid),
        fl.put_blob(fl.requester, rng.bytes(nbytes), tid),
    )
    assert [r.status for r in ok.receipts] == [1, 1]
    # a client that never joined, and the outsider: refused
    result = fl.block(fl.put_blob(fl.clients[5], b"x", tid), fl.put_blob(fl.outsider, b"y", tid))
    assert dropped(result) == [Code.BLOB_NOT_ALLOWED] * 2
    # the quota: what is left this epoch goes in, one byte more does not
    over = fl.block(fl.put_blob(c, rng.bytes(quota - nbytes + 1), tid))
    assert dropped(over) == [Code.BLOB_QUOTA_EXCEEDED]
    assert f"allows {quota} bytes" in str(over.dropped[0][1])
    rest = fl.block(fl.put_blob(c, rng.bytes(quota - nbytes), tid))
    assert [r.status for r in rest.receipts] == [1]
    # a blob already stored still took block space: it fails as before, and counts
    twice = [fl.put_blob(fl.clients[1], b"dup", tid) for _ in range(2)]
    dup = fl.block(*twice)
    assert [(r.status, r.code) for r in dup.receipts] == [(1, 0), (0, Code.BLOB_ALREADY_STORED)]
    key = state_keys.upload(TaskId(tid), pub(fl.clients[1]))  # type: ignore[arg-type]
    assert encoding.decode(fl.get(key)) == [0, 6]  # type: ignore[arg-type]


def test_the_client_quota_starts_again_each_epoch() -> None:
    fl = FL(n_clients=5)
    tid = fl.new_task(min_clients=5, max_clients=5)
    fl.join_all(tid, fl.clients)
    d = fl.task(tid).params.d
    c = fl.clients[0]
    rng = np.random.default_rng(2)
    assert fl.block(fl.put_blob(c, rng.bytes(quota_of(d)), tid)).receipts[0].status == 1
    assert dropped(fl.block(fl.put_blob(c, rng.bytes(1), tid))) == [Code.BLOB_QUOTA_EXCEEDED]
    h = np.random.default_rng(3)
    fl.submit_all(tid, 0, [(k, h.integers(-50, 50, d).astype(np.int8)) for k in fl.clients])
    assert fl.task(tid).epoch == 1
    assert fl.block(fl.put_blob(c, rng.bytes(2 * d), tid)).receipts[0].status == 1


def test_a_client_that_may_not_reveal_may_not_upload() -> None:
    fl = FL(n_clients=6, staked=[0, 1, 2, 3, 4])  # client 5 joins, never staked
    tid = fl.new_task(min_clients=5, max_clients=6)
    fl.join_all(tid, fl.clients[:5])
    result = fl.block(fl.join(fl.clients[5], tid))
    assert result.receipts[0].status == 0  # joining needs a stake
    unstaked = fl.block(fl.put_blob(fl.clients[5], b"x", tid))
    assert dropped(unstaked) == [Code.BLOB_NOT_ALLOWED]


def test_the_pretask_quota_is_the_largest_model_and_two_blobs() -> None:
    """Counted without uploading 400 MB: the rule on a bare state."""
    fl = FL(n_clients=5, funding_window=WINDOW)
    create = fl.tx(
        fl.requester, CREATE_TASK, task_params(sha(b"m"), sha(SCRIPT), funder=ALICE), nonce=99
    )
    tid = TaskId(create.hash)
    fl.block(fl.deposit("fund", [tid, ALICE, 7]))
    limits = Limits(funding_window_blocks=WINDOW)
    state = State(fl.chain.store, fl.root)
    ctx = UploadContext(tid, ALICE, create.body)  # type: ignore[arg-type]
    quota = pretask_quota(limits)
    assert quota == 4 * 10**8 + 2 * limits.max_blob_size
    allowance = admit_upload(state, pub(fl.requester), quota, ctx, fl.height + 1, limits)
    assert allowance is not None and allowance.used == quota
    allowance.record(state)
    with pytest.raises(TxInvalid) as err:
        admit_upload(state, pub(fl.requester), 1, ctx, fl.height + 1, limits)
    assert err.value.code == Code.BLOB_QUOTA_EXCEEDED


def test_create_task_names_uploaded_blobs_only() -> None:
    """A model the STF computed (another task's base) is never named by a transaction, so a node
    may prune it once its task moved on (node.blob_gc): re-upload it to start from it."""
    fl = FL(n_clients=5)
    tid = fl.new_task(min_clients=5, max_clients=5)
    fl.join_all(tid, fl.clients)
    d = fl.task(tid).params.d
    h = np.random.default_rng(4)
    fl.submit_all(tid, 0, [(k, h.integers(-50, 50, d).astype(np.int8)) for k in fl.clients])
    computed = fl.task(tid).base
    assert fl.blob(computed) is not None and fl.get(state_keys.blob(computed)) is None
    create = fl.create(task_params(computed, sha(SCRIPT)))
    result = fl.block(create)
    assert (result.receipts[0].status, result.receipts[0].code) == (0, Code.BLOB_NOT_FOUND)
    assert "was not uploaded" in result.receipts[0].message


async def test_the_mempool_refuses_a_bare_blob_on_a_funded_chain(tmp_path: Path) -> None:
    async with start_node(tmp_path / "n", funding_window_blocks=WINDOW) as h:
        raw = put_blob(Keypair.generate(), CHAIN_ID, 0, b"free storage").encode()
        err = await h.error("mps_sendTransaction", "0x" + raw.hex())
        assert err["code"] == Code.BLOB_NOT_ALLOWED
        assert "uploaded for a task" in err["message"]


async def test_the_pool_counts_pending_uploads_against_the_quota(tmp_path: Path) -> None:
    """Red team: the pool checked each upload against the head state alone, so a second upload
    that fitted on its own but not after the first was acknowledged and then dropped by its
    block (with the sender's later nonces). Pending charges now count, and are recounted on
    every new head."""
    from test_fl_rpc import D, make_scenario, open_task

    sc = make_scenario()
    async with start_node(tmp_path / "n", genesis_stakes=sc.stakes()) as h:
        await open_task(h, sc)
        c = sc.clients[0]
        quota = quota_of(D)  # int8 updates
        rng = np.random.default_rng(8)
        first = put_blob(c, CHAIN_ID, 1, rng.bytes(D), sc.tid)
        second = put_blob(c, CHAIN_ID, 2, rng.bytes(quota - D), sc.tid)
        await h.send_ok(first)
        await h.send_ok(second)  # exactly the quota with the first, still pending
        over = put_blob(c, CHAIN_ID, 3, b"z", sc.tid)
        err = (await h.send(over))["error"]
        assert err["code"] == Code.BLOB_QUOTA_EXCEEDED and f"allows {quota} bytes" in err["message"]
        sealed = await h.seal()
        assert [tx.hash for tx in sealed.block.txs] == [first.hash, second.hash]
        assert all(r.status == 1 for r in sealed.receipts)
        err = (await h.send(over))["error"]  # sealed now: the head state says the same
        assert err["code"] == Code.BLOB_QUOTA_EXCEEDED
        # another sender's quota is its own, pending or not
        await h.send_ok(put_blob(sc.clients[1], CHAIN_ID, 1, rng.bytes(quota), sc.tid))


def test_a_pretask_upload_draws_on_the_funding_its_create_task_names() -> None:
    """Red team: uploaded against another funding of the id (BOB's), the model escaped the
    bill of the funding the task binds (ALICE's), and BOB's funding stayed reclaimable."""
    bob = b"\xbb" * 20
    fl = FL(n_clients=5, funding_window=WINDOW)
    first = fl.skip(fl.requester, 1)
    create = fl.create(task_params(sha(b"m"), sha(SCRIPT), funder=ALICE))
    fl.block(fl.deposit("fund", [create.hash, ALICE, 7]), fl.deposit("fund", [create.hash, bob, 7]))
    other = fl.block(fl.put_blob(fl.requester, SCRIPT, create.hash, bob, first, create))
    assert dropped(other) == [Code.BLOB_NOT_ALLOWED]
    assert "the funding its create_task names" in str(other.dropped[0][1])
    own = fl.block(fl.put_blob(fl.requester, SCRIPT, create.hash, ALICE, first, create))
    assert [r.status for r in own.receipts] == [1]


async def test_an_evicted_uploads_charge_goes_with_it(tmp_path: Path) -> None:
    """Red team: a queued upload evicted from a full pool kept its quota charge until the next
    block, so its sender's next upload was refused for bytes that existed nowhere."""
    import dataclasses

    from rpc_fixtures import CHAIN_ID as NODE_CHAIN_ID
    from rpc_fixtures import record_tx
    from test_fl_rpc import D, make_scenario, open_task

    sc = make_scenario()
    async with start_node(tmp_path / "n", genesis_stakes=sc.stakes()) as h:
        await open_task(h, sc)
        h.mempool.limits = dataclasses.replace(h.mempool.limits, max_txs=4)
        c, quota = sc.clients[0], quota_of(D)
        queued = put_blob(c, NODE_CHAIN_ID, 3, b"\x01" * quota, sc.tid)  # nonces 1, 2 unsent
        await h.send_ok(queued)
        for k in [Keypair.generate() for _ in range(4)]:
            await h.send_ok(record_tx(k, 0))  # the fourth evicts the queued upload
        assert queued.hash not in h.mempool
        h.mempool.limits = dataclasses.replace(h.mempool.limits, max_txs=50)
        answer = await h.send(put_blob(c, NODE_CHAIN_ID, 1, b"\x02" * D, sc.tid))
        assert "result" in answer, answer


def test_a_tiny_update_can_still_be_revealed_inline() -> None:
    """A reveal is charged to its sender's quota like an upload; the quota's envelope bytes
    let an update of a few bytes (whose reveal's task id, salt and headers outweigh it)
    through on a chain that funds its tasks."""
    fl = FL(n_clients=5, funding_window=WINDOW)
    d = 8
    model, script = np.zeros(d, dtype="<i4").tobytes(), b"s"
    first = fl.skip(fl.requester, 2)
    create = fl.create(task_params(sha(model), sha(script), layout=(("w", (d,)),), funder=ALICE))
    fl.block(fl.deposit("fund", [create.hash, ALICE, 7]))
    fl.block(
        fl.put_blob(fl.requester, model, create.hash, ALICE, first, create),
        fl.put_blob(fl.requester, script, create.hash, ALICE, first + 1, create),
    )
    fl.block(create)
    fl.join_all(create.hash, fl.clients)
    rng = np.random.default_rng(4)
    result = fl.submit_all(
        create.hash, 0, [(k, rng.integers(-9, 9, d, dtype=np.int8)) for k in fl.clients]
    )
    assert [r.status for r in result.receipts] == [1] * 5
    assert all(len(tx.payload) > quota_of(d) - 1024 for tx in result.block.txs)
