"""The node as an aiohttp application: resources live in ``cleanup_ctx``.

Opening order: LevelDB, then the sequencer (genesis check, mempool journal),
then block production. Closing runs in reverse: stop producing (the block in
hand is finished and synced), then close the database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from mps_common.keyfile import Keypair
from rpc.server import DISPATCHER_KEY, MAX_BODY_KEY, NODE_KEY, add_routes, make_dispatcher

from .config import NodeConfig
from .metrics import Metrics
from .sequencer import Sequencer
from .storage import Storage

log = structlog.get_logger("mps.node")


@dataclass
class Node:
    cfg: NodeConfig
    storage: Storage
    sequencer: Sequencer
    metrics: Metrics
    l1: Any = None  # node.l1.service.L1Services when an L1 is configured


def load_key(cfg: NodeConfig) -> Keypair:
    return Keypair.load(cfg.key_path)


def create_app(cfg: NodeConfig, produce_blocks: bool = True) -> web.Application:
    app = web.Application(client_max_size=cfg.max_body_size)
    app[MAX_BODY_KEY] = cfg.max_body_size

    async def node_ctx(app: web.Application) -> AsyncIterator[None]:
        key = load_key(cfg)
        storage = Storage(cfg.db_path)
        try:
            metrics = Metrics()
            seq = Sequencer(cfg, storage, key.signing_key, metrics)
            node = Node(cfg, storage, seq, metrics)
            app[NODE_KEY] = node
            app[DISPATCHER_KEY] = make_dispatcher(node, cfg.max_batch, metrics)
            l1 = None
            if cfg.l1_rpc:
                from .l1.service import build_l1_services

                l1 = build_l1_services(cfg, storage, seq)
                node.l1 = l1
            if produce_blocks:
                seq.start()
                if l1 is not None:
                    l1.start()
            log.info(
                "node started",
                datadir=str(cfg.datadir),
                chain_id=cfg.chain_id,
                sequencer=key.public_key.hex(),
            )
            yield
            if l1 is not None:
                await l1.stop()
            await seq.stop()
        finally:
            storage.close()
            log.info("database closed")

    app.cleanup_ctx.append(node_ctx)
    add_routes(app)
    return app
