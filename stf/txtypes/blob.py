"""``put_blob``: a large payload, stored beside the tree and referenced by hash.

The tree keeps only ``blob/<sha256> -> [size, uploader, height]``; the bytes
live under ``blob:`` in the store, so a state proof stays small whatever the
payload (model updates, initial models, training scripts).

The payload is ``[data]``, ``[data, task_id]`` or ``[data, task_id, funder]``: what the blob
is for decides whether its sender may upload it at all (:mod:`stf.fl.uploads`).
"""

from __future__ import annotations

from typing import Any

from .. import encoding, state_keys
from ..context import BlockContext, Limits
from ..errors import Code, TxFailed, TxInvalid
from ..fl.uploads import UploadContext, admit_upload
from ..ids import ClientKey, L1Address, TaskId
from ..records import BlobMeta
from ..state import State
from ..tx import Transaction
from .base import TxType, register


@register
class PutBlob(TxType):
    TYPE_ID = 2
    NAME = "put_blob"

    @classmethod
    def parse(cls, value: Any, limits: Limits) -> tuple[bytes, UploadContext | None]:
        if not isinstance(value, list) or not 1 <= len(value) <= 3:
            raise encoding.EncodingError(
                "payload must be [data], [data, task_id] or [data, task_id, funder]"
            )
        data = encoding.expect_bytes(value[0], "blob")
        if not data:
            raise TxInvalid(Code.INVALID_PAYLOAD, "blob must not be empty")
        if len(data) > limits.max_blob_size:
            raise TxInvalid(
                Code.PAYLOAD_TOO_LARGE,
                f"blob is {len(data)} bytes, limit is {limits.max_blob_size}",
            )
        context = None
        if len(value) > 1:
            task_id = TaskId(encoding.expect_bytes(value[1], "task_id", 32))
            funder = None
            if len(value) == 3:
                funder = L1Address(encoding.expect_bytes(value[2], "funder", 20))
            context = UploadContext(task_id, funder)
        return data, context

    @classmethod
    def consume(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        """The quota counts the bytes a block carried, whether or not the blob is new."""
        data, context = args
        allowance = admit_upload(state, tx.sender, len(data), context, ctx.height, ctx.limits)
        if allowance is not None:
            allowance.record(state)

    @classmethod
    def apply(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        data, _ = args
        blob_hash = state.put_blob(data)
        key = state_keys.blob(blob_hash)
        if state.get(key) is not None:
            raise TxFailed(Code.BLOB_ALREADY_STORED, f"blob {blob_hash.hex()} is already stored")
        state.set(key, BlobMeta(len(data), ClientKey(tx.sender), ctx.height).encode())


def payload(data: bytes, task_id: bytes | None = None, funder: bytes | None = None) -> bytes:
    """``[data]``, ``[data, task_id]`` (for an open task) or ``[data, task_id, funder]``
    (before the task exists, against its funding)."""
    if task_id is None:
        return encoding.encode([data])
    return encoding.encode([data, task_id] if funder is None else [data, task_id, funder])
