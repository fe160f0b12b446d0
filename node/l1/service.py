"""Wires the L1 services to a running node (used by node.app's cleanup context)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog
from web3 import Web3
from web3.contract import Contract

from ..config import NodeConfig
from ..metrics import Metrics
from ..sequencer import Sequencer
from ..storage import Storage
from .aggregator import Aggregator
from .chain import GWEI, Deployment, L1Error, connect, load_account
from .derivation import sequencing_window
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


def check_head_against_l1(rollup: Contract, storage: Storage, head_height: int) -> None:
    """Refuse a database that lost or rolled back blocks the L1 already holds (issue 13).

    With LevelDB's ``CURRENT`` file gone the node used to start a new chain at height 0, and
    with ``meta:head`` set back it served an old head: either way it would sign again heights it
    had published, two blocks for one height, which a verifier proves as equivocation. The L1's
    last committed block is the floor: the head must be at or above it, and the block there must
    have the root the L1 holds."""
    last = int(rollup.functions.lastCommittedBlock().call())
    if last == 0:
        return
    if head_height < last:
        raise L1Error(
            f"this database's head is block {head_height}, but the L1 holds batches up to block "
            f"{last}: the database was lost or rolled back; restore it (or rebuild it from the "
            "posted batches) before starting, or the node would sign those heights again"
        )
    header = storage.header_at(last)
    want = bytes(rollup.functions.lastStateRoot().call())
    if header is None or header.state_root != want:
        have = "missing" if header is None else header.state_root.hex()
        raise L1Error(
            f"block {last} in this database has state root {have}, but the L1's last batch "
            f"commits {want.hex()}: the database is not the chain this rollup settled"
        )


def check_window_against_confirmations(dep: Deployment, confirmations: int) -> None:
    """Refuse a follower that sees L1 events too late for the sequencing window: the poster
    holds a batch that leaves out an event older than half the window, and the follower sees
    an event ``l1_confirmations`` blocks after it happened."""
    window = sequencing_window(dep.inbox)
    if window is not None and window // 2 <= confirmations + 2:
        raise L1Error(
            f"l1_confirmations = {confirmations} leaves no time within the ForcedInbox's "
            f"sequencing window of {window} L1 blocks (half of it must exceed the "
            "confirmations by more than 2): lower l1_confirmations, or deploy a longer window"
        )


def check_data_fee_against_l1(dep: Deployment, data_fee_per_mib: int) -> None:
    """Refuse a chain whose spec prices a task's bytes otherwise than its RewardManager bills
    them: the STF caps each task's bytes at what its deposit pays for at the spec's price, and a
    RewardManager charging more would take deposits the cap did not foresee (or less, leave
    the data unpaid)."""
    if dep.rewards is None:
        return
    on_l1 = int(dep.rewards.functions.DATA_FEE_PER_MIB().call())
    if on_l1 != data_fee_per_mib:
        raise L1Error(
            f"the chain spec prices a task's data at {data_fee_per_mib} wei per MiB, but the "
            f"RewardManager at {dep.rewards.address} bills {on_l1}: deploy them together "
            "(mps-node deploy passes the node's data_fee_per_mib)"
        )


def build_l1_services(cfg: NodeConfig, storage: Storage, seq: Sequencer) -> L1Services:
    """Connect, bind the contracts and build the services (raises L1Error if unusable, or if
    the database is behind what the L1 holds)."""
    w3 = connect(cfg.l1_rpc, cfg.l1_chain_id)
    dep = Deployment.at(
        w3,
        cfg.l1_staking_registry,
        cfg.l1_rollup,
        cfg.l1_slashing_manager,
        cfg.l1_reward_manager,
        cfg.l1_forced_inbox,
    )
    check_head_against_l1(dep.rollup, storage, seq.head.height)
    check_window_against_confirmations(dep, cfg.l1_confirmations)
    check_data_fee_against_l1(dep, cfg.data_fee_per_mib)
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
            cfg.batch_blocks,
            cfg.batch_seconds,
            cfg.batch_max_blocks,
            max_fee,
            cfg.l1_poll_interval,
            cfg.batch_data_on_l1,
        ),
        on_heads=seq.set_l1_heads,
        start_block=cfg.l1_start_block,
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
