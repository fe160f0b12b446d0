"""What the STF will certainly do to an update, known before it is sent.

Some updates are flagged for sure, whatever the others send: all zeros (ZERO), the client's own
last update again (REPLAY_OWN), the chain's last global step (REPLAY_GLOBAL, the one offence that
slashes the stake on the L1, or GLOBAL_ECHO when the step is too sparse to prove anything). The
easy way there is a mistake, such as sending the same delta file twice, so the SDK refuses them
before anything is sent (:class:`client_sdk.errors.CertainOffence`) unless forced.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from stf.fl.checks import MIN_PROVABLE_SUPPORT


def foreseen(
    update: npt.NDArray[Any],
    update_id: bytes,
    step: npt.NDArray[Any] | None,
    own_last: bytes | None,
) -> str | None:
    """Why the STF will flag ``update`` (its quantized values, STF id ``update_id``) for sure,
    with what it costs; ``None`` if nothing is certain. ``step``: the task's last global step,
    ``own_last``: the id of the client's last update in the task."""
    if not np.any(update):
        return "it is all zeros: flagged ZERO, a strike (enough strikes bar you from the task)"
    if own_last is not None and own_last == update_id:
        return "it is your last update in this task byte for byte: flagged REPLAY_OWN, a strike"
    if step is not None and np.array_equal(step, update):
        if np.count_nonzero(step) >= MIN_PROVABLE_SUPPORT:
            return (
                "it is the chain's last global step byte for byte: REPLAY_GLOBAL, a provable "
                "offence: your stake would be slashed on the L1"
            )
        return "it is the chain's last global step: flagged GLOBAL_ECHO, a strike"
    return None
