"""The mempool: admission checks with precise errors, and fair selection for blocks.

Admission runs the STF's own stateless check (chain id, type, signature,
payload) and, against the head state, the type's own stateful admission
(``TxType.consume``: who may upload a blob, and its quota), so nothing the
sequencer picks can fail for a reason the pool could have seen (a quota that
earlier pending uploads use up is still the block's to refuse). Every accepted
transaction is appended to the journal (:mod:`node.journal`) before it is
acknowledged; after a restart the journal is re-admitted, and what a sealed block
already holds is dropped as known, so a node killed at any instant loses no
acknowledged transaction.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from stf import encoding, state_keys
from stf.accounts import must_open, unbacked_failure
from stf.context import BlockContext
from stf.errors import Code, MPSError, TxFailed, TxInvalid
from stf.state import State
from stf.transition import MAX_RECEIPT_MESSAGE, ChainConfig, check_tx, large_failure
from stf.tx import Transaction
from stf.txtypes.base import TxType, lookup

from .journal import TxJournal
from .storage import Storage

log = structlog.get_logger("mps.mempool")


@dataclass(frozen=True)
class MempoolLimits:
    max_txs: int = 50_000
    max_bytes: int = 1024 * 1024 * 1024
    max_nonce_gap: int = 64
    max_queued_per_sender: int = 16
    """Transactions a sender may hold that cannot execute yet (a nonce gap before them)."""
    queued_share: float = 0.25
    """The part of ``max_txs`` that such queued transactions may fill in all."""

    @property
    def max_queued(self) -> int:
        return max(1, int(self.max_txs * self.queued_share))


@dataclass
class _Entry:
    tx: Transaction
    raw: bytes
    seq: int


class Mempool:
    """Pending transactions by sender and nonce. Not thread-safe: use it from the event loop."""

    def __init__(
        self,
        storage: Storage,
        chain: ChainConfig,
        limits: MempoolLimits,
        journal: TxJournal | None = None,
    ) -> None:
        self._storage = storage
        self._journal = journal
        self._chain = chain
        self.limits = limits
        self._by_hash: dict[bytes, _Entry] = {}
        self._by_sender: dict[bytes, dict[int, _Entry]] = {}
        self._seq = itertools.count()
        self.bytes = 0
        # nonces per sender that wait behind a gap (cannot execute yet): they are what a full
        # pool evicts, newest first, so that a transaction that can execute always gets in
        self._queued: dict[bytes, set[int]] = {}
        self.queued = 0
        # each pooled sender's account nonce, as of its last admission or removal: only its own
        # transactions move it, and every block removes those, so selecting a block reads no
        # state (50,000 parked senders made each selection 50,000 reads on the event loop)
        self._base: dict[bytes, int] = {}
        #: the height the next block will have (the sequencer moves it after every seal)
        self.next_height = 1
        # the head state plus what the pooled transactions' stateful admission wrote (the upload
        # quota counters): a sender's second upload is checked against its first one's charge,
        # so the pool never acknowledges an upload its block would then drop (a red team's)
        self._charges = State(storage, b"")
        self._charged: dict[bytes, None] = {}  # pooled transactions that wrote charges, in order
        self._recharge_due = False  # an eviction took a charged one: count the rest again

    def __len__(self) -> int:
        return len(self._by_hash)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._by_hash

    def has_nonce(self, sender: bytes, nonce: int) -> bool:
        return nonce in self._by_sender.get(sender, {})

    def get(self, tx_hash: bytes) -> Transaction | None:
        entry = self._by_hash.get(tx_hash)
        return None if entry is None else entry.tx

    # -- admission -----------------------------------------------------------
    def decode_and_check(self, raw: bytes) -> Transaction:
        """Stateless part of admission; pure and thread-safe, so it may run off the loop."""
        tx = Transaction.decode(raw, self._chain.limits.max_tx_size)
        ttype, _ = check_tx(tx, self._chain)
        if ttype.PRIVILEGED:
            raise TxInvalid(
                Code.PRIVILEGED_TX, f"{ttype.NAME} can only be created by the sequencer"
            )
        return tx

    def state_nonce(self, sender: bytes) -> int:
        raw = self._storage.state_value(state_keys.nonce(sender))
        return 0 if raw is None else int(encoding.decode(raw))

    def admit(self, tx: Transaction, raw: bytes, journal: bool = True) -> bytes:
        """Stateful part of admission: nonce rules, duplicates, capacity; then journal it."""
        h = tx.hash
        if h in self._by_hash or self._storage.tx_location(h) is not None:
            raise TxInvalid(Code.ALREADY_KNOWN, f"transaction {h.hex()} is already known")
        base = self.state_nonce(tx.sender)
        if tx.nonce < base:
            raise TxInvalid(
                Code.NONCE_TOO_LOW, f"nonce {tx.nonce} is below the account nonce {base}"
            )
        if tx.nonce >= base + self.limits.max_nonce_gap:
            raise TxInvalid(
                Code.NONCE_TOO_HIGH,
                f"nonce {tx.nonce} is too far ahead of the account nonce {base} "
                f"(at most {self.limits.max_nonce_gap - 1} ahead)",
            )
        pending = self._by_sender.get(tx.sender, {})
        if tx.nonce in pending:
            raise TxInvalid(
                Code.NONCE_ALREADY_PENDING,
                f"another transaction with nonce {tx.nonce} from this sender is pending",
            )
        charged = self._charges.snapshot()
        try:
            self._check_state(tx, self._charges)
            executable = all(n in pending for n in range(base, tx.nonce))
            if not executable:
                self._check_queue_room(tx.sender)
            while self._full(len(raw)):
                if not executable or not self._evict_queued():
                    raise TxInvalid(Code.MEMPOOL_FULL, "mempool is full, try again later")
        except BaseException:
            self._charges.revert(charged)
            raise
        if journal and self._journal is not None:
            self._journal.append(raw)
        entry = _Entry(tx, raw, next(self._seq))
        self._by_hash[h] = entry
        self._by_sender.setdefault(tx.sender, {})[tx.nonce] = entry
        self.bytes += len(raw)
        self._reclassify(tx.sender, base)
        if self._recharge_due:
            self._recharge()
        return h

    def journal_many(self, raws: list[bytes]) -> None:
        """Journal transactions admitted with ``journal=False``, in one write (thread-safe);
        they must be written before they are acknowledged."""
        if self._journal is not None and raws:
            self._journal.append_many(raws)

    def _check_state(self, tx: Transaction, state: State) -> None:
        """The type's stateful admission against ``state`` (the head and the pool's charges),
        which keeps what it writes."""
        ttype = lookup(tx.tx_type)
        limits = self._chain.limits
        charges = ttype.consume.__func__ is not TxType.consume.__func__  # type: ignore[attr-defined]
        must_succeed = ttype.must_succeed(tx, limits)
        # a sender's first transaction (a later nonce waits for it: it may open the account)
        opening = tx.nonce == 0 and must_open(state, tx, ttype, 0, limits)
        if not charges and not must_succeed and not opening:
            return  # nothing to check: no second decode of the payload on the event loop
        args = ttype.payload_of(tx, limits)
        ctx = BlockContext(self.next_height, 0, 0, limits)
        if charges:
            ttype.consume(state, tx, args, ctx)
            if state is self._charges:
                self._charged[tx.hash] = None
        if must_succeed or opening:
            # its block would drop it: say so now, not after acknowledging it
            snap = state.snapshot()
            try:
                ttype.apply(state, tx, args, ctx)
            except TxFailed as exc:
                if opening:
                    raise unbacked_failure(ttype.NAME, exc.message[:MAX_RECEIPT_MESSAGE]) from None
                raise large_failure(ttype, tx, exc) from None
            finally:
                state.revert(snap)

    def new_head(self, height: int) -> None:
        """After a block (and the removals it implies): charge what is still pooled again,
        in arrival order, on the new head state. What no longer fits stays pooled uncharged:
        its block drops it, as it would have."""
        self.next_height = height + 1
        self._recharge()

    def _recharge(self) -> None:
        """The charges of what is pooled, counted again in arrival order on the head state
        (after a block, or an eviction: an evicted upload's charge kept refusing its sender's
        next one until the next block, a red team's)."""
        self._recharge_due = False
        pooled = [self._by_hash[h].tx for h in self._charged if h in self._by_hash]
        self._charges, self._charged = State(self._storage, b""), {}
        for tx in pooled:
            snap = self._charges.snapshot()
            try:
                self._check_state(tx, self._charges)
            except MPSError:
                self._charges.revert(snap)

    def _full(self, incoming: int) -> bool:
        return (
            len(self._by_hash) >= self.limits.max_txs
            or self.bytes + incoming > self.limits.max_bytes
        )

    def _check_queue_room(self, sender: bytes) -> None:
        """Room for one more transaction that cannot execute yet, or MEMPOOL_FULL: keys are
        free, so without these bounds fresh keys with far nonces pinned the whole pool."""
        mine = len(self._queued.get(sender, ()))
        if mine >= self.limits.max_queued_per_sender:
            raise TxInvalid(
                Code.MEMPOOL_FULL,
                f"this sender has {mine} transactions waiting behind a nonce gap, the most "
                "allowed: send the missing nonces first",
            )
        if self.queued >= self.limits.max_queued:
            raise TxInvalid(
                Code.MEMPOOL_FULL,
                "the pool holds as many transactions waiting behind a nonce gap as it allows; "
                "send the missing nonces first",
            )

    def _evict_queued(self) -> bool:
        """Drop the newest transaction of the sender with the most queued ones; False when
        nothing is queued (the pool is full of executable work: a real MEMPOOL_FULL)."""
        if not self._queued:
            return False
        sender = max(self._queued, key=lambda s: len(self._queued[s]))
        nonce = max(self._queued[sender])
        evicted = self._by_sender[sender][nonce].tx.hash
        self._recharge_due |= evicted in self._charged
        self.remove([evicted])
        return True

    def _reclassify(self, sender: bytes, base: int | None = None) -> None:
        """Recount which of ``sender``'s transactions wait behind a gap (after an admission
        filled one, or a block moved its account nonce)."""
        by_nonce = self._by_sender.get(sender)
        self.queued -= len(self._queued.pop(sender, ()))
        if not by_nonce:
            self._base.pop(sender, None)
            return
        n = self.state_nonce(sender) if base is None else base
        self._base[sender] = n
        while n in by_nonce:
            n += 1
        waiting = {k for k in by_nonce if k > n}
        if waiting:
            self._queued[sender] = waiting
            self.queued += len(waiting)

    def restore(self) -> int:
        """Re-admit the journal after a restart; drop entries that are no longer valid."""
        if self._journal is None:
            return 0
        restored = 0
        raws = self._journal.read_all()
        for raw in raws:
            try:
                self.admit(self.decode_and_check(raw), raw, journal=False)
                restored += 1
            except TxInvalid:
                pass  # sealed before the crash, or no longer valid
        damage = self._journal.damage
        if damage.spans:  # a torn tail after a kill is one span at the end: said all the same
            log.warning(
                "mempool journal damaged: skipped what was unreadable, kept every intact record",
                spans=[list(s) for s in damage.spans[:10]],
                skipped_bytes=damage.skipped_bytes,
                records_read=len(raws),
            )
        self.compact_journal()
        return restored

    def compact_journal(self) -> None:
        """Rewrite the journal to hold exactly the pool (empty when the pool is)."""
        if self._journal is None or (not self._by_hash and self._journal.size == 0):
            return  # already exactly the pool: skip the rewrite and its fsync
        self._journal.rewrite(e.raw for e in self._by_hash.values())

    def journal_oversized(self) -> bool:
        """True when most of the journal is transactions already sealed."""
        j = self._journal
        return j is not None and j.size > 2 * self.bytes + 64 * 1024 * 1024

    # -- selection -----------------------------------------------------------
    def select(self, max_txs: int) -> list[Transaction]:
        """Executable transactions, oldest sender first, each sender's in nonce order."""
        heap: list[tuple[int, bytes, int]] = []
        for sender, by_nonce in self._by_sender.items():
            nonce = self._base[sender]
            entry = by_nonce.get(nonce)
            if entry is not None:
                heap.append((entry.seq, sender, nonce))
        heapq.heapify(heap)
        out: list[Transaction] = []
        while heap and len(out) < max_txs:
            _, sender, nonce = heapq.heappop(heap)
            out.append(self._by_sender[sender][nonce].tx)
            nxt = self._by_sender[sender].get(nonce + 1)
            if nxt is not None:
                heapq.heappush(heap, (nxt.seq, sender, nonce + 1))
        return out

    # -- removal -------------------------------------------------------------
    def remove(self, hashes: Iterable[bytes]) -> None:
        touched = set()
        for h in hashes:
            entry = self._by_hash.pop(h, None)
            if entry is None:
                continue
            self.bytes -= len(entry.raw)
            sender = entry.tx.sender
            by_nonce = self._by_sender[sender]
            del by_nonce[entry.tx.nonce]
            if not by_nonce:
                del self._by_sender[sender]
            touched.add(sender)
        for sender in touched:  # a removal can open a gap, or a block close one
            self._reclassify(sender)

    def refresh(self, senders: Iterable[bytes]) -> None:
        """Re-read the account nonce of pooled senders a block moved by other means than their
        pooled transactions (a forced transaction from the L1 inbox), so that their next one is
        selected again."""
        for sender in set(senders):
            if sender in self._by_sender:
                self._reclassify(sender)

    def stale_after_block(self, senders: Iterable[bytes]) -> list[bytes]:
        """Hashes of pooled transactions whose nonce the chain has now passed (call it after
        :meth:`remove` of the block's transactions, which refreshed those senders' nonces)."""
        out = []
        for sender in set(senders):
            base = self._base.get(sender)
            if base is None:  # none of its transactions is pooled any more
                continue
            for nonce, entry in self._by_sender.get(sender, {}).items():
                if nonce < base:
                    out.append(entry.tx.hash)
        return out
