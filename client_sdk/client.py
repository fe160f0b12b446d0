"""``MPSClient``: a client's and a requester's whole flow over the node's RPC and the L1.

>>> mps = MPSClient("http://127.0.0.1:8645/", Keypair.load("devnet/dev-clients/client3.key"),
...                 L1Config.from_devnet(Path("devnet"), "client3"))  # doctest: +SKIP
>>> mps.join(task_id); base = mps.base_model(task_id)  # doctest: +SKIP
>>> mps.submit_update(task_id, 0, delta); mps.wait_for_epoch(task_id, 0)  # doctest: +SKIP
>>> mps.slashing_state(task_id)  # proofs checked against the root the L1 holds  # doctest: +SKIP

Every transaction is signed with ``key``, takes the next nonce (kept here, re-read from the
node when it drifts), and is waited for: a failed receipt raises its typed error from
:mod:`client_sdk.errors` (``NotStaked``, ``DuplicateUpdate``, ``WrongEpoch``...). L1 calls need
an :class:`~client_sdk.l1.L1Config` and raise ``ContractRevert`` with the contract's error name.

The client talks msgpack by default, so bytes in the dicts it returns (``mps_getTask``...) are
``bytes``; with ``media="json"`` they are ``0x`` hex strings (:func:`as_bytes` takes both).

Its parts live beside it and are re-exported here: :mod:`client_sdk.answers` (:func:`as_bytes`,
:func:`params_of`), :mod:`client_sdk.slashing` (:class:`SlashingState` and the proof checks
behind :meth:`MPSClient.slashing_state`), :mod:`client_sdk.async_client` (:class:`AsyncMPSClient`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from stf import state_keys
from stf.fl.settlement import decode_reward_share
from stf.fl.task import TaskParams, quantize
from stf.ids import ClientKey, TaskId
from stf.tx import Transaction

from . import fl
from .answers import as_bytes, check_key
from .answers import params_of as params_of
from .async_client import AsyncMPSClient
from .errors import (
    AlreadyKnown,
    L1NotConfigured,
    NonceAlreadyPending,
    NonceTooHigh,
    NonceTooLow,
    NotFound,
    NotOnL1Yet,
    RPCError,
    SDKError,
    from_receipt,
)
from .keys import Keypair
from .proofs import ProofError, checked_value
from .rpc import RPCClient
from .slashing import SlashingState, fetch_slashing_state
from .slashing import verify_slashing_state as verify_slashing_state
from .tx import put_blob

if TYPE_CHECKING:
    from .l1 import L1, L1Config

#: Bytes a transaction adds around a blob it carries (envelope, key, signature); generous.
TX_OVERHEAD = 256

__all__ = ["AsyncMPSClient", "MPSClient", "RPCError", "SlashingState", "as_bytes"]


class MPSClient:
    """The node's RPC (``rpc_url``), a client key for transactions, and optionally the L1."""

    def __init__(
        self,
        rpc_url: str,
        key: Keypair | None = None,
        l1: L1Config | None = None,
        *,
        media: str = "msgpack",
        timeout: float = 30.0,
        receipt_timeout: float = 120.0,
    ) -> None:
        self.rpc = RPCClient(rpc_url, media, timeout)
        self.key = key
        self.l1_config = l1
        self.receipt_timeout = receipt_timeout
        self._l1: L1 | None = None
        self._chain_id: int | None = None
        self._limits: dict[str, int] | None = None
        self._params: dict[bytes, TaskParams] = {}
        self._nonce: int | None = None
        self._lock = threading.Lock()

    # -- basics ---------------------------------------------------------------------------
    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self.rpc.call("mps_chainId"))
        return self._chain_id

    @property
    def l1(self) -> L1:
        """The L1 contracts, seen from the configured L1 account."""
        if self._l1 is None:
            if self.l1_config is None:
                raise L1NotConfigured("this needs the L1: pass an L1Config (l1=...)")
            from .l1 import L1

            self._l1 = L1(self.l1_config)
        return self._l1

    def require_key(self) -> Keypair:
        if self.key is None:
            raise SDKError("this needs a client key: pass key=Keypair.load(...)")
        return self.key

    def nonce(self, sender: bytes, pending: bool = True) -> int:
        return int(self.rpc.call("mps_getNonce", sender, pending))

    def send(self, tx: Transaction) -> bytes:
        return as_bytes(self.rpc.call("mps_sendTransaction", tx.encode()))

    def receipt(self, tx_hash: bytes) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self.rpc.call("mps_getTransactionReceipt", tx_hash)
        return result

    def wait_for_receipt(self, tx_hash: bytes, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            rc = self.receipt(tx_hash)
            if rc is not None:
                return rc
            if time.monotonic() > deadline:
                raise TimeoutError(f"transaction {tx_hash.hex()} not sealed within {timeout}s")
            time.sleep(0.05)

    def get_state(
        self, key: bytes, block: int | str = "latest", root: bytes | None = None
    ) -> bytes | None:
        """A state value, proven against the block's root (or a ``root`` you trust)."""
        return checked_value(self.rpc.call("mps_getProof", key, block), root)

    def block(self, tag: int | str = "latest", full: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self.rpc.call("mps_getBlockByNumber", tag, full)
        return result

    def limits(self) -> dict[str, int]:
        """The chain's consensus limits (``maxTxSize``, ``maxBlobSize``...)."""
        if self._limits is None:
            self._limits = dict(self.rpc.call("mps_getGenesis")["limits"])
        return self._limits

    def blob(self, blob_hash: bytes) -> bytes:
        """A blob by its sha256, checked against it."""
        data = as_bytes(self.rpc.call("mps_getBlob", blob_hash))
        if fl.blob_id(data) != blob_hash:
            raise ProofError(f"the node's blob {blob_hash.hex()} does not hash to its id")
        return data

    # -- sending ----------------------------------------------------------------------------
    def _send_all(self, build: Callable[[int], Sequence[Transaction]]) -> list[bytes]:
        """Sign ``build(first_nonce)`` and send each in order; retry once on a stale nonce."""
        with self._lock:
            for attempt in range(3):
                if self._nonce is None:
                    self._nonce = self.nonce(self.require_key().public_key, pending=True)
                txs = build(self._nonce)
                hashes: list[bytes] = []
                try:
                    for tx in txs:
                        hashes.append(self.send(tx))
                except (NonceTooLow, NonceTooHigh, NonceAlreadyPending, AlreadyKnown):
                    self._nonce = None
                    if hashes or attempt == 2:
                        raise
                    continue
                except BaseException:
                    self._nonce = None
                    raise
                self._nonce += len(txs)
                return hashes
        raise AssertionError("unreachable")

    def _included(self, tx_hash: bytes) -> dict[str, Any]:
        """Wait for the receipt; raise its typed error if the transaction failed."""
        rc = self.wait_for_receipt(tx_hash, self.receipt_timeout)
        if int(rc["status"]) != 1:
            raise from_receipt(rc)
        return rc

    def transact(self, build: Callable[[Keypair, int, int], Transaction]) -> bytes:
        """Send ``build(key, chain_id, nonce)`` with the next nonce, wait for its inclusion;
        return its hash (typed error if it failed)."""
        key, chain = self.require_key(), self.chain_id
        (h,) = self._send_all(lambda n: [build(key, chain, n)])
        self._included(h)
        return h

    # -- reading tasks ----------------------------------------------------------------------
    def task(self, task_id: bytes, block: int | str = "latest") -> dict[str, Any]:
        """``mps_getTask``: parameters, status, epoch, base model id, clients."""
        result: dict[str, Any] = self.rpc.call("mps_getTask", task_id, block)
        return result

    def task_params(self, task_id: bytes) -> TaskParams:
        """The task's parameters (cached: they never change)."""
        p = self._params.get(task_id)
        if p is None:
            p = self._params[task_id] = params_of(self.task(task_id))
        return p

    def tasks(self, open_only: bool = True) -> list[dict[str, Any]]:
        """The node's tasks (``mps_listTasks``): the open ones in creation order, or all."""
        result: list[dict[str, Any]] = self.rpc.call("mps_listTasks", open_only)
        return result

    def epoch(self, task_id: bytes, epoch: int) -> dict[str, Any]:
        """``mps_getEpoch`` of a closed epoch (NotFound while open)."""
        result: dict[str, Any] = self.rpc.call("mps_getEpoch", task_id, epoch)
        return result

    def stake_info(self, client_key: bytes | None = None) -> dict[str, Any] | None:
        """The stake as the rollup knows it (``mps_getStake``), or None."""
        ck = client_key or self.require_key().public_key
        result: dict[str, Any] | None = self.rpc.call("mps_getStake", ck)
        return result

    def base_model(self, task_id: bytes, epoch: int | None = None) -> npt.NDArray[np.float64]:
        """The float64 weights an epoch trains from (None: the current epoch)."""
        params = self.task_params(task_id)
        task = self.task(task_id)
        if epoch is None or epoch == int(task["epoch"]):
            model_id = as_bytes(task["baseModel"])
        elif epoch < int(task["epoch"]):
            model_id = as_bytes(self.epoch(task_id, epoch)["baseModel"])
        else:
            raise ValueError(f"epoch {epoch} has not started (the task is at {task['epoch']})")
        return self._read_model(model_id, params)

    def _read_model(self, model_id: bytes, params: TaskParams) -> npt.NDArray[np.float64]:
        return fl.read_model(self.blob, model_id, params)  # one blob, or chunks and a manifest

    def load_base_model(self, task_id: bytes, module: Any, epoch: int | None = None) -> None:
        """Copy an epoch's base model into a torch module (tensors named as in the layout)."""
        from .train import unflatten_into

        unflatten_into(module, self.base_model(task_id, epoch), self.task_params(task_id))

    # -- a client's flow ----------------------------------------------------------------------
    def stake(self) -> None:
        """Stake this client's key on the L1 (from the L1 account, which gets the rewards)."""
        self.l1.stake(self.require_key().public_key)

    def wait_for_stake(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the rollup sees the stake as staked (the node follows the L1 a few blocks
        behind its head) and return it."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.stake_info()
            if s is not None and int(s["status"]) == 0:
                return s
            if time.monotonic() > deadline:
                raise TimeoutError(f"the rollup does not see the stake within {timeout}s")
            time.sleep(0.2)

    def unregister(self) -> None:
        """Start unbonding on the L1 (still slashable until withdrawn)."""
        self.l1.unregister()

    def withdraw(self) -> None:
        """Withdraw the stake on the L1 once unbonding is over."""
        self.l1.withdraw()

    def join(self, task_id: bytes) -> bytes:
        """Join a task; waits for inclusion (``NotStaked``, ``TaskFull``... if it failed)."""
        return self.transact(lambda k, c, n: fl.join_task(k, c, n, task_id))

    def submit_update(self, task_id: bytes, epoch: int, update: Any) -> bytes:
        """Send an update for ``epoch``: a float delta (layout order), or a trained torch module
        (delta = its weights minus the epoch's base model). Quantized as the STF expects
        (the task's shift and dtype); updates over one transaction go as chunks when the SDK
        has them. Waits for inclusion; returns the submit transaction's hash."""
        params = self.task_params(task_id)
        if hasattr(update, "state_dict"):
            from .train import flatten

            delta = flatten(update, params) - self.base_model(task_id, epoch)
        else:
            delta = np.asarray(update, dtype=np.float64).reshape(-1)
        if delta.size != params.d:
            raise ValueError(f"the update has {delta.size} values, the task {params.d}")
        q = quantize(delta, params.shift, params.dtype)
        data = q.tobytes()
        lim = self.limits()
        key, chain = self.require_key(), self.chain_id
        if len(data) + TX_OVERHEAD <= lim["maxTxSize"] and len(data) <= lim["maxBlobSize"]:
            (h,) = self._send_all(lambda n: [fl.submit_update(key, chain, n, task_id, epoch, data)])
        else:  # chunk blobs, then the submit naming them (a chunk already stored fails harmlessly)
            chunk = self._blob_limit()
            h = self._send_all(
                lambda n: fl.submit_update_chunked(key, chain, n, task_id, epoch, data, chunk)
            )[-1]
        self._included(h)
        return h

    def _blob_limit(self) -> int:
        """The largest blob one transaction can carry on this chain."""
        lim = self.limits()
        return min(lim["maxBlobSize"], lim["maxTxSize"] - TX_OVERHEAD)

    def wait_for_epoch(
        self,
        task_id: bytes,
        epoch: int,
        timeout: float = 120.0,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Wait until ``epoch`` closes; return its summary (``mps_getEpoch``). ``progress``
        sees the task (``mps_getTask``) at every poll. TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.epoch(task_id, epoch)
            except NotFound:
                pass
            task = self.task(task_id)
            if progress is not None:
                progress(task)
            if task["status"] != "open" and int(task["epoch"]) <= epoch:
                raise SDKError(f"the task stopped ({task['status']}) before epoch {epoch} closed")
            if time.monotonic() > deadline:
                raise TimeoutError(f"epoch {epoch} did not close within {timeout}s")
            time.sleep(0.2)

    def slashing_state(
        self, task_id: bytes, client_key: bytes | None = None, trust: str = "l1"
    ) -> SlashingState:
        """A client's verdict and records in a task, every proof checked here.

        ``trust="l1"``: read the newest committed batch (root, last block) from the L1, ask
        the node for the state at that block, and check every proof against the L1's root;
        a lying node raises :class:`ProofError`. The answer is as of that batch (the safe
        head), so it trails the node's head. ``trust="node"``: the node's latest state,
        checked against the root the node gives.
        """
        client = client_key or self.require_key().public_key
        return fetch_slashing_state(
            self.rpc, lambda: self.l1.committed_batch(), task_id, client, trust
        )

    def reward_share(self, task_id: bytes, client_key: bytes | None = None) -> dict[str, Any]:
        """The client's ``reward/`` leaf under the root the task settled on (L1), proven:
        ``{accepted, flagged, siblings, batch, height}``. NotOnL1Yet before settlement."""
        client = client_key or self.require_key().public_key
        info = self.l1.task(task_id)
        if not info["settled"]:
            raise NotOnL1Yet(f"task {task_id.hex()} is not settled on the L1 yet")
        batch = self.l1.find_batch(info["root"])
        if batch is None:
            raise NotOnL1Yet("the task's settlement root is in no live batch")
        key = state_keys.reward_share(TaskId(task_id), ClientKey(client))
        resp = self.rpc.call("mps_getProof", key, batch[2])
        check_key(resp, key)
        value = checked_value(resp, info["root"])
        if value is None:
            raise SDKError("no reward: the client sent no update in this task")
        accepted, flagged = decode_reward_share(value)
        siblings = [as_bytes(s) for s in resp["proof"]["siblings"]]
        return {
            "accepted": accepted,
            "flagged": flagged,
            "siblings": siblings,
            "batch": batch[0],
            "height": batch[2],
        }

    def claim_rewards(self, task_id: bytes) -> int:
        """After the task settled on the L1: prove this client's reward leaf against the
        settlement root, claim, return the wei paid (to the key's L1 staker)."""
        share = self.reward_share(task_id)
        if share["flagged"]:
            raise SDKError("no reward: the client's updates were flagged in this task")
        client = self.require_key().public_key
        return self.l1.claim(task_id, client, share["accepted"], share["siblings"])

    # -- a requester's flow ---------------------------------------------------------------------
    def create_task(
        self,
        params: TaskParams,
        model: npt.ArrayLike,
        script: bytes,
        deposit_wei: int | None = None,
    ) -> bytes:
        """Upload the initial model (float weights, stored as int32 at the task's shift) and the
        script, create the task, and fund it on the L1 with ``deposit_wei`` (plus the base fee)
        if given. ``params.init_model`` and ``params.script`` are replaced by the ids of the
        uploaded blobs. Returns the task id (the create_task transaction's hash)."""
        if deposit_wei is not None and self.l1_config is None:
            raise L1NotConfigured("funding the task needs the L1: pass an L1Config (l1=...)")
        weights = np.asarray(model, dtype=np.float64).reshape(-1)
        if weights.size != params.d:
            raise ValueError(f"the model has {weights.size} values, the layout {params.d}")
        model_id, blobs = fl.model_blobs(weights, params.shift, self._blob_limit())
        blobs = [*blobs, script]
        params = replace(params, init_model=model_id, script=fl.blob_id(script))
        key, chain = self.require_key(), self.chain_id

        def build(n: int) -> list[Transaction]:
            txs = [put_blob(key, chain, n + i, b) for i, b in enumerate(blobs)]
            return [*txs, fl.create_task(key, chain, n + len(blobs), params)]

        hashes = self._send_all(build)
        task_id = hashes[-1]
        for h in hashes[:-1]:  # a blob already stored fails its put_blob harmlessly
            rc = self.wait_for_receipt(h, self.receipt_timeout)
            if int(rc["status"]) != 1 and "already stored" not in str(rc.get("message")):
                raise from_receipt(rc)
        self._included(task_id)
        self._params[task_id] = params
        if deposit_wei is not None:
            self.l1.fund_task(task_id, deposit_wei)
        return task_id

    def report_evaluation(self, task_id: bytes, epoch: int, accuracy: float) -> bytes:
        """Report a closed epoch's accuracy (0..1) as the requester or evaluator; waits."""
        return self.transact(
            lambda k, c, n: fl.report_evaluation(k, c, n, task_id, epoch, accuracy)
        )
