"""A task's bytes cost its funder (issue 13: the per-epoch upload quota reset every epoch).

A requester sets how short its epochs are and may join its own task, so per-epoch quotas alone
let one BASE_FEE and one stake put about ``4 d`` value sizes into the chain every epoch, for as
many epochs as it declared. On a chain whose spec sets ``data_fee_per_mib``, every byte a task
puts in a block is billed to its funding at settlement (the settle leaf's ``data_bytes``), and
the STF keeps the bill within what the deposit pays for: a commitment reserves its sender's
whole upload quota first, so a committed sender's reveal is never refused for money.
"""

from __future__ import annotations

import pytest
from test_fl import FL, PUT_BLOB, SUBMIT_UPDATE, Honest, init_model, pub, sha, task_params
from test_fl import SCRIPT as FL_SCRIPT

from rpc.fl_views import data_budget_view
from stf import encoding, state_keys
from stf.errors import Code
from stf.fl import settlement
from stf.fl.data_budget import MIB, DataBudget, allowance, data_fee, load_budget
from stf.fl.task import FINISHED
from stf.fl.uploads import quota_of
from stf.ids import TaskId
from stf.records import ChainSpec
from stf.state import State

WINDOW = 6
ALICE = b"\xaa" * 20
FEE = 10**12  # wei per MiB
D = 2000  # int8: one update is 2,000 bytes, a sender's quota 4,000


def funded_task(fl: FL, deposit: int, n: int = 5, epochs: int = 2, least: int = 5) -> bytes:
    """Fund, upload before the task (billed once bound), create; all clients join."""
    model = init_model().tobytes()
    first = fl.skip(fl.requester, 2)
    create = fl.create(
        task_params(
            sha(model),
            sha(FL_SCRIPT),
            min_clients=least,
            max_clients=n,
            epochs=epochs,
            window=3,
            funder=ALICE,
        )
    )
    fl.block(fl.deposit("fund", [create.hash, ALICE, deposit]))
    fl.block(
        fl.put_blob(fl.requester, model, create.hash, ALICE, first, create),
        fl.put_blob(fl.requester, FL_SCRIPT, create.hash, ALICE, first + 1, create),
    )
    assert [r.status for r in fl.block(create).receipts] == [1]
    fl.join_all(create.hash, fl.clients[:n])
    return create.hash


def deposit_for(nbytes: int) -> int:
    """The least deposit whose allowance covers ``nbytes``."""
    return -(-nbytes * FEE // MIB)


def sent(fl: FL, tid: bytes) -> int:
    """Every byte the chain's blocks carried for the task since it was created: its reveals'
    payloads and its uploads' data (what the bill counts)."""
    total = 0
    for block in fl.chain.blocks:
        for tx in block.txs:
            value = encoding.decode(tx.payload) if tx.tx_type in (PUT_BLOB, SUBMIT_UPDATE) else None
            if tx.tx_type == SUBMIT_UPDATE and value[0] == tid:
                total += len(tx.payload)
            elif tx.tx_type == PUT_BLOB and len(value) == 2 and value[1] == tid:
                total += len(value[0])
    return total


def budget(fl: FL, tid: bytes) -> DataBudget:
    b = load_budget(State(fl.chain.store, fl.root), TaskId(tid))
    assert b is not None
    return b


PRETASK = 4 * D + len(FL_SCRIPT)  # the int32 initial model and the script


def test_the_spec_appends_its_fee_and_an_unpriced_chain_keeps_its_genesis() -> None:
    unpriced = FL(n_clients=5, funding_window=WINDOW)
    priced = FL(n_clients=5, funding_window=WINDOW, data_fee=FEE)
    assert unpriced.chain.blocks[0].header.state_root != priced.chain.blocks[0].header.state_root
    raw_priced = priced.get(state_keys.CHAIN_SPEC)
    raw_unpriced = unpriced.get(state_keys.CHAIN_SPEC)
    assert raw_priced is not None and raw_unpriced is not None
    assert ChainSpec.decode(raw_priced).data_fee_per_mib == FEE
    assert len(encoding.decode(raw_unpriced)) == 7  # the seven fields it always had
    assert ChainSpec.decode(raw_unpriced).data_fee_per_mib == 0
    with pytest.raises(encoding.EncodingError, match="positive fee"):  # one encoding per spec
        ChainSpec.decode(encoding.encode([*encoding.decode(raw_unpriced), 0]))


def test_every_byte_is_billed_and_settled() -> None:
    fl = FL(n_clients=5, funding_window=WINDOW, data_fee=FEE)
    tid = funded_task(fl, deposit=10**18)
    assert budget(fl, tid) == DataBudget(PRETASK, 0, 0, 0)
    h = Honest(seed=4)
    # epoch 0 inline; epoch 1 one client chunked (its chunks are billed as uploaded)
    fl.commit_all(tid, 0, [(k, h.one()) for k in fl.clients])
    quota = quota_of(D)
    assert budget(fl, tid) == DataBudget(PRETASK, 0, 5 * quota, 0)
    fl.run_out(tid, 0)
    assert budget(fl, tid).at(1).billed == PRETASK + sent(fl, tid)
    assert sent(fl, tid) > 5 * D  # each inline reveal is billed its whole payload
    u = h.one().tobytes()
    chunks = [u[:1000], u[1000:]]
    pairs = [(k, h.one()) for k in fl.clients[1:]]
    fl.commit_all(tid, 1, [(fl.clients[0], ([sha(c) for c in chunks], sha(u))), *pairs])
    assert fl.task(tid).revealing
    up = fl.block(*(fl.put_blob(fl.clients[0], c, tid) for c in chunks))
    assert [r.status for r in up.receipts] == [1, 1]
    fl.run_out(tid, 1)
    assert fl.task(tid).status == FINISHED
    leaf = settlement.decode_settlement(fl.get(state_keys.settlement(TaskId(tid))))  # type: ignore[arg-type]
    # the chunked reveal's payload (its chunk ids) is billed too, beside its chunks
    assert leaf.data_bytes == PRETASK + sent(fl, tid)
    assert data_fee(leaf.data_bytes, FEE) == -(-leaf.data_bytes * FEE // MIB)
    assert fl.replay_from_genesis().data == fl.chain.store.data


def test_a_commitment_the_deposit_cannot_pay_for_fails_and_costs_nothing() -> None:
    quota = quota_of(D)
    fl = FL(n_clients=6, funding_window=WINDOW, data_fee=FEE)
    # room for the pre-task bytes and five commitments' reservations, not six
    deposit = deposit_for(PRETASK + 5 * quota + quota // 2)
    tid = funded_task(fl, deposit, n=6)
    assert allowance(deposit, FEE) >= PRETASK + 5 * quota
    h = Honest(seed=5)
    commits = [fl.submit(k, tid, 0, h.one()) for k in fl.clients]
    result = fl.block(*commits)
    assert [(r.status, r.code) for r in result.receipts] == [(1, 0)] * 5 + [
        (0, Code.DATA_BUDGET_EXHAUSTED)
    ]
    assert "nothing was committed" in result.receipts[5].message
    assert pub(fl.clients[5]) not in fl.task(tid).submitted  # so no REVEAL_MISSING strike
    # the five committed clients reveal: never refused, whatever the budget
    fl.run_out(tid, 0)
    summary = fl.summary(tid, 0)
    assert summary is not None and summary.n_clients == 5
    assert budget(fl, tid).at(1).billed == PRETASK + sent(fl, tid)
    verdict = fl.verdict(tid, fl.clients[5])
    assert verdict is None or verdict.strikes == 0
    # what the L1 can take stays within the deposit, even had every reservation been sent
    assert data_fee(PRETASK + 5 * quota, FEE) <= deposit


def test_only_a_committed_sender_uploads_and_within_its_quota() -> None:
    fl = FL(n_clients=5, funding_window=WINDOW, data_fee=FEE)
    tid = funded_task(fl, deposit=10**18)
    early = fl.block(fl.put_blob(fl.clients[0], b"\x01" * 100, tid))
    [(_, exc)] = early.dropped
    assert exc.code == Code.BLOB_NOT_ALLOWED and "after commit_update" in exc.message
    ref = fl.block(fl.put_blob(fl.requester, b"\x02" * 100, tid))
    [(_, exc)] = ref.dropped
    assert "after commit_reference" in exc.message
    h = Honest(seed=6)
    fl.commit_all(tid, 0, [(fl.clients[0], h.one())])
    ok = fl.block(fl.put_blob(fl.clients[0], b"\x03" * (quota_of(D)), tid))
    assert [r.status for r in ok.receipts] == [1]
    over = fl.block(fl.put_blob(fl.clients[0], b"\x04", tid))
    [(_, exc)] = over.dropped
    assert exc.code == Code.BLOB_QUOTA_EXCEEDED
    assert budget(fl, tid).sent == quota_of(D)


def test_pretask_uploads_stay_within_the_deposit() -> None:
    fl = FL(n_clients=5, funding_window=WINDOW, data_fee=FEE)
    model = init_model().tobytes()
    first = fl.skip(fl.requester, 2)
    create = fl.create(task_params(sha(model), sha(FL_SCRIPT), funder=ALICE))
    fl.block(fl.deposit("fund", [create.hash, ALICE, deposit_for(len(model))]))
    result = fl.block(
        fl.put_blob(fl.requester, model, create.hash, ALICE, first, create),
        fl.put_blob(fl.requester, FL_SCRIPT, create.hash, ALICE, first + 1, create),
    )
    assert [r.status for r in result.receipts] == [1]
    [(_, exc)] = result.dropped
    assert exc.code == Code.BLOB_QUOTA_EXCEEDED


def test_an_unpriced_funded_chain_writes_no_budget_and_bills_nothing() -> None:
    fl = FL(n_clients=5, funding_window=WINDOW)
    tid = funded_task(fl, deposit=10**18, epochs=1)
    assert fl.get(state_keys.data_budget(TaskId(tid))) is None
    h = Honest(seed=7)
    fl.submit_all(tid, 0, [(k, h.one()) for k in fl.clients])
    fl.run_out(tid, 0)
    leaf = settlement.decode_settlement(fl.get(state_keys.settlement(TaskId(tid))))  # type: ignore[arg-type]
    assert (leaf.data_bytes, leaf.epochs_trained) == (0, 1)


def test_the_task_view_shows_the_bill_and_the_room_left() -> None:
    """``mps_getTask.dataBudget``: what a joining client and the funder can read."""
    fl = FL(n_clients=5, funding_window=WINDOW, data_fee=FEE)
    tid = funded_task(fl, deposit=10**15)
    h = Honest(seed=8)
    fl.commit_all(tid, 0, [(fl.clients[0], h.one())])
    view = data_budget_view(fl.get, TaskId(tid), fl.task(tid))
    assert view == {
        "bytes": PRETASK,
        "reserved": quota_of(D),
        "allowance": allowance(10**15, FEE),
        "feePerMib": str(FEE),
        "feeWei": str(data_fee(PRETASK, FEE)),
    }
    unpriced = FL(n_clients=5, funding_window=WINDOW)
    other = funded_task(unpriced, deposit=10**15)
    assert data_budget_view(unpriced.get, TaskId(other), unpriced.task(other)) is None


def test_a_late_reveal_takes_room_of_its_own_so_the_bill_stays_within_the_deposit() -> None:
    """Red team: a joined client's failed reveal with no commitment behind it was billed but
    not reserved, so the commitments after it reserved as if those bytes had not been sent and
    the bill passed what the deposit pays for (the L1 then capped it: unpaid bytes)."""
    quota = quota_of(D)
    fl = FL(n_clients=6, funding_window=WINDOW, data_fee=FEE)
    deposit = deposit_for(PRETASK + 5 * quota + 100)
    tid = funded_task(fl, deposit, n=6)
    cap = allowance(deposit, FEE)
    junk = fl.tx(fl.clients[5], SUBMIT_UPDATE, [tid, 0, b"\x01" * (quota - 200), b"\x02" * 32])
    result = fl.block(junk)  # the commit phase: it fails, included and charged
    assert [(r.status, r.code) for r in result.receipts] == [(0, Code.WRONG_PHASE)]
    late = budget(fl, tid)
    assert late.reserved == late.sent == len(junk.payload)
    h = Honest(seed=9)
    result = fl.block(*(fl.submit(k, tid, 0, h.one()) for k in fl.clients[:5]))
    assert [r.code for r in result.receipts].count(Code.DATA_BUDGET_EXHAUSTED) == 1
    # every committed sender then sends its whole quota: the bill is still within the cap
    committed = [k for k in fl.clients[:5] if pub(k) in fl.task(tid).submitted]
    fl.block(*(fl.put_blob(k, bytes([i]) * quota, tid) for i, k in enumerate(committed)))
    assert budget(fl, tid).total <= cap


def test_once_a_task_stopped_only_its_last_committers_may_fail_a_large_reveal() -> None:
    """Red team: a finished task's epoch never moves, so each joined client had one more quota
    of failed reveals, billed to nobody after the settle leaf."""
    fl = FL(n_clients=5, funding_window=WINDOW, data_fee=FEE)
    tid = funded_task(fl, deposit=10**18, epochs=1)
    h = Honest(seed=10)
    fl.submit_all(tid, 0, [(k, h.one()) for k in fl.clients])
    fl.run_out(tid, 0)
    assert fl.task(tid).status == FINISHED
    after = fl.tx(fl.clients[0], SUBMIT_UPDATE, [tid, 0, b"\x01" * 6000, b"\x02" * 32])
    result = fl.block(after)
    [(_, exc)] = result.dropped
    assert exc.code == Code.LARGE_TX_FAILED
