"""The verifier: replays every committed batch from the sequencer's blocks, or the L1's.

It trusts the L1 and nothing else. The genesis it rebuilds must have the
root the MPSRollup contract was deployed with; every batch's blocks must hash
to the batch's ``dataHash``, replay without error, and end at the committed
state root; with a derivation checker, its L1 deposits must be the L1's events and it must
hold every event older than the sequencing window (:mod:`node.l1.derivation`). Blocks the
sequencer does not serve are demanded on the L1 by a
data challenge (:mod:`node.l1.data_source`): the verifier waits for them there,
or voids the batch once its publication window passed. The first block where
replay fails is reported, and, given an L1 account, the batch is challenged
with a bond (anyone may challenge).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from mps_common.hexutil import as_bytes
from mps_common.transport import RPCClient
from stf.block import Block
from stf.context import Limits
from stf.errors import BlockInvalid
from stf.genesis import Genesis, GenesisStake, genesis_block
from stf.smt import SparseMerkleTree
from stf.transition import ChainConfig, state_transition

from ..storage import Storage
from .chain import send_and_wait
from .data_source import BatchDataSource, BatchRef, DataUnobtainable, Unavailable, Waiting
from .derivation import DerivationChecker, DerivationIncomplete

log = structlog.get_logger("mps.l1.verifier")


@dataclass(frozen=True)
class Divergence:
    batch_index: int
    block: int
    why: str
    challenged: bool = False

    def __str__(self) -> str:
        return f"batch {self.batch_index}: first diverging block {self.block}: {self.why}"


def chain_from_genesis_rpc(g: dict[str, Any]) -> tuple[ChainConfig, Genesis]:
    """The chain and genesis of ``mps_getGenesis``'s answer (bytes raw, or 0x hex as in JSON and
    in ``mps-node genesis``'s file)."""
    lim = g["limits"]
    chain = ChainConfig(
        int(g["chainId"]),
        as_bytes(g["sequencer"], "sequencer"),
        Limits(
            int(lim["maxTxSize"]),
            int(lim["maxBlockTxs"]),
            int(lim["maxRecordSize"]),
            int(lim["maxBlobSize"]),
            int(lim["fundingWindowBlocks"]),
            int(lim.get("dataFeePerMib", 0)),  # absent in a genesis file written before it
        ),
    )
    stakes = tuple(
        GenesisStake(
            as_bytes(s["clientKey"], "clientKey"),
            as_bytes(s["l1Address"], "l1Address"),
            int(s["amount"]),
        )
        for s in g["stakes"]
    )
    return chain, Genesis(int(g["timestampMs"]), stakes)


class Verifier:
    def __init__(
        self,
        rollup: Contract,
        sequencer: RPCClient | None,
        storage: Storage,
        w3: Web3 | None = None,
        account: LocalAccount | None = None,
        max_fee_wei: int = 0,
        progress: Callable[[int, int], None] | None = None,
        derivation: DerivationChecker | None = None,
        genesis: dict[str, Any] | None = None,
    ) -> None:
        """``sequencer`` None: from the L1 alone (every batch's data demanded there), the
        genesis then given as ``mps_getGenesis`` would answer (``mps-node genesis``)."""
        if sequencer is None and genesis is None:
            raise ValueError("a verifier without a sequencer RPC needs the chain's genesis")
        self._genesis = genesis
        self._rollup = rollup.functions
        self._rpc = sequencer
        self._storage = storage
        self._w3 = w3
        self._account = account
        self._max_fee = max_fee_wei
        self._progress = progress
        self._derivation = derivation  # None: deposits are not checked against the L1
        self._chain: ChainConfig | None = None
        self._tree = SparseMerkleTree(storage)
        self._data = BatchDataSource(rollup, sequencer, storage, w3, account, max_fee_wei)
        self.checked = 0  # batches verified so far
        self.waiting: str | None = None  # why the next batch cannot be checked yet

    def _init_genesis(self) -> Divergence | None:
        spec = self._genesis
        if spec is None:
            assert self._rpc is not None
            spec = self._rpc.call("mps_getGenesis")
        chain, genesis = chain_from_genesis_rpc(spec)
        block, writes = genesis_block({}, chain, genesis)
        on_l1 = bytes(self._rollup.genesisStateRoot().call())
        if block.header.state_root != on_l1:
            source = "the sequencer's" if self._genesis is None else "the given"
            return Divergence(0, 0, f"{source} genesis state root differs from the L1's")
        stored = self._storage.genesis_hash()
        if stored is None:
            self._storage.commit_block(block, [], writes)
        elif stored != block.hash:
            return Divergence(0, 0, "the local database holds another chain")
        self._chain = chain
        return None

    def verify_new_batches(self) -> Divergence | None:
        """Check every batch committed since the last call; the first divergence, or None (with
        ``waiting`` set when a batch's data is being demanded on the L1: call again later)."""
        if self._chain is None:
            wrong_genesis = self._init_genesis()
            if wrong_genesis is not None:
                return wrong_genesis
        total = int(self._rollup.nextBatchIndex().call())
        self.checked = min(self.checked, total)  # a void batch (and those after it) is gone
        self.waiting = None
        while self.checked < total:
            bad = self._verify_batch(self.checked)
            if isinstance(bad, Waiting):
                self.waiting = bad.why
                log.info("waiting for a batch's data", why=bad.why)
                return None
            if bad is not None:
                return self._challenge(bad)
            self.checked += 1
            if self._progress is not None:
                self._progress(self.checked, total)
        return None

    def _verify_batch(self, index: int) -> Divergence | Waiting | None:
        assert self._chain is not None
        root, data_hash, last, committed_at, _ = self._rollup.batch(index).call()
        first = 1 if index == 0 else int(self._rollup.batch(index - 1).call()[2]) + 1
        ref = BatchRef(index, first, int(last), bytes(data_hash), int(committed_at))
        raws = self._data.fetch(ref)
        if isinstance(raws, Waiting):
            return raws
        if isinstance(raws, Unavailable):
            return Divergence(index, first, raws.why)
        head = self._storage.head()
        assert head is not None
        parent = head
        if self._derivation is not None:  # blocks replayed by an earlier run of the verifier
            for height in range(self._derivation.height + 1, head.height + 1):
                stored = self._storage.block_by_height(height)
                assert stored is not None
                why = self._derivation.check_block(stored)
                if why is not None:
                    return Divergence(index, height, why)
        for height in range(head.height + 1, int(last) + 1):
            try:
                block = Block.decode(raws[height - first])
                if self._derivation is not None:
                    why = self._derivation.check_block(block)
                    if why is not None:
                        return Divergence(index, height, why)
                writes, receipts = state_transition(
                    self._storage, parent.header, block, self._chain, self._tree
                )
            except BlockInvalid as exc:
                return Divergence(index, height, str(exc))
            except (DerivationIncomplete, DataUnobtainable):  # cannot judge it: never a challenge
                raise
            except Exception as exc:  # undecodable bytes are as bad as a wrong root
                return Divergence(index, height, f"block cannot be decoded: {exc}")
            self._storage.commit_block(block, receipts, writes)
            parent = block
        if self._derivation is not None:
            why = self._derivation.check_batch_end(int(committed_at))
            if why is not None:
                return Divergence(index, int(last), why)
        header = self._storage.header_at(int(last))
        assert header is not None
        if header.state_root != bytes(root):
            return Divergence(
                index,
                int(last),
                f"committed state root {bytes(root).hex()} != replayed {header.state_root.hex()}",
            )
        log.info("batch verified", batch=index, last_block=int(last))
        return None

    def _challenge(self, bad: Divergence) -> Divergence:
        if self._w3 is None or self._account is None:
            return bad
        if self._rollup.isFinalized(bad.batch_index).call():
            log.error("diverging batch is already finalized; too late to challenge", batch=bad)
            return bad
        bond = int(self._rollup.CHALLENGE_BOND().call())
        send_and_wait(
            self._w3, self._account, self._rollup.challenge(bad.batch_index), self._max_fee, bond
        )
        log.warning("batch challenged on L1", batch=bad.batch_index, block=bad.block)
        return Divergence(bad.batch_index, bad.block, bad.why, challenged=True)
