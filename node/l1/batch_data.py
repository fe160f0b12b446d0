"""A batch's data as the L1 commits to it: its rollup blocks, cut into chunks one call can carry.

The data is the msgpack list of the batch's raw blocks (``Block.encode()``, heights in order),
cut into chunks of :data:`CHUNK_SIZE` bytes (the last one shorter). ``MPSRollup.commitBatch``
takes ``dataHash = keccak256(keccak256(chunk_0) ‖ … ‖ keccak256(chunk_n-1))``, so that, when a
verifier cannot get the data and challenges it, each chunk can be published and checked on the
L1 on its own (``publishChunk``: calldata of at most one chunk per call). Whoever has the blocks
(the sequencer, or any node that replayed them) computes the same chunks.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils.crypto import keccak

from stf import encoding

from ..storage import Storage

CHUNK_SIZE = 64 * 1024  # 1.05M gas of calldata per chunk: several fit an L1 block
MAX_CHUNKS = 65_535  # MPSRollup.MAX_CHUNKS
# MPSRollup.DataStatus, the status a data challenge view answers with
DATA_NONE, DATA_ACTIVE, DATA_RESOLVED, DATA_EXPIRED, DATA_VOIDED = range(5)


class BatchDataError(ValueError):
    """Bytes that are not a batch's data (undecodable, or not what its hash commits to)."""


def encode_batch(raw_blocks: Sequence[bytes]) -> bytes:
    return encoding.encode(list(raw_blocks))


def decode_batch(data: bytes) -> list[bytes]:
    try:
        blocks = encoding.decode(data)
    except Exception as exc:
        raise BatchDataError(f"batch data does not decode: {exc}") from None
    if not isinstance(blocks, list) or not all(isinstance(b, bytes) for b in blocks):
        raise BatchDataError("batch data must be a list of raw blocks")
    return blocks


def split_chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)]


def chunk_hashes(chunks: Sequence[bytes]) -> list[bytes]:
    return [keccak(c) for c in chunks]


def data_hash(hashes: Sequence[bytes]) -> bytes:
    """``keccak256`` of the chunk hashes, concatenated: what the L1 holds as ``dataHash``."""
    return keccak(b"".join(hashes))


def batch_data(storage: Storage, first: int, last: int) -> bytes:
    """The data of the batch of blocks ``first..last``, from a node's database."""
    raws = []
    for height in range(first, last + 1):
        block = storage.block_by_height(height)
        if block is None:
            raise BatchDataError(f"block {height} is missing from the database")
        raws.append(block.encode())
    return encode_batch(raws)


def batch_commitment(data: bytes) -> tuple[bytes, list[bytes]]:
    """``(dataHash, chunk hashes)`` of a batch's data."""
    hashes = chunk_hashes(split_chunks(data))
    if len(hashes) > MAX_CHUNKS:
        raise BatchDataError(f"batch data of {len(data)} bytes is over {MAX_CHUNKS} chunks")
    return data_hash(hashes), hashes
