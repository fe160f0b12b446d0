"""``MPSClient``: a client's and a requester's whole flow over the node's RPC and the L1, blocking.

>>> mps = MPSClient("http://127.0.0.1:8645/", Keypair.load("devnet/dev-clients/client3.key"),
...                 L1Config.from_devnet(Path("devnet"), "client3"))  # doctest: +SKIP
>>> mps.join(task_id); base = mps.base_model(task_id)  # doctest: +SKIP
>>> mps.submit_update(task_id, 0, delta); mps.wait_for_epoch(task_id, 0)  # doctest: +SKIP
>>> mps.slashing_state(task_id)  # proofs checked against the root the L1 holds  # doctest: +SKIP

A thin face over :class:`~client_sdk.core.ClientCore`, which holds the logic (and says which
behaviour was chosen for receipts, nonces, chunks and waits); :class:`AsyncMPSClient` is the
same core under asyncio. Every transaction is signed with ``key``, takes the next nonce, and is
waited for: a failed receipt raises its typed error from :mod:`client_sdk.errors`. L1 calls
need an :class:`~client_sdk.l1.L1Config` and raise ``ContractRevert`` with the contract's error.

The client talks msgpack by default, so bytes in the dicts it returns (``mps_getTask``...) are
``bytes``; with ``media="json"`` they are ``0x`` hex strings (:func:`~client_sdk.answers.as_bytes`
takes both). Safe to share between threads: sends take nonces one at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from mps_common.transport import RPCClient
from stf.fl.task import TaskParams
from stf.tx import Transaction

from .core import Build, ClientCore, Face
from .flow import Blocking, Call, Exclusive, Flow, HeadMark, NextHead, Sleep, Step, Stream, drive
from .heads import HeadWatcher
from .keys import Keypair
from .slashing import SlashingState

if TYPE_CHECKING:
    from .l1 import L1Config

T = TypeVar("T")

__all__ = ["MPSClient"]


class MPSClient(Face):
    """The node's RPC (``rpc_url``), a client key for transactions, and optionally the L1."""

    def __init__(
        self, rpc_url: str, key: Keypair | None = None, l1: L1Config | None = None, *,
        media: str = "msgpack", timeout: float = 30.0, receipt_timeout: float = 120.0,
    ) -> None:  # fmt: skip
        self.rpc = RPCClient(rpc_url, media, timeout)
        self.core = ClientCore(key, l1, receipt_timeout)
        self.heads = HeadWatcher.shared(rpc_url)  # waits wake on new heads (client_sdk.heads)
        self._lock = threading.Lock()

    def _run(self, flow: Flow[T]) -> T:
        return drive(flow, self._take)

    def _take(self, step: Step) -> Any:
        if isinstance(step, Call):
            return self.rpc.call(step.method, *step.params)
        if isinstance(step, Stream):
            return self.rpc.send_stream(step.raws)
        if isinstance(step, Sleep):
            return time.sleep(step.seconds)
        if isinstance(step, HeadMark):
            return self.heads.mark()
        if isinstance(step, NextHead):
            return self.heads.wait(step.mark, step.poll)
        if isinstance(step, Blocking):
            return step.fn()
        assert isinstance(step, Exclusive)
        with self._lock:
            return self._run(step.flow)

    # -- basics ---------------------------------------------------------------------------
    @property
    def chain_id(self) -> int:
        return self._run(self.core.chain_id())

    def nonce(self, sender: bytes, pending: bool = True) -> int:
        return self._run(self.core.nonce(sender, pending))

    def send(self, tx: Transaction) -> bytes:
        return self._run(self.core.send(tx))

    def receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        return self._run(self.core.receipt(tx_hash))

    def wait_for_receipt(self, tx_hash: bytes, timeout: float | None = None) -> dict[str, Any]:
        """The receipt once sealed, failed (status 0) or not; ``WaitTimeout`` after ``timeout``
        seconds (None: ``receipt_timeout``)."""
        return self._run(self.core.wait_for_receipt(tx_hash, timeout))

    def get_state(
        self, key: bytes, block: int | str = "latest", root: bytes | None = None
    ) -> bytes | None:
        """A state value, proven against the block's root (or a ``root`` you trust)."""
        return self._run(self.core.get_state(key, block, root))

    def block(self, tag: int | str = "latest", full: bool = False) -> dict[str, Any]:
        return self._run(self.core.block(tag, full))

    def limits(self) -> dict[str, int]:
        """The chain's consensus limits (``maxTxSize``, ``maxBlobSize``...)."""
        return self._run(self.core.limits())

    def blob(self, blob_hash: bytes) -> bytes:
        """A blob by its sha256, checked against it."""
        return self._run(self.core.blob(blob_hash))

    def send_all(self, build: Callable[[int], Sequence[Transaction]]) -> list[bytes]:
        """Sign ``build(first_nonce)`` and send each in order (the kept nonce, retried once
        stale); does not wait for them."""
        return self._run(self.core.send_all(build))

    def transact(self, build: Build) -> bytes:
        """Send ``build(key, chain_id, nonce)``, wait for its inclusion; return its hash
        (its typed error if it failed)."""
        return self._run(self.core.transact(build))

    # -- reading tasks ----------------------------------------------------------------------
    def task(self, task_id: bytes, block: int | str = "latest") -> dict[str, Any]:
        """``mps_getTask``: parameters, status, epoch, base model id, clients."""
        return self._run(self.core.task(task_id, block))

    def task_params(self, task_id: bytes) -> TaskParams:
        """The task's parameters (cached: they never change)."""
        return self._run(self.core.task_params(task_id))

    def tasks(self, open_only: bool = True) -> list[dict[str, Any]]:
        """The node's tasks (``mps_listTasks``): the open ones in creation order, or all."""
        return self._run(self.core.tasks(open_only))

    def epoch(self, task_id: bytes, epoch: int) -> dict[str, Any]:
        """``mps_getEpoch`` of a closed epoch (NotFound while open)."""
        return self._run(self.core.epoch(task_id, epoch))

    def stake_info(self, client_key: bytes | None = None) -> dict[str, Any] | None:
        """The stake as the rollup knows it (``mps_getStake``), or None."""
        return self._run(self.core.stake_info(client_key))

    def base_model(self, task_id: bytes, epoch: int | None = None) -> npt.NDArray[np.float64]:
        """The float64 weights an epoch trains from (None: the current epoch), chunked or not."""
        return self._run(self.core.base_model(task_id, epoch))

    def load_base_model(self, task_id: bytes, module: Any, epoch: int | None = None) -> None:
        """Copy an epoch's base model into a torch module (tensors named as in the layout)."""
        return self._run(self.core.load_base_model(task_id, module, epoch))

    # -- a client's flow ----------------------------------------------------------------------
    def stake(self) -> None:
        """Stake this client's key on the L1 (from the L1 account, which gets the rewards)."""
        self._run(self.core.stake())

    def wait_for_stake(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the rollup sees the stake as staked (the node follows the L1 a few blocks
        behind its head) and return it."""
        return self._run(self.core.wait_for_stake(timeout))

    def unregister(self) -> None:
        """Start unbonding on the L1: no new commitments; slashable until the rollup releases
        the stake (once every epoch the client committed to has closed)."""
        self._run(self.core.unregister())

    def withdraw(self) -> dict[str, Any]:
        """Withdraw the stake on the L1, on the proof of the rollup's release in the newest
        finalized batch; return that proof (``NotOnL1Yet``, with the reason, before)."""
        return self._run(self.core.withdraw())

    def join(self, task_id: bytes) -> bytes:
        """Join a task; waits for inclusion (``NotStaked``, ``TaskFull``... if it failed)."""
        return self._run(self.core.join(task_id))

    def commit_update(self, task_id: bytes, epoch: int, update: Any, force: bool = False) -> bytes:
        """Phase one alone: commit to ``update`` (as :meth:`submit_update` takes it) for
        ``epoch``, during its commit phase; waits for inclusion. Reveal the same update with
        :meth:`reveal_update` once the reveal phase opens (or call :meth:`submit_update`, which
        finds the commitment and only reveals)."""
        return self._run(self.core.commit_update(task_id, epoch, update, force))

    def reveal_update(self, task_id: bytes, epoch: int, update: Any) -> bytes:
        """Phase two alone: reveal the update committed to, in the epoch's reveal phase
        (``WrongPhase`` before it, ``CommitmentMismatch`` for another update)."""
        return self._run(self.core.reveal_update(task_id, epoch, update))

    def submit_update(
        self, task_id: bytes, epoch: int, update: Any, timeout: float = 600.0, force: bool = False
    ) -> bytes:
        """Send an update for ``epoch``: a float delta (layout order), or a trained torch module
        (delta = its weights minus the epoch's base model), quantized as the STF expects.

        Commit-reveal: commits, waits until the epoch's reveal phase opens (the other clients'
        commitments are in, or the commit window ran out; WaitTimeout after ``timeout`` s), then
        reveals, as chunks when over one transaction. Returns the reveal's hash once included.
        Calling it again with the same update after a crash only reveals. An update the STF
        will flag for sure (all zeros, your last update again, the last global step, which
        slashes) raises ``CertainOffence`` before anything is sent, unless ``force``."""
        return self._run(self.core.submit_update(task_id, epoch, update, timeout, force))

    def commit_reference(self, task_id: bytes, epoch: int, update: Any) -> bytes:
        """Phase one alone of :meth:`submit_reference`: the commitment, included once this
        returns (so that the clients' commitments cannot close the phase before it); then
        :meth:`submit_reference` with the same update finds it on chain and only reveals."""
        return self._run(self.core.commit_reference(task_id, epoch, update))

    def submit_reference(
        self, task_id: bytes, epoch: int, update: Any, timeout: float = 600.0
    ) -> bytes:
        """The requester's reference update for ``epoch`` (docs/protocol.md "The requester's
        reference"): its own training of the epoch's base model on held-out data, taken as
        :meth:`submit_update` takes an update. The epoch's aggregate then weighs every update
        by its cosine to it; no flag, verdict or reward reads it. Commit it while the commit
        phase runs (the clients cannot see it), then it waits for the reveal phase and
        reveals; the reveal's hash. ``NotAuthorized`` unless the key is the task's requester."""
        return self._run(self.core.submit_reference(task_id, epoch, update, timeout))

    def wait_for_epoch(
        self, task_id: bytes, epoch: int, timeout: float = 120.0,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Wait until ``epoch`` closes; return its summary (``mps_getEpoch``). ``progress``
        sees the task at every poll; SDKError if the task stops first, WaitTimeout after
        ``timeout`` s."""
        return self._run(self.core.wait_for_epoch(task_id, epoch, timeout, progress))

    def slashing_state(
        self, task_id: bytes, client_key: bytes | None = None, trust: str = "l1"
    ) -> SlashingState:
        """A client's verdict and records in a task, every proof checked here.

        ``trust="l1"``: the newest batch committed on the L1 (its root and last block) picks
        the state; a lying node raises :class:`ProofError`. The answer trails the node's head.
        ``trust="node"``: the node's latest state, checked against the root the node gives.
        """
        return self._run(self.core.slashing_state(task_id, client_key, trust))

    def reward_share(self, task_id: bytes, client_key: bytes | None = None) -> dict[str, Any]:
        """The client's ``reward/`` leaf under the root the task settled on (L1), proven:
        ``{accepted, flagged, siblings, batch, height}``. NotOnL1Yet before settlement."""
        return self._run(self.core.reward_share(task_id, client_key))

    def claim_rewards(self, task_id: bytes) -> int:
        """After the task settled on the L1: prove this client's reward leaf, claim, return
        the wei paid (to the key's L1 staker)."""
        return self._run(self.core.claim_rewards(task_id))

    # -- a requester's flow ---------------------------------------------------------------------
    def create_task(
        self, params: TaskParams, model: npt.ArrayLike, script: bytes,
        deposit_wei: int | None = None,
    ) -> bytes:  # fmt: skip
        """Upload the initial model (float weights, int32 at the task's shift; chunked when over
        one blob) and the script, and create the task, funded on the L1 from this client's
        account with ``deposit_wei`` (plus the BASE_FEE) first if given (a chain with an L1
        RewardManager requires it). Returns the task id (the create_task transaction's hash)."""
        return self._run(self.core.create_task(params, model, script, deposit_wei))

    def reclaim_funding(self, task_id: bytes) -> int:
        """Take back this account's L1 deposit for ``task_id`` once the rollup provably never
        bound it (its window passed, finalized); the BASE_FEE stays paid. Returns the wei."""
        return self._run(self.core.reclaim_funding(task_id))

    def report_evaluation(self, task_id: bytes, epoch: int, accuracy: float) -> bytes:
        """Report a closed epoch's accuracy (0..1) as the requester or evaluator; waits."""
        return self._run(self.core.report_evaluation(task_id, epoch, accuracy))
