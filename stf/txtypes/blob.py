"""``put_blob``: a large payload, stored beside the tree and referenced by hash.

The tree keeps only ``blob/<sha256> -> [size, uploader, height]``; the bytes
live under ``blob:`` in the store, so a state proof stays small whatever the
payload (model updates, initial models, training scripts).

The payload is ``[data]``, ``[data, task_id]`` or ``[data, task_id, funder, create_body]``:
what the blob is for decides whether its sender may upload it at all (:mod:`stf.fl.uploads`).
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
    IMMUTABLE_ARGS = True  # (bytes, a frozen UploadContext): a 4 MiB blob is parsed once
    CHARGES_BYTES = True  # consume charges the upload quota, whether or not apply then fails
    OPENS_ACCOUNT = True  # only as a pre-task upload, which draws on the sender's own funding

    @classmethod
    def parse(cls, value: Any, limits: Limits) -> tuple[bytes, UploadContext | None]:
        if not isinstance(value, list) or len(value) not in (1, 2, 4):
            raise encoding.EncodingError(
                "payload must be [data], [data, task_id] or "
                "[data, task_id, funder, create_task body]"
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
            funder, create_body = None, None
            if len(value) == 4:
                funder = L1Address(encoding.expect_bytes(value[2], "funder", 20))
                create_body = encoding.expect_bytes(value[3], "create_task body")
            context = UploadContext(task_id, funder, create_body)
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


def payload(
    data: bytes,
    task_id: bytes | None = None,
    funder: bytes | None = None,
    create_body: bytes | None = None,
) -> bytes:
    """``[data]``, ``[data, task_id]`` (for an open task) or ``[data, task_id, funder,
    create_body]`` (before the task exists, against its funding, by the sender of the signed
    ``create_task`` whose unsigned body hashes to ``task_id``)."""
    if task_id is None:
        return encoding.encode([data])
    if funder is None:
        return encoding.encode([data, task_id])
    if create_body is None:
        raise ValueError("a pre-task upload names the create_task's body")
    return encoding.encode([data, task_id, funder, create_body])
