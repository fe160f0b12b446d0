"""Blocks and receipts: canonical encodings, hashes and the sequencer's signature."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from . import encoding
from .encoding import EncodingError
from .errors import BlockInvalid
from .hashing import header_hash, list_root, sha256
from .tx import SIG_LEN, Transaction


@dataclass(frozen=True)
class Header:
    chain_id: int
    height: int
    parent_hash: bytes
    timestamp_ms: int
    l1_origin_number: int
    l1_origin_hash: bytes
    tx_root: bytes
    receipts_root: bytes
    state_root: bytes
    sequencer: bytes

    def to_list(self) -> list[Any]:
        return [
            self.chain_id,
            self.height,
            self.parent_hash,
            self.timestamp_ms,
            self.l1_origin_number,
            self.l1_origin_hash,
            self.tx_root,
            self.receipts_root,
            self.state_root,
            self.sequencer,
        ]

    @cached_property
    def hash(self) -> bytes:
        return header_hash(encoding.encode(self.to_list()))

    @classmethod
    def from_list(cls, v: Any) -> Header:
        v = encoding.expect_list(v, 10, "header")
        return cls(
            chain_id=encoding.expect_int(v[0], "chain_id"),
            height=encoding.expect_int(v[1], "height"),
            parent_hash=encoding.expect_bytes(v[2], "parent_hash", 32),
            timestamp_ms=encoding.expect_int(v[3], "timestamp"),
            l1_origin_number=encoding.expect_int(v[4], "l1_origin_number"),
            l1_origin_hash=encoding.expect_bytes(v[5], "l1_origin_hash", 32),
            tx_root=encoding.expect_bytes(v[6], "tx_root", 32),
            receipts_root=encoding.expect_bytes(v[7], "receipts_root", 32),
            state_root=encoding.expect_bytes(v[8], "state_root", 32),
            sequencer=encoding.expect_bytes(v[9], "sequencer", 32),
        )


@dataclass(frozen=True)
class Block:
    header: Header
    signature: bytes
    txs: tuple[Transaction, ...] = field(default=())

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def height(self) -> int:
        return self.header.height

    def encode(self) -> bytes:
        return encoding.encode(
            [self.header.to_list(), self.signature, [tx.encode() for tx in self.txs]]
        )

    @classmethod
    def decode(cls, raw: bytes) -> Block:
        try:
            v = encoding.expect_list(encoding.decode(raw), 3, "block")
            header = Header.from_list(v[0])
            sig = encoding.expect_bytes(v[1], "block signature", SIG_LEN)
            if not isinstance(v[2], list):
                raise EncodingError("block transactions must be a list")
            txs = tuple(Transaction.decode(encoding.expect_bytes(t, "tx")) for t in v[2])
        except EncodingError as exc:
            raise BlockInvalid(f"malformed block: {exc}") from None
        return cls(header, sig, txs)

    def signed(self, key: SigningKey) -> Block:
        return replace(self, signature=key.sign(self.hash).signature)

    def signature_valid(self) -> bool:
        try:
            VerifyKey(self.header.sequencer).verify(self.hash, self.signature)
        except (BadSignatureError, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Receipt:
    tx_hash: bytes
    height: int
    index: int
    status: int  # 1 success, 0 failed (the nonce still advanced)
    code: int  # 0 on success, else a stf.errors.Code
    message: str  # for people: not consensus (see commitment)

    def to_list(self) -> list[Any]:
        return [self.tx_hash, self.height, self.index, self.status, self.code, self.message]

    def encode(self) -> bytes:
        return encoding.encode(self.to_list())

    def commitment(self) -> bytes:
        """What the receipts root commits to: every field but the message. A message may quote
        a library's error text or a ``repr`` of user bytes, which differ between msgpack and
        Python versions (a forced transaction made one receipt root two on 3.11 and 3.12): a
        consensus hash must not depend on them. The code says what failed."""
        return encoding.encode([self.tx_hash, self.height, self.index, self.status, self.code])

    @classmethod
    def decode(cls, raw: bytes) -> Receipt:
        v = encoding.expect_list(encoding.decode(raw), 6, "receipt")
        return cls(v[0], v[1], v[2], v[3], v[4], v[5])


def tx_root(txs: tuple[Transaction, ...] | list[Transaction]) -> bytes:
    return list_root([tx.hash for tx in txs])


def receipts_root(receipts: list[Receipt]) -> bytes:
    return list_root([sha256(r.commitment()) for r in receipts])
