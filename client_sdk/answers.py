"""Reading the node's RPC answers: bytes fields, task parameters, the key a proof names.

Kept apart from the clients because the sync and async clients, the CLI, the demo and the
training helpers all read the same answers, and none of them should need a client to do it.
Under msgpack (the default) bytes fields arrive as ``bytes``; under ``media="json"`` as ``0x``
hex strings: :func:`as_bytes` takes both so callers need not know which media was used.
"""

from __future__ import annotations

from typing import Any

from mps_common.hexutil import as_bytes
from stf.fl.rules import EpochRules
from stf.fl.task import TaskParams
from stf.ids import BlobId, ClientKey

from .proofs import ProofError

__all__ = ["as_bytes", "check_key", "params_of"]


def params_of(task: dict[str, Any]) -> TaskParams:
    """The :class:`TaskParams` of an ``mps_getTask`` answer."""
    return TaskParams(
        name=task["name"],
        layout=tuple((n, tuple(s)) for n, s in task["layout"]),
        dtype=task["dtype"],
        shift=int(task["shift"]),
        init_model=BlobId(as_bytes(task["initModel"])),
        script=BlobId(as_bytes(task["script"])),
        epochs=int(task["epochs"]),
        target_accuracy_ppm=int(task["targetAccuracyPpm"]),
        min_clients=int(task["minClients"]),
        max_clients=int(task["maxClients"]),
        window_blocks=int(task["windowBlocks"]),
        evaluator=ClientKey(as_bytes(task["evaluator"])),
        rules=EpochRules.from_list(task["rules"]),
        funder=b"" if task.get("funder") is None else as_bytes(task["funder"]),
    )


def check_key(resp: dict[str, Any], key: bytes) -> None:
    """Refuse an ``mps_getProof`` answer for another key than ``key``.

    :func:`~client_sdk.proofs.checked_value` proves the answer's own key; without this check
    a node could answer with a valid proof of some other (say, absent) key.
    """
    try:
        got = as_bytes(resp["key"])
    except (KeyError, TypeError, ValueError):
        raise ProofError("the node's proof names no key") from None
    if got != key:
        raise ProofError(f"the node proved key {got!r:.60}, not the one asked for")
