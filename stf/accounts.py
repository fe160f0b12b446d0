"""Who may write to a chain that prices its state: senders something on the L1 backs.

A key costs nothing to make, and every included transaction leaves state behind: its sender's
nonce entry, and a ``put_record`` up to 4 KiB more. A fresh key a transaction therefore stored
about 4 MB per 1,000-transaction block for nobody's money (issue 13's "free state"). The data
fee (:mod:`stf.fl.data_budget`) prices a task's bytes; this prices the rest by identity:

* A sender is **backed** once the state holds its stake record (an L1 ``STAKE_AMOUNT`` bound to
  the key, whatever its status now) or its nonce entry (it was included before, which on such a
  chain it could only be when backed, or by opening an account as below).
* An unbacked sender's first transaction may only **open** its account: a ``create_task`` or
  its pre-task upload, both of which draw on an L1 funding the key's own ``create_task`` names
  (its BASE_FEE). A ``create_task`` is included only if it succeeds, otherwise it is invalid
  (its nonce stays free, nothing is stored); an upload once its ``consume`` proved the funding
  (:func:`must_open`). Every other transaction from an unbacked key is invalid:
  ``UNBACKED_SENDER``.
* A backed sender holds at most :data:`MAX_RECORDS_PER_SENDER` records, so one identity's state
  is bounded (64 x 4 KiB = 256 KiB beside its nonce), and an identity costs a stake locked for
  the unbonding period or a task's BASE_FEE.

The sequencer's privileged transactions and forced ones (their bytes paid L1 gas) are exempt.
A chain that does not price its data (no L1, or ``data_fee_per_mib = 0``) stays open to every
key, as it always was: its genesis and blocks do not change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import state_keys
from .context import Limits
from .errors import Code, TxInvalid
from .fl.data_budget import priced
from .ids import ClientKey
from .state import State
from .tx import Transaction

if TYPE_CHECKING:  # the types import this module (a record's quota)
    from .txtypes.base import TxType

MAX_RECORDS_PER_SENDER = 64
"""Records one backed sender may hold at once on a chain that prices its state (consensus)."""


def prices_state(limits: Limits) -> bool:
    """Whether the chain asks every sender to be backed (the chains that price their data)."""
    return priced(limits)


def is_backed(state: State, sender: bytes, nonce: int) -> bool:
    """``nonce``: the sender's account nonce in ``state`` (0 when it has no nonce entry)."""
    return nonce > 0 or state.get(state_keys.stake(ClientKey(sender))) is not None


def must_open(
    state: State, tx: Transaction, ttype: type[TxType], nonce: int, limits: Limits
) -> bool:
    """Whether ``tx`` is an unbacked sender's opening transaction that must succeed to be
    included. Raises ``UNBACKED_SENDER`` for any transaction of an unbacked sender on a chain
    that prices its state but an opening one.

    A pre-task upload proves its funding in ``consume`` (its quota is the funding's, and the
    ``create_task`` body it carries must name its sender), which stands whether or not the blob
    then stores: one that fails (a blob already stored, e.g. a script another task shares) is
    included failed, like a backed sender's, its bytes paid. A ``create_task`` proves it by
    binding the funding in ``apply``, so it must succeed."""
    if not prices_state(limits) or is_backed(state, tx.sender, nonce):
        return False
    if not ttype.OPENS_ACCOUNT:
        raise TxInvalid(
            Code.UNBACKED_SENDER,
            "nothing on the L1 backs this key: stake it, or open its account with the "
            "create_task (or pre-task upload) of a task it funded",
        )
    return not ttype.CHARGES_BYTES


def unbacked_failure(name: str, message: str) -> TxInvalid:
    """The refusal of an opening transaction that would fail."""
    return TxInvalid(
        Code.UNBACKED_SENDER,
        f"an unbacked key's first transaction must succeed, and this {name} would fail: {message}",
    )
