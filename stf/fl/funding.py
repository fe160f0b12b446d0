"""When an L1 funding pays for a task: the rule that makes a task slot cost its requester.

On a chain with an L1 RewardManager (``funding_window_blocks`` > 0 in its spec) a task is paid
for before it exists, the way an Arbitrum retryable is: the requester signs its ``create_task``
(the task id is that transaction's hash), funds that id on the L1 (``fundTask``: BASE_FEE to
the treasury, the deposit escrowed), and sends the transaction once the rollup has recorded the
funding. So every open-task slot has cost someone BASE_FEE, and an unstaked key can no longer
fill the slots for free.

The L1 keys fundings by (task id, funder), and so does the rollup
(``funding/<task><funder>``): anyone may fund any id, but only the funding the ``create_task``
itself names (``TaskParams.funder``, inside the signed transaction whose hash is the id) is
bound, and the settle leaf names that funder, so the L1 settles that funding and no other. An
attacker who funds a task id it saw first funds it for itself: never bound, refunded less its
BASE_FEE (it cannot be the task's funder; the victim's own funding is unaffected).

A funding not bound by ``bind_by`` (its arrival height plus the window; its arrival height if
the task already exists, for then nothing can bind it) can never be bound, and its leaf then
says so: ``bound == 0`` in a state at a height >= ``bind_by`` is final, which is what the L1's
``reclaim`` checks against a finalized root. A bound funding is paid out by settlement, which
every task reaches by rule (stf.fl.epoch's deadlines). No deposit stays locked.
"""

from __future__ import annotations

from dataclasses import replace

from .. import state_keys
from ..errors import Code, TxFailed
from ..ids import L1Address, TaskId
from ..state import State
from .settlement import FundingLeaf, decode_funding, encode_funding
from .store import load_task

MAX_BIND_BY = 2**64 - 1  # the leaf's uint64


def read_funding(state: State, task_id: TaskId, funder: L1Address) -> FundingLeaf | None:
    raw = state.get(state_keys.funding(task_id, funder))
    return None if raw is None else decode_funding(raw)


def record_funding(
    state: State, task_id: TaskId, funder: L1Address, deposit: int, height: int, window: int
) -> None:
    """An L1 ``TaskFunded``: recorded unbound, bindable until ``height + window``."""
    if read_funding(state, task_id, funder) is not None:  # the L1 refuses it first
        raise TxFailed(Code.TASK_ALREADY_FUNDED, "this account already funded this task id")
    exists = load_task(state, task_id) is not None
    # never past the leaf's 64 bits, whatever the window: an encoding error here would be no
    # receipt but an unbuildable block, and deposits go in order, so the chain would halt
    bind_by = height if exists else min(height + window, MAX_BIND_BY)
    state.set(
        state_keys.funding(task_id, funder), encode_funding(FundingLeaf(deposit, bind_by, False))
    )


def bind_funding(state: State, task_id: TaskId, funder: bytes, height: int, required: bool) -> None:
    """The ``create_task`` of ``task_id`` takes the funding it names, or fails TASK_NOT_FUNDED.

    ``required``: the chain funds every task (a slot must cost its requester). A task that names
    no funder on a chain that does not require one runs unfunded (no rewards to settle)."""
    if not funder:
        if required:
            raise TxFailed(
                Code.TASK_NOT_FUNDED,
                "this chain's tasks are funded on the L1 first: fund the task id there "
                "(fundTask) and name the funding account as the task's funder",
            )
        return
    f = read_funding(state, task_id, L1Address(funder))
    # never bound already: a bound funding's task exists, and its id is one transaction's hash
    if f is None:
        why = "the rollup has recorded no L1 funding of this task id by the funder"
        raise TxFailed(Code.TASK_NOT_FUNDED, f"funder 0x{funder.hex()}: {why}")
    if height > f.bind_by:
        why = f"the funding lapsed at height {f.bind_by} (reclaim it on the L1)"
        raise TxFailed(Code.TASK_NOT_FUNDED, f"funder 0x{funder.hex()}: {why}")
    state.set(
        state_keys.funding(task_id, L1Address(funder)), encode_funding(replace(f, bound=True))
    )
