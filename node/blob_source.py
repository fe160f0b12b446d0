"""A blob's bytes out of the block that carried them: what makes pruning a blob lose nothing.

An uploaded blob (``put_blob``) and an update sent inline (``submit_update``,
``reveal_reference``) travel inside a transaction, so their block holds them for as long as the
node keeps its history (every verifier replays blocks, never the blob store). The blob store's
copy is then a cache: :mod:`node.blob_gc` may drop it, and a read brings it back from the block.
Only blobs the STF computed (base models, steps, manifests) have no carrier; those are pruned
only once no state names them and no transaction can (docs/protocol.md, "Blob retention").
"""

from __future__ import annotations

import hashlib
from typing import Any

from stf import encoding
from stf.block import Block
from stf.errors import TxInvalid
from stf.tx import Transaction


def carried_bytes(block: Block, blob_hash: bytes) -> bytes | None:
    """The bytes hashing to ``blob_hash`` that one of ``block``'s transactions carries in the
    top level of its payload, or in the payload of a transaction it carries (a forced
    transaction rides inside an ``l1_deposit``: a red team's fork, a forced upload pruned for
    good), or None."""
    for tx in block.txs:
        found = _in_payload(tx.payload, blob_hash, nested=True)
        if found is not None:
            return found
    return None


def _in_payload(payload: bytes, blob_hash: bytes, nested: bool) -> bytes | None:
    try:
        value: Any = encoding.decode(payload)
    except encoding.EncodingError:
        return None
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, bytes):
            if hashlib.sha256(item).digest() == blob_hash:
                return item
            if nested:  # a transaction inside: look into its payload, one level down
                try:
                    inner = Transaction.decode(item)
                except TxInvalid:
                    continue
                found = _in_payload(inner.payload, blob_hash, nested=False)
                if found is not None:
                    return found
    return None
