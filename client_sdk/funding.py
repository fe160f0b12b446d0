"""A requester's L1 funding of a task, as the rollup records it: what ``create_task`` waits for,
and the proof ``RewardManager.reclaim`` pays a never-bound funding back on.

Apart from the client core, like :mod:`client_sdk.release`, because money moves on exactly this
proof, and it says plainly why there is none yet (still bindable, not final yet, or never:
bound, so settlement pays it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stf import state_keys
from stf.fl.settlement import FundingLeaf, decode_funding
from stf.ids import L1Address, TaskId

from .answers import as_bytes, check_key
from .errors import NotOnL1Yet, SDKError, WaitTimeout
from .flow import Flow, blocking, call, head_mark, next_head
from .proofs import checked_value

if TYPE_CHECKING:
    from .l1 import L1

__all__ = ["funding_reclaim", "recorded_funding"]


def _leaf(resp: dict[str, Any], key: bytes, root: bytes | None) -> FundingLeaf | None:
    check_key(resp, key)
    value = checked_value(resp, root)
    return None if value is None else decode_funding(value)


def recorded_funding(task_id: bytes, funder: bytes, timeout: float) -> Flow[FundingLeaf]:
    """Wait until the rollup's head state holds ``funder``'s L1 funding of ``task_id`` (the
    sequencer brings L1 events in after its confirmations); WaitTimeout after ``timeout`` s."""
    key = state_keys.funding(TaskId(task_id), L1Address(funder))
    deadline = time.monotonic() + timeout
    while True:
        mark = yield from head_mark()
        leaf = _leaf((yield from call("mps_getProof", key, "latest")), key, None)
        if leaf is not None:
            return leaf
        if time.monotonic() > deadline:
            raise WaitTimeout(
                f"the rollup recorded no L1 funding of task {task_id.hex()[:16]}… by "
                f"0x{funder.hex()} within {timeout}s (is the node following the L1?)"
            )
        yield from next_head(mark, 0.2)


def funding_reclaim(l1: Callable[[], L1], task_id: bytes) -> Flow[dict[str, Any]]:
    """``{batch, bindBy, siblings, deposit}``: the proof that this account's funding of
    ``task_id`` was never bound, in the newest finalized batch at a height >= its ``bindBy``,
    checked against that batch's root. ``NotOnL1Yet`` while it may still be bound or is not
    final; ``SDKError`` when there is nothing to reclaim (none, bound, reclaimed)."""
    funder = l1().address_bytes
    on_l1 = yield from blocking(lambda: l1().funding(task_id))
    if on_l1["deposit"] == 0:
        raise SDKError(f"this account did not fund task {task_id.hex()} on the L1")
    if on_l1["reclaimed"] or on_l1["settled"]:
        raise SDKError("the funding was paid out already (reclaimed or settled)")
    key = state_keys.funding(TaskId(task_id), L1Address(funder))
    head = _leaf((yield from call("mps_getProof", key, "latest")), key, None)
    if head is None:
        raise NotOnL1Yet("the rollup has not recorded the funding yet")
    if head.bound:
        raise SDKError("the task took this funding: it is paid out by the task's settlement")
    batch = yield from blocking(lambda: l1().finalized_batch())
    if batch is None or batch[2] < head.bind_by:
        at = "no finalized batch yet" if batch is None else f"finalized up to height {batch[2]}"
        raise NotOnL1Yet(
            f"the funding may be bound until rollup height {head.bind_by} ({at}): wait for a "
            "finalized batch past it"
        )
    resp = yield from call("mps_getProof", key, batch[2])
    leaf = _leaf(resp, key, batch[1])
    if leaf is None or leaf.bound:
        raise SDKError(f"finalized batch {batch[0]} holds no unbound funding for this account")
    siblings = [as_bytes(s) for s in resp["proof"]["siblings"]]
    return {"batch": batch[0], "bindBy": leaf.bind_by, "siblings": siblings,
            "deposit": leaf.deposit}  # fmt: skip
