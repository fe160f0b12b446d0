"""Where tasks live in the state: the open-task list and the task records.

Apart from the epoch close because the transactions, the epoch close and the stake release
(:mod:`stf.fl.release`) all read them, and the release is itself called from the epoch close.
"""

from __future__ import annotations

from .. import encoding, state_keys
from ..ids import TaskId
from ..state import State
from .task import TaskState


def open_tasks(state: State) -> list[TaskId]:
    raw = state.get(state_keys.OPEN_TASKS)
    return [] if raw is None else list(encoding.decode(raw))


def set_open_tasks(state: State, ids: list[TaskId]) -> None:
    state.set(state_keys.OPEN_TASKS, encoding.encode(ids) if ids else None)


def load_task(state: State, task_id: TaskId) -> TaskState | None:
    raw = state.get(state_keys.task(task_id))
    return None if raw is None else TaskState.decode(raw)


def save_task(state: State, task_id: TaskId, task: TaskState) -> None:
    state.set(state_keys.task(task_id), task.encode())
