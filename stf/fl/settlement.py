"""The leaves the L1 contracts check, in fixed binary layouts (Solidity reads them).

These values are NOT msgpack: the L1 SlashingManager and RewardManager decode
them with fixed offsets, so each layout is a concatenation of big-endian
unsigned integers:

* slash evidence ``slash/<client><task>``: ``epoch (uint32) || reason (uint32)``,
  8 bytes. Written in the epoch close where the client's verdict becomes
  slashable; never changed afterwards.
* task settlement ``settle/<task>``: ``status (uint8: 1 complete, 2 finished) ||
  epochs_trained (uint32) || total_clean_updates (uint64) || funder (20-byte L1
  address; zero for a task with no funding) || data_bytes (uint64)``, 41 bytes.
  Written once, where the task's status leaves open. The L1 settles only that
  funder's funding, and bills it the task's ``data_bytes`` (0 on a chain that does
  not price bytes: :mod:`stf.fl.data_budget`).
* task funding ``funding/<task><funder>``: ``deposit (uint256) || bind_by (uint64)
  || bound (uint8 0/1)``, 41 bytes: an L1 ``TaskFunded``; ``bound`` is set by the
  ``create_task`` that names it, at a height <= ``bind_by`` (:mod:`stf.fl.funding`),
  so an unbound leaf at a height >= ``bind_by`` is final and the L1 refunds it.
* client reward share ``reward/<task><client>``: ``accepted (uint32) || flagged
  (uint8 0/1)``, 5 bytes: ``accepted`` is the sum of the client's reward credits
  (:mod:`stf.fl.contribution`, at most 1,000 an epoch). Updated at every epoch close for
  every client that submitted in it; ``flagged`` is sticky.
* stake release ``release/<client>``: ``unbond_l1_block (uint64)``, 8 bytes: the
  L1 block of the ``unregister`` it answers (:mod:`stf.fl.release` decides when).

``total_clean_updates`` is the sum of ``accepted`` over the task's clients whose
reward leaf has ``flagged == 0`` (the L1 pays each ``pool x accepted / total``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .. import state_keys
from ..ids import ClientKey, L1Address, TaskId
from ..state import State
from .data_budget import billed_bytes
from .task import COMPLETE, FINISHED, TaskState

SETTLE_COMPLETE = 1  # the target accuracy was reported
SETTLE_FINISHED = 2  # every epoch closed
# TaskState status -> the settlement leaf's status byte (explicit: the L1 ABI is fixed,
# whatever the task record's constants become)
SETTLEMENT_STATUS = {COMPLETE: SETTLE_COMPLETE, FINISHED: SETTLE_FINISHED}

SLASH_EVIDENCE_SIZE = 8
SETTLEMENT_SIZE = 41
FUNDING_SIZE = 41
REWARD_SHARE_SIZE = 5
RELEASE_SIZE = 8
_U32 = 2**32
_U64 = 2**64
_U256 = 2**256
NO_FUNDER = L1Address(bytes(20))  # the settle leaf's funder of a task with no funding


def _check(value: int, limit: int, what: str) -> None:
    if not 0 <= value < limit:
        raise ValueError(f"{what} {value} does not fit its field")


def _address(a: bytes) -> bytes:
    if len(a) != 20:
        raise ValueError(f"an L1 address is 20 bytes, got {len(a)}")
    return a


# -- slash evidence ---------------------------------------------------------------------


def encode_slash_evidence(epoch: int, reason: int) -> bytes:
    _check(epoch, _U32, "epoch")
    _check(reason, _U32, "reason")
    return epoch.to_bytes(4, "big") + reason.to_bytes(4, "big")


class SlashEvidence(NamedTuple):
    """A decoded slash leaf: the fields ``SlashingManager.slash`` takes beside the proof."""

    epoch: int
    reason: int  # the flags that made the verdict slashable (stf.fl.flags.Flag)


def decode_slash_evidence(raw: bytes) -> SlashEvidence:
    if len(raw) != SLASH_EVIDENCE_SIZE:
        raise ValueError(f"slash evidence is {SLASH_EVIDENCE_SIZE} bytes, got {len(raw)}")
    return SlashEvidence(int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:], "big"))


def write_slash_evidence(
    state: State, client: ClientKey, task_id: TaskId, epoch: int, reason: int
) -> None:
    """The leaf, and the client's conviction: its stake is never released afterwards."""
    key = state_keys.slash_evidence(client, task_id)
    assert state.get(key) is None, "slash evidence is final: it is written once"
    state.set(key, encode_slash_evidence(epoch, reason))
    if state.get(state_keys.convicted(client)) is None:
        state.set(state_keys.convicted(client), task_id)


# -- settlement ------------------------------------------------------------------------


@dataclass(frozen=True)
class Settlement:
    status: int  # SETTLE_COMPLETE or SETTLE_FINISHED
    epochs_trained: int
    total_clean_updates: int
    funder: L1Address = NO_FUNDER
    data_bytes: int = 0  # the task's bytes its funder pays for (stf.fl.data_budget)


def encode_settlement(s: Settlement) -> bytes:
    if s.status not in (SETTLE_COMPLETE, SETTLE_FINISHED):
        raise ValueError(f"settlement status {s.status} is neither complete (1) nor finished (2)")
    _check(s.epochs_trained, _U32, "epochs_trained")
    _check(s.total_clean_updates, _U64, "total_clean_updates")
    _check(s.data_bytes, _U64, "data_bytes")
    return (
        s.status.to_bytes(1, "big")
        + s.epochs_trained.to_bytes(4, "big")
        + s.total_clean_updates.to_bytes(8, "big")
        + _address(s.funder)
        + s.data_bytes.to_bytes(8, "big")
    )


def decode_settlement(raw: bytes) -> Settlement:
    if len(raw) != SETTLEMENT_SIZE:
        raise ValueError(f"settlement is {SETTLEMENT_SIZE} bytes, got {len(raw)}")
    s = Settlement(
        raw[0],
        int.from_bytes(raw[1:5], "big"),
        int.from_bytes(raw[5:13], "big"),
        L1Address(raw[13:33]),
        int.from_bytes(raw[33:], "big"),
    )
    if s.status not in (SETTLE_COMPLETE, SETTLE_FINISHED):
        raise ValueError(f"settlement status {s.status} is neither complete (1) nor finished (2)")
    return s


def total_clean_updates(state: State, task_id: TaskId, task: TaskState) -> int:
    """Sum of ``accepted`` over the task's joined clients (at most max_clients) never flagged."""
    total = 0
    for client in task.clients:
        accepted, flagged = read_reward_share(state, task_id, client)
        if not flagged:
            total += accepted
    return total


def write_settlement(state: State, task_id: TaskId, task: TaskState) -> Settlement:
    """Write ``settle/<task>`` for a task whose status has just left open (once)."""
    if task.status not in SETTLEMENT_STATUS:
        raise ValueError(f"task status {task.status} is not a final status")
    key = state_keys.settlement(task_id)
    assert state.get(key) is None, "a task settles once"
    s = Settlement(
        SETTLEMENT_STATUS[task.status],
        task.epoch,
        total_clean_updates(state, task_id, task),
        L1Address(task.params.funder or NO_FUNDER),
        billed_bytes(state, task_id),
    )
    state.set(key, encode_settlement(s))
    return s


# -- task funding ----------------------------------------------------------------------


@dataclass(frozen=True)
class FundingLeaf:
    deposit: int  # wei, as the L1 holds it
    bind_by: int  # the last height at which a create_task may bind it
    bound: bool


def encode_funding(f: FundingLeaf) -> bytes:
    _check(f.deposit, _U256, "deposit")
    _check(f.bind_by, _U64, "bind_by")
    return f.deposit.to_bytes(32, "big") + f.bind_by.to_bytes(8, "big") + bytes([f.bound])


def decode_funding(raw: bytes) -> FundingLeaf:
    if len(raw) != FUNDING_SIZE or raw[40] not in (0, 1):
        raise ValueError(f"a funding is {FUNDING_SIZE} bytes ending in 0 or 1")
    return FundingLeaf(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:40], "big"), raw[40] == 1
    )


# -- reward share ----------------------------------------------------------------------


def encode_reward_share(accepted: int, flagged: bool) -> bytes:
    _check(accepted, _U32, "accepted")
    return accepted.to_bytes(4, "big") + (b"\x01" if flagged else b"\x00")


def decode_reward_share(raw: bytes) -> tuple[int, bool]:
    """``(accepted, flagged)``."""
    if len(raw) != REWARD_SHARE_SIZE or raw[4] not in (0, 1):
        raise ValueError(f"reward share is {REWARD_SHARE_SIZE} bytes ending in 0 or 1")
    return int.from_bytes(raw[:4], "big"), raw[4] == 1


def read_reward_share(state: State, task_id: TaskId, client: ClientKey) -> tuple[int, bool]:
    raw = state.get(state_keys.reward_share(task_id, client))
    return (0, False) if raw is None else decode_reward_share(raw)


def record_reward_share(
    state: State, task_id: TaskId, client: ClientKey, credit: int, excluded: bool
) -> None:
    """One more recorded update for ``client``: ``accepted`` sums its reward credits
    (:mod:`stf.fl.contribution`: 0 for a flagged update, at most ``CREDIT_SCALE`` per epoch);
    ``flagged`` sticks once the client is barred or slashable (``excluded``), which forfeits its
    whole share, so that an attacker caught late is not paid for the epochs it went unflagged
    (docs/protocol.md: the cost to a falsely barred honest client is measured and open)."""
    accepted, flagged = read_reward_share(state, task_id, client)
    state.set(
        state_keys.reward_share(task_id, client),
        encode_reward_share(accepted + credit, flagged or excluded),
    )


# -- stake release ---------------------------------------------------------------------


def encode_release(unbond_l1_block: int) -> bytes:
    _check(unbond_l1_block, _U64, "unbond_l1_block")
    return unbond_l1_block.to_bytes(RELEASE_SIZE, "big")


def decode_release(raw: bytes) -> int:
    if len(raw) != RELEASE_SIZE:
        raise ValueError(f"a release is {RELEASE_SIZE} bytes, got {len(raw)}")
    return int.from_bytes(raw, "big")
