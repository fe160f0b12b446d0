"""How federated-learning state looks over RPC: tasks, closed epochs, slashing records."""

from __future__ import annotations

from typing import Any

from stf import state_keys
from stf.cid import cid_v1
from stf.fl.data_budget import allowance, data_fee, load_budget
from stf.fl.epoch import awaited, load_reference
from stf.fl.flags import flag_names
from stf.fl.funding import read_funding
from stf.fl.records import ClientRecord, EpochSummary, Verdict
from stf.fl.task import TaskState
from stf.ids import L1Address, TaskId
from stf.records import ChainSpec
from stf.state import STATE_PREFIX, State

from .lookup import StateGet


class _ValuesAt:
    """The STF's key-value reader over one block's state values, so that the STF's own rules
    (not a copy of them) answer questions about that block."""

    def __init__(self, get: StateGet) -> None:
        self._get = get

    def get(self, key: bytes) -> bytes | None:
        return self._get(key[len(STATE_PREFIX) :]) if key.startswith(STATE_PREFIX) else None


def state_at(get: StateGet) -> State:
    """A read-only STF state over ``get`` (a block's values), for the STF's own readers."""
    return State(_ValuesAt(get), b"")


def awaiting(get: StateGet, task_id: TaskId, t: TaskState) -> list[bytes]:
    """The clients the current phase still waits for (it ends early once there are none):
    commitments in the commit phase, reveals in the reveal phase."""
    return list(awaited(state_at(get), task_id, t))


def reference_view(get: StateGet, task_id: TaskId, epoch: int) -> dict[str, Any] | None:
    """The requester's reference of ``epoch`` (stf.fl.reference): null if none is committed,
    else its commitment and its update id (null until revealed)."""
    ref = load_reference(state_at(get), task_id, epoch)
    if ref is None:
        return None
    return {"commitment": ref.commitment, "update": ref.reference or None}


def data_budget_view(get: StateGet, task_id: TaskId, t: TaskState) -> dict[str, Any] | None:
    """What the task's data costs its funder so far (stf.fl.data_budget): null on a chain
    that does not price bytes. ``bytes`` are billed at settlement; ``reserved`` are the open
    epoch's commitments' reservations, which a new commitment must fit beside ``bytes`` within
    ``allowance`` (what the deposit pays for)."""
    state = state_at(get)
    budget = load_budget(state, task_id)
    spec_raw = get(state_keys.CHAIN_SPEC)
    if budget is None or spec_raw is None:
        return None
    fee = ChainSpec.decode(spec_raw).data_fee_per_mib
    funding = read_funding(state, task_id, L1Address(t.params.funder))
    now = budget.at(t.epoch)
    return {
        "bytes": budget.total,
        "reserved": now.reserved,
        "allowance": 0 if funding is None else allowance(funding.deposit, fee),
        "feePerMib": str(fee),
        "feeWei": str(data_fee(budget.total, fee)),
    }


def task_view(task_id: TaskId, t: TaskState, get: StateGet) -> dict[str, Any]:
    p = t.params
    return {
        "id": task_id,
        "name": p.name,
        "requester": t.requester,
        "status": t.status.label,
        "epoch": t.epoch,
        "epochs": p.epochs,
        "baseModel": t.base,
        "previousStep": t.prev_global or None,
        "epochStart": t.epoch_start,
        "phase": "reveal" if t.revealing else "commit",
        "revealStart": t.reveal_start if t.revealing else None,
        "windowBlocks": p.window_blocks,
        "layout": [[n, list(s)] for n, s in p.layout],
        "parameters": p.d,
        "dtype": p.dtype,
        "shift": p.shift,
        "initModel": p.init_model,
        "script": p.script,
        "scriptCid": cid_v1(p.script),
        "initModelCid": cid_v1(p.init_model),
        "targetAccuracyPpm": p.target_accuracy_ppm,
        "minClients": p.min_clients,
        "maxClients": p.max_clients,
        "evaluator": p.evaluator,
        "funder": p.funder or None,  # the L1 account whose funding pays for the task
        "clients": t.clients,
        "committed": t.submitted,
        "revealed": [t.submitted[i] for i in t.revealed],
        "awaiting": awaiting(get, task_id, t),
        "reference": reference_view(get, task_id, t.epoch),
        "dataBudget": data_budget_view(get, task_id, t),
        "rules": p.rules.to_list(),
    }


def client_record_view(client: bytes, rec: ClientRecord) -> dict[str, Any]:
    return {
        "client": client,
        "update": rec.update,
        "score": rec.score,
        "rank": rec.rank,
        "sqNorm": rec.sq_norm,
        "flags": rec.flags,
        "flagNames": flag_names(rec.flags),
        "selected": rec.selected,
        "credit": rec.credit,
    }


def epoch_view(
    task_id: TaskId,
    epoch: int,
    summary: EpochSummary,
    records: list[dict[str, Any]],
    reference: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "task": task_id,
        "epoch": epoch,
        "clients": summary.n_clients,
        "baseModel": summary.base,
        "aggregateStep": summary.step,
        "nextBaseModel": summary.next_base,
        "closedAt": summary.closed_at,
        "accuracyPpm": summary.accuracy_ppm if summary.reported else None,
        # the requester's reference the close weighed the aggregate by (null: none revealed)
        "reference": None if reference is None else reference["update"],
        "records": records,
    }


def verdict_fields(v: Verdict) -> dict[str, Any]:
    """A verdict's fields as mps_getSlashingState lists them after its proofs."""
    return {
        "strikes": v.strikes,
        "slashable": v.slashable,
        "reason": v.reason,
        "reasonNames": flag_names(v.reason),
        "slashEpoch": v.epoch if v.slashable else None,
        "barred": v.barred,
        "barredEpoch": v.epoch if v.barred else None,
    }


def proven_record_fields(epoch: int, r: ClientRecord) -> dict[str, Any]:
    """What a proven client record adds to its proof in mps_getSlashingState."""
    return {
        "epoch": epoch,
        "score": r.score,
        "rank": r.rank,
        "flags": r.flags,
        "flagNames": flag_names(r.flags),
        "credit": r.credit,
    }
