"""The chain, transaction and state ``mps_*`` methods."""

from __future__ import annotations

from typing import Any

from stf import state_keys
from stf.fl.settlement import decode_release
from stf.genesis import Genesis
from stf.ids import ClientKey
from stf.stakes import StakeRecord

from .codec import to_bool, to_bytes, to_hash
from .jsonrpc import Param
from .lookup import not_found, resolve_block
from .params import AT_BLOCK, BLOCK, FULL, HASH
from .ports import Admission, ChainStore
from .registry import rpc
from .views import block_view, genesis_view, proof_view, receipt_view, tx_view


class ChainMethods:
    """Blocks, transactions (sealed or pending), nonces, proofs, stakes and genesis.

    Reads come from ``store``; the head, the pending pool and admission from ``sequencer``;
    ``genesis`` is what the chain's block 0 was built from.
    """

    def __init__(self, store: ChainStore, sequencer: Admission, genesis: Genesis) -> None:
        self._store = store
        self._seq = sequencer
        self._genesis = genesis

    @rpc()
    async def mps_chainId(self) -> int:
        """The chain id every transaction must carry."""
        return int(self._seq.chain.chain_id)

    @rpc()
    async def mps_blockNumber(self) -> int:
        """Height of the unsafe (latest sealed) head."""
        return int(self._seq.head.height)

    @rpc(BLOCK, FULL)
    async def mps_getBlockByNumber(self, tag: int | str, full: bool) -> dict[str, Any]:
        """A block by height or tag; full=true inlines the transactions."""
        return block_view(resolve_block(self._store, self._seq, tag), full)

    @rpc(HASH, FULL)
    async def mps_getBlockByHash(self, h: bytes, full: bool) -> dict[str, Any]:
        """A block by its hash."""
        block = self._store.block_by_hash(h)
        if block is None:
            raise not_found(f"block {h.hex()}")
        return block_view(block, full)

    @rpc(Param("raw", to_bytes))
    async def mps_sendTransaction(self, raw: bytes) -> bytes:
        """Admit a signed transaction to the mempool; returns its hash."""
        return bytes(await self._seq.submit(raw))

    @rpc(HASH)
    async def mps_getTransaction(self, h: bytes) -> dict[str, Any]:
        """A transaction, sealed (with its height and index) or pending (null height)."""
        loc = self._store.tx_location(h)
        if loc is not None:
            block = self._store.block_by_height(loc[0])
            assert block is not None, "a transaction's location names a missing block"
            return tx_view(block.txs[loc[1]], loc[0], loc[1])
        pending = self._seq.mempool.get(h)
        if pending is None:
            raise not_found(f"transaction {h.hex()}")
        return tx_view(pending, None, None)

    @rpc(HASH)
    async def mps_getTransactionReceipt(self, h: bytes) -> dict[str, Any] | None:
        """The receipt of a sealed transaction, or null while it is pending."""
        rc = self._store.receipt(h)
        if rc is None:
            if h in self._seq.mempool:
                return None
            raise not_found(f"transaction {h.hex()}")
        return receipt_view(rc, self._store.block_hash_at(rc.height))

    @rpc(Param("sender", to_hash), Param("pending", to_bool, required=False, default=False))
    async def mps_getNonce(self, sender: bytes, pending: bool) -> int:
        """The next nonce of a sender: from sealed state, or counting pending transactions."""
        pool = self._seq.mempool
        nonce = int(pool.state_nonce(sender))
        if pending:
            while pool.has_nonce(sender, nonce):
                nonce += 1
        return nonce

    @rpc(Param("key", to_bytes), AT_BLOCK)
    async def mps_getProof(self, key: bytes, tag: int | str) -> dict[str, Any]:
        """A state key's value and its Merkle proof against a block's state root."""
        return proof_view(self._store, resolve_block(self._store, self._seq, tag), key)

    @rpc(Param("client_key", to_hash))
    async def mps_getStake(self, client_key: ClientKey) -> dict[str, Any] | None:
        """A client's stake record as the rollup knows it, or null."""
        raw = self._store.state_value(state_keys.stake(client_key))
        if raw is None:
            return None
        s = StakeRecord.decode(raw)
        get = self._store.state_value
        unbonding = get(state_keys.unbonding(client_key))
        release = get(state_keys.release(client_key))
        convicted = get(state_keys.convicted(client_key))
        return {
            # wei as a decimal string: an L1 uint256, beyond JSON's safe and msgpack's integers
            "l1Address": s.l1_address,
            "amount": str(s.amount),
            "status": int(s.status),
            # the L1 block of the unregister the rollup still holds back, or has released
            "releasePending": None if unbonding is None else decode_release(unbonding),
            "released": None if release is None else decode_release(release),
            "convictedIn": convicted,  # the task of the first slash evidence: never released
        }

    @rpc(BLOCK)
    async def mps_getRawBlock(self, tag: int | str) -> bytes:
        """A block's canonical bytes: what a verifier replays (header, signature, transactions)."""
        return bytes(resolve_block(self._store, self._seq, tag).encode())

    @rpc()
    async def mps_getGenesis(self) -> dict[str, Any]:
        """Everything needed to rebuild block 0; a verifier checks its root against the L1."""
        return genesis_view(self._seq.chain, self._genesis, self._store.block_hash_at(0))
