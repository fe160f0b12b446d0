"""Reads every namespace shares: block tags to blocks, and state values at a block."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from stf.block import Block
from stf.errors import Code, MPSError
from stf.smt import SparseMerkleTree

from .ports import BlockStore, Heads, StateStore

StateGet = Callable[[bytes], bytes | None]


def not_found(what: str) -> MPSError:
    return MPSError(Code.NOT_FOUND, f"{what} not found")


def resolve_block(store: BlockStore, heads: Heads, tag: int | str) -> Block:
    """A block by number or tag; safe and finalized follow the L1 (genesis without one)."""
    if tag == "latest":
        return heads.head
    if tag == "safe":  # committed to the L1
        height = heads.safe_height
    elif tag == "finalized":  # committed and past the L1 challenge window
        height = heads.finalized_height
    elif tag == "earliest":
        height = 0
    else:
        assert isinstance(tag, int)
        height = tag
    block = store.block_by_height(height)
    if block is None:
        raise not_found(f"block {height}")
    return block


def state_reader(store: StateStore, heads: Heads, block: Block) -> StateGet:
    """State reads at ``block``: the flat index at the head, the tree under older roots."""
    if block.hash == heads.head.hash:
        return store.state_value
    tree = SparseMerkleTree(store)
    root = block.header.state_root

    def get(key: bytes) -> bytes | None:
        vh = tree.get_value_hash(root, key)
        return None if vh is None else store.value_by_hash(vh)

    return get


class BlobReads(Protocol):
    def stored_blob(self, blob_hash: bytes) -> bytes | None: ...

    def blob(self, blob_hash: bytes) -> bytes | None: ...


# a pool of its own: the default executor is also what callers' threads wait in (a test's sync
# clients), and a restore queued behind them never ran (the Flower test hung so)
_RESTORES = ThreadPoolExecutor(2, thread_name_prefix="mps-blob-restore")


async def read_blob(store: BlobReads, blob_hash: bytes) -> bytes | None:
    """A blob's bytes: the store's copy at once, or a pruned upload read back out of the block
    that carried it, which may be large, on a worker thread."""
    data = store.stored_blob(blob_hash)
    if data is not None:
        return data
    return await asyncio.get_running_loop().run_in_executor(_RESTORES, store.blob, blob_hash)
