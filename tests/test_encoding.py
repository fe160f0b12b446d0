"""Canonical msgpack: every allowed value has exactly one accepted byte string."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stf import encoding
from stf.encoding import MAX_DEPTH, EncodingError

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.binary(max_size=300)
    | st.text(max_size=300)
)
values = st.recursive(scalars, lambda children: st.lists(children, max_size=6), max_leaves=25)


def typed(v: Any) -> Any:
    """A form where True != 1 and b"" != "", for exact comparisons."""
    if isinstance(v, (list, tuple)):
        return ("list", [typed(x) for x in v])
    return (type(v).__name__, v)


def depth(v: Any) -> int:
    """The depth at which _check sees the deepest element (the top is 0)."""
    if isinstance(v, list):
        return max((1 + depth(x) for x in v), default=0)
    return 0


def nested(n: int, inner: Any = 1) -> Any:
    v = inner
    for _ in range(n):
        v = [v]
    return v


@settings(max_examples=300)
@given(values)
def test_round_trip(v: Any) -> None:
    if depth(v) > MAX_DEPTH:
        with pytest.raises(EncodingError):
            encoding.encode(v)
        return
    raw = encoding.encode(v)
    assert raw == msgpack.packb(v, use_bin_type=True)
    back = encoding.decode(raw)
    assert typed(back) == typed(v)
    assert encoding.encode(back) == raw


@pytest.mark.parametrize(
    "v",
    [0, 1, 127, 128, 255, 256, 2**16, 2**32, 2**64 - 1, -1, -32, -33, -(2**63), True, False],
)
def test_int_bounds_round_trip(v: int) -> None:
    raw = encoding.encode(v)
    back = encoding.decode(raw)
    assert typed(back) == typed(v)


@pytest.mark.parametrize("v", [2**64, -(2**63) - 1, 1.5, {"a": 1}, {}, {1, 2}, bytearray(b"x")])
def test_encode_rejects_disallowed(v: Any) -> None:
    with pytest.raises(EncodingError):
        encoding.encode(v)


def test_encode_rejects_ext_type() -> None:
    with pytest.raises(EncodingError):
        encoding.encode(msgpack.ExtType(5, b""))


def test_encode_rejects_disallowed_nested() -> None:
    with pytest.raises(EncodingError):
        encoding.encode([1, [b"x", 0.0]])


def test_tuples_encode_as_lists() -> None:
    assert encoding.encode((1, (b"a", "b"))) == encoding.encode([1, [b"a", "b"]])
    assert encoding.decode(encoding.encode((1, (b"a", "b")))) == [1, [b"a", "b"]]


def test_depth_limit() -> None:
    ok = nested(MAX_DEPTH)
    assert encoding.decode(encoding.encode(ok)) == ok
    too_deep = nested(MAX_DEPTH + 1)
    with pytest.raises(EncodingError):
        encoding.encode(too_deep)
    with pytest.raises(EncodingError):
        encoding.decode(msgpack.packb(too_deep))


def test_str_and_bytes_are_distinct() -> None:
    assert encoding.encode("ab") != encoding.encode(b"ab")
    assert encoding.decode(encoding.encode("ab")) == "ab"
    assert encoding.decode(encoding.encode(b"ab")) == b"ab"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\xcc\x01", id="uint8-for-fixint"),
        pytest.param(b"\xcd\x00\xff", id="uint16-for-uint8"),
        pytest.param(b"\xce\x00\x00\x01\x00", id="uint32-for-uint16"),
        pytest.param(b"\xcf" + (1).to_bytes(8, "big"), id="uint64-for-fixint"),
        pytest.param(b"\xd0\x05", id="int8-positive"),
        pytest.param(b"\xd0\xe0", id="int8-for-negative-fixint"),
        pytest.param(b"\xd1\xff\x80", id="int16-for-int8"),
        pytest.param(b"\xd9\x03abc", id="str8-short-string"),
        pytest.param(b"\xda\x00\x03abc", id="str16-short-string"),
        pytest.param(b"\xc5\x00\x01x", id="bin16-short-bytes"),
        pytest.param(b"\xdc\x00\x01\x01", id="array16-short-list"),
    ],
)
def test_rejects_non_minimal(raw: bytes) -> None:
    with pytest.raises(EncodingError):
        encoding.decode(raw)
    # and the value it denotes does have a (different) canonical form
    value = msgpack.unpackb(raw, raw=False)
    assert encoding.decode(encoding.encode(value)) == value


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\x80", id="empty-map"),
        pytest.param(b"\x81\xa1a\x01", id="map"),
        pytest.param(b"\x91\x81\x01\x02", id="map-in-list"),
        pytest.param(b"\xca\x3f\xc0\x00\x00", id="float32"),
        pytest.param(b"\xcb" + b"\x3f\xf8" + b"\x00" * 6, id="float64"),
        pytest.param(b"\xd4\x01\x00", id="fixext1"),
        pytest.param(b"\xc7\x00\x05", id="ext8-empty"),
        pytest.param(b"\x91\xc7\x00\x05", id="ext8-empty-in-list"),
        pytest.param(b"\xd6\xff\x00\x00\x00\x00", id="timestamp-ext"),
        pytest.param(b"\xc1", id="never-used-byte"),
        pytest.param(b"\x01\x02", id="trailing-bytes"),
        pytest.param(b"\x92\x01\x02\x03", id="trailing-after-list"),
        pytest.param(b"", id="empty-input"),
        pytest.param(b"\xa3ab", id="truncated-str"),
        pytest.param(b"\x92\x01", id="truncated-list"),
        pytest.param(b"\xcd\x01", id="truncated-uint16"),
        pytest.param(b"\xc4\x05abc", id="truncated-bin"),
        pytest.param(b"\xa2\xc3\x28", id="invalid-utf8"),
        pytest.param(b"\xa3\xed\xa0\x80", id="utf8-surrogate"),
        pytest.param(b"\xa1\x80", id="utf8-lone-continuation"),
    ],
)
def test_rejects_disallowed_or_malformed(raw: bytes) -> None:
    with pytest.raises(EncodingError):
        encoding.decode(raw)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"\x01", 1),
        (b"\xcc\x80", 128),
        (b"\xe0", -32),
        (b"\xd0\xdf", -33),
        (b"\xa3abc", "abc"),
        (b"\xd9\x20" + b"a" * 32, "a" * 32),
        (b"\xc4\x01x", b"x"),
        (b"\x92\xc0\xc3", [None, True]),
        (b"\x90", []),
    ],
)
def test_accepts_canonical_forms(raw: bytes, value: Any) -> None:
    assert typed(encoding.decode(raw)) == typed(value)
    assert encoding.encode(value) == raw


def test_max_len() -> None:
    raw = encoding.encode([b"x" * 10, "y"])
    assert encoding.decode(raw, max_len=len(raw)) == [b"x" * 10, "y"]
    with pytest.raises(EncodingError):
        encoding.decode(raw, max_len=len(raw) - 1)


def _decode_or_error(data: bytes) -> None:
    try:
        value = encoding.decode(data)
    except EncodingError:
        return
    assert encoding.encode(value) == data


@settings(max_examples=500)
@given(st.binary(max_size=48))
def test_random_bytes_decode_canonically_or_fail(data: bytes) -> None:
    _decode_or_error(data)


@settings(max_examples=300)
@given(values, st.data())
def test_mutated_encodings_decode_canonically_or_fail(v: Any, data: st.DataObject) -> None:
    """Random edits of valid encodings hit the structured corners random bytes miss."""
    raw = bytearray(msgpack.packb(v, use_bin_type=True))
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if op == "insert" or not raw:
            raw.insert(data.draw(st.integers(0, len(raw))), data.draw(st.integers(0, 255)))
        elif op == "flip":
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
        elif op == "delete":
            del raw[data.draw(st.integers(0, len(raw) - 1))]
        else:
            del raw[data.draw(st.integers(0, len(raw) - 1)) :]
    _decode_or_error(bytes(raw))


def test_expect_helpers() -> None:
    assert encoding.expect_list([1, 2], 2, "x") == [1, 2]
    with pytest.raises(EncodingError):
        encoding.expect_list([1], 2, "x")
    with pytest.raises(EncodingError):
        encoding.expect_list(b"ab", 2, "x")
    assert encoding.expect_int(5, "n") == 5
    for bad in (True, b"1", "1", None, -1, 2**64):
        with pytest.raises(EncodingError):
            encoding.expect_int(bad, "n")
    with pytest.raises(EncodingError):
        encoding.expect_int(10, "n", 0, 9)
    assert encoding.expect_bytes(b"ab", "b", 2) == b"ab"
    with pytest.raises(EncodingError):
        encoding.expect_bytes(b"abc", "b", 2)
    with pytest.raises(EncodingError):
        encoding.expect_bytes("ab", "b")
    assert encoding.expect_str("é" * 4, "s", 4) == "é" * 4
    with pytest.raises(EncodingError):
        encoding.expect_str("a" * 5, "s", 4)
    with pytest.raises(EncodingError):
        encoding.expect_str(b"a", "s")


# -- the header walk against its definition (re-encoding) ---------------------------------


def reference_decode(data: bytes) -> Any:
    """:func:`encoding.decode` as it was defined first: parse, then re-encode and compare."""
    try:
        value = msgpack.unpackb(
            data, raw=False, use_list=True, strict_map_key=True, max_map_len=0, max_ext_len=0
        )
    except Exception as exc:
        raise EncodingError(str(exc)) from None
    encoding._check(value, 0)
    if msgpack.packb(value, use_bin_type=True) != data:
        raise EncodingError("not canonical")
    return value


def _int_forms(v: int) -> list[bytes]:
    """Every msgpack encoding of the integer ``v``."""
    out = []
    if 0 <= v <= 0x7F:
        out.append(bytes([v]))
    if -32 <= v < 0:
        out.append((v & 0xFF).to_bytes(1, "big"))
    for tag, width in ((0xCC, 1), (0xCD, 2), (0xCE, 4), (0xCF, 8)):
        if 0 <= v < 1 << (8 * width):
            out.append(bytes([tag]) + v.to_bytes(width, "big"))
    for tag, width in ((0xD0, 1), (0xD1, 2), (0xD2, 4), (0xD3, 8)):
        if -(1 << (8 * width - 1)) <= v < 1 << (8 * width - 1):
            out.append(bytes([tag]) + v.to_bytes(width, "big", signed=True))
    return out


def _len_forms(n: int, fix: tuple[int, int] | None, tags: tuple[int, ...]) -> list[bytes]:
    """Every header for a length ``n``: the fix form (tag, bound) if any, then each tag's."""
    out = [bytes([fix[0] | n])] if fix is not None and n < fix[1] else []
    widths = (2, 4) if len(tags) == 2 else (1, 2, 4)  # arrays have no 8-bit form
    for tag, width in zip(tags, widths, strict=True):
        if n < 1 << (8 * width):
            out.append(bytes([tag]) + n.to_bytes(width, "big"))
    return out


@st.composite
def any_encoding(draw: Any, v: Any) -> bytes:
    """One of the byte strings msgpack parses as ``v``, header widths drawn at random."""
    if v is None:
        return b"\xc0"
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        return draw(st.sampled_from(_int_forms(v)))
    if isinstance(v, bytes):
        return draw(st.sampled_from(_len_forms(len(v), None, (0xC4, 0xC5, 0xC6)))) + v
    if isinstance(v, str):
        raw = v.encode()
        return draw(st.sampled_from(_len_forms(len(raw), (0xA0, 32), (0xD9, 0xDA, 0xDB)))) + raw
    head = draw(st.sampled_from(_len_forms(len(v), (0x90, 16), (0xDC, 0xDD))))
    return head + b"".join(draw(any_encoding(x)) for x in v)


edge_ints = st.sampled_from(
    [0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63, 2**64 - 1,
     -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63)]
)  # fmt: skip
edge_values = st.recursive(
    scalars | edge_ints | st.binary(min_size=250, max_size=300) | st.text(min_size=28, max_size=40),
    lambda children: st.lists(children, max_size=18),
    max_leaves=40,
)


def verdict(decode: Any, raw: bytes) -> Any:
    """What ``decode`` makes of ``raw``: the typed value, or EncodingError if it refuses."""
    try:
        return typed(decode(raw))
    except EncodingError:
        return EncodingError


@settings(max_examples=600)
@given(st.data())
def test_the_header_walk_accepts_exactly_what_re_encoding_accepts(data: Any) -> None:
    v = data.draw(edge_values)
    if depth(v) > MAX_DEPTH:
        return
    raw = data.draw(any_encoding(v))
    got = verdict(encoding.decode, raw)
    assert got == verdict(reference_decode, raw), raw.hex()
    assert (raw == msgpack.packb(v, use_bin_type=True)) == (got is not EncodingError)


@settings(max_examples=600)
@given(st.binary(max_size=64) | values.map(lambda v: msgpack.packb(v, use_bin_type=True)[:-1]))
def test_the_header_walk_agrees_on_arbitrary_bytes(raw: bytes) -> None:
    assert verdict(encoding.decode, raw) == verdict(reference_decode, raw), raw.hex()


def test_a_decoded_transaction_keeps_its_own_copy_of_a_mutable_buffer() -> None:
    """Red team: a bytearray passed to Transaction.decode was kept by reference, so changing
    it later changed encode() while the fields and hash stayed."""
    from nacl.signing import SigningKey

    from stf.tx import Transaction, make_tx

    tx = make_tx(SigningKey(b"\x01" * 32), 7, 1, 0, b"payload")
    buf = bytearray(tx.encode())
    got = Transaction.decode(buf)  # type: ignore[arg-type]
    buf[-1] ^= 0xFF
    assert got.encode() == tx.encode() and got.hash == tx.hash
