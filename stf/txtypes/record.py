"""``put_record``: a small named value under the sender's own namespace.

The generic application transaction: anything that needs a signed, ordered,
provable key-value fact (metadata, evaluator notes) uses it; a value of empty
bytes deletes the record.
"""

from __future__ import annotations

from typing import Any

from .. import encoding, state_keys
from ..context import BlockContext, Limits
from ..errors import Code, TxInvalid
from ..state import State
from ..tx import Transaction
from .base import TxType, register


@register
class PutRecord(TxType):
    TYPE_ID = 1
    NAME = "put_record"

    @classmethod
    def parse(cls, value: Any, limits: Limits) -> tuple[str, bytes]:
        name, data = encoding.expect_list(value, 2, "put_record payload")
        name = encoding.expect_str(name, "record name", 64)
        if not name or not name.isprintable():
            raise TxInvalid(Code.INVALID_PAYLOAD, "record name must be 1-64 printable characters")
        data = encoding.expect_bytes(data, "record value")
        if len(data) > limits.max_record_size:
            raise TxInvalid(
                Code.PAYLOAD_TOO_LARGE,
                f"record value is {len(data)} bytes, limit is {limits.max_record_size}",
            )
        return name, data

    @classmethod
    def apply(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        name, data = args
        state.set(state_keys.record(tx.sender, name), data if data else None)


def payload(name: str, value: bytes) -> bytes:
    return encoding.encode([name, value])
