"""State keys: the whole layout of the state tree in one place.

Keys are ASCII namespaces followed by fixed-length binary ids, so no two
namespaces can produce the same key. docs/protocol.md mirrors this file.
"""

from __future__ import annotations

from .ids import BlobId, ClientKey, L1Address, TaskId


def nonce(sender: bytes) -> bytes:
    return b"nonce/" + sender


def record(sender: bytes, name: str) -> bytes:
    return b"record/" + sender + b"/" + name.encode()


def record_count(sender: bytes) -> bytes:
    """How many records ``sender`` holds, on a chain that prices its state (stf.accounts)."""
    return b"records/" + sender


def blob(blob_hash: BlobId | bytes) -> bytes:
    return b"blob/" + blob_hash


def stake(client_key: ClientKey) -> bytes:
    return b"stake/" + client_key


CHAIN_SPEC = b"chain/spec"  # the consensus parameters, written once by genesis
L1_DEPOSIT_COUNT = b"l1/deposits"
L1_LAST_EVENT = b"l1/last_event"


# -- federated learning (stf/fl) ------------------------------------------------
OPEN_TASKS = b"tasks/open"


def task(task_id: TaskId) -> bytes:
    return b"task/" + task_id


def epoch(task_id: TaskId, n: int) -> bytes:
    if not 0 <= n < 2**32:
        raise ValueError("epoch out of range")
    return b"epoch/" + task_id + n.to_bytes(4, "big")


def client_record(task_id: TaskId, n: int, client: ClientKey) -> bytes:
    """Per (task, epoch, client): score, rank, correlations, flags. The slashing evidence."""
    return b"rec/" + task_id + n.to_bytes(4, "big") + client


def reference(task_id: TaskId, n: int) -> bytes:
    """Per (task, epoch): the requester's committed (and revealed) reference update."""
    if not 0 <= n < 2**32:
        raise ValueError("epoch out of range")
    return b"ref/" + task_id + n.to_bytes(4, "big")


def verdict(task_id: TaskId, client: ClientKey) -> bytes:
    return b"verdict/" + task_id + client


def last_update(task_id: TaskId, client: ClientKey) -> bytes:
    return b"last/" + task_id + client


def unbonding(client: ClientKey) -> bytes:
    """``unbond_l1_block(8)`` while the client's release waits for epochs it committed to."""
    return b"unbonding/" + client


def convicted(client: ClientKey) -> bytes:
    """The task of the client's first slash evidence: a convicted stake is never released."""
    return b"convicted/" + client


SLASH_PREFIX = b"slash/"


# -- leaves the L1 contracts check (fixed binary values, stf/fl/settlement.py) ----
def slash_evidence(client: ClientKey, task_id: TaskId) -> bytes:
    """``epoch(4) || reason(4)``: the client's verdict in the task became slashable."""
    return SLASH_PREFIX + client + task_id


def release(client: ClientKey) -> bytes:
    """``unbond_l1_block(8)``: the rollup releases the client's stake from the unbonding that the
    L1 ``unregister`` of that block began (the L1 StakingRegistry pays it back on this proof)."""
    return b"release/" + client


def settlement(task_id: TaskId) -> bytes:
    """``status(1) || epochs_trained(4) || total_clean_updates(8) || funder(20)``: the task
    stopped."""
    return b"settle/" + task_id


def reward_share(task_id: TaskId, client: ClientKey) -> bytes:
    """``accepted(4) || flagged(1)``: the client's recorded updates in the task."""
    return b"reward/" + task_id + client


def upload(task_id: TaskId, uploader: ClientKey | L1Address) -> bytes:
    """``[epoch, bytes]``: the blob bytes a client or requester (32-byte key) uploaded for the
    task in that epoch, or a funding (20-byte L1 address) before the task existed
    (:mod:`stf.fl.uploads`)."""
    return b"upload/" + task_id + uploader


def data_budget(task_id: TaskId) -> bytes:
    """``[billed, epoch, reserved, sent]``: the task's bytes its funder pays for, on a chain
    that prices them (:mod:`stf.fl.data_budget`)."""
    return b"data/" + task_id


def funding(task_id: TaskId, funder: L1Address) -> bytes:
    """``deposit(32) || bind_by(8) || bound(1)``: one L1 ``TaskFunded`` (a task id may be funded
    by several accounts; the task binds the one its ``create_task`` names)."""
    return b"funding/" + task_id + funder


# -- parsing keys back (readers that list or check keys: the SDK's light client, the L1 services)
_ID = 32
_EPOCH = 4


def parse_client_record(key: bytes) -> tuple[TaskId, int, ClientKey] | None:
    """``(task, epoch, client)`` of a :func:`client_record` key, or ``None`` for any other key."""
    body = key[len(b"rec/") :]
    if not key.startswith(b"rec/") or len(body) != _ID + _EPOCH + _ID:
        return None
    task = TaskId(body[:_ID])
    n = int.from_bytes(body[_ID : _ID + _EPOCH], "big")
    return task, n, ClientKey(body[_ID + _EPOCH :])


def parse_slash_evidence(key: bytes) -> tuple[ClientKey, TaskId] | None:
    """``(client, task)`` of a :func:`slash_evidence` key, or ``None`` for any other key."""
    body = key[len(SLASH_PREFIX) :]
    if not key.startswith(SLASH_PREFIX) or len(body) != _ID + _ID:
        return None
    return ClientKey(body[:_ID]), TaskId(body[_ID:])


SETTLE_PREFIX = settlement(TaskId(b""))  # b"settle/", spelled once: in settlement()


def parse_settlement(key: bytes) -> TaskId | None:
    """The task of a :func:`settlement` key, or ``None`` for any other key."""
    body = key[len(SETTLE_PREFIX) :]
    if not key.startswith(SETTLE_PREFIX) or len(body) != _ID:
        return None
    return TaskId(body)
