"""Who may upload a blob, for which task, and how many bytes: what makes a blob cost its sender.

Keys are free, so a blob that anyone may upload is storage anyone may fill (250 blobs of 4 MiB
from fresh keys: 6.3 GiB of RSS, +3 GB of LevelDB). On a chain that funds its tasks on the L1
(``funding_window_blocks`` > 0) every blob is therefore uploaded *for a task*, by someone whose
place in it cost money, and within a byte quota:

* ``put_blob [data, task]`` for an open task, by its requester (the chunks of its reference)
  or by a client that joined it and may still reveal in it (staked, neither barred nor
  slashable: the chunks of its update). Quota: twice the task's update size (``d`` times the
  value size: one update and one retry) per sender and epoch. A client's place cost a stake,
  a requester's the task's BASE_FEE.
* ``put_blob [data, task, funder, create_body]`` before the task exists (its initial model and
  script; the task id is the hash of the signed ``create_task``, known before it is sent),
  against an L1 funding of that id by ``funder`` the rollup recorded and that may still be
  bound, **by the requester alone**: ``create_body`` is the create_task's unsigned body, which
  must hash to the task id and name the upload's sender. Quota: the largest initial model
  (``4 * MAX_PARAMS``) plus two blobs (its manifest and a script) per funding; each funding cost
  its funder BASE_FEE. (Without the body, anyone who saw ``TaskFunded`` on the L1 could spend
  the quota with junk and the requester could never upload its model: a red team's, found on
  the quota as first built. The body is public once sent, but names its requester: a copy
  proves nothing for another sender, and before it is sent nobody else knows it — only its
  hash is on the L1.)

On a chain with no L1 funding (``funding_window_blocks`` = 0: a development chain, whose task
slots are free too) the bare ``put_blob [data]`` is still accepted; the task forms are checked
the same way on both.

A refusal is :class:`TxInvalid` (the transaction is never included, so it costs no block
space); the bytes count against the quota whether or not the upload then succeeds (a blob
already stored still took its place in a block). The counters live in the tree under
``upload/<task><sender or funder>`` = ``[epoch, bytes]`` (epoch 0 for the pre-task quota), so
every verifier refuses the same transactions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import encoding, state_keys
from ..context import Limits
from ..errors import Code, TxInvalid
from ..hashing import tx_hash
from ..ids import ClientKey, L1Address, TaskId
from ..state import State
from .data_budget import allowance, bill, priced
from .epoch import load_reference, submit_refusal
from .funding import read_funding
from .store import load_task
from .task import MAX_PARAMS, MODEL_DTYPE, TaskState, TaskStatus

#: Updates (or references) a sender may upload per task and epoch, in update sizes.
UPDATES_PER_EPOCH = 2
#: And the bytes of its reveal's envelope (task id, epoch, salt, headers: ~80 bytes inline; a
#: chunked reveal's list of ids is 34 bytes a chunk): a reveal is charged to the same quota,
#: and a task with a tiny update (d x value size under ~80 bytes) could otherwise not reveal
REVEAL_ENVELOPE_BYTES = 1024


@dataclass(frozen=True)
class UploadContext:
    """What a ``put_blob`` is for: a task, and for a pre-task upload the funding it draws on."""

    task_id: TaskId
    funder: L1Address | None = None
    create_body: bytes | None = None  # the pre-task form's proof of who the requester is


@dataclass(frozen=True)
class Allowance:
    """The quota counter an admitted upload moves: its key, its epoch and the bytes after it;
    and on a chain that prices bytes, the task whose data budget bills them."""

    key: bytes
    epoch: int
    used: int
    billed_task: TaskId | None = None
    size: int = 0

    def record(self, state: State) -> None:
        state.set(self.key, encoding.encode([self.epoch, self.used]))
        if self.billed_task is not None:
            bill(state, self.billed_task, self.epoch, self.size)


def pretask_quota(limits: Limits) -> int:
    """Bytes one funding lets its task upload before it exists: the largest initial model, a
    manifest and a script."""
    return MAX_PARAMS * MODEL_DTYPE.itemsize + 2 * limits.max_blob_size


def admit_upload(
    state: State,
    sender: bytes,
    size: int,
    context: UploadContext | None,
    height: int,
    limits: Limits,
) -> Allowance | None:
    """Check that ``sender`` may upload ``size`` bytes at ``height``; the counter to record, or
    None for a bare upload on a chain that does not fund its tasks. Raises :class:`TxInvalid`
    naming the reason."""
    if context is None:
        if limits.funding_window_blocks > 0:
            raise TxInvalid(
                Code.BLOB_NOT_ALLOWED,
                "this chain funds its tasks on the L1, so a blob is uploaded for a task: "
                "put_blob [data, task_id] by its requester or a client that joined it, or "
                "[data, task_id, funder, create_body] before create_task, by its requester, "
                "against a recorded funding",
            )
        return None
    task = load_task(state, context.task_id)
    short = context.task_id.hex()[:16] + "…"
    if context.funder is not None:
        _check_requester(context, sender, short)
        return _pretask(state, context.task_id, context.funder, size, height, limits, task, short)
    if task is None:
        raise TxInvalid(
            Code.BLOB_NOT_ALLOWED,
            f"task {short} does not exist: before create_task, upload with "
            "[data, task_id, funder, create_body] against its recorded funding",
        )
    if task.status != TaskStatus.OPEN:
        raise TxInvalid(Code.BLOB_NOT_ALLOWED, f"task {short} is no longer open")
    client = ClientKey(sender)
    if sender != task.requester:
        if client not in task.clients:
            raise TxInvalid(
                Code.BLOB_NOT_ALLOWED,
                f"the sender is neither the requester of task {short} nor a client that joined it",
            )
        refusal = submit_refusal(state, context.task_id, client, reveal=True)
        if refusal is not None:
            raise TxInvalid(
                Code.BLOB_NOT_ALLOWED, f"the sender may not reveal in task {short}: {refusal}"
            )
    if priced(limits):
        _require_commitment(state, context.task_id, task, sender, short)
    return charge_task_bytes(state, context.task_id, task, sender, size, limits)


def upload_quota(task: TaskState) -> int:
    """A sender's bytes per task and epoch: one update and one retry, and a reveal's envelope."""
    return quota_of(task.params.d * task.params.np_dtype.itemsize)


def quota_of(update_bytes: int) -> int:
    """A sender's upload quota per task and epoch for updates of ``update_bytes``."""
    return UPDATES_PER_EPOCH * update_bytes + REVEAL_ENVELOPE_BYTES


def charge_task_bytes(
    state: State, task_id: TaskId, task: TaskState, sender: bytes, size: int, limits: Limits
) -> Allowance:
    """The counter that ``size`` bytes a sender puts in a block for the open task (an upload,
    or an inline reveal on a chain that prices bytes) move against its quota; recording it also
    bills them to the task's data budget (:mod:`stf.fl.data_budget`: within the reservation of
    the sender's commitment)."""
    short = task_id.hex()[:16] + "…"
    key = state_keys.upload(task_id, ClientKey(sender))
    what = f"epoch {task.epoch} of task {short}"
    charged = _charge(state, key, task.epoch, size, upload_quota(task), what)
    return replace(charged, billed_task=task_id, size=size) if priced(limits) else charged


def has_committed(
    state: State, task_id: TaskId, task: TaskState, sender: bytes, as_requester: bool
) -> bool:
    """Whether ``sender``'s commitment of the open epoch reserved its upload quota: as the
    requester its ``commit_reference``, as a client its ``commit_update``."""
    if as_requester:
        return load_reference(state, task_id, task.epoch) is not None
    return ClientKey(sender) in task.submitted


def _require_commitment(
    state: State, task_id: TaskId, task: TaskState, sender: bytes, short: str
) -> None:
    """On a chain that prices bytes, only a sender whose commitment reserved its quota uploads
    (the reservation is what makes its bytes paid for before they are sent)."""
    if has_committed(state, task_id, task, sender, sender == task.requester):
        return
    who = (
        "the requester uploads its reference's chunks after commit_reference"
        if sender == task.requester
        else "a client uploads its update's chunks after commit_update"
    )
    raise TxInvalid(
        Code.BLOB_NOT_ALLOWED,
        f"this chain prices a task's bytes, and a commitment reserves them: {who} for epoch "
        f"{task.epoch} of task {short}",
    )


def _check_requester(context: UploadContext, sender: bytes, short: str) -> None:
    """The pre-task form's sender is the requester: the signer named in the ``create_task``
    body that hashes to the task id."""
    body = context.create_body
    if body is None or tx_hash(body) != context.task_id:
        raise TxInvalid(
            Code.BLOB_NOT_ALLOWED,
            f"a pre-task upload carries the unsigned body of the create_task whose hash is the "
            f"task id; this one does not hash to {short}",
        )
    try:
        fields = encoding.expect_list(encoding.decode(body), 5, "create_task body")
    except encoding.EncodingError as exc:
        raise TxInvalid(
            Code.BLOB_NOT_ALLOWED, f"the create_task body does not parse: {exc}"
        ) from None
    if fields[2] != sender:
        raise TxInvalid(
            Code.BLOB_NOT_ALLOWED,
            f"only the requester of task {short} (the signer of its create_task) uploads for "
            "it before it exists",
        )
    # and against the funding the task will bind, which then pays for these bytes: uploaded
    # against another funding of the id, they escaped the task's bill (a red team's)
    try:
        params = encoding.expect_list(encoding.decode(fields[4]), 14, "create_task payload")
    except encoding.EncodingError as exc:
        raise TxInvalid(Code.BLOB_NOT_ALLOWED, f"the create_task payload: {exc}") from None
    if params[13] != context.funder:
        raise TxInvalid(
            Code.BLOB_NOT_ALLOWED,
            f"a pre-task upload draws on the funding its create_task names ({_named(params[13])}"
            f"), not another funding of the id",
        )


def _named(funder: object) -> str:
    return f"0x{funder.hex()}" if isinstance(funder, bytes) and funder else "none"


def _pretask(
    state: State,
    task_id: TaskId,
    funder: L1Address,
    size: int,
    height: int,
    limits: Limits,
    task: object,
    short: str,
) -> Allowance:
    if task is not None:
        raise TxInvalid(
            Code.BLOB_NOT_ALLOWED,
            f"task {short} exists: upload for it as its requester or client ([data, task_id])",
        )
    funding = read_funding(state, task_id, funder)
    if funding is None or funding.bound or height > funding.bind_by:
        why = "none is recorded" if funding is None else "it can no longer be bound"
        raise TxInvalid(
            Code.BLOB_NOT_ALLOWED,
            f"a pre-task upload draws on an L1 funding of task {short} by 0x{funder.hex()}: {why}",
        )
    key = state_keys.upload(task_id, funder)
    quota = pretask_quota(limits)
    if priced(limits):  # and within what the deposit pays for (it is billed once bound)
        quota = min(quota, allowance(funding.deposit, limits.data_fee_per_mib))
    return _charge(state, key, 0, size, quota, f"the funding of task {short}")


def pretask_bytes(state: State, task_id: TaskId, funder: L1Address) -> int:
    """What ``funder``'s funding let the requester upload before the task existed."""
    raw = state.get(state_keys.upload(task_id, funder))
    if raw is None:
        return 0
    return int(encoding.expect_list(encoding.decode(raw), 2, "upload counter")[1])


def _charge(state: State, key: bytes, epoch: int, size: int, quota: int, what: str) -> Allowance:
    raw = state.get(key)
    used = 0
    if raw is not None:
        last, n = encoding.expect_list(encoding.decode(raw), 2, "upload counter")
        used = n if last == epoch else 0
    if used + size > quota:
        raise TxInvalid(
            Code.BLOB_QUOTA_EXCEEDED,
            f"{what} allows {quota} bytes of blobs from this sender; {used} are used, this "
            f"blob is {size}",
        )
    return Allowance(key, epoch, used + size)
