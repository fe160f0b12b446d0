"""``AsyncMPSClient``: the same client as :class:`~client_sdk.client.MPSClient`, under asyncio.

The same methods with the same behaviour (both are faces of :class:`~client_sdk.core.ClientCore`),
awaited: node calls go over aiohttp, pauses are ``asyncio.sleep``, and the L1's web3 calls (stake,
fund, claim, the L1's root for ``slashing_state``) run in a thread so the event loop keeps going.
``chain_id`` is a coroutine here, not a property. Use as ``async with AsyncMPSClient(url, key)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from mps_common.transport import AsyncRPCClient
from stf.fl.task import TaskParams
from stf.tx import Transaction

from .core import Build, ClientCore, Face
from .flow import (
    Blocking,
    Call,
    Exclusive,
    Flow,
    HeadMark,
    NextHead,
    Sleep,
    Step,
    Stream,
    drive_async,
)
from .heads import AsyncHeadWatcher
from .keys import Keypair
from .slashing import SlashingState

if TYPE_CHECKING:
    from .l1 import L1Config

T = TypeVar("T")

__all__ = ["AsyncMPSClient"]


class AsyncMPSClient(Face):
    """The node's RPC (``rpc_url``), a client key for transactions, and optionally the L1."""

    def __init__(
        self, rpc_url: str, key: Keypair | None = None, l1: L1Config | None = None, *,
        media: str = "msgpack", timeout: float = 30.0, receipt_timeout: float = 120.0,
    ) -> None:  # fmt: skip
        self.rpc = AsyncRPCClient(rpc_url, media, timeout)
        self.core = ClientCore(key, l1, receipt_timeout)
        self.heads = AsyncHeadWatcher.shared(rpc_url)  # waits wake on new heads (client_sdk.heads)
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> AsyncMPSClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.heads.close()
        await self.rpc.close()

    async def _run(self, flow: Flow[T]) -> T:
        return await drive_async(flow, self._take)

    async def _take(self, step: Step) -> Any:
        if isinstance(step, Call):
            return await self.rpc.call(step.method, *step.params)
        if isinstance(step, Stream):
            return await self.rpc.send_stream(step.raws)
        if isinstance(step, Sleep):
            return await asyncio.sleep(step.seconds)
        if isinstance(step, HeadMark):
            return self.heads.mark()
        if isinstance(step, NextHead):
            return await self.heads.wait(step.mark, step.poll)
        if isinstance(step, Blocking):
            return await asyncio.to_thread(step.fn)
        assert isinstance(step, Exclusive)
        async with self._lock:
            return await self._run(step.flow)

    # -- basics ---------------------------------------------------------------------------
    async def chain_id(self) -> int:
        return await self._run(self.core.chain_id())

    async def nonce(self, sender: bytes, pending: bool = True) -> int:
        return await self._run(self.core.nonce(sender, pending))

    async def send(self, tx: Transaction) -> bytes:
        return await self._run(self.core.send(tx))

    async def receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        return await self._run(self.core.receipt(tx_hash))

    async def wait_for_receipt(
        self,
        tx_hash: bytes,
        timeout: float | None = None,  # noqa: ASYNC109 (the sync client's signature)
    ) -> dict[str, Any]:
        """The receipt once sealed, failed (status 0) or not; ``WaitTimeout`` after ``timeout``
        seconds (None: ``receipt_timeout``)."""
        return await self._run(self.core.wait_for_receipt(tx_hash, timeout))

    async def get_state(
        self, key: bytes, block: int | str = "latest", root: bytes | None = None
    ) -> bytes | None:
        """A state value, proven against the block's root (or a ``root`` you trust)."""
        return await self._run(self.core.get_state(key, block, root))

    async def block(self, tag: int | str = "latest", full: bool = False) -> dict[str, Any]:
        return await self._run(self.core.block(tag, full))

    async def limits(self) -> dict[str, int]:
        """The chain's consensus limits (``maxTxSize``, ``maxBlobSize``...)."""
        return await self._run(self.core.limits())

    async def blob(self, blob_hash: bytes) -> bytes:
        """A blob by its sha256, checked against it."""
        return await self._run(self.core.blob(blob_hash))

    async def send_all(self, build: Callable[[int], Sequence[Transaction]]) -> list[bytes]:
        """Sign ``build(first_nonce)`` and send each in order (the kept nonce, retried once
        stale); does not wait for them."""
        return await self._run(self.core.send_all(build))

    async def transact(self, build: Build) -> bytes:
        """Send ``build(key, chain_id, nonce)``, wait for its inclusion; return its hash
        (its typed error if it failed)."""
        return await self._run(self.core.transact(build))

    # -- reading tasks ----------------------------------------------------------------------
    async def task(self, task_id: bytes, block: int | str = "latest") -> dict[str, Any]:
        """``mps_getTask``: parameters, status, epoch, base model id, clients."""
        return await self._run(self.core.task(task_id, block))

    async def task_params(self, task_id: bytes) -> TaskParams:
        """The task's parameters (cached: they never change)."""
        return await self._run(self.core.task_params(task_id))

    async def tasks(self, open_only: bool = True) -> list[dict[str, Any]]:
        """The node's tasks (``mps_listTasks``): the open ones in creation order, or all."""
        return await self._run(self.core.tasks(open_only))

    async def epoch(self, task_id: bytes, epoch: int) -> dict[str, Any]:
        """``mps_getEpoch`` of a closed epoch (NotFound while open)."""
        return await self._run(self.core.epoch(task_id, epoch))

    async def stake_info(self, client_key: bytes | None = None) -> dict[str, Any] | None:
        """The stake as the rollup knows it (``mps_getStake``), or None."""
        return await self._run(self.core.stake_info(client_key))

    async def base_model(self, task_id: bytes, epoch: int | None = None) -> npt.NDArray[np.float64]:
        """The float64 weights an epoch trains from (None: the current epoch), chunked or not."""
        return await self._run(self.core.base_model(task_id, epoch))

    async def load_base_model(self, task_id: bytes, module: Any, epoch: int | None = None) -> None:
        """Copy an epoch's base model into a torch module (tensors named as in the layout)."""
        return await self._run(self.core.load_base_model(task_id, module, epoch))

    # -- a client's flow ----------------------------------------------------------------------
    async def stake(self) -> None:
        """Stake this client's key on the L1 (from the L1 account, which gets the rewards)."""
        await self._run(self.core.stake())

    async def wait_for_stake(
        self,
        timeout: float = 60.0,  # noqa: ASYNC109 (the sync client's signature)
    ) -> dict[str, Any]:
        """Wait until the rollup sees the stake as staked (the node follows the L1 a few blocks
        behind its head) and return it."""
        return await self._run(self.core.wait_for_stake(timeout))

    async def unregister(self) -> None:
        """Start unbonding on the L1: no new commitments; slashable until the rollup releases
        the stake (once every epoch the client committed to has closed)."""
        await self._run(self.core.unregister())

    async def withdraw(self) -> dict[str, Any]:
        """Withdraw the stake on the L1, on the proof of the rollup's release in the newest
        finalized batch; return that proof (``NotOnL1Yet``, with the reason, before)."""
        return await self._run(self.core.withdraw())

    async def join(self, task_id: bytes) -> bytes:
        """Join a task; waits for inclusion (``NotStaked``, ``TaskFull``... if it failed)."""
        return await self._run(self.core.join(task_id))

    async def commit_update(
        self, task_id: bytes, epoch: int, update: Any, force: bool = False
    ) -> bytes:
        """Phase one alone: commit to ``update`` (as :meth:`submit_update` takes it) for
        ``epoch``, during its commit phase; waits for inclusion. Reveal the same update with
        :meth:`reveal_update` once the reveal phase opens (or call :meth:`submit_update`, which
        finds the commitment and only reveals)."""
        return await self._run(self.core.commit_update(task_id, epoch, update, force))

    async def reveal_update(self, task_id: bytes, epoch: int, update: Any) -> bytes:
        """Phase two alone: reveal the update committed to, in the epoch's reveal phase
        (``WrongPhase`` before it, ``CommitmentMismatch`` for another update)."""
        return await self._run(self.core.reveal_update(task_id, epoch, update))

    async def submit_update(
        self,
        task_id: bytes,
        epoch: int,
        update: Any,
        timeout: float = 600.0,  # noqa: ASYNC109 (the sync client's signature)
        force: bool = False,
    ) -> bytes:
        """Send an update for ``epoch``: a float delta (layout order), or a trained torch module
        (delta = its weights minus the epoch's base model), quantized as the STF expects.

        Commit-reveal: commits, waits until the epoch's reveal phase opens (the other clients'
        commitments are in, or the commit window ran out; WaitTimeout after ``timeout`` s), then
        reveals, as chunks when over one transaction. Returns the reveal's hash once included.
        Calling it again with the same update after a crash only reveals. An update the STF
        will flag for sure (all zeros, your last update again, the last global step, which
        slashes) raises ``CertainOffence`` before anything is sent, unless ``force``."""
        return await self._run(self.core.submit_update(task_id, epoch, update, timeout, force))

    async def commit_reference(self, task_id: bytes, epoch: int, update: Any) -> bytes:
        """Phase one alone of :meth:`submit_reference`: see
        :meth:`client_sdk.client.MPSClient.commit_reference`."""
        return await self._run(self.core.commit_reference(task_id, epoch, update))

    async def submit_reference(
        self,
        task_id: bytes,
        epoch: int,
        update: Any,
        timeout: float = 600.0,  # noqa: ASYNC109 (the sync client's signature)
    ) -> bytes:
        """The requester's reference update for ``epoch``: see
        :meth:`client_sdk.client.MPSClient.submit_reference`."""
        return await self._run(self.core.submit_reference(task_id, epoch, update, timeout))

    async def wait_for_epoch(
        self, task_id: bytes, epoch: int,
        timeout: float = 120.0,  # noqa: ASYNC109 (the sync client's signature)
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Wait until ``epoch`` closes; return its summary (``mps_getEpoch``). ``progress``
        sees the task at every poll; SDKError if the task stops first, WaitTimeout after
        ``timeout`` s."""
        return await self._run(self.core.wait_for_epoch(task_id, epoch, timeout, progress))

    async def slashing_state(
        self, task_id: bytes, client_key: bytes | None = None, trust: str = "l1"
    ) -> SlashingState:
        """A client's verdict and records in a task, every proof checked here.

        ``trust="l1"``: the newest batch committed on the L1 (its root and last block) picks
        the state; a lying node raises :class:`ProofError`. The answer trails the node's head.
        ``trust="node"``: the node's latest state, checked against the root the node gives.
        """
        return await self._run(self.core.slashing_state(task_id, client_key, trust))

    async def reward_share(self, task_id: bytes, client_key: bytes | None = None) -> dict[str, Any]:
        """The client's ``reward/`` leaf under the root the task settled on (L1), proven:
        ``{accepted, flagged, siblings, batch, height}``. NotOnL1Yet before settlement."""
        return await self._run(self.core.reward_share(task_id, client_key))

    async def claim_rewards(self, task_id: bytes) -> int:
        """After the task settled on the L1: prove this client's reward leaf, claim, return
        the wei paid (to the key's L1 staker)."""
        return await self._run(self.core.claim_rewards(task_id))

    # -- a requester's flow ---------------------------------------------------------------------
    async def create_task(
        self, params: TaskParams, model: npt.ArrayLike, script: bytes,
        deposit_wei: int | None = None,
    ) -> bytes:  # fmt: skip
        """Upload the initial model (float weights, int32 at the task's shift; chunked when over
        one blob) and the script, and create the task, funded on the L1 from this client's
        account with ``deposit_wei`` (plus the BASE_FEE) first if given (a chain with an L1
        RewardManager requires it). Returns the task id (the create_task transaction's hash)."""
        return await self._run(self.core.create_task(params, model, script, deposit_wei))

    async def reclaim_funding(self, task_id: bytes) -> int:
        """Take back this account's L1 deposit for ``task_id`` once the rollup provably never
        bound it (its window passed, finalized); the BASE_FEE stays paid. Returns the wei."""
        return await self._run(self.core.reclaim_funding(task_id))

    async def report_evaluation(self, task_id: bytes, epoch: int, accuracy: float) -> bytes:
        """Report a closed epoch's accuracy (0..1) as the requester or evaluator; waits."""
        return await self._run(self.core.report_evaluation(task_id, epoch, accuracy))
