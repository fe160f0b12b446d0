"""The federated-learning mps_ methods through an in-process node: a task from upload to verdict."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest
from rpc_fixtures import CHAIN_ID, MSGPACK, NodeHarness, hx, start_node, unhex

from client_sdk.keys import Keypair
from client_sdk.proofs import ProofError, checked_value
from client_sdk.tx import put_blob
from stf import encoding, robust, state_keys
from stf.cid import cid_v1, parse_cid_v1
from stf.errors import Code
from stf.fl.rules import EpochRules, Flag
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


async def sealed_ok(h: NodeHarness, txs: list[Transaction]) -> int:
    """Send, seal one block, insist every transaction succeeded; return the height."""
    for tx in txs:
        await h.send_ok(tx)
    sealed = await h.seal()
    assert [tx.hash for tx in sealed.block.txs] == [tx.hash for tx in txs]
    assert [(r.status, r.code) for r in sealed.receipts] == [(1, 0)] * len(txs)
    return sealed.block.height


async def test_fl_task_through_rpc(tmp_path):
    requester = Keypair.from_seed(b"\x01" * 32)
    evaluator = Keypair.from_seed(b"\x02" * 32)
    outsider = Keypair.from_seed(b"\x03" * 32)
    clients = [Keypair.from_seed(bytes([10 + i]) * 32) for i in range(6)]
    stakes = tuple(
        GenesisStake(kp.public_key, bytes([i + 1]) * 20, 1000) for i, kp in enumerate(clients)
    )
    rng = np.random.default_rng(5)
    init = rng.integers(-500, 500, D).astype("<i4")
    model = init.tobytes()
    p = params(model, evaluator.public_key)
    create = fl_tx(requester, CREATE_TASK, 2, p.to_list())
    tid = create.hash
    async with start_node(tmp_path / "n", genesis_stakes=stakes) as h:
        await sealed_ok(
            h, [put_blob(requester, CHAIN_ID, 0, model), put_blob(requester, CHAIN_ID, 1, SCRIPT)]
        )
        created_at = await sealed_ok(h, [create])
        rc = await h.result("mps_getTransactionReceipt", hx(create.hash))
        assert (rc["status"], rc["code"]) == (1, 0)
        await sealed_ok(h, [fl_tx(kp, JOIN_TASK, 0, [tid]) for kp in clients])

        task = await h.result("mps_getTask", hx(tid))
        assert task["id"] == hx(tid)
        assert task["name"] == "rpc-task"
        assert task["requester"] == hx(requester.public_key)
        assert (task["status"], task["epoch"], task["epochs"]) == ("open", 0, 3)
        assert task["baseModel"] == hx(sha(model))
        assert task["previousStep"] is None
        assert task["epochStart"] == created_at + 1
        assert task["windowBlocks"] == 5
        assert task["layout"] == [["w", [30, 30]], ["b", [300]]]
        assert task["parameters"] == D
        assert (task["dtype"], task["shift"]) == ("int8", 8)
        assert task["script"] == hx(sha(SCRIPT))
        assert task["scriptCid"] == cid_v1(sha(SCRIPT))
        assert task["initModelCid"] == cid_v1(sha(model))
        for cid, data in ((task["scriptCid"], SCRIPT), (task["initModelCid"], model)):
            assert unhex(await h.result("mps_getBlob", hx(parse_cid_v1(cid)))) == data
        assert task["targetAccuracyPpm"] == 900_000
        assert (task["minClients"], task["maxClients"]) == (5, 8)
        assert task["clients"] == [hx(kp.public_key) for kp in clients]
        assert task["submitted"] == []
        assert task["awaiting"] == task["clients"]
        assert task["rules"] == EpochRules().to_list()

        # epoch 0: five honest clients and one that sends zeros; everyone submits, so it closes
        direction = rng.normal(0, 20, D)
        ups = [
            np.clip(np.rint(direction + rng.normal(0, 20, D)), -127, 127).astype(np.int8)
            for _ in range(5)
        ]
        ups.append(np.zeros(D, dtype=np.int8))
        zero = clients[5]
        closed_at = await sealed_ok(
            h,
            [
                fl_tx(kp, SUBMIT_UPDATE, 1, [tid, 0, u.tobytes()])
                for kp, u in zip(clients, ups, strict=True)
            ],
        )
        agg = robust.mean(np.stack(ups[:5]))
        next_base = (init.astype(np.int64) + agg).astype("<i4").tobytes()
        step = np.clip(agg, -127, 127).astype(np.int8).tobytes()

        task = await h.result("mps_getTask", hx(tid))
        assert (task["status"], task["epoch"]) == ("open", 1)
        assert task["baseModel"] == hx(sha(next_base))
        assert task["previousStep"] == hx(sha(step))
        assert task["epochStart"] == closed_at + 1
        assert task["submitted"] == []
        # the zero sender is slashable: epoch 1 no longer waits for it
        assert task["awaiting"] == [hx(kp.public_key) for kp in clients[:5]]
        # as of the block before epoch 0's submissions, everyone was still awaited
        before = await h.result("mps_getTask", hx(tid), closed_at - 1)
        assert before["awaiting"] == [hx(kp.public_key) for kp in clients]

        ep = await h.result("mps_getEpoch", hx(tid), 0)
        assert ep["task"] == hx(tid)
        assert (ep["epoch"], ep["clients"], ep["closedAt"]) == (0, 6, closed_at)
        assert ep["baseModel"] == hx(sha(model))
        assert ep["aggregateStep"] == hx(sha(step))
        assert ep["nextBaseModel"] == hx(sha(next_base))
        assert ep["accuracyPpm"] is None
        recs = ep["records"]
        assert [r["client"] for r in recs] == [hx(kp.public_key) for kp in clients]
        scores = np.asarray(robust.krum_scores(np.stack(ups), 1)).tolist()
        assert [r["score"] for r in recs] == scores
        assert sorted(r["rank"] for r in recs) == list(range(6))
        for r, u in zip(recs, ups, strict=True):
            assert r["update"] == hx(sha(u.tobytes()))
            assert r["sqNorm"] == int(np.dot(u.astype(np.int64), u.astype(np.int64)))
        for r in recs[:5]:
            assert (r["flags"], r["flagNames"], r["selected"]) == (0, [], True)
        assert (recs[5]["flags"], recs[5]["flagNames"], recs[5]["selected"]) == (
            int(Flag.ZERO),
            ["ZERO"],
            False,
        )

        # blobs: the models and updates come back byte for byte, over JSON and msgpack
        for data in (model, next_base, step, ups[0].tobytes(), SCRIPT):
            assert unhex(await h.result("mps_getBlob", hx(sha(data)))) == data
        assert await h.result("mps_getBlob", sha(next_base), media=MSGPACK) == next_base

        # slashing state: verdict and per-epoch records, each proven against the state root
        head = await h.result("mps_getBlockByNumber", "latest")
        root = unhex(head["stateRoot"])
        s = await h.result("mps_getSlashingState", hx(tid), hx(zero.public_key))
        assert (s["task"], s["client"]) == (hx(tid), hx(zero.public_key))
        assert (s["strikes"], s["slashable"], s["reason"]) == (0, True, int(Flag.ZERO))
        assert (s["reasonNames"], s["slashEpoch"]) == (["ZERO"], 0)
        assert unhex(s["verdict"]["stateRoot"]) == root
        assert s["verdict"]["height"] == closed_at
        assert checked_value(s["verdict"], root) == encoding.encode([0, True, int(Flag.ZERO), 0])
        assert checked_value(s["verdict"], root) == unhex(s["verdict"]["value"])
        assert len(s["records"]) == 1
        rec = s["records"][0]
        assert (rec["epoch"], rec["flags"], rec["flagNames"]) == (0, int(Flag.ZERO), ["ZERO"])
        assert unhex(rec["key"]) == state_keys.client_record(tid, 0, zero.public_key)
        proven = checked_value(rec, root)
        assert proven is not None
        assert encoding.decode(proven)[0] == sha(ups[5].tobytes())
        assert (rec["score"], rec["rank"]) == (recs[5]["score"], recs[5]["rank"])
        forged = dict(rec, value=hx(encoding.encode([sha(b"x"), 0, 0, 0, 0, 0, 0, 0, True])))
        with pytest.raises(ProofError):
            checked_value(forged, root)

        honest = await h.result("mps_getSlashingState", hx(tid), hx(clients[0].public_key))
        assert (honest["strikes"], honest["slashable"], honest["reason"]) == (0, False, 0)
        assert (honest["reasonNames"], honest["slashEpoch"]) == ([], None)
        assert checked_value(honest["verdict"], root) == encoding.encode([0, False, 0, -1])
        assert [r["flagNames"] for r in honest["records"]] == [[]]
        assert checked_value(honest["records"][0], root) is not None

        stranger = await h.result("mps_getSlashingState", hx(tid), hx(outsider.public_key))
        assert stranger["verdict"]["value"] is None
        assert checked_value(stranger["verdict"], root) is None  # absence is proven too
        assert (stranger["slashable"], stranger["records"]) == (False, [])

        # the zero sender may not submit again; the requester's evaluation completes the task
        again = fl_tx(zero, SUBMIT_UPDATE, 2, [tid, 1, ups[0].tobytes()])
        await h.send_ok(again)
        sealed = await h.seal()
        assert [(r.status, r.code) for r in sealed.receipts] == [(0, Code.NOT_STAKED)]
        await sealed_ok(h, [fl_tx(clients[0], SUBMIT_UPDATE, 2, [tid, 1, ups[0].tobytes()])])
        task = await h.result("mps_getTask", hx(tid))
        assert task["awaiting"] == [hx(kp.public_key) for kp in clients[1:5]]
        await sealed_ok(h, [fl_tx(requester, REPORT_EVALUATION, 3, [tid, 0, 950_000])])
        assert (await h.result("mps_getEpoch", hx(tid), 0))["accuracyPpm"] == 950_000
        task = await h.result("mps_getTask", hx(tid))
        assert (task["status"], task["awaiting"]) == ("complete", [])

        # unknown things are NOT_FOUND (1200)
        missing = sha(b"missing")
        for method, args in (
            ("mps_getBlob", [hx(missing)]),
            ("mps_getTask", [hx(missing)]),
            ("mps_getEpoch", [hx(missing), 0]),
            ("mps_getEpoch", [hx(tid), 1]),  # not closed
            ("mps_getSlashingState", [hx(missing), hx(zero.public_key)]),
        ):
            err = await h.error(method, *args)
            assert err["code"] == Code.NOT_FOUND == 1200, (method, err)
        assert (await h.error("mps_getTask", hx(b"\x01" * 5)))["code"] == -32602


async def test_get_epoch_beyond_32_bits_is_not_found(tmp_path):
    async with start_node(tmp_path / "n") as h:
        err = await h.error("mps_getEpoch", hx(b"\x07" * 32), 2**32)
        assert err["code"] == Code.NOT_FOUND
