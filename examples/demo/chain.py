"""An epoch on the chain: the clients' waves of updates, what the chain shows of them, the close.

Updates are committed before they are revealed (commit-reveal), so during the commit phase the
chain shows only digests. The copying free rider works from what the chain shows: it reads the
first wave's commitments from the blocks (``chain_commitments``), copies one, and once its victim
has revealed reads the update and salt (``chain_reveals``) and tries to open the copied
commitment with them (``steal_reveal``). The digest binds the victim's key, so the reveal fails.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from client_sdk.answers import as_bytes
from client_sdk.client import MPSClient
from client_sdk.errors import NotFound, RPCError, SDKError, WrongEpoch
from client_sdk.keys import Keypair
from stf import encoding
from stf.context import Limits
from stf.tx import Transaction, make_tx
from stf.txtypes.fl import CommitUpdate, SubmitUpdate

from .data import F64
from .members import Member


def _sealed(mps: MPSClient, since: int, type_name: str) -> Iterator[dict[str, Any]]:
    """Every successful ``type_name`` transaction sealed from height ``since`` on."""
    head = int(mps.rpc.call("mps_blockNumber"))
    for h in range(since, head + 1):
        for tx in mps.block(h, full=True)["transactions"]:
            if tx.get("typeName") != type_name:
                continue
            rc = mps.receipt(as_bytes(tx["hash"]))
            if rc is not None and int(rc["status"]) == 1:
                yield tx


def chain_commitments(
    mps: MPSClient, task_id: bytes, epoch: int, since: int
) -> list[tuple[bytes, bytes]]:
    """``(sender, commitment)`` of every commitment to ``task_id``'s ``epoch``, in chain order."""
    out = []
    for tx in _sealed(mps, since, "commit_update"):
        tid, ep, digest = CommitUpdate.decode_payload(as_bytes(tx["payload"]), Limits())
        if tid == task_id and ep == epoch:
            out.append((as_bytes(tx["sender"]), digest))
    return out


def chain_reveals(
    mps: MPSClient, task_id: bytes, epoch: int, since: int
) -> dict[bytes, tuple[Any, bytes]]:
    """``sender -> (update, salt)`` of every reveal to ``task_id``'s ``epoch``."""
    out = {}
    for tx in _sealed(mps, since, "submit_update"):
        # the STF's own parser (the chain's limits do not matter for a tx already included)
        tid, ep, data, salt = SubmitUpdate.decode_payload(as_bytes(tx["payload"]), Limits())
        if tid == task_id and ep == epoch:
            out[as_bytes(tx["sender"])] = (data, salt)
    return out


def _send_raw(m: Member, type_id: int, value: list[Any]) -> dict[str, Any]:
    """Sign and send one transaction of ``type_id``; its receipt, failed or not."""

    def build(k: Keypair, c: int, n: int) -> Transaction:
        return make_tx(k.signing_key, c, type_id, n, encoding.encode(value))

    (h,) = m.mps.send_all(lambda n: [build(m.mps.require_key(), m.mps.chain_id, n)])
    return m.mps.wait_for_receipt(h)


def copy_commitment(m: Member, task_id: bytes, epoch: int, digest: bytes) -> dict[str, Any]:
    """The copier's commitment: another client's digest, byte for byte."""
    return _send_raw(m, CommitUpdate.TYPE_ID, [task_id, epoch, digest])


def steal_reveal(m: Member, task_id: bytes, epoch: int, update: Any, salt: bytes) -> dict[str, Any]:
    """The copier's reveal: the victim's update and salt, as the chain shows them."""
    return _send_raw(m, SubmitUpdate.TYPE_ID, [task_id, epoch, update, salt])


def wait_commitments(mps: MPSClient, task_id: bytes, n: int, timeout: float) -> None:
    """Until ``n`` clients have committed to the open epoch (or its commit phase ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = mps.task(task_id)
        if len(task["committed"]) >= n or task["phase"] != "commit":
            return
        time.sleep(0.1)
    raise TimeoutError(f"{n} commitments did not arrive within {timeout:.0f} s")


def submit_wave(
    ex: ThreadPoolExecutor, task_id: bytes, epoch: int, wave: list[tuple[Member, F64]]
) -> list[Future[None]]:
    """Every member of the wave commits and reveals its update (``submit_update`` waits for
    the reveal phase in between); the futures end once each reveal is in."""

    def submit(item: tuple[Member, F64]) -> None:
        m, delta = item
        m.missed = ""
        try:
            # the cheaters mean it: past the SDK's refusal of certain offences
            m.mps.submit_update(task_id, epoch, delta, timeout=120.0, force=m.role != "honest")
        except WrongEpoch:
            m.missed = "missed the epoch: its window closed before the update went in"
        except (RPCError, SDKError) as exc:
            m.lost = f"stopped in epoch {epoch}: {type(exc).__name__}: {exc}"

    return [ex.submit(submit, item) for item in wave]


def wait_epoch(mps: MPSClient, task_id: bytes, epoch: int, timeout: float) -> dict[str, Any]:
    """Wait for the epoch to close. It closes once every client that can still submit has;
    if one that could does not (a client that stopped), its window's end closes it: the node
    seals a block a second while a task is open, idle or not."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return mps.epoch(task_id, epoch)
        except NotFound:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"epoch {epoch} did not close within {timeout:.0f} s")
        time.sleep(0.2)
