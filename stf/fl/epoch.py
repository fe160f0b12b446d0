"""Epoch close: a block hook, run after a block's transactions, never an external call.

An epoch closes in the first block where either every joined client has
submitted (and at least ``min_clients`` did), or the window of
``window_blocks`` blocks has passed with at least ``min_clients`` submissions.
A window that passes with fewer stays open until enough clients submit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import encoding, keys
from ..context import BlockContext
from ..state import State
from .rules import CLEAN, Verdict, evaluate_epoch, next_verdict
from .settlement import record_reward_share, write_settlement, write_slash_evidence
from .task import FINISHED, MODEL_DTYPE, OPEN, TaskState


def open_tasks(state: State) -> list[bytes]:
    raw = state.get(keys.OPEN_TASKS)
    return [] if raw is None else list(encoding.decode(raw))


def set_open_tasks(state: State, ids: list[bytes]) -> None:
    state.set(keys.OPEN_TASKS, encoding.encode(ids) if ids else None)


def load_task(state: State, task_id: bytes) -> TaskState | None:
    raw = state.get(keys.task(task_id))
    return None if raw is None else TaskState.decode(raw)


def save_task(state: State, task_id: bytes, task: TaskState) -> None:
    state.set(keys.task(task_id), task.encode())


def load_verdict(state: State, task_id: bytes, client: bytes) -> Verdict:
    raw = state.get(keys.verdict(task_id, client))
    if raw is None:
        return CLEAN
    strikes, slashable, reason, ep = encoding.decode(raw)
    return Verdict(strikes, bool(slashable), reason, ep)


def epoch_due(task: TaskState, height: int) -> bool:
    if task.status != OPEN or len(task.submitted) < task.params.min_clients:
        return False
    everyone = len(task.submitted) == len(task.clients)
    return everyone or height >= task.epoch_start + task.params.window_blocks


def close_due_epochs(state: State, ctx: BlockContext, backend: str = "numpy") -> list[bytes]:
    """Close every epoch that is due in this block; return the ids of the tasks closed."""
    closed = []
    ids = open_tasks(state)
    still_open = []
    for task_id in ids:
        task = load_task(state, task_id)
        assert task is not None
        if epoch_due(task, ctx.height):
            close_epoch(state, task_id, task, ctx, backend)
            closed.append(task_id)
        if task.status == OPEN:
            still_open.append(task_id)
    if still_open != ids:
        set_open_tasks(state, still_open)
    return closed


def _blob_array(state: State, blob_hash: bytes, dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    blob = state.get_blob(blob_hash)
    assert blob is not None, "a referenced blob is missing"
    return np.frombuffer(blob, dtype=dtype)


def close_epoch(
    state: State, task_id: bytes, task: TaskState, ctx: BlockContext, backend: str
) -> None:
    p = task.params
    dt = p.np_dtype
    updates = np.stack([_blob_array(state, h, dt) for h in task.pending])
    prev_global = _blob_array(state, task.prev_global, dt) if task.prev_global else None
    prev_own = []
    for client in task.submitted:
        last = state.get(keys.last_update(task_id, client))
        prev_own.append(None if last is None else _blob_array(state, last, dt))
    result = evaluate_epoch(updates, p.rules, prev_global, prev_own, backend=backend)
    for i, client in enumerate(task.submitted):
        c = result.clients[i]
        state.set(
            keys.client_record(task_id, task.epoch, client),
            encoding.encode(
                [
                    task.pending[i],
                    c.score,
                    c.rank,
                    c.sq_norm,
                    c.loo_dot,
                    c.loo_rest_sq,
                    c.global_dot,
                    c.flags,
                    c.selected,
                ]
            ),
        )
        prev = load_verdict(state, task_id, client)
        v = next_verdict(prev, c.flags, task.epoch, p.rules)
        state.set(
            keys.verdict(task_id, client),
            encoding.encode([v.strikes, v.slashable, v.reason, v.epoch]),
        )
        if v.slashable and not prev.slashable:
            write_slash_evidence(state, client, task_id, v.epoch, v.reason)
        record_reward_share(state, task_id, client, c.flags)
        state.set(keys.last_update(task_id, client), task.pending[i])
    base = _blob_array(state, task.base, MODEL_DTYPE).astype(np.int64)
    lim = np.iinfo(np.int32)
    next_base = np.clip(base + result.aggregate, lim.min, lim.max).astype(MODEL_DTYPE)
    next_hash = state.put_blob(next_base.tobytes())
    qlim = np.iinfo(dt).max
    step = np.clip(result.aggregate, -qlim, qlim).astype(dt)
    step_hash = state.put_blob(step.tobytes())
    state.set(
        keys.epoch(task_id, task.epoch),
        encoding.encode(
            [
                len(task.submitted),
                task.base,
                step_hash,
                next_hash,
                ctx.height,
                list(task.submitted),
                -1,
            ]
        ),
    )
    task.base = next_hash
    task.prev_global = step_hash
    task.epoch += 1
    task.epoch_start = ctx.height + 1
    task.submitted = []
    task.pending = []
    if task.epoch >= p.epochs:
        task.status = FINISHED
        write_settlement(state, task_id, task)
    save_task(state, task_id, task)
