"""Stake records in the rollup state (``stake/<client key>``).

L1 deposits write them (:mod:`stf.txtypes.l1_deposit`); the FL rules read them to let only
staked clients take part (joining, submitting, and whom an epoch waits for). Both import them
from here, so neither imports the other.
"""

from __future__ import annotations

from . import encoding, state_keys
from .state import State

STAKED, UNBONDING, SLASHED, WITHDRAWN = 0, 1, 2, 3
STATUS_NAMES = {
    STAKED: "staked",
    UNBONDING: "unbonding",
    SLASHED: "slashed",
    WITHDRAWN: "withdrawn",
}


def stake_record(l1_address: bytes, amount: int, status: int) -> bytes:
    return encoding.encode([l1_address, amount, status])


def read_stake(state: State, client_key: bytes) -> tuple[bytes, int, int] | None:
    raw = state.get(state_keys.stake(client_key))
    if raw is None:
        return None
    addr, amount, status = encoding.decode(raw)
    return addr, amount, status


def not_staked(state: State, client_key: bytes) -> str | None:
    """Why ``client_key`` may not take part in a task now (``None``: it is staked)."""
    stake = read_stake(state, client_key)
    if stake is None:
        return "has no stake"
    if stake[2] != STAKED:
        return f"is not staked ({STATUS_NAMES.get(stake[2], 'unknown')})"
    return None
