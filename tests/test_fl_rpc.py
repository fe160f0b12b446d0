"""The federated-learning mps_ methods through an in-process node: a task from upload to verdict."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rpc_fixtures import CHAIN_ID, MSGPACK, NodeHarness, hx, start_node, unhex

from client_sdk import fl as sdk
from client_sdk.keys import Keypair
from client_sdk.proofs import ProofError, checked_value
from client_sdk.tx import put_blob
from stf import encoding, robust, state_keys
from stf.cid import cid_v1, parse_cid_v1
from stf.errors import Code
from stf.fl.flags import Flag
from stf.fl.rules import EpochRules
from stf.fl.task import TaskParams
from stf.genesis import GenesisStake
from stf.tx import Transaction, make_tx

CREATE_TASK, JOIN_TASK, SUBMIT_UPDATE, REPORT_EVALUATION = 3, 4, 5, 6
D = 1200
SCRIPT = b"print('train')\n"


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def fl_tx(kp: Keypair, tx_type: int, nonce: int, value: Any) -> Transaction:
    return make_tx(kp.signing_key, CHAIN_ID, tx_type, nonce, encoding.encode(value))


def params(model: bytes, evaluator: bytes) -> TaskParams:
    return TaskParams(
        name="rpc-task",
        layout=(("w", (30, 30)), ("b", (300,))),
        dtype="int8",
        shift=8,
        init_model=sha(model),
        script=sha(SCRIPT),
        epochs=3,
        target_accuracy_ppm=900_000,
        min_clients=5,
        max_clients=8,
        window_blocks=5,
        evaluator=evaluator,
        rules=EpochRules(),
    )


async def commit_and_reveal(
    h: NodeHarness, tid: bytes, epoch: int, pairs: list[tuple[Keypair, bytes]], nonce: int
) -> int:
    """Commit every update (at ``nonce``) in one block, reveal them (``nonce + 1``) in the
    next; the height of the second, where the epoch closes once everyone revealed."""
    await sealed_ok(
        h, [sdk.commit_update(kp, CHAIN_ID, nonce, tid, epoch, sha(u)) for kp, u in pairs]
    )
    reveals = [sdk.submit_update(kp, CHAIN_ID, nonce + 1, tid, epoch, u) for kp, u in pairs]
    return await sealed_ok(h, reveals)


async def sealed_ok(h: NodeHarness, txs: list[Transaction]) -> int:
    """Send, seal one block, insist every transaction succeeded; return the height."""
    for tx in txs:
        await h.send_ok(tx)
    sealed = await h.seal()
    assert [tx.hash for tx in sealed.block.txs] == [tx.hash for tx in txs]
    assert [(r.status, r.code) for r in sealed.receipts] == [(1, 0)] * len(txs)
    return sealed.block.height


@dataclass(frozen=True)
class Scenario:
    """The actors and the task of the upload-to-verdict scenario, shared by its phases."""

    requester: Keypair
    evaluator: Keypair
    outsider: Keypair
    clients: list[Keypair]
    rng: np.random.Generator  # drawn from in a fixed order, so every run sees the same updates
    init: np.ndarray
    create: Transaction

    @property
    def model(self) -> bytes:
        return self.init.tobytes()

    @property
    def tid(self) -> bytes:
        return self.create.hash

    @property
    def zero(self) -> Keypair:
        """The client that sends zeros in epoch 0 (a strike), then resends the global step in
        epoch 1 (provable: slashable)."""
        return self.clients[5]

    def stakes(self) -> tuple[GenesisStake, ...]:
        return tuple(
            GenesisStake(kp.public_key, bytes([i + 1]) * 20, 1000)
            for i, kp in enumerate(self.clients)
        )


@dataclass(frozen=True)
class EpochZero:
    """Epoch 0 as the test computes it independently of the node, to compare with its answers."""

    ups: list[np.ndarray]
    closed_at: int
    next_base: bytes
    step: bytes


def make_scenario() -> Scenario:
    requester = Keypair.from_seed(b"\x01" * 32)
    evaluator = Keypair.from_seed(b"\x02" * 32)
    rng = np.random.default_rng(5)
    init = rng.integers(-500, 500, D).astype("<i4")
    p = params(init.tobytes(), evaluator.public_key)
    return Scenario(
        requester=requester,
        evaluator=evaluator,
        outsider=Keypair.from_seed(b"\x03" * 32),
        clients=[Keypair.from_seed(bytes([10 + i]) * 32) for i in range(6)],
        rng=rng,
        init=init,
        create=fl_tx(requester, CREATE_TASK, 2, p.to_list()),
    )


async def open_task(h: NodeHarness, sc: Scenario) -> int:
    """Uploads the model and script, creates the task and lets every client join; returns
    the height the task was created at."""
    await sealed_ok(
        h,
        [
            put_blob(sc.requester, CHAIN_ID, 0, sc.model),
            put_blob(sc.requester, CHAIN_ID, 1, SCRIPT),
        ],
    )
    created_at = await sealed_ok(h, [sc.create])
    rc = await h.result("mps_getTransactionReceipt", hx(sc.create.hash))
    assert (rc["status"], rc["code"]) == (1, 0)
    await sealed_ok(h, [fl_tx(kp, JOIN_TASK, 0, [sc.tid]) for kp in sc.clients])
    return created_at


async def check_open_task(h: NodeHarness, sc: Scenario, created_at: int) -> None:
    task = await h.result("mps_getTask", hx(sc.tid))
    assert task["id"] == hx(sc.tid)
    assert task["name"] == "rpc-task"
    assert task["requester"] == hx(sc.requester.public_key)
    assert (task["status"], task["epoch"], task["epochs"]) == ("open", 0, 3)
    assert task["baseModel"] == hx(sha(sc.model))
    assert task["previousStep"] is None
    assert task["epochStart"] == created_at + 1
    assert task["windowBlocks"] == 5
    assert task["layout"] == [["w", [30, 30]], ["b", [300]]]
    assert task["parameters"] == D
    assert (task["dtype"], task["shift"]) == ("int8", 8)
    assert task["script"] == hx(sha(SCRIPT))
    assert task["scriptCid"] == cid_v1(sha(SCRIPT))
    assert task["initModelCid"] == cid_v1(sha(sc.model))
    for cid, data in ((task["scriptCid"], SCRIPT), (task["initModelCid"], sc.model)):
        assert unhex(await h.result("mps_getBlob", hx(parse_cid_v1(cid)))) == data
    assert task["targetAccuracyPpm"] == 900_000
    assert (task["minClients"], task["maxClients"]) == (5, 8)
    assert task["clients"] == [hx(kp.public_key) for kp in sc.clients]
    assert (task["phase"], task["committed"], task["revealed"]) == ("commit", [], [])
    assert task["awaiting"] == task["clients"]
    assert task["rules"] == EpochRules().to_list()


async def close_epoch_zero(h: NodeHarness, sc: Scenario) -> EpochZero:
    """Five honest clients and one that sends zeros; everyone submits, so the epoch closes."""
    direction = sc.rng.normal(0, 20, D)
    ups = [
        np.clip(np.rint(direction + sc.rng.normal(0, 20, D)), -127, 127).astype(np.int8)
        for _ in range(5)
    ]
    ups.append(np.zeros(D, dtype=np.int8))
    pairs = [(kp, u.tobytes()) for kp, u in zip(sc.clients, ups, strict=True)]
    closed_at = await commit_and_reveal(h, sc.tid, 0, pairs, 1)
    agg = robust.mean(np.stack(ups[:5]))
    next_base = (sc.init.astype(np.int64) + agg).astype("<i4").tobytes()
    step = np.clip(agg, -127, 127).astype(np.int8).tobytes()
    return EpochZero(ups, closed_at, next_base, step)


async def check_task_after_epoch_zero(h: NodeHarness, sc: Scenario, e0: EpochZero) -> None:
    task = await h.result("mps_getTask", hx(sc.tid))
    assert (task["status"], task["epoch"]) == ("open", 1)
    assert task["baseModel"] == hx(sha(e0.next_base))
    assert task["previousStep"] == hx(sha(e0.step))
    assert task["epochStart"] == e0.closed_at + 1
    assert (task["phase"], task["committed"], task["revealStart"]) == ("commit", [], None)
    # the zero sender has one strike, not enough to bar it: epoch 1 still waits for it
    assert task["awaiting"] == [hx(kp.public_key) for kp in sc.clients]
    # as of the block of epoch 0's commitments, every reveal was still awaited
    before = await h.result("mps_getTask", hx(sc.tid), e0.closed_at - 1)
    assert (before["phase"], before["revealStart"]) == ("reveal", e0.closed_at)
    assert before["committed"] == before["awaiting"] == [hx(kp.public_key) for kp in sc.clients]


async def check_epoch_zero_record(
    h: NodeHarness, sc: Scenario, e0: EpochZero
) -> list[dict[str, Any]]:
    """Returns the per-client records, which the slashing state must agree with."""
    ep = await h.result("mps_getEpoch", hx(sc.tid), 0)
    assert ep["task"] == hx(sc.tid)
    assert (ep["epoch"], ep["clients"], ep["closedAt"]) == (0, 6, e0.closed_at)
    assert ep["baseModel"] == hx(sha(sc.model))
    assert ep["aggregateStep"] == hx(sha(e0.step))
    assert ep["nextBaseModel"] == hx(sha(e0.next_base))
    assert ep["accuracyPpm"] is None
    recs: list[dict[str, Any]] = ep["records"]
    assert [r["client"] for r in recs] == [hx(kp.public_key) for kp in sc.clients]
    scores = np.asarray(robust.krum_scores(np.stack(e0.ups), 1)).tolist()
    assert [r["score"] for r in recs] == scores
    assert sorted(r["rank"] for r in recs) == list(range(6))
    for r, u in zip(recs, e0.ups, strict=True):
        assert r["update"] == hx(sha(u.tobytes()))
        assert r["sqNorm"] == int(np.dot(u.astype(np.int64), u.astype(np.int64)))
    for r in recs[:5]:
        assert (r["flags"], r["flagNames"], r["selected"]) == (0, [], True)
    assert (recs[5]["flags"], recs[5]["flagNames"], recs[5]["selected"]) == (
        int(Flag.ZERO),
        ["ZERO"],
        False,
    )
    return recs


async def check_blobs(h: NodeHarness, sc: Scenario, e0: EpochZero) -> None:
    """The models and updates come back byte for byte, over JSON and msgpack."""
    for data in (sc.model, e0.next_base, e0.step, e0.ups[0].tobytes(), SCRIPT):
        assert unhex(await h.result("mps_getBlob", hx(sha(data)))) == data
    assert await h.result("mps_getBlob", sha(e0.next_base), media=MSGPACK) == e0.next_base


async def check_zero_sender_struck(
    h: NodeHarness, sc: Scenario, e0: EpochZero, recs: list[dict[str, Any]]
) -> bytes:
    """Verdict and per-epoch records, each proven against the state root; returns that root.

    A zero update is evidence, not proof (a converged honest client can quantize to zeros): a
    strike, the stake untouched."""
    head = await h.result("mps_getBlockByNumber", "latest")
    root = unhex(head["stateRoot"])
    zero, tid = sc.zero, sc.tid
    s = await h.result("mps_getSlashingState", hx(tid), hx(zero.public_key))
    assert (s["task"], s["client"]) == (hx(tid), hx(zero.public_key))
    assert (s["strikes"], s["slashable"], s["reason"], s["barred"]) == (1, False, 0, False)
    assert (s["reasonNames"], s["slashEpoch"], s["barredEpoch"]) == ([], None, None)
    assert unhex(s["verdict"]["stateRoot"]) == root
    assert s["verdict"]["height"] == e0.closed_at
    assert checked_value(s["verdict"], root) == encoding.encode([1, False, 0, -1, False])
    assert checked_value(s["verdict"], root) == unhex(s["verdict"]["value"])
    assert len(s["records"]) == 1
    rec = s["records"][0]
    assert (rec["epoch"], rec["flags"], rec["flagNames"]) == (0, int(Flag.ZERO), ["ZERO"])
    assert unhex(rec["key"]) == state_keys.client_record(tid, 0, zero.public_key)
    proven = checked_value(rec, root)
    assert proven is not None
    assert encoding.decode(proven)[0] == sha(e0.ups[5].tobytes())
    assert (rec["score"], rec["rank"]) == (recs[5]["score"], recs[5]["rank"])
    forged = dict(rec, value=hx(encoding.encode([sha(b"x"), 0, 0, 0, 0, 0, 0, 0, True])))
    with pytest.raises(ProofError):
        checked_value(forged, root)
    return root


async def check_not_slashed(h: NodeHarness, sc: Scenario, root: bytes) -> None:
    """An honest client's clean verdict and a stranger's absent one are proven alike."""
    tid = sc.tid
    honest = await h.result("mps_getSlashingState", hx(tid), hx(sc.clients[0].public_key))
    assert (honest["strikes"], honest["slashable"], honest["reason"]) == (0, False, 0)
    assert (honest["reasonNames"], honest["slashEpoch"]) == ([], None)
    assert checked_value(honest["verdict"], root) == encoding.encode([0, False, 0, -1, False])
    assert [r["flagNames"] for r in honest["records"]] == [[]]
    assert checked_value(honest["records"][0], root) is not None

    stranger = await h.result("mps_getSlashingState", hx(tid), hx(sc.outsider.public_key))
    assert stranger["verdict"]["value"] is None
    assert checked_value(stranger["verdict"], root) is None  # absence is proven too
    assert (stranger["slashable"], stranger["records"]) == (False, [])


async def replay_the_global_step(h: NodeHarness, sc: Scenario, e0: EpochZero) -> None:
    """Epoch 1: the cheater resends epoch 0's aggregate step, a public vector of full support:
    provable, slashable at once, and its verdict and the slash leaf are proven."""
    tid, ups = sc.tid, e0.ups
    assert np.count_nonzero(np.frombuffer(e0.step, np.int8)) >= 64  # the collision guard holds
    fresh = [  # new honest updates: resending their own from epoch 0 would be REPLAY_OWN
        np.clip(np.rint(u.astype(np.float64) + sc.rng.normal(0, 8, D)), -127, 127).astype(np.int8)
        for u in ups[:5]
    ]
    pairs = [(kp, u.tobytes()) for kp, u in zip(sc.clients[:5], fresh, strict=True)]
    closed_at = await commit_and_reveal(h, tid, 1, [*pairs, (sc.zero, e0.step)], 3)
    head = await h.result("mps_getBlockByNumber", "latest")
    root = unhex(head["stateRoot"])
    s = await h.result("mps_getSlashingState", hx(tid), hx(sc.zero.public_key))
    replay = int(Flag.REPLAY_GLOBAL)
    assert (s["strikes"], s["slashable"], s["reason"], s["slashEpoch"]) == (1, True, replay, 1)
    assert (s["reasonNames"], s["barred"]) == (["REPLAY_GLOBAL"], False)
    assert s["verdict"]["height"] == closed_at
    assert checked_value(s["verdict"], root) == encoding.encode([1, True, replay, 1, False])
    assert [r["flagNames"] for r in s["records"]] == [["ZERO"], ["REPLAY_GLOBAL"]]
    leaf = await h.result("mps_getProof", hx(state_keys.slash_evidence(sc.zero.public_key, tid)))
    assert checked_value(leaf, root) == (1).to_bytes(4, "big") + replay.to_bytes(4, "big")


async def finish_task(h: NodeHarness, sc: Scenario, e0: EpochZero) -> None:
    """The slashable cheater may not submit again; the requester's evaluation completes it."""
    tid, ups = sc.tid, e0.ups
    again = sdk.commit_update(sc.zero, CHAIN_ID, 5, tid, 2, sha(ups[0].tobytes()))
    await h.send_ok(again)
    sealed = await h.seal()
    assert [(r.status, r.code) for r in sealed.receipts] == [(0, Code.SLASHABLE_IN_TASK)]
    await sealed_ok(h, [sdk.commit_update(sc.clients[0], CHAIN_ID, 5, tid, 2, sha(ups[0]))])
    task = await h.result("mps_getTask", hx(tid))
    assert task["committed"] == [hx(sc.clients[0].public_key)]
    assert task["awaiting"] == [hx(kp.public_key) for kp in sc.clients[1:5]]
    await sealed_ok(h, [fl_tx(sc.requester, REPORT_EVALUATION, 3, [tid, 0, 950_000])])
    assert (await h.result("mps_getEpoch", hx(tid), 0))["accuracyPpm"] == 950_000
    task = await h.result("mps_getTask", hx(tid))
    assert (task["status"], task["awaiting"]) == ("complete", [])


async def check_unknown_is_not_found(h: NodeHarness, sc: Scenario) -> None:
    """Unknown things are NOT_FOUND (1200); a malformed id is invalid params instead."""
    missing = sha(b"missing")
    for method, args in (
        ("mps_getBlob", [hx(missing)]),
        ("mps_getTask", [hx(missing)]),
        ("mps_getEpoch", [hx(missing), 0]),
        ("mps_getEpoch", [hx(sc.tid), 2]),  # not closed
        ("mps_getSlashingState", [hx(missing), hx(sc.zero.public_key)]),
    ):
        err = await h.error(method, *args)
        assert err["code"] == Code.NOT_FOUND == 1200, (method, err)
    assert (await h.error("mps_getTask", hx(b"\x01" * 5)))["code"] == -32602


async def test_fl_task_through_rpc(tmp_path: Path) -> None:
    sc = make_scenario()
    async with start_node(tmp_path / "n", genesis_stakes=sc.stakes()) as h:
        created_at = await open_task(h, sc)
        await check_open_task(h, sc, created_at)
        e0 = await close_epoch_zero(h, sc)
        await check_task_after_epoch_zero(h, sc, e0)
        recs = await check_epoch_zero_record(h, sc, e0)
        await check_blobs(h, sc, e0)
        root = await check_zero_sender_struck(h, sc, e0, recs)
        await check_not_slashed(h, sc, root)
        await replay_the_global_step(h, sc, e0)
        await finish_task(h, sc, e0)
        await check_unknown_is_not_found(h, sc)


async def test_get_epoch_beyond_32_bits_is_not_found(tmp_path: Path) -> None:
    async with start_node(tmp_path / "n") as h:
        err = await h.error("mps_getEpoch", hx(b"\x07" * 32), 2**32)
        assert err["code"] == Code.NOT_FOUND


async def test_an_open_task_keeps_blocks_coming_on_an_idle_chain(tmp_path: Path) -> None:
    """Issue 11's stall: windows count blocks, and an idle dev node sealed none, so an epoch
    whose last client never sent stayed open until unrelated traffic came. The production
    loop now seals a block every ``block_time`` while a task is open, and none otherwise."""
    sc = make_scenario()
    async with start_node(tmp_path / "n", genesis_stakes=sc.stakes()) as h:
        seq = h.node.sequencer
        await open_task(h, sc)
        assert await h.result("mps_listTasks", True, 10)
        seq.start()
        start = await h.result("mps_blockNumber")
        for _ in range(100):
            await asyncio.sleep(0.05)
            if await h.result("mps_blockNumber") >= start + 3:
                break
        assert await h.result("mps_blockNumber") >= start + 3, "no block while a task is open"
    async with start_node(tmp_path / "idle") as h:
        h.node.sequencer.start()
        await asyncio.sleep(0.5)  # ten ticks of 50 ms
        assert await h.result("mps_blockNumber") == 0, "an idle chain with no task seals nothing"


async def test_an_unbound_funding_keeps_blocks_coming_until_it_lapses(tmp_path: Path) -> None:
    """A funding lapses (and its funder may reclaim it on the L1) only once the chain passes its
    ``bind_by`` height; an idle chain that sealed nothing would hold the deposit for good. The
    loop seals blocks through that height, then stops; after a restart too (node/deadlines.py)."""
    from node.l1.deposits import L1Event

    window = 10
    async with start_node(tmp_path / "n", funding_window_blocks=window) as h:
        seq = h.node.sequencer
        event = L1Event(7, 0, "fund", [b"\x42" * 32, b"\xaa" * 20, 5])
        assert seq.queue_l1_events([event], (7, b"\x07" * 32)) == 1
        await seq.produce_block()  # height 1 records it: bindable through height 1 + window
        raw = await h.result("mps_getProof", hx(state_keys.funding(b"\x42" * 32, b"\xaa" * 20)))
        assert raw["value"] is not None
        seq.start()  # the funding arrived in a block this node sealed: idle blocks follow
        for _ in range(100):
            await asyncio.sleep(0.05)
            if await h.result("mps_blockNumber") >= 2:
                break
        assert await h.result("mps_blockNumber") >= 2
    # restarted (the deadline comes from the stored fundings), the loop seals through bind_by
    async with start_node(tmp_path / "n", funding_window_blocks=window) as h:
        h.node.sequencer.start()
        for _ in range(100):
            await asyncio.sleep(0.05)
            if await h.result("mps_blockNumber") >= 1 + window:
                break
        await asyncio.sleep(0.3)  # six more ticks: nothing is due any more
        assert await h.result("mps_blockNumber") == 1 + window


async def test_the_node_logs_and_counts_the_fl_events_of_its_blocks(tmp_path: Path) -> None:
    """Issue 14: the log said "block sealed" and nothing of tasks, joins or epochs."""
    from structlog.testing import capture_logs

    sc = make_scenario()
    async with start_node(tmp_path / "n", genesis_stakes=sc.stakes()) as h:
        with capture_logs() as logs:
            await open_task(h, sc)
            await close_epoch_zero(h, sc)
        events = [(e["event"], e.get("task"), e.get("client")) for e in logs]
        tid = sc.tid.hex()
        assert events.count(("task created", tid, None)) == 1
        joined = {c for ev, t, c in events if ev == "client joined" and t == tid}
        assert joined == {kp.public_key.hex() for kp in sc.clients}
        assert ("epoch closed", tid, None) in events
        text = h.node.metrics.render().decode()
        assert 'mps_fl_events_total{event="client joined"} 6.0' in text
        assert 'mps_fl_events_total{event="epoch closed"} 1.0' in text


async def test_a_blob_streams_raw_over_http(tmp_path: Path) -> None:
    """``GET /blob/<sha256>`` (issue 13): the raw bytes, not hex inside a JSON answer, with the
    hash as the ETag; an unknown hash is 404, a malformed one 400."""
    data = np.random.default_rng(5).bytes(600_000)
    async with start_node(tmp_path / "node") as h:
        await h.send_ok(put_blob(Keypair.generate(), CHAIN_ID, 0, data))
        await h.seal()
        resp = await h.client.get(f"/blob/0x{sha(data).hex()}")
        assert resp.status == 200 and resp.content_type == "application/octet-stream"
        assert resp.headers["ETag"] == f'"{sha(data).hex()}"'
        assert resp.content_length == len(data) and await resp.read() == data
        assert (await h.client.get(f"/blob/{sha(data).hex()}")).status == 200  # 0x optional
        assert (await h.client.get("/blob/0x" + "00" * 32)).status == 404
        assert (await h.client.get("/blob/0xzz")).status == 400
