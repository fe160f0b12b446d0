"""An epoch on the chain: the clients' waves of updates, what the chain shows of them, the close.

The second-wave free riders know only what the chain shows, so they read the first wave's
updates from its blocks (``chain_peers``) rather than from the demo's memory.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from client_sdk.answers import as_bytes
from client_sdk.client import MPSClient
from client_sdk.errors import NotFound, RPCError, SDKError, WrongEpoch
from client_sdk.keys import Keypair
from client_sdk.tx import put_record
from stf.context import Limits
from stf.tx import Transaction
from stf.txtypes.fl import SubmitUpdate

from .data import F64
from .members import Member

I64 = npt.NDArray[np.int64]


def chain_peers(
    mps: MPSClient, task_id: bytes, epoch: int, since: int, d: int
) -> list[tuple[bytes, I64]]:
    """``(sender, update)`` of every update sent to ``task_id`` for ``epoch`` so far, read from
    the chain's blocks (``submit_update`` transactions from height ``since`` on), in order."""
    out: list[tuple[bytes, I64]] = []
    head = int(mps.rpc.call("mps_blockNumber"))
    for h in range(since, head + 1):
        for tx in mps.block(h, full=True)["transactions"]:
            if tx.get("typeName") != "submit_update":
                continue
            rc = mps.receipt(as_bytes(tx["hash"]))
            if rc is None or int(rc["status"]) != 1:
                continue
            # the STF's own parser (the chain's limits do not matter for a tx already included)
            tid, ep, data = SubmitUpdate.decode_payload(as_bytes(tx["payload"]), Limits())
            if tid == task_id and ep == epoch and isinstance(data, bytes) and len(data) == d:
                out.append((as_bytes(tx["sender"]), np.frombuffer(data, np.int8).astype(np.int64)))
    return out


def submit_all(
    ex: ThreadPoolExecutor, task_id: bytes, epoch: int, wave: list[tuple[Member, F64]]
) -> None:
    """Every member of the wave sends its update at once; each waits for its inclusion."""

    def submit(item: tuple[Member, F64]) -> None:
        m, delta = item
        m.missed = ""
        try:
            m.mps.submit_update(task_id, epoch, delta)
        except WrongEpoch:
            m.missed = "missed the epoch: its window closed before the update went in"
        except (RPCError, SDKError) as exc:
            m.lost = f"stopped in epoch {epoch}: {type(exc).__name__}: {exc}"

    list(ex.map(submit, wave))


def wait_epoch(mps: MPSClient, task_id: bytes, epoch: int, timeout: float) -> dict[str, Any]:
    """Wait for the epoch to close. It closes once every client that can still submit has;
    if one that could does not (a client that stopped), only the window's end closes it, and
    the dev node seals a block only when a transaction waits, so the requester sends a small
    record per block meanwhile."""
    deadline = time.monotonic() + timeout
    beats = 0
    while True:
        try:
            return mps.epoch(task_id, epoch)
        except NotFound:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"epoch {epoch} did not close within {timeout:.0f} s")
        beats += 1
        value = f"{epoch}.{beats}".encode()

        def beat(k: Keypair, c: int, n: int, v: bytes = value) -> Transaction:
            return put_record(k, c, n, "demo/heartbeat", v)

        mps.transact(beat)  # waits for its block
