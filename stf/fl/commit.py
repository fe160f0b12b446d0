"""Commit-reveal of updates: what a commitment binds, so that nobody can copy or reorder.

An epoch has two phases. In the **commit** phase each client sends only
``commitment(task, epoch, client, update_id, salt)``; in the **reveal** phase, which opens once
the commit phase has ended, it sends the update and the salt, and the STF checks them against
the commitment. No update of the epoch is public before every commitment is fixed, so a free
rider cannot copy a current update, and no position in a block is worth anything: the order of
the commitments decides nothing (identical reveals are flagged alike, :mod:`stf.fl.checks`).

The client's key is inside the hash, so a sybil cannot adopt another client's commitment and
reveal its update once public; the salt (32 secret bytes) hides low-entropy updates (all zeros,
the last global step) from a dictionary test while the commit phase runs. The requester's
reference update goes through the same two phases under :data:`REFERENCE_DOMAIN` (its key in
the hash), so no client sees it before every commitment is fixed.
"""

from __future__ import annotations

import hashlib

from ..ids import BlobId, ClientKey, TaskId

DOMAIN = b"mps/commit-update/v1"
REFERENCE_DOMAIN = b"mps/commit-reference/v1"  # the requester's reference (stf.fl.reference)
SALT_BYTES = 32


def commitment(
    task_id: TaskId,
    epoch: int,
    client: ClientKey,
    update_id: BlobId,
    salt: bytes,
    domain: bytes = DOMAIN,
) -> bytes:
    """sha256(domain || task || epoch (8 bytes, big-endian) || client || update id || salt).

    ``update_id`` is the id the STF gives the update: the sha256 of its bytes when inline, the
    id of its chunk manifest when chunked (:mod:`stf.fl.chunks`).
    """
    if len(salt) != SALT_BYTES:
        raise ValueError(f"the salt is {SALT_BYTES} bytes")
    return hashlib.sha256(
        domain + task_id + epoch.to_bytes(8, "big") + client + update_id + salt
    ).digest()
