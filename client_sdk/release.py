"""The rollup's release of a client's unbonding stake, proven against a finalized batch: what
``StakingRegistry.withdrawStake`` pays on.

Apart from the client core, like :mod:`client_sdk.rewards`, because a withdrawal pays out on
exactly this proof, and it says plainly why there is none yet (still in an epoch, not final yet,
or never: slash evidence).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stf import state_keys
from stf.fl.settlement import decode_release
from stf.ids import ClientKey

from .answers import as_bytes, check_key
from .errors import NotOnL1Yet, SDKError
from .flow import Flow, blocking, call
from .proofs import checked_value

if TYPE_CHECKING:
    from .l1 import L1

__all__ = ["stake_release"]


def stake_release(l1: Callable[[], L1], client: bytes) -> Flow[dict[str, Any]]:
    """``{batch, siblings, unbondBlock, height}``: the proof of the rollup's release of
    ``client``'s current unbonding in the newest finalized batch, checked against that batch's
    root. ``NotOnL1Yet`` while the release is not written or not final; ``SDKError`` when the
    stake is not unbonding or will never be released."""
    status = yield from blocking(lambda: l1().status(client))
    if status != "unbonding":
        raise SDKError(f"the stake is {status}, not unbonding: unregister first")
    unbond_block = yield from blocking(lambda: l1().unbond_block(client))
    stake = yield from call("mps_getStake", client)
    if stake is not None and stake.get("convictedIn") is not None:
        task = as_bytes(stake["convictedIn"]).hex()
        raise SDKError(f"the stake will not be released: slash evidence in task {task}")
    batch = yield from blocking(lambda: l1().finalized_batch())
    why = _not_released_yet(stake, unbond_block)
    if batch is None:
        raise NotOnL1Yet(f"no finalized L1 batch yet; {why}")
    key = state_keys.release(ClientKey(client))
    resp = yield from call("mps_getProof", key, batch[2])
    check_key(resp, key)
    value = checked_value(resp, batch[1])
    if value is None or decode_release(value) != unbond_block:
        raise NotOnL1Yet(f"finalized batch {batch[0]} (height {batch[2]}) holds no release; {why}")
    siblings = [as_bytes(s) for s in resp["proof"]["siblings"]]
    return {"batch": batch[0], "siblings": siblings, "unbondBlock": unbond_block,
            "height": batch[2]}  # fmt: skip


def _not_released_yet(stake: dict[str, Any] | None, unbond_block: int) -> str:
    """Where the release stands on the node (not proven: the reason for a wait)."""
    if stake is not None and stake.get("released") == unbond_block:
        return "the rollup has released the stake: wait for a batch holding it to finalize"
    if stake is not None and stake.get("releasePending") == unbond_block:
        return "the rollup holds the release until every epoch the client committed to has closed"
    return "the rollup has not seen the unregister yet (it follows the L1 a few blocks behind)"
