"""Derivation: the rollup's L1 deposits must be exactly the L1's events, in order, none withheld.

The sequencer creates the privileged ``l1_deposit`` transactions itself, so a
verifier that replayed blocks without this check would trust it to report
stakes and slashes faithfully. It checks three things per block: each
deposit is the next event the StakingRegistry, RewardManager and ForcedInbox emitted (same
position, kind and arguments); the block's L1 origin hash is the L1's hash at
that height; and no event at or before the origin is still missing once the
block is applied (a sequencer cannot sit on a slash).

And one per batch, the sequencing window (issue 12's forced inclusion): a batch committed at
L1 block ``C`` must, by its last block, hold every event of an L1 block at or before
``C - ForcedInbox.SEQUENCING_WINDOW``. The per-block rule alone lets a sequencer keep its L1
origin old for ever and so leave out a forced transaction, an unbonding or a slash; with the
window, such a batch is fraud, and the verifier challenges it like a wrong root.
"""

from __future__ import annotations

from collections import deque

from web3 import Web3
from web3.contract import Contract

from stf.block import Block
from stf.txtypes.l1_deposit import L1Deposit

from .deposits import L1Event, event_of
from .follower import MAX_RANGE, EventDecoder


class DerivationIncomplete(RuntimeError):
    """A deposit of a kind whose contract the checker was not given: it cannot be judged, so
    the verifier stops (it must not challenge an honest batch for it) and says which to add."""


FLAG_OF_KIND = {"fund": "--reward-manager", "forced": "--forced-inbox"}


def sequencing_window(inbox: Contract | None) -> int | None:
    """The inbox's SEQUENCING_WINDOW, in L1 blocks; None without an inbox (no window rule)."""
    return None if inbox is None else int(inbox.functions.SEQUENCING_WINDOW().call())


def first_overdue(
    w3: Web3, decoder: EventDecoder, after: tuple[int, int], up_to_l1_block: int
) -> L1Event | None:
    """The first followed L1 event after position ``after``, in an L1 block at or before
    ``up_to_l1_block``; None if there is none. (The poster asks this of a batch before sending
    it: the batch's consumed events end at ``after``.)"""
    frm = max(after[0], 0)
    while frm <= up_to_l1_block:
        to = min(up_to_l1_block, frm + MAX_RANGE - 1)
        logs = w3.eth.get_logs({"fromBlock": frm, "toBlock": to, "address": decoder.addresses})
        for event in decoder.decode(list(logs)):
            if event.position > after:
                return event
        frm = to + 1
    return None


class DerivationChecker:
    def __init__(
        self,
        w3: Web3,
        registry: Contract,
        rewards: Contract | None,
        start_block: int = 0,
        inbox: Contract | None = None,
    ) -> None:
        self._w3 = w3
        self._decoder = EventDecoder(registry, rewards, inbox)
        self._events: deque[L1Event] = deque()
        self._fetched_to = start_block - 1
        self.window = sequencing_window(inbox)
        self.height = 0  # the last rollup block checked

    def _fetch_until(self, l1_block: int) -> None:
        while self._fetched_to < l1_block:
            frm = self._fetched_to + 1
            to = min(l1_block, frm + MAX_RANGE - 1)
            logs = self._w3.eth.get_logs(
                {"fromBlock": frm, "toBlock": to, "address": self._decoder.addresses}
            )
            self._events.extend(self._decoder.decode(list(logs)))
            self._fetched_to = to

    def check_block(self, block: Block) -> str | None:
        """Why ``block`` misreports the L1, or None; blocks must come in order."""
        h = block.header
        if h.l1_origin_number:
            l1_hash = bytes(self._w3.eth.get_block(h.l1_origin_number)["hash"])
            if l1_hash != h.l1_origin_hash:
                return f"L1 origin {h.l1_origin_number} has hash {l1_hash.hex()} on the L1"
        for i, tx in enumerate(block.txs):
            if tx.tx_type != L1Deposit.TYPE_ID:
                continue
            claimed = event_of(tx)
            if claimed.kind not in self._decoder.kinds:
                flag = FLAG_OF_KIND.get(claimed.kind, "its contract")
                raise DerivationIncomplete(
                    f"block {block.height} tx {i} is a {claimed.kind!r} deposit, and this "
                    f"verifier does not follow the contract that emits those: give {flag}"
                )
            self._fetch_until(claimed.block)
            where = f"tx {i}: deposit {claimed.kind} at L1 {claimed.block}:{claimed.log_index}"
            if not self._events:
                return f"{where} matches no L1 event"
            e = self._events.popleft()
            if e != claimed:
                return f"{where} is not the L1's next event ({e.kind} at {e.block}:{e.log_index})"
        self._fetch_until(h.l1_origin_number)
        if self._events and self._events[0].block <= h.l1_origin_number:
            e = self._events[0]
            return (
                f"the L1 event {e.kind} at {e.block}:{e.log_index} is withheld past the block's "
                f"L1 origin {h.l1_origin_number}"
            )
        self.height = block.height
        return None

    def check_batch_end(self, committed_at: int) -> str | None:
        """Why a batch committed at L1 block ``committed_at``, whose blocks were all checked,
        breaks the sequencing window, or None."""
        if self.window is None or committed_at - self.window < 0:
            return None
        due = committed_at - self.window
        self._fetch_until(due)
        if self._events and self._events[0].block <= due:
            e = self._events[0]
            return (
                f"the L1 event {e.kind} at {e.block}:{e.log_index} is not in the chain by the "
                f"batch committed at L1 block {committed_at} (sequencing window {self.window})"
            )
        return None
