"""Wires the L1 services to a running node (used by node.app's cleanup context)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog
from web3 import Web3

from ..config import NodeConfig
from ..metrics import Metrics
from ..sequencer import Sequencer
from ..storage import Storage
from .aggregator import Aggregator
from .chain import GWEI, Deployment, connect, load_account
from .follower import Follower
from .poster import BatchPoster, PosterSettings

log = structlog.get_logger("mps.l1")


@dataclass
class L1Services:
    w3: Web3
    deployment: Deployment
    follower: Follower
    poster: BatchPoster
    aggregator: Aggregator | None
    metrics: Metrics | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        m = self.metrics
        self.tasks.append(loop.create_task(self.follower.run(m), name="l1-follower"))
        self.tasks.append(loop.create_task(self.poster.run(m), name="l1-poster"))
        if self.aggregator is not None:
            self.tasks.append(loop.create_task(self.aggregator.run(m), name="l1-aggregator"))

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()


def build_l1_services(cfg: NodeConfig, storage: Storage, seq: Sequencer) -> L1Services:
    """Connect, bind the contracts and build the services (raises L1Error if unusable)."""
    w3 = connect(cfg.l1_rpc, cfg.l1_chain_id)
    dep = Deployment.at(
        w3, cfg.l1_staking_registry, cfg.l1_rollup, cfg.l1_slashing_manager, cfg.l1_reward_manager
    )
    assert cfg.l1_key_file is not None
    max_fee = int(cfg.l1_max_fee_gwei * GWEI)

    follower = Follower(
        w3,
        dep,
        seq.queue_l1_events,
        cfg.l1_start_block,
        seq.last_l1_event,
        cfg.l1_confirmations,
        cfg.l1_poll_interval,
    )
    poster = BatchPoster(
        w3,
        dep,
        load_account(cfg.l1_key_file),
        storage,
        PosterSettings(
            cfg.batch_blocks, cfg.batch_seconds, cfg.batch_max_blocks, max_fee, cfg.l1_poll_interval
        ),
        on_heads=seq.set_l1_heads,
    )
    aggregator = None
    if cfg.l1_aggregator_key_file is not None:
        aggregator = Aggregator(
            w3,
            dep,
            load_account(cfg.l1_aggregator_key_file),
            storage,
            lambda: poster.finalized_count,
            max_fee,
            cfg.l1_poll_interval,
        )
    log.info(
        "l1 connected",
        url=cfg.l1_rpc,
        chain_id=cfg.l1_chain_id,
        rollup=cfg.l1_rollup,
        aggregator=aggregator is not None,
    )
    return L1Services(w3, dep, follower, poster, aggregator, seq.metrics)
