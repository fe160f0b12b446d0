"""The genesis block: a chain's identity, derived from its config alone.

Every node computes the same genesis from the same config, so the genesis hash
names the chain, and its state commits the consensus parameters (``chain/spec``).
A dev network may seed stakes here until the L1 follower brings real ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import state_keys
from .block import Block, Header, receipts_root, tx_root
from .hashing import ZERO_HASH
from .ids import ClientKey, L1Address
from .records import ChainSpec
from .stakes import StakeRecord, StakeStatus, write_stake
from .state import KVReader, State
from .transition import ChainConfig, Writes
from .tx import ZERO_SIGNATURE


@dataclass(frozen=True)
class GenesisStake:
    client_key: bytes
    l1_address: bytes
    amount: int


@dataclass(frozen=True)
class Genesis:
    timestamp_ms: int = 0
    stakes: tuple[GenesisStake, ...] = field(default=())


def genesis_block(store: KVReader, config: ChainConfig, genesis: Genesis) -> tuple[Block, Writes]:
    state = State(store, ZERO_HASH)
    lim = config.limits
    spec = ChainSpec(
        config.chain_id,
        config.sequencer,
        lim.max_tx_size,
        lim.max_block_txs,
        lim.max_record_size,
        lim.max_blob_size,
        lim.funding_window_blocks,
        lim.data_fee_per_mib,
    )
    state.set(state_keys.CHAIN_SPEC, spec.encode())
    for s in genesis.stakes:
        record = StakeRecord(L1Address(s.l1_address), s.amount, StakeStatus.STAKED)
        write_stake(state, ClientKey(s.client_key), record)
    root, writes = state.commit()
    header = Header(
        chain_id=config.chain_id,
        height=0,
        parent_hash=ZERO_HASH,
        timestamp_ms=genesis.timestamp_ms,
        l1_origin_number=0,
        l1_origin_hash=ZERO_HASH,
        tx_root=tx_root(()),
        receipts_root=receipts_root([]),
        state_root=root,
        sequencer=config.sequencer,
    )
    return Block(header, ZERO_SIGNATURE, ()), writes
