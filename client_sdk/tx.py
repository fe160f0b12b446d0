"""Building and signing transactions exactly as the STF checks them."""

from __future__ import annotations

from stf.tx import Transaction, make_tx
from stf.txtypes import blob, record

from .keys import Keypair


def put_record(key: Keypair, chain_id: int, nonce: int, name: str, value: bytes) -> Transaction:
    """A signed ``put_record`` transaction (an empty value deletes the record)."""
    return make_tx(key.signing_key, chain_id, 1, nonce, record.payload(name, value))


def put_blob(
    key: Keypair,
    chain_id: int,
    nonce: int,
    data: bytes,
    task_id: bytes | None = None,
    funder: bytes | None = None,
    create: Transaction | None = None,
) -> Transaction:
    """A signed ``put_blob`` transaction; the blob's id is sha256(data).

    ``task_id``: uploaded for that open task (as its requester or a client that joined it);
    with ``funder`` and ``create`` (the signed, not yet sent create_task whose hash is the id,
    signed by this key) before the task exists, against that L1 account's funding of the id.
    A chain that funds its tasks takes no other blob (``stf.fl.uploads``)."""
    body = None if create is None else create.body
    return make_tx(key.signing_key, chain_id, 2, nonce, blob.payload(data, task_id, funder, body))
