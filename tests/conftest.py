"""Shared fixtures for the STF, state tree, encoding and replay tests.

Hypothesis does not mix with function-scoped fixtures, so everything a
property test needs (the store class, keys, the chain config, the chain
factory) is session-scoped and immutable or a factory; the per-test
``store`` and ``chain`` fixtures are thin wrappers around them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from nacl.signing import SigningKey

from stf.block import Block, Receipt
from stf.genesis import Genesis, genesis_block
from stf.hashing import ZERO_HASH
from stf.stakes import binding_message
from stf.transition import BuildResult, ChainConfig, build_block, state_transition
from stf.tx import Transaction

CHAIN_ID = 77


class MemStore:
    """A dict-backed :class:`stf.state.KVReader`; ``commit`` applies writes, ``None`` deletes."""

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data: dict[bytes, bytes] = dict(data or {})

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def commit(self, writes: dict[bytes, bytes | None]) -> None:
        for key, value in writes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value

    def copy(self) -> MemStore:
        return MemStore(self.data)

    def keys_with_prefix(self, prefix: bytes) -> dict[bytes, bytes]:
        return {k: v for k, v in self.data.items() if k.startswith(prefix)}


def signing_key(seed: int) -> SigningKey:
    """A deterministic ed25519 key, so failures reproduce."""
    return SigningKey(bytes([seed]) * 32)


def stake_args(
    key: SigningKey, l1_address: bytes, amount: int, chain_id: int = CHAIN_ID
) -> list[Any]:
    """An ``l1_deposit`` stake's arguments, with the key's binding to ``l1_address``."""
    binding = key.sign(binding_message(chain_id, l1_address)).signature
    return [bytes(key.verify_key), l1_address, amount, bytes(binding)]


@dataclass
class Chain:
    """A MemStore-backed chain at its head: build blocks on it and commit them."""

    config: ChainConfig
    sequencer_key: SigningKey
    genesis: Genesis = field(default_factory=Genesis)
    store: MemStore = field(default_factory=MemStore)
    blocks: list[Block] = field(default_factory=list)
    receipts: list[list[Receipt]] = field(default_factory=list)

    def __post_init__(self) -> None:
        g, writes = genesis_block(self.store, self.config, self.genesis)
        self.store.commit(writes)
        self.blocks.append(g)
        self.receipts.append([])

    @property
    def head(self) -> Block:
        return self.blocks[-1]

    def build(
        self,
        txs: Iterable[Transaction],
        timestamp_ms: int | None = None,
        l1_origin: tuple[int, bytes] | None = None,
        key: SigningKey | None = None,
    ) -> BuildResult:
        """Build (but do not commit) a block on the head."""
        parent = self.head.header
        ts = parent.timestamp_ms + 1000 if timestamp_ms is None else timestamp_ms
        origin = (parent.l1_origin_number, ZERO_HASH) if l1_origin is None else l1_origin
        return build_block(
            self.store,
            parent,
            list(txs),
            ts,
            origin,
            self.config,
            key or self.sequencer_key,
        )

    def commit(self, result: BuildResult, check: bool = True) -> Block:
        """Commit a built block; with ``check``, first replay it as a verifier would
        (decoded from its wire form) and insist on the very same writes and receipts."""
        if check:
            block = Block.decode(result.block.encode())
            assert block == result.block
            writes, receipts = self.verify(block)
            assert writes == result.writes
            assert receipts == result.receipts
        self.store.commit(result.writes)
        self.blocks.append(result.block)
        self.receipts.append(result.receipts)
        return result.block

    def build_and_commit(self, txs: Iterable[Transaction], **kwargs: object) -> BuildResult:
        result = self.build(txs, **kwargs)  # type: ignore[arg-type]
        self.commit(result)
        return result

    def verify(self, block: Block) -> tuple[dict[bytes, bytes | None], list[Receipt]]:
        """Run the STF on ``block`` over the head (does not commit)."""
        return state_transition(self.store, self.head.header, block, self.config)


@pytest.fixture(scope="session")
def store_cls() -> type[MemStore]:
    return MemStore


@pytest.fixture
def store() -> MemStore:
    return MemStore()


@pytest.fixture(scope="session")
def sequencer_key() -> SigningKey:
    return signing_key(200)


@pytest.fixture(scope="session")
def user_keys() -> list[SigningKey]:
    return [signing_key(i) for i in range(1, 5)]


@pytest.fixture(scope="session")
def config(sequencer_key: SigningKey) -> ChainConfig:
    return ChainConfig(chain_id=CHAIN_ID, sequencer=bytes(sequencer_key.verify_key))


@pytest.fixture(scope="session")
def make_chain(config: ChainConfig, sequencer_key: SigningKey) -> Callable[..., Chain]:
    """Factory for a fresh chain (usable from hypothesis tests)."""

    def make(genesis: Genesis | None = None, chain_config: ChainConfig | None = None) -> Chain:
        return Chain(chain_config or config, sequencer_key, genesis or Genesis())

    return make


@pytest.fixture
def chain(make_chain: Callable[..., Chain]) -> Chain:
    return make_chain()
