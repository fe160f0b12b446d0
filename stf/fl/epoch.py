"""Epoch close: a block hook, run after a block's transactions, never an external call.

An epoch has two phases (commit-reveal, :mod:`stf.fl.commit`), each with a window of
``window_blocks`` blocks. The **commit** phase ends in the first block where either every
joined client that can still submit has committed (and at least ``min_clients`` did), or the
window has passed with at least ``min_clients`` commitments; a window that passes with fewer
stays open until enough clients commit. The **reveal** phase opens in the next block and ends
when every committer that can still submit has revealed, or its window has passed; the epoch
closes then, on the updates revealed. A commitment not revealed is a strike
(``REVEAL_MISSING``).

"Can still submit" is what ``commit_update`` and ``submit_update`` check: staked on the L1, and
neither barred nor slashable in this task. Waiting for a client that the STF would refuse only
drags every epoch after a slashing out to its full window.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from .. import state_keys
from ..context import BlockContext
from ..errors import Code, TxFailed
from ..ids import NO_BLOB, BlobId, ClientKey, TaskId
from ..stakes import not_staked
from ..state import State
from .aggregate import AggregatePlan
from .chunks import ArrayWriter, StoredArray
from .flags import Flag
from .judge import ClientResult, judge, next_verdict
from .passes import EpochPasses, LocalPasses
from .records import CLEAN, ClientRecord, EpochSummary, ReferenceRecord, Verdict
from .release import release_committers
from .settlement import record_reward_share, write_settlement, write_slash_evidence
from .stats import DEFAULT_BUDGET_BYTES, RowReader
from .store import load_task, open_tasks, save_task, set_open_tasks
from .task import FINISHED, MODEL_DTYPE, OPEN, TaskState


def load_verdict(state: State, task_id: TaskId, client: ClientKey) -> Verdict:
    raw = state.get(state_keys.verdict(task_id, client))
    return CLEAN if raw is None else Verdict.decode(raw)


def load_reference(state: State, task_id: TaskId, epoch: int) -> ReferenceRecord | None:
    raw = state.get(state_keys.reference(task_id, epoch))
    return None if raw is None else ReferenceRecord.decode(raw)


def submit_refusal(
    state: State, task_id: TaskId, client: ClientKey, reveal: bool = False
) -> TxFailed | None:
    """Why ``commit_update`` (or, with ``reveal``, ``submit_update``) refuses a joined
    ``client`` (its stake or its verdict in the task), or ``None``. The epoch close waits only
    for clients this lets in. An unbonding client may reveal what it committed while staked
    (:mod:`stf.fl.release`), but commit nothing new."""
    why = not_staked(state, client, unbonding_ok=reveal)
    if why is not None:
        return TxFailed(Code.NOT_STAKED, f"client {client.hex()[:16]}… {why}")
    verdict = load_verdict(state, task_id, client)
    if verdict.slashable:
        return TxFailed(Code.SLASHABLE_IN_TASK, "client is slashable in this task")
    if verdict.barred:
        return TxFailed(Code.BARRED_FROM_TASK, "client is barred from this task (strikes)")
    return None


def awaited(state: State, task_id: TaskId, task: TaskState) -> Iterator[bytes]:
    """Who the open epoch's current phase still waits for: the clients
    (:func:`awaited_clients`), then the requester if its reference (:mod:`stf.fl.reference`) is
    due: in the reveal phase when committed and not revealed, in the commit phase when it sent
    one in the previous epoch and has not committed this epoch's yet (a requester that sends
    references is waited for as a client is, so that clients quicker than its training cannot
    end the phase before it; one that stops costs one window). Lazy, so a phase's end stops at
    the first one."""
    yield from awaited_clients(state, task_id, task)
    if task.status != OPEN:
        return
    ref = load_reference(state, task_id, task.epoch)
    if task.revealing:
        if ref is not None and ref.reference == NO_BLOB:
            yield task.requester
    elif (
        ref is None
        and task.epoch > 0
        and load_reference(state, task_id, task.epoch - 1) is not None
    ):
        yield task.requester


def awaited_clients(state: State, task_id: TaskId, task: TaskState) -> Iterator[ClientKey]:
    """The clients the open epoch's current phase still waits for: in the commit phase the
    joined clients (join order) that have not committed, in the reveal phase the committers
    (commit order) that have not revealed; either way only those the STF would let in."""
    if task.status != OPEN:
        return
    if task.revealing:
        for c, update in zip(task.submitted, task.pending, strict=True):
            if update == NO_BLOB and submit_refusal(state, task_id, c, reveal=True) is None:
                yield c
        return
    done = set(task.submitted)
    for c in task.clients:
        if c not in done and submit_refusal(state, task_id, c) is None:
            yield c


def commit_phase_due(state: State, task_id: TaskId, task: TaskState, height: int) -> bool:
    """The commit phase ends in this block (the reveal phase opens in the next)."""
    if task.status != OPEN or task.revealing or len(task.submitted) < task.params.min_clients:
        return False
    if height >= task.epoch_start + task.params.window_blocks:
        return True
    return next(awaited(state, task_id, task), None) is None


def epoch_due(state: State, task_id: TaskId, task: TaskState, height: int) -> bool:
    """The reveal phase ends in this block, and the epoch closes."""
    if task.status != OPEN or not task.revealing:
        return False
    if height >= task.reveal_start + task.params.window_blocks:
        return True
    return next(awaited(state, task_id, task), None) is None


EXPIRY_WINDOWS = 8
"""A commit phase that has not gathered ``min_clients`` commitments within this many windows
ends its task by rule: a deadline, so that no task holds its deposit and its open-task slot
for ever waiting for clients that never come (issue 11)."""


def stranded(state: State, task_id: TaskId, task: TaskState, height: int) -> bool:
    """The open epoch will not reach ``min_clients``: either ``EXPIRY_WINDOWS`` windows have
    passed without enough commitments, or its window has passed, every seat is taken (no one
    new can join), and the clients that submitted plus those that still can are too few
    (barred and slashable clients occupy seats but may not submit)."""
    p = task.params
    if task.status != OPEN or task.revealing or height < task.epoch_start + p.window_blocks:
        return False
    if height >= task.epoch_start + EXPIRY_WINDOWS * p.window_blocks:
        return True
    if len(task.clients) < p.max_clients:
        return False
    can = len(task.submitted) + sum(1 for _ in awaited_clients(state, task_id, task))
    return can < p.min_clients


def finish_stranded(state: State, task_id: TaskId, task: TaskState) -> None:
    """End a stranded task by rule: settled on the epochs it trained (the open epoch's updates
    are not counted), so the requester's deposit and the earned rewards are not locked."""
    committers = task.submitted
    task.status = FINISHED
    task.submitted, task.pending, task.commitments = [], [], []
    write_settlement(state, task_id, task)
    save_task(state, task_id, task)
    release_committers(state, committers)


def close_due_epochs(
    state: State, ctx: BlockContext, backend: str = "numpy", budget_bytes: int | None = None
) -> list[TaskId]:
    """Close every epoch that is due in this block; return the ids of the tasks closed.

    ``backend`` and ``budget_bytes`` (default :data:`DEFAULT_BUDGET_BYTES`) are not consensus:
    they change how fast and in how much memory, never the result.
    """
    closed = []
    ids = open_tasks(state)
    still_open = []
    for task_id in ids:
        task = load_task(state, task_id)
        assert task is not None
        if commit_phase_due(state, task_id, task, ctx.height):
            task.reveal_start = ctx.height + 1
            save_task(state, task_id, task)
        elif epoch_due(state, task_id, task, ctx.height):
            close_epoch(state, task_id, task, ctx, backend, budget_bytes)
            closed.append(task_id)
        elif stranded(state, task_id, task, ctx.height):
            finish_stranded(state, task_id, task)
        if task.status == OPEN:
            still_open.append(task_id)
    if still_open != ids:
        set_open_tasks(state, still_open)
    return closed


def close_epoch(
    state: State,
    task_id: TaskId,
    task: TaskState,
    ctx: BlockContext,
    backend: str,
    budget_bytes: int | None = None,
    passes: EpochPasses | None = None,
) -> None:
    """Score, flag and aggregate the revealed updates, reading them a column block at a time.

    Peak memory is about ``n`` x one block of raw update values (``budget_bytes``) plus
    ``O(n^2)``; the next base model and step are written chunk by chunk (see
    :mod:`stf.fl.chunks`). The updates are in commit order; a committer that did not reveal
    gets a record with ``REVEAL_MISSING`` and no update. A revealed reference of the requester
    weighs the aggregate (:mod:`stf.fl.reference`); without one the configured aggregator
    combines the rows. ``passes`` (default: both passes here,
    :class:`LocalPasses` with ``backend`` and ``budget_bytes``, which are then unused) may read
    the columns elsewhere, e.g. sharded over processes; it never changes a byte.
    """
    budget = DEFAULT_BUDGET_BYTES if budget_bytes is None else budget_bytes
    if passes is None:
        passes = LocalPasses(backend, budget)
    p = task.params
    shown = task.revealed
    updates = [StoredArray(state, task.pending[i], p.np_dtype, p.d).read for i in shown]
    results: list[ClientResult] = []
    plan = AggregatePlan("zero")
    if shown:
        prev_global = _reader(state, task, task.prev_global or None)
        prev_own = [
            _reader(state, task, _last_update(state, task_id, task.submitted[i])) for i in shown
        ]
        ref = load_reference(state, task_id, task.epoch)
        reference = _reader(state, task, ref.reference or None) if ref is not None else None
        stats = passes.stats(updates, p.d, p.np_dtype, prev_global, prev_own, reference)
        results, plan = judge(stats, p.rules)
    by_position = dict(zip(shown, results, strict=True))
    missing = ClientResult(0, len(shown), 0, 0, 0, 0, int(Flag.REVEAL_MISSING), False)
    for i, client in enumerate(task.submitted):
        _record_client(state, task_id, task, task.pending[i], client, by_position.get(i, missing))
    blocks = passes.aggregate(updates, plan, p.d, p.np_dtype)
    next_base, step = _write_next_model(state, task, blocks, ctx.limits.max_blob_size)
    summary = EpochSummary(
        len(task.submitted), task.base, step, next_base, ctx.height, tuple(task.submitted)
    )
    state.set(state_keys.epoch(task_id, task.epoch), summary.encode())
    committers = task.submitted
    _advance(state, task_id, task, next_base, step, ctx.height)
    release_committers(state, committers)


def _last_update(state: State, task_id: TaskId, client: ClientKey) -> BlobId | None:
    raw = state.get(state_keys.last_update(task_id, client))
    return None if raw is None else BlobId(raw)


def _reader(state: State, task: TaskState, array_id: BlobId | None) -> RowReader | None:
    """Column reads of a stored update-shaped array (quantized dtype), or None without one."""
    if array_id is None:
        return None
    return StoredArray(state, array_id, task.params.np_dtype, task.params.d).read


def _record_client(
    state: State,
    task_id: TaskId,
    task: TaskState,
    update: BlobId,
    client: ClientKey,
    c: ClientResult,
) -> None:
    """The client's record and verdict, its L1 leaves (slash evidence, reward share), and its
    update (if revealed) as the "own previous" of the next epoch."""
    record = ClientRecord(
        update,
        c.score,
        c.rank,
        c.sq_norm,
        c.loo_dot,
        c.loo_rest_sq,
        c.global_dot,
        c.flags,
        c.selected,
        c.credit,
    )
    state.set(state_keys.client_record(task_id, task.epoch, client), record.encode())
    prev = load_verdict(state, task_id, client)
    v = next_verdict(prev, c.flags, task.epoch, task.params.rules)
    state.set(state_keys.verdict(task_id, client), v.encode())
    if v.slashable and not prev.slashable:
        write_slash_evidence(state, client, task_id, v.epoch, v.reason)
    record_reward_share(state, task_id, client, c.credit, not v.standing)
    if update != NO_BLOB:
        state.set(state_keys.last_update(task_id, client), update)


def _write_next_model(
    state: State,
    task: TaskState,
    blocks: Iterator[tuple[int, int, npt.NDArray[np.int64]]],
    max_blob_size: int,
) -> tuple[BlobId, BlobId]:
    """Stream ``(next base, step)`` into blobs laid out by the consensus ``max_blob_size``:
    the next base = clip(base + aggregate, int32), the step = clip(aggregate, dtype range)."""
    d, dt = task.params.d, task.params.np_dtype
    base = StoredArray(state, task.base, MODEL_DTYPE, d)
    next_out = ArrayWriter(state, d * MODEL_DTYPE.itemsize, MODEL_DTYPE.itemsize, max_blob_size)
    step_out = ArrayWriter(state, d * dt.itemsize, dt.itemsize, max_blob_size)
    lim = np.iinfo(np.int32)
    qlim = np.iinfo(dt).max
    for start, stop, agg in blocks:
        b = base.read(start, stop).astype(np.int64)
        next_out.write(np.clip(b + agg, lim.min, lim.max).astype(MODEL_DTYPE))
        step_out.write(np.clip(agg, -qlim, qlim).astype(dt))
    return next_out.finish(), step_out.finish()


def _advance(
    state: State, task_id: TaskId, task: TaskState, base: BlobId, step: BlobId, height: int
) -> None:
    """Open the next epoch on the new base, or finish (and settle) after the last one."""
    task.base = base
    task.prev_global = step
    task.epoch += 1
    task.epoch_start = height + 1
    task.submitted, task.pending, task.commitments = [], [], []
    task.reveal_start = 0
    if task.epoch >= task.params.epochs:
        task.status = FINISHED
        write_settlement(state, task_id, task)
    save_task(state, task_id, task)
