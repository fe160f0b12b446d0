"""The ``POST /txs`` body: signed transactions as ``u32 big-endian length || raw``, repeated.

Shared by the node (rpc/tx_stream.py reads it) and its clients (the SDK and bench/ingest.py
write it), so the framing has one definition.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

TX_STREAM = "application/vnd.mps.tx-stream"
FRAME_PREFIX = struct.Struct(">I")


def frame(raws: Iterable[bytes]) -> bytes:
    """A ``POST /txs`` body of these raw transactions, in order."""
    return b"".join(FRAME_PREFIX.pack(len(raw)) + raw for raw in raws)
