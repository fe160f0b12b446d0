"""Forced transactions: a signed transaction that reached the chain through the L1 inbox.

A user the sequencer censors posts its signed transaction to the ForcedInbox contract; the
sequencer must bring the event in as an ``l1_deposit`` of kind ``forced`` (the verifier's
sequencing-window rule, :mod:`node.l1.derivation`), and this module applies the inner
transaction exactly as a block would: same checks (chain id, signature, payload, nonce), same
execution. Anyone can post anything to the inbox, so nothing about the bytes may make the block
invalid: whatever is wrong with them fails the deposit instead, and a failed forced transaction
changes nothing (not even its sender's nonce), so the same signed transaction can still be sent
the usual way, or forced again.
"""

from __future__ import annotations

from .context import BlockContext
from .errors import Code, TxFailed, TxInvalid
from .state import State
from .transition import ChainConfig, apply_tx, check_tx
from .tx import ZERO_SENDER, Transaction


def apply_forced(state: State, raw: bytes, ctx: BlockContext, chain_id: int) -> None:
    """Apply the forced transaction ``raw``; raise :class:`TxFailed` if it cannot apply.

    The caller (the deposit) reverts every write of a failed one."""
    config = ChainConfig(chain_id, ZERO_SENDER, ctx.limits)  # check_tx reads no sequencer
    try:
        tx = Transaction.decode(raw, ctx.limits.max_tx_size)
        checked = check_tx(tx, config)
        if checked[0].PRIVILEGED:
            raise TxInvalid(Code.PRIVILEGED_TX, f"{checked[0].NAME} cannot be forced")
        receipt = apply_tx(state, tx, 0, ctx, checked)
    except TxInvalid as exc:
        raise TxFailed(Code.FORCED_TX_INVALID, f"forced transaction: {exc.message}") from None
    if not receipt.status:
        raise TxFailed(Code(receipt.code), f"forced transaction {tx.hash.hex()}: {receipt.message}")
