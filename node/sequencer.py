"""The sequencer: orders mempool transactions into signed blocks on a clock.

Block building and the synced commit run on a dedicated thread, so the event
loop keeps serving RPC while a block is applied, and RPC load never holds a
block back beyond the GIL's fair share. The sequencer only ever builds on its
committed head and publishes a block after it is on disk, so it never signs
two different blocks at one height that anyone could see, across restarts too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import structlog
from nacl.signing import SigningKey

from stf import encoding, state_keys
from stf.block import Block, Receipt
from stf.errors import Code, MPSError
from stf.genesis import genesis_block
from stf.ids import TaskId
from stf.records import L1Cursor
from stf.smt import SparseMerkleTree
from stf.state import State
from stf.transition import ChainConfig, build_block
from stf.tx import Transaction

from .blas import blas_threads
from .blob_gc import SWEEP_EVERY, sweep
from .config import NodeConfig
from .deadlines import IdleDeadlines
from .fl_events import fl_events
from .journal import TxJournal
from .l1.deposits import L1Event, L1Origin, deposit_txs, forced_senders, select_l1_origin
from .mempool import Mempool
from .metrics import Metrics
from .storage import Storage, StorageError

# transactions larger than this are decoded and verified on a worker thread
OFFLOAD_BYTES = 8 * 1024

log = structlog.get_logger("mps.sequencer")


@dataclass
class SealedBlock:
    block: Block
    receipts: list[Receipt]
    dropped: int
    seconds: float
    closed_epochs: list[TaskId]


BlockListener = Callable[[SealedBlock], None]


def chain_config(cfg: NodeConfig, key: SigningKey) -> ChainConfig:
    return ChainConfig(
        cfg.chain_id,
        bytes(key.verify_key),
        cfg.limits(),
        cfg.stf_backend,
        cfg.epoch_memory_mib * 2**20,
    )


def init_chain(storage: Storage, chain: ChainConfig, cfg: NodeConfig) -> Block:
    """Write genesis into an empty DB, or check that the DB holds this config's chain."""
    genesis, writes = genesis_block({}, chain, cfg.genesis())  # genesis reads nothing
    stored = storage.genesis_hash()
    if stored is None:
        storage.commit_block(genesis, [], writes)
        log.info("genesis written", hash=genesis.hash.hex(), chain_id=chain.chain_id)
    elif stored != genesis.hash:
        raise StorageError(
            f"the database holds chain genesis {stored.hex()}, the config describes "
            f"{genesis.hash.hex()}: wrong data directory or changed genesis settings"
        )
    head = storage.head()
    assert head is not None
    return head


class Sequencer:
    def __init__(
        self, cfg: NodeConfig, storage: Storage, key: SigningKey, metrics: Metrics
    ) -> None:
        self.cfg = cfg
        self.storage = storage
        self.metrics = metrics
        self._key = key
        self.chain = chain_config(cfg, key)
        self._journal = TxJournal(cfg.datadir / "mempool.journal")
        self.mempool = Mempool(storage, self.chain, cfg.mempool_limits(), self._journal)
        self.head = init_chain(storage, self.chain, cfg)
        self.mempool.next_height = self.head.height + 1
        self._tree = SparseMerkleTree(storage)
        self._deadlines = IdleDeadlines(storage)  # node/deadlines.py: why idle blocks are sealed
        self._block_thread = ThreadPoolExecutor(1, thread_name_prefix="mps-block")
        self._verify_pool = ThreadPoolExecutor(cfg.verify_threads, thread_name_prefix="mps-verify")
        self._listeners: list[BlockListener] = []
        self._wake = asyncio.Event()
        # one block at a time: a second caller (a test, a deadline) must build on the first's
        # block, never beside it on the same parent
        self._producing = asyncio.Lock()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # L1 events waiting for the next block, and the L1 block the follower has read up to
        self._deposits: list[L1Event] = []
        self._l1_origin: L1Origin = (
            self.head.header.l1_origin_number,
            self.head.header.l1_origin_hash,
        )
        # heights committed to L1 (safe) and past the challenge window (finalized)
        self.safe_height = 0
        self.finalized_height = 0
        restored = self.mempool.restore()
        self._update_gauges()
        log.info(
            "sequencer ready",
            head=self.head.height,
            root=self.head.header.state_root.hex(),
            mempool_restored=restored,
        )

    # -- public --------------------------------------------------------------
    def subscribe(self, listener: BlockListener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def submit(self, raw: bytes) -> bytes:
        """Admit a raw transaction; return its hash or raise :class:`stf.errors.TxInvalid`."""
        return self.admit(await self.check(raw), raw)

    async def check(self, raw: bytes) -> Transaction:
        """The stateless half of admission (decode, limits, signature): a large transaction on
        the verify pool, so that several check at once while the event loop goes on."""
        if self._stopping:
            raise MPSError(Code.SHUTTING_DOWN, "node is shutting down")
        try:
            if len(raw) > OFFLOAD_BYTES:
                loop = asyncio.get_running_loop()
                return await loop.run_in_executor(
                    self._verify_pool, self.mempool.decode_and_check, raw
                )
            return self.mempool.decode_and_check(raw)
        except MPSError as exc:
            self.metrics.tx_rejected.labels(exc.code.name).inc()
            raise

    async def check_many(self, raws: list[bytes]) -> list[Transaction | MPSError]:
        """:meth:`check` of each, in one job on the verify pool (one thread handoff for a
        chunk of a ``POST /txs`` stream); a refusal is its error, in its place."""
        if self._stopping:
            raise MPSError(Code.SHUTTING_DOWN, "node is shutting down")
        loop = asyncio.get_running_loop()
        out = await loop.run_in_executor(self._verify_pool, _check_each, self.mempool, raws)
        for r in out:
            if isinstance(r, MPSError):
                self.metrics.tx_rejected.labels(r.code.name).inc()
        return out

    def admit(self, tx: Transaction, raw: bytes, journal: bool = True) -> bytes:
        """The stateful half, on the event loop and in arrival order (nonces): pool rules,
        state checks, the journal (``journal=False``: the caller journals it with
        :meth:`journal` before it acknowledges it); returns the hash."""
        if self._stopping:
            raise MPSError(Code.SHUTTING_DOWN, "node is shutting down")
        try:
            h = self.mempool.admit(tx, raw, journal)
        except MPSError as exc:
            self.metrics.tx_rejected.labels(exc.code.name).inc()
            raise
        self.metrics.mempool_txs.set(len(self.mempool))
        if len(self.mempool) >= self.cfg.max_block_txs:
            self._wake.set()
        return h

    async def journal(self, raws: list[bytes]) -> None:
        """Journal transactions admitted with ``journal=False``: one write, on the verify pool
        (a 100 KB write on the event loop took a third of its time in bench/ingest.py)."""
        if raws:
            await asyncio.get_running_loop().run_in_executor(
                self._verify_pool, self.mempool.journal_many, raws
            )

    def last_l1_event(self) -> tuple[int, int]:
        """(L1 block, log index) of the last L1 event the chain consumed; (-1, -1) if none."""
        raw = State(self.storage, self.head.header.state_root).get(state_keys.L1_LAST_EVENT)
        if raw is None:
            return (-1, -1)
        cursor = L1Cursor.decode(raw)
        return (cursor.block, cursor.log_index)

    def queue_l1_events(self, events: list[L1Event], origin: L1Origin) -> int:
        """Queue confirmed L1 events for the next block; return how many were new.

        Events at or before the last one the chain consumed, or already queued,
        are skipped, so the follower may re-deliver after a restart.
        """
        last = self.last_l1_event()
        queued = {e.position for e in self._deposits}
        fresh = [e for e in events if e.position > last and e.position not in queued]
        self._deposits.extend(fresh)
        self._deposits.sort(key=lambda e: e.position)
        if origin[0] > self._l1_origin[0]:
            self._l1_origin = origin
        if fresh:
            self._wake.set()
        return len(fresh)

    def set_l1_heads(self, safe: int, finalized: int) -> None:
        self.safe_height = safe
        self.finalized_height = finalized
        self._update_gauges()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sequencer")

    async def stop(self) -> None:
        """Finish the block in hand, then stop producing."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._block_thread.shutdown(wait=True)
        # the pool first: a stream's journal write queued on it goes to the journal before it
        # closes (closed first, the write went to whatever file reused its descriptor)
        self._verify_pool.shutdown(wait=True)
        self._journal.close()
        log.info("sequencer stopped", head=self.head.height)

    # -- block production ----------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self.cfg.block_time
        while not self._stopping:
            delay = next_at - loop.time()
            if delay > 0 and not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()
            if self._stopping:
                break
            try:
                await self.produce_block(idle=self._deadlines.pending(self.head.header.height))
            except Exception:
                log.exception("block production failed; retrying next tick")
            next_at = loop.time() + self.cfg.block_time

    async def produce_block(self, idle: bool = False) -> SealedBlock | None:
        """Seal the next block from the waiting deposits and transactions (None: nothing to
        seal, unless ``idle`` or ``empty_blocks``: then an empty one). Safe to call while the
        production loop runs: calls take turns."""
        async with self._producing:
            return await self._produce_block(idle)

    async def _produce_block(self, idle: bool) -> SealedBlock | None:
        deposits = self._deposits[: self.cfg.max_block_txs]
        origin = select_l1_origin(
            self.head.header, self._l1_origin, len(self._deposits), len(deposits)
        )
        candidates = self.mempool.select(max(0, self.cfg.max_block_txs - len(deposits)))
        if not candidates and not deposits and not self.cfg.empty_blocks and not idle:
            return None
        loop = asyncio.get_running_loop()
        sealed = await loop.run_in_executor(
            self._block_thread, self._build_and_commit, candidates, deposits, origin
        )
        self.head = sealed.block
        # consumed or not (a deposit the STF rejects is dropped for good), they are done
        done = {e.position for e in deposits}
        self._deposits = [e for e in self._deposits if e.position not in done]
        forced = forced_senders(deposits)  # nonces the pool did not move (red team)
        touched = [tx.sender for tx in candidates] + forced
        self.mempool.remove(tx.hash for tx in candidates)
        self.mempool.refresh(forced)
        self.mempool.remove(self.mempool.stale_after_block(touched))
        self.mempool.new_head(sealed.block.height)  # the next height; pending charges again
        if len(self.mempool) == 0 or self.mempool.journal_oversized():
            self.mempool.compact_journal()
        self.metrics.block_apply.observe(sealed.seconds)
        self.metrics.block_txs.inc(len(sealed.block.txs))
        self._update_gauges()
        log.info(
            "block sealed",
            height=sealed.block.height,
            txs=len(sealed.block.txs),
            dropped=sealed.dropped,
            ms=round(sealed.seconds * 1000, 2),
        )
        for event, fields in fl_events(sealed.block, sealed.receipts, sealed.closed_epochs):
            self.metrics.fl_events.labels(event).inc()
            log.info(event, height=sealed.block.height, **fields)
        for listener in list(self._listeners):
            try:
                listener(sealed)
            except Exception:
                log.exception("block listener failed")
        return sealed

    def _sweep_blobs(self, head: int) -> None:
        """Blob retention (node.blob_gc), between blocks so no build reads what it drops."""
        horizon = head - self.cfg.blob_retention_blocks
        if self.cfg.l1_rpc:  # a batch still open to a challenge keeps what its blocks wrote
            horizon = min(horizon, self.finalized_height)
        try:
            done = sweep(self.storage, horizon, head)
        except Exception:  # a cache's housekeeping: it must never stop or fork the chain
            log.exception("blob sweep failed; the blocks go on, the next sweep tries again")
            return
        if done.pruned:
            self.metrics.blobs_pruned.inc(done.pruned)
            self.metrics.blob_bytes_pruned.inc(done.bytes)
            log.info(
                "blobs pruned",
                count=done.pruned,
                bytes=done.bytes,
                restorable=done.restorable,
                horizon=horizon,
                kept_named=done.kept_live,
            )

    def _deposit_txs(self, parent_root: bytes, events: list[L1Event]) -> list[Transaction]:
        raw = State(self.storage, parent_root).get(state_keys.L1_DEPOSIT_COUNT)
        count = 0 if raw is None else int(encoding.decode(raw))
        return deposit_txs(self.chain, count, events)

    def _build_and_commit(
        self,
        candidates: list[Transaction],
        deposits: list[L1Event],
        origin: L1Origin,
    ) -> SealedBlock:
        t0 = time.perf_counter()
        parent = self.head.header
        with blas_threads(self.cfg.blas_threads):
            result = build_block(
                self.storage,
                parent,
                self._deposit_txs(parent.state_root, deposits) + candidates,
                int(time.time() * 1000),
                origin,
                self.chain,
                self._key,
                self._tree,
            )
        self.storage.commit_block(result.block, result.receipts, result.writes)
        self._deadlines.observe(result.writes)
        if self.cfg.blob_retention_blocks and result.block.height % SWEEP_EVERY == 0:
            self._sweep_blobs(result.block.height)
        return SealedBlock(
            result.block,
            result.receipts,
            len(result.dropped),
            time.perf_counter() - t0,
            result.closed_epochs,
        )

    def _update_gauges(self) -> None:
        self.metrics.head.labels("unsafe").set(self.head.height)
        self.metrics.head.labels("safe").set(self.safe_height)
        self.metrics.head.labels("finalized").set(self.finalized_height)
        self.metrics.mempool_txs.set(len(self.mempool))
        self.metrics.mempool_bytes.set(self.mempool.bytes)


def _check_each(pool: Mempool, raws: list[bytes]) -> list[Transaction | MPSError]:
    out: list[Transaction | MPSError] = []
    for raw in raws:
        try:
            out.append(pool.decode_and_check(raw))
        except MPSError as exc:
            out.append(exc)
    return out
