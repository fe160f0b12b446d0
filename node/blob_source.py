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


def carried_bytes(block: Block, blob_hash: bytes) -> bytes | None:
    """The bytes hashing to ``blob_hash`` that one of ``block``'s transactions carries in the
    top level of its payload, or None."""
    for tx in block.txs:
        try:
            value: Any = encoding.decode(tx.payload)
        except encoding.EncodingError:
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, bytes) and hashlib.sha256(item).digest() == blob_hash:
                return item
    return None
