"""Federated learning in the STF: tasks, joins, updates, epoch close, verdicts, determinism.

Every block goes through ``conftest.Chain.commit``, which replays it with
:func:`stf.transition.state_transition` from its decoded wire form and insists
on the very same writes and receipts.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import Chain, MemStore, signing_key, stake_args
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from stf import encoding, robust, state_keys
from stf.context import Limits
from stf.errors import Code
from stf.fl import settlement
from stf.fl.checks import MIN_PROVABLE_SUPPORT
from stf.fl.commit import commitment
from stf.fl.contribution import CREDIT_SCALE
from stf.fl.flags import EXACT, STATISTICAL, Flag
from stf.fl.records import CLEAN, NO_EPOCH, ClientRecord, EpochSummary, Verdict
from stf.fl.rules import BOUNDS, EpochRules, check_bounds
from stf.fl.task import COMPLETE, FINISHED, OPEN, TaskState
from stf.genesis import Genesis, GenesisStake, genesis_block
from stf.stakes import SLASHED, STAKED, StakeRecord
from stf.state import BLOB_PREFIX, STATE_PREFIX
from stf.transition import BuildResult, ChainConfig, state_transition
from stf.tx import ZERO_SENDER, Transaction, make_tx
from stf.txtypes import l1_deposit

CHAIN_ID = 77
L1_DEPOSIT, PUT_BLOB, CREATE_TASK, JOIN_TASK, SUBMIT_UPDATE, REPORT_EVALUATION = 0, 2, 3, 4, 5, 6
COMMIT_UPDATE = 7
SCRIPT = b"def train(model, data):\n    return model\n"
D = 2000  # parameters of the default layout
LAYOUT = (("w", (40, 40)), ("b", (400,)))
TESTS_DIR = Path(__file__).resolve().parent
INT32 = np.iinfo(np.int32)


def pub(key: SigningKey) -> bytes:
    return bytes(key.verify_key)


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def task_params(
    init_hash: bytes,
    script_hash: bytes,
    *,
    name: str = "task",
    layout: Any = LAYOUT,
    dtype: str = "int8",
    shift: int = 8,
    epochs: int = 3,
    target: int = 900_000,
    min_clients: int = 5,
    max_clients: int = 8,
    window: int = 4,
    evaluator: bytes = b"\x00" * 32,
    rules: EpochRules | list[Any] | None = None,
    funder: bytes = b"",
) -> list[Any]:
    rules = EpochRules() if rules is None else rules
    return [
        name,
        [[n, list(s)] for n, s in layout],
        dtype,
        shift,
        init_hash,
        script_hash,
        epochs,
        target,
        min_clients,
        max_clients,
        window,
        evaluator,
        rules.to_list() if isinstance(rules, EpochRules) else rules,
        funder,
    ]


def init_model(d: int = D, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1000, 1000, d).astype("<i4")


class Honest:
    """Honest updates: one common direction plus independent per-client noise (int8)."""

    def __init__(self, d: int = D, seed: int = 1, scale: float = 20.0, noise: float = 20.0):
        self.rng = np.random.default_rng(seed)
        self.direction = self.rng.normal(0.0, scale, d)
        self.noise = noise

    def one(self) -> np.ndarray:
        x = self.direction + self.rng.normal(0.0, self.noise, self.direction.shape[0])
        return np.clip(np.rint(x), -127, 127).astype(np.int8)

    def many(self, n: int) -> list[np.ndarray]:
        return [self.one() for _ in range(n)]


class FL:
    """A MemStore chain with staked clients, a requester, an evaluator and an outsider."""

    def __init__(
        self,
        n_clients: int = 8,
        backend: str = "numpy",
        staked: list[int] | None = None,
        funding_window: int = 0,
        data_fee: int = 0,
    ) -> None:
        seq = signing_key(200)
        limits = Limits(funding_window_blocks=funding_window, data_fee_per_mib=data_fee)
        self.config = ChainConfig(CHAIN_ID, pub(seq), limits, backend=backend)
        self.requester = signing_key(1)
        self.evaluator = signing_key(2)
        self.outsider = signing_key(3)
        self.clients = [signing_key(10 + i) for i in range(n_clients)]
        which = range(n_clients) if staked is None else staked
        self.genesis = Genesis(
            stakes=tuple(
                GenesisStake(pub(self.clients[i]), bytes([i + 1]) * 20, 1000) for i in which
            )
        )
        self.chain = Chain(self.config, seq, self.genesis)
        self._nonces: dict[bytes, int] = {}
        self._deposits = 0
        # what each commitment binds: (client, task, epoch) -> (update id, reveal payload)
        self._reveals: dict[tuple[bytes, bytes, int], tuple[bytes, Any, bytes]] = {}

    # -- transactions --------------------------------------------------------
    def tx(
        self, key: SigningKey, tx_type: int, value: Any, nonce: int | None = None
    ) -> Transaction:
        """Signed at the sender's next nonce, or at ``nonce`` (one :meth:`skip` reserved)."""
        if nonce is None:
            nonce = self.skip(key, 1)
        return make_tx(key, CHAIN_ID, tx_type, nonce, encoding.encode(value))

    def skip(self, key: SigningKey, n: int) -> int:
        """Reserve the sender's next ``n`` nonces; the first of them."""
        sender = pub(key)
        if sender not in self._nonces:
            raw = self.get(state_keys.nonce(sender))
            self._nonces[sender] = 0 if raw is None else encoding.decode(raw)
        nonce = self._nonces[sender]
        self._nonces[sender] += n
        return nonce

    def put_blob(
        self,
        key: SigningKey,
        data: bytes,
        task_id: bytes | None = None,
        funder: bytes | None = None,
        nonce: int | None = None,
        create: Transaction | None = None,
    ) -> Transaction:
        """A bare upload, one for an open task, or one before the task against its funding (by
        the signer of ``create``, the create_task whose hash is ``task_id``)."""
        context: list[Any] = [] if task_id is None else [task_id]
        if funder is not None:
            assert create is not None, "a pre-task upload names its create_task"
            context += [funder, create.body]
        return self.tx(key, PUT_BLOB, [data, *context], nonce)

    def create(self, params: list[Any], key: SigningKey | None = None) -> Transaction:
        return self.tx(key or self.requester, CREATE_TASK, params)

    def join(self, key: SigningKey, task_id: bytes) -> Transaction:
        return self.tx(key, JOIN_TASK, [task_id])

    def submit(self, key: SigningKey, task_id: bytes, epoch: int, update: Any) -> Transaction:
        """The commitment to ``update`` (phase one); :meth:`reveal` sends the update itself.

        ``update``: an array, its bytes, or the list of its chunks' blob ids with the
        manifest's id (``(ids, manifest_id)``)."""
        if isinstance(update, tuple):
            body, update_id = update
        else:
            body = update if isinstance(update, bytes) else np.asarray(update).tobytes()
            update_id = sha(body)
        salt = sha(b"salt" + pub(key) + task_id + epoch.to_bytes(8, "big"))
        # the first commitment is the one that counts: a later one is refused (DUPLICATE_UPDATE)
        self._reveals.setdefault((pub(key), task_id, epoch), (update_id, body, salt))
        digest = commitment(task_id, epoch, pub(key), update_id, salt)
        return self.tx(key, COMMIT_UPDATE, [task_id, epoch, digest])

    def reveal(
        self, key: SigningKey, task_id: bytes, epoch: int, update: Any = None
    ) -> Transaction:
        """The reveal of what ``key`` committed to (or of another ``update``, with its salt)."""
        _, body, salt = self._reveals[(pub(key), task_id, epoch)]
        if update is not None:
            body = update if isinstance(update, bytes | list) else np.asarray(update).tobytes()
        return self.tx(key, SUBMIT_UPDATE, [task_id, epoch, body, salt])

    def report(self, key: SigningKey, task_id: bytes, epoch: int, acc: int) -> Transaction:
        return self.tx(key, REPORT_EVALUATION, [task_id, epoch, acc])

    def stake(self, key: SigningKey, l1_address: bytes, amount: int) -> Transaction:
        """The L1 stake of ``key`` from ``l1_address``, with the key's binding to it."""
        return self.deposit("stake", stake_args(key, l1_address, amount, CHAIN_ID))

    def deposit(self, kind: str, args: list[Any]) -> Transaction:
        self._deposits += 1
        payload = l1_deposit.payload(self._deposits, 0, kind, args)
        return Transaction(CHAIN_ID, L1_DEPOSIT, ZERO_SENDER, self._deposits - 1, payload)

    # -- blocks --------------------------------------------------------------
    def replay_from_genesis(self) -> MemStore:
        """Re-execute every block into a fresh store with ``state_transition`` alone."""
        store = MemStore()
        g, writes = genesis_block(store, self.config, self.genesis)
        assert g == self.chain.blocks[0]
        store.commit(writes)
        parent = g.header
        for block in self.chain.blocks[1:]:
            writes, _ = state_transition(store, parent, block, self.config)
            store.commit(writes)
            parent = block.header
        return store

    def block(self, *txs: Transaction) -> BuildResult:
        """Build, replay (from the decoded block) and commit; nonces resync from state."""
        result = self.chain.build(list(txs))
        self.chain.commit(result, check=True)
        self._nonces.clear()
        return result

    def empty(self, n: int = 1) -> None:
        for _ in range(n):
            self.block()

    @property
    def height(self) -> int:
        return self.chain.head.header.height

    @property
    def root(self) -> bytes:
        return self.chain.head.header.state_root

    # -- task set-up ---------------------------------------------------------
    def new_task(self, init: np.ndarray | None = None, **kw: Any) -> bytes:
        """Upload the initial model and the script, create the task; return its id."""
        init = init_model() if init is None else init
        model = init.astype("<i4").tobytes()
        kw.setdefault("evaluator", pub(self.evaluator))
        uploads = [
            self.put_blob(self.requester, data)
            for data in (model, SCRIPT)
            if self.get(state_keys.blob(sha(data))) is None
        ]
        create = self.create(task_params(sha(model), sha(SCRIPT), **kw))
        result = self.block(*uploads, create)
        assert [r.status for r in result.receipts] == [1] * (len(uploads) + 1), result.receipts
        return create.hash

    def join_all(self, task_id: bytes, clients: list[SigningKey]) -> None:
        result = self.block(*(self.join(c, task_id) for c in clients))
        assert [r.status for r in result.receipts] == [1] * len(clients), result.receipts

    def submit_all(
        self, task_id: bytes, epoch: int, pairs: list[tuple[SigningKey, Any]]
    ) -> BuildResult:
        """Commit every update in one block; if that ended the commit phase, reveal in the next
        block every commitment not revealed yet (this call's and earlier ones'). The last
        block's result: where the epoch closes once every committer revealed."""
        result = self.commit_all(task_id, epoch, pairs)
        t = self.task(task_id)
        if not t.revealing or t.epoch != epoch:
            return result
        by_key = {pub(k): k for k in self.clients}
        todo = [by_key[c] for c, u in zip(t.submitted, t.pending, strict=True) if u == b""]
        return self.reveal_all(task_id, epoch, todo)

    def commit_all(
        self, task_id: bytes, epoch: int, pairs: list[tuple[SigningKey, Any]]
    ) -> BuildResult:
        result = self.block(*(self.submit(c, task_id, epoch, u) for c, u in pairs))
        assert [r.status for r in result.receipts] == [1] * len(pairs), result.receipts
        return result

    def run_out(self, task_id: bytes, epoch: int, limit: int = 1000) -> None:
        """Let ``epoch`` end by its windows: empty blocks until the commit phase ends, the
        reveal of every commitment not revealed yet, empty blocks until the epoch closes."""
        by_key = {pub(k): k for k in self.clients}
        tried: set[bytes] = set()
        for _ in range(limit):
            t = self.task(task_id)
            if t.epoch != epoch or t.status != OPEN:
                return
            todo = [
                c
                for c, u in zip(t.submitted, t.pending, strict=True)
                if t.revealing and u == b"" and c not in tried
            ]
            tried.update(todo)
            self.block(*(self.reveal(by_key[c], task_id, epoch) for c in todo))
        raise AssertionError(f"epoch {epoch} did not end within {limit} blocks")

    def reveal_all(self, task_id: bytes, epoch: int, keys: list[SigningKey]) -> BuildResult:
        result = self.block(*(self.reveal(c, task_id, epoch) for c in keys))
        assert [r.status for r in result.receipts] == [1] * len(keys), result.receipts
        return result

    # -- state ---------------------------------------------------------------
    def get(self, key: bytes) -> bytes | None:
        return self.chain.store.get(STATE_PREFIX + key)

    def blob(self, blob_hash: bytes) -> bytes | None:
        return self.chain.store.get(BLOB_PREFIX + blob_hash)

    def task(self, task_id: bytes) -> TaskState:
        raw = self.get(state_keys.task(task_id))
        assert raw is not None
        return TaskState.decode(raw)

    def open_tasks(self) -> list[bytes]:
        raw = self.get(state_keys.OPEN_TASKS)
        return [] if raw is None else list(encoding.decode(raw))

    def summary(self, task_id: bytes, epoch: int) -> EpochSummary | None:
        raw = self.get(state_keys.epoch(task_id, epoch))
        return None if raw is None else EpochSummary.decode(raw)

    def record(self, task_id: bytes, epoch: int, client: SigningKey) -> ClientRecord:
        raw = self.get(state_keys.client_record(task_id, epoch, pub(client)))
        assert raw is not None
        return ClientRecord.decode(raw)

    def verdict(self, task_id: bytes, client: SigningKey | bytes) -> Verdict | None:
        key = client if isinstance(client, bytes) else pub(client)
        raw = self.get(state_keys.verdict(task_id, key))
        return None if raw is None else Verdict.decode(raw)

    def flags(self, task_id: bytes, epoch: int, client: SigningKey) -> int:
        return self.record(task_id, epoch, client).flags

    def model(self, blob_hash: bytes) -> np.ndarray:
        raw = self.blob(blob_hash)
        assert raw is not None
        return np.frombuffer(raw, dtype="<i4")


def receipt(result: BuildResult, tx: Transaction) -> tuple[int, int]:
    """(status, code) of ``tx`` in ``result``."""
    for r in result.receipts:
        if r.tx_hash == tx.hash:
            return r.status, r.code
    raise AssertionError(f"no receipt for {tx.hash.hex()}; dropped: {result.dropped}")


def check_epoch(
    fl: FL,
    task_id: bytes,
    epoch: int,
    updates: dict[bytes, np.ndarray],
    base_before: np.ndarray,
    f: int = 1,
) -> np.ndarray:
    """Check an epoch's summary and records against an independent recomputation with
    :mod:`stf.robust`; return the next base model."""
    summary = fl.summary(task_id, epoch)
    assert summary is not None, f"epoch {epoch} has not closed"
    base, step, next_base = summary.base, summary.step, summary.next_base
    committed, acc = list(summary.clients), summary.accuracy_ppm
    assert summary.n_clients == len(committed)
    all_recs = {
        c: ClientRecord.decode(fl.get(state_keys.client_record(task_id, epoch, c)))  # type: ignore[arg-type]
        for c in committed
    }
    # a commitment not revealed: a record with no update and REVEAL_MISSING alone
    for r in all_recs.values():
        if r.update == b"":
            assert r.flags == Flag.REVEAL_MISSING and not r.selected
    submitted = [c for c in committed if all_recs[c].update != b""]
    n = len(submitted)
    assert n == len(updates) and set(submitted) == set(updates)
    assert acc == -1
    assert fl.model(base).tobytes() == base_before.tobytes()
    rows = np.stack([updates[c] for c in submitted])
    recs = [all_recs[c] for c in submitted]
    # Krum scores and ranks (ties by submission position)
    fe = min(f, max(0, (n - 3) // 2))
    if n >= 3:
        scores = [int(s) for s in np.asarray(robust.krum_scores(rows, fe)).tolist()]
        assert [r.score for r in recs] == scores
        order = sorted(range(n), key=lambda i: (scores[i], i))
        assert [r.rank for r in recs] == [order.index(i) for i in range(n)]
    for i, r in enumerate(recs):
        assert r.update == sha(rows[i].tobytes())
        assert r.sq_norm == int(np.dot(rows[i].astype(np.int64), rows[i].astype(np.int64)))
        assert bool(r.selected) == (r.flags == 0)
    # the aggregate: the default aggregator, the mean of the unflagged rows
    clean = [i for i, r in enumerate(recs) if r.flags == 0]
    agg = robust.mean(rows[clean]) if clean else np.zeros(rows.shape[1], dtype=np.int64)
    expected = np.clip(base_before.astype(np.int64) + agg, INT32.min, INT32.max).astype("<i4")
    assert fl.blob(next_base) == expected.tobytes()
    assert fl.blob(step) == np.clip(agg, -127, 127).astype(np.int8).tobytes()
    task = fl.task(task_id)
    assert task.epoch >= epoch + 1
    if task.epoch == epoch + 1:
        assert task.base == next_base
        assert task.prev_global == step
        assert task.submitted == [] and task.pending == []
    return expected


# -- create_task ---------------------------------------------------------------


def test_create_task_records_the_task() -> None:
    fl = FL()
    init = init_model()
    tid = fl.new_task(init, name="mnist", epochs=2)
    t = fl.task(tid)
    assert t.requester == pub(fl.requester)
    assert (t.status, t.epoch, t.base, t.prev_global) == (OPEN, 0, sha(init.tobytes()), b"")
    assert t.epoch_start == fl.height + 1
    assert t.clients == t.submitted == t.pending == []
    assert t.params.name == "mnist" and t.params.d == D and t.params.epochs == 2
    assert fl.open_tasks() == [tid]
    tid2 = fl.new_task(init_model(seed=5), name="second")
    assert fl.open_tasks() == [tid, tid2]


def test_create_task_invalid_parameters_are_dropped() -> None:
    fl = FL()
    model = init_model().tobytes()
    fl.block(fl.put_blob(fl.requester, model), fl.put_blob(fl.requester, SCRIPT))
    ih, sh = sha(model), sha(SCRIPT)
    bad = {
        "zero-sized tensor": task_params(ih, sh, layout=(("w", (0, 2000)),)),
        "empty layout": task_params(ih, sh, layout=()),
        "window 0": task_params(ih, sh, window=0),
        "f too large (min <= 2f+2)": task_params(
            ih, sh, min_clients=6, max_clients=10, rules=EpochRules(f=2)
        ),
        "f too large (max <= 2f+2)": task_params(
            ih, sh, min_clients=3, max_clients=4, rules=EpochRules(f=1)
        ),
        "min > max": task_params(ih, sh, min_clients=7, max_clients=6),
        "unknown dtype": task_params(ih, sh, dtype="float32"),
        "unknown aggregator": task_params(ih, sh, rules=EpochRules(aggregator="average")),
        "duplicate tensor names": task_params(ih, sh, layout=(("w", (1000,)), ("w", (1000,)))),
        "epochs 0": task_params(ih, sh, epochs=0),
        "strikes 0": task_params(ih, sh, rules=EpochRules(strikes_to_bar=0)),
        "trim 1/2": task_params(
            ih, sh, rules=EpochRules(aggregator="trimmed_mean", trim_num=1, trim_den=2)
        ),
        # trap rules (every normal update flagged, or one odd epoch barring): consensus bounds
        "near_zero": task_params(ih, sh, rules=EpochRules(near_zero=(10**9, 1))),
        "strikes_to_bar": task_params(ih, sh, rules=EpochRules(strikes_to_bar=1)),
        "krum_ratio": task_params(ih, sh, rules=EpochRules(krum_ratio=(3, 2))),
        "uncorrelated_cos": task_params(ih, sh, rules=EpochRules(uncorrelated_cos=(1, 2))),
        "near_copy_cos": task_params(ih, sh, rules=EpochRules(near_copy_cos=(9, 10))),
        "global_echo_cos": task_params(ih, sh, rules=EpochRules(global_echo_cos=(1, 2))),
        "denominator": task_params(ih, sh, rules=EpochRules(near_zero=(1, 10**7))),
    }
    # they all use the requester's next nonce: none of them is included
    nonce = 2
    txs = [
        make_tx(fl.requester, CHAIN_ID, CREATE_TASK, nonce, encoding.encode(p))
        for p in bad.values()
    ]
    result = fl.block(*txs)
    assert result.receipts == []
    assert [tx for tx, _ in result.dropped] == txs
    for (why, _), (_, exc) in zip(bad.items(), result.dropped, strict=True):
        assert exc.code == Code.INVALID_PAYLOAD, why
        if why in BOUNDS or why == "denominator":
            assert why in exc.message or "near_zero: denominator" in exc.message, exc.message
    assert fl.open_tasks() == []
    # the same nonce still works for a valid task
    good = make_tx(fl.requester, CHAIN_ID, CREATE_TASK, nonce, encoding.encode(task_params(ih, sh)))
    assert receipt(fl.block(good), good) == (1, 0)
    assert fl.open_tasks() == [good.hash]


def test_create_task_missing_blobs_and_wrong_model_size() -> None:
    fl = FL()
    model = init_model().tobytes()
    short = init_model(D - 1).tobytes()
    fl.block(
        fl.put_blob(fl.requester, model),
        fl.put_blob(fl.requester, SCRIPT),
        fl.put_blob(fl.requester, short),
    )
    no_model = fl.create(task_params(sha(b"never uploaded"), sha(SCRIPT)))
    no_script = fl.create(task_params(sha(model), sha(b"no such script")))
    wrong_size = fl.create(task_params(sha(short), sha(SCRIPT)))
    int16_task = fl.create(task_params(sha(model), sha(SCRIPT), dtype="int16"))
    result = fl.block(no_model, no_script, wrong_size, int16_task)
    assert receipt(result, no_model) == (0, Code.BLOB_NOT_FOUND)
    assert receipt(result, no_script) == (0, Code.BLOB_NOT_FOUND)
    assert receipt(result, wrong_size) == (0, Code.INVALID_UPDATE)
    assert receipt(result, int16_task) == (1, 0)  # the model is int32 whatever the dtype
    assert fl.open_tasks() == [int16_task.hash]
    for tx in (no_model, no_script, wrong_size):
        assert fl.get(state_keys.task(tx.hash)) is None


def test_create_task_malformed_rule_types_are_dropped() -> None:
    fl = FL()
    model = init_model().tobytes()
    fl.block(fl.put_blob(fl.requester, model), fl.put_blob(fl.requester, SCRIPT))
    good = EpochRules().to_list()
    bad_rules = [
        ["1", *good[1:]],  # f as a string
        [*good[:2], None, *good[3:]],  # trim_num None
        [*good[:4], [b"x", 1], *good[5:]],  # krum_ratio numerator as bytes
    ]
    txs = [
        make_tx(
            fl.requester,
            CHAIN_ID,
            CREATE_TASK,
            2,
            encoding.encode(task_params(sha(model), sha(SCRIPT), rules=r)),
        )
        for r in bad_rules
    ]
    result = fl.block(*txs)
    assert [exc.code for _, exc in result.dropped] == [Code.INVALID_PAYLOAD] * 3


# -- join_task -----------------------------------------------------------------


def test_join_task_errors() -> None:
    fl = FL(n_clients=8, staked=list(range(7)))
    tid = fl.new_task(min_clients=5, max_clients=6)
    c = fl.clients
    unstaked = fl.join(c[7], tid)
    unknown = fl.join(c[0], sha(b"no such task"))
    first = fl.join(c[0], tid)
    twice = fl.join(c[0], tid)
    result = fl.block(unstaked, unknown, first, twice)
    assert receipt(result, unstaked) == (0, Code.NOT_STAKED)
    assert receipt(result, unknown) == (0, Code.TASK_NOT_FOUND)
    assert receipt(result, first) == (1, 0)
    assert receipt(result, twice) == (0, Code.ALREADY_JOINED)
    again = fl.join(c[0], tid)
    assert receipt(fl.block(again), again) == (0, Code.ALREADY_JOINED)
    fl.join_all(tid, c[1:6])
    full = fl.join(c[6], tid)
    assert receipt(fl.block(full), full) == (0, Code.TASK_FULL)
    assert fl.task(tid).clients == [pub(k) for k in c[:6]]
    # failed transactions still use their nonce
    assert encoding.decode(fl.get(state_keys.nonce(pub(c[0])))) == 4


def test_l1_slashed_client_cannot_join_or_submit() -> None:
    fl = FL(n_clients=7)
    c = fl.clients
    tid = fl.new_task(min_clients=5, max_clients=7)
    fl.join_all(tid, c[1:6])
    slash0 = fl.deposit("slash", [pub(c[0])])
    slash1 = fl.deposit("slash", [pub(c[1])])
    join0 = fl.join(c[0], tid)
    sub1 = fl.submit(c[1], tid, 0, Honest().one())
    result = fl.block(slash0, slash1, join0, sub1)
    assert receipt(result, slash0) == (1, 0) and receipt(result, slash1) == (1, 0)
    for k in (c[0], c[1]):
        assert encoding.decode(fl.get(state_keys.stake(pub(k))))[2] == SLASHED
    assert receipt(result, join0) == (0, Code.NOT_STAKED)
    assert receipt(result, sub1) == (0, Code.NOT_STAKED)
    t = fl.task(tid)
    assert pub(c[0]) not in t.clients
    assert t.submitted == []
    # unbonding clients cannot join either
    unbond = fl.deposit("unbond", [pub(c[6])])
    join6 = fl.join(c[6], tid)
    result = fl.block(unbond, join6)
    assert receipt(result, join6) == (0, Code.NOT_STAKED)


# -- submit_update -------------------------------------------------------------


def test_commit_and_reveal_errors() -> None:
    """Each refusal of phase one (commit_update) and phase two (submit_update, the reveal) has
    its code, and a refused transaction changes nothing: a correct reveal may still follow."""
    fl = FL(n_clients=6)
    c = fl.clients
    tid = fl.new_task(min_clients=5, max_clients=6, window=50)
    fl.join_all(tid, c[:5])
    h = Honest()
    u0 = h.one()
    not_joined = fl.submit(c[5], tid, 0, h.one())
    future = fl.submit(c[0], tid, 1, u0)
    ok = fl.submit(c[0], tid, 0, u0)
    dup = fl.submit(c[0], tid, 0, h.one())
    unknown = fl.submit(c[1], sha(b"nope"), 0, h.one())
    early = fl.reveal(c[0], tid, 0)
    result = fl.block(not_joined, future, ok, dup, unknown, early)
    assert receipt(result, not_joined) == (0, Code.NOT_JOINED)
    assert receipt(result, future) == (0, Code.WRONG_EPOCH)
    assert receipt(result, ok) == (1, 0)
    assert receipt(result, dup) == (0, Code.DUPLICATE_UPDATE)
    assert receipt(result, unknown) == (0, Code.TASK_NOT_FOUND)
    assert receipt(result, early) == (0, Code.WRONG_PHASE)
    t = fl.task(tid)
    assert t.submitted == [pub(c[0])] and t.pending == [b""] and not t.revealing
    dup2 = fl.submit(c[0], tid, 0, h.one())  # a second commitment in a later block
    assert receipt(fl.block(dup2), dup2) == (0, Code.DUPLICATE_UPDATE)
    others = [(k, h.one()) for k in c[1:4]]
    fl.commit_all(tid, 0, [*others, (c[4], h.one())])
    t = fl.task(tid)
    assert t.revealing and t.reveal_start == fl.height + 1 and t.epoch == 0
    fl.join_all(tid, [c[5]])  # a newcomer in the reveal phase may join, but not commit
    late = fl.submit(c[5], tid, 0, h.one())
    too_short = fl.reveal(c[0], tid, 0, u0.tobytes()[:-1])
    too_long = fl.reveal(c[0], tid, 0, u0.tobytes() + b"\x00")
    int16_sized = fl.reveal(c[0], tid, 0, u0.astype("<i2"))
    other = fl.reveal(c[0], tid, 0, h.one())  # not what it committed to
    ok = fl.reveal(c[0], tid, 0, u0)  # the later commit_update calls above were refused
    again = fl.reveal(c[0], tid, 0, u0)
    result = fl.block(late, too_short, too_long, int16_sized, other, ok, again)
    assert receipt(result, late) == (0, Code.WRONG_PHASE)
    for tx in (too_short, too_long, int16_sized):
        assert receipt(result, tx) == (0, Code.INVALID_UPDATE)
    assert receipt(result, other) == (0, Code.COMMITMENT_MISMATCH)
    assert receipt(result, ok) == (1, 0)
    assert receipt(result, again) == (0, Code.DUPLICATE_UPDATE)
    t = fl.task(tid)
    assert t.pending[0] == sha(u0.tobytes()) and fl.blob(sha(u0.tobytes())) == u0.tobytes()
    assert t.pending[1:] == [b""] * 4
    # another client's salt and update do not open this client's commitment
    stolen = fl.tx(c[1], SUBMIT_UPDATE, [tid, 0, u0.tobytes(), fl._reveals[(pub(c[0]), tid, 0)][2]])
    assert receipt(fl.block(stolen), stolen) == (0, Code.COMMITMENT_MISMATCH)
    fl.reveal_all(tid, 0, [k for k, _ in others] + [c[4]])
    assert fl.task(tid).epoch == 1
    past = fl.submit(c[0], tid, 0, h.one())
    future = fl.submit(c[1], tid, 2, h.one())
    result = fl.block(past, future)
    assert receipt(result, past) == (0, Code.WRONG_EPOCH)
    assert receipt(result, future) == (0, Code.WRONG_EPOCH)


def test_int16_task_takes_two_bytes_per_parameter() -> None:
    fl = FL(n_clients=5)
    c = fl.clients
    init = init_model()
    tid = fl.new_task(init, dtype="int16", min_clients=5, max_clients=5)
    fl.join_all(tid, c)
    h = Honest()
    ups = [(h.one().astype("<i2") * 100) for _ in c]
    fl.commit_all(tid, 0, list(zip(c, ups, strict=True)))
    as_int8 = fl.reveal(c[0], tid, 0, ups[0].astype(np.int8))
    assert receipt(fl.block(as_int8), as_int8) == (0, Code.INVALID_UPDATE)
    fl.reveal_all(tid, 0, c)
    updates = {pub(k): u for k, u in zip(c, ups, strict=True)}
    summary = fl.summary(tid, 0)
    assert summary is not None
    rows = np.stack([updates[k] for k in summary.clients])
    agg = robust.mean(rows)
    assert fl.model(fl.task(tid).base).tobytes() == (init + agg).astype("<i4").tobytes()
    assert fl.blob(summary.step) == agg.astype("<i2").tobytes()


# -- epoch close ---------------------------------------------------------------


def test_epoch_closes_in_the_block_where_everyone_submitted() -> None:
    fl = FL(n_clients=6)
    c = fl.clients[:5]
    init = init_model()
    tid = fl.new_task(init, min_clients=5, max_clients=6, window=100, epochs=3)
    fl.join_all(tid, c)
    h = Honest()
    ups = {pub(k): h.one() for k in c}
    fl.submit_all(tid, 0, [(k, ups[pub(k)]) for k in c[:4]])
    assert fl.summary(tid, 0) is None and fl.task(tid).epoch == 0
    fl.submit_all(tid, 0, [(c[4], ups[pub(c[4])])])
    closed_at = fl.height
    summary = fl.summary(tid, 0)
    assert summary is not None
    assert summary.closed_at == closed_at
    assert list(summary.clients) == [pub(k) for k in c]  # submission order
    nxt = check_epoch(fl, tid, 0, ups, init)
    t = fl.task(tid)
    assert (t.epoch, t.status, t.epoch_start) == (1, OPEN, closed_at + 1)
    for k in c:
        assert fl.flags(tid, 0, k) == 0
        assert fl.verdict(tid, k) == CLEAN
        assert fl.get(state_keys.last_update(tid, pub(k))) == sha(ups[pub(k)].tobytes())
    assert fl.open_tasks() == [tid]
    # the next epoch builds on the new base
    ups1 = {pub(k): h.one() for k in c}
    fl.submit_all(tid, 1, [(k, ups1[pub(k)]) for k in c])
    check_epoch(fl, tid, 1, ups1, nxt)
    assert fl.task(tid).epoch == 2


def test_epoch_closes_at_the_window_end_with_min_clients() -> None:
    fl = FL(n_clients=7)
    c = fl.clients
    init = init_model()
    window = 3
    tid = fl.new_task(init, min_clients=5, max_clients=7, window=window)
    start = fl.task(tid).epoch_start
    fl.join_all(tid, c)
    h = Honest()
    ups = {pub(k): h.one() for k in c[:5]}
    fl.submit_all(tid, 0, [(k, ups[pub(k)]) for k in c[:5]])
    while fl.height < start + window - 1:
        fl.empty()
        assert not fl.task(tid).revealing, fl.height
    fl.empty()  # the first block after the window ends the commit phase
    assert fl.task(tid).reveal_start == start + window + 1 == fl.height + 1
    # the reveal phase has a window of its own: two of the five reveal at once, three late
    fl.reveal_all(tid, 0, c[:2])
    reveal_start = fl.task(tid).reveal_start
    while fl.height < reveal_start + window - 1:
        fl.empty()
    fl.reveal_all(tid, 0, c[2:5])  # the window's last block: still taken, and it closes
    summary = fl.summary(tid, 0)
    assert summary is not None and summary.closed_at == reveal_start + window == fl.height
    check_epoch(fl, tid, 0, ups, init)
    assert fl.task(tid).epoch_start == fl.height + 1


def test_epoch_does_not_wait_for_clients_that_can_no_longer_submit() -> None:
    """After a client is barred from the task (a zero update in two epochs: two strikes), another
    turns slashable in it (it resent the global step) and a third is slashed on the L1, the next
    epoch closes in the block where the rest submit, not at its window's end. A client with one
    strike is still waited for, and so is a client that could still submit and has not."""
    fl = FL(n_clients=9)
    c = fl.clients
    init = init_model()
    window = 20
    tid = fl.new_task(init, min_clients=5, max_clients=9, window=window, epochs=5)
    fl.join_all(tid, c)
    h = Honest()
    zero, replayer, gone, idle = c[5], c[6], c[7], c[8]
    pairs = [(k, h.one()) for k in c[:5]] + [(zero, np.zeros(D, np.int8))]
    pairs += [(k, h.one()) for k in (replayer, gone, idle)]
    fl.submit_all(tid, 0, pairs)  # everyone: closes at once
    assert fl.task(tid).epoch == 1
    assert fl.verdict(tid, zero) == Verdict(1, False, 0, NO_EPOCH)  # one strike: still in
    step0 = fl.blob(fl.summary(tid, 0).step)  # type: ignore[union-attr]
    assert step0 is not None
    assert np.count_nonzero(np.frombuffer(step0, np.int8)) >= MIN_PROVABLE_SUPPORT
    fl.block(fl.deposit("slash", [pub(gone)]))

    # epoch 1: the client with one strike may submit, so the epoch waits for it...
    fl.submit_all(tid, 1, [(k, h.one()) for k in (*c[:5], idle)])
    fl.submit_all(tid, 1, [(replayer, np.frombuffer(step0, np.int8))])
    assert fl.task(tid).epoch == 1
    # ...and closes in the block where it does (gone is slashed on the L1: not waited for)
    result = fl.submit_all(tid, 1, [(zero, np.zeros(D, np.int8))])
    summary = fl.summary(tid, 1)
    assert summary is not None and summary.closed_at == result.block.header.height
    assert fl.verdict(tid, zero) == Verdict(2, False, fl.flags(tid, 1, zero), 1, barred=True)
    assert fl.verdict(tid, replayer) == Verdict(0, True, int(Flag.REPLAY_GLOBAL), 1)

    # epoch 2: the barred and the slashable are refused; idle could submit and does not, so the
    # window runs
    start = fl.task(tid).epoch_start
    refused = [fl.submit(zero, tid, 2, h.one()), fl.submit(replayer, tid, 2, h.one())]
    oks = [fl.submit(k, tid, 2, h.one()) for k in c[:5]]
    result = fl.block(*refused, *oks)
    assert receipt(result, refused[0]) == (0, Code.BARRED_FROM_TASK)
    assert receipt(result, refused[1]) == (0, Code.SLASHABLE_IN_TASK)
    assert all(receipt(result, tx) == (1, 0) for tx in oks)
    assert fl.task(tid).epoch == 2
    fl.empty(start + window - fl.height)
    assert fl.task(tid).reveal_start == start + window + 1  # the commit window ran out
    result = fl.reveal_all(tid, 2, c[:5])  # every committer revealed: closes at once
    summary = fl.summary(tid, 2)
    assert summary is not None and summary.closed_at == start + window + 1
    assert set(summary.clients) == {pub(k) for k in c[:5]}

    # epoch 3: idle unbonds on the L1; once the five still able have submitted it closes
    start = fl.task(tid).epoch_start
    fl.block(fl.deposit("unbond", [pub(idle)]))
    result = fl.submit_all(tid, 3, [(k, h.one()) for k in c[:5]])
    summary = fl.summary(tid, 3)
    assert summary is not None and summary.closed_at == result.block.header.height < start + window
    assert fl.replay_from_genesis().get(STATE_PREFIX + state_keys.task(tid)) == fl.get(
        state_keys.task(tid)
    )


def test_epoch_stays_open_below_min_clients_then_closes_when_enough_arrive() -> None:
    fl = FL(n_clients=7)
    c = fl.clients
    init = init_model()
    tid = fl.new_task(init, min_clients=5, max_clients=7, window=2)
    start = fl.task(tid).epoch_start
    fl.join_all(tid, c)
    h = Honest()
    ups = {pub(k): h.one() for k in c[:5]}
    fl.submit_all(tid, 0, [(k, ups[pub(k)]) for k in c[:4]])
    fl.empty(4)
    assert fl.height > start + 2
    assert fl.summary(tid, 0) is None
    t = fl.task(tid)
    assert t.epoch == 0 and len(t.submitted) == 4
    fl.submit_all(tid, 0, [(c[4], ups[pub(c[4])])])
    summary = fl.summary(tid, 0)
    assert summary is not None and summary.closed_at == fl.height
    check_epoch(fl, tid, 0, ups, init)


def test_task_finishes_after_its_epochs_honest_clients_never_flagged() -> None:
    fl = FL(n_clients=7)
    c = fl.clients[:6]
    base = init_model()
    epochs = 4
    tid = fl.new_task(base, min_clients=5, max_clients=6, epochs=epochs)
    other = fl.new_task(init_model(seed=9), min_clients=5, max_clients=6, epochs=9)
    fl.join_all(tid, c)
    h = Honest(seed=3)
    for ep in range(epochs):
        assert fl.open_tasks() == [tid, other]
        ups = {pub(k): h.one() for k in c}
        fl.submit_all(tid, ep, [(k, ups[pub(k)]) for k in c])
        base = check_epoch(fl, tid, ep, ups, base)
        for k in c:
            assert fl.flags(tid, ep, k) == 0, (ep, Flag(fl.flags(tid, ep, k)))
            assert fl.verdict(tid, k) == CLEAN
    t = fl.task(tid)
    assert (t.status, t.epoch) == (FINISHED, epochs)
    assert fl.model(t.base).tobytes() == base.tobytes()
    assert fl.open_tasks() == [other]
    late = fl.submit(c[0], tid, epochs, h.one())
    late_prev = fl.submit(c[1], tid, epochs - 1, h.one())
    join = fl.join(fl.clients[6], tid)
    result = fl.block(late, late_prev, join)
    for tx in (late, late_prev, join):
        assert receipt(result, tx) == (0, Code.TASK_CLOSED)
    assert fl.summary(tid, epochs) is None
    assert fl.task(tid).status == FINISHED


def test_last_open_task_finishing_clears_the_open_list() -> None:
    fl = FL(n_clients=5)
    c = fl.clients
    tid = fl.new_task(min_clients=5, max_clients=5, epochs=1)
    fl.join_all(tid, c)
    h = Honest()
    fl.submit_all(tid, 0, [(k, h.one()) for k in c])
    assert fl.task(tid).status == FINISHED
    assert fl.get(state_keys.OPEN_TASKS) is None


# -- verdicts ------------------------------------------------------------------


def stake_of(fl: FL, client: SigningKey) -> StakeRecord:
    raw = fl.get(state_keys.stake(pub(client)))
    assert raw is not None
    return StakeRecord.decode(raw)


def genesis_stake(fl: FL, client: SigningKey) -> StakeRecord:
    i = fl.clients.index(client)
    return StakeRecord(bytes([i + 1]) * 20, 1000, STAKED)  # type: ignore[arg-type]


def slash_leaf(fl: FL, task_id: bytes, client: SigningKey) -> bytes | None:
    return fl.get(state_keys.slash_evidence(pub(client), task_id))


def test_exact_offences_are_strikes_and_only_a_global_replay_slashes() -> None:
    """ZERO and COPY in epochs 0 and 1 (a strike each time: barred at the second), REPLAY_OWN
    (a strike) and REPLAY_GLOBAL (provable: slashable at once) in epoch 1; in epoch 2 the barred
    and the slashable are refused, and a clean epoch leaves the own-replayer's strike.

    COPY: two colluders reveal one update (``copier`` and ``twin``); both are flagged, since
    under commit-reveal neither position in the epoch marks an original."""
    fl = FL(n_clients=9)
    hon = fl.clients[:6]
    zero, copier, twin = fl.clients[6], fl.clients[7], fl.clients[8]
    init = init_model()
    tid = fl.new_task(init, min_clients=5, max_clients=9, window=2, epochs=3)
    fl.join_all(tid, fl.clients)
    h = Honest(seed=4)
    ups = {pub(k): h.one() for k in hon}
    ups[pub(zero)] = np.zeros(D, dtype=np.int8)
    ups[pub(copier)] = h.one()
    ups[pub(twin)] = ups[pub(copier)].copy()
    order = [*hon, zero, copier, twin]
    fl.submit_all(tid, 0, [(k, ups[pub(k)]) for k in order])
    base = check_epoch(fl, tid, 0, ups, init)
    assert Flag(fl.flags(tid, 0, zero)) & EXACT == Flag.ZERO
    assert Flag(fl.flags(tid, 0, copier)) & EXACT == Flag.COPY
    assert Flag(fl.flags(tid, 0, twin)) & EXACT == Flag.COPY
    for k in hon:
        assert fl.flags(tid, 0, k) == 0
        assert fl.verdict(tid, k) == CLEAN
    # an exact coincidence is a strike, not proof: one strike leaves them in the task
    for k in (zero, copier, twin):
        assert fl.verdict(tid, k) == Verdict(1, False, 0, NO_EPOCH)
        assert slash_leaf(fl, tid, k) is None
    step_bytes = fl.blob(fl.summary(tid, 0).step)  # type: ignore[union-attr]
    assert step_bytes is not None
    step = np.frombuffer(step_bytes, dtype=np.int8)
    assert np.count_nonzero(step) >= MIN_PROVABLE_SUPPORT  # a dense step: resending it proves
    ups1 = {
        pub(hon[0]): ups[pub(hon[0])],  # its own previous update
        pub(hon[1]): step,  # the last global step
        **{pub(k): h.one() for k in hon[2:]},
    }
    ups1[pub(zero)] = np.zeros(D, dtype=np.int8)
    ups1[pub(copier)] = h.one()
    ups1[pub(twin)] = ups1[pub(copier)].copy()
    fl.submit_all(tid, 1, [(k, ups1[pub(k)]) for k in order])  # all 9 joined: closes at once
    base = check_epoch(fl, tid, 1, ups1, base)
    assert Flag(fl.flags(tid, 1, hon[0])) & EXACT == Flag.REPLAY_OWN
    assert Flag(fl.flags(tid, 1, hon[1])) & EXACT == Flag.REPLAY_GLOBAL
    assert fl.verdict(tid, hon[0]) == Verdict(1, False, 0, NO_EPOCH)  # a strike
    assert fl.verdict(tid, hon[1]) == Verdict(0, True, int(Flag.REPLAY_GLOBAL), 1)  # provable
    assert slash_leaf(fl, tid, hon[1]) == (1).to_bytes(4, "big") + int(Flag.REPLAY_GLOBAL).to_bytes(
        4, "big"
    )
    for k in hon[2:]:
        assert fl.flags(tid, 1, k) & EXACT == 0
        assert fl.verdict(tid, k) == CLEAN
    # the second strike bars: reason = that epoch's flags, epoch 1, not slashable
    for k, exact in ((zero, Flag.ZERO), (copier, Flag.COPY), (twin, Flag.COPY)):
        flags = fl.flags(tid, 1, k)
        assert Flag(flags) & EXACT == exact
        assert fl.verdict(tid, k) == Verdict(2, False, flags, 1, barred=True)
        assert slash_leaf(fl, tid, k) is None

    # epoch 2: barred and slashable clients may not submit; the five left close it at once
    h2 = {pub(k): h.one() for k in (hon[0], *hon[2:])}
    refused = {k: fl.submit(k, tid, 2, h.one()) for k in (zero, copier, twin, hon[1])}
    oks = [fl.submit(k, tid, 2, h2[pub(k)]) for k in (hon[0], *hon[2:])]
    result = fl.block(*refused.values(), *oks)  # ends the commit phase
    fl.reveal_all(tid, 2, [hon[0], *hon[2:]])
    assert receipt(result, refused[zero]) == (0, Code.BARRED_FROM_TASK)
    assert receipt(result, refused[copier]) == (0, Code.BARRED_FROM_TASK)
    assert receipt(result, refused[twin]) == (0, Code.BARRED_FROM_TASK)
    assert receipt(result, refused[hon[1]]) == (0, Code.SLASHABLE_IN_TASK)
    assert all(receipt(result, tx) == (1, 0) for tx in oks)
    check_epoch(fl, tid, 2, h2, base)
    assert fl.task(tid).status == FINISHED
    assert fl.flags(tid, 2, hon[0]) == 0
    # strikes do not decay: its clean epoch left the one strike, and it is still standing
    assert fl.verdict(tid, hon[0]) == Verdict(1, False, 0, NO_EPOCH)
    # the verdicts of epoch 1 stand (barred and slashable are final)
    assert fl.verdict(tid, hon[1]) == Verdict(0, True, int(Flag.REPLAY_GLOBAL), 1)
    assert fl.verdict(tid, zero) == Verdict(2, False, fl.flags(tid, 1, zero), 1, barred=True)
    # a verdict in a task never touches the rollup's stake record (a slash is the L1's)
    for k in fl.clients:
        assert stake_of(fl, k) == genesis_stake(fl, k)


@pytest.mark.parametrize("support", [MIN_PROVABLE_SUPPORT - 1, MIN_PROVABLE_SUPPORT])
def test_resending_a_sparse_global_step_is_only_an_echo(support: int) -> None:
    """The honest-collision guard: a converged federation's step can be so sparse that an
    honest client computes it again. Below MIN_PROVABLE_SUPPORT nonzero coordinates an exact
    resend is a GLOBAL_ECHO (a strike); from it on, a REPLAY_GLOBAL (slashable)."""
    fl = FL(n_clients=6)
    c = fl.clients
    init = init_model()
    tid = fl.new_task(init, min_clients=6, max_clients=6, epochs=3)
    fl.join_all(tid, c)
    rng = np.random.default_rng(51)

    def sparse() -> np.ndarray:  # nonzero exactly on the first `support` coordinates
        u = np.zeros(D, dtype=np.int8)
        u[:support] = rng.integers(10, 41, support)
        return u

    ups = {pub(k): sparse() for k in c}
    fl.submit_all(tid, 0, [(k, ups[pub(k)]) for k in c])
    base = check_epoch(fl, tid, 0, ups, init)
    assert all(fl.flags(tid, 0, k) == 0 for k in c)
    step_bytes = fl.blob(fl.summary(tid, 0).step)  # type: ignore[union-attr]
    assert step_bytes is not None
    step = np.frombuffer(step_bytes, dtype=np.int8)
    assert np.count_nonzero(step) == support
    echo = c[5]
    ups1 = {pub(k): sparse() for k in c[:5]}
    ups1[pub(echo)] = step.copy()
    fl.submit_all(tid, 1, [(k, ups1[pub(k)]) for k in c])
    check_epoch(fl, tid, 1, ups1, base)
    for k in c[:5]:
        assert fl.flags(tid, 1, k) == 0
    flags = Flag(fl.flags(tid, 1, echo))
    v = fl.verdict(tid, echo)
    if support < MIN_PROVABLE_SUPPORT:
        assert flags & EXACT == 0 and flags & Flag.GLOBAL_ECHO, flags
        assert v == Verdict(1, False, 0, NO_EPOCH)
        assert slash_leaf(fl, tid, echo) is None
    else:
        assert flags & EXACT == Flag.REPLAY_GLOBAL and not flags & Flag.GLOBAL_ECHO, flags
        assert v == Verdict(0, True, int(Flag.REPLAY_GLOBAL), 1)
        assert slash_leaf(fl, tid, echo) is not None
    assert stake_of(fl, echo) == genesis_stake(fl, echo)


def test_a_sybil_cannot_copy_an_update_or_a_commitment() -> None:
    """Commit-reveal: during the commit phase only digests are public, so the one thing a
    sybil can copy is the victim's commitment, sealed first. It cannot open it: the digest
    binds the victim's key, so the victim's own update and salt, public once revealed, fail
    the sybil's reveal (COMMITMENT_MISMATCH). The victim's epoch is clean; the sybil's
    unopened commitment is a strike (REVEAL_MISSING), and it earns nothing."""
    fl = FL(n_clients=6)
    c = fl.clients
    init = init_model()
    tid = fl.new_task(init, min_clients=5, max_clients=6, epochs=2)
    fl.join_all(tid, c)
    h = Honest(seed=8)
    victim, sybil = c[3], c[5]
    ups = {pub(k): h.one() for k in c[:5]}
    commits = [fl.submit(k, tid, 0, ups[pub(k)]) for k in c[:5]]
    fl.block(*commits)
    seen = fl.task(tid).commitments[3]
    copied = fl.tx(sybil, COMMIT_UPDATE, [tid, 0, seen])  # sealed after, but order is nothing
    assert receipt(fl.block(copied), copied) == (1, 0)
    assert fl.task(tid).revealing
    fl.reveal_all(tid, 0, [victim])
    _, body, salt = fl._reveals[(pub(victim), tid, 0)]
    stolen = fl.tx(sybil, SUBMIT_UPDATE, [tid, 0, body, salt])
    assert receipt(fl.block(stolen), stolen) == (0, Code.COMMITMENT_MISMATCH)
    fl.reveal_all(tid, 0, [k for k in c[:5] if k is not victim])
    assert fl.task(tid).epoch == 0  # the sybil could still reveal: the window runs
    fl.empty(fl.task(tid).reveal_start + 4 - fl.height)
    summary = fl.summary(tid, 0)
    assert summary is not None and list(summary.clients) == [*map(pub, c[:5]), pub(sybil)]
    check_epoch(fl, tid, 0, ups, init)
    assert fl.flags(tid, 0, victim) == 0 and fl.verdict(tid, victim) == CLEAN
    rec = fl.record(tid, 0, sybil)
    assert rec.flags == Flag.REVEAL_MISSING and rec.update == b"" and not rec.selected
    assert fl.verdict(tid, sybil) == Verdict(1, False, 0, NO_EPOCH)  # a strike
    assert fl.get(state_keys.last_update(tid, pub(sybil))) is None
    raw = fl.get(state_keys.reward_share(tid, pub(sybil)))
    assert raw is not None and settlement.decode_reward_share(raw) == (0, False)
    raw = fl.get(state_keys.reward_share(tid, pub(victim)))
    # the first epoch's unflagged update earns the full credit
    assert raw is not None and settlement.decode_reward_share(raw) == (CREDIT_SCALE, False)
    assert stake_of(fl, victim) == genesis_stake(fl, victim)


def test_noise_attackers_barred_after_strikes_stake_untouched() -> None:
    strikes = 3
    fl = FL(n_clients=8)
    hon, bad = fl.clients[:6], fl.clients[6:]
    base = init_model()
    rules = EpochRules(f=2, strikes_to_bar=strikes)
    tid = fl.new_task(base, min_clients=7, max_clients=8, epochs=strikes, rules=rules)
    fl.join_all(tid, fl.clients)
    h = Honest(seed=6)
    rng = np.random.default_rng(7)
    for ep in range(strikes):
        ups = {pub(k): h.one() for k in hon}
        for k in bad:
            ups[pub(k)] = rng.integers(-127, 128, D).astype(np.int8)
        fl.submit_all(tid, ep, [(k, ups[pub(k)]) for k in fl.clients])
        base = check_epoch(fl, tid, ep, ups, base, f=2)
        for k in hon:
            assert fl.flags(tid, ep, k) == 0, (ep, Flag(fl.flags(tid, ep, k)))
            assert fl.verdict(tid, k) == CLEAN
        for k in bad:
            flags = fl.flags(tid, ep, k)
            assert flags & EXACT == 0
            assert flags & Flag.KRUM_OUTLIER, Flag(flags)
            rec = fl.record(tid, ep, k)
            assert rec.rank >= len(hon) and not rec.selected
            v = fl.verdict(tid, k)
            if ep + 1 < strikes:
                assert v == Verdict(ep + 1, False, 0, NO_EPOCH)
            else:  # barred exactly at strikes_to_bar, with that epoch's flags; never slashable
                assert v == Verdict(strikes, False, flags, ep, barred=True)
                assert flags & int(STATISTICAL) == flags
            assert slash_leaf(fl, tid, k) is None
            assert stake_of(fl, k) == genesis_stake(fl, k)
    assert fl.task(tid).status == FINISHED


NOISE, CLEAN_EPOCH, ABSENT = "F", "C", "-"


@pytest.mark.parametrize(
    ("strikes_to_bar", "patterns", "expected"),
    [
        (  # strikes_to_bar = 2: clean epochs between flags do not wash a strike away
            2,
            {"alternating": "FCF--", "twice": "FF---", "late": "CCCCF"},
            {"alternating": [1, 1, 2], "twice": [1, 2], "late": [0, 0, 0, 0, 1]},
        ),
        (  # strikes_to_bar = 3
            3,
            {"slow": "FCCFF", "spread": "CFCCF"},
            {"slow": [1, 1, 1, 2, 3], "spread": [0, 1, 1, 1, 2]},
        ),
    ],
)
def test_strikes_accumulate_and_bar_at_strikes_to_bar(
    strikes_to_bar: int, patterns: dict[str, str], expected: dict[str, list[int]]
) -> None:
    """Each flagged epoch adds a strike and clean epochs take none away (an attacker flagged
    every other epoch must not stay in); the verdict is barred (not slashable) in the epoch the
    count reaches ``strikes_to_bar``, after which the client's submit fails with
    BARRED_FROM_TASK and no close waits for it."""
    epochs = 5
    names = list(patterns)
    fl = FL(n_clients=6 + len(names))
    hon = fl.clients[:6]
    who = dict(zip(names, fl.clients[6:], strict=True))
    base = init_model()
    rules = EpochRules(f=2, strikes_to_bar=strikes_to_bar)
    n = len(fl.clients)
    tid = fl.new_task(base, min_clients=7, max_clients=n, epochs=epochs, window=50, rules=rules)
    fl.join_all(tid, fl.clients)
    h = Honest(seed=61)
    rng = np.random.default_rng(62)
    barred_at: dict[str, int] = {}
    for ep in range(epochs):
        ups = {pub(k): h.one() for k in hon}
        refused = []
        for name, k in who.items():
            p = patterns[name][ep]
            if name in barred_at:
                refused.append(fl.submit(k, tid, ep, h.one()))
            elif p == NOISE:
                ups[pub(k)] = rng.integers(-127, 128, D).astype(np.int8)
            elif p == CLEAN_EPOCH:
                ups[pub(k)] = h.one()
        oks = [fl.submit(k, tid, ep, ups[pub(k)]) for k in fl.clients if pub(k) in ups]
        result = fl.block(*refused, *oks)
        assert all(receipt(result, tx) == (0, Code.BARRED_FROM_TASK) for tx in refused)
        assert all(receipt(result, tx) == (1, 0) for tx in oks)
        result = fl.reveal_all(tid, ep, [k for k in fl.clients if pub(k) in ups])
        # everyone still in the task committed and revealed: closed in this block (window 50)
        summary = fl.summary(tid, ep)
        assert summary is not None and summary.closed_at == result.block.header.height
        base = check_epoch(fl, tid, ep, ups, base, f=2)
        for k in hon:
            assert fl.flags(tid, ep, k) == 0, (ep, Flag(fl.flags(tid, ep, k)))
        for name, k in who.items():
            if name in barred_at:
                assert fl.verdict(tid, k).barred  # type: ignore[union-attr]
                continue
            flags = fl.flags(tid, ep, k)
            assert bool(flags) == (patterns[name][ep] == NOISE), (name, ep, Flag(flags))
            strikes = expected[name][ep]
            if strikes >= strikes_to_bar:
                assert fl.verdict(tid, k) == Verdict(strikes, False, flags, ep, barred=True)
                barred_at[name] = ep
            else:
                assert fl.verdict(tid, k) == Verdict(strikes, False, 0, NO_EPOCH), (name, ep)
            assert slash_leaf(fl, tid, k) is None
    assert fl.task(tid).status == FINISHED
    for name, k in who.items():
        assert (name in barred_at) == (max(expected[name]) >= strikes_to_bar)
        assert len(expected[name]) == (barred_at[name] + 1 if name in barred_at else epochs)
        assert stake_of(fl, k) == genesis_stake(fl, k)
        # reward: the credits of its unflagged updates; a barred client forfeits all
        raw = fl.get(state_keys.reward_share(tid, pub(k)))
        assert raw is not None
        mine = [fl.record(tid, ep, k) for ep in range(len(expected[name]))]
        assert all(r.credit == 0 for r in mine if r.flags)
        credit = sum(r.credit for r in mine)
        assert settlement.decode_reward_share(raw) == (credit, name in barred_at)


# -- report_evaluation ---------------------------------------------------------


def test_report_evaluation() -> None:
    fl = FL(n_clients=5)
    c = fl.clients
    tid = fl.new_task(min_clients=5, max_clients=5, epochs=5, target=900_000)
    fl.join_all(tid, c)
    h = Honest()
    early = fl.report(fl.requester, tid, 0, 100)
    unknown = fl.report(fl.requester, sha(b"none"), 0, 100)
    result = fl.block(early, unknown)
    assert receipt(result, early) == (0, Code.WRONG_EPOCH)
    assert receipt(result, unknown) == (0, Code.TASK_NOT_FOUND)
    fl.submit_all(tid, 0, [(k, h.one()) for k in c])
    by_client = fl.report(c[0], tid, 0, 999_999)
    by_outsider = fl.report(fl.outsider, tid, 0, 999_999)
    low = fl.report(fl.requester, tid, 0, 500_000)
    result = fl.block(by_client, by_outsider, low)
    assert receipt(result, by_client) == (0, Code.NOT_AUTHORIZED)
    assert receipt(result, by_outsider) == (0, Code.NOT_AUTHORIZED)
    assert receipt(result, low) == (1, 0)
    assert fl.summary(tid, 0).accuracy_ppm == 500_000  # type: ignore[union-attr]
    assert fl.task(tid).status == OPEN and fl.open_tasks() == [tid]
    again = fl.report(fl.evaluator, tid, 0, 950_000)
    not_yet = fl.report(fl.evaluator, tid, 1, 950_000)
    result = fl.block(again, not_yet)
    assert receipt(result, again) == (0, Code.ALREADY_EVALUATED)
    assert receipt(result, not_yet) == (0, Code.WRONG_EPOCH)
    fl.submit_all(tid, 1, [(k, h.one()) for k in c])
    hit = fl.report(fl.evaluator, tid, 1, 900_000)
    assert receipt(fl.block(hit), hit) == (1, 0)
    assert fl.summary(tid, 1).accuracy_ppm == 900_000  # type: ignore[union-attr]
    t = fl.task(tid)
    assert (t.status, t.epoch) == (COMPLETE, 2)
    assert fl.open_tasks() == []
    late = fl.submit(c[0], tid, 2, h.one())
    assert receipt(fl.block(late), late) == (0, Code.TASK_CLOSED)
    fl.empty(2)
    assert fl.summary(tid, 2) is None


def test_report_evaluation_with_a_huge_epoch_fails_cleanly() -> None:
    fl = FL(n_clients=5)
    tid = fl.new_task(min_clients=5, max_clients=5)
    tx = fl.report(fl.requester, tid, 2**32, 100)
    result = fl.block(tx)
    included = [r.code for r in result.receipts if r.tx_hash == tx.hash]
    dropped = [exc.code for t, exc in result.dropped if t == tx]
    assert included == [Code.WRONG_EPOCH] or dropped == [Code.INVALID_PAYLOAD]


# -- determinism ---------------------------------------------------------------


def scenario(backend: str = "numpy", n: int = 10, d: int = 4096, epochs: int = 2) -> FL:
    """A task run for ``epochs`` epochs with honest clients, a noise sender and a zero sender."""
    fl = FL(n_clients=n, backend=backend)
    tid = fl.new_task(
        init_model(d),
        layout=(("w", (d,)),),
        min_clients=n - 2,
        max_clients=n,
        epochs=epochs + 1,
        rules=EpochRules(f=2),
    )
    fl.join_all(tid, fl.clients)
    h = Honest(d=d, seed=11)
    rng = np.random.default_rng(12)
    for ep in range(epochs):
        pairs = [(k, h.one()) for k in fl.clients[:-2]]
        pairs.append((fl.clients[-2], rng.integers(-127, 128, d).astype(np.int8)))
        if ep == 0:
            pairs.append((fl.clients[-1], np.zeros(d, dtype=np.int8)))
        else:
            fl.empty(4)
        fl.submit_all(tid, ep, pairs)
        fl.run_out(tid, ep)  # no-op once everyone revealed
    fl.empty(5)
    assert fl.task(tid).epoch == epochs
    return fl


def scenario_root(backend: str = "numpy") -> str:
    return scenario(backend).root.hex()


def test_replay_from_genesis_gives_the_same_roots() -> None:
    fl = scenario(d=1000)
    store = fl.replay_from_genesis()
    assert store.data == fl.chain.store.data
    again = scenario(d=1000)
    assert [b.header.state_root for b in again.chain.blocks] == [
        b.header.state_root for b in fl.chain.blocks
    ]


def _run_permuted(order: list[int], ups: list[np.ndarray]) -> tuple[FL, bytes]:
    fl = FL(n_clients=len(ups))
    tid = fl.new_task(min_clients=5, max_clients=len(ups))
    fl.join_all(tid, fl.clients)
    fl.submit_all(tid, 0, [(fl.clients[i], ups[i]) for i in order])
    return fl, tid


def test_submission_order_changes_only_the_recorded_order() -> None:
    """Two orders of the same commitments (one pair of them identical) give the same flags,
    scores, verdicts and reward shares: both copies are flagged whichever is first, so the
    order a sequencer picks decides only the summary's list and how a tie in rank is broken."""
    h = Honest(seed=21)
    ups = h.many(6)
    ups.append(np.random.default_rng(22).integers(-127, 128, D).astype(np.int8))
    ups[5] = ups[2].copy()  # a copy: both are flagged, whatever the order
    a, tid = _run_permuted([0, 1, 2, 3, 4, 5, 6], ups)
    b, tid_b = _run_permuted([6, 5, 4, 3, 1, 0, 2], ups)
    assert tid == tid_b
    sa, sb = a.summary(tid, 0), b.summary(tid, 0)
    assert sa is not None and sb is not None
    assert list(sa.clients) == [pub(a.clients[i]) for i in range(7)]
    assert list(sb.clients) == [pub(b.clients[i]) for i in [6, 5, 4, 3, 1, 0, 2]]
    ra = {k: a.record(tid, 0, k) for k in a.clients}
    rb = {k: b.record(tid, 0, k) for k in b.clients}
    c2, c5 = a.clients[2], a.clients[5]
    for r in (ra, rb):
        assert Flag(r[c5].flags) & EXACT == Flag.COPY and Flag(r[c2].flags) & EXACT == Flag.COPY
    for k in a.clients:
        if k in (c2, c5):  # equal scores: their ranks are tied, broken by position
            assert {ra[c2].rank, ra[c5].rank} == {rb[c2].rank, rb[c5].rank}
            assert replace(ra[k], rank=0) == replace(rb[k], rank=0)
        else:
            assert ra[k] == rb[k]
    assert a.task(tid).base == b.task(tid).base
    assert sa.step == sb.step
    check_epoch(a, tid, 0, {pub(k): u for k, u in zip(a.clients, ups, strict=True)}, init_model())
    check_epoch(b, tid, 0, {pub(k): u for k, u in zip(b.clients, ups, strict=True)}, init_model())
    # the copy is a strike, not a slash: nobody is slashable
    for fl in (a, b):
        for k in (c2, c5):
            assert fl.verdict(tid, k) == Verdict(1, False, 0, NO_EPOCH)
        assert all(fl.verdict(tid, k).standing for k in fl.clients)  # type: ignore[union-attr]
    da = a.chain.store.keys_with_prefix(STATE_PREFIX)
    db = b.chain.store.keys_with_prefix(STATE_PREFIX)
    assert set(da) == set(db)
    assert not any(k.startswith(STATE_PREFIX + b"slash/") for k in da)
    differ = {k[len(STATE_PREFIX) :] for k in set(da) & set(db) if da[k] != db[k]}
    assert differ == {
        state_keys.epoch(tid, 0),
        state_keys.client_record(tid, 0, pub(c2)),  # the tied ranks
        state_keys.client_record(tid, 0, pub(c5)),
    }


def test_score_ties_are_broken_by_submission_position() -> None:
    # u_i = common part + a bump on a block of coordinates of its own: every pairwise
    # distance is equal, so every Krum score is equal
    n, block = 5, 100
    ups = []
    for i in range(n):
        u = np.full(D, 10, dtype=np.int8)
        u[i * block : (i + 1) * block] = 60
        ups.append(u)
    init = init_model()
    results = []
    for order in ([0, 1, 2, 3, 4], [4, 2, 0, 3, 1]):
        fl, tid = _run_permuted(order, ups)
        recs = [fl.record(tid, 0, fl.clients[i]) for i in order]
        assert len({r.score for r in recs}) == 1
        assert [r.rank for r in recs] == list(range(n))  # rank = submission position
        assert all(r.flags == 0 for r in recs)
        # the default aggregator averages every unflagged update, whatever the ranks
        agg = robust.mean(np.stack([ups[i] for i in order]))
        nxt = fl.model(fl.task(tid).base)
        assert nxt.tobytes() == (init + agg).astype("<i4").tobytes()
        check_epoch(fl, tid, 0, {pub(fl.clients[i]): ups[i] for i in order}, init)
        results.append(nxt.tobytes())
    assert results[0] == results[1]  # the mean does not depend on submission order


def test_blas_thread_count_does_not_change_the_root(tmp_path: Path) -> None:
    script = tmp_path / "root.py"
    script.write_text(
        "import sys\n"
        f"sys.path[:0] = [{str(TESTS_DIR)!r}, {str(TESTS_DIR.parent)!r}]\n"
        "import test_fl\n"
        "print(test_fl.scenario_root())\n"
    )
    roots = []
    for threads in ("1", "2"):
        env = dict(os.environ)
        env.update(OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        out = subprocess.run(
            [sys.executable, str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=str(TESTS_DIR.parent),
        )
        assert out.returncode == 0, out.stderr
        roots.append(out.stdout.strip())
    assert len(roots[0]) == 64
    assert roots[0] == roots[1] == scenario_root()


def test_torch_backend_gives_the_same_roots() -> None:
    pytest.importorskip("torch")
    a, b = scenario("numpy"), scenario("torch")
    assert [blk.header.state_root for blk in a.chain.blocks] == [
        blk.header.state_root for blk in b.chain.blocks
    ]


# -- consensus bounds on the rules ------------------------------------------------------


def test_rule_bounds_accept_the_defaults_and_their_edges() -> None:
    check_bounds(EpochRules())
    edges = EpochRules(
        krum_ratio=(2, 1),
        near_zero=(1, 100),
        near_copy_cos=(99, 100),
        global_echo_cos=(1, 1),
        uncorrelated_cos=(1, 10),
        strikes_to_bar=2,
    )
    check_bounds(edges)


fractions = st.tuples(st.integers(0, 10**6), st.integers(1, 10**6))


@settings(max_examples=200, deadline=None)
@given(
    krum=fractions, zero=fractions, copy=fractions, echo=fractions, unc=fractions,
    strikes=st.integers(1, 10),
)  # fmt: skip
def test_a_rule_set_passes_the_bounds_exactly_when_every_threshold_is_inside(
    krum: tuple[int, int],
    zero: tuple[int, int],
    copy: tuple[int, int],
    echo: tuple[int, int],
    unc: tuple[int, int],
    strikes: int,
) -> None:
    rules = EpochRules(
        krum_ratio=krum,
        near_zero=zero,
        near_copy_cos=copy,
        global_echo_cos=echo,
        uncorrelated_cos=unc,
        strikes_to_bar=strikes,
    )
    inside = (
        Fraction(*krum) >= 2
        and Fraction(*zero) <= Fraction(1, 100)
        and Fraction(99, 100) <= Fraction(*copy) <= 1
        and Fraction(99, 100) <= Fraction(*echo) <= 1
        and Fraction(*unc) <= Fraction(1, 10)
        and strikes >= 2
    )
    try:
        check_bounds(rules)
    except ValueError as exc:
        assert not inside, exc
        assert any(name in str(exc) for name in BOUNDS), exc
    else:
        assert inside


def test_a_client_repeating_itself_is_never_slashable_even_when_the_step_is_its_update() -> None:
    """Red-team scenario: the previous step can be exactly a client's own update (it alone was
    clean, or sybils shaped the mean onto it); if the client then honestly repeats itself (a
    converged int8 update), the resend of the step is not proof: a REPLAY_OWN strike only."""
    fl = FL(n_clients=3)
    v, z1, z2 = fl.clients
    tid = fl.new_task(
        init_model(), min_clients=3, max_clients=3, window=4, epochs=4, rules=EpochRules(f=0)
    )
    fl.join_all(tid, fl.clients)
    h = Honest(seed=5)
    fl.submit_all(tid, 0, [(k, h.one()) for k in fl.clients])
    v1 = h.one()
    zeros = np.zeros(D, np.int8)
    fl.submit_all(tid, 1, [(v, v1), (z1, zeros), (z2, zeros)])
    summary = fl.summary(tid, 1)
    assert summary is not None
    step = np.frombuffer(fl.blob(summary.step) or b"", np.int8)
    assert np.array_equal(step, v1) and np.count_nonzero(step) >= 64  # the step is v's update
    fl.submit_all(tid, 2, [(v, v1), (z1, h.one()), (z2, h.one())])
    flags = Flag(fl.flags(tid, 2, v))
    assert flags & Flag.REPLAY_OWN and not flags & Flag.REPLAY_GLOBAL, flags
    verdict = fl.verdict(tid, v)
    assert verdict is not None and not verdict.slashable
    assert slash_leaf(fl, tid, v) is None


def test_a_task_that_can_no_longer_reach_min_clients_ends_by_rule() -> None:
    """Red-team scenario: with every seat taken, a barred client leaves fewer than
    ``min_clients`` that may submit; once the window has passed the task finishes and settles
    on the epochs it trained instead of stalling forever with its deposit locked."""
    fl = FL(n_clients=5)
    c = fl.clients
    tid = fl.new_task(init_model(), min_clients=5, max_clients=5, window=2, epochs=4)
    fl.join_all(tid, c)
    h = Honest(seed=11)
    zeros = np.zeros(D, np.int8)
    for ep in range(2):  # c[4] sends zeros twice: two strikes, barred after epoch 1
        fl.submit_all(tid, ep, [(k, h.one()) for k in c[:4]] + [(c[4], zeros)])
    assert fl.verdict(tid, c[4]).barred  # type: ignore[union-attr]
    fl.submit_all(tid, 2, [(k, h.one()) for k in c[:4]])
    start = fl.task(tid).epoch_start
    while fl.height < start + 2 - 1:  # inside the window: still open, waiting
        fl.empty()
        assert fl.task(tid).status == OPEN
    fl.empty()  # the window has passed: 4 can submit, 5 are needed, no seat is free
    task = fl.task(tid)
    assert (task.status, task.epoch, task.submitted) == (FINISHED, 2, [])
    assert fl.open_tasks() == []
    raw = fl.get(state_keys.settlement(tid))
    assert raw is not None
    # two trained epochs; the four honest clients' credits; the barred one forfeits
    total = sum(fl.record(tid, ep, k).credit for ep in (0, 1) for k in c[:4])
    assert total >= 4 * CREDIT_SCALE
    assert settlement.decode_settlement(raw) == settlement.Settlement(2, 2, total)
    assert fl.replay_from_genesis().data == fl.chain.store.data


def test_a_task_with_a_free_seat_is_not_stranded() -> None:
    """While a seat is free, a newcomer may still join and bring the epoch to min_clients."""
    fl = FL(n_clients=6)
    c = fl.clients
    tid = fl.new_task(init_model(), min_clients=5, max_clients=6, window=2, epochs=4)
    fl.join_all(tid, c[:5])
    h = Honest(seed=12)
    zeros = np.zeros(D, np.int8)
    for ep in range(2):
        fl.submit_all(tid, ep, [(k, h.one()) for k in c[:4]] + [(c[4], zeros)])
    fl.submit_all(tid, 2, [(k, h.one()) for k in c[:4]])
    fl.empty(5)
    assert fl.task(tid).status == OPEN and fl.task(tid).epoch == 2
    fl.join_all(tid, [c[5]])
    fl.submit_all(tid, 2, [(c[5], h.one())])
    assert fl.task(tid).epoch == 3


def test_a_scaled_copy_of_another_update_is_a_near_copy() -> None:
    """Red-team scenario: 0.85 x an honest update of the epoch went unflagged under the former
    81% norm-ratio gate and was paid like honest work; NEAR_COPY is the direction alone.
    Under commit-reveal such a pair means a leak or collusion: both are flagged."""
    fl = FL(n_clients=6)
    c = fl.clients
    tid = fl.new_task(init_model(), min_clients=6, max_clients=6, window=4, epochs=2)
    fl.join_all(tid, c)
    h = Honest(seed=9)
    ups = [h.one() for _ in range(5)]
    scaled = np.rint(ups[2].astype(np.float64) * 0.85).astype(np.int8)
    assert not np.array_equal(scaled, ups[2])
    fl.submit_all(tid, 0, [*zip(c[:5], ups, strict=True), (c[5], scaled)])
    assert Flag(fl.flags(tid, 0, c[5])) & Flag.NEAR_COPY
    assert Flag(fl.flags(tid, 0, c[2])) & Flag.NEAR_COPY
    assert all(fl.flags(tid, 0, k) == 0 for k in (*c[:2], *c[3:5]))
    share = fl.get(state_keys.reward_share(tid, pub(c[5])))
    assert share is not None and settlement.decode_reward_share(share) == (0, False)
