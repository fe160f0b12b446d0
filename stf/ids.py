"""Distinct types for the 32-byte ids of the protocol, so that a swapped argument is a type error.

Every id is ``bytes`` at run time (``NewType`` costs nothing); mypy tells a task id from a client
key. ``state_keys.verdict(task, client)`` and ``state_keys.slash_evidence(client, task)`` take
them in opposite orders (the latter is the L1's layout), which plain ``bytes`` never caught.
"""

from __future__ import annotations

from typing import NewType

TaskId = NewType("TaskId", bytes)  # the hash of the create_task transaction
ClientKey = NewType("ClientKey", bytes)  # an ed25519 public key, the sender of its transactions
BlobId = NewType("BlobId", bytes)  # the sha256 of a blob, or of a chunk manifest blob
L1Address = NewType("L1Address", bytes)  # a 20-byte L1 account
NO_BLOB = BlobId(b"")  # "no array yet" (a task's previous step at epoch 0)
