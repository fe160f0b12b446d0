"""``put_record``: a small named value under the sender's own namespace.

The generic application transaction: anything that needs a signed, ordered,
provable key-value fact (metadata, evaluator notes) uses it; a value of empty
bytes deletes the record. On a chain that prices its state a sender holds at most
:data:`stf.accounts.MAX_RECORDS_PER_SENDER` of them.
"""

from __future__ import annotations

from typing import Any

from .. import encoding, state_keys
from ..accounts import MAX_RECORDS_PER_SENDER, prices_state
from ..context import BlockContext, Limits
from ..errors import Code, TxFailed, TxInvalid
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
        key = state_keys.record(tx.sender, name)
        if prices_state(ctx.limits):  # +1 for a new record, -1 for a deletion, 0 otherwise
            _count(state, tx.sender, int(bool(data)) - int(state.get(key) is not None))
        state.set(key, data if data else None)


def _count(state: State, sender: bytes, change: int) -> None:
    """Keep ``records/<sender>``, refusing a record past :data:`MAX_RECORDS_PER_SENDER`."""
    if change == 0:
        return
    key = state_keys.record_count(sender)
    raw = state.get(key)
    held = 0 if raw is None else int(encoding.decode(raw))
    if held + change > MAX_RECORDS_PER_SENDER:
        raise TxFailed(
            Code.RECORD_QUOTA_EXCEEDED,
            f"this key holds {held} records, the most allowed: delete one (an empty value) first",
        )
    state.set(key, encoding.encode(held + change) if held + change else None)


def payload(name: str, value: bytes) -> bytes:
    return encoding.encode([name, value])
