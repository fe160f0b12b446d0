"""How chain objects look over RPC: dicts of plain values (bytes become 0x hex in JSON)."""

from __future__ import annotations

from typing import Any

from stf.block import Block, Receipt
from stf.errors import Code
from stf.genesis import Genesis
from stf.smt import SparseMerkleTree, key_path
from stf.transition import ChainConfig
from stf.tx import Transaction
from stf.txtypes import REGISTRY

from .ports import TreeStore


def block_view(block: Block, full: bool) -> dict[str, Any]:
    h = block.header
    return {
        "hash": block.hash,
        "height": h.height,
        "parentHash": h.parent_hash,
        "timestamp": h.timestamp_ms,
        "l1Origin": {"number": h.l1_origin_number, "hash": h.l1_origin_hash},
        "txRoot": h.tx_root,
        "receiptsRoot": h.receipts_root,
        "stateRoot": h.state_root,
        "sequencer": h.sequencer,
        "signature": block.signature,
        "chainId": h.chain_id,
        "transactions": [
            tx_view(tx, h.height, i) if full else tx.hash for i, tx in enumerate(block.txs)
        ],
    }


def tx_view(tx: Transaction, height: int | None, index: int | None) -> dict[str, Any]:
    ttype = REGISTRY.get(tx.tx_type)
    return {
        "hash": tx.hash,
        "chainId": tx.chain_id,
        "type": tx.tx_type,
        "typeName": ttype.NAME if ttype else None,
        "sender": tx.sender,
        "nonce": tx.nonce,
        "payload": tx.payload,
        "signature": tx.signature,
        "blockHeight": height,
        "index": index,
        "raw": tx.encode(),
    }


def proof_view(storage: TreeStore, block: Block, key: bytes) -> dict[str, Any]:
    """A state key's value (or None) with its Merkle proof against ``block``'s state root."""
    root = block.header.state_root
    proof = SparseMerkleTree(storage).prove(root, key)
    value = None
    if proof.leaf is not None and proof.leaf[0] == key_path(key):
        value = storage.value_by_hash(proof.leaf[1])
    return {
        "key": key,
        "value": value,
        "height": block.height,
        "blockHash": block.hash,
        "stateRoot": root,
        "proof": {
            "siblings": list(proof.siblings),
            "leaf": None if proof.leaf is None else list(proof.leaf),
        },
    }


def receipt_view(rc: Receipt, block_hash: bytes | None) -> dict[str, Any]:
    return {
        "txHash": rc.tx_hash,
        "blockHeight": rc.height,
        "blockHash": block_hash,
        "index": rc.index,
        "status": rc.status,
        "code": rc.code,
        "codeName": Code(rc.code).name if rc.code else None,
        "message": rc.message,
    }


def head_ref(block: Block) -> dict[str, Any]:
    """A head as op-node reports it: enough to name and check a block."""
    return {
        "height": block.height,
        "hash": block.hash,
        "stateRoot": block.header.state_root,
        "timestamp": block.header.timestamp_ms,
    }


def genesis_view(chain: ChainConfig, genesis: Genesis, block_hash: bytes | None) -> dict[str, Any]:
    limits = chain.limits
    return {
        "chainId": chain.chain_id,
        "sequencer": chain.sequencer,
        "timestampMs": genesis.timestamp_ms,
        "stakes": [
            {"clientKey": s.client_key, "l1Address": s.l1_address, "amount": str(s.amount)}
            for s in genesis.stakes
        ],
        "limits": {
            "maxTxSize": limits.max_tx_size,
            "maxBlockTxs": limits.max_block_txs,
            "maxRecordSize": limits.max_record_size,
            "maxBlobSize": limits.max_blob_size,
            "fundingWindowBlocks": limits.funding_window_blocks,
            "dataFeePerMib": str(limits.data_fee_per_mib),
        },
        "hash": block_hash,
    }
