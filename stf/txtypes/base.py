"""The contract every transaction type fulfils, and the registry of types.

Adding a type is one module: subclass :class:`TxType`, give it a unique
``TYPE_ID`` and ``NAME``, decorate it with :func:`register`, and import the
module in ``stf/txtypes/__init__.py``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import encoding
from ..context import BlockContext, Limits
from ..encoding import EncodingError
from ..errors import Code, TxInvalid
from ..state import State
from ..tx import Transaction


class TxType:
    TYPE_ID: ClassVar[int]
    NAME: ClassVar[str]
    # privileged types are injected by the sequencer (the L1 follower), never accepted over RPC
    PRIVILEGED: ClassVar[bool] = False

    # the type's consume charges the sender for its bytes (put_blob's upload quota), so that a
    # large one may still fail into a block: its bytes were paid for (see must_succeed)
    CHARGES_BYTES: ClassVar[bool] = False

    # the parsed payload is immutable (bytes, frozen records): a transaction keeps it, so that
    # the pool's checks and the block do not parse a large payload again (each parse copies it)
    IMMUTABLE_ARGS: ClassVar[bool] = False

    # the type may be an unbacked key's first transaction on a chain that prices its state,
    # because it succeeds only against an L1 funding the key's own create_task names
    # (stf.accounts); such a first transaction must then succeed
    OPENS_ACCOUNT: ClassVar[bool] = False

    @classmethod
    def payload_of(cls, tx: Transaction, limits: Limits) -> Any:
        """:meth:`decode_payload` of ``tx``'s payload, parsed once per transaction object for a
        type with :attr:`IMMUTABLE_ARGS` (nothing it returns can be changed by its use)."""
        if not cls.IMMUTABLE_ARGS:
            return cls.decode_payload(tx.payload, limits)
        cached = tx.__dict__.get("parsed_payload")
        if cached is not None and cached[0] == (cls.TYPE_ID, limits):
            return cached[1]
        args = cls.decode_payload(tx.payload, limits)
        tx.__dict__["parsed_payload"] = ((cls.TYPE_ID, limits), args)
        return args

    @classmethod
    def must_succeed(cls, tx: Transaction, limits: Limits) -> bool:
        """Whether ``tx`` is invalid rather than failed when its execution fails.

        A failed transaction is still included, so its bytes stay in the chain's history for
        good: a 4 MiB ``submit_update`` for a task that does not exist, from a fresh key, was
        storage nobody paid for (about 4 GB a block at 1,000 transactions). A payload over
        :func:`failable_payload_bytes` may therefore only succeed; the types that charge their
        sender for the bytes first (:attr:`CHARGES_BYTES`) and the sequencer's privileged ones
        (an L1 deposit paid L1 gas for its bytes, and must be included) are exempt."""
        return (
            not cls.PRIVILEGED
            and not cls.CHARGES_BYTES
            and len(tx.payload) > failable_payload_bytes(limits)
        )

    @classmethod
    def decode_payload(cls, payload: bytes, limits: Limits) -> Any:
        """Stateless validation: parse the payload or raise :class:`TxInvalid`."""
        try:
            return cls.parse(encoding.decode(payload), limits)
        except EncodingError as exc:
            raise TxInvalid(Code.INVALID_PAYLOAD, f"{cls.NAME}: {exc}") from None

    @classmethod
    def parse(cls, value: Any, limits: Limits) -> Any:
        raise NotImplementedError

    @classmethod
    def consume(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        """Effects that stand even when :meth:`apply` fails, like the nonce (replay markers).

        May raise :class:`TxInvalid`; must not raise :class:`TxFailed`.
        """

    @classmethod
    def apply(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        """Stateful execution; raise :class:`stf.errors.TxFailed` to fail with a receipt."""
        raise NotImplementedError


def failable_payload_bytes(limits: Limits) -> int:
    """The largest payload that may fail into a block: a record's size and 1 KiB of fields
    (every transaction type but the update-shaped reveals and the uploads fits)."""
    return limits.max_record_size + 1024


REGISTRY: dict[int, type[TxType]] = {}
BY_NAME: dict[str, type[TxType]] = {}


def register(cls: type[TxType]) -> type[TxType]:
    if cls.TYPE_ID in REGISTRY or cls.NAME in BY_NAME:
        raise ValueError(f"transaction type {cls.TYPE_ID}/{cls.NAME} registered twice")
    REGISTRY[cls.TYPE_ID] = cls
    BY_NAME[cls.NAME] = cls
    return cls


def lookup(type_id: int) -> type[TxType]:
    try:
        return REGISTRY[type_id]
    except KeyError:
        raise TxInvalid(Code.UNKNOWN_TX_TYPE, f"unknown transaction type {type_id}") from None
