"""What the RPC layer needs from a node, as Protocols.

rpc/ never imports node/: each method class names, through these, exactly the reads and the
one action (admission) it uses, so node/app.py can hand it the real storage and sequencer and a
test can hand it anything that answers the same way. The members mirror node.storage.Storage,
node.mempool.Mempool and node.sequencer.Sequencer; mypy checks the match where node/app.py
passes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from prometheus_client import Counter, Histogram

from stf.block import Block, Receipt
from stf.errors import MPSError
from stf.ids import TaskId
from stf.transition import ChainConfig
from stf.tx import Transaction


class TreeStore(Protocol):
    """State-tree nodes and values by hash: enough to prove a key under any stored root."""

    def get(self, key: bytes) -> bytes | None: ...

    def value_by_hash(self, vhash: bytes) -> bytes | None: ...


class BlockStore(Protocol):
    """Sealed blocks by height, what block tags resolve to."""

    def block_by_height(self, height: int) -> Block | None: ...


class HeadState(Protocol):
    """The flat index of the head's state values, cheaper than a tree walk."""

    def state_value(self, key: bytes) -> bytes | None: ...


class StateStore(TreeStore, BlockStore, HeadState, Protocol):
    """What a state read at any block needs: the head's index, or the tree under a root."""


class ChainStore(StateStore, Protocol):
    """The reads of the chain, transaction and state methods."""

    def block_by_hash(self, h: bytes) -> Block | None: ...

    def block_hash_at(self, height: int) -> bytes | None: ...

    def tx_location(self, tx_hash: bytes) -> tuple[int, int] | None: ...

    def receipt(self, tx_hash: bytes) -> Receipt | None: ...


class FLStore(StateStore, Protocol):
    """The reads of the federated-learning methods: state at a block, task scans, blobs."""

    def iter_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]: ...

    def blob(self, blob_hash: bytes) -> bytes | None: ...

    def stored_blob(self, blob_hash: bytes) -> bytes | None: ...

    def pruned_at(self, blob_hash: bytes) -> int | None: ...


class Heads(Protocol):
    """The heads the block tags name: unsafe (sealed), safe (on the L1), finalized."""

    @property
    def head(self) -> Block: ...

    @property
    def safe_height(self) -> int: ...

    @property
    def finalized_height(self) -> int: ...


class Pool(Protocol):
    """The mempool as reads see it (admission goes through the sequencer)."""

    def __len__(self) -> int: ...

    def __contains__(self, tx_hash: bytes) -> bool: ...

    def get(self, tx_hash: bytes) -> Transaction | None: ...

    def state_nonce(self, sender: bytes) -> int: ...

    def has_nonce(self, sender: bytes, nonce: int) -> bool: ...


class PoolHeads(Heads, Protocol):
    """Heads and the pending pool: what a sync status reports."""

    @property
    def mempool(self) -> Pool: ...


class Admission(PoolHeads, Protocol):
    """The sequencer as the chain methods use it: its chain, heads, pool and admission."""

    @property
    def chain(self) -> ChainConfig: ...

    async def submit(self, raw: bytes) -> bytes: ...


class StreamAdmission(Protocol):
    """Admission in its two halves, as ``POST /txs`` pipelines them: checks run several at a
    time, admission one at a time in stream order."""

    async def check_many(self, raws: list[bytes]) -> list[Transaction | MPSError]: ...

    def admit(self, tx: Transaction, raw: bytes, journal: bool = True) -> bytes: ...

    async def journal(self, raws: list[bytes]) -> None: ...


class Sealed(Protocol):
    """A block just committed, as subscriptions announce it."""

    @property
    def block(self) -> Block: ...

    @property
    def closed_epochs(self) -> Sequence[TaskId]: ...


class BlockFeed(PoolHeads, Protocol):
    """The sequencer as the transport uses it: /health and WebSocket subscriptions."""

    def subscribe(self, listener: Callable[[Sealed], None]) -> Callable[[], None]: ...


class MetricsText(Protocol):
    def render(self) -> bytes: ...


class RPCMetrics(Protocol):
    """Where the dispatcher records each call's latency and error code."""

    @property
    def rpc_latency(self) -> Histogram: ...

    @property
    def rpc_errors(self) -> Counter: ...


class Served(Protocol):
    """The node as the transport holds it (the app's ``NODE_KEY``)."""

    @property
    def sequencer(self) -> BlockFeed: ...

    @property
    def metrics(self) -> MetricsText: ...

    def health(self) -> dict[str, Any]: ...

    def blob(self, blob_hash: bytes) -> bytes | None: ...

    def stored_blob(self, blob_hash: bytes) -> bytes | None: ...

    def pruned_at(self, blob_hash: bytes) -> int | None: ...
