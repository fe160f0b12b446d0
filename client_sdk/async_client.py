"""``AsyncMPSClient``: the read side of the client flow, and signed transactions, under asyncio.

A separate module from :mod:`client_sdk.client` because it is a separate transport (aiohttp)
with a smaller surface: tasks, epochs, blobs, base models, join and submit. L1 calls and
proof-checked slashing states stay on the sync :class:`~client_sdk.client.MPSClient`; run it
in a thread from async code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from stf.fl.task import MODEL_DTYPE, TaskParams, quantize
from stf.tx import Transaction

from . import fl
from .answers import as_bytes, params_of
from .errors import NotFound, SDKError, from_receipt
from .keys import Keypair
from .proofs import ProofError
from .rpc import AsyncRPCClient

__all__ = ["AsyncMPSClient"]


class AsyncMPSClient:
    """The read side of :class:`MPSClient` over aiohttp, plus sending signed transactions.

    Use as ``async with AsyncMPSClient(url, key) as mps: ...``. L1 calls and proof-checked
    slashing states stay on the sync client (run it in a thread from async code).
    """

    def __init__(
        self, rpc_url: str, key: Keypair | None = None, *, media: str = "msgpack",
        timeout: float = 30.0, receipt_timeout: float = 120.0,
    ) -> None:  # fmt: skip
        self.rpc = AsyncRPCClient(rpc_url, media, timeout)
        self.key = key
        self.receipt_timeout = receipt_timeout
        self._chain_id: int | None = None
        self._params: dict[bytes, TaskParams] = {}

    async def __aenter__(self) -> AsyncMPSClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.rpc.close()

    async def close(self) -> None:
        await self.rpc.close()

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(await self.rpc.call("mps_chainId"))
        return self._chain_id

    async def task(self, task_id: bytes, block: int | str = "latest") -> dict[str, Any]:
        result: dict[str, Any] = await self.rpc.call("mps_getTask", task_id, block)
        return result

    async def task_params(self, task_id: bytes) -> TaskParams:
        p = self._params.get(task_id)
        if p is None:
            p = self._params[task_id] = params_of(await self.task(task_id))
        return p

    async def tasks(self, open_only: bool = True) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.rpc.call("mps_listTasks", open_only)
        return result

    async def epoch(self, task_id: bytes, epoch: int) -> dict[str, Any]:
        result: dict[str, Any] = await self.rpc.call("mps_getEpoch", task_id, epoch)
        return result

    async def blob(self, blob_hash: bytes) -> bytes:
        data = as_bytes(await self.rpc.call("mps_getBlob", blob_hash))
        if fl.blob_id(data) != blob_hash:
            raise ProofError(f"the node's blob {blob_hash.hex()} does not hash to its id")
        return data

    async def base_model(self, task_id: bytes, epoch: int | None = None) -> npt.NDArray[np.float64]:
        params = await self.task_params(task_id)
        task = await self.task(task_id)
        if epoch is None or epoch == int(task["epoch"]):
            model_id = as_bytes(task["baseModel"])
        else:
            model_id = as_bytes((await self.epoch(task_id, epoch))["baseModel"])
        raw = await self.blob(model_id)
        if len(raw) != params.d * MODEL_DTYPE.itemsize:  # chunks behind a manifest
            import asyncio

            from .client import MPSClient  # here: client.py re-exports this module's class

            sync = MPSClient(self.rpc.url, media=self.rpc.media)
            return await asyncio.to_thread(sync.base_model, task_id, epoch)
        return np.frombuffer(raw, MODEL_DTYPE).astype(np.float64) / float(2**params.shift)

    async def send(self, tx: Transaction) -> bytes:
        return as_bytes(await self.rpc.call("mps_sendTransaction", tx.encode()))

    async def wait_for_receipt(self, tx_hash: bytes) -> dict[str, Any]:
        """Wait for inclusion; raise the typed error of a failed receipt."""
        import asyncio

        deadline = time.monotonic() + self.receipt_timeout
        while True:
            rc = await self.rpc.call("mps_getTransactionReceipt", tx_hash)
            if rc is not None:
                if int(rc["status"]) != 1:
                    raise from_receipt(rc)
                return dict(rc)
            if time.monotonic() > deadline:
                raise TimeoutError(f"transaction {tx_hash.hex()} not sealed in time")
            await asyncio.sleep(0.05)

    async def _transact(self, build: Callable[[Keypair, int, int], Transaction]) -> bytes:
        if self.key is None:
            raise SDKError("this needs a client key: pass key=Keypair.load(...)")
        nonce = int(await self.rpc.call("mps_getNonce", self.key.public_key, True))
        h = await self.send(build(self.key, await self.chain_id(), nonce))
        await self.wait_for_receipt(h)
        return h

    async def join(self, task_id: bytes) -> bytes:
        return await self._transact(lambda k, c, n: fl.join_task(k, c, n, task_id))

    async def submit_update(self, task_id: bytes, epoch: int, delta: npt.ArrayLike) -> bytes:
        """An inline float delta (quantized with the task's shift and dtype)."""
        p = await self.task_params(task_id)
        q = quantize(np.asarray(delta, dtype=np.float64).reshape(-1), p.shift, p.dtype)
        if q.size != p.d:
            raise ValueError(f"the update has {q.size} values, the task {p.d}")
        return await self._transact(
            lambda k, c, n: fl.submit_update(k, c, n, task_id, epoch, q.tobytes())
        )

    async def wait_for_epoch(
        self,
        task_id: bytes,
        epoch: int,
        timeout: float = 120.0,  # noqa: ASYNC109 (the sync client's signature)
    ) -> dict[str, Any]:
        import asyncio

        deadline = time.monotonic() + timeout
        while True:
            try:
                return await self.epoch(task_id, epoch)
            except NotFound:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"epoch {epoch} did not close within {timeout}s")
            await asyncio.sleep(0.2)
