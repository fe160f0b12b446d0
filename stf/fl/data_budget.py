"""What a task's bytes cost its funder: the data budget of a chain that prices them.

Every byte a task puts in a block stays in every copy of the chain's history (a data challenge
publishes it on the L1), so it must cost someone. The upload quotas of :mod:`stf.fl.uploads`
bound the bytes per sender and *epoch*, but a requester sets how short its epochs are and may
join its own task: one BASE_FEE and one stake bought about ``2 * 2 * d * value size`` bytes an
epoch (some 800 MB at ``d = 10^8`` in int16) for as many epochs as it declared (a red team's).

On a chain whose spec sets ``data_fee_per_mib`` (wei per MiB; 0: not priced), the task's funder
pays for them: at settlement the L1 RewardManager takes ``ceil(bytes * fee / 2^20)`` of the
deposit for the treasury first (never for the clients: a requester whose clients are its own
sybils would get it back), and the rest is the epochs' fee and the refund as before. The STF
keeps the bill within what the deposit can pay: a task's bytes never pass its *allowance*,
``floor(deposit * 2^20 / fee)``.

The bill is what was sent, never refused half-way: a commitment (a client's, or the requester's
reference) **reserves** its sender's whole upload quota for the epoch before it is accepted
(``DATA_BUDGET_EXHAUSTED`` otherwise, a failed receipt: the client committed nothing and owes
nothing), so an upload or reveal of a committed sender can never be refused for money (a refused
reveal would be a REVEAL_MISSING strike for an honest client). Reserved bytes not sent are not
billed. ``data/<task>`` = ``[billed, epoch, reserved, sent]``: the bytes of the task's earlier
epochs (and its pre-task uploads) and, of epoch ``epoch``, the reservations and the bytes sent.
"""

from __future__ import annotations

from typing import NamedTuple

from .. import encoding, state_keys
from ..context import Limits
from ..errors import Code, TxFailed, TxInvalid
from ..ids import TaskId
from ..state import State

MIB = 1 << 20


def priced(limits: Limits) -> bool:
    """Whether this chain bills its tasks' bytes (only a chain that funds its tasks can)."""
    return limits.data_fee_per_mib > 0 and limits.funding_window_blocks > 0


def allowance(deposit: int, fee_per_mib: int) -> int:
    """The most bytes ``deposit`` pays for: ``bytes * fee / 2^20 <= deposit``."""
    return deposit * MIB // fee_per_mib


def data_fee(nbytes: int, fee_per_mib: int) -> int:
    """What the L1 takes for ``nbytes`` (RewardManager's rule, rounded up): at most the deposit
    whenever ``nbytes`` is within its allowance."""
    return -(-nbytes * fee_per_mib // MIB)


class DataBudget(NamedTuple):
    billed: int  # bytes of the task's earlier epochs and its pre-task uploads
    epoch: int  # the epoch the next two count
    reserved: int  # reserved by this epoch's commitments
    sent: int  # sent in this epoch (uploads, inline reveals)

    @property
    def total(self) -> int:
        return self.billed + self.sent

    def at(self, epoch: int) -> DataBudget:
        """The budget as the open epoch ``epoch`` sees it: an earlier epoch's bytes are billed."""
        if epoch == self.epoch:
            return self
        return DataBudget(self.billed + self.sent, epoch, 0, 0)


def load_budget(state: State, task_id: TaskId) -> DataBudget | None:
    raw = state.get(state_keys.data_budget(task_id))
    if raw is None:
        return None
    return DataBudget(*encoding.expect_list(encoding.decode(raw), 4, "data budget"))


def _save(state: State, task_id: TaskId, budget: DataBudget) -> None:
    state.set(state_keys.data_budget(task_id), encoding.encode(list(budget)))


def open_budget(state: State, task_id: TaskId, pretask_bytes: int) -> None:
    """At ``create_task``: the bill starts with what the requester uploaded before it."""
    _save(state, task_id, DataBudget(pretask_bytes, 0, 0, 0))


def reserve(state: State, task_id: TaskId, epoch: int, quota: int, cap: int, who: str) -> None:
    """A commitment's reservation of its sender's upload ``quota`` in the open ``epoch``;
    TxFailed when ``cap`` (the bytes the task's deposit pays for) cannot take it on top of what
    is billed and reserved."""
    full = _take(state, task_id, epoch, quota, cap, sent=False)
    if full is not None:
        raise TxFailed(
            Code.DATA_BUDGET_EXHAUSTED,
            f"the task's deposit pays for {cap} bytes of data; {full.billed} are billed and "
            f"{full.reserved} reserved this epoch, and {who} reserves {quota} (its upload "
            "quota): nothing was committed, and nothing is owed",
        )


def bill(state: State, task_id: TaskId, epoch: int, nbytes: int) -> None:
    """Bytes a committed sender put in a block for the task in the open ``epoch`` (within its
    reservation)."""
    budget = load_budget(state, task_id)
    if budget is None:
        return
    budget = budget.at(epoch)
    _save(state, task_id, budget._replace(sent=budget.sent + nbytes))


def bill_unreserved(state: State, task_id: TaskId, epoch: int, nbytes: int, cap: int) -> None:
    """Bytes of a sender no commitment reserved for (a late reveal): reserved and sent at
    once, within ``cap`` (TxInvalid otherwise), so that what the task sends never passes what
    its deposit pays for; a reveal's ``consume`` calls it, hence TxInvalid, not TxFailed."""
    full = _take(state, task_id, epoch, nbytes, cap, sent=True)
    if full is not None:
        raise TxInvalid(
            Code.DATA_BUDGET_EXHAUSTED,
            f"a reveal with no commitment in epoch {epoch} is billed to the task, whose deposit "
            f"pays for {cap} bytes; {full.billed} are billed and {full.reserved} reserved, "
            f"and no room is left for its {nbytes}",
        )


def _take(
    state: State, task_id: TaskId, epoch: int, nbytes: int, cap: int, sent: bool
) -> DataBudget | None:
    """Reserve ``nbytes`` (and count them ``sent`` too) in the open ``epoch`` if ``cap`` takes
    them beside what is billed and reserved; if it does not, change nothing and return the
    budget that refused them. A task whose chain does not price bytes takes anything."""
    budget = load_budget(state, task_id)
    if budget is None:  # not priced, or a task created before its chain priced bytes
        return None
    budget = budget.at(epoch)
    if budget.billed + budget.reserved + nbytes > cap:
        return budget
    reserved, now_sent = budget.reserved + nbytes, budget.sent + (nbytes if sent else 0)
    _save(state, task_id, budget._replace(reserved=reserved, sent=now_sent))
    return None


def billed_bytes(state: State, task_id: TaskId) -> int:
    """The bytes the settle leaf bills (0 for a task whose chain does not price them)."""
    budget = load_budget(state, task_id)
    return 0 if budget is None else budget.total
