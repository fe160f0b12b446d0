"""The aggregator service: turns finalized evidence in the rollup state into L1 actions.

It decides nothing itself. A client is slashed on L1 only when the rollup
state under a *finalized* batch root holds its ``slash/`` leaf, and the
SlashingManager re-checks that leaf's Merkle proof; a task is settled only from
its ``settle/`` leaf. Every action is preceded by a read of the L1 (already
slashed? already settled?), so the service is idempotent across restarts and
can run beside another copy of itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import structlog
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import ContractFunctions

from stf.fl.flags import flag_names
from stf.fl.settlement import NO_FUNDER, decode_settlement, decode_slash_evidence
from stf.smt import SparseMerkleTree, key_path
from stf.stakes import StakeStatus
from stf.state import STATE_PREFIX
from stf.state_keys import SETTLE_PREFIX, SLASH_PREFIX, parse_settlement, parse_slash_evidence

from ..metrics import Metrics
from ..storage import Storage
from .chain import Deployment, send_and_wait
from .worker import step_forever

log = structlog.get_logger("mps.l1.aggregator")

# the L1 statuses a stake can still be slashed in
SLASHABLE_ON_L1 = (StakeStatus.STAKED.l1, StakeStatus.UNBONDING.l1)


@dataclass(frozen=True)
class Evidence:
    key: bytes
    value: bytes
    siblings: list[bytes]


def prove_at(storage: Storage, root: bytes, key: bytes) -> Evidence | None:
    """The key's value and inclusion proof under ``root``, or None if absent there."""
    proof = SparseMerkleTree(storage).prove(root, key)
    if proof.leaf is None or proof.leaf[0] != key_path(key):
        return None
    value = storage.value_by_hash(proof.leaf[1])
    if value is None:
        return None
    return Evidence(key, value, list(proof.siblings))


def _keys(storage: Storage, prefix: bytes) -> Iterator[bytes]:
    for k, _ in storage.iter_prefix(STATE_PREFIX + prefix):
        yield k[len(STATE_PREFIX) :]


class Aggregator:
    def __init__(
        self,
        w3: Web3,
        dep: Deployment,
        account: LocalAccount,
        storage: Storage,
        finalized_count: Callable[[], int],
        max_fee_wei: int,
        poll_interval: float,
    ) -> None:
        self._w3 = w3
        self._dep = dep
        self._account = account
        self._storage = storage
        self._finalized_count = finalized_count
        self._max_fee = max_fee_wei
        self._interval = poll_interval
        self.slashed: list[bytes] = []  # client keys this service slashed (for logs and tests)
        self.settled: list[bytes] = []
        # evidence can only change when another batch finalizes, and a leaf acted on (or found
        # final on L1) stays so: neither needs reading again every poll
        self._acted_on = 0  # the finalized batch count last handled completely
        self._final: set[bytes] = set()

    def step(self) -> int:
        """Act on everything the newest finalized batch proves; return the number of L1 txs."""
        count = self._finalized_count()
        if count == 0 or count == self._acted_on:
            return 0
        batch_index = count - 1
        root = bytes(self._dep.rollup.functions.finalizedStateRoot(batch_index).call())
        sent = self._slash_all(batch_index, root) + self._settle_all(batch_index, root)
        self._acted_on = count  # only once every action went through
        return sent

    def _pending(self, prefix: bytes) -> list[bytes]:
        """The leaves under ``prefix`` not yet known to be final on L1."""
        return [k for k in _keys(self._storage, prefix) if k not in self._final]

    def _slash_all(self, batch_index: int, root: bytes) -> int:
        return sum(self._slash(batch_index, root, key) for key in self._pending(SLASH_PREFIX))

    def _slash(self, batch_index: int, root: bytes, key: bytes) -> bool:
        """Slash on L1 for one evidence leaf, unless there is nothing (left) to do there;
        True if a transaction went out."""
        parsed = parse_slash_evidence(key)
        if parsed is None:
            return False
        client, task = parsed
        sm, reg = self._dep.slashing.functions, self._dep.registry.functions
        if (
            sm.slashed(sm.offenceId(client, task).call()).call()
            or int(reg.statusOf(client).call()) not in SLASHABLE_ON_L1
        ):
            # done, or nothing left to slash (slashed for another task, or withdrawn)
            self._final.add(key)
            return False
        ev = prove_at(self._storage, root, key)
        if ev is None:
            return False  # not yet under a finalized root
        leaf = decode_slash_evidence(ev.value)
        call = sm.slash(batch_index, client, task, leaf.epoch, leaf.reason, ev.siblings)
        send_and_wait(self._w3, self._account, call, self._max_fee)
        self._final.add(key)
        self.slashed.append(client)
        log.info(
            "client slashed on L1",
            client=client.hex(),
            task=task.hex(),
            epoch=leaf.epoch,
            reason=",".join(flag_names(leaf.reason)) or str(leaf.reason),
            batch=batch_index,
        )
        return True

    def _settle_all(self, batch_index: int, root: bytes) -> int:
        if self._dep.rewards is None:
            return 0
        rm = self._dep.rewards.functions
        return sum(self._settle(rm, batch_index, root, k) for k in self._pending(SETTLE_PREFIX))

    def _settle(self, rm: ContractFunctions, batch_index: int, root: bytes, key: bytes) -> bool:
        """Settle one task on L1 from its leaf (the funding it names), unless it is settled
        or names no funding; True if a transaction went out."""
        task = parse_settlement(key)
        if task is None:
            return False
        ev = prove_at(self._storage, root, key)
        if ev is None:
            return False
        leaf = decode_settlement(ev.value)
        _, settled, _ = rm.funding(task, Web3.to_checksum_address(leaf.funder)).call()
        if settled or leaf.funder == NO_FUNDER:  # done, or an unfunded task: nothing to pay
            self._final.add(key)
            return False
        call = rm.settle(
            batch_index,
            task,
            Web3.to_checksum_address(leaf.funder),
            leaf.status,
            leaf.epochs_trained,
            leaf.total_clean_updates,
            leaf.data_bytes,
            ev.siblings,
        )
        send_and_wait(self._w3, self._account, call, self._max_fee)
        self._final.add(key)
        self.settled.append(task)
        log.info(
            "task settled on L1",
            task=task.hex(),
            epochs=leaf.epochs_trained,
            clean_updates=leaf.total_clean_updates,
            data_bytes=leaf.data_bytes,
        )
        return True

    async def run(self, metrics: Metrics | None = None) -> None:
        def after(n: int) -> bool:
            if metrics is not None and n:
                metrics.l1_actions.labels("aggregator", "l1_tx").inc(n)
            return False

        await step_forever(
            "aggregator", self.step, after, self._interval, metrics, log,
            "aggregator cannot act on the L1",
        )  # fmt: skip
