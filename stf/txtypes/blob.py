"""``put_blob``: a large payload, stored beside the tree and referenced by hash.

The tree keeps only ``blob/<sha256> -> [size, uploader, height]``; the bytes
live under ``blob:`` in the store, so a state proof stays small whatever the
payload (model updates, initial models, training scripts).
"""

from __future__ import annotations

from typing import Any

from .. import encoding, state_keys
from ..context import BlockContext, Limits
from ..errors import Code, TxFailed, TxInvalid
from ..ids import ClientKey
from ..records import BlobMeta
from ..state import State
from ..tx import Transaction
from .base import TxType, register


@register
class PutBlob(TxType):
    TYPE_ID = 2
    NAME = "put_blob"

    @classmethod
    def parse(cls, value: Any, limits: Limits) -> bytes:
        (data,) = encoding.expect_list(value, 1, "put_blob payload")
        data = encoding.expect_bytes(data, "blob")
        if not data:
            raise TxInvalid(Code.INVALID_PAYLOAD, "blob must not be empty")
        if len(data) > limits.max_blob_size:
            raise TxInvalid(
                Code.PAYLOAD_TOO_LARGE,
                f"blob is {len(data)} bytes, limit is {limits.max_blob_size}",
            )
        return data

    @classmethod
    def apply(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        data: bytes = args
        blob_hash = state.put_blob(data)
        key = state_keys.blob(blob_hash)
        if state.get(key) is not None:
            raise TxFailed(Code.BLOB_ALREADY_STORED, f"blob {blob_hash.hex()} is already stored")
        state.set(key, BlobMeta(len(data), ClientKey(tx.sender), ctx.height).encode())


def payload(data: bytes) -> bytes:
    return encoding.encode([data])
