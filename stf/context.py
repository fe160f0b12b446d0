"""What a transaction may know about the block that carries it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Consensus limits: every node of a chain must use the same values."""

    max_tx_size: int = 4 * 1024 * 1024
    max_block_txs: int = 1000
    max_record_size: int = 4096
    max_blob_size: int = 4 * 1024 * 1024
    # 0: tasks need no L1 funding (a chain without an L1 RewardManager). n > 0: a create_task
    # must name an L1 funding the rollup recorded for its task id, at most n blocks old, so a
    # slot costs its requester the L1's BASE_FEE (stf.fl.funding)
    funding_window_blocks: int = 0
    # wei per MiB of a task's data, billed to its funding at settlement (stf.fl.data_budget);
    # 0: bytes are not priced. Only a chain that funds its tasks prices them
    data_fee_per_mib: int = 0


@dataclass(frozen=True)
class BlockContext:
    height: int
    timestamp_ms: int
    l1_origin_number: int
    limits: Limits
