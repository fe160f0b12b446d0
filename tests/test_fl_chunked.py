"""Chunked updates and models (stf.fl.chunks) and the streaming epoch close.

An update may be sent as a list of chunk blob ids instead of its bytes; base models and
steps larger than ``max_blob_size`` are stored as chunk manifests; the epoch close reads
every array a column block at a time, and the block width (a memory budget, not consensus)
never changes a byte of state.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np
import pytest
from conftest import Chain
from nacl.signing import SigningKey
from test_fl import (
    CHAIN_ID,
    FL,
    SCRIPT,
    SUBMIT_UPDATE,
    Honest,
    init_model,
    pub,
    receipt,
    sha,
    task_params,
)

from client_sdk import fl as sdk
from client_sdk.keys import Keypair
from stf import encoding, robust, state_keys
from stf.context import Limits
from stf.errors import Code
from stf.fl import epoch as fl_epoch
from stf.fl.chunks import MAX_CHUNKS, Manifest, manifest_size
from stf.fl.flags import Flag
from stf.fl.judge import evaluate_epoch
from stf.fl.records import CLEAN, ClientRecord
from stf.fl.rules import EpochRules
from stf.fl.stats import block_cols
from stf.fl.task import MODEL_DTYPE, TaskParams
from stf.transition import BuildResult
from stf.tx import Transaction

INT32 = np.iinfo(np.int32)
# record fields


def small_blobs(n_clients: int, max_blob_size: int) -> FL:
    """An FL chain whose consensus ``max_blob_size`` is small, so models get chunked."""
    fl = FL(n_clients=n_clients)
    fl.config = dataclasses.replace(fl.config, limits=Limits(max_blob_size=max_blob_size))
    fl.chain = Chain(fl.config, fl.chain.sequencer_key, fl.genesis)
    return fl


def chunks_of(data: bytes, sizes: list[int]) -> list[bytes]:
    assert sum(sizes) == len(data)
    out, at = [], 0
    for s in sizes:
        out.append(data[at : at + s])
        at += s
    return out


def commit_chunked(
    fl: FL, key: SigningKey, task_id: bytes, epoch: int, chunks: list[bytes]
) -> Transaction:
    """The commitment to an update sent as these chunks: its id is the manifest's."""
    return fl.submit(
        key, task_id, epoch, ([sha(c) for c in chunks], sha(sdk.chunk_manifest(chunks)))
    )


def reveal_chunked(
    fl: FL, key: SigningKey, task_id: bytes, epoch: int, chunks: list[bytes]
) -> list[Transaction]:
    """put_blob every chunk not stored yet, then the reveal (submit_update) listing them."""
    uploads = []
    for c in dict.fromkeys(chunks):
        if fl.get(state_keys.blob(sha(c))) is None:
            uploads.append(fl.put_blob(key, c))
    return [*uploads, fl.reveal(key, task_id, epoch)]


def commit_and_reveal(fl: FL, tid: bytes, ep: int, plan: dict[int, Any]) -> BuildResult:
    """Commit every update of ``plan`` (``{client index: bytes or chunks}``) in one block, wait
    for the reveal phase, reveal them all (chunks uploaded only then) in one block."""
    commits = [
        commit_chunked(fl, fl.clients[i], tid, ep, u)
        if isinstance(u, list)
        else fl.submit(fl.clients[i], tid, ep, u)
        for i, u in plan.items()
    ]
    result = fl.block(*commits)
    assert all(r.status == 1 for r in result.receipts), result.receipts
    while not fl.task(tid).revealing:  # not everyone committed: wait for the window
        fl.empty()
    txs: list[Transaction] = []
    for i, u in plan.items():
        k = fl.clients[i]
        txs += reveal_chunked(fl, k, tid, ep, u) if isinstance(u, list) else [fl.reveal(k, tid, ep)]
    result = fl.block(*txs)
    assert all(r.status == 1 for r in result.receipts), result.receipts
    return result


def nonce_of(fl: FL, kp: Keypair) -> int:
    raw = fl.get(state_keys.nonce(kp.public_key))
    return 0 if raw is None else int(encoding.decode(raw))


def new_task_chunked_model(fl: FL, init: np.ndarray, **kw: Any) -> bytes:
    """Create a task whose initial model is uploaded as chunks and a manifest (SDK helper)."""
    model_id, blobs = sdk.model_blobs(init.astype(np.float64), 0, fl.config.limits.max_blob_size)
    assert sdk.model_blob(init.astype(np.float64), 0) == init.astype("<i4").tobytes()
    kw.setdefault("evaluator", pub(fl.evaluator))
    uploads = [fl.put_blob(fl.requester, b) for b in blobs]
    uploads.append(fl.put_blob(fl.requester, SCRIPT))
    create = fl.create(task_params(model_id, sha(SCRIPT), **kw))
    result = fl.block(*uploads, create)
    assert [r.status for r in result.receipts] == [1] * len(result.receipts), result.receipts
    return create.hash


def read(fl: FL, array_id: bytes, dtype: Any, count: int) -> np.ndarray:
    def get(h: bytes) -> bytes:
        raw = fl.blob(h)
        assert raw is not None
        return raw

    return sdk.read_array(get, array_id, dtype, count)


# -- the manifest ------------------------------------------------------------------------


def test_manifest_round_trip_and_rejections() -> None:
    hs = b"".join(sha(bytes([i])) for i in range(3))
    m = Manifest(10, 4, hs)
    assert Manifest.decode(m.encode()) == m
    assert [m.size(j) for j in range(3)] == [4, 4, 2]
    assert len(m.encode()) == manifest_size(10, 4, 3)
    bad = {
        "wrong tag": ["MPS/chunks/v0", 10, 4, [hs[:32]]],
        "too few chunks": ["MPS/chunks/v1", 10, 4, [hs[:32], hs[32:64]]],
        "too many chunks": ["MPS/chunks/v1", 8, 4, [hs[:32], hs[32:64], hs[64:]]],
        "short hash": ["MPS/chunks/v1", 4, 4, [b"\x01" * 31]],
        "no chunks": ["MPS/chunks/v1", 4, 4, []],
        "zero chunk size": ["MPS/chunks/v1", 4, 0, [hs[:32]]],
        "not a list": "MPS/chunks/v1",
    }
    for why, value in bad.items():
        with pytest.raises(ValueError):
            Manifest.decode(encoding.encode(value))
            pytest.fail(why)


# -- chunked submissions -----------------------------------------------------------------


def run_epochs(fl: FL, tid: bytes, plans: list[dict[int, Any]]) -> list[BuildResult]:
    """Per epoch, ``{client index: update bytes or list of chunks}``; one block each."""
    results = []
    for ep, plan in enumerate(plans):
        results.append(commit_and_reveal(fl, tid, ep, plan))
        while fl.task(tid).epoch == ep:  # not everyone revealed: wait for the window
            fl.empty()
    return results


def test_chunked_and_inline_updates_give_the_same_epochs() -> None:
    """The same values, inline on one chain and chunked (any chunking) on the other: the same
    scores, flags, verdicts, rewards, steps and models; only the update ids differ."""
    n = 7
    h = Honest(seed=31)
    ep0 = [h.one().tobytes() for _ in range(n)]
    ep0[5] = ep0[1]  # a copy
    ep0[6] = bytes(len(ep0[0]))  # a zero update
    ep1 = [h.one().tobytes() for _ in range(5)]
    ep1[2] = ep0[2]  # a replay of its own update, chunked this time
    inline = [dict(enumerate(ep0)), dict(enumerate(ep1))]
    sizes = [[700, 700, 600], [1000, 1000], [2000], [999, 999, 2], [1500, 500]]
    chunked = [
        {i: (chunks_of(u, sizes[i % len(sizes)]) if i % 2 == 0 else u) for i, u in enumerate(ep0)},
        {i: chunks_of(u, sizes[(i + 1) % len(sizes)]) for i, u in enumerate(ep1)},
    ]
    chains = []
    for plans in (inline, chunked):
        fl = FL(n_clients=n)
        tid = fl.new_task(min_clients=5, max_clients=n, epochs=3, window=3)
        fl.join_all(tid, fl.clients)
        run_epochs(fl, tid, plans)
        chains.append((fl, tid))
    (a, tid), (b, tid_b) = chains
    assert tid == tid_b
    assert a.summary(tid, 0) == b.summary(tid, 0)
    sa1, sb1 = a.summary(tid, 1), b.summary(tid, 1)
    assert sa1 is not None and sb1 is not None
    assert dataclasses.replace(sa1, clients=sb1.clients, accuracy_ppm=sb1.accuracy_ppm) == sb1
    assert a.task(tid).base == b.task(tid).base
    assert Flag(a.flags(tid, 0, a.clients[5])) & Flag.COPY
    assert Flag(a.flags(tid, 0, a.clients[6])) & Flag.ZERO
    assert Flag(b.flags(tid, 1, b.clients[2])) & Flag.REPLAY_OWN  # read back through manifests
    for ep, plans in enumerate(chunked):
        for i, u in plans.items():
            k = a.clients[i]
            ra, rb = a.record(tid, ep, k), b.record(tid, ep, k)
            assert dataclasses.replace(ra, update=rb.update) == rb
            assert ra.update == sha(inline[ep][i])
            if isinstance(u, list):
                manifest = b.blob(rb.update)
                assert manifest is not None and rb.update == sha(manifest)
                assert Manifest.decode(manifest).hashes == b"".join(sha(c) for c in u)
                assert read(b, rb.update, np.int8, len(inline[ep][i])).tobytes() == inline[ep][i]
            else:
                assert rb.update == ra.update
    for k in a.clients:
        for key in (state_keys.verdict(tid, pub(k)), state_keys.reward_share(tid, pub(k))):
            assert a.get(key) == b.get(key)


def test_chunked_submission_errors() -> None:
    fl = FL(n_clients=6)
    c = fl.clients
    tid = fl.new_task(min_clients=5, max_clients=6, window=50)
    fl.join_all(tid, c)
    u = Honest().one().tobytes()  # 2000 bytes
    stored = chunks_of(u, [800, 800, 400])
    fl.block(*(fl.put_blob(c[0], x) for x in stored))
    other = chunks_of(Honest(seed=9).one().tobytes(), [700, 600, 700])
    long_last = chunks_of(Honest(seed=10).one().tobytes(), [600, 600, 800])
    fl.block(*(fl.put_blob(c[1], x) for x in other + long_last))
    # everyone commits (c[0] to the stored chunks); the reveal phase opens
    fl.block(
        commit_chunked(fl, c[0], tid, 0, stored),
        *(fl.submit(k, tid, 0, u[:500] * 4 if k is c[5] else Honest(seed=3).one()) for k in c[1:]),
    )
    assert fl.task(tid).revealing
    # bytes stored beside the tree by an inline update, never uploaded with put_blob
    fl.block(fl.reveal(c[5], tid, 0))
    assert fl.blob(sha(u[:500] * 4)) is not None

    def submit(k: SigningKey, ids: list[bytes]) -> Transaction:
        return fl.reveal(k, tid, 0, ids)

    cases = {
        "missing": (
            submit(c[0], [sha(stored[0]), sha(b"never uploaded"), sha(stored[2])]),
            Code.BLOB_NOT_FOUND,
            "chunk 1 of 3",
        ),
        "beside the tree": (submit(c[0], [sha(u[:500] * 4)]), Code.BLOB_NOT_FOUND, "put_blob"),
        "too short": (
            submit(c[1], [sha(stored[0]), sha(stored[1])]),
            Code.INVALID_UPDATE,
            "chunks hold 1600 bytes, the layout needs 2000",
        ),
        "too long": (
            submit(c[1], [sha(x) for x in stored] + [sha(other[0])]),
            Code.INVALID_UPDATE,
            "chunks hold 2700 bytes",
        ),
        "middle chunk of another size": (
            submit(c[2], [sha(other[0]), sha(other[1]), sha(other[2])]),
            Code.INVALID_UPDATE,
            "chunk 1 is 600 bytes",
        ),
        "last chunk too long": (
            submit(c[3], [sha(x) for x in long_last]),
            Code.INVALID_UPDATE,
            "(the last) is 800 bytes",
        ),
    }
    result = fl.block(*(tx for tx, _, _ in cases.values()))
    for why, (tx, code, text) in cases.items():
        r = next(r for r in result.receipts if r.tx_hash == tx.hash)
        assert (r.status, r.code) == (0, code), (why, r)
        assert text in r.message, (why, r.message)
    assert fl.task(tid).revealed == [5]
    # malformed lists never get in
    salt = b"\x00" * 32
    bad = [
        fl.tx(c[0], SUBMIT_UPDATE, [tid, 0, [], salt]),
        fl.tx(c[0], SUBMIT_UPDATE, [tid, 0, [b"\x01" * 31], salt]),
        fl.tx(c[0], SUBMIT_UPDATE, [tid, 0, [sha(stored[0])] * (MAX_CHUNKS + 1), salt]),
        fl.tx(c[0], SUBMIT_UPDATE, [tid, 0, 5, salt]),
    ]
    result = fl.block(*bad)
    assert result.receipts == []
    assert [exc.code for _, exc in result.dropped] == [Code.INVALID_PAYLOAD] * 4
    # the chunks in the right order are accepted
    ok = submit(c[0], [sha(x) for x in stored])
    assert receipt(fl.block(ok), ok) == (1, 0)


def test_chunked_sizes_must_align_and_beat_the_manifest() -> None:
    fl = FL(n_clients=5)
    c = fl.clients
    tid = fl.new_task(dtype="int16", min_clients=5, max_clients=5, window=50)
    tid8 = fl.new_task(init_model(seed=3), name="int8", min_clients=5, max_clients=5, window=50)
    fl.join_all(tid, c)
    fl.join_all(tid8, c)
    u16 = (Honest().one().astype("<i2") * 99).tobytes()  # 4000 bytes
    odd = chunks_of(u16, [1001, 1001, 1001, 997])
    tiny = chunks_of(Honest(seed=2).one().tobytes(), [8] * 250)  # 250 x 34-byte ids > 2000
    fl.block(*(fl.put_blob(c[0], x) for x in dict.fromkeys(odd + tiny)))
    fl.block(*(fl.submit(k, t, 0, Honest().one()) for k in c for t in (tid, tid8)))
    assert fl.task(tid).revealing and fl.task(tid8).revealing
    misaligned = fl.reveal(c[0], tid, 0, [sha(x) for x in odd])
    too_small = fl.reveal(c[0], tid8, 0, [sha(x) for x in tiny])
    result = fl.block(misaligned, too_small)
    r1, r2 = result.receipts
    assert (r1.code, r2.code) == (Code.INVALID_UPDATE, Code.INVALID_UPDATE)
    assert "not a multiple of the 2-byte value" in r1.message
    # 250 chunk ids make an 8.5 KB payload, which fails into the block: its sender is a client
    # of the task (a reveal is charged to its quota first, so its failure is paid for)
    assert len(too_small.payload) > 5 * 1024 and "send it inline" in r2.message


def test_create_task_with_a_chunked_initial_model_and_its_errors() -> None:
    fl = small_blobs(5, 1000)
    init = init_model()  # 8000 bytes: over the 1000-byte blob limit
    tid = new_task_chunked_model(fl, init, min_clients=5, max_clients=5)
    assert fl.task(tid).base == fl.task(tid).params.init_model
    assert read(fl, fl.task(tid).base, MODEL_DTYPE, init.size).tobytes() == init.tobytes()
    # a manifest of the wrong total, one naming a missing chunk, one with a wrong chunk size
    data = init.tobytes()
    chunks = sdk.split_chunks(data, 1000)
    wrong_total = Manifest(7996, 1000, b"".join(sha(x) for x in chunks)).encode()
    missing = Manifest(8000, 1000, b"".join(sha(x) for x in chunks[:-1]) + sha(b"x")).encode()
    resized = Manifest(8000, 2000, b"".join(sha(x) for x in chunks[:4])).encode()
    fl.block(*(fl.put_blob(fl.requester, m) for m in (wrong_total, missing, resized)))
    txs = [fl.create(task_params(sha(m), sha(SCRIPT))) for m in (wrong_total, missing, resized)]
    result = fl.block(*txs)
    assert [(r.status, r.code) for r in result.receipts] == [
        (0, Code.INVALID_UPDATE),
        (0, Code.BLOB_NOT_FOUND),
        (0, Code.INVALID_UPDATE),
    ]
    assert "manifest holds 7996 bytes" in result.receipts[0].message
    assert "the manifest says 2000" in result.receipts[2].message


# -- the streaming close -----------------------------------------------------------------


def chunky_run(budget: int | None, aggregator: str, dtype: str = "int8") -> tuple[FL, bytes]:
    """Three epochs on a chain with 1000-byte blobs: chunked initial model, chunked and inline
    updates, chunked steps and models, replays and a copy; the close runs with ``budget``."""
    d, n = 3001, 7
    fl = small_blobs(n, 1000)
    init = init_model(d, seed=4)
    tid = new_task_chunked_model(
        fl,
        init,
        layout=(("w", (d,)),),
        dtype=dtype,
        min_clients=5,
        max_clients=n,
        epochs=3,
        window=2,
        rules=EpochRules(f=1, aggregator=aggregator, strikes_to_bar=9),
    )
    fl.join_all(tid, fl.clients)
    h = Honest(d=d, seed=41)
    rng = np.random.default_rng(42)
    itemsize = np.dtype(dtype).itemsize
    last: dict[int, bytes] = {}
    old = fl_epoch.DEFAULT_BUDGET_BYTES
    if budget is not None:
        fl_epoch.DEFAULT_BUDGET_BYTES = budget
    try:
        for ep in range(3):
            ups = [
                (h.one().astype(dtype) * (1 if itemsize == 1 else 50)).tobytes() for _ in range(n)
            ]
            ups[n - 1] = rng.integers(-100, 100, d).astype(dtype).tobytes()  # noise
            if ep == 0:
                ups[4] = ups[3]
            else:
                ups[ep] = last[ep]  # replays its own previous update
            plan: dict[int, Any] = {}
            for i, u in enumerate(ups):
                if (i + ep) % 3 == 0:
                    plan[i] = u
                else:
                    cut = min(1000, len(u) // (i + 2)) // itemsize * itemsize
                    plan[i] = chunks_of(
                        u, [cut] * (len(u) // cut) + ([len(u) % cut] if len(u) % cut else [])
                    )
                last[i] = u
            active = {
                i: u
                for i, u in plan.items()
                if not (fl.verdict(tid, fl.clients[i]) or CLEAN).slashable
            }
            commit_and_reveal(fl, tid, ep, active)
            while fl.summary(tid, ep) is None:
                fl.empty()
    finally:
        fl_epoch.DEFAULT_BUDGET_BYTES = old
    return fl, tid


@pytest.mark.parametrize("aggregator", ["mean", "median", "trimmed_mean", "multi_krum_mean"])
def test_block_width_never_changes_the_roots(aggregator: str) -> None:
    default, tid = chunky_run(None, aggregator)
    roots = [b.header.state_root for b in default.chain.blocks]
    assert block_cols(9, 1, 9 * 7 + 7 * 64) == 7
    assert block_cols(9, 1, 9 * 37 + 37 * 64) == 37
    for budget in (9 * 7 + 7 * 64, 9 * 37 + 37 * 64):  # 7 and 37 columns per block
        other, _ = chunky_run(budget, aggregator)
        assert [b.header.state_root for b in other.chain.blocks] == roots, budget
    # the certain and statistical flags all fire (through chunked reads)
    want = {
        0: {4: Flag.COPY, 6: Flag.KRUM_OUTLIER},
        1: {1: Flag.REPLAY_OWN},
        2: {2: Flag.REPLAY_OWN},
    }
    for ep, flagged in want.items():
        for i, flag in flagged.items():
            assert Flag(default.flags(tid, ep, default.clients[i])) & flag, (ep, i)
    assert Flag(default.flags(tid, 2, default.clients[6])) & Flag.UNCORRELATED
    # the base models and steps really are chunked
    s0 = default.summary(tid, 0)
    assert s0 is not None
    for blob_id in (s0.step, s0.next_base, s0.base):
        raw = default.blob(blob_id)
        assert raw is not None and Manifest.decode(raw).chunk == 1000


def test_int16_chunked_block_widths_agree() -> None:
    (a, _), (b, _) = chunky_run(None, "mean", "int16"), chunky_run(5 * 64 + 5 * 18, "mean", "int16")
    assert [x.header.state_root for x in a.chain.blocks] == [
        x.header.state_root for x in b.chain.blocks
    ]


def test_evaluate_epoch_is_the_same_for_every_block_width() -> None:
    rng = np.random.default_rng(8)
    for trial in range(12):
        n, d = int(rng.integers(1, 10)), int(rng.integers(1, 700))
        dt = np.int8 if trial % 2 else np.int16
        ups = rng.integers(-120, 120, (n, d)).astype(dt)
        if n > 3:
            ups[3] = ups[0]
        pg = ups[0].copy() if trial % 3 else None
        own = [ups[i].copy() if i % 2 else None for i in range(n)]
        agg = ["mean", "median", "trimmed_mean", "multi_krum_mean"][trial % 4]
        rules = EpochRules(f=1, aggregator=agg)
        want = evaluate_epoch(ups, rules, pg, own)
        for budget in (1, 100, 1000):
            got = evaluate_epoch(ups, rules, pg, own, budget_bytes=budget)
            assert got.clients == want.clients
            assert got.aggregate.tolist() == want.aggregate.tolist()
            assert got.used == want.used


# -- a large model through chunked transactions -------------------------------------------


def test_a_five_million_parameter_task_through_chunked_transactions() -> None:
    """d = 5e6 int8: each update (5 MB) exceeds max_tx_size, the model (20 MB) max_blob_size."""
    d, n = 5_000_000, 5
    fl = FL(n_clients=n)
    limits = fl.config.limits
    assert d > limits.max_tx_size and 4 * d > limits.max_blob_size
    rng = np.random.default_rng(50)
    init = rng.integers(-1000, 1000, d).astype("<i4")
    tid = new_task_chunked_model(
        fl, init, layout=(("w", (1000, 5000)),), min_clients=n, max_clients=n, epochs=2
    )
    params: TaskParams = fl.task(tid).params
    fl.join_all(tid, fl.clients)
    keypairs = [Keypair(k) for k in fl.clients]
    direction = rng.integers(-40, 40, d)
    base = init.astype(np.int64)
    for ep in range(2):
        ups = [
            np.clip(direction + rng.integers(-20, 21, d), -127, 127).astype(np.int8)
            for _ in range(n)
        ]
        blob = limits.max_blob_size
        commits = [
            sdk.commit_update(
                kp, CHAIN_ID, nonce_of(fl, kp), tid, ep, sdk.update_id(u.tobytes(), blob, False)
            )
            for kp, u in zip(keypairs, ups, strict=True)
        ]
        result = fl.block(*commits)
        assert [r.status for r in result.receipts] == [1] * n, result.receipts
        txs: list[Transaction] = []
        for kp, u in zip(keypairs, ups, strict=True):
            txs += sdk.submit_update_chunked(kp, CHAIN_ID, nonce_of(fl, kp), tid, ep, u, blob)
        result = fl.block(*txs)
        assert [r.status for r in result.receipts] == [1] * len(txs), result.receipts
        summary = fl.summary(tid, ep)
        assert summary is not None
        for kp, u in zip(keypairs, ups, strict=True):
            rec = ClientRecord.decode(fl.get(state_keys.client_record(tid, ep, kp.public_key)))  # type: ignore[arg-type]
            assert rec.flags == 0
            chunks = sdk.split_chunks(u.tobytes(), limits.max_blob_size)
            assert rec.update == sdk.blob_id(sdk.chunk_manifest(chunks))
        agg = robust.mean(np.stack(ups))
        base = np.clip(base + agg, INT32.min, INT32.max)
        model = read(fl, summary.next_base, MODEL_DTYPE, d)
        assert model.tobytes() == base.astype("<i4").tobytes()
        step = read(fl, summary.step, np.int8, d)
        assert step.tobytes() == np.clip(agg, -127, 127).astype(np.int8).tobytes()

        def get(h: bytes) -> bytes:
            raw = fl.blob(h)
            assert raw is not None
            return raw

        floats = sdk.read_model(get, summary.next_base, params)
        assert floats[:5].tolist() == (base[:5] / 2**8).tolist()


# -- the SDK -------------------------------------------------------------------------------


def test_sdk_read_array_checks_every_blob() -> None:
    data = np.arange(-500, 500, dtype="<i2").tobytes()  # 2000 bytes
    store = {sha(data): data}
    assert sdk.read_array(store.__getitem__, sha(data), "<i2", 1000).tolist() == list(
        range(-500, 500)
    )
    chunks = sdk.split_chunks(data, 601)
    assert [len(x) for x in chunks] == [600, 600, 600, 200]
    manifest = sdk.chunk_manifest(chunks)
    store.update({sha(x): x for x in chunks})
    store[sha(manifest)] = manifest
    assert sdk.read_array(store.__getitem__, sha(manifest), "<i2", 1000).tobytes() == data
    with pytest.raises(ValueError, match="expected 1998"):
        sdk.read_array(store.__getitem__, sha(manifest), "<i2", 999)
    store[sha(chunks[1])] = chunks[2][:-1] + b"\x00"
    with pytest.raises(ValueError, match="does not hash"):
        sdk.read_array(store.__getitem__, sha(manifest), "<i2", 1000)
    key = Keypair(SigningKey(b"\x07" * 32))
    with pytest.raises(ValueError, match="too small to chunk"):
        sdk.submit_update_chunked(key, CHAIN_ID, 0, sha(b"t"), 0, np.zeros(100, np.int8), 40)
    txs = sdk.submit_update_chunked(key, CHAIN_ID, 3, sha(b"t"), 0, np.zeros(4000, np.int8), 1000)
    assert [t.nonce for t in txs] == [3, 4]  # four identical chunks: one upload
    assert encoding.decode(txs[-1].payload)[2] == [sha(bytes(1000))] * 4
    model_id, blobs = sdk.model_blobs(np.zeros(10), 4, 100)
    assert model_id == sha(blobs[0]) and len(blobs) == 1
    model_id, blobs = sdk.model_blobs(np.arange(100.0), 0, 100)
    assert model_id == sha(blobs[-1]) and Manifest.decode(blobs[-1]).count == 4
    assert hashlib.sha256(blobs[-1]).digest() == model_id


def test_scale_bench_builds_and_closes_an_epoch() -> None:
    """bench/fl_scale.py's set-up and close run (tiny sizes; no timing asserted)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "bench" / "fl_scale.py"
    spec = importlib.util.spec_from_file_location("fl_scale_bench", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.one(6, 5_000_000, "int8", 2**20, False)
    assert r["flagged"] == 0 and r["stacked"] == 30_000_000
    on_disk = bench.one(6, 1_000_000, "int8", 2**20, False, leveldb=True)
    assert on_disk["store"] == "node LevelDB" and on_disk["flagged"] == 0
    assert on_disk["reads"] > 6 and on_disk["read_bytes"] > 6 * 1_000_000
