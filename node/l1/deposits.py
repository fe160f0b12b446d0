"""L1 events on the node's side: what the follower delivers, the ``l1_deposit`` transactions the
sequencer makes of them, and the L1 origin a block may claim.

The sequencer writes these transactions and the verifier's derivation check reads them back, so
both go through the STF's own payload (:func:`stf.txtypes.l1_deposit.payload`,
:meth:`L1Deposit.decode_payload`): an event cannot mean one thing to the node and another to the
chain. Nothing here talks to the L1 (no web3), so the sequencer of a node without an L1 imports it
at no cost; turning web3 logs into events is the follower's job.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from stf.block import Header
from stf.context import Limits
from stf.errors import TxInvalid
from stf.hashing import ZERO_HASH
from stf.transition import ChainConfig, check_tx
from stf.tx import ZERO_SENDER, Transaction
from stf.txtypes import l1_deposit
from stf.txtypes.l1_deposit import L1Deposit

log = structlog.get_logger("mps.sequencer")  # the sequencer drops the events

L1Origin = tuple[int, bytes]  # (L1 block number, its hash)


@dataclass(frozen=True)
class L1Event:
    """An L1 log, confirmed, in the form the ``l1_deposit`` transaction carries it."""

    block: int
    log_index: int
    kind: str
    args: list[object]

    @property
    def position(self) -> tuple[int, int]:
        """Where the event sits on the L1; the chain consumes events in this order."""
        return (self.block, self.log_index)


def deposit_tx(chain_id: int, nonce: int, event: L1Event) -> Transaction:
    """The privileged ``l1_deposit`` transaction (zero sender, unsigned) carrying ``event``."""
    body = l1_deposit.payload(event.block, event.log_index, event.kind, event.args)
    return Transaction(chain_id, L1Deposit.TYPE_ID, ZERO_SENDER, nonce, body)


def deposit_txs(chain: ChainConfig, first_nonce: int, events: list[L1Event]) -> list[Transaction]:
    """The deposits of ``events``, numbered from ``first_nonce``; an event the STF would reject
    is logged and left out, so that it does not shift the nonces of the ones after it."""
    txs: list[Transaction] = []
    for event in events:
        tx = deposit_tx(chain.chain_id, first_nonce + len(txs), event)
        try:
            check_tx(tx, chain, verify_signature=False)
        except TxInvalid as exc:
            log.error(
                "l1 event dropped", position=event.position, kind=event.kind, error=exc.message
            )
            continue
        txs.append(tx)
    return txs


def forced_senders(events: list[L1Event]) -> list[bytes]:
    """The senders of the forced transactions among ``events`` (bytes that do not decode have
    none): a block carrying them may move those accounts' nonces."""
    out = []
    for e in events:
        if e.kind == "forced" and e.args and isinstance(e.args[0], bytes):
            try:
                out.append(Transaction.decode(e.args[0]).sender)
            except TxInvalid:
                continue
    return out


def event_of(tx: Transaction) -> L1Event:
    """The event an ``l1_deposit`` transaction carries; raises :class:`TxInvalid` if the STF
    would not accept its payload. (Parsing a deposit reads no limit: the defaults do.)"""
    block, log_index, kind, args = L1Deposit.decode_payload(tx.payload, Limits())
    return L1Event(block, log_index, kind, list(args))


def select_l1_origin(parent: Header, followed: L1Origin, queued: int, included: int) -> L1Origin:
    """The L1 origin of the block built on ``parent``, ``included`` of the ``queued`` events in.

    An origin promises that every L1 event up to that L1 block is in the chain by then (the
    verifier checks it), so the block claims the follower's ``followed`` origin only when it
    takes every queued event; otherwise, and whenever that would not move forward, it keeps the
    parent's origin (the zero hash when the parent is genesis, whose origin is no L1 block).
    """
    if included == queued and followed[0] > parent.l1_origin_number:
        return followed
    return (parent.l1_origin_number, parent.l1_origin_hash if parent.height else ZERO_HASH)
