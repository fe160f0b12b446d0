"""Federated-learning transactions: create_task, join_task, commit_update, submit_update (the
reveal), the requester's commit_reference and reveal_reference, report_evaluation.

See docs/protocol.md for the rules; :mod:`stf.fl.epoch` closes epochs.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .. import encoding, state_keys
from ..context import BlockContext, Limits
from ..encoding import EncodingError
from ..errors import Code, TxFailed, TxInvalid
from ..fl.chunks import MAX_CHUNKS, check_stored_array, manifest_from_chunks, stored_blob_size
from ..fl.commit import REFERENCE_DOMAIN, SALT_BYTES, commitment
from ..fl.data_budget import allowance, bill_unreserved, open_budget, priced, reserve
from ..fl.epoch import submit_refusal
from ..fl.funding import bind_funding, read_funding
from ..fl.records import EpochSummary, ReferenceRecord
from ..fl.release import release_committers
from ..fl.rules import check_bounds
from ..fl.settlement import write_settlement
from ..fl.store import load_task, open_tasks, save_task, set_open_tasks
from ..fl.task import COMPLETE, MODEL_DTYPE, OPEN, TaskParams, TaskState
from ..fl.uploads import charge_task_bytes, has_committed, pretask_bytes, upload_quota
from ..hashing import sha256
from ..ids import NO_BLOB, BlobId, ClientKey, L1Address, TaskId
from ..stakes import not_staked
from ..state import State
from ..tx import Transaction
from .base import TxType, failable_payload_bytes, register

MAX_OPEN_TASKS = 64
MAX_OPEN_TASKS_PER_REQUESTER = 4  # one key cannot take every slot by itself
MAX_EPOCH = 2**32 - 1  # epochs are 4 bytes in state keys


def _require_staked(state: State, client: ClientKey) -> None:
    why = not_staked(state, client)
    if why is not None:
        raise TxFailed(Code.NOT_STAKED, f"client {client.hex()[:16]}… {why}")


def _requester(state: State, task_id: TaskId) -> bytes:
    task = load_task(state, task_id)
    assert task is not None, "an open task has a record"
    return task.requester


def _open_task(state: State, task_id: TaskId) -> TaskState:
    task = load_task(state, task_id)
    if task is None:
        raise TxFailed(Code.TASK_NOT_FOUND, f"task {task_id.hex()} does not exist")
    if task.status != OPEN:
        raise TxFailed(Code.TASK_CLOSED, f"task {task_id.hex()[:16]}… is no longer open")
    return task


@register
class CreateTask(TxType):
    TYPE_ID = 3
    NAME = "create_task"
    OPENS_ACCOUNT = True  # it binds the L1 funding of its own hash (stf.accounts)

    @classmethod
    def parse(cls, value: Any, limits: Limits) -> TaskParams:
        try:
            params = TaskParams.from_list(value)
            # admission only: a task stored before a bound existed still decodes and replays
            check_bounds(params.rules)
        except (EncodingError, ValueError) as exc:
            raise TxInvalid(Code.INVALID_PAYLOAD, f"create_task: {exc}") from None
        return params

    @classmethod
    def apply(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        p: TaskParams = args
        # one blob of d int32 values, or a chunk manifest of them (stf.fl.chunks)
        check_stored_array(
            state,
            p.init_model,
            p.d * MODEL_DTYPE.itemsize,
            MODEL_DTYPE.itemsize,
            "initial model (int32)",
        )
        if stored_blob_size(state, p.script) is None:
            raise TxFailed(Code.BLOB_NOT_FOUND, "training script blob was not uploaded")
        ids = open_tasks(state)
        if len(ids) >= MAX_OPEN_TASKS:
            raise TxFailed(Code.TOO_MANY_OPEN_TASKS, f"at most {MAX_OPEN_TASKS} tasks may be open")
        mine = sum(1 for t in ids if _requester(state, t) == tx.sender)
        if mine >= MAX_OPEN_TASKS_PER_REQUESTER:
            raise TxFailed(
                Code.TOO_MANY_OPEN_TASKS,
                f"at most {MAX_OPEN_TASKS_PER_REQUESTER} open tasks per requester",
            )
        task_id = TaskId(tx.hash)
        required = ctx.limits.funding_window_blocks > 0
        bind_funding(state, task_id, p.funder, ctx.height, required)
        if priced(ctx.limits):  # the funder pays for the task's bytes, from its pre-task uploads on
            open_budget(state, task_id, pretask_bytes(state, task_id, L1Address(p.funder)))
        task = TaskState(p, ClientKey(tx.sender), base=p.init_model, epoch_start=ctx.height + 1)
        save_task(state, task_id, task)
        set_open_tasks(state, [*ids, task_id])


@register
class JoinTask(TxType):
    TYPE_ID = 4
    NAME = "join_task"

    @classmethod
    def parse(cls, value: Any, limits: Limits) -> TaskId:
        (task_id,) = encoding.expect_list(value, 1, "join_task payload")
        return TaskId(encoding.expect_bytes(task_id, "task id", 32))

    @classmethod
    def apply(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        task = _open_task(state, args)
        client = ClientKey(tx.sender)
        _require_staked(state, client)
        if client in task.clients:
            raise TxFailed(Code.ALREADY_JOINED, "client already joined this task")
        if len(task.clients) >= task.params.max_clients:
            raise TxFailed(Code.TASK_FULL, f"task has its {task.params.max_clients} clients")
        task.clients.append(client)
        save_task(state, args, task)


def _task_epoch(task_id: Any, epoch: Any) -> tuple[TaskId, int]:
    """The ``[task id, epoch, ...]`` head that commit, reveal and report payloads share."""
    return (
        TaskId(encoding.expect_bytes(task_id, "task id", 32)),
        encoding.expect_int(epoch, "epoch", 0, MAX_EPOCH),
    )


def _submitting_client(
    state: State, tx: Transaction, task_id: TaskId, epoch: int, reveal: bool
) -> TaskState:
    """The task, if ``tx.sender`` may commit (or ``reveal``) in it for ``epoch``; else
    TxFailed."""
    task = _open_task(state, task_id)
    client = ClientKey(tx.sender)
    if client not in task.clients:
        raise TxFailed(Code.NOT_JOINED, "client has not joined this task")
    refusal = submit_refusal(state, task_id, client, reveal)
    if refusal is not None:
        raise refusal
    if epoch != task.epoch:
        raise TxFailed(Code.WRONG_EPOCH, f"epoch {epoch} is not the current epoch {task.epoch}")
    return task


def _require_phase(task: TaskState, epoch: int, reveal: bool, hint: str) -> None:
    """WRONG_PHASE unless the epoch is in its reveal phase (``reveal``) or its commit phase."""
    if task.revealing != reveal:
        phase = "reveal" if task.revealing else "commit"
        raise TxFailed(Code.WRONG_PHASE, f"epoch {epoch} is in its {phase} phase: {hint}")


def _parse_reveal(value: Any, name: str) -> tuple[TaskId, int, bytes | list[bytes], bytes]:
    """``[task, epoch, update, salt]``: the update is its bytes (inline) or the list of its
    chunks' blob ids (chunked)."""
    task_id, epoch, update, salt = encoding.expect_list(value, 4, f"{name} payload")
    data: bytes | list[bytes]
    if isinstance(update, list):
        if not 1 <= len(update) <= MAX_CHUNKS:
            raise EncodingError(f"a chunked update lists 1 to {MAX_CHUNKS} blob ids")
        data = [encoding.expect_bytes(h, f"update chunk {j}", 32) for j, h in enumerate(update)]
    else:
        data = encoding.expect_bytes(update, "update (bytes, or a list of chunk blob ids)")
    return *_task_epoch(task_id, epoch), data, encoding.expect_bytes(salt, "salt", SALT_BYTES)


def _update_bytes(state: State, task: TaskState, update: bytes | list[bytes], what: str) -> bytes:
    """What a revealed update-shaped array is stored as: its bytes (inline), or the manifest
    of blobs already uploaded (chunked, :mod:`stf.fl.chunks`), checked against the layout."""
    itemsize = task.params.np_dtype.itemsize
    want = task.params.d * itemsize
    if isinstance(update, list):
        return manifest_from_chunks(
            state, update, want, itemsize, f"{what} ({task.params.dtype})"
        ).encode()
    if len(update) != want:
        raise TxFailed(
            Code.INVALID_UPDATE,
            f"{what} is {len(update)} bytes, layout needs {want} ({task.params.dtype})",
        )
    return update


def _reserve(state: State, task_id: TaskId, task: TaskState, limits: Limits, who: str) -> None:
    """On a chain that prices bytes, a commitment reserves its sender's upload quota within
    what the task's bound funding pays for (:mod:`stf.fl.data_budget`)."""
    if not priced(limits):
        return
    reserve(state, task_id, task.epoch, upload_quota(task), _cap(state, task_id, task, limits), who)


def _charge_reveal(
    state: State, tx: Transaction, task_id: TaskId, by_requester: bool, ctx: BlockContext
) -> None:
    """A reveal's bytes, charged before it runs (its ``consume``), so that its failure is paid
    for like an upload's: a failed transaction stays in every copy of the chain.

    A reveal is accepted into a block only from a sender of the task it names (a joined client,
    or for a reference the requester): a large one from anyone else is invalid, never included
    (it was free storage: a fresh key's 4 MiB reveal for no task). On a chain that funds its
    tasks its payload counts against the sender's upload quota for the task's epoch, like its
    chunks, and on one that prices bytes it is billed to the task; a sender without a commitment
    in the epoch (its reveal late) is billed only within what the deposit still pays for. So a
    committed client's reveal that fails in its block (its epoch closed at the window's end,
    its task completed in the same block) is included failed, its nonce used, as before: had it
    been dropped, the sender's later transactions would have been dropped behind it."""
    task = load_task(state, task_id)
    sender_ok = task is not None and _may_reveal(state, task_id, task, tx.sender, by_requester)
    if not sender_ok:
        if len(tx.payload) > failable_payload_bytes(ctx.limits):
            who = (
                "its requester"
                if by_requester
                else "a client that joined it and may still reveal (or, once it stopped, a "
                "committer of its last epoch)"
            )
            raise TxInvalid(
                Code.LARGE_TX_FAILED,
                f"a reveal of {len(tx.payload)} bytes is included only from {who}: this one "
                f"would fail, and its bytes would be stored for nobody's money",
            )
        return  # a small one fails in apply, with its reason in the receipt
    assert task is not None
    if ctx.limits.funding_window_blocks <= 0:
        return  # a chain that does not fund its tasks keeps no quotas
    size = len(tx.payload)
    charge = charge_task_bytes(state, task_id, task, tx.sender, size, ctx.limits)
    if priced(ctx.limits) and not has_committed(state, task_id, task, tx.sender, by_requester):
        # no reservation covers a late sender's bytes: they take their own, within the cap
        charge = replace(charge, billed_task=None)
        bill_unreserved(state, task_id, task.epoch, size, _cap(state, task_id, task, ctx.limits))
    charge.record(state)


def _may_reveal(
    state: State, task_id: TaskId, task: TaskState, sender: bytes, by_requester: bool
) -> bool:
    """Whether ``sender``'s reveal in the task is one a block may carry failed (its bytes
    charged): the requester's or a client's that could reveal while the task is open; once
    it stopped (completed in the block, or finished), only a committer of the epoch in
    progress then, whose reveal raced the end (else every joined client had one more quota of
    bytes after the settle leaf had billed the task, a red team's)."""
    if task.status != OPEN:
        return has_committed(state, task_id, task, sender, by_requester)
    if by_requester:
        return sender == task.requester
    client = ClientKey(sender)
    return client in task.clients and submit_refusal(state, task_id, client, True) is None


def _cap(state: State, task_id: TaskId, task: TaskState, limits: Limits) -> int:
    """The bytes the task's bound funding pays for."""
    funding = read_funding(state, task_id, L1Address(task.params.funder))
    return 0 if funding is None else allowance(funding.deposit, limits.data_fee_per_mib)


@register
class CommitUpdate(TxType):
    """Phase one of an epoch: the client binds itself to an update nobody can see yet."""

    TYPE_ID = 7
    NAME = "commit_update"

    @classmethod
    def parse(cls, value: Any, limits: Limits) -> tuple[TaskId, int, bytes]:
        task_id, epoch, digest = encoding.expect_list(value, 3, "commit_update payload")
        return *_task_epoch(task_id, epoch), encoding.expect_bytes(digest, "commitment", 32)

    @classmethod
    def apply(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        task_id, epoch, digest = args
        task = _submitting_client(state, tx, task_id, epoch, reveal=False)
        client = ClientKey(tx.sender)
        if client in task.submitted:
            raise TxFailed(Code.DUPLICATE_UPDATE, f"client already committed for epoch {epoch}")
        _require_phase(task, epoch, False, "commitments are closed")
        _reserve(state, task_id, task, ctx.limits, "this commitment")
        task.submitted.append(client)
        task.pending.append(NO_BLOB)
        task.commitments.append(digest)
        save_task(state, task_id, task)


@register
class SubmitUpdate(TxType):
    """Phase two: the reveal. The update and the salt must hash to the client's commitment."""

    TYPE_ID = 5
    NAME = "submit_update"
    CHARGES_BYTES = True  # consume charges the sender's quota (a failure is paid for)

    @classmethod
    def parse(cls, value: Any, limits: Limits) -> tuple[TaskId, int, bytes | list[bytes], bytes]:
        return _parse_reveal(value, cls.NAME)

    @classmethod
    def consume(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        _charge_reveal(state, tx, args[0], False, ctx)

    @classmethod
    def apply(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        task_id, epoch, update, salt = args
        task = _submitting_client(state, tx, task_id, epoch, reveal=True)
        client = ClientKey(tx.sender)
        _require_phase(task, epoch, True, "send commit_update, reveal after it ends")
        if client not in task.submitted:
            raise TxFailed(Code.NOT_COMMITTED, f"client sent no commitment for epoch {epoch}")
        pos = task.submitted.index(client)
        if task.pending[pos] != NO_BLOB:
            raise TxFailed(Code.DUPLICATE_UPDATE, f"client already revealed for epoch {epoch}")
        stored = _update_bytes(state, task, update, "update")
        update_id = BlobId(sha256(stored))
        if commitment(task_id, epoch, client, update_id, salt) != task.commitments[pos]:
            raise TxFailed(
                Code.COMMITMENT_MISMATCH,
                "the update and salt do not hash to the client's commitment",
            )
        task.pending[pos] = state.put_blob(stored)
        save_task(state, task_id, task)


def _requesters_task(state: State, tx: Transaction, task_id: TaskId, epoch: int) -> TaskState:
    """The open task, if ``tx.sender`` is its requester and ``epoch`` is current; else TxFailed."""
    task = _open_task(state, task_id)
    if tx.sender != task.requester:
        raise TxFailed(Code.NOT_AUTHORIZED, "only the task's requester sends its reference")
    if epoch != task.epoch:
        raise TxFailed(Code.WRONG_EPOCH, f"epoch {epoch} is not the current epoch {task.epoch}")
    return task


@register
class CommitReference(TxType):
    """The requester binds itself to its reference update (:mod:`stf.fl.reference`) while the
    clients commit: nobody sees it before every commitment of the epoch is fixed."""

    TYPE_ID = 8
    NAME = "commit_reference"

    @classmethod
    def parse(cls, value: Any, limits: Limits) -> tuple[TaskId, int, bytes]:
        task_id, epoch, digest = encoding.expect_list(value, 3, "commit_reference payload")
        return *_task_epoch(task_id, epoch), encoding.expect_bytes(digest, "commitment", 32)

    @classmethod
    def apply(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        task_id, epoch, digest = args
        task = _requesters_task(state, tx, task_id, epoch)
        _require_phase(task, epoch, False, "commitments are closed")
        key = state_keys.reference(task_id, epoch)
        if state.get(key) is not None:
            raise TxFailed(Code.DUPLICATE_UPDATE, f"a reference is already committed for {epoch}")
        _reserve(state, task_id, task, ctx.limits, "the reference's commitment")
        state.set(key, ReferenceRecord(digest, NO_BLOB).encode())


@register
class RevealReference(TxType):
    """The reveal of the requester's reference; the epoch close waits for it as for a client's."""

    TYPE_ID = 9
    NAME = "reveal_reference"
    CHARGES_BYTES = True  # consume charges the requester's quota (a failure is paid for)

    @classmethod
    def parse(cls, value: Any, limits: Limits) -> tuple[TaskId, int, bytes | list[bytes], bytes]:
        return _parse_reveal(value, cls.NAME)

    @classmethod
    def consume(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        _charge_reveal(state, tx, args[0], True, ctx)

    @classmethod
    def apply(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        task_id, epoch, update, salt = args
        task = _requesters_task(state, tx, task_id, epoch)
        _require_phase(task, epoch, True, "reveal the reference after it ends")
        key = state_keys.reference(task_id, epoch)
        raw = state.get(key)
        if raw is None:
            raise TxFailed(Code.NOT_COMMITTED, f"no reference was committed for epoch {epoch}")
        rec = ReferenceRecord.decode(raw)
        if rec.reference != NO_BLOB:
            raise TxFailed(Code.DUPLICATE_UPDATE, f"the reference of epoch {epoch} is revealed")
        stored = _update_bytes(state, task, update, "reference")
        ref_id = BlobId(sha256(stored))
        requester = ClientKey(task.requester)
        if commitment(task_id, epoch, requester, ref_id, salt, REFERENCE_DOMAIN) != rec.commitment:
            raise TxFailed(
                Code.COMMITMENT_MISMATCH,
                "the reference and salt do not hash to the requester's commitment",
            )
        state.set(key, ReferenceRecord(rec.commitment, state.put_blob(stored)).encode())


@register
class ReportEvaluation(TxType):
    TYPE_ID = 6
    NAME = "report_evaluation"

    @classmethod
    def parse(cls, value: Any, limits: Limits) -> tuple[TaskId, int, int]:
        task_id, epoch, acc = encoding.expect_list(value, 3, "report_evaluation payload")
        return *_task_epoch(task_id, epoch), encoding.expect_int(acc, "accuracy_ppm", 0, 1_000_000)

    @classmethod
    def apply(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        task_id, epoch, acc = args
        task = load_task(state, task_id)
        if task is None:
            raise TxFailed(Code.TASK_NOT_FOUND, f"task {task_id.hex()} does not exist")
        if tx.sender not in (task.requester, task.params.evaluator):
            raise TxFailed(Code.NOT_AUTHORIZED, "only the requester or its evaluator may report")
        raw = state.get(state_keys.epoch(task_id, epoch))
        if raw is None:
            raise TxFailed(Code.WRONG_EPOCH, f"epoch {epoch} has not closed")
        summary = EpochSummary.decode(raw)
        if summary.reported:
            raise TxFailed(Code.ALREADY_EVALUATED, f"epoch {epoch} already has an evaluation")
        state.set(state_keys.epoch(task_id, epoch), summary.with_accuracy(acc).encode())
        if task.status == OPEN and acc >= task.params.target_accuracy_ppm:
            task.status = COMPLETE
            save_task(state, task_id, task)
            write_settlement(state, task_id, task)
            set_open_tasks(state, [t for t in open_tasks(state) if t != task_id])
            release_committers(state, task.submitted)  # the open epoch's commitments lapse
