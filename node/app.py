"""The node as an aiohttp application: one ``cleanup_ctx`` per resource.

Opening order: LevelDB, then the sequencer (genesis check, mempool journal restored), then the
L1 services (connected, contracts bound); once every resource is open, the RPC is wired to them
and block production and the L1 loops start, so a resource that fails to open never leaves a
block produced. aiohttp closes the contexts in reverse: the L1 services stop after the step each
has in flight (their steps read LevelDB on worker threads), the block loop after the block in
hand is committed and synced (and the journal is closed), then LevelDB closes.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from aiohttp import web

from mps_common.keyfile import Keypair
from rpc.fl_methods import FLMethods
from rpc.methods import ChainMethods
from rpc.server import (
    BODY_TIMEOUT_KEY,
    DISPATCHER_KEY,
    MAX_BODY_KEY,
    NODE_KEY,
    add_routes,
    make_dispatcher,
)
from rpc.sync_methods import SyncMethods
from rpc.tx_stream import TX_STREAM_KEY, TxStream

from .config import NodeConfig
from .conn_guard import GUARD_KEY, ConnectionGuard, guard_requests
from .health import health
from .metrics import Metrics
from .sequencer import Sequencer
from .storage import Storage

if TYPE_CHECKING:
    from .l1.service import L1Services

log = structlog.get_logger("mps.node")

Context = Callable[[web.Application], AsyncIterator[None]]

CONFIG = web.AppKey("config", NodeConfig)
KEY = web.AppKey("sequencer_key", Keypair)
PRODUCE = web.AppKey("produce_blocks", bool)
METRICS = web.AppKey("metrics", Metrics)
STORAGE = web.AppKey("storage", Storage)
SEQUENCER = web.AppKey("sequencer", Sequencer)
L1: web.AppKey[L1Services] = web.AppKey("l1")  # absent without an L1


@dataclass
class Node:
    """The open resources, as the transport (``NODE_KEY``) and tests reach them."""

    cfg: NodeConfig
    storage: Storage
    sequencer: Sequencer
    metrics: Metrics
    l1: L1Services | None = None  # when an L1 is configured
    started: float = field(default_factory=time.time)

    def health(self) -> dict[str, Any]:
        """What ``/health`` answers (node/health.py)."""
        return health(self)

    def blob(self, blob_hash: bytes) -> bytes | None:
        """A stored blob's bytes (``GET /blob/<hash>`` streams them)."""
        return self.storage.blob(blob_hash)

    def stored_blob(self, blob_hash: bytes) -> bytes | None:
        """The blob store's copy alone (a pruned upload is read back by :meth:`blob`)."""
        return self.storage.stored_blob(blob_hash)

    def pruned_at(self, blob_hash: bytes) -> int | None:
        """Where blob retention dropped a computed blob for good (``node.blob_gc``), or None."""
        return self.storage.pruned_at(blob_hash)


def load_key(cfg: NodeConfig) -> Keypair:
    return Keypair.load(cfg.key_path)


def unwinding(ctx: Context) -> Context:
    """``ctx``, closing the contexts opened before it if it fails to open.

    aiohttp unwinds those only when the runner's cleanup follows a failed setup, which neither
    the daemon nor aiohttp's test server does; a later cleanup finds them already closed.
    """

    @functools.wraps(ctx)
    async def guarded(app: web.Application) -> AsyncIterator[None]:
        it = ctx(app)
        try:
            await anext(it)
        except BaseException:
            try:
                await app.cleanup()
            except Exception:  # the failure to open stays the one raised
                log.exception("closing after a failed start failed")
            raise
        yield
        await anext(it, None)

    return guarded


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    """LevelDB: opened first and closed last, once nothing reads or commits any more."""
    storage = Storage(app[CONFIG].db_path)
    app[STORAGE] = storage
    yield
    storage.close()
    log.info("database closed")


async def sequencer_ctx(app: web.Application) -> AsyncIterator[None]:
    """The sequencer with its mempool journal; stopping it finishes the block in hand and
    closes the journal (a node that never produced stops the same way)."""
    seq = Sequencer(app[CONFIG], app[STORAGE], app[KEY].signing_key, app[METRICS])
    app[SEQUENCER] = seq
    yield
    await seq.stop()


async def l1_ctx(app: web.Application) -> AsyncIterator[None]:
    """The L1 services, when an L1 is configured; they stop first (see the module doc)."""
    from .l1.service import build_l1_services  # web3 loads only for a node with an L1

    l1 = build_l1_services(app[CONFIG], app[STORAGE], app[SEQUENCER])
    app[L1] = l1
    yield
    await l1.stop()


async def serve_node(app: web.Application) -> None:
    """Once every resource is open: wire the RPC to them, then start producing."""
    cfg, seq, l1 = app[CONFIG], app[SEQUENCER], app.get(L1)
    app[NODE_KEY] = Node(cfg, app[STORAGE], seq, app[METRICS], l1)
    app[DISPATCHER_KEY] = make_dispatcher(cfg.max_batch, app[METRICS], *rpc_namespaces(app))
    app[TX_STREAM_KEY] = TxStream(seq, cfg.stream_limits())
    if app[PRODUCE]:
        seq.start()
        if l1 is not None:
            l1.start()
    log.info(
        "node started",
        datadir=str(cfg.datadir),
        chain_id=cfg.chain_id,
        sequencer=app[KEY].public_key.hex(),
    )


def rpc_namespaces(app: web.Application) -> tuple[object, ...]:
    storage, seq = app[STORAGE], app[SEQUENCER]
    return (
        ChainMethods(storage, seq, app[CONFIG].genesis()),
        SyncMethods(storage, seq),
        FLMethods(storage, seq),
    )


def create_app(cfg: NodeConfig, produce_blocks: bool = True) -> web.Application:
    app = web.Application(client_max_size=cfg.max_body_size, middlewares=[guard_requests])
    app[MAX_BODY_KEY] = cfg.max_body_size
    app[BODY_TIMEOUT_KEY] = cfg.body_timeout
    app[GUARD_KEY] = ConnectionGuard(cfg.guard_limits())
    app[CONFIG] = cfg
    app[KEY] = load_key(cfg)
    app[PRODUCE] = produce_blocks
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(storage_ctx)
    app.cleanup_ctx.append(unwinding(sequencer_ctx))
    if cfg.l1_rpc:
        app.cleanup_ctx.append(unwinding(l1_ctx))
    app.on_startup.append(serve_node)
    add_routes(app)
    return app
