"""CIDv1 strings for the chain's content-addressed blobs (training scripts, models, updates).

A blob's id on chain is the sha256 digest of its bytes (:meth:`stf.state.State.put_blob`,
``TaskParams.script`` / ``init_model``). :func:`cid_v1` writes that digest as the IPFS
content identifier of the same bytes taken as one *raw* block::

    "b" + base32lower(0x01 0x55 0x12 0x20 <32-byte digest>)   (59 characters, "bafkrei...")

* ``b``: multibase base32, RFC 4648 alphabet, lower case, no padding;
* ``0x01``: CID version 1; ``0x55``: multicodec ``raw`` (the block *is* the bytes);
* ``0x12 0x20``: multihash sha2-256, 32-byte digest.

So the CID names exactly the blob's bytes, nothing more: no file name, no UnixFS framing.
E.g. the empty blob is ``bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku``.

What IPFS tools give the same CID for the same bytes (Kubo):

* ``ipfs block put --cid-codec raw --mhtype sha2-256`` (the defaults in current Kubo):
  always, for any blob up to 1 MiB; bigger blocks need ``--allow-big-block`` and are not
  transferred by standard bitswap.
* ``ipfs add --cid-version 1`` (which turns on ``--raw-leaves``): only when the file fits in
  one chunk, i.e. at most 262,144 bytes with the default chunker ``size-262144``; pass e.g.
  ``--chunker size-1048576`` for files up to 1 MiB. A bigger file is split into several raw
  leaves under a dag-pb (UnixFS) root, whose CID (``bafybei...``) is not this one.
* Plain ``ipfs add`` (CIDv0, ``Qm...``) wraps even a one-chunk file in a dag-pb UnixFS
  node: a different CID for the same bytes, never this one.

:func:`parse_cid_v1` accepts only this exact form (base32-lower CIDv1, raw, sha2-256,
32 bytes, canonical encoding) and returns the digest, i.e. the blob id to fetch with
``mps_getBlob``.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["CID_LEN", "cid_v1", "parse_cid_v1"]

MULTIBASE_BASE32 = "b"
CID_VERSION = 0x01
CODEC_RAW = 0x55
MH_SHA2_256 = 0x12
DIGEST_LEN = 32
_PREFIX = bytes((CID_VERSION, CODEC_RAW, MH_SHA2_256, DIGEST_LEN))
#: characters in a CID from :func:`cid_v1`: the multibase prefix and 58 base32 digits
CID_LEN = 1 + (8 * (len(_PREFIX) + DIGEST_LEN) + 4) // 5
_B32_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz234567")


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def cid_v1(sha256_digest: bytes) -> str:
    """The CIDv1 (base32, raw codec, sha2-256) of the blob whose sha256 is ``sha256_digest``."""
    if len(sha256_digest) != DIGEST_LEN:
        raise ValueError(f"a sha256 digest is {DIGEST_LEN} bytes, got {len(sha256_digest)}")
    return MULTIBASE_BASE32 + _b32(_PREFIX + bytes(sha256_digest))


def _varint(data: bytes, pos: int, what: str) -> tuple[int, int]:
    """A multiformats unsigned varint (LEB128, minimal, at most 9 bytes) at ``pos``."""
    value = 0
    for i in range(9):
        if pos + i >= len(data):
            raise ValueError(f"CID truncated in the {what}")
        b = data[pos + i]
        value |= (b & 0x7F) << (7 * i)
        if not b & 0x80:
            if b == 0 and i > 0:
                raise ValueError(f"CID {what} is not a minimal varint")
            return value, pos + i + 1
    raise ValueError(f"CID {what} varint is longer than 9 bytes")


def parse_cid_v1(cid: str) -> bytes:
    """The sha256 digest (blob id) in a CID of the form :func:`cid_v1` writes.

    Raises ValueError naming what differs: the multibase, the CID version, the codec,
    the hash function, the digest length, or the encoding itself.
    """
    if not isinstance(cid, str):
        raise ValueError(f"a CID is a string, got {type(cid).__name__}")
    if not cid:
        raise ValueError("empty CID")
    if cid.startswith("Qm") and len(cid) == 46:
        raise ValueError(
            "CIDv0 (base58btc, dag-pb) is not supported; expected a CIDv1 'bafkrei...'"
        )
    if cid[0] != MULTIBASE_BASE32:
        raise ValueError(
            f"unsupported multibase prefix {cid[0]!r}: expected 'b' (base32, lower case)"
        )
    body = cid[1:]
    bad = sorted(set(body) - _B32_LOWER)
    if bad:
        raise ValueError(f"not base32 lower case: unexpected characters {''.join(bad)!r}")
    try:
        raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    except binascii.Error as e:
        raise ValueError(f"not valid base32 (length {len(body)})") from e
    if _b32(raw) != body:
        raise ValueError("non-canonical base32 (non-zero trailing bits)")
    version, pos = _varint(raw, 0, "version")
    if version != CID_VERSION:
        raise ValueError(f"CID version {version} is not supported: expected 1")
    codec, pos = _varint(raw, pos, "codec")
    if codec != CODEC_RAW:
        raise ValueError(f"CID codec 0x{codec:x} is not raw (0x55)")
    hash_fn, pos = _varint(raw, pos, "multihash function")
    if hash_fn != MH_SHA2_256:
        raise ValueError(f"multihash function 0x{hash_fn:x} is not sha2-256 (0x12)")
    length, pos = _varint(raw, pos, "multihash length")
    if length != DIGEST_LEN:
        raise ValueError(f"multihash length {length} is not {DIGEST_LEN} (sha2-256)")
    digest = raw[pos:]
    if len(digest) != DIGEST_LEN:
        raise ValueError(
            f"multihash digest is {len(digest)} bytes, its length field says {DIGEST_LEN}"
        )
    return digest
