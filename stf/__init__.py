"""The MPS chain's state-transition function: pure, deterministic, replayable.

Nothing here imports the node, the RPC server, a database driver or web3:
given a key-value reader and a block, it returns the writes and receipts.
"""

from .block import Block, Header, Receipt
from .errors import BlockInvalid, Code, MPSError, TxFailed, TxInvalid
from .genesis import Genesis, GenesisStake, genesis_block
from .transition import ChainConfig, apply_tx, build_block, check_tx, state_transition
from .tx import Transaction, make_tx

__all__ = [
    "Block",
    "BlockInvalid",
    "ChainConfig",
    "Code",
    "Genesis",
    "GenesisStake",
    "Header",
    "MPSError",
    "Receipt",
    "Transaction",
    "TxFailed",
    "TxInvalid",
    "apply_tx",
    "build_block",
    "check_tx",
    "genesis_block",
    "make_tx",
    "state_transition",
]
