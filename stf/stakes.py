"""Stake records in the rollup state (``stake/<client key>``), and the stake statuses.

L1 deposits write them (:mod:`stf.txtypes.l1_deposit`); the FL rules read them to let only
staked clients take part (joining, submitting, and whom an epoch waits for). Both import them
from here, so neither imports the other.

The L1 StakingRegistry numbers the same statuses one higher (its 0 is "never staked", which the
rollup represents by the absence of a record): :meth:`StakeStatus.from_l1` and
:attr:`StakeStatus.l1` are the only place that offset lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from . import encoding, state_keys
from .ids import ClientKey, L1Address
from .state import State


class StakeStatus(IntEnum):
    """A stake's status in the rollup. The values are consensus (they are in the record)."""

    STAKED = 0
    UNBONDING = 1
    SLASHED = 2
    WITHDRAWN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def l1(self) -> int:
        """The L1 StakingRegistry's ``Status`` value (``statusOf``) for this status."""
        return self.value + 1

    @classmethod
    def from_l1(cls, l1_status: int) -> StakeStatus | None:
        """The rollup status of an L1 ``statusOf`` value; ``None`` for the L1's "never staked"."""
        return None if l1_status == 0 else cls(l1_status - 1)


L1_NEVER_STAKED = "none"  # the label of the L1's status 0, which has no rollup record

STAKED, UNBONDING, SLASHED, WITHDRAWN = (
    StakeStatus.STAKED,
    StakeStatus.UNBONDING,
    StakeStatus.SLASHED,
    StakeStatus.WITHDRAWN,
)


def l1_status_label(l1_status: int) -> str:
    """``"none"``, ``"staked"``, ``"unbonding"``, ``"slashed"`` or ``"withdrawn"``."""
    status = StakeStatus.from_l1(l1_status)
    return L1_NEVER_STAKED if status is None else status.label


@dataclass(frozen=True)
class StakeRecord:
    """``stake/<client key>``: the L1 account that staked the key, the amount, the status."""

    l1_address: L1Address
    amount: int  # wei
    status: StakeStatus

    def encode(self) -> bytes:
        return encoding.encode([self.l1_address, encoding.u256(self.amount), int(self.status)])

    @classmethod
    def decode(cls, raw: bytes) -> StakeRecord:
        addr, amount, status = encoding.expect_list(encoding.decode(raw), 3, "stake record")
        return cls(L1Address(addr), encoding.expect_u256(amount, "amount"), StakeStatus(status))


BINDING_DOMAIN = b"mps/stake-binding/v1"
BINDING_SIZE = 64  # an ed25519 signature


def binding_message(chain_id: int, l1_address: bytes) -> bytes:
    """What a client key signs to let ``l1_address`` stake it on the MPS chain ``chain_id``.

    The L1 ``stake(key, binding)`` cannot check an ed25519 signature cheaply, so it passes the
    binding on in its ``Staked`` event and the STF checks it: a stake counts only if the key
    itself named the account that staked it. Without this, anyone who saw a key (in an L1
    mempool, say) could stake it first from its own account and collect the rewards the key's
    owner earns; now such a stake never counts, and the owner, whose own stake reverts
    ``KeyTaken``, just uses another key."""
    return BINDING_DOMAIN + chain_id.to_bytes(8, "big") + l1_address


def binding_valid(client_key: bytes, chain_id: int, l1_address: bytes, binding: bytes) -> bool:
    try:
        VerifyKey(client_key).verify(binding_message(chain_id, l1_address), binding)
    except (CryptoError, ValueError, TypeError):
        return False
    return True


def read_stake(state: State, client_key: ClientKey) -> StakeRecord | None:
    raw = state.get(state_keys.stake(client_key))
    return None if raw is None else StakeRecord.decode(raw)


def write_stake(state: State, client_key: ClientKey, record: StakeRecord) -> None:
    state.set(state_keys.stake(client_key), record.encode())


def not_staked(state: State, client_key: ClientKey, unbonding_ok: bool = False) -> str | None:
    """Why ``client_key`` may not take part in a task now (``None``: it is staked, or with
    ``unbonding_ok`` unbonding: what a reveal of an earlier commitment needs)."""
    stake = read_stake(state, client_key)
    if stake is None:
        return "has no stake"
    if unbonding_ok and stake.status == StakeStatus.UNBONDING:
        return None
    if stake.status != StakeStatus.STAKED:
        return f"is not staked ({stake.status.label})"
    return None
