"""stf.cid: the raw-codec CIDv1 of a blob's sha256, and the strict parser back to the digest."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stf.cid import CID_LEN, cid_v1, parse_cid_v1

# CIDs that Kubo gives these bytes as one raw block (`ipfs block put`, or `ipfs add
# --cid-version 1` of a one-chunk file).
EMPTY_CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
HELLO_CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"  # b"hello world\n"


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def b32(raw: bytes) -> str:
    """Multibase base32 lower, written independently of stf.cid."""
    return "b" + base64.b32encode(raw).decode().rstrip("=").lower()


def test_known_vectors() -> None:
    assert cid_v1(sha(b"")) == EMPTY_CID
    assert cid_v1(sha(b"hello world\n")) == HELLO_CID
    assert parse_cid_v1(EMPTY_CID) == sha(b"")
    assert parse_cid_v1(HELLO_CID) == sha(b"hello world\n")
    assert len(EMPTY_CID) == CID_LEN == 59


def test_layout_is_version_codec_multihash() -> None:
    d = sha(b"abc")
    assert cid_v1(d) == b32(bytes.fromhex("01551220") + d)


@settings(max_examples=300)
@given(st.binary(min_size=32, max_size=32))
def test_round_trip(digest: bytes) -> None:
    cid = cid_v1(digest)
    assert cid.startswith("bafkrei") and len(cid) == CID_LEN
    assert parse_cid_v1(cid) == digest


def test_cid_v1_wants_a_32_byte_digest() -> None:
    for bad in (b"", b"\x00" * 31, b"\x00" * 33):
        with pytest.raises(ValueError, match="32 bytes"):
            cid_v1(bad)


D = sha(b"x")


@pytest.mark.parametrize(
    ("cid", "message"),
    [
        ("", "empty CID"),
        ("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH", "CIDv0"),
        ("z" + "1" * 48, "multibase prefix 'z'"),
        ("f01551220" + D.hex(), "multibase prefix 'f'"),
        ("B" + b32(bytes.fromhex("01551220") + D)[1:].upper(), "multibase prefix 'B'"),
        (b32(bytes.fromhex("01551220") + D)[:-1] + "A", "not base32 lower case"),
        (b32(bytes.fromhex("01551220") + D)[:-1] + "1", "not base32 lower case"),
        ("b" + "a" * 57, "not valid base32"),
        # "...ku" is the empty CID's canonical tail; "kv" sets a trailing pad bit
        (EMPTY_CID[:-1] + "v", "non-canonical"),
        (b32(bytes.fromhex("00551220") + D), "CID version 0 is not supported"),
        (b32(bytes.fromhex("02551220") + D), "CID version 2 is not supported"),
        (b32(bytes.fromhex("01701220") + D), r"codec 0x70 is not raw"),  # dag-pb
        (b32(bytes.fromhex("01711220") + D), r"codec 0x71 is not raw"),  # dag-cbor
        (b32(bytes.fromhex("01551340") + D + D), r"function 0x13 is not sha2-256"),  # sha2-512
        (b32(bytes.fromhex("0155a0e40220") + D), r"function 0xb220 is not sha2-256"),  # blake2b-256
        (b32(bytes.fromhex("01550020") + D), r"function 0x0 is not sha2-256"),  # identity
        (b32(bytes.fromhex("01551210") + D[:16]), "length 16 is not 32"),
        (b32(bytes.fromhex("01551220") + D[:31]), "digest is 31 bytes"),
        (b32(bytes.fromhex("01551220") + D + b"\x00"), "digest is 33 bytes"),
        (b32(bytes.fromhex("0155")), "truncated in the multihash function"),
        (b32(bytes.fromhex("81")), "truncated in the version"),
        (b32(bytes.fromhex("8100551220") + D), "version is not a minimal varint"),  # 1 as 2 bytes
        (b32(b"\xff" * 9 + b"\x01"), "longer than 9 bytes"),
    ],
)
def test_rejects(cid: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cid_v1(cid)


def test_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="a CID is a string"):
        parse_cid_v1(D)  # type: ignore[arg-type]
