"""A client's reward leaf in a settled task, proven against the root the L1 settled it on.

Apart from the client core because it is the one place the SDK checks a proof against the
``RewardManager``'s root rather than a batch's, and a claim pays out on exactly this proof.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stf import state_keys
from stf.fl.settlement import decode_reward_share
from stf.ids import ClientKey, TaskId

from .answers import as_bytes, check_key
from .errors import NotOnL1Yet, SDKError
from .flow import Flow, blocking, call
from .proofs import checked_value

if TYPE_CHECKING:
    from .l1 import L1

__all__ = ["reward_share"]


def reward_share(l1: Callable[[], L1], task_id: bytes, client: bytes) -> Flow[dict[str, Any]]:
    """``{accepted, flagged, siblings, batch, height}`` of ``client``'s ``reward/`` leaf, its
    proof checked against the task's settlement root (``l1()``: the L1, built on first use).
    NotOnL1Yet before settlement."""
    info = yield from blocking(lambda: l1().task(task_id))
    if not info["settled"]:
        raise NotOnL1Yet(f"task {task_id.hex()} is not settled on the L1 yet")
    batch = yield from blocking(lambda: l1().find_batch(info["root"]))
    if batch is None:
        raise NotOnL1Yet("the task's settlement root is in no live batch")
    key = state_keys.reward_share(TaskId(task_id), ClientKey(client))
    resp = yield from call("mps_getProof", key, batch[2])
    check_key(resp, key)
    value = checked_value(resp, info["root"])
    if value is None:
        raise SDKError("no reward: the client sent no update in this task")
    accepted, flagged = decode_reward_share(value)
    siblings = [as_bytes(s) for s in resp["proof"]["siblings"]]
    return {"accepted": accepted, "flagged": flagged, "siblings": siblings,
            "batch": batch[0], "height": batch[2]}  # fmt: skip
