"""Where a verifier gets a batch's data: the sequencer's RPC, else the L1, by a data challenge.

A verifier with no sequencer RPC at all derives from the L1 alone: it demands every batch's data
there (or reads what an earlier challenge, anyone's, got published).

Missing data is a reason to challenge, never to give up (issue 12): a sequencer that commits a
root and serves no blocks for it (or blocks that do not hash to the batch's ``dataHash``) is
asked for the data on the L1 (``MPSRollup.challengeData``, with DA_BOND). Either every chunk is
then published there, and the verifier replays what the L1 holds, or the resolve window passes
and the verifier voids the batch (``expireData``): withheld data never finalizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from mps_common.transport import RPCClient

from ..storage import Storage
from .batch_data import (
    DATA_ACTIVE,
    DATA_NONE,
    DATA_RESOLVED,
    BatchDataError,
    batch_commitment,
    decode_batch,
    encode_batch,
)
from .chain import send_and_wait

log = structlog.get_logger("mps.l1.data")


class DataUnobtainable(RuntimeError):
    """A verifier deriving from the L1 alone met a batch whose data is not on the L1 and can no
    longer be demanded: it stops (exit 2) rather than call an honest batch fraud."""


@dataclass(frozen=True)
class Waiting:
    """A data challenge is under way: ask again later."""

    why: str


@dataclass(frozen=True)
class Unavailable:
    """No data, and no way left to demand it (no L1 account, or its window closed)."""

    why: str


@dataclass(frozen=True)
class BatchRef:
    """What the L1 says of one batch."""

    index: int
    first: int
    last: int
    data_hash: bytes
    committed_at: int


class BatchDataSource:
    def __init__(
        self,
        rollup: Contract,
        sequencer: RPCClient | None,
        storage: Storage,
        w3: Web3 | None,
        account: LocalAccount | None,
        max_fee_wei: int,
    ) -> None:
        self._contract = rollup
        self._rollup = rollup.functions
        self._rpc = sequencer
        self._storage = storage
        self._w3 = w3
        self._account = account
        self._max_fee = max_fee_wei

    def fetch(self, b: BatchRef) -> list[bytes] | Waiting | Unavailable:
        """The batch's raw blocks, in height order, as its ``dataHash`` commits to them."""
        served = self._from_sequencer(b)
        if served is not None:
            return served
        _, start, published, status = self._rollup.dataChallenge(b.index).call()
        if status == DATA_RESOLVED:
            return self._from_l1(b)
        if status == DATA_ACTIVE:
            return self._wait_or_expire(b, int(start), int(published))
        if status != DATA_NONE:  # expired or voided: the batch is gone, the index is reused
            return Waiting(f"batch {b.index}'s data challenge ended")
        return self._challenge(b)

    def _from_sequencer(self, b: BatchRef) -> list[bytes] | None:
        """The blocks this node replayed already, then the sequencer's (if it has one); None
        unless they hash to the batch's commitment."""
        raws: list[bytes] = []
        try:
            for height in range(b.first, b.last + 1):
                stored = self._storage.block_by_height(height)
                if stored is not None:
                    raws.append(stored.encode())
                elif self._rpc is None:
                    return None
                else:
                    raws.append(bytes(self._rpc.call("mps_getRawBlock", height)))
        except Exception as exc:  # down, lying, or withholding: the L1 decides
            log.warning("the sequencer does not serve the batch", batch=b.index, error=str(exc))
            return None
        if batch_commitment(encode_batch(raws))[0] != b.data_hash:
            log.warning("the sequencer's blocks do not hash to the batch's dataHash", batch=b.index)
            return None
        return raws

    def _from_l1(self, b: BatchRef) -> list[bytes] | Unavailable:
        # chunks go out within the data windows after the commit: a bounded log query
        windows = int(self._rollup.DA_CHALLENGE_BLOCKS().call()) + int(
            self._rollup.DA_RESOLVE_BLOCKS().call()
        )
        logs = self._contract.events.ChunkPublished().get_logs(
            from_block=b.committed_at,
            to_block=b.committed_at + windows,
            argument_filters={"batchIndex": b.index},
        )
        chunks: dict[int, bytes] = {}
        for entry in logs:
            chunks[int(entry["args"]["index"])] = bytes(entry["args"]["chunk"])
        if sorted(chunks) != list(range(len(chunks))):
            return Unavailable(f"batch {b.index}: the L1 logs miss a published chunk")
        data = b"".join(chunks[i] for i in range(len(chunks)))
        try:
            if batch_commitment(data)[0] != b.data_hash:
                return Unavailable(f"batch {b.index}: the published chunks do not hash to dataHash")
            raws = decode_batch(data)
        except BatchDataError as exc:
            return Unavailable(f"batch {b.index}: {exc}")
        log.info("batch data read from the L1", batch=b.index, chunks=len(chunks), bytes=len(data))
        return raws

    def _unavailable(self, why: str) -> Unavailable:
        """Data this verifier cannot get. Asked of a sequencer that did not serve it, that is
        the sequencer's fault (a divergence); with no sequencer to ask (from the L1 alone) it is
        only this verifier's lateness, never a reason to challenge an honest batch (review)."""
        if self._rpc is None:
            raise DataUnobtainable(
                f"{why}: nobody put it on the L1, and this verifier has no sequencer RPC to ask "
                "(run it within each batch's data window, or against a sequencer with "
                "batch_data_on_l1, or give --sequencer-rpc)"
            )
        return Unavailable(why)

    def _can_send(self) -> bool:
        return self._w3 is not None and self._account is not None

    def _challenge(self, b: BatchRef) -> Waiting | Unavailable:
        if not self._can_send():
            why = f"batch {b.index}'s data is not available (no L1 key to challenge)"
            return self._unavailable(why)
        assert self._w3 is not None and self._account is not None
        window_end = b.committed_at + int(self._rollup.DA_CHALLENGE_BLOCKS().call())
        if int(self._w3.eth.block_number) + 1 >= window_end:
            return self._unavailable(
                f"batch {b.index}'s data is not available; its data window closed"
            )
        bond = int(self._rollup.DA_BOND().call())
        call = self._rollup.challengeData(b.index)
        send_and_wait(self._w3, self._account, call, self._max_fee, bond)
        log.warning("batch data challenged on L1", batch=b.index, bond=bond)
        return Waiting(f"batch {b.index}'s data challenged: waiting for it on the L1")

    def _wait_or_expire(self, b: BatchRef, start: int, published: int) -> Waiting:
        deadline = start + int(self._rollup.DA_RESOLVE_BLOCKS().call())
        if not self._can_send() or self._w3 is None or int(self._w3.eth.block_number) < deadline:
            return Waiting(f"batch {b.index}: {published} chunks of its data published so far")
        assert self._account is not None
        send_and_wait(self._w3, self._account, self._rollup.expireData(b.index), self._max_fee)
        log.warning("batch voided on L1: its data was never published", batch=b.index)
        return Waiting(f"batch {b.index} voided: its data was never published")
