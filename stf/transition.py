"""The state-transition function: (state, block) -> new state, nothing else.

Shaped after ethereum/execution-specs: a block is validated, its transactions
applied on an overlay, the resulting roots compared with the header, and only
then is anything returned for commit. The sequencer uses :func:`build_block`,
which runs the very same per-transaction code but drops what is invalid
instead of rejecting the block; replay uses :func:`state_transition`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nacl.signing import SigningKey

from . import encoding, state_keys
from .accounts import must_open, unbacked_failure
from .block import Block, Header, Receipt, receipts_root, tx_root
from .context import BlockContext, Limits
from .errors import BlockInvalid, Code, TxFailed, TxInvalid
from .fl.epoch import close_due_epochs
from .ids import TaskId
from .smt import SparseMerkleTree
from .state import KVReader, State
from .tx import ZERO_SENDER, ZERO_SIGNATURE, Transaction
from .txtypes import TxType, lookup

Writes = dict[bytes, bytes | None]
MAX_RECEIPT_MESSAGE = 300  # characters: a receipt says what failed, it does not quote payloads


@dataclass(frozen=True)
class ChainConfig:
    """Consensus parameters: every node of a chain must agree on all of them."""

    chain_id: int
    sequencer: bytes
    limits: Limits = field(default_factory=Limits)
    backend: str = "numpy"  # numpy or torch: not consensus, both give the same bytes
    epoch_memory_bytes: int | None = None  # epoch-close budget; not consensus either


def check_tx(
    tx: Transaction, config: ChainConfig, *, verify_signature: bool = True
) -> tuple[type[TxType], Any]:
    """Stateless validity: chain id, type, signature, payload. Raises :class:`TxInvalid`."""
    if tx.chain_id != config.chain_id:
        raise TxInvalid(
            Code.WRONG_CHAIN_ID,
            f"transaction is for chain {tx.chain_id}, this is {config.chain_id}",
        )
    ttype = lookup(tx.tx_type)
    if ttype.PRIVILEGED:
        if tx.sender != ZERO_SENDER or tx.signature != ZERO_SIGNATURE:
            raise TxInvalid(
                Code.PRIVILEGED_TX, f"{ttype.NAME} must have the zero sender and signature"
            )
    elif verify_signature and not tx.signature_valid():
        raise TxInvalid(Code.INVALID_SIGNATURE, "signature does not match the sender and body")
    return ttype, ttype.payload_of(tx, config.limits)


def expected_nonce(state: State, tx: Transaction, privileged: bool) -> int:
    key = state_keys.L1_DEPOSIT_COUNT if privileged else state_keys.nonce(tx.sender)
    raw = state.get(key)
    return 0 if raw is None else int(encoding.decode(raw))


def large_failure(ttype: type[TxType], tx: Transaction, exc: TxFailed) -> TxInvalid:
    """The refusal of a large transaction that would fail (:meth:`TxType.must_succeed`)."""
    return TxInvalid(
        Code.LARGE_TX_FAILED,
        f"a {ttype.NAME} with a {len(tx.payload)}-byte payload is never included failed (its "
        f"bytes would be stored for nobody's money): {exc.message[:MAX_RECEIPT_MESSAGE]}",
    )


def apply_tx(
    state: State,
    tx: Transaction,
    index: int,
    ctx: BlockContext,
    checked: tuple[type[TxType], Any],
    forced: bool = False,
) -> Receipt:
    """Apply one stateless-valid transaction; raise :class:`TxInvalid` if it cannot be included.

    A transaction that fails in execution (:class:`TxFailed`) is still
    included: its nonce advances and its other effects are rolled back (unless the failure
    says ``keep_writes``: a forced transaction's deposit keeps the inner nonce it used).
    """
    ttype, args = checked
    want = expected_nonce(state, tx, ttype.PRIVILEGED)
    if tx.nonce != want:
        code = Code.NONCE_TOO_LOW if tx.nonce < want else Code.NONCE_TOO_HIGH
        raise TxInvalid(code, f"nonce {tx.nonce}, expected {want}")
    opening = not forced and not ttype.PRIVILEGED and must_open(state, tx, ttype, want, ctx.limits)
    outer = state.snapshot()
    nonce_key = state_keys.L1_DEPOSIT_COUNT if ttype.PRIVILEGED else state_keys.nonce(tx.sender)
    state.set(nonce_key, encoding.encode(want + 1))
    try:
        ttype.consume(state, tx, args, ctx)
    except TxInvalid:
        state.revert(outer)
        raise
    inner = state.snapshot()
    try:
        ttype.apply(state, tx, args, ctx)
    except TxFailed as exc:
        if opening:  # an unbacked key's create_task is never included failed (stf.accounts)
            state.revert(outer)
            raise unbacked_failure(ttype.NAME, exc.message[:MAX_RECEIPT_MESSAGE]) from None
        # a forced transaction's bytes paid L1 gas, and its failure must use its nonce (else its
        # public signed bytes could be replayed once they would succeed: stf.forced)
        if not forced and ttype.must_succeed(tx, ctx.limits):
            state.revert(outer)
            raise large_failure(ttype, tx, exc) from None
        if not exc.keep_writes:
            state.revert(inner)
        message = exc.message[:MAX_RECEIPT_MESSAGE]
        return Receipt(tx.hash, ctx.height, index, 0, int(exc.code), message)
    except TxInvalid:
        state.revert(outer)
        raise
    return Receipt(tx.hash, ctx.height, index, 1, 0, "")


@dataclass
class BuildResult:
    block: Block
    writes: Writes
    receipts: list[Receipt]
    dropped: list[tuple[Transaction, TxInvalid]]
    closed_epochs: list[TaskId] = field(default_factory=list)  # tasks whose epoch closed


def build_block(
    store: KVReader,
    parent: Header,
    candidates: list[Transaction],
    timestamp_ms: int,
    l1_origin: tuple[int, bytes],
    config: ChainConfig,
    key: SigningKey,
    tree: SparseMerkleTree | None = None,
) -> BuildResult:
    """Apply candidates in order, drop the invalid ones, seal and sign the block.

    Candidates come from the mempool, whose signatures are already verified.
    """
    ctx = BlockContext(
        parent.height + 1, max(timestamp_ms, parent.timestamp_ms), l1_origin[0], config.limits
    )
    state = State(store, parent.state_root)
    included: list[Transaction] = []
    receipts: list[Receipt] = []
    dropped: list[tuple[Transaction, TxInvalid]] = []
    for tx in candidates:
        if len(included) >= config.limits.max_block_txs:
            break
        try:
            checked = check_tx(tx, config, verify_signature=False)
            receipts.append(apply_tx(state, tx, len(included), ctx, checked))
        except TxInvalid as exc:
            dropped.append((tx, exc))
            continue
        included.append(tx)
    closed = close_due_epochs(state, ctx, config.backend, config.epoch_memory_bytes)
    root, writes = state.commit(tree)
    header = Header(
        chain_id=config.chain_id,
        height=ctx.height,
        parent_hash=parent.hash,
        timestamp_ms=ctx.timestamp_ms,
        l1_origin_number=l1_origin[0],
        l1_origin_hash=l1_origin[1],
        tx_root=tx_root(included),
        receipts_root=receipts_root(receipts),
        state_root=root,
        sequencer=config.sequencer,
    )
    block = Block(header, ZERO_SIGNATURE, tuple(included)).signed(key)
    return BuildResult(block, writes, receipts, dropped, closed)


def validate_header(parent: Header, block: Block, config: ChainConfig) -> None:
    h = block.header
    checks = [
        (h.chain_id == config.chain_id, f"chain id {h.chain_id} != {config.chain_id}"),
        (h.height == parent.height + 1, f"height {h.height} does not follow {parent.height}"),
        (h.parent_hash == parent.hash, "parent hash does not match the parent block"),
        (h.timestamp_ms >= parent.timestamp_ms, "timestamp is before the parent's"),
        (h.l1_origin_number >= parent.l1_origin_number, "l1 origin moved backwards"),
        (h.sequencer == config.sequencer, "block is not from this chain's sequencer"),
        (len(block.txs) <= config.limits.max_block_txs, "too many transactions"),
        (block.signature_valid(), "bad sequencer signature"),
        (h.tx_root == tx_root(block.txs), "transactions root mismatch"),
    ]
    for ok, why in checks:
        if not ok:
            raise BlockInvalid(f"block {h.height}: {why}")


def state_transition(
    store: KVReader,
    parent: Header,
    block: Block,
    config: ChainConfig,
    tree: SparseMerkleTree | None = None,
) -> tuple[Writes, list[Receipt]]:
    """Validate ``block`` on top of ``parent``; return the writes to commit and the receipts."""
    validate_header(parent, block, config)
    h = block.header
    ctx = BlockContext(h.height, h.timestamp_ms, h.l1_origin_number, config.limits)
    state = State(store, parent.state_root)
    receipts = []
    for i, tx in enumerate(block.txs):
        try:
            receipts.append(apply_tx(state, tx, i, ctx, check_tx(tx, config)))
        except TxInvalid as exc:
            raise BlockInvalid(f"block {h.height} tx {i}: {exc.message}") from None
    if receipts_root(receipts) != h.receipts_root:
        raise BlockInvalid(f"block {h.height}: receipts root mismatch")
    close_due_epochs(state, ctx, config.backend, config.epoch_memory_bytes)
    root, writes = state.commit(tree)
    if root != h.state_root:
        raise BlockInvalid(
            f"block {h.height}: state root {root.hex()} != header {h.state_root.hex()}"
        )
    return writes, receipts
