"""Signed transactions: canonical body, domain-separated hash, ed25519 signature.

Wire form: ``[body, signature]`` with ``body = [chain_id, type, sender, nonce,
payload]``. ``payload`` is itself canonical msgpack bytes, decoded by the
transaction's type. The hash covers the unsigned body only, so a re-signed copy
of a transaction is the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from . import encoding
from .encoding import EncodingError
from .errors import Code, TxInvalid
from .hashing import tx_hash

PUBKEY_LEN = 32
SIG_LEN = 64
ZERO_SENDER = b"\x00" * PUBKEY_LEN
ZERO_SIGNATURE = b"\x00" * SIG_LEN
# fixarray(2) header + body + bin8 header (2 bytes) + 64-byte signature
_SIG_TAIL = 2 + SIG_LEN


@dataclass(frozen=True)
class Transaction:
    chain_id: int
    tx_type: int
    sender: bytes
    nonce: int
    payload: bytes
    signature: bytes = ZERO_SIGNATURE

    @cached_property
    def body(self) -> bytes:
        raw = self.__dict__.get("raw")
        if raw is not None:  # decoded: canonical, so the body is the raw bytes less the envelope
            return bytes(raw[1:-_SIG_TAIL])
        return encoding.encode([self.chain_id, self.tx_type, self.sender, self.nonce, self.payload])

    @cached_property
    def hash(self) -> bytes:
        return tx_hash(self.body)

    def encode(self) -> bytes:
        raw = self.__dict__.get("raw")
        if raw is not None:
            return bytes(raw)
        return b"\x92" + self.body + b"\xc4\x40" + self.signature

    def signed(self, key: SigningKey) -> Transaction:
        if bytes(key.verify_key) != self.sender:
            raise ValueError("signing key does not match the sender")
        sig = key.sign(self.hash).signature
        return Transaction(self.chain_id, self.tx_type, self.sender, self.nonce, self.payload, sig)

    def signature_valid(self) -> bool:
        try:
            VerifyKey(self.sender).verify(self.hash, self.signature)
        except (BadSignatureError, ValueError):
            return False
        return True

    @classmethod
    def decode(cls, raw: bytes, max_size: int | None = None) -> Transaction:
        """Parse canonical wire bytes; raise :class:`TxInvalid` naming the fault."""
        if max_size is not None and len(raw) > max_size:
            raise TxInvalid(
                Code.PAYLOAD_TOO_LARGE, f"transaction is {len(raw)} bytes, limit is {max_size}"
            )
        if type(raw) is not bytes:  # kept below: a caller's mutable buffer must not be
            raw = bytes(raw)
        try:
            value = encoding.decode(raw)
            outer = encoding.expect_list(value, 2, "transaction")
            body = encoding.expect_list(outer[0], 5, "transaction body")
            signature = encoding.expect_bytes(outer[1], "signature", SIG_LEN)
            tx = cls(
                chain_id=encoding.expect_int(body[0], "chain_id"),
                tx_type=encoding.expect_int(body[1], "type", 0, 255),
                sender=encoding.expect_bytes(body[2], "sender", PUBKEY_LEN),
                nonce=encoding.expect_int(body[3], "nonce"),
                payload=encoding.expect_bytes(body[4], "payload"),
                signature=signature,
            )
        except EncodingError as exc:
            raise TxInvalid(Code.MALFORMED_TX, f"malformed transaction: {exc}") from None
        # canonical input: the raw bytes are the encoding, the body them less the envelope; kept,
        # not sliced (a copy of the whole payload). Hashed here, not on first use: Python
        # 3.11's cached_property takes one lock for all instances, so the verify threads
        # hashed 100 KB bodies one at a time
        tx.__dict__["raw"] = raw
        tx.__dict__["hash"] = tx_hash(memoryview(raw)[1:-_SIG_TAIL])
        return tx


def make_tx(
    key: SigningKey, chain_id: int, tx_type: int, nonce: int, payload: bytes
) -> Transaction:
    """Build and sign a transaction (the SDK's and the tests' one way to do it)."""
    sender = bytes(key.verify_key)
    return Transaction(chain_id, tx_type, sender, nonce, payload).signed(key)
