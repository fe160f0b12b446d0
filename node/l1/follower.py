"""The L1 follower: confirmed StakingRegistry, RewardManager and ForcedInbox events become
deposits.

It reads only blocks at least ``confirmations`` behind the L1 head, so a reorg
shallower than that never reaches the rollup. Where it left off is not kept
anywhere of its own: the rollup state's last consumed event is the cursor,
and the sequencer skips anything at or before it. A restart therefore re-reads
from the last consumed event and can neither skip nor repeat one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from web3 import Web3
from web3.contract import Contract

from mps_common.hexutil import from_hex

from ..metrics import Metrics
from .chain import Deployment
from .deposits import L1Event, L1Origin
from .worker import step_forever

log = structlog.get_logger("mps.l1.follower")

MAX_RANGE = 2000  # blocks per eth_getLogs call


def _event(kind: str, name: str, ev: Any) -> L1Event:
    a = ev["args"]
    if name == "Staked":
        args: list[object] = [
            bytes(a["clientKey"]),
            from_hex(a["staker"], "staker"),
            int(a["amount"]),
            bytes(a["binding"]),  # the STF checks the key's signature (stf.stakes)
        ]
    elif name == "TxForced":
        args = [bytes(a["rawTx"])]  # the STF judges the bytes (stf.forced)
    elif name == "TaskFunded":
        args = [
            bytes(a["taskId"]),
            from_hex(a["requester"], "requester"),
            int(a["deposit"]),  # uint256 end to end (stf.encoding.u256)
        ]
    else:
        args = [bytes(a["clientKey"])]
    return L1Event(int(ev["blockNumber"]), int(ev["logIndex"]), kind, args)


# contract event -> l1_deposit kind
STAKING_EVENTS = {
    "Staked": "stake",
    "UnbondingStarted": "unbond",
    "Withdrawn": "withdraw",
    "Slashed": "slash",
}
REWARD_EVENTS = {"TaskFunded": "fund"}
INBOX_EVENTS = {"TxForced": "forced"}


class EventDecoder:
    """Turns raw logs of the followed contracts into :class:`L1Event`, in L1 order."""

    def __init__(
        self, registry: Contract, rewards: Contract | None, inbox: Contract | None = None
    ) -> None:
        self._by_topic: dict[tuple[str, bytes], tuple[Any, str, str]] = {}
        self.addresses: list[Any] = []
        sources: list[tuple[Contract | None, dict[str, str]]] = [
            (registry, STAKING_EVENTS),
            (rewards, REWARD_EVENTS),
            (inbox, INBOX_EVENTS),
        ]
        for contract, names in sources:
            if contract is None:
                continue
            self.addresses.append(contract.address)
            abi: list[dict[str, Any]] = list(contract.abi)  # type: ignore[arg-type]
            for item in abi:
                if item.get("type") == "event" and item["name"] in names:
                    types = ",".join(i["type"] for i in item["inputs"])
                    topic = bytes(Web3.keccak(text=f"{item['name']}({types})"))
                    handler = contract.events[item["name"]]()
                    self._by_topic[(contract.address, topic)] = (
                        handler,
                        names[item["name"]],
                        item["name"],
                    )

    @property
    def kinds(self) -> set[str]:
        """The deposit kinds these contracts emit (what can be checked against them)."""
        return {kind for _, kind, _ in self._by_topic.values()}

    def decode(self, logs: list[Any]) -> list[L1Event]:
        out = []
        for raw in logs:
            if not raw["topics"]:
                continue
            key = (Web3.to_checksum_address(raw["address"]), bytes(raw["topics"][0]))
            found = self._by_topic.get(key)
            if found is None:
                continue
            handler, kind, name = found
            out.append(_event(kind, name, handler.process_log(raw)))
        out.sort(key=lambda e: e.position)
        return out


class Follower:
    def __init__(
        self,
        w3: Web3,
        dep: Deployment,
        deliver: Callable[[list[L1Event], L1Origin], int],
        start_block: int,
        last_consumed: Callable[[], tuple[int, int]],
        confirmations: int,
        poll_interval: float,
    ) -> None:
        self._w3 = w3
        self._decoder = EventDecoder(dep.registry, dep.rewards, dep.inbox)
        self._deliver = deliver
        self._start = start_block
        self.last_consumed = last_consumed
        self._confirmations = confirmations
        self._interval = poll_interval
        self._next = -1  # next L1 block to read; -1: from the rollup's cursor
        self.confirmed_head = 0

    def fetch(self) -> list[tuple[list[L1Event], L1Origin]]:
        """Read every newly confirmed block range: (events, L1 origin) per range. Blocking."""
        w3 = self._w3
        top = int(w3.eth.block_number) - self._confirmations
        if self._next < 0:
            self._next = max(self._start, self.last_consumed()[0])
        out = []
        frm = self._next
        while frm <= top:
            to = min(top, frm + MAX_RANGE - 1)
            logs = w3.eth.get_logs(
                {"fromBlock": frm, "toBlock": to, "address": self._decoder.addresses}
            )
            events = self._decoder.decode(list(logs))
            out.append((events, (to, bytes(w3.eth.get_block(to)["hash"]))))
            frm = to + 1
        if top >= self._next:
            self._next = top + 1
            self.confirmed_head = top
        return out

    def deliver(self, ranges: list[tuple[list[L1Event], L1Origin]]) -> int:
        """Hand events to the sequencer (on the event loop's thread)."""
        delivered = sum(self._deliver(events, origin) for events, origin in ranges)
        if delivered:
            log.info("l1 events queued", count=delivered, l1_block=self.confirmed_head)
        return delivered

    def poll_once(self) -> int:
        return self.deliver(self.fetch())

    async def run(self, metrics: Metrics | None = None) -> None:
        def after(ranges: list[tuple[list[L1Event], L1Origin]]) -> bool:
            n = self.deliver(ranges)
            if metrics is not None and n:
                metrics.l1_actions.labels("follower", "event").inc(n)
            return False

        await step_forever(
            "follower", self.fetch, after, self._interval, metrics, log,
            "l1 follower cannot read the L1",
        )  # fmt: skip
