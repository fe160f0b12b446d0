"""One line per node setting, for ``--help`` and the generated config: what it does.

Every :class:`node.config.NodeConfig` setting has an entry (a test checks it), so every setting
has a flag whose help names its default and its ``MPS_*`` variable.
"""

from __future__ import annotations

SETTING_HELP: dict[str, str] = {
    "datadir": "data directory (chain database, node key)",
    "chain_id": "chain id (consensus)",
    "key_file": "sequencer key file (default: <datadir>/node.key)",
    "rpc_host": "address the JSON-RPC server binds",
    "rpc_port": "JSON-RPC port (0 picks a free one)",
    "block_time": "seconds between blocks",
    "max_block_txs": "seal a block early once this many transactions wait (consensus cap)",
    "empty_blocks": "seal blocks even when no transaction waits",
    "max_tx_size": "largest transaction in bytes (consensus)",
    "max_record_size": "largest put_record value in bytes (consensus)",
    "max_blob_size": "largest blob or chunk in bytes (consensus)",
    "funding_window_blocks": "blocks a task funding may wait for its create_task (consensus; 0: "
    "no L1 funding)",
    "data_fee_per_mib": "wei per MiB of a task's data, billed to its L1 funding (consensus; 0: "
    "not priced)",
    "max_body_size": "largest HTTP request body in bytes",
    "max_batch": "most requests in one JSON-RPC batch",
    "max_stream_txs": "most transactions in one POST /txs stream",
    "max_connections": "open connections the node accepts in all",
    "max_connections_per_address": "open connections from one address",
    "request_timeout": "seconds from connect to the first request's headers",
    "idle_timeout": "seconds from a response to the next request's headers",
    "body_timeout": "seconds from a request's headers to its whole body",
    "mempool_max_txs": "transactions the pool holds",
    "mempool_max_bytes": "bytes the pool holds",
    "max_nonce_gap": "how far past a sender's next nonce a transaction may be queued",
    "verify_threads": "threads checking signatures on admission",
    "log_format": "auto, json or console",
    "log_level": "debug, info, warning, error",
    "genesis_timestamp_ms": "genesis block time in ms (consensus; the config file's "
    "[genesis] timestamp_ms)",
    "stf_backend": "how the epoch close computes, never what: numpy, torch, torch:cpu, "
    "torch:cuda:0",
    "blob_retention_blocks": "blocks a blob no state names is kept in the blob store (0: keep "
    "all; one a block carried comes back from it when read)",
    "epoch_memory_mib": "memory an epoch close may use (it streams in blocks that fit)",
    "blas_threads": "BLAS threads of the epoch close",
    "l1_rpc": "Ethereum JSON-RPC endpoint of the L1 (empty: no L1; dev: instead of its anvil)",
    "l1_chain_id": "the L1's chain id, checked against the endpoint",
    "l1_key_file": "the sequencer's L1 account (batch poster): a hex private key file",
    "l1_aggregator_key_file": "the aggregator's L1 account (slashes); unset: no aggregator",
    "l1_staking_registry": "StakingRegistry address",
    "l1_rollup": "MPSRollup address",
    "l1_slashing_manager": "SlashingManager address",
    "l1_reward_manager": "RewardManager address (tasks funded on the L1)",
    "l1_forced_inbox": "ForcedInbox address (transactions forced past a censor)",
    "l1_start_block": "the L1 block the contracts were deployed in",
    "l1_confirmations": "L1 events are read this many blocks behind the L1 head",
    "l1_poll_interval": "seconds between L1 polls",
    "batch_blocks": "commit a batch once this many blocks wait",
    "batch_seconds": "or once the oldest waiting block is this many seconds old",
    "batch_max_blocks": "most blocks in one batch",
    "batch_data_on_l1": "publish every batch's data on the L1 too (~41 gas a byte)",
    "l1_max_fee_gwei": "the poster never bids more per gas than this",
}
