"""``mps_syncStatus``: where the chain stands against the L1, apart from the chain reads
because it is what a follower or monitor polls, and it needs no storage beyond block lookups."""

from __future__ import annotations

from typing import Any

from .lookup import resolve_block
from .ports import BlockStore, PoolHeads
from .registry import rpc
from .views import head_ref


class SyncMethods:
    """The sync heads: unsafe from the sequencer, safe and finalized from the L1 services."""

    def __init__(self, store: BlockStore, heads: PoolHeads) -> None:
        self._store = store
        self._heads = heads

    @rpc()
    async def mps_syncStatus(self) -> dict[str, Any]:
        """Heads as op-node reports them: unsafe (sealed), safe (on L1), finalized."""
        return {
            "unsafe": head_ref(self._heads.head),
            "safe": head_ref(resolve_block(self._store, self._heads, "safe")),
            "finalized": head_ref(resolve_block(self._store, self._heads, "finalized")),
            "mempool": len(self._heads.mempool),
        }
