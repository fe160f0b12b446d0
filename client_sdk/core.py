"""What :class:`MPSClient` and :class:`AsyncMPSClient` share: every operation, written once.

Each method is a flow (:mod:`client_sdk.flow`): it yields node calls, pauses, blocking L1 calls
and send-locked sections, and the face running it takes them, synchronously or under asyncio.
So the two faces have one behaviour, chosen here:

* ``wait_for_receipt`` returns the receipt whatever its status (a failed transaction is sealed
  too: status 0, its code and message); the methods that send (``join``, ``submit_update``,
  ``create_task``, ``transact``...) wait for it and raise its typed error if it failed.
* the next nonce is kept by the client and re-read from the node when a send finds it stale
  (``NonceTooLow``, ``NonceTooHigh``, ``NonceAlreadyPending``, ``AlreadyKnown``), up to 3 tries.
* ``commit_update`` and ``submit_update`` refuse, before sending, an update the STF will flag for
  sure (all zeros, the client's own last update, the last global step: :mod:`client_sdk.offences`)
  unless ``force=True``;
* ``submit_update`` is commit-reveal: it commits, waits for the epoch's reveal phase (polling
  every 0.2 s), then reveals; updates over one transaction go as chunk blobs plus the reveal,
  sent only in the reveal phase; models over one blob as chunks plus a manifest, both ways;
  blobs and chunks are checked against their ids.
* ``wait_for_epoch`` polls every 0.2 s and gives up when the task stops before the epoch closes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mps_common.hexutil import from_hex
from stf import state_keys
from stf.errors import Code
from stf.fl.data_budget import allowance, data_fee
from stf.fl.rules import check_bounds
from stf.fl.task import TaskParams, quantize
from stf.ids import ClientKey, TaskId
from stf.stakes import binding_message
from stf.tx import Transaction
from stf.txtypes.fl import MAX_OPEN_TASKS, MAX_OPEN_TASKS_PER_REQUESTER

from . import fl
from .answers import as_bytes, params_of
from .errors import (
    AlreadyKnown,
    CertainOffence,
    InvalidArgument,
    L1NotConfigured,
    NonceAlreadyPending,
    NonceTooHigh,
    NonceTooLow,
    NotFound,
    SDKError,
    TransportError,
    WaitTimeout,
    from_receipt,
)
from .flow import Exclusive, Flow, blocking, call, head_mark, nested, next_head, stream
from .funding import funding_reclaim, recorded_funding
from .keys import Keypair
from .offences import foreseen
from .proofs import ProofError, checked_value
from .release import stake_release
from .rewards import reward_share
from .slashing import SlashingState, fetch_slashing_state
from .tx import put_blob

if TYPE_CHECKING:
    from .l1 import L1, L1Config

#: Bytes a transaction adds around a blob it carries (envelope, key, signature); generous.
TX_OVERHEAD = 256
#: Sends that find the kept nonce stale before giving up.
NONCE_TRIES = 3
STREAM_TXS = 256
"""Transactions per ``POST /txs`` stream the SDK sends (a node takes up to its max_stream_txs)."""
STALE_NONCE = (NonceTooLow, NonceTooHigh, NonceAlreadyPending, AlreadyKnown)
Build = Callable[[Keypair, int, int], Transaction]


class Face:
    """What the sync and the async client share besides their flows: the core, and the settings
    read straight from it (no step to run, so the same in both)."""

    core: ClientCore

    @property
    def key(self) -> Keypair | None:
        return self.core.key

    @property
    def l1_config(self) -> L1Config | None:
        return self.core.l1_config

    @property
    def l1(self) -> L1:
        """The L1 contracts, seen from the configured L1 account."""
        return self.core.l1

    def require_key(self) -> Keypair:
        return self.core.require_key()


@dataclass(frozen=True)
class _Quantized:
    """An update ready to send: its bytes, inline or chunked, and the id it commits to."""

    data: bytes
    inline: bool
    blob_limit: int
    uid: bytes


class ClientCore:
    """Settings, caches (chain id, limits, task parameters), the kept nonce, and the flows."""

    def __init__(self, key: Keypair | None, l1: L1Config | None, receipt_timeout: float) -> None:
        self.key = key
        self.l1_config = l1
        self.receipt_timeout = receipt_timeout
        self._l1: L1 | None = None
        self._chain_id: int | None = None
        self._limits: dict[str, int] | None = None
        self._params: dict[bytes, TaskParams] = {}
        self._nonce: int | None = None

    # -- basics ---------------------------------------------------------------------------
    @property
    def l1(self) -> L1:
        """The L1 contracts, seen from the configured L1 account (web3 loaded on first use)."""
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

    def chain_id(self) -> Flow[int]:
        if self._chain_id is None:
            self._chain_id = int((yield from call("mps_chainId")))
        return self._chain_id

    def nonce(self, sender: bytes, pending: bool = True) -> Flow[int]:
        return int((yield from call("mps_getNonce", sender, pending)))

    def send(self, tx: Transaction) -> Flow[bytes]:
        return as_bytes((yield from call("mps_sendTransaction", tx.encode())))

    def receipt(self, tx_hash: bytes) -> Flow[dict[str, Any] | None]:
        rc = yield from call("mps_getTransactionReceipt", tx_hash)
        return None if rc is None else dict(rc)

    def wait_for_receipt(
        self, tx_hash: bytes, timeout: float | None = None
    ) -> Flow[dict[str, Any]]:
        """The receipt once sealed, failed or not (``timeout`` None: the client's
        ``receipt_timeout``); :class:`WaitTimeout` if not sealed in time."""
        limit = self.receipt_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            mark = yield from head_mark()
            rc = yield from self.receipt(tx_hash)
            if rc is not None:
                return rc
            if time.monotonic() > deadline:
                # it may have been dropped (its block found it invalid): then its nonce and the
                # ones cached after it are free, so the next send reads the account's again
                self._nonce = None
                raise WaitTimeout(f"transaction {tx_hash.hex()} not sealed within {limit}s")
            yield from next_head(mark, 0.05)

    def get_state(self, key: bytes, block: int | str, root: bytes | None) -> Flow[bytes | None]:
        return checked_value((yield from call("mps_getProof", key, block)), root)

    def block(self, tag: int | str, full: bool) -> Flow[dict[str, Any]]:
        return dict((yield from call("mps_getBlockByNumber", tag, full)))

    def limits(self) -> Flow[dict[str, int]]:
        if self._limits is None:
            self._limits = dict((yield from call("mps_getGenesis"))["limits"])
        return self._limits

    def blob(self, blob_hash: bytes) -> Flow[bytes]:
        data = as_bytes((yield from call("mps_getBlob", blob_hash)))
        if fl.blob_id(data) != blob_hash:
            raise ProofError(f"the node's blob {blob_hash.hex()} does not hash to its id")
        return data

    # -- sending ----------------------------------------------------------------------------
    def send_all(self, build: Callable[[int], Sequence[Transaction]]) -> Flow[list[bytes]]:
        """Sign ``build(first_nonce)`` and send each in order, under the send lock."""
        hashes: list[bytes] = yield Exclusive(self._send_locked(build))
        return hashes

    def _send_locked(self, build: Callable[[int], Sequence[Transaction]]) -> Flow[list[bytes]]:
        """Retry with a re-read nonce while a first send finds it stale; forget it on failure."""
        for attempt in range(NONCE_TRIES):
            if self._nonce is None:
                self._nonce = yield from self.nonce(self.require_key().public_key)
            txs = build(self._nonce)
            hashes: list[bytes] = []
            try:
                if len(txs) > 1:
                    yield from self._send_streamed(txs, hashes)
                else:
                    for tx in txs:
                        hashes.append((yield from self.send(tx)))
            except STALE_NONCE:
                self._nonce = None
                if hashes or attempt == NONCE_TRIES - 1:
                    raise
                continue
            except BaseException:
                self._nonce = None
                raise
            self._nonce += len(txs)
            return hashes
        raise AssertionError("unreachable")

    def _send_streamed(self, txs: Sequence[Transaction], hashes: list[bytes]) -> Flow[None]:
        """Send ``txs`` over ``POST /txs``, STREAM_TXS at a time (the node checks a stream's
        signatures in parallel, and one round trip carries a whole chunked update), appending
        each admitted hash to ``hashes`` and raising the first refusal as a send would."""
        for at in range(0, len(txs), STREAM_TXS):
            part = txs[at : at + STREAM_TXS]
            answers = yield from stream([tx.encode() for tx in part])
            for tx, answer in zip(part, answers, strict=False):
                if isinstance(answer, Exception):
                    raise answer
                if answer != tx.hash:
                    raise ProofError(f"the node admitted {tx.hash.hex()} as {answer.hex()}")
                hashes.append(answer)
            if len(answers) < len(part):
                raise TransportError(0, f"the node answered {len(answers)} of {len(part)} txs")

    def included(self, tx_hash: bytes) -> Flow[dict[str, Any]]:
        """Wait for the receipt; raise its typed error if the transaction failed."""
        rc = yield from self.wait_for_receipt(tx_hash)
        if int(rc["status"]) != 1:
            raise from_receipt(rc)
        return rc

    def transact(self, build: Build) -> Flow[bytes]:
        key, chain = self.require_key(), (yield from self.chain_id())
        (h,) = yield from self.send_all(lambda n: [build(key, chain, n)])
        yield from self.included(h)
        return h

    # -- reading tasks ----------------------------------------------------------------------
    def task(self, task_id: bytes, block: int | str = "latest") -> Flow[dict[str, Any]]:
        return dict((yield from call("mps_getTask", task_id, block)))

    def task_params(self, task_id: bytes) -> Flow[TaskParams]:
        p = self._params.get(task_id)
        if p is None:
            p = self._params[task_id] = params_of((yield from self.task(task_id)))
        return p

    def tasks(self, open_only: bool) -> Flow[list[dict[str, Any]]]:
        return list((yield from call("mps_listTasks", open_only)))

    def epoch(self, task_id: bytes, epoch: int) -> Flow[dict[str, Any]]:
        return dict((yield from call("mps_getEpoch", task_id, epoch)))

    def stake_info(self, client_key: bytes | None) -> Flow[dict[str, Any] | None]:
        ck = client_key or self.require_key().public_key
        s = yield from call("mps_getStake", ck)
        return None if s is None else dict(s)

    def base_model(self, task_id: bytes, epoch: int | None) -> Flow[npt.NDArray[np.float64]]:
        params = yield from self.task_params(task_id)
        task = yield from self.task(task_id)
        if epoch is None or epoch == int(task["epoch"]):
            model_id = as_bytes(task["baseModel"])
        elif epoch < int(task["epoch"]):
            model_id = as_bytes((yield from self.epoch(task_id, epoch))["baseModel"])
        else:
            raise InvalidArgument(f"epoch {epoch} has not started (the task is at {task['epoch']})")
        return (yield from nested(fl.model_reader(model_id, params), self.blob))

    def load_base_model(self, task_id: bytes, module: Any, epoch: int | None) -> Flow[None]:
        from .train import unflatten_into

        base = yield from self.base_model(task_id, epoch)
        unflatten_into(module, base, (yield from self.task_params(task_id)))

    # -- a client's flow ----------------------------------------------------------------------
    def wait_for_stake(self, timeout: float) -> Flow[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            mark = yield from head_mark()
            s = yield from self.stake_info(None)
            if s is not None and int(s["status"]) == 0:
                return s
            if time.monotonic() > deadline:
                raise WaitTimeout(f"the rollup does not see the stake within {timeout}s")
            yield from next_head(mark, 0.2)

    def stake(self) -> Flow[None]:
        """Stake the client key from the L1 account, with the key's binding to that account."""
        kp = self.require_key()
        chain = yield from self.chain_id()
        address = yield from blocking(lambda: self.l1.address)
        binding = kp.sign(binding_message(chain, from_hex(address, "L1 address")))
        yield from self.on_l1(lambda l1: l1.stake(kp.public_key, binding))

    def on_l1(self, action: Callable[[L1], Any]) -> Flow[Any]:
        """``action(self.l1)`` as a blocking step (the L1 is built inside it: web3 is slow)."""
        return (yield from blocking(lambda: action(self.l1)))

    def join(self, task_id: bytes) -> Flow[bytes]:
        return (yield from self.transact(lambda k, c, n: fl.join_task(k, c, n, task_id)))

    def _quantized(self, task_id: bytes, epoch: int, update: Any) -> Flow[_Quantized]:
        """The update's bytes as the STF takes them, how they travel, and their STF id."""
        params = yield from self.task_params(task_id)
        delta = yield from self._delta(task_id, epoch, update, params)
        data = quantize(delta, params.shift, params.dtype).tobytes()
        lim = yield from self.limits()
        inline = len(data) + TX_OVERHEAD <= lim["maxTxSize"] and len(data) <= lim["maxBlobSize"]
        limit = blob_limit(lim)
        return _Quantized(data, inline, limit, fl.update_id(data, limit, inline))

    def commit_update(
        self, task_id: bytes, epoch: int, update: Any, force: bool = False
    ) -> Flow[bytes]:
        q = yield from self._quantized(task_id, epoch, update)
        if not force:
            yield from self._refuse_certain_offence(task_id, q)
        return (yield from self._commit(task_id, epoch, q))

    def _refuse_certain_offence(
        self, task_id: bytes, q: _Quantized, task: dict[str, Any] | None = None
    ) -> Flow[None]:
        """:class:`CertainOffence` if the STF will flag ``q`` whatever the others send
        (``task``: its ``mps_getTask`` answer, if the caller already has it)."""
        params = yield from self.task_params(task_id)
        if task is None:
            task = yield from self.task(task_id)
        step = None
        if task["previousStep"] is not None:
            reader = fl.array_reader(as_bytes(task["previousStep"]), params.np_dtype, params.d)
            step = yield from nested(reader, self.blob)
        me = ClientKey(self.require_key().public_key)
        own = yield from self.get_state(state_keys.last_update(TaskId(task_id), me), "latest", None)
        why = foreseen(np.frombuffer(q.data, params.np_dtype), q.uid, step, own)
        if why is not None:
            raise CertainOffence(
                f"not sent: {why}; pass force=True (mps-client: --force) to send it anyway"
            )

    def _commit(
        self, task_id: bytes, epoch: int, q: _Quantized, reference: bool = False
    ) -> Flow[bytes]:
        def build(k: Keypair, c: int, n: int) -> Transaction:
            return fl.commit_update(k, c, n, task_id, epoch, q.uid, reference)

        return (yield from self.transact(build))

    def reveal_update(self, task_id: bytes, epoch: int, update: Any) -> Flow[bytes]:
        q = yield from self._quantized(task_id, epoch, update)
        return (yield from self._reveal(task_id, epoch, q))

    def _reveal(
        self, task_id: bytes, epoch: int, q: _Quantized, reference: bool = False
    ) -> Flow[bytes]:
        key, chain = self.require_key(), (yield from self.chain_id())

        def build(n: int) -> list[Transaction]:
            if q.inline:
                return [fl.submit_update(key, chain, n, task_id, epoch, q.data, reference)]
            # chunk blobs, then the reveal naming them (a chunk already stored fails harmlessly)
            return fl.submit_update_chunked(
                key, chain, n, task_id, epoch, q.data, q.blob_limit, reference
            )

        h = (yield from self.send_all(build))[-1]
        yield from self.included(h)
        return h

    def submit_update(
        self, task_id: bytes, epoch: int, update: Any, timeout: float, force: bool = False
    ) -> Flow[bytes]:
        """Commit, wait for the reveal phase, reveal (:mod:`stf.fl.commit`); the reveal's hash.

        Resumable: a client that restarts with the same update finds its commitment on chain
        and only reveals (the salt is derived from its key, not stored)."""
        q = yield from self._quantized(task_id, epoch, update)
        task = yield from self.task(task_id)
        me = self.require_key().public_key
        done = int(task["epoch"]) == epoch and me in [as_bytes(c) for c in task["committed"]]
        if not done:
            if not force:
                yield from self._refuse_certain_offence(task_id, q, task)
            yield from self._commit(task_id, epoch, q)
        yield from self.wait_for_reveal_phase(task_id, epoch, timeout)
        return (yield from self._reveal(task_id, epoch, q))

    def commit_reference(self, task_id: bytes, epoch: int, update: Any) -> Flow[bytes]:
        q = yield from self._quantized(task_id, epoch, update)
        return (yield from self._commit(task_id, epoch, q, reference=True))

    def submit_reference(
        self, task_id: bytes, epoch: int, update: Any, timeout: float
    ) -> Flow[bytes]:
        """The requester's reference update (:mod:`stf.fl.reference`): its own training of the
        epoch's base model on held-out data. Commits it (send it during the commit phase, before
        the clients are done), waits for the reveal phase, reveals it; the reveal's hash.
        Resumable as :meth:`submit_update` is."""
        q = yield from self._quantized(task_id, epoch, update)
        task = yield from self.task(task_id)
        if int(task["epoch"]) != epoch or task["reference"] is None:
            yield from self._commit(task_id, epoch, q, reference=True)
        yield from self.wait_for_reveal_phase(task_id, epoch, timeout)
        return (yield from self._reveal(task_id, epoch, q, reference=True))

    def wait_for_reveal_phase(self, task_id: bytes, epoch: int, timeout: float) -> Flow[None]:
        """Until ``epoch``'s reveal phase opens (the others' commitments are in, or the commit
        window ran out); SDKError if the epoch ends first, WaitTimeout after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            mark = yield from head_mark()
            task = yield from self.task(task_id)
            if task["status"] != "open" or int(task["epoch"]) != epoch:
                raise SDKError(f"epoch {epoch} ended before this client could reveal")
            if task["phase"] == "reveal":
                return
            if time.monotonic() > deadline:
                raise WaitTimeout(f"epoch {epoch}'s reveal phase did not open within {timeout}s")
            yield from next_head(mark, 0.2)

    def _delta(
        self, task_id: bytes, epoch: int, update: Any, params: TaskParams
    ) -> Flow[npt.NDArray[np.float64]]:
        """A float delta as given, or a torch module's weights minus the epoch's base model."""
        if hasattr(update, "state_dict"):
            from .train import flatten

            delta = flatten(update, params) - (yield from self.base_model(task_id, epoch))
        else:
            delta = np.asarray(update, dtype=np.float64).reshape(-1)
        if delta.size != params.d:
            raise InvalidArgument(f"the update has {delta.size} values, the task {params.d}")
        return delta

    def wait_for_epoch(
        self, task_id: bytes, epoch: int, timeout: float,
        progress: Callable[[dict[str, Any]], None] | None,
    ) -> Flow[dict[str, Any]]:  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            mark = yield from head_mark()
            try:
                return (yield from self.epoch(task_id, epoch))
            except NotFound:
                pass
            task = yield from self.task(task_id)
            if progress is not None:
                progress(task)
            if task["status"] != "open" and int(task["epoch"]) <= epoch:
                raise SDKError(f"the task stopped ({task['status']}) before epoch {epoch} closed")
            if time.monotonic() > deadline:
                raise WaitTimeout(f"epoch {epoch} did not close within {timeout}s")
            yield from next_head(mark, 0.2)

    def slashing_state(
        self, task_id: bytes, client_key: bytes | None, trust: str
    ) -> Flow[SlashingState]:
        client = client_key or self.require_key().public_key
        flow = fetch_slashing_state(lambda: self.l1.committed_batch(), task_id, client, trust)
        return (yield from flow)  # the L1 is only built for trust="l1"

    def reward_share(self, task_id: bytes, client_key: bytes | None) -> Flow[dict[str, Any]]:
        client = client_key or self.require_key().public_key
        return (yield from reward_share(lambda: self.l1, task_id, client))

    def _own_stake(self) -> Flow[bytes]:
        """This client's key, once the L1 account is known to have staked it: ``unregister``
        and ``withdrawStake`` act on the account's key, whichever client asks."""
        key = self.require_key().public_key
        bound = yield from blocking(lambda: self.l1.key_of())
        if bound != key:
            who = "no key" if bound == bytes(32) else f"client key {bound.hex()[:16]}…"
            raise SDKError(
                f"the L1 account {self.l1.address} staked {who}, not this client's key "
                f"{key.hex()[:16]}…: use the account that staked it"
            )
        return key

    def unregister(self) -> Flow[None]:
        yield from self._own_stake()
        yield from self.on_l1(lambda l1: l1.unregister())

    def withdraw(self) -> Flow[dict[str, Any]]:
        key = yield from self._own_stake()
        release = yield from stake_release(lambda: self.l1, key)
        yield from self.on_l1(lambda l1: l1.withdraw(release["batch"], release["siblings"]))
        return release

    def claim_rewards(self, task_id: bytes) -> Flow[int]:
        share = yield from self.reward_share(task_id, None)
        if share["flagged"]:
            raise SDKError("no reward: the client's updates were flagged in this task")
        client = self.require_key().public_key
        args = (task_id, client, share["accepted"], share["siblings"])
        return int((yield from self.on_l1(lambda l1: l1.claim(*args))))

    # -- a requester's flow ---------------------------------------------------------------------
    def create_task(
        self, params: TaskParams, model: npt.ArrayLike, script: bytes, deposit_wei: int | None
    ) -> Flow[bytes]:
        """Upload the model and script, then create the task: on a chain that funds its tasks
        on the L1 (``fundingWindowBlocks`` > 0) the task id is the signed ``create_task``'s
        hash, funded on the L1 first from this client's L1 account, and the transaction goes
        out once the rollup has recorded the funding (:mod:`stf.fl.funding`)."""
        limits = yield from self.limits()
        funded_chain = int(limits.get("fundingWindowBlocks", 0)) > 0
        if funded_chain and deposit_wei is None:
            raise InvalidArgument(
                "this chain's tasks are funded on the L1 before they are created: give a "
                "deposit (wei); the L1 also takes its BASE_FEE for the task's slot"
            )
        if deposit_wei is not None and self.l1_config is None:
            raise L1NotConfigured("funding the task needs the L1: pass an L1Config (l1=...)")
        try:  # the chain's own bounds, before anything is uploaded or paid
            check_bounds(params.rules)
        except ValueError as exc:
            raise InvalidArgument(f"the task's rules: {exc}") from None
        weights = np.asarray(model, dtype=np.float64).reshape(-1)
        if weights.size != params.d:
            raise InvalidArgument(f"the model has {weights.size} values, the layout {params.d}")
        model_id, blobs = fl.model_blobs(weights, params.shift, blob_limit(limits))
        blobs = [*blobs, script]
        fee = int(limits.get("dataFeePerMib", 0))
        pretask = sum(len(b) for b in blobs)
        if fee and deposit_wei is not None and allowance(deposit_wei, fee) < pretask:
            raise InvalidArgument(
                f"this chain bills a task's data to its deposit ({fee} wei per MiB): the model "
                f"and script alone ({pretask} bytes) need at least {data_fee(pretask, fee)} wei, "
                f"and all epochs at most {fl.data_fee_bound(params, pretask, fee)} wei"
            )
        funder = b"" if deposit_wei is None else self.l1.address_bytes
        params = replace(params, init_model=model_id, script=fl.blob_id(script), funder=funder)
        if deposit_wei is None:
            key, chain = self.require_key(), (yield from self.chain_id())
            uploads = yield from self.send_all(
                lambda n: [put_blob(key, chain, n + i, b) for i, b in enumerate(blobs)]
            )
            yield from self._uploaded(uploads)
            (task_id,) = yield from self.send_all(lambda n: [fl.create_task(key, chain, n, params)])
        else:
            task_id = yield from self._funded_create(params, deposit_wei, blobs)
        yield from self.included(task_id)
        self._params[task_id] = params
        return task_id

    def _uploaded(self, uploads: list[bytes]) -> Flow[None]:
        for h in uploads:  # a blob the chain already holds fails its put_blob, harmlessly
            rc = yield from self.wait_for_receipt(h)
            if int(rc["status"]) != 1 and int(rc["code"]) != Code.BLOB_ALREADY_STORED:
                raise from_receipt(rc)

    def _funded_create(
        self, params: TaskParams, deposit_wei: int, blobs: list[bytes]
    ) -> Flow[bytes]:
        """Sign the create_task at the nonce after the blobs', fund its hash on the L1, wait for
        the rollup to record the funding, upload the blobs against it (a funded chain takes a
        blob only for a task: stf.fl.uploads), send. The nonces must still be free then: a
        transaction of this key sent meanwhile (elsewhere) voids the signed one, and the funding
        then lapses after the window and is reclaimed (``reclaim_funding``)."""
        key, chain = self.require_key(), (yield from self.chain_id())
        yield from self._check_slots(key.public_key)  # a create that cannot succeed costs BASE_FEE
        first = yield from self.nonce(key.public_key)
        nonce = first + len(blobs)
        tx = fl.create_task(key, chain, nonce, params)
        yield from self.on_l1(lambda l1: l1.fund_task(tx.hash, deposit_wei))
        leaf = yield from recorded_funding(tx.hash, params.funder, self.receipt_timeout)
        head = int((yield from call("mps_blockNumber")))
        if leaf.bound or head >= leaf.bind_by:  # sent now, it would land past its window
            raise SDKError(
                f"the funding of task {tx.hash.hex()[:16]}… can no longer be bound (window ends at "
                f"height {leaf.bind_by}, head {head}): reclaim it later (reclaim_funding)"
            )

        def at(want: int, txs: list[Transaction]) -> Callable[[int], list[Transaction]]:
            def build(n: int) -> list[Transaction]:
                if n != want:
                    raise SDKError(
                        f"nonce {want} of the funded create_task's transactions was taken "
                        "meanwhile: the funding lapses unbound; reclaim it later (reclaim_funding)"
                    )
                return txs

            return build

        uploads = [
            put_blob(key, chain, first + i, b, tx.hash, params.funder, tx)
            for i, b in enumerate(blobs)
        ]
        yield from self._uploaded((yield from self.send_all(at(first, uploads))))
        (task_id,) = yield from self.send_all(at(nonce, [tx]))
        return task_id

    def _check_slots(self, requester: bytes) -> Flow[None]:
        """Refuse before paying when the chain's open-task slots, or this requester's, are
        taken (the STF would fail the create_task with 1115 and the BASE_FEE would be lost)."""
        tasks = yield from call("mps_listTasks", True, MAX_OPEN_TASKS)
        mine = sum(1 for t in tasks if as_bytes(t["requester"]) == requester)
        if len(tasks) >= MAX_OPEN_TASKS or mine >= MAX_OPEN_TASKS_PER_REQUESTER:
            raise SDKError(
                f"no task slot: {len(tasks)} of {MAX_OPEN_TASKS} tasks open, {mine} of "
                f"{MAX_OPEN_TASKS_PER_REQUESTER} of them this requester's; nothing was paid"
            )

    def reclaim_funding(self, task_id: bytes) -> Flow[int]:
        """Take back this account's L1 deposit for ``task_id`` if the rollup never bound it
        (the BASE_FEE stays paid); return the wei."""
        proof = yield from funding_reclaim(lambda: self.l1, task_id)
        args = (proof["batch"], task_id, proof["bindBy"], proof["siblings"])
        return int((yield from self.on_l1(lambda l1: l1.reclaim(*args))))

    def report_evaluation(self, task_id: bytes, epoch: int, accuracy: float) -> Flow[bytes]:
        return (
            yield from self.transact(
                lambda k, c, n: fl.report_evaluation(k, c, n, task_id, epoch, accuracy)
            )
        )


def blob_limit(limits: dict[str, int]) -> int:
    """The largest blob one transaction can carry on a chain with these limits."""
    return min(limits["maxBlobSize"], limits["maxTxSize"] - TX_OVERHEAD)
