"""When the rollup releases an unbonding stake: the rule the L1 pays a withdrawal on.

The L1 StakingRegistry pays a stake back only on proof of ``release/<client>`` under a
finalized root, so this module is the whole of "when may a client leave". A time-based
unbonding can be raced (commit a poisoned update, ``unregister``, withdraw before the slash
reaches the L1); a release cannot, because the STF writes it only when nothing can slash the
stake any more:

* the stake is unbonding on the rollup (the L1 ``unregister`` arrived as a deposit), so the
  client can commit nothing new (:func:`stf.stakes.not_staked`), though it may still reveal what
  it committed (a commitment is a promise made while staked, and its REVEAL_MISSING strike is the
  same whether or not the client is leaving);
* no open task holds a commitment of the client in its current epoch: every epoch it took part
  in has closed, and its verdict there is final. A commitment still in its commit phase is
  dropped when the unbond arrives: nothing of that epoch is public yet, so dropping it tells the
  client nothing and costs the others nothing (it might as well never have committed); this way
  only reveal phases, which end by their window, can hold a release back;
* no task holds slash evidence against it (``convicted/<client>``, set with the first
  ``slash/`` leaf): a convicted stake waits for its slash, for good.

After the release the client cannot commit (still unbonding), so the STF never writes slash
evidence against a released stake: on the L1 a stake is released or slashable, never both.
The check runs when the unbond arrives and again whenever one of the client's commitments is
discharged (its epoch closed, its task finished or completed).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .. import state_keys
from ..ids import ClientKey, TaskId
from ..stakes import StakeStatus, read_stake
from ..state import State
from .settlement import encode_release
from .store import load_task, open_tasks, save_task
from .task import TaskState


def start_unbonding(state: State, client: ClientKey, unbond_l1_block: int) -> None:
    """The L1 ``unregister`` of ``unbond_l1_block`` reached the rollup: release at once if the
    client holds no open commitment, else when its last one is discharged."""
    state.set(state_keys.unbonding(client), encode_release(unbond_l1_block))
    for task_id, task in _committed_in(state, client):
        if not task.revealing:
            pos = task.submitted.index(client)
            for column in (task.submitted, task.pending, task.commitments):
                del column[pos]
            save_task(state, task_id, task)
    release_if_free(state, client)


def release_committers(state: State, clients: Iterable[ClientKey]) -> None:
    """``clients`` just had a commitment discharged: release those now free."""
    for client in clients:
        release_if_free(state, client)


def release_if_free(state: State, client: ClientKey) -> None:
    pending = state.get(state_keys.unbonding(client))
    if pending is None or state.get(state_keys.convicted(client)) is not None:
        return
    stake = read_stake(state, client)
    if stake is not None and stake.status != StakeStatus.UNBONDING:
        return  # slashed on the L1 meanwhile (no record: a stake that never counted, free)
    if next(_committed_in(state, client), None) is not None:
        return
    state.set(state_keys.release(client), pending)
    state.delete(state_keys.unbonding(client))


def _committed_in(state: State, client: ClientKey) -> Iterator[tuple[TaskId, TaskState]]:
    """The open tasks whose current epoch holds a commitment of ``client`` (lazily)."""
    for task_id in open_tasks(state):
        task = load_task(state, task_id)
        if task is not None and client in task.submitted:
            yield task_id, task
