"""A client's slashing state in a task, every field taken from proofs checked here.

The verdict decides whether a client's L1 stake can be slashed, so the SDK does not take the
node's word for it: :func:`fetch_slashing_state` asks the node for the state at a block and
:func:`verify_slashing_state` checks each proof against a root the caller trusts, either the
one the L1 holds for its newest committed batch (independent of the node) or the node's own
(consistent, not independent). A record the node leaves out is caught too: the task's proven
epoch count says which records must exist, and the missing ones are proven absent.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from stf import state_keys
from stf.fl.flags import flag_names
from stf.fl.records import CLEAN, ClientRecord, Verdict
from stf.fl.task import TaskState
from stf.ids import ClientKey, TaskId

from .answers import as_bytes, check_key
from .errors import InvalidArgument, NotFound, NotOnL1Yet
from .flow import Flow, blocking, call, drive, nested
from .proofs import ProofError, checked_value

__all__ = [
    "SlashingState",
    "fetch_slashing_state",
    "slashing_verifier",
    "verify_slashing_state",
]


@dataclass(frozen=True)
class SlashingState:
    """A client's standing in a task, every field taken from proven state values.

    ``slashable``: a provable offence, the L1 stake can be slashed. ``barred``: enough strikes
    to be out of the task (no more updates, no reward), the stake untouched.
    ``records``: one per epoch the client submitted in, ``{epoch, score, rank, flags,
    flagNames}``. ``verified_against``: ``"l1 batch N"`` (proofs checked against the state root
    the L1 holds for batch N, the newest committed) or ``"node"`` (against the node's own latest
    root: consistent, not independent).
    """

    task_id: bytes
    client: bytes
    slashable: bool
    reason: int
    reason_names: list[str]
    strikes: int
    records: list[dict[str, Any]]
    height: int
    state_root: bytes
    verified_against: str
    slash_epoch: int | None = None
    barred: bool = False  # too many strikes: out of the task, stake untouched
    barred_epoch: int | None = None


def verify_slashing_state(
    resp: dict[str, Any],
    task_id: TaskId,
    client: ClientKey,
    root: bytes,
    fetch_proof: Callable[[bytes], dict[str, Any]],
) -> tuple[Verdict, list[dict[str, Any]]]:
    """Check an ``mps_getSlashingState`` answer against a trusted ``root``.

    Returns the proven verdict fields and records. Raises :class:`ProofError` when a proof
    fails, names another key, or a record the task's proven epoch count implies is missing
    (``fetch_proof(key)`` must return ``mps_getProof`` at the same block; it is asked only for
    the epochs the answer leaves out, to prove the client sent nothing there).
    """
    return drive(slashing_verifier(resp, task_id, client, root), fetch_proof)


Checked = tuple[Verdict, list[dict[str, Any]]]


def slashing_verifier(
    resp: dict[str, Any], task_id: TaskId, client: ClientKey, root: bytes
) -> Generator[bytes, dict[str, Any], Checked]:
    """:func:`verify_slashing_state` as a flow: it yields the key of each proof it needs and is
    sent the ``mps_getProof`` answer, so the sync and async clients share this one check."""
    try:
        vresp, tresp, recs = resp["verdict"], resp["taskRecord"], resp["records"]
    except (KeyError, TypeError):
        raise ProofError("the node's slashing state lacks its proofs") from None
    check_key(vresp, state_keys.verdict(task_id, client))
    raw_verdict = checked_value(vresp, root)
    check_key(tresp, state_keys.task(task_id))
    raw_task = checked_value(tresp, root)
    if raw_task is None:
        raise NotOnL1Yet(f"task {task_id.hex()} is not in the state under root {root.hex()}")
    closed = TaskState.decode(raw_task).epoch
    verdict = CLEAN if raw_verdict is None else Verdict.decode(raw_verdict)
    by_epoch: dict[int, bytes] = {}
    for rec in recs:
        named = state_keys.parse_client_record(as_bytes(rec.get("key", b"")))
        if named is None or named[0] != task_id or named[2] != client:
            raise ProofError("the node sent a record of another task or client")
        ep = named[1]
        if ep in by_epoch or ep >= closed:
            raise ProofError(f"the node sent epoch {ep} twice, or one not closed")
        value = checked_value(rec, root)
        if value is None:
            raise ProofError(f"the node sent an empty record for epoch {ep}")
        by_epoch[ep] = value
    for ep in range(closed):
        if ep not in by_epoch:
            key = state_keys.client_record(task_id, ep, client)
            p = yield key
            check_key(p, key)
            if checked_value(p, root) is not None:
                raise ProofError(f"the node left out the client's record of epoch {ep}")
    records = []
    for ep in sorted(by_epoch):
        r = ClientRecord.decode(by_epoch[ep])
        records.append(
            {
                "epoch": ep,
                "score": r.score,
                "rank": r.rank,
                "flags": r.flags,
                "flagNames": flag_names(r.flags),
                "credit": r.credit,
            }
        )
    return verdict, records


def fetch_slashing_state(
    committed_batch: Callable[[], tuple[int, bytes, int] | None],
    task_id: bytes,
    client: bytes,
    trust: str = "l1",
) -> Flow[SlashingState]:
    """Ask the node for ``client``'s slashing state in a task and check it against a root.

    ``trust="l1"``: ``committed_batch()`` (the L1's newest ``(index, root, last block)``; only
    called here, so a client without the L1 can still use ``trust="node"``) picks the block and
    the root. ``trust="node"``: the node's latest block and the root it gives.
    """
    if trust == "l1":
        batch = yield from blocking(committed_batch)
        if batch is None:
            raise NotOnL1Yet("no batch is committed on the L1 yet")
        index, root, height = batch
        where = f"l1 batch {index}"
        try:
            resp = yield from call("mps_getSlashingState", task_id, client, height)
        except NotFound as exc:  # the task is younger than the batch
            raise NotOnL1Yet(
                f"task {task_id.hex()} is not in L1 batch {index} (block {height}) yet"
            ) from exc
    elif trust == "node":
        resp = yield from call("mps_getSlashingState", task_id, client)
        height, where = int(resp["height"]), "node"
        root = as_bytes(resp["stateRoot"])
    else:
        raise InvalidArgument("trust must be 'l1' or 'node'")
    if resp.get("height") is not None and int(resp["height"]) != height:
        raise ProofError(f"asked for block {height}, the node answered {resp['height']}")

    verifier = slashing_verifier(resp, TaskId(task_id), ClientKey(client), root)
    verdict, records = yield from nested(verifier, lambda key: call("mps_getProof", key, height))
    return SlashingState(
        task_id=task_id,
        client=client,
        slashable=verdict.slashable,
        reason=verdict.reason,
        reason_names=flag_names(verdict.reason),
        strikes=verdict.strikes,
        records=records,
        height=height,
        state_root=root,
        verified_against=where,
        slash_epoch=verdict.epoch if verdict.slashable else None,
        barred=verdict.barred,
        barred_epoch=verdict.epoch if verdict.barred else None,
    )
