"""The ``mps_*`` methods. Each is a small coroutine over the node's public objects."""

from __future__ import annotations

from typing import Any, Protocol

from stf import state_keys
from stf.block import Block
from stf.errors import Code, MPSError
from stf.ids import ClientKey
from stf.stakes import StakeRecord

from .codec import to_block_tag, to_bool, to_bytes, to_hash
from .jsonrpc import Dispatcher, Param
from .views import block_view, proof_view, receipt_view, tx_view


class NodeView(Protocol):
    """What the RPC layer needs from a node; node.app provides it."""

    @property
    def sequencer(self) -> Any: ...

    @property
    def storage(self) -> Any: ...

    @property
    def metrics(self) -> Any: ...

    @property
    def cfg(self) -> Any: ...


def not_found(what: str) -> MPSError:
    return MPSError(Code.NOT_FOUND, f"{what} not found")


def resolve_block(storage: Any, seq: Any, tag: int | str) -> Block:
    """A block by number or tag; safe and finalized follow the L1 (genesis without one)."""
    if tag == "latest":
        return seq.head  # type: ignore[no-any-return]
    if tag == "safe":  # committed to the L1
        height = seq.safe_height
    elif tag == "finalized":  # committed and past the L1 challenge window
        height = seq.finalized_height
    elif tag == "earliest":
        height = 0
    else:
        assert isinstance(tag, int)
        height = tag
    block: Block | None = storage.block_by_height(height)
    if block is None:
        raise not_found(f"block {height}")
    return block


def register_methods(d: Dispatcher, node: NodeView) -> None:
    storage = node.storage
    seq = node.sequencer

    def resolve(tag: int | str) -> Block:
        return resolve_block(storage, seq, tag)

    async def mps_chainId() -> int:
        """The chain id every transaction must carry."""
        return int(seq.chain.chain_id)

    async def mps_blockNumber() -> int:
        """Height of the unsafe (latest sealed) head."""
        return int(seq.head.height)

    async def mps_getBlockByNumber(tag: int | str, full: bool) -> dict[str, Any]:
        """A block by height or tag; full=true inlines the transactions."""
        return block_view(resolve(tag), full)

    async def mps_getBlockByHash(h: bytes, full: bool) -> dict[str, Any]:
        """A block by its hash."""
        block = storage.block_by_hash(h)
        if block is None:
            raise not_found(f"block {h.hex()}")
        return block_view(block, full)

    async def mps_sendTransaction(raw: bytes) -> bytes:
        """Admit a signed transaction to the mempool; returns its hash."""
        return bytes(await seq.submit(raw))

    async def mps_getTransaction(h: bytes) -> dict[str, Any]:
        """A transaction, sealed (with its height and index) or pending (null height)."""
        loc = storage.tx_location(h)
        if loc is not None:
            block = storage.block_by_height(loc[0])
            return tx_view(block.txs[loc[1]], loc[0], loc[1])
        pending = seq.mempool.get(h)
        if pending is None:
            raise not_found(f"transaction {h.hex()}")
        return tx_view(pending, None, None)

    async def mps_getTransactionReceipt(h: bytes) -> dict[str, Any] | None:
        """The receipt of a sealed transaction, or null while it is pending."""
        rc = storage.receipt(h)
        if rc is None:
            if h in seq.mempool:
                return None
            raise not_found(f"transaction {h.hex()}")
        return receipt_view(rc, storage.block_hash_at(rc.height))

    async def mps_getNonce(sender: bytes, pending: bool) -> int:
        """The next nonce of a sender: from sealed state, or counting pending transactions."""
        nonce = int(seq.mempool.state_nonce(sender))
        if pending:
            while seq.mempool.has_nonce(sender, nonce):
                nonce += 1
        return nonce

    async def mps_getProof(key: bytes, tag: int | str) -> dict[str, Any]:
        """A state key's value and its Merkle proof against a block's state root."""
        return proof_view(storage, resolve(tag), key)

    async def mps_getStake(client_key: ClientKey) -> dict[str, Any] | None:
        """A client's stake record as the rollup knows it, or null."""
        raw = storage.state_value(state_keys.stake(client_key))
        if raw is None:
            return None
        s = StakeRecord.decode(raw)
        return {"l1Address": s.l1_address, "amount": s.amount, "status": int(s.status)}

    async def mps_syncStatus() -> dict[str, Any]:
        """Heads as op-node reports them: unsafe (sealed), safe (on L1), finalized."""

        def ref(b: Block) -> dict[str, Any]:
            return {
                "height": b.height,
                "hash": b.hash,
                "stateRoot": b.header.state_root,
                "timestamp": b.header.timestamp_ms,
            }

        return {
            "unsafe": ref(seq.head),
            "safe": ref(resolve("safe")),
            "finalized": ref(resolve("finalized")),
            "mempool": len(seq.mempool),
        }

    async def mps_getRawBlock(tag: int | str) -> bytes:
        """A block's canonical bytes: what a verifier replays (header, signature, transactions)."""
        return bytes(resolve(tag).encode())

    async def mps_getGenesis() -> dict[str, Any]:
        """Everything needed to rebuild block 0; a verifier checks its root against the L1."""
        cfg = node.cfg
        limits = seq.chain.limits
        return {
            "chainId": seq.chain.chain_id,
            "sequencer": seq.chain.sequencer,
            "timestampMs": cfg.genesis_timestamp_ms,
            "stakes": [
                {"clientKey": s.client_key, "l1Address": s.l1_address, "amount": s.amount}
                for s in cfg.genesis_stakes
            ],
            "limits": {
                "maxTxSize": limits.max_tx_size,
                "maxBlockTxs": limits.max_block_txs,
                "maxRecordSize": limits.max_record_size,
                "maxBlobSize": limits.max_blob_size,
            },
            "hash": storage.block_hash_at(0),
        }

    full = Param("full", to_bool, required=False, default=False)
    latest = Param("block", to_block_tag, required=False, default="latest")
    d.add("mps_chainId", mps_chainId)
    d.add("mps_blockNumber", mps_blockNumber)
    d.add("mps_getBlockByNumber", mps_getBlockByNumber, Param("block", to_block_tag), full)
    d.add("mps_getBlockByHash", mps_getBlockByHash, Param("hash", to_hash), full)
    d.add("mps_sendTransaction", mps_sendTransaction, Param("raw", to_bytes))
    d.add("mps_getTransaction", mps_getTransaction, Param("hash", to_hash))
    d.add("mps_getTransactionReceipt", mps_getTransactionReceipt, Param("hash", to_hash))
    d.add(
        "mps_getNonce",
        mps_getNonce,
        Param("sender", to_hash),
        Param("pending", to_bool, required=False, default=False),
    )
    d.add("mps_getProof", mps_getProof, Param("key", to_bytes), latest)
    d.add("mps_getStake", mps_getStake, Param("client_key", to_hash))
    d.add("mps_syncStatus", mps_syncStatus)
    d.add("mps_getRawBlock", mps_getRawBlock, Param("block", to_block_tag))
    d.add("mps_getGenesis", mps_getGenesis)
