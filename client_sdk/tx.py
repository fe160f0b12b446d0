"""Building and signing transactions exactly as the STF checks them."""

from __future__ import annotations

from stf.tx import Transaction, make_tx
from stf.txtypes import blob, record

from .keys import Keypair


def put_record(key: Keypair, chain_id: int, nonce: int, name: str, value: bytes) -> Transaction:
    """A signed ``put_record`` transaction (an empty value deletes the record)."""
    return make_tx(key.signing_key, chain_id, 1, nonce, record.payload(name, value))


def put_blob(key: Keypair, chain_id: int, nonce: int, data: bytes) -> Transaction:
    """A signed ``put_blob`` transaction; the blob's id is sha256(data)."""
    return make_tx(key.signing_key, chain_id, 2, nonce, blob.payload(data))
