"""``l1_deposit``: an L1 event (stake, unbonding, withdrawal, slash, task funding, forced
transaction) brought into the rollup.

Privileged: only the sequencer's L1 follower creates it, with the zero sender,
the zero signature, and ``nonce`` equal to the number of deposits so far. The
STF enforces that L1 events arrive in strictly increasing (block, log index)
order, so a deposit can never be applied twice. Checking each deposit against
the L1 itself is the verifier's job (derivation, the L1 issue).

``stake [client_key, l1_address, amount, binding]`` counts only if ``binding`` is the key's
signature of :func:`stf.stakes.binding_message` for this chain and that address (else it fails
with STAKE_BINDING_INVALID and records nothing: the key can take no part, and an ``unbond`` of it
is released at once).

``forced [raw_tx]`` is the ForcedInbox's ``TxForced`` event: a signed transaction someone posted
on the L1 so that the sequencer cannot leave it out (:mod:`stf.forced` applies it).

``fund [task_id, funder_l1_address, deposit]`` is the RewardManager's
``TaskFunded`` event: it records ``funding/<task_id><funder>``, unbound, for the
``create_task`` that names it to bind (:mod:`stf.fl.funding`: the funding comes first).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .. import encoding, state_keys
from ..context import BlockContext, Limits
from ..errors import Code, TxFailed, TxInvalid
from ..fl.funding import record_funding
from ..fl.release import start_unbonding
from ..ids import ClientKey, L1Address, TaskId
from ..records import L1Cursor
from ..stakes import (
    BINDING_SIZE,
    StakeRecord,
    StakeStatus,
    binding_valid,
    read_stake,
    write_stake,
)
from ..state import State
from ..tx import Transaction
from .base import TxType, register

KINDS = ("stake", "unbond", "withdraw", "slash", "fund", "forced")


@register
class L1Deposit(TxType):
    TYPE_ID = 0
    NAME = "l1_deposit"
    PRIVILEGED = True

    @classmethod
    def parse(cls, value: Any, limits: Limits) -> tuple[int, int, str, list[Any]]:
        block, log_index, kind, args = encoding.expect_list(value, 4, "l1_deposit payload")
        block = encoding.expect_int(block, "l1 block")
        log_index = encoding.expect_int(log_index, "log index")
        if kind not in KINDS:
            raise TxInvalid(Code.INVALID_PAYLOAD, f"unknown l1 event kind {kind!r}")
        if not isinstance(args, list) or not args:
            raise TxInvalid(Code.INVALID_PAYLOAD, "l1 event arguments must be a non-empty list")
        if kind == "forced":  # whatever the bytes, the deposit is included: stf.forced judges them
            (raw,) = encoding.expect_list(args, 1, "forced arguments")
            return block, log_index, kind, [encoding.expect_bytes(raw, "forced transaction")]
        encoding.expect_bytes(args[0], "task id" if kind == "fund" else "client key", 32)
        if kind == "stake":
            encoding.expect_list(args, 4, "stake arguments")
            encoding.expect_bytes(args[1], "l1 address", 20)
            amount = encoding.expect_u256(args[2], "stake amount (uint256)", 1)
            binding = encoding.expect_bytes(args[3], "stake binding (a signature)", BINDING_SIZE)
            args = [args[0], args[1], amount, binding]
        elif kind == "fund":
            encoding.expect_list(args, 3, "fund arguments")
            encoding.expect_bytes(args[1], "requester l1 address", 20)
            args = [args[0], args[1], encoding.expect_u256(args[2], "deposit (uint256)", 1)]
        else:
            encoding.expect_list(args, 1, f"{kind} arguments")
        return block, log_index, kind, args

    @classmethod
    def consume(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        """The event is consumed even if applying it fails, so it can never be replayed."""
        block, log_index, _, _ = args
        last = state.get(state_keys.L1_LAST_EVENT)
        here = L1Cursor(block, log_index)
        if last is not None and L1Cursor.decode(last) >= here:
            raise TxInvalid(Code.INVALID_PAYLOAD, "l1 events must arrive in increasing order")
        state.set(state_keys.L1_LAST_EVENT, here.encode())

    @classmethod
    def apply(cls, state: State, tx: Transaction, args: Any, ctx: BlockContext) -> None:
        l1_block, _, kind, ev = args
        if kind == "forced":
            from ..forced import apply_forced  # stf.forced applies transactions: it imports us

            apply_forced(state, ev[0], ctx, tx.chain_id)
            return
        if kind == "fund":
            window = ctx.limits.funding_window_blocks
            record_funding(state, TaskId(ev[0]), L1Address(ev[1]), ev[2], ctx.height, window)
            return
        client_key = ClientKey(ev[0])
        current = read_stake(state, client_key)
        if kind == "stake":
            if current is not None and current.status != StakeStatus.WITHDRAWN:
                raise TxFailed(Code.KEY_ALREADY_BOUND, "client key is already bound to a stake")
            if not binding_valid(client_key, tx.chain_id, ev[1], ev[3]):
                raise TxFailed(
                    Code.STAKE_BINDING_INVALID,
                    "the client key did not sign this L1 account's stake: it does not count",
                )
            record = StakeRecord(L1Address(ev[1]), ev[2], StakeStatus.STAKED)
            write_stake(state, client_key, record)
            return
        if current is None and kind == "unbond":
            # an L1 stake the rollup never counted (its binding failed): it took no part in
            # anything, so it is free at once
            start_unbonding(state, client_key, l1_block)
            return
        if current is None:
            raise TxFailed(Code.NOT_STAKED, f"{kind} for a client key that never staked")
        status = next_status(kind, current.status)
        if status is None:
            raise TxFailed(
                Code.WRONG_STAKE_STATUS, f"{kind} is not allowed for a {current.status.label} stake"
            )
        write_stake(state, client_key, replace(current, status=status))
        if kind == "unbond":  # the L1 unregister's block is the one the release must name
            start_unbonding(state, client_key, l1_block)


# which L1 event moves a stake from which status to which
TRANSITIONS: dict[tuple[str, StakeStatus], StakeStatus] = {
    ("unbond", StakeStatus.STAKED): StakeStatus.UNBONDING,
    ("withdraw", StakeStatus.UNBONDING): StakeStatus.WITHDRAWN,
    ("slash", StakeStatus.STAKED): StakeStatus.SLASHED,
    ("slash", StakeStatus.UNBONDING): StakeStatus.SLASHED,
}


def next_status(kind: str, status: StakeStatus) -> StakeStatus | None:
    """The status after an ``unbond``/``withdraw``/``slash`` event, or ``None``: not allowed."""
    return TRANSITIONS.get((kind, status))


def payload(l1_block: int, log_index: int, kind: str, args: list[Any]) -> bytes:
    """The deposit's payload; the amount of a stake or a funding (an int, wei) goes as a
    uint256 (:func:`stf.encoding.u256`), whatever its size."""
    if kind in ("stake", "fund") and len(args) >= 3 and isinstance(args[2], int):
        args = [args[0], args[1], encoding.u256(args[2]), *args[3:]]
    return encoding.encode([l1_block, log_index, kind, args])
