"""The batch poster: commits ranges of sealed blocks to MPSRollup on the L1.

The L1 contract is the record of what is committed (``nextBatchIndex``,
``lastCommittedBlock``, ``lastStateRoot``); the node keeps only a write-ahead
record of the one L1 transaction in flight, synced to LevelDB *before* it is
sent. After a crash the same signed bytes are re-broadcast under the same
nonce, so a batch is never posted twice and no nonce is skipped. Only one
commitment is in flight at a time, which keeps that reasoning simple; a
batch holds up to ``batch_max_blocks`` blocks, so this is not a throughput limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import TransactionNotFound

from stf import encoding, state_keys
from stf.records import L1Cursor

from ..metrics import Metrics
from ..storage import Storage
from .batch_data import (
    DATA_ACTIVE,
    DATA_NONE,
    batch_commitment,
    batch_data,
    chunk_hashes,
    split_chunks,
)
from .chain import GWEI, Deployment, L1Error, build_signed, send_and_wait
from .deposits import L1Event
from .derivation import first_overdue, sequencing_window
from .follower import EventDecoder
from .worker import step_forever

log = structlog.get_logger("mps.l1.poster")

K_PENDING = b"l1:pending"
NO_DEADLINE = 2**64 - 1
K_FINALIZED = b"l1:finalized"  # index of the newest batch known to be finalized, +1
RESEND_AFTER = 5.0  # seconds before a pending commitment is re-broadcast (fees bumped)
BUMP = 1.125  # the replacement rule of geth and anvil: at least +12.5%


@dataclass
class Pending:
    batch_index: int
    nonce: int
    raw: bytes
    hashes: list[bytes]
    last_block: int
    max_fee: int
    sent_at: float
    deadline: int = NO_DEADLINE  # the commitment's l1Deadline: a re-signed one keeps it

    def encode(self) -> bytes:
        return encoding.encode(
            [
                self.batch_index,
                self.nonce,
                self.raw,
                self.hashes,
                self.last_block,
                self.max_fee,
                int(self.sent_at * 1000),
                self.deadline,
            ]
        )

    @classmethod
    def decode(cls, raw: bytes) -> Pending:
        idx, nonce, tx, hashes, last, fee, sent, *rest = encoding.decode(raw)
        deadline = int(rest[0]) if rest else NO_DEADLINE  # written before deadlines existed
        return cls(idx, nonce, tx, list(hashes), last, fee, sent / 1000, deadline)


@dataclass(frozen=True)
class PosterSettings:
    batch_blocks: int
    batch_seconds: float
    batch_max_blocks: int
    max_fee_wei: int
    poll_interval: float
    data_on_l1: bool = False  # publish every batch's data (config batch_data_on_l1)


class BatchPoster:
    def __init__(
        self,
        w3: Web3,
        dep: Deployment,
        account: LocalAccount,
        storage: Storage,
        settings: PosterSettings,
        on_heads: Callable[[int, int], None] | None = None,
        start_block: int = 0,
    ) -> None:
        self._w3 = w3
        self._start_block = start_block  # the L1 block the contracts were deployed in
        self._own_data_from = 0  # with data_on_l1: batches before this one are on the L1 (or lost)
        self._rollup = dep.rollup
        self._account = account
        self._storage = storage
        self.settings = settings
        self._on_heads = on_heads
        self._data_windows: int | None = None  # DA_CHALLENGE_BLOCKS + DA_RESOLVE_BLOCKS
        self._decoder = EventDecoder(dep.registry, dep.rewards, dep.inbox)
        self._window = sequencing_window(dep.inbox)
        raw = storage.get(K_FINALIZED)
        self.finalized_count = 0 if raw is None else int(encoding.decode(raw))
        self.safe_height = 0
        self.finalized_height = 0

    # -- one step (blocking; the service runs it on a worker thread) -----------
    def step(self) -> str:
        """Advance by one action; return its name (for logs and tests)."""
        rollup = self._rollup.functions
        next_index = int(rollup.nextBatchIndex().call())
        last_committed = int(rollup.lastCommittedBlock().call())
        self.safe_height = last_committed
        self._refresh_finalized(next_index)
        if self._on_heads is not None:  # plain ints: safe to set from the worker thread
            self._on_heads(self.safe_height, self.finalized_height)
        raw = self._storage.get(K_PENDING)
        if raw is not None:
            return self._follow_up(Pending.decode(raw), next_index)
        if self._answer_data_challenge(next_index):
            return "published"
        if self.settings.data_on_l1 and self._challenge_own_data(next_index):
            return "self-challenged"
        return self._maybe_post(next_index, last_committed)

    def _answer_data_challenge(self, next_index: int) -> bool:
        """Publish, chunk by chunk, the data of a live batch whose data was challenged (its
        bond then comes to this account); True if anything went out. A batch whose data is
        challenged and not all published in time is void, whatever its root: answering is
        the sequencer's duty, and cheap next to losing the batch."""
        rollup = self._rollup.functions
        if self._data_windows is None:
            self._data_windows = int(rollup.DA_CHALLENGE_BLOCKS().call()) + int(
                rollup.DA_RESOLVE_BLOCKS().call()
            )
        now = int(self._w3.eth.block_number)
        # newest first: batches commit in block order, so once one's data windows have ended
        # (no challenge can open, none can be answered) so have all older ones'
        for index in range(next_index - 1, self.finalized_count - 1, -1):
            _, _, last, committed_at, _ = rollup.batch(index).call()
            if int(committed_at) + self._data_windows <= now:
                break
            if rollup.dataChallenge(index).call()[3] != DATA_ACTIVE:
                continue
            first = 1 if index == 0 else int(rollup.batch(index - 1).call()[2]) + 1
            chunks = split_chunks(batch_data(self._storage, first, int(last)))
            hashes = chunk_hashes(chunks)
            sent = 0
            for i, chunk in enumerate(chunks):
                if rollup.chunkPublished(index, i).call():
                    continue
                call = rollup.publishChunk(index, hashes, i, chunk)
                send_and_wait(self._w3, self._account, call, self.settings.max_fee_wei)
                sent += 1
            log.warning("challenged batch data published", batch=index, chunks=sent, of=len(chunks))
            return sent > 0
        return False

    def _challenge_own_data(self, next_index: int) -> bool:
        """With ``data_on_l1``: demand, from this very account, the data of the oldest batch
        nobody demanded yet, so that the next steps publish it (the bond comes back with the
        last chunk: ``bondBalance``, withdrawn here once a few pile up). A batch whose data
        window closed first (the poster was down) is logged as an error, once: its data is not
        on the L1. True if a challenge went out."""
        rollup = self._rollup.functions
        now = int(self._w3.eth.block_number)
        window = int(rollup.DA_CHALLENGE_BLOCKS().call())
        bond = int(rollup.DA_BOND().call())
        # finalized batches were handled by an earlier run; a discard moves the end back
        self._own_data_from = min(max(self._own_data_from, self.finalized_count), next_index)
        for index in range(self._own_data_from, next_index):
            committed_at = int(rollup.batch(index).call()[3])
            if rollup.dataChallenge(index).call()[3] != DATA_NONE:
                self._own_data_from = index + 1  # demanded (by us or anyone): answered by rule
                continue
            if committed_at + window <= now + 1:
                log.error("batch data never put on the L1: its data window closed", batch=index)
                self._own_data_from = index + 1
                continue
            if int(rollup.bondBalance(self._account.address).call()) >= 8 * bond:
                send_and_wait(
                    self._w3, self._account, rollup.withdrawBond(), self.settings.max_fee_wei
                )
            call = rollup.challengeData(index)
            send_and_wait(self._w3, self._account, call, self.settings.max_fee_wei, bond)
            log.info("batch data put on the L1 (a data challenge of our own)", batch=index)
            return True
        return False

    def _refresh_finalized(self, next_index: int) -> None:
        rollup = self._rollup.functions
        if self.finalized_count > next_index:  # a fraud resolution discarded batches
            self.finalized_count = next_index
        count = self.finalized_count
        while count < next_index and rollup.isFinalized(count).call():
            count += 1
        if count != self.finalized_count:
            self._storage.put_synced(K_FINALIZED, encoding.encode(count))
            self.finalized_count = count
        if count:
            self.finalized_height = int(rollup.batch(count - 1).call()[2])
        else:
            self.finalized_height = 0

    def _follow_up(self, p: Pending, next_index: int) -> str:
        # read the account's mined nonce *before* the contract, so that a commitment mined
        # between the two reads is seen as committed, never as replaced
        mined_nonce = int(self._w3.eth.get_transaction_count(self._account.address, "latest"))
        next_index = int(self._rollup.functions.nextBatchIndex().call())
        if next_index > p.batch_index:
            self._storage.delete_synced(K_PENDING)
            log.info("batch committed", batch=p.batch_index, last_block=p.last_block)
            return "confirmed"
        for h in p.hashes:
            try:
                rc = self._w3.eth.get_transaction_receipt(h)  # type: ignore[arg-type]
            except TransactionNotFound:
                continue
            if rc["status"] != 1:
                self._storage.delete_synced(K_PENDING)
                log.error("batch commitment reverted", batch=p.batch_index, tx=h.hex())
                return "reverted"
        if mined_nonce > p.nonce:
            # our nonce was used by something else and the batch is still not there
            self._storage.delete_synced(K_PENDING)
            log.warning("commitment nonce used elsewhere; re-planning", nonce=p.nonce)
            return "replaced"
        if time.time() - p.sent_at < RESEND_AFTER:
            return "waiting"
        self._bump(p)
        self._broadcast(p.raw)
        return "resent"

    def _bump(self, p: Pending) -> None:
        """Re-sign under the same nonce with a higher fee, up to the cap. Past its deadline
        the commitment could only revert: it is planned again (a new deadline, and the blocks
        that carry what became due since), still under the same nonce (review)."""
        fee = min(int(p.max_fee * BUMP) + 1, self.settings.max_fee_wei)
        late = p.deadline != NO_DEADLINE and int(self._w3.eth.block_number) >= p.deadline
        if fee <= p.max_fee and not late:
            p.sent_at = time.time()
            self._storage.put_synced(K_PENDING, p.encode())
            return
        rollup = self._rollup.functions  # unchanged while the commitment is pending
        first = int(rollup.lastCommittedBlock().call()) + 1
        prev_root = bytes(rollup.lastStateRoot().call())
        if late:
            head = self._storage.head()
            assert head is not None
            deadline = self._deadline()
            last = self._batch_end(p.last_block, head.height, deadline)
            if last is None:  # nothing valid to send yet: the old one reverts if mined
                p.sent_at = time.time()
                self._storage.put_synced(K_PENDING, p.encode())
                return
            p.last_block, p.deadline = last, deadline
        call = self._commit_call(p.batch_index, first, prev_root, p.last_block, p.deadline)
        raw, h = build_signed(self._w3, self._account, call, p.nonce, fee)
        p.raw, p.max_fee, p.sent_at = raw, fee, time.time()
        p.hashes.append(h)
        self._storage.put_synced(K_PENDING, p.encode())
        log.info(
            "commitment re-signed with a higher fee", batch=p.batch_index, max_fee_gwei=fee / GWEI
        )

    def _commit_call(
        self, batch_index: int, first: int, prev_root: bytes, last: int, deadline: int
    ) -> object:
        """``commitBatch`` for blocks ``first..last`` on top of the L1's ``prev_root``, void
        after L1 block ``deadline``."""
        rollup = self._rollup.functions
        header = self._storage.header_at(last)
        assert header is not None
        return rollup.commitBatch(
            batch_index,
            prev_root,
            header.state_root,
            batch_commitment(batch_data(self._storage, first, last))[0],
            last,
            deadline,
        )

    def _deadline(self) -> int:
        """The last L1 block a commitment planned now may land in: the sequencing-window check
        (:meth:`_due_event_left_out`) holds until then; none without a window."""
        if self._window is None:
            return NO_DEADLINE
        return int(self._w3.eth.block_number) + (self._window + 1) // 2

    def _maybe_post(self, next_index: int, last_committed: int) -> str:
        head = self._storage.head()
        assert head is not None
        if head.height <= last_committed:
            return "idle"
        committed = self._storage.header_at(last_committed)
        on_l1 = bytes(self._rollup.functions.lastStateRoot().call())
        if committed is None or committed.state_root != on_l1:
            raise L1Error(
                f"the L1 commits state root {on_l1.hex()} at block {last_committed}, this node "
                "has another: it is not this chain's sequencer database"
            )
        waiting = head.height - last_committed
        first = self._storage.header_at(last_committed + 1)
        assert first is not None
        age = time.time() - first.timestamp_ms / 1000
        if waiting < self.settings.batch_blocks and age < self.settings.batch_seconds:
            return "idle"
        deadline = self._deadline()  # one for the whole plan: the check holds until then
        cap = min(head.height, last_committed + self.settings.batch_max_blocks)
        last = self._batch_end(cap, head.height, deadline)
        if last is None:
            return "held"
        nonce = int(self._w3.eth.get_transaction_count(self._account.address, "pending"))
        call = self._commit_call(next_index, last_committed + 1, on_l1, last, deadline)
        raw, h = build_signed(self._w3, self._account, call, nonce, self.settings.max_fee_wei)
        p = Pending(next_index, nonce, raw, [h], last, self._fee_of(raw), time.time(), deadline)
        self._storage.put_synced(K_PENDING, p.encode())  # write-ahead, then send
        self._broadcast(raw)
        log.info("batch posted", batch=next_index, first=last_committed + 1, last=last, tx=h.hex())
        return "posted"

    def _batch_end(self, cap: int, head: int, deadline: int) -> int | None:
        """The block a batch should end at: ``cap`` (``batch_max_blocks`` on), unless that
        leaves out an L1 event due by ``deadline``; then the first later block that carries
        every due event (a binary search: the blocks' cursors only move on), past the cap, so
        that a backlog drains in batches no larger than the window asks. None: not even the head
        carries them yet (the follower lags): hold."""
        if self._due_event_left_out(cap, deadline) is None:
            return cap
        event = self._due_event_left_out(head, deadline)
        if event is not None:
            log.warning(
                "batch held: an L1 event is not in the chain yet and would be overdue",
                l1_event=event.position,
                kind=event.kind,
                head=head,
            )
            return None
        lo, hi = cap + 1, head  # hi carries them, cap does not
        while lo < hi:
            mid = (lo + hi) // 2
            if self._due_event_left_out(mid, deadline) is None:
                hi = mid
            else:
                lo = mid + 1
        log.info("batch past batch_max_blocks, to carry a due L1 event", cap=cap, last=hi)
        return hi

    def _due_event_left_out(self, last: int, deadline: int) -> L1Event | None:
        """The first L1 event a batch ending at block ``last`` would leave out past the
        sequencing window (:mod:`node.l1.derivation`), were it mined within half a window: the
        verifier would prove it fraud. The sequencer brings L1 events in within a few L1 blocks,
        so this holds a batch only while the follower lags; a batch capped at
        ``batch_max_blocks`` then takes the later blocks that carry the events."""
        if self._window is None:
            return None
        header = self._storage.header_at(last)
        assert header is not None
        # the cursor under that block's root (the flat index holds the head's: red team)
        raw = self._storage.value_at(header.state_root, state_keys.L1_LAST_EVENT)
        c = L1Cursor(-1, -1) if raw is None else L1Cursor.decode(raw)
        cursor = (c.block, c.log_index)
        # every event up to the block's L1 origin is in (the sequencer's own rule)
        after = max(cursor, (header.l1_origin_number, 2**63))
        after = max(after, (self._start_block, -1))  # nothing is followed before the deployment
        due = deadline - self._window  # what the verifier asks of a batch mined by the deadline
        return first_overdue(self._w3, self._decoder, after, due)

    @staticmethod
    def _fee_of(raw: bytes) -> int:
        from eth_account.typed_transactions.typed_transaction import TypedTransaction
        from hexbytes import HexBytes

        return int(TypedTransaction.from_bytes(HexBytes(raw)).as_dict()["maxFeePerGas"])

    def _broadcast(self, raw: bytes) -> None:
        try:
            self._w3.eth.send_raw_transaction(raw)
        except Exception as exc:  # already known, nonce too low (mined): the follow-up decides
            log.info("broadcast not accepted", error=str(exc))

    # -- service ---------------------------------------------------------------
    async def run(self, metrics: Metrics | None = None) -> None:
        def after(action: str) -> bool:
            if metrics is not None and action != "idle":
                metrics.l1_actions.labels("poster", action).inc()
            # the next step at once
            return action in ("confirmed", "reverted", "replaced", "published", "self-challenged")

        await step_forever(
            "poster", self.step, after, self.settings.poll_interval, metrics, log,
            "batch poster cannot reach the L1",
        )  # fmt: skip
