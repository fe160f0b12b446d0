"""Wire forms: JSON with ``0x`` hex for bytes, or msgpack with raw bytes, same envelope."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import numpy as np

from mps_common.hexutil import from_hex, hex_fields

JSON = "application/json"
MSGPACK = "application/msgpack"


def encode_body(value: Any, media: str) -> bytes:
    if media == MSGPACK:
        packed: bytes = msgpack.packb(value, use_bin_type=True)
        return packed
    return json.dumps(hex_fields(value), separators=(",", ":")).encode()


# A JSON-RPC body holds a request or a batch of at most max_batch (100), each a few small
# containers; transactions and blobs travel as bin, whatever their size. These bounds are far
# above that and far below what a hostile body can cost: a 64 MiB body of empty arrays took the
# node from 59 to ~4,700 MiB (issue 13); now it is refused at its first header, or after
# MAX_MSGPACK_CONTAINERS containers, before the memory is spent.
MAX_MSGPACK_ARRAY = 1024
MAX_MSGPACK_MAP = 256
MAX_MSGPACK_CONTAINERS = 4096


class _ContainerBudget:
    """Counts the containers a msgpack body decodes to (the unpacker calls it per list and map
    as each completes) and stops the decode past the budget."""

    def __init__(self) -> None:
        self.left = MAX_MSGPACK_CONTAINERS

    def _spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise ValueError(f"more than {MAX_MSGPACK_CONTAINERS} arrays and maps")

    def list_hook(self, value: list[Any]) -> list[Any]:
        self._spend()
        return value

    def map_hook(self, pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
        self._spend()
        return dict(pairs)


def decode_body(body: bytes, media: str) -> Any:
    """Raise ValueError on a body that does not parse, or that passes the bounds above (it
    may run off the event loop: it touches nothing shared)."""
    if media == MSGPACK:
        budget = _ContainerBudget()
        try:
            return msgpack.unpackb(
                body,
                raw=False,
                strict_map_key=False,
                max_array_len=MAX_MSGPACK_ARRAY,
                max_map_len=MAX_MSGPACK_MAP,
                list_hook=budget.list_hook,
                object_pairs_hook=budget.map_hook,
            )
        except Exception as exc:
            raise ValueError(f"msgpack body does not parse: {exc}") from None
    # a body no longer than the limit cannot nest deeper: small requests skip the scan
    if len(body) > MAX_JSON_DEPTH and _bracket_depth(body) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON body is nested too deeply (more than {MAX_JSON_DEPTH} levels)")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"JSON body does not parse: {exc}") from None
    except RecursionError:
        raise ValueError("JSON body is nested too deeply") from None


#: Deepest JSON the node parses. Python's JSON parser recurses once per level, so a deep body
#: answered HTTP 500 (or, where the recursion limit was raised, overflowed the C stack); an
#: envelope, a batch and their params need a handful of levels.
MAX_JSON_DEPTH = 64


def _bracket_depth(body: bytes) -> int:
    """The deepest running count of ``[``/``{`` over ``]``/``}``, without recursion (numpy, one
    pass). Brackets inside strings count too, so this bounds the real depth from above: a
    refusal can only hit a body with more than MAX_JSON_DEPTH unclosed brackets in its text."""
    if not body:
        return 0
    b = np.frombuffer(body, dtype=np.uint8)
    step = ((b == 0x5B) | (b == 0x7B)).astype(np.int32) - ((b == 0x5D) | (b == 0x7D))
    return int(np.cumsum(step, dtype=np.int64).max(initial=0))


# -- parameter converters ------------------------------------------------------
def to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return from_hex(value)
        except ValueError:
            raise ValueError("not valid 0x-prefixed hex") from None
    raise ValueError("expected bytes (0x-prefixed hex in JSON)")


def to_hash(value: Any) -> bytes:
    b = to_bytes(value)
    if len(b) != 32:
        raise ValueError(f"expected a 32-byte hash, got {len(b)} bytes")
    return b


def to_uint(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an unsigned integer")
    if isinstance(value, str) and value.startswith("0x"):
        value = int(value, 16)
    if not isinstance(value, int) or not 0 <= value < 2**64:
        raise ValueError("expected an unsigned 64-bit integer")
    return value


BLOCK_TAGS = ("latest", "earliest", "safe", "finalized")


def to_block_tag(value: Any) -> int | str:
    if isinstance(value, str) and value in BLOCK_TAGS:
        return value
    try:
        return to_uint(value)
    except ValueError:
        raise ValueError(f"expected a block height or one of {', '.join(BLOCK_TAGS)}") from None


def to_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value
