"""State keys: the whole layout of the state tree in one place.

Keys are ASCII namespaces followed by fixed-length binary ids, so no two
namespaces can produce the same key. docs/protocol.md mirrors this file.
"""

from __future__ import annotations


def nonce(sender: bytes) -> bytes:
    return b"nonce/" + sender


def record(sender: bytes, name: str) -> bytes:
    return b"record/" + sender + b"/" + name.encode()


def blob(blob_hash: bytes) -> bytes:
    return b"blob/" + blob_hash


def stake(client_key: bytes) -> bytes:
    return b"stake/" + client_key


L1_DEPOSIT_COUNT = b"l1/deposits"
L1_LAST_EVENT = b"l1/last_event"


# -- federated learning (stf/fl) ------------------------------------------------
OPEN_TASKS = b"tasks/open"


def task(task_id: bytes) -> bytes:
    return b"task/" + task_id


def epoch(task_id: bytes, n: int) -> bytes:
    if not 0 <= n < 2**32:
        raise ValueError("epoch out of range")
    return b"epoch/" + task_id + n.to_bytes(4, "big")


def client_record(task_id: bytes, n: int, client: bytes) -> bytes:
    """Per (task, epoch, client): score, rank, correlations, flags. The slashing evidence."""
    return b"rec/" + task_id + n.to_bytes(4, "big") + client


def verdict(task_id: bytes, client: bytes) -> bytes:
    return b"verdict/" + task_id + client


def last_update(task_id: bytes, client: bytes) -> bytes:
    return b"last/" + task_id + client


# -- leaves the L1 contracts check (fixed binary values, stf/fl/settlement.py) ----
def slash_evidence(client: bytes, task_id: bytes) -> bytes:
    """``epoch(4) || reason(4)``: the client's verdict in the task became slashable."""
    return b"slash/" + client + task_id


def settlement(task_id: bytes) -> bytes:
    """``status(1) || epochs_trained(4) || total_clean_updates(8)``: the task stopped."""
    return b"settle/" + task_id


def reward_share(task_id: bytes, client: bytes) -> bytes:
    """``accepted(4) || flagged(1)``: the client's recorded updates in the task."""
    return b"reward/" + task_id + client


def funding(task_id: bytes) -> bytes:
    """msgpack ``[requester_l1_address, deposit]`` from the L1 RewardManager's TaskFunded."""
    return b"funding/" + task_id
