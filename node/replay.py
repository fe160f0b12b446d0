"""Replay a chain's blocks from genesis into a fresh database, checking every root.

This is what any verifier does: it trusts no state, only blocks, and must
arrive at the same state root at every height.
"""

from __future__ import annotations

from collections.abc import Callable

from stf.errors import BlockInvalid
from stf.genesis import Genesis, genesis_block
from stf.smt import SparseMerkleTree
from stf.transition import ChainConfig, state_transition

from .storage import Storage


class ReplayMismatch(RuntimeError):
    def __init__(self, height: int, why: str) -> None:
        super().__init__(f"replay diverges at block {height}: {why}")
        self.height = height


def replay(
    source: Storage,
    target: Storage,
    chain: ChainConfig,
    genesis: Genesis,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Re-execute every block of ``source`` into ``target``; return the last height."""
    head = source.head()
    if head is None:
        raise ReplayMismatch(0, "source has no blocks")
    g, writes = genesis_block({}, chain, genesis)
    if source.block_hash_at(0) != g.hash:
        raise ReplayMismatch(0, "genesis differs from the given chain config")
    if target.head() is None:
        target.commit_block(g, [], writes)
    tree = SparseMerkleTree(target)
    parent = target.head()
    assert parent is not None
    for height in range(parent.height + 1, head.height + 1):
        block = source.block_by_height(height)
        if block is None:
            raise ReplayMismatch(height, "block missing from source")
        try:
            block_writes, receipts = state_transition(target, parent.header, block, chain, tree)
        except BlockInvalid as exc:
            raise ReplayMismatch(height, str(exc)) from None
        target.commit_block(block, receipts, block_writes)
        parent = block
        if progress is not None:
            progress(height, head.height)
    return head.height
