"""Forced transactions: a signed transaction that reached the chain through the L1 inbox.

A user the sequencer censors posts its signed transaction to the ForcedInbox contract; the
sequencer must bring the event in as an ``l1_deposit`` of kind ``forced`` (the verifier's
sequencing-window rule, :mod:`node.l1.derivation`), and this module applies the inner
transaction exactly as a block would: same checks (chain id, signature, payload, nonce), same
execution, and a failure in execution uses up its nonce, as in a block (else its public signed
bytes could be replayed later, once they would succeed). Anyone can post anything to the
inbox, so nothing about the bytes may make the block invalid: a transaction that cannot apply
at all (it does not decode, is for another chain, is badly signed, has a wrong nonce, is a
privileged type) fails the deposit and changes nothing.
"""

from __future__ import annotations

from .context import BlockContext
from .errors import Code, TxFailed, TxInvalid
from .state import State
from .transition import ChainConfig, apply_tx, check_tx
from .tx import ZERO_SENDER, Transaction
from .txtypes import lookup


def apply_forced(state: State, raw: bytes, ctx: BlockContext, chain_id: int) -> None:
    """Apply the forced transaction ``raw``; raise :class:`TxFailed` if it did not apply.

    Receipt messages here never quote the bytes or a library's error text: the code says
    what failed (the receipts root commits to codes only, and the message stays short)."""
    config = ChainConfig(chain_id, ZERO_SENDER, ctx.limits)  # check_tx reads no sequencer
    try:
        tx = Transaction.decode(raw, ctx.limits.max_tx_size)
        ttype = lookup(tx.tx_type)
        if ttype.PRIVILEGED:  # before its payload is even parsed
            raise TxInvalid(Code.PRIVILEGED_TX, f"{ttype.NAME} cannot be forced")
        receipt = apply_tx(state, tx, 0, ctx, check_tx(tx, config), forced=True)
    except TxInvalid as exc:
        raise TxFailed(
            Code.FORCED_TX_INVALID, f"the forced transaction cannot apply: {exc.code.name}"
        ) from None
    if not receipt.status:  # its effects are rolled back and its nonce is used, as in a block
        raise TxFailed(
            Code(receipt.code), f"forced transaction {tx.hash.hex()} failed", keep_writes=True
        )
