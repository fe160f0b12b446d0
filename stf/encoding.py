"""Canonical msgpack: the one byte string every value has.

Consensus objects are hashed and signed, so two encoders must never disagree
about their bytes. msgpack alone allows several encodings of one value (an int
as uint8 or uint64, maps in any key order, str vs bin), so we restrict it:

* allowed types: ``int`` (unsigned or signed, 64-bit), ``bytes``, ``str``
  (UTF-8), ``bool``, ``None`` and ``list``; no maps, no floats, no ext types;
* structures are positional lists with a fixed field order, defined by the
  type that encodes them;
* the encoding is the one ``msgpack.packb(use_bin_type=True)`` emits, which is
  always the shortest form.

:func:`decode` rejects input whose bytes differ from what ``packb`` would emit for
the value parsed, so every accepted byte string is the canonical form of exactly one
value. It checks that without re-encoding: once msgpack parsed the bytes and the value's
types are allowed, the bytes are ``packb``'s exactly when every header is the shortest
for its value (:func:`_minimal`); re-encoding copied every payload byte again, the largest
single cost of admitting a 100 KB update (tests/test_encoding.py checks the two agree).
"""

from __future__ import annotations

from typing import Any

import msgpack

Value = int | bytes | str | bool | None | list[Any]

MAX_DEPTH = 16


class EncodingError(ValueError):
    """The bytes are not the canonical encoding of an allowed value."""


def _check(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise EncodingError("value nested too deeply")
    if isinstance(value, msgpack.ExtType):  # a tuple subclass: test before tuples
        raise EncodingError("ext types are not allowed in canonical encoding")
    if isinstance(value, bool) or value is None or isinstance(value, (bytes, str)):
        return
    if isinstance(value, int):
        if not -(2**63) <= value < 2**64:
            raise EncodingError("integer out of 64-bit range")
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _check(item, depth + 1)
        return
    raise EncodingError(f"type {type(value).__name__} is not allowed in canonical encoding")


def encode(value: Any) -> bytes:
    """Encode ``value`` (tuples become lists) in canonical form."""
    _check(value, 0)
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def decode(data: bytes, max_len: int | None = None, max_array_len: int | None = None) -> Any:
    """Decode canonical bytes; raise :class:`EncodingError` on anything else.

    ``max_array_len``: refuse any array longer, at its header, before its items are built (a
    caller whose format bounds its lists: a 4 MB list of small integers takes a second)."""
    if max_len is not None and len(data) > max_len:
        raise EncodingError(f"encoding is {len(data)} bytes, limit is {max_len}")
    limit: dict[str, int] = {} if max_array_len is None else {"max_array_len": max_array_len}
    try:
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_map_len=0,
            max_ext_len=0,
            unicode_errors="strict",
            **limit,
        )
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise EncodingError(f"malformed msgpack: {exc}") from None
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise EncodingError(f"malformed msgpack: {exc}") from None
    _check(value, 0)
    if isinstance(value, float):  # pragma: no cover - _check already rejects
        raise EncodingError("floats are not allowed")
    if not _minimal(data):
        raise EncodingError("not in canonical form (non-minimal or non-standard encoding)")
    return value


# the width of each length or integer header byte's argument, for the headers _minimal meets
_STR_BIN = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}
_ARRAY = {0xDC: 2, 0xDD: 4}
_UINT = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_INT = {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
# the least a length (or a uint) needs to take a header of that width: below it, a shorter
# form exists (str has fixstr below 32, bin has no fix form, arrays have fixarray below 16)
_LEAST = {
    0xC4: 0, 0xC5: 1 << 8, 0xC6: 1 << 16,  # bin
    0xD9: 32, 0xDA: 1 << 8, 0xDB: 1 << 16,  # str
    0xDC: 16, 0xDD: 1 << 16,  # array
    0xCC: 1 << 7, 0xCD: 1 << 8, 0xCE: 1 << 16, 0xCF: 1 << 32,  # uint
}  # fmt: skip
# signed forms are canonical only for negatives below the next shorter form's range
_NEG_LEAST = {0xD0: -(1 << 5), 0xD1: -(1 << 7), 0xD2: -(1 << 15), 0xD3: -(1 << 31)}


def _minimal(data: bytes) -> bool:
    """Whether every header of ``data`` (well-formed msgpack of allowed types: :func:`decode`
    checked it) is the shortest for its value, as ``packb`` writes them."""
    pos, n = 0, len(data)
    while pos < n:
        b = data[pos]
        pos += 1
        if b <= 0x7F or b >= 0xE0 or 0x90 <= b <= 0xBF or b in (0xC0, 0xC2, 0xC3):
            if 0xA0 <= b <= 0xBF:  # fixstr: skip its bytes
                pos += b & 0x1F
            continue  # fixint, fixarray (its items follow), nil, bool: one form only
        width = _STR_BIN.get(b) or _ARRAY.get(b)
        if width is not None:
            length = int.from_bytes(data[pos : pos + width], "big")
            if length < _LEAST[b]:
                return False
            pos += width + (length if b in _STR_BIN else 0)
            continue
        width = _UINT.get(b)
        if width is not None:
            if int.from_bytes(data[pos : pos + width], "big") < _LEAST[b]:
                return False
            pos += width
            continue
        width = _INT.get(b)
        if width is None:  # maps, floats, ext: decode refused them before
            return False
        if int.from_bytes(data[pos : pos + width], "big", signed=True) >= _NEG_LEAST[b]:
            return False
        pos += width
    return True


def expect_list(value: Any, length: int, what: str) -> list[Any]:
    """Check that a decoded structure is a list of the right arity."""
    if not isinstance(value, list) or len(value) != length:
        raise EncodingError(f"{what} must be a list of {length} fields")
    return value


def expect_int(value: Any, what: str, lo: int = 0, hi: int = 2**64 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise EncodingError(f"{what} must be an integer")
    if not lo <= value <= hi:
        raise EncodingError(f"{what} out of range [{lo}, {hi}]")
    return value


U256_BYTES = 32
U256_MAX = 2**256 - 1


def u256(value: int) -> bytes:
    """An L1 amount (wei, a Solidity uint256) as 32 big-endian bytes: msgpack integers stop at
    2^64, and an amount above it must neither be capped nor stop the chain."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U256_MAX:
        raise EncodingError(f"{value!r} is not a uint256")
    return value.to_bytes(U256_BYTES, "big")


def expect_u256(value: Any, what: str, lo: int = 0) -> int:
    """The amount :func:`u256` wrote, at least ``lo``."""
    n = int.from_bytes(expect_bytes(value, what, U256_BYTES), "big")
    if n < lo:
        raise EncodingError(f"{what} must be at least {lo}")
    return n


def expect_bytes(value: Any, what: str, length: int | None = None) -> bytes:
    if not isinstance(value, bytes):
        raise EncodingError(f"{what} must be bytes")
    if length is not None and len(value) != length:
        raise EncodingError(f"{what} must be {length} bytes, got {len(value)}")
    return value


def expect_str(value: Any, what: str, max_len: int = 256) -> str:
    if not isinstance(value, str):
        raise EncodingError(f"{what} must be a string")
    if len(value) > max_len:
        raise EncodingError(f"{what} longer than {max_len} characters")
    return value
